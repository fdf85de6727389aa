//! Failing consumers over from sources whose offsets do not carry over one
//! for one, end to end on Apache Kafka: transactions (aborted records and
//! control markers dropped on the way), a compacted source with offset
//! gaps (closed at the destination), batches split for the destination's
//! `max.message.bytes`, and a by-key route (refused).
//!
//! Each test: inputs produced with librdkafka; a librdkafka consumer group
//! reads part of the topic on the source (`read_committed`) and commits;
//! `kmirror --once` copies it; `kmirror cutover --group G` moves the
//! group; the same group reads the rest on the destination. What a user
//! depends on: per partition, the records read before and after are
//! exactly the source's committed records in order (none lost, none
//! read twice), and `kmirror offsets translate` prints what the cutover
//! committed.
//!
//! The destination sits behind the conformance proxy. Needs Apache Kafka
//! 4.4 and the Python clients (`cargo xtask brokers`).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kmirror_protocol::conformance::TopicRules;
use kmirror_test_support::{
    ClusterOptions, ConformanceProxy, ConsumedRecord, GroupRecord, KafkaCluster, ProduceSpec,
    librdkafka_committed_offsets, librdkafka_consume_all, librdkafka_create_topic,
    librdkafka_end_offsets, librdkafka_group_read, librdkafka_produce, run_python,
    start_cluster_behind_proxy,
};

mod common;

use common::cutover::{
    assert_read_exactly_once, failover_command, mirror_once, scratch, text, translate,
};
use common::{Scratch, for_each_batch};

/// The source: the log cleaner wakes every second, so compaction leaves
/// its gaps within seconds.
fn shared_source() -> &'static KafkaCluster {
    KafkaCluster::shared("cutover-sources-source", || {
        ClusterOptions::kraft().config("log.cleaner.backoff.ms", "1000")
    })
}

fn shared_destination() -> &'static (KafkaCluster, ConformanceProxy) {
    static DESTINATION: OnceLock<(KafkaCluster, ConformanceProxy)> = OnceLock::new();
    DESTINATION.get_or_init(|| {
        start_cluster_behind_proxy(ClusterOptions::kraft().name("cutover-sources-destination"))
    })
}

/// The source offsets of the records a `read_committed` reader sees, per
/// partition.
fn visible_offsets(reading: &BTreeMap<i32, Vec<ConsumedRecord>>) -> BTreeMap<i32, Vec<i64>> {
    reading
        .iter()
        .map(|(p, records)| (*p, records.iter().map(|r| r.offset).collect()))
        .collect()
}

fn value_text(record: &ConsumedRecord) -> String {
    String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned()
}

/// One group stopped at a chosen point.
struct Stop {
    group: String,
    /// What the stop point is, for messages.
    what: &'static str,
    /// The records it read on the source.
    before: Vec<GroupRecord>,
    /// Its committed source offsets.
    committed: BTreeMap<i32, Option<i64>>,
}

impl Stop {
    /// The committed source offset of partition 0.
    fn offset(&self) -> i64 {
        self.committed
            .get(&0)
            .copied()
            .flatten()
            .unwrap_or_else(|| panic!("{} committed nothing on partition 0", self.group))
    }
}

/// `group` reads the first `limit` records of the one-partition `topic`
/// on the source and commits; returns where it stopped.
fn stop_after(source: &str, topic: &str, group: &str, limit: usize, what: &'static str) -> Stop {
    let before = librdkafka_group_read(source, group, topic, Some(limit as u64));
    assert_eq!(before.len(), limit, "{group} ({what})");
    let committed = librdkafka_committed_offsets(source, group, topic);
    let stop = Stop {
        group: group.to_owned(),
        what,
        before,
        committed,
    };
    let last = stop.before.last().map(|r| r.offset);
    assert_eq!(
        Some(stop.offset() - 1),
        last,
        "{group} ({what}): committed offset against the last record read"
    );
    stop
}

/// Moves `stop`'s group with `kmirror cutover` and checks what a user
/// depends on: the cutover exits 0 and commits on the destination what
/// `kmirror offsets translate` printed, and that offset is `expected`
/// (the copy of the first record at or after the source position). Returns
/// what the group then reads on the destination.
fn cut_over_and_read_rest(
    s: &Scratch,
    destination: &str,
    topic: &str,
    stop: &Stop,
    expected: &BTreeMap<i32, i64>,
) -> Vec<GroupRecord> {
    let group = stop.group.as_str();
    let translated = translate(s, group);
    eprintln!(
        "{group} ({}): source committed {:?}, translated {translated:?}, expected {expected:?}",
        stop.what, stop.committed
    );
    let want: BTreeMap<i32, Option<i64>> = expected.iter().map(|(p, o)| (*p, Some(*o))).collect();
    assert_eq!(
        translated, want,
        "{group} ({}): translation of source offsets {:?}",
        stop.what, stop.committed
    );
    let out = failover_command(s, &["cutover"], group);
    assert!(
        out.status.success(),
        "{group} ({}): cutover failed:\n{}",
        stop.what,
        text(&out)
    );
    let committed = librdkafka_committed_offsets(destination, group, topic);
    assert_eq!(
        committed,
        translated,
        "{group} ({}): the destination group's offsets after the cutover against \
         `offsets translate`\n{}",
        stop.what,
        text(&out)
    );
    librdkafka_group_read(destination, group, topic, None)
}

const TRANSACTIONS: &str = r#"
import sys
from confluent_kafka import Producer
bootstrap, topic, phase = sys.argv[1], sys.argv[2], sys.argv[3]
errors = []
def on_delivery(err, msg):
    if err is not None:
        errors.append(str(err))
plain = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all",
                  "enable.idempotence": True, "on_delivery": on_delivery})
tx = Producer({"bootstrap.servers": bootstrap, "transactional.id": "cutover-sources-" + topic,
               "linger.ms": 0, "on_delivery": on_delivery})
tx.init_transactions(60)
n = 0 if phase == "first" else 39
def send(p, label, count):
    global n
    for _ in range(count):
        p.produce(topic, key=b"key-%d" % (n % 7), value=f"value-{n}:{label}".encode(), partition=0)
        n += 1
    if p.flush(60):
        sys.exit(f"records still queued after {label}")
# Each step flushed, so the log holds them in this order.
if phase == "first":
    send(plain, "plain", 5)
    tx.begin_transaction(); send(tx, "txA", 10); tx.commit_transaction(60)
    tx.begin_transaction(); send(tx, "txB-aborted", 10); tx.abort_transaction(60)
    send(plain, "plain", 3)
    tx.begin_transaction(); send(tx, "txC", 4); send(plain, "plain-in-txC", 3); send(tx, "txC", 4)
    tx.commit_transaction(60)
else:
    tx.begin_transaction(); send(tx, "txD-aborted", 4); send(plain, "plain-in-txD", 3)
    send(tx, "txD-aborted", 4); tx.abort_transaction(60)
    tx.begin_transaction(); send(tx, "txE", 6); tx.commit_transaction(60)
if errors:
    sys.exit(f"delivery errors: {errors[:5]}")
print("produced", n)
"#;

/// A source partition holding committed and aborted transactions with
/// plain records between and inside them. kmirror (read_committed) drops
/// the aborted records and the control markers, so destination offsets
/// shift. Groups stop right after a committed transaction (their committed
/// offset is its marker, followed by an aborted transaction), inside a
/// transaction with plain records interleaved, right after the
/// transaction where a first mirror run ended (a second run copies the
/// rest), on the last record before the rest of an aborted transaction,
/// and at the end (the final marker).
/// A user depends on each group continuing on the destination at the
/// copy of the next committed record: nothing of the committed data lost
/// or read twice, nothing aborted read.
#[test]
fn transactions_aborted_records_and_markers_dropped() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = "cut-src-tx";
    librdkafka_create_topic(&source, topic, 1, &[]);
    let out = run_python(TRANSACTIONS, &[&source, topic, "first"]);
    assert_eq!(out.trim(), "produced 39", "{out}");
    // A first mirror run ends after txC's marker; a second copies the rest.
    let s = scratch(&source, &proxy.addr(), "cut-src-tx-mirror");
    mirror_once(&s, topic, &[]);
    let out = run_python(TRANSACTIONS, &[&source, topic, "rest"]);
    assert_eq!(out.trim(), "produced 56", "{out}");

    let reading = librdkafka_consume_all(&source, topic);
    let records = &reading[&0];
    let visible = &visible_offsets(&reading)[&0];
    let labels: Vec<String> = records.iter().map(value_text).collect();
    assert_eq!(records.len(), 56 - 18, "committed records: {labels:?}");
    assert!(
        labels.iter().all(|l| !l.contains("aborted")),
        "the source shows aborted records to read_committed: {labels:?}"
    );
    let source_end = librdkafka_end_offsets(&source, topic)[&0];
    // 56 records, 5 markers.
    assert_eq!(source_end, 61, "source end offset");
    let index_of = |label: &str, nth: usize| -> usize {
        labels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.ends_with(&format!(":{label}")))
            .nth(nth)
            .unwrap_or_else(|| panic!("no {label} number {nth}: {labels:?}"))
            .0
    };
    // The last record of txA: the next offset is txA's marker.
    let after_tx_a = index_of("txA", 9) + 1;
    // Two records of txC, then two plain records inside it.
    let inside_tx_c = index_of("plain-in-txC", 1) + 1;
    // The last record of txC: its marker is where the first mirror run
    // ended.
    let after_tx_c = index_of("txC", 7) + 1;
    // The last plain record inside txD: what follows is txD's aborted
    // second half and its marker.
    let before_tx_d_rest = index_of("plain-in-txD", 2) + 1;
    let everything = records.len();
    let stops = [
        (
            after_tx_a,
            "right after committed txA (its marker next)",
            true,
        ),
        (inside_tx_c, "inside txC, between plain records", false),
        (
            after_tx_c,
            "right after txC, where the first mirror run ended",
            true,
        ),
        (
            before_tx_d_rest,
            "inside aborted txD, before its aborted second half",
            true,
        ),
        (everything, "at the end (the final marker)", true),
    ];
    let stops: Vec<Stop> = stops
        .iter()
        .enumerate()
        .map(|(i, (limit, what, on_skipped))| {
            let stop = stop_after(&source, topic, &format!("cut-src-tx-app-{i}"), *limit, what);
            // Where the translation must skip a marker or aborted records.
            assert_eq!(
                !visible.contains(&stop.offset()),
                *on_skipped,
                "{what}: committed source offset {} (visible offsets {visible:?})",
                stop.offset()
            );
            stop
        })
        .collect();

    mirror_once(&s, topic, &[]);
    let destination_end = librdkafka_end_offsets(&destination, topic)[&0];
    assert_eq!(
        destination_end,
        records.len() as i64,
        "the destination holds only the committed records (source end offset {source_end})"
    );
    assert!(destination_end < source_end);

    for stop in &stops {
        // The destination is dense: the copy of the first committed record
        // at or after the position is at the count of those below it.
        let below = visible.iter().filter(|o| **o < stop.offset()).count() as i64;
        let expected = BTreeMap::from([(0, below)]);
        let after = cut_over_and_read_rest(&s, &destination, topic, stop, &expected);
        assert_read_exactly_once(&source, topic, &stop.before, &after);
    }
    proxy.assert_no_violations();
}

const COMPACTED_ROUNDS: &str = r#"
import sys, time
from confluent_kafka import Producer
bootstrap, topic, phase = sys.argv[1], sys.argv[2], sys.argv[3]
errors = []
def on_delivery(err, msg):
    if err is not None:
        errors.append(str(err))
# Round 0 writes keys 0 to 59; rounds 1 and 2 overwrite keys 0 to 19
# (round 2 deletes 15 to 19: tombstones, removed in a later pass);
# round 3 overwrites keys 0 to 14 and round 4 the even ones of those, so
# round 3's odd keys survive between holes; round 5 is one record that
# rolls round 4's segment. Each round is in a segment of its own
# (segment.ms=100 rolls at the next append after 100 ms).
# Each round by a producer of its own (idempotent, so a producer id of its
# own): the cleaner keeps the last batch of each producer, empty once all
# its records are gone (rounds 1 and 2), to keep the producer's state.
# Phase "first" writes round 0, phase "rest" the others.
rounds = [range(60), range(20), range(20), range(15), range(0, 15, 2), range(1)]
n = 0 if phase == "first" else 60
for rnd, keys in enumerate(rounds):
    if (rnd == 0) != (phase == "first"):
        continue
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all",
                  "enable.idempotence": True, "on_delivery": on_delivery})
    for k in keys:
        key = b"last" if rnd == 5 else b"key-%d" % k
        value = None if rnd == 2 and k >= 15 else f"value-{n}:r{rnd}".encode()
        p.produce(topic, key=key, value=value, partition=0)
        n += 1
    if p.flush(60):
        sys.exit("records still queued")
    time.sleep(0.4)
if errors:
    sys.exit(f"delivery errors: {errors[:5]}")
print("produced", n)
"#;

/// AlterConfigs replaces a topic's whole configuration: back to the
/// defaults but `cleanup.policy=compact`, so the cleaner stops rolling and
/// cleaning (and the destination topic kmirror creates gets no
/// fast-cleaning settings).
const SLOW_CLEANING: &str = r#"
import sys
from confluent_kafka.admin import AdminClient, ConfigResource
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
resource = ConfigResource("topic", sys.argv[2], set_config={"cleanup.policy": "compact"})
for future in admin.alter_configs([resource]).values():
    future.result(timeout=30)
print("altered")
"#;

/// Indexes `i` of `offsets` where the next record's offset is more than
/// one above (a hole the cleaner left between two records).
fn interior_gaps(offsets: &[i64]) -> Vec<usize> {
    offsets
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1] > w[0] + 1)
        .map(|(i, _)| i)
        .collect()
}

/// Waits (up to 90 s) until the cleaner left at least `at_least` holes
/// between the records of partition 0 of `topic`, then slows the cleaner
/// down (`SLOW_CLEANING`); returns the reading that showed them.
fn wait_for_gaps(source: &str, topic: &str, at_least: usize) -> BTreeMap<i32, Vec<ConsumedRecord>> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut reading = librdkafka_consume_all(source, topic);
    loop {
        let offsets = &visible_offsets(&reading)[&0];
        let gaps = interior_gaps(offsets).len();
        if gaps >= at_least {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the source's cleaner left {gaps} gaps between records of {topic} within 90 s \
             (wanted {at_least}): offsets {:?}",
            &offsets[..offsets.len().min(50)]
        );
        std::thread::sleep(Duration::from_secs(1));
        reading = librdkafka_consume_all(source, topic);
    }
    run_python(SLOW_CLEANING, &[source, topic]);
    reading
}

/// A compacted source partition whose cleaner removed overwritten records
/// and tombstones, leaving offset gaps; kmirror closes the gaps (its slow
/// path rebuilds the batches), so destination offsets are dense while
/// source offsets have holes, some covered by empty batches the cleaner
/// keeps for their producers' state. Groups stop right before a hole (their
/// committed offset is an offset the source no longer has), before the
/// last hole, in the middle of a dense run, and (a group that read before
/// the cleaner ran) in the hole at the start of the log. A user depends on each
/// group continuing on the destination at the copy of the next surviving
/// record.
#[test]
fn compacted_source_with_offset_gaps() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = "cut-src-compact";
    librdkafka_create_topic(
        &source,
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("min.compaction.lag.ms", "0"),
            ("delete.retention.ms", "0"),
        ],
    );
    let out = run_python(COMPACTED_ROUNDS, &[&source, topic, "first"]);
    assert_eq!(out.trim(), "produced 60", "{out}");
    // A group that read 10 records before the overwrites: the cleaner
    // then removes them, and its committed offset 10 lies in the hole at
    // the start of the log.
    let early = stop_after(
        &source,
        topic,
        "cut-src-compact-app-early",
        10,
        "in the hole at the start (read before the cleaner removed the records)",
    );
    let out = run_python(COMPACTED_ROUNDS, &[&source, topic, "rest"]);
    assert_eq!(out.trim(), "produced 124", "{out}");
    let reading = wait_for_gaps(&source, topic, 2);
    // Until a cleaning pass under way has finished.
    let mut settled = visible_offsets(&reading);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_secs(2));
        let now = visible_offsets(&librdkafka_consume_all(&source, topic));
        if now == settled {
            break;
        }
        settled = now;
    }
    let visible = settled[&0].clone();
    let gaps = interior_gaps(&visible);
    eprintln!("compacted source offsets: {visible:?}");
    let mut source_batches = Vec::new();
    for_each_batch(&source, topic, |view| {
        let h = view.header();
        source_batches.push((h.base_offset, h.last_offset(), h.record_count));
    });
    eprintln!("compacted source batches (base, last, records): {source_batches:?}");
    assert!(
        source_batches.iter().any(|(_, _, records)| *records == 0),
        "the cleaner kept no empty batch (the last of a producer): {source_batches:?}"
    );
    assert!(gaps.len() >= 2, "gaps at {gaps:?}: {visible:?}");
    let first_gap = gaps[0] + 1;
    let last_gap = gaps[gaps.len() - 1] + 1;
    // A record whose neighbours on both sides are dense.
    let dense = (1..visible.len() - 1)
        .find(|&i| visible[i] == visible[i - 1] + 1 && visible[i + 1] == visible[i] + 1)
        .unwrap_or_else(|| panic!("no dense run: {visible:?}"));
    let stops = [
        (first_gap, "right before the first hole"),
        (last_gap, "right before the last hole"),
        (dense, "inside a dense run"),
    ];
    let stops: Vec<Stop> = stops
        .iter()
        .enumerate()
        .map(|(i, (limit, what))| {
            stop_after(
                &source,
                topic,
                &format!("cut-src-compact-app-{i}"),
                *limit,
                what,
            )
        })
        .collect();
    for stop in stops[..2].iter().chain([&early]) {
        assert!(
            !visible.contains(&stop.offset()),
            "{}: committed source offset {} is a record, not a hole: {visible:?}",
            stop.what,
            stop.offset()
        );
    }

    proxy.declare_topic(
        topic,
        TopicRules {
            compacted: true,
            ..TopicRules::default()
        },
    );
    let s = scratch(&source, &proxy.addr(), "cut-src-compact-mirror");
    mirror_once(&s, topic, &[]);
    let destination_reading = librdkafka_consume_all(&destination, topic);
    let destination_offsets = &visible_offsets(&destination_reading)[&0];
    let dense: Vec<i64> = (0..visible.len() as i64).collect();
    assert_eq!(
        destination_offsets, &dense,
        "the destination's offsets are dense, one record per surviving source record"
    );
    for stop in &stops {
        let below = visible.iter().filter(|o| **o < stop.offset()).count() as i64;
        let expected = BTreeMap::from([(0, below)]);
        let after = cut_over_and_read_rest(&s, &destination, topic, stop, &expected);
        assert_read_exactly_once(&source, topic, &stop.before, &after);
    }
    // The early group's records are gone from the source: it reads every
    // surviving record (all above its offset 10), from the first.
    let after = cut_over_and_read_rest(&s, &destination, topic, &early, &BTreeMap::from([(0, 0)]));
    let read: Vec<Option<Vec<u8>>> = after.iter().map(|r| r.value.clone()).collect();
    let surviving: Vec<Option<Vec<u8>>> = librdkafka_consume_all(&source, topic)[&0]
        .iter()
        .map(|r| r.value.clone())
        .collect();
    assert_eq!(
        read.len(),
        surviving.len(),
        "{}: read on the destination against the surviving source records",
        early.what
    );
    assert!(read == surviving, "{}: different records", early.what);
    proxy.assert_no_violations();
}

const MANY_GAPS: &str = r#"
import sys
from confluent_kafka import Producer
bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
errors = []
def on_delivery(err, msg):
    if err is not None:
        errors.append(str(err))
p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1000000,
              "acks": "all", "on_delivery": on_delivery})
# Even records have keys of their own; odd ones all overwrite one key, so
# the cleaner leaves a hole after every even record.
for i in range(count):
    key = b"key-%d" % i if i % 2 == 0 else b"overwritten"
    while True:
        try:
            p.produce(topic, key=key, value=b"value-%d" % i, partition=0)
            break
        except BufferError:
            p.poll(0.05)
if p.flush(60):
    sys.exit("records still queued")
if errors:
    sys.exit(f"delivery errors: {errors[:5]}")
print("produced", count)
"#;

/// A compacted source partition of 200,000 offsets where the cleaner left
/// a hole after every other record: 100,000 gaps, so one commit of the
/// mirror accounts for about 100,000 runs in the offset map. A user
/// depends on the mirror committing its position (the offset map written
/// in pieces the destination accepts; Apache Kafka's default
/// `max.message.bytes` is 1 MiB) and on the group then cutting over
/// exactly. (The map of one commit here is about 2.4 MB: written as one
/// batch, the destination refused it and kmirror never committed.)
#[test]
fn compacted_source_with_a_hundred_thousand_gaps() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = "cut-src-many-gaps";
    librdkafka_create_topic(
        &source,
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("min.compaction.lag.ms", "0"),
        ],
    );
    let out = run_python(MANY_GAPS, &[&source, topic, "200000"]);
    assert_eq!(out.trim(), "produced 200000", "{out}");
    std::thread::sleep(Duration::from_millis(200));
    // Rolls the segment of the last records, so the cleaner takes them.
    let out = run_python(MANY_GAPS, &[&source, topic, "1"]);
    assert_eq!(out.trim(), "produced 1", "{out}");
    wait_for_gaps(&source, topic, 90_000);
    let group = "cut-src-many-gaps-app";
    let stop = stop_after(&source, topic, group, 30_001, "after 30,001 records");
    let s = scratch(&source, &proxy.addr(), "cut-src-many-gaps-mirror");
    mirror_once(&s, topic, &[]);
    let mirrored = librdkafka_committed_offsets(&source, "cut-src-many-gaps-mirror", topic);
    let ends = librdkafka_end_offsets(&source, topic);
    assert_eq!(
        mirrored.get(&0).copied().flatten(),
        ends.get(&0).copied(),
        "the mirror's committed position against the source's end offset"
    );
    let visible = &visible_offsets(&librdkafka_consume_all(&source, topic))[&0];
    let below = visible.iter().filter(|o| **o < stop.offset()).count() as i64;
    let after = cut_over_and_read_rest(
        &s,
        &destination,
        topic,
        &stop,
        &BTreeMap::from([(0, below)]),
    );
    assert_read_exactly_once(&source, topic, &stop.before, &after);
    proxy.assert_no_violations();
}

/// The destination's limit on a batch in the split test.
const MAX_MESSAGE_BYTES: usize = 20_000;

/// Sizes of the record batches of `topic` per partition.
fn batch_sizes(bootstrap: &str, topic: &str) -> Vec<usize> {
    let mut sizes = Vec::new();
    for_each_batch(bootstrap, topic, |view| {
        sizes.push(view.header().size_in_bytes());
    });
    sizes
}

/// Source batches of about 150 KB (uncompressed; librdkafka with a long
/// linger) into a destination topic the operator created with
/// `max.message.bytes=20000` and a few records of its own, so destination
/// offsets are the source's shifted. kmirror splits every batch into
/// pieces the destination accepts. A user depends on a group that stopped
/// inside a split batch continuing on the destination at the copy of the
/// next record.
#[test]
fn batches_split_for_the_destinations_max_message_bytes() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = "cut-src-split";
    librdkafka_create_topic(&source, topic, 2, &[]);
    let max = MAX_MESSAGE_BYTES.to_string();
    librdkafka_create_topic(
        &destination,
        topic,
        2,
        &[("max.message.bytes", max.as_str())],
    );
    // Records already there: destination offsets are not the source's.
    librdkafka_produce(
        &destination,
        topic,
        &ProduceSpec::default().count(7).partitions(2),
    );
    let shift = librdkafka_end_offsets(&destination, topic);
    assert_eq!(shift.values().sum::<i64>(), 7);
    let spec = ProduceSpec::default()
        .count(400)
        .value_size(1_500)
        .keys(40)
        .partitions(2)
        .linger_ms(1_000)
        .batch_size(1_000_000);
    librdkafka_produce(&source, topic, &spec);
    let source_batches = batch_sizes(&source, topic);
    assert!(
        source_batches.iter().any(|b| *b > MAX_MESSAGE_BYTES),
        "no source batch is over {MAX_MESSAGE_BYTES} bytes: {source_batches:?}"
    );

    let group = "cut-src-split-app";
    let before = librdkafka_group_read(&source, group, topic, Some(250));
    let on_source = librdkafka_committed_offsets(&source, group, topic);
    assert!(
        on_source.values().all(Option::is_some),
        "the group committed on every partition: {on_source:?}"
    );
    proxy.declare_topic(
        topic,
        TopicRules {
            max_message_bytes: Some(MAX_MESSAGE_BYTES),
            ..TopicRules::default()
        },
    );
    let s = scratch(&source, &proxy.addr(), "cut-src-split-mirror");
    mirror_once(&s, topic, &[]);
    let destination_batches = batch_sizes(&destination, topic);
    eprintln!("source batches {source_batches:?}, destination batches {destination_batches:?}");
    assert!(
        destination_batches.iter().all(|b| *b <= MAX_MESSAGE_BYTES),
        "a destination batch is over {MAX_MESSAGE_BYTES} bytes: {destination_batches:?}"
    );
    // The destination's own records are in 2 batches (one a partition).
    assert!(
        destination_batches.len() > source_batches.len() + 2,
        "no batch was split: source {source_batches:?}, destination {destination_batches:?}"
    );

    let expected: BTreeMap<i32, i64> = on_source
        .iter()
        .map(|(p, o)| (*p, o.unwrap_or_default() + shift[p]))
        .collect();
    let stop = Stop {
        group: group.to_owned(),
        what: "250 of 400 records, inside split batches",
        committed: on_source,
        before,
    };
    let after = cut_over_and_read_rest(&s, &destination, topic, &stop, &expected);
    assert_read_exactly_once(&source, topic, &stop.before, &after);
    proxy.assert_no_violations();
}

/// A source topic of 4 partitions mirrored into a destination topic of 6:
/// kmirror places the records by key, so no destination offset stands for
/// a source offset. A user depends on `kmirror cutover` refusing (exit
/// non-zero, nothing committed on the destination) and saying why, and on
/// `kmirror offsets translate` exiting 1 with the reason, instead of
/// moving the group to offsets that lose or repeat records.
#[test]
fn by_key_routes_are_refused() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = "cut-src-bykey";
    librdkafka_create_topic(&source, topic, 4, &[]);
    librdkafka_create_topic(&destination, topic, 6, &[]);
    librdkafka_produce(&source, topic, &ProduceSpec::default().count(400).keys(40));
    let group = "cut-src-bykey-app";
    librdkafka_group_read(&source, group, topic, Some(150));
    let s = scratch(&source, &proxy.addr(), "cut-src-bykey-mirror");
    mirror_once(&s, topic, &[]);
    assert_eq!(
        librdkafka_end_offsets(&destination, topic)
            .values()
            .sum::<i64>(),
        400,
        "every record was copied"
    );

    let out = failover_command(&s, &["cutover"], group);
    assert!(
        !out.status.success(),
        "the cutover of a by-key route succeeded:\n{}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for words in [
        "cannot be translated exactly",
        "nothing was committed",
        "the source has 4 partitions and the destination 6",
        "by key",
    ] {
        assert!(
            stderr.contains(words),
            "{words:?} not said:\n{}",
            text(&out)
        );
    }
    let committed = librdkafka_committed_offsets(&destination, group, topic);
    assert!(
        committed.values().all(Option::is_none),
        "the refused cutover committed {committed:?} on the destination"
    );

    let out = failover_command(&s, &["offsets", "translate", "--format", "json"], group);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    let on_source = librdkafka_committed_offsets(&source, group, topic)
        .values()
        .filter(|o| o.is_some())
        .count();
    assert_eq!(lines.len(), on_source, "{}", text(&out));
    for line in &lines {
        assert!(line["destination_offset"].is_null(), "{line}");
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("the source has 4 partitions and the destination 6")
                && error.contains("by key"),
            "{line}"
        );
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("have no exact translation"),
        "{}",
        text(&out)
    );
    proxy.assert_no_violations();
}

/// `--partition-by-key` with the same partition count on both sides:
/// records written to partitions other than their key's (librdkafka with
/// explicit partitions) move to another destination partition, and kmirror
/// keeps no offset map for such a route. A user depends on the cutover
/// refusing (exit non-zero, nothing committed on the destination) rather
/// than committing offsets of partitions that hold other records, and on
/// `offsets translate` exiting 1.
#[test]
fn by_key_placement_with_equal_partition_counts_is_refused() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = "cut-src-bykey-eq";
    librdkafka_create_topic(&source, topic, 4, &[]);
    librdkafka_produce(
        &source,
        topic,
        &ProduceSpec::default().count(400).keys(40).partitions(4),
    );
    let group = "cut-src-bykey-eq-app";
    librdkafka_group_read(&source, group, topic, Some(150));
    let s = scratch(&source, &proxy.addr(), "cut-src-bykey-eq-mirror");
    mirror_once(&s, topic, &["--partition-by-key", topic]);
    let source_ends = librdkafka_end_offsets(&source, topic);
    let destination_ends = librdkafka_end_offsets(&destination, topic);
    assert_eq!(
        destination_ends.values().sum::<i64>(),
        400,
        "every record was copied"
    );
    assert_ne!(
        destination_ends, source_ends,
        "placing by key moved no record to another partition"
    );

    let out = failover_command(&s, &["cutover"], group);
    assert!(
        !out.status.success(),
        "the cutover of a by-key route succeeded:\n{}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nothing was committed") && stderr.contains("--partition-by-key"),
        "{}",
        text(&out)
    );
    let committed = librdkafka_committed_offsets(&destination, group, topic);
    assert!(
        committed.values().all(Option::is_none),
        "the refused cutover committed {committed:?} on the destination"
    );
    let out = failover_command(&s, &["offsets", "translate"], group);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    proxy.assert_no_violations();
}
