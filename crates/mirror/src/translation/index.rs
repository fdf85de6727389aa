//! [`OffsetIndex`]: the offset map read back, and exact translation of a
//! source position into the destination.
//!
//! A consumer's committed offset `o` on the source means "every record
//! below `o` is done". Its destination position is where the copy of the
//! first record at or after `o` is: a consumer starting there reads every
//! later record once, in order, if kmirror wrote each once. Several
//! copies of a record exist when kmirror copied it again (a crash after
//! the destination acknowledged it and before the commit); the copy that
//! counts is the one the writer continuing from there made, so a session
//! supersedes every earlier one from its `from` on.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

use super::map_record::{MapRecord, OffsetRun};

/// Why a position has no exact translation.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TranslateError {
    /// The map holds nothing about the partition.
    #[error(
        "the offset map holds nothing about this partition: kmirror has not copied it with \
         the offset map on, placed its records by key (--partition-by-key: no destination \
         offset stands for a source offset), or the map's records expired"
    )]
    NotMapped,
    /// The offset is past what kmirror has copied and recorded.
    #[error(
        "kmirror has copied and recorded this partition up to source offset {complete_to} only: \
         let it catch up, then translate again"
    )]
    NotCopiedYet {
        /// Where the map's account ends.
        complete_to: i64,
    },
    /// The offset is below the first source offset the map accounts for.
    #[error(
        "the map starts at source offset {first}: records below it were copied before the \
         offset map was kept (or its records expired), so where they landed is not known"
    )]
    BeforeMap {
        /// The first offset accounted for.
        first: i64,
    },
    /// Source offsets between the position and the next copy that the map
    /// does not account for.
    #[error(
        "source offsets {start}..{end} are not accounted for in the map (kmirror skipped \
         ahead, or its records expired), so the position cannot be placed exactly"
    )]
    Unaccounted {
        /// First offset not accounted for.
        start: i64,
        /// One past the last.
        end: i64,
    },
    /// The copy of the next record was acknowledged without its offset.
    #[error(
        "the destination acknowledged source offsets {start}..{end} without telling where they \
         landed, so the position cannot be placed exactly"
    )]
    UnknownPlacement {
        /// First offset.
        start: i64,
        /// One past the last.
        end: i64,
    },
    /// Nothing of the partition was copied yet.
    #[error("kmirror has copied no record of this partition yet")]
    NothingCopied,
}

/// How a translation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derivation {
    /// The first record at or after the position, source offset `record`,
    /// was copied to the destination offset (by the run `run`).
    Copied {
        /// The source offset of that record.
        record: i64,
        /// The run that holds it (clipped to where it counts).
        run: OffsetRun,
    },
    /// No record at or after the position has been copied (the source has
    /// none yet, or only records kmirror does not copy): the next copy goes
    /// right after the last one.
    AfterLastCopy,
}

/// An exact translation of one source position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The source position (a committed offset).
    pub source_offset: i64,
    /// Where a consumer continues on the destination.
    pub destination_offset: i64,
    /// How it was found.
    pub how: Derivation,
    /// Records a consumer starting at `destination_offset` reads that are
    /// not the copy that counts of a record after the position: copies
    /// kmirror wrote twice after a crash, or records it did not map. 0
    /// when the translation is exact.
    pub repeated: i64,
    /// Some records after the position are not in source order on the
    /// destination (kmirror wrote a batch again after later ones): the
    /// position is the earliest copy, so a consumer reads every record,
    /// but not all in order.
    pub reordered: bool,
}

impl Translation {
    /// Whether a consumer starting there reads each later record exactly
    /// once.
    pub fn is_exact(&self) -> bool {
        self.repeated == 0 && !self.reordered
    }
}

impl fmt::Display for Translation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.how {
            Derivation::Copied { record, run } => write!(
                f,
                "source record {record} was copied to destination offset {} (run of {} records \
                 from source {} to destination {})",
                self.destination_offset,
                run.records,
                run.source_start,
                run.destination_start.unwrap_or(-1)
            )?,
            Derivation::AfterLastCopy => write!(
                f,
                "nothing at or after source offset {} is copied yet: the next copy follows the \
                 last, at destination offset {}",
                self.source_offset, self.destination_offset
            )?,
        }
        if self.repeated > 0 {
            write!(
                f,
                "; {} records after it are extra copies (kmirror wrote them again after a crash)",
                self.repeated
            )?;
        }
        if self.reordered {
            write!(
                f,
                "; some records after it are out of source order there (kmirror wrote a batch \
                 again after later ones): the position is the earliest copy, so none is skipped"
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Session {
    id: i64,
    from: i64,
    complete_to: i64,
    /// The stretches its records account for (`covered_from..complete_to`
    /// of each), merged.
    covered: Vec<(i64, i64)>,
    /// By source start; a run written again longer replaces the shorter.
    runs: BTreeMap<i64, OffsetRun>,
}

/// The offset map of every partition, read back in the order written.
#[derive(Debug, Clone, Default)]
pub struct OffsetIndex {
    partitions: BTreeMap<(String, i32), Vec<Session>>,
}

impl OffsetIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record, read in the order of the map topic.
    pub fn apply(&mut self, record: MapRecord) {
        let sessions = self
            .partitions
            .entry((record.topic, record.partition))
            .or_default();
        let index = match sessions.iter().rposition(|s| s.id == record.session) {
            Some(i) => i,
            None => {
                sessions.push(Session {
                    id: record.session,
                    from: record.from,
                    complete_to: record.from,
                    covered: Vec::new(),
                    runs: BTreeMap::new(),
                });
                sessions.len() - 1
            }
        };
        let Some(session) = sessions.get_mut(index) else {
            return;
        };
        session.complete_to = session.complete_to.max(record.complete_to);
        if record.covered_from < record.complete_to {
            merge_into(
                &mut session.covered,
                (record.covered_from, record.complete_to),
            );
        }
        for run in record.runs {
            session
                .runs
                .entry(run.source_start)
                .and_modify(|known| {
                    if known.destination_start != run.destination_start
                        || run.records > known.records
                    {
                        *known = run;
                    }
                })
                .or_insert(run);
        }
    }

    /// The partitions the map holds, as (topic, partition).
    pub fn partitions(&self) -> impl Iterator<Item = (&str, i32)> {
        self.partitions.keys().map(|(t, p)| (t.as_str(), *p))
    }

    /// Where the source offset the map accounts up to (everything below it
    /// copied or deliberately skipped) for a partition, if mapped.
    pub fn complete_to(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions
            .get(&(topic.to_owned(), partition))
            .and_then(|s| s.last())
            .map(|s| s.complete_to)
    }

    /// Whether a session of the partition appeared in the map after
    /// another whose first copy on the destination comes after all of its
    /// own: its first record arrived late (an append that timed out and
    /// was applied after the next owner's), or an owner that lost the
    /// partition went on copying. The index then takes the session that
    /// appeared last for the latest, and may refuse positions it would
    /// otherwise place (never place them wrongly).
    pub fn has_late_sessions(&self, topic: &str, partition: i32) -> bool {
        let Some(sessions) = self.partitions.get(&(topic.to_owned(), partition)) else {
            return false;
        };
        let span = |s: &Session| {
            let starts = s.runs.values().filter_map(|r| r.destination_start);
            let ends = s.runs.values().filter_map(|r| r.destination_end());
            Some((starts.min()?, ends.max()?))
        };
        sessions.iter().enumerate().any(|(i, earlier)| {
            sessions
                .iter()
                .skip(i + 1)
                .any(|later| match (span(earlier), span(later)) {
                    (Some((first, _)), Some((_, last))) => last <= first,
                    _ => false,
                })
        })
    }

    /// How far any session has accounted for a partition (the largest
    /// `complete_to` written for it), if mapped: a commit never passes the
    /// account of the session that made it.
    pub fn furthest_complete_to(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions
            .get(&(topic.to_owned(), partition))
            .and_then(|s| s.iter().map(|s| s.complete_to).max())
    }

    /// The destination position of the source position `offset` of
    /// `topic`-`partition`.
    pub fn translate(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Translation, TranslateError> {
        let sessions = self
            .partitions
            .get(&(topic.to_owned(), partition))
            .filter(|s| !s.is_empty())
            .ok_or(TranslateError::NotMapped)?;
        // Sessions are in the order their first records appeared: a later
        // one took over from an earlier one. (A session's first record
        // that reaches the map late, after the next owner's, makes it look
        // newer: then translations refuse past it or count the next
        // owner's copies as extra; none is skipped.)
        let latest = sessions.last().ok_or(TranslateError::NotMapped)?;
        if offset > latest.complete_to {
            return Err(TranslateError::NotCopiedYet {
                complete_to: latest.complete_to,
            });
        }
        // Each session counts from its `from` up to where a later one took
        // over.
        let mut ends = vec![i64::MAX; sessions.len()];
        let mut later_from = i64::MAX;
        for (i, s) in sessions.iter().enumerate().rev() {
            if let Some(end) = ends.get_mut(i) {
                *end = later_from;
            }
            later_from = later_from.min(s.from);
        }
        let mut covered: Vec<(i64, i64)> = Vec::new();
        let mut effective: Vec<OffsetRun> = Vec::new();
        let mut last_destination: Option<i64> = None;
        for (s, &end) in sessions.iter().zip(&ends) {
            for &(a, b) in &s.covered {
                let (a, b) = (a.max(s.from), b.min(end));
                if a < b {
                    covered.push((a, b));
                }
            }
            for run in s.runs.values() {
                last_destination = last_destination.max(run.destination_end());
                effective.extend(run.clipped(s.from, end));
            }
        }
        covered.sort_unstable();
        effective.sort_unstable();
        let first = covered.first().map_or(latest.from, |c| c.0);
        if offset < first {
            return Err(TranslateError::BeforeMap { first });
        }
        // What counts of each run: its records at or after the position.
        let after: Vec<OffsetRun> = effective
            .iter()
            .filter_map(|r| r.clipped(offset, i64::MAX))
            .collect();
        let (destination_offset, how, reordered) = match after.first() {
            Some(run) => {
                let record = run.source_start;
                accounted(&covered, offset, record)?;
                let next = run
                    .destination_start
                    .ok_or(TranslateError::UnknownPlacement {
                        start: run.source_start,
                        end: run.source_end(),
                    })?;
                // A batch written again after later ones (an epoch bump
                // after a lost answer) puts a record behind later records:
                // start at the earliest copy of any, so none is skipped.
                let earliest = after
                    .iter()
                    .filter_map(|r| r.destination_start)
                    .min()
                    .unwrap_or(next);
                (
                    earliest,
                    Derivation::Copied { record, run: *run },
                    earliest != next,
                )
            }
            None => {
                accounted(&covered, offset, latest.complete_to)?;
                let end = last_destination.ok_or(TranslateError::NothingCopied)?;
                (end, Derivation::AfterLastCopy, false)
            }
        };
        let counted: i64 = after
            .iter()
            .map(|r| match (r.destination_start, r.destination_end()) {
                (Some(start), Some(end)) => (end - start.max(destination_offset)).max(0),
                // Somewhere on the destination, after the position.
                _ => r.records,
            })
            .sum();
        let repeated =
            last_destination.map_or(0, |end| (end - destination_offset - counted).max(0));
        Ok(Translation {
            source_offset: offset,
            destination_offset,
            how,
            repeated,
            reordered,
        })
    }
}

/// Adds `stretch` to the sorted, disjoint `stretches`, merging what
/// overlaps or touches.
fn merge_into(stretches: &mut Vec<(i64, i64)>, stretch: (i64, i64)) {
    stretches.push(stretch);
    stretches.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(stretches.len());
    for &(a, b) in stretches.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *stretches = merged;
}

/// Checks that every source offset in `start..end` lies in a covered
/// stretch (`covered` sorted, disjoint).
fn accounted(covered: &[(i64, i64)], start: i64, end: i64) -> Result<(), TranslateError> {
    let mut cursor = start;
    for &(s, e) in covered {
        if cursor >= end {
            break;
        }
        if e <= cursor {
            continue;
        }
        if s > cursor {
            return Err(TranslateError::Unaccounted {
                start: cursor,
                end: s.min(end),
            });
        }
        cursor = e;
    }
    if cursor < end {
        return Err(TranslateError::Unaccounted { start: cursor, end });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translation::map_record::tests::run;

    fn record(session: i64, from: i64, complete_to: i64, runs: Vec<OffsetRun>) -> MapRecord {
        covering(session, from, from, complete_to, runs)
    }

    fn covering(
        session: i64,
        from: i64,
        covered_from: i64,
        complete_to: i64,
        runs: Vec<OffsetRun>,
    ) -> MapRecord {
        MapRecord {
            topic: "t".into(),
            partition: 0,
            session,
            from,
            covered_from,
            complete_to,
            runs,
        }
    }

    fn index(records: Vec<MapRecord>) -> OffsetIndex {
        let mut index = OffsetIndex::new();
        records.into_iter().for_each(|r| index.apply(r));
        index
    }

    fn at(index: &OffsetIndex, offset: i64) -> Result<(i64, i64), TranslateError> {
        index
            .translate("t", 0, offset)
            .map(|t| (t.destination_offset, t.repeated))
    }

    #[test]
    fn a_straight_copy_keeps_the_distance() {
        let i = index(vec![record(1, 0, 100, vec![run(0, 500, 100)])]);
        assert_eq!(at(&i, 0), Ok((500, 0)));
        assert_eq!(at(&i, 42), Ok((542, 0)));
        // Caught up: the next copy goes after the last.
        assert_eq!(at(&i, 100), Ok((600, 0)));
        assert_eq!(
            at(&i, 101),
            Err(TranslateError::NotCopiedYet { complete_to: 100 })
        );
        assert_eq!(
            i.translate("t", 1, 0).unwrap_err(),
            TranslateError::NotMapped
        );
    }

    #[test]
    fn markers_aborted_records_and_gaps_move_to_the_next_copy() {
        // 10 is a commit marker; 20..25 an aborted transaction and its
        // marker; 30..33 compacted away.
        let i = index(vec![record(
            1,
            0,
            40,
            vec![
                run(0, 0, 10),
                run(11, 10, 9),
                run(25, 19, 5),
                run(33, 24, 7),
            ],
        )]);
        assert_eq!(at(&i, 10), Ok((10, 0)));
        assert_eq!(at(&i, 11), Ok((10, 0)));
        assert_eq!(at(&i, 21), Ok((19, 0)));
        assert_eq!(at(&i, 30), Ok((24, 0)));
        assert_eq!(at(&i, 34), Ok((25, 0)));
        assert_eq!(at(&i, 40), Ok((31, 0)));
    }

    #[test]
    fn a_restart_supersedes_the_copies_it_makes_again() {
        // Session 1 copied 0..100 (mapped through 100) and committed 80
        // only; killed. Session 2 starts at 80 and copies 80..150 again,
        // after 20 unmapped records the first wrote (100..120).
        let i = index(vec![
            record(1, 0, 100, vec![run(0, 0, 100)]),
            record(2, 80, 150, vec![run(80, 120, 70)]),
        ]);
        // At or after the restart: the new copy, nothing read twice.
        assert_eq!(at(&i, 80), Ok((120, 0)));
        assert_eq!(at(&i, 95), Ok((135, 0)));
        // Before it: the old copy, and the consumer reads 80..100 (mapped)
        // and 20 unmapped records again.
        let t = i.translate("t", 0, 50).unwrap();
        assert_eq!(t.destination_offset, 50);
        assert_eq!(t.repeated, 40);
        assert!(!t.is_exact());
        assert!(t.to_string().contains("40 records"), "{t}");
    }

    #[test]
    fn a_session_that_has_not_caught_up_is_waited_for() {
        let i = index(vec![
            record(1, 0, 100, vec![run(0, 0, 100)]),
            record(2, 80, 90, vec![run(80, 100, 10)]),
        ]);
        assert_eq!(
            at(&i, 95),
            Err(TranslateError::NotCopiedYet { complete_to: 90 })
        );
        assert_eq!(at(&i, 85), Ok((105, 0)));
    }

    #[test]
    fn positions_outside_the_map_are_refused() {
        // Started at 50 (kmirror took over a group from MirrorMaker).
        let i = index(vec![record(1, 50, 60, vec![run(50, 7, 10)])]);
        assert_eq!(at(&i, 49), Err(TranslateError::BeforeMap { first: 50 }));
        // Skipped ahead: session 2 starts at 200 (auto.offset.reset).
        let i = index(vec![
            record(1, 0, 60, vec![run(0, 0, 60)]),
            record(2, 200, 210, vec![run(200, 60, 10)]),
        ]);
        assert_eq!(
            at(&i, 100),
            Err(TranslateError::Unaccounted {
                start: 100,
                end: 200
            })
        );
        assert_eq!(at(&i, 205), Ok((65, 0)));
    }

    #[test]
    fn an_acknowledgement_without_an_offset_is_not_guessed() {
        let i = index(vec![record(
            1,
            0,
            20,
            vec![run(0, 0, 5), run(5, -1, 5), run(10, 10, 10)],
        )]);
        assert_eq!(
            at(&i, 6),
            Err(TranslateError::UnknownPlacement { start: 6, end: 10 })
        );
        assert_eq!(at(&i, 3), Ok((3, 0)));
        assert_eq!(at(&i, 10), Ok((10, 0)));
    }

    #[test]
    fn runs_written_again_longer_are_merged() {
        let i = index(vec![
            record(1, 0, 10, vec![run(0, 0, 10)]),
            record(1, 0, 30, vec![run(0, 0, 30)]),
            record(1, 0, 31, vec![]),
        ]);
        assert_eq!(at(&i, 25), Ok((25, 0)));
        assert_eq!(at(&i, 31), Ok((30, 0)));
        assert_eq!(i.complete_to("t", 0), Some(31));
    }

    #[test]
    fn records_beyond_the_account_are_not_trusted_across_a_hole() {
        // 10..20 acknowledged beyond the committable 5 (5..10 in flight).
        let i = index(vec![record(1, 0, 5, vec![run(0, 0, 5), run(10, 5, 10)])]);
        assert_eq!(
            at(&i, 5),
            Err(TranslateError::Unaccounted { start: 5, end: 10 })
        );
    }

    #[test]
    fn expired_records_leave_what_the_rest_covers_and_nothing_below() {
        // A long session whose first records the map topic's retention
        // removed: what remains covers 500.. (its tail from 480).
        let i = index(vec![covering(1, 0, 480, 600, vec![run(480, 1480, 120)])]);
        assert_eq!(at(&i, 500), Ok((1500, 0)));
        assert_eq!(at(&i, 480), Ok((1480, 0)));
        // Below: not guessed (the runs there are gone).
        assert_eq!(at(&i, 100), Err(TranslateError::BeforeMap { first: 480 }));
        // Records covering disjoint stretches: the hole between is not
        // accounted for.
        let i = index(vec![
            covering(1, 0, 0, 100, vec![run(0, 0, 100)]),
            covering(1, 0, 300, 400, vec![run(300, 300, 100)]),
        ]);
        assert_eq!(
            at(&i, 150),
            Err(TranslateError::Unaccounted {
                start: 150,
                end: 300
            })
        );
        assert_eq!(at(&i, 350), Ok((350, 0)));
    }

    #[test]
    fn a_batch_written_again_after_later_ones_skips_nothing() {
        // Source 7's first copy (destination 7) was never acknowledged;
        // its copy after an epoch bump landed at 15, behind 8..14.
        let i = index(vec![record(
            1,
            0,
            18,
            vec![run(0, 0, 7), run(7, 15, 1), run(8, 8, 7), run(15, 16, 3)],
        )]);
        let t = i.translate("t", 0, 7).unwrap();
        assert_eq!(
            (t.destination_offset, t.repeated, t.reordered),
            (8, 0, true)
        );
        assert!(!t.is_exact());
        // Past it: source 7's copy at 15 is an extra record.
        let t = i.translate("t", 0, 9).unwrap();
        assert_eq!(
            (t.destination_offset, t.repeated, t.reordered),
            (9, 1, false)
        );
        assert_eq!(at(&i, 15), Ok((16, 0)));
    }

    #[test]
    fn a_late_first_record_makes_translation_refuse_never_skip() {
        // Session 1 copied 0..26 to 0..26; its first map record arrived
        // only after session 2 (from 0, copies at 26..) had written its
        // own: session 1 looks newer.
        let i = index(vec![
            record(2, 0, 40, vec![run(0, 26, 40)]),
            record(1, 0, 26, vec![run(0, 0, 26)]),
        ]);
        assert_eq!(
            at(&i, 30),
            Err(TranslateError::NotCopiedYet { complete_to: 26 })
        );
        // Its copies are copies of the same records: a reader from there
        // gets every record, and the translation is not called exact
        // (session 2's copies all count as extras: more than the 26 a
        // reader gets twice, never fewer).
        assert_eq!(at(&i, 5), Ok((5, 40)));
    }
}
