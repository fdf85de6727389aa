//! Failing consumers over, end to end on Apache Kafka: a librdkafka
//! consumer group reads part of a topic on the source and commits; kmirror
//! copies the topic (keeping its offset map); `kmirror cutover` moves the
//! group; the same group, pointed at the destination, reads the rest.
//! Every test checks that the records read before and after are, per
//! partition, exactly the source's records in order: none lost, none read
//! twice.
//!
//! The destination sits behind the conformance proxy, so the offset map
//! and checkpoint writes go through Apache Kafka's Produce rules too.
//! Needs Apache Kafka 4.4, MirrorMaker 2's jars and the Python clients
//! (`cargo xtask brokers`).

use std::sync::OnceLock;

use kmirror_test_support::{
    ClusterOptions, Codec, ConformanceProxy, KafkaCluster, ProduceSpec,
    librdkafka_committed_offsets, librdkafka_create_topic, librdkafka_group_read,
    librdkafka_produce, start_cluster_behind_proxy,
};

mod common;

use common::cutover::{
    assert_read_exactly_once, failover_command, mirror_once, scratch, text, translate,
};

fn shared_source() -> &'static KafkaCluster {
    KafkaCluster::shared("cutover-source", ClusterOptions::kraft)
}

fn shared_destination() -> &'static (KafkaCluster, ConformanceProxy) {
    static DESTINATION: OnceLock<(KafkaCluster, ConformanceProxy)> = OnceLock::new();
    DESTINATION.get_or_init(|| {
        start_cluster_behind_proxy(ClusterOptions::kraft().name("cutover-destination"))
    })
}

/// The basic move: 4 partitions, passthrough (lz4 batches kept as they
/// are), the group stopped part way.
#[test]
fn a_group_moves_and_reads_exactly_the_next_record() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = "cut-plain";
    librdkafka_create_topic(&source, topic, 4, &[]);
    let spec = ProduceSpec::default()
        .count(2_000)
        .keys(40)
        .codec(Codec::Lz4);
    librdkafka_produce(&source, topic, &spec);
    let group = "cut-plain-app";
    let before = librdkafka_group_read(&source, group, topic, Some(700));
    let s = scratch(&source, &proxy.addr(), "cut-plain-mirror");
    mirror_once(&s, topic, &[]);

    let translated = translate(&s, group);
    let out = failover_command(&s, &["cutover"], group);
    assert!(out.status.success(), "cutover failed:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The partitions the group committed on the source; the others it
    // starts per auto.offset.reset on both clusters.
    let on_source = librdkafka_committed_offsets(&source, group, topic)
        .values()
        .filter(|o| o.is_some())
        .count();
    assert_eq!(translated.len(), on_source, "{}", text(&out));
    assert!(
        stdout.contains(&format!("committed {on_source} partition(s)")),
        "{}",
        text(&out)
    );
    let committed = librdkafka_committed_offsets(&destination, group, topic);
    for (p, offset) in &translated {
        assert_eq!(
            committed.get(p).copied().flatten(),
            *offset,
            "partition {p}"
        );
    }
    let after = librdkafka_group_read(&destination, group, topic, None);
    assert_read_exactly_once(&source, topic, &before, &after);
    proxy.assert_no_violations();
}

/// The JSON line `kmirror offsets translate` printed for partition 0.
fn translation_of_partition_0(s: &common::Scratch, group: &str) -> serde_json::Value {
    let out = failover_command(s, &["offsets", "translate", "--format", "json"], group);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["partition"] == 0)
        .unwrap_or_else(|| panic!("no translation of partition 0:\n{}", text(&out)))
}

/// kill -9 after the destination acknowledged records and before kmirror
/// committed them: the restarted kmirror copies them again, so the
/// destination holds that stretch twice. A group whose position is in the
/// stretch (or after it) moves to the new copy and reads every record
/// once; a group whose position is before it would read the stretch twice
/// from any position, and the translation says exactly how many records.
#[test]
fn a_kill_between_produce_and_commit_leaves_translation_exact() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = "cut-crash";
    librdkafka_create_topic(&source, topic, 1, &[]);
    librdkafka_produce(
        &source,
        topic,
        &ProduceSpec::default().count(1_000).keys(20),
    );
    let s = scratch(&source, &proxy.addr(), "cut-crash-mirror");
    // Copied and committed (the map written first).
    mirror_once(&s, topic, &[]);
    librdkafka_produce(
        &source,
        topic,
        &ProduceSpec::default().count(1_000).keys(20),
    );
    // Copied, acknowledged, not committed (the first commit would come
    // after a minute): killed.
    let mirror = s.spawn(&["--whitelist", topic, "--offset.commit.interval.ms", "60000"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while common::record_count(&destination, topic) < 2_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "kmirror did not copy the second 1,000 records:\n{}",
            common::tail(&mirror.stderr_now(), 4000)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    mirror.signal("-KILL");
    drop(mirror);
    assert_eq!(
        librdkafka_committed_offsets(&source, "cut-crash-mirror", topic)
            .get(&0)
            .copied()
            .flatten(),
        Some(1_000),
        "kmirror committed after the first run only"
    );
    // Restarted from its commit: source records 1000..2000 are written again.
    mirror_once(&s, topic, &[]);
    assert_eq!(common::record_count(&destination, topic), 3_000);

    let before = librdkafka_group_read(&source, "cut-crash-before", topic, Some(500));
    let inside = librdkafka_group_read(&source, "cut-crash-inside", topic, Some(1_500));
    let end = librdkafka_group_read(&source, "cut-crash-end", topic, None);

    // In the stretch written twice: the new copy, exact.
    let t = translation_of_partition_0(&s, "cut-crash-inside");
    assert_eq!(
        (t["destination_offset"].as_i64(), t["exact"].as_bool()),
        (Some(2_500), Some(true)),
        "{t}"
    );
    // Before it: the old copy, and the stretch's 1,000 records ahead of it
    // twice, as the translation says.
    let t = translation_of_partition_0(&s, "cut-crash-before");
    assert_eq!(t["destination_offset"].as_i64(), Some(500), "{t}");
    assert_eq!(
        (t["exact"].as_bool(), t["repeated"].as_i64()),
        (Some(false), Some(1_000)),
        "{t}"
    );
    // At the end: after the last copy.
    let t = translation_of_partition_0(&s, "cut-crash-end");
    assert_eq!(
        (t["destination_offset"].as_i64(), t["exact"].as_bool()),
        (Some(3_000), Some(true)),
        "{t}"
    );

    for group in ["cut-crash-inside", "cut-crash-before", "cut-crash-end"] {
        let out = failover_command(&s, &["cutover"], group);
        assert!(out.status.success(), "cutover of {group}:\n{}", text(&out));
    }
    // Again: already there, nothing moves.
    let out = failover_command(&s, &["cutover"], "cut-crash-before");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("committed 0 partition(s)"),
        "{}",
        text(&out)
    );
    // Later records reach the groups on the destination once.
    librdkafka_produce(&source, topic, &ProduceSpec::default().count(100).keys(20));
    mirror_once(&s, topic, &[]);
    let after_inside = librdkafka_group_read(&destination, "cut-crash-inside", topic, None);
    assert_read_exactly_once(&source, topic, &inside, &after_inside);
    let after_end = librdkafka_group_read(&destination, "cut-crash-end", topic, None);
    assert_read_exactly_once(&source, topic, &end, &after_end);
    let after_before = librdkafka_group_read(&destination, "cut-crash-before", topic, None);
    assert_eq!(
        before.len() + after_before.len(),
        2_100 + 1_000,
        "the group before the stretch reads every record, the stretch twice"
    );
    proxy.assert_no_violations();
}
