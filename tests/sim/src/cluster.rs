//! One simulated Kafka cluster: brokers that are up, down or hung; topics
//! whose partitions have replicas, a leader, a leader epoch and a log; one
//! group coordinator; producer ids. The operations are the changes real
//! clusters go through (a broker lost and back, an election, partitions
//! added); the answers to requests are in `handlers`.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::log::{PartitionLog, code};
use crate::rng::SimRng;

/// How long a new leader's high-water mark trails its log end after an
/// election, until the followers have fetched (as in Apache Kafka, where it
/// is only raised once the ISR has the records).
pub const HWM_CATCH_UP: Duration = Duration::from_millis(300);

/// One broker.
#[derive(Debug, Clone)]
pub struct SimBroker {
    /// Node id.
    pub id: i32,
    /// `host:port` it is reached at.
    pub addr: String,
    /// Whether it runs (a down broker refuses connections).
    pub up: bool,
    /// Until when it answers nothing (a long GC pause, a hung disk).
    pub stalled_until: Option<Instant>,
    /// Bumped at every restart: connections of an older incarnation die.
    pub incarnation: u64,
}

/// One partition.
#[derive(Debug, Clone)]
pub struct SimPartition {
    /// Replica broker ids, the preferred leader first.
    pub replicas: Vec<i32>,
    /// The leader (-1: none, every replica is down).
    pub leader: i32,
    /// The leader epoch, bumped at every leader change.
    pub leader_epoch: i32,
    /// The log.
    pub log: PartitionLog,
    /// When the high-water mark catches up with the log end after an
    /// election.
    pub hwm_catch_up_at: Option<Instant>,
    /// Where each unclean election truncated the log, in order (the
    /// workload's records carry how many happened before them).
    pub truncations: Vec<i64>,
}

/// One topic.
#[derive(Debug, Clone)]
pub struct SimTopic {
    /// Topic id (Metadata v10+, Fetch v13+).
    pub id: [u8; 16],
    /// Partitions by index.
    pub partitions: Vec<SimPartition>,
    /// Topic configs set at creation.
    pub configs: BTreeMap<String, String>,
}

/// One group member.
#[derive(Debug, Clone)]
pub struct SimMember {
    /// Last heartbeat, join or sync.
    pub seen: Instant,
    /// Its session timeout.
    pub session_timeout: Duration,
    /// Its rebalance timeout (JoinGroup v1+; the session timeout before).
    pub rebalance_timeout: Duration,
    /// The protocols it joined with, in its order of preference, with
    /// their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Its assignment from the last SyncGroup.
    pub assignment: Bytes,
    /// Whether it joined during the rebalance in progress (its JoinGroup
    /// is held, which keeps its session alive, as Kafka's
    /// `shouldKeepAlive` does).
    pub joined: bool,
    /// The process that joined it (for the events log).
    pub client: String,
}

impl SimMember {
    /// Its metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A classic group's state, as Apache Kafka's `GroupCoordinator` has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    #[default]
    Empty,
    /// A rebalance started: JoinGroups are held until every member
    /// rejoined or the rebalance timeout passed.
    PreparingRebalance,
    /// The JoinGroups were answered; waiting for the leader's SyncGroup.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

/// A request the coordinator holds: it is answered once the group moves
/// on (see [`SimGroup::poll_join`] and [`SimGroup::poll_sync`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// A JoinGroup, answered when the rebalance completes.
    Join {
        /// The group.
        group: String,
        /// The member.
        member: String,
    },
    /// A follower's SyncGroup, answered when the leader's arrives.
    Sync {
        /// The group.
        group: String,
        /// The member.
        member: String,
        /// The generation it synced.
        generation: i32,
    },
}

/// The answer a completed rebalance keeps for a member's held JoinGroup.
#[derive(Debug, Clone)]
pub struct JoinAnswer {
    /// The new generation.
    pub generation: i32,
    /// The protocol chosen.
    pub protocol: String,
    /// The leader's member id.
    pub leader: String,
    /// Every member with its metadata (for the leader only).
    pub members: Vec<(String, Bytes)>,
}

/// What a held SyncGroup gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncAnswer {
    /// Still waiting for the leader.
    Wait,
    /// An error code.
    Error(i16),
    /// The member's assignment.
    Assignment(Bytes),
}

/// One consumer group, with the classic protocol's state machine
/// (Apache Kafka's `GroupCoordinator`, without static membership and the
/// initial rebalance delay).
#[derive(Debug, Clone, Default)]
pub struct SimGroup {
    /// Its id.
    pub id: String,
    /// The state.
    pub state: GroupState,
    /// Generation (0: never rebalanced).
    pub generation: i32,
    /// Members by id.
    pub members: BTreeMap<String, SimMember>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, not yet joined, with
    /// when they expire.
    pub pending: BTreeMap<String, Instant>,
    /// The leader's member id.
    pub leader: String,
    /// The protocol chosen.
    pub protocol: String,
    /// When the rebalance in progress gives up on the members that have
    /// not rejoined.
    pub rebalance_deadline: Option<Instant>,
    /// The answers of the last completed join, per member, until taken.
    pub join_answers: BTreeMap<String, JoinAnswer>,
    /// Members lost: expired sessions, members dropped for not rejoining
    /// in time, and heartbeats told their generation is outdated (each
    /// member gives its partitions up without a commit: duplicates are
    /// then allowed). A refused commit is not counted: it is retried.
    pub lost: u64,
    /// Rebalances completed.
    pub rebalances: u64,
    /// What happened to the group, for the events log (drained by the
    /// world).
    pub notes: Vec<String>,
    /// Committed offsets.
    pub offsets: BTreeMap<(String, i32), i64>,
    /// The leader epoch committed with each offset (OffsetCommit v6+).
    pub epochs: BTreeMap<(String, i32), i32>,
}

impl SimGroup {
    /// An empty group.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Self::default()
        }
    }

    /// Starts a rebalance (Kafka's `prepareRebalance`): held SyncGroups
    /// will be answered REBALANCE_IN_PROGRESS, every member must rejoin
    /// within the largest rebalance timeout.
    pub fn prepare_rebalance(&mut self, now: Instant, why: &str) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(10));
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + timeout);
        self.join_answers.clear();
        for m in self.members.values_mut() {
            m.joined = false;
            m.assignment = Bytes::new();
        }
        self.notes.push(format!(
            "group {}: rebalance from generation {} ({why})",
            self.id, self.generation
        ));
    }

    /// Removes a member (left, expired or not rejoined) and moves the
    /// group on as Kafka's `removeMemberAndUpdateGroup` does.
    pub fn remove(&mut self, member: &str, now: Instant, why: &str) {
        let Some(m) = self.members.remove(member) else {
            return;
        };
        self.join_answers.remove(member);
        self.notes.push(format!(
            "group {}: member {member} of {} removed ({why})",
            self.id, m.client
        ));
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, why);
                // With no member left to wait for, the join completes at
                // once (the group becomes Empty).
                self.maybe_complete_join(now);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Empty => {}
        }
    }

    /// Expires members whose session ran out (a member whose JoinGroup is
    /// held is kept alive), pending member ids, and completes a join whose
    /// members all rejoined or whose rebalance timeout passed.
    pub fn maintain(&mut self, now: Instant) {
        self.pending.retain(|_, until| now < *until);
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                let held = m.joined && self.state == GroupState::PreparingRebalance;
                !held && now.duration_since(m.seen) >= m.session_timeout
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.lost += 1;
            self.remove(&id, now, "session expired");
        }
        self.maybe_complete_join(now);
    }

    /// Completes the join (Kafka's `onCompleteJoin`) if every member
    /// rejoined (and no member id handed out is still to come) or the
    /// rebalance timeout passed: members that did not rejoin are removed,
    /// the generation moves on, every held JoinGroup gets its answer.
    pub fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all = self.members.values().all(|m| m.joined) && self.pending.is_empty();
        let timed_out = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !all && !timed_out {
            return;
        }
        let late: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| !m.joined)
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            self.lost += 1;
            if let Some(m) = self.members.remove(&id) {
                self.notes.push(format!(
                    "group {}: member {id} of {} removed (did not rejoin within the rebalance timeout)",
                    self.id, m.client
                ));
            }
        }
        self.rebalance_deadline = None;
        self.generation += 1;
        self.rebalances += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol.clear();
            self.leader.clear();
            self.notes.push(format!(
                "group {}: generation {}, empty",
                self.id, self.generation
            ));
            return;
        }
        self.protocol = self.select_protocol().unwrap_or_default();
        if !self.members.contains_key(&self.leader) {
            self.leader = self.members.keys().next().cloned().unwrap_or_default();
        }
        self.state = GroupState::CompletingRebalance;
        let members: Vec<(String, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.metadata(&self.protocol)))
            .collect();
        let answers: Vec<(String, JoinAnswer)> = self
            .members
            .keys()
            .map(|id| (id.clone(), self.answer(id, &members)))
            .collect();
        self.join_answers = answers.into_iter().collect();
        for m in self.members.values_mut() {
            m.joined = false;
            m.seen = now;
        }
        let clients: Vec<String> = self
            .members
            .iter()
            .map(|(id, m)| format!("{id} of {}", m.client))
            .collect();
        self.notes.push(format!(
            "group {}: generation {}, protocol {}, leader {}, members [{}]",
            self.id,
            self.generation,
            self.protocol,
            self.leader,
            clients.join(", ")
        ));
    }

    fn answer(&self, member: &str, members: &[(String, Bytes)]) -> JoinAnswer {
        JoinAnswer {
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: if member == self.leader {
                members.to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// The current generation's JoinGroup answer for `member` (a known
    /// member rejoining with unchanged protocols after the join
    /// completed).
    pub fn current_answer(&self, member: &str) -> JoinAnswer {
        let members: Vec<(String, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.metadata(&self.protocol)))
            .collect();
        self.answer(member, &members)
    }

    /// The protocols every member supports.
    fn candidates(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        let rest: Vec<&SimMember> = members.collect();
        first
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| {
                rest.iter()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect()
    }

    /// Whether a member with `protocols` may join (Kafka's
    /// `supportsProtocols`): some protocol in common with every member.
    pub fn supports(&self, protocols: &[(String, Bytes)]) -> bool {
        if protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        let candidates = self.candidates();
        protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    /// Kafka's `selectProtocol`: every member votes for its first
    /// protocol all support; the most votes win (ties: the earlier in the
    /// first member's order).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n))
                && let Some(v) = votes.iter_mut().find(|(c, _)| c == name)
            {
                v.1 += 1;
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c)
    }

    /// A held JoinGroup: its answer once the join completed, an error
    /// code, or `None` to keep holding it.
    pub fn poll_join(&mut self, member: &str, now: Instant) -> Option<Result<JoinAnswer, i16>> {
        self.maintain(now);
        if let Some(answer) = self.join_answers.remove(member) {
            return Some(Ok(answer));
        }
        if !self.members.contains_key(member) {
            return Some(Err(code::UNKNOWN_MEMBER_ID));
        }
        if self.state == GroupState::PreparingRebalance {
            return None;
        }
        // Its answer went to a later JoinGroup of the same member.
        Some(Err(code::REBALANCE_IN_PROGRESS))
    }

    /// A held SyncGroup of `member` for `generation`.
    pub fn poll_sync(&mut self, member: &str, generation: i32, now: Instant) -> SyncAnswer {
        self.maintain(now);
        let Some(m) = self.members.get_mut(member) else {
            return SyncAnswer::Error(code::UNKNOWN_MEMBER_ID);
        };
        if generation != self.generation {
            return SyncAnswer::Error(code::ILLEGAL_GENERATION);
        }
        match self.state {
            GroupState::CompletingRebalance => {
                m.seen = now;
                SyncAnswer::Wait
            }
            GroupState::Stable => SyncAnswer::Assignment(m.assignment.clone()),
            GroupState::PreparingRebalance => SyncAnswer::Error(code::REBALANCE_IN_PROGRESS),
            GroupState::Empty => SyncAnswer::Error(code::UNKNOWN_MEMBER_ID),
        }
    }
}

/// One cluster (see the module documentation).
#[derive(Debug, Clone)]
pub struct SimCluster {
    /// "source" or "destination".
    pub name: &'static str,
    /// Brokers by id.
    pub brokers: BTreeMap<i32, SimBroker>,
    /// Topics by name.
    pub topics: BTreeMap<String, SimTopic>,
    /// Groups by id.
    pub groups: BTreeMap<String, SimGroup>,
    /// The broker coordinating every group (the leader of the offsets
    /// topic's partition).
    pub coordinator: i32,
    /// Producer ids handed out, with their current epoch.
    pub producers: BTreeMap<i64, i16>,
    /// Next producer id.
    pub next_producer_id: i64,
    /// Next member id suffix.
    pub next_member: u64,
    rng: SimRng,
}

impl SimCluster {
    /// A cluster of `brokers` brokers reached at `{name}-{id}:9092`.
    pub fn new(name: &'static str, brokers: i32, rng: SimRng) -> Self {
        let brokers = (1..=brokers)
            .map(|id| {
                (
                    id,
                    SimBroker {
                        id,
                        addr: format!("{name}-{id}:9092"),
                        up: true,
                        stalled_until: None,
                        incarnation: 0,
                    },
                )
            })
            .collect();
        Self {
            name,
            brokers,
            topics: BTreeMap::new(),
            groups: BTreeMap::new(),
            coordinator: 1,
            producers: BTreeMap::new(),
            next_producer_id: 1000,
            next_member: 1,
            rng,
        }
    }

    /// `host:port` of every broker, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> Vec<String> {
        self.brokers.values().map(|b| b.addr.clone()).collect()
    }

    /// The broker at `addr`.
    pub fn broker_at(&self, addr: &str) -> Option<&SimBroker> {
        self.brokers.values().find(|b| b.addr == addr)
    }

    fn live(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| b.up)
            .map(|b| b.id)
            .collect()
    }

    /// Creates a topic with `partitions` partitions over every broker
    /// (replication factor = broker count), leaders spread round robin.
    pub fn create_topic(&mut self, name: &str, partitions: i32, configs: BTreeMap<String, String>) {
        let mut id = [0u8; 16];
        for chunk in id.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_be_bytes()[..chunk.len()]);
        }
        let mut topic = SimTopic {
            id,
            partitions: Vec::new(),
            configs,
        };
        self.grow(&mut topic, partitions);
        self.topics.insert(name.to_owned(), topic);
    }

    fn grow(&self, topic: &mut SimTopic, to: i32) {
        let ids: Vec<i32> = self.brokers.keys().copied().collect();
        let n = ids.len();
        let live = self.live();
        while (topic.partitions.len() as i32) < to {
            let p = topic.partitions.len();
            let replicas: Vec<i32> = (0..n)
                .filter_map(|i| ids.get((p + i) % n).copied())
                .collect();
            let leader = replicas
                .iter()
                .copied()
                .find(|r| live.contains(r))
                .unwrap_or(-1);
            topic.partitions.push(SimPartition {
                replicas,
                leader,
                leader_epoch: 0,
                log: PartitionLog::default(),
                hwm_catch_up_at: None,
                truncations: Vec::new(),
            });
        }
    }

    /// Adds partitions to a topic (CreatePartitions, or an operator).
    pub fn add_partitions(&mut self, name: &str, to: i32) -> bool {
        let Some(mut topic) = self.topics.remove(name) else {
            return false;
        };
        let grew = to > topic.partitions.len() as i32;
        self.grow(&mut topic, to);
        self.topics.insert(name.to_owned(), topic);
        grew
    }

    /// Moves a partition's leadership to `to` (a live replica): a new
    /// leader epoch, and a high-water mark that trails the log end until
    /// the followers caught up.
    pub fn elect(&mut self, topic: &str, partition: i32, to: i32, now: Instant) {
        let Some(p) = self.topics.get_mut(topic).and_then(|t| {
            t.partitions
                .get_mut(usize::try_from(partition).unwrap_or(usize::MAX))
        }) else {
            return;
        };
        if p.leader == to {
            return;
        }
        p.leader = to;
        p.leader_epoch += 1;
        if to >= 0 {
            let end = p.log.log_end();
            let hwm = p.log.high_watermark();
            let behind = self.rng.below(u64::try_from(end - hwm).unwrap_or(0) + 3) as i64;
            p.log.set_high_watermark(end - behind);
            p.hwm_catch_up_at = Some(now + HWM_CATCH_UP);
        }
    }

    /// An unclean election: another live replica, which lacks the last
    /// 1 to 10 records, becomes leader; the log is truncated (at a batch
    /// boundary) and the leader epoch bumped. Returns where it was cut.
    pub fn unclean_election(&mut self, topic: &str, partition: i32, now: Instant) -> Option<i64> {
        let to = self.other_replica(topic, partition)?;
        let lose = i64::try_from(self.rng.between(1, 10)).unwrap_or(1);
        let p = self.partition_mut(topic, partition)?;
        if p.log.log_end() <= p.log.log_start() {
            return None;
        }
        let cut = p
            .log
            .truncate((p.log.log_end() - lose).max(p.log.log_start()));
        p.truncations.push(cut);
        p.leader = to;
        p.leader_epoch += 1;
        p.hwm_catch_up_at = Some(now + HWM_CATCH_UP);
        Some(cut)
    }

    /// Raises lagging high-water marks whose followers have caught up.
    pub fn tick(&mut self, now: Instant) {
        for topic in self.topics.values_mut() {
            for p in &mut topic.partitions {
                if p.hwm_catch_up_at.is_some_and(|at| now >= at) {
                    p.hwm_catch_up_at = None;
                    let end = p.log.log_end();
                    p.log.set_high_watermark(end);
                }
            }
        }
        for group in self.groups.values_mut() {
            group.maintain(now);
        }
    }

    /// A broker stops (crash or controlled shutdown): its connections die,
    /// its partitions elect another live replica, the coordinator moves.
    pub fn broker_down(&mut self, id: i32, now: Instant) {
        if let Some(b) = self.brokers.get_mut(&id) {
            b.up = false;
            b.incarnation += 1;
        }
        let live = self.live();
        let moves = self.elections(|p| {
            (p.leader == id).then(|| {
                p.replicas
                    .iter()
                    .copied()
                    .find(|r| live.contains(r))
                    .unwrap_or(-1)
            })
        });
        self.elect_all(moves, now);
        if self.coordinator == id {
            self.coordinator = live.first().copied().unwrap_or(-1);
        }
    }

    /// A broker starts again: partitions with no leader elect it; the
    /// coordinator comes back if there was none.
    pub fn broker_up(&mut self, id: i32, now: Instant) {
        if let Some(b) = self.brokers.get_mut(&id) {
            b.up = true;
            b.stalled_until = None;
        }
        let moves = self.elections(|p| (p.leader < 0 && p.replicas.contains(&id)).then_some(id));
        self.elect_all(moves, now);
        if self.coordinator < 0 {
            self.coordinator = id;
        }
    }

    /// Every partition whose leader is not its preferred replica moves
    /// back to it when that one is up (auto.leader.rebalance).
    pub fn preferred_election(&mut self, now: Instant) {
        let live = self.live();
        let moves = self.elections(|p| {
            let preferred = *p.replicas.first()?;
            (p.leader != preferred && live.contains(&preferred)).then_some(preferred)
        });
        self.elect_all(moves, now);
    }

    /// Each partition for which `new_leader` names a leader to elect, with
    /// that leader.
    fn elections(
        &self,
        new_leader: impl Fn(&SimPartition) -> Option<i32>,
    ) -> Vec<(String, i32, i32)> {
        self.topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        Some((name.clone(), i32::try_from(i).ok()?, new_leader(p)?))
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn elect_all(&mut self, moves: Vec<(String, i32, i32)>, now: Instant) {
        for (topic, partition, to) in moves {
            self.elect(&topic, partition, to, now);
        }
    }

    /// Moves the group coordinator to another live broker.
    pub fn move_coordinator(&mut self) {
        let live = self.live();
        let others: Vec<i32> = live
            .iter()
            .copied()
            .filter(|b| *b != self.coordinator)
            .collect();
        if let Some(&to) = self.rng.pick(&others) {
            self.coordinator = to;
        }
    }

    /// A random live replica other than the leader, for an election.
    pub fn other_replica(&mut self, topic: &str, partition: i32) -> Option<i32> {
        let live = self.live();
        let p = self
            .topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)?;
        let candidates: Vec<i32> = p
            .replicas
            .iter()
            .copied()
            .filter(|r| *r != p.leader && live.contains(r))
            .collect();
        self.rng.pick(&candidates).copied()
    }

    /// The partition, if it exists.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&SimPartition> {
        self.topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)
    }

    /// The partition, if it exists.
    pub fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut SimPartition> {
        self.topics
            .get_mut(topic)?
            .partitions
            .get_mut(usize::try_from(partition).ok()?)
    }

    /// A new producer id at epoch 0.
    pub fn new_producer(&mut self) -> (i64, i16) {
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        self.producers.insert(id, 0);
        (id, 0)
    }

    /// A new member id for `group`.
    pub fn new_member_id(&mut self, client_id: &str) -> String {
        let n = self.next_member;
        self.next_member += 1;
        format!("{client_id}-{n:08}")
    }
}
