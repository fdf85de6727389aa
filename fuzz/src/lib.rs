//! Shared helpers of kmirror's fuzz targets.
//!
//! The targets in `fuzz_targets/` are thin: they cut their input and hand it
//! to the walkers here, which drive every reader of the protocol crate the
//! way the mirror does and check the invariants the crate documents. A
//! broken invariant is a panic, which libFuzzer reports as a crash.
//!
//! Every target also runs under [`within_alloc_budget`]: a counting global
//! allocator fails an input whose Rust heap grows far beyond its size, the
//! "hostile count makes us allocate gigabytes" class of bug that
//! `-malloc_limit_mb` only catches for a single huge allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use kmirror_protocol::compression::{self, Compression};
use kmirror_protocol::error::CompressionError;
use kmirror_protocol::record::legacy::{LegacyRecord, read_legacy_entry, up_convert};
use kmirror_protocol::record::{
    AbortedTransactionFilter, BATCH_HEADER_LEN, BatchBuilder, BatchHeader, ControlRecordType,
    Disposition, Header, LogEntry, PassthroughPolicy, ProducerStamp, Record, RecordBatchView,
    RecordBatches, RecordIter, classify, rewrite_for_produce,
};

/// The decompression cap every target uses (the mirror's is larger; the
/// fuzzer only needs the cap to be enforced, not to be big).
pub const CAP: usize = 1 << 20;

// ---------------------------------------------------------------------------
// Allocation budget
// ---------------------------------------------------------------------------

/// The global allocator of every fuzz target: the system allocator (ASan's,
/// under the sanitizer) plus a count of live bytes and their peak.
struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl CountingAlloc {
    fn grew(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments and
// only updates counters besides.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            Self::grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Fixed part of the budget: decompression up to [`CAP`] (a growing `Vec`
/// may hold twice its length while it reallocates), codec state and the
/// harness's own copies.
const BUDGET_FIXED: usize = 4 * CAP + (8 << 20);

/// Bytes of Rust heap allowed per input byte: a decoded message may be
/// larger in memory than on the wire (a one-byte array element can become a
/// struct of a few hundred bytes), but never by more than this.
const BUDGET_PER_INPUT_BYTE: usize = 512;

/// Runs `f` on an input of `input_len` bytes and panics if the Rust heap grew
/// by more than `BUDGET_FIXED + BUDGET_PER_INPUT_BYTE * input_len` at any
/// moment during the call. (Allocations of C codecs are not seen here;
/// `-malloc_limit_mb` and `-rss_limit_mb` cover them.)
pub fn within_alloc_budget<R>(input_len: usize, f: impl FnOnce() -> R) -> R {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    let budget = BUDGET_FIXED + BUDGET_PER_INPUT_BYTE * input_len;
    assert!(
        grew <= budget,
        "heap grew by {grew} bytes on an input of {input_len} bytes (budget {budget})"
    );
    out
}

// ---------------------------------------------------------------------------
// Record bytes: batches, records, legacy messages
// ---------------------------------------------------------------------------

/// Aborted transactions to test `records` against: every transactional,
/// non-control batch is taken as the start of an aborted transaction of its
/// producer, so the filter has work on any input that has such batches.
pub fn aborted_list_of(records: &Bytes) -> Vec<(i64, i64)> {
    RecordBatches::new(records.clone())
        .map_while(Result::ok)
        .filter_map(|entry| match entry {
            LogEntry::Batch(v) if v.header().is_transactional() && !v.header().is_control() => {
                Some((v.header().producer_id, v.header().base_offset))
            }
            _ => None,
        })
        .take(16)
        .collect()
}

/// Walks one partition's record bytes as the mirror does: every v2 batch
/// through [`exercise_batch`], every v0/v1 entry through
/// [`exercise_legacy`], with one aborted-transaction filter for the
/// partition.
pub fn exercise_log_entries(records: &Bytes, filter: &mut AbortedTransactionFilter) {
    let mut entries = RecordBatches::new(records.clone());
    let mut consumed = 0usize;
    let mut failed = false;
    for entry in entries.by_ref() {
        assert!(!failed, "RecordBatches yielded an entry after an error");
        match entry {
            Ok(LogEntry::Batch(view)) => {
                consumed += view.as_bytes().len();
                exercise_batch(&view, filter);
            }
            Ok(LogEntry::Legacy {
                offset,
                magic,
                bytes,
            }) => {
                assert!(matches!(magic, 0 | 1), "legacy entry with magic {magic}");
                assert_eq!(bytes.get(..8).map(be_i64), Some(offset));
                consumed += bytes.len();
                exercise_legacy(&bytes);
            }
            Err(_) => failed = true,
        }
    }
    if !failed {
        // Entries are cut back to back; what is left is the truncated tail.
        assert_eq!(consumed + entries.truncated_bytes(), records.len());
    }
}

fn be_i64(b: &[u8]) -> i64 {
    b.try_into().map_or(-1, i64::from_be_bytes)
}

/// Reads every header accessor of a v2 batch, classifies it under several
/// policies, rewrites it for produce and decodes all of its records.
pub fn exercise_batch(view: &RecordBatchView, filter: &mut AbortedTransactionFilter) {
    let bytes = view.as_bytes();
    let h = *view.header();

    // The header is the first 61 bytes, decoded field by field.
    assert_eq!(&h.encode()[..], &bytes[..BATCH_HEADER_LEN]);
    assert_eq!(h.magic, 2);
    assert_eq!(h.size_in_bytes(), bytes.len());
    assert_eq!(view.payload().len(), bytes.len() - BATCH_HEADER_LEN);
    let _ = (h.compression(), h.timestamp_type(), h.has_delete_horizon());
    assert_eq!(view.verify_crc().is_ok(), view.compute_crc() == h.crc);

    let aborted = filter.is_aborted(view);
    if aborted {
        assert!(h.is_transactional() && !h.is_control());
    }
    let policies = [
        PassthroughPolicy::at(h.base_offset),
        PassthroughPolicy::at(h.base_offset.saturating_add(1)),
        PassthroughPolicy::at(0).with_target_codec(Some(Compression::Zstd)),
        PassthroughPolicy::at(i64::MIN).with_max_batch_bytes(Some(bytes.len().saturating_sub(1))),
    ];
    for policy in &policies {
        if classify(&h, policy, aborted) == Disposition::Passthrough {
            // What passes through must be forwardable as it is.
            assert!(!h.is_control() && !aborted && h.record_count > 0);
            assert!(h.has_dense_offsets() && h.base_offset >= policy.fetch_position);
            let codec = h
                .compression()
                .expect("a passthrough batch has a known codec");
            assert!(policy.target_codec.is_none_or(|c| c == codec));
            assert!(policy.max_batch_bytes.is_none_or(|m| bytes.len() <= m));
        }
    }

    check_rewrite(view);

    if let Ok(records) = view.records(CAP) {
        let control = h.is_control();
        let decoded = exercise_records(records, &h);
        if control {
            for r in &decoded {
                let _ = r.key.as_deref().map(ControlRecordType::from_key);
            }
        }
    }
}

/// `rewrite_for_produce` replaces exactly the fields its documentation names
/// and yields a batch whose CRC is valid exactly when the source's was.
fn check_rewrite(view: &RecordBatchView) {
    let stamp = ProducerStamp {
        producer_id: 4242,
        producer_epoch: 7,
        base_sequence: 99,
    };
    let src = *view.header();
    let out = rewrite_for_produce(view, stamp);
    let h = out.header();
    assert_eq!((h.base_offset, h.partition_leader_epoch), (0, -1));
    assert!(!h.is_transactional() && !h.has_delete_horizon());
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (4242, 7, 99)
    );
    let cleared = kmirror_protocol::record::attributes::TRANSACTIONAL
        | kmirror_protocol::record::attributes::DELETE_HORIZON;
    assert_eq!(h.attributes, src.attributes & !cleared);
    assert_eq!(
        (h.magic, h.batch_length, h.last_offset_delta, h.record_count),
        (
            src.magic,
            src.batch_length,
            src.last_offset_delta,
            src.record_count
        )
    );
    assert_eq!(
        (h.base_timestamp, h.max_timestamp),
        (src.base_timestamp, src.max_timestamp)
    );
    assert_eq!(out.payload(), &view.payload());
    assert_eq!(out.len(), view.as_bytes().len());
    let again = RecordBatchView::new(out.to_bytes()).expect("a rewritten batch is a valid batch");
    assert_eq!(
        again.verify_crc().is_ok(),
        view.verify_crc().is_ok(),
        "the rewrite carries the source CRC: valid exactly when the source's is"
    );
    // The single-pass rewrite (source CRC check and new CRC from one pass
    // over the payload) agrees with the two-pass one.
    match kmirror_protocol::record::rewrite_verified(view, stamp) {
        Ok(verified) => {
            assert!(
                view.verify_crc().is_ok(),
                "rewrite_verified accepted a bad CRC"
            );
            assert_eq!(
                verified, out,
                "rewrite_verified differs from rewrite_for_produce"
            );
        }
        Err(_) => assert!(
            view.verify_crc().is_err(),
            "rewrite_verified refused a good CRC"
        ),
    }
}

/// Iterates `records` to the end (headers included), checks the iterator's
/// contract, and returns the records if all decoded. When they did, the
/// slow path's re-batching (`BatchBuilder::push_record`) must reproduce them.
pub fn exercise_records(records: RecordIter, header: &BatchHeader) -> Vec<Record> {
    let mut out = Vec::new();
    let mut failed = false;
    for r in records {
        assert!(!failed, "RecordIter yielded a record after an error");
        match r {
            Ok(rec) => {
                let _ = (rec.offset(header), rec.timestamp(header));
                assert_eq!(rec.headers.iter().count(), rec.headers.len());
                out.push(rec);
            }
            Err(_) => failed = true,
        }
    }
    let count = usize::try_from(header.record_count).unwrap_or(0);
    assert!(
        out.len() <= count,
        "{} records from a count of {count}",
        out.len()
    );
    if failed {
        out.clear();
    } else {
        assert_eq!(out.len(), count, "iteration ended early without an error");
        check_rebatch(&out, header);
    }
    out
}

/// The slow path's re-batching keeps keys, values, headers (order and
/// repeats) and timestamps, and gives dense offsets.
fn check_rebatch(records: &[Record], header: &BatchHeader) {
    let Some(first) = records.first() else {
        return;
    };
    let mut builder = BatchBuilder::new(Compression::None);
    for r in records {
        builder
            .push_record(r, r.timestamp(header))
            .expect("re-batching decoded records");
    }
    let built = builder
        .build(ProducerStamp::NONE)
        .expect("building the re-batch");
    let view = RecordBatchView::new(built.to_bytes()).expect("a built batch is a valid batch");
    view.verify_crc().expect("a built batch has a valid CRC");
    let again: Vec<Record> = view
        .records(CAP)
        .expect("a built batch decodes")
        .collect::<Result<_, _>>()
        .expect("a built batch's records decode");
    assert_eq!(again.len(), records.len());
    let t0 = first.timestamp(header);
    for (i, (a, b)) in records.iter().zip(&again).enumerate() {
        assert_eq!(a.key, b.key, "record {i} key");
        assert_eq!(a.value, b.value, "record {i} value");
        let ha: Vec<Header> = a.headers.iter().collect();
        let hb: Vec<Header> = b.headers.iter().collect();
        assert_eq!(ha, hb, "record {i} headers");
        assert_eq!(
            i64::from(b.offset_delta),
            i as i64,
            "record {i} offset delta"
        );
        let t = a.timestamp(header);
        // A delta that overflows i64 cannot be represented (Kafka's would
        // wrap); such timestamps are outside any real log.
        if t.checked_sub(t0).is_some() {
            assert_eq!(b.timestamp(view.header()), t, "record {i} timestamp");
        }
    }
}

/// Reads a v0/v1 entry and, if it reads, up-converts its records to a v2
/// batch and checks that keys, values and timestamps survived.
pub fn exercise_legacy(entry: &Bytes) {
    let mut records: Vec<LegacyRecord> = Vec::new();
    // A compressed wrapper around an empty message set reads as no records.
    if read_legacy_entry(entry, CAP, &mut records).is_err() || records.is_empty() {
        return;
    }
    let mut builder = BatchBuilder::new(Compression::None);
    let Some(batch) = up_convert(&records, i64::MIN, &mut builder, ProducerStamp::NONE)
        .expect("up-converting legacy records")
    else {
        panic!("up-conversion from i64::MIN dropped every record");
    };
    let view = RecordBatchView::new(batch.to_bytes()).expect("an up-converted batch is valid");
    view.verify_crc()
        .expect("an up-converted batch has a valid CRC");
    let again: Vec<Record> = view
        .records(CAP)
        .expect("an up-converted batch decodes")
        .collect::<Result<_, _>>()
        .expect("an up-converted batch's records decode");
    assert_eq!(again.len(), records.len());
    let t0 = records[0].timestamp;
    for (i, (a, b)) in records.iter().zip(&again).enumerate() {
        assert_eq!(a.key, b.key, "legacy record {i} key");
        assert_eq!(a.value, b.value, "legacy record {i} value");
        assert!(b.headers.is_empty());
        if a.timestamp.checked_sub(t0).is_some() {
            assert_eq!(
                b.timestamp(view.header()),
                a.timestamp,
                "legacy record {i} timestamp"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Codecs
// ---------------------------------------------------------------------------

/// Decompresses `data` with `codec` under [`CAP`] and checks the cap's
/// contract: the output never exceeds it, a cap of exactly the output's
/// length suffices and one byte less does not. Then checks that the codec
/// round-trips `data` itself.
pub fn fuzz_decompress(codec: Compression, data: &[u8]) {
    let input = Bytes::copy_from_slice(data);
    if let Ok(out) = compression::decompress(codec, &input, CAP) {
        check_cap(codec, &input, &out, |cap| {
            compression::decompress(codec, &input, cap)
        });
    }
    if codec == Compression::Lz4
        && let Ok(out) = compression::decompress_lz4_legacy_v0(&input, CAP)
    {
        check_cap(codec, &input, &out, |cap| {
            compression::decompress_lz4_legacy_v0(&input, cap)
        });
    }
    roundtrip(codec, data);
}

fn check_cap(
    codec: Compression,
    input: &Bytes,
    out: &Bytes,
    decompress: impl Fn(usize) -> Result<Bytes, CompressionError>,
) {
    assert!(
        out.len() <= CAP,
        "{codec}: {} bytes out of {} under a cap of {CAP}",
        out.len(),
        input.len()
    );
    // A valid payload states no size other than its own (a zstd frame's
    // content size is checked against the cap up front), so a cap of exactly
    // the output's length must do; if it does not, the payload claimed a size
    // that its data does not have and should not have decoded at all.
    match decompress(out.len()) {
        Ok(exact) => assert_eq!(&exact, out, "{codec}: output depends on the cap"),
        Err(e) => panic!(
            "{codec}: {} bytes came out under a cap of {CAP}, but a cap of exactly {} bytes \
             was refused ({e:?}): the payload states a size its data does not have",
            out.len(),
            out.len()
        ),
    }
    if let Some(less) = out.len().checked_sub(1) {
        assert!(
            decompress(less).is_err(),
            "{codec}: {} bytes came out under a cap of {less}",
            out.len()
        );
    }
}

/// `compress` then `decompress` gives back `data`.
pub fn roundtrip(codec: Compression, data: &[u8]) {
    let mut packed = Vec::new();
    compression::compress(codec, data, None, &mut packed)
        .unwrap_or_else(|e| panic!("{codec}: compressing {} bytes: {e}", data.len()));
    let back = compression::decompress(codec, &Bytes::from(packed), data.len())
        .unwrap_or_else(|e| panic!("{codec}: decompressing what we compressed: {e}"));
    assert_eq!(&back[..], data, "{codec}: round trip changed the data");
}
