//! [`MapRecorder`]: what one stream learns about one source partition
//! from the destination's acknowledgements, until it is written to the
//! offset map topic.

use std::ops::Range;

use super::map_record::{MAX_RUNS_PER_RECORD, MapRecord, OffsetRun};

/// One session's account of one source partition (see
/// [`MapRecord::session`]): the runs that each record must carry to
/// stand on its own, and what was written last.
#[derive(Debug, Clone)]
pub struct MapRecorder {
    session: i64,
    from: i64,
    /// Runs that end past `written_to`, and the run furthest on (the
    /// tail), which every record carries: with it a record places every
    /// offset from the tail's start, so it stands on its own once earlier
    /// records expire.
    runs: Vec<OffsetRun>,
    /// `complete_to` of the last record written (or `from`).
    written_to: i64,
    /// Bumped by every acknowledgement: what a flush saw.
    version: u64,
    /// The version last written.
    written_version: u64,
    /// No record of the session written yet: the next flush writes one
    /// even with nothing copied, because a session supersedes the earlier
    /// sessions' copies from its `from` on (after a truncation, their
    /// copies past the cut are no longer the source's records).
    unannounced: bool,
    /// Sessions ended by [`MapRecorder::restart`] with something still to
    /// write.
    retired: Vec<MapRecord>,
}

/// What to write before committing: the records, and what to tell the
/// recorder once they are acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapFlush {
    /// The records, in order.
    pub records: Vec<MapRecord>,
    retired: usize,
    version: u64,
    complete_to: i64,
}

impl MapRecorder {
    /// A session starting to copy at source offset `from`.
    pub fn new(session: i64, from: i64) -> Self {
        Self {
            session,
            from,
            runs: Vec::new(),
            written_to: from,
            version: 0,
            written_version: 0,
            unannounced: true,
            retired: Vec::new(),
        }
    }

    /// Records that the destination acknowledged a batch holding the
    /// records of the source offset ranges `sources` (in order, each range
    /// a stretch of consecutive records), the first at
    /// `destination_base` (`None`: the answer gave no offset).
    pub fn acknowledged(&mut self, sources: &[Range<i64>], destination_base: Option<i64>) {
        let mut destination = destination_base;
        for range in sources {
            let records = range.end - range.start;
            if records <= 0 {
                continue;
            }
            let run = OffsetRun {
                source_start: range.start,
                destination_start: destination,
                records,
            };
            destination = destination.map(|d| d + records);
            match self.runs.last_mut() {
                Some(last) if last.continued_by(&run) => last.records += run.records,
                _ => self.runs.push(run),
            }
            self.version += 1;
        }
    }

    /// The run that reaches furthest into the source.
    fn tail(&self) -> Option<&OffsetRun> {
        self.runs.iter().max_by_key(|r| r.source_start)
    }

    /// Ends the session (the partition's position was reset: a
    /// truncation, an out-of-range reset) and starts another at `from`;
    /// what the old one has not written is kept for the next flush.
    pub fn restart(&mut self, session: i64, from: i64, complete_to: i64) {
        let complete_to = complete_to.max(self.written_to);
        if self.unannounced || self.version != self.written_version || complete_to > self.written_to
        {
            let old = self.records(complete_to);
            self.retired.extend(old);
        }
        let retired = std::mem::take(&mut self.retired);
        *self = Self::new(session, from);
        self.retired = retired;
    }

    /// The session's records for `complete_to`: every run that ends past
    /// the last written `complete_to`, and the tail.
    fn records(&self, complete_to: i64) -> Vec<MapRecord> {
        let covered_from = self
            .tail()
            .map_or(self.written_to, |t| t.source_start.min(self.written_to))
            .max(self.from);
        let record = |covered_from: i64, complete_to: i64, runs: Vec<OffsetRun>| MapRecord {
            topic: String::new(),
            partition: 0,
            session: self.session,
            from: self.from,
            covered_from,
            complete_to: complete_to.max(covered_from),
            runs,
        };
        let mut runs = self.runs.clone();
        runs.sort_unstable();
        // Many runs go in several records, each covering only up to the
        // next one's first run: the records may reach the topic in several
        // batches, and any that did stands on its own.
        let chunks: Vec<&[OffsetRun]> = runs.chunks(MAX_RUNS_PER_RECORD).collect();
        if chunks.is_empty() {
            return vec![record(covered_from, complete_to, Vec::new())];
        }
        let mut out = Vec::with_capacity(chunks.len());
        let mut from = covered_from;
        for (i, chunk) in chunks.iter().enumerate() {
            let to = chunks
                .get(i + 1)
                .and_then(|next| next.first())
                .map_or(complete_to, |r| r.source_start.min(complete_to));
            out.push(record(from, to, chunk.to_vec()));
            from = to.max(from);
        }
        out
    }

    /// The records to write before committing `complete_to` (the offset
    /// the ledger allows to commit): `None` if the map already says it all
    /// (`force`: write anyway, so that a quiet partition's account is
    /// written again before the map topic's retention removes it).
    /// `topic` and `partition` name the source partition.
    pub fn flush(
        &self,
        topic: &str,
        partition: i32,
        complete_to: i64,
        force: bool,
    ) -> Option<MapFlush> {
        let complete_to = complete_to.max(self.written_to);
        let current = force
            || self.unannounced
            || self.version != self.written_version
            || complete_to > self.written_to;
        if !current && self.retired.is_empty() {
            return None;
        }
        let mut records = self.retired.clone();
        if current {
            records.extend(self.records(complete_to));
        }
        for r in &mut records {
            r.topic = topic.to_owned();
            r.partition = partition;
        }
        Some(MapFlush {
            records,
            retired: self.retired.len(),
            version: if current {
                self.version
            } else {
                self.written_version
            },
            complete_to: if current {
                complete_to
            } else {
                self.written_to
            },
        })
    }

    /// `flush` was written: what it covered need not be written again
    /// (runs that end at or below its `complete_to` are dropped, but for
    /// the tail).
    pub fn written(&mut self, flush: &MapFlush) {
        let retired = flush.retired.min(self.retired.len());
        self.retired.drain(..retired);
        let same_session = flush
            .records
            .last()
            .is_some_and(|r| r.session == self.session);
        if !same_session {
            return;
        }
        self.written_to = self.written_to.max(flush.complete_to);
        self.unannounced = false;
        if flush.version == self.version {
            self.written_version = self.version;
        }
        let tail = self.tail().map(|t| t.source_start);
        let written_to = self.written_to;
        self.runs
            .retain(|r| r.source_end() > written_to || Some(r.source_start) == tail);
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one stretch of offsets, not a list of numbers
mod tests {
    use super::*;

    fn run(source_start: i64, destination_start: Option<i64>, records: i64) -> OffsetRun {
        OffsetRun {
            source_start,
            destination_start,
            records,
        }
    }

    #[test]
    fn consecutive_batches_make_one_run() {
        let mut r = MapRecorder::new(1, 100);
        r.acknowledged(&[100..110], Some(0));
        r.acknowledged(&[110..120], Some(10));
        let f = r.flush("t", 2, 120, false).unwrap();
        assert_eq!(f.records.len(), 1);
        let rec = &f.records[0];
        assert_eq!(
            (
                rec.topic.as_str(),
                rec.partition,
                rec.from,
                rec.covered_from,
                rec.complete_to
            ),
            ("t", 2, 100, 100, 120)
        );
        assert_eq!(rec.runs, vec![run(100, Some(0), 20)]);
    }

    #[test]
    fn gaps_and_markers_break_runs() {
        let mut r = MapRecorder::new(1, 0);
        // A rebuilt batch: source 0..3 and 5..7 (3..5 compacted away).
        r.acknowledged(&[0..3, 5..7], Some(40));
        // A transaction marker at 7: the next batch starts at 8.
        r.acknowledged(&[8..10], Some(45));
        let f = r.flush("t", 0, 10, false).unwrap();
        assert_eq!(
            f.records[0].runs,
            vec![
                run(0, Some(40), 3),
                run(5, Some(43), 2),
                run(8, Some(45), 2)
            ]
        );
    }

    #[test]
    fn an_unknown_offset_is_recorded_as_unknown() {
        let mut r = MapRecorder::new(1, 0);
        r.acknowledged(&[0..5], None);
        r.acknowledged(&[5..7], Some(9));
        let f = r.flush("t", 0, 7, false).unwrap();
        assert_eq!(f.records[0].runs, vec![run(0, None, 5), run(5, Some(9), 2)]);
    }

    #[test]
    fn every_record_stands_on_its_own_from_the_tail() {
        let mut r = MapRecorder::new(1, 0);
        r.acknowledged(&[0..10], Some(0));
        r.acknowledged(&[11..20], Some(10));
        let f = r.flush("t", 0, 20, false).unwrap();
        r.written(&f);
        assert_eq!(r.flush("t", 0, 20, false), None, "nothing new");
        // A marker at 20, then more: the record places 11.. with the tail.
        r.acknowledged(&[21..25], Some(19));
        let f = r.flush("t", 0, 25, false).unwrap();
        let rec = &f.records[0];
        assert_eq!(rec.covered_from, 20);
        assert_eq!(rec.runs, vec![run(11, Some(10), 9), run(21, Some(19), 4)]);
        r.written(&f);
        // Only the committable offset moved (a marker at 25).
        let f = r.flush("t", 0, 26, false).unwrap();
        assert_eq!(
            (f.records[0].covered_from, f.records[0].complete_to),
            (21, 26)
        );
        assert_eq!(f.records[0].runs, vec![run(21, Some(19), 4)]);
        r.written(&f);
        // A quiet partition written again: the same account.
        assert_eq!(r.flush("t", 0, 26, false), None);
        let again = r.flush("t", 0, 26, true).unwrap();
        assert_eq!(again.records, f.records);
    }

    #[test]
    fn runs_past_the_commit_are_carried_until_covered() {
        let mut r = MapRecorder::new(1, 0);
        r.acknowledged(&[0..10], Some(0));
        r.acknowledged(&[10..20], Some(10));
        // Committable 5 only (say 5..10 was refused and written off).
        let f = r.flush("t", 0, 5, false).unwrap();
        r.written(&f);
        let f = r.flush("t", 0, 20, false).unwrap();
        assert_eq!(f.records[0].covered_from, 0);
        assert_eq!(f.records[0].runs, vec![run(0, Some(0), 20)]);
    }

    #[test]
    fn a_run_acknowledged_while_a_flush_is_written_is_written_next() {
        let mut r = MapRecorder::new(1, 0);
        r.acknowledged(&[0..10], Some(0));
        let f = r.flush("t", 0, 10, false).unwrap();
        r.acknowledged(&[10..12], Some(10));
        r.written(&f);
        let f2 = r.flush("t", 0, 10, false).unwrap();
        assert_eq!(f2.records[0].runs, vec![run(0, Some(0), 12)]);
        r.written(&f2);
        assert_eq!(
            r.flush("t", 0, 12, false).unwrap().records[0].complete_to,
            12
        );
    }

    #[test]
    fn a_failed_flush_is_flushed_again() {
        let mut r = MapRecorder::new(1, 0);
        r.acknowledged(&[0..10], Some(0));
        let f = r.flush("t", 0, 10, false).unwrap();
        // Not written (the produce failed): the next flush holds it all.
        r.acknowledged(&[10..11], Some(10));
        let f2 = r.flush("t", 0, 11, false).unwrap();
        assert_eq!(f2.records[0].runs, vec![run(0, Some(0), 11)]);
        assert_ne!(f, f2);
    }

    #[test]
    fn a_restart_keeps_the_old_session_until_written() {
        let mut r = MapRecorder::new(1, 0);
        r.acknowledged(&[0..10], Some(0));
        r.restart(2, 5, 10);
        r.acknowledged(&[5..8], Some(10));
        let f = r.flush("t", 0, 8, false).unwrap();
        let sessions: Vec<(i64, i64, i64)> = f
            .records
            .iter()
            .map(|r| (r.session, r.from, r.complete_to))
            .collect();
        assert_eq!(sessions, vec![(1, 0, 10), (2, 5, 8)]);
        r.written(&f);
        assert_eq!(r.flush("t", 0, 8, false), None);
    }

    #[test]
    fn many_runs_are_split_into_records() {
        let mut r = MapRecorder::new(1, 0);
        for i in 0..(MAX_RUNS_PER_RECORD as i64 + 10) {
            r.acknowledged(&[2 * i..2 * i + 1], Some(i));
        }
        let f = r
            .flush("t", 0, 2 * (MAX_RUNS_PER_RECORD as i64 + 10), false)
            .unwrap();
        assert_eq!(f.records.len(), 2);
        assert_eq!(f.records[0].runs.len(), MAX_RUNS_PER_RECORD);
        assert_eq!(f.records[1].runs.len(), 10);
        // Each covers only up to the next one's first run, so either
        // stands on its own if the other never reaches the topic.
        let split = 2 * MAX_RUNS_PER_RECORD as i64;
        assert_eq!(
            (f.records[0].covered_from, f.records[0].complete_to),
            (0, split)
        );
        assert_eq!(
            (f.records[1].covered_from, f.records[1].complete_to),
            (split, 2 * (MAX_RUNS_PER_RECORD as i64 + 10))
        );
        let mut first_only = crate::translation::OffsetIndex::new();
        first_only.apply(f.records[0].clone());
        assert!(first_only.translate("t", 0, split + 1).is_err());
        assert_eq!(
            first_only
                .translate("t", 0, 2)
                .map(|t| t.destination_offset),
            Ok(1)
        );
    }

    #[test]
    fn a_new_session_is_written_even_with_nothing_copied() {
        // A truncation at 5: the new session supersedes the old copies of
        // 5.. although nothing was copied again yet.
        let mut r = MapRecorder::new(1, 0);
        r.acknowledged(&[0..10], Some(0));
        let f = r.flush("t", 0, 10, false).unwrap();
        r.written(&f);
        r.restart(2, 5, 10);
        let f = r.flush("t", 0, 5, false).unwrap();
        let last = f.records.last().unwrap();
        assert_eq!((last.session, last.from, last.complete_to), (2, 5, 5));
        r.written(&f);
        assert_eq!(r.flush("t", 0, 5, false), None);
    }
}
