//! [`MapRecorder`]: what one stream learns about one source partition
//! from the destination's acknowledgements, kept until it is written to
//! the offset map topic.

use std::ops::Range;

use super::map_record::{MAX_RUNS_PER_RECORD, MapRecord, OffsetRun};

/// One session's runs (see [`MapRecord::session`]) not yet written, and
/// what was written last, for one source partition.
#[derive(Debug, Clone)]
pub struct MapRecorder {
    session: i64,
    from: i64,
    /// Runs acknowledged and not written yet, in the order acknowledged.
    pending: Vec<OffsetRun>,
    /// The last run acknowledged (written or not): the next one may
    /// continue it.
    tail: Option<OffsetRun>,
    /// `complete_to` of the last record written (or `from`).
    written_to: i64,
    /// Sessions ended by [`MapRecorder::restart`] with something still to
    /// write.
    retired: Vec<MapRecord>,
    /// A session started by [`MapRecorder::restart`] not written yet: it
    /// is written at the next flush even with nothing copied, because it
    /// supersedes the earlier sessions' copies from its `from` on (after
    /// a truncation, their copies past the cut are no longer the source's
    /// records).
    unannounced: bool,
}

/// What to write before committing: the records, and what to tell the
/// recorder once they are acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapFlush {
    /// The records, in order.
    pub records: Vec<MapRecord>,
    retired: usize,
    pending: Vec<OffsetRun>,
    complete_to: i64,
}

impl MapRecorder {
    /// A session starting to copy at source offset `from`.
    pub fn new(session: i64, from: i64) -> Self {
        Self {
            session,
            from,
            pending: Vec::new(),
            tail: None,
            written_to: from,
            retired: Vec::new(),
            unannounced: false,
        }
    }

    /// The session id.
    pub fn session(&self) -> i64 {
        self.session
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
            self.push(run);
        }
    }

    fn push(&mut self, run: OffsetRun) {
        match self.tail {
            Some(tail) if tail.continued_by(&run) => {
                let joined = OffsetRun {
                    records: tail.records + run.records,
                    ..tail
                };
                match self.pending.last_mut() {
                    Some(last) if last.source_start == tail.source_start => *last = joined,
                    // The tail was written already: written again, longer
                    // (the same start: the reader keeps the longer).
                    _ => self.pending.push(joined),
                }
                self.tail = Some(joined);
            }
            _ => {
                self.pending.push(run);
                self.tail = Some(run);
            }
        }
    }

    /// Ends the session (the partition's position was reset: a
    /// truncation, an out-of-range reset) and starts another at `from`;
    /// what the old one has not written is kept for the next flush.
    pub fn restart(&mut self, session: i64, from: i64, complete_to: i64) {
        if self.unannounced || !self.pending.is_empty() || complete_to > self.written_to {
            let old = self.current_records(complete_to.max(self.written_to));
            self.retired.extend(old);
        }
        let retired = std::mem::take(&mut self.retired);
        *self = Self::new(session, from);
        self.retired = retired;
        self.unannounced = true;
    }

    fn current_records(&self, complete_to: i64) -> Vec<MapRecord> {
        let record = |runs: Vec<OffsetRun>| MapRecord {
            topic: String::new(),
            partition: 0,
            session: self.session,
            from: self.from,
            complete_to,
            runs,
        };
        if self.pending.is_empty() {
            return vec![record(Vec::new())];
        }
        self.pending
            .chunks(MAX_RUNS_PER_RECORD)
            .map(|c| record(c.to_vec()))
            .collect()
    }

    /// The records to write before committing `complete_to` (the offset
    /// the ledger allows to commit): `None` if the map already says it all.
    /// `topic` and `partition` name the source partition.
    pub fn flush(&self, topic: &str, partition: i32, complete_to: i64) -> Option<MapFlush> {
        let complete_to = complete_to.max(self.written_to);
        let current = self.unannounced || !self.pending.is_empty() || complete_to > self.written_to;
        if !current && self.retired.is_empty() {
            return None;
        }
        let mut records = self.retired.clone();
        if current {
            records.extend(self.current_records(complete_to));
        }
        for r in &mut records {
            r.topic = topic.to_owned();
            r.partition = partition;
        }
        Some(MapFlush {
            records,
            retired: self.retired.len(),
            pending: if current {
                self.pending.clone()
            } else {
                Vec::new()
            },
            complete_to,
        })
    }

    /// `flush` was written: forgets what it held (a run extended since
    /// stays, to be written again).
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
        // `pending` only grows at its end (or extends its last run): the
        // flushed runs are a prefix of it, the last perhaps longer now.
        let written = self
            .pending
            .iter()
            .zip(&flush.pending)
            .take_while(|(now, then)| now == then)
            .count();
        self.pending.drain(..written);
        self.written_to = self.written_to.max(flush.complete_to);
        self.unannounced = false;
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
        let f = r.flush("t", 2, 120).unwrap();
        assert_eq!(f.records.len(), 1);
        let rec = &f.records[0];
        assert_eq!(
            (rec.topic.as_str(), rec.partition, rec.from, rec.complete_to),
            ("t", 2, 100, 120)
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
        let f = r.flush("t", 0, 10).unwrap();
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
        let f = r.flush("t", 0, 7).unwrap();
        assert_eq!(f.records[0].runs, vec![run(0, None, 5), run(5, Some(9), 2)]);
    }

    #[test]
    fn nothing_new_writes_nothing_and_a_written_run_is_extended() {
        let mut r = MapRecorder::new(1, 0);
        r.acknowledged(&[0..10], Some(0));
        let f = r.flush("t", 0, 10).unwrap();
        // Acknowledged while the flush is written: the run grows.
        r.acknowledged(&[10..12], Some(10));
        r.written(&f);
        assert!(
            r.flush("t", 0, 10).is_some(),
            "the extension is not written yet"
        );
        let f2 = r.flush("t", 0, 12).unwrap();
        assert_eq!(f2.records[0].runs, vec![run(0, Some(0), 12)]);
        r.written(&f2);
        assert_eq!(r.flush("t", 0, 12), None);
        // Only the committable offset moved (a skipped marker).
        let f3 = r.flush("t", 0, 13).unwrap();
        assert!(f3.records[0].runs.is_empty());
        assert_eq!(f3.records[0].complete_to, 13);
        r.written(&f3);
        assert_eq!(r.flush("t", 0, 13), None);
        r.acknowledged(&[13..14], Some(12));
        let f4 = r.flush("t", 0, 14).unwrap();
        // The marker at 12 breaks the source side: a new run.
        assert_eq!(f4.records[0].runs, vec![run(13, Some(12), 1)]);
    }

    #[test]
    fn a_failed_flush_is_flushed_again() {
        let mut r = MapRecorder::new(1, 0);
        r.acknowledged(&[0..10], Some(0));
        let f = r.flush("t", 0, 10).unwrap();
        // Not written (the produce failed): the next flush holds it all.
        r.acknowledged(&[10..11], Some(10));
        let f2 = r.flush("t", 0, 11).unwrap();
        assert_eq!(f2.records[0].runs, vec![run(0, Some(0), 11)]);
        assert_ne!(f, f2);
    }

    #[test]
    fn a_restart_keeps_the_old_session_until_written() {
        let mut r = MapRecorder::new(1, 0);
        r.acknowledged(&[0..10], Some(0));
        r.restart(2, 5, 10);
        r.acknowledged(&[5..8], Some(10));
        let f = r.flush("t", 0, 8).unwrap();
        let sessions: Vec<(i64, i64, i64)> = f
            .records
            .iter()
            .map(|r| (r.session, r.from, r.complete_to))
            .collect();
        assert_eq!(sessions, vec![(1, 0, 10), (2, 5, 8)]);
        r.written(&f);
        assert_eq!(r.flush("t", 0, 8), None);
    }

    #[test]
    fn a_restart_is_written_even_before_it_copies() {
        // 0..10 copied and written; the source is truncated at 7 and
        // nothing is written there yet: the new session must still reach
        // the map before the commit of 7, or the old copies of 7..10 (no
        // longer the source's records) would still count.
        let mut r = MapRecorder::new(1, 0);
        r.acknowledged(&[0..10], Some(0));
        let f = r.flush("t", 0, 10).unwrap();
        r.written(&f);
        r.restart(2, 7, 10);
        let f = r.flush("t", 0, 7).unwrap();
        let sessions: Vec<(i64, i64, i64, usize)> = f
            .records
            .iter()
            .map(|r| (r.session, r.from, r.complete_to, r.runs.len()))
            .collect();
        assert_eq!(sessions, vec![(2, 7, 7, 0)]);
        r.written(&f);
        assert_eq!(r.flush("t", 0, 7), None);
        // Restarted again before the announcement was written: the first
        // restart's session is written too.
        r.restart(3, 5, 7);
        r.restart(4, 3, 5);
        let f = r.flush("t", 0, 3).unwrap();
        let sessions: Vec<(i64, i64)> = f.records.iter().map(|r| (r.session, r.from)).collect();
        assert_eq!(sessions, vec![(3, 5), (4, 3)]);
    }

    #[test]
    fn many_runs_are_split_into_records() {
        let mut r = MapRecorder::new(1, 0);
        for i in 0..(MAX_RUNS_PER_RECORD as i64 + 10) {
            r.acknowledged(&[2 * i..2 * i + 1], Some(i));
        }
        let f = r
            .flush("t", 0, 2 * (MAX_RUNS_PER_RECORD as i64 + 10))
            .unwrap();
        assert_eq!(f.records.len(), 2);
        assert_eq!(f.records[0].runs.len(), MAX_RUNS_PER_RECORD);
        assert_eq!(f.records[1].runs.len(), 10);
    }
}
