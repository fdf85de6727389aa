//! One simulated Kafka cluster: brokers that are up, down or hung; topics
//! whose partitions have replicas, a leader, a leader epoch and a log; one
//! group coordinator; producer ids. The operations are the changes real
//! clusters go through (a broker lost and back, an election, partitions
//! added); the answers to requests are in `handlers`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::log::PartitionLog;
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
    /// The protocol metadata it joined with.
    pub metadata: bytes::Bytes,
    /// Its assignment from the last SyncGroup.
    pub assignment: bytes::Bytes,
}

/// One consumer group.
#[derive(Debug, Clone, Default)]
pub struct SimGroup {
    /// Generation (0: never rebalanced).
    pub generation: i32,
    /// Members by id.
    pub members: BTreeMap<String, SimMember>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, not yet joined.
    pub pending: Vec<String>,
    /// The leader's member id.
    pub leader: String,
    /// The protocol chosen.
    pub protocol: String,
    /// Committed offsets.
    pub offsets: BTreeMap<(String, i32), i64>,
    /// The leader epoch committed with each offset (OffsetCommit v6+).
    pub epochs: BTreeMap<(String, i32), i32>,
}

impl SimGroup {
    /// Drops members whose session expired by `now`; a group that lost a
    /// member moves to a new generation, as the coordinator's rebalance
    /// does.
    pub fn expire(&mut self, now: Instant) {
        let before = self.members.len();
        self.members
            .retain(|_, m| now.duration_since(m.seen) < m.session_timeout);
        if self.members.len() != before {
            self.generation += 1;
            if !self.members.contains_key(&self.leader) {
                self.leader = self.members.keys().next().cloned().unwrap_or_default();
            }
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
            group.expire(now);
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
