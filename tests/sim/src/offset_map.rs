//! kmirror's offset map as the simulation sees it: the map topic's records
//! read as the destination appends them, and the two invariants about it.
//!
//! - **Mapping before commit** ([`MapState::on_commit`]): when the source
//!   coordinator accepts a commit of offset `c` for a partition, the map
//!   records already appended on the destination account for every source
//!   offset below `c` (`OffsetIndex::complete_to >= c`). The one exception
//!   is a partition's fresh start: a group with no committed offset starts
//!   at the log start and commits it before copying anything (the ledger
//!   commits every position it has not committed yet), with nothing to map.
//! - **Exact translation at the end** ([`MapState::check_translations`]):
//!   once everything is copied and committed, every committed offset seen
//!   during the run and a few positions drawn from the seed translate to a
//!   destination offset whose record is the copy of the first source record
//!   at or after the position (its current version: an unclean election
//!   replaces records, and the value's generation tells which version a
//!   copy is), and a consumer reading the destination from there reads
//!   every later source record, in order, and exactly `repeated` records
//!   more.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;
use kafka_protocol::messages::ProduceRequest;
use kmirror::translation::{Derivation, MapRecord, OffsetIndex, TranslateError};

use crate::cluster::SimCluster;
use crate::rng::SimRng;
use crate::world::Seen;

/// What the offset map checks counted in one run (summed over a sweep).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapCounts {
    /// Runs with the offset map on.
    pub runs: u64,
    /// Map records appended on the destination (duplicates of a retried
    /// write included).
    pub records: u64,
    /// Accepted commits checked against the map.
    pub commits_checked: u64,
    /// ... of them a partition's fresh start (nothing copied, nothing to
    /// map).
    pub commits_at_start: u64,
    /// Commits of partitions routed by key (no map kept for them).
    pub commits_by_key: u64,
    /// Positions translated at the end.
    pub translations: u64,
    /// ... with `repeated == 0`, checked record by record.
    pub exact: u64,
    /// ... with `repeated > 0`, the extra records counted.
    pub repeated: u64,
    /// ... reordered (a batch written again after later ones): every
    /// record read, from the earliest copy.
    pub reordered: u64,
    /// ... whose `repeated` says more extra records than a reader gets
    /// (after a lost member wrote the map last).
    pub repeated_overstated: u64,
    /// Positions refused, by the error's kind (legitimate ones only: any
    /// other is a violation).
    pub refused: BTreeMap<String, u64>,
    /// Committed offsets past the source's final end (committed before an
    /// unclean election cut the log below them): not translated.
    pub beyond_end: u64,
    /// Partitions not translated because their records were routed by key.
    pub partitions_by_key: u64,
    /// Partitions not translated because the group's final committed
    /// offset is not the source's end (an unclean election cut the log
    /// below it and nothing was written since, so kmirror has not seen
    /// the cut).
    pub partitions_unsettled: u64,
    /// Translations after which the destination holds records no map
    /// record accounts for, past the map's last copy: batches a group
    /// member that lost its partitions wrote after it gave them up (see
    /// [`MapState::check_translations`]). `repeated` cannot count them.
    pub unmapped_tail: u64,
}

impl MapCounts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &MapCounts) {
        self.runs += other.runs;
        self.records += other.records;
        self.commits_checked += other.commits_checked;
        self.commits_at_start += other.commits_at_start;
        self.commits_by_key += other.commits_by_key;
        self.translations += other.translations;
        self.exact += other.exact;
        self.repeated += other.repeated;
        self.reordered += other.reordered;
        self.repeated_overstated += other.repeated_overstated;
        for (k, v) in &other.refused {
            *self.refused.entry(k.clone()).or_default() += v;
        }
        self.beyond_end += other.beyond_end;
        self.partitions_by_key += other.partitions_by_key;
        self.partitions_unsettled += other.partitions_unsettled;
        self.unmapped_tail += other.unmapped_tail;
    }
}

impl fmt::Display for MapCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "offset map on in {} runs: {} map records, {} commits checked ({} fresh starts, {} routed by key), \
             {} translations checked: {} exact, {} with repeated > 0 ({} overstated), {} reordered, refused {:?}, {} followed by unmapped records of a lost member; \
             {} committed offsets beyond the final end, {} partitions routed by key, {} partitions whose truncation kmirror has not seen",
            self.runs,
            self.records,
            self.commits_checked,
            self.commits_at_start,
            self.commits_by_key,
            self.translations,
            self.exact,
            self.repeated,
            self.repeated_overstated,
            self.reordered,
            self.refused,
            self.unmapped_tail,
            self.beyond_end,
            self.partitions_by_key,
            self.partitions_unsettled
        )
    }
}

/// The offset map topic on the destination, read as it is appended.
#[derive(Debug, Clone)]
pub struct MapState {
    /// The map topic's name.
    pub topic: String,
    /// The map records appended so far, applied in log order.
    pub index: OffsetIndex,
    /// The same records as written, for a failing seed's report.
    pub log: Vec<MapRecord>,
    /// Every offset the source coordinator accepted as committed, per
    /// source partition.
    pub commits: BTreeMap<(String, i32), BTreeSet<i64>>,
    /// What the checks counted.
    pub counts: MapCounts,
    /// Session ids in the order they first appeared (see
    /// [`MapState::digest_form`]).
    sessions: BTreeMap<i64, u64>,
}

/// The name of a refusal's kind, for the counts.
fn refusal_kind(e: &TranslateError) -> &'static str {
    match e {
        TranslateError::NotMapped => "NotMapped",
        TranslateError::NotCopiedYet { .. } => "NotCopiedYet",
        TranslateError::BeforeMap { .. } => "BeforeMap",
        TranslateError::Unaccounted { .. } => "Unaccounted",
        TranslateError::UnknownPlacement { .. } => "UnknownPlacement",
        TranslateError::NothingCopied => "NothingCopied",
        _ => "other",
    }
}

/// One destination record: its offset, and the source partition, offset
/// and generation its workload value names.
type DestinationRecord = (i64, i32, i64, usize);

/// Every record of a destination partition's log, in order.
fn destination_records(
    c: &SimCluster,
    topic: &str,
    partition: i32,
) -> Result<Vec<DestinationRecord>, String> {
    let Some(p) = c.partition(topic, partition) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for batch in p.log.batches() {
        let mut buf = batch.bytes.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
            .map_err(|e| format!("{topic}-{partition}: undecodable destination batch: {e}"))?;
        for record in set.records {
            let parsed = crate::workload::parse_value(record.value.as_ref()).ok_or_else(|| {
                format!(
                    "{topic}-{partition}: destination offset {} holds no workload value",
                    record.offset
                )
            })?;
            out.push((record.offset, parsed.0, parsed.1, parsed.2));
        }
    }
    Ok(out)
}

impl MapState {
    /// The map kept in `topic`.
    pub fn new(topic: String) -> Self {
        Self {
            topic,
            index: OffsetIndex::new(),
            log: Vec::new(),
            sessions: BTreeMap::new(),
            commits: BTreeMap::new(),
            counts: MapCounts {
                runs: 1,
                ..MapCounts::default()
            },
        }
    }

    /// What the run's digest records of a Produce request to the map
    /// topic instead of its bytes (`None`: another request, recorded as
    /// is): its acks, partitions and map records, each session id
    /// replaced by its rank of appearance and without the batch's
    /// timestamps. kmirror draws session ids at random and stamps the
    /// records with the wall clock; neither changes what it does, and a
    /// seed must replay to the same digest.
    pub fn digest_form(&mut self, request: &ProduceRequest) -> Option<Vec<u8>> {
        if request.topic_data.is_empty()
            || request
                .topic_data
                .iter()
                .any(|t| t.name.0.as_str() != self.topic)
        {
            return None;
        }
        let mut out = b"offset map".to_vec();
        out.extend_from_slice(&request.acks.to_be_bytes());
        for t in &request.topic_data {
            for p in &t.partition_data {
                out.extend_from_slice(&p.index.to_be_bytes());
                let mut buf = p.records.clone()?;
                let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).ok()?;
                for record in set.records {
                    let r = MapRecord::decode(record.key.as_ref()?, record.value.as_ref()?).ok()?;
                    let next = self.sessions.len() as u64;
                    let rank = *self.sessions.entry(r.session).or_insert(next);
                    out.extend_from_slice(r.topic.as_bytes());
                    for v in [
                        i64::from(r.partition),
                        rank as i64,
                        r.from,
                        r.covered_from,
                        r.complete_to,
                    ] {
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                    for run in &r.runs {
                        for v in [
                            run.source_start,
                            run.destination_start.unwrap_or(-1),
                            run.records,
                        ] {
                            out.extend_from_slice(&v.to_be_bytes());
                        }
                    }
                }
            }
        }
        Some(out)
    }

    /// The destination appended `batch` to partition `partition` of the
    /// map topic: its records are read into the index. Anything but a
    /// well-formed map record in partition 0 is a violation.
    pub fn on_append(&mut self, partition: i32, batch: &Bytes) -> Result<(), String> {
        if partition != 0 {
            return Err(format!(
                "{}: kmirror wrote to partition {partition}; the map has one partition",
                self.topic
            ));
        }
        let mut buf = batch.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
            .map_err(|e| format!("{}: undecodable batch: {e}", self.topic))?;
        for record in set.records {
            let (Some(key), Some(value)) = (record.key.as_ref(), record.value.as_ref()) else {
                return Err(format!(
                    "{}: a record without a key or a value at offset {}",
                    self.topic, record.offset
                ));
            };
            let decoded = MapRecord::decode(key, value).map_err(|e| {
                format!(
                    "{}: offset {} is not a map record: {e}",
                    self.topic, record.offset
                )
            })?;
            self.log.push(decoded.clone());
            self.index.apply(decoded);
            self.counts.records += 1;
        }
        Ok(())
    }

    /// The source coordinator accepted a commit of `offset` for
    /// `topic`-`partition` (see the module documentation). `log_start` is
    /// the source partition's log start; `by_key` whether its records are
    /// routed by key (kmirror keeps no map for them).
    pub fn on_commit(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        log_start: i64,
        by_key: bool,
    ) -> Result<(), String> {
        self.commits
            .entry((topic.to_owned(), partition))
            .or_default()
            .insert(offset);
        self.counts.commits_checked += 1;
        // The committing session's account, whichever session the index
        // takes for the latest (a late first record can change that).
        let complete_to = self.index.furthest_complete_to(topic, partition);
        if complete_to.is_some_and(|c| c >= offset) {
            return Ok(());
        }
        if complete_to.is_none() && offset == log_start {
            self.counts.commits_at_start += 1;
            return Ok(());
        }
        if by_key {
            self.counts.commits_by_key += 1;
            return Ok(());
        }
        Err(format!(
            "{topic}-{partition}: offset {offset} committed on the source while the offset map accounts only up to {} (mapping before commit); the map's records of the partition: {}",
            complete_to.map_or_else(|| "nothing".to_owned(), |c| c.to_string()),
            self.describe(topic, partition)
        ))
    }

    /// The map's records of one partition, as written (for a report).
    fn describe(&self, topic: &str, partition: i32) -> String {
        let mut out = String::new();
        for r in self
            .log
            .iter()
            .filter(|r| r.topic == topic && r.partition == partition)
        {
            out.push_str(&format!(
                "[session {:x} from {} complete_to {} runs {:?}] ",
                r.session,
                r.from,
                r.complete_to,
                r.runs
                    .iter()
                    .map(|run| (run.source_start, run.destination_start, run.records))
                    .collect::<Vec<_>>()
            ));
        }
        out
    }

    /// The end check (see the module documentation), once every source
    /// partition is copied and committed to its end. `seen` is what the
    /// destination holds per source partition; `committed` the group's
    /// final offsets; `rng` draws the extra positions.
    ///
    /// A group member dropped by the coordinator gives its partitions up
    /// at once, but still sends the batches it had already sent once with
    /// an unknown outcome (their sequence numbers must stay contiguous):
    /// they may land after the new owner's copies, and nobody maps them.
    /// Extra records past the map's last copy are therefore counted apart
    /// (`unmapped_tail`), and only allowed when `members_lost`; extra
    /// records within the map's span must be exactly `repeated`.
    pub fn check_translations(
        &mut self,
        source: &SimCluster,
        destination: &SimCluster,
        seen: &BTreeMap<(String, i32), Seen>,
        committed: &BTreeMap<(String, i32), i64>,
        members_lost: bool,
        rng: &mut SimRng,
    ) -> Vec<String> {
        let mut violations = Vec::new();
        for (name, topic) in &source.topics {
            for (i, p) in topic.partitions.iter().enumerate() {
                let partition = i32::try_from(i).unwrap_or(i32::MAX);
                let key = (name.clone(), partition);
                // Routed by key, as `kmirror offsets` sees it: the
                // destination topic has another partition count.
                let by_key = destination
                    .topics
                    .get(name)
                    .is_some_and(|d| d.partitions.len() != topic.partitions.len())
                    || seen
                        .get(&key)
                        .is_some_and(|s| s.last_in.keys().any(|d| *d != partition));
                if by_key {
                    self.counts.partitions_by_key += 1;
                    continue;
                }
                let (start, end) = (p.log.log_start(), p.log.log_end());
                if committed.get(&key).is_some_and(|c| *c != end) {
                    self.counts.partitions_unsettled += 1;
                    continue;
                }
                // One past the last destination offset the map places.
                let mapped_end = self
                    .log
                    .iter()
                    .filter(|r| r.topic == *name && r.partition == partition)
                    .flat_map(|r| r.runs.iter().filter_map(|run| run.destination_end()))
                    .max();
                let mut positions: BTreeSet<i64> =
                    self.commits.get(&key).cloned().unwrap_or_default();
                for _ in 0..4 {
                    let span = u64::try_from(end - start + 1).unwrap_or(1);
                    positions.insert(start + i64::try_from(rng.below(span)).unwrap_or(0));
                }
                let records = match destination_records(destination, name, partition) {
                    Ok(r) => r,
                    Err(e) => {
                        violations.push(e);
                        continue;
                    }
                };
                let destination_end = destination
                    .partition(name, partition)
                    .map_or(0, |d| d.log.log_end());
                let current = |source_partition: i32, offset: i64, generation: usize| {
                    source_partition == partition
                        && (start..end).contains(&offset)
                        && !p
                            .truncations
                            .get(generation..)
                            .is_some_and(|later| later.iter().any(|cut| offset >= *cut))
                };
                for o in positions {
                    if o > end || o < start {
                        self.counts.beyond_end += 1;
                        continue;
                    }
                    self.counts.translations += 1;
                    let at = format!("{name}-{partition} at source offset {o}");
                    let t = match self.index.translate(name, partition, o) {
                        Ok(t) => t,
                        Err(e) => {
                            let kind = refusal_kind(&e);
                            let legitimate = match e {
                                TranslateError::NotMapped | TranslateError::NothingCopied => {
                                    start == end
                                }
                                // A truncation starts a session at the cut,
                                // after the old one.
                                TranslateError::BeforeMap { .. }
                                | TranslateError::Unaccounted { .. } => {
                                    !p.truncations.is_empty()
                                        || self.index.has_late_sessions(name, partition)
                                }
                                // A late first record makes an older
                                // session look newer: refused, not wrong.
                                TranslateError::NotCopiedYet { .. } => {
                                    self.index.has_late_sessions(name, partition)
                                }
                                _ => false,
                            };
                            if legitimate {
                                *self.counts.refused.entry(kind.to_owned()).or_default() += 1;
                            } else {
                                violations.push(format!(
                                    "{at}: no translation once everything is copied and committed (source log {start}..{end}, destination end {destination_end}): {kind}: {e}"
                                ));
                            }
                            continue;
                        }
                    };
                    let x = t.destination_offset;
                    let mut wrong = Vec::new();
                    if !(0..=destination_end).contains(&x) {
                        wrong.push(format!(
                            "outside the destination log (end {destination_end})"
                        ));
                    }
                    match t.how {
                        Derivation::Copied { record, .. } if record != o || o >= end => wrong
                            .push(format!(
                                "names source record {record}, the first after the position is {}",
                                if o < end {
                                    o.to_string()
                                } else {
                                    "none".to_owned()
                                }
                            )),
                        Derivation::AfterLastCopy if o < end => wrong.push(format!(
                            "says nothing after the position is copied, but source records {o}..{end} are"
                        )),
                        _ => {}
                    }
                    let from = records.partition_point(|r| r.0 < x);
                    let read = records.get(from..).unwrap_or_default();
                    if o < end {
                        match read.first() {
                            Some(&(offset, sp, so, g)) if offset == x && so == o && current(sp, so, g) => {}
                            // Reordered: the earliest copy of a later record.
                            Some(&(offset, sp, so, g))
                                if t.reordered && offset == x && so > o && current(sp, so, g) => {}
                            first => wrong.push(format!(
                                "the destination record there is {first:?} (destination offset, source partition, offset, generation), not the copy of source record {o}"
                            )),
                        }
                    }
                    // What a consumer starting there reads: each current
                    // source record from the position on, first time seen,
                    // counts; anything else is an extra record.
                    let mut next = o;
                    let mut extra = 0i64;
                    let mut tail = 0i64;
                    let mut out_of_order = None;
                    let mut counted = BTreeSet::new();
                    for &(offset, sp, so, g) in read {
                        if so >= o && current(sp, so, g) && counted.insert(so) {
                            if so != next && out_of_order.is_none() {
                                out_of_order = Some((offset, so, next));
                            }
                            next = so + 1;
                        } else if mapped_end.is_none_or(|m| offset >= m) {
                            tail += 1;
                        } else {
                            extra += 1;
                        }
                    }
                    let missing = (end - o) - i64::try_from(counted.len()).unwrap_or(0);
                    if missing != 0 {
                        wrong.push(format!(
                            "reading from there misses {missing} of source records {o}..{end}"
                        ));
                    }
                    // With extra copies in between, the order a consumer
                    // reads is that of the copies (`repeated` says so).
                    if let Some((offset, got, want)) =
                        out_of_order.filter(|_| t.repeated == 0 && !t.reordered)
                    {
                        wrong.push(format!(
                            "reading from there gives source record {got} at destination offset {offset} where {want} was next"
                        ));
                    }
                    // More extras said than read: a member that lost its
                    // partitions (its stop's commit refused) went on
                    // writing the map after the new owner, and the index
                    // took its session for the latest. Conservative (never
                    // exact when it is not), counted; fewer is never
                    // allowed.
                    if extra < t.repeated && members_lost {
                        self.counts.repeated_overstated += 1;
                    } else if extra != t.repeated {
                        wrong.push(format!(
                            "reading from there gives {extra} extra records, the translation says {}",
                            t.repeated
                        ));
                    }
                    if tail > 0 {
                        if members_lost {
                            self.counts.unmapped_tail += 1;
                        } else {
                            wrong.push(format!(
                                "reading from there gives {tail} extra records past the map's last copy (destination offset {mapped_end:?}), although no group member was lost"
                            ));
                        }
                    }
                    if wrong.is_empty() {
                        if t.reordered {
                            self.counts.reordered += 1;
                        } else if t.repeated == 0 {
                            self.counts.exact += 1;
                        } else {
                            self.counts.repeated += 1;
                        }
                    } else {
                        violations.push(format!(
                            "{at}: translated to {t:?} ({t}), wrong: {} (source log {start}..{end}, truncations {:?}, destination end {destination_end}); the map's records of the partition: {}; the destination partition's records: {}",
                            wrong.join("; "),
                            p.truncations,
                            self.describe(name, partition),
                            describe_records(&records)
                        ));
                    }
                }
            }
        }
        violations
    }
}

/// A destination partition's records as stretches of consecutive copies:
/// `destination offsets: source offsets (generation)`.
fn describe_records(records: &[DestinationRecord]) -> String {
    let mut out = Vec::new();
    let mut run: Option<(i64, i64, i32, i64, i64, usize)> = None;
    for &(d, sp, so, g) in records {
        match run {
            Some((d0, d1, p, s0, s1, generation))
                if d == d1 + 1 && sp == p && so == s1 + 1 && g == generation =>
            {
                run = Some((d0, d, p, s0, so, generation));
            }
            _ => {
                if let Some((d0, d1, p, s0, s1, generation)) = run {
                    out.push(format!("{d0}..={d1}: {p}:{s0}..={s1} (g{generation})"));
                }
                run = Some((d, d, sp, so, so, g));
            }
        }
    }
    if let Some((d0, d1, p, s0, s1, generation)) = run {
        out.push(format!("{d0}..={d1}: {p}:{s0}..={s1} (g{generation})"));
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmirror::translation::OffsetRun;

    fn state_with(complete_to: i64) -> MapState {
        let mut state = MapState::new("map".into());
        state.index.apply(MapRecord {
            topic: "t".into(),
            partition: 0,
            session: 7,
            from: 0,
            covered_from: 0,
            complete_to,
            runs: vec![OffsetRun {
                source_start: 0,
                destination_start: Some(0),
                records: complete_to,
            }],
        });
        state
    }

    #[test]
    fn a_commit_needs_the_map_to_account_for_it() {
        let mut state = state_with(10);
        assert!(state.on_commit("t", 0, 10, 0, false).is_ok());
        assert!(state.on_commit("t", 0, 11, 0, false).is_err());
        // Routed by key: no map is kept.
        assert!(state.on_commit("t", 0, 11, 0, true).is_ok());
        assert_eq!(state.counts.commits_checked, 3);
        assert_eq!(state.counts.commits_by_key, 1);
        assert_eq!(
            state.commits.get(&("t".to_owned(), 0)),
            Some(&BTreeSet::from([10, 11]))
        );
    }

    #[test]
    fn only_a_fresh_start_commits_without_a_map() {
        let mut state = MapState::new("map".into());
        assert!(state.on_commit("t", 1, 0, 0, false).is_ok());
        assert_eq!(state.counts.commits_at_start, 1);
        assert!(state.on_commit("t", 1, 3, 0, false).is_err());
    }

    #[test]
    fn the_digest_form_drops_session_ids_and_timestamps() {
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let request = |session: i64, timestamp: i64| {
            let map = MapRecord {
                topic: "t".into(),
                partition: 0,
                session,
                from: 0,
                covered_from: 0,
                complete_to: 3,
                runs: Vec::new(),
            };
            let record = Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: -1,
                timestamp,
                key: Some(Bytes::from(map.encode_key().unwrap())),
                value: Some(Bytes::from(map.encode_value())),
                headers: Default::default(),
            };
            let mut buf = bytes::BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                &[record],
                &RecordEncodeOptions {
                    version: 2,
                    compression: Compression::None,
                },
            )
            .unwrap();
            let mut r = ProduceRequest::default();
            r.acks = -1;
            let mut p = kafka_protocol::messages::produce_request::PartitionProduceData::default();
            p.records = Some(buf.freeze());
            let mut t = kafka_protocol::messages::produce_request::TopicProduceData::default();
            t.name = kafka_protocol::messages::TopicName("map".into());
            t.partition_data = vec![p];
            r.topic_data = vec![t];
            r
        };
        let (mut a, mut b) = (MapState::new("map".into()), MapState::new("map".into()));
        let first = a.digest_form(&request(111, 5)).unwrap();
        assert_eq!(b.digest_form(&request(222, 9)), Some(first.clone()));
        // A second session is told apart from the first.
        assert_ne!(a.digest_form(&request(333, 5)), Some(first));
        let mut other = request(1, 1);
        other.topic_data[0].name = kafka_protocol::messages::TopicName("t".into());
        assert_eq!(a.digest_form(&other), None);
    }
}
