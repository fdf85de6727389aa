//! The version matrix, reduced for CI: the built `kmirror` binary between
//! real Apache Kafka 2.1.1 and 3.9.2 (ZooKeeper mode) and 4.4.0 (KRaft), in
//! both directions between the oldest and the newest and from 3.9 to 4.4.
//! Each case is one source topic (inputs produced by librdkafka), one
//! `kmirror --once` run with a group of its own, then both sides read back
//! with librdkafka and compared record by record, the destination's offsets
//! dense from 0 and the group's committed offsets on the source at the
//! source's end offsets. The clusters start once and are shared by every
//! test of this file. `cargo xtask compat` runs the full matrix and writes
//! docs/compatibility.md.
//!
//! Needs Apache Kafka and the Python clients (`cargo xtask brokers`).

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use kmirror_test_support::{
    ClusterOptions, Codec, ConsumedRecord, KafkaCluster, KafkaVersion, ProduceSpec,
    assert_same_records, librdkafka_committed_offsets, librdkafka_consume_all,
    librdkafka_create_topic, librdkafka_end_offsets, librdkafka_produce, run_python,
};

mod common;

use common::Scratch;

/// The cluster of `version` shared by every test here; its cleaner looks
/// for work every second (the compacted cases wait for it).
fn cluster(version: KafkaVersion) -> &'static KafkaCluster {
    KafkaCluster::shared(&format!("compat-{version}"), || {
        ClusterOptions::new(version).config("log.cleaner.backoff.ms", "1000")
    })
}

/// What one case puts into its source topic.
#[derive(Debug, Clone, Copy)]
enum Case {
    /// 300 records over 3 partitions with this codec: keys (some null),
    /// values (some null), headers, explicit timestamps.
    Codec(Codec),
    /// Message format v1 (`message.format.version=0.10.2`) or v0
    /// (`0.9.0`) written by the broker from librdkafka's batches; 2.1 only.
    Legacy { magic: u8, codec: Codec },
    /// `cleanup.policy=compact` with overwrites, mirrored after the cleaner
    /// left offset gaps.
    Compacted,
    /// Committed and aborted transactions, read with `read_committed`.
    Transactional,
}

impl Case {
    fn name(self) -> String {
        match self {
            Case::Codec(codec) => codec.name().to_owned(),
            Case::Legacy { magic, codec } => format!("v{magic}-{}", codec.name()),
            Case::Compacted => "compact".to_owned(),
            Case::Transactional => "tx".to_owned(),
        }
    }
}

fn timestamp_base() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    i64::try_from(now).unwrap() - 3_600_000
}

const TRANSACTIONS: &str = r#"
import sys
from confluent_kafka import KafkaException, Producer
bootstrap, topic = sys.argv[1], sys.argv[2]
def producer():
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "compat-" + topic, "linger.ms": 5})
    p.init_transactions(60)
    return p
p = producer()
committed = aborted = 0
for tx in range(10):
    # A failed transaction (librdkafka against 3.9 once answered an abort
    # with a fatal INVALID_TXN_STATE) is redone by a new producer of the
    # same transactional.id, whose init_transactions aborts what was left.
    for attempt in range(3):
        try:
            p.begin_transaction()
            for i in range(50):
                n = tx * 50 + i
                p.produce(topic, key=f"key-{n % 7}".encode(), value=f"value-{n}:tx{tx}".encode(), partition=n % 2)
            p.flush(60)
            if tx % 3 == 1:
                p.abort_transaction(60)
                aborted += 50
            else:
                p.commit_transaction(60)
                committed += 50
            break
        except KafkaException as e:
            if attempt == 2:
                raise
            print(f"redoing transaction {tx}: {e}", file=sys.stderr)
            p = producer()
print(committed, aborted)
"#;

/// AlterConfigs replaces a topic's whole configuration: back to the
/// defaults but `cleanup.policy=compact`, so the cleaner stops rolling and
/// cleaning (and the destination topic gets no fast-cleaning settings).
const SLOW_CLEANING: &str = r#"
import sys
from confluent_kafka.admin import AdminClient, ConfigResource
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
resource = ConfigResource("topic", sys.argv[2], set_config={"cleanup.policy": "compact"})
for future in admin.alter_configs([resource]).values():
    future.result(timeout=30)
print("altered")
"#;

/// Offsets per partition of a reading.
fn offsets(reading: &BTreeMap<i32, Vec<ConsumedRecord>>) -> BTreeMap<i32, Vec<i64>> {
    reading
        .iter()
        .map(|(p, records)| (*p, records.iter().map(|r| r.offset).collect()))
        .collect()
}

fn gaps(reading: &BTreeMap<i32, Vec<ConsumedRecord>>) -> usize {
    offsets(reading)
        .values()
        .map(|o| {
            // A compacted log keeps its start offset 0: a first record
            // above 0 is a gap too.
            std::iter::once(-1)
                .chain(o.iter().copied())
                .collect::<Vec<_>>()
                .windows(2)
                .filter(|w| w[1] != w[0] + 1)
                .count()
        })
        .sum()
}

/// Creates and fills `topic` on `source` for `case`.
fn fill(source: &KafkaCluster, topic: &str, case: Case) {
    let bootstrap = source.bootstrap();
    match case {
        Case::Codec(codec) => {
            librdkafka_create_topic(&bootstrap, topic, 3, &[]);
            let spec = ProduceSpec::default()
                .count(300)
                .codec(codec)
                .keys(20)
                .null_key_every(7)
                .null_value_every(11)
                .headers(true)
                .partitions(3)
                .timestamps(timestamp_base())
                .linger_ms(20);
            librdkafka_produce(&bootstrap, topic, &spec);
        }
        Case::Legacy { magic, codec } => {
            let format = if magic == 0 { "0.9.0" } else { "0.10.2" };
            librdkafka_create_topic(&bootstrap, topic, 2, &[("message.format.version", format)]);
            let spec = ProduceSpec::default()
                .count(200)
                .codec(codec)
                .keys(20)
                .null_key_every(7)
                .partitions(2)
                .timestamps(timestamp_base())
                // Message formats v0 and v1 refuse idempotent producers.
                .config("enable.idempotence", "false");
            librdkafka_produce(&bootstrap, topic, &spec);
        }
        Case::Compacted => {
            librdkafka_create_topic(
                &bootstrap,
                topic,
                2,
                &[
                    ("cleanup.policy", "compact"),
                    ("segment.ms", "100"),
                    ("min.cleanable.dirty.ratio", "0.01"),
                    ("min.compaction.lag.ms", "0"),
                ],
            );
            // Rounds of overwrites, each in a segment of its own
            // (segment.ms=100 rolls at the next append), the producer's
            // clock as timestamps (segments roll by record time).
            // Round 0's keys 25 to 99 are never overwritten, so gaps open
            // inside the log, not only at its start.
            for round in 0..4 {
                let keys = if round == 0 { 100 } else { 25 };
                let spec = ProduceSpec::default().count(100).keys(keys).headers(true);
                librdkafka_produce(&bootstrap, topic, &spec);
                std::thread::sleep(Duration::from_millis(300));
            }
            let deadline = Instant::now() + Duration::from_secs(90);
            let mut reading = librdkafka_consume_all(&bootstrap, topic);
            while gaps(&reading) == 0 {
                assert!(
                    Instant::now() < deadline,
                    "the cleaner of {} left no offset gaps in {topic} within 90 s: {:?}",
                    source.version(),
                    offsets(&reading)
                );
                std::thread::sleep(Duration::from_secs(1));
                reading = librdkafka_consume_all(&bootstrap, topic);
            }
            run_python(SLOW_CLEANING, &[&bootstrap, topic]);
            // Until a cleaning pass under way has finished.
            let mut before = offsets(&reading);
            for _ in 0..20 {
                std::thread::sleep(Duration::from_secs(2));
                let now = offsets(&librdkafka_consume_all(&bootstrap, topic));
                if now == before {
                    break;
                }
                before = now;
            }
        }
        Case::Transactional => {
            librdkafka_create_topic(&bootstrap, topic, 2, &[]);
            let out = run_python(TRANSACTIONS, &[&bootstrap, topic]);
            assert_eq!(out.trim(), "350 150", "{out}");
        }
    }
}

/// Runs `kmirror --once` for `topic` from `source` to `destination` with
/// `group`; returns its stdout and stderr.
fn mirror_once(
    source: &KafkaCluster,
    destination: &KafkaCluster,
    topic: &str,
    group: &str,
) -> (String, String) {
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id={group}\nisolation.level=read_committed\n",
            source.bootstrap()
        ),
        &format!("bootstrap.servers={}\n", destination.bootstrap()),
    );
    let exited = scratch
        .spawn(&["--whitelist", topic, "--once"])
        .wait(Duration::from_secs(120));
    assert_eq!(
        exited.code,
        Some(0),
        "kmirror {} -> {} ({topic}): {}",
        source.version(),
        destination.version(),
        exited.context_with_tail(4000)
    );
    (exited.stdout, exited.stderr)
}

/// One case end to end; panics with what differs.
fn check(source: &KafkaCluster, destination: &KafkaCluster, prefix: &str, case: Case) {
    let topic = format!("{prefix}-{}", case.name());
    fill(source, &topic, case);
    let group = format!("compat-{topic}");
    let (stdout, _) = mirror_once(source, destination, &topic, &group);
    let mut src = librdkafka_consume_all(&source.bootstrap(), &topic);
    let mut dst = librdkafka_consume_all(&destination.bootstrap(), &topic);
    if let Case::Legacy { magic: 0, .. } = case {
        // Magic 0 has no timestamps; say nothing about how they arrive.
        for r in src.values_mut().chain(dst.values_mut()).flatten() {
            r.timestamp_type = 0;
            r.timestamp = -1;
        }
    }
    assert_same_records(&src, &dst);
    for (p, o) in offsets(&dst) {
        let dense: Vec<i64> = (0..i64::try_from(o.len()).unwrap()).collect();
        assert_eq!(o, dense, "{topic}-{p} at the destination is not dense");
    }
    match case {
        Case::Transactional => {
            let total: usize = dst.values().map(Vec::len).sum();
            assert_eq!(total, 350, "only the committed records of {topic}");
            let ends: i64 = librdkafka_end_offsets(&destination.bootstrap(), &topic)
                .values()
                .sum();
            assert_eq!(ends, 350, "no control batch and no aborted record arrived");
        }
        Case::Compacted => assert!(gaps(&src) > 0, "{topic} at the source has gaps"),
        Case::Legacy { .. } => assert!(
            stdout.contains("kmirror: mirrored ")
                && !stdout.contains(" 0 rebuilt on the slow path"),
            "legacy message sets are rebuilt on the slow path: {stdout}"
        ),
        Case::Codec(_) => {}
    }
    let ends = librdkafka_end_offsets(&source.bootstrap(), &topic);
    let committed = librdkafka_committed_offsets(&source.bootstrap(), &group, &topic);
    let expected: BTreeMap<i32, Option<i64>> =
        ends.into_iter().map(|(p, o)| (p, Some(o))).collect();
    assert_eq!(committed, expected, "committed offsets of {group}");
}

/// Runs every case, then fails naming each failed one.
fn matrix(source: KafkaVersion, destination: KafkaVersion, prefix: &str, cases: &[Case]) {
    let (s, d) = (cluster(source), cluster(destination));
    let mut failures = Vec::new();
    for case in cases {
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| check(s, d, prefix, *case)));
        eprintln!(
            "{source} -> {destination} {}: {} in {:.1} s",
            case.name(),
            if result.is_ok() { "pass" } else { "FAIL" },
            started.elapsed().as_secs_f64()
        );
        if let Err(payload) = result {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {message}", case.name()));
        }
    }
    assert!(
        failures.is_empty(),
        "{source} -> {destination}: {} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn from_2_1_to_4_4() {
    matrix(
        KafkaVersion::V2_1,
        KafkaVersion::V4_4,
        "a",
        &[
            Case::Codec(Codec::Gzip),
            Case::Codec(Codec::Zstd),
            Case::Legacy {
                magic: 1,
                codec: Codec::Snappy,
            },
            Case::Legacy {
                magic: 0,
                codec: Codec::Lz4,
            },
            Case::Transactional,
            Case::Compacted,
        ],
    );
}

#[test]
fn from_4_4_to_2_1() {
    matrix(
        KafkaVersion::V4_4,
        KafkaVersion::V2_1,
        "b",
        &[
            Case::Codec(Codec::Lz4),
            Case::Codec(Codec::Zstd),
            Case::Transactional,
            Case::Compacted,
        ],
    );
}

#[test]
fn from_3_9_to_4_4() {
    matrix(
        KafkaVersion::V3_9,
        KafkaVersion::V4_4,
        "c",
        &[
            Case::Codec(Codec::None),
            Case::Codec(Codec::Snappy),
            Case::Transactional,
        ],
    );
}

/// kmirror's own client negotiates from each broker's ApiVersions: a 2.1
/// broker stops at Produce v7 (zstd's first) and Fetch v10, 3.9 and 4.4
/// reach kmirror's own maximum.
#[test]
fn negotiated_versions_follow_each_broker() {
    use kmirror_protocol::kafka_protocol::messages::ApiKey;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ours = |key| kmirror_protocol::api::api_spec(key).unwrap().ours.max;
    for (version, produce, fetch) in [
        (KafkaVersion::V2_1, 7, 10),
        (
            KafkaVersion::V3_9,
            ours(ApiKey::Produce).min(11),
            ours(ApiKey::Fetch),
        ),
        (
            KafkaVersion::V4_4,
            ours(ApiKey::Produce),
            ours(ApiKey::Fetch),
        ),
    ] {
        let bootstrap = cluster(version).bootstrap();
        let versions = runtime.block_on(async {
            let config = kmirror_pool::ClientConfig {
                bootstrap_servers: vec![bootstrap.clone()],
                ..Default::default()
            };
            let client = kmirror_pool::Cluster::connect(config).await.unwrap();
            let connection = client.connection_to_broker(1).await.unwrap();
            connection.versions().clone()
        });
        let produce_v = versions.version(ApiKey::Produce).unwrap();
        let fetch_v = versions.version(ApiKey::Fetch).unwrap();
        eprintln!("{version}: Produce v{produce_v}, Fetch v{fetch_v}");
        assert_eq!(
            (produce_v, fetch_v),
            (produce, fetch),
            "Produce and Fetch versions kmirror negotiated with {version}"
        );
    }
}
