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
