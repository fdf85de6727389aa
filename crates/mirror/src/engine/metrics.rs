//! Counters and gauges the engine keeps for whoever embeds it: the binary
//! prints them and serves them to Prometheus (`--metrics.listen`); a
//! service could do the same with [`Metrics::observe`].
//!
//! This module owns what is counted and the judgement of health and
//! readiness from those counts ([`Metrics::health`],
//! [`Metrics::readiness`]). It never formats an exposition, opens a
//! socket or reads the process's own figures: that is the binary's. The
//! data path touches it once per batch or fetched partition (atomics, and
//! one short lock for per-topic counters), never once per record.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::budget::MemoryBudget;
use super::error::Side;

/// Live counters, updated by the engine's tasks without locks (except the
/// per-partition progress map, touched once per fetch response, and the
/// per-topic counters, touched once per batch).
#[derive(Debug)]
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
    progress: Mutex<BTreeMap<(String, i32), PartitionState>>,
    topics: Mutex<BTreeMap<Arc<str>, TopicCounters>>,
    produce_errors: Mutex<BTreeMap<String, u64>>,
    replication_latency: LatencyHistogram,
    /// The group's generation; `i64::MIN` until the group code sets it.
    group_generation: AtomicI64,
    /// Partitions assigned to kmirror in its group; -1 until set.
    assigned_partitions: AtomicI64,
    budget: OnceLock<Weak<MemoryBudget>>,
    /// The last time each stream's loop ran, by stream index.
    heartbeats: Mutex<BTreeMap<usize, Instant>>,
    source_link: Mutex<LinkState>,
    destination_link: Mutex<LinkState>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            records: AtomicU64::default(),
            bytes: AtomicU64::default(),
            passthrough_batches: AtomicU64::default(),
            slow_path_batches: AtomicU64::default(),
            skipped_batches: AtomicU64::default(),
            produce_requests: AtomicU64::default(),
            produced_batches: AtomicU64::default(),
            retried_batches: AtomicU64::default(),
            failed_batches: AtomicU64::default(),
            written_off_records: AtomicU64::default(),
            commits: AtomicU64::default(),
            epoch_bumps: AtomicU64::default(),
            latency_micros_total: AtomicU64::default(),
            latency_micros_max: AtomicU64::default(),
            latency_samples: AtomicU64::default(),
            fetched_bytes: AtomicU64::default(),
            offset_resets: AtomicU64::default(),
            truncations: AtomicU64::default(),
            truncated_records: AtomicU64::default(),
            fetch_throttle_micros: AtomicU64::default(),
            produce_throttle_micros: AtomicU64::default(),
            progress: Mutex::default(),
            topics: Mutex::default(),
            produce_errors: Mutex::default(),
            replication_latency: LatencyHistogram::default(),
            group_generation: AtomicI64::new(i64::MIN),
            assigned_partitions: AtomicI64::new(-1),
            budget: OnceLock::new(),
            heartbeats: Mutex::default(),
            source_link: Mutex::default(),
            destination_link: Mutex::default(),
        }
    }
}

/// Where a partition stands, and what the lag in seconds and the stall
/// check need.
#[derive(Debug)]
struct PartitionState {
    progress: PartitionProgress,
    /// The last time the partition's acknowledged offset moved or it had
    /// nothing to move.
    waiting_since: Instant,
    /// Fetched, not yet acknowledged data: per fetch response, the offset
    /// after its last record and the timestamp of its first batch (ms
    /// since the epoch), oldest first.
    fetched: VecDeque<(i64, i64)>,
}

/// The most fetch responses remembered per partition for the lag in
/// seconds (only the oldest matters; the bound keeps memory fixed when
/// the destination is down).
const FETCHED_REMEMBERED: usize = 4096;

/// How a batch reached the destination, or did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MirrorPath {
    /// Forwarded untouched (zero-copy passthrough).
    Passthrough,
    /// Decoded and rebuilt (another codec, a remap by key, an old message
    /// format, ...).
    SlowPath,
    /// Not mirrored: control batches, aborted transactions, empty batches,
    /// compaction gaps.
    Skipped,
}

impl MirrorPath {
    /// The label value: `passthrough`, `slow_path`, `skipped`.
    pub fn label(self) -> &'static str {
        match self {
            MirrorPath::Passthrough => "passthrough",
            MirrorPath::SlowPath => "slow_path",
            MirrorPath::Skipped => "skipped",
        }
    }
}

/// Records, bytes and batches of one topic along one path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounts {
    /// Records acknowledged by the destination (for `Skipped`: source
    /// offsets not mirrored).
    pub records: u64,
    /// Batch bytes (as sent for passthrough and slow path, as fetched for
    /// skipped batches).
    pub bytes: u64,
    /// Batches.
    pub batches: u64,
}

#[derive(Debug, Default)]
struct TopicCounters {
    passthrough: PathCounts,
    slow_path: PathCounts,
    skipped: PathCounts,
}

impl TopicCounters {
    fn path(&mut self, path: MirrorPath) -> &mut PathCounts {
        match path {
            MirrorPath::Passthrough => &mut self.passthrough,
            MirrorPath::SlowPath => &mut self.slow_path,
            MirrorPath::Skipped => &mut self.skipped,
        }
    }
}

/// Upper bounds, in seconds, of the replication latency histogram's
/// buckets (`+Inf` is implied).
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

#[derive(Debug, Default)]
struct LatencyHistogram {
    /// Non-cumulative counts; the last is above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl LatencyHistogram {
    fn observe(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let index = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = Vec::with_capacity(LATENCY_BUCKETS.len());
        let mut running = 0u64;
        for bucket in self.buckets.iter().take(LATENCY_BUCKETS.len()) {
            running += bucket.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        let count = self.count.load(Ordering::Relaxed);
        HistogramSnapshot {
            bounds: &LATENCY_BUCKETS,
            cumulative,
            // Read after the buckets: `+Inf` is never below a bucket.
            count: count.max(running),
            sum: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed)),
        }
    }
}

/// A histogram at one moment, in Prometheus' shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// The buckets' upper bounds, in seconds.
    pub bounds: &'static [f64],
    /// Observations at or below each bound (cumulative).
    pub cumulative: Vec<u64>,
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// The sum of the observations.
    pub sum: Duration,
}

/// What the engine last learned about reaching one cluster.
#[derive(Debug, Default, Clone)]
struct LinkState {
    /// Since when exchanges fail (none succeeded since), and the last
    /// error; `None` while the last exchange succeeded.
    failing: Option<(Instant, String)>,
}

impl LinkState {
    /// Whether the last exchange succeeded (or none was tried yet).
    fn connected(&self) -> bool {
        self.failing.is_none()
    }

    /// How long exchanges have failed without a success between.
    fn failing_for(&self, now: Instant) -> Duration {
        self.failing.as_ref().map_or(Duration::ZERO, |(since, _)| {
            now.saturating_duration_since(*since)
        })
    }
}

/// Whether the mirror should get traffic or be left alone: what
/// `/ready` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Both clusters answered within the allowed time, partitions are
    /// assigned, none is stalled.
    pub ready: bool,
    /// Whether the last exchange with the source succeeded (it may have
    /// failed for less than the allowed time and still be ready).
    pub source_connected: bool,
    /// Whether the last exchange with the destination succeeded.
    pub destination_connected: bool,
    /// Why it is not ready, one sentence each (empty when ready).
    pub reasons: Vec<String>,
}

/// Whether the engine's tasks run: what `/health` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Every stream's loop ran within the allowed silence.
    pub healthy: bool,
    /// Streams whose loop has run at least once.
    pub streams: usize,
    /// Why it is not healthy (empty when healthy).
    pub reasons: Vec<String>,
}

/// One source partition as an exposition shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionObservation {
    /// The source topic.
    pub topic: String,
    /// The source partition.
    pub partition: i32,
    /// Offsets and end.
    pub progress: PartitionProgress,
    /// Offsets between the acknowledged offset and the source's end.
    pub lag_records: u64,
    /// The age of the oldest record not yet acknowledged by the
    /// destination (zero when nothing waits); see [`Metrics::observe`].
    pub lag_seconds: f64,
    /// How long the partition has had records to move without its
    /// acknowledged offset moving (zero when it moves or has nothing to
    /// move).
    pub stalled_for: Duration,
}

/// Everything the engine counts, at one moment: the input of an
/// exposition such as Prometheus' `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The totals (also printed in the summary line).
    pub totals: MetricsSnapshot,
    /// Records, bytes and batches by topic and path.
    pub topics: Vec<(String, MirrorPath, PathCounts)>,
    /// Produce errors by name: Kafka's error name for a partition error
    /// (`NOT_ENOUGH_REPLICAS`), or the client side's failure
    /// (`connection`, `request_timeout`, `other`).
    pub produce_errors: Vec<(String, u64)>,
    /// Source record timestamp to destination acknowledgement, per batch.
    pub replication_latency: HistogramSnapshot,
    /// Per source partition.
    pub partitions: Vec<PartitionObservation>,
    /// The largest `lag_seconds` over the partitions.
    pub max_lag_seconds: f64,
    /// Partitions stalled for longer than [`Judgement::stall_after`].
    pub stalled_partitions: usize,
    /// The group's generation, once the group code has set it.
    pub group_generation: Option<i32>,
    /// Partitions assigned to kmirror.
    pub assigned_partitions: usize,
    /// Bytes of `buffer.memory` in use and its limit, once a stream runs.
    pub buffer: Option<(usize, usize)>,
    /// What `/ready` answers.
    pub readiness: Readiness,
    /// What `/health` answers.
    pub health: Health,
}

/// How long readiness and health may be judged on (see
/// [`Metrics::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    /// A partition with records to move whose acknowledged offset has not
    /// moved for longer than this is stalled: not ready.
    pub stall_after: Duration,
    /// A stream whose loop has not run for longer than this is hung: not
    /// healthy (a loop runs at least once a second).
    pub max_silence: Duration,
}

impl Default for Judgement {
    fn default() -> Self {
        Self {
            stall_after: Duration::from_secs(60),
            max_silence: Duration::from_secs(30),
        }
    }
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

    /// A batch of `topic` was acknowledged by the destination, `latency`
    /// after it was first sent; `source_timestamp` is its source records'
    /// time (ms since the Unix epoch), if known.
    pub(crate) fn batch_acknowledged(
        &self,
        topic: &Arc<str>,
        path: MirrorPath,
        records: u64,
        bytes: u64,
        latency: Duration,
        source_timestamp: Option<i64>,
    ) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.produced_batches.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros_total
            .fetch_add(micros, Ordering::Relaxed);
        self.latency_samples.fetch_add(1, Ordering::Relaxed);
        self.latency_micros_max.fetch_max(micros, Ordering::Relaxed);
        self.count_path(topic, path, records, bytes, 1);
        if let Some(ts) = source_timestamp.filter(|t| *t >= 0) {
            // A source clock ahead of ours counts as no latency.
            let age = now_millis().saturating_sub(ts).max(0);
            self.replication_latency
                .observe(Duration::from_millis(age.unsigned_abs()));
        }
    }

    /// Source offsets of `topic` not mirrored (control, aborted, empty,
    /// compaction gaps), in `batches` batches of `bytes`.
    pub(crate) fn skipped(&self, topic: &Arc<str>, offsets: u64, bytes: u64, batches: u64) {
        if offsets > 0 || batches > 0 {
            self.count_path(topic, MirrorPath::Skipped, offsets, bytes, batches);
        }
    }

    fn count_path(
        &self,
        topic: &Arc<str>,
        path: MirrorPath,
        records: u64,
        bytes: u64,
        batches: u64,
    ) {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let counts = match topics.get_mut(topic) {
            Some(c) => c,
            None => topics.entry(topic.clone()).or_default(),
        };
        let counts = counts.path(path);
        counts.records += records;
        counts.bytes += bytes;
        counts.batches += batches;
    }

    /// A Produce request or one of its partitions failed with `error` (a
    /// Kafka error name, or `connection`, `request_timeout`, `other`).
    pub(crate) fn produce_error(&self, error: &str) {
        let mut errors = self
            .produce_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match errors.get_mut(error) {
            Some(n) => *n += 1,
            None => {
                errors.insert(error.to_owned(), 1);
            }
        }
    }

    /// An exchange with `side`'s cluster succeeded (a Fetch or Produce
    /// response).
    pub(crate) fn link_ok(&self, side: Side) {
        let mut link = self.link(side).lock().unwrap_or_else(|p| p.into_inner());
        if link.failing.is_some() {
            link.failing = None;
        }
    }

    /// An exchange with `side`'s cluster failed (no response).
    pub(crate) fn link_failed(&self, side: Side, error: &dyn std::fmt::Display) {
        let mut link = self.link(side).lock().unwrap_or_else(|p| p.into_inner());
        let since = link.failing.as_ref().map_or_else(Instant::now, |(t, _)| *t);
        link.failing = Some((since, error.to_string()));
    }

    fn link(&self, side: Side) -> &Mutex<LinkState> {
        match side {
            Side::Source => &self.source_link,
            Side::Destination => &self.destination_link,
        }
    }

    /// Stream `stream`'s loop is running.
    pub(crate) fn heartbeat(&self, stream: usize) {
        let now = Instant::now();
        let mut beats = self.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
        match beats.get_mut(&stream) {
            Some(at) => *at = now,
            None => {
                beats.insert(stream, now);
            }
        }
    }

    /// The budget whose use the metrics report (kept weakly: the first one
    /// given wins).
    pub(crate) fn observe_budget(&self, budget: &Arc<MemoryBudget>) {
        if self.budget.get().is_none() {
            let _ = self.budget.set(Arc::downgrade(budget));
        }
    }

    /// A fetch response brought `topic`-`partition`'s data up to `end`;
    /// its first batch carries `timestamp` (ms since the Unix epoch).
    pub(crate) fn fetched_up_to(&self, topic: &str, partition: i32, end: i64, timestamp: i64) {
        let mut map = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        let key = (topic.to_owned(), partition);
        let state = map.entry(key).or_insert_with(|| PartitionState {
            progress: PartitionProgress::default(),
            waiting_since: Instant::now(),
            fetched: VecDeque::new(),
        });
        if state.fetched.back().is_some_and(|(last, _)| *last >= end) {
            // The position went back (a reset or a truncation).
            state.fetched.clear();
        }
        if state.fetched.len() < FETCHED_REMEMBERED {
            state.fetched.push_back((end, timestamp));
        }
    }

    /// Sets the group's generation (the group code calls it after each
    /// join).
    pub fn set_group_generation(&self, generation: i32) {
        self.group_generation
            .store(i64::from(generation), Ordering::Relaxed);
    }

    /// Sets how many source partitions kmirror's group assigned to it (the
    /// group code calls it after each assignment).
    pub fn set_assigned_partitions(&self, partitions: usize) {
        self.assigned_partitions.store(
            i64::try_from(partitions).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
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
        let now = Instant::now();
        let mut map = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        let key = (topic.to_owned(), partition);
        match map.get_mut(&key) {
            Some(state) => {
                let old = state.progress;
                // The wait for the destination starts when there is
                // something to move; it restarts whenever the acknowledged
                // offset moves.
                if progress.acknowledged >= progress.end
                    || progress.acknowledged != old.acknowledged
                    || old.acknowledged >= old.end
                {
                    state.waiting_since = now;
                }
                state.progress = progress;
                while state
                    .fetched
                    .front()
                    .is_some_and(|(end, _)| *end <= progress.acknowledged)
                {
                    state.fetched.pop_front();
                }
            }
            None => {
                map.insert(
                    key,
                    PartitionState {
                        progress,
                        waiting_since: now,
                        fetched: VecDeque::new(),
                    },
                );
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
            .iter()
            .map(|(k, v)| (k.clone(), v.progress))
            .collect()
    }

    /// Partitions assigned: what the group code last set, else the
    /// partitions with progress.
    fn assigned(&self, with_progress: usize) -> usize {
        usize::try_from(self.assigned_partitions.load(Ordering::Relaxed)).unwrap_or(with_progress)
    }

    /// Whether `/health` should answer yes: every stream's loop ran within
    /// `max_silence` (true before any stream started).
    pub fn health(&self, max_silence: Duration) -> Health {
        let now = Instant::now();
        let beats = self.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
        let reasons: Vec<String> = beats
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) > max_silence)
            .map(|(stream, at)| {
                format!(
                    "stream {stream} has not run for {:.0} s",
                    now.saturating_duration_since(*at).as_secs_f64()
                )
            })
            .collect();
        Health {
            healthy: reasons.is_empty(),
            streams: beats.len(),
            reasons,
        }
    }

    /// Whether `/ready` should answer yes: neither cluster's exchanges
    /// have failed for longer than `stall_after` without a success between,
    /// partitions are assigned, and no partition with records to move went
    /// `stall_after` without its acknowledged offset moving. A moment's
    /// failure (a leader moving, a connection cut and made again) does not
    /// count.
    pub fn readiness(&self, stall_after: Duration) -> Readiness {
        let now = Instant::now();
        let (stalled, with_progress) = {
            let map = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            let stalled: Vec<((String, i32), Duration)> = map
                .iter()
                .filter_map(|(k, s)| {
                    let waited = stalled_for(s, now);
                    (waited > stall_after).then(|| (k.clone(), waited))
                })
                .collect();
            (stalled, map.len())
        };
        let source = self
            .source_link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let destination = self
            .destination_link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut reasons = Vec::new();
        for (name, link) in [("source", &source), ("destination", &destination)] {
            let failing = link.failing_for(now);
            if let Some((_, error)) = link.failing.as_ref().filter(|_| failing > stall_after) {
                reasons.push(format!(
                    "kmirror's requests to the {name} cluster have failed for {:.0} s: {error}",
                    failing.as_secs_f64()
                ));
            }
        }
        if self.assigned(with_progress) == 0 {
            reasons.push("no source partition is assigned".to_owned());
        }
        if let Some(((topic, partition), waited)) = stalled.iter().max_by_key(|(_, w)| *w) {
            reasons.push(format!(
                "{} partition(s) stalled: records wait and nothing was acknowledged for longer \
                 than {} s (longest: {topic}-{partition}, {:.0} s)",
                stalled.len(),
                stall_after.as_secs(),
                waited.as_secs_f64()
            ));
        }
        Readiness {
            ready: reasons.is_empty(),
            source_connected: source.connected(),
            destination_connected: destination.connected(),
            reasons,
        }
    }

    /// Everything at once, for an exposition. The lag in seconds of a
    /// partition is the age of the oldest record the destination has not
    /// acknowledged: the timestamp of the first batch of the oldest fetch
    /// response still waiting (so at most one fetch response's time span
    /// too old); if the waiting records were not fetched yet, how long the
    /// partition has waited with its acknowledged offset unmoved.
    pub fn observe(&self, judgement: Judgement) -> Observation {
        let totals = self.snapshot();
        let now = Instant::now();
        let now_ms = now_millis();
        let (partitions, with_progress) = {
            let map = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            let rows: Vec<PartitionObservation> = map
                .iter()
                .map(|((topic, partition), s)| {
                    let p = s.progress;
                    let lag_records =
                        u64::try_from(p.end.saturating_sub(p.acknowledged)).unwrap_or(0);
                    let lag_seconds = if lag_records == 0 {
                        0.0
                    } else {
                        match s.fetched.front() {
                            Some((_, ts)) if *ts >= 0 => {
                                now_ms.saturating_sub(*ts).max(0) as f64 / 1000.0
                            }
                            _ => now.saturating_duration_since(s.waiting_since).as_secs_f64(),
                        }
                    };
                    PartitionObservation {
                        topic: topic.clone(),
                        partition: *partition,
                        progress: p,
                        lag_records,
                        lag_seconds,
                        stalled_for: stalled_for(s, now),
                    }
                })
                .collect();
            let n = map.len();
            (rows, n)
        };
        let topics = {
            let map = self.topics.lock().unwrap_or_else(|p| p.into_inner());
            let mut rows = Vec::with_capacity(map.len() * 3);
            for (topic, c) in map.iter() {
                for (path, counts) in [
                    (MirrorPath::Passthrough, c.passthrough),
                    (MirrorPath::SlowPath, c.slow_path),
                    (MirrorPath::Skipped, c.skipped),
                ] {
                    rows.push((topic.to_string(), path, counts));
                }
            }
            rows
        };
        let produce_errors = self
            .produce_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let generation = self.group_generation.load(Ordering::Relaxed);
        Observation {
            totals,
            topics,
            produce_errors,
            replication_latency: self.replication_latency.snapshot(),
            max_lag_seconds: partitions.iter().map(|p| p.lag_seconds).fold(0.0, f64::max),
            stalled_partitions: partitions
                .iter()
                .filter(|p| p.stalled_for > judgement.stall_after)
                .count(),
            partitions,
            group_generation: (generation != i64::MIN)
                .then(|| i32::try_from(generation).ok())
                .flatten(),
            assigned_partitions: self.assigned(with_progress),
            buffer: self
                .budget
                .get()
                .and_then(Weak::upgrade)
                .map(|b| (b.used(), b.limit())),
            readiness: self.readiness(judgement.stall_after),
            health: self.health(judgement.max_silence),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let samples = load(&self.latency_samples);
        let (lag, remaining, partitions) = {
            let map = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            let mut lag = 0u64;
            let mut remaining = 0u64;
            for p in map.values().map(|s| &s.progress) {
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

/// How long `state`'s partition has had records to move without its
/// acknowledged offset moving.
fn stalled_for(state: &PartitionState, now: Instant) -> Duration {
    if state.progress.acknowledged >= state.progress.end {
        Duration::ZERO
    } else {
        now.saturating_duration_since(state.waiting_since)
    }
}

/// Milliseconds since the Unix epoch, as Kafka's timestamps count.
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The name Apache Kafka gives an error (`NOT_ENOUGH_REPLICAS`), from the
/// protocol crate's variant name (`NotEnoughReplicas`).
pub(crate) fn kafka_error_name(error: kmirror_protocol::ResponseError) -> String {
    let debug = format!("{error:?}");
    let mut name = String::with_capacity(debug.len() + 8);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_uppercase());
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(acknowledged: i64, end: i64) -> PartitionProgress {
        PartitionProgress {
            position: end,
            acknowledged,
            committed: None,
            end,
            target: None,
        }
    }

    #[test]
    fn kafka_error_names_are_apache_kafkas() {
        use kmirror_protocol::ResponseError;
        assert_eq!(
            kafka_error_name(ResponseError::NotEnoughReplicas),
            "NOT_ENOUGH_REPLICAS"
        );
        assert_eq!(
            kafka_error_name(ResponseError::NotLeaderOrFollower),
            "NOT_LEADER_OR_FOLLOWER"
        );
    }

    #[test]
    fn the_latency_histogram_is_cumulative() {
        let m = Metrics::default();
        let topic: Arc<str> = Arc::from("t");
        let now = now_millis();
        // One batch written 2 s ago, one 2 h ago, one without a timestamp.
        for ts in [Some(now - 2_000), Some(now - 7_200_000), None] {
            m.batch_acknowledged(&topic, MirrorPath::Passthrough, 5, 100, Duration::ZERO, ts);
        }
        let h = m.replication_latency.snapshot();
        assert_eq!(h.count, 2);
        let at = |bound: f64| {
            let i = LATENCY_BUCKETS.iter().position(|b| *b == bound).unwrap();
            h.cumulative[i]
        };
        assert_eq!(at(1.0), 0);
        assert_eq!(at(2.5), 1);
        assert_eq!(at(3600.0), 1);
        assert!(h.sum >= Duration::from_secs(7_202));
        let o = m.observe(Judgement::default());
        assert_eq!(
            o.topics
                .iter()
                .find(|(t, p, _)| t == "t" && *p == MirrorPath::Passthrough)
                .map(|(.., c)| *c),
            Some(PathCounts {
                records: 15,
                bytes: 300,
                batches: 3
            })
        );
    }

    #[test]
    fn lag_in_seconds_is_the_age_of_the_oldest_unacknowledged_fetch() {
        let m = Metrics::default();
        m.set_progress("t", 0, progress(0, 0));
        let now = now_millis();
        m.fetched_up_to("t", 0, 10, now - 60_000);
        m.fetched_up_to("t", 0, 20, now - 1_000);
        m.set_progress("t", 0, progress(0, 20));
        let lag = |m: &Metrics| m.observe(Judgement::default()).partitions[0].lag_seconds;
        assert!((59.0..120.0).contains(&lag(&m)), "{}", lag(&m));
        // The first response acknowledged: the second one is the oldest.
        m.set_progress("t", 0, progress(10, 20));
        assert!((0.5..30.0).contains(&lag(&m)), "{}", lag(&m));
        m.set_progress("t", 0, progress(20, 20));
        assert_eq!(lag(&m), 0.0);
    }

    #[test]
    fn readiness_needs_both_clusters_an_assignment_and_progress() {
        let m = Metrics::default();
        let r = m.readiness(Duration::from_secs(60));
        assert!(!r.ready);
        assert_eq!(r.reasons, ["no source partition is assigned"]);
        m.set_progress("t", 0, progress(5, 5));
        m.link_ok(Side::Source);
        m.link_ok(Side::Destination);
        assert!(m.readiness(Duration::from_secs(60)).ready);
        m.link_failed(Side::Destination, &"connection refused");
        // A failure shorter than the allowed time still counts as ready.
        let r = m.readiness(Duration::from_secs(60));
        assert!(r.ready && !r.destination_connected && r.source_connected);
        std::thread::sleep(Duration::from_millis(5));
        m.link_failed(Side::Destination, &"connection refused again");
        let r = m.readiness(Duration::from_millis(1));
        assert!(!r.ready, "{r:?}");
        assert!(r.reasons[0].contains("destination"), "{:?}", r.reasons);
        assert!(r.reasons[0].contains("refused again"), "{:?}", r.reasons);
        m.link_ok(Side::Destination);
        assert!(m.readiness(Duration::from_millis(1)).ready);
        // Records to move and no acknowledgement: stalled once the
        // allowed time has passed (zero here), not before.
        m.set_progress("t", 0, progress(5, 9));
        assert!(m.readiness(Duration::from_secs(3600)).ready);
        std::thread::sleep(Duration::from_millis(5));
        let r = m.readiness(Duration::ZERO);
        assert!(!r.ready, "{r:?}");
        assert!(r.reasons[0].contains("stalled"), "{:?}", r.reasons);
        // The offset moves: not stalled any more.
        m.set_progress("t", 0, progress(7, 9));
        assert!(m.readiness(Duration::from_secs(1)).ready);
        // The group says nothing is assigned.
        m.set_assigned_partitions(0);
        assert!(!m.readiness(Duration::from_secs(1)).ready);
    }

    #[test]
    fn health_follows_the_streams_heartbeats() {
        let m = Metrics::default();
        assert!(m.health(Duration::ZERO).healthy);
        m.heartbeat(0);
        assert!(m.health(Duration::from_secs(30)).healthy);
        std::thread::sleep(Duration::from_millis(5));
        let h = m.health(Duration::ZERO);
        assert!(!h.healthy);
        assert_eq!(h.streams, 1);
    }

    #[test]
    fn group_figures_are_unset_until_the_group_code_sets_them() {
        let m = Metrics::default();
        let o = m.observe(Judgement::default());
        assert_eq!(o.group_generation, None);
        m.set_group_generation(7);
        m.set_assigned_partitions(12);
        let o = m.observe(Judgement::default());
        assert_eq!(o.group_generation, Some(7));
        assert_eq!(o.assigned_partitions, 12);
    }
}
