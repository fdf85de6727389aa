//! The live destination's stopwatch (BENCH-ONLY): matches each batch a
//! Produce carries to the source batch it copies and keeps the times of
//! both, and reads percentiles off the samples. It never answers a request.
//!
//! kmirror passes batches through one to one and in order per partition,
//! so the n-th batch received for partition p copies the n-th batch
//! appended to source partition p. That is checked, not assumed: every
//! byte the CRC covers must be equal except the producer id, epoch and
//! base sequence (which kmirror stamps with its own), and so must the
//! length; a batch that differs counts as a mismatch and gives no sample.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;

use super::log::SourceLog;

/// Where the attributes start (the first byte the CRC covers).
const CRC_START: usize = 21;
/// Where the producer id starts and the record count starts: kmirror
/// rewrites what lies between.
const PRODUCER_ID: usize = 43;
const RECORD_COUNT: usize = 57;

/// One matched batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    pub(super) partition: usize,
    /// Its place in the partition (0 for the first batch appended).
    pub(super) index: usize,
    /// Appended on the source (the high-water mark moved past it).
    pub(super) appended: Instant,
    /// First written in a Fetch response.
    pub(super) served: Option<Instant>,
    /// The Produce request carrying it was read whole.
    pub(super) received: Instant,
}

/// What the destination has counted.
#[derive(Debug, Default, Clone)]
pub(super) struct Tally {
    pub(super) samples: Vec<Sample>,
    /// Batches received.
    pub(super) batches: u64,
    /// Batches that differ from the source batch at their place.
    pub(super) mismatches: u64,
    /// Batches beyond what the source partition holds, or for a partition
    /// it does not have.
    pub(super) unexpected: u64,
}

/// The destination's matching state.
pub(super) struct Recorder {
    state: Mutex<(Vec<usize>, Tally)>,
}

impl Recorder {
    pub(super) fn new(partitions: usize) -> Self {
        Self {
            state: Mutex::new((vec![0; partitions], Tally::default())),
        }
    }

    /// Matches the batches of one partition of a Produce request, read
    /// whole at `received`.
    pub(super) fn record(
        &self,
        log: &SourceLog,
        partition: i32,
        records: &Bytes,
        received: Instant,
    ) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (next, tally) = &mut *state;
        let mut at = 0usize;
        while let Some(len) = batch_len(records, at) {
            let got = &records[at..at + len];
            at += len;
            tally.batches += 1;
            let Some((p, slot)) = usize::try_from(partition)
                .ok()
                .and_then(|p| next.get_mut(p).map(|slot| (p, slot)))
            else {
                tally.unexpected += 1;
                continue;
            };
            let index = *slot;
            *slot += 1;
            match log.entry(p, index) {
                None => tally.unexpected += 1,
                Some((expected, _, _)) if !same_batch(&expected, got) => tally.mismatches += 1,
                Some((_, appended, served)) => tally.samples.push(Sample {
                    partition: p,
                    index,
                    appended,
                    served,
                    received,
                }),
            }
        }
        if at != records.len() {
            // A truncated last batch: kmirror never sends one.
            tally.batches += 1;
            tally.mismatches += 1;
        }
    }

    /// Batches received so far.
    pub(super) fn batches(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .batches
    }

    /// A copy of what was counted.
    pub(super) fn tally(&self) -> Tally {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }
}

/// The length of the whole batch at `at`, if one is there.
fn batch_len(records: &[u8], at: usize) -> Option<usize> {
    let raw = records.get(at + 8..at + 12)?;
    let len = 12 + usize::try_from(i32::from_be_bytes(raw.try_into().ok()?)).ok()?;
    (at + len <= records.len() && len >= RECORD_COUNT).then_some(len)
}

/// Equal but for base offset, leader epoch, CRC and producer fields.
fn same_batch(expected: &[u8], got: &[u8]) -> bool {
    expected.len() == got.len()
        && expected.get(CRC_START..PRODUCER_ID) == got.get(CRC_START..PRODUCER_ID)
        && expected.get(RECORD_COUNT..) == got.get(RECORD_COUNT..)
}

/// Nearest-rank percentiles of a set of values.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Percentiles {
    pub(super) count: usize,
    pub(super) p50: u64,
    pub(super) p90: u64,
    pub(super) p99: u64,
    pub(super) p999: u64,
    pub(super) max: u64,
}

impl Percentiles {
    /// Over `values` (sorted here); all zero when empty.
    pub(super) fn of(mut values: Vec<u64>) -> Self {
        values.sort_unstable();
        let n = values.len();
        let rank = |q: f64| -> u64 {
            if n == 0 {
                return 0;
            }
            let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            values[i]
        };
        Self {
            count: n,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            p999: rank(0.999),
            max: values.last().copied().unwrap_or(0),
        }
    }

    /// `NAME_p50=.. NAME_p90=.. NAME_p99=.. NAME_p999=.. NAME_max=..`.
    pub(super) fn fields(&self, name: &str) -> String {
        format!(
            "{name}_p50={} {name}_p90={} {name}_p99={} {name}_p999={} {name}_max={}",
            self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}
