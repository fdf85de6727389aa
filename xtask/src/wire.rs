//! Just enough of the Kafka wire format to pick fixtures out of a capture.
//!
//! This is deliberately independent of `crates/protocol` (the code under
//! test) and reads only the fields the fixture selection needs.

use crate::Result;

/// API key of Produce.
pub(crate) const PRODUCE: i16 = 0;
/// API key of Fetch.
pub(crate) const FETCH: i16 = 1;
/// API key of Metadata.
pub(crate) const METADATA: i16 = 3;
/// API key of ApiVersions.
pub(crate) const API_VERSIONS: i16 = 18;

/// Whether a request of this API and version uses the flexible (compact,
/// tagged-field) encoding, for the APIs this module reads.
fn flexible(api_key: i16, version: i16) -> Result<bool> {
    match api_key {
        PRODUCE => Ok(version >= 9),
        FETCH => Ok(version >= 12),
        METADATA => Ok(version >= 9),
        API_VERSIONS => Ok(version >= 3),
        other => Err(format!("api key {other} is not parsed here")),
    }
}

/// A cursor over a frame.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let slice = self.bytes.get(self.pos..end).ok_or_else(|| {
            format!(
                "truncated: wanted {n} bytes at offset {} of {}",
                self.pos,
                self.bytes.len()
            )
        })?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let slice = self.take(N)?;
        slice
            .try_into()
            .map_err(|_| "internal: slice length".to_owned())
    }

    /// Big-endian i16.
    pub(crate) fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    /// Big-endian i32.
    pub(crate) fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// Big-endian i64.
    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A 16-byte UUID.
    pub(crate) fn uuid(&mut self) -> Result<[u8; 16]> {
        self.array()
    }

    /// Unsigned LEB128 varint.
    pub(crate) fn uvarint(&mut self) -> Result<u64> {
        let mut value = 0_u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.array::<1>()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".to_owned())
    }

    /// A length: i16/i32 in classic encodings, uvarint+1 in compact ones;
    /// `None` is null.
    fn length(&mut self, compact: bool, short: bool) -> Result<Option<usize>> {
        let raw: i64 = if compact {
            i64::try_from(self.uvarint()?).map_err(|_| "huge length")? - 1
        } else if short {
            i64::from(self.i16()?)
        } else {
            i64::from(self.i32()?)
        };
        if raw < 0 {
            Ok(None)
        } else {
            usize::try_from(raw)
                .map(Some)
                .map_err(|_| "huge length".to_owned())
        }
    }

    /// A nullable string (STRING / COMPACT_STRING and their nullable forms).
    pub(crate) fn string(&mut self, compact: bool) -> Result<Option<String>> {
        match self.length(compact, true)? {
            None => Ok(None),
            Some(n) => {
                let raw = self.take(n)?;
                Ok(Some(String::from_utf8_lossy(raw).into_owned()))
            }
        }
    }

    /// Nullable bytes (BYTES / COMPACT_BYTES / RECORDS).
    pub(crate) fn bytes(&mut self, compact: bool) -> Result<Option<&'a [u8]>> {
        match self.length(compact, false)? {
            None => Ok(None),
            Some(n) => self.take(n).map(Some),
        }
    }

    /// An array length; `None` is a null array.
    pub(crate) fn array_len(&mut self, compact: bool) -> Result<Option<usize>> {
        let len = self.length(compact, false)?;
        if let Some(n) = len {
            // Every element takes at least one byte: reject absurd counts early.
            if n > self.bytes.len() {
                return Err(format!(
                    "array of {n} elements in a {}-byte frame",
                    self.bytes.len()
                ));
            }
        }
        Ok(len)
    }

    /// Fails unless every byte was read: the parse must account for the
    /// whole frame.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(format!(
                "{} unread bytes after offset {}",
                self.bytes.len() - self.pos,
                self.pos
            ))
        }
    }

    /// Skips a tagged-field section if `flexible`.
    pub(crate) fn tagged_fields(&mut self, flexible: bool) -> Result<()> {
        if !flexible {
            return Ok(());
        }
        let count = self.uvarint()?;
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).map_err(|_| "huge tagged field")?;
            self.take(size)?;
        }
        Ok(())
    }
}

/// The request header fields every request has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHeader {
    /// API key.
    pub(crate) api_key: i16,
    /// API version.
    pub(crate) api_version: i16,
    /// Correlation id.
    pub(crate) correlation_id: i32,
    /// Client id (always a classic nullable string).
    pub(crate) client_id: Option<String>,
}

/// Reads a request header (v1 or v2, by API and version); the reader is
/// left at the start of the body.
pub(crate) fn request_header(reader: &mut Reader<'_>) -> Result<RequestHeader> {
    let api_key = reader.i16()?;
    let api_version = reader.i16()?;
    let correlation_id = reader.i32()?;
    let client_id = reader.string(false)?;
    reader.tagged_fields(flexible(api_key, api_version)?)?;
    Ok(RequestHeader {
        api_key,
        api_version,
        correlation_id,
        client_id,
    })
}

/// Reads a response header for a request of this API and version; the
/// reader is left at the start of the body.
fn response_header(reader: &mut Reader<'_>, api_key: i16, version: i16) -> Result<i32> {
    let correlation_id = reader.i32()?;
    // ApiVersions responses always use header v0 (KIP-511).
    reader.tagged_fields(api_key != API_VERSIONS && flexible(api_key, version)?)?;
    Ok(correlation_id)
}

/// How a topic is named in a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicRef {
    /// By name (older versions).
    Name(String),
    /// By topic id (Fetch v13+, Produce v13+).
    Id([u8; 16]),
}

/// One partition's records in a Produce request or Fetch response.
#[derive(Debug, Clone)]
pub(crate) struct PartitionRecords<'a> {
    /// Partition index.
    pub(crate) partition: i32,
    /// Error code (always 0 in a request).
    pub(crate) error_code: i16,
    /// High watermark (-1 in a request).
    pub(crate) high_watermark: i64,
    /// The RECORDS field, `None` when null.
    pub(crate) records: Option<&'a [u8]>,
}

/// Topics and partitions of a Produce request or Fetch response.
pub(crate) type TopicRecords<'a> = Vec<(TopicRef, Vec<PartitionRecords<'a>>)>;

/// A parsed Produce request.
#[derive(Debug, Clone)]
pub(crate) struct ProduceRequest<'a> {
    /// The header.
    pub(crate) header: RequestHeader,
    /// Transactional id (v3+).
    pub(crate) transactional_id: Option<String>,
    /// acks.
    pub(crate) acks: i16,
    /// Topics with their partitions' records.
    pub(crate) topics: TopicRecords<'a>,
}

/// Parses a Produce request frame (without size prefix).
pub(crate) fn produce_request(frame: &[u8]) -> Result<ProduceRequest<'_>> {
    let mut r = Reader::new(frame);
    let header = request_header(&mut r)?;
    if header.api_key != PRODUCE {
        return Err(format!("api key {} is not Produce", header.api_key));
    }
    let v = header.api_version;
    let flex = flexible(PRODUCE, v)?;
    let transactional_id = if v >= 3 { r.string(flex)? } else { None };
    let acks = r.i16()?;
    let _timeout_ms = r.i32()?;
    let mut topics = Vec::new();
    for _ in 0..r.array_len(flex)?.unwrap_or(0) {
        let topic = if v >= 13 {
            TopicRef::Id(r.uuid()?)
        } else {
            TopicRef::Name(r.string(flex)?.unwrap_or_default())
        };
        let mut partitions = Vec::new();
        for _ in 0..r.array_len(flex)?.unwrap_or(0) {
            let partition = r.i32()?;
            let records = r.bytes(flex)?;
            r.tagged_fields(flex)?;
            partitions.push(PartitionRecords {
                partition,
                error_code: 0,
                high_watermark: -1,
                records,
            });
        }
        r.tagged_fields(flex)?;
        topics.push((topic, partitions));
    }
    r.tagged_fields(flex)?;
    r.finish()?;
    Ok(ProduceRequest {
        header,
        transactional_id,
        acks,
        topics,
    })
}

/// Parses a Fetch response frame of this version.
pub(crate) fn fetch_response(frame: &[u8], version: i16) -> Result<TopicRecords<'_>> {
    let mut r = Reader::new(frame);
    let flex = flexible(FETCH, version)?;
    response_header(&mut r, FETCH, version)?;
    if version >= 1 {
        let _throttle_time_ms = r.i32()?;
    }
    if version >= 7 {
        let error_code = r.i16()?;
        let _session_id = r.i32()?;
        if error_code != 0 {
            return Err(format!("Fetch error code {error_code}"));
        }
    }
    let mut topics = Vec::new();
    for _ in 0..r.array_len(flex)?.unwrap_or(0) {
        let topic = if version >= 13 {
            TopicRef::Id(r.uuid()?)
        } else {
            TopicRef::Name(r.string(flex)?.unwrap_or_default())
        };
        let mut partitions = Vec::new();
        for _ in 0..r.array_len(flex)?.unwrap_or(0) {
            let partition = r.i32()?;
            let error_code = r.i16()?;
            let high_watermark = r.i64()?;
            if version >= 4 {
                let _last_stable_offset = r.i64()?;
            }
            if version >= 5 {
                let _log_start_offset = r.i64()?;
            }
            if version >= 4 {
                for _ in 0..r.array_len(flex)?.unwrap_or(0) {
                    let _producer_id = r.i64()?;
                    let _first_offset = r.i64()?;
                    r.tagged_fields(flex)?;
                }
            }
            if version >= 11 {
                let _preferred_read_replica = r.i32()?;
            }
            let records = r.bytes(flex)?;
            r.tagged_fields(flex)?;
            partitions.push(PartitionRecords {
                partition,
                error_code,
                high_watermark,
                records,
            });
        }
        r.tagged_fields(flex)?;
        topics.push((topic, partitions));
    }
    r.tagged_fields(flex)?;
    r.finish()?;
    Ok(topics)
}

/// A topic in a Metadata response.
#[derive(Debug, Clone)]
pub(crate) struct MetadataTopic {
    /// Error code.
    pub(crate) error_code: i16,
    /// Name (nullable from v12).
    pub(crate) name: Option<String>,
    /// Topic id (v10+).
    pub(crate) id: Option<[u8; 16]>,
    /// Number of partitions.
    pub(crate) partitions: usize,
}

/// The parts of a Metadata response the fixture selection reads.
#[derive(Debug, Clone)]
pub(crate) struct MetadataResponse {
    /// Brokers as (node id, host, port).
    pub(crate) brokers: Vec<(i32, String, i32)>,
    /// Topics.
    pub(crate) topics: Vec<MetadataTopic>,
}

/// Parses a Metadata response frame of this version.
pub(crate) fn metadata_response(frame: &[u8], version: i16) -> Result<MetadataResponse> {
    let mut r = Reader::new(frame);
    let flex = flexible(METADATA, version)?;
    response_header(&mut r, METADATA, version)?;
    if version >= 3 {
        let _throttle_time_ms = r.i32()?;
    }
    let mut brokers = Vec::new();
    for _ in 0..r.array_len(flex)?.unwrap_or(0) {
        let node_id = r.i32()?;
        let host = r.string(flex)?.unwrap_or_default();
        let port = r.i32()?;
        if version >= 1 {
            let _rack = r.string(flex)?;
        }
        r.tagged_fields(flex)?;
        brokers.push((node_id, host, port));
    }
    if version >= 2 {
        let _cluster_id = r.string(flex)?;
    }
    if version >= 1 {
        let _controller_id = r.i32()?;
    }
    let mut topics = Vec::new();
    for _ in 0..r.array_len(flex)?.unwrap_or(0) {
        let error_code = r.i16()?;
        let name = r.string(flex)?;
        let id = if version >= 10 { Some(r.uuid()?) } else { None };
        if version >= 1 {
            let _is_internal = r.array::<1>()?;
        }
        let partitions = r.array_len(flex)?.unwrap_or(0);
        for _ in 0..partitions {
            let _error_code = r.i16()?;
            let _partition_index = r.i32()?;
            let _leader_id = r.i32()?;
            if version >= 7 {
                let _leader_epoch = r.i32()?;
            }
            let node_lists = if version >= 5 { 3 } else { 2 };
            for _ in 0..node_lists {
                for _ in 0..r.array_len(flex)?.unwrap_or(0) {
                    let _node = r.i32()?;
                }
            }
            r.tagged_fields(flex)?;
        }
        if version >= 8 {
            let _topic_authorized_operations = r.i32()?;
        }
        r.tagged_fields(flex)?;
        topics.push(MetadataTopic {
            error_code,
            name,
            id,
            partitions,
        });
    }
    if (8..=10).contains(&version) {
        let _cluster_authorized_operations = r.i32()?;
    }
    r.tagged_fields(flex)?;
    r.finish()?;
    Ok(MetadataResponse { brokers, topics })
}

/// The error code of an ApiVersions response (any version).
pub(crate) fn api_versions_error(frame: &[u8]) -> Result<i16> {
    let mut r = Reader::new(frame);
    response_header(&mut r, API_VERSIONS, 0)?;
    r.i16()
}

/// The header of one record batch (magic v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchInfo {
    /// Base offset.
    pub(crate) base_offset: i64,
    /// Bytes of the whole batch including offset and length fields.
    pub(crate) size: usize,
    /// Magic byte.
    pub(crate) magic: i8,
    /// Attributes.
    pub(crate) attributes: i16,
    /// Last offset delta.
    pub(crate) last_offset_delta: i32,
    /// First timestamp.
    pub(crate) base_timestamp: i64,
    /// Max timestamp.
    pub(crate) max_timestamp: i64,
    /// Producer id.
    pub(crate) producer_id: i64,
    /// Producer epoch.
    pub(crate) producer_epoch: i16,
    /// Base sequence.
    pub(crate) base_sequence: i32,
    /// Number of records.
    pub(crate) record_count: i32,
}

impl BatchInfo {
    /// The compression codec named by the attributes.
    pub(crate) fn codec(&self) -> &'static str {
        match self.attributes & 0x7 {
            0 => "none",
            1 => "gzip",
            2 => "snappy",
            3 => "lz4",
            4 => "zstd",
            _ => "unknown",
        }
    }
}

/// The complete v2 record batches in a RECORDS field (a trailing partial
/// batch, allowed in Fetch responses, is ignored).
pub(crate) fn batches(records: &[u8]) -> Result<Vec<BatchInfo>> {
    let mut out = Vec::new();
    let mut rest = records;
    while rest.len() >= 12 {
        let mut r = Reader::new(rest);
        let base_offset = r.i64()?;
        let batch_length = usize::try_from(r.i32()?).map_err(|_| "negative batch length")?;
        let size = 12 + batch_length;
        if rest.len() < size {
            break;
        }
        let _partition_leader_epoch = r.i32()?;
        let [magic] = r.array::<1>()?;
        let magic = i8::from_be_bytes([magic]);
        if magic != 2 {
            return Err(format!("record batch magic {magic}, expected 2"));
        }
        let _crc = r.i32()?;
        let attributes = r.i16()?;
        let last_offset_delta = r.i32()?;
        let base_timestamp = r.i64()?;
        let max_timestamp = r.i64()?;
        let producer_id = r.i64()?;
        let producer_epoch = r.i16()?;
        let base_sequence = r.i32()?;
        let record_count = r.i32()?;
        out.push(BatchInfo {
            base_offset,
            size,
            magic,
            attributes,
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            record_count,
        });
        rest = rest.get(size..).unwrap_or_default();
    }
    Ok(out)
}

/// A UUID in its usual 8-4-4-4-12 hex form.
pub(crate) fn uuid_string(id: &[u8; 16]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_compact_and_classic_strings() {
        let mut r = Reader::new(&[0, 2, b'h', b'i', 3, b'y', b'o', 0, 0xff, 0xff]);
        assert_eq!(r.string(false).unwrap().as_deref(), Some("hi"));
        assert_eq!(r.string(true).unwrap().as_deref(), Some("yo"));
        assert_eq!(r.string(true).unwrap(), None);
        assert_eq!(r.string(false).unwrap(), None);
        assert!(r.i16().is_err());
    }

    #[test]
    fn reads_varints() {
        let mut r = Reader::new(&[0xac, 0x02, 0x7f]);
        assert_eq!(r.uvarint().unwrap(), 300);
        assert_eq!(r.uvarint().unwrap(), 127);
    }

    #[test]
    fn parses_a_minimal_produce_v3_request() {
        let mut frame = vec![0, 0, 0, 3, 0, 0, 0, 7, 0, 1, b'c'];
        frame.extend_from_slice(&[0xff, 0xff]); // transactional id: null
        frame.extend_from_slice(&[0xff, 0xff]); // acks -1
        frame.extend_from_slice(&[0, 0, 0x75, 0x30]); // timeout
        frame.extend_from_slice(&[0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 2]);
        frame.extend_from_slice(&[0, 0, 0, 2, 0xaa, 0xbb]);
        let request = produce_request(&frame).unwrap();
        assert_eq!(request.header.correlation_id, 7);
        assert_eq!(request.header.client_id.as_deref(), Some("c"));
        assert_eq!(request.acks, -1);
        let (topic, partitions) = &request.topics[0];
        assert_eq!(*topic, TopicRef::Name("t".to_owned()));
        assert_eq!(partitions[0].partition, 2);
        assert_eq!(partitions[0].records, Some(&[0xaa, 0xbb][..]));
    }

    #[test]
    fn formats_uuids() {
        let id = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0, 1, 2, 3, 4, 5, 6, 7,
        ];
        assert_eq!(uuid_string(&id), "12345678-9abc-def0-0001-020304050607");
    }
}
