//! The at-least-once rule for one source partition: a source offset is
//! committed only after every record below it is acknowledged by the
//! destination.
//!
//! [`OffsetLedger`] owns the account of every source offset range between
//! the last commit point and the fetch position: handed to the producer
//! ([`OffsetLedger::dispatched`]), deliberately not produced
//! ([`OffsetLedger::skipped`]), acknowledged, failed or written off. From it
//! follows the one number the commit loop needs,
//! [`OffsetLedger::committable`]. It must never commit, fetch, produce or
//! read a clock: the engine feeds it events and asks it questions, so a unit
//! test drives it without a broker.
//!
//! Ranges must arrive contiguous and increasing, exactly as the source log
//! is read. A gap or an overlap is refused with a typed error because it
//! would mean a bug upstream that, silently accepted, could commit past
//! records never copied. Holes the source log really has (offsets removed
//! by compaction, between batches or before the first batch a fetch
//! returns) are recorded by the fetch side as skipped ranges.
//!
//! Errors carry offsets only; the caller knows the topic and partition and
//! adds them.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;

/// Names one range handed to the producer, for its acknowledgements.
///
/// Only the ledger that issued it makes one, and only for the current
/// generation: after [`OffsetLedger::reset`], late answers about older
/// dispatches are recognised as [`Receipt::Stale`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DispatchId {
    generation: u64,
    serial: u64,
}

impl fmt::Display for DispatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dispatch {}/{}", self.generation, self.serial)
    }
}

/// What the ledger did with an answer about one piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Counted. `released_bytes` is the byte count given at dispatch when
    /// this was the range's last outstanding piece (0 otherwise): the
    /// memory budget may take it back.
    Applied {
        /// Bytes no longer in flight.
        released_bytes: usize,
    },
    /// The dispatch belongs to a generation before the last
    /// [`OffsetLedger::reset`]; ignored. Expected after a partition is
    /// revoked while produce requests are in flight.
    Stale,
}

/// A broken ledger invariant: each variant means a bug in the caller, never
/// bad data from a broker.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// A range with no offsets.
    #[error("source offset range {start}..{end} is empty")]
    EmptyRange {
        /// First offset.
        start: i64,
        /// One past the last offset.
        end: i64,
    },
    /// A range that starts after the end of the previous one.
    #[error(
        "source offset range {start}..{end} leaves offsets {expected}..{start} \
         unaccounted for; holes in the source log must be recorded as skipped \
         ranges"
    )]
    Gap {
        /// Where the range had to start.
        expected: i64,
        /// First offset.
        start: i64,
        /// One past the last offset.
        end: i64,
    },
    /// A range that starts before the end of the previous one.
    #[error(
        "source offset range {start}..{end} overlaps offsets already recorded \
         (the next range must start at {expected}); offsets below the fetch \
         position must be trimmed before recording"
    )]
    Overlap {
        /// Where the range had to start.
        expected: i64,
        /// First offset.
        start: i64,
        /// One past the last offset.
        end: i64,
    },
    /// A dispatch of zero pieces; such a range is skipped, not dispatched.
    #[error("source offset range {start}..{end} dispatched as 0 pieces; record it as skipped")]
    NoPieces {
        /// First offset.
        start: i64,
        /// One past the last offset.
        end: i64,
    },
    /// An answer about a dispatch this ledger never issued.
    #[error("{id} was never issued by this ledger")]
    UnknownDispatch {
        /// The id.
        id: DispatchId,
    },
    /// More answers than pieces for one dispatch.
    #[error("{id} received more acknowledgements or failures than its pieces")]
    TooManyAnswers {
        /// The id.
        id: DispatchId,
    },
}

/// Running totals since the ledger was created (not cleared by
/// [`OffsetLedger::reset`]), for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerCounters {
    /// Ranges handed to the producer.
    pub dispatched_ranges: u64,
    /// Source offsets in those ranges.
    pub dispatched_offsets: u64,
    /// Source offsets deliberately not produced.
    pub skipped_offsets: u64,
    /// Pieces the destination acknowledged.
    pub acknowledged_pieces: u64,
    /// Pieces the destination refused.
    pub failed_pieces: u64,
    /// Pieces given up on and counted as done.
    pub written_off_pieces: u64,
    /// Answers about dispatches of an earlier generation.
    pub stale_answers: u64,
}

/// How a piece ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Acknowledged,
    Failed,
    WrittenOff,
}

/// One recorded range.
#[derive(Debug, Clone)]
struct Entry {
    range: Range<i64>,
    /// Pieces without an answer yet.
    pending: u32,
    /// A piece failed: the range never becomes committable.
    failed: bool,
    /// Bytes in flight until `pending` reaches 0.
    bytes: usize,
}

impl Entry {
    fn is_done(&self) -> bool {
        self.pending == 0 && !self.failed
    }
}

/// The commit account of one source partition (see the module
/// documentation).
///
/// ```
/// use kmirror::ledger::OffsetLedger;
///
/// let mut ledger = OffsetLedger::new(100);
/// let first = ledger.dispatched(100..110, 1, 4096)?;
/// ledger.skipped(110..111)?; // a transaction marker
/// let second = ledger.dispatched(111..120, 2, 4096)?;
/// ledger.acknowledged(second)?;
/// ledger.acknowledged(second)?;
/// assert_eq!(ledger.committable(), 100); // 100..110 not acknowledged yet
/// ledger.acknowledged(first)?;
/// assert_eq!(ledger.committable(), 120);
/// # Ok::<(), kmirror::ledger::LedgerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct OffsetLedger {
    generation: u64,
    /// Serial of `entries[0]`; entries have consecutive serials.
    front_serial: u64,
    /// Ranges not yet committable, oldest first. Invariant: the front entry
    /// is never done (done entries at the front are popped at once).
    entries: VecDeque<Entry>,
    /// End of the last recorded range: where the next one must start.
    next: i64,
    in_flight_bytes: usize,
    in_flight_pieces: u64,
    first_failure: Option<Range<i64>>,
    committed: Option<i64>,
    counters: LedgerCounters,
}

impl OffsetLedger {
    /// A ledger whose first range starts at `start_offset`, the fetch
    /// position (from the group's committed offset or `auto.offset.reset`).
    pub fn new(start_offset: i64) -> Self {
        Self {
            generation: 0,
            front_serial: 0,
            entries: VecDeque::new(),
            next: start_offset,
            in_flight_bytes: 0,
            in_flight_pieces: 0,
            first_failure: None,
            committed: None,
            counters: LedgerCounters::default(),
        }
    }

    /// Records that source offsets `range` were handed to the producer as
    /// `pieces` destination batches (1 for passthrough; more when records
    /// fan out to several destination partitions or a batch is split),
    /// holding `bytes` of memory until every piece is answered. Each piece
    /// must later be answered once, with the returned id.
    pub fn dispatched(
        &mut self,
        range: Range<i64>,
        pieces: u32,
        bytes: usize,
    ) -> Result<DispatchId, LedgerError> {
        self.check_next(&range)?;
        if pieces == 0 {
            return Err(LedgerError::NoPieces {
                start: range.start,
                end: range.end,
            });
        }
        let id = DispatchId {
            generation: self.generation,
            serial: self.next_serial(),
        };
        self.counters.dispatched_ranges += 1;
        self.counters.dispatched_offsets += offsets_in(&range);
        self.in_flight_bytes = self.in_flight_bytes.saturating_add(bytes);
        self.in_flight_pieces += u64::from(pieces);
        self.next = range.end;
        self.entries.push_back(Entry {
            range,
            pending: pieces,
            failed: false,
            bytes,
        });
        Ok(id)
    }

    /// Records that source offsets `range` are deliberately not produced
    /// (control batches, aborted transactions, empty batches, records below
    /// the fetch position, compaction holes): done at once.
    pub fn skipped(&mut self, range: Range<i64>) -> Result<(), LedgerError> {
        self.check_next(&range)?;
        self.counters.skipped_offsets += offsets_in(&range);
        self.next = range.end;
        if !self.entries.is_empty() {
            self.entries.push_back(Entry {
                range,
                pending: 0,
                failed: false,
                bytes: 0,
            });
        }
        Ok(())
    }

    /// One piece of dispatch `id` was acknowledged by the destination.
    pub fn acknowledged(&mut self, id: DispatchId) -> Result<Receipt, LedgerError> {
        self.answer(id, Answer::Acknowledged)
    }

    /// One piece of dispatch `id` was refused by the destination for good.
    /// Its range never becomes committable: the commit point stays below
    /// it until [`OffsetLedger::reset`] (MirrorMaker's
    /// `abort.on.send.failure=true`: commit what was acknowledged, stop).
    pub fn failed(&mut self, id: DispatchId) -> Result<Receipt, LedgerError> {
        self.answer(id, Answer::Failed)
    }

    /// One piece of dispatch `id` was given up on and counts as done
    /// although the destination does not hold it
    /// (`abort.on.send.failure=false`: log, count, skip).
    pub fn written_off(&mut self, id: DispatchId) -> Result<Receipt, LedgerError> {
        self.answer(id, Answer::WrittenOff)
    }

    /// The offset to commit to the source group: the first offset of the
    /// oldest range not fully acknowledged, or the end of the last range
    /// if every range is done. Never decreases, except by
    /// [`OffsetLedger::reset`].
    pub fn committable(&self) -> i64 {
        self.entries.front().map_or(self.next, |e| e.range.start)
    }

    /// Where the next recorded range must start: one past the last offset
    /// recorded, the fetch position.
    pub fn next_offset(&self) -> i64 {
        self.next
    }

    /// Whether every recorded range is done (the drain on shutdown is
    /// over for this partition).
    pub fn is_settled(&self) -> bool {
        self.entries.is_empty()
    }

    /// Source offsets recorded but not yet committable.
    pub fn uncommittable_offsets(&self) -> u64 {
        u64::try_from(self.next.saturating_sub(self.committable())).unwrap_or(0)
    }

    /// Bytes of dispatched ranges with pieces still unanswered.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes
    }

    /// Pieces still unanswered.
    pub fn in_flight_pieces(&self) -> u64 {
        self.in_flight_pieces
    }

    /// The first range (in offset order) that has a failed piece: the
    /// commit point will not pass its start.
    pub fn first_failure(&self) -> Option<Range<i64>> {
        self.first_failure.clone()
    }

    /// The last offset recorded with [`OffsetLedger::mark_committed`].
    pub fn committed(&self) -> Option<i64> {
        self.committed
    }

    /// The offset to commit if it differs from the last one committed.
    pub fn commit_due(&self) -> Option<i64> {
        let committable = self.committable();
        (self.committed != Some(committable)).then_some(committable)
    }

    /// Records that the source group now holds `offset` for this partition
    /// (an OffsetCommit succeeded, or the start position came from the
    /// group).
    pub fn mark_committed(&mut self, offset: i64) {
        self.committed = Some(offset);
    }

    /// Running totals.
    pub fn counters(&self) -> LedgerCounters {
        self.counters
    }

    /// Starts over at `position` (partition revoked and assigned again,
    /// or the fetch position reset after OFFSET_OUT_OF_RANGE). Every
    /// recorded range is forgotten, answers about earlier dispatches become
    /// [`Receipt::Stale`], and the last commit is forgotten. Returns the
    /// bytes that were in flight, which the memory budget must take back
    /// itself since no receipt will release them.
    ///
    /// To revoke a partition without losing progress, commit
    /// [`OffsetLedger::committable`] first.
    pub fn reset(&mut self, position: i64) -> usize {
        let released = self.in_flight_bytes;
        self.generation += 1;
        self.front_serial = 0;
        self.entries.clear();
        self.next = position;
        self.in_flight_bytes = 0;
        self.in_flight_pieces = 0;
        self.first_failure = None;
        self.committed = None;
        released
    }

    fn next_serial(&self) -> u64 {
        self.front_serial + self.entries.len() as u64
    }

    fn check_next(&self, range: &Range<i64>) -> Result<(), LedgerError> {
        let (start, end) = (range.start, range.end);
        if start >= end {
            return Err(LedgerError::EmptyRange { start, end });
        }
        let expected = self.next;
        if start > expected {
            return Err(LedgerError::Gap {
                expected,
                start,
                end,
            });
        }
        if start < expected {
            return Err(LedgerError::Overlap {
                expected,
                start,
                end,
            });
        }
        Ok(())
    }

    fn answer(&mut self, id: DispatchId, answer: Answer) -> Result<Receipt, LedgerError> {
        if id.generation != self.generation {
            self.counters.stale_answers += 1;
            return Ok(Receipt::Stale);
        }
        if id.serial >= self.next_serial() {
            return Err(LedgerError::UnknownDispatch { id });
        }
        // Below the front: the range was fully answered and popped.
        let index = id
            .serial
            .checked_sub(self.front_serial)
            .and_then(|i| usize::try_from(i).ok())
            .ok_or(LedgerError::TooManyAnswers { id })?;
        let entry = self
            .entries
            .get_mut(index)
            .ok_or(LedgerError::UnknownDispatch { id })?;
        if entry.pending == 0 {
            return Err(LedgerError::TooManyAnswers { id });
        }
        entry.pending -= 1;
        self.in_flight_pieces = self.in_flight_pieces.saturating_sub(1);
        match answer {
            Answer::Acknowledged => self.counters.acknowledged_pieces += 1,
            Answer::WrittenOff => self.counters.written_off_pieces += 1,
            Answer::Failed => {
                self.counters.failed_pieces += 1;
                entry.failed = true;
                if self
                    .first_failure
                    .as_ref()
                    .is_none_or(|f| entry.range.start < f.start)
                {
                    self.first_failure = Some(entry.range.clone());
                }
            }
        }
        let released_bytes = if entry.pending == 0 {
            std::mem::take(&mut entry.bytes)
        } else {
            0
        };
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(released_bytes);
        while self.entries.front().is_some_and(Entry::is_done) {
            self.entries.pop_front();
            self.front_serial += 1;
        }
        Ok(Receipt::Applied { released_bytes })
    }
}

fn offsets_in(range: &Range<i64>) -> u64 {
    u64::try_from(range.end.saturating_sub(range.start)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(bytes: usize) -> Receipt {
        Receipt::Applied {
            released_bytes: bytes,
        }
    }

    #[test]
    fn a_fresh_ledger_commits_its_start() {
        let ledger = OffsetLedger::new(42);
        assert_eq!(ledger.committable(), 42);
        assert_eq!(ledger.next_offset(), 42);
        assert!(ledger.is_settled());
        assert_eq!(ledger.commit_due(), Some(42));
    }

    #[test]
    fn one_passthrough_batch_is_committable_once_acknowledged() {
        let mut l = OffsetLedger::new(0);
        let id = l.dispatched(0..10, 1, 1000).unwrap();
        assert_eq!(l.committable(), 0);
        assert_eq!(l.in_flight_bytes(), 1000);
        assert_eq!(l.acknowledged(id), Ok(applied(1000)));
        assert_eq!(l.committable(), 10);
        assert_eq!(l.in_flight_bytes(), 0);
        assert!(l.is_settled());
    }

    #[test]
    fn out_of_order_acks_hold_the_commit_at_the_oldest_unacked_range() {
        let mut l = OffsetLedger::new(100);
        let one = l.dispatched(100..150, 1, 10).unwrap();
        let two = l.dispatched(150..200, 1, 20).unwrap();
        assert_eq!(l.acknowledged(two), Ok(applied(20)));
        assert_eq!(l.committable(), 100);
        assert_eq!(l.in_flight_bytes(), 10);
        assert_eq!(l.uncommittable_offsets(), 100);
        assert_eq!(l.acknowledged(one), Ok(applied(10)));
        assert_eq!(l.committable(), 200);
    }

    #[test]
    fn fanned_out_pieces_all_need_acks() {
        let mut l = OffsetLedger::new(0);
        let id = l.dispatched(0..30, 3, 300).unwrap();
        assert_eq!(l.in_flight_pieces(), 3);
        assert_eq!(l.acknowledged(id), Ok(applied(0)));
        assert_eq!(l.acknowledged(id), Ok(applied(0)));
        assert_eq!(l.committable(), 0, "2 of 3 pieces acked");
        assert_eq!(l.in_flight_bytes(), 300);
        assert_eq!(l.acknowledged(id), Ok(applied(300)));
        assert_eq!(l.committable(), 30);
        assert_eq!(l.in_flight_pieces(), 0);
    }

    #[test]
    fn skipped_ranges_between_produced_ranges() {
        let mut l = OffsetLedger::new(0);
        l.skipped(0..5).unwrap(); // records below the fetch position
        assert_eq!(l.committable(), 5);
        let a = l.dispatched(5..10, 1, 1).unwrap();
        l.skipped(10..11).unwrap(); // a commit marker
        let b = l.dispatched(11..20, 1, 1).unwrap();
        l.skipped(20..25).unwrap(); // an aborted transaction
        assert_eq!(l.committable(), 5);
        l.acknowledged(a).unwrap();
        // The marker after `a` is done too: the commit moves past it.
        assert_eq!(l.committable(), 11);
        l.acknowledged(b).unwrap();
        assert_eq!(l.committable(), 25);
        assert!(l.is_settled());
        let c = l.counters();
        assert_eq!(c.skipped_offsets, 11);
        assert_eq!(c.dispatched_offsets, 14);
        assert_eq!(c.dispatched_ranges, 2);
    }

    #[test]
    fn a_failed_piece_blocks_the_commit_for_good() {
        let mut l = OffsetLedger::new(0);
        let a = l.dispatched(0..10, 1, 1).unwrap();
        let b = l.dispatched(10..20, 2, 8).unwrap();
        let c = l.dispatched(20..30, 1, 1).unwrap();
        l.acknowledged(a).unwrap();
        assert_eq!(l.failed(b), Ok(applied(0)));
        assert_eq!(
            l.acknowledged(b),
            Ok(applied(8)),
            "bytes released though failed"
        );
        l.acknowledged(c).unwrap();
        l.skipped(30..31).unwrap();
        assert_eq!(l.committable(), 10);
        assert_eq!(l.first_failure(), Some(10..20));
        assert_eq!(l.in_flight_bytes(), 0);
        assert!(!l.is_settled());
        let d = l.dispatched(31..40, 1, 1).unwrap();
        l.acknowledged(d).unwrap();
        assert_eq!(l.committable(), 10);
        assert_eq!(l.counters().failed_pieces, 1);
    }

    #[test]
    fn the_earliest_failure_is_reported() {
        let mut l = OffsetLedger::new(0);
        let a = l.dispatched(0..10, 1, 0).unwrap();
        let b = l.dispatched(10..20, 1, 0).unwrap();
        l.failed(b).unwrap();
        l.failed(a).unwrap();
        assert_eq!(l.first_failure(), Some(0..10));
        assert_eq!(l.committable(), 0);
    }

    #[test]
    fn written_off_pieces_let_the_commit_pass() {
        let mut l = OffsetLedger::new(0);
        let a = l.dispatched(0..10, 2, 0).unwrap();
        l.acknowledged(a).unwrap();
        l.written_off(a).unwrap();
        assert_eq!(l.committable(), 10);
        assert_eq!(l.first_failure(), None);
        assert_eq!(l.counters().written_off_pieces, 1);
    }

    #[test]
    fn gaps_and_overlaps_are_refused() {
        let mut l = OffsetLedger::new(10);
        assert_eq!(
            l.dispatched(11..20, 1, 0),
            Err(LedgerError::Gap {
                expected: 10,
                start: 11,
                end: 20
            })
        );
        assert_eq!(
            l.skipped(9..20),
            Err(LedgerError::Overlap {
                expected: 10,
                start: 9,
                end: 20
            })
        );
        l.dispatched(10..20, 1, 0).unwrap();
        assert!(matches!(
            l.dispatched(15..25, 1, 0),
            Err(LedgerError::Overlap { expected: 20, .. })
        ));
        assert!(matches!(
            l.skipped(21..25),
            Err(LedgerError::Gap { expected: 20, .. })
        ));
        // Refusals change nothing.
        assert_eq!(l.next_offset(), 20);
        assert_eq!(l.counters().dispatched_ranges, 1);
        let msg = LedgerError::Gap {
            expected: 20,
            start: 21,
            end: 25,
        }
        .to_string();
        assert!(msg.contains("20..21"), "{msg}");
        assert!(msg.contains("skipped"), "{msg}");
    }

    #[test]
    fn empty_ranges_and_zero_pieces_are_refused() {
        let mut l = OffsetLedger::new(5);
        assert_eq!(
            l.dispatched(5..5, 1, 0),
            Err(LedgerError::EmptyRange { start: 5, end: 5 })
        );
        assert!(matches!(
            l.skipped(Range { start: 5, end: 4 }),
            Err(LedgerError::EmptyRange { .. })
        ));
        assert_eq!(
            l.dispatched(5..6, 0, 0),
            Err(LedgerError::NoPieces { start: 5, end: 6 })
        );
        assert_eq!(l.next_offset(), 5);
    }

    #[test]
    fn extra_answers_are_refused() {
        let mut l = OffsetLedger::new(0);
        let a = l.dispatched(0..1, 1, 0).unwrap();
        let b = l.dispatched(1..2, 1, 0).unwrap();
        l.acknowledged(b).unwrap();
        // `b` is still queued behind `a`, with no piece pending.
        assert_eq!(
            l.acknowledged(b),
            Err(LedgerError::TooManyAnswers { id: b })
        );
        l.acknowledged(a).unwrap();
        // Both popped now.
        assert_eq!(
            l.acknowledged(a),
            Err(LedgerError::TooManyAnswers { id: a })
        );
        assert_eq!(l.failed(b), Err(LedgerError::TooManyAnswers { id: b }));
        assert_eq!(l.committable(), 2);
    }

    #[test]
    fn ids_from_another_ledger_of_the_same_generation_are_unknown() {
        let mut other = OffsetLedger::new(0);
        other.dispatched(0..1, 1, 0).unwrap();
        let foreign = other.dispatched(1..2, 1, 0).unwrap();
        let mut l = OffsetLedger::new(0);
        assert_eq!(
            l.acknowledged(foreign),
            Err(LedgerError::UnknownDispatch { id: foreign })
        );
    }

    #[test]
    fn reset_makes_late_answers_stale_and_releases_bytes() {
        let mut l = OffsetLedger::new(0);
        let a = l.dispatched(0..10, 1, 100).unwrap();
        let b = l.dispatched(10..20, 1, 50).unwrap();
        l.mark_committed(0);
        assert_eq!(l.reset(500), 150);
        assert_eq!(l.committable(), 500);
        assert_eq!(l.next_offset(), 500);
        assert_eq!(l.in_flight_bytes(), 0);
        assert_eq!(l.committed(), None);
        // A new dispatch reuses serial 0 in the new generation.
        let c = l.dispatched(500..510, 1, 7).unwrap();
        assert_ne!(a, c);
        assert_eq!(l.acknowledged(a), Ok(Receipt::Stale));
        assert_eq!(l.failed(b), Ok(Receipt::Stale));
        assert_eq!(l.committable(), 500);
        assert_eq!(l.first_failure(), None);
        assert_eq!(l.acknowledged(c), Ok(applied(7)));
        assert_eq!(l.committable(), 510);
        assert_eq!(l.counters().stale_answers, 2);
    }

    #[test]
    fn reset_can_move_backwards() {
        // OFFSET_OUT_OF_RANGE with auto.offset.reset=earliest.
        let mut l = OffsetLedger::new(1000);
        l.skipped(1000..1010).unwrap();
        l.reset(0);
        assert_eq!(l.committable(), 0);
        l.dispatched(0..1, 1, 0).unwrap();
    }

    #[test]
    fn commit_due_tracks_what_the_group_holds() {
        let mut l = OffsetLedger::new(7);
        l.mark_committed(7);
        assert_eq!(l.commit_due(), None);
        let a = l.dispatched(7..9, 1, 0).unwrap();
        assert_eq!(l.commit_due(), None, "nothing new is committable");
        l.acknowledged(a).unwrap();
        assert_eq!(l.commit_due(), Some(9));
        l.mark_committed(9);
        assert_eq!(l.commit_due(), None);
        assert_eq!(l.committed(), Some(9));
    }

    /// SplitMix64: a deterministic pseudo-random sequence without a
    /// dependency.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The model: every recorded range with its unanswered pieces.
    struct Model {
        ranges: Vec<(Range<i64>, u32, Option<DispatchId>, usize)>,
        next: i64,
    }

    impl Model {
        fn smallest_unacked(&self) -> Option<i64> {
            self.ranges
                .iter()
                .find(|(_, pending, _, _)| *pending > 0)
                .map(|(r, _, _, _)| r.start)
        }

        fn committable(&self) -> i64 {
            self.smallest_unacked().unwrap_or(self.next)
        }

        fn bytes_in_flight(&self) -> usize {
            self.ranges
                .iter()
                .filter(|(_, pending, _, _)| *pending > 0)
                .map(|(_, _, _, b)| *b)
                .sum()
        }
    }

    #[test]
    fn random_dispatch_and_ack_orders_never_commit_an_unacked_offset() {
        for seed in 0..64 {
            let mut rng = SplitMix(seed);
            let start = i64::try_from(rng.below(1_000_000)).unwrap();
            let mut ledger = OffsetLedger::new(start);
            let mut model = Model {
                ranges: Vec::new(),
                next: start,
            };
            let mut last = ledger.committable();
            for step in 0..2_000 {
                let len = i64::try_from(1 + rng.below(40)).unwrap();
                let range = model.next..model.next + len;
                match rng.below(10) {
                    0..=2 if step < 1_500 => {
                        let pieces = u32::try_from(1 + rng.below(4)).unwrap();
                        let bytes = usize::try_from(rng.below(10_000)).unwrap();
                        let id = ledger.dispatched(range.clone(), pieces, bytes).unwrap();
                        model.ranges.push((range.clone(), pieces, Some(id), bytes));
                        model.next = range.end;
                    }
                    3 if step < 1_500 => {
                        ledger.skipped(range.clone()).unwrap();
                        model.ranges.push((range.clone(), 0, None, 0));
                        model.next = range.end;
                    }
                    _ => {
                        // Answer one piece of a random outstanding range.
                        let outstanding: Vec<usize> = model
                            .ranges
                            .iter()
                            .enumerate()
                            .filter(|(_, (_, p, _, _))| *p > 0)
                            .map(|(i, _)| i)
                            .collect();
                        if outstanding.is_empty() {
                            continue;
                        }
                        let pick = outstanding
                            [usize::try_from(rng.below(outstanding.len() as u64)).unwrap()];
                        let entry = &mut model.ranges[pick];
                        entry.1 -= 1;
                        let receipt = ledger.acknowledged(entry.2.unwrap()).unwrap();
                        let expected = if entry.1 == 0 { entry.3 } else { 0 };
                        assert_eq!(receipt, applied(expected), "seed {seed} step {step}");
                    }
                }
                let now = ledger.committable();
                if let Some(unacked) = model.smallest_unacked() {
                    assert!(now <= unacked, "seed {seed} step {step}: {now} > {unacked}");
                }
                assert!(
                    now >= last,
                    "seed {seed} step {step}: went back {last} -> {now}"
                );
                assert_eq!(now, model.committable(), "seed {seed} step {step}");
                assert_eq!(ledger.in_flight_bytes(), model.bytes_in_flight());
                assert_eq!(ledger.next_offset(), model.next);
                last = now;
            }
            // Answer everything left, in reverse order.
            for (_, pending, id, _) in model.ranges.iter_mut().rev() {
                while *pending > 0 {
                    *pending -= 1;
                    ledger.acknowledged(id.unwrap()).unwrap();
                    assert!(ledger.committable() >= last);
                    last = ledger.committable();
                }
            }
            assert_eq!(ledger.committable(), model.next, "seed {seed}");
            assert!(ledger.is_settled());
            assert_eq!(ledger.in_flight_pieces(), 0);
            assert_eq!(ledger.in_flight_bytes(), 0);
        }
    }
}
