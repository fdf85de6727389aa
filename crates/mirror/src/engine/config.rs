//! What the engine is told: both clusters, the topics, and the consumer and
//! producer settings that matter to a mirror. The binary fills it from
//! MirrorMaker's flags and `.properties` files; a library user builds it in
//! code.

use std::time::Duration;

use kmirror_pool::ClientConfig;
use kmirror_protocol::Compression;

use super::error::MirrorError;
pub use super::group::Assignor;
use crate::fetch_plan::IsolationLevel;
use crate::selection::{TopicPattern, TopicSelector};

/// Where to start a partition the group has no committed offset for, and
/// what to do when a fetch position is out of range (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset (the default, as in MirrorMaker 2; MirrorMaker
    /// 1 used `latest`).
    Earliest,
    /// The end of the log: only records produced from now on.
    Latest,
    /// Refuse to start (or stop) with an error naming the partition.
    None,
}

/// Whether the engine runs until stopped or only until it has caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Mirror until stopped; pick up new topics as they appear.
    Continuous,
    /// Mirror every selected partition up to the end offsets seen at start
    /// (the last stable offset under READ_COMMITTED), commit, return: a
    /// one-off migration.
    Once,
}

/// Consumer-side settings (the `--consumer.config` file).
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// `group.id`: where the mirror's progress is committed on the source.
    pub group_id: String,
    /// `auto.offset.reset`.
    pub offset_reset: OffsetReset,
    /// `isolation.level` (READ_COMMITTED by default).
    pub isolation: IsolationLevel,
    /// `fetch.max.bytes`: the most one Fetch response should carry.
    pub max_bytes: u32,
    /// `max.partition.fetch.bytes`: the most per partition and response.
    pub max_partition_bytes: u32,
    /// `fetch.max.wait.ms`.
    pub max_wait: Duration,
    /// `fetch.min.bytes`.
    pub min_bytes: u32,
    /// `check.crcs`.
    pub check_crcs: bool,
    /// How kmirror takes part in `group.id`.
    pub membership: GroupConfig,
}

/// The consumer group protocol (`group.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup, SyncGroup and Heartbeat; the group's leader assigns
    /// (Java's default).
    #[default]
    Classic,
    /// KIP-848's ConsumerGroupHeartbeat; the broker assigns. Falls back to
    /// the classic protocol, with a warning, on a broker without it
    /// (before Apache Kafka 4.0).
    Consumer,
}

/// kmirror's membership in its consumer group: the Java consumer's keys
/// and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `partition.assignment.strategy`, in order of preference (Java's
    /// default: `range`, then `cooperative-sticky`).
    pub assignors: Vec<Assignor>,
    /// `session.timeout.ms`: how long the coordinator waits for a
    /// heartbeat before it drops the member (45 s).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (3 s).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms` (300 s): the rebalance timeout, how long the
    /// coordinator waits for the members to rejoin.
    pub max_poll_interval: Duration,
    /// `group.instance.id`: static membership (KIP-345). A restart within
    /// the session timeout moves no partition; a stop does not leave the
    /// group.
    pub group_instance_id: Option<String>,
    /// `group.protocol`.
    pub protocol: GroupProtocol,
    /// `group.remote.assignor`: the broker-side assignor asked for with
    /// [`GroupProtocol::Consumer`] (the broker's default if none).
    pub remote_assignor: Option<String>,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            assignors: vec![Assignor::Range, Assignor::CooperativeSticky],
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            group_instance_id: None,
            protocol: GroupProtocol::Classic,
            remote_assignor: None,
        }
    }
}

impl FetchConfig {
    /// Kafka's consumer defaults, READ_COMMITTED, reset to earliest.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            offset_reset: OffsetReset::Earliest,
            isolation: IsolationLevel::ReadCommitted,
            max_bytes: 50 * 1024 * 1024,
            max_partition_bytes: 1024 * 1024,
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            check_crcs: true,
            membership: GroupConfig::default(),
        }
    }
}

/// Producer-side settings (the `--producer.config` file).
#[derive(Debug, Clone)]
pub struct ProduceConfig {
    /// `acks`: -1 (all, the default), 1, or 0.
    pub acks: i16,
    /// `compression.type`: `None` keeps every batch's codec (passthrough);
    /// a codec re-encodes batches whose codec differs.
    pub compression: Option<Compression>,
    /// The level for `compression` (`compression.<codec>.level`).
    pub compression_level: Option<i32>,
    /// `batch.size`: the target size of batches the slow path builds.
    pub batch_size: usize,
    /// `max.request.size`: the most one Produce request carries (a single
    /// larger batch is still sent alone).
    pub max_request_size: usize,
    /// `buffer.memory`: bytes fetched but not yet acknowledged by the
    /// destination; fetching pauses when they are used up.
    pub buffer_memory: usize,
    /// `delivery.timeout.ms`: how long a batch may be retried before it
    /// counts as failed; `None` retries forever.
    pub delivery_timeout: Option<Duration>,
    /// `retries`: how many times a batch the destination refused with a
    /// retriable error (or whose request failed) is sent again before
    /// kmirror stops with [`MirrorError::RetriesExhausted`]; `None`
    /// resends for ever (Java's default, `2147483647`). Never skipped:
    /// nothing past such a batch is committed.
    pub retries: Option<u32>,
    /// `max.in.flight.requests.per.connection` (1..=5): batches in flight
    /// per destination partition.
    pub max_in_flight: usize,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// Replication factor for destination topics kmirror creates; `None`
    /// uses the destination's default.
    pub replication_factor: Option<i16>,
}

impl ProduceConfig {
    /// Whether kmirror's idempotent producer is used: with `acks=all`
    /// only. With `acks=1` batches carry no producer id, epoch or sequence
    /// (-1/-1/-1), as Java's producer without idempotence sends them: the
    /// broker cannot recognise a retried batch, so a retry after a lost
    /// answer writes the records twice, and with more than one batch in
    /// flight per partition a retry can land behind a later batch.
    pub fn idempotent(&self) -> bool {
        self.acks == -1
    }

    /// Refuses settings the engine cannot honour: `acks` must be -1 or 1.
    /// With `acks=0` the destination never answers, so nothing tells
    /// kmirror that a batch arrived, and kmirror never commits a source
    /// offset that the destination has not acknowledged.
    pub fn check(&self) -> Result<(), MirrorError> {
        match self.acks {
            -1 | 1 => Ok(()),
            0 => Err(MirrorError::Config(ACKS_ZERO_REFUSED.to_owned())),
            other => Err(MirrorError::Config(format!(
                "acks={other} is not a Kafka acks value; use all (-1) or 1"
            ))),
        }
    }
}

/// Why `acks=0` is refused, and what to use instead.
pub const ACKS_ZERO_REFUSED: &str = "acks=0 is not supported: the destination never \
    acknowledges a write, and kmirror commits a source offset only once the destination \
    acknowledged every record before it (MirrorMaker 1 commits what it handed to its \
    producer, so with acks=0 it loses records silently whenever a send fails). Use \
    acks=all (the default: idempotent, no loss, no duplicates, order kept) or acks=1 \
    (the partition leader alone acknowledges: what it acknowledged is lost if it fails before \
    its followers copy it; retries may duplicate records, and reorder them with more than one \
    batch in flight per partition)";

impl Default for ProduceConfig {
    fn default() -> Self {
        Self {
            acks: -1,
            compression: None,
            compression_level: None,
            batch_size: 16 * 1024,
            max_request_size: 1024 * 1024,
            buffer_memory: 64 * 1024 * 1024,
            delivery_timeout: None,
            retries: None,
            max_in_flight: 5,
            retry_backoff: Duration::from_millis(100),
            replication_factor: None,
        }
    }
}

/// Everything the engine needs.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// The source cluster's client settings.
    pub source: ClientConfig,
    /// The destination cluster's client settings.
    pub destination: ClientConfig,
    /// Which source topics are mirrored.
    pub selector: TopicSelector,
    /// Consumer-side settings.
    pub fetch: FetchConfig,
    /// Producer-side settings.
    pub produce: ProduceConfig,
    /// Parallel pipelines (`--num.streams`): the assigned partitions are
    /// spread over this many, each with its own fetch loops, producer id
    /// and commits.
    pub streams: usize,
    /// `--offset.commit.interval.ms`.
    pub commit_interval: Duration,
    /// `--abort.on.send.failure`: a batch the destination refuses for good
    /// stops the mirror (after committing what was acknowledged) when true;
    /// when false it is logged, counted and skipped.
    pub abort_on_send_failure: bool,
    /// Continuous or once.
    pub mode: RunMode,
    /// How often source topics are listed again to find new ones.
    pub topic_refresh_interval: Duration,
    /// How long a graceful stop waits for in-flight batches to be
    /// acknowledged before it commits what was and returns.
    pub drain_timeout: Duration,
    /// Topics whose records are placed by key at the destination (Java's
    /// partitioner) even when both sides have the same partition count,
    /// for a destination that must match what producers writing to it
    /// directly would do. Other topics keep source partition p on p.
    pub partition_by_key: Option<TopicPattern>,
    /// Slow-path rebuilds (decode, re-batch, compress) each stream runs at
    /// once on tokio's blocking pool, so that they do not hold up the
    /// fetches and produce requests of other partitions; 0 rebuilds inline
    /// in the stream's task.
    pub slow_path_workers: usize,
    /// The offset map topic on the destination (see [`crate::translation`]):
    /// where each source record landed, written before each commit, for
    /// exact offset translation. `None`: not kept.
    pub offset_map_topic: Option<String>,
}

impl MirrorConfig {
    /// A configuration with Kafka's and MirrorMaker's defaults.
    pub fn new(
        source: ClientConfig,
        destination: ClientConfig,
        selector: TopicSelector,
        group_id: impl Into<String>,
    ) -> Self {
        Self {
            source,
            destination,
            selector,
            fetch: FetchConfig::new(group_id),
            produce: ProduceConfig::default(),
            streams: 1,
            commit_interval: Duration::from_secs(60),
            abort_on_send_failure: true,
            mode: RunMode::Continuous,
            topic_refresh_interval: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            slow_path_workers: std::thread::available_parallelism().map_or(2, usize::from),
            offset_map_topic: None,
            partition_by_key: None,
        }
    }
}
