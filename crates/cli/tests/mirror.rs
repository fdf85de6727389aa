//! End to end: the built `kmirror` binary between two Apache Kafka
//! clusters, inputs produced by librdkafka, the destination read back by
//! librdkafka and compared partition by partition, record by record. The
//! destination sits behind a proxy that runs every Produce request through
//! Apache Kafka's rules (`ConformanceChecker`), which names the rule a
//! request broke where the broker only answers an error code.
//!
//! JVMs start slowly, so most tests share one source and one destination
//! (each with topics and groups of its own); a test that restarts a broker,
//! needs other listeners or expects a violation starts its own. Needs Apache
//! Kafka 4.4 and 3.9 and the Python clients (`cargo xtask brokers`).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kmirror_test_support::{
    ClusterOptions, Codec, ConformanceProxy, KafkaCluster, KafkaVersion, Listener, ProduceSpec,
    assert_same_records, librdkafka_committed_offsets, librdkafka_consume_all,
    librdkafka_create_topic, librdkafka_end_offsets, librdkafka_list_topics, librdkafka_produce,
    start_cluster_behind_proxy,
};

mod common;

use common::{
    Mirror, Scratch, assert_committed_to_the_end, assert_complete_in_order, partition_count,
    record_count, tail,
};

/// Polls until `topic` exists at `bootstrap` and its partitions hold
/// `expected` records in total.
fn wait_for_records(
    bootstrap: &str,
    topic: &str,
    expected: i64,
    timeout: Duration,
    mirror: &Mirror,
) {
    let deadline = Instant::now() + timeout;
    let mut last = 0;
    while Instant::now() < deadline {
        if librdkafka_list_topics(bootstrap).iter().any(|t| t == topic) {
            last = librdkafka_end_offsets(bootstrap, topic)
                .values()
                .sum::<i64>();
            if last >= expected {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "{topic} at {bootstrap} holds {last} of {expected} records after {timeout:?}; kmirror's \
         stderr:\n{}",
        tail(&mirror.stderr_now(), 6000)
    );
}

/// The source cluster shared by the tests of this file (one KRaft broker).
fn shared_source() -> &'static KafkaCluster {
    KafkaCluster::shared("source", ClusterOptions::kraft)
}

/// The destination shared by the tests of this file: one KRaft broker
/// behind a conformance proxy. kmirror's producer bootstraps with
/// `proxy.addr()`; the test's own clients use `cluster.bootstrap()`.
/// A violation from any test fails every test that asserts on it, which is
/// fine: none is expected.
fn shared_destination() -> &'static (KafkaCluster, ConformanceProxy) {
    static DESTINATION: OnceLock<(KafkaCluster, ConformanceProxy)> = OnceLock::new();
    DESTINATION
        .get_or_init(|| start_cluster_behind_proxy(ClusterOptions::kraft().name("destination")))
}

/// A destination of the test's own (it restarts it, or expects a
/// violation).
fn own_destination(name: &str) -> (KafkaCluster, ConformanceProxy) {
    start_cluster_behind_proxy(ClusterOptions::kraft().name(name))
}

/// No Produce request through `proxy` broke a rule (whichever test sent
/// it), and kmirror's records for each of `topics` went through it.
fn assert_conformant_for(proxy: &ConformanceProxy, topics: &[&str]) {
    proxy.assert_no_violations();
    for topic in topics {
        assert!(
            proxy.records_to(topic) > 0,
            "no record for {topic} went through the conformance proxy: {}",
            proxy.report().summary()
        );
    }
}

/// The HDInsight guide, with only the command name changed: `testtopic`
/// with 8 partitions, the source found through `zookeeper.connect`, the
/// guide's two files and flags (`--num.streams 4`), lines produced while
/// kmirror runs, Ctrl+C. kmirror exits 0, the destination topic was
/// created with 8 partitions and holds every record as the source does,
/// and the group's offsets on the source reached the end offsets.
///
/// The source is a ZooKeeper-mode Apache Kafka 3.9 cluster (the guide's
/// clusters are ZooKeeper-mode): its broker registers itself under the
/// chroot `/kafka`, which kmirror reads.
#[test]
fn the_guides_scenario_end_to_end() {
    let source_cluster =
        KafkaCluster::start(ClusterOptions::new(KafkaVersion::V3_9).name("guide-source"));
    let source = source_cluster.bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    librdkafka_create_topic(&source, "testtopic", 8, &[]);
    let scratch = Scratch::new(
        &format!(
            "zookeeper.connect={}\ngroup.id=mirrorgroup\n",
            source_cluster.zookeeper_connect()
        ),
        &format!(
            "bootstrap.servers={}\ncompression.type=none\n",
            proxy.addr()
        ),
    );
    let mirror = scratch.spawn(&["--whitelist", "testtopic", "--num.streams", "4"]);
    let spec = ProduceSpec::default().count(2_000).keys(50).headers(true);
    librdkafka_produce(&source, "testtopic", &spec);
    wait_for_records(
        &destination,
        "testtopic",
        2_000,
        Duration::from_secs(60),
        &mirror,
    );

    mirror.signal("-INT");
    let exited = mirror.wait(Duration::from_secs(60));
    exited.assert_success();
    assert!(
        exited.stderr.contains("stop requested"),
        "{}",
        exited.context()
    );
    assert_eq!(partition_count(&destination, "testtopic"), 8);
    assert_same_records(
        &librdkafka_consume_all(&source, "testtopic"),
        &librdkafka_consume_all(&destination, "testtopic"),
    );
    assert_committed_to_the_end(&source, "mirrorgroup", "testtopic");
    let summary = exited.summary();
    assert_eq!(summary.records, 2_000, "{}", exited.context());
    assert!(
        summary.passthrough > 0 && summary.slow == 0,
        "{}",
        exited.context()
    );
    assert_conformant_for(proxy, &["testtopic"]);
}

/// Every codec, with null keys, null values, headers (repeats, empty and
/// null values) and 900 KB values, arrives byte-identical, through the
/// passthrough path only, and `--once` exits 0 with the offsets committed.
#[test]
fn every_codec_passes_through_byte_identical_with_once() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let mut total = 0;
    for codec in Codec::ALL {
        let topic = format!("codec-{}", codec.name());
        librdkafka_create_topic(&source, &topic, 3, &[]);
        let spec = ProduceSpec::default()
            .count(300)
            .codec(codec)
            .value_size(200)
            .keys(20)
            .null_key_every(7)
            .null_value_every(11)
            .headers(true)
            .large_values(97, 900 * 1024)
            .partitions(3)
            .linger_ms(20);
        total += librdkafka_produce(&source, &topic, &spec);
    }
    let scratch = Scratch::new(
        &format!("bootstrap.servers={source}\ngroup.id=codecs\n"),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let exited = scratch
        .spawn(&["--whitelist", "codec-.*", "--once", "--num.streams", "2"])
        .wait(Duration::from_secs(180));
    exited.assert_success();
    let summary = exited.summary();
    assert_eq!(summary.records, total, "{}", exited.context());
    assert_eq!(summary.slow, 0, "{}", exited.context());
    assert!(summary.passthrough >= 15, "{}", exited.context());
    for codec in Codec::ALL {
        let topic = format!("codec-{}", codec.name());
        assert_eq!(partition_count(&destination, &topic), 3);
        assert_same_records(
            &librdkafka_consume_all(&source, &topic),
            &librdkafka_consume_all(&destination, &topic),
        );
        assert_committed_to_the_end(&source, "codecs", &topic);
        assert_conformant_for(proxy, &[&topic]);
    }
}

const TOPIC_CONFIGS: &str = r#"
import sys
from confluent_kafka.admin import AdminClient, ConfigResource
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
resource = ConfigResource("topic", sys.argv[2])
for future in admin.describe_configs([resource]).values():
    for name, entry in sorted(future.result().items()):
        if not entry.is_default:
            print(f"{name}={entry.value}")
"#;

/// A topic created on the source while kmirror runs is found at the next
/// metadata refresh and mirrored; SIGTERM stops kmirror with exit 0.
#[test]
fn a_topic_created_while_running_is_mirrored() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    librdkafka_create_topic(&source, "early", 2, &[]);
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id=watcher\nmetadata.max.age.ms=1000\n",
            source
        ),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let mirror = scratch.spawn(&["--whitelist", "early|late.*"]);
    librdkafka_produce(&source, "early", &ProduceSpec::default().count(50));
    wait_for_records(&destination, "early", 50, Duration::from_secs(60), &mirror);

    librdkafka_create_topic(
        &source,
        "late-1",
        4,
        &[
            ("retention.ms", "123456"),
            ("cleanup.policy", "compact,delete"),
        ],
    );
    let spec = ProduceSpec::default()
        .count(400)
        .codec(Codec::Zstd)
        .headers(true);
    librdkafka_produce(&source, "late-1", &spec);
    wait_for_records(
        &destination,
        "late-1",
        400,
        Duration::from_secs(60),
        &mirror,
    );

    mirror.signal("-TERM");
    let exited = mirror.wait(Duration::from_secs(60));
    exited.assert_success();
    assert_eq!(partition_count(&destination, "late-1"), 4);
    // The topic's own settings were copied to the topic kmirror created.
    let configs = kmirror_test_support::run_python(TOPIC_CONFIGS, &[&destination, "late-1"]);
    assert!(
        configs.contains("retention.ms=123456\n")
            && configs.contains("cleanup.policy=compact,delete\n"),
        "{configs}"
    );
    assert_same_records(
        &librdkafka_consume_all(&source, "late-1"),
        &librdkafka_consume_all(&destination, "late-1"),
    );
    assert_committed_to_the_end(&source, "watcher", "late-1");
    assert_committed_to_the_end(&source, "watcher", "early");
    assert_conformant_for(proxy, &["early", "late-1"]);
}

/// kmirror killed with SIGKILL three times during a large copy, then run
/// again to the end: nothing lost, per-partition order kept; duplicates
/// (at-least-once) are counted and printed.
#[test]
fn sigkill_three_times_then_resume_loses_nothing() {
    // Clusters of its own: the 200 MB on each side go with them when they
    // are dropped (shared clusters never are, so their data would stay).
    let source_cluster = KafkaCluster::start(ClusterOptions::kraft().name("sigkill-source"));
    let source = source_cluster.bootstrap();
    let (destination_cluster, proxy) = own_destination("sigkill-destination");
    let destination = destination_cluster.bootstrap();
    librdkafka_create_topic(&source, "big", 8, &[]);
    let spec = ProduceSpec::default()
        .count(200_000)
        .value_size(1024)
        .codec(Codec::None)
        .keys(1_000)
        .linger_ms(50)
        .batch_size(32 * 1024);
    librdkafka_produce(&source, "big", &spec);
    // Small fetches, small requests and a small buffer make the copy slow
    // enough to interrupt (and exercise the memory bound).
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id=crashy\nmax.partition.fetch.bytes=32768\nfetch.max.bytes=65536\n\
             session.timeout.ms=10000\nheartbeat.interval.ms=1000\n",
            source
        ),
        &format!(
            "bootstrap.servers={}\nmax.request.size=65536\nbuffer.memory=1048576\n",
            proxy.addr()
        ),
    );
    let args = [
        "--whitelist",
        "big",
        "--once",
        "--num.streams",
        "1",
        "--offset.commit.interval.ms",
        "200",
    ];
    let mut killed_at = Vec::new();
    for round in 0..3u64 {
        let before = killed_at.last().copied().unwrap_or(0);
        let mirror = scratch.spawn(&args);
        // Mid-copy: once this run has copied something (a restart gets the
        // partition once the killed run's group session expired, 10 s).
        let deadline = Instant::now() + Duration::from_secs(60);
        while record_count(&destination, "big") <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100 * round));
        mirror.signal("-KILL");
        let exited = mirror.wait(Duration::from_secs(10));
        assert_eq!(
            exited.code,
            None,
            "killed by a signal: {}",
            exited.context()
        );
        killed_at.push(record_count(&destination, "big"));
    }
    let copied_before_resume = killed_at.last().copied().unwrap_or(0);
    assert!(
        copied_before_resume < 200_000,
        "the copy finished before the third kill ({killed_at:?}); make it larger"
    );
    let exited = scratch.spawn(&args).wait(Duration::from_secs(300));
    exited.assert_success();
    let duplicates = assert_complete_in_order(&source, &destination, "big");
    assert_committed_to_the_end(&source, "crashy", "big");
    eprintln!(
        "SIGKILL x3 at destination record counts {killed_at:?}: nothing lost, order kept, \
         {duplicates} duplicates of 200000 records"
    );
    assert_conformant_for(&proxy, &["big"]);
}

/// The destination broker restarted (killed, started again on its data)
/// mid-copy: kmirror rides through it, and nothing is lost or reordered.
#[test]
fn a_destination_restart_mid_copy_loses_nothing() {
    let source = shared_source().bootstrap();
    let (mut destination_cluster, proxy) = own_destination("restarting-destination");
    let destination = destination_cluster.bootstrap();
    librdkafka_create_topic(&source, "steady", 4, &[]);
    let spec = ProduceSpec::default()
        .count(60_000)
        .value_size(1024)
        .codec(Codec::Snappy)
        .keys(100)
        .linger_ms(50)
        .batch_size(32 * 1024);
    librdkafka_produce(&source, "steady", &spec);
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id=steady\nmax.partition.fetch.bytes=32768\nfetch.max.bytes=65536\n",
            source
        ),
        &format!(
            "bootstrap.servers={}\nmax.request.size=65536\nrequest.timeout.ms=5000\n",
            proxy.addr()
        ),
    );
    let mirror = scratch.spawn(&["--whitelist", "steady", "--once"]);
    // Apache Kafka takes kmirror's copy at tens of thousands of records a
    // second: watch the proxy (in process) rather than poll with librdkafka.
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.records_to("steady") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let copied_at_restart = proxy.records_to("steady");
    destination_cluster.restart(1);
    let exited = mirror.wait(Duration::from_secs(240));
    exited.assert_success();
    assert!(
        copied_at_restart < 60_000,
        "the copy was over before the restart; make it larger"
    );
    let summary = exited.summary();
    assert!(
        exited
            .stderr
            .contains("WARN stream{index=0}: produce request failed; retrying its batches"),
        "kmirror saw no trouble: {}",
        exited.context()
    );
    for line in exited.stderr.lines().filter(|l| l.contains("WARN")).take(5) {
        eprintln!("{line}");
    }
    let duplicates = assert_complete_in_order(&source, &destination, "steady");
    assert_committed_to_the_end(&source, "steady", "steady");
    eprintln!(
        "destination restart after {copied_at_restart} records sent: nothing lost, order kept, \
         {duplicates} duplicates of 60000 records, {} records acknowledged",
        summary.records
    );
    assert_conformant_for(&proxy, &["steady"]);
}

/// A wrong password is a clear one-paragraph error with exit 4.
#[test]
fn a_wrong_password_is_a_clear_error() {
    let source_cluster = KafkaCluster::start(
        ClusterOptions::kraft()
            .name("sasl-source")
            .sasl_user("mirror", "right-password"),
    );
    let source = source_cluster.bootstrap_for(Listener::SaslPlaintext);
    let (_, proxy) = shared_destination();
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id=g\nauto.offset.reset=earliest\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\nsasl.username=mirror\nsasl.password=wrong-password\n",
            source
        ),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let exited = scratch
        .spawn(&["--whitelist", "x"])
        .wait(Duration::from_secs(60));
    assert_eq!(exited.code, Some(4), "{}", exited.context());
    let errors: Vec<&str> = exited
        .stderr
        .lines()
        .filter(|l| l.starts_with("kmirror: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", exited.context());
    for needle in [
        "source cluster (consumer.properties)",
        "SCRAM-SHA-256",
        "sasl.username",
    ] {
        assert!(errors[0].contains(needle), "{needle}: {}", exited.context());
    }
    assert!(!exited.stderr.contains("panicked"), "{}", exited.context());
}

/// A librdkafka consumer that stays in `group` for `seconds`, with the
/// assignor `argv[5]`.
const ACTIVE_MEMBER: &str = r#"
import sys, time
from confluent_kafka import Consumer
bootstrap, group, topic, seconds, strategy = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 30000,
              "partition.assignment.strategy": strategy})
c.subscribe([topic])
deadline = time.time() + seconds
while time.time() < deadline:
    c.poll(0.2)
c.close()
"#;

/// A group whose members share no assignor with kmirror (here a
/// librdkafka consumer with `cooperative-sticky` only, kmirror with
/// `roundrobin`): the coordinator refuses kmirror's JoinGroup
/// (INCONSISTENT_GROUP_PROTOCOL), and kmirror exits 3 saying what to
/// change.
#[test]
fn a_group_whose_members_share_no_assignor_is_refused_clearly() {
    let source = shared_source().bootstrap();
    let (_, proxy) = shared_destination();
    librdkafka_create_topic(&source, "shared", 1, &[]);
    let python = kmirror_test_support::venv_python();
    let mut member = Command::new(python)
        .args([
            "-c",
            ACTIVE_MEMBER,
            &source,
            "busy-group",
            "shared",
            "60",
            "cooperative-sticky",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id=busy-group\npartition.assignment.strategy=roundrobin\n",
            source
        ),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    // The member needs a moment to join (the Python process starts, finds
    // the coordinator and joins).
    let deadline = Instant::now() + Duration::from_secs(45);
    let exited = loop {
        let exited = scratch
            .spawn(&["--whitelist", "shared", "--once"])
            .wait(Duration::from_secs(60));
        if exited.code != Some(0) || Instant::now() > deadline {
            break exited;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let _ = member.kill();
    let _ = member.wait();
    assert_eq!(exited.code, Some(3), "{}", exited.context());
    assert!(
        exited.stderr.contains("INCONSISTENT_GROUP_PROTOCOL")
            || exited.stderr.contains("InconsistentGroupProtocol"),
        "{}",
        exited.context()
    );
    assert!(
        exited
            .stderr
            .contains("set partition.assignment.strategy to one the other members list"),
        "{}",
        exited.context()
    );
}

const COMMIT_OFFSET: &str = r#"
import sys
from confluent_kafka import Consumer, TopicPartition
bootstrap, group, topic, offset = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
c.close()
print("committed")
"#;

/// A committed offset beyond the end of the log (the topic was recreated,
/// or the group belongs to another cluster) is reset per
/// `auto.offset.reset` with a warning, and the copy goes on from there.
#[test]
fn an_out_of_range_offset_is_reset_with_a_warning() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    librdkafka_create_topic(&source, "reset", 1, &[]);
    librdkafka_produce(&source, "reset", &ProduceSpec::default().count(30));
    kmirror_test_support::run_python(COMMIT_OFFSET, &[&source, "lost", "reset", "5000"]);
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id=lost\nauto.offset.reset=earliest\n",
            source
        ),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let mirror = scratch.spawn(&["--whitelist", "reset"]);
    wait_for_records(&destination, "reset", 30, Duration::from_secs(60), &mirror);
    mirror.signal("-INT");
    let exited = mirror.wait(Duration::from_secs(60));
    exited.assert_success();
    // Past the end, the committed offset is reset when the partition is
    // assigned; below the log start, when the fetch is refused.
    assert!(
        exited.stderr.contains("fetch position out of range")
            || exited.stderr.contains("committed offset is out of range"),
        "{}",
        exited.context()
    );
    assert_same_records(
        &librdkafka_consume_all(&source, "reset"),
        &librdkafka_consume_all(&destination, "reset"),
    );
    assert_committed_to_the_end(&source, "lost", "reset");
    assert_conformant_for(proxy, &["reset"]);
}

const ONE_BY_ONE: &str = r#"
import sys
from confluent_kafka import Producer
bootstrap, topic = sys.argv[1], sys.argv[2]
sizes = [int(s) for s in sys.argv[3:]]
p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "message.max.bytes": 2000000})
for i, size in enumerate(sizes):
    value = (f"value-{i}:".encode() + b"x" * size)[:max(size, 8)]
    p.produce(topic, key=f"key-{i}".encode(), value=value, partition=0)
    # One record per batch.
    p.flush(30)
print("produced", len(sizes))
"#;

/// A batch the destination refuses for good (a record over the destination
/// topic's `max.message.bytes`): with `--abort.on.send.failure` (the
/// default) kmirror exits 1 naming topic, partition and offsets, and the
/// committed offset stays below the refused batch; with `false` it skips
/// the batch, counts it, and copies the rest.
#[test]
fn a_refused_batch_aborts_or_is_skipped_as_configured() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    librdkafka_create_topic(&source, "oversize", 1, &[]);
    librdkafka_create_topic(
        &destination,
        "oversize",
        1,
        &[("max.message.bytes", "1000")],
    );
    let mut sizes = vec!["100"; 5];
    sizes.push("5000");
    sizes.extend(["100"; 5]);
    let mut args = vec![source.clone(), "oversize".to_owned()];
    args.extend(sizes.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kmirror_test_support::run_python(ONE_BY_ONE, &args);

    let scratch = Scratch::new(
        &format!("bootstrap.servers={}\ngroup.id=strict\n", source),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let exited = scratch
        .spawn(&["--whitelist", "oversize", "--once"])
        .wait(Duration::from_secs(60));
    assert_eq!(exited.code, Some(1), "{}", exited.context());
    let errors: Vec<&str> = exited
        .stderr
        .lines()
        .filter(|l| l.starts_with("kmirror: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", exited.context());
    for needle in [
        "source offsets 5..6 of oversize-0",
        "MessageTooLarge",
        "--abort.on.send.failure false",
    ] {
        assert!(
            errors[0].to_uppercase().contains(&needle.to_uppercase()),
            "{needle}: {}",
            exited.context()
        );
    }
    assert_eq!(
        librdkafka_committed_offsets(&source, "strict", "oversize"),
        BTreeMap::from([(0, Some(5))]),
        "committed up to the refused batch"
    );

    let scratch = Scratch::new(
        &format!("bootstrap.servers={}\ngroup.id=lenient\n", source),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let exited = scratch
        .spawn(&[
            "--whitelist",
            "oversize",
            "--once",
            "--abort.on.send.failure",
            "false",
        ])
        .wait(Duration::from_secs(60));
    assert_eq!(exited.code, Some(0), "{}", exited.context());
    assert!(
        exited.stdout.contains("1 refused (1 records skipped)"),
        "{}",
        exited.context()
    );
    assert_committed_to_the_end(&source, "lenient", "oversize");
    assert_conformant_for(proxy, &["oversize"]);
}

/// Source with 8 partitions, destination pre-created with `n`: every keyed
/// record lands where librdkafka's `murmur2_random` partitioner (Java's
/// default) puts its key, null keys stay on `source partition % n`, per-key
/// order holds, and nothing is lost or duplicated.
fn remap_to(n: i32, flags: &[&str]) {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = format!("remap-{n}");
    librdkafka_create_topic(&source, &topic, 8, &[]);
    librdkafka_create_topic(&destination, &topic, n, &[]);
    let spec = ProduceSpec::default()
        .count(3_000)
        .keys(200)
        .null_key_every(13)
        .headers(true)
        .codec(Codec::Lz4);
    librdkafka_produce(&source, &topic, &spec);
    // Where librdkafka's murmur2_random puts each key with n partitions.
    let reference = format!("reference-{n}");
    librdkafka_create_topic(&source, &reference, n, &[]);
    librdkafka_produce(
        &source,
        &reference,
        &ProduceSpec::default().count(200).keys(200),
    );
    let mut expected_partition = BTreeMap::new();
    for (partition, records) in librdkafka_consume_all(&source, &reference) {
        for r in records {
            expected_partition.insert(r.key.unwrap(), partition);
        }
    }
    assert_eq!(expected_partition.len(), 200);

    let scratch = Scratch::new(
        &format!("bootstrap.servers={source}\ngroup.id={topic}\n"),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let mut args = vec!["--whitelist", &topic, "--once"];
    args.extend_from_slice(flags);
    let exited = scratch.spawn(&args).wait(Duration::from_secs(120));
    exited.assert_success();
    let summary = exited.summary();
    assert_eq!(summary.records, 3_000, "{}", exited.context());
    assert_eq!(summary.passthrough, 0, "{}", exited.context());
    assert!(
        exited.stderr.contains("placed by key (Java's partitioner)"),
        "{}",
        exited.context()
    );

    let source_records = librdkafka_consume_all(&source, &topic);
    let destination_records = librdkafka_consume_all(&destination, &topic);
    let source_partition_of: BTreeMap<Vec<u8>, i32> = source_records
        .iter()
        .flat_map(|(p, rs)| rs.iter().map(move |r| (r.value.clone().unwrap(), *p)))
        .collect();
    let mut seen = 0;
    let mut by_key: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    for (partition, records) in &destination_records {
        for r in records {
            seen += 1;
            let value = r.value.clone().unwrap();
            match &r.key {
                Some(key) => {
                    assert_eq!(
                        Some(partition),
                        expected_partition.get(key),
                        "key {:?}",
                        String::from_utf8_lossy(key)
                    );
                    by_key.entry(key.clone()).or_default().push(value);
                }
                None => {
                    let from = source_partition_of[&value];
                    assert_eq!(
                        *partition,
                        from % n,
                        "null key from source partition {from}"
                    );
                }
            }
        }
    }
    assert_eq!(seen, 3_000, "every record once");
    // Per-key order: as in the source partition the key lived in.
    for (key, values) in by_key {
        let source_order: Vec<Vec<u8>> = source_records
            .values()
            .flatten()
            .filter(|r| r.key.as_deref() == Some(&key[..]))
            .map(|r| r.value.clone().unwrap())
            .collect();
        assert_eq!(
            values,
            source_order,
            "order of key {:?}",
            String::from_utf8_lossy(&key)
        );
    }
    assert_committed_to_the_end(&source, &topic, &topic);
    assert_conformant_for(proxy, &[&topic]);
}

#[test]
fn fewer_destination_partitions_place_records_by_key() {
    remap_to(3, &[]);
}

#[test]
fn more_destination_partitions_place_records_by_key() {
    remap_to(12, &[]);
}

/// `--partition-by-key` places records by key even with equal partition
/// counts (8 and 8).
#[test]
fn partition_by_key_places_records_by_key_with_equal_counts() {
    remap_to(8, &["--partition-by-key", "remap-.*"]);
}

/// A source batch larger than the destination topic's `max.message.bytes`
/// is split on record boundaries; the records arrive identical.
#[test]
fn a_batch_over_the_destination_limit_is_split() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    librdkafka_create_topic(&source, "wide", 2, &[]);
    librdkafka_create_topic(&destination, "wide", 2, &[("max.message.bytes", "4000")]);
    let spec = ProduceSpec::default()
        .count(400)
        .value_size(300)
        .headers(true)
        .partitions(2)
        .linger_ms(200);
    librdkafka_produce(&source, "wide", &spec);
    let scratch = Scratch::new(
        &format!("bootstrap.servers={}\ngroup.id=wide\n", source),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let exited = scratch
        .spawn(&["--whitelist", "wide", "--once"])
        .wait(Duration::from_secs(60));
    exited.assert_success();
    let summary = exited.summary();
    assert!(summary.slow > 0, "{}", exited.context());
    assert_same_records(
        &librdkafka_consume_all(&source, "wide"),
        &librdkafka_consume_all(&destination, "wide"),
    );
    assert_committed_to_the_end(&source, "wide", "wide");
    assert_conformant_for(proxy, &["wide"]);
}

/// A runtime for a test's own requests and kmirror's client for the
/// cluster at `bootstrap`, connected on it.
fn connect_blocking(bootstrap: &str) -> (tokio::runtime::Runtime, kmirror_pool::Cluster) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = kmirror_pool::ClientConfig {
        bootstrap_servers: vec![bootstrap.to_owned()],
        ..Default::default()
    };
    let cluster = runtime
        .block_on(kmirror_pool::Cluster::connect(config))
        .unwrap();
    (runtime, cluster)
}

/// The codecs of every batch of `topic` at `bootstrap`, read with
/// kmirror's own Fetch (librdkafka does not say what a batch's codec was).
fn batch_codecs(bootstrap: &str, topic: &str) -> std::collections::BTreeSet<&'static str> {
    let mut codecs = std::collections::BTreeSet::new();
    common::for_each_batch(bootstrap, topic, |view| {
        codecs.insert(view.header().compression().unwrap().name());
    });
    codecs
}

/// `compression.type` set in the producer config: lz4 batches are
/// re-encoded to zstd (and to none); the records are identical.
#[test]
fn compression_type_reencodes_batches_in_another_codec() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    librdkafka_create_topic(&source, "lz4-in", 3, &[]);
    let spec = ProduceSpec::default()
        .count(1_500)
        .codec(Codec::Lz4)
        .headers(true)
        .null_key_every(5)
        .null_value_every(9)
        .partitions(3);
    librdkafka_produce(&source, "lz4-in", &spec);
    assert_eq!(batch_codecs(&source, "lz4-in"), ["lz4"].into());
    // Each run appends one more copy to the same destination topic.
    for (codec, group) in [("zstd", "to-zstd"), ("none", "to-none")] {
        let scratch = Scratch::new(
            &format!("bootstrap.servers={}\ngroup.id={group}\n", source),
            &format!(
                "bootstrap.servers={}\ncompression.type={codec}\n",
                proxy.addr()
            ),
        );
        let exited = scratch
            .spawn(&["--whitelist", "lz4-in", "--once"])
            .wait(Duration::from_secs(60));
        exited.assert_success();
        let summary = exited.summary();
        assert_eq!(summary.passthrough, 0, "{}", exited.context());
        assert!(summary.slow > 0, "{}", exited.context());
        let codecs = batch_codecs(&destination, "lz4-in");
        assert!(codecs.contains(codec), "{codec}: {codecs:?}");
        assert!(!codecs.contains("lz4"), "{codec}: {codecs:?}");
        let source_records = librdkafka_consume_all(&source, "lz4-in");
        let mut destination_records = librdkafka_consume_all(&destination, "lz4-in");
        // Compare the copy this run appended.
        for (partition, records) in destination_records.iter_mut() {
            let n = source_records[partition].len();
            let extra = records.len() - n;
            records.drain(..extra);
        }
        assert_same_records(&source_records, &destination_records);
    }
    assert_conformant_for(proxy, &["lz4-in"]);
}

const TRANSACTIONS: &str = r#"
import sys
from confluent_kafka import Producer
bootstrap, topic = sys.argv[1], sys.argv[2]
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "kmirror-test-tx", "linger.ms": 5})
p.init_transactions(30)
committed = aborted = 0
for tx in range(10):
    p.begin_transaction()
    for i in range(50):
        n = tx * 50 + i
        p.produce(topic, key=f"key-{n % 7}".encode(), value=f"value-{n}:tx{tx}".encode(), partition=n % 2)
    if tx % 3 == 1:
        p.abort_transaction(30)
        aborted += 50
    else:
        p.commit_transaction(30)
        committed += 50
print(committed, aborted)
"#;

/// A transactional source with committed and aborted transactions (Apache
/// Kafka keeps the aborted records in the log and serves them; a
/// READ_COMMITTED fetch lists them as aborted transactions): only committed
/// records arrive, and no control batch is ever produced.
#[test]
fn only_committed_transactions_are_mirrored_and_markers_never() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    librdkafka_create_topic(&source, "tx", 2, &[]);
    let out = kmirror_test_support::run_python(TRANSACTIONS, &[&source, "tx"]);
    assert_eq!(out.trim(), "350 150", "{out}");
    let scratch = Scratch::new(
        &format!("bootstrap.servers={}\ngroup.id=tx\n", source),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let exited = scratch
        .spawn(&["--whitelist", "tx", "--once"])
        .wait(Duration::from_secs(120));
    exited.assert_success();
    let destination_records = librdkafka_consume_all(&destination, "tx");
    let values: Vec<String> = destination_records
        .values()
        .flatten()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(values.len(), 350, "only the committed records");
    for value in &values {
        let tx: u32 = value.rsplit("tx").next().unwrap().parse().unwrap();
        assert_ne!(
            tx % 3,
            1,
            "a record of an aborted transaction arrived: {value}"
        );
    }
    assert_same_records(&librdkafka_consume_all(&source, "tx"), &destination_records);
    let report = proxy.report();
    assert_eq!(report.control_batches, 0, "{}", report.summary());
    assert_conformant_for(proxy, &["tx"]);
    assert_committed_to_the_end(&source, "tx", "tx");
    eprintln!("transactions: {}", exited.stdout.trim());
}

/// Sends `batches` to partition 0 of `topic`, one Produce request each,
/// with kmirror's own encoder.
fn produce_raw(bootstrap: &str, topic: &str, batches: Vec<kmirror_protocol::record::ProduceBatch>) {
    use kmirror_protocol::kafka_protocol::protocol::StrBytes;
    use kmirror_protocol::messages::produce::{ProducePartition, ProduceRequest, ProduceTopic};
    let (runtime, cluster) = connect_blocking(bootstrap);
    runtime.block_on(async {
        for batch in batches {
            let request = ProduceRequest {
                transactional_id: None,
                acks: -1,
                timeout_ms: 10_000,
                topics: vec![ProduceTopic {
                    name: StrBytes::from_string(topic.to_owned()),
                    partitions: vec![ProducePartition { index: 0, batch }],
                }],
            };
            let response = cluster.send_to_leader(topic, 0, &request).await.unwrap();
            for (_, partitions) in response.topics {
                for p in partitions {
                    assert_eq!(
                        p.error_code, 0,
                        "raw produce to {topic}: {:?}",
                        p.error_message
                    );
                }
            }
        }
    });
}

/// Rewrites one fetched batch: the same number of bytes, or `None` to
/// leave it as it is.
type BatchPatch = fn(&kmirror_protocol::record::RecordBatchView) -> Option<Vec<u8>>;

/// A TCP proxy in front of the source that rewrites batches in every Fetch
/// response in place with a [`BatchPatch`]: to make a compacted log
/// ([`compacted_batch`]) or a corrupted one ([`corrupted_batch`]) out of
/// what the broker serves.
struct FetchRewritingProxy {
    addr: String,
    rewritten: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FetchRewritingProxy {
    /// Binds the proxy's port (for the broker to advertise) before the
    /// broker exists.
    fn bind() -> std::net::TcpListener {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap()
    }

    fn serve(listener: std::net::TcpListener, upstream: String, patch: BatchPatch) -> Self {
        let addr = listener.local_addr().unwrap().to_string();
        let rewritten = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = rewritten.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let versions = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let v2 = versions.clone();
                std::thread::spawn(move || forward_requests(c2, s2, &v2));
                let count = count.clone();
                std::thread::spawn(move || {
                    forward_responses(server, client, &versions, &count, patch)
                });
            }
        });
        Self { addr, rewritten }
    }
}

fn read_frame(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut frame).ok()?;
    Some(frame)
}

fn write_frame(stream: &mut std::net::TcpStream, frame: &[u8]) -> Option<()> {
    use std::io::Write;
    stream.write_all(&(frame.len() as i32).to_be_bytes()).ok()?;
    stream.write_all(frame).ok()
}

/// Client to broker: remembers each request's API and version by
/// correlation id.
fn forward_requests(
    mut client: std::net::TcpStream,
    mut server: std::net::TcpStream,
    versions: &std::sync::Mutex<BTreeMap<i32, (i16, i16)>>,
) {
    while let Some(frame) = read_frame(&mut client) {
        let api = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        versions.lock().unwrap().insert(correlation, (api, version));
        if write_frame(&mut server, &frame).is_none() {
            break;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Both);
}

fn forward_responses(
    mut server: std::net::TcpStream,
    mut client: std::net::TcpStream,
    versions: &std::sync::Mutex<BTreeMap<i32, (i16, i16)>>,
    rewritten: &std::sync::atomic::AtomicUsize,
    patch: BatchPatch,
) {
    while let Some(mut frame) = read_frame(&mut server) {
        let correlation = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let request = versions.lock().unwrap().remove(&correlation);
        if let Some((1, version)) = request {
            rewritten.fetch_add(
                patch_in_place(&mut frame, version, patch),
                Ordering::Relaxed,
            );
        }
        if write_frame(&mut client, &frame).is_none() {
            break;
        }
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
}

/// Rewrites the batches of one Fetch response frame that `patch` changes,
/// in place; returns how many.
fn patch_in_place(frame: &mut [u8], version: i16, patch: BatchPatch) -> usize {
    use kmirror_protocol::messages::fetch::decode_fetch_response;
    use kmirror_protocol::record::{LogEntry, RecordBatches};
    // Response header: correlation id, plus tagged fields from v12.
    let body_start = if version >= 12 { 5 } else { 4 };
    let frame_bytes = bytes::Bytes::copy_from_slice(frame);
    let base = frame_bytes.as_ptr() as usize;
    let response = decode_fetch_response(frame_bytes.slice(body_start..), version).unwrap();
    let mut patches = Vec::new();
    for topic in &response.topics {
        for partition in &topic.partitions {
            let Some(records) = &partition.records else {
                continue;
            };
            for entry in RecordBatches::new(records.clone()) {
                let Ok(LogEntry::Batch(view)) = entry else {
                    continue;
                };
                if let Some(bytes) = patch(&view) {
                    assert_eq!(
                        bytes.len(),
                        view.as_bytes().len(),
                        "a patch keeps the length"
                    );
                    let at = view.as_bytes().as_ptr() as usize - base;
                    patches.push((at, bytes));
                }
            }
        }
    }
    for (at, bytes) in &patches {
        frame[*at..*at + bytes.len()].copy_from_slice(bytes);
    }
    patches.len()
}

/// The first record's key of an uncompressed batch.
fn first_key(view: &kmirror_protocol::record::RecordBatchView) -> Option<bytes::Bytes> {
    view.records(1 << 20)
        .ok()
        .and_then(|mut r| r.next())
        .and_then(Result::ok)
        .and_then(|r| r.key)
}

/// The 4-record batch whose first key is `gap-0` as compaction would leave
/// it: the same offsets (base offset, lastOffsetDelta) and the same length,
/// but only the records at offset deltas 0 and 3 (values resized to keep
/// the length), so offsets base+1 and base+2 are a hole inside the batch.
/// Apache Kafka refuses such a batch from a client (`LogValidator`:
/// inconsistent batch offset range, INVALID_RECORD), and only its log
/// cleaner writes one, on its own schedule, so this is how a compacted log
/// reaches kmirror here.
fn compacted_batch(view: &kmirror_protocol::record::RecordBatchView) -> Option<Vec<u8>> {
    (view.header().record_count == 4 && first_key(view).as_deref() == Some(b"gap-0".as_slice()))
        .then(|| gapped_batch(view.as_bytes()))
}

/// The batch whose first key is `corrupt-0` with one bit of its last
/// record's value flipped and its stored CRC left as it was: what a disk
/// or a network fault would leave.
fn corrupted_batch(view: &kmirror_protocol::record::RecordBatchView) -> Option<Vec<u8>> {
    (first_key(view).as_deref() == Some(b"corrupt-0".as_slice())).then(|| {
        let mut bytes = view.as_bytes().to_vec();
        // The last record has no headers: its value ends one byte (the
        // header count) before the batch does.
        let at = bytes.len() - 2;
        bytes[at] ^= 0x04;
        bytes
    })
}

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// One record with `delta` as its offset and timestamp delta.
fn encode_record(delta: i64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    varint(&mut body, delta);
    varint(&mut body, delta);
    varint(&mut body, key.len() as i64);
    body.extend_from_slice(key);
    varint(&mut body, value.len() as i64);
    body.extend_from_slice(value);
    varint(&mut body, 0);
    let mut out = Vec::new();
    varint(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    out
}

/// The value the proxy gives record `delta` of a rewritten batch.
fn gapped_value(delta: i64, len: usize) -> Vec<u8> {
    let mut v = format!("kept-{delta}:").into_bytes();
    v.resize(len, b'c');
    v
}

/// `original` (an uncompressed 4-record batch) with only the records at
/// deltas 0 and 3, the same length, and a valid CRC.
fn gapped_batch(original: &[u8]) -> Vec<u8> {
    use kmirror_protocol::record::BATCH_HEADER_LEN;
    let payload_len = original.len() - BATCH_HEADER_LEN;
    let mut payload = None;
    'search: for a in 20..payload_len {
        let first = encode_record(0, b"gap-0", &gapped_value(0, a));
        for b in [a, a + 1, a.saturating_sub(1)] {
            let second = encode_record(3, b"gap-3", &gapped_value(3, b));
            if first.len() + second.len() == payload_len {
                payload = Some([first, second].concat());
                break 'search;
            }
        }
    }
    let payload = payload.expect("no record sizes fill the batch");
    let mut out = original[..BATCH_HEADER_LEN].to_vec();
    out[57..61].copy_from_slice(&2i32.to_be_bytes()); // record count
    out.extend_from_slice(&payload);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// A source broker of its own behind a [`FetchRewritingProxy`] with
/// `patch`: its `PROXIED` listener advertises the proxy, so every
/// connection a client bootstrapping at the proxy makes goes through it;
/// `cluster.bootstrap()` stays direct. The source's one-partition `topic`
/// holds 20 librdkafka records, one uncompressed 4-record batch with keys
/// `{marker}-0` to `{marker}-3` and `value_len`-byte values (offsets 20 to
/// 23), and 20 more records.
fn source_with_a_marked_batch(
    topic: &str,
    marker: &str,
    value_len: usize,
    patch: BatchPatch,
) -> (KafkaCluster, FetchRewritingProxy) {
    use kmirror_protocol::record::{
        BatchBuilder, ProducerStamp, RecordBatchView, rewrite_for_produce,
    };
    let listener = FetchRewritingProxy::bind();
    let port = listener.local_addr().unwrap().port();
    let cluster = KafkaCluster::start(
        ClusterOptions::kraft()
            .name(&format!("{topic}-source"))
            .behind_proxy(&[port]),
    );
    let rewriting =
        FetchRewritingProxy::serve(listener, cluster.broker_addr(1, Listener::Proxied), patch);
    let source = cluster.bootstrap();
    librdkafka_create_topic(&source, topic, 1, &[]);
    let spec = ProduceSpec::default().count(20).partitions(1);
    librdkafka_produce(&source, topic, &spec);
    let mut builder = BatchBuilder::new(kmirror_protocol::Compression::None);
    let value = vec![b'o'; value_len];
    for i in 0..4 {
        builder
            .push(
                1_700_000_000_000 + i,
                Some(format!("{marker}-{i}").as_bytes()),
                Some(&value),
                std::iter::empty(),
            )
            .unwrap();
    }
    let built = builder.build(ProducerStamp::NONE).unwrap();
    let view = RecordBatchView::new(built.to_bytes()).unwrap();
    produce_raw(
        &source,
        topic,
        vec![rewrite_for_produce(&view, ProducerStamp::NONE)],
    );
    librdkafka_produce(&source, topic, &spec);
    (cluster, rewriting)
}

/// A compacted source log (offsets removed inside a batch, as compaction
/// leaves them) between ordinary librdkafka batches: the gapped batch takes
/// the slow path, arrives with dense offsets and exactly its remaining
/// records, and the commit reaches the end of the log, the hole included.
#[test]
fn a_compacted_source_with_offset_gaps_is_rebuilt_densely() {
    let (source_cluster, compacting) =
        source_with_a_marked_batch("compacted", "gap", 120, compacted_batch);
    let source = source_cluster.bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();

    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id=compacted\n",
            compacting.addr
        ),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let exited = scratch
        .spawn(&["--whitelist", "compacted", "--once"])
        .wait(Duration::from_secs(60));
    exited.assert_success();
    assert!(
        compacting.rewritten.load(Ordering::Relaxed) > 0,
        "the proxy compacted nothing: {}",
        exited.context()
    );
    let summary = exited.summary();
    assert_eq!(summary.records, 42, "{}", exited.context());
    assert_eq!(summary.slow, 1, "{}", exited.context());

    // Read through the proxy, librdkafka sees the compacted log too: the
    // marked batch holds only its records at deltas 0 and 3.
    let source_records = librdkafka_consume_all(&compacting.addr, "compacted");
    let offsets: Vec<i64> = source_records[&0].iter().map(|r| r.offset).collect();
    assert_eq!(offsets.len(), 42);
    assert!(
        offsets.windows(2).any(|w| w[1] - w[0] == 3),
        "a hole of two offsets in the source: {offsets:?}"
    );
    assert!(
        source_records[&0].iter().any(|r| r
            .value
            .as_deref()
            .is_some_and(|v| v.starts_with(b"kept-3:"))),
        "the rewritten batch was read"
    );
    let destination_records = librdkafka_consume_all(&destination, "compacted");
    assert_same_records(&source_records, &destination_records);
    let dense: Vec<i64> = destination_records[&0].iter().map(|r| r.offset).collect();
    assert_eq!(
        dense,
        (0..42).collect::<Vec<i64>>(),
        "dense offsets at the destination"
    );
    assert_committed_to_the_end(&source, "compacted", "compacted");
    assert_conformant_for(proxy, &["compacted"]);
}

/// A source batch whose bytes no longer match its CRC never reaches the
/// destination looking sound. With `check.crcs` (the default) kmirror
/// stops before sending it, names the offsets, and commits up to it. With
/// `check.crcs=false` it does not read the payload: the new CRC is carried
/// over from the stored one, so the batch arrives still detectably corrupt
/// (Apache Kafka refuses it with CORRUPT_MESSAGE; the checker flags it).
#[test]
fn a_corrupt_source_batch_is_stopped_or_stays_detectably_corrupt() {
    let (source_cluster, corrupting) =
        source_with_a_marked_batch("corrupt", "corrupt", 100, corrupted_batch);
    let source = source_cluster.bootstrap();
    // A destination of its own: the second run sends a corrupt batch on
    // purpose, a violation that would fail the tests sharing a proxy.
    let (destination_cluster, proxy) = own_destination("corrupt-destination");
    let destination = destination_cluster.bootstrap();

    // check.crcs=true (the default): stopped before the destination.
    let scratch = Scratch::new(
        &format!("bootstrap.servers={}\ngroup.id=checked\n", corrupting.addr),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let exited = scratch
        .spawn(&["--whitelist", "corrupt", "--once"])
        .wait(Duration::from_secs(60));
    assert_ne!(exited.code, Some(0), "{}", exited.context());
    assert!(
        corrupting.rewritten.load(Ordering::Relaxed) > 0,
        "the proxy corrupted nothing: {}",
        exited.context()
    );
    let errors: Vec<&str> = exited
        .stderr
        .lines()
        .filter(|l| l.starts_with("kmirror: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", exited.context());
    for needle in ["corrupt-0", "offset 20", "CRC"] {
        assert!(errors[0].contains(needle), "{needle}: {}", exited.context());
    }
    assert_eq!(
        librdkafka_committed_offsets(&source, "checked", "corrupt"),
        BTreeMap::from([(0, Some(20))]),
        "committed up to the corrupt batch"
    );
    // Nothing behind the corrupt batch was sent either (no hole).
    assert_eq!(record_count(&destination, "corrupt"), 20);
    proxy.assert_conformant();
    let before = proxy.report();

    // check.crcs=false: the payload is not read, and the corruption is
    // carried to the destination, never hidden under a fresh CRC.
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id=unchecked\ncheck.crcs=false\n",
            corrupting.addr
        ),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let exited = scratch
        .spawn(&["--whitelist", "corrupt", "--once"])
        .wait(Duration::from_secs(60));
    let report = proxy.report();
    let crc_violations = |r: &kmirror_test_support::ConformanceReport| {
        r.violations
            .iter()
            .filter(|v| v.contains("CrcMismatch"))
            .count()
    };
    assert_eq!(
        crc_violations(&report) - crc_violations(&before),
        1,
        "the corrupt batch reached the destination once, with its CRC still wrong: {}",
        report.summary()
    );
    // Apache Kafka checks the CRC of every batch a client produces
    // (`UnifiedLog.analyzeAndValidateRecords`, `DefaultRecordBatch.ensureValid`):
    // CORRUPT_MESSAGE, which no resend can cure, stops kmirror at once with
    // the offsets named.
    assert_eq!(exited.code, Some(1), "{}", exited.context());
    assert!(
        exited
            .stderr
            .contains("refused source offsets 20..24 of corrupt-0")
            && exited.stderr.contains("CORRUPT_MESSAGE"),
        "{}",
        exited.context()
    );
    assert_eq!(
        librdkafka_committed_offsets(&source, "unchecked", "corrupt"),
        BTreeMap::from([(0, Some(20))]),
    );
    // Its own group started from the beginning: the first 20 records once
    // more, and again nothing behind the corrupt batch.
    assert_eq!(record_count(&destination, "corrupt"), 40);
}

/// A second kmirror on the same group shares it: it takes a partition
/// from the first (which commits before it lets go), has nothing left to
/// copy (`--once`) and exits; the first takes the partition back and goes
/// on. Every record arrives exactly once.
#[test]
fn a_second_kmirror_on_the_same_group_shares_it() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    librdkafka_create_topic(&source, "single", 2, &[]);
    librdkafka_produce(&source, "single", &ProduceSpec::default().count(100));
    let scratch = Scratch::new(
        &format!("bootstrap.servers={}\ngroup.id=two-of-us\n", source),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let first = scratch.spawn(&["--whitelist", "single"]);
    wait_for_records(&destination, "single", 100, Duration::from_secs(60), &first);
    let second = scratch
        .spawn(&["--whitelist", "single", "--once"])
        .wait(Duration::from_secs(90));
    second.assert_success();
    assert!(
        second.stderr.contains("joined the consumer group"),
        "{}",
        second.context()
    );
    assert_eq!(second.summary().records, 0, "{}", second.context());
    librdkafka_produce(&source, "single", &ProduceSpec::default().count(100));
    wait_for_records(&destination, "single", 200, Duration::from_secs(90), &first);
    first.signal("-INT");
    let exited = first.wait(Duration::from_secs(60));
    exited.assert_success();
    assert!(
        exited.stderr.contains("gave partitions up"),
        "the first handed a partition over: {}",
        exited.context()
    );
    assert_eq!(record_count(&destination, "single"), 200);
    assert_committed_to_the_end(&source, "two-of-us", "single");
    assert_conformant_for(proxy, &["single"]);
}

/// A LogAppendTime source topic (its records carry the broker's append
/// time): the records arrive with that time on every record, as CreateTime
/// records. Passed through, a CreateTime destination would show the
/// producer's original times instead.
#[test]
fn log_append_time_records_keep_the_source_append_time() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    librdkafka_create_topic(
        &source,
        "appended",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let spec = ProduceSpec::default()
        .count(50)
        .partitions(1)
        .codec(Codec::Lz4)
        .timestamps(1_600_000_000_000);
    librdkafka_produce(&source, "appended", &spec);
    let source_records = librdkafka_consume_all(&source, "appended");
    assert!(
        source_records[&0]
            .iter()
            .all(|r| r.timestamp_type == 2 && r.timestamp > 1_600_000_100_000),
        "the source serves LogAppendTime records: {:?}",
        source_records[&0].first()
    );
    // The destination topic is CreateTime (the setting is not copied over
    // an existing topic).
    librdkafka_create_topic(&destination, "appended", 1, &[]);
    let scratch = Scratch::new(
        &format!("bootstrap.servers={}\ngroup.id=appended\n", source),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    );
    let exited = scratch
        .spawn(&["--whitelist", "appended", "--once"])
        .wait(Duration::from_secs(60));
    exited.assert_success();
    assert!(exited.summary().slow >= 1, "{}", exited.context());
    let destination_records = librdkafka_consume_all(&destination, "appended");
    assert_eq!(destination_records[&0].len(), 50);
    for (source, destination) in source_records[&0].iter().zip(&destination_records[&0]) {
        assert_eq!(
            destination.timestamp_type, 1,
            "CreateTime at the destination"
        );
        assert_eq!(
            destination.timestamp, source.timestamp,
            "the source's append time"
        );
        assert_eq!(
            (&destination.key, &destination.value),
            (&source.key, &source.value)
        );
    }
    assert_conformant_for(proxy, &["appended"]);
}
