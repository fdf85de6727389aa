//! A v2 record batch seen through its header, and the iterator that cuts a
//! partition's fetched record bytes into batches.
//!
//! A [`RecordBatchView`] is a slice of the fetched buffer plus its decoded
//! 61-byte header; reading it never copies or decodes the payload.

use bytes::{Buf, BufMut, Bytes};

use super::attrs::{TimestampType, attributes};
use crate::compression::Compression;
use crate::error::{CompressionError, RecordError};

/// Size of a v2 batch header, from `baseOffset` to `recordCount`.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before a batch's length-counted part: `baseOffset` and `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// Offset of the magic byte, the same in every message format.
const MAGIC_OFFSET: usize = 16;
/// Offset of the first byte covered by the v2 CRC (the attributes).
pub(crate) const CRC_START: usize = 21;

/// The decoded header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (in the source log).
    pub base_offset: i64,
    /// Bytes after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 here.
    pub magic: i8,
    /// CRC-32C of bytes 21 to the end.
    pub crc: u32,
    /// Codec, timestamp type, transactional, control and delete-horizon bits.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon, see attributes).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (the append time for LogAppendTime).
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

impl BatchHeader {
    /// Decodes a header from its 61 bytes.
    pub fn decode(raw: &[u8; BATCH_HEADER_LEN]) -> Self {
        let mut b = raw.as_slice();
        Self {
            base_offset: b.get_i64(),
            batch_length: b.get_i32(),
            partition_leader_epoch: b.get_i32(),
            magic: b.get_i8(),
            crc: b.get_u32(),
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            base_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            record_count: b.get_i32(),
        }
    }

    /// Encodes the header into its 61 bytes (the `crc` field as stored).
    pub fn encode(&self) -> [u8; BATCH_HEADER_LEN] {
        let mut raw = [0u8; BATCH_HEADER_LEN];
        let mut b = raw.as_mut_slice();
        b.put_i64(self.base_offset);
        b.put_i32(self.batch_length);
        b.put_i32(self.partition_leader_epoch);
        b.put_i8(self.magic);
        b.put_u32(self.crc);
        b.put_i16(self.attributes);
        b.put_i32(self.last_offset_delta);
        b.put_i64(self.base_timestamp);
        b.put_i64(self.max_timestamp);
        b.put_i64(self.producer_id);
        b.put_i16(self.producer_epoch);
        b.put_i32(self.base_sequence);
        b.put_i32(self.record_count);
        raw
    }

    /// The codec of the payload.
    pub fn compression(&self) -> Result<Compression, CompressionError> {
        Compression::from_attributes(self.attributes)
    }

    /// The timestamp type.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & attributes::TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & attributes::TRANSACTIONAL != 0
    }

    /// Whether the batch is a control batch (a transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & attributes::CONTROL != 0
    }

    /// Whether `base_timestamp` holds a delete horizon.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & attributes::DELETE_HORIZON != 0
    }

    /// The offset of the last record (`base_offset + last_offset_delta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset after this batch: where the next fetch continues.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Whether record offsets are dense: `lastOffsetDelta == recordCount - 1`.
    pub fn has_dense_offsets(&self) -> bool {
        i64::from(self.last_offset_delta) == i64::from(self.record_count) - 1
    }

    /// Total size of the batch including the 12-byte log overhead.
    pub fn size_in_bytes(&self) -> usize {
        usize::try_from(self.batch_length).unwrap_or(0) + LOG_OVERHEAD
    }
}

/// A v2 record batch: its decoded header and its bytes, a slice of the
/// buffer it was fetched in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatchView {
    header: BatchHeader,
    bytes: Bytes,
}

impl RecordBatchView {
    /// Views `bytes` as exactly one v2 batch: at least a full header, magic
    /// 2, and a `batchLength` that matches the length of `bytes`.
    pub fn new(bytes: Bytes) -> Result<Self, RecordError> {
        let raw: &[u8; BATCH_HEADER_LEN] = bytes
            .get(..BATCH_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| RecordError::Malformed {
                base_offset: base_offset_of(&bytes),
                reason: format!(
                    "{} bytes cannot hold a {BATCH_HEADER_LEN}-byte batch header",
                    bytes.len()
                ),
            })?;
        let header = BatchHeader::decode(raw);
        if header.magic != 2 {
            return Err(RecordError::UnknownMagic {
                base_offset: header.base_offset,
                magic: header.magic,
            });
        }
        if header.size_in_bytes() != bytes.len() {
            return Err(RecordError::Malformed {
                base_offset: header.base_offset,
                reason: format!(
                    "batchLength {} does not match the {} bytes of the batch",
                    header.batch_length,
                    bytes.len()
                ),
            });
        }
        Ok(Self { header, bytes })
    }

    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch as it was fetched.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The records section after the header (compressed if a codec is set),
    /// as a slice of the fetched buffer.
    pub fn payload(&self) -> Bytes {
        self.bytes.slice(BATCH_HEADER_LEN..)
    }

    /// The CRC-32C of bytes 21 to the end, as it should be stored.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(self.bytes.get(CRC_START..).unwrap_or_default())
    }

    /// Checks the stored CRC against the bytes.
    pub fn verify_crc(&self) -> Result<(), RecordError> {
        let computed = self.compute_crc();
        if computed == self.header.crc {
            Ok(())
        } else {
            Err(RecordError::CrcMismatch {
                base_offset: self.header.base_offset,
                stored: self.header.crc,
                computed,
            })
        }
    }

    /// Decompresses the payload (at most `cap` bytes) and returns an
    /// iterator over its records. Without a codec this is a slice, no copy.
    pub fn records(&self, cap: usize) -> Result<super::RecordIter, RecordError> {
        let codec = self
            .header
            .compression()
            .map_err(|source| RecordError::Compression {
                base_offset: self.header.base_offset,
                source,
            })?;
        let plain =
            crate::compression::decompress(codec, &self.payload(), cap).map_err(|source| {
                RecordError::Compression {
                    base_offset: self.header.base_offset,
                    source,
                }
            })?;
        super::decode_records(plain, &self.header)
    }
}

fn base_offset_of(bytes: &[u8]) -> i64 {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(-1, i64::from_be_bytes)
}

/// One entry of a partition's record bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// A v2 record batch.
    Batch(RecordBatchView),
    /// A v0 or v1 message (possibly a compressed wrapper); read it with
    /// [`super::legacy`].
    Legacy {
        /// The message's offset.
        offset: i64,
        /// 0 or 1.
        magic: i8,
        /// The whole entry: offset, size and message.
        bytes: Bytes,
    },
}

/// Iterates the entries of one partition's record bytes from a Fetch
/// response.
///
/// A truncated last entry (the broker cut the response at its size limit) ends
/// the iteration without an error; [`RecordBatches::truncated_bytes`] tells
/// how many bytes were left. A malformed entry yields one error and ends the
/// iteration.
#[derive(Debug, Clone)]
pub struct RecordBatches {
    rest: Bytes,
    failed: bool,
}

impl RecordBatches {
    /// Iterates the entries in `records`.
    pub fn new(records: Bytes) -> Self {
        Self {
            rest: records,
            failed: false,
        }
    }

    /// Bytes of an incomplete last entry that were not returned (0 until the
    /// iterator is exhausted).
    pub fn truncated_bytes(&self) -> usize {
        if self.failed { 0 } else { self.rest.len() }
    }

    fn fail(&mut self, err: RecordError) -> Option<Result<LogEntry, RecordError>> {
        self.failed = true;
        Some(Err(err))
    }
}

impl Iterator for RecordBatches {
    type Item = Result<LogEntry, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.len() < LOG_OVERHEAD {
            return None;
        }
        let base_offset = base_offset_of(&self.rest);
        let length = self
            .rest
            .get(8..12)
            .and_then(|b| b.try_into().ok())
            .map_or(-1, i32::from_be_bytes);
        // The smallest legal v0 message is 14 bytes after the size field.
        let Ok(length) = usize::try_from(length) else {
            return self.fail(RecordError::Malformed {
                base_offset,
                reason: format!("negative batch length {length}"),
            });
        };
        let total = length.saturating_add(LOG_OVERHEAD);
        if self.rest.len() < total {
            // Truncated by the broker's fetch size limit: not an error.
            return None;
        }
        let Some(&magic) = self.rest.get(MAGIC_OFFSET) else {
            return self.fail(RecordError::Malformed {
                base_offset,
                reason: format!("entry of {length} bytes too short for a magic byte"),
            });
        };
        let entry = self.rest.split_to(total);
        match magic as i8 {
            2 => match RecordBatchView::new(entry) {
                Ok(view) => Some(Ok(LogEntry::Batch(view))),
                Err(e) => self.fail(e),
            },
            m @ (0 | 1) => Some(Ok(LogEntry::Legacy {
                offset: base_offset,
                magic: m,
                bytes: entry,
            })),
            m => self.fail(RecordError::UnknownMagic {
                base_offset,
                magic: m,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, ProducerStamp};

    fn batch(n: usize) -> Bytes {
        let mut b = BatchBuilder::new(Compression::None);
        for i in 0..n {
            b.push(
                1000 + i as i64,
                Some(b"k"),
                Some(format!("v{i}").as_bytes()),
                std::iter::empty(),
            )
            .unwrap();
        }
        b.build(ProducerStamp::NONE).unwrap().to_bytes()
    }

    fn with_base_offset(bytes: &Bytes, base: i64) -> Bytes {
        let mut v = bytes.to_vec();
        v[..8].copy_from_slice(&base.to_be_bytes());
        Bytes::from(v)
    }

    #[test]
    fn header_fields_roundtrip() {
        let raw = batch(3);
        let view = RecordBatchView::new(raw.clone()).unwrap();
        let h = view.header();
        assert_eq!(h.magic, 2);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1000);
        assert_eq!(h.max_timestamp, 1002);
        assert_eq!(h.partition_leader_epoch, -1);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (-1, -1, -1)
        );
        assert_eq!(h.size_in_bytes(), raw.len());
        assert_eq!(&h.encode()[..], &raw[..BATCH_HEADER_LEN]);
        view.verify_crc().unwrap();
    }

    #[test]
    fn iterates_batches_and_ignores_truncated_tail() {
        let a = with_base_offset(&batch(2), 10);
        let b = with_base_offset(&batch(5), 12);
        let mut all = Vec::new();
        all.extend_from_slice(&a);
        all.extend_from_slice(&b);
        all.extend_from_slice(&b[..b.len() - 7]);
        let mut it = RecordBatches::new(Bytes::from(all));
        let offsets: Vec<i64> = it
            .by_ref()
            .map(|e| match e.unwrap() {
                LogEntry::Batch(v) => v.header().base_offset,
                LogEntry::Legacy { .. } => panic!("legacy"),
            })
            .collect();
        assert_eq!(offsets, vec![10, 12]);
        assert_eq!(it.truncated_bytes(), b.len() - 7);
    }

    #[test]
    fn batch_payload_is_a_slice_of_the_fetched_buffer() {
        let raw = batch(4);
        let mut it = RecordBatches::new(raw.clone());
        let Some(Ok(LogEntry::Batch(view))) = it.next() else {
            panic!("one batch")
        };
        let payload = view.payload();
        assert_eq!(payload.as_ptr(), raw[BATCH_HEADER_LEN..].as_ptr());
    }

    #[test]
    fn corrupted_byte_is_a_crc_mismatch() {
        let mut v = batch(2).to_vec();
        let last = v.len() - 1;
        v[last] ^= 0xff;
        let view = RecordBatchView::new(Bytes::from(v)).unwrap();
        assert!(matches!(
            view.verify_crc(),
            Err(RecordError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn negative_length_and_unknown_magic_stop_with_error() {
        let mut v = batch(1).to_vec();
        v[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        let mut it = RecordBatches::new(Bytes::from(v));
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());

        let mut v = batch(1).to_vec();
        v[16] = 7;
        let mut it = RecordBatches::new(Bytes::from(v));
        assert!(matches!(
            it.next(),
            Some(Err(RecordError::UnknownMagic { magic: 7, .. }))
        ));
    }

    #[test]
    fn v2_batch_shorter_than_its_header_is_malformed() {
        let mut v = vec![0u8; 30];
        v[8..12].copy_from_slice(&18i32.to_be_bytes());
        v[16] = 2;
        let mut it = RecordBatches::new(Bytes::from(v));
        assert!(matches!(
            it.next(),
            Some(Err(RecordError::Malformed { .. }))
        ));
    }
}
