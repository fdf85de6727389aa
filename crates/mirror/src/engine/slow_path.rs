//! The slow path: decode a fetched entry's records and build new batches,
//! for everything passthrough cannot carry (offset gaps, records below the
//! fetch position, codec changes, old message formats, a different
//! partition count at the destination).
//!
//! Records keep key, value, headers (in order, repeats kept) and their
//! absolute timestamps; batches are written CreateTime with dense offset
//! deltas and a placeholder producer stamp, which the producer replaces
//! with its own when it sends them ([`ProduceBatch::restamp`]).

use std::collections::BTreeMap;
use std::ops::Range;

use kmirror_protocol::partitioner::partition_for_key;
use kmirror_protocol::record::legacy::{LegacyRecord, read_legacy_entry};
use kmirror_protocol::record::{
    BatchBuilder, LogEntry, ProduceBatch, ProducerStamp, decode_records,
};
use kmirror_protocol::{Compression, RecordError};

/// The most a single entry may decompress to.
pub const DECOMPRESSION_CAP: usize = 256 * 1024 * 1024;

/// Where a source partition's records go at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Destination partition = source partition (equal partition counts).
    SamePartition,
    /// By key, as Java's default partitioner does:
    /// `(murmur2(key) & 0x7fffffff) % partitions`; records with a null key
    /// stay on `source partition % partitions`, so their relative order
    /// holds.
    ByKey {
        /// The destination's partition count.
        partitions: u32,
    },
}

impl Route {
    fn partition(self, source_partition: i32, key: Option<&[u8]>) -> i32 {
        match self {
            Route::SamePartition => source_partition,
            Route::ByKey { partitions } => {
                let n = partitions.max(1);
                let chosen = match key {
                    Some(key) => partition_for_key(key, n),
                    None => u32::try_from(source_partition).ok().map(|p| p % n),
                };
                chosen.and_then(|p| i32::try_from(p).ok()).unwrap_or(0)
            }
        }
    }
}

/// One destination batch built by the slow path.
#[derive(Debug, Clone)]
pub struct Piece {
    /// The destination partition.
    pub partition: i32,
    /// The batch, stamped with [`ProducerStamp::NONE`].
    pub batch: ProduceBatch,
    /// Its record count.
    pub records: i32,
    /// The source offsets of its records, in order, as stretches of
    /// consecutive offsets (where each record came from, for the offset
    /// map).
    pub sources: Vec<Range<i64>>,
}

/// What the slow path writes.
#[derive(Debug, Clone, Copy)]
pub struct Rebatch {
    /// Where records go.
    pub route: Route,
    /// The codec of the new batches; `None` keeps the source entry's codec.
    pub codec: Option<Compression>,
    /// The codec's level.
    pub level: Option<i32>,
    /// Start a new batch once one holds this many (uncompressed) bytes.
    pub batch_size: usize,
    /// The destination's limit on a batch (`max.message.bytes`): a batch
    /// is sealed before a record that could take it over. A single record
    /// over the limit still goes alone, for the destination to refuse.
    pub max_batch_bytes: Option<usize>,
}

/// An upper bound of a record's size in a v2 batch: its fields plus the
/// largest varints of its length, attributes, deltas and counts.
fn record_bound(key: Option<&[u8]>, value: Option<&[u8]>, headers: usize) -> usize {
    let sized = |b: Option<&[u8]>| 5 + b.map_or(0, <[u8]>::len);
    5 + 1 + 10 + 5 + sized(key) + sized(value) + 5 + headers
}

/// How much a compressed entry is assumed to expand when decompressed,
/// before it is (the size is only known once decompressed).
const ASSUMED_RATIO: usize = 4;

/// The memory rebuilding an entry of `entry_len` bytes holds at its peak,
/// if its records decompress to `decompressed` bytes (0 when the entry is
/// not compressed: its records are then slices of the fetched bytes,
/// already charged with the response): the decompressed records and the
/// batches built from them, at most about as large as the records.
pub fn rebuild_peak(entry_len: usize, decompressed: usize) -> usize {
    if decompressed == 0 {
        entry_len
    } else {
        decompressed.saturating_mul(2)
    }
}

/// [`rebuild_peak`] before decompressing: a compressed entry is assumed
/// to expand [`ASSUMED_RATIO`] times (at most to [`DECOMPRESSION_CAP`]);
/// [`rebatch_measured`] tells the actual size.
pub fn rebuild_estimate(entry: &LogEntry) -> usize {
    let (len, compressed) = match entry {
        LogEntry::Batch(view) => (
            view.as_bytes().len(),
            view.header()
                .compression()
                .map_or(true, |c| c != Compression::None),
        ),
        // offset (8), size (4), CRC (4), magic (1), attributes (1).
        LogEntry::Legacy { bytes, .. } => (
            bytes.len(),
            bytes
                .get(17)
                .is_some_and(|attributes| attributes & 0x07 != 0),
        ),
    };
    let decompressed = if compressed {
        len.saturating_mul(ASSUMED_RATIO).min(DECOMPRESSION_CAP)
    } else {
        0
    };
    rebuild_peak(len, decompressed)
}

/// Decodes `entry` and re-batches its records whose offsets lie in `range`,
/// read from `source_partition`. Returns the destination batches in the
/// order they must be produced (per destination partition, in source
/// offset order).
pub fn rebatch(
    entry: &LogEntry,
    range: &Range<i64>,
    source_partition: i32,
    how: &Rebatch,
) -> Result<Vec<Piece>, RecordError> {
    rebatch_measured(entry, range, source_partition, how, &mut |_| {})
}

/// [`rebatch`], telling `peak` the memory the rebuild holds at its peak
/// ([`rebuild_peak`]) once the entry is decompressed, before any batch is
/// built.
pub fn rebatch_measured(
    entry: &LogEntry,
    range: &Range<i64>,
    source_partition: i32,
    how: &Rebatch,
    peak: &mut dyn FnMut(usize),
) -> Result<Vec<Piece>, RecordError> {
    let mut out = Builders::new(how);
    let entry_len = match entry {
        LogEntry::Batch(view) => view.as_bytes().len(),
        LogEntry::Legacy { bytes, .. } => bytes.len(),
    };
    let mut decompressed = |plain: usize| peak(rebuild_peak(entry_len, plain));
    match entry {
        LogEntry::Batch(view) => {
            let header = *view.header();
            let source_codec = header
                .compression()
                .map_err(|source| RecordError::Compression {
                    base_offset: header.base_offset,
                    source,
                })?;
            let codec = how.codec.unwrap_or(source_codec);
            let plain = kmirror_protocol::compression::decompress(
                source_codec,
                &view.payload(),
                DECOMPRESSION_CAP,
            )
            .map_err(|source| RecordError::Compression {
                base_offset: header.base_offset,
                source,
            })?;
            decompressed(if source_codec == Compression::None {
                0
            } else {
                plain.len()
            });
            for record in decode_records(plain, &header)? {
                let record = record?;
                let offset = record.offset(&header);
                if !range.contains(&offset) {
                    continue;
                }
                let partition = how.route.partition(source_partition, record.key.as_deref());
                let bound = record_bound(
                    record.key.as_deref(),
                    record.value.as_deref(),
                    record.headers.encoded_len(),
                );
                out.make_room(partition, bound)?;
                let builder = out.builder(partition, codec, offset);
                builder.push_record(&record, record.timestamp(&header))?;
                out.seal_if_full(partition)?;
            }
        }
        LogEntry::Legacy { bytes, .. } => {
            let mut records: Vec<LegacyRecord> = Vec::new();
            read_legacy_entry(bytes, DECOMPRESSION_CAP, &mut records)?;
            if bytes
                .get(17)
                .is_some_and(|attributes| attributes & 0x07 != 0)
            {
                // The wrapper's inner messages: their keys and values, and
                // about 34 bytes of framing each.
                let inner = records
                    .iter()
                    .map(|r| {
                        34 + r.key.as_ref().map_or(0, |k| k.len())
                            + r.value.as_ref().map_or(0, |v| v.len())
                    })
                    .sum::<usize>();
                decompressed(inner.max(1));
            } else {
                decompressed(0);
            }
            let codec = how.codec.unwrap_or(Compression::None);
            for r in records.iter().filter(|r| range.contains(&r.offset)) {
                let partition = how.route.partition(source_partition, r.key.as_deref());
                out.make_room(
                    partition,
                    record_bound(r.key.as_deref(), r.value.as_deref(), 0),
                )?;
                let builder = out.builder(partition, codec, r.offset);
                builder.push(
                    r.timestamp,
                    r.key.as_deref(),
                    r.value.as_deref(),
                    std::iter::empty(),
                )?;
                out.seal_if_full(partition)?;
            }
        }
    }
    out.finish()
}

/// Open builders per destination partition, with the source offsets of
/// the records in each.
struct Builders<'h> {
    how: &'h Rebatch,
    open: BTreeMap<i32, (BatchBuilder, Vec<Range<i64>>)>,
    done: Vec<Piece>,
}

impl<'h> Builders<'h> {
    fn new(how: &'h Rebatch) -> Self {
        Self {
            how,
            open: BTreeMap::new(),
            done: Vec::new(),
        }
    }

    /// The partition's open builder, about to take the record at source
    /// `offset`.
    fn builder(&mut self, partition: i32, codec: Compression, offset: i64) -> &mut BatchBuilder {
        let level = self.how.level;
        let (builder, sources) = self
            .open
            .entry(partition)
            .or_insert_with(|| (BatchBuilder::new(codec).with_level(level), Vec::new()));
        match sources.last_mut() {
            Some(last) if last.end == offset => last.end = offset + 1,
            _ => sources.push(offset..offset + 1),
        }
        builder
    }

    /// Seals the partition's open batch if `bound` more bytes could take it
    /// over the destination's limit.
    fn make_room(&mut self, partition: i32, bound: usize) -> Result<(), RecordError> {
        let Some(max) = self.how.max_batch_bytes else {
            return Ok(());
        };
        let over = self
            .open
            .get(&partition)
            .is_some_and(|(b, _)| !b.is_empty() && b.uncompressed_size() + bound > max);
        if over {
            self.seal(partition)?;
        }
        Ok(())
    }

    fn seal_if_full(&mut self, partition: i32) -> Result<(), RecordError> {
        let batch_size = self.how.batch_size;
        if self
            .open
            .get(&partition)
            .is_some_and(|(b, _)| b.uncompressed_size() >= batch_size)
        {
            self.seal(partition)?;
        }
        Ok(())
    }

    fn seal(&mut self, partition: i32) -> Result<(), RecordError> {
        if let Some((builder, sources)) = self.open.get_mut(&partition)
            && !builder.is_empty()
        {
            let piece = Self::piece(partition, builder, std::mem::take(sources))?;
            self.done.push(piece);
        }
        Ok(())
    }

    fn piece(
        partition: i32,
        builder: &mut BatchBuilder,
        sources: Vec<Range<i64>>,
    ) -> Result<Piece, RecordError> {
        let records = i32::try_from(builder.len()).unwrap_or(i32::MAX);
        let batch = builder.build(ProducerStamp::NONE)?;
        Ok(Piece {
            partition,
            batch,
            records,
            sources,
        })
    }

    fn finish(mut self) -> Result<Vec<Piece>, RecordError> {
        for (partition, (mut builder, sources)) in self.open {
            if builder.is_empty() {
                continue;
            }
            self.done
                .push(Self::piece(partition, &mut builder, sources)?);
        }
        Ok(self.done)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kmirror_protocol::record::{RecordBatchView, decode_records};

    use super::*;

    fn source_batch(base_offset: i64, keys: &[Option<&str>]) -> LogEntry {
        let mut b = BatchBuilder::new(Compression::Lz4);
        for (i, k) in keys.iter().enumerate() {
            let value = format!("v{i}");
            let headers = [(b"h".as_slice(), Some(b"1".as_slice())), (b"h", None)];
            b.push(
                1_000 + i as i64,
                k.map(str::as_bytes),
                Some(value.as_bytes()),
                headers.into_iter(),
            )
            .unwrap();
        }
        let built = b.build(ProducerStamp::NONE).unwrap();
        let mut h = built.header();
        h.base_offset = base_offset;
        let bytes = Bytes::from(built.restamp(ProducerStamp::NONE).to_bytes().to_vec());
        let mut raw = bytes.to_vec();
        raw[..8].copy_from_slice(&h.base_offset.to_be_bytes());
        LogEntry::Batch(RecordBatchView::new(Bytes::from(raw)).unwrap())
    }

    fn values(piece: &Piece) -> Vec<String> {
        let view = RecordBatchView::new(piece.batch.to_bytes()).unwrap();
        view.records(DECOMPRESSION_CAP)
            .unwrap()
            .map(|r| String::from_utf8(r.unwrap().value.unwrap().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn records_below_the_range_are_dropped_and_the_rest_keep_their_fields() {
        let entry = source_batch(100, &[Some("a"), None, Some("c"), Some("d")]);
        let how = Rebatch {
            route: Route::SamePartition,
            codec: None,
            level: None,
            batch_size: 1 << 20,
            max_batch_bytes: None,
        };
        let pieces = rebatch(&entry, &(102..104), 5, &how).unwrap();
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].partition, 5);
        assert_eq!(pieces[0].records, 2);
        assert_eq!(values(&pieces[0]), ["v2", "v3"]);
        let h = pieces[0].batch.header();
        assert_eq!(h.compression().unwrap(), Compression::Lz4);
        assert_eq!(h.base_timestamp, 1_002);
        let view = RecordBatchView::new(pieces[0].batch.to_bytes()).unwrap();
        let plain = kmirror_protocol::compression::decompress(
            Compression::Lz4,
            &view.payload(),
            DECOMPRESSION_CAP,
        )
        .unwrap();
        let first = decode_records(plain, view.header())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let headers: Vec<_> = first.headers.iter().collect();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[1].value, None);
    }

    /// The memory a rebuild is charged for: estimated before, measured
    /// once decompressed (the decoded records and the batches built from
    /// them); an uncompressed entry's records are slices of the fetched
    /// bytes, so only the new batches count.
    #[test]
    fn a_rebuild_tells_its_peak_memory() {
        let how = Rebatch {
            route: Route::SamePartition,
            codec: Some(Compression::None),
            level: None,
            batch_size: 1 << 20,
            max_batch_bytes: None,
        };
        let keys = [Some("a"); 50];
        let lz4 = source_batch(0, &keys);
        let LogEntry::Batch(view) = &lz4 else {
            unreachable!()
        };
        let plain = kmirror_protocol::compression::decompress(
            Compression::Lz4,
            &view.payload(),
            DECOMPRESSION_CAP,
        )
        .unwrap()
        .len();
        let mut peaks = Vec::new();
        let pieces = rebatch_measured(&lz4, &(0..50), 0, &how, &mut |p| peaks.push(p)).unwrap();
        assert_eq!(peaks, vec![2 * plain]);
        let built: usize = pieces.iter().map(|p| p.batch.len()).sum();
        assert!(built <= 2 * plain, "{built} > 2 x {plain}");
        assert_eq!(
            rebuild_estimate(&lz4),
            2 * ASSUMED_RATIO * view.as_bytes().len()
        );
        // Uncompressed: the new batches, about the entry's size.
        let plain_entry =
            LogEntry::Batch(RecordBatchView::new(pieces[0].batch.to_bytes()).unwrap());
        let len = pieces[0].batch.len();
        let mut peaks = Vec::new();
        rebatch_measured(&plain_entry, &(0..50), 0, &how, &mut |p| peaks.push(p)).unwrap();
        assert_eq!(peaks, vec![len]);
        assert_eq!(rebuild_estimate(&plain_entry), len);
    }

    #[test]
    fn by_key_routing_matches_the_java_partitioner_and_null_keys_stay_put() {
        let keys = [Some("k1"), Some("k2"), None, Some("k1"), Some("k3")];
        let entry = source_batch(0, &keys);
        let how = Rebatch {
            route: Route::ByKey { partitions: 3 },
            codec: Some(Compression::None),
            level: None,
            batch_size: 1 << 20,
            max_batch_bytes: None,
        };
        let pieces = rebatch(&entry, &(0..5), 7, &how).unwrap();
        let mut seen = 0;
        for piece in &pieces {
            for v in values(piece) {
                let i: usize = v[1..].parse().unwrap();
                let expected = match keys[i] {
                    Some(k) => partition_for_key(k.as_bytes(), 3).unwrap() as i32,
                    None => 7 % 3,
                };
                assert_eq!(piece.partition, expected, "record {i}");
                seen += 1;
            }
            assert_eq!(
                piece.batch.header().compression().unwrap(),
                Compression::None
            );
        }
        assert_eq!(seen, 5);
    }

    #[test]
    fn batches_are_cut_at_the_batch_size_in_order() {
        let entry = source_batch(0, &[Some("a"); 10]);
        let how = Rebatch {
            route: Route::SamePartition,
            codec: None,
            level: None,
            batch_size: 1,
            max_batch_bytes: None,
        };
        let pieces = rebatch(&entry, &(0..10), 0, &how).unwrap();
        assert_eq!(pieces.len(), 10);
        let all: Vec<String> = pieces.iter().flat_map(values).collect();
        let expected: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn a_batch_over_the_destination_limit_is_split_on_record_boundaries() {
        let entry = source_batch(0, &[Some("a"); 40]);
        let how = Rebatch {
            route: Route::SamePartition,
            codec: Some(Compression::None),
            level: None,
            batch_size: 1 << 20,
            max_batch_bytes: Some(400),
        };
        let pieces = rebatch(&entry, &(0..40), 0, &how).unwrap();
        assert!(pieces.len() > 1);
        for piece in &pieces {
            assert!(piece.batch.len() <= 400, "{} bytes", piece.batch.len());
        }
        let all: Vec<String> = pieces.iter().flat_map(values).collect();
        let expected: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
        assert_eq!(all, expected);
        // Each piece says which source offsets it holds, for the offset
        // map: together, every offset once, in order.
        let mut next = 0;
        for piece in &pieces {
            assert_eq!(piece.sources, vec![next..next + i64::from(piece.records)]);
            next += i64::from(piece.records);
        }
        assert_eq!(next, 40);
    }

    /// A zigzag varint, as record fields are written.
    fn varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    /// An uncompressed batch at `base` holding one record per delta (key
    /// and value `v<delta>`): a compacted log's batch when deltas skip.
    fn sparse_batch(base: i64, deltas: &[i64]) -> LogEntry {
        use kmirror_protocol::record::{BATCH_HEADER_LEN, BatchHeader};
        let mut payload = Vec::new();
        for &d in deltas {
            let v = format!("v{d}");
            let mut body = vec![0u8];
            varint(&mut body, d);
            varint(&mut body, d);
            for field in [v.as_bytes(), v.as_bytes()] {
                varint(&mut body, field.len() as i64);
                body.extend_from_slice(field);
            }
            varint(&mut body, 0);
            varint(&mut payload, body.len() as i64);
            payload.extend_from_slice(&body);
        }
        let mut b = BatchBuilder::new(Compression::None);
        b.push(0, None, None, std::iter::empty()).unwrap();
        let built = b.build(ProducerStamp::NONE).unwrap().to_bytes();
        let raw: [u8; BATCH_HEADER_LEN] = built[..BATCH_HEADER_LEN].try_into().unwrap();
        let mut h = BatchHeader::decode(&raw);
        h.base_offset = base;
        h.last_offset_delta = *deltas.last().unwrap() as i32;
        h.record_count = deltas.len() as i32;
        h.batch_length = (BATCH_HEADER_LEN - 12 + payload.len()) as i32;
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(&payload);
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        LogEntry::Batch(RecordBatchView::new(Bytes::from(bytes)).unwrap())
    }

    #[test]
    fn pieces_name_the_source_offsets_of_their_records() {
        // Offsets 13 and 14 compacted away; the fetch position is 11.
        let entry = sparse_batch(10, &[0, 1, 2, 5, 6]);
        let how = Rebatch {
            route: Route::SamePartition,
            codec: None,
            level: None,
            batch_size: 1 << 20,
            max_batch_bytes: None,
        };
        let pieces = rebatch(&entry, &(11..17), 0, &how).unwrap();
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].sources, vec![11..13, 15..17]);
        assert_eq!(values(&pieces[0]), ["v1", "v2", "v5", "v6"]);
        // Cut in two by the batch size: each piece its own offsets.
        let one = Rebatch {
            batch_size: 1,
            ..how
        };
        let pieces = rebatch(&entry, &(10..17), 0, &one).unwrap();
        let sources: Vec<_> = pieces.iter().map(|p| p.sources.clone()).collect();
        assert_eq!(
            sources,
            vec![
                vec![10..11],
                vec![11..12],
                vec![12..13],
                vec![15..16],
                vec![16..17]
            ]
        );
    }

    /// One v0/v1 message set entry (offset, size, CRC-32, message).
    fn legacy_message(
        offset: i64,
        magic: i8,
        attributes: i8,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut body = vec![magic as u8, attributes as u8];
        if magic == 1 {
            body.extend_from_slice(&timestamp.to_be_bytes());
        }
        for field in [key, value] {
            match field {
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    body.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    body.extend_from_slice(b);
                }
            }
        }
        let mut out = offset.to_be_bytes().to_vec();
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn old_message_sets_are_planned_and_up_converted_from_the_fetch_position() {
        use crate::fetch_plan::{FetchSettings, PlanStep, plan_partition};
        use kmirror_protocol::record::{AbortedTransactionFilter, PassthroughPolicy};
        // Offsets 10 (v0), 11 (v1), then a gzip v1 wrapper holding 12..14.
        let mut set = legacy_message(10, 0, 0, 0, Some(b"a"), Some(b"v10"));
        set.extend(legacy_message(11, 1, 0, 1_011, None, Some(b"v11")));
        let mut inner = Vec::new();
        for i in 0..3i64 {
            let value = format!("v{}", 12 + i);
            inner.extend(legacy_message(
                i,
                1,
                0,
                1_012 + i,
                Some(b"k"),
                Some(value.as_bytes()),
            ));
        }
        let mut gz = Vec::new();
        kmirror_protocol::compression::compress(Compression::Gzip, &inner, None, &mut gz).unwrap();
        set.extend(legacy_message(14, 1, 1, 1_014, None, Some(&gz)));

        // The fetch position is 11: offset 10 is below it.
        let plan = plan_partition(
            Bytes::from(set),
            AbortedTransactionFilter::default(),
            &PassthroughPolicy::at(11),
            FetchSettings::default(),
        )
        .unwrap();
        assert_eq!(plan.next_position(), 15);
        let how = Rebatch {
            route: Route::SamePartition,
            codec: Some(Compression::Lz4),
            level: None,
            batch_size: 1 << 20,
            max_batch_bytes: None,
        };
        let mut values = Vec::new();
        let mut timestamps = Vec::new();
        for step in plan.into_steps() {
            let PlanStep::SlowPath { range, entry, .. } = step else {
                panic!("an old message set entry must take the slow path: {step:?}");
            };
            for piece in rebatch(&entry, &range, 0, &how).unwrap() {
                let view = RecordBatchView::new(piece.batch.to_bytes()).unwrap();
                assert_eq!(view.header().magic, 2);
                assert_eq!(view.header().compression().unwrap(), Compression::Lz4);
                for record in view.records(DECOMPRESSION_CAP).unwrap() {
                    let record = record.unwrap();
                    timestamps.push(record.timestamp(view.header()));
                    values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
                }
            }
        }
        assert_eq!(values, ["v11", "v12", "v13", "v14"]);
        assert_eq!(timestamps, [1_011, 1_012, 1_013, 1_014]);
    }
}
