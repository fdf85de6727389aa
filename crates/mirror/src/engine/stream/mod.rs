//! One pipeline (`--num.streams` runs several): the source partitions
//! assigned to it, one Fetch in flight per source broker covering every
//! such partition the broker leads, a produce lane per destination broker,
//! its own idempotent producer id, and its partitions' commits.
//!
//! The stream is a single task that owns all its state and reacts to
//! events (assignments, fetch and produce completions, timers, stop), so
//! no state is shared behind locks. I/O runs in spawned tasks: fetches,
//! control requests, and the produce lanes, which write requests of one
//! destination broker in the order the stream hands them over (the order
//! Kafka's idempotence needs with several requests in flight) and await
//! their responses concurrently.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::{self as kp, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kmirror_pool::cluster::ClusterMetadata;
use kmirror_pool::{Cluster, PoolError};
use kmirror_protocol::messages::fetch::{FetchResponse, FetchTopicRef};
use kmirror_protocol::messages::produce::{
    ProducePartition, ProduceRequest, ProduceResponse, ProduceTopic,
};
use kmirror_protocol::record::{
    LogEntry, PassthroughPolicy, ProduceBatch, RecordBatchView, rewrite_for_produce,
    rewrite_verified,
};
use kmirror_protocol::{RecordError, ResponseError, api::NegotiatedVersions};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::admin::{self, TopicPartition};
use super::budget::{Charge, MemoryBudget};
use super::config::{MirrorConfig, OffsetReset};
use super::error::{MirrorError, Side};
use super::group::Membership;
use super::metrics::{Metrics, PartitionProgress};
use super::slow_path::{Piece, Rebatch, Route, rebatch_measured, rebuild_estimate};
use crate::fetch_plan::{FetchPlanError, FetchSettings, PlanStep, plan_fetch_partition};
use crate::ledger::{DispatchId, OffsetLedger, Receipt};
use crate::sequencer::ProducerSequencer;
use crate::translation::{MapFlush, MapRecorder};

mod commit;
mod fetch;
mod produce;
pub(crate) mod revoke;
mod staging;
#[cfg(test)]
mod tests;
mod throttle;

/// Produce requests in flight per destination broker.
const MAX_REQUESTS_PER_BROKER: usize = 5;
/// How often progress is published to the metrics.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
/// Upper bound for a partition's fetch size raised for an oversized batch.
const MAX_PARTITION_FETCH: usize = 64 * 1024 * 1024;
/// The smallest fetch share of the budget.
const MIN_FETCH_SHARE: usize = 64 * 1024;
/// The most often metadata is refreshed while a leader is unknown (a
/// deleted topic must not cause a request storm).
const MIN_METADATA_INTERVAL: Duration = Duration::from_millis(250);
/// How long the final commit is retried (with backoff) before kmirror
/// gives up on it (the offsets then stay where the last successful commit
/// left them: duplicates, never loss). As long as the group's session
/// timeout: by then a membership lost at stop is either back (the group
/// task rejoined) or gone, and the group empty takes a standalone commit.
pub(crate) const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the engine's clients share with every stream.
#[derive(Debug)]
pub(crate) struct StreamContext {
    pub source: Cluster,
    pub destination: Cluster,
    pub config: Arc<MirrorConfig>,
    pub metrics: Arc<Metrics>,
    pub budget: Arc<MemoryBudget>,
    /// kmirror's identity in its group, for commits.
    pub membership: watch::Receiver<Option<Membership>>,
}

/// A source partition handed to a stream.
#[derive(Debug, Clone)]
pub(crate) struct Assignment {
    pub topic: Arc<str>,
    pub partition: i32,
    pub topic_id: [u8; 16],
    pub start: i64,
    pub committed: Option<i64>,
    /// The leader epoch committed with `committed` (-1: unknown).
    pub committed_epoch: i32,
    pub target: Option<i64>,
    pub route: Route,
    /// The destination topic's `max.message.bytes`, if known.
    pub max_batch_bytes: Option<usize>,
}

/// What the controller tells a stream.
#[derive(Debug)]
pub(crate) enum Command {
    /// Mirror this partition.
    Assign(Assignment),
    /// Give these partitions up (see [`revoke`]); answer on `done`.
    Revoke {
        partitions: BTreeSet<TopicPartition>,
        /// Commit their offsets first (false: the membership is lost).
        commit: bool,
        done: oneshot::Sender<()>,
    },
    /// No more assignments come ([`super::RunMode::Once`]): end once every
    /// partition reached its target.
    Seal,
}

/// A source partition's state.
#[derive(Debug)]
struct Slot {
    topic: Arc<str>,
    partition: i32,
    topic_id: [u8; 16],
    route: Route,
    max_batch_bytes: Option<usize>,
    ledger: OffsetLedger,
    position: i64,
    fetch_size: usize,
    leader: Option<i32>,
    fetching: bool,
    retry_at: Option<Instant>,
    end: i64,
    target: Option<i64>,
    /// An out-of-range reset waiting for the ledger to settle.
    reset_to: Option<i64>,
    resetting: bool,
    /// Whether `reset_to` comes from a truncation of the source log
    /// (KIP-320) rather than `auto.offset.reset`.
    truncated: bool,
    /// The leader epoch of the last batch fetched (sent in Fetch v12+ so
    /// the leader can tell that its log diverged), -1 if none yet.
    last_fetched_epoch: i32,
    /// Planned steps not yet dispatched, in offset order.
    staged: VecDeque<StagedStep>,
    /// The latest fetched data's mark: while a step or batch holds it,
    /// the partition is not fetched again.
    unsent: Weak<Unsent>,
    /// Being given up: not fetched again, what was fetched is still
    /// written.
    revoked: bool,
    /// Where acknowledged records landed, until written to the offset map
    /// (`None`: no map kept, or records placed by key).
    map: Option<MapRecorder>,
    /// When the map last had this partition's account written.
    map_refreshed: Instant,
}

impl Slot {
    fn done(&self) -> bool {
        self.target.is_some_and(|t| self.ledger.committable() >= t)
    }
}

/// A plan step waiting its turn. A partition's steps reach the ledger and
/// the destination queues in offset order, so steps behind a slow-path
/// step that a worker is still rebuilding wait for it.
#[derive(Debug)]
enum Staged {
    /// Ready to dispatch (passthrough, skip), or a slow-path step waiting
    /// for a free worker.
    Step(PlanStep),
    /// A worker is rebuilding it (job id).
    Rebuilding(u64),
    /// Rebuilt by a worker.
    Rebuilt {
        range: Range<i64>,
        pieces: Result<Vec<Piece>, RecordError>,
        /// The rebuilt batches' bytes, charged to the budget.
        charge: Option<Arc<Charge>>,
    },
}

#[derive(Debug)]
struct StagedStep {
    staged: Staged,
    held: Held,
}

/// Marks a source partition's latest fetched data as not yet written to
/// the destination. Every step and batch made from one fetched partition
/// holds a clone; the partition is fetched again only once none is held
/// (`Slot::unsent`), as Kafka's consumer does not fetch a partition whose
/// data it still buffers. That keeps about one response per partition in
/// memory, written out while it is still in the CPU's caches, instead of
/// filling `buffer.memory` with data the destination cannot take yet.
#[derive(Debug)]
struct Unsent;

/// What a staged step or a batch keeps alive until it is written.
#[derive(Debug, Clone, Default)]
struct Held {
    /// Keeps the fetched response's bytes charged to the budget (until
    /// the batch is acknowledged, not just written).
    _charge: Option<Arc<Charge>>,
    /// For a batch the slow path built: keeps the bytes of the batches
    /// built from the same step charged (until the last is acknowledged
    /// or dropped).
    _rebuilt: Option<Arc<Charge>>,
    /// Released when the batch is written to the destination.
    unsent: Option<Arc<Unsent>>,
}

/// A slow-path job's result.
struct JobDone {
    key: TopicPartition,
    id: u64,
    range: Range<i64>,
    pieces: Result<Vec<Piece>, RecordError>,
    /// What the rebuild was charged while it ran: the estimate reserved
    /// before it started, and the excess when the entry decompressed to
    /// more. Given back once its batches are charged instead.
    _reserved: Vec<Arc<Charge>>,
}

#[derive(Debug)]
enum Payload {
    /// A fetched batch, passed through.
    Fetched(RecordBatchView),
    /// A batch the slow path built.
    Built(ProduceBatch),
}

#[derive(Debug)]
struct OutBatch {
    source: TopicPartition,
    dispatch: DispatchId,
    range: Range<i64>,
    /// The source offsets of the records of a batch the slow path built
    /// (a passed-through batch's are its own offsets).
    sources: Vec<Range<i64>>,
    payload: Payload,
    stamped: Option<produce::Stamped>,
    records: i32,
    first_sent: Option<Instant>,
    awaiting: bool,
    held: Held,
}

impl OutBatch {
    /// Calls `f` with the source offsets of its records, as stretches of
    /// consecutive offsets (no allocation for a passed-through batch).
    fn with_source_offsets<R>(&self, f: impl FnOnce(&[Range<i64>]) -> R) -> R {
        match &self.payload {
            Payload::Fetched(view) => {
                let h = view.header();
                let own = h.base_offset..h.base_offset + i64::from(h.record_count);
                f(std::slice::from_ref(&own))
            }
            Payload::Built(_) => f(&self.sources),
        }
    }

    /// The batch's number in its destination partition's sequence (the
    /// wire's base sequence with idempotence): what answers are matched by.
    fn base_sequence(&self) -> Option<i32> {
        self.stamped.as_ref().map(|s| s.sequence)
    }
}

/// One destination partition's batches, in the order they must be written.
#[derive(Debug)]
struct DestQueue {
    leader: Option<i32>,
    pending: VecDeque<OutBatch>,
    /// Sent and not acknowledged, in sequence order.
    sent: VecDeque<OutBatch>,
    awaiting: usize,
    /// A sent batch failed retriably: once none is awaited, every sent
    /// batch goes again, in order, with its stamp.
    resend: bool,
    retry_at: Option<Instant>,
    /// Consecutive failed attempts since the last acknowledgement: the
    /// resend backoff grows with them.
    retries: u32,
}

impl DestQueue {
    fn new(leader: Option<i32>) -> Self {
        Self {
            leader,
            pending: VecDeque::new(),
            sent: VecDeque::new(),
            awaiting: 0,
            resend: false,
            retry_at: None,
            retries: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.sent.is_empty()
    }

    /// Puts every sent, unacknowledged batch back in front of the pending
    /// ones, in sequence order, to be sent again.
    fn requeue_sent(&mut self) {
        while let Some(mut b) = self.sent.pop_back() {
            b.awaiting = false;
            self.pending.push_front(b);
        }
        self.awaiting = 0;
        self.resend = false;
    }
}

/// A new offset map session id: random per process (std's hasher keys
/// are), distinct per call.
fn new_session_id() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = KEYS.get_or_init(Default::default).build_hasher();
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as i64
}

/// The wall clock in ms since the Unix epoch (0 if it is before it).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A partition in a fetch: topic, topic id, partition, position.
type FetchedPartition = (Arc<str>, [u8; 16], i32, i64);

/// A produce request being assembled: topics, size, and the batches'
/// partitions and base sequences.
type RequestDraft = (Vec<ProduceTopic>, usize, Vec<(TopicPartition, i32)>);

struct FetchJob {
    broker: i32,
    partitions: Vec<FetchedPartition>,
    /// The response size asked for (`max_bytes`).
    max_bytes: usize,
    _reservation: Arc<Charge>,
}

struct FetchDone {
    job: FetchJob,
    broker_addr: String,
    result: Result<FetchResponse, PoolError>,
}

struct ProduceJob {
    request: ProduceRequest,
    tag: Vec<(TopicPartition, i32)>,
    generation: u64,
    /// The lane's fence when the job was made (see [`Lane`]).
    fence: u64,
}

/// The produce lane of one destination broker: its queue, and a fence
/// raised whenever a connection to the broker died with requests on it.
/// A job made before the last raise is not written but failed as lost:
/// written on the next connection, it could overtake the lost ones and
/// leave a hole in its partition's sequence, which Apache Kafka refuses
/// (OUT_OF_ORDER_SEQUENCE_NUMBER). As Java's producer fails every request
/// of a broken connection before it sends on a new one, the stream learns
/// of every loss first, and resends in order.
struct Lane {
    jobs: mpsc::UnboundedSender<ProduceJob>,
    fence: Arc<std::sync::atomic::AtomicU64>,
}

struct ProduceDone {
    broker: i32,
    tag: Vec<(TopicPartition, i32)>,
    generation: u64,
    result: Result<ProduceResponse, PoolError>,
}

enum ControlDone {
    SourceMetadata(Result<Arc<ClusterMetadata>, PoolError>),
    DestinationMetadata(Result<Arc<ClusterMetadata>, PoolError>),
    ProducerId(Result<(i64, i16), PoolError>),
    /// A commit: the offsets, the offset map records written before it
    /// (empty if it failed), and the commit's answer.
    Commit(
        Vec<(TopicPartition, i64)>,
        Vec<(TopicPartition, MapFlush)>,
        Result<Vec<(TopicPartition, admin::CommitResult)>, PoolError>,
    ),
    Reset(TopicPartition, Result<i64, MirrorError>),
}

/// When the stream's loop wakes up at `now` if nothing else happens: at
/// the earliest retry timer still ahead, within 50 ms while the budget is
/// short, at the drain deadline, and at least once a second. Timers that
/// already passed were acted on when the loop last ran; they must not wake
/// it again (a past instant would make the loop spin).
fn wakeup(
    now: Instant,
    timers: impl IntoIterator<Item = Instant>,
    budget_short: bool,
    drain_deadline: Option<Instant>,
) -> Instant {
    let mut wake = now + Duration::from_secs(1);
    for at in timers.into_iter().filter(|at| *at > now) {
        wake = wake.min(at);
    }
    if budget_short {
        wake = wake.min(now + Duration::from_millis(50));
    }
    if let Some(d) = drain_deadline {
        wake = wake.min(d);
    }
    wake.max(now + Duration::from_millis(1))
}

/// How one produce answer is treated.
enum Outcome {
    /// Written, its first record at this offset (`None`: not said).
    Acknowledged(Option<i64>),
    Retry(String),
    /// The producer's sequence state is gone: bump the epoch, resend.
    Bump(String),
    Failed(String),
}

/// One cluster's metadata as a stream last read it, and whether a
/// refresh is running.
#[derive(Default)]
struct MetadataView {
    /// The snapshot (none before the first read).
    snapshot: Option<Arc<ClusterMetadata>>,
    /// A refresh is in flight.
    busy: bool,
    /// When the snapshot was taken.
    refreshed_at: Option<Instant>,
}

/// The stream's idempotent producer: its sequences, which send
/// generation batches were stamped in, and the InitProducerId in flight.
#[derive(Default)]
struct ProducerState {
    /// Producer id, epoch and per-partition sequences (none until the
    /// first InitProducerId answered).
    sequencer: Option<ProducerSequencer>,
    /// Bumped with the epoch: answers to requests of an older generation
    /// are stale.
    generation: u64,
    /// The broker lost the producer's state: bump the epoch once nothing
    /// is in flight.
    bump_needed: bool,
    /// An InitProducerId is in flight.
    pid_busy: bool,
    /// How long the next InitProducerId waits: zero until one fails.
    pid_backoff: Duration,
}

/// When a commit that failed is tried again. As Java's consumer retries
/// a failed auto-commit after `retry.backoff.ms` rather than at the next
/// `auto.commit.interval.ms`: with MirrorMaker's 60 s interval, a few
/// failures in a row (the coordinator moving, the group rejoining) left
/// minutes uncommitted, all copied again if kmirror was then killed.
#[derive(Default)]
struct CommitRetry {
    /// When to try again (none: at the next interval).
    at: Option<Instant>,
    /// Failures in a row, for the backoff.
    failures: u32,
}

/// The commit made when the stream stops.
#[derive(Default)]
struct FinalCommit {
    attempts: u32,
    /// Until when it is retried.
    deadline: Option<Instant>,
    /// When it is tried again after a failed attempt.
    retry_at: Option<Instant>,
    done: bool,
}

pub(crate) struct Stream {
    index: usize,
    ctx: Arc<StreamContext>,
    slots: BTreeMap<TopicPartition, Slot>,
    queues: BTreeMap<TopicPartition, DestQueue>,
    /// The source cluster's metadata as this stream last read it.
    source_view: MetadataView,
    /// The destination cluster's metadata as this stream last read it.
    dest_view: MetadataView,
    /// kmirror's idempotent producer on this stream's connections.
    producer: ProducerState,
    fetch_brokers: BTreeSet<i32>,
    /// Source brokers that asked for no fetch until a time (KIP-219).
    fetch_throttle: throttle::Throttles,
    /// Destination brokers that asked for no Produce until a time.
    produce_throttle: throttle::Throttles,
    /// Source brokers whose Fetch response was larger than a response
    /// may be.
    oversized: BTreeMap<i32, fetch::Oversized>,
    fetch_tasks: JoinSet<FetchDone>,
    /// The order of partitions in fetches: rotated as data returns.
    fetch_order: fetch::FetchOrder,
    /// Slow-path rebuilds running on the blocking pool.
    jobs: JoinSet<JobDone>,
    next_job: u64,
    control: JoinSet<ControlDone>,
    commit_busy: bool,
    /// A failed commit is tried again soon, not at the next interval.
    commit_retry: CommitRetry,
    lanes: BTreeMap<i32, Lane>,
    lane_requests: BTreeMap<i32, usize>,
    produce_done_tx: mpsc::UnboundedSender<ProduceDone>,
    produce_done_rx: mpsc::UnboundedReceiver<ProduceDone>,
    sealed: bool,
    stopping: bool,
    drain_deadline: Option<Instant>,
    /// The commit at stop.
    final_commit: FinalCommit,
    /// Partitions being given up, oldest first.
    revocations: Vec<revoke::Revocation>,
    /// The ledgers of partitions given up, kept so that late answers
    /// about their batches stay stale if the partition comes back.
    retired: BTreeMap<TopicPartition, OffsetLedger>,
    fatal: Option<MirrorError>,
}

impl Stream {
    pub(crate) fn new(index: usize, ctx: Arc<StreamContext>) -> Self {
        let (produce_done_tx, produce_done_rx) = mpsc::unbounded_channel();
        Self {
            index,
            ctx,
            slots: BTreeMap::new(),
            queues: BTreeMap::new(),
            source_view: MetadataView::default(),
            dest_view: MetadataView::default(),
            producer: ProducerState::default(),
            fetch_brokers: BTreeSet::new(),
            fetch_throttle: throttle::Throttles::default(),
            produce_throttle: throttle::Throttles::default(),
            oversized: BTreeMap::new(),
            fetch_tasks: JoinSet::new(),
            fetch_order: fetch::FetchOrder::default(),
            jobs: JoinSet::new(),
            next_job: 0,
            control: JoinSet::new(),
            commit_busy: false,
            commit_retry: CommitRetry::default(),
            lanes: BTreeMap::new(),
            lane_requests: BTreeMap::new(),
            produce_done_tx,
            produce_done_rx,
            sealed: false,
            stopping: false,
            drain_deadline: None,
            final_commit: FinalCommit::default(),
            revocations: Vec::new(),
            retired: BTreeMap::new(),
            fatal: None,
        }
    }

    /// Runs until stopped (or, sealed in `--once` mode, caught up), then
    /// drains, commits and returns.
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), MirrorError> {
        let mut commit_tick = tokio::time::interval(self.ctx.config.commit_interval);
        commit_tick.reset();
        let mut progress_tick = tokio::time::interval(PROGRESS_INTERVAL);
        let mut stop_seen = *stop.borrow();
        let mut commands_closed = false;
        loop {
            if stop_seen && !self.stopping {
                self.begin_stop();
            }
            if self.sealed && !self.stopping && self.slots.values().all(Slot::done) {
                tracing::info!(
                    stream = self.index,
                    "every partition reached its end offset"
                );
                self.begin_stop();
            }
            self.refresh_metadata_if_needed();
            if !self.stopping && self.commit_retry.at.is_some_and(|t| Instant::now() >= t) {
                self.commit_retry.at = None;
                self.start_commit();
            }
            // Every produce outcome already delivered is taken in before
            // anything new is written: a batch lost with its connection
            // marks its partition for resend, and a later batch of that
            // partition written first would leave a hole in its sequence
            // (found by the cluster simulation).
            while let Ok(done) = self.produce_done_rx.try_recv() {
                self.on_produce(done);
            }
            // Writing first releases what the fetch gate waits for.
            self.pump_produce();
            self.progress_revocations();
            self.start_fetches();
            if self.stopping && self.try_finish() {
                break;
            }
            let wake = self.next_wakeup();
            let budget = self.ctx.budget.clone();
            let budget_blocked = !self.stopping && self.budget_short();
            // `biased`: the same events give the same order of decisions
            // (the cluster simulation replays a seed exactly). The stop
            // and the timers come first, as each is ready at most once
            // per period; the wakeup for retries comes last.
            tokio::select! {
                biased;
                changed = stop.changed(), if !stop_seen => {
                    stop_seen = changed.is_err() || *stop.borrow();
                }
                _ = commit_tick.tick(), if !self.stopping => self.start_commit(),
                _ = progress_tick.tick() => self.publish_progress(),
                Some(done) = self.produce_done_rx.recv() => self.on_produce(done),
                Some(done) = self.fetch_tasks.join_next(), if !self.fetch_tasks.is_empty() => {
                    match done {
                        Ok(done) => self.on_fetch(done),
                        Err(e) => self.fail(MirrorError::Internal(format!("fetch task: {e}"))),
                    }
                }
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    match done {
                        Ok(done) => self.on_job(done),
                        Err(e) => self.fail(MirrorError::Internal(format!("slow-path worker: {e}"))),
                    }
                }
                Some(done) = self.control.join_next(), if !self.control.is_empty() => {
                    match done {
                        Ok(done) => self.on_control(done),
                        Err(e) => self.fail(MirrorError::Internal(format!("control task: {e}"))),
                    }
                }
                command = commands.recv(), if !commands_closed => match command {
                    Some(Command::Assign(a)) => self.assign(a),
                    Some(Command::Revoke { partitions, commit, done }) => {
                        self.revoke(partitions, commit, done);
                    }
                    Some(Command::Seal) => self.sealed = true,
                    None => {
                        commands_closed = true;
                        self.sealed = true;
                    }
                },
                _ = budget.released(), if budget_blocked => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        self.publish_progress();
        match self.fatal.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn assign(&mut self, a: Assignment) {
        let key: TopicPartition = (a.topic.clone(), a.partition);
        let leader = self
            .source_view
            .snapshot
            .as_ref()
            .and_then(|m| m.leader(&a.topic, a.partition))
            .map(|b| b.id);
        // A partition given up before comes back: its old ledger, reset,
        // keeps late answers about its old batches stale.
        let mut ledger = match self.retired.remove(&key) {
            Some(mut old) => {
                old.reset(a.start);
                old
            }
            None => OffsetLedger::new(a.start),
        };
        if let Some(c) = a.committed {
            ledger.mark_committed(c);
        }
        tracing::debug!(topic = %a.topic, partition = a.partition, start = a.start, target = ?a.target, "assigned");
        let fetch_size =
            usize::try_from(self.ctx.config.fetch.max_partition_bytes).unwrap_or(1 << 20);
        self.slots.insert(
            key,
            Slot {
                topic: a.topic,
                partition: a.partition,
                topic_id: a.topic_id,
                route: a.route,
                max_batch_bytes: a.max_batch_bytes,
                ledger,
                position: a.start,
                fetch_size,
                leader,
                fetching: false,
                retry_at: None,
                end: a.start,
                target: a.target,
                reset_to: None,
                resetting: false,
                truncated: false,
                // Starting at the committed offset, its epoch lets the
                // first fetch find a truncation below it.
                last_fetched_epoch: if a.committed == Some(a.start) {
                    a.committed_epoch
                } else {
                    -1
                },
                staged: VecDeque::new(),
                unsent: Weak::new(),
                revoked: false,
                map: (self.ctx.config.offset_map_topic.is_some()
                    && a.route == Route::SamePartition)
                    .then(|| MapRecorder::new(new_session_id(), a.start)),
                map_refreshed: Instant::now(),
            },
        );
    }

    fn fail(&mut self, error: MirrorError) {
        tracing::error!(stream = self.index, error = %error, "stopping");
        if self.fatal.is_none() {
            self.fatal = Some(error);
        }
        self.drop_unsent();
        self.begin_stop();
    }

    /// Nothing goes out for the first time after a fatal error: a batch
    /// behind the failed one would leave a hole at the destination (and be
    /// copied again on the next start). Batches already sent are still
    /// awaited (and resent if they must be) so that their commit holds.
    fn drop_unsent(&mut self) {
        for q in self.queues.values_mut() {
            q.pending.retain(|b| b.stamped.is_some());
        }
    }

    fn begin_stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.drain_deadline = Some(Instant::now() + self.ctx.config.drain_timeout);
        let waiting: usize = self
            .queues
            .values()
            .map(|q| q.pending.len() + q.sent.len())
            .sum();
        tracing::info!(
            stream = self.index,
            batches = waiting,
            "stopping: fetching stopped, draining in-flight batches"
        );
    }

    /// While stopping: once drained (or out of time), the final commit;
    /// true when the stream may return.
    fn try_finish(&mut self) -> bool {
        // After a fatal error, staged steps behind the failed one never
        // dispatch: only what was sent is waited for.
        let staged_done = self.fatal.is_some()
            || (self.jobs.is_empty() && self.slots.values().all(|s| s.staged.is_empty()));
        let drained = self.queues.values().all(DestQueue::is_empty) && staged_done;
        let out_of_time = self.drain_deadline.is_some_and(|d| Instant::now() >= d);
        if !drained && !out_of_time {
            return false;
        }
        if !drained && !self.final_commit.done && self.final_commit.attempts == 0 {
            let left: usize = self
                .queues
                .values()
                .map(|q| q.pending.len() + q.sent.len())
                .sum();
            tracing::warn!(
                stream = self.index,
                batches = left,
                "drain timeout: committing what the destination acknowledged; the rest is mirrored again on the next start"
            );
        }
        if self.commit_busy {
            return false;
        }
        if self.final_commit.done {
            return true;
        }
        let due = self.slots.values().any(|s| s.ledger.commit_due().is_some());
        if !due {
            self.final_commit.done = true;
            return true;
        }
        // Retried, with backoff, for a bounded time: a commit refused or
        // lost while the group changes (kmirror's membership missing for
        // a moment while it rejoins, the coordinator moving) is worth
        // another try; only the deadline gives up.
        let now = Instant::now();
        let deadline = *self
            .final_commit
            .deadline
            .get_or_insert(now + FINAL_COMMIT_TIMEOUT);
        if now >= deadline {
            tracing::warn!(
                stream = self.index,
                attempts = self.final_commit.attempts,
                "the final offset commit did not succeed in time; the next start mirrors again from the offsets committed last (duplicates, no loss)"
            );
            self.final_commit.done = true;
            return true;
        }
        if self.final_commit.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        self.final_commit.attempts += 1;
        let backoff = Duration::from_millis(100)
            .saturating_mul(1 << self.final_commit.attempts.min(4))
            .min(deadline - now);
        self.final_commit.retry_at = Some(now + backoff);
        self.start_commit();
        false
    }

    fn next_wakeup(&self) -> Instant {
        let timers = self
            .slots
            .values()
            .filter_map(|s| s.retry_at)
            .chain(self.queues.values().filter_map(|q| q.retry_at))
            .chain(self.fetch_throttle.ends())
            .chain(self.produce_throttle.ends())
            .chain(self.final_commit.retry_at)
            .chain(self.commit_retry.at)
            .chain(self.revocations.iter().map(revoke::Revocation::deadline));
        wakeup(
            Instant::now(),
            timers,
            self.budget_short(),
            self.drain_deadline,
        )
    }

    fn refresh_metadata_if_needed(&mut self) {
        let now = Instant::now();
        let backoff = self
            .ctx
            .config
            .produce
            .retry_backoff
            .max(MIN_METADATA_INTERVAL);
        let source_needed = self.source_view.snapshot.is_none()
            || (!self.stopping && self.slots.values().any(|s| s.leader.is_none()));
        if source_needed
            && !self.source_view.busy
            && self
                .source_view
                .refreshed_at
                .is_none_or(|t| now >= t + backoff)
        {
            self.source_view.busy = true;
            self.source_view.refreshed_at = Some(now);
            let cluster = self.ctx.source.clone();
            let first = self.source_view.snapshot.is_none();
            self.control.spawn(async move {
                let result = if first {
                    cluster.metadata().await
                } else {
                    cluster.refresh_metadata().await
                };
                ControlDone::SourceMetadata(result)
            });
        }
        let dest_needed = self.dest_view.snapshot.is_none()
            || self
                .queues
                .values()
                .any(|q| q.leader.is_none() && !q.is_empty());
        if dest_needed
            && !self.dest_view.busy
            && self
                .dest_view
                .refreshed_at
                .is_none_or(|t| now >= t + backoff)
        {
            self.dest_view.busy = true;
            self.dest_view.refreshed_at = Some(now);
            let cluster = self.ctx.destination.clone();
            let first = self.dest_view.snapshot.is_none();
            self.control.spawn(async move {
                let result = if first {
                    cluster.metadata().await
                } else {
                    cluster.refresh_metadata().await
                };
                ControlDone::DestinationMetadata(result)
            });
        }
    }

    fn on_control(&mut self, done: ControlDone) {
        match done {
            ControlDone::SourceMetadata(result) => {
                self.source_view.busy = false;
                match result {
                    Ok(meta) => {
                        for slot in self.slots.values_mut() {
                            slot.leader = meta.leader(&slot.topic, slot.partition).map(|b| b.id);
                        }
                        self.source_view.snapshot = Some(meta);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "source metadata refresh failed; retrying")
                    }
                }
            }
            ControlDone::DestinationMetadata(result) => {
                self.dest_view.busy = false;
                match result {
                    Ok(meta) => {
                        for ((topic, partition), q) in self.queues.iter_mut() {
                            q.leader = meta.leader(topic, *partition).map(|b| b.id);
                        }
                        self.dest_view.snapshot = Some(meta);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "destination metadata refresh failed; retrying")
                    }
                }
            }
            ControlDone::ProducerId(result) => self.on_producer_id(result),
            ControlDone::Commit(offsets, written, result) => {
                self.on_map_written(&written);
                self.on_commit(offsets, result);
            }
            ControlDone::Reset(key, result) => {
                let Some(slot) = self.slots.get_mut(&key) else {
                    return;
                };
                slot.resetting = false;
                match result {
                    Ok(offset) => slot.reset_to = Some(offset),
                    Err(e) => {
                        if matches!(e, MirrorError::NoStartOffset { .. }) {
                            self.fail(e);
                        } else {
                            tracing::warn!(topic = %key.0, partition = key.1, error = %e, "offset reset failed; retrying");
                            slot.retry_at =
                                Some(Instant::now() + self.ctx.config.produce.retry_backoff);
                            slot.reset_to = None;
                            slot.resetting = false;
                            // Ask again on the next fetch error.
                        }
                    }
                }
            }
        }
    }

    fn publish_progress(&self) {
        for ((topic, partition), slot) in &self.slots {
            self.ctx.metrics.set_progress(
                topic,
                *partition,
                PartitionProgress {
                    position: slot.position,
                    acknowledged: slot.ledger.committable(),
                    committed: slot.ledger.committed(),
                    end: slot.end.max(slot.position),
                    target: slot.target,
                },
            );
        }
    }
}
