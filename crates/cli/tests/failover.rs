//! End to end: the built `kmirror` binary reading from a three-broker
//! Apache Kafka source (replication factor 3) while the source's leaders
//! change under it and a producer keeps writing (issue 13, item 1).
//!
//! Right after an election Apache Kafka's new leader reports a high-water
//! mark below its log end until the followers have caught up; a caught-up
//! mirror fetches exactly there. Only the broker's error code may decide
//! that a position is out of range: a mirror that infers it from the
//! high-water mark resets the partition (`earliest` copies it all again,
//! `latest` skips records). These tests assert that a leader moved, a
//! leader killed, and a rolling restart of every source broker cost no
//! reset, no lost record, no reordering, and at most the duplicates of
//! what was in flight, and that kmirror keeps running throughout.
//!
//! Records are told apart by their timestamps: every producer run gets a
//! base of its own (`ProduceSpec::timestamps`), so `(partition,
//! timestamp)` names one record for good. Needs Apache Kafka 4.x and the
//! Python clients (`cargo xtask brokers`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kmirror_test_support::{
    ClusterOptions, ConformanceProxy, KafkaCluster, ProduceSpec, librdkafka_consume_all,
    librdkafka_produce, start_cluster_behind_proxy,
};

mod common;

use common::{Mirror, Scratch, tail};

const TOPIC: &str = "failover";
const PARTITIONS: i32 = 3;
/// Records per producer run.
const RUN: u64 = 3_000;
/// Timestamps of one producer run: `base + i`, runs this far apart.
const RUN_SPACING: i64 = 100_000;

/// Starts kmirror on [`TOPIC`] from `source` to `destination` with the
/// group `test`, logging at `info`.
fn spawn_mirror(test: &str, source: &str, destination: &str) -> (Scratch, Mirror) {
    let scratch = Scratch::new(
        &format!("bootstrap.servers={source}\ngroup.id={test}\nauto.offset.reset=earliest\n"),
        &format!("bootstrap.servers={destination}\n"),
    );
    let mirror = scratch.spawn_with_env(
        &[("RUST_LOG", "info")],
        &["--whitelist", TOPIC, "--offset.commit.interval.ms", "500"],
    );
    (scratch, mirror)
}

/// SIGTERM, then waits up to a minute for exit 0; returns kmirror's
/// stderr.
fn stop(mirror: Mirror) -> String {
    mirror.signal("-TERM");
    let exited = mirror.wait(Duration::from_secs(60));
    assert_eq!(exited.code, Some(0), "{}", tail(&exited.stderr, 6000));
    exited.stderr
}

/// A day ago, in milliseconds: inside every timestamp window of the topic.
fn timestamp_origin() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    i64::try_from(now).unwrap() - 86_400_000
}

fn spec(run: u64, origin: i64) -> ProduceSpec {
    ProduceSpec::default()
        .count(RUN)
        .value_size(200)
        .partitions(PARTITIONS)
        .linger_ms(20)
        .batch_size(64 * 1024)
        .timestamps(origin + i64::try_from(run).unwrap() * RUN_SPACING)
}

/// librdkafka producing runs of [`RUN`] records, one after another, until
/// stopped.
struct Producer {
    stop: Arc<AtomicBool>,
    runs: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Producer {
    fn start(source: String, first_run: u64, origin: i64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicU64::new(first_run));
        let thread = {
            let stop = stop.clone();
            let runs = runs.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let run = runs.load(Ordering::SeqCst);
                    librdkafka_produce(&source, TOPIC, &spec(run, origin));
                    runs.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        Self {
            stop,
            runs,
            thread: Some(thread),
        }
    }

    /// Stops after the run in progress; returns the number of runs.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take()
            && let Err(e) = thread.join()
        {
            std::panic::resume_unwind(e);
        }
        self.runs.load(Ordering::SeqCst)
    }
}

/// The source, a destination behind the conformance proxy, the topic with
/// a first run of records, and kmirror caught up on it.
struct Setup {
    source: KafkaCluster,
    destination: KafkaCluster,
    proxy: ConformanceProxy,
    mirror: Mirror,
    /// kmirror's files and output; after `mirror`, so removed after it
    /// is killed.
    _scratch: Scratch,
    origin: i64,
}

fn set_up(test: &str) -> Setup {
    let source = KafkaCluster::start(ClusterOptions::three_brokers().name(&format!("{test}-src")));
    let (destination, proxy) =
        start_cluster_behind_proxy(ClusterOptions::kraft().name(&format!("{test}-dst")));
    source.create_topic(TOPIC, PARTITIONS, 3, &[]);
    let origin = timestamp_origin();
    librdkafka_produce(&source.bootstrap(), TOPIC, &spec(0, origin));
    let (scratch, mut mirror) = spawn_mirror(test, &source.bootstrap(), &proxy.addr());
    wait_caught_up(&source, &destination, &mut mirror, Duration::from_secs(120));
    Setup {
        source,
        destination,
        proxy,
        mirror,
        _scratch: scratch,
        origin,
    }
}

/// Waits until every destination partition holds at least the source's
/// end offset as it was when called; returns how long that took.
fn wait_caught_up(
    source: &KafkaCluster,
    destination: &KafkaCluster,
    mirror: &mut Mirror,
    timeout: Duration,
) -> Duration {
    common::wait_caught_up(
        source,
        destination,
        TOPIC,
        PARTITIONS,
        mirror,
        timeout,
        "while catching up",
    )
}

/// What the destination holds compared with the source.
#[derive(Debug, Default)]
struct Tally {
    records: usize,
    lost: usize,
    duplicates: usize,
}

/// Compares the two sides partition by partition, records named by
/// timestamp: nothing lost, nothing foreign, per-partition order kept
/// (first occurrences in source order); returns the counts.
fn compare(source: &KafkaCluster, destination: &KafkaCluster) -> Tally {
    let src = librdkafka_consume_all(&source.bootstrap(), TOPIC);
    let dst = librdkafka_consume_all(&destination.bootstrap(), TOPIC);
    let mut tally = Tally::default();
    for p in 0..PARTITIONS {
        let expected: Vec<i64> = src
            .get(&p)
            .into_iter()
            .flatten()
            .map(|r| r.timestamp)
            .collect();
        let got: Vec<i64> = dst
            .get(&p)
            .into_iter()
            .flatten()
            .map(|r| r.timestamp)
            .collect();
        let expected_set: BTreeSet<i64> = expected.iter().copied().collect();
        assert_eq!(
            expected_set.len(),
            expected.len(),
            "source partition {p} repeats a record"
        );
        let mut seen = BTreeSet::new();
        let firsts: Vec<i64> = got.iter().copied().filter(|t| seen.insert(*t)).collect();
        let lost: Vec<i64> = expected
            .iter()
            .copied()
            .filter(|t| !seen.contains(t))
            .collect();
        let foreign: Vec<i64> = firsts
            .iter()
            .copied()
            .filter(|t| !expected_set.contains(t))
            .collect();
        assert!(
            foreign.is_empty(),
            "partition {p}: records not on the source: {foreign:?}"
        );
        tally.records += expected.len();
        tally.lost += lost.len();
        tally.duplicates += got.len() - firsts.len();
        assert!(
            lost.is_empty(),
            "partition {p}: {} of {} records lost, first {:?}",
            lost.len(),
            expected.len(),
            &lost[..lost.len().min(10)]
        );
        assert_eq!(firsts, expected, "partition {p}: order broken");
    }
    tally
}

/// What kmirror must never have said while the source only changed leaders.
fn assert_no_reset(stderr: &str) {
    for bad in ["out of range", "resetting", "panicked", "ERROR"] {
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(bad)).take(5).collect();
        assert!(
            lines.is_empty(),
            "kmirror logged {bad:?}:\n{}",
            lines.join("\n")
        );
    }
}

/// Finishes a test: stops the producer, waits for kmirror to catch up,
/// stops it, compares both sides and checks the log. Returns the tally and
/// the catch-up time.
fn finish(mut setup: Setup, producer: Producer, what: &str, faults: &[(String, Duration)]) {
    let runs = producer.finish();
    let catch_up = wait_caught_up(
        &setup.source,
        &setup.destination,
        &mut setup.mirror,
        Duration::from_secs(180),
    );
    let stderr = stop(setup.mirror);
    let tally = compare(&setup.source, &setup.destination);
    for line in stderr.lines().filter(|l| l.contains("WARN")).take(8) {
        eprintln!("{line}");
    }
    assert_no_reset(&stderr);
    eprintln!(
        "{what}: {} records in {runs} producer runs, {} lost, {} duplicates; catch-up after the \
         producer stopped {catch_up:?}",
        tally.records, tally.lost, tally.duplicates
    );
    for (fault, recovered) in faults {
        eprintln!("  {fault}: destination caught up with the source {recovered:?} after it");
    }
    // Only requests in flight may be written twice; a reset would copy a
    // whole partition (thousands of records) again.
    assert!(
        tally.duplicates <= 500,
        "{} duplicates of {} records: something was copied again",
        tally.duplicates,
        tally.records
    );
    setup.proxy.assert_no_violations();
    let _ = setup.origin;
}

/// Time from a fault until the destination holds what the source held
/// when the fault was over.
fn recovered(setup: &mut Setup) -> Duration {
    wait_caught_up(
        &setup.source,
        &setup.destination,
        &mut setup.mirror,
        Duration::from_secs(120),
    )
}

/// Each partition's leader moved to another replica (preferred election
/// after a reassignment), then the leader of partition 0 killed with
/// SIGKILL and started again, all while a producer writes: no reset, no
/// loss, no re-copy, no exit.
#[test]
fn a_source_leader_failover_is_not_out_of_range() {
    let mut setup = set_up("leader-failover");
    let producer = Producer::start(setup.source.bootstrap(), 1, setup.origin);
    let mut faults = Vec::new();
    for round in 0..2 {
        for p in 0..PARTITIONS {
            let leader = setup.source.leader(TOPIC, p);
            let to = leader % 3 + 1;
            setup.source.move_leader(TOPIC, p, to);
            setup
                .mirror
                .assert_running(&format!("after moving {TOPIC}-{p} to broker {to}"));
            let took = recovered(&mut setup);
            faults.push((
                format!("round {round}: {TOPIC}-{p} moved from broker {leader} to {to}"),
                took,
            ));
        }
    }
    let victim = setup.source.leader(TOPIC, 0);
    setup.source.kill(victim);
    setup.source.wait_for_partition(
        TOPIC,
        0,
        Duration::from_secs(60),
        "led by another broker",
        |p| p.leader >= 0 && p.leader != victim,
    );
    let took = recovered(&mut setup);
    faults.push((
        format!("broker {victim} (leader of {TOPIC}-0) killed"),
        took,
    ));
    setup.source.restart(victim);
    setup.mirror.assert_running("after the restart");
    let took = recovered(&mut setup);
    faults.push((format!("broker {victim} restarted"), took));
    finish(setup, producer, "leader failover", &faults);
}

/// A rolling restart of the three source brokers (graceful: each moves its
/// leaderships away first) while a producer writes: no reset, no loss, no
/// re-copy, no exit.
#[test]
fn a_rolling_restart_of_the_source_is_not_out_of_range() {
    let mut setup = set_up("rolling-restart");
    let producer = Producer::start(setup.source.bootstrap(), 1, setup.origin);
    let mut faults = Vec::new();
    for id in 1..=3 {
        setup.source.stop(id);
        setup
            .mirror
            .assert_running(&format!("after stopping broker {id}"));
        setup.source.restart(id);
        for p in 0..PARTITIONS {
            setup.source.wait_for_partition(
                TOPIC,
                p,
                Duration::from_secs(60),
                "fully in sync",
                |info| info.leader >= 0 && info.isr.len() == 3,
            );
        }
        let took = recovered(&mut setup);
        faults.push((format!("broker {id} stopped and restarted"), took));
    }
    finish(setup, producer, "rolling restart", &faults);
}
