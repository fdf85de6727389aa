//! Building a v2 batch from records (the slow path): dense offset deltas
//! 0..n-1, `baseOffset` 0, leader epoch -1, the payload compressed as one
//! block.

use bytes::{BufMut, Bytes};

use super::attrs::{TimestampType, attributes};
use super::batch::BatchHeader;
use super::rewrite::{ProduceBatch, ProducerStamp};
use super::varint::{put_varint, put_varlong, varint_len, varlong_len};
use crate::compression::{self, Compression};
use crate::error::RecordError;

/// Accumulates records and builds one batch.
///
/// Buffers are reused across [`BatchBuilder::reset`], so a long-lived builder
/// allocates nothing per record or per batch once warm.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    compression: Compression,
    level: Option<i32>,
    timestamp_type: TimestampType,
    records: Vec<u8>,
    scratch: Vec<u8>,
    count: i32,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
}

impl BatchBuilder {
    /// A builder for batches compressed with `compression` at its default
    /// level, with CreateTime timestamps.
    pub fn new(compression: Compression) -> Self {
        Self {
            compression,
            level: None,
            timestamp_type: TimestampType::CreateTime,
            records: Vec::new(),
            scratch: Vec::new(),
            count: 0,
            base_timestamp: None,
            max_timestamp: -1,
        }
    }

    /// Sets the compression level (`None`: the codec's default).
    pub fn with_level(mut self, level: Option<i32>) -> Self {
        self.level = level;
        self
    }

    /// Marks the batch LogAppendTime: `max_timestamp` must then be the
    /// append time, passed as every record's timestamp.
    pub fn with_timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }

    /// Number of records pushed.
    pub fn len(&self) -> usize {
        usize::try_from(self.count).unwrap_or(0)
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch if built without compression: an upper bound used
    /// against `batch.size` and `max.message.bytes`.
    pub fn uncompressed_size(&self) -> usize {
        super::BATCH_HEADER_LEN + self.records.len()
    }

    /// Appends a record with an absolute `timestamp`. Its offset delta is the
    /// number of records before it.
    pub fn push<'h>(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl ExactSizeIterator<Item = (&'h [u8], Option<&'h [u8]>)>,
    ) -> Result<(), RecordError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let count = headers.len();
        for (k, v) in headers {
            put_sized(&mut scratch, Some(k))?;
            put_sized(&mut scratch, v)?;
        }
        let result = self.push_encoded(timestamp, key, value, count, &scratch);
        self.scratch = scratch;
        result
    }

    /// Appends a decoded record with an absolute `timestamp`, copying its
    /// headers in their wire encoding (no per-header work).
    pub fn push_record(
        &mut self,
        record: &super::Record,
        timestamp: i64,
    ) -> Result<(), RecordError> {
        self.push_encoded(
            timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            record.headers.len(),
            record.headers.raw(),
        )
    }

    fn push_encoded(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        header_count: usize,
        headers: &[u8],
    ) -> Result<(), RecordError> {
        if self.count == i32::MAX {
            return Err(too_large("record count"));
        }
        let header_count = i32::try_from(header_count).map_err(|_| too_large("header count"))?;
        let base = *self.base_timestamp.get_or_insert(timestamp);
        let ts_delta = timestamp.wrapping_sub(base);
        let body = 1
            + varlong_len(ts_delta)
            + varint_len(self.count)
            + sized_len(key)?
            + sized_len(value)?
            + varint_len(header_count)
            + headers.len();
        let body = i32::try_from(body).map_err(|_| too_large("record"))?;
        let buf = &mut self.records;
        put_varint(buf, body);
        buf.put_i8(0);
        put_varlong(buf, ts_delta);
        put_varint(buf, self.count);
        put_sized(buf, key)?;
        put_sized(buf, value)?;
        put_varint(buf, header_count);
        buf.put_slice(headers);
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        Ok(())
    }

    /// Builds the batch with the producer fields of `stamp`, compressing the
    /// records, and leaves the builder empty for the next batch.
    pub fn build(&mut self, stamp: ProducerStamp) -> Result<ProduceBatch, RecordError> {
        if self.count == 0 {
            return Err(RecordError::Build(
                "a batch needs at least one record".into(),
            ));
        }
        let payload = if self.compression == Compression::None {
            Bytes::from(std::mem::take(&mut self.records))
        } else {
            let mut out = Vec::with_capacity(self.records.len() / 2 + 64);
            compression::compress(self.compression, &self.records, self.level, &mut out)
                .map_err(|e| RecordError::Build(e.to_string()))?;
            Bytes::from(out)
        };
        let mut attrs = i16::from(self.compression.id());
        if self.timestamp_type == TimestampType::LogAppendTime {
            attrs |= attributes::TIMESTAMP_TYPE;
        }
        let header = BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: attrs,
            last_offset_delta: self.count - 1,
            base_timestamp: self.base_timestamp.unwrap_or(-1),
            max_timestamp: self.max_timestamp,
            producer_id: stamp.producer_id,
            producer_epoch: stamp.producer_epoch,
            base_sequence: stamp.base_sequence,
            record_count: self.count,
        };
        self.reset();
        Ok(ProduceBatch::seal(header, payload))
    }

    /// Drops the pushed records, keeping the buffer's memory.
    pub fn reset(&mut self) {
        self.records.clear();
        self.count = 0;
        self.base_timestamp = None;
        self.max_timestamp = -1;
    }
}

fn too_large(what: &str) -> RecordError {
    RecordError::Build(format!("{what} too large for a record"))
}

fn sized_len(b: Option<&[u8]>) -> Result<usize, RecordError> {
    match b {
        None => Ok(1),
        Some(b) => {
            let n = i32::try_from(b.len()).map_err(|_| too_large("field"))?;
            Ok(varint_len(n) + b.len())
        }
    }
}

fn put_sized(buf: &mut Vec<u8>, b: Option<&[u8]>) -> Result<(), RecordError> {
    match b {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, i32::try_from(b.len()).map_err(|_| too_large("field"))?);
            buf.put_slice(b);
        }
    }
    Ok(())
}
