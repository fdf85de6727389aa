//! Size-prefixed framing: every Kafka message on the wire is an `INT32`
//! length followed by that many bytes.
//!
//! [`FrameDecoder`] cuts frames out of a receive buffer and refuses a size
//! above its maximum before reserving any memory for it. [`encode_request`]
//! frames a request body typed by the kafka-protocol crate.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;

use crate::api::require_version;
use crate::error::ProtocolError;
use crate::header::RequestHeader;

/// Kafka's own default for `socket.request.max.bytes` (100 MiB), the
/// default cap on a frame kmirror accepts.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// Cuts complete frames out of a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    max_frame_size: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames larger than `max_frame_size` bytes.
    pub fn new(max_frame_size: usize) -> Self {
        Self { max_frame_size }
    }

    /// The largest frame accepted.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The size of the frame at the head of `buf` once its prefix has
    /// arrived, already checked against the maximum. A reader may reserve
    /// this much.
    pub fn announced_size(&self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let Some(prefix) = buf.get(..4) else {
            return Ok(None);
        };
        let mut prefix = prefix;
        let size = prefix.get_i32();
        match usize::try_from(size) {
            Ok(n) if n <= self.max_frame_size => Ok(Some(n)),
            _ => Err(ProtocolError::FrameTooLarge {
                size: i64::from(size),
                max: self.max_frame_size,
            }),
        }
    }

    /// Takes the next complete frame (without its size prefix) from `buf`,
    /// or returns `None` until enough bytes have arrived. The frame is a
    /// slice of `buf`'s memory, not a copy.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, ProtocolError> {
        let Some(size) = self.announced_size(buf)? else {
            return Ok(None);
        };
        if buf.len() - 4 < size {
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(size).freeze()))
    }
}

/// Frames a request typed by kafka-protocol: size prefix, header, body.
///
/// Used for every request except Produce, whose payload-carrying encoder is
/// [`crate::messages::produce::ProduceRequestEncoder`].
pub fn encode_request<R: Encodable>(
    api: ApiKey,
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> Result<Bytes, ProtocolError> {
    require_version(api, version)?;
    let header = RequestHeader {
        api,
        version,
        correlation_id,
        client_id,
    };
    let encode_error = |reason: String| ProtocolError::Encode {
        api,
        version,
        reason,
    };
    let body_len = request
        .compute_size(version)
        .map_err(|e| encode_error(e.to_string()))?;
    let total = header.encoded_len()? + body_len;
    let mut buf = BytesMut::with_capacity(4 + total);
    buf.put_i32(i32::try_from(total).map_err(|_| ProtocolError::Encode {
        api,
        version,
        reason: format!("request of {total} bytes exceeds the 2 GiB frame limit"),
    })?);
    header.encode(&mut buf)?;
    request
        .encode(&mut buf, version)
        .map_err(|e| encode_error(e.to_string()))?;
    debug_assert_eq!(buf.len(), 4 + total);
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataRequest, RequestHeader as KpHeader};
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn frames_are_cut_only_when_complete() {
        let d = FrameDecoder::new(1024);
        let mut buf = BytesMut::new();
        buf.put_i32(3);
        buf.put_slice(b"ab");
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        buf.put_slice(b"c");
        buf.put_i32(0);
        buf.put_i32(1);
        assert_eq!(&d.decode(&mut buf).unwrap().unwrap()[..], b"abc");
        assert_eq!(&d.decode(&mut buf).unwrap().unwrap()[..], b"");
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            None,
            "prefix of the next frame only"
        );
        assert_eq!(buf.len(), 4);
    }

    #[test]
    fn oversized_and_negative_sizes_are_refused_before_allocation() {
        let d = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        let cap_before = buf.capacity();
        assert!(matches!(
            d.decode(&mut buf),
            Err(ProtocolError::FrameTooLarge {
                size: 2_147_483_647,
                max: 1024
            })
        ));
        assert_eq!(buf.capacity(), cap_before, "nothing reserved for the frame");
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert!(matches!(
            d.decode(&mut buf),
            Err(ProtocolError::FrameTooLarge { size: -2, .. })
        ));
    }

    #[test]
    fn encoded_request_is_what_kafka_protocol_decodes() {
        let req = crate::messages::metadata::metadata_request(Some(&["t"]));
        for version in [4, 8, 9, 12] {
            let frame =
                encode_request(ApiKey::Metadata, &req, version, 42, Some("kmirror")).unwrap();
            let mut body = frame.slice(4..);
            assert_eq!(
                frame.len() - 4,
                i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize
            );
            let h = KpHeader::decode(&mut body, ApiKey::Metadata.request_header_version(version))
                .unwrap();
            assert_eq!(
                (h.request_api_key, h.request_api_version, h.correlation_id),
                (3, version, 42)
            );
            let decoded = MetadataRequest::decode(&mut body, version).unwrap();
            assert!(body.is_empty());
            assert!(!decoded.allow_auto_topic_creation);
        }
    }

    #[test]
    fn request_version_outside_ours_is_refused() {
        let req = crate::messages::metadata::metadata_request(None);
        assert!(matches!(
            encode_request(ApiKey::Metadata, &req, 3, 1, None),
            Err(ProtocolError::Unsupported { .. })
        ));
    }
}
