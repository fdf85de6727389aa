//! kmirror's checkpoint codec against Apache Kafka's own
//! `org.apache.kafka.connect.mirror.Checkpoint` (connect-mirror-client
//! 4.3.1), run by Java: what we encode Java decodes to the same checkpoint,
//! what Java encodes is byte for byte what we encode and decodes with our
//! decoder, and where the two decoders differ on malformed bytes is the
//! documented list.
//!
//! Needs Java 17 and `cargo xtask brokers` (the MirrorMaker 2 jars).

use kmirror::translation::checkpoint::{Checkpoint, CheckpointError, MAX_STRING_BYTES};
use kmirror_test_support::mm2::{
    JavaCheckpoint, java_decode_checkpoint, java_decode_checkpoints, java_encode_checkpoints,
};

fn checkpoint(
    group: &str,
    topic: &str,
    partition: i32,
    upstream_offset: i64,
    downstream_offset: i64,
    metadata: &str,
) -> Checkpoint {
    Checkpoint {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
        upstream_offset,
        downstream_offset,
        metadata: metadata.to_owned(),
    }
}

fn cases() -> Vec<Checkpoint> {
    vec![
        checkpoint("g1", "t", 3, 100, 42, "m"),
        checkpoint("orders-app", "src.orders", 0, 0, 0, ""),
        checkpoint(
            "grüppe-消费者-🚀",
            "топик",
            7,
            1 << 40,
            (1 << 40) - 5,
            "ünï",
        ),
        checkpoint("g", "t", i32::MAX, i64::MAX, i64::MAX - 1, "{\"k\":1}"),
        checkpoint("g", "t", 1, -1, -1, "tab\there\nnewline \\ backslash\r"),
        checkpoint("long", "t", 2, 5, 6, &"x".repeat(MAX_STRING_BYTES)),
        // 3 bytes of UTF-8 per char, 32766 bytes: just under the limit.
        checkpoint("long-cjk", "t", 2, 5, 6, &"界".repeat(MAX_STRING_BYTES / 3)),
        checkpoint(&"g".repeat(MAX_STRING_BYTES), &"t".repeat(249), 4, 9, 8, ""),
    ]
}

fn to_java(c: &Checkpoint) -> JavaCheckpoint {
    JavaCheckpoint {
        group: c.group.clone(),
        topic: c.topic.clone(),
        partition: c.partition,
        upstream_offset: c.upstream_offset,
        downstream_offset: c.downstream_offset,
        metadata: c.metadata.clone(),
    }
}

#[test]
fn java_decodes_what_we_encode() {
    let cases = cases();
    let encoded: Vec<(Vec<u8>, Vec<u8>)> = cases
        .iter()
        .map(|c| (c.encode_key().unwrap(), c.encode_value().unwrap()))
        .collect();
    let pairs: Vec<(&[u8], &[u8])> = encoded
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let decoded = java_decode_checkpoints(&pairs);
    for (c, java) in cases.iter().zip(decoded) {
        assert_eq!(java, Ok(to_java(c)), "group {:.40?}", c.group);
    }
}

#[test]
fn we_encode_and_decode_what_java_encodes() {
    let cases = cases();
    let java: Vec<JavaCheckpoint> = cases.iter().map(to_java).collect();
    let encoded = java_encode_checkpoints(&java);
    for (c, (key, value)) in cases.iter().zip(encoded) {
        assert_eq!(
            key,
            c.encode_key().unwrap(),
            "key of group {:.40?}",
            c.group
        );
        assert_eq!(
            value,
            c.encode_value().unwrap(),
            "value of group {:.40?}",
            c.group
        );
        assert_eq!(Checkpoint::decode(&key, &value).as_ref(), Ok(c));
    }
}

/// The single-record helper, on the example whose bytes the unit tests
/// spell out.
#[test]
fn java_decodes_the_hand_written_example() {
    let key = [
        0x00, 0x02, b'g', b'1', 0x00, 0x01, b't', 0x00, 0x00, 0x00, 0x03,
    ];
    let value = [
        0x00, 0x00, // version
        0, 0, 0, 0, 0, 0, 0, 100, // upstreamOffset
        0, 0, 0, 0, 0, 0, 0, 42, // offset
        0x00, 0x01, b'm', // metadata
    ];
    let java = java_decode_checkpoint(&key, &value);
    assert_eq!(java, to_java(&checkpoint("g1", "t", 3, 100, 42, "m")));
    assert_eq!(
        Checkpoint::decode(&key, &value),
        Ok(checkpoint("g1", "t", 3, 100, 42, "m"))
    );
}

/// Malformed records: where Java refuses, we refuse; where Java reads on
/// (trailing bytes, a version other than 0 with assertions off, invalid
/// UTF-8 replaced by U+FFFD), we refuse on purpose and Java's answer is
/// pinned here so that a change on either side shows.
#[test]
fn malformed_records_against_java() {
    let good = checkpoint("g1", "t", 3, 100, 42, "m");
    let key = good.encode_key().unwrap();
    let value = good.encode_value().unwrap();
    let with = |bytes: &[u8], at: usize, patch: &[u8]| {
        let mut out = bytes.to_vec();
        out.splice(at..at + patch.len(), patch.iter().copied());
        out
    };
    let mut key_trailing = key.clone();
    key_trailing.push(0);
    let mut value_trailing = value.clone();
    value_trailing.extend_from_slice(&[1, 2]);

    /// What Java does with a case.
    #[derive(Debug)]
    enum Java {
        Refuses,
        Reads(JavaCheckpoint),
    }
    let replaced = |group: &str| {
        let mut c = to_java(&good);
        c.group = group.to_owned();
        c
    };
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, Java)> = vec![
        (
            "key truncated",
            key[..5].to_vec(),
            value.clone(),
            Java::Refuses,
        ),
        ("key empty", Vec::new(), value.clone(), Java::Refuses),
        (
            "value truncated",
            key.clone(),
            value[..19].to_vec(),
            Java::Refuses,
        ),
        ("value empty", key.clone(), Vec::new(), Java::Refuses),
        (
            "group null",
            with(&key, 0, &[0xff, 0xff]),
            value.clone(),
            Java::Refuses,
        ),
        (
            "metadata -2",
            key.clone(),
            with(&value, 18, &[0xff, 0xfe]),
            Java::Refuses,
        ),
        (
            "group too long for the bytes",
            with(&key, 0, &[0x7f, 0xff]),
            value.clone(),
            Java::Refuses,
        ),
        (
            "key trailing",
            key_trailing,
            value.clone(),
            Java::Reads(to_java(&good)),
        ),
        (
            "value trailing",
            key.clone(),
            value_trailing,
            Java::Reads(to_java(&good)),
        ),
        (
            "version 1",
            key.clone(),
            with(&value, 0, &[0, 1]),
            Java::Reads(to_java(&good)),
        ),
        (
            "version -1",
            key.clone(),
            with(&value, 0, &[0xff, 0xff]),
            Java::Reads(to_java(&good)),
        ),
        (
            "invalid UTF-8",
            with(&key, 2, &[0xff]),
            value.clone(),
            Java::Reads(replaced("\u{fffd}1")),
        ),
    ];
    let pairs: Vec<(&[u8], &[u8])> = cases
        .iter()
        .map(|(_, k, v, _)| (k.as_slice(), v.as_slice()))
        .collect();
    let java = java_decode_checkpoints(&pairs);
    for ((name, k, v, expected), java) in cases.iter().zip(java) {
        let ours = Checkpoint::decode(k, v);
        assert!(ours.is_err(), "{name}: we decoded {ours:?}");
        match (expected, java) {
            (Java::Refuses, Err(_)) => {}
            (Java::Reads(expected), Ok(java)) => assert_eq!(&java, expected, "{name}"),
            (expected, java) => panic!("{name}: expected Java to {expected:?}, it gave {java:?}"),
        }
        if *name == "version 1" {
            assert_eq!(
                ours,
                Err(CheckpointError::UnsupportedVersion { version: 1 })
            );
        }
    }
}

/// Produces raw (partition, key, value) records with librdkafka.
const PRODUCE_RAW: &str = r#"
import sys
from confluent_kafka import Producer
bootstrap, topic = sys.argv[1], sys.argv[2]
producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
for arg in sys.argv[3:]:
    partition, key, value = arg.split(":")
    producer.produce(topic, key=bytes.fromhex(key), value=bytes.fromhex(value), partition=int(partition))
left = producer.flush(60)
assert left == 0, f"{left} records not delivered"
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MirrorMaker 2's own client (`RemoteClusterUtils.translateOffsets`) reads
/// checkpoints we encoded from a real checkpoints topic: partition 0 only,
/// the last checkpoint per (group, partition) wins, other groups and
/// undecodable records are left out.
#[test]
fn remote_cluster_utils_reads_our_checkpoints() {
    use kmirror::translation::checkpoint::checkpoints_topic;
    use kmirror_test_support::mm2::remote_cluster_utils_translate;
    use kmirror_test_support::{ClusterOptions, KafkaCluster, librdkafka_create_topic, run_python};

    let cluster = KafkaCluster::start(ClusterOptions::kraft().name("mm2-checkpoints"));
    let bootstrap = cluster.bootstrap();
    let topic = checkpoints_topic("src");
    librdkafka_create_topic(&bootstrap, &topic, 2, &[]);

    let record = |partition: i32, c: Checkpoint| {
        format!(
            "{partition}:{}:{}",
            hex(&c.encode_key().unwrap()),
            hex(&c.encode_value().unwrap())
        )
    };
    let args = [
        record(0, checkpoint("app", "src.orders", 0, 10, 7, "")),
        record(0, checkpoint("app", "src.orders", 1, 20, 17, "meta")),
        record(0, checkpoint("other", "src.orders", 0, 99, 98, "")),
        // Undecodable for Java (truncated key): skipped.
        "0:0002aa:0000".to_owned(),
        record(0, checkpoint("app", "src.orders", 0, 12, 9, "")),
        record(0, checkpoint("app", "src.payments", 3, 5, 4, "")),
        // Partition 1 is never read.
        record(1, checkpoint("app", "src.orders", 0, 50, 40, "")),
        record(1, checkpoint("app", "src.ignored", 0, 50, 40, "")),
    ];
    let mut argv = vec![bootstrap.as_str(), topic.as_str()];
    argv.extend(args.iter().map(String::as_str));
    run_python(PRODUCE_RAW, &argv);

    let translated = remote_cluster_utils_translate(&bootstrap, "src", "app");
    let expected = [
        (("src.orders".to_owned(), 0), 9),
        (("src.orders".to_owned(), 1), 17),
        (("src.payments".to_owned(), 3), 4),
    ]
    .into_iter()
    .collect();
    assert_eq!(translated, expected);
    assert!(remote_cluster_utils_translate(&bootstrap, "src", "nobody").is_empty());
}
