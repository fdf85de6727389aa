//! The live source's generator (BENCH-ONLY): builds every batch of the run
//! before it starts, then publishes them at a steady rate, round-robin over
//! the partitions, so that while it runs it only appends.
//!
//! A run holds a few tens of thousands of batches, so they are copies of at
//! most [`TEMPLATES`] batches built with kmirror-protocol's `BatchBuilder`
//! from the bench corpus (1 KiB JSON-like records with a key and a header,
//! as `kmirror_benches::source_batch` builds them), each copy with its own
//! base offset and its own first and max timestamps (shifted by the batch's
//! number, in ms, so that no two batches of a run are equal) and the CRC
//! computed again over them.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kmirror_benches::{RECORD_HEADER, RECORD_SIZE, SEED, SOURCE_STAMP, corpus_records};
use kmirror_protocol::compression::Compression;
use kmirror_protocol::record::BatchBuilder;

use super::log::SourceLog;
use crate::Result;

/// Distinct batches built with `BatchBuilder`; the others are their copies.
const TEMPLATES: usize = 64;
/// Offsets of batch header fields (Kafka's record batch v2 layout).
const LEADER_EPOCH: usize = 12;
const CRC: usize = 17;
const CRC_START: usize = 21;
const FIRST_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const HEADER_LEN: usize = 61;

/// What the generator appends and how fast.
#[derive(Debug, Clone)]
pub(super) struct Pace {
    pub(super) partitions: usize,
    /// Records per second over all partitions.
    pub(super) rate: f64,
    pub(super) batch_records: usize,
    pub(super) batches: usize,
    pub(super) codec: Compression,
    /// The first offset of every partition.
    pub(super) start_offset: i64,
}

impl Pace {
    /// Time between two appends (to consecutive partitions).
    pub(super) fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.batch_records as f64 / self.rate)
    }
}

/// One batch ready to append.
pub(super) struct Prepared {
    pub(super) partition: usize,
    pub(super) base_offset: i64,
    pub(super) records: i64,
    pub(super) bytes: Bytes,
}

/// Builds the run's batches: batch `k` goes to partition `k % partitions`.
pub(super) fn prepare(pace: &Pace) -> Result<Vec<Prepared>> {
    let templates = (0..pace.batches.clamp(1, TEMPLATES))
        .map(|t| template(pace.codec, pace.batch_records, t as u64))
        .collect::<Result<Vec<_>>>()?;
    let records = i64::try_from(pace.batch_records)?;
    let mut out = Vec::with_capacity(pace.batches);
    for k in 0..pace.batches {
        let partition = k % pace.partitions.max(1);
        let nth = i64::try_from(k / pace.partitions.max(1))?;
        let base_offset = pace.start_offset + nth * records;
        let mut raw = templates[k % templates.len()].clone();
        let shift = i64::try_from(k)?;
        raw[0..8].copy_from_slice(&base_offset.to_be_bytes());
        raw[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&0i32.to_be_bytes());
        for at in [FIRST_TIMESTAMP, MAX_TIMESTAMP] {
            let old = i64::from_be_bytes(read8(&raw, at)?);
            raw[at..at + 8].copy_from_slice(&(old + shift).to_be_bytes());
        }
        let crc = crc32c::crc32c(&raw[CRC_START..]);
        raw[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        out.push(Prepared {
            partition,
            base_offset,
            records,
            bytes: Bytes::from(raw),
        });
    }
    Ok(out)
}

fn read8(raw: &[u8], at: usize) -> Result<[u8; 8]> {
    raw.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| "a batch shorter than its header".into())
}

/// One batch of `records` corpus records (seed varied by `n`).
fn template(codec: Compression, records: usize, n: u64) -> Result<Vec<u8>> {
    let mut builder = BatchBuilder::new(codec);
    let (hk, hv) = RECORD_HEADER;
    for (timestamp, key, value) in corpus_records(records * RECORD_SIZE, SEED ^ n) {
        builder.push(
            timestamp,
            Some(&key),
            Some(&value),
            [(hk, Some(hv))].into_iter(),
        )?;
    }
    let raw = builder.build(SOURCE_STAMP)?.to_bytes().to_vec();
    if raw.len() < HEADER_LEN {
        return Err("BatchBuilder built a batch shorter than its header".into());
    }
    Ok(raw)
}

/// How late each append was against its schedule, in µs.
pub(super) type Lateness = Vec<u64>;

/// Appends `batches` to `log`, batch `k` at `start + k * interval` (or at
/// once when behind); returns each append's lateness.
pub(super) fn publish(
    log: &SourceLog,
    batches: Vec<Prepared>,
    interval: Duration,
    start: Instant,
) -> Result<Lateness> {
    let mut late = Vec::with_capacity(batches.len());
    for (k, batch) in batches.into_iter().enumerate() {
        let due = start + interval.mul_f64(k as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let appended = log.append(
            batch.partition,
            batch.base_offset,
            batch.records,
            batch.bytes,
        )?;
        late.push(micros(appended.saturating_duration_since(due)));
    }
    Ok(late)
}

/// Whole microseconds.
pub(super) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
