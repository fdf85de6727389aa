//! kmirror's membership in its consumer group on the source.
//!
//! kmirror is an ordinary member of `group.id`, as MirrorMaker 1's Java
//! consumer is: several kmirror processes (and Java consumers) share one
//! group, the group spreads the selected topics' partitions over them, and
//! moves them when a member comes or goes. There is no coordinator of
//! kmirror's own: the source cluster's group coordinator is the only one.
//!
//! ```text
//!  group task (classic: JoinGroup/SyncGroup/Heartbeat; or KIP-848's ConsumerGroupHeartbeat)
//!     │  GroupEvent::Assigned(partitions)        ──▶ engine: start mirroring them
//!     │  GroupEvent::Revoke { partitions, done } ──▶ engine: stop fetching them, wait for
//!     │                                              their batches' acknowledgements,
//!     │                                              commit, drop them, then `done`
//!     └─ watch<Membership>  (member id, generation or member epoch) ──▶ commits
//! ```
//!
//! The group task heartbeats on its own, so a slow destination never
//! expires the session; while the engine gives partitions up it goes on
//! heartbeating. The two protocols live in [`classic`] and [`consumer`];
//! the leader's assignors (classic protocol) in [`assignor`].

pub(crate) mod assignor;
mod classic;
mod consumer;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;
use kmirror_pool::{BrokerConnection, Cluster, PoolError};
use kmirror_protocol::ResponseError;
use kmirror_protocol::messages::request::KafkaRequest;
use tokio::sync::{mpsc, oneshot, watch};

pub use self::assignor::Assignor;
use super::admin::TopicPartition;
use super::config::{GroupConfig, GroupProtocol};
use super::error::{MirrorError, Side};

/// Exponential backoff for retries of transient trouble: 100 ms doubling
/// to [`Backoff::MAX`].
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    attempts: u32,
}

impl Backoff {
    /// The longest wait.
    pub(crate) const MAX: Duration = Duration::from_secs(5);

    /// The wait before the next attempt.
    pub(crate) fn next(&mut self) -> Duration {
        let wait = Duration::from_millis(100)
            .saturating_mul(1 << self.attempts.min(8))
            .min(Self::MAX);
        self.attempts = self.attempts.saturating_add(1);
        wait
    }
}

/// The identity commits carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The group generation (classic protocol) or the member epoch
    /// (KIP-848) kmirror holds its partitions in.
    pub generation: i32,
    /// kmirror's member id.
    pub member_id: String,
    /// `group.instance.id`, for a static member.
    pub group_instance_id: Option<String>,
}

/// What the group tells the engine.
#[derive(Debug)]
pub(crate) enum GroupEvent {
    /// These partitions are kmirror's now: mirror them.
    Assigned(BTreeSet<TopicPartition>),
    /// Give these partitions up: stop fetching them, wait (up to the drain
    /// timeout) for their batches to be acknowledged, commit what was
    /// (unless `commit` is false: the membership is already lost and a
    /// commit would be refused), forget them, then answer on `done`.
    Revoke {
        /// The partitions.
        partitions: BTreeSet<TopicPartition>,
        /// Whether their offsets are committed first.
        commit: bool,
        /// Answered (or dropped) once they are given up.
        done: oneshot::Sender<()>,
    },
}

/// The selected source topics and their partition counts: what kmirror
/// subscribes to. A change makes the member rejoin, so that the group's
/// assignment covers new topics and partitions.
pub(crate) type Subscribed = BTreeMap<String, i32>;

/// What both protocols' members share: the cluster, the settings, the
/// engine's channels, and the partitions kmirror holds.
#[derive(Debug)]
pub(crate) struct MemberCore {
    pub source: Cluster,
    pub group: String,
    pub config: GroupConfig,
    /// How long giving partitions up may take (the engine's drain timeout).
    pub revoke_timeout: Duration,
    pub state: watch::Sender<Option<Membership>>,
    pub events: mpsc::UnboundedSender<GroupEvent>,
    pub subscribed: watch::Receiver<Subscribed>,
    /// The partitions the engine mirrors for the group.
    pub owned: BTreeSet<TopicPartition>,
}

impl MemberCore {
    /// Finds the coordinator and connects to it.
    pub(crate) async fn connection(&self) -> Result<Arc<BrokerConnection>, MirrorError> {
        let id = super::admin::find_coordinator(&self.source, &self.group)
            .await
            .map_err(MirrorError::source)?;
        self.source
            .connection_to_broker(id)
            .await
            .map_err(MirrorError::source)
    }

    /// The version of `api` the connection negotiated.
    pub(crate) fn version(conn: &BrokerConnection, api: ApiKey) -> Result<i16, MirrorError> {
        conn.versions().version(api).map_err(|e| {
            MirrorError::source(PoolError::Protocol {
                broker: conn.broker().to_owned(),
                source: Arc::new(e),
            })
        })
    }

    /// A refusal of `what` for the group, with a hint where one helps.
    pub(crate) fn refused(&self, what: &str, error: ResponseError) -> MirrorError {
        let instance = self.config.group_instance_id.as_deref().unwrap_or("");
        let hint = match error {
            ResponseError::GroupAuthorizationFailed => {
                Some("grant the mirror's principal Read on the group".to_owned())
            }
            ResponseError::InconsistentGroupProtocol => Some(format!(
                "group {} is used by members that share no assignor with kmirror, or are not \
                 consumers (a Kafka Connect worker, a stream of another kind): set \
                 partition.assignment.strategy to one the other members list, or give kmirror \
                 its own group.id",
                self.group
            )),
            ResponseError::FencedInstanceId => Some(format!(
                "another process joined group {} with group.instance.id={instance}: give each \
                 kmirror process its own group.instance.id",
                self.group
            )),
            ResponseError::GroupMaxSizeReached => Some(
                "the group reached the broker's group.max.size; raise it or use fewer processes"
                    .to_owned(),
            ),
            ResponseError::UnreleasedInstanceId => Some(format!(
                "group.instance.id={instance} is still held by a member of group {}; wait for its \
                 session to expire",
                self.group
            )),
            _ => None,
        };
        MirrorError::Refused {
            side: Side::Source,
            what: format!("{what} for group {}", self.group),
            error,
            hint,
        }
    }

    /// Tells the engine to mirror `partitions` (sent even when empty: the
    /// engine learns that the group assigned, as `--once` waits for).
    pub(crate) fn assigned(&mut self, partitions: BTreeSet<TopicPartition>) {
        self.owned.extend(partitions.iter().cloned());
        let _ = self.events.send(GroupEvent::Assigned(partitions));
    }

    /// Asks the engine to give `partitions` up and returns once it did (or
    /// [`Self::revoke_timeout`] passed, or the engine is gone).
    /// `while_waiting` runs every heartbeat interval meanwhile (the
    /// protocol's heartbeat: the coordinator must keep hearing from
    /// kmirror while it drains).
    pub(crate) async fn revoke<F, Fut>(
        &mut self,
        partitions: BTreeSet<TopicPartition>,
        commit: bool,
        mut while_waiting: F,
    ) where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        if partitions.is_empty() {
            return;
        }
        for tp in &partitions {
            self.owned.remove(tp);
        }
        let count = partitions.len();
        let named = describe(&partitions);
        let (done, mut answered) = oneshot::channel();
        if self
            .events
            .send(GroupEvent::Revoke {
                partitions,
                commit,
                done,
            })
            .is_err()
        {
            return;
        }
        let started = tokio::time::Instant::now();
        // A margin over the engine's own drain bound: it answers first.
        let deadline = started + self.revoke_timeout + Duration::from_secs(5);
        let mut tick = tokio::time::interval(self.config.heartbeat_interval);
        tick.reset();
        loop {
            tokio::select! {
                biased;
                _ = &mut answered => break,
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(group = %self.group, partitions = count, "giving partitions up took too long; going on without waiting");
                    break;
                }
                _ = tick.tick() => while_waiting().await,
            }
        }
        tracing::info!(group = %self.group, partitions = %named, committed = commit, took = ?started.elapsed(), "gave partitions up");
    }

    /// [`Self::revoke`], sending the coordinator `beat(connection)` every
    /// heartbeat interval meanwhile (the protocol's heartbeat, built for
    /// the connection's negotiated version). Only the session matters: an
    /// answer saying the group rebalances is what kmirror handles already.
    pub(crate) async fn revoke_heartbeating<R, B>(
        &mut self,
        partitions: BTreeSet<TopicPartition>,
        commit: bool,
        beat: B,
    ) where
        R: KafkaRequest,
        B: Fn(&BrokerConnection) -> R,
    {
        let source = self.source.clone();
        let group = self.group.clone();
        let beat = &beat;
        self.revoke(partitions, commit, || {
            let source = source.clone();
            let group = group.clone();
            async move {
                if let Ok(id) = super::admin::find_coordinator(&source, &group).await
                    && let Ok(conn) = source.connection_to_broker(id).await
                {
                    let _ = conn.send(&beat(&conn)).await;
                }
            }
        })
        .await;
    }

    /// Whether the subscription changed since it was last read (marks it
    /// read).
    pub(crate) fn subscription_changed(&mut self) -> bool {
        self.subscribed.has_changed().unwrap_or(false) && {
            self.subscribed.mark_unchanged();
            true
        }
    }
}

/// Starts kmirror's membership: the returned task runs until `stop`, then
/// leaves the group (a static member stays, so a restart moves nothing).
pub(crate) fn spawn(
    core: MemberCore,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<(), MirrorError>> {
    tokio::spawn(async move {
        let mut core = core;
        if core.config.protocol == GroupProtocol::Consumer {
            match consumer::offered(&core).await {
                Ok(true) => {
                    tracing::info!(group = %core.group, "group.protocol=consumer: joining with KIP-848's consumer group protocol");
                    return consumer::ConsumerMember::new(core).run(stop).await;
                }
                Ok(false) => {
                    tracing::warn!(group = %core.group, "group.protocol=consumer, but the source cluster does not offer KIP-848's ConsumerGroupHeartbeat (Apache Kafka before 4.0): using the classic protocol");
                }
                Err(e) => return Err(e),
            }
            core.config.protocol = GroupProtocol::Classic;
        } else {
            tracing::info!(group = %core.group, assignors = ?core.config.assignors.iter().map(|a| a.name()).collect::<Vec<_>>(), "joining with the classic consumer group protocol");
        }
        classic::ClassicMember::new(core).run(stop).await
    })
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Resolves once `stop` says stop (or its sender is gone), whether or not
/// that value was already seen.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

pub(crate) fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// `{topic: [partitions]}`, sorted, for logs.
pub(crate) fn describe(partitions: &BTreeSet<TopicPartition>) -> String {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let parts: Vec<String> = by_topic
        .iter()
        .map(|(t, ps)| format!("{t}{ps:?}"))
        .collect();
    format!("{{{}}}", parts.join(", "))
}
