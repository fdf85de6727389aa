//! End to end: a source of three Apache Kafka brokers, a topic of six
//! partitions (replication factor 3, so each broker leads two), records
//! produced by librdkafka, no faults. Every partition must arrive
//! complete and in order, with the group's offsets committed to the end,
//! whether kmirror runs `--once` or continuously, with one stream or four.
//!
//! The defect this guards against: kmirror copied only the partitions of
//! some brokers and still reported "lag 0". A stream keeps one Fetch in
//! flight per source broker, each reserving its size from the memory
//! budget until its response is in, but the size was a share of the
//! budget per stream (half of `buffer.memory` with one stream): the fetches
//! to two brokers held the whole budget, brokers were served in id order,
//! so whenever one of those two answered it was sent again first, and the
//! third broker's partitions were never fetched (their lag counted as 0,
//! their end never having been seen). The caught-up tests make that
//! deterministic (every broker long-polling an empty topic first);
//! `kmirror` at 570b214 and at ed28a35 fails them.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kmirror_test_support::{
    ClusterOptions, ConformanceProxy, KafkaCluster, ProduceSpec, assert_same_records,
    librdkafka_committed_offsets, librdkafka_consume_all, librdkafka_end_offsets,
    librdkafka_list_topics, librdkafka_produce, start_cluster_behind_proxy,
};

mod common;

use common::Scratch;

const PARTITIONS: i32 = 6;
const RECORDS: u64 = 600;

/// The three-broker source shared by the tests of this file.
fn source() -> &'static KafkaCluster {
    KafkaCluster::shared("multi-source", ClusterOptions::three_brokers)
}

/// One KRaft broker behind a conformance proxy; kmirror produces through
/// `proxy.addr()`.
fn destination() -> &'static (KafkaCluster, ConformanceProxy) {
    static DESTINATION: OnceLock<(KafkaCluster, ConformanceProxy)> = OnceLock::new();
    DESTINATION.get_or_init(|| {
        start_cluster_behind_proxy(ClusterOptions::kraft().name("multi-destination"))
    })
}

/// Creates `topic` on the source (6 partitions, replication factor 3) and
/// checks that its leaders are spread over the three brokers.
fn create(topic: &str) {
    let source = source();
    source.create_topic(topic, PARTITIONS, 3, &[]);
    let leaders: BTreeMap<i32, i32> = (0..PARTITIONS)
        .map(|p| (p, source.leader(topic, p)))
        .collect();
    let distinct: std::collections::BTreeSet<i32> = leaders.values().copied().collect();
    assert!(
        distinct.len() >= 2,
        "the test needs partitions led by different brokers: {leaders:?}"
    );
}

/// Produces [`RECORDS`] records over every partition of `topic`.
fn produce(topic: &str) {
    let source = source();
    let spec = ProduceSpec::default()
        .count(RECORDS)
        .keys(60)
        .partitions(PARTITIONS);
    librdkafka_produce(&source.bootstrap(), topic, &spec);
    let ends = librdkafka_end_offsets(&source.bootstrap(), topic);
    assert_eq!(ends.len(), PARTITIONS as usize);
    assert!(
        ends.values().all(|&e| e > 0),
        "every source partition holds records: {ends:?}"
    );
}

/// Every partition of `topic` arrived complete and in order, and the
/// group's committed offsets equal the source's end offsets.
fn assert_mirrored(topic: &str, group: &str, output: &str) {
    let source_bootstrap = source().bootstrap();
    let (destination, proxy) = destination();
    let source_ends = librdkafka_end_offsets(&source_bootstrap, topic);
    let destination_ends = librdkafka_end_offsets(&destination.bootstrap(), topic);
    assert_eq!(
        destination_ends,
        source_ends,
        "end offsets per partition, destination vs source (leaders {:?}); kmirror's {output}",
        (0..PARTITIONS)
            .map(|p| source().leader(topic, p))
            .collect::<Vec<_>>()
    );
    assert_same_records(
        &librdkafka_consume_all(&source_bootstrap, topic),
        &librdkafka_consume_all(&destination.bootstrap(), topic),
    );
    let committed = librdkafka_committed_offsets(&source_bootstrap, group, topic);
    let expected: BTreeMap<i32, Option<i64>> =
        source_ends.into_iter().map(|(p, o)| (p, Some(o))).collect();
    assert_eq!(
        committed, expected,
        "committed offsets of {group}; kmirror's {output}"
    );
    proxy.assert_no_violations();
    assert!(
        proxy.records_to(topic) > 0,
        "nothing for {topic} went through the conformance proxy"
    );
}

fn scratch(group: &str) -> Scratch {
    let (_, proxy) = destination();
    Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id={group}\n",
            source().bootstrap()
        ),
        &format!("bootstrap.servers={}\n", proxy.addr()),
    )
}

fn once(streams: &str) {
    let topic = format!("multi-once-{streams}");
    let group = format!("multi-once-group-{streams}");
    create(&topic);
    produce(&topic);
    let scratch = scratch(&group);
    let exited = scratch
        .spawn(&[
            "-v",
            "--whitelist",
            &topic,
            "--once",
            "--num.streams",
            streams,
        ])
        .wait(Duration::from_secs(120));
    let output = exited.context_with_tail(8000);
    assert_eq!(exited.code, Some(0), "{output}");
    assert_mirrored(&topic, &group, &output);
}

/// kmirror runs continuously; with `caught_up_first` it is started on the
/// empty topic and left polling all three brokers for a while before the
/// records are produced (the reported defect: with the whole memory budget
/// held by the long-polling fetches to brokers 1 and 2, broker 3 was never
/// fetched from again, and its partitions stayed empty with "lag 0").
fn continuous(streams: &str, caught_up_first: bool) {
    let name = if caught_up_first {
        "caught-up"
    } else {
        "continuous"
    };
    let topic = format!("multi-{name}-{streams}");
    let group = format!("multi-{name}-group-{streams}");
    let scratch = scratch(&group);
    create(&topic);
    let mirror = if caught_up_first {
        let mirror = scratch.spawn(&["-v", "--whitelist", &topic, "--num.streams", streams]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !mirror.stderr_now().contains("mirroring") {
            assert!(
                Instant::now() < deadline,
                "kmirror did not start mirroring: {}",
                mirror.output(8000)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Every broker's partitions polled while there is nothing to fetch.
        std::thread::sleep(Duration::from_secs(3));
        produce(&topic);
        mirror
    } else {
        produce(&topic);
        scratch.spawn(&["-v", "--whitelist", &topic, "--num.streams", streams])
    };
    let (destination, _) = destination();
    let source_ends = librdkafka_end_offsets(&source().bootstrap(), topic.as_str());
    // Wait until every destination partition is at the source's end (or
    // time out and let the assertions below say which is not); the offsets
    // are committed on the way out.
    let deadline = Instant::now() + Duration::from_secs(40);
    let arrived = || {
        librdkafka_list_topics(&destination.bootstrap()).contains(&topic)
            && librdkafka_end_offsets(&destination.bootstrap(), &topic) == source_ends
    };
    while Instant::now() < deadline && !arrived() {
        std::thread::sleep(Duration::from_millis(500));
    }
    mirror.signal("-INT");
    let exited = mirror.wait(Duration::from_secs(60));
    let output = exited.context_with_tail(8000);
    assert_eq!(exited.code, Some(0), "{output}");
    assert_mirrored(&topic, &group, &output);
}

#[test]
fn once_with_one_stream_copies_every_partition_of_a_three_broker_source() {
    once("1");
}

#[test]
fn once_with_four_streams_copies_every_partition_of_a_three_broker_source() {
    once("4");
}

#[test]
fn continuously_with_one_stream_copies_every_partition_of_a_three_broker_source() {
    continuous("1", false);
}

#[test]
fn continuously_with_four_streams_copies_every_partition_of_a_three_broker_source() {
    continuous("4", false);
}

#[test]
fn caught_up_with_one_stream_copies_every_partition_of_a_three_broker_source() {
    continuous("1", true);
}

#[test]
fn caught_up_with_four_streams_copies_every_partition_of_a_three_broker_source() {
    continuous("4", true);
}
