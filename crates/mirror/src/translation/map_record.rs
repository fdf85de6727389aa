//! The records of kmirror's offset map topic: where each stretch of a
//! source partition's records landed in the destination partition of the
//! same number.
//!
//! Key: `int16` version (0), `string` source topic, `int32` partition.
//! Value: `int16` version (0), `int64` session, `int64` from,
//! `int64` covered_from, `int64` complete_to, `int32` run count, then per
//! run `int64` source_start, `int64` destination_start (-1: not known),
//! `int64` records. Big-endian, strings with an `int16` length, as
//! Kafka's own internal topics.
//!
//! Each record stands on its own for `covered_from..complete_to`: the
//! topic keeps records for a time (its retention), and once a session's
//! early records are gone, its later ones still place every offset they
//! cover, and nothing below.

use super::wire::{Reader, RecordFormatError, Writer};

/// The offset map topic for the source cluster called `source_alias`.
pub fn offset_map_topic(source_alias: &str) -> String {
    format!("kmirror-offset-map.{source_alias}.internal")
}

/// The most runs one record carries; more go in further records of the
/// same batch (about 24 bytes each: records stay under 100 KB).
pub const MAX_RUNS_PER_RECORD: usize = 4096;

/// Consecutive source records `source_start..source_start + records`
/// written as consecutive destination records from `destination_start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OffsetRun {
    /// The first source offset.
    pub source_start: i64,
    /// Where the first record landed; `None` when the destination's answer
    /// did not say (the records are there, at an unknown offset).
    pub destination_start: Option<i64>,
    /// How many records.
    pub records: i64,
}

impl OffsetRun {
    /// One past the last source offset.
    pub fn source_end(&self) -> i64 {
        self.source_start.saturating_add(self.records)
    }

    /// One past the last destination offset, if known.
    pub fn destination_end(&self) -> Option<i64> {
        self.destination_start
            .map(|d| d.saturating_add(self.records))
    }

    /// Where source offset `offset` (inside the run) landed.
    pub fn destination_of(&self, offset: i64) -> Option<i64> {
        self.destination_start
            .map(|d| d.saturating_add(offset - self.source_start))
    }

    /// Whether `next` continues this run on both sides (so the two are one
    /// run).
    pub fn continued_by(&self, next: &OffsetRun) -> bool {
        next.source_start == self.source_end()
            && match (self.destination_end(), next.destination_start) {
                (Some(end), Some(start)) => end == start,
                (None, None) => true,
                _ => false,
            }
    }

    /// This run without its source offsets outside `from..to`.
    pub fn clipped(&self, from: i64, to: i64) -> Option<OffsetRun> {
        let start = self.source_start.max(from);
        let end = self.source_end().min(to);
        (start < end).then(|| OffsetRun {
            source_start: start,
            destination_start: self.destination_of(start),
            records: end - start,
        })
    }
}

/// What one writer (a stream holding the partition, from an assignment
/// or a reset of its position until it gives the partition up) has
/// written and accounted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRecord {
    /// The source topic (the destination topic has the same name).
    pub topic: String,
    /// The source partition (and the destination partition).
    pub partition: i32,
    /// The writer's session: records with the same one come from one
    /// writer, which started copying at `from`.
    pub session: i64,
    /// The source offset the session started copying from. Every record
    /// the session copies supersedes earlier copies of the same source
    /// offsets.
    pub from: i64,
    /// Every source offset in `covered_from..complete_to` is either in a
    /// run of this record or was deliberately not copied (a transaction
    /// marker, an aborted transaction, a compaction gap): the record places
    /// those offsets without the session's earlier records.
    pub covered_from: i64,
    /// How far the session has accounted for the partition: every source
    /// offset in `from..complete_to` was copied or skipped by it.
    pub complete_to: i64,
    /// Runs acknowledged since the session's previous record.
    pub runs: Vec<OffsetRun>,
}

const KEY: &str = "offset map key";
const VALUE: &str = "offset map value";

impl MapRecord {
    /// The record's key.
    pub fn encode_key(&self) -> Result<Vec<u8>, RecordFormatError> {
        let mut w = Writer::default();
        w.i16(0).string(KEY, &self.topic)?.i32(self.partition);
        Ok(w.buf)
    }

    /// The record's value.
    pub fn encode_value(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.i16(0)
            .i64(self.session)
            .i64(self.from)
            .i64(self.covered_from)
            .i64(self.complete_to)
            .i32(i32::try_from(self.runs.len()).unwrap_or(i32::MAX));
        for run in self
            .runs
            .iter()
            .take(usize::try_from(i32::MAX).unwrap_or(usize::MAX))
        {
            w.i64(run.source_start)
                .i64(run.destination_start.unwrap_or(-1))
                .i64(run.records);
        }
        w.buf
    }

    /// Reads a record, refusing anything malformed.
    pub fn decode(key: &[u8], value: &[u8]) -> Result<MapRecord, RecordFormatError> {
        let mut k = Reader::new(key);
        let version = k.i16(KEY)?;
        if version != 0 {
            return Err(RecordFormatError::UnknownVersion {
                what: KEY,
                version,
                supported: "0",
            });
        }
        let topic = k.string(KEY)?;
        let partition = k.i32(KEY)?;
        k.finish(KEY)?;
        let mut v = Reader::new(value);
        let version = v.i16(VALUE)?;
        if version != 0 {
            return Err(RecordFormatError::UnknownVersion {
                what: VALUE,
                version,
                supported: "0",
            });
        }
        let session = v.i64(VALUE)?;
        let from = v.i64(VALUE)?;
        let covered_from = v.i64(VALUE)?;
        let complete_to = v.i64(VALUE)?;
        let invalid = |reason: String| RecordFormatError::Invalid {
            what: VALUE,
            reason,
        };
        if from < 0 || covered_from < from || complete_to < covered_from {
            return Err(invalid(format!(
                "from {from}, covered_from {covered_from} and complete_to {complete_to} are not \
                 ranges of offsets"
            )));
        }
        let count = v.i32(VALUE)?;
        let count = usize::try_from(count).map_err(|_| invalid(format!("{count} runs")))?;
        // 24 bytes a run: the count must fit in what remains.
        if count.saturating_mul(24) != v.remaining() {
            return Err(invalid(format!(
                "{count} runs need {} bytes, {} remain",
                count.saturating_mul(24),
                v.remaining()
            )));
        }
        let mut runs = Vec::with_capacity(count);
        for _ in 0..count {
            let source_start = v.i64(VALUE)?;
            let destination = v.i64(VALUE)?;
            let records = v.i64(VALUE)?;
            if source_start < 0
                || destination < -1
                || records <= 0
                || source_start.checked_add(records).is_none()
                || destination.checked_add(records).is_none()
            {
                return Err(invalid(format!(
                    "run of {records} records from source offset {source_start} to destination offset {destination}"
                )));
            }
            runs.push(OffsetRun {
                source_start,
                destination_start: (destination >= 0).then_some(destination),
                records,
            });
        }
        v.finish(VALUE)?;
        Ok(MapRecord {
            topic,
            partition,
            session,
            from,
            covered_from,
            complete_to,
            runs,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A run; a negative destination start is an unknown one.
    pub(crate) fn run(source_start: i64, destination_start: i64, records: i64) -> OffsetRun {
        OffsetRun {
            source_start,
            destination_start: (destination_start >= 0).then_some(destination_start),
            records,
        }
    }

    fn record() -> MapRecord {
        MapRecord {
            topic: "orders".into(),
            partition: 3,
            session: 0x0102_0304_0506_0708,
            from: 100,
            covered_from: 100,
            complete_to: 250,
            runs: vec![run(100, 7, 50), run(151, -1, 9), run(160, 57, 90)],
        }
    }

    #[test]
    fn round_trip() {
        let r = record();
        let key = r.encode_key().unwrap();
        let value = r.encode_value();
        assert_eq!(MapRecord::decode(&key, &value).unwrap(), r);
    }

    #[test]
    fn exact_bytes() {
        let r = MapRecord {
            topic: "t".into(),
            partition: 1,
            session: 2,
            from: 3,
            covered_from: 3,
            complete_to: 4,
            runs: vec![run(3, 9, 1)],
        };
        assert_eq!(r.encode_key().unwrap(), [0, 0, 0, 1, b't', 0, 0, 0, 1]);
        let mut value = vec![0, 0];
        for v in [2i64, 3, 3, 4] {
            value.extend_from_slice(&v.to_be_bytes());
        }
        value.extend_from_slice(&1i32.to_be_bytes());
        for v in [3i64, 9, 1] {
            value.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(r.encode_value(), value);
    }

    #[test]
    fn refuses_malformed_records() {
        let r = record();
        let key = r.encode_key().unwrap();
        let value = r.encode_value();
        for cut in 0..value.len() {
            assert!(
                MapRecord::decode(&key, &value[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        for cut in 0..key.len() {
            assert!(
                MapRecord::decode(&key[..cut], &value).is_err(),
                "key cut at {cut}"
            );
        }
        let mut long = value.clone();
        long.push(0);
        assert!(MapRecord::decode(&key, &long).is_err());
        let mut v1 = value.clone();
        v1[1] = 1;
        assert!(matches!(
            MapRecord::decode(&key, &v1),
            Err(RecordFormatError::UnknownVersion { version: 1, .. })
        ));
        // A count far above what the bytes hold is refused before allocating.
        let mut huge = value[..34].to_vec();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(MapRecord::decode(&key, &huge).is_err());
        for bad in [run(-1, 0, 1), run(0, 0, 0), run(i64::MAX, 0, 2)] {
            let mut r = record();
            r.runs = vec![bad];
            assert!(
                MapRecord::decode(&key, &r.encode_value()).is_err(),
                "{bad:?}"
            );
        }
        let mut backwards = record();
        backwards.complete_to = 99;
        assert!(MapRecord::decode(&key, &backwards.encode_value()).is_err());
        let mut before_from = record();
        before_from.covered_from = 99;
        assert!(MapRecord::decode(&key, &before_from.encode_value()).is_err());
    }

    #[test]
    fn runs_continue_clip_and_translate() {
        let a = run(10, 100, 5);
        assert!(a.continued_by(&run(15, 105, 1)));
        assert!(!a.continued_by(&run(16, 105, 1)), "a source gap");
        assert!(!a.continued_by(&run(15, 106, 1)), "a destination gap");
        assert!(!a.continued_by(&run(15, -1, 1)));
        assert!(run(0, -1, 2).continued_by(&run(2, -1, 1)));
        assert_eq!(a.clipped(12, 100), Some(run(12, 102, 3)));
        assert_eq!(a.clipped(0, 13), Some(run(10, 100, 3)));
        assert_eq!(a.clipped(15, 100), None);
        assert_eq!(a.destination_of(14), Some(104));
    }
}
