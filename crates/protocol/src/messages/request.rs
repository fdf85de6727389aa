//! [`KafkaRequest`]: a request type that knows its API, how to frame itself
//! and how to decode its response, so the connection layer can offer one
//! typed `send` for every API.

use bytes::Bytes;
use kafka_protocol::messages::{self as kp, ApiKey};

use super::api_versions::{ApiVersionsResponse, decode_api_versions_response};
use super::control::decode_control_response;
use super::fetch::{FetchResponse, decode_fetch_response};
use super::metadata::{MetadataResponse, decode_metadata_response};
use super::produce::{
    ProduceRequest, ProduceResponse, decode_produce_response, encode_produce_request,
};
use crate::error::ProtocolError;
use crate::frame::encode_request;

/// A request kmirror can send: its API, its framing, and its response type.
pub trait KafkaRequest {
    /// The API of the request.
    const API: ApiKey;
    /// What the response decodes to.
    type Response;

    /// Encodes the whole frame (size prefix included) as chunks for a
    /// vectored write.
    fn encode_frame(
        &self,
        version: i16,
        correlation_id: i32,
        client_id: Option<&str>,
    ) -> Result<Vec<Bytes>, ProtocolError>;

    /// Decodes the response body (header stripped).
    fn decode_response(body: Bytes, version: i16) -> Result<Self::Response, ProtocolError>;

    /// For a request the broker will not answer (Produce with `acks=0`),
    /// the response to report once it is sent; `None` for every request
    /// that gets a response.
    fn response_without_reply(&self) -> Option<Self::Response> {
        None
    }
}

macro_rules! kafka_protocol_request {
    ($req:ty, $api:expr, $resp:ty, $decode:expr) => {
        impl KafkaRequest for $req {
            const API: ApiKey = $api;
            type Response = $resp;

            fn encode_frame(
                &self,
                version: i16,
                correlation_id: i32,
                client_id: Option<&str>,
            ) -> Result<Vec<Bytes>, ProtocolError> {
                encode_request($api, self, version, correlation_id, client_id).map(|b| vec![b])
            }

            fn decode_response(body: Bytes, version: i16) -> Result<$resp, ProtocolError> {
                $decode(body, version)
            }
        }
    };
    ($req:ty, $api:expr, $resp:ty) => {
        kafka_protocol_request!($req, $api, $resp, |body, version| {
            decode_control_response($api, version, body)
        });
    };
}

kafka_protocol_request!(
    kp::ApiVersionsRequest,
    ApiKey::ApiVersions,
    ApiVersionsResponse,
    decode_api_versions_response
);
kafka_protocol_request!(
    kp::MetadataRequest,
    ApiKey::Metadata,
    MetadataResponse,
    decode_metadata_response
);
kafka_protocol_request!(
    kp::FetchRequest,
    ApiKey::Fetch,
    FetchResponse,
    decode_fetch_response
);
kafka_protocol_request!(
    kp::ListOffsetsRequest,
    ApiKey::ListOffsets,
    kp::ListOffsetsResponse
);
kafka_protocol_request!(
    kp::OffsetCommitRequest,
    ApiKey::OffsetCommit,
    kp::OffsetCommitResponse
);
kafka_protocol_request!(
    kp::OffsetFetchRequest,
    ApiKey::OffsetFetch,
    kp::OffsetFetchResponse
);
kafka_protocol_request!(
    kp::FindCoordinatorRequest,
    ApiKey::FindCoordinator,
    kp::FindCoordinatorResponse
);
kafka_protocol_request!(
    kp::JoinGroupRequest,
    ApiKey::JoinGroup,
    kp::JoinGroupResponse
);
kafka_protocol_request!(
    kp::HeartbeatRequest,
    ApiKey::Heartbeat,
    kp::HeartbeatResponse
);
kafka_protocol_request!(
    kp::LeaveGroupRequest,
    ApiKey::LeaveGroup,
    kp::LeaveGroupResponse
);
kafka_protocol_request!(
    kp::SyncGroupRequest,
    ApiKey::SyncGroup,
    kp::SyncGroupResponse
);
kafka_protocol_request!(
    kp::DescribeGroupsRequest,
    ApiKey::DescribeGroups,
    kp::DescribeGroupsResponse
);
kafka_protocol_request!(
    kp::ListGroupsRequest,
    ApiKey::ListGroups,
    kp::ListGroupsResponse
);
kafka_protocol_request!(
    kp::SaslHandshakeRequest,
    ApiKey::SaslHandshake,
    kp::SaslHandshakeResponse
);
kafka_protocol_request!(
    kp::CreateTopicsRequest,
    ApiKey::CreateTopics,
    kp::CreateTopicsResponse
);
kafka_protocol_request!(
    kp::InitProducerIdRequest,
    ApiKey::InitProducerId,
    kp::InitProducerIdResponse
);
kafka_protocol_request!(
    kp::DescribeConfigsRequest,
    ApiKey::DescribeConfigs,
    kp::DescribeConfigsResponse
);
kafka_protocol_request!(
    kp::SaslAuthenticateRequest,
    ApiKey::SaslAuthenticate,
    kp::SaslAuthenticateResponse
);
kafka_protocol_request!(
    kp::CreatePartitionsRequest,
    ApiKey::CreatePartitions,
    kp::CreatePartitionsResponse
);

impl KafkaRequest for ProduceRequest {
    const API: ApiKey = ApiKey::Produce;
    type Response = ProduceResponse;

    fn encode_frame(
        &self,
        version: i16,
        correlation_id: i32,
        client_id: Option<&str>,
    ) -> Result<Vec<Bytes>, ProtocolError> {
        encode_produce_request(self, version, correlation_id, client_id).map(|f| f.into_chunks())
    }

    fn decode_response(body: Bytes, version: i16) -> Result<ProduceResponse, ProtocolError> {
        decode_produce_response(body, version)
    }

    fn response_without_reply(&self) -> Option<ProduceResponse> {
        (self.acks == 0).then(|| ProduceResponse {
            topics: Vec::new(),
            throttle_time_ms: 0,
        })
    }
}
kafka_protocol_request!(
    kp::ConsumerGroupHeartbeatRequest,
    ApiKey::ConsumerGroupHeartbeat,
    kp::ConsumerGroupHeartbeatResponse
);
