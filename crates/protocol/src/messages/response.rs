//! One entry point that decodes the body of any response kmirror reads,
//! chosen by API key and version. The connection layer calls it after
//! matching a frame's correlation id to its request.

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsResponse, CreateTopicsResponse, DescribeConfigsResponse,
    DescribeGroupsResponse, FindCoordinatorResponse, HeartbeatResponse, InitProducerIdResponse,
    JoinGroupResponse, LeaveGroupResponse, ListOffsetsResponse, OffsetCommitResponse,
    OffsetFetchResponse, SaslAuthenticateResponse, SaslHandshakeResponse, SyncGroupResponse,
};

use super::api_versions::{ApiVersionsResponse, decode_api_versions_response};
use super::control::decode_control_response;
use super::fetch::{FetchResponse, decode_fetch_response};
use super::metadata::{MetadataResponse, decode_metadata_response};
use super::produce::{ProduceResponse, decode_produce_response};
use crate::error::ProtocolError;

/// A decoded response body.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseBody {
    /// ApiVersions (our decoder).
    ApiVersions(ApiVersionsResponse),
    /// Metadata (our decoder).
    Metadata(MetadataResponse),
    /// Fetch (our decoder; records stay slices of the frame).
    Fetch(FetchResponse),
    /// Produce (our decoder).
    Produce(ProduceResponse),
    /// ListOffsets.
    ListOffsets(ListOffsetsResponse),
    /// OffsetCommit.
    OffsetCommit(OffsetCommitResponse),
    /// OffsetFetch.
    OffsetFetch(OffsetFetchResponse),
    /// FindCoordinator.
    FindCoordinator(FindCoordinatorResponse),
    /// JoinGroup.
    JoinGroup(JoinGroupResponse),
    /// Heartbeat.
    Heartbeat(HeartbeatResponse),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupResponse),
    /// SyncGroup.
    SyncGroup(SyncGroupResponse),
    /// DescribeGroups.
    DescribeGroups(DescribeGroupsResponse),
    /// SaslHandshake.
    SaslHandshake(SaslHandshakeResponse),
    /// CreateTopics.
    CreateTopics(CreateTopicsResponse),
    /// InitProducerId.
    InitProducerId(InitProducerIdResponse),
    /// DescribeConfigs.
    DescribeConfigs(DescribeConfigsResponse),
    /// SaslAuthenticate.
    SaslAuthenticate(SaslAuthenticateResponse),
    /// CreatePartitions.
    CreatePartitions(CreatePartitionsResponse),
}

/// Decodes the body (response header already stripped) of a response to a
/// request of `api` at `version`.
pub fn decode_response_body(
    api: ApiKey,
    version: i16,
    body: Bytes,
) -> Result<ResponseBody, ProtocolError> {
    use ResponseBody as R;
    Ok(match api {
        ApiKey::ApiVersions => R::ApiVersions(decode_api_versions_response(body, version)?),
        ApiKey::Metadata => R::Metadata(decode_metadata_response(body, version)?),
        ApiKey::Fetch => R::Fetch(decode_fetch_response(body, version)?),
        ApiKey::Produce => R::Produce(decode_produce_response(body, version)?),
        ApiKey::ListOffsets => R::ListOffsets(decode_control_response(api, version, body)?),
        ApiKey::OffsetCommit => R::OffsetCommit(decode_control_response(api, version, body)?),
        ApiKey::OffsetFetch => R::OffsetFetch(decode_control_response(api, version, body)?),
        ApiKey::FindCoordinator => R::FindCoordinator(decode_control_response(api, version, body)?),
        ApiKey::JoinGroup => R::JoinGroup(decode_control_response(api, version, body)?),
        ApiKey::Heartbeat => R::Heartbeat(decode_control_response(api, version, body)?),
        ApiKey::LeaveGroup => R::LeaveGroup(decode_control_response(api, version, body)?),
        ApiKey::SyncGroup => R::SyncGroup(decode_control_response(api, version, body)?),
        ApiKey::DescribeGroups => R::DescribeGroups(decode_control_response(api, version, body)?),
        ApiKey::SaslHandshake => R::SaslHandshake(decode_control_response(api, version, body)?),
        ApiKey::CreateTopics => R::CreateTopics(decode_control_response(api, version, body)?),
        ApiKey::InitProducerId => R::InitProducerId(decode_control_response(api, version, body)?),
        ApiKey::DescribeConfigs => R::DescribeConfigs(decode_control_response(api, version, body)?),
        ApiKey::SaslAuthenticate => {
            R::SaslAuthenticate(decode_control_response(api, version, body)?)
        }
        ApiKey::CreatePartitions => {
            R::CreatePartitions(decode_control_response(api, version, body)?)
        }
        other => return Err(ProtocolError::UnknownApi(other as i16)),
    })
}
