//! What to do with one partition of one Fetch response.
//!
//! [`plan_partition`] walks the partition's record bytes once and returns a
//! [`FetchedPartitionPlan`]: an ordered list of [`PlanStep`]s whose source
//! offset ranges chain, with no gap and no overlap, from the fetch position
//! to [`FetchedPartitionPlan::next_position`], where the next fetch starts.
//! Each step says what becomes of its range: a batch forwarded untouched
//! ([`PlanStep::Passthrough`]), a batch or an old message set entry for the
//! slow path ([`PlanStep::SlowPath`]), or offsets deliberately not produced
//! ([`PlanStep::Skip`]): control batches, aborted transactions, empty
//! batches, and the holes compaction left between batches. Because the
//! chain has no gaps, feeding the steps in order to the partition's
//! [`OffsetLedger`](crate::OffsetLedger) (`dispatched` for passthrough and
//! slow-path steps, `skipped` for the others) never fails, and the commit
//! point reaches `next_position` once the destination acknowledged
//! everything.
//!
//! This module owns the fetch-side rules of kafka-wire-rules.md: the CRC
//! check (`check.crcs`), the READ_COMMITTED filter, records below the fetch
//! position, compaction holes, and the truncated last batch, including a
//! batch larger than the whole fetch ([`FetchPlanError::BatchLargerThanFetch`]),
//! which must make the engine raise its fetch size rather than fetch the
//! same bytes forever. Which batches qualify for passthrough is
//! [`classify`]'s decision, in the protocol crate.
//!
//! It must never copy, decompress or decode a passthrough payload: a
//! passthrough step holds a [`RecordBatchView`], a slice of the fetched
//! buffer, and the work done on it here is reading its 61-byte header and,
//! with `check.crcs`, one CRC-32C pass. (The only records ever decoded here
//! are single control records, by [`AbortedTransactionFilter`], to find an
//! ABORT marker.) It does no I/O, reads no clock and keeps nothing between
//! fetches: the engine passes the position in and takes `next_position`
//! out.

use std::fmt;
use std::ops::{AddAssign, Range};

use bytes::Bytes;
use kmirror_protocol::RecordError;
use kmirror_protocol::messages::fetch::FetchPartition;
use kmirror_protocol::record::{
    self, AbortedTransactionFilter, Disposition, LOG_OVERHEAD, LogEntry, PassthroughPolicy,
    RecordBatchView, RecordBatches, SlowPathReason, classify,
};

/// The smallest log entry there is: a v0 message with a null key and a
/// null value (offset, size, CRC, magic, attributes, two lengths).
const MIN_ENTRY_LEN: usize = 26;

/// Which records a fetch returns: Kafka's consumer setting
/// `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IsolationLevel {
    /// `read_uncommitted`: records of aborted transactions are mirrored too;
    /// control batches are still dropped.
    ReadUncommitted,
    /// `read_committed` (kmirror's default): the broker returns records up
    /// to the last stable offset only, and batches of aborted transactions
    /// are dropped.
    #[default]
    ReadCommitted,
}

impl IsolationLevel {
    /// The value of the Fetch request's `isolation_level` field.
    pub fn wire_value(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

impl fmt::Display for IsolationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IsolationLevel::ReadUncommitted => "read_uncommitted",
            IsolationLevel::ReadCommitted => "read_committed",
        })
    }
}

/// The consumer-side settings that shape a plan.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchSettings {
    /// Whether aborted transactions are filtered out.
    pub isolation: IsolationLevel,
    /// Whether every fetched v2 batch's CRC-32C is verified (`check.crcs`,
    /// default true as in Java's consumer). Without the check a batch
    /// damaged on the source would pass through with a freshly computed,
    /// valid CRC. The plan checks every batch it skips or sends to the slow
    /// path; a passthrough batch is checked by
    /// [`record::rewrite_verified`] in the same pass over the payload that
    /// seals the rewritten batch (see [`PlanStep::Passthrough`]). Old
    /// message sets (v0/v1) are always checked, by the slow path that reads
    /// them.
    pub check_crcs: bool,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            isolation: IsolationLevel::ReadCommitted,
            check_crcs: true,
        }
    }
}

impl FetchSettings {
    /// Sets the isolation level.
    pub fn with_isolation(mut self, isolation: IsolationLevel) -> Self {
        self.isolation = isolation;
        self
    }

    /// Turns the CRC check on or off.
    pub fn with_check_crcs(mut self, check_crcs: bool) -> Self {
        self.check_crcs = check_crcs;
        self
    }
}

/// Why a step's range is not produced.
///
/// There is no "below the fetch position" step: a batch wholly below the
/// position covers no offset of the chain, so it yields no step (it is
/// counted in [`PlanCounters::skipped_batches`]); a batch partly below it
/// yields a step whose range starts at the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipCause {
    /// A transaction marker; brokers refuse them from clients.
    ControlBatch,
    /// A batch of an aborted transaction (READ_COMMITTED only).
    Aborted,
    /// A batch without records, left by compaction; its offsets are still
    /// taken.
    Empty,
    /// Offsets no fetched batch holds: removed by compaction between two
    /// batches, or before the first batch of the response.
    Gap,
}

/// One contiguous range of source offsets and what becomes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanStep {
    /// Forward `batch` untouched: [`record::rewrite_verified`] gives it a
    /// new header in front of the same payload slice. With `check_crcs` its
    /// source CRC is NOT yet verified: use `rewrite_verified` (one CRC pass
    /// for both the check and the new CRC), not `rewrite_for_produce`.
    /// `range` is the whole batch.
    Passthrough {
        /// The source offsets the batch holds.
        range: Range<i64>,
        /// The fetched batch, a slice of the response.
        batch: RecordBatchView,
    },
    /// Decode `entry` and re-batch exactly its records whose offsets lie in
    /// `range` (for a batch starting before the fetch position, or an old
    /// message set entry, that drops the records below `range.start`).
    SlowPath {
        /// The source offsets this step accounts for. For a v0/v1 entry it
        /// runs from the end of the previous step to the entry's offset
        /// (for a compressed wrapper, the offset of its last inner
        /// message): the inner offsets are only known once the slow path
        /// reads the entry with [`record::legacy::read_legacy_entry`].
        range: Range<i64>,
        /// The fetched batch or message set entry.
        entry: LogEntry,
        /// Why the entry cannot pass through.
        reason: SlowPathReason,
    },
    /// Produce nothing for `range`; record it as skipped.
    Skip {
        /// The source offsets not produced.
        range: Range<i64>,
        /// Why.
        reason: SkipCause,
    },
}

impl PlanStep {
    /// The source offsets this step accounts for: never empty.
    pub fn range(&self) -> &Range<i64> {
        match self {
            PlanStep::Passthrough { range, .. }
            | PlanStep::SlowPath { range, .. }
            | PlanStep::Skip { range, .. } => range,
        }
    }

    /// Whether the step produces to the destination (passthrough or slow
    /// path) rather than skipping its range.
    pub fn produces(&self) -> bool {
        !matches!(self, PlanStep::Skip { .. })
    }

    /// Bytes of the fetched entry the step carries (0 for a skip): what it
    /// holds of the fetch buffer until the destination acknowledges it.
    pub fn fetched_bytes(&self) -> usize {
        match self {
            PlanStep::Passthrough { batch, .. } => batch.as_bytes().len(),
            PlanStep::SlowPath { entry, .. } => entry_len(entry),
            PlanStep::Skip { .. } => 0,
        }
    }
}

/// What one plan did, for metrics. Entries are v2 batches or v0/v1 message
/// set entries; bytes are their fetched sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanCounters {
    /// Batches forwarded untouched.
    pub passthrough_batches: u64,
    /// Their bytes.
    pub passthrough_bytes: u64,
    /// Entries sent to the slow path.
    pub slow_path_batches: u64,
    /// Their bytes.
    pub slow_path_bytes: u64,
    /// Batches not mirrored: control, aborted, empty, or wholly below the
    /// fetch position.
    pub skipped_batches: u64,
    /// Their bytes.
    pub skipped_bytes: u64,
    /// Offsets in compaction holes between (or before) fetched batches.
    pub gap_offsets: u64,
}

impl AddAssign for PlanCounters {
    fn add_assign(&mut self, other: Self) {
        self.passthrough_batches += other.passthrough_batches;
        self.passthrough_bytes += other.passthrough_bytes;
        self.slow_path_batches += other.slow_path_batches;
        self.slow_path_bytes += other.slow_path_bytes;
        self.skipped_batches += other.skipped_batches;
        self.skipped_bytes += other.skipped_bytes;
        self.gap_offsets += other.gap_offsets;
    }
}

/// Why a partition's fetched data cannot be planned.
///
/// [`FetchPlanError::BatchLargerThanFetch`] is a setting of ours to change;
/// every other variant means the source broker sent data that is damaged
/// or invalid. Each names the source offset; the caller adds topic,
/// partition and broker.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum FetchPlanError {
    /// A batch's stored CRC-32C does not match its bytes.
    #[error(
        "corrupt record batch at source offset {offset}: stored CRC-32C {stored:#010x}, \
         computed {computed:#010x}; the batch was damaged on the source broker or in transit"
    )]
    CorruptBatch {
        /// The batch's base offset.
        offset: i64,
        /// The CRC stored in the batch header.
        stored: u32,
        /// The CRC computed over the batch.
        computed: u32,
    },
    /// The record bytes do not form valid batches or message set entries.
    #[error("unreadable record data at source offset {offset}: {source}")]
    Malformed {
        /// The entry's offset as read from the wire, or where the plan
        /// stood if the entry had none.
        offset: i64,
        /// What was wrong.
        #[source]
        source: RecordError,
    },
    /// An entry whose offsets overlap those of an entry before it: a broker
    /// returns entries in strictly increasing offset order.
    #[error(
        "record data at source offset {offset} overlaps offsets already read (up to {expected}); \
         the source broker returned entries out of order"
    )]
    OutOfOrder {
        /// The entry's first offset (for a v0/v1 entry, its offset).
        offset: i64,
        /// The first offset not covered by the entries before it.
        expected: i64,
    },
    /// No complete batch arrived, only the start of one: the batch at the
    /// fetch position is larger than the partition's fetch size. Fetching
    /// again with the same size would return the same bytes forever; the
    /// engine must raise `max.partition.fetch.bytes` for this partition to
    /// at least `needed_at_least` (Kafka's own consumer has the same rule),
    /// or stop with this error if it may not.
    #[error(
        "the record batch at source offset {position} does not fit in one fetch: it needs at \
         least {needed_at_least} bytes; raise max.partition.fetch.bytes (and fetch.max.bytes) \
         to at least {needed_at_least}"
    )]
    BatchLargerThanFetch {
        /// The fetch position.
        position: i64,
        /// The batch's size as its header states it (a lower bound if even
        /// the header was cut).
        needed_at_least: usize,
    },
}

/// The plan for one partition of one Fetch response (see the module
/// documentation).
///
/// Invariant: the steps' ranges are non-empty and chain from
/// [`FetchedPartitionPlan::position`] to
/// [`FetchedPartitionPlan::next_position`]; with no step the two are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartitionPlan {
    position: i64,
    steps: Vec<PlanStep>,
    next_position: i64,
    truncated_bytes: usize,
    counters: PlanCounters,
}

impl FetchedPartitionPlan {
    /// The fetch position the plan starts at.
    pub fn position(&self) -> i64 {
        self.position
    }

    /// The steps, in offset order.
    pub fn steps(&self) -> &[PlanStep] {
        &self.steps
    }

    /// The steps, in offset order, for the engine to consume.
    pub fn into_steps(self) -> Vec<PlanStep> {
        self.steps
    }

    /// Whether the plan has no step (nothing at or after the position
    /// arrived).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Where the next fetch of this partition starts: the end of the last
    /// complete batch, or the position unchanged if none arrived.
    pub fn next_position(&self) -> i64 {
        self.next_position
    }

    /// Bytes of an incomplete last batch that the broker cut off at its
    /// size limit; the next fetch returns that batch whole.
    pub fn truncated_bytes(&self) -> usize {
        self.truncated_bytes
    }

    /// What the plan did, for metrics.
    pub fn counters(&self) -> PlanCounters {
        self.counters
    }
}

/// Plans one partition of a Fetch response: its `records`, the filter of
/// its aborted transactions ([`FetchPartition::aborted_filter`]), the
/// passthrough policy, whose `fetch_position` is the fetch position (the
/// next source offset needed), and the consumer settings.
///
/// Under [`IsolationLevel::ReadUncommitted`] the filter is not consulted.
pub fn plan_partition(
    records: Bytes,
    aborted: AbortedTransactionFilter,
    policy: &PassthroughPolicy,
    settings: FetchSettings,
) -> Result<FetchedPartitionPlan, FetchPlanError> {
    let mut planner = Planner {
        policy,
        settings,
        aborted,
        position: policy.fetch_position,
        cursor: policy.fetch_position,
        steps: Vec::new(),
        counters: PlanCounters::default(),
    };
    // A second handle on the same buffer, not a copy: the truncated tail is
    // read from it at the end.
    let mut entries = RecordBatches::new(records.clone());
    for entry in entries.by_ref() {
        match entry.map_err(|e| planner.unreadable(e))? {
            LogEntry::Batch(view) => planner.batch(view)?,
            LogEntry::Legacy {
                offset,
                magic,
                bytes,
            } => planner.legacy(offset, magic, bytes)?,
        }
    }
    let truncated_bytes = entries.truncated_bytes();
    planner.finish(&records, truncated_bytes)
}

/// [`plan_partition`] for a partition of a decoded Fetch response. The
/// caller has checked its `error_code`; absent records plan as none.
pub fn plan_fetch_partition(
    partition: &FetchPartition,
    policy: &PassthroughPolicy,
    settings: FetchSettings,
) -> Result<FetchedPartitionPlan, FetchPlanError> {
    plan_partition(
        partition.records.clone().unwrap_or_default(),
        partition.aborted_filter(),
        policy,
        settings,
    )
}

/// The walk over one partition's entries.
struct Planner<'p> {
    policy: &'p PassthroughPolicy,
    settings: FetchSettings,
    aborted: AbortedTransactionFilter,
    position: i64,
    /// End of the last step: where the next step must start.
    cursor: i64,
    steps: Vec<PlanStep>,
    counters: PlanCounters,
}

impl Planner<'_> {
    fn batch(&mut self, view: RecordBatchView) -> Result<(), FetchPlanError> {
        let header = *view.header();
        let base = header.base_offset;
        // Control batches are read by the abort filter below: check them
        // before trusting their records.
        if self.settings.check_crcs && header.is_control() {
            view.verify_crc().map_err(|e| self.unreadable(e))?;
        }
        let end = header.next_offset();
        if end <= base {
            return Err(FetchPlanError::Malformed {
                offset: base,
                source: RecordError::Malformed {
                    base_offset: base,
                    reason: format!(
                        "lastOffsetDelta {} gives the batch no offsets",
                        header.last_offset_delta
                    ),
                },
            });
        }
        // The filter must see every batch in order, control batches and
        // batches below the position included: an ABORT marker closes its
        // producer's aborted transaction.
        let aborted = self.settings.isolation == IsolationLevel::ReadCommitted
            && self.aborted.is_aborted(&view);
        let size = view.as_bytes().len();
        let Some(start) = self.start_of(base, end, true)? else {
            self.below_position(size);
            return Ok(());
        };
        let range = start..end;
        let disposition = classify(&header, self.policy, aborted);
        // Everything but passthrough is checked here; a passthrough batch is
        // checked by `rewrite_verified` in its single CRC pass.
        if self.settings.check_crcs
            && !header.is_control()
            && disposition != Disposition::Passthrough
        {
            view.verify_crc().map_err(|e| self.unreadable(e))?;
        }
        let step = match disposition {
            // The fast path: the view is moved into the step, its payload
            // neither read nor copied.
            Disposition::Passthrough => PlanStep::Passthrough { range, batch: view },
            Disposition::SlowPath(reason) => PlanStep::SlowPath {
                range,
                entry: LogEntry::Batch(view),
                reason,
            },
            Disposition::Skip(reason) => {
                let reason = match reason {
                    record::SkipReason::ControlBatch => SkipCause::ControlBatch,
                    record::SkipReason::Aborted => SkipCause::Aborted,
                    record::SkipReason::Empty => SkipCause::Empty,
                    // Not reached: `start_of` tested the same condition.
                    record::SkipReason::BelowPosition => {
                        self.below_position(size);
                        return Ok(());
                    }
                };
                PlanStep::Skip { range, reason }
            }
        };
        self.push(step, size);
        Ok(())
    }

    fn legacy(&mut self, offset: i64, magic: i8, bytes: Bytes) -> Result<(), FetchPlanError> {
        let size = bytes.len();
        let end = offset.saturating_add(1);
        // A wrapper's first inner offset is unknown until the slow path
        // decompresses it, so the range starts where the last step ended
        // and no hole is recorded before it.
        let Some(start) = self.start_of(offset, end, false)? else {
            self.below_position(size);
            return Ok(());
        };
        let step = PlanStep::SlowPath {
            range: start..end,
            entry: LogEntry::Legacy {
                offset,
                magic,
                bytes,
            },
            reason: SlowPathReason::LegacyFormat { magic },
        };
        self.push(step, size);
        Ok(())
    }

    /// Where the range of an entry holding offsets `first..end` starts:
    /// `None` if the entry lies wholly below the position. With
    /// `record_holes`, offsets between the last step and `first` are
    /// recorded as a [`SkipCause::Gap`] step first.
    fn start_of(
        &mut self,
        first: i64,
        end: i64,
        record_holes: bool,
    ) -> Result<Option<i64>, FetchPlanError> {
        if self.cursor > self.position && first < self.cursor {
            return Err(FetchPlanError::OutOfOrder {
                offset: first,
                expected: self.cursor,
            });
        }
        if end <= self.position {
            return Ok(None);
        }
        if record_holes && first > self.cursor {
            let hole = self.cursor..first;
            self.counters.gap_offsets += offsets_in(&hole);
            self.push(
                PlanStep::Skip {
                    range: hole,
                    reason: SkipCause::Gap,
                },
                0,
            );
        }
        Ok(Some(self.cursor))
    }

    fn push(&mut self, step: PlanStep, size: usize) {
        let bytes = as_u64(size);
        let c = &mut self.counters;
        match &step {
            PlanStep::Passthrough { .. } => {
                c.passthrough_batches += 1;
                c.passthrough_bytes += bytes;
            }
            PlanStep::SlowPath { .. } => {
                c.slow_path_batches += 1;
                c.slow_path_bytes += bytes;
            }
            PlanStep::Skip {
                reason: SkipCause::Gap,
                ..
            } => {}
            PlanStep::Skip { .. } => {
                c.skipped_batches += 1;
                c.skipped_bytes += bytes;
            }
        }
        self.cursor = step.range().end;
        self.steps.push(step);
    }

    fn below_position(&mut self, size: usize) {
        self.counters.skipped_batches += 1;
        self.counters.skipped_bytes += as_u64(size);
    }

    fn unreadable(&self, error: RecordError) -> FetchPlanError {
        let stated = match &error {
            RecordError::CrcMismatch {
                base_offset,
                stored,
                computed,
            } => {
                return FetchPlanError::CorruptBatch {
                    offset: *base_offset,
                    stored: *stored,
                    computed: *computed,
                };
            }
            RecordError::Malformed { base_offset, .. }
            | RecordError::UnknownMagic { base_offset, .. }
            | RecordError::Compression { base_offset, .. } => Some(*base_offset),
            _ => None,
        };
        FetchPlanError::Malformed {
            offset: stated.filter(|o| *o >= 0).unwrap_or(self.cursor),
            source: error,
        }
    }

    fn finish(
        self,
        records: &Bytes,
        truncated_bytes: usize,
    ) -> Result<FetchedPartitionPlan, FetchPlanError> {
        if self.steps.is_empty() && truncated_bytes > 0 {
            let tail = records
                .get(records.len().saturating_sub(truncated_bytes)..)
                .unwrap_or_default();
            return Err(FetchPlanError::BatchLargerThanFetch {
                position: self.position,
                needed_at_least: entry_size_at_least(tail),
            });
        }
        Ok(FetchedPartitionPlan {
            position: self.position,
            steps: self.steps,
            next_position: self.cursor,
            truncated_bytes,
            counters: self.counters,
        })
    }
}

/// The size of the entry whose first bytes are `tail`: its length field
/// plus the log overhead, or a lower bound if the length field was cut.
fn entry_size_at_least(tail: &[u8]) -> usize {
    let floor = tail.len().saturating_add(1).max(MIN_ENTRY_LEN);
    tail.get(8..LOG_OVERHEAD)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_be_bytes)
        .and_then(|length| usize::try_from(length).ok())
        .map_or(floor, |length| {
            length.saturating_add(LOG_OVERHEAD).max(floor)
        })
}

fn entry_len(entry: &LogEntry) -> usize {
    match entry {
        LogEntry::Batch(view) => view.as_bytes().len(),
        LogEntry::Legacy { bytes, .. } => bytes.len(),
    }
}

fn offsets_in(range: &Range<i64>) -> u64 {
    u64::try_from(range.end.saturating_sub(range.start)).unwrap_or(0)
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;
    use kmirror_protocol::compression;
    use kmirror_protocol::conformance::ConformanceChecker;
    use kmirror_protocol::kafka_protocol::protocol::StrBytes;
    use kmirror_protocol::messages::fetch::AbortedTransaction;
    use kmirror_protocol::messages::produce::{
        ProducePartition, ProduceRequest, ProduceTopic, encode_produce_request,
    };
    use kmirror_protocol::record::legacy::read_legacy_entry;
    use kmirror_protocol::record::{
        BATCH_HEADER_LEN, BatchBuilder, BatchHeader, ProducerStamp, attributes, rewrite_for_produce,
    };

    use super::*;
    use crate::ledger::OffsetLedger;
    use crate::sequencer::ProducerSequencer;
    use kmirror_protocol::Compression;

    const TXN: i16 = attributes::TRANSACTIONAL;
    const ABORT: [u8; 4] = [0, 0, 0, 0];
    const COMMIT: [u8; 4] = [0, 0, 0, 1];
    const CAP: usize = 1 << 24;

    // ---- building what a source broker's log holds ----

    /// Recomputes the CRC-32C over bytes 21.. of a v2 batch.
    fn reseal(batch: &mut [u8]) {
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    /// Edits the header of a built batch as the source log would hold it,
    /// and recomputes the CRC.
    fn relog(mut batch: Vec<u8>, edit: impl FnOnce(&mut BatchHeader)) -> Vec<u8> {
        let raw: [u8; BATCH_HEADER_LEN] = batch[..BATCH_HEADER_LEN].try_into().unwrap();
        let mut header = BatchHeader::decode(&raw);
        edit(&mut header);
        batch[..BATCH_HEADER_LEN].copy_from_slice(&header.encode());
        reseal(&mut batch);
        batch
    }

    fn stamp(producer_id: i64) -> ProducerStamp {
        if producer_id < 0 {
            ProducerStamp::NONE
        } else {
            ProducerStamp {
                producer_id,
                producer_epoch: 0,
                base_sequence: 0,
            }
        }
    }

    /// `count` records at `base..base + count` with `value_len`-byte
    /// values, written by `producer_id` with extra attribute bits `attrs`.
    fn batch_of(
        base: i64,
        count: i32,
        codec: Compression,
        attrs: i16,
        producer_id: i64,
        value_len: usize,
    ) -> Vec<u8> {
        let mut builder = BatchBuilder::new(codec);
        for i in 0..count {
            let offset = base + i64::from(i);
            let value = format!("record {offset} {}", "x".repeat(value_len));
            builder
                .push(
                    1_700_000_000_000 + offset,
                    Some(b"key"),
                    Some(value.as_bytes()),
                    std::iter::empty(),
                )
                .unwrap();
        }
        let built = builder
            .build(stamp(producer_id))
            .unwrap()
            .to_bytes()
            .to_vec();
        relog(built, |h| {
            h.base_offset = base;
            h.partition_leader_epoch = 5;
            h.attributes |= attrs;
        })
    }

    /// A plain (non-transactional) batch.
    fn data(base: i64, count: i32, codec: Compression) -> Vec<u8> {
        batch_of(base, count, codec, 0, -1, 30)
    }

    /// A transactional batch of `producer_id`.
    fn txn(base: i64, count: i32, producer_id: i64) -> Vec<u8> {
        batch_of(base, count, Compression::Lz4, TXN, producer_id, 30)
    }

    /// A transaction marker: a control batch whose one record's key is
    /// `[version, version, type, type]`.
    fn marker(offset: i64, producer_id: i64, kind: [u8; 4]) -> Vec<u8> {
        let mut builder = BatchBuilder::new(Compression::None);
        builder
            .push(
                1,
                Some(&kind),
                Some(&[0, 0, 0, 0, 0, 0]),
                std::iter::empty(),
            )
            .unwrap();
        let built = builder
            .build(stamp(producer_id))
            .unwrap()
            .to_bytes()
            .to_vec();
        relog(built, |h| {
            h.base_offset = offset;
            h.attributes |= TXN | attributes::CONTROL;
        })
    }

    /// A batch compaction emptied: no records, offsets still taken.
    fn emptied(base: i64, last_offset_delta: i32) -> Vec<u8> {
        relog(data(base, 1, Compression::None), |h| {
            h.record_count = 0;
            h.last_offset_delta = last_offset_delta;
        })
    }

    /// A v0/v1 message entry (CRC-32 over magic..).
    fn message(
        offset: i64,
        magic: i8,
        attributes: i8,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut body = Vec::new();
        body.put_i8(magic);
        body.put_i8(attributes);
        if magic == 1 {
            body.put_i64(1_600_000_000_000 + offset);
        }
        for field in [key, value] {
            match field {
                None => body.put_i32(-1),
                Some(b) => {
                    body.put_i32(i32::try_from(b.len()).unwrap());
                    body.put_slice(b);
                }
            }
        }
        let mut out = Vec::new();
        out.put_i64(offset);
        out.put_i32(i32::try_from(body.len()).unwrap() + 4);
        out.put_u32(crc32fast::hash(&body));
        out.put_slice(&body);
        out
    }

    /// A v1 gzip wrapper holding `count` messages whose last one has offset
    /// `last` (inner offsets are relative, the wrapper's is absolute).
    fn wrapper(last: i64, count: i64) -> Vec<u8> {
        let mut inner = Vec::new();
        for i in 0..count {
            inner.extend(message(i, 1, 0, None, Some(format!("old {i}").as_bytes())));
        }
        let mut gz = Vec::new();
        compression::compress(Compression::Gzip, &inner, None, &mut gz).unwrap();
        message(last, 1, 1, None, Some(&gz))
    }

    fn response(parts: &[&[u8]]) -> Bytes {
        Bytes::from(parts.concat())
    }

    // ---- reading plans ----

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Kind {
        Pass,
        Slow(SlowPathReason),
        Skip(SkipCause),
    }
    use Kind::{Pass, Skip, Slow};

    fn shape(plan: &FetchedPartitionPlan) -> Vec<(Range<i64>, Kind)> {
        plan.steps()
            .iter()
            .map(|step| {
                let kind = match step {
                    PlanStep::Passthrough { .. } => Pass,
                    PlanStep::SlowPath { reason, .. } => Slow(*reason),
                    PlanStep::Skip { reason, .. } => Skip(*reason),
                };
                (step.range().clone(), kind)
            })
            .collect()
    }

    /// The plan's invariant: non-empty ranges chaining from the position to
    /// the next position.
    fn assert_chain(plan: &FetchedPartitionPlan) {
        let mut at = plan.position();
        for step in plan.steps() {
            let range = step.range();
            assert_eq!(range.start, at, "steps chain: {:?}", shape(plan));
            assert!(range.start < range.end, "empty range: {:?}", shape(plan));
            at = range.end;
        }
        assert_eq!(at, plan.next_position());
    }

    fn settings(isolation: IsolationLevel) -> FetchSettings {
        FetchSettings::default().with_isolation(isolation)
    }

    fn plan_with(
        records: Bytes,
        aborted: &[(i64, i64)],
        policy: PassthroughPolicy,
        settings: FetchSettings,
    ) -> FetchedPartitionPlan {
        let plan = plan_partition(
            records,
            AbortedTransactionFilter::new(aborted.iter().copied()),
            &policy,
            settings,
        )
        .unwrap();
        assert_chain(&plan);
        plan
    }

    fn plan_at(records: Bytes, position: i64) -> FetchedPartitionPlan {
        plan_with(
            records,
            &[],
            PassthroughPolicy::at(position),
            FetchSettings::default(),
        )
    }

    fn try_plan_at(records: Bytes, position: i64) -> Result<FetchedPartitionPlan, FetchPlanError> {
        plan_partition(
            records,
            AbortedTransactionFilter::default(),
            &PassthroughPolicy::at(position),
            FetchSettings::default(),
        )
    }

    fn len(parts: &[&[u8]]) -> u64 {
        parts.iter().map(|p| p.len() as u64).sum()
    }

    // ---- behaviours ----

    #[test]
    fn consecutive_batches_pass_through_as_slices_of_the_fetch() {
        let a = data(0, 5, Compression::None);
        let b = data(5, 7, Compression::Lz4);
        let c = data(12, 3, Compression::Zstd);
        let records = response(&[&a, &b, &c]);
        let plan = plan_at(records.clone(), 0);
        assert_eq!(
            shape(&plan),
            vec![(0..5, Pass), (5..12, Pass), (12..15, Pass)]
        );
        assert_eq!(plan.next_position(), 15);
        assert_eq!(plan.truncated_bytes(), 0);
        assert_eq!(
            plan.counters(),
            PlanCounters {
                passthrough_batches: 3,
                passthrough_bytes: len(&[&a, &b, &c]),
                ..PlanCounters::default()
            }
        );
        // No copy: each batch, and the payload of its rewrite, is the same
        // memory as the fetched buffer.
        let fetched = records.as_ptr_range();
        for step in plan.steps() {
            let PlanStep::Passthrough { batch, .. } = step else {
                panic!("{step:?}");
            };
            assert!(fetched.contains(&batch.as_bytes().as_ptr()));
            let produced = rewrite_for_produce(batch, ProducerStamp::NONE);
            assert_eq!(produced.payload().as_ptr(), batch.payload().as_ptr());
            assert_eq!(step.fetched_bytes(), batch.as_bytes().len());
        }
    }

    #[test]
    fn a_batch_straddling_the_position_starts_its_range_at_the_position() {
        let a = data(10, 10, Compression::Lz4);
        let b = data(20, 5, Compression::Lz4);
        let records = response(&[&a, &b]);
        let plan = plan_at(records.clone(), 14);
        assert_eq!(
            shape(&plan),
            vec![
                (14..20, Slow(SlowPathReason::StartsBeforePosition)),
                (20..25, Pass)
            ]
        );
        assert_eq!(plan.next_position(), 25);
        assert_eq!(plan.counters().slow_path_batches, 1);
        assert_eq!(plan.counters().slow_path_bytes, a.len() as u64);
        // Its last record only.
        assert_eq!(
            shape(&plan_at(records.clone(), 19))[0],
            (19..20, Slow(SlowPathReason::StartsBeforePosition))
        );
        // At its base offset it passes through.
        assert_eq!(
            shape(&plan_at(records.clone(), 10)),
            vec![(10..20, Pass), (20..25, Pass)]
        );
        // Wholly below the position: no step, counted as skipped.
        let plan = plan_at(records, 20);
        assert_eq!(shape(&plan), vec![(20..25, Pass)]);
        assert_eq!(plan.counters().skipped_batches, 1);
        assert_eq!(plan.counters().skipped_bytes, a.len() as u64);
    }

    #[test]
    fn compaction_holes_become_skipped_gaps() {
        let sparse = relog(data(12, 3, Compression::None), |h| h.last_offset_delta = 5);
        let records = response(&[
            &data(3, 2, Compression::None),
            &data(9, 3, Compression::None),
            &sparse,
            &emptied(20, 2),
            &data(23, 1, Compression::None),
        ]);
        let plan = plan_at(records, 0);
        assert_eq!(
            shape(&plan),
            vec![
                (0..3, Skip(SkipCause::Gap)),
                (3..5, Pass),
                (5..9, Skip(SkipCause::Gap)),
                (9..12, Pass),
                (12..18, Slow(SlowPathReason::SparseOffsets)),
                (18..20, Skip(SkipCause::Gap)),
                (20..23, Skip(SkipCause::Empty)),
                (23..24, Pass),
            ]
        );
        let counters = plan.counters();
        assert_eq!(counters.gap_offsets, 3 + 4 + 2);
        assert_eq!(counters.skipped_batches, 1, "gaps are not batches");
        assert_eq!(counters.passthrough_batches, 3);
        assert!(
            plan.steps()
                .iter()
                .all(|s| s.produces() == (s.fetched_bytes() > 0))
        );
        // A sparse batch straddling the position keeps its reason; its
        // range still starts at the position.
        let plan = plan_at(response(&[&sparse]), 14);
        assert_eq!(
            shape(&plan),
            vec![(14..18, Slow(SlowPathReason::SparseOffsets))]
        );
    }

    /// Producer 7 aborts a transaction (0..3), producer 8 commits one
    /// (3..5), their markers follow, then plain records, then producer 7
    /// commits a new transaction.
    fn transactional_log() -> Bytes {
        response(&[
            &txn(0, 3, 7),
            &txn(3, 2, 8),
            &marker(5, 7, ABORT),
            &marker(6, 8, COMMIT),
            &data(7, 3, Compression::Lz4),
            &txn(10, 2, 7),
            &marker(12, 7, COMMIT),
        ])
    }

    #[test]
    fn read_committed_drops_aborted_and_control_batches() {
        let control = Skip(SkipCause::ControlBatch);
        let plan = plan_with(
            transactional_log(),
            &[(7, 0)],
            PassthroughPolicy::at(0),
            settings(IsolationLevel::ReadCommitted),
        );
        assert_eq!(
            shape(&plan),
            vec![
                (0..3, Skip(SkipCause::Aborted)),
                (3..5, Pass),
                (5..6, control.clone()),
                (6..7, control.clone()),
                (7..10, Pass),
                (10..12, Pass),
                (12..13, control),
            ]
        );
        assert_eq!(plan.counters().skipped_batches, 4);
        // An aborted batch straddling the position is skipped from it.
        let plan = plan_with(
            transactional_log(),
            &[(7, 0)],
            PassthroughPolicy::at(1),
            settings(IsolationLevel::ReadCommitted),
        );
        assert_eq!(shape(&plan)[0], (1..3, Skip(SkipCause::Aborted)));

        // What passes through is accepted by Apache Kafka's rules: the
        // transactional bit is cleared, our own producer fields stamped.
        let mut producer = ProducerSequencer::new(4242, 0).unwrap();
        let mut checker = ConformanceChecker::new();
        for (correlation, step) in (1..).zip(plan.steps()) {
            let PlanStep::Passthrough { batch, .. } = step else {
                continue;
            };
            let count = batch.header().record_count;
            let produced = rewrite_for_produce(batch, producer.next("t", 0, count).unwrap());
            let request = ProduceRequest {
                transactional_id: None,
                acks: -1,
                timeout_ms: 30_000,
                topics: vec![ProduceTopic {
                    name: StrBytes::from_string("t".to_owned()),
                    partitions: vec![ProducePartition {
                        index: 0,
                        batch: produced.clone(),
                    }],
                }],
            };
            let frame = encode_produce_request(&request, 9, correlation, Some("kmirror")).unwrap();
            assert_eq!(checker.check_frame(&frame), vec![], "{step:?}");
            producer
                .acknowledged("t", 0, produced.header().base_sequence)
                .unwrap();
        }
    }

    #[test]
    fn read_uncommitted_keeps_aborted_batches_but_drops_control_batches() {
        let control = Skip(SkipCause::ControlBatch);
        // The aborted list is ignored even if the response carried one.
        let plan = plan_with(
            transactional_log(),
            &[(7, 0)],
            PassthroughPolicy::at(0),
            settings(IsolationLevel::ReadUncommitted),
        );
        assert_eq!(
            shape(&plan),
            vec![
                (0..3, Pass),
                (3..5, Pass),
                (5..6, control.clone()),
                (6..7, control.clone()),
                (7..10, Pass),
                (10..12, Pass),
                (12..13, control),
            ]
        );
        assert_eq!(IsolationLevel::ReadUncommitted.wire_value(), 0);
        assert_eq!(IsolationLevel::default().wire_value(), 1);
        assert_eq!(IsolationLevel::default().to_string(), "read_committed");
    }

    #[test]
    fn a_codec_change_takes_the_slow_path() {
        let records = response(&[&data(0, 4, Compression::Lz4)]);
        let policy = |codec| PassthroughPolicy::at(0).with_target_codec(codec);
        let run = |codec| {
            shape(&plan_with(
                records.clone(),
                &[],
                policy(codec),
                FetchSettings::default(),
            ))
        };
        assert_eq!(
            run(Some(Compression::Zstd)),
            vec![(
                0..4,
                Slow(SlowPathReason::CodecChange {
                    from: Compression::Lz4,
                    to: Compression::Zstd
                })
            )]
        );
        assert_eq!(run(Some(Compression::Lz4)), vec![(0..4, Pass)]);
        assert_eq!(run(None), vec![(0..4, Pass)]);
    }

    #[test]
    fn an_oversized_batch_takes_the_slow_path() {
        let batch = data(0, 20, Compression::None);
        let records = response(&[&batch]);
        let run = |max| {
            shape(&plan_with(
                records.clone(),
                &[],
                PassthroughPolicy::at(0).with_max_batch_bytes(Some(max)),
                FetchSettings::default(),
            ))
        };
        assert_eq!(
            run(batch.len() - 1),
            vec![(0..20, Slow(SlowPathReason::TooLarge))]
        );
        assert_eq!(run(batch.len()), vec![(0..20, Pass)]);
    }

    #[test]
    fn a_truncated_batch_alone_asks_for_a_larger_fetch() {
        let big = data(50, 40, Compression::None);
        for cut in [big.len() / 2, LOG_OVERHEAD, BATCH_HEADER_LEN + 3] {
            for position in [50, 67] {
                let err = try_plan_at(Bytes::copy_from_slice(&big[..cut]), position).unwrap_err();
                assert!(
                    matches!(
                        err,
                        FetchPlanError::BatchLargerThanFetch { position: p, needed_at_least }
                            if p == position && needed_at_least == big.len()
                    ),
                    "{err:?}"
                );
                assert!(err.to_string().contains("max.partition.fetch.bytes"));
            }
        }
        // Even the length field cut: a lower bound above what arrived.
        let err = try_plan_at(Bytes::copy_from_slice(&big[..7]), 50).unwrap_err();
        assert!(matches!(
            err,
            FetchPlanError::BatchLargerThanFetch {
                position: 50,
                needed_at_least: MIN_ENTRY_LEN
            }
        ));
        // Complete batches below the position are no progress either.
        let below = data(40, 10, Compression::None);
        let records = response(&[&below, &big[..100]]);
        assert!(matches!(
            try_plan_at(records, 50),
            Err(FetchPlanError::BatchLargerThanFetch { position: 50, .. })
        ));
        // Nothing at all is not an error: the partition is caught up.
        let plan = plan_at(Bytes::new(), 50);
        assert!(plan.is_empty());
        assert_eq!(plan.next_position(), 50);
    }

    #[test]
    fn a_truncated_tail_after_complete_batches_waits_for_the_next_fetch() {
        let a = data(0, 5, Compression::Lz4);
        let b = data(5, 7, Compression::Lz4);
        let c = data(12, 30, Compression::None);
        let tail = &c[..c.len() - 1];
        let plan = plan_at(response(&[&a, &b, tail]), 0);
        assert_eq!(shape(&plan), vec![(0..5, Pass), (5..12, Pass)]);
        assert_eq!(plan.next_position(), 12);
        assert_eq!(plan.truncated_bytes(), tail.len());
        // A tail of a few bytes too.
        let plan = plan_at(response(&[&a, &b[..5]]), 0);
        assert_eq!(plan.next_position(), 5);
        assert_eq!(plan.truncated_bytes(), 5);
    }

    #[test]
    fn a_corrupt_batch_is_caught_naming_its_offset() {
        let a = data(0, 5, Compression::None);
        let mut b = data(5, 4, Compression::None);
        let last = b.len() - 1;
        b[last] ^= 0x40;
        let c = data(9, 2, Compression::None);
        let records = response(&[&a, &b, &c]);

        // On the slow path (here: a codec change) the plan checks the CRC.
        let to_zstd = PassthroughPolicy::at(0).with_target_codec(Some(Compression::Zstd));
        let err = plan_partition(
            records.clone(),
            AbortedTransactionFilter::default(),
            &to_zstd,
            FetchSettings::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, FetchPlanError::CorruptBatch { offset: 5, stored, computed } if stored != computed),
            "{err:?}"
        );
        assert!(err.to_string().contains("offset 5"), "{err}");

        // On the fast path, the single-pass rewrite checks it.
        let plan = plan_at(records, 0);
        let corrupt: Vec<_> = plan
            .steps()
            .iter()
            .filter_map(|step| match step {
                PlanStep::Passthrough { batch, .. } => {
                    record::rewrite_verified(batch, ProducerStamp::NONE).err()
                }
                _ => None,
            })
            .collect();
        assert_eq!(corrupt.len(), 1);
        assert!(
            matches!(corrupt[0], RecordError::CrcMismatch { base_offset: 5, .. }),
            "{:?}",
            corrupt[0]
        );
    }

    #[test]
    fn malformed_and_out_of_order_entries_are_errors_naming_the_offset() {
        let a = data(0, 5, Compression::None);
        let mut unknown_magic = data(5, 2, Compression::None);
        unknown_magic[16] = 7;
        let err = try_plan_at(response(&[&a, &unknown_magic]), 0).unwrap_err();
        assert!(
            matches!(
                err,
                FetchPlanError::Malformed {
                    offset: 5,
                    source: RecordError::UnknownMagic { magic: 7, .. }
                }
            ),
            "{err:?}"
        );
        let no_offsets = relog(data(5, 1, Compression::None), |h| h.last_offset_delta = -1);
        assert!(matches!(
            try_plan_at(response(&[&a, &no_offsets]), 0),
            Err(FetchPlanError::Malformed { offset: 5, .. })
        ));
        let overlapping = data(3, 4, Compression::None);
        assert!(matches!(
            try_plan_at(response(&[&a, &overlapping]), 0),
            Err(FetchPlanError::OutOfOrder {
                offset: 3,
                expected: 5
            })
        ));
        let old_after_new = message(4, 1, 0, None, Some(b"v"));
        assert!(matches!(
            try_plan_at(response(&[&a, &old_after_new]), 0),
            Err(FetchPlanError::OutOfOrder {
                offset: 4,
                expected: 5
            })
        ));
    }

    #[test]
    fn old_message_sets_take_the_slow_path_with_their_offsets() {
        let below = message(37, 1, 0, Some(b"k"), Some(b"a"));
        let plain = message(38, 1, 0, Some(b"k"), Some(b"b"));
        let wrapped = wrapper(42, 3);
        let v0 = message(43, 0, 0, None, Some(b"c"));
        let after = data(44, 3, Compression::Lz4);
        let records = response(&[&below, &plain, &wrapped, &v0, &after]);
        let plan = plan_at(records, 38);
        let legacy = |magic| Slow(SlowPathReason::LegacyFormat { magic });
        assert_eq!(
            shape(&plan),
            vec![
                (38..39, legacy(1)),
                (39..43, legacy(1)),
                (43..44, legacy(0)),
                (44..47, Pass)
            ]
        );
        let counters = plan.counters();
        assert_eq!(counters.slow_path_batches, 3);
        assert_eq!(counters.slow_path_bytes, len(&[&plain, &wrapped, &v0]));
        assert_eq!(counters.skipped_batches, 1);
        // The slow path reads the wrapper's inner offsets, inside the range.
        let PlanStep::SlowPath {
            range,
            entry: LogEntry::Legacy { bytes, .. },
            ..
        } = &plan.steps()[1]
        else {
            panic!("{:?}", plan.steps()[1]);
        };
        let mut inner = Vec::new();
        read_legacy_entry(bytes, CAP, &mut inner).unwrap();
        let offsets: Vec<i64> = inner.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![40, 41, 42]);
        assert!(offsets.iter().all(|o| range.contains(o)));
    }

    #[test]
    fn a_decoded_fetch_partition_is_planned_with_its_aborted_list() {
        let partition = FetchPartition {
            partition_index: 3,
            error_code: 0,
            high_watermark: 13,
            last_stable_offset: 13,
            log_start_offset: 0,
            aborted_transactions: Some(vec![AbortedTransaction {
                producer_id: 7,
                first_offset: 0,
            }]),
            preferred_read_replica: -1,
            records: Some(transactional_log()),
            diverging_epoch: None,
        };
        let plan = plan_fetch_partition(
            &partition,
            &PassthroughPolicy::at(0),
            FetchSettings::default(),
        )
        .unwrap();
        assert_eq!(shape(&plan)[0], (0..3, Skip(SkipCause::Aborted)));
        assert_eq!(plan.next_position(), 13);
        let nothing = FetchPartition {
            records: None,
            ..partition
        };
        let plan = plan_fetch_partition(
            &nothing,
            &PassthroughPolicy::at(13),
            FetchSettings::default(),
        )
        .unwrap();
        assert!(plan.is_empty());
        assert_eq!(plan.next_position(), 13);
    }

    // ---- end to end: a simulated source log, fetched until caught up ----

    /// One entry of the simulated source log.
    struct Logged {
        bytes: Vec<u8>,
        /// One past its last offset.
        end: i64,
        /// Part of an aborted transaction.
        aborted: bool,
    }

    /// A source partition: compaction holes, an old message set, aborted
    /// and committed transactions, an empty batch, a batch larger than a
    /// small fetch.
    struct SourceLog {
        entries: Vec<Logged>,
        /// `(producer id, first offset, abort marker offset)`.
        aborted: Vec<(i64, i64, i64)>,
    }

    impl SourceLog {
        fn new() -> Self {
            let plain = |bytes: Vec<u8>, end| Logged {
                bytes,
                end,
                aborted: false,
            };
            let aborted = |bytes: Vec<u8>, end| Logged {
                bytes,
                end,
                aborted: true,
            };
            let entries = vec![
                plain(message(90, 1, 0, Some(b"k"), Some(b"old")), 91),
                plain(wrapper(93, 3), 94),
                // 94..100 compacted away
                plain(data(100, 10, Compression::None), 110),
                // 110..115 compacted away
                plain(data(115, 5, Compression::Lz4), 120),
                aborted(txn(120, 3, 7), 123),
                plain(txn(123, 3, 8), 126),
                aborted(txn(126, 2, 7), 128),
                plain(marker(128, 7, ABORT), 129),
                plain(marker(129, 8, COMMIT), 130),
                plain(emptied(130, 2), 133),
                // 133..140 compacted away
                plain(batch_of(140, 10, Compression::None, 0, -1, 400), 150),
                plain(txn(150, 2, 7), 152),
                plain(marker(152, 7, COMMIT), 153),
                plain(data(153, 7, Compression::Gzip), 160),
            ];
            Self {
                entries,
                aborted: vec![(7, 120, 128)],
            }
        }

        fn end(&self) -> i64 {
            self.entries.last().map_or(0, |e| e.end)
        }

        /// What a broker returns for a fetch at `position` of at most
        /// `max_bytes`: from the entry holding the position, cut at the
        /// limit (possibly inside an entry).
        fn fetch(&self, position: i64, max_bytes: usize) -> Bytes {
            let mut out = Vec::new();
            for entry in self.entries.iter().filter(|e| e.end > position) {
                let room = max_bytes - out.len();
                if entry.bytes.len() > room {
                    out.extend_from_slice(&entry.bytes[..room]);
                    break;
                }
                out.extend_from_slice(&entry.bytes);
            }
            Bytes::from(out)
        }

        /// The aborted transactions a broker lists for a fetch at
        /// `position`: those not ended before it.
        fn aborted_filter(&self, position: i64) -> AbortedTransactionFilter {
            AbortedTransactionFilter::new(
                self.aborted
                    .iter()
                    .filter(|(_, _, marker)| *marker >= position)
                    .map(|&(producer, first, _)| (producer, first)),
            )
        }

        /// The offsets a mirror must copy from `start` on.
        fn expected(&self, start: i64, isolation: IsolationLevel) -> Vec<i64> {
            let mut out = Vec::new();
            for entry in &self.entries {
                let bytes = Bytes::from(entry.bytes.clone());
                let parsed = RecordBatches::new(bytes).next().unwrap().unwrap();
                if let LogEntry::Batch(view) = &parsed
                    && (view.header().is_control()
                        || entry.aborted && isolation == IsolationLevel::ReadCommitted)
                {
                    continue;
                }
                out.extend(record_offsets(&parsed).into_iter().filter(|o| *o >= start));
            }
            out
        }
    }

    fn record_offsets(entry: &LogEntry) -> Vec<i64> {
        match entry {
            LogEntry::Batch(view) if view.header().record_count == 0 => Vec::new(),
            LogEntry::Batch(view) => view
                .records(CAP)
                .unwrap()
                .map(|r| r.unwrap().offset(view.header()))
                .collect(),
            LogEntry::Legacy { bytes, .. } => {
                let mut out = Vec::new();
                read_legacy_entry(bytes, CAP, &mut out).unwrap();
                out.iter().map(|r| r.offset).collect()
            }
        }
    }

    /// The source offsets a step puts on the destination.
    fn produced_offsets(step: &PlanStep) -> Vec<i64> {
        match step {
            PlanStep::Passthrough { range, batch } => {
                let h = batch.header();
                assert_eq!(*range, h.base_offset..h.next_offset(), "a whole batch");
                record_offsets(&LogEntry::Batch(batch.clone()))
            }
            PlanStep::SlowPath { range, entry, .. } => {
                let all = record_offsets(entry);
                assert!(all.iter().all(|o| *o < range.end), "{step:?}");
                all.into_iter().filter(|o| range.contains(o)).collect()
            }
            PlanStep::Skip { .. } => Vec::new(),
        }
    }

    struct Mirrored {
        offsets: Vec<i64>,
        counters: PlanCounters,
        fetch_size_raises: u32,
    }

    /// Fetches `log` from `start` until caught up, as the engine does:
    /// every step into the ledger, the fetch size raised when a batch does
    /// not fit. Then acknowledges everything and checks the commit point.
    fn mirror(
        log: &SourceLog,
        start: i64,
        mut fetch_size: usize,
        policy: PassthroughPolicy,
        settings: FetchSettings,
    ) -> Mirrored {
        let mut ledger = OffsetLedger::new(start);
        let mut position = start;
        let mut dispatched = Vec::new();
        let mut in_flight = 0;
        let mut offsets = Vec::new();
        let mut counters = PlanCounters::default();
        let mut fetch_size_raises = 0;
        let mut caught_up = false;
        for _ in 0..1000 {
            let records = log.fetch(position, fetch_size);
            if records.is_empty() {
                caught_up = true;
                break;
            }
            let mut policy = policy;
            policy.fetch_position = position;
            match plan_partition(records, log.aborted_filter(position), &policy, settings) {
                Ok(plan) => {
                    assert_chain(&plan);
                    assert_eq!(plan.position(), position);
                    assert!(plan.next_position() > position, "progress");
                    for step in plan.steps() {
                        let range = step.range().clone();
                        if step.produces() {
                            let bytes = step.fetched_bytes();
                            in_flight += bytes;
                            dispatched.push(ledger.dispatched(range, 1, bytes).unwrap());
                        } else {
                            ledger.skipped(range).unwrap();
                        }
                        offsets.extend(produced_offsets(step));
                    }
                    counters += plan.counters();
                    position = plan.next_position();
                    assert_eq!(ledger.next_offset(), position);
                }
                Err(FetchPlanError::BatchLargerThanFetch {
                    position: at,
                    needed_at_least,
                }) => {
                    assert_eq!(at, position);
                    assert!(needed_at_least > fetch_size, "the fetch size must grow");
                    fetch_size = needed_at_least;
                    fetch_size_raises += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(caught_up, "fetching never ended");
        assert_eq!(position, log.end());
        assert_eq!(ledger.in_flight_bytes(), in_flight);
        for id in dispatched {
            ledger.acknowledged(id).unwrap();
        }
        assert_eq!(ledger.committable(), position);
        assert!(ledger.is_settled());
        Mirrored {
            offsets,
            counters,
            fetch_size_raises,
        }
    }

    #[test]
    fn every_step_feeds_the_offset_ledger_and_exactly_the_right_records_are_produced() {
        let log = SourceLog::new();
        let policies = [
            PassthroughPolicy::at(0),
            PassthroughPolicy::at(0).with_target_codec(Some(Compression::Zstd)),
            PassthroughPolicy::at(0).with_max_batch_bytes(Some(400)),
        ];
        for isolation in [
            IsolationLevel::ReadCommitted,
            IsolationLevel::ReadUncommitted,
        ] {
            for policy in policies {
                for start in [90, 92, 100, 105, 121, 127, 141, 159] {
                    for fetch_size in [5, 100, 700, 1 << 20] {
                        let run = mirror(&log, start, fetch_size, policy, settings(isolation));
                        assert_eq!(
                            run.offsets,
                            log.expected(start, isolation),
                            "{isolation} {policy:?} from {start}, fetch size {fetch_size}"
                        );
                    }
                }
            }
        }

        // One run in detail: everything fits, codecs kept, READ_COMMITTED.
        let run = mirror(
            &log,
            90,
            1 << 20,
            PassthroughPolicy::at(90),
            FetchSettings::default(),
        );
        assert_eq!(run.fetch_size_raises, 0);
        assert_eq!(
            run.counters,
            PlanCounters {
                passthrough_batches: 6,
                passthrough_bytes: [2, 3, 5, 10, 11, 13]
                    .iter()
                    .map(|&i| log.entries[i].bytes.len() as u64)
                    .sum(),
                slow_path_batches: 2,
                slow_path_bytes: (log.entries[0].bytes.len() + log.entries[1].bytes.len()) as u64,
                skipped_batches: 6,
                skipped_bytes: [4, 6, 7, 8, 9, 12]
                    .iter()
                    .map(|&i| log.entries[i].bytes.len() as u64)
                    .sum(),
                gap_offsets: 6 + 5 + 7,
            }
        );
        // A small fetch size has to grow for the 4 KB batch at 140.
        let run = mirror(
            &log,
            90,
            700,
            PassthroughPolicy::at(90),
            FetchSettings::default(),
        );
        assert_eq!(run.fetch_size_raises, 1);
    }
}
