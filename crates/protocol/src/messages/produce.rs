//! Produce: the zero-copy request encoder, the request decoder used by the
//! conformance checker and test peers, and the response decoder.
//!
//! [`encode_produce_request`] writes every byte kmirror owns (frame size,
//! header, topic and partition fields, each batch's 61-byte header) into one
//! buffer, and returns the request as a list of chunks that alternates
//! slices of that buffer with the batches' payloads, which are the very
//! slices of the fetched buffers. A vectored write sends them without
//! copying a payload byte. Versions 3 to 12; one batch per partition, as
//! Kafka requires from v3.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;

use crate::api::{is_flexible, require_version};
use crate::error::ProtocolError;
use crate::header::RequestHeader;
use crate::record::ProduceBatch;
use crate::wire::{WireReader, WireWriter, unsigned_varint_len};

/// A Produce request to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceRequest {
    /// Transactional id; `None` unless the mirror itself is transactional.
    pub transactional_id: Option<String>,
    /// 0, 1 or -1 (all in-sync replicas).
    pub acks: i16,
    /// How long the broker may wait for replication.
    pub timeout_ms: i32,
    /// The topics.
    pub topics: Vec<ProduceTopic>,
}

/// One topic of a Produce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceTopic {
    /// The topic name.
    pub name: StrBytes,
    /// Its partitions, each with exactly one batch.
    pub partitions: Vec<ProducePartition>,
}

/// One partition of a Produce request: exactly one batch, as Kafka requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducePartition {
    /// The partition number.
    pub index: i32,
    /// The batch.
    pub batch: ProduceBatch,
}

/// An encoded Produce request frame, size prefix included, as chunks for a
/// vectored write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceFrame {
    chunks: Vec<Bytes>,
    len: usize,
}

impl ProduceFrame {
    /// The chunks, in order.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// Consumes the frame into its chunks.
    pub fn into_chunks(self) -> Vec<Bytes> {
        self.chunks
    }

    /// Total bytes, size prefix included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a frame has at least its size prefix.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The frame as one buffer. Copies every payload: for tests and the
    /// checker, never the hot path.
    pub fn to_contiguous(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        for c in &self.chunks {
            out.put_slice(c);
        }
        out.freeze()
    }
}

/// Encodes `request` at `version` as a framed Produce request (see the
/// module documentation).
pub fn encode_produce_request(
    request: &ProduceRequest,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> Result<ProduceFrame, ProtocolError> {
    require_version(ApiKey::Produce, version)?;
    let flexible = is_flexible(ApiKey::Produce, version)?;
    let header = RequestHeader {
        api: ApiKey::Produce,
        version,
        correlation_id,
        client_id,
    };
    let partitions: usize = request.topics.iter().map(|t| t.partitions.len()).sum();
    let mut meta = BytesMut::with_capacity(
        64 + header.encoded_len()? + request.topics.len() * 64 + partitions * 80,
    );
    // Where each payload goes: (position in `meta`, payload).
    let mut cuts: Vec<(usize, &Bytes)> = Vec::with_capacity(partitions);
    let mut payload_total = 0usize;

    meta.put_i32(0); // size, patched below
    header.encode(&mut meta)?;
    let mut w = WireWriter::new(&mut meta, ApiKey::Produce, version);
    w.nullable_string(request.transactional_id.as_deref(), flexible)?;
    w.i16(request.acks);
    w.i32(request.timeout_ms);
    w.array_len(request.topics.len(), flexible)?;
    for topic in &request.topics {
        w.string(&topic.name, flexible)?;
        w.array_len(topic.partitions.len(), flexible)?;
        for p in &topic.partitions {
            w.i32(p.index);
            w.bytes_len(p.batch.len(), flexible)?;
            w.buf.put_slice(p.batch.header_bytes());
            cuts.push((w.buf.len(), p.batch.payload()));
            payload_total += p.batch.payload().len();
            if flexible {
                w.no_tagged_fields();
            }
        }
        if flexible {
            w.no_tagged_fields();
        }
    }
    if flexible {
        w.no_tagged_fields();
    }

    let len = meta.len() + payload_total;
    let size = i32::try_from(len - 4).map_err(|_| ProtocolError::Encode {
        api: ApiKey::Produce,
        version,
        reason: format!("request of {len} bytes exceeds the 2 GiB frame limit"),
    })?;
    if let Some(prefix) = meta.get_mut(..4) {
        prefix.copy_from_slice(&size.to_be_bytes());
    }
    let meta = meta.freeze();
    let mut chunks = Vec::with_capacity(cuts.len() * 2 + 1);
    let mut from = 0;
    for (at, payload) in cuts {
        chunks.push(meta.slice(from..at));
        if !payload.is_empty() {
            // The payload itself, not a copy: this is the zero-copy point.
            chunks.push(payload.clone());
        }
        from = at;
    }
    if from < meta.len() {
        chunks.push(meta.slice(from..));
    }
    Ok(ProduceFrame { chunks, len })
}

/// Encoded size of a records length prefix, for callers that budget
/// request sizes.
pub fn records_prefix_len(len: usize, flexible: bool) -> usize {
    if flexible {
        unsigned_varint_len(u32::try_from(len).unwrap_or(u32::MAX).saturating_add(1))
    } else {
        4
    }
}

/// The partitions of one topic in a decoded Produce request:
/// `(partition, records)`.
pub type DecodedPartitions = Vec<(i32, Option<Bytes>)>;

/// A Produce request as decoded from the wire (by the checker and by test
/// brokers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedProduceRequest {
    /// Request version.
    pub version: i16,
    /// Correlation id.
    pub correlation_id: i32,
    /// Client id.
    pub client_id: Option<StrBytes>,
    /// Transactional id.
    pub transactional_id: Option<StrBytes>,
    /// Acks.
    pub acks: i16,
    /// Timeout.
    pub timeout_ms: i32,
    /// `(topic, [(partition, records)])`.
    pub topics: Vec<(StrBytes, DecodedPartitions)>,
}

/// Decodes a Produce request frame without its size prefix (header first).
pub fn decode_produce_request(frame: Bytes) -> Result<DecodedProduceRequest, ProtocolError> {
    let mut r = WireReader::new(frame, ApiKey::Produce, -1);
    let api_key = r.i16()?;
    let version = r.i16()?;
    if api_key != ApiKey::Produce as i16 {
        return Err(r.malformed(format_args!("api key {api_key} is not Produce (0)")));
    }
    require_version(ApiKey::Produce, version)?;
    let flexible = is_flexible(ApiKey::Produce, version)?;
    let mut r = WireReader::new(r.take(r.remaining(), "request")?, ApiKey::Produce, version);
    let correlation_id = r.i32()?;
    let client_id = r.nullable_string(false)?;
    if flexible {
        r.skip_tagged_fields()?;
    }
    let transactional_id = r.nullable_string(flexible)?;
    let acks = r.i16()?;
    let timeout_ms = r.i32()?;
    let n = r.array_len(flexible, 2)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string(flexible)?;
        let pn = r.array_len(flexible, 5)?;
        let mut partitions = Vec::with_capacity(pn);
        for _ in 0..pn {
            let index = r.i32()?;
            let records = r.nullable_bytes(flexible)?;
            if flexible {
                r.skip_tagged_fields()?;
            }
            partitions.push((index, records));
        }
        if flexible {
            r.skip_tagged_fields()?;
        }
        topics.push((name, partitions));
    }
    if flexible {
        r.skip_tagged_fields()?;
    }
    r.finish()?;
    Ok(DecodedProduceRequest {
        version,
        correlation_id,
        client_id,
        transactional_id,
        acks,
        timeout_ms,
        topics,
    })
}

/// A per-batch error the broker reported (v8+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Index of the record inside the batch.
    pub batch_index: i32,
    /// The broker's message.
    pub message: Option<StrBytes>,
}

/// One partition's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducePartitionResponse {
    /// The partition.
    pub index: i32,
    /// Its error code.
    pub error_code: i16,
    /// Offset the batch was appended at.
    pub base_offset: i64,
    /// Append time if the topic uses LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    /// Log start offset (v5+), else -1.
    pub log_start_offset: i64,
    /// Per-record errors (v8+).
    pub record_errors: Vec<RecordError>,
    /// Error message (v8+).
    pub error_message: Option<StrBytes>,
}

/// A decoded Produce response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceResponse {
    /// `(topic, partitions)`.
    pub topics: Vec<(StrBytes, Vec<ProducePartitionResponse>)>,
    /// Throttle time.
    pub throttle_time_ms: i32,
}

/// Decodes a Produce response body at `version` (3..=12).
pub fn decode_produce_response(
    body: Bytes,
    version: i16,
) -> Result<ProduceResponse, ProtocolError> {
    let flexible = is_flexible(ApiKey::Produce, version)?;
    let mut r = WireReader::new(body, ApiKey::Produce, version);
    let n = r.array_len(flexible, 2)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string(flexible)?;
        let pn = r.array_len(flexible, 22)?;
        let mut partitions = Vec::with_capacity(pn);
        for _ in 0..pn {
            let index = r.i32()?;
            let error_code = r.i16()?;
            let base_offset = r.i64()?;
            let log_append_time_ms = r.i64()?;
            let log_start_offset = if version >= 5 { r.i64()? } else { -1 };
            let (record_errors, error_message) = if version >= 8 {
                let en = r.array_len(flexible, 5)?;
                let mut errs = Vec::with_capacity(en);
                for _ in 0..en {
                    errs.push(RecordError {
                        batch_index: r.i32()?,
                        message: r.nullable_string(flexible)?,
                    });
                    if flexible {
                        r.skip_tagged_fields()?;
                    }
                }
                (errs, r.nullable_string(flexible)?)
            } else {
                (Vec::new(), None)
            };
            if flexible {
                r.skip_tagged_fields()?;
            }
            partitions.push(ProducePartitionResponse {
                index,
                error_code,
                base_offset,
                log_append_time_ms,
                log_start_offset,
                record_errors,
                error_message,
            });
        }
        if flexible {
            r.skip_tagged_fields()?;
        }
        topics.push((name, partitions));
    }
    let throttle_time_ms = r.i32()?;
    if flexible {
        r.skip_tagged_fields()?;
    }
    r.finish()?;
    Ok(ProduceResponse {
        topics,
        throttle_time_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::Compression;
    use crate::record::{BatchBuilder, ProducerStamp};
    use kafka_protocol::messages::produce_response as kpr;
    use kafka_protocol::messages::{ProduceRequest as KpProduceRequest, TopicName};
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn batch(values: &[&str]) -> ProduceBatch {
        let mut b = BatchBuilder::new(Compression::None);
        for v in values {
            b.push(1, None, Some(v.as_bytes()), std::iter::empty())
                .unwrap();
        }
        b.build(ProducerStamp::NONE).unwrap()
    }

    fn request() -> ProduceRequest {
        ProduceRequest {
            transactional_id: None,
            acks: -1,
            timeout_ms: 30_000,
            topics: vec![
                ProduceTopic {
                    name: StrBytes::from_static_str("a"),
                    partitions: vec![
                        ProducePartition {
                            index: 0,
                            batch: batch(&["x", "y"]),
                        },
                        ProducePartition {
                            index: 3,
                            batch: batch(&["z"]),
                        },
                    ],
                },
                ProduceTopic {
                    name: StrBytes::from_static_str("b"),
                    partitions: vec![ProducePartition {
                        index: 1,
                        batch: batch(&["w"]),
                    }],
                },
            ],
        }
    }

    #[test]
    fn kafka_protocol_decodes_what_we_encode_at_every_version() {
        for v in 3..=12 {
            let frame = encode_produce_request(&request(), v, 5, Some("kmirror")).unwrap();
            let bytes = frame.to_contiguous();
            assert_eq!(bytes.len(), frame.len());
            assert_eq!(
                i32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
                bytes.len() - 4
            );
            let mut body = bytes.slice(4..);
            let header = kafka_protocol::messages::RequestHeader::decode(
                &mut body,
                ApiKey::Produce.request_header_version(v),
            )
            .unwrap();
            assert_eq!(header.correlation_id, 5);
            let theirs = KpProduceRequest::decode(&mut body, v).unwrap();
            assert!(body.is_empty(), "v{v}: trailing bytes");
            assert_eq!(theirs.acks, -1);
            assert_eq!(theirs.topic_data.len(), 2);
            assert_eq!(
                theirs.topic_data[0].name,
                TopicName(StrBytes::from_static_str("a"))
            );
            let p = &theirs.topic_data[0].partition_data[1];
            assert_eq!(p.index, 3);
            assert_eq!(
                p.records.as_ref().unwrap(),
                &request().topics[0].partitions[1].batch.to_bytes()
            );
        }
    }

    #[test]
    fn our_decoder_reads_our_encoding() {
        for v in [3, 8, 9, 12] {
            let frame = encode_produce_request(&request(), v, 5, None).unwrap();
            let d = decode_produce_request(frame.to_contiguous().slice(4..)).unwrap();
            assert_eq!(d.version, v);
            assert_eq!(d.topics.len(), 2);
            assert_eq!(d.topics[1].1[0].0, 1);
        }
    }

    #[test]
    fn payload_chunks_are_the_batches_own_memory() {
        let req = request();
        let frame = encode_produce_request(&req, 9, 1, None).unwrap();
        let payload_ptrs: Vec<*const u8> = req
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.batch.payload().as_ptr()))
            .collect();
        for ptr in payload_ptrs {
            assert!(frame.chunks().iter().any(|c| c.as_ptr() == ptr));
        }
    }

    #[test]
    fn decodes_produce_responses_at_every_version() {
        let resp = kpr::ProduceResponse::default()
            .with_responses(vec![
                kpr::TopicProduceResponse::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_responses(vec![
                        kpr::PartitionProduceResponse::default()
                            .with_index(2)
                            .with_error_code(47)
                            .with_base_offset(10)
                            .with_record_errors(vec![
                                kpr::BatchIndexAndErrorMessage::default().with_batch_index(1),
                            ])
                            .with_error_message(Some(StrBytes::from_static_str("bad"))),
                    ]),
            ])
            .with_throttle_time_ms(4);
        for v in 3..=12 {
            let mut buf = BytesMut::new();
            resp.encode(&mut buf, v).unwrap();
            let d = decode_produce_response(buf.freeze(), v).unwrap();
            let p = &d.topics[0].1[0];
            assert_eq!((p.index, p.error_code, p.base_offset), (2, 47, 10), "v{v}");
            assert_eq!(p.record_errors.len(), usize::from(v >= 8));
            assert_eq!(d.throttle_time_ms, 4);
        }
    }
}
