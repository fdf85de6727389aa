//! The Kafka APIs kmirror speaks, the versions it implements, and version
//! negotiation against a broker's ApiVersions answer.
//!
//! Each API has one [`ApiSpec`]: the version range we encode and decode, and
//! the first flexible version (which decides the header versions). A broker's
//! ranges plus ours give one version per API in [`NegotiatedVersions`].

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

use crate::error::ProtocolError;
use crate::messages::api_versions::ApiVersionsResponse;

/// What kmirror implements of one Kafka API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiSpec {
    /// The API.
    pub key: ApiKey,
    /// The versions kmirror can encode the request and decode the response at.
    pub ours: VersionRange,
    /// The first version using the flexible (compact, tagged) encoding.
    pub first_flexible: i16,
}

const fn spec(key: ApiKey, min: i16, max: i16, first_flexible: i16) -> ApiSpec {
    ApiSpec {
        key,
        ours: VersionRange { min, max },
        first_flexible,
    }
}

/// Every API kmirror speaks, with the versions it implements.
///
/// Lower bounds: Metadata starts at v4 because older versions cannot turn off
/// topic auto-creation; Produce at v3 (magic 2 batches); Fetch at v4 (read
/// committed). Upper bounds stop before versions that need topic ids in
/// Produce (v13).
pub const SUPPORTED_APIS: &[ApiSpec] = &[
    spec(ApiKey::Produce, 3, 12, 9),
    spec(ApiKey::Fetch, 4, 16, 12),
    spec(ApiKey::ListOffsets, 1, 10, 6),
    spec(ApiKey::Metadata, 4, 13, 9),
    spec(ApiKey::OffsetCommit, 2, 9, 8),
    spec(ApiKey::OffsetFetch, 1, 9, 6),
    spec(ApiKey::FindCoordinator, 0, 6, 3),
    spec(ApiKey::JoinGroup, 0, 9, 6),
    spec(ApiKey::Heartbeat, 0, 4, 4),
    spec(ApiKey::LeaveGroup, 0, 5, 4),
    spec(ApiKey::SyncGroup, 0, 5, 4),
    spec(ApiKey::DescribeGroups, 0, 6, 5),
    spec(ApiKey::ListGroups, 0, 5, 3),
    spec(ApiKey::SaslHandshake, 0, 1, i16::MAX),
    spec(ApiKey::ApiVersions, 0, 4, 3),
    spec(ApiKey::CreateTopics, 2, 7, 5),
    spec(ApiKey::InitProducerId, 0, 5, 2),
    spec(ApiKey::DescribeConfigs, 1, 4, 4),
    spec(ApiKey::SaslAuthenticate, 0, 2, 2),
    spec(ApiKey::CreatePartitions, 0, 3, 2),
    spec(ApiKey::ConsumerGroupHeartbeat, 0, 1, 0),
];

/// Looks up what kmirror implements of `key`.
pub fn api_spec(key: ApiKey) -> Result<&'static ApiSpec, ProtocolError> {
    SUPPORTED_APIS
        .iter()
        .find(|s| s.key == key)
        .ok_or(ProtocolError::UnknownApi(key as i16))
}

/// Checks that kmirror implements `version` of `key`
/// ([`ProtocolError::Unsupported`] otherwise).
pub fn require_version(key: ApiKey, version: i16) -> Result<(), ProtocolError> {
    let spec = api_spec(key)?;
    if (spec.ours.min..=spec.ours.max).contains(&version) {
        Ok(())
    } else {
        Err(ProtocolError::Unsupported {
            api: key,
            broker: Some(VersionRange {
                min: version,
                max: version,
            }),
            ours: spec.ours,
        })
    }
}

/// Whether `version` of `key` uses the flexible encoding.
pub fn is_flexible(key: ApiKey, version: i16) -> Result<bool, ProtocolError> {
    Ok(version >= api_spec(key)?.first_flexible)
}

/// The request header version for a request of `key` at `version`:
/// v2 for flexible versions, else v1.
pub fn request_header_version(key: ApiKey, version: i16) -> Result<i16, ProtocolError> {
    Ok(if is_flexible(key, version)? { 2 } else { 1 })
}

/// The response header version for a response of `key` at `version`:
/// v1 for flexible versions, else v0. ApiVersions responses always use v0 so
/// that a client can read them before it knows what the broker supports.
pub fn response_header_version(key: ApiKey, version: i16) -> Result<i16, ProtocolError> {
    if key == ApiKey::ApiVersions {
        return Ok(0);
    }
    Ok(if is_flexible(key, version)? { 1 } else { 0 })
}

/// The version chosen for each API after comparing a broker's ApiVersions
/// answer with [`SUPPORTED_APIS`].
#[derive(Debug, Clone, PartialEq)]
pub struct NegotiatedVersions {
    /// `(api, broker's range if announced, chosen version if any)`.
    entries: Vec<(ApiKey, Option<VersionRange>, Option<i16>)>,
}

impl NegotiatedVersions {
    /// Picks, per API, the highest version both sides support.
    pub fn negotiate(broker: &ApiVersionsResponse) -> Self {
        let entries = SUPPORTED_APIS
            .iter()
            .map(|spec| {
                let theirs = broker
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == spec.key as i16)
                    .map(|k| VersionRange {
                        min: k.min_version,
                        max: k.max_version,
                    });
                let chosen = theirs.and_then(|t| {
                    let max = t.max.min(spec.ours.max);
                    let min = t.min.max(spec.ours.min);
                    (min <= max).then_some(max)
                });
                (spec.key, theirs, chosen)
            })
            .collect();
        Self { entries }
    }

    /// The version to use for `key`, or [`ProtocolError::Unsupported`] naming
    /// both ranges when there is no overlap.
    pub fn version(&self, key: ApiKey) -> Result<i16, ProtocolError> {
        let spec = api_spec(key)?;
        match self.entries.iter().find(|(k, _, _)| *k == key) {
            Some((_, _, Some(v))) => Ok(*v),
            Some((_, theirs, None)) => Err(ProtocolError::Unsupported {
                api: key,
                broker: *theirs,
                ours: spec.ours,
            }),
            None => Err(ProtocolError::Unsupported {
                api: key,
                broker: None,
                ours: spec.ours,
            }),
        }
    }

    /// Checks that every API in `required` has a common version, reporting
    /// the first that does not.
    pub fn require(&self, required: &[ApiKey]) -> Result<(), ProtocolError> {
        required
            .iter()
            .try_for_each(|k| self.version(*k).map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::api_versions::ApiVersionRange;

    fn broker(ranges: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        ApiVersionsResponse {
            error_code: 0,
            api_keys: ranges
                .iter()
                .map(|(k, min, max)| ApiVersionRange {
                    api_key: *k as i16,
                    min_version: *min,
                    max_version: *max,
                })
                .collect(),
            throttle_time_ms: 0,
        }
    }

    #[test]
    fn picks_highest_common_version() {
        let n = NegotiatedVersions::negotiate(&broker(&[
            (ApiKey::Produce, 0, 11),
            (ApiKey::Fetch, 0, 17),
            (ApiKey::Metadata, 0, 7),
        ]));
        assert_eq!(n.version(ApiKey::Produce).unwrap(), 11);
        assert_eq!(n.version(ApiKey::Fetch).unwrap(), 16);
        assert_eq!(n.version(ApiKey::Metadata).unwrap(), 7);
    }

    #[test]
    fn no_overlap_names_both_ranges() {
        // A broker that only accepts Produce v13+ (topic ids) shares nothing
        // with our v3..v12.
        let n = NegotiatedVersions::negotiate(&broker(&[(ApiKey::Produce, 13, 13)]));
        let err = n.version(ApiKey::Produce).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("13..13") && msg.contains("3..12"), "{msg}");
        assert!(matches!(err, ProtocolError::Unsupported { .. }));
    }

    #[test]
    fn api_missing_on_broker_is_unsupported_only_when_required() {
        let n = NegotiatedVersions::negotiate(&broker(&[(ApiKey::Fetch, 4, 12)]));
        assert!(n.require(&[ApiKey::Fetch]).is_ok());
        let err = n
            .require(&[ApiKey::Fetch, ApiKey::CreatePartitions])
            .unwrap_err();
        assert!(err.to_string().contains("none"), "{err}");
    }

    #[test]
    fn kafka4_broker_without_old_produce_versions_still_negotiates() {
        // Kafka 4.0 removed Produce v0-2 (KIP-896).
        let n = NegotiatedVersions::negotiate(&broker(&[(ApiKey::Produce, 3, 12)]));
        assert_eq!(n.version(ApiKey::Produce).unwrap(), 12);
    }

    #[test]
    fn a_version_outside_ours_names_both() {
        let err = require_version(ApiKey::Produce, 2).unwrap_err();
        assert!(
            err.to_string().contains("2..2") && err.to_string().contains("3..12"),
            "{err}"
        );
        assert!(require_version(ApiKey::Produce, 12).is_ok());
    }

    #[test]
    fn header_versions_follow_flexibility() {
        assert_eq!(request_header_version(ApiKey::Produce, 8).unwrap(), 1);
        assert_eq!(request_header_version(ApiKey::Produce, 9).unwrap(), 2);
        assert_eq!(response_header_version(ApiKey::Fetch, 12).unwrap(), 1);
        assert_eq!(response_header_version(ApiKey::Fetch, 11).unwrap(), 0);
        assert_eq!(response_header_version(ApiKey::ApiVersions, 3).unwrap(), 0);
        assert_eq!(request_header_version(ApiKey::ApiVersions, 3).unwrap(), 2);
    }

    #[test]
    fn our_flexible_thresholds_match_kafka_protocol() {
        // kafka-protocol is generated from Apache Kafka's schemas; our table
        // must agree with it on every version we implement.
        for spec in SUPPORTED_APIS {
            for v in spec.ours.min..=spec.ours.max {
                assert_eq!(
                    request_header_version(spec.key, v).unwrap(),
                    spec.key.request_header_version(v),
                    "{:?} v{v} request header",
                    spec.key
                );
                assert_eq!(
                    response_header_version(spec.key, v).unwrap(),
                    spec.key.response_header_version(v),
                    "{:?} v{v} response header",
                    spec.key
                );
            }
        }
    }

    #[test]
    fn control_schemas_cover_exactly_our_versions() {
        let own_decoders = [
            ApiKey::ApiVersions,
            ApiKey::Metadata,
            ApiKey::Fetch,
            ApiKey::Produce,
        ];
        for spec in SUPPORTED_APIS
            .iter()
            .filter(|s| !own_decoders.contains(&s.key))
        {
            let (_, first_flexible, range) = crate::messages::control::control_schema(spec.key)
                .unwrap_or_else(|| panic!("{:?} has no schema", spec.key));
            assert_eq!(
                (range.min, range.max),
                (spec.ours.min, spec.ours.max),
                "{:?}",
                spec.key
            );
            assert_eq!(first_flexible, spec.first_flexible, "{:?}", spec.key);
        }
    }
}
