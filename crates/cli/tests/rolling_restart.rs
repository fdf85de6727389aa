//! End to end: a rolling restart of every broker of a three-broker source,
//! then of every broker of a three-broker destination (replication factor
//! 3, `min.insync.replicas=2`, as the harness sets them), done the way an
//! operator does it, while a keyed producer keeps writing numbered records
//! into the source and one `kmirror` process keeps mirroring.
//!
//! Each broker in turn is stopped gracefully (SIGTERM: Kafka's controlled
//! shutdown moves its leaderships away first), left down for a while
//! (during which the destination must catch up with what the source held
//! when it stopped: kmirror keeps copying with a broker down), started
//! again, and the next one is only stopped once every partition of every
//! topic of that cluster has all its replicas in sync again. kmirror must
//! still be running after every step, exit 0 on SIGTERM at the end, and
//! have copied every record, in order per partition (so per key), with its
//! offsets committed to the end. kmirror's producer is idempotent and no
//! broker crashes, so the destination may hold at most what a few
//! requests in flight carry twice: the test allows the records of
//! `max.in.flight` (5) batches per partition (the largest source batch
//! times 5 times the partition count) and prints the actual count.
//!
//! The producer is librdkafka (confluent-kafka in the test venv) with
//! `acks=all` and idempotence, Java's partitioner on 60 keys, values
//! `value-{i}:...` numbered over the whole run (the numbering that
//! `common::assert_complete_in_order` reads), at a fixed rate, in batches
//! of at most [`MAX_BATCH_RECORDS`] records. Needs Apache Kafka 4.x and the
//! Python clients (`cargo xtask brokers`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kmirror_test_support::{
    ClusterOptions, KafkaCluster, librdkafka_consume_summary, librdkafka_end_offsets,
};

mod common;

use common::producer::ContinuousProducer;
use common::{
    Mirror, Scratch, assert_committed_to_the_end, assert_complete_in_order, for_each_batch,
};

const TOPIC: &str = "rolling";
const GROUP: &str = "rolling-restart";
const PARTITIONS: i32 = 6;
/// Records per second from the producer.
const RATE: u32 = 300;
/// Keys `key-0` to `key-59`.
const KEYS: u32 = 60;
const VALUE_SIZE: usize = 200;
/// librdkafka's `batch.num.messages`: after a stall (a leader moving) the
/// producer sends what queued meanwhile, and uncapped batches would make
/// the duplicate bound below as large as the whole test.
const MAX_BATCH_RECORDS: u32 = 20;
/// kmirror's batches in flight per destination partition.
const MAX_IN_FLIGHT: u64 = 5;
/// At least this long down, as an operator's pause between stop and start.
const DOWNTIME: Duration = Duration::from_secs(5);

fn total(ends: &BTreeMap<i32, i64>) -> i64 {
    ends.values().sum()
}

/// Waits until every destination partition holds at least what the source
/// partition held when called (kmirror must be running throughout);
/// returns how long that took.
fn wait_caught_up(
    source: &KafkaCluster,
    destination: &KafkaCluster,
    mirror: &mut Mirror,
    timeout: Duration,
    when: &str,
) -> Duration {
    common::wait_caught_up(
        source,
        destination,
        TOPIC,
        PARTITIONS,
        mirror,
        timeout,
        when,
    )
}

/// Waits until every partition of every topic of `cluster` (internal ones
/// included) has a leader and all its replicas in sync, as an operator
/// waits for no under-replicated partitions before the next broker;
/// returns how long that took.
fn wait_fully_in_sync(cluster: &KafkaCluster, timeout: Duration, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let view = cluster.metadata(&[]);
        let lagging: Vec<String> = view
            .topics
            .iter()
            .flat_map(|(topic, _, partitions)| {
                partitions
                    .iter()
                    .filter(|p| p.leader < 0 || p.isr.len() != p.replicas.len())
                    .map(move |p| {
                        format!(
                            "{topic}-{} leader {} replicas {:?} isr {:?}",
                            p.partition, p.leader, p.replicas, p.isr
                        )
                    })
            })
            .collect();
        if lagging.is_empty() && !view.topics.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: not every partition fully in sync within {timeout:?}: {lagging:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The last note the harness wrote in broker `id`'s log (`stopped
/// (SIGTERM)`, `killed (SIGKILL)`, ...).
fn last_harness_note(cluster: &KafkaCluster, id: i32) -> String {
    cluster
        .log(id)
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("=== kmirror-test-cluster: "))
        .unwrap_or_default()
        .to_owned()
}

/// What happened to one broker, for the report.
struct Step {
    what: String,
    /// Partitions of [`TOPIC`] it led when stopped.
    led: usize,
    stop: Duration,
    caught_up_while_down: Duration,
    produced_while_down: i64,
    start: Duration,
    in_sync: Duration,
    caught_up_after: Duration,
}

/// One broker of `cluster` (the source when `is_source`) through a graceful
/// stop, a pause, a start and back to full sync, with the checks between.
fn roll(
    source: &mut KafkaCluster,
    destination: &mut KafkaCluster,
    is_source: bool,
    id: i32,
    mirror: &mut Mirror,
    producer: &mut ContinuousProducer,
) -> Step {
    let side = if is_source { "source" } else { "destination" };
    let what = format!("{side} broker {id}");
    let source_before = total(&librdkafka_end_offsets(&source.bootstrap(), TOPIC));
    let led = if is_source { &*source } else { &*destination }
        .partitions(TOPIC)
        .iter()
        .filter(|p| p.leader == id)
        .count();

    let t = Instant::now();
    if is_source {
        source.stop(id);
    } else {
        destination.stop(id);
    }
    let stop = t.elapsed();
    let down_at = Instant::now();
    let cluster: &KafkaCluster = if is_source { &*source } else { &*destination };
    let note = last_harness_note(cluster, id);
    assert_eq!(note, "stopped (SIGTERM)", "{what} did not stop gracefully");
    for p in 0..PARTITIONS {
        cluster.wait_for_partition(
            TOPIC,
            p,
            Duration::from_secs(30),
            &format!("led by a broker other than {id}"),
            |info| info.leader >= 0 && info.leader != id,
        );
    }
    mirror.assert_running(&format!("after stopping {what}"));

    // While it is down: kmirror copies what the source held at the stop.
    let caught_up_while_down = wait_caught_up(
        source,
        destination,
        mirror,
        Duration::from_secs(120),
        &format!("with {what} down"),
    );
    let remaining = DOWNTIME.saturating_sub(down_at.elapsed());
    std::thread::sleep(remaining);
    producer.assert_running(&format!("with {what} down"));
    let source_at_start = total(&librdkafka_end_offsets(&source.bootstrap(), TOPIC));
    let produced_while_down = source_at_start - source_before;
    assert!(
        produced_while_down > 0,
        "no record reached the source while {what} was down"
    );
    mirror.assert_running(&format!("with {what} down"));

    let t = Instant::now();
    if is_source {
        source.restart(id);
    } else {
        destination.restart(id);
    }
    let start = t.elapsed();
    mirror.assert_running(&format!("after restarting {what}"));
    let cluster: &KafkaCluster = if is_source { &*source } else { &*destination };
    let in_sync = wait_fully_in_sync(
        cluster,
        Duration::from_secs(180),
        &format!("after restarting {what}"),
    );
    mirror.assert_running(&format!("after {what} was back in sync"));
    let caught_up_after = wait_caught_up(
        source,
        destination,
        mirror,
        Duration::from_secs(120),
        &format!("after {what} was back in sync"),
    );
    producer.assert_running(&format!("after restarting {what}"));
    let step = Step {
        what,
        led,
        stop,
        caught_up_while_down,
        produced_while_down,
        start,
        in_sync,
        caught_up_after,
    };
    eprintln!(
        "{} (leader of {} of {PARTITIONS} partitions): stopped in {:.1?}; destination caught up {:.1?} into the downtime; {} records \
         produced while down; started in {:.1?}; all replicas in sync {:.1?} later; destination \
         caught up {:.1?} after that",
        step.what,
        step.led,
        step.stop,
        step.caught_up_while_down,
        step.produced_while_down,
        step.start,
        step.in_sync,
        step.caught_up_after
    );
    step
}

/// What kmirror must never log while brokers only restart gracefully: a
/// reset copies a partition again (`earliest`) or skips records
/// (`latest`).
fn assert_no_reset(stderr: &str) {
    for bad in ["out of range", "resetting"] {
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(bad)).take(5).collect();
        assert!(
            lines.is_empty(),
            "kmirror logged {bad:?}:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn rolling_restart_of_every_source_then_every_destination_broker_loses_nothing() {
    let test_start = Instant::now();
    let mut source = KafkaCluster::start(ClusterOptions::three_brokers().name("rolling-src"));
    let mut destination = KafkaCluster::start(ClusterOptions::three_brokers().name("rolling-dst"));
    source.create_topic(TOPIC, PARTITIONS, 3, &[]);
    eprintln!(
        "clusters up and {TOPIC} created ({PARTITIONS} partitions, replication factor 3) in \
         {:.1?}",
        test_start.elapsed()
    );

    let mut producer = ContinuousProducer::start(
        &source.bootstrap(),
        TOPIC,
        RATE,
        KEYS,
        VALUE_SIZE,
        MAX_BATCH_RECORDS,
    );
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id={GROUP}\nauto.offset.reset=earliest\n",
            source.bootstrap()
        ),
        &format!("bootstrap.servers={}\n", destination.bootstrap()),
    );
    let mut mirror = scratch.spawn(&["--whitelist", TOPIC, "--offset.commit.interval.ms", "1000"]);
    // Records on the source before the first catch-up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while total(&librdkafka_end_offsets(&source.bootstrap(), TOPIC)) == 0 {
        producer.assert_running("before its first record");
        assert!(
            Instant::now() < deadline,
            "no record on the source after 60 s:\n{}",
            producer.output()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let first = wait_caught_up(
        &source,
        &destination,
        &mut mirror,
        Duration::from_secs(120),
        "before the restarts",
    );
    for p in destination.partitions(TOPIC) {
        assert_eq!(
            p.replicas.len(),
            3,
            "kmirror created {TOPIC} on the destination without replication factor 3: {p:?}"
        );
    }
    eprintln!("kmirror caught up with the producer {first:.1?} after its start");

    let mut steps = Vec::new();
    let rolling_start = Instant::now();
    for is_source in [true, false] {
        let ids = if is_source {
            source.all_ids()
        } else {
            destination.all_ids()
        };
        for id in ids {
            steps.push(roll(
                &mut source,
                &mut destination,
                is_source,
                id,
                &mut mirror,
                &mut producer,
            ));
        }
    }
    let rolling = rolling_start.elapsed();

    let (produced, produced_for) = producer.finish();
    let source_ends = librdkafka_end_offsets(&source.bootstrap(), TOPIC);
    assert_eq!(
        u64::try_from(total(&source_ends)).unwrap(),
        produced,
        "the source holds other than what was produced: {source_ends:?}"
    );
    assert!(
        source_ends.values().all(|&e| e > 0),
        "a source partition got no record: {source_ends:?}"
    );
    let catch_up = wait_caught_up(
        &source,
        &destination,
        &mut mirror,
        Duration::from_secs(180),
        "after the producer stopped",
    );
    mirror.assert_running("after the rolling restarts");
    mirror.signal("-TERM");
    let exited = mirror.wait(Duration::from_secs(60));
    exited.assert_success();
    assert_no_reset(&exited.stderr);
    let warnings: Vec<&str> = exited
        .stderr
        .lines()
        .filter(|l| l.contains("WARN"))
        .collect();

    let duplicates = assert_complete_in_order(&source.bootstrap(), &destination.bootstrap(), TOPIC);
    assert_committed_to_the_end(&source.bootstrap(), GROUP, TOPIC);

    // The bound: the records of MAX_IN_FLIGHT of the largest source batch,
    // per partition (batches pass through whole).
    let mut largest_batch = 0u64;
    let mut source_batches = 0u64;
    for_each_batch(&source.bootstrap(), TOPIC, |view| {
        source_batches += 1;
        largest_batch = largest_batch.max(u64::try_from(view.header().record_count).unwrap());
    });
    let bound = MAX_IN_FLIGHT * largest_batch * u64::try_from(PARTITIONS).unwrap();
    let mut producers = BTreeSet::new();
    let mut destination_batches = 0u64;
    for_each_batch(&destination.bootstrap(), TOPIC, |view| {
        destination_batches += 1;
        let h = view.header();
        producers.insert((h.producer_id, h.producer_epoch));
    });
    let per_partition: BTreeMap<i32, u64> = if duplicates > 0 {
        librdkafka_consume_summary(&destination.bootstrap(), TOPIC)
            .into_iter()
            .map(|(p, s)| (p, s.duplicates()))
            .collect()
    } else {
        BTreeMap::new()
    };

    eprintln!(
        "rolling restart of 3 source then 3 destination brokers: {produced} records produced \
         over {produced_for:.1?} ({RATE}/s, {KEYS} keys, batches of at most \
         {MAX_BATCH_RECORDS}, source ends {source_ends:?}); restarts took {rolling:.1?}; \
         destination caught up {catch_up:.1?} after the producer stopped; kmirror exited 0; \
         nothing lost, order kept, offsets committed to the end; {duplicates} duplicates \
         (bound {bound}: {MAX_IN_FLIGHT} x largest batch {largest_batch} x {PARTITIONS} \
         partitions){}; {source_batches} source batches, {destination_batches} destination \
         batches; kmirror's producer (id, epoch) on the destination: {producers:?}; \
         {} WARN lines from kmirror; whole test {:.1?}",
        if per_partition.is_empty() {
            String::new()
        } else {
            format!(" per partition {per_partition:?}")
        },
        warnings.len(),
        test_start.elapsed()
    );
    for line in exited.stdout.lines().filter(|l| l.starts_with("kmirror: ")) {
        eprintln!("  {line}");
    }
    for line in warnings.iter().take(40) {
        eprintln!("  {line}");
    }
    for step in &steps {
        eprintln!(
            "  {} (led {}): stop {:.1?}, caught up while down {:.1?}, {} produced while down, start \
             {:.1?}, in sync {:.1?}, caught up after {:.1?}",
            step.what,
            step.led,
            step.stop,
            step.caught_up_while_down,
            step.produced_while_down,
            step.start,
            step.in_sync,
            step.caught_up_after
        );
    }
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates of {produced} records (bound {bound}): something beyond the \
         requests in flight was copied again"
    );
}
