//! Counters and gauges the engine keeps for whoever embeds it: the binary
//! prints them; a service could serve them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live counters, updated by the engine's tasks without locks (except the
/// per-partition progress map, touched once per fetch response).
#[derive(Debug, Default)]
pub struct Metrics {
    records: AtomicU64,
    bytes: AtomicU64,
    passthrough_batches: AtomicU64,
    slow_path_batches: AtomicU64,
    skipped_batches: AtomicU64,
    produce_requests: AtomicU64,
    produced_batches: AtomicU64,
    retried_batches: AtomicU64,
    failed_batches: AtomicU64,
    written_off_records: AtomicU64,
    commits: AtomicU64,
    epoch_bumps: AtomicU64,
    latency_micros_total: AtomicU64,
    latency_micros_max: AtomicU64,
    latency_samples: AtomicU64,
    fetched_bytes: AtomicU64,
    offset_resets: AtomicU64,
    truncations: AtomicU64,
    truncated_records: AtomicU64,
    fetch_throttle_micros: AtomicU64,
    produce_throttle_micros: AtomicU64,
    progress: Mutex<BTreeMap<(String, i32), PartitionProgress>>,
}

/// Where one source partition stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionProgress {
    /// The next offset to fetch.
    pub position: i64,
    /// The offset committable now (every record below acknowledged).
    pub acknowledged: i64,
    /// The last offset committed to the source group, if any.
    pub committed: Option<i64>,
    /// The source's high-water mark (or last stable offset) last seen.
    pub end: i64,
    /// For `--once`: the end offset to reach.
    pub target: Option<i64>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Records acknowledged by the destination.
    pub records: u64,
    /// Batch bytes acknowledged by the destination.
    pub bytes: u64,
    /// Batches forwarded untouched (zero-copy passthrough).
    pub passthrough_batches: u64,
    /// Source entries decoded and re-batched (slow path).
    pub slow_path_batches: u64,
    /// Source batches not mirrored (control, aborted, empty).
    pub skipped_batches: u64,
    /// Produce requests sent.
    pub produce_requests: u64,
    /// Batches acknowledged by the destination.
    pub produced_batches: u64,
    /// Batch sends retried after a retriable error.
    pub retried_batches: u64,
    /// Batches refused for good.
    pub failed_batches: u64,
    /// Records given up on (`--abort.on.send.failure false`).
    pub written_off_records: u64,
    /// Successful OffsetCommit requests.
    pub commits: u64,
    /// Producer epoch bumps (sequence recovery).
    pub epoch_bumps: u64,
    /// Record bytes received from the source.
    pub fetched_bytes: u64,
    /// Source partitions whose position was reset per `auto.offset.reset`
    /// because it was out of range (a fetch answered
    /// OFFSET_OUT_OF_RANGE, or the group's committed offset was past the
    /// partition's end at assignment).
    pub offset_resets: u64,
    /// Source partitions found truncated below kmirror's position (a
    /// Fetch answered with a diverging epoch, KIP-320: an unclean leader
    /// election replaced records kmirror had already copied).
    pub truncations: u64,
    /// Source offsets replaced by those truncations: the destination holds
    /// the records that were there before; the new ones are copied too.
    pub truncated_records: u64,
    /// Time the source's brokers asked kmirror to hold its fetches for
    /// (quota throttling, KIP-219), summed over responses.
    pub fetch_throttled: Duration,
    /// Time the destination's brokers asked kmirror to hold its Produce
    /// requests for (quota throttling, KIP-219), summed over responses.
    pub produce_throttled: Duration,
    /// Mean time from a batch's first send to its acknowledgement.
    pub produce_latency_mean: Duration,
    /// The longest such time.
    pub produce_latency_max: Duration,
    /// Offsets between each partition's acknowledged offset and the
    /// source's end, summed.
    pub lag: u64,
    /// For `--once`: offsets still to acknowledge before the targets.
    pub remaining: u64,
    /// Assigned source partitions.
    pub partitions: usize,
}

impl Metrics {
    pub(crate) fn add_fetched(&self, bytes: usize) {
        self.fetched_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_plan(&self, passthrough: u64, slow: u64, skipped: u64) {
        self.passthrough_batches
            .fetch_add(passthrough, Ordering::Relaxed);
        self.slow_path_batches.fetch_add(slow, Ordering::Relaxed);
        self.skipped_batches.fetch_add(skipped, Ordering::Relaxed);
    }

    pub(crate) fn offset_reset(&self) {
        self.offset_resets.fetch_add(1, Ordering::Relaxed);
    }

    /// A source partition was truncated by `records` offsets below the
    /// fetch position.
    pub(crate) fn truncated(&self, records: u64) {
        self.truncations.fetch_add(1, Ordering::Relaxed);
        self.truncated_records.fetch_add(records, Ordering::Relaxed);
    }

    /// A response of `side`'s broker asked kmirror to wait `throttle`.
    pub(crate) fn throttled(&self, side: super::Side, throttle: Duration) {
        let micros = u64::try_from(throttle.as_micros()).unwrap_or(u64::MAX);
        let counter = match side {
            super::Side::Source => &self.fetch_throttle_micros,
            super::Side::Destination => &self.produce_throttle_micros,
        };
        counter.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn request_sent(&self) {
        self.produce_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn batch_acknowledged(&self, records: u64, bytes: u64, latency: Duration) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.produced_batches.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros_total
            .fetch_add(micros, Ordering::Relaxed);
        self.latency_samples.fetch_add(1, Ordering::Relaxed);
        self.latency_micros_max.fetch_max(micros, Ordering::Relaxed);
    }

    pub(crate) fn batch_retried(&self) {
        self.retried_batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn batch_failed(&self, written_off_records: u64) {
        self.failed_batches.fetch_add(1, Ordering::Relaxed);
        self.written_off_records
            .fetch_add(written_off_records, Ordering::Relaxed);
    }

    pub(crate) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn epoch_bumped(&self) {
        self.epoch_bumps.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_progress(&self, topic: &str, partition: i32, progress: PartitionProgress) {
        let mut map = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(&(topic.to_owned(), partition)) {
            Some(slot) => *slot = progress,
            None => {
                map.insert((topic.to_owned(), partition), progress);
            }
        }
    }

    /// Forgets a partition's progress (the group moved it to another
    /// member: its lag is theirs to report).
    pub(crate) fn forget_progress(&self, topic: &str, partition: i32) {
        let mut map = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(topic.to_owned(), partition));
    }

    /// Per-partition progress, by source topic and partition.
    pub fn progress(&self) -> BTreeMap<(String, i32), PartitionProgress> {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let samples = load(&self.latency_samples);
        let (lag, remaining, partitions) = {
            let map = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            let mut lag = 0u64;
            let mut remaining = 0u64;
            for p in map.values() {
                lag += u64::try_from(p.end.saturating_sub(p.acknowledged)).unwrap_or(0);
                if let Some(target) = p.target {
                    remaining += u64::try_from(target.saturating_sub(p.acknowledged)).unwrap_or(0);
                }
            }
            (lag, remaining, map.len())
        };
        MetricsSnapshot {
            records: load(&self.records),
            bytes: load(&self.bytes),
            passthrough_batches: load(&self.passthrough_batches),
            slow_path_batches: load(&self.slow_path_batches),
            skipped_batches: load(&self.skipped_batches),
            produce_requests: load(&self.produce_requests),
            produced_batches: load(&self.produced_batches),
            retried_batches: load(&self.retried_batches),
            failed_batches: load(&self.failed_batches),
            written_off_records: load(&self.written_off_records),
            commits: load(&self.commits),
            epoch_bumps: load(&self.epoch_bumps),
            fetched_bytes: load(&self.fetched_bytes),
            offset_resets: load(&self.offset_resets),
            truncations: load(&self.truncations),
            truncated_records: load(&self.truncated_records),
            fetch_throttled: Duration::from_micros(load(&self.fetch_throttle_micros)),
            produce_throttled: Duration::from_micros(load(&self.produce_throttle_micros)),
            produce_latency_mean: Duration::from_micros(
                load(&self.latency_micros_total)
                    .checked_div(samples)
                    .unwrap_or(0),
            ),
            produce_latency_max: Duration::from_micros(load(&self.latency_micros_max)),
            lag,
            remaining,
            partitions,
        }
    }
}
