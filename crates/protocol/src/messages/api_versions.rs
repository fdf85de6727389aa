//! ApiVersions: the first exchange on every connection. Our own decoder,
//! because it must work before anything about the broker is known: the
//! response header is always v0, and a broker that does not support the
//! requested version answers in the v0 body format with
//! UNSUPPORTED_VERSION (35) and its own supported range.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::api::is_flexible;
use crate::error::ProtocolError;
use crate::wire::WireReader;

/// Kafka's UNSUPPORTED_VERSION error code.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// One API's version range as the broker announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersionRange {
    /// The API key.
    pub api_key: i16,
    /// Lowest version the broker accepts.
    pub min_version: i16,
    /// Highest version the broker accepts.
    pub max_version: i16,
}

/// A decoded ApiVersions response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersionsResponse {
    /// 0, or UNSUPPORTED_VERSION when the broker answered at v0 instead.
    pub error_code: i16,
    /// The broker's ranges.
    pub api_keys: Vec<ApiVersionRange>,
    /// Throttle time (v1+), else 0.
    pub throttle_time_ms: i32,
}

/// Decodes an ApiVersions response body requested at `version`, falling back
/// to the v0 format when the broker answered UNSUPPORTED_VERSION.
pub fn decode_api_versions_response(
    body: Bytes,
    version: i16,
) -> Result<ApiVersionsResponse, ProtocolError> {
    let error_code = body
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .map(i16::from_be_bytes);
    if error_code == Some(UNSUPPORTED_VERSION) && version > 0 {
        return decode_at(body, 0);
    }
    decode_at(body, version)
}

fn decode_at(body: Bytes, version: i16) -> Result<ApiVersionsResponse, ProtocolError> {
    let flexible = is_flexible(ApiKey::ApiVersions, version)?;
    let mut r = WireReader::new(body, ApiKey::ApiVersions, version);
    let error_code = r.i16()?;
    let n = r.array_len(flexible, 6)?;
    let mut api_keys = Vec::with_capacity(n);
    for _ in 0..n {
        api_keys.push(ApiVersionRange {
            api_key: r.i16()?,
            min_version: r.i16()?,
            max_version: r.i16()?,
        });
        if flexible {
            r.skip_tagged_fields()?;
        }
    }
    let throttle_time_ms = if version >= 1 { r.i32()? } else { 0 };
    if flexible {
        r.skip_tagged_fields()?;
    }
    r.finish()?;
    Ok(ApiVersionsResponse {
        error_code,
        api_keys,
        throttle_time_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response as kp;
    use kafka_protocol::protocol::Encodable;

    fn encode(version: i16, error_code: i16) -> Bytes {
        let resp = kp::ApiVersionsResponse::default()
            .with_error_code(error_code)
            .with_api_keys(vec![
                kp::ApiVersion::default()
                    .with_api_key(0)
                    .with_min_version(3)
                    .with_max_version(11),
                kp::ApiVersion::default()
                    .with_api_key(1)
                    .with_min_version(4)
                    .with_max_version(16),
            ])
            .with_throttle_time_ms(7);
        let mut buf = bytes::BytesMut::new();
        resp.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_every_version_kafka_protocol_encodes() {
        for v in 0..=4 {
            let r = decode_api_versions_response(encode(v, 0), v).unwrap();
            assert_eq!(r.api_keys.len(), 2, "v{v}");
            assert_eq!(
                r.api_keys[1],
                ApiVersionRange {
                    api_key: 1,
                    min_version: 4,
                    max_version: 16
                }
            );
            assert_eq!(r.throttle_time_ms, if v >= 1 { 7 } else { 0 });
        }
    }

    #[test]
    fn unsupported_version_answer_is_read_as_v0() {
        let r = decode_api_versions_response(encode(0, UNSUPPORTED_VERSION), 4).unwrap();
        assert_eq!(r.error_code, UNSUPPORTED_VERSION);
        assert_eq!(r.api_keys.len(), 2);
    }
}
