//! Test inputs produced with librdkafka and outputs read back with
//! librdkafka (confluent-kafka in the venv), compared record by record.
//!
//! The data is generated inside Python from a [`ProduceSpec`] (nothing but
//! the spec's parameters crosses the command line), and it is deterministic:
//! [`ProduceSpec::expected_key`], [`ProduceSpec::expected_value`] and
//! [`ProduceSpec::expected_headers`] say what record `i` holds. Record `i`'s
//! value starts with `value-{i}:` (see [`value_sequence`]), so a reader can
//! tell which record it is, spot duplicates and check order.
//!
//! Readers write their results to a scratch file in a line format parsed
//! here without dependencies, one line per item, fields separated by one
//! space. Byte fields are not in the line: the line gives their lengths
//! (`-` for null) and the bytes follow the newline raw, in field order
//! (hex or base64 would double the work of parsing hundreds of megabytes in
//! an unoptimized test build):
//!
//! - `P <partition> <low watermark> <high watermark>`: one per partition,
//!   before anything else;
//! - `R <partition> <offset> <timestamp type> <timestamp> <key length>
//!   <value length> <header count> [<name length> <value length>]...`: one
//!   record, followed by its key, value, and each header's name (UTF-8) and
//!   value;
//! - `S <partition> <count> <first offset> <last offset> <unnumbered>
//!   [<sequence>]...`: one partition's [`PartitionSummary`] (offsets `-1`
//!   when empty);
//! - `O <partition> <offset or ->`: one partition's offset;
//! - `E`: the end, so a truncated file is an error, not a short read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use kmirror_test_cluster::scratch;

use crate::run_python;

/// A compression codec librdkafka applies to produced batches
/// (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// No compression.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy (Kafka's xerial framing).
    Snappy,
    /// LZ4 frames.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Codec {
    /// Every codec, uncompressed first.
    pub const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    /// The librdkafka name: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// What [`librdkafka_produce`] sends: `count` records numbered from 0,
/// built with [`ProduceSpec::default`] and the methods.
///
/// Record `i` has:
/// - key `key-{i % spread}` ([`ProduceSpec::keys`]), or null when keys are
///   off ([`ProduceSpec::null_keys`]) or `(i + 1) % n == 0` for
///   [`ProduceSpec::null_key_every`];
/// - value `value-{i}:` followed by bytes `(i + j) % 256` up to the value
///   size (the prefix alone when the size is smaller), the large size when
///   `(i + 1) % n == 0` for [`ProduceSpec::large_values`], or null when
///   `(i + 1) % n == 0` for [`ProduceSpec::null_value_every`];
/// - with [`ProduceSpec::headers`], the headers `h: "1"`, `h: "2"`,
///   `empty: ""`, `null: null`, `seq: "{i}"`, in that order;
/// - partition `i % n` with [`ProduceSpec::partitions`], else the one
///   librdkafka's `murmur2_random` partitioner picks (Java's for keys,
///   random for null keys);
/// - timestamp `base + i` with [`ProduceSpec::timestamps`], else the
///   producer's clock (CreateTime either way).
///
/// The producer runs with `acks=all`, `enable.idempotence=true`, and the
/// spec's `linger.ms` and `batch.size` (defaults 5 and 1000000, so batches
/// hold many records).
#[derive(Debug, Clone)]
pub struct ProduceSpec {
    count: u64,
    value_size: usize,
    codec: Codec,
    key_spread: Option<u64>,
    null_key_every: Option<u64>,
    null_value_every: Option<u64>,
    headers: bool,
    partitions: Option<i32>,
    large_values: Option<(u64, usize)>,
    timestamp_base: Option<i64>,
    linger_ms: u32,
    batch_size: u32,
    config: Vec<(String, String)>,
}

impl Default for ProduceSpec {
    /// 100 records of 100 bytes, uncompressed, keys `key-0` to `key-9`, no
    /// null keys or values, no headers, librdkafka's partitioner, the
    /// producer's clock, `linger.ms=5`, `batch.size=1000000`.
    fn default() -> Self {
        Self {
            count: 100,
            value_size: 100,
            codec: Codec::None,
            key_spread: Some(10),
            null_key_every: None,
            null_value_every: None,
            headers: false,
            partitions: None,
            large_values: None,
            timestamp_base: None,
            linger_ms: 5,
            batch_size: 1_000_000,
            config: Vec::new(),
        }
    }
}

impl ProduceSpec {
    /// How many records (numbered `0..count`).
    pub fn count(mut self, count: u64) -> Self {
        self.count = count;
        self
    }

    /// The size of an ordinary value in bytes (at least the `value-{i}:`
    /// prefix).
    pub fn value_size(mut self, bytes: usize) -> Self {
        self.value_size = bytes;
        self
    }

    /// The compression codec.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Keys `key-{i % spread}` (a spread of 0 counts as 1).
    pub fn keys(mut self, spread: u64) -> Self {
        self.key_spread = Some(spread.max(1));
        self
    }

    /// Every key null.
    pub fn null_keys(mut self) -> Self {
        self.key_spread = None;
        self
    }

    /// A null key on every `n`th record (`(i + 1) % n == 0`); 0 turns it off.
    pub fn null_key_every(mut self, n: u64) -> Self {
        self.null_key_every = (n > 0).then_some(n);
        self
    }

    /// A null value on every `n`th record (`(i + 1) % n == 0`); 0 turns it
    /// off. Wins over [`ProduceSpec::large_values`].
    pub fn null_value_every(mut self, n: u64) -> Self {
        self.null_value_every = (n > 0).then_some(n);
        self
    }

    /// Headers on every record, with a repeated name, an empty value and a
    /// null value (see the type's documentation).
    pub fn headers(mut self, on: bool) -> Self {
        self.headers = on;
        self
    }

    /// Sends record `i` to partition `i % partitions` explicitly, so every
    /// partition gets data whatever the keys; 0 goes back to the
    /// partitioner.
    pub fn partitions(mut self, partitions: i32) -> Self {
        self.partitions = (partitions > 0).then_some(partitions);
        self
    }

    /// A value of `bytes` bytes on every `n`th record (`(i + 1) % n == 0`);
    /// `n` = 0 turns it off. Above about 1 MB the topic needs a larger
    /// `max.message.bytes` and the producer a larger `message.max.bytes`
    /// ([`ProduceSpec::config`]).
    pub fn large_values(mut self, n: u64, bytes: usize) -> Self {
        self.large_values = (n > 0).then_some((n, bytes));
        self
    }

    /// Explicit timestamps: record `i` gets `base + i` (milliseconds).
    pub fn timestamps(mut self, base: i64) -> Self {
        self.timestamp_base = Some(base);
        self
    }

    /// The producer's `linger.ms`.
    pub fn linger_ms(mut self, ms: u32) -> Self {
        self.linger_ms = ms;
        self
    }

    /// The producer's `batch.size` in bytes.
    pub fn batch_size(mut self, bytes: u32) -> Self {
        self.batch_size = bytes;
        self
    }

    /// Any other librdkafka producer property (applied last, so it can
    /// override the ones above), for example `message.max.bytes`.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// The number of records this spec produces.
    pub fn record_count(&self) -> u64 {
        self.count
    }

    /// Record `i`'s key.
    pub fn expected_key(&self, i: u64) -> Option<Vec<u8>> {
        let spread = self.key_spread?;
        if every(self.null_key_every, i) {
            return None;
        }
        Some(format!("key-{}", i % spread).into_bytes())
    }

    /// Record `i`'s value.
    pub fn expected_value(&self, i: u64) -> Option<Vec<u8>> {
        if every(self.null_value_every, i) {
            return None;
        }
        let size = match self.large_values {
            Some((n, bytes)) if every(Some(n), i) => bytes,
            _ => self.value_size,
        };
        let mut value = format!("value-{i}:").into_bytes();
        let start = i % 256;
        let pad = size.saturating_sub(value.len()) as u64;
        // `% 256` makes the narrowing exact.
        value.extend((0..pad).map(|j| ((start + j) % 256) as u8));
        Some(value)
    }

    /// Record `i`'s headers (empty without [`ProduceSpec::headers`]).
    pub fn expected_headers(&self, i: u64) -> Vec<(String, Option<Vec<u8>>)> {
        if !self.headers {
            return Vec::new();
        }
        vec![
            ("h".to_owned(), Some(b"1".to_vec())),
            ("h".to_owned(), Some(b"2".to_vec())),
            ("empty".to_owned(), Some(Vec::new())),
            ("null".to_owned(), None),
            ("seq".to_owned(), Some(i.to_string().into_bytes())),
        ]
    }

    /// Record `i`'s partition when partitions are explicit
    /// ([`ProduceSpec::partitions`]).
    pub fn expected_partition(&self, i: u64) -> Option<i32> {
        let n = self.partitions?;
        i32::try_from(i % u64::try_from(n).ok()?).ok()
    }

    /// Record `i`'s timestamp when timestamps are explicit
    /// ([`ProduceSpec::timestamps`]).
    pub fn expected_timestamp(&self, i: u64) -> Option<i64> {
        Some(self.timestamp_base? + i64::try_from(i).ok()?)
    }

    /// The spec as `name=value` arguments for [`PRODUCE`].
    fn to_args(&self) -> Vec<String> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
        let mut args = vec![
            format!("count={}", self.count),
            format!("size={}", self.value_size),
            format!("codec={}", self.codec.name()),
            format!("key_spread={}", opt(self.key_spread.map(|v| v.to_string()))),
            format!(
                "null_key_every={}",
                opt(self.null_key_every.map(|v| v.to_string()))
            ),
            format!(
                "null_value_every={}",
                opt(self.null_value_every.map(|v| v.to_string()))
            ),
            format!("headers={}", u8::from(self.headers)),
            format!("partitions={}", opt(self.partitions.map(|v| v.to_string()))),
            format!(
                "large_every={}",
                opt(self.large_values.map(|(n, _)| n.to_string()))
            ),
            format!(
                "large_size={}",
                opt(self.large_values.map(|(_, b)| b.to_string()))
            ),
            format!(
                "timestamp_base={}",
                opt(self.timestamp_base.map(|v| v.to_string()))
            ),
            format!("linger_ms={}", self.linger_ms),
            format!("batch_size={}", self.batch_size),
        ];
        args.extend(self.config.iter().map(|(k, v)| format!("conf.{k}={v}")));
        args
    }
}

/// Whether record `i` is an `n`th one: `(i + 1) % n == 0`.
fn every(n: Option<u64>, i: u64) -> bool {
    n.is_some_and(|n| n > 0 && (i + 1).is_multiple_of(n))
}

/// The sequence number `i` of a value that starts with `value-{i}:` (or is
/// exactly `value-{i}`), as [`ProduceSpec`] writes them.
pub fn value_sequence(value: &[u8]) -> Option<u64> {
    let rest = value.strip_prefix(b"value-")?;
    let end = rest.iter().position(|b| *b == b':').unwrap_or(rest.len());
    let digits = rest.get(..end)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

const PRODUCE: &str = r#"
import sys
from confluent_kafka import Producer
bootstrap, topic = sys.argv[1], sys.argv[2]
spec = dict(a.split("=", 1) for a in sys.argv[3:] if not a.startswith("conf."))
extra = dict(a[5:].split("=", 1) for a in sys.argv[3:] if a.startswith("conf."))
def opt(name):
    v = spec[name]
    return None if v == "-" else int(v)
count = int(spec["count"])
size = int(spec["size"])
key_spread = opt("key_spread")
null_key_every = opt("null_key_every")
null_value_every = opt("null_value_every")
headers_on = spec["headers"] == "1"
partitions = opt("partitions")
large_every = opt("large_every")
large_size = opt("large_size") or 0
ts_base = opt("timestamp_base")
block = bytes(range(256)) * (max(size, large_size) // 256 + 2)
errors = []
delivered = [0]
def on_delivery(err, msg):
    if err is not None:
        errors.append(f"partition {msg.partition()} offset {msg.offset()}: {err}")
    else:
        delivered[0] += 1
conf = {
    "bootstrap.servers": bootstrap,
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": spec["codec"],
    "linger.ms": int(spec["linger_ms"]),
    "batch.size": int(spec["batch_size"]),
    "partitioner": "murmur2_random",
    "on_delivery": on_delivery,
}
conf.update(extra)
producer = Producer(conf)
produce = producer.produce
poll = producer.poll
for i in range(count):
    if null_value_every and (i + 1) % null_value_every == 0:
        value = None
    else:
        n = large_size if large_every and (i + 1) % large_every == 0 else size
        prefix = b"value-%d:" % i
        start = i % 256
        value = prefix + block[start:start + max(0, n - len(prefix))]
    if key_spread is None or (null_key_every and (i + 1) % null_key_every == 0):
        key = None
    else:
        key = b"key-%d" % (i % key_spread)
    kwargs = {}
    if headers_on:
        kwargs["headers"] = [("h", b"1"), ("h", b"2"), ("empty", b""), ("null", None), ("seq", b"%d" % i)]
    if partitions:
        kwargs["partition"] = i % partitions
    if ts_base is not None:
        kwargs["timestamp"] = ts_base + i
    while True:
        try:
            produce(topic, value, key, **kwargs)
            break
        except BufferError:
            poll(0.05)
    if i % 1000 == 999:
        poll(0)
left = producer.flush(150)
if errors or left:
    sys.exit(
        f"librdkafka could not deliver to {topic!r} at {bootstrap}: {len(errors)} delivery errors, "
        f"{left} records still queued after flush, {delivered[0]} of {count} delivered; first errors: {errors[:5]}"
    )
print("delivered", delivered[0])
"#;

/// Produces the records `spec` describes to `topic` with librdkafka, flushes,
/// and returns how many were delivered (always the spec's count).
///
/// # Panics
///
/// On any delivery error or a record still queued after 150 s of flushing
/// (the message names the first errors), or when the script runs longer
/// than three minutes.
pub fn librdkafka_produce(bootstrap: &str, topic: &str, spec: &ProduceSpec) -> u64 {
    let args = spec.to_args();
    let mut argv = vec![bootstrap, topic];
    argv.extend(args.iter().map(String::as_str));
    let out = run_python(PRODUCE, &argv);
    let delivered = out
        .lines()
        .find_map(|line| line.strip_prefix("delivered "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("the produce script printed no delivery count: {out:?}"));
    assert_eq!(
        delivered, spec.count,
        "librdkafka delivered {delivered} of {} records to {topic:?}",
        spec.count
    );
    delivered
}

/// One record as librdkafka's consumer returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// The key; `None` is a null key.
    pub key: Option<Vec<u8>>,
    /// The value; `None` is a null value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// The headers in record order, repeats kept; `None` is a null value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// librdkafka's timestamp type: 0 none, 1 CreateTime, 2 LogAppendTime.
    pub timestamp_type: i32,
    /// The timestamp in milliseconds since the epoch.
    pub timestamp: i64,
}

/// One partition read to its end by [`librdkafka_consume_summary`]: counts
/// and the sequence numbers of [`ProduceSpec`] values, enough to check that
/// nothing was lost, order was kept, and how many duplicates there are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionSummary {
    /// Records read.
    pub count: u64,
    /// The first record's offset (`None` when empty).
    pub first_offset: Option<i64>,
    /// The last record's offset (`None` when empty).
    pub last_offset: Option<i64>,
    /// In offset order, the sequence number of each record: `i` from a
    /// value `value-{i}:...`, else from a `seq` header (null values with
    /// [`ProduceSpec::headers`]).
    pub sequences: Vec<u64>,
    /// Records with neither (null value without headers, foreign data).
    pub unnumbered: u64,
}

impl PartitionSummary {
    /// How many sequence numbers are repeats of one seen earlier.
    pub fn duplicates(&self) -> u64 {
        let distinct = self.distinct().len();
        (self.sequences.len() - distinct) as u64
    }

    /// The distinct sequence numbers.
    pub fn distinct(&self) -> BTreeSet<u64> {
        self.sequences.iter().copied().collect()
    }

    /// The first break of order: `(index, sequence, largest before it)`
    /// for the first record whose sequence is new yet smaller than one
    /// seen earlier. `None` means every new sequence came after all earlier
    /// ones; duplicates (a replayed run, as at-least-once delivery makes
    /// them) do not count as breaks.
    pub fn first_reorder(&self) -> Option<(usize, u64, u64)> {
        let mut seen = BTreeSet::new();
        let mut max: Option<u64> = None;
        for (index, &sequence) in self.sequences.iter().enumerate() {
            if seen.insert(sequence) {
                if let Some(max) = max.filter(|max| *max > sequence) {
                    return Some((index, sequence, max));
                }
                max = Some(max.map_or(sequence, |m| m.max(sequence)));
            }
        }
        None
    }

    /// The sequences of `expected` that never appear here, in the order
    /// given.
    pub fn missing(&self, expected: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let seen = self.distinct();
        expected.into_iter().filter(|s| !seen.contains(s)).collect()
    }
}

/// Python shared by the reader scripts: `watermarks(consumer, tp)` retries
/// what Apache Kafka answers for a moment after a leader change.
const WATERMARKS: &str = r#"
import time
from confluent_kafka import KafkaError, KafkaException

def watermarks(consumer, tp):
    # Right after a leader change Apache Kafka answers OFFSET_NOT_AVAILABLE
    # until the new leader's high-water mark catches up (KIP-207), or names
    # no leader for a moment: retry those for up to 60 s.
    retry = {KafkaError.OFFSET_NOT_AVAILABLE, KafkaError.LEADER_NOT_AVAILABLE,
             KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError._TIMED_OUT,
             KafkaError._TRANSPORT, KafkaError.REQUEST_TIMED_OUT}
    deadline = time.monotonic() + 60
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=30)
        except KafkaException as e:
            if e.args[0].code() not in retry or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
"#;

const CONSUME: &str = r#"
import sys, time, uuid
from confluent_kafka import Consumer, TopicPartition, KafkaError, KafkaException, OFFSET_BEGINNING
bootstrap, topic, mode, out_path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
IDLE = 30
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "kmirror-test-reader-" + uuid.uuid4().hex,
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
    "auto.offset.reset": "earliest",
})
md = consumer.list_topics(topic, timeout=30).topics.get(topic)
if md is None or md.error is not None:
    sys.exit(f"topic {topic!r} is not readable at {bootstrap}: {None if md is None else md.error}")
parts = sorted(md.partitions)
marks = {p: watermarks(consumer, TopicPartition(topic, p)) for p in parts}
out = open(out_path, "wb", buffering=1 << 22)
for p in parts:
    out.write(f"P {p} {marks[p][0]} {marks[p][1]}\n".encode())
pending = {p for p in parts if marks[p][1] > marks[p][0]}
if pending:
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
seqs = {p: [] for p in parts}
stats = {p: [0, -1, -1, 0] for p in parts}
last = {p: None for p in parts}
def size(b):
    return "-" if b is None else len(b)
idle_deadline = time.monotonic() + IDLE
while pending:
    msgs = consumer.consume(num_messages=10000, timeout=0.5)
    if msgs:
        idle_deadline = time.monotonic() + IDLE
    elif time.monotonic() > idle_deadline:
        sys.exit(
            f"no progress for {IDLE} s reading {topic!r} at {bootstrap}: partitions {sorted(pending)} "
            f"not at their end; watermarks {marks}; last offsets read {last}"
        )
    chunks = []
    add = chunks.append
    for m in msgs:
        p = m.partition()
        err = m.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                if m.offset() >= marks[p][1]:
                    pending.discard(p)
                continue
            sys.exit(f"consume error on {topic!r} partition {p}: {err}")
        o = m.offset()
        last[p] = o
        if o >= marks[p][1] - 1:
            pending.discard(p)
        if mode == "all":
            hs = [(k.encode(), v) for k, v in m.headers() or ()]
            tt, ts = m.timestamp()
            key, value = m.key(), m.value()
            add((
                f"R {p} {o} {tt} {ts} {size(key)} {size(value)} {len(hs)}"
                + "".join(f" {len(k)} {size(v)}" for k, v in hs)
                + "\n"
            ).encode())
            if key:
                add(key)
            if value:
                add(value)
            for k, v in hs:
                add(k)
                if v:
                    add(v)
        else:
            s = stats[p]
            s[0] += 1
            if s[1] < 0:
                s[1] = o
            s[2] = o
            v = m.value()
            n = None
            if v is not None and v.startswith(b"value-"):
                end = v.find(b":", 6)
                digits = v[6:end] if end >= 0 else v[6:]
                if digits.isdigit():
                    n = int(digits)
            if n is None:
                for k, hv in m.headers() or ():
                    if k == "seq" and hv is not None and hv.isdigit():
                        n = int(hv)
                        break
            if n is None:
                s[3] += 1
            else:
                seqs[p].append(n)
    if chunks:
        out.write(b"".join(chunks))
if mode == "summary":
    for p in parts:
        c, f, l, u = stats[p]
        out.write((f"S {p} {c} {f} {l} {u}" + "".join(f" {n}" for n in seqs[p]) + "\n").encode())
out.write(b"E\n")
out.close()
consumer.close()
print("ok")
"#;

/// A scratch directory removed on drop (kept when the thread panics).
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        scratch::remove_dir(&self.0, "librdkafka reader");
    }
}

/// Runs [`CONSUME`] in `mode` and parses its output file with `parse`.
fn consume<T>(
    bootstrap: &str,
    topic: &str,
    mode: &str,
    parse: impl FnOnce(&mut dyn BufRead) -> Result<T, String>,
) -> T {
    let dir = ScratchDir(scratch::new_dir("records"));
    let path = dir.0.join("out");
    let path_arg = path.to_string_lossy();
    run_python(
        &format!("{WATERMARKS}{CONSUME}"),
        &[bootstrap, topic, mode, &path_arg],
    );
    let file = File::open(&path)
        .unwrap_or_else(|e| panic!("cannot open the reader's output {}: {e}", path.display()));
    let mut reader = BufReader::with_capacity(1 << 20, file);
    parse(&mut reader).unwrap_or_else(|e| {
        panic!(
            "cannot parse librdkafka's reading of {topic:?} ({}): {e}",
            path.display()
        )
    })
}

/// Every record of every partition of `topic`, read with librdkafka from
/// the beginning to the high watermark queried first, per partition in
/// offset order (every partition present, empty ones too).
///
/// The consumer assigns the partitions explicitly (no group join), with a
/// random `group.id`, no commits and `isolation.level=read_committed`.
///
/// # Panics
///
/// If the topic does not exist, a read fails, or no progress is made for
/// 30 s before the watermarks are reached.
pub fn librdkafka_consume_all(bootstrap: &str, topic: &str) -> BTreeMap<i32, Vec<ConsumedRecord>> {
    consume(bootstrap, topic, "all", |reader| parse_records(reader))
}

/// Like [`librdkafka_consume_all`], but returns only a
/// [`PartitionSummary`] per partition (for topics too big to hold).
///
/// # Panics
///
/// As [`librdkafka_consume_all`].
pub fn librdkafka_consume_summary(bootstrap: &str, topic: &str) -> BTreeMap<i32, PartitionSummary> {
    consume(bootstrap, topic, "summary", |reader| {
        parse_summaries(reader)
    })
}

const OFFSETS: &str = r#"
import sys, uuid
from confluent_kafka import Consumer, TopicPartition, KafkaError, KafkaException
bootstrap, topic, mode = sys.argv[1], sys.argv[2], sys.argv[3]
group = sys.argv[4] if mode == "committed" else "kmirror-test-offsets-" + uuid.uuid4().hex
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
md = consumer.list_topics(topic, timeout=30).topics.get(topic)
if md is None or md.error is not None:
    sys.exit(f"topic {topic!r} is not readable at {bootstrap}: {None if md is None else md.error}")
parts = sorted(md.partitions)
if mode == "end":
    for p in parts:
        low, high = watermarks(consumer, TopicPartition(topic, p))
        print(f"O {p} {high}")
else:
    for tp in consumer.committed([TopicPartition(topic, p) for p in parts], timeout=30):
        if tp.error is not None:
            sys.exit(f"committed offset of {topic!r} partition {tp.partition} for group {group!r}: {tp.error}")
        print(f"O {tp.partition} {tp.offset if tp.offset >= 0 else '-'}")
print("E")
consumer.close()
"#;

/// The high watermark (end offset) of every partition of `topic`.
///
/// # Panics
///
/// If the topic does not exist or the broker does not answer.
pub fn librdkafka_end_offsets(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    let out = run_python(
        &format!("{WATERMARKS}{OFFSETS}"),
        &[bootstrap, topic, "end"],
    );
    parse_offsets(&out)
        .unwrap_or_else(|e| panic!("cannot parse the end offsets of {topic:?}: {e}\n{out}"))
        .into_iter()
        .map(|(partition, offset)| {
            let offset = offset.unwrap_or_else(|| {
                panic!("no end offset for {topic:?} partition {partition}: {out}")
            });
            (partition, offset)
        })
        .collect()
}

/// The offset `group` committed for every partition of `topic` (`None`
/// where it committed none), asked with librdkafka's `committed()` without
/// joining the group.
///
/// # Panics
///
/// If the topic does not exist or the broker does not answer.
pub fn librdkafka_committed_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> BTreeMap<i32, Option<i64>> {
    let out = run_python(
        &format!("{WATERMARKS}{OFFSETS}"),
        &[bootstrap, topic, "committed", group],
    );
    parse_offsets(&out).unwrap_or_else(|e| {
        panic!("cannot parse the committed offsets of {group:?} on {topic:?}: {e}\n{out}")
    })
}

/// Panics unless `source` and `destination` hold the same partitions with
/// the same records in the same order: key, value, headers (in order, with
/// repeats), timestamp type and timestamp. Offsets are not compared.
///
/// # Panics
///
/// At the first difference, naming the partition, the record's index (and
/// both offsets), the field, and both values (cut to 64 bytes), for example
/// `records differ: partition 2, record 17 (source offset 17, destination
/// offset 18): different value: source "value-17:...", destination null`.
pub fn assert_same_records(
    source: &BTreeMap<i32, Vec<ConsumedRecord>>,
    destination: &BTreeMap<i32, Vec<ConsumedRecord>>,
) {
    if let Err(message) = first_difference(source, destination) {
        panic!("records differ: {message}");
    }
}

/// The first difference between two readings, as [`assert_same_records`]
/// reports it.
fn first_difference(
    source: &BTreeMap<i32, Vec<ConsumedRecord>>,
    destination: &BTreeMap<i32, Vec<ConsumedRecord>>,
) -> Result<(), String> {
    let source_partitions: Vec<i32> = source.keys().copied().collect();
    let destination_partitions: Vec<i32> = destination.keys().copied().collect();
    if source_partitions != destination_partitions {
        return Err(format!(
            "partitions differ: source {source_partitions:?}, destination {destination_partitions:?}"
        ));
    }
    for (partition, src) in source {
        let dst = destination.get(partition).map_or(&[][..], Vec::as_slice);
        for (index, (s, d)) in src.iter().zip(dst).enumerate() {
            let field = if s.key != d.key {
                Some((
                    "key",
                    bytes_text(s.key.as_deref()),
                    bytes_text(d.key.as_deref()),
                ))
            } else if s.value != d.value {
                Some((
                    "value",
                    bytes_text(s.value.as_deref()),
                    bytes_text(d.value.as_deref()),
                ))
            } else if s.headers != d.headers {
                Some((
                    "headers",
                    headers_text(&s.headers),
                    headers_text(&d.headers),
                ))
            } else if s.timestamp_type != d.timestamp_type {
                Some((
                    "timestamp type",
                    s.timestamp_type.to_string(),
                    d.timestamp_type.to_string(),
                ))
            } else if s.timestamp != d.timestamp {
                Some((
                    "timestamp",
                    s.timestamp.to_string(),
                    d.timestamp.to_string(),
                ))
            } else {
                None
            };
            if let Some((field, s_text, d_text)) = field {
                return Err(format!(
                    "partition {partition}, record {index} (source offset {}, destination offset {}): \
                     different {field}: source {s_text}, destination {d_text}",
                    s.offset, d.offset
                ));
            }
        }
        if src.len() != dst.len() {
            let (more, extra) = if src.len() > dst.len() {
                ("source", src.get(dst.len()))
            } else {
                ("destination", dst.get(src.len()))
            };
            let extra = extra.map_or_else(String::new, |r| {
                format!(
                    "; first extra {more} record: offset {}, key {}, value {}",
                    r.offset,
                    bytes_text(r.key.as_deref()),
                    bytes_text(r.value.as_deref())
                )
            });
            return Err(format!(
                "partition {partition}: source has {} records, destination {}{extra}",
                src.len(),
                dst.len()
            ));
        }
    }
    Ok(())
}

/// Bytes for a failure message: `null`, or the first 64 bytes escaped in
/// quotes, with the full length when cut.
fn bytes_text(bytes: Option<&[u8]>) -> String {
    const MAX: usize = 64;
    let Some(bytes) = bytes else {
        return "null".to_owned();
    };
    let shown = bytes.get(..MAX).unwrap_or(bytes);
    let mut text = format!("\"{}\"", shown.escape_ascii());
    if shown.len() < bytes.len() {
        let _ = write!(text, "... ({} bytes)", bytes.len());
    }
    text
}

/// Headers for a failure message: `[name=value, ...]`, values as
/// [`bytes_text`].
fn headers_text(headers: &[(String, Option<Vec<u8>>)]) -> String {
    let parts: Vec<String> = headers
        .iter()
        .map(|(name, value)| format!("{}={}", name.escape_debug(), bytes_text(value.as_deref())))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Reads `reader` line by line (without the newline), calling `each` with
/// the line's fields and the reader (to take the bytes that follow the
/// line), until the `E` line.
fn for_each_line(
    reader: &mut dyn BufRead,
    mut each: impl FnMut(&[&[u8]], &mut dyn BufRead) -> Result<(), String>,
) -> Result<(), String> {
    let mut line = Vec::new();
    let mut number = 0_u64;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("read error after line {number}: {e}"))?;
        if read == 0 {
            return Err(format!(
                "the output ends after line {number} without its `E` line (truncated?)"
            ));
        }
        number += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let fields: Vec<&[u8]> = text.split(|b| *b == b' ').collect();
        if fields.first() == Some(&&b"E"[..]) && fields.len() == 1 {
            return Ok(());
        }
        each(&fields, reader).map_err(|e| {
            let shown = text.get(..120).unwrap_or(text);
            format!("line {number} ({}): {e}", shown.escape_ascii())
        })?;
    }
}

/// A cursor over one line's fields.
struct Fields<'a, 'b> {
    fields: std::slice::Iter<'b, &'a [u8]>,
}

impl<'a> Fields<'a, '_> {
    fn next(&mut self, what: &str) -> Result<&'a [u8], String> {
        self.fields
            .next()
            .copied()
            .ok_or_else(|| format!("the line ends before its {what}"))
    }

    fn number<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, String> {
        let field = self.next(what)?;
        std::str::from_utf8(field)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                format!(
                    "{what} {:?} is not a number",
                    field.escape_ascii().to_string()
                )
            })
    }

    /// A length field (`-` for null) and that many bytes from `reader`.
    fn bytes(&mut self, what: &str, reader: &mut dyn BufRead) -> Result<Option<Vec<u8>>, String> {
        if self.fields.as_slice().first() == Some(&&b"-"[..]) {
            self.fields.next();
            return Ok(None);
        }
        let len: u64 = self.number(&format!("{what} length"))?;
        let mut bytes = Vec::with_capacity(usize::try_from(len.min(1 << 24)).unwrap_or(0));
        reader
            .take(len)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("read error in the {what}: {e}"))?;
        if bytes.len() as u64 != len {
            return Err(format!(
                "the output ends {} bytes into a {len}-byte {what} (truncated?)",
                bytes.len()
            ));
        }
        Ok(Some(bytes))
    }

    fn end(&mut self) -> Result<(), String> {
        match self.fields.next() {
            None => Ok(()),
            Some(extra) => Err(format!(
                "unexpected field {:?} after the last one",
                extra.escape_ascii().to_string()
            )),
        }
    }
}

/// A cursor over `fields`.
fn fields_of<'a, 'b>(fields: &'b [&'a [u8]]) -> Fields<'a, 'b> {
    Fields {
        fields: fields.iter(),
    }
}

/// Parses a `P` line into the partition and its watermarks.
fn parse_partition_line(fields: &mut Fields<'_, '_>) -> Result<(i32, i64, i64), String> {
    let partition = fields.number("partition")?;
    let low = fields.number("low watermark")?;
    let high = fields.number("high watermark")?;
    fields.end()?;
    Ok((partition, low, high))
}

/// Parses the `P` and `R` lines of a full reading.
fn parse_records(reader: &mut dyn BufRead) -> Result<BTreeMap<i32, Vec<ConsumedRecord>>, String> {
    let mut partitions: BTreeMap<i32, Vec<ConsumedRecord>> = BTreeMap::new();
    for_each_line(reader, |line, reader| {
        let (kind, rest) = line.split_first().ok_or("empty line")?;
        let mut fields = Fields {
            fields: rest.iter(),
        };
        match *kind {
            b"P" => {
                let (partition, _, _) = parse_partition_line(&mut fields)?;
                partitions.entry(partition).or_default();
                Ok(())
            }
            b"R" => {
                let partition = fields.number("partition")?;
                let offset = fields.number("offset")?;
                let timestamp_type = fields.number("timestamp type")?;
                let timestamp = fields.number("timestamp")?;
                // The lengths come first, all on the line; then the bytes.
                let lengths = fields.fields.as_slice();
                let (key_value, header_fields) = lengths.split_at(2.min(lengths.len()));
                let count: usize = fields_of(header_fields).number("header count")?;
                let header_lengths = header_fields.get(1..).unwrap_or_default();
                if header_lengths.len() != 2 * count {
                    return Err(format!(
                        "{count} headers need {} length fields, the line has {}",
                        2 * count,
                        header_lengths.len()
                    ));
                }
                let mut kv = fields_of(key_value);
                let key = kv.bytes("key", reader)?;
                let value = kv.bytes("value", reader)?;
                let mut header_lengths = fields_of(header_lengths);
                let mut headers = Vec::with_capacity(count);
                for n in 0..count {
                    let name = header_lengths
                        .bytes("header name", reader)?
                        .ok_or_else(|| format!("header {n} has a null name"))?;
                    let name = String::from_utf8(name)
                        .map_err(|e| format!("header {n}'s name is not UTF-8: {e}"))?;
                    headers.push((name, header_lengths.bytes("header value", reader)?));
                }
                partitions
                    .get_mut(&partition)
                    .ok_or_else(|| format!("record of partition {partition}, not listed before"))?
                    .push(ConsumedRecord {
                        partition,
                        offset,
                        key,
                        value,
                        headers,
                        timestamp_type,
                        timestamp,
                    });
                Ok(())
            }
            other => Err(format!(
                "unknown line kind {:?}",
                other.escape_ascii().to_string()
            )),
        }
    })?;
    for records in partitions.values_mut() {
        // librdkafka delivers each partition in order; a refetch could repeat.
        records.sort_by_key(|r| r.offset);
        records.dedup_by_key(|r| r.offset);
    }
    Ok(partitions)
}

/// Parses the `P` and `S` lines of a summary reading.
fn parse_summaries(reader: &mut dyn BufRead) -> Result<BTreeMap<i32, PartitionSummary>, String> {
    let mut listed = BTreeSet::new();
    let mut summaries = BTreeMap::new();
    for_each_line(reader, |line, _| {
        let (kind, rest) = line.split_first().ok_or("empty line")?;
        let mut fields = Fields {
            fields: rest.iter(),
        };
        match *kind {
            b"P" => {
                let (partition, _, _) = parse_partition_line(&mut fields)?;
                listed.insert(partition);
                Ok(())
            }
            b"S" => {
                let partition: i32 = fields.number("partition")?;
                let count: u64 = fields.number("count")?;
                let first: i64 = fields.number("first offset")?;
                let last: i64 = fields.number("last offset")?;
                let unnumbered: u64 = fields.number("unnumbered count")?;
                let mut sequences = Vec::new();
                while fields.fields.len() > 0 {
                    sequences.push(fields.number("sequence")?);
                }
                if sequences.len() as u64 + unnumbered != count {
                    return Err(format!(
                        "{} sequences and {unnumbered} unnumbered do not add up to {count} records",
                        sequences.len()
                    ));
                }
                let offset = |o: i64| (count > 0 && o >= 0).then_some(o);
                summaries.insert(
                    partition,
                    PartitionSummary {
                        count,
                        first_offset: offset(first),
                        last_offset: offset(last),
                        sequences,
                        unnumbered,
                    },
                );
                Ok(())
            }
            other => Err(format!(
                "unknown line kind {:?}",
                other.escape_ascii().to_string()
            )),
        }
    })?;
    let summarized: BTreeSet<i32> = summaries.keys().copied().collect();
    if summarized != listed {
        return Err(format!(
            "partitions listed {listed:?} but summarized {summarized:?}"
        ));
    }
    Ok(summaries)
}

/// Parses `O` lines (and the `E` line) into offsets per partition.
fn parse_offsets(text: &str) -> Result<BTreeMap<i32, Option<i64>>, String> {
    let mut offsets = BTreeMap::new();
    let mut reader = text.as_bytes();
    for_each_line(&mut reader, |line, _| {
        let (kind, rest) = line.split_first().ok_or("empty line")?;
        if *kind != b"O" {
            return Err(format!(
                "unknown line kind {:?}",
                kind.escape_ascii().to_string()
            ));
        }
        let mut fields = Fields {
            fields: rest.iter(),
        };
        let partition: i32 = fields.number("partition")?;
        let offset = if fields.fields.as_slice().first() == Some(&&b"-"[..]) {
            fields.next("offset")?;
            None
        } else {
            Some(fields.number("offset")?)
        };
        fields.end()?;
        offsets.insert(partition, offset);
        Ok(())
    })?;
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64) -> ConsumedRecord {
        ConsumedRecord {
            partition,
            offset,
            key: Some(b"k".to_vec()),
            value: Some(format!("value-{offset}:").into_bytes()),
            headers: vec![("h".to_owned(), Some(b"1".to_vec()))],
            timestamp_type: 1,
            timestamp: 1000 + offset,
        }
    }

    #[test]
    fn parses_records_with_nulls_raw_bytes_and_repeated_headers() {
        // Payloads follow their line raw: newlines, spaces and any byte.
        let text: &[u8] = b"P 0 0 2\nP 1 5 5\nP 2 0 1\n\
              R 0 1 1 1700000000001 - 0 3 1 1 1 1 1 -\nh1h2n\
              R 0 0 1 1700000000000 1 6 0\nka\nb c\xff\
              R 2 0 2 5 1 1 0\nkv\
              R 0 0 1 1700000000000 1 6 0\nka\nb c\xff\
              E\n";
        let parsed = parse_records(&mut &text[..]).unwrap();
        assert_eq!(parsed.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
        let p0 = &parsed[&0];
        // Sorted by offset, the repeated offset 0 dropped.
        assert_eq!(p0.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(p0[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(p0[0].value.as_deref(), Some(&b"a\nb c\xff"[..]));
        assert_eq!(p0[1].key, None);
        assert_eq!(p0[1].value, Some(Vec::new()));
        assert_eq!(
            p0[1].headers,
            [
                ("h".to_owned(), Some(b"1".to_vec())),
                ("h".to_owned(), Some(b"2".to_vec())),
                ("n".to_owned(), None),
            ]
        );
        assert_eq!(
            (p0[1].timestamp_type, p0[1].timestamp),
            (1, 1_700_000_000_001)
        );
        assert!(parsed[&1].is_empty());
        assert_eq!(parsed[&2][0].timestamp_type, 2);
        assert_eq!(parsed[&2][0].value.as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn rejects_malformed_record_output() {
        let cases: [(&[u8], &str); 9] = [
            (b"P 0 0 1\nR 0 0 1 5 1 1 0\nkv", "without its `E` line"),
            (b"R 0 0 1 5 1 1 0\nkvE\n", "not listed before"),
            (b"P 0 0 1\nR 0 0 1 5 1 1 1 1\nkvhE\n", "2 length fields"),
            (b"P 0 0 1\nR 0 0 1 5 1 1 0 1\nkvE\n", "0 length fields"),
            (b"P 0 0 1\nR 0 zero 1 5 1 1 0\nkvE\n", "offset \"zero\""),
            (b"P 0 0 1\nR 0 0 1 5 - x 0\nE\n", "value length \"x\""),
            (
                b"P 0 0 1\nR 0 0 1 5 - 900 0\nshort",
                "5 bytes into a 900-byte value",
            ),
            (b"P 0 0 1\nR 0 0 1 5 - - 1 - -\nE\n", "null name"),
            (b"P 0 0 1\nQ\nE\n", "unknown line kind"),
        ];
        for (text, expected) in cases {
            let err = parse_records(&mut &text[..]).unwrap_err();
            assert!(err.contains(expected), "{}: {err}", text.escape_ascii());
        }
    }

    #[test]
    fn parses_summaries() {
        let text = "P 0 0 4\nP 1 0 0\nS 0 4 0 3 1 3 1 2\nS 1 0 -1 -1 0\nE\n";
        let parsed = parse_summaries(&mut text.as_bytes()).unwrap();
        let p0 = &parsed[&0];
        assert_eq!(p0.count, 4);
        assert_eq!((p0.first_offset, p0.last_offset), (Some(0), Some(3)));
        assert_eq!(p0.sequences, [3, 1, 2]);
        assert_eq!(p0.unnumbered, 1);
        assert_eq!(parsed[&1], PartitionSummary::default());
        let bad = "P 0 0 4\nS 0 4 0 3 0 1 2\nE\n";
        assert!(
            parse_summaries(&mut bad.as_bytes())
                .unwrap_err()
                .contains("do not add up")
        );
        let missing = "P 0 0 4\nP 1 0 0\nS 0 0 -1 -1 0\nE\n";
        assert!(
            parse_summaries(&mut missing.as_bytes())
                .unwrap_err()
                .contains("summarized")
        );
    }

    #[test]
    fn summary_counts_duplicates_and_finds_reorders() {
        let summary = |sequences: Vec<u64>| PartitionSummary {
            count: sequences.len() as u64,
            sequences,
            ..PartitionSummary::default()
        };
        let replayed = summary(vec![1, 2, 3, 2, 3, 4, 5]);
        assert_eq!(replayed.duplicates(), 2);
        assert_eq!(replayed.first_reorder(), None);
        assert_eq!(replayed.missing(0..7), [0, 6]);
        let swapped = summary(vec![1, 3, 2, 4]);
        assert_eq!(swapped.duplicates(), 0);
        assert_eq!(swapped.first_reorder(), Some((2, 2, 3)));
    }

    #[test]
    fn parses_offsets() {
        let parsed = parse_offsets("O 0 42\nO 1 -\nO 2 0\nE\n").unwrap();
        assert_eq!(
            parsed.into_iter().collect::<Vec<_>>(),
            [(0, Some(42)), (1, None), (2, Some(0))]
        );
        assert!(parse_offsets("O 0 42\n").is_err());
        assert!(parse_offsets("O 0 4x\nE\n").is_err());
        assert!(parse_offsets("O 0\nE\n").is_err());
    }

    #[test]
    fn parses_value_sequences() {
        assert_eq!(value_sequence(b"value-42:\x00\xff"), Some(42));
        assert_eq!(value_sequence(b"value-7"), Some(7));
        assert_eq!(value_sequence(b"value-:"), None);
        assert_eq!(value_sequence(b"value-4a:"), None);
        assert_eq!(value_sequence(b"other"), None);
    }

    #[test]
    fn spec_describes_each_record() {
        let spec = ProduceSpec::default()
            .keys(3)
            .null_key_every(7)
            .null_value_every(11)
            .headers(true)
            .partitions(4)
            .large_values(5, 300)
            .value_size(12)
            .timestamps(1000);
        assert_eq!(spec.expected_key(4), Some(b"key-1".to_vec()));
        assert_eq!(spec.expected_key(6), None);
        assert_eq!(spec.expected_value(10), None);
        assert_eq!(spec.expected_value(0).unwrap(), b"value-0:\x00\x01\x02\x03");
        assert_eq!(spec.expected_value(255).unwrap(), b"value-255:\xff\x00");
        assert_eq!(spec.expected_value(4).unwrap().len(), 300);
        assert_eq!(spec.expected_value(10000).unwrap(), b"value-10000:");
        assert_eq!(spec.expected_headers(9)[4].1.as_deref(), Some(&b"9"[..]));
        assert_eq!(spec.expected_partition(9), Some(1));
        assert_eq!(spec.expected_timestamp(9), Some(1009));
        let plain = ProduceSpec::default().null_keys();
        assert_eq!(plain.expected_key(1), None);
        assert!(plain.expected_headers(1).is_empty());
        assert_eq!(plain.expected_partition(1), None);
        assert_eq!(plain.expected_timestamp(1), None);
        let args = spec.config("message.max.bytes", "2000000").to_args();
        assert!(args.contains(&"partitions=4".to_owned()));
        assert!(args.contains(&"conf.message.max.bytes=2000000".to_owned()));
    }

    #[test]
    fn reports_the_first_difference_precisely() {
        let source: BTreeMap<i32, Vec<ConsumedRecord>> = [
            (0, vec![record(0, 0), record(0, 1)]),
            (1, vec![record(1, 0)]),
        ]
        .into();
        assert_eq!(first_difference(&source, &source), Ok(()));

        // Offsets alone do not matter.
        let mut shifted = source.clone();
        for r in shifted.values_mut().flatten() {
            r.offset += 10;
        }
        assert_eq!(first_difference(&source, &shifted), Ok(()));

        let mut changed = source.clone();
        changed.get_mut(&0).unwrap()[1].value = Some(vec![b'a'; 100]);
        let err = first_difference(&source, &changed).unwrap_err();
        assert!(
            err.starts_with(
                "partition 0, record 1 (source offset 1, destination offset 1): different value"
            ),
            "{err}"
        );
        assert!(
            err.contains(&format!("\"{}\"... (100 bytes)", "a".repeat(64))),
            "{err}"
        );

        let mut headers = source.clone();
        headers.get_mut(&1).unwrap()[0]
            .headers
            .push(("h".to_owned(), None));
        let err = first_difference(&source, &headers).unwrap_err();
        assert!(err.contains("partition 1, record 0"), "{err}");
        assert!(
            err.contains("different headers: source [h=\"1\"], destination [h=\"1\", h=null]"),
            "{err}"
        );

        let mut stamped = source.clone();
        stamped.get_mut(&0).unwrap()[0].timestamp_type = 2;
        let err = first_difference(&source, &stamped).unwrap_err();
        assert!(
            err.contains("different timestamp type: source 1, destination 2"),
            "{err}"
        );

        let mut shorter = source.clone();
        shorter.get_mut(&0).unwrap().pop();
        let err = first_difference(&source, &shorter).unwrap_err();
        assert!(
            err.starts_with("partition 0: source has 2 records, destination 1"),
            "{err}"
        );

        let mut fewer = source.clone();
        fewer.remove(&1);
        let err = first_difference(&source, &fewer).unwrap_err();
        assert_eq!(err, "partitions differ: source [0, 1], destination [0]");
    }
}
