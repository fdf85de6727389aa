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
mod group;
pub mod metrics;
pub mod slow_path;
mod stream;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kmirror_pool::Cluster;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use self::admin::TopicPartition;
use self::budget::MemoryBudget;
pub use self::config::{FetchConfig, MirrorConfig, OffsetReset, ProduceConfig, RunMode};
pub use self::error::{MirrorError, Side};
pub use self::group::Membership;
pub use self::metrics::{Metrics, MetricsSnapshot, PartitionProgress};
use self::slow_path::Route;
use self::stream::{Assignment, Command, Stream, StreamContext};

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
    /// Connects to both clusters and checks that the consumer group is not
    /// in use by anyone else.
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
        admin::ensure_group_idle(
            &source,
            &config.fetch.group_id,
            group::SESSION_TIMEOUT.max(group::REBALANCE_TIMEOUT),
        )
        .await?;
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

    /// Mirrors until stopped (or caught up in [`RunMode::Once`]), then
    /// drains, commits and returns. An error stops every stream the same
    /// graceful way before it is returned.
    ///
    /// Each stream is one task with its own connections, so a runtime
    /// needs no more worker threads than streams; more only wake each
    /// other for every batch (the `kmirror` binary runs one worker per
    /// stream, at most one per CPU).
    pub async fn run(self) -> Result<RunSummary, MirrorError> {
        let streams = self.config.streams.max(1);
        let budget = MemoryBudget::new(self.config.produce.buffer_memory);
        // Join the group first: from now on it shows kmirror as its member,
        // and another kmirror on the same group is refused.
        let subscribed: Vec<String> = self
            .source
            .metadata()
            .await
            .map_err(MirrorError::source)?
            .topics
            .values()
            .filter(|t| !t.is_internal && self.config.selector.selects(&t.name))
            .map(|t| t.name.clone())
            .collect();
        let mut member = group::GroupMember::new(
            self.source.clone(),
            self.config.fetch.group_id.clone(),
            subscribed,
        );
        member.join().await?;
        let membership = member.membership();
        let (group_stop, group_stop_rx) = watch::channel(false);
        let mut group_task = tokio::spawn(async move {
            let result = member.keep_alive(group_stop_rx).await;
            member.leave().await;
            result
        });
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
                    Cluster::connect(self.config.source.clone())
                        .await
                        .map_err(MirrorError::source)?,
                    Cluster::connect(self.config.destination.clone())
                        .await
                        .map_err(MirrorError::destination)?,
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
            assigned: HashSet::new(),
            routes: HashMap::new(),
            max_batch_bytes: HashMap::new(),
            next_stream: 0,
            topics: Vec::new(),
        };
        let mut first_error = None;
        match controller.sync(&senders).await {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the mirror");
                first_error = Some(e);
                self.stop.stop();
            }
        }
        if self.config.mode == RunMode::Once {
            // No more assignments: each stream ends once caught up.
            senders.clear();
        }
        let mut refresh = tokio::time::interval(
            self.config
                .topic_refresh_interval
                .max(Duration::from_millis(100)),
        );
        refresh.reset();
        let mut stop_rx = self.stop.tx.subscribe();
        loop {
            tokio::select! {
                done = tasks.join_next() => match done {
                    None => break,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => {
                        if first_error.is_none() {
                            first_error = Some(e);
                        }
                        self.stop.stop();
                    }
                    Some(Err(e)) => {
                        if first_error.is_none() {
                            first_error = Some(MirrorError::Internal(format!("stream task: {e}")));
                        }
                        self.stop.stop();
                    }
                },
                _ = refresh.tick(), if !senders.is_empty() && !self.stop.is_stopped() => {
                    if let Err(e) = controller.sync(&senders).await {
                        tracing::warn!(error = %e, "topic refresh failed; retrying at the next interval");
                    }
                }
                _ = stop_rx.changed(), if !self.stop.is_stopped() => {}
                joined = &mut group_task, if !group_done => {
                    group_done = true;
                    let error = match joined {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e),
                        Err(e) => Some(MirrorError::Internal(format!("group task: {e}"))),
                    };
                    if let Some(e) = error {
                        tracing::error!(error = %e, "stopping");
                        if first_error.is_none() {
                            first_error = Some(e);
                        }
                        self.stop.stop();
                    }
                }
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

/// Keeps the selected source topics assigned.
struct Controller {
    config: Arc<MirrorConfig>,
    source: Cluster,
    destination: Cluster,
    assigned: HashSet<TopicPartition>,
    routes: HashMap<Arc<str>, Route>,
    max_batch_bytes: HashMap<Arc<str>, Option<usize>>,
    next_stream: usize,
    topics: Vec<String>,
}

impl Controller {
    /// Lists the source topics, creates missing destination topics, and
    /// assigns partitions not yet assigned.
    async fn sync(
        &mut self,
        streams: &[mpsc::UnboundedSender<Command>],
    ) -> Result<(), MirrorError> {
        let source_meta = self
            .source
            .refresh_metadata()
            .await
            .map_err(MirrorError::source)?;
        let mut fresh: Vec<(Arc<str>, [u8; 16], Vec<i32>)> = Vec::new();
        for topic in source_meta.topics.values() {
            if topic.is_internal || !self.config.selector.selects(&topic.name) {
                continue;
            }
            let partitions: Vec<i32> = topic
                .partitions
                .iter()
                .map(|p| p.partition)
                .filter(|p| {
                    !self
                        .assigned
                        .contains(&(Arc::from(topic.name.as_str()), *p))
                })
                .collect();
            if partitions.is_empty() {
                continue;
            }
            fresh.push((Arc::from(topic.name.as_str()), topic.id, partitions));
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let mut dest_meta = self
            .destination
            .refresh_metadata()
            .await
            .map_err(MirrorError::destination)?;
        for (topic, _, _) in &fresh {
            if self.routes.contains_key(topic) {
                continue;
            }
            let source_count = source_meta
                .topics
                .get(&**topic)
                .map_or(0, |t| t.partitions.len());
            if !dest_meta.topics.contains_key(&**topic) {
                let configs = admin::copied_topic_configs(&self.source, topic).await?;
                let count = i32::try_from(source_count).unwrap_or(i32::MAX);
                admin::create_topic(
                    &self.destination,
                    topic,
                    count,
                    self.config.produce.replication_factor,
                    &configs,
                )
                .await?;
                tracing::info!(%topic, partitions = count, configs = ?configs, "created the destination topic");
                dest_meta = self.wait_for_topic(topic).await?;
            }
            let dest_count = dest_meta
                .topics
                .get(&**topic)
                .map_or(source_count, |t| t.partitions.len());
            let by_key = self
                .config
                .partition_by_key
                .as_ref()
                .is_some_and(|p| p.matches(topic));
            let route = if dest_count == source_count && !by_key {
                Route::SamePartition
            } else if dest_count == source_count {
                tracing::info!(%topic, partitions = dest_count, "--partition-by-key: records are placed by key (Java's partitioner), so passthrough is off for this topic");
                Route::ByKey {
                    partitions: u32::try_from(dest_count).unwrap_or(1),
                }
            } else {
                tracing::warn!(%topic, source_partitions = source_count, destination_partitions = dest_count,
                    "partition counts differ: records are placed by key (Java's partitioner), so passthrough is off for this topic");
                Route::ByKey {
                    partitions: u32::try_from(dest_count).unwrap_or(1),
                }
            };
            self.routes.insert(topic.clone(), route);
            let max = admin::max_message_bytes(&self.destination, topic).await;
            self.max_batch_bytes.insert(topic.clone(), max);
            self.topics.push(topic.to_string());
        }
        let tps: Vec<TopicPartition> = fresh
            .iter()
            .flat_map(|(t, _, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect();
        let committed =
            admin::committed_offsets(&self.source, &self.config.fetch.group_id, &tps).await?;
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
                        "group {} has no committed offset",
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
        let targets = if self.config.mode == RunMode::Once {
            Some(
                admin::list_offsets(
                    &self.source,
                    Side::Source,
                    &tps,
                    OffsetReset::Latest,
                    self.config.fetch.isolation,
                )
                .await?,
            )
        } else {
            None
        };
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
                    target: targets.as_ref().and_then(|t| t.get(&key).copied()),
                    route,
                    max_batch_bytes: self.max_batch_bytes.get(&topic).copied().flatten(),
                };
                let Some(stream) = streams.get(self.next_stream % streams.len().max(1)) else {
                    return Err(MirrorError::Internal("no stream to assign to".into()));
                };
                self.next_stream += 1;
                if stream.send(Command::Assign(assignment)).is_err() {
                    return Err(MirrorError::Internal(
                        "a stream stopped before its assignment".into(),
                    ));
                }
                self.assigned.insert(key);
                *per_topic.entry(topic.clone()).or_default() += 1;
            }
        }
        for (topic, count) in per_topic {
            tracing::info!(%topic, partitions = count, "mirroring");
        }
        Ok(())
    }

    /// Waits until a topic just created appears in the destination's
    /// metadata with leaders.
    async fn wait_for_topic(
        &self,
        topic: &str,
    ) -> Result<Arc<kmirror_pool::cluster::ClusterMetadata>, MirrorError> {
        let deadline = tokio::time::Instant::now() + self.destination.config().request_timeout;
        loop {
            let meta = self
                .destination
                .refresh_metadata()
                .await
                .map_err(MirrorError::destination)?;
            let ready = meta.topics.get(topic).is_some_and(|t| {
                !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader.is_some())
            });
            if ready || tokio::time::Instant::now() >= deadline {
                return Ok(meta);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
