//! The classic consumer group protocol: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, as Java's `ConsumerCoordinator` speaks it.
//!
//! - kmirror announces the assignors of `partition.assignment.strategy`
//!   in order, each with a `ConsumerProtocolSubscription` v3 (the selected
//!   topics, the partitions it owns, its generation); the coordinator
//!   picks one every member supports.
//! - As the group's leader, kmirror computes the assignment of every
//!   member, Java consumers included ([`super::assignor`]).
//! - Eager assignors (`range`, `roundrobin`): every partition is given up
//!   (fetching stopped, in-flight batches acknowledged, offsets committed)
//!   before kmirror rejoins. `cooperative-sticky`: kmirror rejoins holding
//!   its partitions; after the new assignment it gives up only those that
//!   move, then rejoins once more so that they can be handed over.
//! - Static membership (`group.instance.id`, JoinGroup v5+): a restart
//!   within the session timeout gets its partitions back without a
//!   rebalance, and a stop does not leave the group.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{self as kp, ApiKey, GroupId};
use kmirror_pool::BrokerConnection;
use kmirror_protocol::ResponseError;
use kmirror_protocol::messages::consumer_protocol::{Assignment, Subscription, TopicPartitions};
use tokio::sync::watch;

use super::assignor::{self, Assignor, MemberSubscription};
use super::{Backoff, MemberCore, Membership, describe, millis, stopped, str_bytes};
use crate::engine::admin::TopicPartition;
use crate::engine::error::{MirrorError, response_error_is_transient};

/// The protocol type of consumer groups.
const PROTOCOL_TYPE: &str = "consumer";
/// The `ConsumerProtocolSubscription` version kmirror sends (Java's
/// current one).
const SUBSCRIPTION_VERSION: i16 = 3;
/// The longest a LeaveGroup may take (it is best effort).
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What one JoinGroup/SyncGroup round came to.
enum JoinStep {
    /// In the group with this assignment.
    Joined(BTreeSet<TopicPartition>),
    /// Go again at once (a member id was handed out or forgotten).
    Again,
    /// The group is rebalancing: go again shortly.
    Rebalancing,
}

/// A classic-protocol member.
pub(super) struct ClassicMember {
    core: MemberCore,
    member_id: String,
    generation: i32,
    /// The assignor the coordinator picked at the last join.
    protocol: Option<Assignor>,
    /// Rejoin before the next heartbeat.
    rejoin: bool,
}

impl ClassicMember {
    pub(super) fn new(core: MemberCore) -> Self {
        Self {
            core,
            member_id: String::new(),
            generation: -1,
            protocol: None,
            rejoin: true,
        }
    }

    fn group(&self) -> &str {
        &self.core.group
    }

    fn cooperative(&self) -> bool {
        // Before the first join the protocol is unknown: the partitions
        // owned are none, so either way nothing is given up.
        self.protocol.is_some_and(Assignor::is_cooperative)
    }

    /// Runs until `stop`: joins, heartbeats, rejoins when the group
    /// rebalances or the subscription changes. Errors that retrying cannot
    /// fix end it; transient trouble is retried with backoff.
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), MirrorError> {
        let result = self.run_until_stopped(&mut stop).await;
        self.leave().await;
        result
    }

    async fn run_until_stopped(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), MirrorError> {
        let mut tick = tokio::time::interval(self.core.config.heartbeat_interval);
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            if self.rejoin {
                if !self.cooperative() && !self.core.owned.is_empty() {
                    // Eager: everything goes before the JoinGroup.
                    let owned = self.core.owned.clone();
                    // The engine stops the member only once every stream
                    // ended (drained and committed): it no longer answers
                    // a revocation, which must not be waited for.
                    tokio::select! {
                        biased;
                        _ = stopped(stop) => return Ok(()),
                        () = self.give_up(owned, true) => {}
                    }
                }
                let Some(assigned) = self.join(stop).await? else {
                    return Ok(());
                };
                self.rejoin = false;
                tokio::select! {
                    biased;
                    _ = stopped(stop) => return Ok(()),
                    () = self.take(assigned) => {}
                }
                tick.reset();
                continue;
            }
            tokio::select! {
                biased;
                _ = stopped(stop) => return Ok(()),
                _ = tick.tick() => {}
                changed = self.core.subscribed.changed() => {
                    if changed.is_ok() {
                        self.core.subscribed.mark_unchanged();
                        tracing::info!(group = %self.group(), topics = self.core.subscribed.borrow().len(), "the selected topics or their partitions changed: rejoining the group");
                        self.rejoin = true;
                    }
                    continue;
                }
            }
            let heartbeat = self.heartbeat();
            let code = tokio::select! {
                biased;
                _ = stopped(stop) => return Ok(()),
                code = heartbeat => code,
            };
            tokio::select! {
                biased;
                _ = stopped(stop) => return Ok(()),
                handled = self.on_heartbeat(code) => handled?,
            }
        }
    }

    /// Takes a new assignment: gives up what the group moved away (then
    /// rejoins so it can be handed over), starts what is new.
    async fn take(&mut self, assigned: BTreeSet<TopicPartition>) {
        let revoked: BTreeSet<TopicPartition> =
            self.core.owned.difference(&assigned).cloned().collect();
        let added: BTreeSet<TopicPartition> =
            assigned.difference(&self.core.owned).cloned().collect();
        tracing::info!(group = %self.group(), generation = self.generation, member_id = %self.member_id,
            assignor = self.protocol.map_or("?", Assignor::name),
            assigned = %describe(&assigned), added = added.len(), revoked = revoked.len(),
            "joined the consumer group");
        if !revoked.is_empty() {
            self.give_up(revoked, true).await;
            // Cooperative: the partitions given up are handed to their new
            // owner in a follow-up rebalance, as Java's consumer does.
            self.rejoin = true;
        }
        self.core.assigned(added);
    }

    /// Gives `partitions` up through the engine, heartbeating meanwhile.
    async fn give_up(&mut self, partitions: BTreeSet<TopicPartition>, commit: bool) {
        let heartbeat = self.heartbeat_args();
        self.core
            .revoke_heartbeating(partitions, commit, |conn| heartbeat.request(conn))
            .await;
    }

    fn heartbeat_args(&self) -> HeartbeatArgs {
        HeartbeatArgs {
            group: self.core.group.clone(),
            generation: self.generation,
            member_id: self.member_id.clone(),
            instance_id: self.core.config.group_instance_id.clone(),
        }
    }

    /// Loses every partition without a commit (the coordinator no longer
    /// knows kmirror's generation: a commit would be refused).
    async fn lose_all(&mut self, why: &str) {
        if !self.core.owned.is_empty() {
            tracing::warn!(group = %self.group(), partitions = self.core.owned.len(), "{why}: the partitions are dropped without a commit; their new owner copies again what was not committed");
        }
        self.core.state.send_replace(None);
        let owned = std::mem::take(&mut self.core.owned);
        self.give_up(owned, false).await;
        self.generation = -1;
    }

    async fn on_heartbeat(
        &mut self,
        code: Result<Option<ResponseError>, MirrorError>,
    ) -> Result<(), MirrorError> {
        let code = match code {
            Ok(code) => code,
            Err(e) if e.is_transient() => {
                tracing::warn!(group = %self.group(), error = %e, "heartbeat failed; retrying");
                self.core.source.invalidate_coordinator(&self.core.group);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        match code {
            None => {}
            Some(ResponseError::RebalanceInProgress) => {
                tracing::info!(group = %self.group(), "the group is rebalancing (a member joined or left, or the coordinator moved): rejoining");
                self.rejoin = true;
            }
            Some(ResponseError::UnknownMemberId) => {
                self.lose_all(
                    "the coordinator dropped kmirror from the group (its session expired?)",
                )
                .await;
                self.member_id.clear();
                self.rejoin = true;
            }
            Some(ResponseError::IllegalGeneration) => {
                self.lose_all("kmirror's generation is outdated").await;
                self.rejoin = true;
            }
            Some(error @ ResponseError::FencedInstanceId) => {
                return Err(self.core.refused("Heartbeat", error));
            }
            Some(error) if response_error_is_transient(error) => {
                tracing::warn!(group = %self.group(), %error, "heartbeat refused; finding the coordinator again");
                self.core.source.invalidate_coordinator(&self.core.group);
            }
            Some(error) => return Err(self.core.refused("Heartbeat", error)),
        }
        Ok(())
    }

    /// One heartbeat: the coordinator's answer.
    async fn heartbeat(&self) -> Result<Option<ResponseError>, MirrorError> {
        let conn = self.core.connection().await?;
        let request = self.heartbeat_args().request(&conn);
        let response = conn.send(&request).await.map_err(MirrorError::source)?;
        Ok(ResponseError::try_from_code(response.error_code))
    }

    /// Joins (JoinGroup and SyncGroup rounds, retried through transient
    /// trouble) and returns the assignment; `None` if stopped first.
    async fn join(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<BTreeSet<TopicPartition>>, MirrorError> {
        self.core.state.send_replace(None);
        self.core.subscription_changed();
        let mut backoff = Backoff::default();
        loop {
            if *stop.borrow() {
                return Ok(None);
            }
            // A JoinGroup may be held by the coordinator for up to the
            // rebalance timeout: a stop must not wait behind it.
            let step = tokio::select! {
                biased;
                _ = stopped(stop) => return Ok(None),
                step = self.join_once() => step,
            };
            let wait = match step {
                Ok(JoinStep::Joined(assigned)) => return Ok(Some(assigned)),
                Ok(JoinStep::Again) => Duration::ZERO,
                Ok(JoinStep::Rebalancing) => Duration::from_millis(100),
                Err(e) if e.is_transient() => {
                    self.core.source.invalidate_coordinator(&self.core.group);
                    let wait = backoff.next();
                    tracing::warn!(group = %self.group(), error = %e, retry_in = ?wait, "cannot join the consumer group yet; retrying");
                    wait
                }
                Err(e) => return Err(e),
            };
            if !wait.is_zero() {
                tokio::select! {
                    biased;
                    _ = stopped(stop) => return Ok(None),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// The subscription kmirror announces with `assignor`.
    fn subscription(&self, assignor: Assignor) -> bytes::Bytes {
        let topics: Vec<String> = self.core.subscribed.borrow().keys().cloned().collect();
        let mut owned: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &self.core.owned {
            owned.entry(t).or_default().push(*p);
        }
        Subscription {
            topics,
            // Java's cooperative-sticky assignor reads the generation from
            // its user data in subscriptions before v2.
            user_data: (assignor == Assignor::CooperativeSticky)
                .then(|| bytes::Bytes::copy_from_slice(&self.generation.to_be_bytes())),
            owned_partitions: owned
                .into_iter()
                .map(|(topic, partitions)| TopicPartitions {
                    topic: topic.to_owned(),
                    partitions,
                })
                .collect(),
            generation_id: self.generation,
            rack_id: None,
        }
        .encode(SUBSCRIPTION_VERSION)
    }

    /// One JoinGroup and SyncGroup round.
    async fn join_once(&mut self) -> Result<JoinStep, MirrorError> {
        let conn = self.core.connection().await?;
        let version = MemberCore::version(&conn, ApiKey::JoinGroup)?;
        let config = &self.core.config;
        let instance_id = config.group_instance_id.as_deref().filter(|_| version >= 5);
        if config.group_instance_id.is_some() && instance_id.is_none() {
            tracing::warn!(group = %self.group(), "group.instance.id needs JoinGroup v5 (Apache Kafka 2.3 or newer) on the source: joining as a dynamic member");
        }
        let protocols = config
            .assignors
            .iter()
            .map(|a| {
                kp::join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(str_bytes(a.name()))
                    .with_metadata(self.subscription(*a))
            })
            .collect();
        let mut request = kp::JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&self.core.group)))
            .with_session_timeout_ms(millis(config.session_timeout))
            .with_member_id(str_bytes(&self.member_id))
            .with_group_instance_id(instance_id.map(str_bytes))
            .with_protocol_type(str_bytes(PROTOCOL_TYPE))
            .with_protocols(protocols);
        if version >= 1 {
            request = request.with_rebalance_timeout_ms(millis(config.max_poll_interval));
        }
        // The coordinator holds a JoinGroup until the group's members
        // rejoined, up to the rebalance timeout: wait as Java's consumer
        // does, that long plus 5 s.
        let wait = conn
            .request_timeout()
            .max(config.max_poll_interval + Duration::from_secs(5));
        let response = conn
            .send_with_timeout(&request, wait)
            .await
            .map_err(MirrorError::source)?;
        match ResponseError::try_from_code(response.error_code) {
            None => {}
            Some(ResponseError::MemberIdRequired) => {
                self.member_id = response.member_id.to_string();
                return Ok(JoinStep::Again);
            }
            Some(ResponseError::UnknownMemberId) => {
                self.member_id.clear();
                return Ok(JoinStep::Again);
            }
            Some(ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration) => {
                return Ok(JoinStep::Rebalancing);
            }
            Some(error) if response_error_is_transient(error) => {
                self.core.source.invalidate_coordinator(&self.core.group);
                return Ok(JoinStep::Rebalancing);
            }
            Some(error) => return Err(self.core.refused("JoinGroup", error)),
        }
        self.member_id = response.member_id.to_string();
        let generation = response.generation_id;
        let protocol_name = response
            .protocol_name
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_default();
        let Some(protocol) = Assignor::from_name(&protocol_name) else {
            return Err(MirrorError::Internal(format!(
                "the coordinator of group {} picked assignor {protocol_name:?}, which kmirror did not offer",
                self.core.group
            )));
        };
        let leader = response.leader.as_str() == self.member_id && !response.skip_assignment;
        let assignments = if leader {
            self.assign_as_leader(protocol, generation, &response.members)
                .await?
        } else {
            Vec::new()
        };
        let synced = self
            .sync(&conn, generation, &protocol_name, assignments)
            .await?;
        match ResponseError::try_from_code(synced.error_code) {
            None => {}
            Some(ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration) => {
                return Ok(JoinStep::Rebalancing);
            }
            Some(ResponseError::UnknownMemberId) => {
                self.member_id.clear();
                return Ok(JoinStep::Again);
            }
            Some(error) if response_error_is_transient(error) => {
                self.core.source.invalidate_coordinator(&self.core.group);
                return Ok(JoinStep::Rebalancing);
            }
            Some(error) => return Err(self.core.refused("SyncGroup", error)),
        }
        let assignment = Assignment::decode(&synced.assignment).map_err(|e| {
            MirrorError::Internal(format!(
                "group {}: the assignment SyncGroup handed kmirror does not decode: {e}",
                self.core.group
            ))
        })?;
        let assigned: BTreeSet<TopicPartition> = assignment
            .partitions
            .iter()
            .flat_map(|tp| {
                let topic: Arc<str> = Arc::from(tp.topic.as_str());
                tp.partitions.iter().map(move |p| (topic.clone(), *p))
            })
            .collect();
        self.generation = generation;
        self.protocol = Some(protocol);
        if leader {
            tracing::debug!(group = %self.group(), generation, members = response.members.len(), "kmirror leads the group: assigned every member's partitions");
        }
        self.core.state.send_replace(Some(Membership {
            generation,
            member_id: self.member_id.clone(),
            group_instance_id: instance_id.map(str::to_owned),
        }));
        Ok(JoinStep::Joined(assigned))
    }

    async fn sync(
        &self,
        conn: &BrokerConnection,
        generation: i32,
        protocol_name: &str,
        assignments: Vec<kp::sync_group_request::SyncGroupRequestAssignment>,
    ) -> Result<kp::SyncGroupResponse, MirrorError> {
        let version = MemberCore::version(conn, ApiKey::SyncGroup)?;
        let instance_id = self
            .core
            .config
            .group_instance_id
            .as_deref()
            .filter(|_| version >= 3);
        let mut sync = kp::SyncGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&self.core.group)))
            .with_generation_id(generation)
            .with_member_id(str_bytes(&self.member_id))
            .with_group_instance_id(instance_id.map(str_bytes))
            .with_assignments(assignments);
        if version >= 5 {
            sync = sync
                .with_protocol_type(Some(str_bytes(PROTOCOL_TYPE)))
                .with_protocol_name(Some(str_bytes(protocol_name)));
        }
        conn.send(&sync).await.map_err(MirrorError::source)
    }

    /// The leader's work: every member's assignment, by `protocol`, over
    /// the source's current partition counts.
    async fn assign_as_leader(
        &self,
        protocol: Assignor,
        generation: i32,
        members: &[kp::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<kp::sync_group_request::SyncGroupRequestAssignment>, MirrorError> {
        let subscriptions: Vec<MemberSubscription> = members
            .iter()
            .map(|m| {
                let member_id = m.member_id.to_string();
                let decoded = Subscription::decode(&m.metadata).unwrap_or_else(|e| {
                    tracing::warn!(group = %self.group(), member = %member_id, error = %e, "a member's subscription does not decode: it is assigned nothing");
                    Subscription::default()
                });
                MemberSubscription {
                    member_id,
                    group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                    topics: decoded.topics.into_iter().collect(),
                    owned: decoded
                        .owned_partitions
                        .into_iter()
                        .flat_map(|tp| {
                            let topic = tp.topic;
                            tp.partitions.into_iter().map(move |p| (topic.clone(), p))
                        })
                        .collect(),
                    // Before subscription v2, Java's cooperative-sticky
                    // keeps the generation in its user data (an INT32).
                    generation: match decoded.user_data.as_deref() {
                        Some(&[a, b, c, d])
                            if decoded.generation_id < 0
                                && protocol == Assignor::CooperativeSticky =>
                        {
                            i32::from_be_bytes([a, b, c, d])
                        }
                        _ => decoded.generation_id,
                    },
                }
            })
            .collect();
        let metadata = self
            .core
            .source
            .refresh_metadata()
            .await
            .map_err(MirrorError::source)?;
        let wanted: BTreeSet<&String> = subscriptions.iter().flat_map(|s| &s.topics).collect();
        let counts: BTreeMap<String, i32> = wanted
            .into_iter()
            .filter_map(|t| {
                let topic = metadata.topics.get(t.as_str())?;
                Some((t.clone(), i32::try_from(topic.partitions.len()).ok()?))
            })
            .collect();
        let plan = assignor::assign(protocol, &subscriptions, &counts);
        tracing::info!(group = %self.group(), generation, assignor = protocol.name(), members = subscriptions.len(),
            plan = ?plan.iter().map(|(m, ps)| (m.as_str(), ps.len())).collect::<Vec<_>>(),
            "kmirror leads the group: computed the assignment");
        Ok(plan
            .into_iter()
            .map(|(member_id, partitions)| {
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (t, p) in partitions {
                    by_topic.entry(t).or_default().push(p);
                }
                let assignment = Assignment {
                    partitions: by_topic
                        .into_iter()
                        .map(|(topic, partitions)| TopicPartitions { topic, partitions })
                        .collect(),
                    user_data: None,
                };
                kp::sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(str_bytes(&member_id))
                    .with_assignment(assignment.encode(0))
            })
            .collect())
    }

    /// Leaves the group (best effort, for at most [`LEAVE_TIMEOUT`]), so
    /// that the others take kmirror's partitions at once rather than after
    /// the session timeout. A static member stays: its restart takes its
    /// partitions back without a rebalance.
    async fn leave(&mut self) {
        self.core.state.send_replace(None);
        if self.member_id.is_empty() {
            return;
        }
        if let Some(instance) = &self.core.config.group_instance_id {
            tracing::info!(group = %self.group(), group_instance_id = %instance, "static member: not leaving the group; a restart within session.timeout.ms takes the same partitions back");
            return;
        }
        if tokio::time::timeout(LEAVE_TIMEOUT, self.send_leave())
            .await
            .is_err()
        {
            tracing::debug!(group = %self.group(), "LeaveGroup did not complete in time; the coordinator drops kmirror when its session expires");
        }
    }

    async fn send_leave(&self) {
        let Ok(conn) = self.core.connection().await else {
            return;
        };
        let Ok(version) = MemberCore::version(&conn, ApiKey::LeaveGroup) else {
            return;
        };
        let mut request =
            kp::LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(&self.core.group)));
        request = if version >= 3 {
            request.with_members(vec![
                kp::leave_group_request::MemberIdentity::default()
                    .with_member_id(str_bytes(&self.member_id)),
            ])
        } else {
            request.with_member_id(str_bytes(&self.member_id))
        };
        match conn.send(&request).await {
            Ok(_) => tracing::info!(group = %self.group(), "left the consumer group"),
            Err(e) => tracing::debug!(group = %self.group(), error = %e, "LeaveGroup failed"),
        }
    }
}

/// What a Heartbeat carries.
#[derive(Clone)]
struct HeartbeatArgs {
    group: String,
    generation: i32,
    member_id: String,
    instance_id: Option<String>,
}

impl HeartbeatArgs {
    /// The Heartbeat for `conn` (the instance id from v3, Apache Kafka 2.3).
    fn request(&self, conn: &BrokerConnection) -> kp::HeartbeatRequest {
        let static_member = conn
            .versions()
            .version(ApiKey::Heartbeat)
            .is_ok_and(|v| v >= 3);
        kp::HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(str_bytes(&self.member_id))
            .with_group_instance_id(
                self.instance_id
                    .as_deref()
                    .filter(|_| static_member)
                    .map(str_bytes),
            )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use kafka_protocol::protocol::StrBytes;
    use tokio::sync::mpsc;

    use super::*;
    use crate::engine::config::GroupConfig;
    use crate::engine::group::{GroupEvent, Subscribed};
    use crate::engine::scripted::{self, Brokers, Reply, Request};

    const SRC: &str = "src:9092";

    fn tp(p: i32) -> TopicPartition {
        (Arc::from("t"), p)
    }

    /// A SyncGroup answer handing `partitions` of topic `t`.
    fn synced(r: &Request, partitions: &[i32]) -> Reply {
        let assignment = Assignment {
            partitions: vec![TopicPartitions {
                topic: "t".into(),
                partitions: partitions.to_vec(),
            }],
            user_data: None,
        };
        scripted::reply(
            &kp::SyncGroupResponse::default().with_assignment(assignment.encode(0)),
            r.version,
        )
    }

    /// A JoinGroup answer: generation `generation`, assignor `protocol`,
    /// kmirror the leader of a group of itself.
    fn joined(r: &Request, generation: i32, protocol: &str) -> Reply {
        let request: kp::JoinGroupRequest = r.decode();
        let member = if request.member_id.is_empty() {
            StrBytes::from_static_str("m-1")
        } else {
            request.member_id.clone()
        };
        let metadata = request
            .protocols
            .iter()
            .find(|p| p.name.as_str() == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default();
        scripted::reply(
            &kp::JoinGroupResponse::default()
                .with_generation_id(generation)
                .with_protocol_name(Some(StrBytes::from_string(protocol.to_owned())))
                .with_leader(member.clone())
                .with_member_id(member.clone())
                .with_members(vec![
                    kp::join_group_response::JoinGroupResponseMember::default()
                        .with_member_id(member)
                        .with_metadata(metadata),
                ]),
            r.version,
        )
    }

    /// A coordinator whose JoinGroup and SyncGroup answers are `join`'s
    /// and `sync`'s (given the round, from 0), and whose heartbeats
    /// answer REBALANCE_IN_PROGRESS once, on the first.
    fn coordinator(
        join: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
        sync: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> Arc<Brokers> {
        let joins = AtomicUsize::new(0);
        let syncs = AtomicUsize::new(0);
        let beats = AtomicUsize::new(0);
        Brokers::new(move |r| match r.api {
            ApiKey::Metadata => {
                scripted::metadata(r.version, &[(1, SRC)], &[("t", &[(0, 1), (1, 1)])])
            }
            ApiKey::FindCoordinator => scripted::find_coordinator(r, 1, SRC),
            ApiKey::JoinGroup => join(r, joins.fetch_add(1, Ordering::SeqCst)),
            ApiKey::SyncGroup => sync(r, syncs.fetch_add(1, Ordering::SeqCst)),
            ApiKey::Heartbeat => {
                let code = if beats.fetch_add(1, Ordering::SeqCst) == 0 {
                    ResponseError::RebalanceInProgress.code()
                } else {
                    0
                };
                scripted::reply(
                    &kp::HeartbeatResponse::default().with_error_code(code),
                    r.version,
                )
            }
            ApiKey::LeaveGroup => scripted::reply(&kp::LeaveGroupResponse::default(), r.version),
            other => panic!("unexpected {other:?}"),
        })
    }

    struct Running {
        events: mpsc::UnboundedReceiver<GroupEvent>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<Result<(), MirrorError>>,
    }

    async fn start(source: &Arc<Brokers>, assignors: Vec<Assignor>) -> Running {
        start_with(
            source,
            GroupConfig {
                assignors,
                ..GroupConfig::default()
            },
            false,
        )
        .await
    }

    /// Starts a member with `config`: the classic one, or with `spawned`
    /// whichever [`super::super::spawn`] picks.
    async fn start_with(source: &Arc<Brokers>, config: GroupConfig, spawned: bool) -> Running {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (state, _) = watch::channel(None);
        let subscribed: Subscribed = [("t".to_owned(), 2)].into_iter().collect();
        let (_subscribed_tx, subscribed_rx) = watch::channel(subscribed);
        let core = MemberCore {
            source: source.cluster(SRC).await,
            group: "g".into(),
            config,
            revoke_timeout: Duration::from_secs(30),
            state,
            events: events_tx,
            subscribed: subscribed_rx,
            owned: BTreeSet::new(),
        };
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let _keep = _subscribed_tx;
            if spawned {
                super::super::spawn(core, stop_rx)
                    .await
                    .unwrap_or_else(|e| Err(MirrorError::Internal(e.to_string())))
            } else {
                ClassicMember::new(core).run(stop_rx).await
            }
        });
        Running { events, stop, task }
    }

    /// group.protocol=consumer on a broker without KIP-848 (before Apache
    /// Kafka 4.0; the scripted broker offers no ConsumerGroupHeartbeat):
    /// the classic protocol is used, and the member joins.
    #[tokio::test(start_paused = true)]
    async fn the_consumer_protocol_falls_back_to_classic_on_an_older_broker() {
        let source = coordinator(|r, _| joined(r, 1, "range"), |r, _| synced(r, &[0]));
        let mut running = start_with(
            &source,
            GroupConfig {
                protocol: crate::engine::config::GroupProtocol::Consumer,
                ..GroupConfig::default()
            },
            true,
        )
        .await;
        assert_eq!(assigned(next(&mut running.events).await), [tp(0)].into());
        assert!(source.requests(ApiKey::ConsumerGroupHeartbeat).is_empty());
        assert_eq!(source.requests(ApiKey::JoinGroup).len(), 1);
        running.stop.send_replace(true);
        running.task.await.expect("no panic").expect("no error");
    }

    async fn next(events: &mut mpsc::UnboundedReceiver<GroupEvent>) -> GroupEvent {
        tokio::time::timeout(Duration::from_secs(120), events.recv())
            .await
            .expect("a group event in time")
            .expect("the member runs")
    }

    fn assigned(event: GroupEvent) -> BTreeSet<TopicPartition> {
        match event {
            GroupEvent::Assigned(partitions) => partitions,
            other => panic!("expected an assignment, got {other:?}"),
        }
    }

    /// The coordinator holds the JoinGroup (a rebalance waits for its
    /// members, up to the rebalance timeout): a stop ends the join at
    /// once, not when the request times out.
    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_a_join_the_coordinator_holds() {
        let source = coordinator(|_, _| Reply::Silent, |r, _| synced(r, &[]));
        let running = start(&source, vec![Assignor::Range]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(source.requests(ApiKey::JoinGroup).len(), 1);
        let stopped_at = tokio::time::Instant::now();
        running.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(20), running.task)
            .await
            .expect("the member ends after a stop during a join")
            .expect("no panic")
            .expect("a stop is no error");
        assert!(stopped_at.elapsed() < Duration::from_millis(100));
    }

    /// Eager assignors (range): when the group rebalances, every
    /// partition is given up, committed, before the JoinGroup, as Java's
    /// consumer does; the new assignment then starts.
    #[tokio::test(start_paused = true)]
    async fn an_eager_member_gives_everything_up_before_it_rejoins() {
        let source = coordinator(
            |r, _| joined(r, 1, "range"),
            |r, round| synced(r, if round == 0 { &[0, 1] } else { &[1] }),
        );
        let mut running = start(&source, vec![Assignor::Range]).await;
        assert_eq!(
            assigned(next(&mut running.events).await),
            [tp(0), tp(1)].into()
        );
        match next(&mut running.events).await {
            GroupEvent::Revoke {
                partitions,
                commit,
                done,
            } => {
                assert_eq!(partitions, [tp(0), tp(1)].into());
                assert!(commit, "offsets are committed before the handover");
                assert_eq!(
                    source.requests(ApiKey::JoinGroup).len(),
                    1,
                    "no JoinGroup before the partitions are given up"
                );
                done.send(()).expect("the member waits");
            }
            other => panic!("expected a revocation, got {other:?}"),
        }
        assert_eq!(assigned(next(&mut running.events).await), [tp(1)].into());
        assert_eq!(source.requests(ApiKey::JoinGroup).len(), 2);
        running.stop.send_replace(true);
        running.task.await.expect("no panic").expect("no error");
    }

    /// cooperative-sticky: through a rebalance kmirror keeps mirroring;
    /// it gives up only the partition that moves, after the new
    /// assignment, then rejoins so the partition can be handed over.
    #[tokio::test(start_paused = true)]
    async fn a_cooperative_member_gives_up_only_what_moves_then_rejoins() {
        let source = coordinator(
            |r, round| {
                let request: kp::JoinGroupRequest = r.decode();
                let ours = request
                    .protocols
                    .iter()
                    .find(|p| p.name.as_str() == "cooperative-sticky")
                    .expect("offers cooperative-sticky");
                let subscription = Subscription::decode(&ours.metadata).expect("decodes");
                let owned: usize = subscription
                    .owned_partitions
                    .iter()
                    .map(|t| t.partitions.len())
                    .sum();
                // Rejoining, kmirror still owns its partitions.
                assert_eq!(
                    owned,
                    if round == 1 {
                        2
                    } else if round == 2 {
                        1
                    } else {
                        0
                    }
                );
                joined(
                    r,
                    i32::try_from(round).unwrap_or(0) + 1,
                    "cooperative-sticky",
                )
            },
            |r, round| synced(r, if round == 0 { &[0, 1] } else { &[1] }),
        );
        let mut running = start(&source, vec![Assignor::CooperativeSticky]).await;
        assert_eq!(
            assigned(next(&mut running.events).await),
            [tp(0), tp(1)].into()
        );
        match next(&mut running.events).await {
            GroupEvent::Revoke {
                partitions, done, ..
            } => {
                assert_eq!(partitions, [tp(0)].into(), "only the partition that moves");
                assert_eq!(source.requests(ApiKey::JoinGroup).len(), 2);
                done.send(()).expect("the member waits");
            }
            other => panic!("expected a revocation, got {other:?}"),
        }
        assert!(assigned(next(&mut running.events).await).is_empty());
        // The follow-up rebalance: partition 1 stays, nothing new.
        assert!(assigned(next(&mut running.events).await).is_empty());
        assert_eq!(source.requests(ApiKey::JoinGroup).len(), 3);
        running.stop.send_replace(true);
        running.task.await.expect("no panic").expect("no error");
    }
}
