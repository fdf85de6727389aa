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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;
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
    LogEntry, PassthroughPolicy, ProduceBatch, RecordBatchView, rewrite_verified,
};
use kmirror_protocol::{RecordError, ResponseError, api::NegotiatedVersions};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::admin::{self, TopicPartition};
use super::budget::{Charge, MemoryBudget};
use super::config::{MirrorConfig, OffsetReset};
use super::error::{MirrorError, Side};
use super::group::Membership;
use super::metrics::{Metrics, PartitionProgress};
use super::slow_path::{Piece, Rebatch, Route, rebatch};
use crate::fetch_plan::{FetchPlanError, FetchSettings, PlanStep, plan_fetch_partition};
use crate::ledger::{DispatchId, OffsetLedger};
use crate::sequencer::ProducerSequencer;

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
/// Final commit attempts before giving up (the offsets then stay where the
/// last successful commit left them: duplicates, never loss).
const FINAL_COMMIT_ATTEMPTS: u32 = 5;

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
    pub target: Option<i64>,
    pub route: Route,
    /// The destination topic's `max.message.bytes`, if known.
    pub max_batch_bytes: Option<usize>,
}

/// What the controller tells a stream.
#[derive(Debug)]
pub(crate) enum Command {
    Assign(Assignment),
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
    /// Planned steps not yet dispatched, in offset order.
    staged: VecDeque<StagedStep>,
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
    },
}

#[derive(Debug)]
struct StagedStep {
    staged: Staged,
    /// Keeps the fetched response's bytes charged to the budget.
    charge: Option<Arc<Charge>>,
}

/// A slow-path job's result: partition, job id, pieces.
type JobDone = (
    TopicPartition,
    u64,
    Range<i64>,
    Result<Vec<Piece>, RecordError>,
);

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
    payload: Payload,
    stamped: Option<ProduceBatch>,
    records: i32,
    first_sent: Option<Instant>,
    awaiting: bool,
    /// Keeps the fetched response's bytes charged to the budget.
    _charge: Option<Arc<Charge>>,
}

impl OutBatch {
    fn base_sequence(&self) -> Option<i32> {
        self.stamped.as_ref().map(|b| b.header().base_sequence)
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
        }
    }

    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.sent.is_empty()
    }
}

/// A partition in a fetch: topic, topic id, partition, position.
type FetchedPartition = (Arc<str>, [u8; 16], i32, i64);

/// A produce request being assembled: topics, size, and the batches'
/// partitions and base sequences.
type RequestDraft = (Vec<ProduceTopic>, usize, Vec<(TopicPartition, i32)>);

struct FetchJob {
    broker: i32,
    partitions: Vec<FetchedPartition>,
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
    Commit(
        Vec<(TopicPartition, i64)>,
        Result<Vec<(TopicPartition, admin::CommitResult)>, PoolError>,
    ),
    Reset(TopicPartition, Result<i64, MirrorError>),
}

/// How one produce answer is treated.
enum Outcome {
    Acknowledged,
    Retry(String),
    /// The producer's sequence state is gone: bump the epoch, resend.
    Bump(String),
    Failed(String),
}

pub(crate) struct Stream {
    index: usize,
    ctx: Arc<StreamContext>,
    slots: BTreeMap<TopicPartition, Slot>,
    queues: BTreeMap<TopicPartition, DestQueue>,
    source_meta: Option<Arc<ClusterMetadata>>,
    dest_meta: Option<Arc<ClusterMetadata>>,
    sequencer: Option<ProducerSequencer>,
    generation: u64,
    bump_needed: bool,
    fetch_brokers: HashSet<i32>,
    fetch_tasks: JoinSet<FetchDone>,
    /// Slow-path rebuilds running on the blocking pool.
    jobs: JoinSet<JobDone>,
    next_job: u64,
    control: JoinSet<ControlDone>,
    source_meta_busy: bool,
    dest_meta_busy: bool,
    source_meta_at: Option<Instant>,
    dest_meta_at: Option<Instant>,
    pid_busy: bool,
    commit_busy: bool,
    lanes: HashMap<i32, mpsc::UnboundedSender<ProduceJob>>,
    lane_requests: HashMap<i32, usize>,
    produce_done_tx: mpsc::UnboundedSender<ProduceDone>,
    produce_done_rx: mpsc::UnboundedReceiver<ProduceDone>,
    sealed: bool,
    stopping: bool,
    drain_deadline: Option<Instant>,
    final_commit_attempts: u32,
    final_commit_done: bool,
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
            source_meta: None,
            dest_meta: None,
            sequencer: None,
            generation: 0,
            bump_needed: false,
            fetch_brokers: HashSet::new(),
            fetch_tasks: JoinSet::new(),
            jobs: JoinSet::new(),
            next_job: 0,
            control: JoinSet::new(),
            source_meta_busy: false,
            dest_meta_busy: false,
            source_meta_at: None,
            dest_meta_at: None,
            pid_busy: false,
            commit_busy: false,
            lanes: HashMap::new(),
            lane_requests: HashMap::new(),
            produce_done_tx,
            produce_done_rx,
            sealed: false,
            stopping: false,
            drain_deadline: None,
            final_commit_attempts: 0,
            final_commit_done: false,
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
            self.start_fetches();
            self.pump_produce();
            if self.stopping && self.try_finish() {
                break;
            }
            let wake = self.next_wakeup();
            let budget = self.ctx.budget.clone();
            let budget_blocked = !self.stopping && self.budget_short();
            tokio::select! {
                command = commands.recv(), if !self.sealed => match command {
                    Some(Command::Assign(a)) => self.assign(a),
                    None => self.sealed = true,
                },
                changed = stop.changed(), if !stop_seen => {
                    stop_seen = changed.is_err() || *stop.borrow();
                }
                Some(done) = self.fetch_tasks.join_next(), if !self.fetch_tasks.is_empty() => {
                    match done {
                        Ok(done) => self.on_fetch(done),
                        Err(e) => self.fail(MirrorError::Internal(format!("fetch task: {e}"))),
                    }
                }
                Some(done) = self.produce_done_rx.recv() => self.on_produce(done),
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
                _ = commit_tick.tick(), if !self.stopping => self.start_commit(),
                _ = progress_tick.tick() => self.publish_progress(),
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
            .source_meta
            .as_ref()
            .and_then(|m| m.leader(&a.topic, a.partition))
            .map(|b| b.id);
        let mut ledger = OffsetLedger::new(a.start);
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
                staged: VecDeque::new(),
            },
        );
    }

    fn fail(&mut self, error: MirrorError) {
        tracing::error!(stream = self.index, error = %error, "stopping");
        if self.fatal.is_none() {
            self.fatal = Some(error);
        }
        self.begin_stop();
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
        let drained = self.queues.values().all(DestQueue::is_empty)
            && self.jobs.is_empty()
            && self.slots.values().all(|s| s.staged.is_empty());
        let out_of_time = self.drain_deadline.is_some_and(|d| Instant::now() >= d);
        if !drained && !out_of_time {
            return false;
        }
        if !drained && !self.final_commit_done && self.final_commit_attempts == 0 {
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
        if self.final_commit_done {
            return true;
        }
        let due = self.slots.values().any(|s| s.ledger.commit_due().is_some());
        if !due || self.final_commit_attempts >= FINAL_COMMIT_ATTEMPTS {
            self.final_commit_done = true;
            return true;
        }
        self.final_commit_attempts += 1;
        self.start_commit();
        false
    }

    fn next_wakeup(&self) -> Instant {
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(1);
        let retry = self
            .slots
            .values()
            .filter_map(|s| s.retry_at)
            .chain(self.queues.values().filter_map(|q| q.retry_at));
        for at in retry {
            wake = wake.min(at);
        }
        if self.budget_short() {
            wake = wake.min(now + Duration::from_millis(50));
        }
        if let Some(d) = self.drain_deadline {
            wake = wake.min(d);
        }
        wake.max(now + Duration::from_millis(1))
    }

    // ---- metadata ----

    fn refresh_metadata_if_needed(&mut self) {
        let now = Instant::now();
        let backoff = self
            .ctx
            .config
            .produce
            .retry_backoff
            .max(MIN_METADATA_INTERVAL);
        let source_needed = self.source_meta.is_none()
            || (!self.stopping && self.slots.values().any(|s| s.leader.is_none()));
        if source_needed
            && !self.source_meta_busy
            && self.source_meta_at.is_none_or(|t| now >= t + backoff)
        {
            self.source_meta_busy = true;
            self.source_meta_at = Some(now);
            let cluster = self.ctx.source.clone();
            let first = self.source_meta.is_none();
            self.control.spawn(async move {
                let result = if first {
                    cluster.metadata().await
                } else {
                    cluster.refresh_metadata().await
                };
                ControlDone::SourceMetadata(result)
            });
        }
        let dest_needed = self.dest_meta.is_none()
            || self
                .queues
                .values()
                .any(|q| q.leader.is_none() && !q.is_empty());
        if dest_needed
            && !self.dest_meta_busy
            && self.dest_meta_at.is_none_or(|t| now >= t + backoff)
        {
            self.dest_meta_busy = true;
            self.dest_meta_at = Some(now);
            let cluster = self.ctx.destination.clone();
            let first = self.dest_meta.is_none();
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
                self.source_meta_busy = false;
                match result {
                    Ok(meta) => {
                        for slot in self.slots.values_mut() {
                            slot.leader = meta.leader(&slot.topic, slot.partition).map(|b| b.id);
                        }
                        self.source_meta = Some(meta);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "source metadata refresh failed; retrying")
                    }
                }
            }
            ControlDone::DestinationMetadata(result) => {
                self.dest_meta_busy = false;
                match result {
                    Ok(meta) => {
                        for ((topic, partition), q) in self.queues.iter_mut() {
                            q.leader = meta.leader(topic, *partition).map(|b| b.id);
                        }
                        self.dest_meta = Some(meta);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "destination metadata refresh failed; retrying")
                    }
                }
            }
            ControlDone::ProducerId(result) => self.on_producer_id(result),
            ControlDone::Commit(offsets, result) => self.on_commit(offsets, result),
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

    // ---- fetch ----

    /// The most one fetch may ask for: `fetch.max.bytes`, capped at a fair
    /// share of the budget so that every stream's long-polling fetch fits
    /// in it with room left for data waiting on the destination (a fetch
    /// reserves what it asks for until its response is in).
    fn fetch_share(&self) -> usize {
        let limit = usize::try_from(self.ctx.config.fetch.max_bytes).unwrap_or(usize::MAX);
        let streams = self.ctx.config.streams.max(1);
        let share = (self.ctx.budget.limit() / (2 * streams)).max(MIN_FETCH_SHARE);
        limit.min(share).max(1)
    }

    /// The least budget worth a fetch: half a share.
    fn useful_fetch(&self) -> usize {
        (self.fetch_share() / 2).max(1)
    }

    /// Whether fetching waits for the destination to acknowledge data.
    fn budget_short(&self) -> bool {
        self.ctx.budget.available() < self.useful_fetch()
    }

    fn start_fetches(&mut self) {
        if self.stopping || self.fatal.is_some() {
            return;
        }
        let now = Instant::now();
        // Apply out-of-range resets once nothing below them is in flight.
        for slot in self.slots.values_mut() {
            if let Some(to) = slot.reset_to
                && slot.ledger.is_settled()
                && slot.staged.is_empty()
                && !slot.fetching
            {
                if let Some(c) = slot.ledger.committed() {
                    slot.ledger.reset(to);
                    // Keep the commit point known so a commit is only sent
                    // when it moves.
                    slot.ledger.mark_committed(c);
                } else {
                    slot.ledger.reset(to);
                }
                slot.position = to;
                slot.reset_to = None;
            }
        }
        let useful = self.useful_fetch();
        if self.budget_short() {
            return;
        }
        let mut by_broker: BTreeMap<i32, Vec<FetchedPartition>> = BTreeMap::new();
        for slot in self.slots.values() {
            let Some(leader) = slot.leader else { continue };
            if slot.fetching
                || slot.reset_to.is_some()
                || slot.resetting
                || slot.retry_at.is_some_and(|t| now < t)
                || self.fetch_brokers.contains(&leader)
                || slot.target.is_some_and(|t| slot.position >= t)
            {
                continue;
            }
            by_broker.entry(leader).or_default().push((
                slot.topic.clone(),
                slot.topic_id,
                slot.partition,
                slot.position,
            ));
        }
        for (broker, partitions) in by_broker {
            let available = self.ctx.budget.available();
            if available < useful {
                break;
            }
            for (topic, _, partition, _) in &partitions {
                if let Some(slot) = self.slots.get_mut(&(topic.clone(), *partition)) {
                    slot.fetching = true;
                    slot.retry_at = None;
                }
            }
            self.fetch_brokers.insert(broker);
            let sizes: Vec<usize> = partitions
                .iter()
                .map(|(t, _, p, _)| {
                    self.slots
                        .get(&(t.clone(), *p))
                        .map_or(1 << 20, |s| s.fetch_size)
                })
                .collect();
            let cluster = self.ctx.source.clone();
            let fetch = self.ctx.config.fetch.clone();
            let max_bytes = self.fetch_share().min(available).max(1);
            // Held until the response is in and charged for what it holds,
            // so fetches in flight never promise more than the budget.
            let reservation = self.ctx.budget.charge(max_bytes);
            let job = FetchJob {
                broker,
                partitions,
                _reservation: reservation,
            };
            self.fetch_tasks.spawn(async move {
                let conn = match cluster.connection_to_broker(job.broker).await {
                    Ok(conn) => conn,
                    Err(e) => {
                        return FetchDone {
                            job,
                            broker_addr: String::new(),
                            result: Err(e),
                        };
                    }
                };
                let addr = conn.broker().to_owned();
                let request = match fetch_request(conn.versions(), &job, &sizes, &fetch, max_bytes)
                {
                    Ok(r) => r,
                    Err(e) => {
                        return FetchDone {
                            job,
                            broker_addr: addr.clone(),
                            result: Err(PoolError::Protocol {
                                broker: addr,
                                source: Arc::new(e),
                            }),
                        };
                    }
                };
                let result = conn.send(&request).await;
                FetchDone {
                    job,
                    broker_addr: addr,
                    result,
                }
            });
        }
    }

    fn on_fetch(&mut self, done: FetchDone) {
        let FetchDone {
            job,
            broker_addr,
            result,
        } = done;
        self.fetch_brokers.remove(&job.broker);
        let mut positions: HashMap<TopicPartition, i64> = HashMap::new();
        for (topic, _, partition, position) in &job.partitions {
            if let Some(slot) = self.slots.get_mut(&(topic.clone(), *partition)) {
                slot.fetching = false;
            }
            positions.insert((topic.clone(), *partition), *position);
        }
        let backoff = self.ctx.config.produce.retry_backoff;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(broker = job.broker, error = %e, "fetch failed; retrying");
                let stale = e.invalidates_metadata() || !e.is_retriable();
                if stale {
                    self.ctx.source.invalidate_metadata();
                }
                for (topic, _, partition, _) in &job.partitions {
                    if let Some(slot) = self.slots.get_mut(&(topic.clone(), *partition)) {
                        slot.retry_at = Some(Instant::now() + backoff);
                        if stale {
                            slot.leader = None;
                        }
                    }
                }
                return;
            }
        };
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            tracing::warn!(broker = %broker_addr, %error, "fetch refused; retrying");
            for (topic, _, partition, _) in &job.partitions {
                if let Some(slot) = self.slots.get_mut(&(topic.clone(), *partition)) {
                    slot.retry_at = Some(Instant::now() + backoff);
                }
            }
            return;
        }
        let total: usize = response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .sum();
        self.ctx.metrics.add_fetched(total);
        if total > 0 {
            tracing::trace!(broker = %broker_addr, bytes = total, "fetched");
        }
        let charge = (total > 0).then(|| self.ctx.budget.charge(total));
        for topic in response.topics {
            let name: Arc<str> = match &topic.topic {
                FetchTopicRef::Name(n) => match job.partitions.iter().find(|(t, ..)| **t == **n) {
                    Some((t, ..)) => t.clone(),
                    None => continue,
                },
                FetchTopicRef::Id(id) => match job.partitions.iter().find(|(_, i, ..)| i == id) {
                    Some((t, ..)) => t.clone(),
                    None => continue,
                },
            };
            for p in topic.partitions {
                let key = (name.clone(), p.partition_index);
                let Some(&asked) = positions.get(&key) else {
                    continue;
                };
                if self.slots.get(&key).is_none_or(|s| s.position != asked) {
                    continue;
                }
                self.on_fetched_partition(&key, &broker_addr, p, charge.as_ref());
                if self.fatal.is_some() {
                    return;
                }
            }
        }
    }

    fn on_fetched_partition(
        &mut self,
        key: &TopicPartition,
        broker: &str,
        p: kmirror_protocol::messages::fetch::FetchPartition,
        charge: Option<&Arc<Charge>>,
    ) {
        let config = self.ctx.config.clone();
        let backoff = config.produce.retry_backoff;
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        // Apache Kafka answers OFFSET_OUT_OF_RANGE for a position past the
        // high-water mark; some compatible brokers return nothing instead,
        // which would stall the partition for ever.
        let past_the_end =
            p.error_code == 0 && p.high_watermark >= 0 && slot.position > p.high_watermark;
        let code = if past_the_end {
            ResponseError::OffsetOutOfRange.code()
        } else {
            p.error_code
        };
        if let Some(error) = ResponseError::try_from_code(code) {
            match error {
                ResponseError::OffsetOutOfRange => {
                    let reset = config.fetch.offset_reset;
                    if reset == OffsetReset::None {
                        let position = slot.position;
                        self.fail(MirrorError::NoStartOffset {
                            topic: key.0.to_string(),
                            partition: key.1,
                            why: format!("offset {position} is out of range on the source"),
                        });
                        return;
                    }
                    tracing::warn!(topic = %key.0, partition = key.1, position = slot.position, reset = ?reset,
                        "fetch position out of range on the source (data deleted by retention, or the topic was recreated); resetting per auto.offset.reset");
                    slot.resetting = true;
                    let cluster = self.ctx.source.clone();
                    let isolation = config.fetch.isolation;
                    let k = key.clone();
                    self.control.spawn(async move {
                        let result = admin::list_offsets(
                            &cluster,
                            Side::Source,
                            std::slice::from_ref(&k),
                            reset,
                            isolation,
                        )
                        .await
                        .and_then(|m| {
                            m.get(&k).copied().ok_or_else(|| {
                                MirrorError::Internal(format!(
                                    "ListOffsets did not answer for {}-{}",
                                    k.0, k.1
                                ))
                            })
                        });
                        ControlDone::Reset(k, result)
                    });
                }
                e if e.is_retriable()
                    || matches!(
                        e,
                        ResponseError::NotLeaderOrFollower
                            | ResponseError::UnknownTopicOrPartition
                            | ResponseError::UnknownTopicId
                            | ResponseError::FencedLeaderEpoch
                            | ResponseError::UnknownLeaderEpoch
                    ) =>
                {
                    tracing::debug!(topic = %key.0, partition = key.1, %broker, error = %e, "fetch partition error; refreshing metadata");
                    slot.leader = None;
                    slot.retry_at = Some(Instant::now() + backoff);
                    self.ctx.source.invalidate_metadata();
                }
                e => {
                    self.fail(MirrorError::Refused {
                        side: Side::Source,
                        what: format!("Fetch of {}-{} from broker {broker}", key.0, key.1),
                        error: e,
                        hint: matches!(e, ResponseError::TopicAuthorizationFailed)
                            .then(|| "grant the mirror's principal Read on the topic".to_owned()),
                    });
                }
            }
            return;
        }
        let end = if config.fetch.isolation == crate::fetch_plan::IsolationLevel::ReadCommitted
            && p.last_stable_offset >= 0
        {
            p.last_stable_offset
        } else {
            p.high_watermark
        };
        slot.end = end;
        let policy = PassthroughPolicy::at(slot.position)
            .with_target_codec(config.produce.compression)
            .with_max_batch_bytes(slot.max_batch_bytes);
        let settings = FetchSettings::default()
            .with_isolation(config.fetch.isolation)
            .with_check_crcs(config.fetch.check_crcs);
        let plan = match plan_fetch_partition(&p, &policy, settings) {
            Ok(plan) => plan,
            Err(FetchPlanError::BatchLargerThanFetch {
                needed_at_least,
                position,
            }) => {
                let raised = needed_at_least
                    .next_power_of_two()
                    .clamp(slot.fetch_size * 2, MAX_PARTITION_FETCH);
                if raised <= slot.fetch_size {
                    let source = FetchPlanError::BatchLargerThanFetch {
                        needed_at_least,
                        position,
                    };
                    self.fail(MirrorError::SourceData {
                        topic: key.0.to_string(),
                        partition: key.1,
                        broker: broker.to_owned(),
                        source,
                    });
                } else {
                    tracing::info!(topic = %key.0, partition = key.1, position, needed_at_least, fetch_size = raised,
                        "a batch is larger than max.partition.fetch.bytes; fetching this partition with a larger size");
                    slot.fetch_size = raised;
                }
                return;
            }
            Err(source) => {
                self.fail(MirrorError::SourceData {
                    topic: key.0.to_string(),
                    partition: key.1,
                    broker: broker.to_owned(),
                    source,
                });
                return;
            }
        };
        let counters = plan.counters();
        let route = slot.route;
        // Placing records by key decodes every batch, qualifying or not.
        let (passthrough, slow) = match route {
            Route::SamePartition => (counters.passthrough_batches, counters.slow_path_batches),
            Route::ByKey { .. } => (0, counters.passthrough_batches + counters.slow_path_batches),
        };
        self.ctx
            .metrics
            .add_plan(passthrough, slow, counters.skipped_batches);
        let next = plan.next_position();
        if let Some(slot) = self.slots.get_mut(key) {
            slot.position = next;
            slot.staged
                .extend(plan.into_steps().into_iter().map(|step| StagedStep {
                    staged: Staged::Step(step),
                    charge: charge.cloned(),
                }));
        }
        self.start_jobs();
        self.drain_staged(key);
    }

    /// Whether `step` is decoded and rebuilt rather than passed through.
    fn rebuilds(step: &PlanStep, route: Route) -> bool {
        match step {
            PlanStep::SlowPath { .. } => true,
            PlanStep::Passthrough { .. } => route != Route::SamePartition,
            PlanStep::Skip { .. } => false,
        }
    }

    fn rebatch_settings(&self, key: &TopicPartition, route: Route) -> Rebatch {
        let config = &self.ctx.config;
        Rebatch {
            max_batch_bytes: self.slots.get(key).and_then(|s| s.max_batch_bytes),
            route,
            codec: config.produce.compression,
            level: config.produce.compression_level,
            batch_size: config
                .produce
                .batch_size
                .min(config.produce.max_request_size)
                .max(1),
        }
    }

    /// Hands staged slow-path steps to workers, oldest partitions' first,
    /// while fewer than `slow_path_workers` run. With no workers the
    /// stream rebuilds inline when it dispatches.
    fn start_jobs(&mut self) {
        let workers = self.ctx.config.slow_path_workers;
        if workers == 0 {
            return;
        }
        let keys: Vec<TopicPartition> = self.slots.keys().cloned().collect();
        for key in keys {
            if self.jobs.len() >= workers {
                return;
            }
            let Some(route) = self.slots.get(&key).map(|s| s.route) else {
                continue;
            };
            let how = self.rebatch_settings(&key, route);
            let Some(slot) = self.slots.get_mut(&key) else {
                continue;
            };
            for staged in slot.staged.iter_mut() {
                if self.jobs.len() >= workers {
                    break;
                }
                let Staged::Step(step) = &staged.staged else {
                    continue;
                };
                if !Self::rebuilds(step, route) {
                    continue;
                }
                let (range, entry) = match step {
                    PlanStep::Passthrough { range, batch } => {
                        (range.clone(), LogEntry::Batch(batch.clone()))
                    }
                    PlanStep::SlowPath { range, entry, .. } => (range.clone(), entry.clone()),
                    PlanStep::Skip { .. } => continue,
                };
                let id = self.next_job;
                self.next_job += 1;
                staged.staged = Staged::Rebuilding(id);
                let job_key = key.clone();
                let blocking = tokio::task::spawn_blocking(move || {
                    let pieces = rebatch(&entry, &range, job_key.1, &how);
                    (job_key, id, range, pieces)
                });
                self.jobs.spawn(async move {
                    match blocking.await {
                        Ok(done) => done,
                        Err(e) => std::panic::resume_unwind(e.into_panic()),
                    }
                });
            }
        }
    }

    fn on_job(&mut self, (key, id, range, pieces): JobDone) {
        if let Some(slot) = self.slots.get_mut(&key)
            && let Some(staged) = slot
                .staged
                .iter_mut()
                .find(|s| matches!(s.staged, Staged::Rebuilding(j) if j == id))
        {
            staged.staged = Staged::Rebuilt { range, pieces };
        }
        self.start_jobs();
        self.drain_staged(&key);
    }

    /// Dispatches the partition's staged steps from the front until one
    /// is still waiting for a worker.
    fn drain_staged(&mut self, key: &TopicPartition) {
        let workers = self.ctx.config.slow_path_workers;
        loop {
            let Some(slot) = self.slots.get_mut(key) else {
                return;
            };
            let route = slot.route;
            let ready = match slot.staged.front().map(|s| &s.staged) {
                None | Some(Staged::Rebuilding(_)) => false,
                Some(Staged::Step(step)) => workers == 0 || !Self::rebuilds(step, route),
                Some(Staged::Rebuilt { .. }) => true,
            };
            if !ready {
                return;
            }
            let Some(StagedStep { staged, charge }) = slot.staged.pop_front() else {
                return;
            };
            let result = match staged {
                Staged::Step(step) => self.dispatch(key, route, step, charge.as_ref()),
                Staged::Rebuilt { range, pieces } => {
                    self.dispatch_pieces(key, range, pieces, charge.as_ref())
                }
                Staged::Rebuilding(_) => Ok(()),
            };
            if let Err(e) = result {
                self.fail(e);
                return;
            }
        }
    }

    fn dispatch(
        &mut self,
        key: &TopicPartition,
        route: Route,
        step: PlanStep,
        charge: Option<&Arc<Charge>>,
    ) -> Result<(), MirrorError> {
        let internal = |e: crate::ledger::LedgerError| {
            MirrorError::Internal(format!("{}-{}: {e}", key.0, key.1))
        };
        let (range, entry) = match step {
            PlanStep::Skip { range, .. } => {
                let slot = self.slot_mut(key)?;
                return slot.ledger.skipped(range).map_err(internal);
            }
            PlanStep::Passthrough { range, batch } if route == Route::SamePartition => {
                let records = batch.header().record_count;
                let bytes = batch.as_bytes().len();
                let slot = self.slot_mut(key)?;
                let dispatch = slot
                    .ledger
                    .dispatched(range.clone(), 1, bytes)
                    .map_err(internal)?;
                let out = OutBatch {
                    source: key.clone(),
                    dispatch,
                    range,
                    payload: Payload::Fetched(batch),
                    stamped: None,
                    records,
                    first_sent: None,
                    awaiting: false,
                    _charge: charge.cloned(),
                };
                self.queue_mut(&key.0, key.1).pending.push_back(out);
                return Ok(());
            }
            PlanStep::Passthrough { range, batch } => (range, LogEntry::Batch(batch)),
            PlanStep::SlowPath { range, entry, .. } => (range, entry),
        };
        let how = self.rebatch_settings(key, route);
        let pieces = rebatch(&entry, &range, key.1, &how);
        self.dispatch_pieces(key, range, pieces, charge)
    }

    /// Records a rebuilt step in the ledger and queues its pieces.
    fn dispatch_pieces(
        &mut self,
        key: &TopicPartition,
        range: Range<i64>,
        pieces: Result<Vec<Piece>, RecordError>,
        charge: Option<&Arc<Charge>>,
    ) -> Result<(), MirrorError> {
        let internal = |e: crate::ledger::LedgerError| {
            MirrorError::Internal(format!("{}-{}: {e}", key.0, key.1))
        };
        let pieces = pieces.map_err(|e| MirrorError::SourceData {
            topic: key.0.to_string(),
            partition: key.1,
            broker: "-".into(),
            source: FetchPlanError::Malformed {
                offset: range.start,
                source: e,
            },
        })?;
        let slot = self.slot_mut(key)?;
        if pieces.is_empty() {
            return slot.ledger.skipped(range).map_err(internal);
        }
        let bytes = pieces.iter().map(|p| p.batch.len()).sum();
        let count = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
        let dispatch = slot
            .ledger
            .dispatched(range.clone(), count, bytes)
            .map_err(internal)?;
        for piece in pieces {
            let out = OutBatch {
                source: key.clone(),
                dispatch,
                range: range.clone(),
                payload: Payload::Built(piece.batch),
                stamped: None,
                records: piece.records,
                first_sent: None,
                awaiting: false,
                _charge: charge.cloned(),
            };
            self.queue_mut(&key.0, piece.partition)
                .pending
                .push_back(out);
        }
        Ok(())
    }

    fn slot_mut(&mut self, key: &TopicPartition) -> Result<&mut Slot, MirrorError> {
        self.slots
            .get_mut(key)
            .ok_or_else(|| MirrorError::Internal(format!("{}-{} is not assigned", key.0, key.1)))
    }

    fn queue_mut(&mut self, topic: &Arc<str>, partition: i32) -> &mut DestQueue {
        let leader = self
            .dest_meta
            .as_ref()
            .and_then(|m| m.leader(topic, partition))
            .map(|b| b.id);
        self.queues
            .entry((topic.clone(), partition))
            .or_insert_with(|| DestQueue::new(leader))
    }

    // ---- produce ----

    fn pump_produce(&mut self) {
        if self.fatal.is_some() && self.sequencer.is_none() {
            return;
        }
        if self.sequencer.is_none() || self.bump_needed {
            let awaiting: usize = self.queues.values().map(|q| q.awaiting).sum();
            let any_waiting = self.queues.values().any(|q| !q.is_empty());
            if !self.pid_busy && awaiting == 0 && (any_waiting || self.sequencer.is_none()) {
                self.pid_busy = true;
                let cluster = self.ctx.destination.clone();
                let current = self
                    .sequencer
                    .as_ref()
                    .map(|s| (s.producer_id(), s.epoch()));
                self.control.spawn(async move {
                    ControlDone::ProducerId(admin::init_producer_id(&cluster, current).await)
                });
            }
            return;
        }
        let now = Instant::now();
        let backoff = self.ctx.config.produce.retry_backoff;
        for q in self.queues.values_mut() {
            if q.resend && q.awaiting == 0 {
                while let Some(mut b) = q.sent.pop_back() {
                    b.awaiting = false;
                    q.pending.push_front(b);
                }
                q.resend = false;
                q.retry_at = Some(now + backoff);
            }
        }
        loop {
            match self.build_requests(now) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    self.fail(e);
                    break;
                }
            }
        }
    }

    /// Builds at most one request per destination broker, one batch per
    /// partition, and hands them to the lanes. Returns how many were sent.
    fn build_requests(&mut self, now: Instant) -> Result<usize, MirrorError> {
        let Some(sequencer) = self.sequencer.as_mut() else {
            return Ok(0);
        };
        let max_request = self.ctx.config.produce.max_request_size;
        let mut requests: BTreeMap<i32, RequestDraft> = BTreeMap::new();
        for ((topic, partition), q) in self.queues.iter_mut() {
            if q.pending.is_empty() || q.resend || q.retry_at.is_some_and(|t| now < t) {
                continue;
            }
            let Some(leader) = q.leader else { continue };
            if self.lane_requests.get(&leader).copied().unwrap_or(0) >= MAX_REQUESTS_PER_BROKER {
                continue;
            }
            let Some(front) = q.pending.front() else {
                continue;
            };
            if front.stamped.is_none() && !sequencer.can_send(topic, *partition) {
                continue;
            }
            let size = match &front.payload {
                Payload::Fetched(v) => v.as_bytes().len(),
                Payload::Built(b) => b.len(),
            };
            let entry = requests
                .entry(leader)
                .or_insert_with(|| (Vec::new(), 0, Vec::new()));
            if entry.1 > 0 && entry.1 + size > max_request {
                continue;
            }
            let Some(mut batch) = q.pending.pop_front() else {
                continue;
            };
            if batch.stamped.is_none() {
                let stamp = sequencer
                    .next(topic, *partition, batch.records)
                    .map_err(|e| MirrorError::Internal(e.to_string()))?;
                let stamped = match &batch.payload {
                    Payload::Fetched(view) => {
                        rewrite_verified(view, stamp).map_err(|e| MirrorError::SourceData {
                            topic: batch.source.0.to_string(),
                            partition: batch.source.1,
                            broker: "-".into(),
                            source: FetchPlanError::Malformed {
                                offset: batch.range.start,
                                source: e,
                            },
                        })?
                    }
                    Payload::Built(b) => b.restamp(stamp),
                };
                batch.stamped = Some(stamped);
            }
            let Some(stamped) = batch.stamped.clone() else {
                continue;
            };
            let sequence = stamped.header().base_sequence;
            batch.awaiting = true;
            batch.first_sent.get_or_insert(now);
            q.awaiting += 1;
            q.sent.push_back(batch);
            entry.1 += size;
            entry.2.push(((topic.clone(), *partition), sequence));
            let partition_entry = ProducePartition {
                index: *partition,
                batch: stamped,
            };
            match entry.0.iter_mut().find(|t| *t.name == **topic) {
                Some(t) => t.partitions.push(partition_entry),
                None => entry.0.push(ProduceTopic {
                    name: StrBytes::from_string(topic.to_string()),
                    partitions: vec![partition_entry],
                }),
            }
        }
        let sent = requests.len();
        let config = &self.ctx.config;
        let timeout_ms = i32::try_from(self.ctx.destination.config().request_timeout.as_millis())
            .unwrap_or(30_000);
        for (broker, (topics, _, tag)) in requests {
            let request = ProduceRequest {
                transactional_id: None,
                acks: config.produce.acks,
                timeout_ms,
                topics,
            };
            let job = ProduceJob {
                request,
                tag,
                generation: self.generation,
            };
            *self.lane_requests.entry(broker).or_insert(0) += 1;
            self.ctx.metrics.request_sent();
            let lane = self.lanes.entry(broker).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(produce_lane(
                    self.ctx.destination.clone(),
                    broker,
                    rx,
                    self.produce_done_tx.clone(),
                ));
                tx
            });
            if let Err(mpsc::error::SendError(job)) = lane.send(job) {
                return Err(MirrorError::Internal(format!(
                    "produce lane to broker {broker} is gone ({} batches)",
                    job.tag.len()
                )));
            }
        }
        Ok(sent)
    }

    fn on_produce(&mut self, done: ProduceDone) {
        if let Some(n) = self.lane_requests.get_mut(&done.broker) {
            *n = n.saturating_sub(1);
        }
        if done.generation != self.generation {
            return;
        }
        let mut answers: Vec<(TopicPartition, i32, Outcome)> = Vec::with_capacity(done.tag.len());
        let acks_none = self.ctx.config.produce.acks == 0;
        match done.result {
            Err(e) => {
                tracing::warn!(broker = done.broker, error = %e, "produce request failed; retrying its batches");
                if e.invalidates_metadata() || !e.is_retriable() {
                    self.ctx.destination.invalidate_metadata();
                }
                let reason = e.to_string();
                for (key, seq) in done.tag {
                    answers.push((key, seq, Outcome::Retry(reason.clone())));
                }
            }
            Ok(response) => {
                for (key, seq) in done.tag {
                    let part = response
                        .topics
                        .iter()
                        .filter(|(name, _)| **name == *key.0)
                        .flat_map(|(_, ps)| ps.iter())
                        .find(|p| p.index == key.1);
                    let outcome = match part {
                        // acks=0: the broker sends no response; the batch
                        // counts as written once sent, as in Kafka's
                        // producer.
                        None if acks_none => Outcome::Acknowledged,
                        None => Outcome::Retry(
                            "the partition is missing from the Produce response".into(),
                        ),
                        Some(p) => match ResponseError::try_from_code(p.error_code) {
                            None | Some(ResponseError::DuplicateSequenceNumber) => {
                                Outcome::Acknowledged
                            }
                            Some(ResponseError::OutOfOrderSequenceNumber) => {
                                let earlier = self
                                    .queues
                                    .get(&key)
                                    .and_then(|q| q.sent.front())
                                    .and_then(OutBatch::base_sequence)
                                    != Some(seq);
                                if earlier {
                                    Outcome::Retry(
                                        "out of order after an earlier failed batch".into(),
                                    )
                                } else {
                                    Outcome::Bump("the destination lost this producer's sequence (OUT_OF_ORDER_SEQUENCE_NUMBER)".into())
                                }
                            }
                            Some(
                                e @ (ResponseError::UnknownProducerId
                                | ResponseError::InvalidProducerEpoch
                                | ResponseError::ProducerFenced),
                            ) => Outcome::Bump(e.to_string()),
                            Some(e) if e.is_retriable() => {
                                if matches!(
                                    e,
                                    ResponseError::NotLeaderOrFollower
                                        | ResponseError::UnknownTopicOrPartition
                                        | ResponseError::LeaderNotAvailable
                                ) {
                                    self.ctx.destination.invalidate_metadata();
                                    if let Some(q) = self.queues.get_mut(&key) {
                                        q.leader = None;
                                    }
                                }
                                Outcome::Retry(e.to_string())
                            }
                            Some(e) => {
                                let message = p
                                    .error_message
                                    .as_deref()
                                    .map(|m| format!(": {}", m.trim_end_matches('.')))
                                    .unwrap_or_default();
                                let records = p.record_errors.len();
                                let extra = if records > 0 {
                                    format!(" ({records} record errors)")
                                } else {
                                    String::new()
                                };
                                Outcome::Failed(format!("{e}{message}{extra}"))
                            }
                        },
                    };
                    answers.push((key, seq, outcome));
                }
            }
        }
        for (key, seq, outcome) in answers {
            self.apply_outcome(&key, seq, outcome);
        }
    }

    fn apply_outcome(&mut self, key: &TopicPartition, seq: i32, outcome: Outcome) {
        let now = Instant::now();
        let delivery_timeout = self.ctx.config.produce.delivery_timeout;
        let Some(q) = self.queues.get_mut(key) else {
            return;
        };
        let Some(index) = q
            .sent
            .iter()
            .position(|b| b.awaiting && b.base_sequence() == Some(seq))
        else {
            return;
        };
        let outcome = match outcome {
            Outcome::Retry(reason) | Outcome::Bump(reason)
                if delivery_timeout.is_some_and(|t| {
                    q.sent
                        .get(index)
                        .and_then(|b| b.first_sent)
                        .is_some_and(|f| now.duration_since(f) > t)
                }) =>
            {
                Outcome::Failed(format!("delivery.timeout.ms expired; last error: {reason}"))
            }
            other => other,
        };
        match outcome {
            Outcome::Acknowledged => {
                let Some(batch) = q.sent.remove(index) else {
                    return;
                };
                q.awaiting = q.awaiting.saturating_sub(1);
                if let Some(s) = self.sequencer.as_mut() {
                    let _ = s.acknowledged(&key.0, key.1, seq);
                }
                let latency = batch
                    .first_sent
                    .map_or(Duration::ZERO, |f| now.duration_since(f));
                let bytes = batch.stamped.as_ref().map_or(0, |b| b.len() as u64);
                self.ctx.metrics.batch_acknowledged(
                    u64::try_from(batch.records).unwrap_or(0),
                    bytes,
                    latency,
                );
                if let Some(slot) = self.slots.get_mut(&batch.source)
                    && let Err(e) = slot.ledger.acknowledged(batch.dispatch)
                {
                    self.fail(MirrorError::Internal(format!(
                        "{}-{}: {e}",
                        batch.source.0, batch.source.1
                    )));
                }
            }
            Outcome::Retry(reason) => {
                if let Some(b) = q.sent.get_mut(index) {
                    b.awaiting = false;
                }
                q.awaiting = q.awaiting.saturating_sub(1);
                q.resend = true;
                self.ctx.metrics.batch_retried();
                tracing::debug!(topic = %key.0, partition = key.1, %reason, "batch will be resent");
            }
            Outcome::Bump(reason) => {
                if let Some(b) = q.sent.get_mut(index) {
                    b.awaiting = false;
                }
                q.awaiting = q.awaiting.saturating_sub(1);
                q.resend = true;
                if !self.bump_needed {
                    tracing::warn!(topic = %key.0, partition = key.1, %reason, "bumping the producer epoch and resending unacknowledged batches");
                }
                self.bump_needed = true;
            }
            Outcome::Failed(reason) => {
                let Some(batch) = q.sent.remove(index) else {
                    return;
                };
                q.awaiting = q.awaiting.saturating_sub(1);
                // The refused batch leaves a hole in the sequence.
                self.bump_needed = true;
                let abort = self.ctx.config.abort_on_send_failure;
                let Some(slot) = self.slots.get_mut(&batch.source) else {
                    return;
                };
                let ledger = if abort {
                    slot.ledger.failed(batch.dispatch)
                } else {
                    slot.ledger.written_off(batch.dispatch)
                };
                if let Err(e) = ledger {
                    self.fail(MirrorError::Internal(e.to_string()));
                    return;
                }
                self.ctx.metrics.batch_failed(if abort {
                    0
                } else {
                    u64::try_from(batch.records).unwrap_or(0)
                });
                let error = MirrorError::SendFailed {
                    topic: batch.source.0.to_string(),
                    partition: batch.source.1,
                    destination_partition: key.1,
                    start: batch.range.start,
                    end: batch.range.end,
                    reason,
                };
                if abort {
                    self.fail(error);
                } else {
                    tracing::error!(error = %error, records = batch.records, "skipping the batch (abort.on.send.failure=false)");
                }
            }
        }
    }

    fn on_producer_id(&mut self, result: Result<(i64, i16), PoolError>) {
        self.pid_busy = false;
        let (pid, epoch) = match result {
            Ok(p) => p,
            Err(e) => {
                if e.is_retriable() || matches!(e, PoolError::Kafka { .. }) {
                    tracing::warn!(error = %e, "InitProducerId failed; retrying");
                    self.dest_meta_at = None;
                    self.ctx.destination.invalidate_metadata();
                } else {
                    self.fail(MirrorError::destination(e));
                }
                return;
            }
        };
        let max_in_flight = self.ctx.config.produce.max_in_flight;
        match self.sequencer.as_mut() {
            None => match ProducerSequencer::new(pid, epoch)
                .and_then(|s| s.with_max_in_flight(max_in_flight))
            {
                Ok(s) => {
                    tracing::debug!(
                        stream = self.index,
                        producer_id = pid,
                        epoch,
                        "idempotent producer ready"
                    );
                    self.sequencer = Some(s);
                }
                Err(e) => self.fail(MirrorError::Internal(e.to_string())),
            },
            Some(s) => {
                let result = if pid == s.producer_id() && epoch <= s.epoch() {
                    Err(crate::sequencer::SequenceError::EpochRegression {
                        producer_id: pid,
                        epoch,
                        current: s.epoch(),
                    })
                } else {
                    s.reset_producer(pid, epoch)
                };
                if let Err(e) = result {
                    self.fail(MirrorError::Internal(e.to_string()));
                    return;
                }
                self.generation += 1;
                self.bump_needed = false;
                self.ctx.metrics.epoch_bumped();
                for q in self.queues.values_mut() {
                    while let Some(mut b) = q.sent.pop_back() {
                        b.awaiting = false;
                        b.stamped = None;
                        q.pending.push_front(b);
                    }
                    for b in q.pending.iter_mut() {
                        b.stamped = None;
                    }
                    q.resend = false;
                    q.awaiting = 0;
                }
                tracing::info!(
                    stream = self.index,
                    producer_id = pid,
                    epoch,
                    "producer epoch bumped; unacknowledged batches are sent again in order"
                );
            }
        }
    }

    // ---- commits ----

    fn start_commit(&mut self) {
        if self.commit_busy {
            return;
        }
        let offsets: Vec<(TopicPartition, i64)> = self
            .slots
            .iter()
            .filter_map(|(k, s)| s.ledger.commit_due().map(|o| (k.clone(), o)))
            .collect();
        if offsets.is_empty() {
            return;
        }
        let Some(member) = self.ctx.membership.borrow().clone() else {
            tracing::debug!("not committing while kmirror (re)joins its group");
            return;
        };
        self.commit_busy = true;
        let cluster = self.ctx.source.clone();
        let group = self.ctx.config.fetch.group_id.clone();
        self.control.spawn(async move {
            let member = Some((member.generation, member.member_id.as_str()));
            let result = admin::commit_offsets(&cluster, &group, member, &offsets).await;
            ControlDone::Commit(offsets, result)
        });
    }

    fn on_commit(
        &mut self,
        offsets: Vec<(TopicPartition, i64)>,
        result: Result<Vec<(TopicPartition, admin::CommitResult)>, PoolError>,
    ) {
        self.commit_busy = false;
        let results = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "offset commit failed; retrying at the next interval");
                return;
            }
        };
        let mut ok = 0usize;
        for (key, result) in results {
            let Some(&(_, offset)) = offsets.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            match result {
                Ok(()) => {
                    ok += 1;
                    if let Some(slot) = self.slots.get_mut(&key) {
                        slot.ledger.mark_committed(offset);
                    }
                }
                // The membership task rejoins (or stops the mirror if
                // another member took part); the commit is retried.
                Err(
                    e @ (ResponseError::UnknownMemberId
                    | ResponseError::IllegalGeneration
                    | ResponseError::RebalanceInProgress),
                ) => {
                    tracing::warn!(topic = %key.0, partition = key.1, error = %e, "offset commit refused while the group changes; retrying");
                }
                Err(e) if e.is_retriable() => {
                    tracing::warn!(topic = %key.0, partition = key.1, error = %e, "offset commit refused; retrying at the next interval");
                }
                Err(e) => {
                    self.fail(MirrorError::Refused {
                        side: Side::Source,
                        what: format!(
                            "OffsetCommit for group {} ({}-{})",
                            self.ctx.config.fetch.group_id, key.0, key.1
                        ),
                        error: e,
                        hint: None,
                    });
                    return;
                }
            }
        }
        if ok > 0 {
            self.ctx.metrics.committed();
            tracing::debug!(stream = self.index, partitions = ok, "offsets committed");
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

/// Builds the Fetch request for `job` at the connection's version: topics
/// by name up to v12, by id from v13; no fetch session (a full fetch each
/// time).
fn fetch_request(
    versions: &NegotiatedVersions,
    job: &FetchJob,
    sizes: &[usize],
    fetch: &super::config::FetchConfig,
    max_bytes: usize,
) -> Result<kp::FetchRequest, kmirror_protocol::ProtocolError> {
    let version = versions.version(ApiKey::Fetch)?;
    let mut topics: Vec<kp::fetch_request::FetchTopic> = Vec::new();
    for ((topic, id, partition, position), size) in job.partitions.iter().zip(sizes) {
        let mut part = kp::fetch_request::FetchPartition::default()
            .with_partition(*partition)
            .with_fetch_offset(*position)
            .with_partition_max_bytes(i32::try_from(*size).unwrap_or(i32::MAX));
        if version >= 9 {
            part = part.with_current_leader_epoch(-1);
        }
        if version >= 12 {
            part = part.with_last_fetched_epoch(-1);
        }
        if version >= 5 {
            part = part.with_log_start_offset(-1);
        }
        let existing = topics.iter_mut().find(|t| {
            if version >= 13 {
                t.topic_id == uuid::Uuid::from_bytes(*id)
            } else {
                *t.topic.0 == **topic
            }
        });
        match existing {
            Some(t) => t.partitions.push(part),
            None => {
                let mut t = kp::fetch_request::FetchTopic::default().with_partitions(vec![part]);
                if version >= 13 {
                    t = t.with_topic_id(uuid::Uuid::from_bytes(*id));
                } else {
                    t = t.with_topic(TopicName(StrBytes::from_string(topic.to_string())));
                }
                topics.push(t);
            }
        }
    }
    let mut request = kp::FetchRequest::default()
        .with_max_wait_ms(i32::try_from(fetch.max_wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(i32::try_from(fetch.min_bytes).unwrap_or(i32::MAX))
        .with_max_bytes(i32::try_from(max_bytes).unwrap_or(i32::MAX))
        .with_isolation_level(fetch.isolation.wire_value())
        .with_topics(topics);
    if version < 15 {
        request = request.with_replica_id(BrokerId(-1));
    }
    Ok(request)
}

/// Writes one destination broker's Produce requests in the order received
/// and reports each response as it arrives.
async fn produce_lane(
    cluster: Cluster,
    broker: i32,
    mut jobs: mpsc::UnboundedReceiver<ProduceJob>,
    done: mpsc::UnboundedSender<ProduceDone>,
) {
    while let Some(job) = jobs.recv().await {
        let ProduceJob {
            request,
            tag,
            generation,
        } = job;
        let submitted = match cluster.connection_to_broker(broker).await {
            Ok(conn) => conn.submit(&request).await,
            Err(e) => Err(e),
        };
        match submitted {
            Ok(in_flight) => {
                let done = done.clone();
                tokio::spawn(async move {
                    let result = in_flight.response().await;
                    let _ = done.send(ProduceDone {
                        broker,
                        tag,
                        generation,
                        result,
                    });
                });
            }
            Err(e) => {
                if done
                    .send(ProduceDone {
                        broker,
                        tag,
                        generation,
                        result: Err(e),
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}
