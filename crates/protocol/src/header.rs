//! Request and response headers.
//!
//! Requests carry header v1 (api key, version, correlation id, client id) or
//! v2 (v1 plus an empty tagged-field section) in flexible versions. Responses
//! carry header v0 (correlation id) or v1 (plus tagged fields); see
//! [`crate::api::response_header_version`] for which.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use crate::api::{request_header_version, response_header_version};
use crate::error::ProtocolError;
use crate::wire::{WireReader, WireWriter};

/// The header of a request kmirror sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader<'a> {
    /// The API.
    pub api: ApiKey,
    /// The version of the request body.
    pub version: i16,
    /// Echoed by the broker in the response.
    pub correlation_id: i32,
    /// The client id, shown in broker logs and quotas.
    pub client_id: Option<&'a str>,
}

impl RequestHeader<'_> {
    /// Appends the header (v1 or v2, by the API's flexibility) to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        let header_version = request_header_version(self.api, self.version)?;
        let mut w = WireWriter::new(buf, self.api, self.version);
        w.i16(self.api as i16);
        w.i16(self.version);
        w.i32(self.correlation_id);
        // The client id stays a non-compact nullable string even in v2.
        w.nullable_string(self.client_id, false)?;
        if header_version >= 2 {
            w.no_tagged_fields();
        }
        Ok(())
    }

    /// Encoded size of the header.
    pub fn encoded_len(&self) -> Result<usize, ProtocolError> {
        let tagged = usize::from(request_header_version(self.api, self.version)? >= 2);
        Ok(2 + 2 + 4 + 2 + self.client_id.map_or(0, str::len) + tagged)
    }
}

/// Reads the correlation id at the start of every response frame, before
/// the API of the response is known (the caller matches it to a request).
pub fn peek_correlation_id(frame: &[u8]) -> Option<i32> {
    let head: [u8; 4] = frame.get(..4)?.try_into().ok()?;
    Some(i32::from_be_bytes(head))
}

/// Strips the response header of a frame whose request was `api` at
/// `version`, returning the correlation id and the body.
pub fn decode_response_header(
    frame: Bytes,
    api: ApiKey,
    version: i16,
) -> Result<(i32, Bytes), ProtocolError> {
    let header_version = response_header_version(api, version)?;
    let mut r = WireReader::new(frame, api, version);
    let correlation_id = r.i32()?;
    if header_version >= 1 {
        r.skip_tagged_fields()?;
    }
    let body = r.take(r.remaining(), "body")?;
    Ok((correlation_id, body))
}

/// Appends a response header; used by test peers and the replay harness.
pub fn encode_response_header(
    buf: &mut BytesMut,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<(), ProtocolError> {
    buf.put_i32(correlation_id);
    if response_header_version(api, version)? >= 1 {
        buf.put_u8(0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Decodable, StrBytes};

    #[test]
    fn request_header_matches_kafka_protocol_encoding() {
        for (api, version) in [
            (ApiKey::Produce, 8),
            (ApiKey::Produce, 9),
            (ApiKey::ApiVersions, 3),
        ] {
            let h = RequestHeader {
                api,
                version,
                correlation_id: 77,
                client_id: Some("kmirror"),
            };
            let mut ours = BytesMut::new();
            h.encode(&mut ours).unwrap();
            assert_eq!(ours.len(), h.encoded_len().unwrap());
            let mut b = ours.freeze();
            let theirs = kafka_protocol::messages::RequestHeader::decode(
                &mut b,
                api.request_header_version(version),
            )
            .unwrap();
            assert!(b.is_empty());
            assert_eq!(theirs.request_api_key, api as i16);
            assert_eq!(theirs.request_api_version, version);
            assert_eq!(theirs.correlation_id, 77);
            assert_eq!(theirs.client_id, Some(StrBytes::from_static_str("kmirror")));
        }
    }

    #[test]
    fn response_header_v1_skips_tagged_fields() {
        let frame = Bytes::from_static(&[0, 0, 0, 9, 1, 0, 1, 0xaa, 0xbb]);
        let (cid, body) = decode_response_header(frame, ApiKey::Fetch, 12).unwrap();
        assert_eq!(cid, 9);
        assert_eq!(&body[..], &[0xbb]);
    }

    #[test]
    fn api_versions_response_header_is_always_v0() {
        let frame = Bytes::from_static(&[0, 0, 0, 1, 0, 0]);
        let (cid, body) = decode_response_header(frame, ApiKey::ApiVersions, 3).unwrap();
        assert_eq!(cid, 1);
        assert_eq!(body.len(), 2);
    }

    #[test]
    fn short_frame_is_malformed() {
        assert!(decode_response_header(Bytes::from_static(&[0, 1]), ApiKey::Fetch, 4).is_err());
        assert_eq!(peek_correlation_id(&[0, 0]), None);
        assert_eq!(peek_correlation_id(&[0, 0, 1, 0, 5]), Some(256));
    }
}
