//! Both simulated clusters and what the simulation knows about the run:
//! the invariants checked as requests arrive, the counters the end checks
//! need, and a digest of every request, which shows that a seed replays
//! exactly.

use std::collections::BTreeMap;

use bytes::Bytes;
use kmirror_protocol::conformance::ConformanceChecker;

use crate::cluster::SimCluster;
use crate::offset_map::MapState;
use crate::rng::SimRng;

/// Which cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// Where kmirror reads (and commits).
    Source,
    /// Where kmirror writes.
    Destination,
}

/// How often connection-level faults strike, per mille of requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultRates {
    /// The connection is cut before the request is read.
    pub cut_before: u64,
    /// The request is applied, then the connection is cut: its outcome is
    /// unknown to kmirror.
    pub cut_after: u64,
    /// The answer comes late (up to twice `request.timeout.ms`).
    pub delay: u64,
    /// The answer is written twice (a broken peer; the client must drop
    /// the connection, never match it to another request).
    pub duplicate: u64,
    /// A Fetch or Produce answer asks the client to back off
    /// (`throttle_time_ms`, KIP-219).
    pub throttle: u64,
}

/// What the destination holds of one source partition.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Every source offset below this is on the destination.
    pub prefix: i64,
    /// Offsets above `prefix` already on the destination.
    pub above: std::collections::BTreeSet<i64>,
    /// Records written again.
    pub duplicates: u64,
    /// Records copied before an unclean election replaced them on the
    /// source (kept on the destination; not counted as delivered).
    pub diverged: u64,
    /// How far the destination held this partition when the last unclean
    /// election cut it: kmirror may still commit up to there until its
    /// next fetch shows the truncation (those records were acknowledged).
    pub before_cut: i64,
    /// Per destination partition, the highest source offset it received
    /// (records of one source partition must arrive in order in each).
    pub last_in: BTreeMap<i32, i64>,
    /// Who first wrote each offset: the Produce request (its number) and
    /// the producer id.
    pub written_by: BTreeMap<i64, (u64, i64)>,
}

impl Seen {
    fn deliver(&mut self, offset: i64) -> bool {
        if offset < self.prefix || !self.above.insert(offset) {
            return false;
        }
        while self.above.remove(&self.prefix) {
            self.prefix += 1;
        }
        true
    }
}

/// Both clusters and the run's observations.
#[derive(Debug)]
pub struct World {
    /// The source cluster.
    pub source: SimCluster,
    /// The destination cluster.
    pub destination: SimCluster,
    /// Connection-level fault rates.
    pub rates: FaultRates,
    /// Randomness for connection-level faults.
    pub rng: SimRng,
    /// What the destination holds, per (topic, partition).
    pub seen: BTreeMap<(String, i32), Seen>,
    /// Every broken invariant, in order.
    pub violations: Vec<String>,
    /// Producer ids the destination handed out (one per stream and start;
    /// any more replaced a producer whose state was lost, after which
    /// duplicates are possible).
    pub producer_ids: u64,
    /// Produce requests applied whose answer kmirror never got.
    pub unknown_outcomes: u64,
    /// Times a kmirror process was killed (kill -9).
    pub mirror_restarts: u64,
    /// Times a kmirror process started (first starts and restarts).
    pub process_starts: u64,
    /// kmirror instance ids handed out (one per start).
    pub instances: u64,
    /// The kmirror processes running now (by index).
    pub running: std::collections::BTreeSet<usize>,
    /// Requests served.
    pub requests: u64,
    /// Produce requests with a hole in a partition's sequence (refused by
    /// the broker, retried by kmirror) after a leader change.
    pub sequence_gaps: u64,
    /// Holes in a sequence with the same leader as at the partition's last
    /// write (kmirror wrote a batch before an earlier, lost one was
    /// resent; refused and retried, so nothing is lost).
    pub sequence_gaps_same_leader: u64,
    /// The leader epoch of each destination partition's last write.
    pub appended_in_epoch: BTreeMap<(String, i32), i32>,
    /// What happened, in order (faults, for a failing seed's report).
    pub events: Vec<String>,
    /// kmirror processes killed (their connections are dead).
    pub killed: std::collections::BTreeSet<u64>,
    /// When the run started (simulated time).
    pub started: tokio::time::Instant,
    /// JoinGroups and SyncGroups the coordinator held longer than the
    /// client's `request.timeout.ms`.
    pub held_past_timeout: u64,
    /// The number of the request being served (see `requests`).
    pub current_request: u64,
    /// Produce requests applied whose answer kmirror did not get (the
    /// connection was cut or closed, or the answer came after
    /// `request.timeout.ms`): kmirror cannot know they were written.
    pub undelivered: std::collections::BTreeSet<u64>,
    /// Each duplicate: the request that first wrote the record, its
    /// producer id, and the producer id that wrote it again.
    pub repeats: Vec<(u64, i64, i64)>,
    /// The Produce rules checker (`kmirror_protocol::conformance`).
    pub checker: ConformanceChecker,
    /// kmirror's offset map on the destination, when the run keeps one.
    pub map: Option<MapState>,
    digest: u64,
}

impl World {
    /// Two clusters of `brokers` brokers each.
    pub fn new(brokers: i32, rates: FaultRates, rng: &mut SimRng) -> Self {
        Self {
            source: SimCluster::new("source", brokers, rng.fork(1)),
            destination: SimCluster::new("destination", brokers, rng.fork(2)),
            rates,
            rng: rng.fork(3),
            seen: BTreeMap::new(),
            violations: Vec::new(),
            producer_ids: 0,
            unknown_outcomes: 0,
            mirror_restarts: 0,
            process_starts: 0,
            instances: 0,
            running: Default::default(),
            requests: 0,
            sequence_gaps: 0,
            appended_in_epoch: BTreeMap::new(),
            sequence_gaps_same_leader: 0,
            events: Vec::new(),
            killed: Default::default(),
            started: tokio::time::Instant::now(),
            current_request: 0,
            held_past_timeout: 0,
            undelivered: Default::default(),
            repeats: Vec::new(),
            checker: ConformanceChecker::new(),
            map: None,
            digest: 0xcbf2_9ce4_8422_2325,
        }
    }

    /// The cluster on `side`.
    pub fn cluster(&mut self, side: Side) -> &mut SimCluster {
        match side {
            Side::Source => &mut self.source,
            Side::Destination => &mut self.destination,
        }
    }

    /// Folds `bytes` into the run's digest (FNV-1a).
    pub fn record(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.digest = (self.digest ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The digest of everything recorded so far.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Notes a broken invariant.
    pub fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// Notes an event for the report.
    pub fn event(&mut self, now_ms: u128, what: String) {
        self.events.push(format!("{now_ms:>7} ms  {what}"));
    }

    /// The destination appended `batch` (one batch, offsets assigned) to
    /// `topic`/`partition`: records of each source partition must arrive
    /// in order in each destination partition; repeats are counted.
    /// The offset map topic's batches go to [`MapState::on_append`]
    /// instead: they are not mirrored records.
    pub fn on_destination_append(&mut self, topic: &str, partition: i32, batch: &Bytes) {
        if let Some(map) = self.map.as_mut().filter(|m| m.topic == topic) {
            if let Err(e) = map.on_append(partition, batch) {
                self.violation(e);
            }
            return;
        }
        let mut buf = batch.clone();
        let request = self.current_request;
        let records = match kafka_protocol::records::RecordBatchDecoder::decode(&mut buf) {
            Ok(set) => set.records,
            Err(e) => {
                self.violation(format!(
                    "{topic}-{partition}: undecodable batch on the destination: {e}"
                ));
                return;
            }
        };
        for record in records {
            let Some((source_partition, offset, generation)) =
                crate::workload::parse_value(record.value.as_ref())
            else {
                self.violation(format!(
                    "{topic}-{partition}: a record without the workload's value"
                ));
                return;
            };
            // A record a later unclean election truncated away is no
            // longer the source's record at that offset.
            let replaced = self
                .source
                .partition(topic, source_partition)
                .and_then(|p| p.truncations.get(generation..))
                .is_some_and(|later| later.iter().any(|cut| offset >= *cut));
            let seen = self
                .seen
                .entry((topic.to_owned(), source_partition))
                .or_default();
            if replaced {
                // Acknowledged all the same: kmirror may commit past it
                // until its next fetch shows the truncation.
                seen.diverged += 1;
                seen.before_cut = seen.before_cut.max(offset + 1);
                continue;
            }
            let new = seen.deliver(offset);
            if new {
                seen.written_by
                    .insert(offset, (request, record.producer_id));
            } else {
                seen.duplicates += 1;
                if let Some(&(first, by)) = seen.written_by.get(&offset) {
                    self.repeats.push((first, by, record.producer_id));
                }
            }
            let last = seen.last_in.entry(partition).or_insert(-1);
            if offset > *last {
                *last = offset;
            } else if new {
                let last = *last;
                self.violation(format!(
                    "{topic}: source partition {source_partition}'s offset {offset} reached destination partition {partition} after its offset {last}: out of order"
                ));
            }
        }
    }

    /// An unclean election cut the source partition at `cut`: what the
    /// destination holds from there on is no longer the source's.
    pub fn on_source_truncated(&mut self, topic: &str, partition: i32, cut: i64) {
        let seen = self.seen.entry((topic.to_owned(), partition)).or_default();
        seen.before_cut = seen.before_cut.max(seen.prefix);
        if seen.prefix > cut {
            seen.prefix = cut;
        }
        seen.above.retain(|o| *o < cut);
        for last in seen.last_in.values_mut() {
            *last = (*last).min(cut - 1);
        }
    }

    /// kmirror committed `offset` for a source partition: every record below
    /// it must be on the destination, and (with the offset map on) the map
    /// must account for it ([`MapState::on_commit`]).
    pub fn on_commit(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(map) = self.map.as_mut() {
            let log_start = self
                .source
                .partition(topic, partition)
                .map_or(0, |p| p.log.log_start());
            // Routed by key (kmirror keeps no map): the destination topic
            // has another partition count, or this partition's records
            // went to another destination partition.
            let count = |c: &SimCluster| c.topics.get(topic).map(|t| t.partitions.len());
            let by_key = count(&self.source) != count(&self.destination)
                || self
                    .seen
                    .get(&(topic.to_owned(), partition))
                    .is_some_and(|s| s.last_in.keys().any(|d| *d != partition));
            if let Err(e) = map.on_commit(topic, partition, offset, log_start, by_key) {
                self.violations.push(e);
            }
        }
        let prefix = self
            .seen
            .get(&(topic.to_owned(), partition))
            .map_or(0, |s| s.prefix.max(s.before_cut));
        if offset > prefix {
            self.violation(format!(
                "{topic}-{partition}: offset {offset} committed on the source while the destination holds only offsets below {prefix}"
            ));
        }
    }

    /// Moves what the groups noted (joins, leaves, rebalances) to the
    /// events log.
    pub fn drain_group_notes(&mut self) {
        let ms = self.started.elapsed().as_millis();
        let notes: Vec<String> = self
            .source
            .groups
            .values_mut()
            .flat_map(|g| std::mem::take(&mut g.notes))
            .collect();
        for note in notes {
            self.event(ms, note);
        }
    }

    /// Group members lost (expired, dropped, fenced) over every group.
    pub fn members_lost(&self) -> u64 {
        self.source.groups.values().map(|g| g.lost).sum()
    }

    /// Records copied before an unclean election replaced them.
    pub fn diverged(&self) -> u64 {
        self.seen.values().map(|s| s.diverged).sum()
    }

    /// Duplicates written by another producer than the first write's, whose
    /// answer that producer never got: a partition handed over (or
    /// stopped) with a batch of unknown outcome, which its next owner
    /// cannot deduplicate (at-least-once).
    pub fn handed_over_unknown(&self) -> u64 {
        self.repeats
            .iter()
            .filter(|(first, by, again)| by != again && self.undelivered.contains(first))
            .count() as u64
    }

    /// Duplicated records over every partition.
    pub fn duplicates(&self) -> u64 {
        self.seen.values().map(|s| s.duplicates).sum()
    }
}
