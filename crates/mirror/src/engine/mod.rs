//! The runtime: [`Mirror`] connects to both clusters, keeps the selected
//! topics assigned to its streams (creating destination topics as needed),
//! and runs until stopped or, in [`RunMode::Once`], caught up.
//!
//! ```text
//!  source brokers ──Fetch──> stream ──plan──> passthrough / slow path
//!        ^                     │                        │
//!        └──OffsetCommit───────┘<──acks── produce lanes ─┘──Produce──> destination brokers
//! ```

pub mod admin;
pub mod budget;
pub mod config;
pub mod error;
pub mod failover;
mod group;
pub mod internal_topic;
pub mod metrics;
#[cfg(test)]
pub(crate) mod scripted;
pub mod slow_path;
mod stream;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kmirror_pool::Cluster;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use self::admin::TopicPartition;
use self::budget::MemoryBudget;
pub use self::config::{
    Assignor, FetchConfig, GroupConfig, GroupProtocol, MirrorConfig, OffsetReset, ProduceConfig,
    RunMode,
};
pub use self::error::{MirrorError, Side};
pub use self::group::Membership;
pub use self::metrics::{Metrics, MetricsSnapshot, PartitionProgress};
use self::slow_path::Route;
use self::stream::{Assignment, Command, Stream, StreamContext};

/// The longest time between two checks of the destination topics (and
/// listings of the source topics), whatever `metadata.max.age.ms` says: a
/// destination topic deleted, or a source topic grown, stalls its
/// partitions until the next check.
const DESTINATION_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Asks a running [`Mirror`] to stop gracefully: stop fetching, wait for
/// in-flight batches to be acknowledged, commit, return. Cloneable; safe to
/// call from a signal handler task.
#[derive(Debug, Clone)]
pub struct StopHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl StopHandle {
    /// Requests the stop (idempotent).
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        *self.tx.borrow()
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The counters at the end.
    pub metrics: MetricsSnapshot,
    /// Source topics mirrored.
    pub topics: Vec<String>,
}

/// A mirror between two connected clusters (see the module documentation).
#[derive(Debug)]
pub struct Mirror {
    config: Arc<MirrorConfig>,
    source: Cluster,
    destination: Cluster,
    metrics: Arc<Metrics>,
    stop: StopHandle,
}

impl Mirror {
    /// Connects to both clusters.
    pub async fn connect(config: MirrorConfig) -> Result<Self, MirrorError> {
        let source = Cluster::connect(config.source.clone())
            .await
            .map_err(MirrorError::source)?;
        let destination = Cluster::connect(config.destination.clone())
            .await
            .map_err(MirrorError::destination)?;
        Self::with_clusters(config, source, destination).await
    }

    /// [`Mirror::connect`] with clusters the caller connected.
    pub async fn with_clusters(
        config: MirrorConfig,
        source: Cluster,
        destination: Cluster,
    ) -> Result<Self, MirrorError> {
        config.produce.check()?;
        let (tx, _rx) = watch::channel(false);
        Ok(Self {
            config: Arc::new(config),
            source,
            destination,
            metrics: Arc::new(Metrics::default()),
            stop: StopHandle { tx: Arc::new(tx) },
        })
    }

    /// The live counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// A handle that stops the run.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The summary of a run stopped before it mirrored anything.
    fn nothing_done(&self) -> RunSummary {
        RunSummary {
            metrics: self.metrics.snapshot(),
            topics: Vec::new(),
        }
    }

    /// Mirrors until stopped (or caught up in [`RunMode::Once`]), then
    /// drains, commits and returns. An error stops every stream the same
    /// graceful way before it is returned.
    ///
    /// Each stream is one task with its own connections, so a runtime
    /// needs no more worker threads than streams; more only wake each
    /// other for every batch (the `kmirror` binary runs one worker per
    /// stream, at most one per CPU).
    pub async fn run(mut self) -> Result<RunSummary, MirrorError> {
        let streams = self.config.streams.max(1);
        let budget = MemoryBudget::new(self.config.produce.buffer_memory);
        // A stop while setting up (a cluster not answering) is a stop,
        // not a failure.
        let source_meta =
            match retry_transient("read the source metadata", &self.stop.tx, || async {
                self.source.metadata().await.map_err(MirrorError::source)
            })
            .await
            {
                Err(_) if self.stop.is_stopped() => return Ok(self.nothing_done()),
                r => r?,
            };
        let kept = match retry_transient("create the offset map topic", &self.stop.tx, || {
            ensure_offset_map(&self.config, &self.source, &self.destination, &source_meta)
        })
        .await
        {
            Err(_) if self.stop.is_stopped() => return Ok(self.nothing_done()),
            r => r?,
        };
        if !kept && self.config.offset_map_topic.is_some() {
            self.config = Arc::new(MirrorConfig {
                offset_map_topic: None,
                ..(*self.config).clone()
            });
        }
        // The group task: kmirror's membership, which hands partitions to
        // the controller below and takes them back.
        let (subscribed_tx, subscribed_rx) =
            watch::channel(subscription(&self.config, &source_meta));
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let (membership_tx, membership) = watch::channel(None);
        let (group_stop, group_stop_rx) = watch::channel(false);
        let mut group_task = group::spawn(
            group::MemberCore {
                source: self.source.clone(),
                group: self.config.fetch.group_id.clone(),
                config: self.config.fetch.membership.clone(),
                revoke_timeout: stream::revoke::drain_timeout(&self.config)
                    + stream::FINAL_COMMIT_TIMEOUT,
                state: membership_tx,
                events: events_tx,
                subscribed: subscribed_rx,
                owned: BTreeSet::new(),
            },
            group_stop_rx,
        );
        let mut group_done = false;
        let mut senders = Vec::with_capacity(streams);
        let mut tasks = JoinSet::new();
        for index in 0..streams {
            // Each stream fetches and produces over its own connections,
            // as Kafka's replica fetcher threads do: a broker answers one
            // connection's requests one at a time, in order, so streams
            // sharing one would wait behind each other's long-polling
            // fetches, and their Produce requests could not be handled by
            // several of the destination broker's threads at once.
            let (source, destination) = if index == 0 {
                (self.source.clone(), self.destination.clone())
            } else {
                (
                    retry_transient("connect to the source", &self.stop.tx, || async {
                        Cluster::connect(self.config.source.clone())
                            .await
                            .map_err(MirrorError::source)
                    })
                    .await?,
                    retry_transient("connect to the destination", &self.stop.tx, || async {
                        Cluster::connect(self.config.destination.clone())
                            .await
                            .map_err(MirrorError::destination)
                    })
                    .await?,
                )
            };
            let ctx = Arc::new(StreamContext {
                source,
                destination,
                config: self.config.clone(),
                metrics: self.metrics.clone(),
                budget: budget.clone(),
                membership: membership.clone(),
            });
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            let stream = Stream::new(index, ctx);
            let stop = self.stop.tx.subscribe();
            tasks.spawn(
                stream
                    .run(rx, stop)
                    .instrument(tracing::info_span!("stream", index)),
            );
        }
        let mut controller = Controller {
            config: self.config.clone(),
            source: self.source.clone(),
            destination: self.destination.clone(),
            owned: BTreeSet::new(),
            assigned: BTreeMap::new(),
            routes: BTreeMap::new(),
            max_batch_bytes: BTreeMap::new(),
            topics: Vec::new(),
            topic_ids: BTreeMap::new(),
            gone: BTreeSet::new(),
            metrics: self.metrics.clone(),
            subscribed: subscribed_tx,
            sealed: false,
        };
        let mut first_error = None;
        let fail = |e: MirrorError, first_error: &mut Option<MirrorError>| {
            tracing::error!(error = %e, "stopping");
            if first_error.is_none() {
                *first_error = Some(e);
            }
            self.stop.stop();
        };
        // The destination topics are made ready before the group hands
        // out partitions.
        let mut backoff = group::Backoff::default();
        loop {
            match controller.sync(&senders).await {
                Err(e) if e.is_transient() && !self.stop.is_stopped() => {
                    let wait = backoff.next();
                    tracing::warn!(error = %e, retry_in = ?wait, "cannot set up the mirror yet; retrying");
                    let mut stop_rx = self.stop.tx.subscribe();
                    tokio::select! {
                        biased;
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop_rx.wait_for(|s| *s) => {}
                    }
                }
                Ok(()) => break,
                Err(e) => {
                    fail(e, &mut first_error);
                    break;
                }
            }
        }
        // New topics and partitions are looked for at the configured
        // interval, and at least every DESTINATION_CHECK_INTERVAL the
        // destination topics are checked (grown with their source,
        // created again if deleted), in --once mode too.
        let mut refresh = tokio::time::interval(
            self.config
                .topic_refresh_interval
                .min(DESTINATION_CHECK_INTERVAL)
                .max(Duration::from_millis(100)),
        );
        refresh.reset();
        let mut stop_rx = self.stop.tx.subscribe();
        let mut membership_seen = membership.clone();
        loop {
            tokio::select! {
                biased;
                done = tasks.join_next() => match done {
                    None => break,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => fail(e, &mut first_error),
                    Some(Err(e)) => fail(MirrorError::Internal(format!("stream task: {e}")), &mut first_error),
                },
                joined = &mut group_task, if !group_done => {
                    group_done = true;
                    let error = match joined {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e),
                        Err(e) => Some(MirrorError::Internal(format!("group task: {e}"))),
                    };
                    if let Some(e) = error {
                        fail(e, &mut first_error);
                    }
                }
                Ok(()) = membership_seen.changed() => {
                    let generation = membership_seen.borrow_and_update().as_ref().map_or(-1, |m| m.generation);
                    self.metrics.set_group_generation(generation);
                }
                Some(event) = events.recv() => match event {
                    group::GroupEvent::Assigned(partitions) => {
                        controller.owned.extend(partitions);
                        self.metrics.set_assigned_partitions(controller.owned.len());
                        if !self.stop.is_stopped() {
                            match controller.sync(&senders).await {
                                Ok(()) => {}
                                Err(e) if e.is_transient() => {
                                    tracing::warn!(error = %e, "cannot start the assigned partitions yet; retrying at the next refresh");
                                }
                                Err(e) => fail(e, &mut first_error),
                            }
                        }
                        if self.config.mode == RunMode::Once && !controller.sealed {
                            // Once: the partitions of the first assignment
                            // are copied up to their end, then the run ends.
                            controller.seal(&senders);
                        }
                    }
                    group::GroupEvent::Revoke { partitions, commit, done } => {
                        controller.revoke(partitions, commit, done, &senders);
                        self.metrics.set_assigned_partitions(controller.owned.len());
                    }
                },
                _ = refresh.tick(), if !self.stop.is_stopped() => {
                    match controller.sync(&senders).await {
                        Ok(()) => {}
                        Err(e) if e.is_transient() => {
                            tracing::warn!(error = %e, "topic refresh failed; retrying at the next interval");
                        }
                        // A partition left unassigned, or a destination
                        // partition missing, would stall its records (and
                        // the buffer) for ever.
                        Err(e) => fail(e, &mut first_error),
                    }
                }
                _ = stop_rx.changed(), if !self.stop.is_stopped() => {}
            }
        }
        // Every stream committed: leave the group.
        group_stop.send_replace(true);
        if !group_done {
            match group_task.await {
                Ok(Err(e)) if first_error.is_none() => first_error = Some(e),
                _ => {}
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(RunSummary {
                metrics: self.metrics.snapshot(),
                topics: controller.topics,
            }),
        }
    }
}

/// What kmirror subscribes to in its group: the selected source topics
/// (internal ones never) and their partition counts.
fn subscription(
    config: &MirrorConfig,
    source_meta: &kmirror_pool::cluster::ClusterMetadata,
) -> group::Subscribed {
    source_meta
        .topics
        .values()
        .filter(|t| !t.is_internal && config.selector.selects(&t.name))
        .map(|t| {
            (
                t.name.clone(),
                i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
            )
        })
        .collect()
}

/// Runs a set-up step again, with backoff and a warning, while it fails
/// with a transient error ([`MirrorError::is_transient`]) and no stop is
/// requested through `stop`. Used only once both clusters have answered:
/// a cluster that cannot be reached at first contact is a wrong address
/// and fails at once.
async fn retry_transient<T, F, Fut>(
    what: &str,
    stop: &watch::Sender<bool>,
    mut step: F,
) -> Result<T, MirrorError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, MirrorError>>,
{
    let mut backoff = group::Backoff::default();
    let mut stop_rx = stop.subscribe();
    loop {
        match step().await {
            Err(e) if e.is_transient() && !*stop_rx.borrow() => {
                let wait = backoff.next();
                tracing::warn!(error = %e, retry_in = ?wait, "cannot {what} yet; retrying");
                tokio::select! {
                    biased;
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop_rx.wait_for(|s| *s) => {}
                }
            }
            result => return result,
        }
    }
}

/// Keeps the destination topics ready for the selected source topics, and
/// the partitions the group gave kmirror assigned to streams.
struct Controller {
    config: Arc<MirrorConfig>,
    source: Cluster,
    destination: Cluster,
    /// The partitions the group gave kmirror.
    owned: BTreeSet<TopicPartition>,
    /// The partitions handed to streams, and which stream has each.
    assigned: BTreeMap<TopicPartition, usize>,
    routes: BTreeMap<Arc<str>, Route>,
    max_batch_bytes: BTreeMap<Arc<str>, Option<usize>>,
    topics: Vec<String>,
    /// The source topic id each mirrored topic had when first seen.
    topic_ids: BTreeMap<Arc<str>, [u8; 16]>,
    /// Mirrored topics missing from the source (warned about once).
    gone: BTreeSet<Arc<str>>,
    /// Counts the out-of-range offsets reset at assignment.
    metrics: Arc<Metrics>,
    /// What the group member subscribes to.
    subscribed: watch::Sender<group::Subscribed>,
    /// `--once`: the streams were told that no more assignments come.
    sealed: bool,
}

/// Creates the offset map topic if it is kept and missing; `false` when
/// it is not kept (off, or the destination refuses to create it: kmirror
/// then mirrors without it, with a warning). Its retention is the longest
/// of the selected topics' (for ever if one keeps its records for ever or
/// is compacted): a mapping lives as long as the records it places.
async fn ensure_offset_map(
    config: &MirrorConfig,
    source: &Cluster,
    destination: &Cluster,
    source_meta: &kmirror_pool::cluster::ClusterMetadata,
) -> Result<bool, MirrorError> {
    let Some(map_topic) = &config.offset_map_topic else {
        return Ok(false);
    };
    let exists = destination
        .refresh_metadata()
        .await
        .map_err(MirrorError::destination)?
        .topics
        .contains_key(map_topic.as_str());
    if exists {
        return Ok(true);
    }
    let mut retention: Option<i64> = None;
    for topic in source_meta
        .topics
        .values()
        .filter(|t| !t.is_internal && config.selector.selects(&t.name))
    {
        let ms = admin::retention_ms(source, &topic.name).await?;
        retention = Some(match (retention, ms) {
            (Some(-1), _) | (_, -1) => -1,
            (Some(a), b) => a.max(b),
            (None, b) => b,
        });
    }
    let retention = retention.unwrap_or(7 * 24 * 3_600_000);
    let configs = vec![
        ("cleanup.policy".to_owned(), "delete".to_owned()),
        ("retention.ms".to_owned(), retention.to_string()),
    ];
    match internal_topic::ensure(
        destination,
        map_topic,
        config.produce.replication_factor,
        &configs,
    )
    .await
    {
        Ok(true) => {
            tracing::info!(topic = %map_topic, retention_ms = retention, "created the offset map topic on the destination");
            Ok(true)
        }
        Ok(false) => Ok(true),
        Err(MirrorError::Refused {
            error:
                error @ (kmirror_protocol::ResponseError::TopicAuthorizationFailed
                | kmirror_protocol::ResponseError::ClusterAuthorizationFailed
                | kmirror_protocol::ResponseError::PolicyViolation),
            ..
        }) => {
            tracing::warn!(topic = %map_topic, %error,
                "the destination refuses to create the offset map topic: mirroring without it, so                  consumer groups cannot be translated exactly (kmirror offsets, kmirror cutover);                  grant Create on it, or create it yourself (1 partition, cleanup.policy=delete),                  or pass --offset.map false to silence this");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Whether a source topic seen with id `now` is not the topic first seen
/// with id `before` (deleted and created again). An all-zero id is unknown
/// (Metadata before v10), and never counts as a change.
fn recreated(before: Option<[u8; 16]>, now: [u8; 16]) -> bool {
    before.is_some_and(|b| b != [0; 16] && now != [0; 16] && b != now)
}

/// What the destination topic needs before a source topic's partitions
/// are mirrored, and where they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Placement {
    /// The route for the topic's partitions.
    route: Route,
    /// Create the destination topic with this many partitions.
    create: Option<i32>,
    /// Grow the destination topic to this many partitions first.
    grow_to: Option<i32>,
}

/// How a source topic with `source` partitions is placed on a destination
/// topic with `destination` partitions (`None`: it does not exist).
///
/// - `previous`: the route this run already used for the topic. A topic
///   mirrored partition to partition keeps that: if the source grew, the
///   destination grows to match (CreatePartitions); if the destination
///   topic was deleted, it is created again. A topic placed by key keeps
///   its destination partition count, so every key stays where it went.
/// - With no previous route (start, or a new topic): equal counts map
///   partition to partition (by key with `by_key`). A destination with
///   fewer partitions grows when `grown_since` says the source grew after
///   an earlier run mirrored it partition to partition (the group holds
///   offsets for the destination's partitions and none for the source's
///   extra ones); otherwise the counts differ by design and records are
///   placed by key over the destination's partitions.
fn plan_placement(
    source: usize,
    destination: Option<usize>,
    previous: Option<Route>,
    by_key: bool,
    grown_since: bool,
) -> Placement {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let partitions = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).max(1);
    let Some(destination) = destination else {
        let (route, create) = match previous {
            Some(Route::ByKey { partitions }) => (
                Route::ByKey { partitions },
                i32::try_from(partitions).unwrap_or(i32::MAX),
            ),
            _ if by_key => (
                Route::ByKey {
                    partitions: partitions(source),
                },
                count(source),
            ),
            _ => (Route::SamePartition, count(source)),
        };
        return Placement {
            route,
            create: Some(create),
            grow_to: None,
        };
    };
    let same = Placement {
        route: Route::SamePartition,
        create: None,
        grow_to: (destination < source).then(|| count(source)),
    };
    match previous {
        Some(Route::SamePartition) => same,
        Some(route @ Route::ByKey { .. }) => Placement {
            route,
            create: None,
            grow_to: None,
        },
        None if by_key => Placement {
            route: Route::ByKey {
                partitions: partitions(destination),
            },
            create: None,
            grow_to: None,
        },
        None if destination == source || (destination < source && grown_since) => same,
        None => Placement {
            route: Route::ByKey {
                partitions: partitions(destination),
            },
            create: None,
            grow_to: None,
        },
    }
}

/// Whether, by the group's offsets, a source topic grew after an earlier
/// run mirrored it partition to partition onto `destination` partitions:
/// some partition below `destination` has a committed offset and none at
/// or above it has.
fn grown_since_last_run(
    committed: &BTreeMap<TopicPartition, i64>,
    topic: &str,
    destination: usize,
) -> bool {
    let limit = i32::try_from(destination).unwrap_or(i32::MAX);
    let mut below = false;
    for (t, p) in committed.keys() {
        if &**t == topic {
            if *p >= limit {
                return false;
            }
            below = true;
        }
    }
    below
}

impl Controller {
    /// Tells every stream that no more assignments come (`--once`).
    fn seal(&mut self, streams: &[mpsc::UnboundedSender<Command>]) {
        self.sealed = true;
        for stream in streams {
            let _ = stream.send(Command::Seal);
        }
    }

    /// Gives `partitions` up: each stream holding some stops, drains and
    /// commits them; `done` is answered once all did.
    fn revoke(
        &mut self,
        partitions: BTreeSet<TopicPartition>,
        commit: bool,
        done: tokio::sync::oneshot::Sender<()>,
        streams: &[mpsc::UnboundedSender<Command>],
    ) {
        let mut by_stream: BTreeMap<usize, BTreeSet<TopicPartition>> = BTreeMap::new();
        for tp in partitions {
            self.owned.remove(&tp);
            if let Some(index) = self.assigned.remove(&tp) {
                by_stream.entry(index).or_default().insert(tp);
            }
        }
        let mut answers = Vec::with_capacity(by_stream.len());
        for (index, partitions) in by_stream {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if let Some(stream) = streams.get(index)
                && stream
                    .send(Command::Revoke {
                        partitions,
                        commit,
                        done: tx,
                    })
                    .is_ok()
            {
                answers.push(rx);
            }
        }
        // A stream that ended answers by dropping its sender.
        tokio::spawn(async move {
            for answer in answers {
                let _ = answer.await;
            }
            let _ = done.send(());
        });
    }

    /// Lists the source topics, keeps every destination topic in shape
    /// (created, recreated if it was deleted, grown with its source),
    /// tells the group member what to subscribe to, and hands the
    /// partitions the group gave kmirror, not yet assigned, to the
    /// streams.
    async fn sync(
        &mut self,
        streams: &[mpsc::UnboundedSender<Command>],
    ) -> Result<(), MirrorError> {
        let source_meta = self
            .source
            .refresh_metadata()
            .await
            .map_err(MirrorError::source)?;
        let subscribed = subscription(&self.config, &source_meta);
        self.subscribed.send_if_modified(|current| {
            let changed = *current != subscribed;
            if changed {
                *current = subscribed;
            }
            changed
        });
        for name in self.routes.keys() {
            if !source_meta.topics.contains_key(&**name) {
                if self.gone.insert(name.clone()) {
                    tracing::warn!(topic = %name, "the source topic is gone (deleted?): its partitions wait for it; if it is created again, kmirror stops and says so");
                }
            } else {
                self.gone.remove(name);
            }
        }
        let mut fresh: Vec<(Arc<str>, [u8; 16], Vec<i32>)> = Vec::new();
        for topic in source_meta.topics.values() {
            if topic.is_internal || !self.config.selector.selects(&topic.name) {
                continue;
            }
            let name: Arc<str> = Arc::from(topic.name.as_str());
            if self.routes.contains_key(&name)
                && recreated(self.topic_ids.get(&name).copied(), topic.id)
            {
                tracing::warn!(topic = %name, "the source topic was deleted and created again (its topic id changed)");
                return Err(MirrorError::SourceTopicRecreated {
                    topic: name.to_string(),
                });
            }
            self.topic_ids.entry(name.clone()).or_insert(topic.id);
            let partitions: Vec<i32> = topic
                .partitions
                .iter()
                .map(|p| p.partition)
                .filter(|p| {
                    let key = (name.clone(), *p);
                    self.owned.contains(&key) && !self.assigned.contains_key(&key)
                })
                .collect();
            if partitions.is_empty() && !self.routes.contains_key(&name) {
                continue;
            }
            fresh.push((name, topic.id, partitions));
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let tps: Vec<TopicPartition> = fresh
            .iter()
            .flat_map(|(t, _, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect();
        let positions = if tps.is_empty() {
            BTreeMap::new()
        } else {
            admin::committed_positions(&self.source, &self.config.fetch.group_id, &tps).await?
        };
        let committed_epochs: BTreeMap<TopicPartition, i32> = positions
            .iter()
            .map(|(k, (_, epoch))| (k.clone(), *epoch))
            .collect();
        let mut committed: BTreeMap<TopicPartition, i64> = positions
            .into_iter()
            .map(|(k, (offset, _))| (k, offset))
            .collect();
        let mut dest_meta = self
            .destination
            .refresh_metadata()
            .await
            .map_err(MirrorError::destination)?;
        for (topic, _, _) in &fresh {
            let source_count = source_meta
                .topics
                .get(&**topic)
                .map_or(0, |t| t.partitions.len());
            let dest_count = dest_meta.topics.get(&**topic).map(|t| t.partitions.len());
            let previous = self.routes.get(topic).copied();
            let by_key = self
                .config
                .partition_by_key
                .as_ref()
                .is_some_and(|p| p.matches(topic));
            let grown = dest_count.is_some_and(|d| grown_since_last_run(&committed, topic, d));
            let placement = plan_placement(source_count, dest_count, previous, by_key, grown);
            if let Some(count) = placement.create {
                let configs = admin::copied_topic_configs(&self.source, topic).await?;
                let created = admin::create_topic(
                    &self.destination,
                    topic,
                    count,
                    self.config.produce.replication_factor,
                    &configs,
                )
                .await?;
                if !created {
                    // Another process of the group created it first.
                    dest_meta = self.wait_for_partitions(topic, count).await?;
                    let found = dest_meta
                        .topics
                        .get(&**topic)
                        .map_or(0, |t| t.partitions.len());
                    if i32::try_from(found).ok() != Some(count) {
                        return Err(MirrorError::Destination {
                            topic: topic.to_string(),
                            reason: format!(
                                "kmirror was creating it with {count} partitions when it appeared \
                                 with {found} (created by someone else meanwhile); delete it, or \
                                 give it {count} partitions, and start kmirror again"
                            ),
                        });
                    }
                    tracing::info!(%topic, partitions = count, "the destination topic was created meanwhile (by another kmirror process of the group?)");
                } else if previous.is_some() {
                    tracing::warn!(%topic, partitions = count, "the destination topic was deleted while kmirror mirrored into it: created it again; what was mirrored before is gone from the destination, later records go to the new topic");
                } else {
                    tracing::info!(%topic, partitions = count, configs = ?configs, "created the destination topic");
                }
                dest_meta = self.wait_for_partitions(topic, count).await?;
            }
            if let Some(count) = placement.grow_to {
                admin::create_partitions(&self.destination, topic, count).await?;
                tracing::warn!(%topic, from = dest_count.unwrap_or(0), to = count, "the source topic grew: added partitions to the destination topic");
                dest_meta = self.wait_for_partitions(topic, count).await?;
            }
            if previous == Some(placement.route) {
                if let Route::ByKey { partitions } = placement.route
                    && dest_count.is_some_and(|d| d < source_count)
                    && fresh.iter().any(|(t, _, ps)| t == topic && !ps.is_empty())
                {
                    tracing::warn!(%topic, source_partitions = source_count, destination_partitions = partitions,
                        "the source topic grew; its records stay placed by key over the destination's partitions, as before (the destination topic is not grown)");
                }
                continue;
            }
            let dest_count = dest_meta
                .topics
                .get(&**topic)
                .map_or(source_count, |t| t.partitions.len());
            match placement.route {
                Route::SamePartition => {}
                Route::ByKey { .. } if dest_count == source_count => {
                    tracing::info!(%topic, partitions = dest_count, "--partition-by-key: records are placed by key (Java's partitioner), so passthrough is off for this topic");
                }
                Route::ByKey { partitions } => {
                    tracing::warn!(%topic, source_partitions = source_count, destination_partitions = partitions,
                        "partition counts differ: records are placed by key (Java's partitioner), so passthrough is off for this topic");
                }
            }
            if previous.is_none() {
                let max = admin::max_message_bytes(&self.destination, topic).await;
                self.max_batch_bytes.insert(topic.clone(), max);
                self.topics.push(topic.to_string());
            }
            self.routes.insert(topic.clone(), placement.route);
        }
        if tps.is_empty() {
            return Ok(());
        }
        let mut latest = admin::list_offsets(
            &self.source,
            Side::Source,
            &tps,
            OffsetReset::Latest,
            self.config.fetch.isolation,
        )
        .await?;
        if self.config.mode == RunMode::Once {
            self.confirm_past_end(&mut committed, &mut latest).await?;
        }
        let missing: Vec<TopicPartition> = tps
            .iter()
            .filter(|tp| !committed.contains_key(*tp))
            .cloned()
            .collect();
        let mut starts = committed.clone();
        if !missing.is_empty() {
            if self.config.fetch.offset_reset == OffsetReset::None
                && let Some((t, p)) = missing.first()
            {
                return Err(MirrorError::NoStartOffset {
                    topic: t.to_string(),
                    partition: *p,
                    why: format!(
                        "group {} has no committed offset (or one past the partition's end)",
                        self.config.fetch.group_id
                    ),
                });
            }
            let reset = admin::list_offsets(
                &self.source,
                Side::Source,
                &missing,
                self.config.fetch.offset_reset,
                self.config.fetch.isolation,
            )
            .await?;
            starts.extend(reset);
        }
        let targets = (self.config.mode == RunMode::Once).then_some(latest);
        let mut per_topic: BTreeMap<Arc<str>, usize> = BTreeMap::new();
        for (topic, id, partitions) in fresh {
            let route = self
                .routes
                .get(&topic)
                .copied()
                .unwrap_or(Route::SamePartition);
            for partition in partitions {
                let key = (topic.clone(), partition);
                let Some(&start) = starts.get(&key) else {
                    return Err(MirrorError::Internal(format!(
                        "no start offset for {topic}-{partition}"
                    )));
                };
                let assignment = Assignment {
                    topic: topic.clone(),
                    partition,
                    topic_id: id,
                    start,
                    committed: committed.get(&key).copied(),
                    committed_epoch: committed_epochs.get(&key).copied().unwrap_or(-1),
                    target: targets.as_ref().and_then(|t| t.get(&key).copied()),
                    route,
                    max_batch_bytes: self.max_batch_bytes.get(&topic).copied().flatten(),
                };
                // The stream with the fewest partitions (the group may
                // have taken some back from one), the lowest index first.
                let load = |i: usize| self.assigned.values().filter(|s| **s == i).count();
                let Some((index, stream)) = streams
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !s.is_closed())
                    .min_by_key(|(i, _)| (load(*i), *i))
                else {
                    // Every stream ended: the run is stopping (a stop, an
                    // error, or --once done), and the partition is left to
                    // the group's next assignment.
                    tracing::info!(%topic, partition, "assigned while every stream had finished: left to the next run");
                    continue;
                };
                if stream.send(Command::Assign(assignment)).is_err() {
                    // It ended meanwhile: the run is stopping (as above).
                    continue;
                }
                self.assigned.insert(key, index);
                *per_topic.entry(topic.clone()).or_default() += 1;
            }
        }
        for (topic, count) in per_topic {
            tracing::info!(%topic, partitions = count, "mirroring");
        }
        Ok(())
    }

    /// `--once`: a committed offset past the partition's end belongs to an
    /// older topic of that name (deleted and created again while kmirror
    /// was not running), and would count as already caught up, the new
    /// topic's records skipped; it is dropped, so auto.offset.reset
    /// applies. But the end read just after a leader election can trail
    /// what the old leader had exposed (its high-water mark catches up as
    /// the followers fetch), so the end is read again for a few seconds
    /// before an offset is taken as past it: a rebalance in the middle of
    /// a run must not copy a partition again from its start. (Mirroring
    /// continuously, a fetch past the log end answers OFFSET_OUT_OF_RANGE
    /// and auto.offset.reset applies there.)
    async fn confirm_past_end(
        &self,
        committed: &mut BTreeMap<TopicPartition, i64>,
        latest: &mut BTreeMap<TopicPartition, i64>,
    ) -> Result<(), MirrorError> {
        const ATTEMPTS: u32 = 12;
        let past = |committed: &BTreeMap<TopicPartition, i64>,
                    latest: &BTreeMap<TopicPartition, i64>| {
            committed
                .iter()
                .filter(|(tp, c)| latest.get(*tp).is_some_and(|end| **c > *end))
                .map(|(tp, _)| tp.clone())
                .collect::<Vec<_>>()
        };
        let mut suspects = past(committed, latest);
        for _ in 0..ATTEMPTS {
            if suspects.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            let again = admin::list_offsets(
                &self.source,
                Side::Source,
                &suspects,
                OffsetReset::Latest,
                self.config.fetch.isolation,
            )
            .await?;
            latest.extend(again);
            suspects = past(committed, latest);
        }
        for tp in suspects {
            let (Some(c), Some(end)) = (committed.remove(&tp), latest.get(&tp)) else {
                continue;
            };
            tracing::warn!(topic = %tp.0, partition = tp.1, committed = c, end, reset = ?self.config.fetch.offset_reset,
                "the group's committed offset is out of range, past the end of the source partition (was the topic deleted and created again?); resetting per auto.offset.reset");
            if self.config.fetch.offset_reset != OffsetReset::None {
                self.metrics.offset_reset();
            }
        }
        Ok(())
    }

    /// Waits until the destination's metadata shows `topic` with at least
    /// `partitions` partitions, all with leaders (a topic just created or
    /// grown), up to the request timeout.
    async fn wait_for_partitions(
        &self,
        topic: &str,
        partitions: i32,
    ) -> Result<Arc<kmirror_pool::cluster::ClusterMetadata>, MirrorError> {
        let wanted = usize::try_from(partitions).unwrap_or(0).max(1);
        let deadline = tokio::time::Instant::now() + self.destination.config().request_timeout;
        loop {
            let meta = self
                .destination
                .refresh_metadata()
                .await
                .map_err(MirrorError::destination)?;
            let ready = meta.topics.get(topic).is_some_and(|t| {
                t.partitions.len() >= wanted && t.partitions.iter().all(|p| p.leader.is_some())
            });
            if ready || tokio::time::Instant::now() >= deadline {
                return Ok(meta);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_key(partitions: u32) -> Route {
        Route::ByKey { partitions }
    }

    #[test]
    fn a_source_that_grows_while_mirrored_partition_to_partition_grows_the_destination() {
        let p = plan_placement(6, Some(4), Some(Route::SamePartition), false, false);
        assert_eq!(p.route, Route::SamePartition);
        assert_eq!(p.grow_to, Some(6));
        assert_eq!(p.create, None);
        let p = plan_placement(6, Some(6), Some(Route::SamePartition), false, false);
        assert_eq!(p.grow_to, None);
    }

    #[test]
    fn a_source_that_grew_between_runs_grows_the_destination() {
        let mut committed = BTreeMap::new();
        for p in 0..4 {
            committed.insert((Arc::<str>::from("t"), p), 10);
        }
        assert!(grown_since_last_run(&committed, "t", 4));
        assert!(!grown_since_last_run(&committed, "u", 4));
        let p = plan_placement(6, Some(4), None, false, true);
        assert_eq!(p.route, Route::SamePartition);
        assert_eq!(p.grow_to, Some(6));
        // Mirrored by key before: a source partition past the
        // destination's count has an offset.
        committed.insert((Arc::<str>::from("t"), 5), 3);
        assert!(!grown_since_last_run(&committed, "t", 4));
    }

    #[test]
    fn counts_that_differ_by_design_keep_keys_placed() {
        // First run on a smaller destination: by key, never grown.
        let p = plan_placement(6, Some(4), None, false, false);
        assert_eq!(p.route, by_key(4));
        assert_eq!(p.grow_to, None);
        // The source grows further: still over the same 4 partitions.
        let p = plan_placement(8, Some(4), Some(by_key(4)), false, false);
        assert_eq!(p.route, by_key(4));
        assert_eq!(p.grow_to, None);
        // --partition-by-key with equal counts: the source grows, keys
        // keep their destination partition.
        let p = plan_placement(6, Some(4), Some(by_key(4)), true, false);
        assert_eq!(p.route, by_key(4));
        assert_eq!(p.grow_to, None);
        let p = plan_placement(4, Some(6), None, false, false);
        assert_eq!(p.route, by_key(6));
    }

    #[test]
    fn a_recreated_source_topic_is_told_by_its_id() {
        let a = [1; 16];
        let b = [2; 16];
        assert!(recreated(Some(a), b));
        assert!(!recreated(Some(a), a));
        assert!(!recreated(None, b));
        assert!(!recreated(Some([0; 16]), b));
        assert!(!recreated(Some(a), [0; 16]));
    }

    #[test]
    fn a_deleted_destination_topic_is_created_again_in_its_shape() {
        let p = plan_placement(6, None, Some(Route::SamePartition), false, false);
        assert_eq!(p.create, Some(6));
        assert_eq!(p.route, Route::SamePartition);
        let p = plan_placement(6, None, Some(by_key(4)), false, false);
        assert_eq!(p.create, Some(4));
        assert_eq!(p.route, by_key(4));
        let p = plan_placement(3, None, None, true, false);
        assert_eq!((p.create, p.route), (Some(3), by_key(3)));
    }
}
