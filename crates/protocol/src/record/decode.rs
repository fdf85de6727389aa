//! Decoding the records of a v2 batch (the slow path).
//!
//! Keys, values and headers are slices of the (decompressed) records buffer:
//! decoding allocates nothing per record. Headers keep their order and
//! repeated keys; a null key and a null value stay null.

use bytes::{Buf, Bytes};

use super::batch::BatchHeader;
use super::varint::{read_varint, read_varlong};
use crate::error::RecordError;

/// The smallest encoded record: length, attributes, timestamp delta, offset
/// delta, key length, value length and header count, one byte each.
const MIN_RECORD_LEN: usize = 7;

/// One record of a v2 batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Record attributes (unused by Kafka today, kept as read).
    pub attributes: i8,
    /// Timestamp relative to the batch's `base_timestamp`.
    pub timestamp_delta: i64,
    /// Offset relative to the batch's `base_offset`.
    pub offset_delta: i32,
    /// The key, `None` for a null key.
    pub key: Option<Bytes>,
    /// The value, `None` for a null value (a tombstone).
    pub value: Option<Bytes>,
    /// The headers, in order, repeated keys kept.
    pub headers: RecordHeaders,
}

impl Record {
    /// The absolute offset of this record in a batch with `header`.
    pub fn offset(&self, header: &BatchHeader) -> i64 {
        header
            .base_offset
            .saturating_add(i64::from(self.offset_delta))
    }

    /// The absolute timestamp: the batch's append time for LogAppendTime
    /// batches, else `base_timestamp + timestamp_delta`.
    pub fn timestamp(&self, header: &BatchHeader) -> i64 {
        match header.timestamp_type() {
            super::TimestampType::LogAppendTime => header.max_timestamp,
            super::TimestampType::CreateTime => {
                header.base_timestamp.saturating_add(self.timestamp_delta)
            }
        }
    }
}

/// One record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header key (UTF-8 by convention; kept as bytes).
    pub key: Bytes,
    /// The header value, `None` for null.
    pub value: Option<Bytes>,
}

/// A record's headers, validated when the record was decoded and iterated
/// lazily from the records buffer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordHeaders {
    count: usize,
    raw: Bytes,
}

impl RecordHeaders {
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The headers in their wire encoding (without the count).
    pub(crate) fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Bytes the headers take in a record's wire encoding (without their
    /// count).
    pub fn encoded_len(&self) -> usize {
        self.raw.len()
    }

    /// The headers in order.
    pub fn iter(&self) -> HeaderIter {
        HeaderIter {
            left: self.count,
            raw: self.raw.clone(),
        }
    }
}

/// Iterator over [`RecordHeaders`].
#[derive(Debug, Clone)]
pub struct HeaderIter {
    left: usize,
    raw: Bytes,
}

impl Iterator for HeaderIter {
    type Item = Header;

    fn next(&mut self) -> Option<Header> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Validated in `read_headers`; a failure here cannot happen and ends
        // the iteration rather than panicking.
        let key = read_sized(&mut self.raw).ok()??;
        let value = read_sized(&mut self.raw).ok()?;
        Some(Header { key, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for HeaderIter {}

/// Reads a varint-length-prefixed field; `Ok(None)` for length -1.
fn read_sized(buf: &mut Bytes) -> Result<Option<Bytes>, &'static str> {
    let len = read_varint(buf).ok_or("truncated length varint")?;
    match len {
        -1 => Ok(None),
        n if n < -1 => Err("negative length"),
        n => {
            let n = n as usize;
            if buf.remaining() < n {
                return Err("length beyond the record");
            }
            Ok(Some(buf.split_to(n)))
        }
    }
}

/// Iterates the records of one batch.
#[derive(Debug, Clone)]
pub struct RecordIter {
    buf: Bytes,
    left: usize,
    base_offset: i64,
    failed: bool,
}

/// Iterates the `header.record_count` records in `records` (the batch's
/// payload after decompression).
///
/// Fails at once if the count cannot fit in the bytes; each record is then
/// checked as it is read, and bytes left after the last record are an error
/// (as in Apache Kafka).
pub fn decode_records(records: Bytes, header: &BatchHeader) -> Result<RecordIter, RecordError> {
    let count = usize::try_from(header.record_count).map_err(|_| RecordError::Malformed {
        base_offset: header.base_offset,
        reason: format!("negative record count {}", header.record_count),
    })?;
    if count.saturating_mul(MIN_RECORD_LEN) > records.len() {
        return Err(RecordError::Malformed {
            base_offset: header.base_offset,
            reason: format!(
                "{count} records cannot fit in {} bytes of records",
                records.len()
            ),
        });
    }
    Ok(RecordIter {
        buf: records,
        left: count,
        base_offset: header.base_offset,
        failed: false,
    })
}

impl RecordIter {
    fn malformed(&mut self, reason: String) -> Option<Result<Record, RecordError>> {
        self.failed = true;
        Some(Err(RecordError::Malformed {
            base_offset: self.base_offset,
            reason,
        }))
    }

    fn read_record(&mut self) -> Result<Record, String> {
        let len = read_varint(&mut self.buf).ok_or("truncated record length")?;
        let len = usize::try_from(len).map_err(|_| format!("negative record length {len}"))?;
        if self.buf.remaining() < len {
            return Err(format!(
                "record of {len} bytes but only {} remain",
                self.buf.remaining()
            ));
        }
        let mut body = self.buf.split_to(len);
        if !body.has_remaining() {
            return Err("empty record".into());
        }
        let attributes = body.get_i8();
        let timestamp_delta = read_varlong(&mut body).ok_or("bad timestamp delta")?;
        let offset_delta = read_varint(&mut body).ok_or("bad offset delta")?;
        let key = read_sized(&mut body).map_err(|e| format!("key: {e}"))?;
        let value = read_sized(&mut body).map_err(|e| format!("value: {e}"))?;
        let headers = read_headers(&mut body)?;
        if body.has_remaining() {
            return Err(format!(
                "{} bytes left inside a record after its headers",
                body.remaining()
            ));
        }
        Ok(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        })
    }
}

fn read_headers(body: &mut Bytes) -> Result<RecordHeaders, String> {
    let count = read_varint(body).ok_or("bad header count")?;
    let count = usize::try_from(count).map_err(|_| format!("negative header count {count}"))?;
    let start = body.clone();
    for i in 0..count {
        match read_sized(body) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("header {i} has a null key")),
            Err(e) => return Err(format!("header {i} key: {e}")),
        }
        read_sized(body).map_err(|e| format!("header {i} value: {e}"))?;
    }
    let used = start.len() - body.len();
    Ok(RecordHeaders {
        count,
        raw: start.slice(..used),
    })
}

impl Iterator for RecordIter {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.left == 0 {
            if self.buf.has_remaining() {
                let n = self.buf.remaining();
                return self.malformed(format!("{n} bytes left after the last record"));
            }
            return None;
        }
        self.left -= 1;
        match self.read_record() {
            Ok(r) => Some(Ok(r)),
            Err(reason) => self.malformed(reason),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left.saturating_add(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::Compression;
    use crate::record::{BatchBuilder, ProducerStamp, RecordBatchView};

    type TestRecord<'a> = (
        Option<&'a [u8]>,
        Option<&'a [u8]>,
        Vec<(&'a [u8], Option<&'a [u8]>)>,
    );

    fn build(records: &[TestRecord<'_>]) -> RecordBatchView {
        let mut b = BatchBuilder::new(Compression::None);
        for (i, (k, v, h)) in records.iter().enumerate() {
            b.push(50 + i as i64, *k, *v, h.iter().copied()).unwrap();
        }
        RecordBatchView::new(b.build(ProducerStamp::NONE).unwrap().to_bytes()).unwrap()
    }

    #[test]
    fn null_key_null_value_and_repeated_headers_survive() {
        let view = build(&[
            (None, Some(b"v0"), vec![]),
            (
                Some(b"k1"),
                None,
                vec![(b"h", Some(b"1")), (b"h", Some(b"2")), (b"x", None)],
            ),
        ]);
        let recs: Vec<Record> = view.records(1 << 20).unwrap().map(Result::unwrap).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].key, None);
        assert_eq!(recs[0].value.as_deref(), Some(&b"v0"[..]));
        assert_eq!(recs[1].value, None);
        let headers: Vec<Header> = recs[1].headers.iter().collect();
        assert_eq!(headers.len(), 3);
        assert_eq!(
            (&headers[0].key[..], headers[0].value.as_deref()),
            (&b"h"[..], Some(&b"1"[..]))
        );
        assert_eq!(
            (&headers[1].key[..], headers[1].value.as_deref()),
            (&b"h"[..], Some(&b"2"[..]))
        );
        assert_eq!(
            (&headers[2].key[..], headers[2].value.as_deref()),
            (&b"x"[..], None)
        );
        assert_eq!(recs[1].offset(view.header()), 1);
        assert_eq!(recs[1].timestamp(view.header()), 51);
    }

    #[test]
    fn keys_and_values_are_slices_of_the_batch() {
        let view = build(&[(Some(b"key"), Some(b"value"), vec![])]);
        let rec = view.records(1 << 20).unwrap().next().unwrap().unwrap();
        let range = view.as_bytes().as_ptr_range();
        assert!(range.contains(&rec.value.unwrap().as_ptr()));
    }

    #[test]
    fn count_larger_than_bytes_is_refused_up_front() {
        let view = build(&[(Some(b"k"), Some(b"v"), vec![])]);
        let mut header = *view.header();
        header.record_count = i32::MAX;
        assert!(decode_records(view.payload(), &header).is_err());
    }

    #[test]
    fn trailing_bytes_and_truncation_are_errors() {
        let view = build(&[(Some(b"k"), Some(b"v"), vec![])]);
        let mut payload = view.payload().to_vec();
        payload.push(0);
        let mut it = decode_records(Bytes::from(payload.clone()), view.header()).unwrap();
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_err());
        for cut in 0..payload.len() - 1 {
            let header = *view.header();
            if let Ok(it) = decode_records(Bytes::copy_from_slice(&payload[..cut]), &header) {
                assert!(it.into_iter().any(|r| r.is_err()), "cut at {cut}");
            }
        }
    }
}
