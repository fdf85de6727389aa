//! Message sets v0 and v1 (magic 0 and 1), the formats before record
//! batches, and their up-conversion to v2 on the slow path.
//!
//! Old data can still come back from a broker in these formats. An entry is
//! one message, or a compressed wrapper whose value is an inner message set.
//! Reading flattens wrappers into [`LegacyRecord`]s with absolute offsets
//! and timestamps; [`up_convert`] builds v2 batches from them.

use bytes::{Buf, Bytes};

use super::TimestampType;
use super::builder::BatchBuilder;
use super::rewrite::{ProduceBatch, ProducerStamp};
use crate::compression::{self, Compression};
use crate::error::RecordError;

/// `offset`, `size`, `crc`, `magic`, `attributes`, key length, value length.
const V0_MIN_ENTRY: usize = 8 + 4 + 4 + 1 + 1 + 4 + 4;

/// Timestamp of records that have none (magic 0).
pub const NO_TIMESTAMP: i64 = -1;

/// One record read from a v0/v1 message set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyRecord {
    /// Absolute offset in the source log.
    pub offset: i64,
    /// Timestamp ([`NO_TIMESTAMP`] for magic 0; the wrapper's append time for
    /// LogAppendTime wrappers).
    pub timestamp: i64,
    /// The message's timestamp type as stored.
    pub timestamp_type: TimestampType,
    /// The key, `None` for null.
    pub key: Option<Bytes>,
    /// The value, `None` for null.
    pub value: Option<Bytes>,
}

struct Message {
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

fn malformed(offset: i64, reason: impl Into<String>) -> RecordError {
    RecordError::Malformed {
        base_offset: offset,
        reason: reason.into(),
    }
}

/// Parses one entry (offset, size, message) and checks its CRC-32.
fn parse_message(entry: &mut Bytes) -> Result<Message, RecordError> {
    if entry.remaining() < V0_MIN_ENTRY {
        return Err(malformed(-1, "message shorter than a v0 header"));
    }
    let offset = entry.get_i64();
    let size = entry.get_i32();
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s <= entry.remaining())
        .ok_or_else(|| {
            malformed(
                offset,
                format!("message size {size} beyond the bytes present"),
            )
        })?;
    let mut msg = entry.split_to(size);
    if msg.remaining() < 4 + 1 + 1 {
        return Err(malformed(offset, "message too short"));
    }
    let stored_crc = msg.get_u32();
    let computed = crc32fast::hash(&msg);
    if stored_crc != computed {
        return Err(RecordError::CrcMismatch {
            base_offset: offset,
            stored: stored_crc,
            computed,
        });
    }
    let magic = msg.get_i8();
    let attributes = msg.get_i8();
    let timestamp = match magic {
        0 => NO_TIMESTAMP,
        1 if msg.remaining() >= 8 => msg.get_i64(),
        1 => return Err(malformed(offset, "v1 message too short for its timestamp")),
        m => {
            return Err(RecordError::UnknownMagic {
                base_offset: offset,
                magic: m,
            });
        }
    };
    let key = read_bytes(&mut msg, offset)?;
    let value = read_bytes(&mut msg, offset)?;
    if msg.has_remaining() {
        return Err(malformed(offset, "bytes left after the message value"));
    }
    Ok(Message {
        offset,
        magic,
        attributes,
        timestamp,
        key,
        value,
    })
}

fn read_bytes(msg: &mut Bytes, offset: i64) -> Result<Option<Bytes>, RecordError> {
    if msg.remaining() < 4 {
        return Err(malformed(offset, "truncated length"));
    }
    match msg.get_i32() {
        -1 => Ok(None),
        n => usize::try_from(n)
            .ok()
            .filter(|n| *n <= msg.remaining())
            .map(|n| Some(msg.split_to(n)))
            .ok_or_else(|| malformed(offset, format!("length {n} beyond the message"))),
    }
}

fn timestamp_type(attributes: i8) -> TimestampType {
    if attributes & 0x08 != 0 {
        TimestampType::LogAppendTime
    } else {
        TimestampType::CreateTime
    }
}

/// Reads one v0/v1 entry (as returned by [`super::LogEntry::Legacy`]) and
/// appends its records to `out`, decompressing a wrapper into at most `cap`
/// bytes.
pub fn read_legacy_entry(
    entry: &Bytes,
    cap: usize,
    out: &mut Vec<LegacyRecord>,
) -> Result<(), RecordError> {
    let mut rest = entry.clone();
    let wrapper = parse_message(&mut rest)?;
    let codec_id = (wrapper.attributes & 0x07) as u8;
    if codec_id == 0 {
        out.push(LegacyRecord {
            offset: wrapper.offset,
            timestamp: wrapper.timestamp,
            timestamp_type: timestamp_type(wrapper.attributes),
            key: wrapper.key,
            value: wrapper.value,
        });
        return Ok(());
    }
    let codec = match Compression::from_attributes(i16::from(codec_id)) {
        Ok(c @ (Compression::Gzip | Compression::Snappy | Compression::Lz4)) => c,
        _ => {
            return Err(malformed(
                wrapper.offset,
                format!(
                    "codec id {codec_id} is not valid in message format v{}",
                    wrapper.magic
                ),
            ));
        }
    };
    let compressed = wrapper.value.clone().unwrap_or_default();
    let decompressed = if codec == Compression::Lz4 && wrapper.magic == 0 {
        compression::decompress_lz4_legacy_v0(&compressed, cap)
    } else {
        compression::decompress(codec, &compressed, cap)
    }
    .map_err(|source| RecordError::Compression {
        base_offset: wrapper.offset,
        source,
    })?;

    let start = out.len();
    let mut inner = decompressed;
    while inner.has_remaining() {
        let msg = parse_message(&mut inner)?;
        if msg.attributes & 0x07 != 0 {
            return Err(malformed(
                wrapper.offset,
                "nested compression in a wrapper message",
            ));
        }
        if msg.magic != wrapper.magic {
            return Err(malformed(
                wrapper.offset,
                "inner message magic differs from the wrapper",
            ));
        }
        let log_append = timestamp_type(wrapper.attributes) == TimestampType::LogAppendTime;
        out.push(LegacyRecord {
            offset: msg.offset,
            timestamp: if log_append {
                wrapper.timestamp
            } else {
                msg.timestamp
            },
            timestamp_type: if log_append {
                TimestampType::LogAppendTime
            } else {
                timestamp_type(msg.attributes)
            },
            key: msg.key,
            value: msg.value,
        });
    }
    // Magic 1 wrappers carry relative inner offsets and the absolute offset
    // of the last inner message; magic 0 inner offsets are absolute.
    if wrapper.magic == 1 {
        let added = out.get_mut(start..).unwrap_or_default();
        if let Some(last_relative) = added.last().map(|r| r.offset) {
            let base = wrapper.offset.saturating_sub(last_relative);
            for r in added.iter_mut() {
                r.offset = base.saturating_add(r.offset);
            }
        }
    }
    Ok(())
}

/// Builds a v2 batch from the legacy records at or after `from_offset`,
/// keeping keys, values and timestamps (a LogAppendTime message keeps the
/// append time as its timestamp). Returns `None` if no record qualifies.
pub fn up_convert(
    records: &[LegacyRecord],
    from_offset: i64,
    builder: &mut BatchBuilder,
    stamp: ProducerStamp,
) -> Result<Option<ProduceBatch>, RecordError> {
    builder.reset();
    for r in records.iter().filter(|r| r.offset >= from_offset) {
        builder.push(
            r.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            std::iter::empty(),
        )?;
    }
    if builder.is_empty() {
        return Ok(None);
    }
    builder.build(stamp).map(Some)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::BufMut;

    /// Encodes one v0/v1 message entry.
    pub(crate) fn message(
        offset: i64,
        magic: i8,
        attributes: i8,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut body = Vec::new();
        body.put_i8(magic);
        body.put_i8(attributes);
        if magic == 1 {
            body.put_i64(timestamp);
        }
        for field in [key, value] {
            match field {
                None => body.put_i32(-1),
                Some(b) => {
                    body.put_i32(b.len() as i32);
                    body.put_slice(b);
                }
            }
        }
        let mut out = Vec::new();
        out.put_i64(offset);
        out.put_i32(body.len() as i32 + 4);
        out.put_u32(crc32fast::hash(&body));
        out.put_slice(&body);
        out
    }

    fn read(entry: Vec<u8>) -> Result<Vec<LegacyRecord>, RecordError> {
        let mut out = Vec::new();
        read_legacy_entry(&Bytes::from(entry), 1 << 20, &mut out).map(|()| out)
    }

    #[test]
    fn v0_message_has_no_timestamp() {
        let recs = read(message(5, 0, 0, 0, Some(b"k"), None)).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].offset, 5);
        assert_eq!(recs[0].timestamp, NO_TIMESTAMP);
        assert_eq!(recs[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(recs[0].value, None);
    }

    #[test]
    fn v1_gzip_wrapper_has_relative_inner_offsets() {
        let mut inner = Vec::new();
        for i in 0..3 {
            inner.extend(message(
                i,
                1,
                0,
                1000 + i,
                None,
                Some(format!("v{i}").as_bytes()),
            ));
        }
        let mut gz = Vec::new();
        compression::compress(Compression::Gzip, &inner, None, &mut gz).unwrap();
        // Wrapper offset = absolute offset of the last inner message.
        let recs = read(message(42, 1, 1, 1002, None, Some(&gz))).unwrap();
        let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![40, 41, 42]);
        assert_eq!(recs[2].timestamp, 1002);
        assert_eq!(recs[1].value.as_deref(), Some(&b"v1"[..]));
    }

    #[test]
    fn log_append_time_wrapper_stamps_inner_records() {
        let inner = message(0, 1, 0, 5, None, Some(b"x"));
        let mut gz = Vec::new();
        compression::compress(Compression::Gzip, &inner, None, &mut gz).unwrap();
        let recs = read(message(9, 1, 1 | 0x08, 777, None, Some(&gz))).unwrap();
        assert_eq!(recs[0].timestamp, 777);
        assert_eq!(recs[0].timestamp_type, TimestampType::LogAppendTime);
    }

    #[test]
    fn magic_0_lz4_wrapper_with_kafka_3160_checksum_is_read() {
        // Kafka 0.8/0.9 wrote lz4 wrappers whose frame header checksum also
        // hashed the magic bytes. Inner v0 offsets are absolute.
        let mut inner = Vec::new();
        for i in 0..4 {
            inner.extend(message(
                100 + i,
                0,
                0,
                0,
                Some(b"k"),
                Some(format!("value {i} {}", "x".repeat(40)).as_bytes()),
            ));
        }
        let mut frame = Vec::new();
        compression::compress(Compression::Lz4, &inner, None, &mut frame).unwrap();
        let broken = crate::compression::lz4::with_kafka_3160_checksum(frame);
        let recs = read(message(103, 0, 3, 0, None, Some(&broken))).unwrap();
        let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![100, 101, 102, 103]);
        assert!(recs.iter().all(|r| r.timestamp == NO_TIMESTAMP));
        // The same frame in a magic 1 wrapper is refused: only v0 had the bug.
        assert!(
            read(message(
                3,
                1,
                3,
                0,
                None,
                Some(&crate::compression::lz4::with_kafka_3160_checksum({
                    let mut f = Vec::new();
                    compression::compress(Compression::Lz4, &inner, None, &mut f).unwrap();
                    f
                }))
            ))
            .is_err()
        );
    }

    #[test]
    fn bad_crc_nested_compression_and_zstd_are_refused() {
        let mut m = message(0, 1, 0, 0, None, Some(b"x"));
        let last = m.len() - 1;
        m[last] ^= 1;
        assert!(matches!(read(m), Err(RecordError::CrcMismatch { .. })));

        let inner = message(0, 1, 1, 0, None, Some(b"nested"));
        let mut gz = Vec::new();
        compression::compress(Compression::Gzip, &inner, None, &mut gz).unwrap();
        assert!(read(message(0, 1, 1, 0, None, Some(&gz))).is_err());

        assert!(read(message(0, 1, 4, 0, None, Some(b"zstd"))).is_err());
    }

    #[test]
    fn up_convert_keeps_fields_and_skips_below_position() {
        let recs = vec![
            LegacyRecord {
                offset: 1,
                timestamp: 10,
                timestamp_type: TimestampType::CreateTime,
                key: None,
                value: Some(Bytes::from_static(b"a")),
            },
            LegacyRecord {
                offset: 2,
                timestamp: 20,
                timestamp_type: TimestampType::CreateTime,
                key: Some(Bytes::from_static(b"k")),
                value: None,
            },
        ];
        let mut builder = BatchBuilder::new(Compression::Lz4);
        let batch = up_convert(&recs, 2, &mut builder, ProducerStamp::NONE)
            .unwrap()
            .unwrap();
        let view = super::super::RecordBatchView::new(batch.to_bytes()).unwrap();
        view.verify_crc().unwrap();
        let out: Vec<_> = view.records(1 << 20).unwrap().map(Result::unwrap).collect();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out[0].value, None);
        assert_eq!(out[0].timestamp(view.header()), 20);
        assert!(
            up_convert(&recs, 3, &mut builder, ProducerStamp::NONE)
                .unwrap()
                .is_none()
        );
    }
}
