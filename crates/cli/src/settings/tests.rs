use super::*;

use clap::Parser as _;

/// The guide's `consumer.properties`, with the example ZooKeeper hosts it
/// prints.
const GUIDE_CONSUMER: &str = "zookeeper.connect=zk0-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181,zk1-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181,zk6-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181
group.id=mirrorgroup
";

/// The guide's `producer.properties`, with the example brokers it prints.
const GUIDE_PRODUCER: &str = "bootstrap.servers=wn0-dest.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:9092,wn1-dest.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:9092
compression.type=none
";

const MODERN_CONSUMER: &str = "bootstrap.servers=src:9092\ngroup.id=mirrorgroup\n";
const MODERN_PRODUCER: &str = "bootstrap.servers=dst:9092\n";

fn args(extra: &[&str]) -> Args {
    let mut argv = vec![
        "kmirror",
        "--consumer.config",
        "consumer.properties",
        "--producer.config",
        "producer.properties",
    ];
    if !extra
        .iter()
        .any(|a| *a == "--whitelist" || *a == "--include")
    {
        argv.extend(["--whitelist", "testtopic"]);
    }
    argv.extend_from_slice(extra);
    Args::try_parse_from(argv).unwrap()
}

fn props(text: &str, name: &str) -> Properties {
    Properties::parse_named(text, name).unwrap()
}

fn settings(consumer: &str, producer: &str) -> Result<MirrorSettings, SettingsError> {
    MirrorSettings::from_properties(
        &args(&["--num.streams", "4"]),
        &props(consumer, "consumer.properties"),
        &props(producer, "producer.properties"),
    )
}

/// The error for a consumer file with `line` added to the modern one.
fn consumer_error(line: &str) -> SettingsError {
    settings(&format!("{MODERN_CONSUMER}{line}\n"), MODERN_PRODUCER).unwrap_err()
}

/// The error for a producer file with `line` added to the modern one.
fn producer_error(line: &str) -> SettingsError {
    settings(MODERN_CONSUMER, &format!("{MODERN_PRODUCER}{line}\n")).unwrap_err()
}

fn config_message(e: &SettingsError) -> String {
    assert_eq!(e.exit(), Exit::Config, "{e}");
    e.to_string()
}

#[test]
fn the_guides_files_and_command_line() {
    let s = settings(GUIDE_CONSUMER, GUIDE_PRODUCER).unwrap();
    assert!(s.source.bootstrap_servers.is_empty());
    assert_eq!(
        s.source.zookeeper_connect.as_deref(),
        Some(
            "zk0-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181,zk1-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181,zk6-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181"
        )
    );
    assert_eq!(
        s.destination.bootstrap_servers,
        [
            "wn0-dest.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:9092",
            "wn1-dest.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:9092"
        ]
    );
    assert!(s.selector.selects("testtopic"));
    assert!(!s.selector.selects("testtopic2"));
    assert_eq!(
        s.consumer,
        ConsumerSettings {
            group_id: "mirrorgroup".into(),
            auto_offset_reset: AutoOffsetReset::Earliest,
            isolation_level: IsolationLevel::ReadCommitted,
            fetch_max_bytes: 52_428_800,
            max_partition_fetch_bytes: 1_048_576,
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            check_crcs: true,
            membership: GroupConfig::default(),
        }
    );
    assert_eq!(
        s.producer,
        ProducerSettings {
            acks: Acks::All,
            compression: Some(Compression::None),
            compression_levels: CompressionLevels::default(),
            batch_size: 16_384,
            linger: Duration::from_millis(5),
            buffer_memory: 64 * 1024 * 1024,
            delivery_timeout: None,
            max_in_flight: 5,
            retries: 2_147_483_647,
            max_request_size: 1_048_576,
            replication_factor: None,
        }
    );
    assert_eq!(
        s.run,
        RunSettings {
            num_streams: 4,
            offset_commit_interval: Duration::from_secs(60),
            abort_on_send_failure: true,
            once: false,
            slow_path_threads: None,
            partition_by_key: None,
            metrics_listen: None,
            metrics_partitions: true,
            ready_stall: Duration::from_secs(60),
            offset_map: true,
            source_alias: "source".to_owned(),
            sync_group_offsets: None,
        }
    );
    assert_eq!(s.consumer_file, PathBuf::from("consumer.properties"));
    assert_eq!(s.producer_file, PathBuf::from("producer.properties"));
    let notices: Vec<(NoticeLevel, &str)> = s
        .notices
        .iter()
        .map(|n| (n.level, n.text.as_str()))
        .collect();
    assert_eq!(
        notices,
        [
            (
                NoticeLevel::Info,
                "consumer.properties: auto.offset.reset is not set, so partitions without an \
                 offset committed for group mirrorgroup start at the earliest offset and existing \
                 records are copied (MirrorMaker 2's default; MirrorMaker 1 started at the latest \
                 offset: set auto.offset.reset=latest for that)"
            ),
            (
                NoticeLevel::Info,
                "consumer.properties: kmirror finds the source brokers through zookeeper.connect, \
                 but commits the offsets of group mirrorgroup to the Kafka cluster (as \
                 MirrorMaker's new consumer did); offsets the old consumer kept in ZooKeeper are \
                 not read"
            ),
            (
                NoticeLevel::Info,
                "producer.properties: compression.type=none: the destination gets none; fetched \
                 batches in another codec are recompressed instead of passed through unchanged \
                 (remove compression.type to keep each batch's codec)"
            ),
        ]
    );
}

#[test]
fn every_key_is_read() {
    let s = settings(
        "bootstrap.servers=src:9092\ngroup.id= g1 \nauto.offset.reset=LATEST\n\
         isolation.level=read_uncommitted\nfetch.max.bytes=1000\nmax.partition.fetch.bytes=200\n\
         fetch.max.wait.ms=100\nfetch.min.bytes=0\ncheck.crcs=False\n\
         partition.assignment.strategy=org.apache.kafka.clients.consumer.RoundRobinAssignor, range\n\
         session.timeout.ms=10000\nheartbeat.interval.ms=1000\nmax.poll.interval.ms=60000\n\
         group.instance.id=head-node-1\ngroup.protocol=Classic\n",
        "bootstrap.servers=dst:9092\nacks=1\ncompression.type=ZSTD\ncompression.gzip.level=-1\n\
         compression.lz4.level=17\ncompression.zstd.level=-5\nbatch.size=0\nlinger.ms=0\n\
         buffer.memory=1048576\ndelivery.timeout.ms=30000\n\
         max.in.flight.requests.per.connection=1\nenable.idempotence=true\nretries=0\n\
         max.request.size=1\nreplication.factor=2\nrequest.timeout.ms=30000\n",
    )
    .unwrap();
    assert_eq!(
        s.consumer,
        ConsumerSettings {
            group_id: "g1".into(),
            auto_offset_reset: AutoOffsetReset::Latest,
            isolation_level: IsolationLevel::ReadUncommitted,
            fetch_max_bytes: 1000,
            max_partition_fetch_bytes: 200,
            fetch_max_wait: Duration::from_millis(100),
            fetch_min_bytes: 0,
            check_crcs: false,
            membership: GroupConfig {
                assignors: vec![Assignor::RoundRobin, Assignor::Range],
                session_timeout: Duration::from_secs(10),
                heartbeat_interval: Duration::from_secs(1),
                max_poll_interval: Duration::from_secs(60),
                group_instance_id: Some("head-node-1".into()),
                protocol: GroupProtocol::Classic,
                remote_assignor: None,
            },
        }
    );
    assert_eq!(
        s.producer,
        ProducerSettings {
            acks: Acks::Leader,
            compression: Some(Compression::Zstd),
            compression_levels: CompressionLevels {
                gzip: Some(-1),
                lz4: Some(17),
                zstd: Some(-5),
            },
            batch_size: 0,
            linger: Duration::ZERO,
            buffer_memory: 1_048_576,
            delivery_timeout: Some(Duration::from_secs(30)),
            max_in_flight: 1,
            retries: 0,
            max_request_size: 1,
            replication_factor: Some(2),
        }
    );
    assert_eq!(
        s.producer.compression_levels.for_codec(Compression::Zstd),
        Some(-5)
    );
    assert_eq!(
        s.producer.compression_levels.for_codec(Compression::Snappy),
        None
    );
    assert_eq!(s.consumer.isolation_level.wire_value(), 0);
    assert_eq!(s.producer.acks.wire_value(), 1);
    // The acks=1 warning, the compression notice and the warning that
    // linger.ms is ignored: auto.offset.reset is set, brokers are listed.
    assert_eq!(s.notices.len(), 3, "{:?}", s.notices);
}

/// `group.protocol=consumer` (KIP-848): the broker assigns, so the
/// classic protocol's keys are said not to apply; a list that mixes eager
/// and cooperative assignors is explained.
#[test]
fn kip_848_keys_and_the_classic_keys_that_do_not_apply_with_them() {
    let s = settings(
        "bootstrap.servers=src:9092\ngroup.id=g\nauto.offset.reset=earliest\n\
         group.protocol=consumer\ngroup.remote.assignor=uniform\nsession.timeout.ms=10000\n",
        "bootstrap.servers=dst:9092\n",
    )
    .unwrap();
    assert_eq!(s.consumer.membership.protocol, GroupProtocol::Consumer);
    assert_eq!(
        s.consumer.membership.remote_assignor.as_deref(),
        Some("uniform")
    );
    let texts: Vec<&str> = s.notices.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "consumer.properties: session.timeout.ms does not apply with group.protocol=consumer \
          (the broker's group.consumer.* settings decide); used only if the source broker lacks \
          KIP-848 and kmirror falls back to the classic protocol"
        ]
    );
    let s = settings(
        "bootstrap.servers=src:9092\ngroup.id=g\nauto.offset.reset=earliest\n\
         partition.assignment.strategy=range,cooperative-sticky\n",
        "bootstrap.servers=dst:9092\n",
    )
    .unwrap();
    assert_eq!(
        s.consumer.membership.assignors,
        [Assignor::Range, Assignor::CooperativeSticky]
    );
    assert!(
        s.notices[0]
            .text
            .contains("lists eager and cooperative assignors"),
        "{:?}",
        s.notices
    );
}

#[test]
fn compression_type_absent_or_producer_keeps_each_batchs_codec() {
    for line in [
        "",
        "compression.type=producer",
        "compression.type=",
        "compression.type = Producer",
    ] {
        let s = settings(MODERN_CONSUMER, &format!("{MODERN_PRODUCER}{line}\n")).unwrap();
        assert_eq!(s.producer.compression, None, "{line}");
        assert!(
            !s.notices
                .iter()
                .any(|n| n.text.contains("compression.type")),
            "{line}"
        );
    }
}

#[test]
fn old_consumer_offset_reset_names_are_read() {
    let s = settings(
        &format!("{MODERN_CONSUMER}auto.offset.reset=smallest\n"),
        MODERN_PRODUCER,
    )
    .unwrap();
    assert_eq!(s.consumer.auto_offset_reset, AutoOffsetReset::Earliest);
    assert_eq!(
        s.notices[0].text,
        "consumer.properties: auto.offset.reset=smallest is the old consumer's name; read as \
         earliest"
    );
    let s = settings(
        &format!("{MODERN_CONSUMER}auto.offset.reset=largest\n"),
        MODERN_PRODUCER,
    )
    .unwrap();
    assert_eq!(s.consumer.auto_offset_reset, AutoOffsetReset::Latest);
    let s = settings(
        &format!("{MODERN_CONSUMER}auto.offset.reset=none\n"),
        MODERN_PRODUCER,
    )
    .unwrap();
    assert_eq!(s.consumer.auto_offset_reset, AutoOffsetReset::None);
}

#[test]
fn missing_group_id_names_it_and_the_fix() {
    for consumer in [
        "bootstrap.servers=src:9092\n",
        "bootstrap.servers=src:9092\ngroup.id=\n",
        "bootstrap.servers=src:9092\ngroup.id=   \n",
    ] {
        let e = settings(consumer, MODERN_PRODUCER).unwrap_err();
        assert_eq!(
            config_message(&e),
            "consumer.properties: missing group.id; add group.id=... to consumer.properties, the \
             consumer group whose offsets kmirror commits (the HDInsight guide uses \
             group.id=mirrorgroup)"
        );
    }
}

#[test]
fn bad_consumer_values_name_file_key_value_and_what_is_allowed() {
    let cases = [
        (
            "auto.offset.reset=oldest",
            "consumer.properties: invalid value \"oldest\" for auto.offset.reset; allowed: \
             earliest (start partitions without a committed offset at the oldest record; the \
             default), latest (at the end, as MirrorMaker 1 did by default) or none (stop with an \
             error)",
        ),
        (
            "isolation.level=serializable",
            "consumer.properties: invalid value \"serializable\" for isolation.level; allowed: \
             read_committed (copy only committed transactional records; the default) or \
             read_uncommitted",
        ),
        (
            "fetch.max.bytes=-1",
            "consumer.properties: invalid value \"-1\" for fetch.max.bytes; allowed: a whole \
             number from 0 to 2147483647 (remove the line for the default, 52428800)",
        ),
        (
            "max.partition.fetch.bytes=1MB",
            "consumer.properties: invalid value \"1MB\" for max.partition.fetch.bytes; allowed: \
             a whole number from 0 to 2147483647 (remove the line for the default, 1048576)",
        ),
        (
            "fetch.max.wait.ms=2147483648",
            "consumer.properties: invalid value \"2147483648\" for fetch.max.wait.ms; allowed: a \
             whole number of milliseconds from 0 to 2147483647 (remove the line for the default, \
             500)",
        ),
        (
            "fetch.min.bytes=",
            "consumer.properties: invalid value \"\" for fetch.min.bytes; allowed: a whole \
             number from 0 to 2147483647 (remove the line for the default, 1)",
        ),
        (
            "check.crcs=yes",
            "consumer.properties: invalid value \"yes\" for check.crcs; allowed: true or false \
             (remove the line for the default, true)",
        ),
        (
            "partition.assignment.strategy=org.apache.kafka.clients.consumer.StickyAssignor",
            "consumer.properties: invalid value \"org.apache.kafka.clients.consumer.StickyAssignor\" \
             for partition.assignment.strategy; allowed: a comma-separated list of range, \
             roundrobin and cooperative-sticky (or their Java class names, \
             org.apache.kafka.clients.consumer.RangeAssignor, ...RoundRobinAssignor, \
             ...CooperativeStickyAssignor); org.apache.kafka.clients.consumer.StickyAssignor is \
             not one of them (the eager StickyAssignor and custom Java classes cannot run in \
             kmirror: use cooperative-sticky)",
        ),
        (
            "heartbeat.interval.ms=45000",
            "consumer.properties: invalid value \"45000\" for heartbeat.interval.ms; allowed: \
             less than session.timeout.ms (45000 ms); a third of it is usual",
        ),
        (
            "session.timeout.ms=0",
            "consumer.properties: invalid value \"0\" for session.timeout.ms; allowed: a whole \
             number of milliseconds from 1 to 2147483647 (remove the line for the default, 45000)",
        ),
        (
            "group.instance.id=head node 1",
            "consumer.properties: invalid value \"head node 1\" for group.instance.id; allowed: \
             at most 249 characters of a-z, A-Z, 0-9, '.', '_' and '-', unique to each process \
             of the group",
        ),
        (
            "group.protocol=streams",
            "consumer.properties: invalid value \"streams\" for group.protocol; allowed: classic \
             (JoinGroup/SyncGroup, the leader assigns; the default) or consumer (KIP-848, the \
             broker assigns; Apache Kafka 4.0 or newer, else classic is used)",
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(config_message(&consumer_error(line)), expected, "{line}");
    }
}

#[test]
fn bad_producer_values_name_file_key_value_and_what_is_allowed() {
    let cases = [
        (
            "acks=2",
            "producer.properties: invalid value \"2\" for acks; allowed: all (or -1: every \
             in-sync replica has the records; the default) or 1 (the leader only, without \
             idempotence); 0 is refused, as kmirror commits only what the destination \
             acknowledged",
        ),
        (
            "compression.type=brotli",
            "producer.properties: invalid value \"brotli\" for compression.type; allowed: none, \
             gzip, snappy, lz4 or zstd (the destination gets that codec), or producer (or no \
             line) to keep each batch's codec so that batches pass through unchanged",
        ),
        (
            "compression.gzip.level=10",
            "producer.properties: invalid value \"10\" for compression.gzip.level; allowed: a \
             whole number from 1 to 9, or -1 for the default (6); remove the line for the default",
        ),
        (
            "compression.lz4.level=0",
            "producer.properties: invalid value \"0\" for compression.lz4.level; allowed: a \
             whole number from 1 to 17 (default 9); remove the line for the default",
        ),
        (
            "compression.zstd.level=23",
            "producer.properties: invalid value \"23\" for compression.zstd.level; allowed: a \
             whole number from -131072 to 22 (default 3); remove the line for the default",
        ),
        (
            "compression.zstd.level=high",
            "producer.properties: invalid value \"high\" for compression.zstd.level; allowed: a \
             whole number from -131072 to 22 (default 3); remove the line for the default",
        ),
        (
            "batch.size=-1",
            "producer.properties: invalid value \"-1\" for batch.size; allowed: a whole number \
             from 0 to 2147483647 (remove the line for the default, 16384)",
        ),
        (
            "linger.ms=5s",
            "producer.properties: invalid value \"5s\" for linger.ms; allowed: a whole number of \
             milliseconds from 0 to 2147483647 (remove the line for the default, 5)",
        ),
        (
            "buffer.memory=1000",
            "producer.properties: invalid value \"1000\" for buffer.memory; allowed: a number of \
             bytes from 1048576 (1 MiB) to 9223372036854775807: fetched records wait in it until \
             the destination acknowledges them (remove the line for the default, 67108864)",
        ),
        (
            "delivery.timeout.ms=1000",
            "producer.properties: invalid value \"1000\" for delivery.timeout.ms; allowed: a \
             whole number of milliseconds from linger.ms + request.timeout.ms (5 + 30000 = \
             30005) to 2147483647, as Java's producer requires; remove the line to retry for \
             ever, as MirrorMaker 1 did",
        ),
        (
            "max.in.flight.requests.per.connection=6",
            "producer.properties: invalid value \"6\" for max.in.flight.requests.per.connection; \
             allowed: a whole number from 1 to 5: kmirror's producer is idempotent, and Kafka \
             keeps the order of at most 5 requests in flight per partition (remove the line for \
             the default, 5)",
        ),
        (
            "enable.idempotence=maybe",
            "producer.properties: invalid value \"maybe\" for enable.idempotence; allowed: true \
             (kmirror's producer is always idempotent; remove the line)",
        ),
        (
            "retries=-1",
            "producer.properties: invalid value \"-1\" for retries; allowed: a whole number from \
             0 to 2147483647 (remove the line for the default, 2147483647)",
        ),
        (
            "max.request.size=0",
            "producer.properties: invalid value \"0\" for max.request.size; allowed: a whole \
             number from 1 to 2147483647 (remove the line for the default, 1048576)",
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(config_message(&producer_error(line)), expected, "{line}");
    }
}

#[test]
fn linger_ms_is_warned_about_as_ignored_and_retries_is_read() {
    let s = settings(
        MODERN_CONSUMER,
        &format!("{MODERN_PRODUCER}linger.ms=20\nretries=0\n"),
    )
    .unwrap();
    let warning = s
        .notices
        .iter()
        .find(|n| n.text.contains("linger.ms"))
        .expect("a notice about linger.ms");
    assert_eq!(warning.level, NoticeLevel::Warn);
    assert!(warning.text.contains("ignored"), "{}", warning.text);
    assert_eq!(s.producer.retries, 0);
    let quiet = settings(MODERN_CONSUMER, MODERN_PRODUCER).unwrap();
    assert!(!quiet.notices.iter().any(|n| n.text.contains("linger.ms")));
}

#[test]
fn delivery_timeout_floor_follows_linger_and_request_timeout() {
    let e = producer_error("linger.ms=100\nrequest.timeout.ms=1000\ndelivery.timeout.ms=1099");
    assert!(config_message(&e).contains("(100 + 1000 = 1100)"), "{e}");
    let s = settings(
        MODERN_CONSUMER,
        &format!(
            "{MODERN_PRODUCER}linger.ms=100\nrequest.timeout.ms=1000\ndelivery.timeout.ms=1100\n"
        ),
    )
    .unwrap();
    assert_eq!(
        s.producer.delivery_timeout,
        Some(Duration::from_millis(1100))
    );
}

#[test]
fn idempotence_off_and_acks_one_are_warned_about() {
    let s = settings(
        MODERN_CONSUMER,
        &format!("{MODERN_PRODUCER}enable.idempotence=false\nacks=1\n"),
    )
    .unwrap();
    assert_eq!(s.producer.acks, Acks::Leader);
    let warnings: Vec<&str> = s
        .notices
        .iter()
        .filter(|n| n.level == NoticeLevel::Warn)
        .map(|n| n.text.as_str())
        .collect();
    assert_eq!(
        warnings,
        [
            "producer.properties: acks=1: kmirror mirrors without idempotence (batches carry no \
             producer id or sequence): the partition leader alone acknowledges, so what it \
             acknowledged is lost if it fails before its followers copy it, a retry after a lost \
             answer writes records twice, and with max.in.flight.requests.per.connection above 1 \
             a retry can land behind later records; remove the line for acks=all",
            "producer.properties: enable.idempotence=false is ignored: with acks=all kmirror's \
             producer is idempotent, which lets it keep up to 5 requests in flight per partition \
             without reordering or duplicating records on retry; remove the line (acks=1 \
             mirrors without idempotence)",
        ]
    );
}

/// Issue 13, item 10: with acks=0 the destination never acknowledges, and
/// kmirror never commits what the destination has not acknowledged.
#[test]
fn acks_zero_is_refused() {
    let e = settings(MODERN_CONSUMER, &format!("{MODERN_PRODUCER}acks=0\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid value \"0\" for acks"), "{e}");
    assert!(e.contains("never acknowledges"), "{e}");
    assert!(e.contains("acks=all") && e.contains("acks=1"), "{e}");
}

#[test]
fn connection_errors_are_prefixed_with_the_file() {
    let e = settings("group.id=g\n", MODERN_PRODUCER).unwrap_err();
    let msg = config_message(&e);
    assert!(
        msg.starts_with("consumer.properties: missing bootstrap.servers (or zookeeper.connect); "),
        "{msg}"
    );
    let e = producer_error("request.timeout.ms=soon");
    let msg = config_message(&e);
    assert!(
        msg.starts_with("producer.properties: invalid value \"soon\" for request.timeout.ms;"),
        "{msg}"
    );
}

#[test]
fn keys_of_the_other_file_are_not_read_there() {
    // group.id in the producer file is not the producer's business: it is
    // an unknown key there (logged), not an error; acks in the consumer
    // file likewise.
    let s = settings(
        &format!("{MODERN_CONSUMER}acks=2\n"),
        &format!("{MODERN_PRODUCER}group.id=\n"),
    )
    .unwrap();
    assert_eq!(s.producer.acks, Acks::All);
}

#[test]
fn missing_whitelist_is_a_usage_error() {
    let a = Args::try_parse_from([
        "kmirror",
        "--consumer.config",
        "c",
        "--producer.config",
        "p",
    ])
    .unwrap();
    let e = MirrorSettings::from_properties(
        &a,
        &props(MODERN_CONSUMER, "c"),
        &props(MODERN_PRODUCER, "p"),
    )
    .unwrap_err();
    assert_eq!(e.exit(), Exit::Usage);
    assert!(
        e.to_string().starts_with(
            "pass --whitelist (or --include) with the topics to mirror, e.g. --whitelist testtopic"
        ),
        "{e}"
    );
}

#[test]
fn bad_patterns_are_configuration_errors_with_the_explanation() {
    let e = MirrorSettings::from_properties(
        &args(&["--whitelist", "(?!internal).*"]),
        &props(MODERN_CONSUMER, "c"),
        &props(MODERN_PRODUCER, "p"),
    )
    .unwrap_err();
    assert_eq!(e.exit(), Exit::Config);
    let msg = e.to_string();
    assert!(
        msg.starts_with("--whitelist/--include pattern `(?!internal).*` uses a lookahead"),
        "{msg}"
    );
    assert!(msg.contains("--exclude 'internal.*'"), "{msg}");
    let e = MirrorSettings::from_properties(
        &args(&["--blacklist", "orders("]),
        &props(MODERN_CONSUMER, "c"),
        &props(MODERN_PRODUCER, "p"),
    )
    .unwrap_err();
    assert_eq!(e.exit(), Exit::Config);
    assert!(
        e.to_string()
            .contains("--blacklist/--exclude pattern `orders(`"),
        "{e}"
    );
    let s = MirrorSettings::from_properties(
        &args(&["--include", "test.*", "--exclude", "test2"]),
        &props(MODERN_CONSUMER, "c"),
        &props(MODERN_PRODUCER, "p"),
    )
    .unwrap();
    assert!(s.selector.selects("test1"));
    assert!(!s.selector.selects("test2"));
}

#[test]
fn java_flags_are_refused_before_anything_else() {
    for (extra, flag) in [
        (&["--message.handler", "x.Handler"][..], "--message.handler"),
        (
            &["--message.handler.args", "a"][..],
            "--message.handler.args",
        ),
        (
            &["--message.handler", "x.H", "--message.handler.args", "a"][..],
            "--message.handler",
        ),
    ] {
        let e = MirrorSettings::from_properties(&args(extra), &props("", "c"), &props("", "p"))
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Usage);
        assert_eq!(
            e.to_string(),
            format!(
                "{flag} is not supported by kmirror: MirrorMaker's message handlers run Java \
                 code; kmirror copies records unchanged (topic, partition, key, value, headers, \
                 timestamp); remove --message.handler and --message.handler.args from the \
                 command line"
            )
        );
    }
    for flag in [
        "--consumer.rebalance.listener",
        "--rebalance.listener",
        "--rebalance.listener.args",
    ] {
        let e =
            MirrorSettings::from_properties(&args(&[flag, "x"]), &props("", "c"), &props("", "p"))
                .unwrap_err();
        assert_eq!(e.exit(), Exit::Usage);
        assert!(
            e.to_string().starts_with(&format!(
                "{flag} is not supported by kmirror: MirrorMaker's rebalance listeners run Java code"
            )),
            "{e}"
        );
    }
}

#[test]
fn new_consumer_and_run_flags() {
    let s = MirrorSettings::from_properties(
        &args(&[
            "--new.consumer",
            "--once",
            "--abort.on.send.failure",
            "false",
            "--offset.commit.interval.ms",
            "5000",
        ]),
        &props(MODERN_CONSUMER, "c"),
        &props(MODERN_PRODUCER, "p"),
    )
    .unwrap();
    assert!(s.run.once);
    assert!(!s.run.abort_on_send_failure);
    assert_eq!(s.run.offset_commit_interval, Duration::from_secs(5));
    assert_eq!(s.run.num_streams, 1);
    assert!(
        s.notices[0].text.starts_with("--new.consumer is ignored"),
        "{:?}",
        s.notices
    );
}

#[test]
fn load_reads_the_files_and_names_them_in_errors() {
    let dir = std::env::temp_dir().join(format!("kmirror-cli-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let consumer = dir.join("consumer.properties");
    let producer = dir.join("producer.properties");
    std::fs::write(&consumer, MODERN_CONSUMER).unwrap();
    std::fs::write(&producer, "bootstrap.servers=dst:9092\nacks=2\n").unwrap();
    let argv = |c: &Path, p: &Path| {
        Args::try_parse_from([
            "kmirror".as_ref(),
            "--consumer.config".as_ref(),
            c.as_os_str(),
            "--producer.config".as_ref(),
            p.as_os_str(),
            "--whitelist".as_ref(),
            "testtopic".as_ref(),
        ])
        .unwrap()
    };

    let e = MirrorSettings::load(&argv(&consumer, &producer)).unwrap_err();
    assert_eq!(
        config_message(&e),
        format!(
            "{}: invalid value \"2\" for acks; allowed: all (or -1: every in-sync replica has \
             the records; the default) or 1 (the leader only, without idempotence); 0 is \
             refused, as kmirror commits only what the destination acknowledged",
            producer.display()
        )
    );

    let missing = dir.join("nope.properties");
    let e = MirrorSettings::load(&argv(&missing, &producer)).unwrap_err();
    assert_eq!(
        config_message(&e),
        format!(
            "cannot read consumer config {}: No such file or directory; pass the path of an \
             existing file to --consumer.config",
            missing.display()
        )
    );
    let e = MirrorSettings::load(&argv(&consumer, &dir)).unwrap_err();
    assert_eq!(
        config_message(&e),
        format!(
            "cannot read producer config {}: Is a directory; pass the path of a file, not a \
             directory to --producer.config",
            dir.display()
        )
    );

    std::fs::write(&producer, MODERN_PRODUCER).unwrap();
    let s = MirrorSettings::load(&argv(&consumer, &producer)).unwrap();
    assert_eq!(s.consumer.group_id, "mirrorgroup");
    assert_eq!(s.producer_file, producer);
    std::fs::remove_dir_all(&dir).unwrap();
}
