//! Shared inputs for kmirror's criterion benchmarks (`cargo bench -p
//! kmirror-benches`): deterministic record corpora and batches, a Fetch
//! response frame builder, the two mirror paths as single functions, and a
//! small wall-clock timer for the summary tables.
//!
//! Everything here is deterministic: records come from a fixed-seed
//! [`XorShift64`], so two runs (and two machines) benchmark the same bytes.
//!
//! The bench binaries are:
//!
//! - `rewrite`: criterion groups `rewrite/16KiB` and `rewrite/1MiB` comparing
//!   the passthrough header rewrite with CRC-32C alone, a memcpy, and the whole
//!   Fetch-to-Produce passthrough path.
//! - `rewrite_ratio`: the same four operations timed with [`time_interleaved`],
//!   printed as a table of ns/iter, GB/s and the ratio to CRC-32C.
//! - `slow_path`: criterion groups `slow_path/<codec>` (decode, decode+encode,
//!   passthrough rewrite of the compressed batch) and `slow_path/convert`
//!   (lz4 to zstd).
//! - `slow_path_table`: MB/s per codec for the slow path, as a table.
//!
//! Run without `--bench` (as `cargo test --benches` does), every binary does
//! one quick pass instead of a measurement: see [`bench_mode`].

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kmirror_protocol::compression::Compression;
use kmirror_protocol::header::decode_response_header;
use kmirror_protocol::kafka_protocol::messages::ApiKey;
use kmirror_protocol::kafka_protocol::protocol::StrBytes;
use kmirror_protocol::messages::fetch::decode_fetch_response;
use kmirror_protocol::messages::produce::{
    ProduceFrame, ProducePartition, ProduceRequest, ProduceTopic, encode_produce_request,
};
use kmirror_protocol::record::{
    BatchBuilder, Disposition, LogEntry, PassthroughPolicy, ProduceBatch, ProducerStamp, Record,
    RecordBatchView, RecordBatches, classify, rewrite_for_produce,
};

/// The error type of the path functions: whatever the protocol crate
/// reports, or a description of an unexpected disposition.
pub type BenchError = Box<dyn Error + Send + Sync>;

/// One kibibyte.
pub const KIB: usize = 1024;
/// One mebibyte.
pub const MIB: usize = 1024 * KIB;

/// The encoded size each corpus record aims at (length prefix included):
/// the "1 KiB records" of every benchmark.
pub const RECORD_SIZE: usize = KIB;

/// Encoded bytes of a corpus record besides its value: length prefix (2),
/// attributes (1), timestamp and offset deltas (up to 2 each), the key and
/// its length (11), the value's length (2), and one header with its count
/// (31): 51 bytes. With the value filling the rest, a record encodes to
/// [`RECORD_SIZE`] bytes (a few less for the first 64 records of a batch,
/// whose deltas take one byte).
pub const RECORD_OVERHEAD: usize = 51;

/// The single header every corpus record carries.
pub const RECORD_HEADER: (&[u8], &[u8]) = (b"content-type", b"application/json");

/// The Fetch version the benchmarks decode: the highest kmirror speaks, and
/// what a current broker negotiates.
pub const FETCH_VERSION: i16 = 16;
/// The Produce version the benchmarks encode: the highest kmirror speaks.
pub const PRODUCE_VERSION: i16 = 12;

/// `baseOffset` of every source-like batch: a partition well past its start.
pub const SOURCE_BASE_OFFSET: i64 = 1_234_567;
/// `partitionLeaderEpoch` of every source-like batch.
pub const SOURCE_LEADER_EPOCH: i32 = 7;
/// The idempotent producer that wrote the source batches.
pub const SOURCE_STAMP: ProducerStamp = ProducerStamp {
    producer_id: 31_337,
    producer_epoch: 2,
    base_sequence: 4_096,
};
/// The producer fields kmirror stamps into what it re-produces.
pub const MIRROR_STAMP: ProducerStamp = ProducerStamp {
    producer_id: 4_242,
    producer_epoch: 0,
    base_sequence: 0,
};
/// Timestamp of the first record of every corpus batch (ms since the epoch).
pub const BASE_TIMESTAMP: i64 = 1_700_000_000_000;
/// The cap passed to [`RecordBatchView::records`]: larger than any corpus
/// batch decompresses to.
pub const DECOMPRESS_CAP: usize = 64 * MIB;
/// The destination topic of the Produce requests.
pub const TOPIC: &str = "mirror.events";
/// The source topic's id in the Fetch responses (v13+ name topics by id).
pub const TOPIC_ID: [u8; 16] = *b"kmirror-bench-id";
/// The seed of every corpus.
pub const SEED: u64 = 0x6b6d_6972_726f_7221;

/// A xorshift64 generator (Marsaglia, shifts 13/7/17): tiny, fast and
/// deterministic. Not for anything but test data.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator seeded with `seed` (0 is replaced by a fixed non-zero
    /// value, since xorshift never leaves the all-zero state).
    pub fn new(seed: u64) -> Self {
        Self {
            state: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// A number in `0..n` (`n > 0`; modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One element of `items`, chosen uniformly.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let len = u64::try_from(items.len()).unwrap_or(u64::MAX);
        let i = usize::try_from(self.below(len)).unwrap_or(0);
        &items[i]
    }
}

const EVENTS: &[&str] = &[
    "page_view",
    "add_to_cart",
    "checkout",
    "search",
    "login",
    "logout",
    "purchase",
    "click",
];
const PATHS: &[&str] = &["/product/", "/category/", "/search?q=", "/cart/", "/user/"];
const COUNTRIES: &[&str] = &["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL", "SE", "BR"];
const STATUSES: &[u16] = &[200, 200, 200, 200, 200, 201, 204, 304, 404, 500];

/// Appends one JSON line describing a made-up web event, about 200 bytes:
/// repeated field names and small vocabularies (which every codec
/// compresses) around random ids and numbers (which only an entropy coder
/// shrinks, a little). A 1 MiB batch of them compresses about 5x with zstd
/// and gzip, about 3x with lz4 and snappy.
pub fn push_json_event(rng: &mut XorShift64, timestamp: i64, out: &mut Vec<u8>) {
    use std::io::Write;
    let id = rng.next_u64() >> 16;
    let user = rng.below(10_000);
    let event = rng.pick(EVENTS);
    let path = rng.pick(PATHS);
    let target = rng.below(100_000);
    let status = rng.pick(STATUSES);
    let latency = rng.below(100_000);
    let country = rng.pick(COUNTRIES);
    let cents = rng.below(100_000);
    // Writing into a Vec cannot fail.
    let _ = writeln!(
        out,
        r#"{{"ts":{timestamp},"id":"{id:012x}","user":"user-{user:05}","event":"{event}","path":"{path}{target}","status":{status},"latency_ms":{}.{:03},"country":"{country}","amount":{}.{:02}}}"#,
        latency / 1000,
        latency % 1000,
        cents / 100,
        cents % 100,
    );
}

/// A record value of exactly `len` bytes: JSON event lines (see
/// [`push_json_event`]), the last one cut to fit and ended by a newline.
pub fn json_value(rng: &mut XorShift64, timestamp: i64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 256);
    while out.len() < len {
        push_json_event(rng, timestamp, &mut out);
    }
    out.truncate(len);
    if let Some(last) = out.last_mut() {
        *last = b'\n';
    }
    out
}

/// The records of a corpus batch: `(timestamp, key, value)`, each encoding
/// to about [`RECORD_SIZE`] bytes with [`RECORD_HEADER`], enough of them
/// for `uncompressed_bytes` of records (at least one).
pub fn corpus_records(uncompressed_bytes: usize, seed: u64) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    let mut rng = XorShift64::new(seed);
    let count = (uncompressed_bytes / RECORD_SIZE).max(1);
    (0..count)
        .map(|i| {
            let timestamp = BASE_TIMESTAMP + i64::try_from(i).unwrap_or(0);
            let key = format!("user-{:05}", rng.below(100_000)).into_bytes();
            let value = json_value(&mut rng, timestamp, RECORD_SIZE - RECORD_OVERHEAD);
            (timestamp, key, value)
        })
        .collect()
}

/// A batch as a source broker serves it: the records of
/// [`corpus_records`]`(uncompressed_bytes, seed)` compressed with `codec`,
/// `baseOffset` [`SOURCE_BASE_OFFSET`], leader epoch
/// [`SOURCE_LEADER_EPOCH`], the producer fields of [`SOURCE_STAMP`], and a
/// valid CRC.
///
/// # Panics
///
/// If the protocol crate refuses to build the batch (a bug there).
pub fn source_batch(codec: Compression, uncompressed_bytes: usize, seed: u64) -> Bytes {
    let mut builder = BatchBuilder::new(codec);
    for (timestamp, key, value) in corpus_records(uncompressed_bytes, seed) {
        let (hk, hv) = RECORD_HEADER;
        builder
            .push(
                timestamp,
                Some(&key),
                Some(&value),
                [(hk, Some(hv))].into_iter(),
            )
            .expect("push a corpus record");
    }
    let built = builder.build(SOURCE_STAMP).expect("build a corpus batch");
    let mut raw = built.to_bytes().to_vec();
    // Neither field is covered by the CRC (it starts at the attributes).
    raw[0..8].copy_from_slice(&SOURCE_BASE_OFFSET.to_be_bytes());
    raw[12..16].copy_from_slice(&SOURCE_LEADER_EPOCH.to_be_bytes());
    Bytes::from(raw)
}

/// Views a batch made by [`source_batch`].
///
/// # Panics
///
/// If `batch` is not one v2 batch.
pub fn view(batch: &Bytes) -> RecordBatchView {
    RecordBatchView::new(batch.clone()).expect("a corpus batch is one v2 batch")
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// A Fetch response frame as [`kmirror_protocol::FrameDecoder`] hands it
/// out (response header and body, no size prefix) at a flexible `version`
/// (12 to 16), with one topic (named [`TOPIC`] up to v12, [`TOPIC_ID`] from
/// v13), one partition (index 0) holding `records`, and an empty aborted
/// transaction list (a READ_COMMITTED fetch). The records are copied once
/// into the frame, as the network would have put them there.
///
/// # Panics
///
/// If `version` is not 12 to 16.
pub fn fetch_response_frame(records: &[u8], version: i16, correlation_id: i32) -> Bytes {
    assert!((12..=16).contains(&version), "flexible Fetch versions only");
    let mut buf = BytesMut::with_capacity(records.len() + 128);
    // Response header v1: correlation id and no tagged fields.
    buf.put_i32(correlation_id);
    put_uvarint(&mut buf, 0);
    buf.put_i32(0); // throttle_time_ms
    buf.put_i16(0); // error_code
    buf.put_i32(0); // session_id
    put_uvarint(&mut buf, 1 + 1); // one topic
    if version >= 13 {
        buf.put_slice(&TOPIC_ID);
    } else {
        put_uvarint(&mut buf, TOPIC.len() as u64 + 1);
        buf.put_slice(TOPIC.as_bytes());
    }
    put_uvarint(&mut buf, 1 + 1); // one partition
    buf.put_i32(0); // partition_index
    buf.put_i16(0); // error_code
    let end = SOURCE_BASE_OFFSET + 1_000_000;
    buf.put_i64(end); // high_watermark
    buf.put_i64(end); // last_stable_offset
    buf.put_i64(0); // log_start_offset
    put_uvarint(&mut buf, 1); // aborted_transactions: empty
    buf.put_i32(-1); // preferred_read_replica
    put_uvarint(&mut buf, records.len() as u64 + 1);
    buf.put_slice(records);
    put_uvarint(&mut buf, 0); // partition tagged fields
    put_uvarint(&mut buf, 0); // topic tagged fields
    put_uvarint(&mut buf, 0); // response tagged fields
    buf.freeze()
}

/// The passthrough path for one Fetch response frame at [`FETCH_VERSION`],
/// as the mirror runs it: strip the response header, decode the response,
/// cut each partition's records into batches, check aborted transactions,
/// [`classify`] each batch, [`rewrite_for_produce`] it with `stamp` (the
/// mirror's path with `check.crcs=false`, which does not read the payload;
/// by default it uses `rewrite_verified`, one CRC pass more), and encode
/// the Produce request (to [`TOPIC`], at [`PRODUCE_VERSION`]) as chunks for
/// a vectored write. No payload byte is copied.
///
/// A batch that does not pass through is an error: the corpus is built so
/// that every batch does.
pub fn passthrough(
    frame: &Bytes,
    policy: &PassthroughPolicy,
    stamp: ProducerStamp,
) -> Result<ProduceFrame, BenchError> {
    let (_correlation_id, body) =
        decode_response_header(frame.clone(), ApiKey::Fetch, FETCH_VERSION)?;
    let response = decode_fetch_response(body, FETCH_VERSION)?;
    let mut partitions = Vec::new();
    for topic in response.topics {
        for partition in topic.partitions {
            let mut aborted = partition.aborted_filter();
            let Some(records) = partition.records else {
                continue;
            };
            for entry in RecordBatches::new(records) {
                let LogEntry::Batch(view) = entry? else {
                    return Err("unexpected legacy message set".into());
                };
                let is_aborted = aborted.is_aborted(&view);
                match classify(view.header(), policy, is_aborted) {
                    Disposition::Passthrough => partitions.push(ProducePartition {
                        index: partition.partition_index,
                        batch: rewrite_for_produce(&view, stamp),
                    }),
                    other => return Err(format!("batch not passed through: {other:?}").into()),
                }
            }
        }
    }
    let request = ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30_000,
        topics: vec![ProduceTopic {
            name: StrBytes::from_static_str(TOPIC),
            partitions,
        }],
    };
    Ok(encode_produce_request(
        &request,
        PRODUCE_VERSION,
        1,
        Some("kmirror"),
    )?)
}

/// The policy under which every corpus batch passes through: a fetch at
/// [`SOURCE_BASE_OFFSET`], codecs kept, no size limit.
pub fn passthrough_policy() -> PassthroughPolicy {
    PassthroughPolicy::at(SOURCE_BASE_OFFSET)
}

/// The decode half of the slow path: decompress the payload and read every
/// record. Returns the record count and the key and value bytes seen, so
/// that nothing can be optimised away.
pub fn decode_records(view: &RecordBatchView) -> Result<(usize, usize), BenchError> {
    let mut count = 0;
    let mut bytes = 0;
    for record in view.records(DECOMPRESS_CAP)? {
        let record = record?;
        count += 1;
        bytes += record.key.as_ref().map_or(0, Bytes::len)
            + record.value.as_ref().map_or(0, Bytes::len)
            + record.headers.len();
    }
    Ok((count, bytes))
}

/// The whole slow path for one batch: decompress, read every record, push
/// each into `builder` (whose codec decides the output's) with its absolute
/// timestamp, and build the new batch with `stamp`. The builder is left
/// empty, ready for reuse.
pub fn reencode(
    view: &RecordBatchView,
    builder: &mut BatchBuilder,
    stamp: ProducerStamp,
) -> Result<ProduceBatch, BenchError> {
    let header = view.header();
    for record in view.records(DECOMPRESS_CAP)? {
        let record = record?;
        builder.push_record(&record, record.timestamp(header))?;
    }
    Ok(builder.build(stamp)?)
}

/// Offset of the first byte the batch CRC covers (the attributes).
pub const CRC_START: usize = 21;

/// The inputs of the `rewrite` and `rewrite_ratio` benches for one batch
/// size, and the four operations they time. Both binaries call these
/// methods, so they measure the same code.
#[derive(Debug, Clone)]
pub struct RewriteCase {
    /// `16KiB` or `1MiB`: the group name's suffix.
    pub label: &'static str,
    /// The source-like batch (codec none).
    pub batch: Bytes,
    /// The batch's view.
    pub view: RecordBatchView,
    /// A Fetch response frame at [`FETCH_VERSION`] holding only the batch.
    pub frame: Bytes,
    /// A policy under which the batch passes through.
    pub policy: PassthroughPolicy,
}

impl RewriteCase {
    /// The case for a batch of about `bytes` bytes of 1 KiB records.
    pub fn new(label: &'static str, bytes: usize) -> Self {
        let batch = source_batch(Compression::None, bytes, SEED);
        Self {
            label,
            view: view(&batch),
            frame: fetch_response_frame(&batch, FETCH_VERSION, 1),
            policy: passthrough_policy(),
            batch,
        }
    }

    /// The two cases of the benchmarks: 16 KiB and 1 MiB.
    pub fn all() -> [Self; 2] {
        [Self::new("16KiB", 16 * KIB), Self::new("1MiB", MIB)]
    }

    /// The bytes the CRC covers: byte 21 to the end of the batch.
    pub fn crc_covered(&self) -> &[u8] {
        &self.batch[CRC_START..]
    }

    /// (a) The passthrough rewrite: a new header and a CRC-32C over the
    /// payload.
    pub fn rewrite(&self) -> ProduceBatch {
        rewrite_for_produce(black_box(&self.view), MIRROR_STAMP)
    }

    /// (a') The rewrite that also verifies the source CRC, in the same
    /// single pass over the payload (what the engine runs with check.crcs).
    pub fn rewrite_verified(&self) -> ProduceBatch {
        kmirror_protocol::record::rewrite_verified(black_box(&self.view), MIRROR_STAMP)
            .expect("the bench batch has a valid CRC")
    }

    /// (b) CRC-32C alone over [`RewriteCase::crc_covered`].
    pub fn crc32c(&self) -> u32 {
        crc32c::crc32c(black_box(self.crc_covered()))
    }

    /// (c) A memcpy of [`RewriteCase::crc_covered`] into `dst`, which must
    /// be exactly that long (preallocated by the caller).
    pub fn memcpy(&self, dst: &mut [u8]) {
        black_box(dst).copy_from_slice(black_box(self.crc_covered()));
    }

    /// (d) The whole passthrough path: Fetch response frame in, Produce
    /// request chunks out (see [`passthrough`]).
    ///
    /// # Panics
    ///
    /// If the batch does not pass through (a bug in the corpus or the path).
    pub fn passthrough(&self) -> ProduceFrame {
        passthrough(black_box(&self.frame), &self.policy, MIRROR_STAMP)
            .expect("the corpus batch passes through")
    }
}

/// The inputs of the `slow_path` and `slow_path_table` benches for one
/// codec, and the operations they time.
#[derive(Debug, Clone)]
pub struct SlowPathCase {
    /// The batch's codec.
    pub codec: Compression,
    /// The source-like batch: 1 MiB of 1 KiB records compressed with `codec`.
    pub batch: Bytes,
    /// The batch's view.
    pub view: RecordBatchView,
    /// Size of the same batch without compression: the throughput basis.
    pub uncompressed_len: usize,
}

impl SlowPathCase {
    /// The case for `codec`: the same records (fixed seed) for every codec.
    pub fn new(codec: Compression) -> Self {
        let batch = source_batch(codec, MIB, SEED);
        let uncompressed_len = source_batch(Compression::None, MIB, SEED).len();
        Self {
            codec,
            view: view(&batch),
            batch,
            uncompressed_len,
        }
    }

    /// One case per codec, in id order.
    pub fn all() -> Vec<Self> {
        Compression::ALL.into_iter().map(Self::new).collect()
    }

    /// Uncompressed size over compressed size.
    pub fn compression_ratio(&self) -> f64 {
        self.uncompressed_len as f64 / self.batch.len() as f64
    }

    /// Decompress and read every record (see [`decode_records`]).
    ///
    /// # Panics
    ///
    /// If the batch does not decode (a bug in the protocol crate).
    pub fn decode(&self) -> (usize, usize) {
        decode_records(black_box(&self.view)).expect("the corpus batch decodes")
    }

    /// Decode and re-encode into `builder` (see [`reencode`]).
    ///
    /// # Panics
    ///
    /// If the batch does not decode or re-encode (a bug in the protocol
    /// crate).
    pub fn reencode(&self, builder: &mut BatchBuilder) -> ProduceBatch {
        reencode(black_box(&self.view), builder, MIRROR_STAMP).expect("the corpus batch re-encodes")
    }

    /// The batch's records, decoded once (the input of
    /// [`SlowPathCase::encode`]).
    ///
    /// # Panics
    ///
    /// If the batch does not decode (a bug in the protocol crate).
    pub fn decoded(&self) -> Vec<Record> {
        self.view
            .records(DECOMPRESS_CAP)
            .and_then(Iterator::collect)
            .expect("the corpus batch decodes")
    }

    /// The encode half of the slow path alone: push already decoded
    /// `records` into `builder` and build.
    ///
    /// # Panics
    ///
    /// If the builder refuses them (a bug in the protocol crate).
    pub fn encode(&self, records: &[Record], builder: &mut BatchBuilder) -> ProduceBatch {
        let header = self.view.header();
        for record in black_box(records) {
            builder
                .push_record(record, record.timestamp(header))
                .expect("push a decoded record");
        }
        builder.build(MIRROR_STAMP).expect("build the batch")
    }

    /// The passthrough rewrite of the (compressed) batch, for comparison.
    pub fn rewrite(&self) -> ProduceBatch {
        rewrite_for_produce(black_box(&self.view), MIRROR_STAMP)
    }
}

/// Criterion options that take a value as the next argument: that value is
/// not a benchmark filter.
const VALUE_OPTIONS: &[&str] = &[
    "--save-baseline",
    "-s",
    "--baseline",
    "-b",
    "--baseline-lenient",
    "--load-baseline",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--profile-time",
    "--output-format",
    "--color",
    "-c",
    "--plotting-backend",
    "--format",
];

/// Whether a custom table binary named `name` should stand aside for this
/// command line, as criterion's own binaries do: on `--list` (after printing
/// its name, as criterion lists a benchmark) and when filters are given
/// (`cargo bench -p kmirror-benches -- FILTER`) of which none is a substring
/// of `name`.
pub fn skip_table(name: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{name}: benchmark");
        return true;
    }
    let mut filters = Vec::new();
    let mut skip_value = false;
    for arg in &args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if arg.starts_with('-') {
            skip_value = VALUE_OPTIONS.contains(&arg.as_str());
        } else {
            filters.push(arg.as_str());
        }
    }
    !filters.is_empty() && !filters.iter().any(|f| name.contains(f))
}

/// Whether the binary was started by `cargo bench` (which passes `--bench`)
/// rather than by `cargo test`, in which case the custom tables do one
/// quick pass only.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Wall-clock samples of several operations, taken by
/// [`time_interleaved`].
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// `ns[op][round]`: nanoseconds per call of operation `op` in `round`.
    pub ns: Vec<Vec<f64>>,
}

impl Samples {
    /// The median over the rounds of operation `op`'s nanoseconds per call.
    pub fn median(&self, op: usize) -> f64 {
        median(self.ns[op].clone())
    }

    /// The median over the rounds of `op`'s time divided by `base`'s time in
    /// the same round: steadier than a ratio of medians when the machine's
    /// load changes during the run.
    pub fn median_ratio(&self, op: usize, base: usize) -> f64 {
        median(
            self.ns[op]
                .iter()
                .zip(&self.ns[base])
                .map(|(o, b)| o / b)
                .collect(),
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Times `ops` with the wall clock, interleaved so that a burst of load on a
/// shared machine hits them all alike: each operation first runs for about
/// `round` (a warm-up that also counts how many calls fit in `round`), then
/// every one of `rounds` rounds times that many calls of each operation in
/// turn.
pub fn time_interleaved(rounds: usize, round: Duration, ops: &mut [&mut dyn FnMut()]) -> Samples {
    let iters: Vec<u32> = ops
        .iter_mut()
        .map(|op| {
            let start = Instant::now();
            let mut n = 0u32;
            while n == 0 || start.elapsed() < round {
                op();
                n += 1;
            }
            n
        })
        .collect();
    let mut ns = vec![Vec::with_capacity(rounds); ops.len()];
    for _ in 0..rounds.max(1) {
        for ((op, &n), samples) in ops.iter_mut().zip(&iters).zip(&mut ns) {
            let start = Instant::now();
            for _ in 0..n {
                op();
            }
            samples.push(start.elapsed().as_nanos() as f64 / f64::from(n));
        }
    }
    Samples { ns }
}

/// The rounds and round length of the custom tables: 9 rounds of 60 ms
/// under `cargo bench`, one short round otherwise.
pub fn table_timing() -> (usize, Duration) {
    if bench_mode() {
        (9, Duration::from_millis(60))
    } else {
        (1, Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmirror_protocol::kafka_protocol::messages::{FetchResponse, ResponseHeader};
    use kmirror_protocol::kafka_protocol::protocol::Decodable;
    use kmirror_protocol::messages::produce::decode_produce_request;

    #[test]
    fn xorshift_is_deterministic() {
        let a: Vec<u64> = {
            let mut r = XorShift64::new(1);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = XorShift64::new(1);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(XorShift64::new(0).next_u64(), 0);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }

    #[test]
    fn corpus_records_are_about_one_kib() {
        let batch = source_batch(Compression::None, MIB, SEED);
        let v = view(&batch);
        let h = v.header();
        assert_eq!(h.record_count, 1024);
        assert_eq!(h.base_offset, SOURCE_BASE_OFFSET);
        assert_eq!(h.partition_leader_epoch, SOURCE_LEADER_EPOCH);
        assert_eq!(h.producer_id, SOURCE_STAMP.producer_id);
        v.verify_crc().unwrap();
        let per_record = (batch.len() - 61) as f64 / 1024.0;
        assert!((1020.0..=1024.0).contains(&per_record), "{per_record}");
        assert_eq!(decode_records(&v).unwrap().0, 1024);
    }

    #[test]
    fn fetch_frame_decodes_with_kafka_protocol_and_ours() {
        let records = source_batch(Compression::None, 16 * KIB, SEED);
        for version in 12..=16 {
            let frame = fetch_response_frame(&records, version, 42);
            let mut buf = frame.clone();
            let header = ResponseHeader::decode(&mut buf, 1).unwrap();
            assert_eq!(header.correlation_id, 42);
            let theirs = FetchResponse::decode(&mut buf, version).unwrap();
            assert!(buf.is_empty(), "v{version}: trailing bytes");
            let p = &theirs.responses[0].partitions[0];
            assert_eq!(p.records.as_ref().unwrap(), &records);

            let (_, body) = decode_response_header(frame, ApiKey::Fetch, version).unwrap();
            let ours = decode_fetch_response(body, version).unwrap();
            assert_eq!(
                ours.topics[0].partitions[0].records.as_ref(),
                Some(&records)
            );
        }
    }

    #[test]
    fn passthrough_produces_the_rewritten_batch() {
        let records = source_batch(Compression::Lz4, 16 * KIB, SEED);
        let frame = fetch_response_frame(&records, FETCH_VERSION, 1);
        let produce = passthrough(&frame, &passthrough_policy(), MIRROR_STAMP).unwrap();
        let decoded = decode_produce_request(produce.to_contiguous().slice(4..)).unwrap();
        let batch = decoded.topics[0].1[0].1.clone().unwrap();
        let v = view(&batch);
        v.verify_crc().unwrap();
        assert_eq!(v.header().base_offset, 0);
        assert_eq!(v.header().producer_id, MIRROR_STAMP.producer_id);
        assert_eq!(v.payload(), records.slice(61..));
    }

    #[test]
    fn slow_path_keeps_every_record_and_compresses() {
        let plain = source_batch(Compression::None, 64 * KIB, SEED);
        for codec in Compression::ALL {
            let batch = source_batch(codec, 64 * KIB, SEED);
            let mut builder = BatchBuilder::new(Compression::Zstd);
            let rebuilt = reencode(&view(&batch), &mut builder, MIRROR_STAMP).unwrap();
            let rebuilt = view(&rebuilt.to_bytes());
            assert_eq!(
                decode_records(&rebuilt).unwrap(),
                decode_records(&view(&plain)).unwrap()
            );
            if codec != Compression::None {
                assert!(batch.len() * 2 < plain.len(), "{codec}: {}", batch.len());
            }
        }
    }
}
