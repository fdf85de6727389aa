//! End to end, on Apache Kafka: the produce side of issue 13. A
//! three-broker destination (replication factor 3, `min.insync.replicas=2`)
//! loses the leader of a busy partition to SIGKILL while kmirror copies;
//! kmirror must resolve the partition's new leader and carry on (item 4).
//! With `acks=1` kmirror mirrors without idempotence: the batches on the
//! destination carry no producer id (item 10).
//!
//! The tests share one source (one KRaft broker) and one destination (three
//! KRaft nodes) and take turns on them (one kills a broker). Set
//! `KMIRROR_BIN` to run another kmirror binary (an older build, to see a
//! test fail; see `common`). Needs Apache Kafka and the Python clients
//! (`cargo xtask brokers`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use kmirror_test_support::{
    ClusterOptions, Codec, KafkaCluster, ProduceSpec, librdkafka_create_topic,
    librdkafka_end_offsets, librdkafka_list_topics, librdkafka_produce,
};

mod common;

use common::{Scratch, assert_committed_to_the_end, assert_complete_in_order, tail};

/// The source and the three-broker destination.
struct Clusters {
    source: KafkaCluster,
    destination: KafkaCluster,
}

/// The clusters, one test at a time.
fn clusters() -> MutexGuard<'static, Clusters> {
    static CLUSTERS: OnceLock<Mutex<Clusters>> = OnceLock::new();
    CLUSTERS
        .get_or_init(|| {
            Mutex::new(Clusters {
                source: KafkaCluster::start(ClusterOptions::kraft().name("failover-source")),
                destination: KafkaCluster::start(
                    ClusterOptions::three_brokers().name("failover-destination"),
                ),
            })
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The end offsets of `topic` (empty while it does not exist). Right after
/// a broker is killed a partition has no leader for a few seconds and the
/// query fails: asked again then.
fn destination_ends(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    for _ in 0..40 {
        let asked = std::panic::catch_unwind(|| {
            if librdkafka_list_topics(bootstrap).iter().any(|t| t == topic) {
                librdkafka_end_offsets(bootstrap, topic)
            } else {
                BTreeMap::new()
            }
        });
        match asked {
            Ok(ends) => return ends,
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    panic!("the end offsets of {topic} at {bootstrap} cannot be read");
}

/// Issue 13, item 4: the leader of a busy destination partition is killed
/// (SIGKILL) while kmirror copies. kmirror resolves the new leader and
/// carries on: nothing lost, order kept, no exit, the copy complete within
/// a bounded time. Before the fix the partitions that the dead broker led
/// were resent to it for ever.
#[test]
fn killing_the_leader_of_a_busy_destination_partition_loses_nothing() {
    const TOPIC: &str = "busy";
    const RECORDS: u64 = 60_000;
    /// From the kill to the last record at the destination.
    const RECOVERY_BOUND: Duration = Duration::from_secs(120);
    let mut clusters = clusters();
    let source = clusters.source.bootstrap();
    let destination = clusters.destination.bootstrap();
    librdkafka_create_topic(&source, TOPIC, 4, &[]);
    let spec = ProduceSpec::default()
        .count(RECORDS)
        .value_size(1024)
        .codec(Codec::Snappy)
        .keys(100)
        .linger_ms(50)
        .batch_size(32 * 1024);
    librdkafka_produce(&source, TOPIC, &spec);
    // Small fetches and requests, so that the copy takes long enough to
    // kill a broker in the middle of it.
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={source}\ngroup.id=failover\nmax.partition.fetch.bytes=16384\n\
             fetch.max.bytes=32768\n"
        ),
        &format!(
            "bootstrap.servers={destination}\nmax.request.size=32768\nrequest.timeout.ms=5000\n"
        ),
    );
    let mut mirror = scratch.spawn(&["--whitelist", TOPIC, "--once"]);
    let started = Instant::now();
    let copied_at_kill = loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no record reached the destination in 120 s: {}",
            tail(&mirror.stderr_now(), 6000)
        );
        assert!(
            !mirror.has_exited(),
            "kmirror exited early: {}",
            tail(&mirror.stderr_now(), 6000)
        );
        let copied: i64 = destination_ends(&destination, TOPIC).values().sum();
        if copied > 0 {
            break copied;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let victim = clusters.destination.leader(TOPIC, 0);
    assert!(victim >= 0, "partition 0 of {TOPIC} has no leader");
    clusters.destination.kill(victim);
    let killed_at = Instant::now();
    assert!(
        copied_at_kill < RECORDS as i64,
        "the copy was over before the kill; make it larger"
    );
    eprintln!(
        "killed destination broker {victim} (leader of {TOPIC}-0) after {copied_at_kill} records"
    );
    // Recovery: the partition moves on under its new leader, and the copy
    // completes.
    let partition0_at_kill = destination_ends(&destination, TOPIC)
        .get(&0)
        .copied()
        .unwrap_or(0);
    let mut partition0_moved = None;
    let complete_after = loop {
        let elapsed = killed_at.elapsed();
        let ends = destination_ends(&destination, TOPIC);
        let copied: i64 = ends.values().sum();
        if partition0_moved.is_none() && ends.get(&0).copied().unwrap_or(0) > partition0_at_kill {
            partition0_moved = Some(elapsed);
        }
        if copied >= RECORDS as i64 {
            break elapsed;
        }
        assert!(
            elapsed < RECOVERY_BOUND,
            "{copied} of {RECORDS} records at the destination {elapsed:?} after the leader of \
             {TOPIC}-0 (broker {victim}) was killed ({copied_at_kill} at the kill); kmirror's \
             stderr:\n{}",
            tail(&mirror.stderr_now(), 6000)
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let exited = mirror.wait(Duration::from_secs(120));
    exited.assert_success();
    let duplicates = assert_complete_in_order(&source, &destination, TOPIC);
    assert_committed_to_the_end(&source, "failover", TOPIC);
    let retries = exited
        .stderr
        .lines()
        .filter(|l| l.contains("produce request failed"))
        .count();
    eprintln!(
        "destination leader failover: broker {victim} killed after {copied_at_kill} of {RECORDS} \
         records; {TOPIC}-0 written to again {partition0_moved:?} after the kill, copy complete \
         {complete_after:?} after it; {retries} failed produce requests logged; nothing lost, \
         order kept, {duplicates} duplicates; kmirror exited 0 after {:?}",
        started.elapsed()
    );
    clusters.destination.restart(victim);
}

/// The producer id, epoch and base sequence of every batch of `topic` at
/// `bootstrap`, read with kmirror's own Fetch.
fn batch_producers(bootstrap: &str, topic: &str) -> BTreeSet<(i64, i16, bool)> {
    let mut producers = BTreeSet::new();
    common::for_each_batch(bootstrap, topic, |view| {
        let h = view.header();
        producers.insert((h.producer_id, h.producer_epoch, h.base_sequence >= 0));
    });
    producers
}

/// Issue 13, item 10: with `acks=1` kmirror does not use idempotence: no
/// InitProducerId, and the batches carry -1/-1/-1 (before the fix they
/// carried kmirror's producer id and sequences, which the broker then
/// checks although kmirror announced no idempotence). The warning names
/// what acks=1 gives up, and the copy is still complete and in order.
#[test]
fn acks_one_mirrors_without_producer_ids() {
    const TOPIC: &str = "leader-acks";
    let clusters = clusters();
    let source = clusters.source.bootstrap();
    let destination = clusters.destination.bootstrap();
    librdkafka_create_topic(&source, TOPIC, 2, &[]);
    let spec = ProduceSpec::default()
        .count(5_000)
        .value_size(200)
        .keys(20)
        .linger_ms(20);
    librdkafka_produce(&source, TOPIC, &spec);
    let scratch = Scratch::new(
        &format!("bootstrap.servers={source}\ngroup.id=leader-acks\n"),
        &format!("bootstrap.servers={destination}\nacks=1\nmax.request.size=16384\n"),
    );
    let exited = scratch
        .spawn(&["--whitelist", TOPIC, "--once"])
        .wait(Duration::from_secs(180));
    exited.assert_success();
    let producers = batch_producers(&destination, TOPIC);
    assert_eq!(
        producers,
        BTreeSet::from([(-1, -1, false)]),
        "producer id, epoch and whether a sequence is set, per batch at the destination"
    );
    assert!(
        exited
            .stderr
            .contains("acks=1: kmirror mirrors without idempotence"),
        "no acks=1 warning: {}",
        exited.context()
    );
    let duplicates = assert_complete_in_order(&source, &destination, TOPIC);
    assert_committed_to_the_end(&source, "leader-acks", TOPIC);
    eprintln!("acks=1: 5000 records, batches without producer fields, {duplicates} duplicates");
}
