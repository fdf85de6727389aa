//! Control-plane responses, decoded into kafka-protocol's types behind a
//! bounds check.
//!
//! This module owns the layouts of the responses kmirror reads outside the
//! data path (offsets, groups, coordinators, SASL, topic and config
//! administration), transcribed per version from kafka-protocol 0.18's
//! generated decoders, and [`decode_control_response`], which walks a body
//! against its layout (with the bounds-checked walker of the private
//! `shape` module) before handing it to kafka-protocol's
//! `Decodable::decode`.
//!
//! Why the walk: kafka-protocol's array decoders call `Vec::with_capacity`
//! on a count read from the wire, unchecked. After the walk every count is
//! at most the number of bytes that carry it, so kafka-protocol's
//! allocation is bounded by the frame size times the element size. This is
//! still kafka-protocol decoding hostile bytes; the walk bounds it, it does
//! not replace it.
//!
//! This module must never hand kafka-protocol a body that has not passed the
//! walk for exactly the API and version it is decoded at, and never decode a
//! version outside its table of APIs and versions (the layouts are proven
//! only there).

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatResponse, CreatePartitionsResponse, CreateTopicsResponse,
    DescribeConfigsResponse, DescribeGroupsResponse, FindCoordinatorResponse, HeartbeatResponse,
    InitProducerIdResponse, JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse,
    ListOffsetsResponse, OffsetCommitResponse, OffsetFetchResponse, SaslAuthenticateResponse,
    SaslHandshakeResponse, SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, VersionRange};

use super::shape::{self, Field};
use crate::error::ProtocolError;

mod sealed {
    /// Keeps [`super::ControlResponse`] implemented only here.
    pub trait Sealed {}
}

/// A kafka-protocol response type that [`decode_control_response`] can
/// decode. Implemented for exactly the responses in this module's table, so
/// a body is never decoded as a type whose layout was not checked.
pub trait ControlResponse: Decodable + sealed::Sealed {
    /// The API this type is the response of.
    const API_KEY: ApiKey;
}

macro_rules! control_responses {
    ($($ty:ty => $api:ident),* $(,)?) => {$(
        impl sealed::Sealed for $ty {}
        impl ControlResponse for $ty {
            const API_KEY: ApiKey = ApiKey::$api;
        }
    )*};
}

control_responses! {
    ListOffsetsResponse => ListOffsets,
    OffsetCommitResponse => OffsetCommit,
    OffsetFetchResponse => OffsetFetch,
    FindCoordinatorResponse => FindCoordinator,
    JoinGroupResponse => JoinGroup,
    HeartbeatResponse => Heartbeat,
    LeaveGroupResponse => LeaveGroup,
    SyncGroupResponse => SyncGroup,
    DescribeGroupsResponse => DescribeGroups,
    ListGroupsResponse => ListGroups,
    SaslHandshakeResponse => SaslHandshake,
    CreateTopicsResponse => CreateTopics,
    InitProducerIdResponse => InitProducerId,
    DescribeConfigsResponse => DescribeConfigs,
    SaslAuthenticateResponse => SaslAuthenticate,
    CreatePartitionsResponse => CreatePartitions,
    ConsumerGroupHeartbeatResponse => ConsumerGroupHeartbeat,
}

/// One row of the table: an API, the versions whose layout is described,
/// the first flexible version and the layout of the response body.
struct ControlApi {
    api: ApiKey,
    versions: VersionRange,
    first_flexible: i16,
    schema: &'static [Field],
}

const fn row(
    api: ApiKey,
    min: i16,
    max: i16,
    first_flexible: i16,
    schema: &'static [Field],
) -> ControlApi {
    ControlApi {
        api,
        versions: VersionRange { min, max },
        first_flexible,
        schema,
    }
}

/// Never flexible.
const NEVER: i16 = i16::MAX;

const CONTROL_APIS: [ControlApi; 17] = [
    row(ApiKey::ListOffsets, 1, 10, 6, layout::LIST_OFFSETS),
    row(ApiKey::OffsetCommit, 2, 9, 8, layout::OFFSET_COMMIT),
    row(ApiKey::OffsetFetch, 1, 9, 6, layout::OFFSET_FETCH),
    row(ApiKey::FindCoordinator, 0, 6, 3, layout::FIND_COORDINATOR),
    row(ApiKey::JoinGroup, 0, 9, 6, layout::JOIN_GROUP),
    row(ApiKey::Heartbeat, 0, 4, 4, layout::HEARTBEAT),
    row(ApiKey::LeaveGroup, 0, 5, 4, layout::LEAVE_GROUP),
    row(ApiKey::SyncGroup, 0, 5, 4, layout::SYNC_GROUP),
    row(ApiKey::DescribeGroups, 0, 6, 5, layout::DESCRIBE_GROUPS),
    row(ApiKey::ListGroups, 0, 5, 3, layout::LIST_GROUPS),
    row(ApiKey::SaslHandshake, 0, 1, NEVER, layout::SASL_HANDSHAKE),
    row(ApiKey::CreateTopics, 2, 7, 5, layout::CREATE_TOPICS),
    row(ApiKey::InitProducerId, 0, 5, 2, layout::INIT_PRODUCER_ID),
    row(ApiKey::DescribeConfigs, 1, 4, 4, layout::DESCRIBE_CONFIGS),
    row(ApiKey::SaslAuthenticate, 0, 2, 2, layout::SASL_AUTHENTICATE),
    row(ApiKey::CreatePartitions, 0, 3, 2, layout::CREATE_PARTITIONS),
    row(
        ApiKey::ConsumerGroupHeartbeat,
        0,
        1,
        0,
        layout::CONSUMER_GROUP_HEARTBEAT,
    ),
];

/// The response layout of `api`, its first flexible version (`i16::MAX`
/// if never flexible) and the versions the layout is described for; `None`
/// for an API outside this module.
pub(crate) fn control_schema(api: ApiKey) -> Option<(&'static [Field], i16, VersionRange)> {
    CONTROL_APIS
        .iter()
        .find(|row| row.api == api)
        .map(|row| (row.schema, row.first_flexible, row.versions))
}

/// Decodes a control-plane response body (header already stripped) into
/// kafka-protocol's type, after checking its shape with our bounds-checked
/// walker.
///
/// Fails with [`ProtocolError::Malformed`] on any violation of the layout,
/// on kafka-protocol's own errors and on trailing bytes; with
/// [`ProtocolError::UnknownApi`] for an API outside this module or one that
/// `R` is not the response of; with [`ProtocolError::Unsupported`] for a
/// version outside the table (`broker` then names that version).
pub fn decode_control_response<R: ControlResponse>(
    api: ApiKey,
    version: i16,
    mut body: Bytes,
) -> Result<R, ProtocolError> {
    let (schema, first_flexible, versions) =
        control_schema(api).ok_or(ProtocolError::UnknownApi(api as i16))?;
    if api != R::API_KEY {
        return Err(ProtocolError::UnknownApi(api as i16));
    }
    if version < versions.min || version > versions.max {
        return Err(ProtocolError::Unsupported {
            api,
            broker: Some(VersionRange {
                min: version,
                max: version,
            }),
            ours: versions,
        });
    }
    shape::check(schema, api, version, version >= first_flexible, &body)?;
    // kafka-protocol decodes hostile bytes here, but only ones whose every
    // count the walk above has bounded by the bytes that carry it.
    let decoded = R::decode(&mut body, version).map_err(|e| ProtocolError::Malformed {
        api,
        version,
        reason: format!("kafka-protocol: {e:#}"),
    })?;
    if !body.is_empty() {
        return Err(ProtocolError::Malformed {
            api,
            version,
            reason: format!("{} bytes left after kafka-protocol's decode", body.len()),
        });
    }
    Ok(decoded)
}

/// The layouts, one `const` per struct, transcribed from the `impl Decodable`
/// blocks of kafka-protocol 0.18 (`src/messages/*_response.rs`). Only
/// versions in the table are described; fields of later versions are left
/// out. Field names are in the comments.
mod layout {
    use super::shape::Kind::{
        Array, ArrayOfInt32, ArrayOfString, Bool, Bytes, Int8, Int16, Int32, Int64, NullableArray,
        NullableString, NullableStruct, String, Uuid,
    };
    use super::shape::{Field, f};

    // ListOffsets v1-10, flexible from 6.
    const LIST_OFFSETS_PARTITION: &[Field] = &[
        f(Int32),          // partition_index
        f(Int16),          // error_code
        f(Int64),          // timestamp
        f(Int64),          // offset
        f(Int32).since(4), // leader_epoch
    ];
    const LIST_OFFSETS_TOPIC: &[Field] = &[
        f(String),                        // name
        f(Array(LIST_OFFSETS_PARTITION)), // partitions
    ];
    pub(super) const LIST_OFFSETS: &[Field] = &[
        f(Int32).since(2),            // throttle_time_ms
        f(Array(LIST_OFFSETS_TOPIC)), // topics
    ];

    // OffsetCommit v2-9, flexible from 8.
    const OFFSET_COMMIT_PARTITION: &[Field] = &[
        f(Int32), // partition_index
        f(Int16), // error_code
    ];
    const OFFSET_COMMIT_TOPIC: &[Field] = &[
        f(String),                         // name
        f(Array(OFFSET_COMMIT_PARTITION)), // partitions
    ];
    pub(super) const OFFSET_COMMIT: &[Field] = &[
        f(Int32).since(3),             // throttle_time_ms
        f(Array(OFFSET_COMMIT_TOPIC)), // topics
    ];

    // OffsetFetch v1-9, flexible from 6. Versions 1-7 answer for one group
    // (`topics`), versions 8 and later for several (`groups`).
    const OFFSET_FETCH_PARTITION: &[Field] = &[
        f(Int32),          // partition_index
        f(Int64),          // committed_offset
        f(Int32).since(5), // committed_leader_epoch
        f(NullableString), // metadata
        f(Int16),          // error_code
    ];
    const OFFSET_FETCH_TOPIC: &[Field] = &[
        f(String),                        // name
        f(Array(OFFSET_FETCH_PARTITION)), // partitions
    ];
    const OFFSET_FETCH_GROUP_PARTITION: &[Field] = &[
        f(Int32),          // partition_index
        f(Int64),          // committed_offset
        f(Int32),          // committed_leader_epoch
        f(NullableString), // metadata
        f(Int16),          // error_code
    ];
    const OFFSET_FETCH_GROUP_TOPIC: &[Field] = &[
        f(String),                              // name
        f(Array(OFFSET_FETCH_GROUP_PARTITION)), // partitions
    ];
    const OFFSET_FETCH_GROUP: &[Field] = &[
        f(String),                          // group_id
        f(Array(OFFSET_FETCH_GROUP_TOPIC)), // topics
        f(Int16),                           // error_code
    ];
    pub(super) const OFFSET_FETCH: &[Field] = &[
        f(Int32).since(3),                     // throttle_time_ms
        f(Array(OFFSET_FETCH_TOPIC)).until(7), // topics
        f(Int16).since(2).until(7),            // error_code
        f(Array(OFFSET_FETCH_GROUP)).since(8), // groups
    ];

    // FindCoordinator v0-6, flexible from 3. Versions 4 and later answer
    // for several keys (`coordinators`).
    const FIND_COORDINATOR_COORDINATOR: &[Field] = &[
        f(String),         // key
        f(Int32),          // node_id
        f(String),         // host
        f(Int32),          // port
        f(Int16),          // error_code
        f(NullableString), // error_message
    ];
    pub(super) const FIND_COORDINATOR: &[Field] = &[
        f(Int32).since(1),                               // throttle_time_ms
        f(Int16).until(3),                               // error_code
        f(NullableString).since(1).until(3),             // error_message
        f(Int32).until(3),                               // node_id
        f(String).until(3),                              // host
        f(Int32).until(3),                               // port
        f(Array(FIND_COORDINATOR_COORDINATOR)).since(4), // coordinators
    ];

    // JoinGroup v0-9, flexible from 6.
    const JOIN_GROUP_MEMBER: &[Field] = &[
        f(String),                  // member_id
        f(NullableString).since(5), // group_instance_id
        f(Bytes),                   // metadata
    ];
    pub(super) const JOIN_GROUP: &[Field] = &[
        f(Int32).since(2),           // throttle_time_ms
        f(Int16),                    // error_code
        f(Int32),                    // generation_id
        f(NullableString).since(7),  // protocol_type
        f(NullableString),           // protocol_name (nullable in every version)
        f(String),                   // leader
        f(Bool).since(9),            // skip_assignment
        f(String),                   // member_id
        f(Array(JOIN_GROUP_MEMBER)), // members
    ];

    // ConsumerGroupHeartbeat v0-1 (KIP-848), flexible from 0.
    const CONSUMER_GROUP_HEARTBEAT_TOPIC: &[Field] = &[
        f(Uuid),         // topic_id
        f(ArrayOfInt32), // partitions
    ];
    const CONSUMER_GROUP_HEARTBEAT_ASSIGNMENT: &[Field] = &[
        f(Array(CONSUMER_GROUP_HEARTBEAT_TOPIC)), // topic_partitions
    ];
    pub(super) const CONSUMER_GROUP_HEARTBEAT: &[Field] = &[
        f(Int32),                                               // throttle_time_ms
        f(Int16),                                               // error_code
        f(NullableString),                                      // error_message
        f(NullableString),                                      // member_id
        f(Int32),                                               // member_epoch
        f(Int32),                                               // heartbeat_interval_ms
        f(NullableStruct(CONSUMER_GROUP_HEARTBEAT_ASSIGNMENT)), // assignment
    ];

    // Heartbeat v0-4, flexible from 4.
    pub(super) const HEARTBEAT: &[Field] = &[
        f(Int32).since(1), // throttle_time_ms
        f(Int16),          // error_code
    ];

    // LeaveGroup v0-5, flexible from 4.
    const LEAVE_GROUP_MEMBER: &[Field] = &[
        f(String),         // member_id
        f(NullableString), // group_instance_id
        f(Int16),          // error_code
    ];
    pub(super) const LEAVE_GROUP: &[Field] = &[
        f(Int32).since(1),                     // throttle_time_ms
        f(Int16),                              // error_code
        f(Array(LEAVE_GROUP_MEMBER)).since(3), // members
    ];

    // SyncGroup v0-5, flexible from 4.
    pub(super) const SYNC_GROUP: &[Field] = &[
        f(Int32).since(1),          // throttle_time_ms
        f(Int16),                   // error_code
        f(NullableString).since(5), // protocol_type
        f(NullableString).since(5), // protocol_name
        f(Bytes),                   // assignment
    ];

    // DescribeGroups v0-6, flexible from 5.
    const DESCRIBE_GROUPS_MEMBER: &[Field] = &[
        f(String),                  // member_id
        f(NullableString).since(4), // group_instance_id
        f(String),                  // client_id
        f(String),                  // client_host
        f(Bytes),                   // member_metadata
        f(Bytes),                   // member_assignment
    ];
    const DESCRIBE_GROUPS_GROUP: &[Field] = &[
        f(Int16),                         // error_code
        f(NullableString).since(6),       // error_message
        f(String),                        // group_id
        f(String),                        // group_state
        f(String),                        // protocol_type
        f(String),                        // protocol_data
        f(Array(DESCRIBE_GROUPS_MEMBER)), // members
        f(Int32).since(3),                // authorized_operations
    ];
    pub(super) const DESCRIBE_GROUPS: &[Field] = &[
        f(Int32).since(1),               // throttle_time_ms
        f(Array(DESCRIBE_GROUPS_GROUP)), // groups
    ];

    // ListGroups v0-5, flexible from 3.
    const LIST_GROUPS_GROUP: &[Field] = &[
        f(String),          // group_id
        f(String),          // protocol_type
        f(String).since(4), // group_state
        f(String).since(5), // group_type
    ];
    pub(super) const LIST_GROUPS: &[Field] = &[
        f(Int32).since(1),           // throttle_time_ms
        f(Int16),                    // error_code
        f(Array(LIST_GROUPS_GROUP)), // groups
    ];

    // SaslHandshake v0-1, never flexible.
    pub(super) const SASL_HANDSHAKE: &[Field] = &[
        f(Int16),         // error_code
        f(ArrayOfString), // mechanisms
    ];

    // CreateTopics v2-7, flexible from 5.
    const CREATE_TOPICS_CONFIG: &[Field] = &[
        f(String),         // name
        f(NullableString), // value
        f(Bool),           // read_only
        f(Int8),           // config_source
        f(Bool),           // is_sensitive
    ];
    const CREATE_TOPICS_TOPIC: &[Field] = &[
        f(String),                                       // name
        f(Uuid).since(7),                                // topic_id
        f(Int16),                                        // error_code
        f(NullableString),                               // error_message
        f(Int32).since(5),                               // num_partitions
        f(Int16).since(5),                               // replication_factor
        f(NullableArray(CREATE_TOPICS_CONFIG)).since(5), // configs
        // kafka-protocol reads tag 0 as an INT16 whatever size it declares,
        // so it must be described for the walk to check that size.
        f(Int16).since(5).tag(0), // topic_config_error_code
    ];
    pub(super) const CREATE_TOPICS: &[Field] = &[
        f(Int32),                      // throttle_time_ms
        f(Array(CREATE_TOPICS_TOPIC)), // topics
    ];

    // InitProducerId v0-5, flexible from 2.
    pub(super) const INIT_PRODUCER_ID: &[Field] = &[
        f(Int32), // throttle_time_ms
        f(Int16), // error_code
        f(Int64), // producer_id
        f(Int16), // producer_epoch
    ];

    // DescribeConfigs v1-4, flexible from 4.
    const DESCRIBE_CONFIGS_SYNONYM: &[Field] = &[
        f(String),         // name
        f(NullableString), // value
        f(Int8),           // source
    ];
    const DESCRIBE_CONFIGS_CONFIG: &[Field] = &[
        f(String),                          // name
        f(NullableString),                  // value
        f(Bool),                            // read_only
        f(Int8),                            // config_source
        f(Bool),                            // is_sensitive
        f(Array(DESCRIBE_CONFIGS_SYNONYM)), // synonyms
        f(Int8).since(3),                   // config_type
        f(NullableString).since(3),         // documentation
    ];
    const DESCRIBE_CONFIGS_RESULT: &[Field] = &[
        f(Int16),                          // error_code
        f(NullableString),                 // error_message
        f(Int8),                           // resource_type
        f(String),                         // resource_name
        f(Array(DESCRIBE_CONFIGS_CONFIG)), // configs
    ];
    pub(super) const DESCRIBE_CONFIGS: &[Field] = &[
        f(Int32),                          // throttle_time_ms
        f(Array(DESCRIBE_CONFIGS_RESULT)), // results
    ];

    // SaslAuthenticate v0-2, flexible from 2.
    pub(super) const SASL_AUTHENTICATE: &[Field] = &[
        f(Int16),          // error_code
        f(NullableString), // error_message
        f(Bytes),          // auth_bytes
        f(Int64).since(1), // session_lifetime_ms
    ];

    // CreatePartitions v0-3, flexible from 2.
    const CREATE_PARTITIONS_RESULT: &[Field] = &[
        f(String),         // name
        f(Int16),          // error_code
        f(NullableString), // error_message
    ];
    pub(super) const CREATE_PARTITIONS: &[Field] = &[
        f(Int32),                           // throttle_time_ms
        f(Array(CREATE_PARTITIONS_RESULT)), // results
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
    use kafka_protocol::messages::create_topics_response::{
        CreatableTopicConfigs, CreatableTopicResult,
    };
    use kafka_protocol::messages::describe_configs_response::{
        DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
    };
    use kafka_protocol::messages::describe_groups_response::{
        DescribedGroup, DescribedGroupMember,
    };
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
    use kafka_protocol::messages::leave_group_response::MemberResponse;
    use kafka_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };
    use kafka_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
        OffsetFetchResponseTopic, OffsetFetchResponseTopics,
    };
    use kafka_protocol::messages::{BrokerId, GroupId, ProducerId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    /// Applies `f` only when `cond` holds, to set a field only in the
    /// versions that have it.
    trait When: Sized {
        fn when(self, cond: bool, f: impl FnOnce(Self) -> Self) -> Self {
            if cond { f(self) } else { self }
        }
    }
    impl<T> When for T {}

    fn s(text: &'static str) -> StrBytes {
        StrBytes::from_static_str(text)
    }

    fn topic_name(name: &'static str) -> TopicName {
        TopicName(s(name))
    }

    fn bytes(raw: &'static [u8]) -> Bytes {
        Bytes::from_static(raw)
    }

    /// One unknown tagged field, carried through by kafka-protocol.
    fn tagged() -> BTreeMap<i32, Bytes> {
        BTreeMap::from([(77, bytes(b"tag"))])
    }

    fn encode<R: Encodable>(response: &R, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        response.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    /// For every version of `R`'s API in the table: encodes `sample(v)` with
    /// kafka-protocol, checks that the walk consumes exactly all of it, that
    /// decoding gives the sample back, that every truncation and trailing
    /// garbage is refused.
    fn roundtrip<R>(sample: impl Fn(i16) -> R)
    where
        R: ControlResponse + Encodable + PartialEq + Debug,
    {
        let api = R::API_KEY;
        let (schema, first_flexible, versions) = control_schema(api).unwrap();
        for v in versions.min..=versions.max {
            let want = sample(v);
            let body = encode(&want, v);
            shape::check(schema, api, v, v >= first_flexible, &body)
                .unwrap_or_else(|e| panic!("{api:?} v{v}: walk refused a valid body: {e}"));
            let got: R = decode_control_response(api, v, body.clone())
                .unwrap_or_else(|e| panic!("{api:?} v{v}: {e}"));
            assert_eq!(got, want, "{api:?} v{v}");

            for cut in 0..body.len() {
                let err = decode_control_response::<R>(api, v, body.slice(..cut));
                assert!(err.is_err(), "{api:?} v{v}: truncation at {cut} accepted");
            }
            let mut long = BytesMut::from(&body[..]);
            long.extend_from_slice(&[0]);
            let err = decode_control_response::<R>(api, v, long.freeze()).unwrap_err();
            assert!(err.to_string().contains("trailing"), "{api:?} v{v}: {err}");
        }
    }

    /// For every version of `R`'s API in the table: a body built from our
    /// layout alone (every field, two elements per array, nulls and
    /// non-nulls, tagged fields) decodes with kafka-protocol and re-encodes
    /// to the same bytes. This proves no field of kafka-protocol's is
    /// missing from a layout and none is extra, independently of the
    /// hand-written samples.
    fn layout_matches_kafka_protocol<R>()
    where
        R: ControlResponse + Encodable,
    {
        let api = R::API_KEY;
        let (schema, first_flexible, versions) = control_schema(api).unwrap();
        for v in versions.min..=versions.max {
            let body = shape::sample::body(schema, v, v >= first_flexible);
            let decoded: R = decode_control_response(api, v, body.clone())
                .unwrap_or_else(|e| panic!("{api:?} v{v}: {e}"));
            assert_eq!(
                encode(&decoded, v),
                body,
                "{api:?} v{v}: re-encoding differs"
            );

            // Corrupt each byte in turn: nothing panics, and whatever the
            // walk accepts kafka-protocol decodes to the last byte (the walk
            // is never looser than the decoder it guards).
            for at in 0..body.len() {
                for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                    let mut bad = BytesMut::from(&body[..]);
                    bad[at] = value;
                    let bad = bad.freeze();
                    if shape::check(schema, api, v, v >= first_flexible, &bad).is_ok() {
                        decode_control_response::<R>(api, v, bad).unwrap_or_else(|e| {
                            panic!("{api:?} v{v}: walk accepted byte {at} = {value:#x}: {e}")
                        });
                    }
                }
            }
        }
    }

    #[test]
    fn every_layout_matches_kafka_protocol_byte_for_byte() {
        layout_matches_kafka_protocol::<ListOffsetsResponse>();
        layout_matches_kafka_protocol::<OffsetCommitResponse>();
        layout_matches_kafka_protocol::<OffsetFetchResponse>();
        layout_matches_kafka_protocol::<FindCoordinatorResponse>();
        layout_matches_kafka_protocol::<JoinGroupResponse>();
        layout_matches_kafka_protocol::<HeartbeatResponse>();
        layout_matches_kafka_protocol::<LeaveGroupResponse>();
        layout_matches_kafka_protocol::<SyncGroupResponse>();
        layout_matches_kafka_protocol::<DescribeGroupsResponse>();
        layout_matches_kafka_protocol::<ListGroupsResponse>();
        layout_matches_kafka_protocol::<SaslHandshakeResponse>();
        layout_matches_kafka_protocol::<CreateTopicsResponse>();
        layout_matches_kafka_protocol::<InitProducerIdResponse>();
        layout_matches_kafka_protocol::<DescribeConfigsResponse>();
        layout_matches_kafka_protocol::<SaslAuthenticateResponse>();
        layout_matches_kafka_protocol::<CreatePartitionsResponse>();
        layout_matches_kafka_protocol::<ConsumerGroupHeartbeatResponse>();
    }

    #[test]
    fn list_offsets_every_version() {
        roundtrip(|v| {
            let partition = |i: i32| {
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(i)
                    .with_error_code(3)
                    .with_timestamp(1_700_000_000_000)
                    .with_offset(42 + i64::from(i))
                    .when(v >= 4, |p| p.with_leader_epoch(9))
            };
            let topic = |name| {
                ListOffsetsTopicResponse::default()
                    .with_name(topic_name(name))
                    .with_partitions(vec![partition(0), partition(1)])
            };
            ListOffsetsResponse::default()
                .when(v >= 2, |r| r.with_throttle_time_ms(11))
                .with_topics(vec![topic("a"), topic("b")])
                .when(v >= 6, |r| r.with_unknown_tagged_fields(tagged()))
        });
    }

    #[test]
    fn offset_commit_every_version() {
        roundtrip(|v| {
            let partition = |i: i32| {
                OffsetCommitResponsePartition::default()
                    .with_partition_index(i)
                    .with_error_code(22)
            };
            let topic = |name| {
                OffsetCommitResponseTopic::default()
                    .with_name(topic_name(name))
                    .with_partitions(vec![partition(0), partition(1)])
            };
            OffsetCommitResponse::default()
                .when(v >= 3, |r| r.with_throttle_time_ms(11))
                .with_topics(vec![topic("a"), topic("b")])
        });
    }

    #[test]
    fn offset_fetch_every_version() {
        roundtrip(|v| {
            let metadata = |i: i32| (i == 0).then(|| s("meta"));
            let partition = |i: i32| {
                OffsetFetchResponsePartition::default()
                    .with_partition_index(i)
                    .with_committed_offset(100 + i64::from(i))
                    .when(v >= 5, |p| p.with_committed_leader_epoch(4))
                    .with_metadata(metadata(i))
                    .with_error_code(1)
            };
            let topic = |name| {
                OffsetFetchResponseTopic::default()
                    .with_name(topic_name(name))
                    .with_partitions(vec![partition(0), partition(1)])
            };
            let group_partition = |i: i32| {
                OffsetFetchResponsePartitions::default()
                    .with_partition_index(i)
                    .with_committed_offset(200 + i64::from(i))
                    .with_committed_leader_epoch(6)
                    .with_metadata(metadata(i))
                    .with_error_code(2)
            };
            let group_topic = |name| {
                OffsetFetchResponseTopics::default()
                    .with_name(topic_name(name))
                    .with_partitions(vec![group_partition(0), group_partition(1)])
            };
            let group = |id: &'static str| {
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(s(id)))
                    .with_topics(vec![group_topic("a"), group_topic("b")])
                    .with_error_code(15)
            };
            OffsetFetchResponse::default()
                .when(v >= 3, |r| r.with_throttle_time_ms(11))
                .when(v <= 7, |r| r.with_topics(vec![topic("a"), topic("b")]))
                .when((2..=7).contains(&v), |r| r.with_error_code(16))
                .when(v >= 8, |r| r.with_groups(vec![group("g1"), group("g2")]))
        });
    }

    #[test]
    fn find_coordinator_every_version() {
        roundtrip(|v| {
            let coordinator = |key: &'static str, message: Option<StrBytes>| {
                Coordinator::default()
                    .with_key(s(key))
                    .with_node_id(BrokerId(3))
                    .with_host(s("broker-3"))
                    .with_port(9092)
                    .with_error_code(15)
                    .with_error_message(message)
            };
            FindCoordinatorResponse::default()
                .when(v >= 1, |r| r.with_throttle_time_ms(11))
                .when(v <= 3, |r| {
                    r.with_error_code(15)
                        .with_node_id(BrokerId(2))
                        .with_host(s("broker-2"))
                        .with_port(9093)
                })
                .when(v == 1, |r| r.with_error_message(None))
                .when((2..=3).contains(&v), |r| {
                    r.with_error_message(Some(s("not available")))
                })
                .when(v >= 4, |r| {
                    r.with_coordinators(vec![
                        coordinator("g1", None),
                        coordinator("g2", Some(s("not available"))),
                    ])
                })
        });
    }

    #[test]
    fn join_group_every_version() {
        roundtrip(|v| {
            let member = |id: &'static str, instance: Option<StrBytes>| {
                JoinGroupResponseMember::default()
                    .with_member_id(s(id))
                    .when(v >= 5, |m| m.with_group_instance_id(instance))
                    .with_metadata(bytes(b"\x00\x01subscription"))
            };
            JoinGroupResponse::default()
                .when(v >= 2, |r| r.with_throttle_time_ms(11))
                .with_error_code(0)
                .with_generation_id(7)
                .when(v >= 7, |r| r.with_protocol_type(Some(s("consumer"))))
                .with_protocol_name((v % 2 == 0).then(|| s("range")))
                .with_leader(s("m1"))
                .when(v >= 9, |r| r.with_skip_assignment(true))
                .with_member_id(s("m2"))
                .with_members(vec![member("m1", Some(s("i1"))), member("m2", None)])
        });
    }

    #[test]
    fn heartbeat_every_version() {
        roundtrip(|v| {
            HeartbeatResponse::default()
                .when(v >= 1, |r| r.with_throttle_time_ms(11))
                .with_error_code(27)
        });
    }

    #[test]
    fn leave_group_every_version() {
        roundtrip(|v| {
            let member = |id: &'static str, instance: Option<StrBytes>| {
                MemberResponse::default()
                    .with_member_id(s(id))
                    .with_group_instance_id(instance)
                    .with_error_code(25)
            };
            LeaveGroupResponse::default()
                .when(v >= 1, |r| r.with_throttle_time_ms(11))
                .with_error_code(0)
                .when(v >= 3, |r| {
                    r.with_members(vec![member("m1", Some(s("i1"))), member("m2", None)])
                })
        });
    }

    #[test]
    fn sync_group_every_version() {
        roundtrip(|v| {
            SyncGroupResponse::default()
                .when(v >= 1, |r| r.with_throttle_time_ms(11))
                .with_error_code(0)
                .when(v >= 5, |r| {
                    r.with_protocol_type(Some(s("consumer")))
                        .with_protocol_name(None)
                })
                .with_assignment(bytes(b"\x00\x01assignment"))
        });
    }

    #[test]
    fn describe_groups_every_version() {
        roundtrip(|v| {
            let member = |id: &'static str, instance: Option<StrBytes>| {
                DescribedGroupMember::default()
                    .with_member_id(s(id))
                    .when(v >= 4, |m| m.with_group_instance_id(instance))
                    .with_client_id(s("client"))
                    .with_client_host(s("/10.0.0.1"))
                    .with_member_metadata(bytes(b"meta"))
                    .with_member_assignment(bytes(b"assign"))
            };
            let group = |id: &'static str, message: Option<StrBytes>| {
                DescribedGroup::default()
                    .with_error_code(0)
                    .when(v >= 6, |g| g.with_error_message(message))
                    .with_group_id(GroupId(s(id)))
                    .with_group_state(s("Stable"))
                    .with_protocol_type(s("consumer"))
                    .with_protocol_data(s("range"))
                    .with_members(vec![member("m1", Some(s("i1"))), member("m2", None)])
                    .when(v >= 3, |g| g.with_authorized_operations(0x0f))
            };
            DescribeGroupsResponse::default()
                .when(v >= 1, |r| r.with_throttle_time_ms(11))
                .with_groups(vec![group("g1", None), group("g2", Some(s("gone")))])
        });
    }

    #[test]
    fn sasl_handshake_every_version() {
        roundtrip(|_| {
            SaslHandshakeResponse::default()
                .with_error_code(33)
                .with_mechanisms(vec![s("PLAIN"), s("SCRAM-SHA-512")])
        });
    }

    #[test]
    fn create_topics_every_version() {
        roundtrip(|v| {
            let config = |name: &'static str, value: Option<StrBytes>| {
                CreatableTopicConfigs::default()
                    .with_name(s(name))
                    .with_value(value)
                    .with_read_only(true)
                    .with_config_source(5)
                    .with_is_sensitive(false)
            };
            let result = |name, message: Option<StrBytes>, configs| {
                CreatableTopicResult::default()
                    .with_name(topic_name(name))
                    .when(v >= 7, |t| {
                        t.with_topic_id("67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap())
                    })
                    .with_error_code(36)
                    .with_error_message(message)
                    .when(v >= 5, |t| {
                        t.with_topic_config_error_code(29)
                            .with_num_partitions(4)
                            .with_replication_factor(3)
                            .with_configs(configs)
                    })
            };
            let configs = vec![
                config("cleanup.policy", Some(s("compact"))),
                config("secret", None),
            ];
            CreateTopicsResponse::default()
                .with_throttle_time_ms(11)
                .with_topics(vec![
                    result("a", None, Some(configs)),
                    result("b", Some(s("exists")), None),
                ])
        });
    }

    #[test]
    fn init_producer_id_every_version() {
        roundtrip(|_| {
            InitProducerIdResponse::default()
                .with_throttle_time_ms(11)
                .with_error_code(0)
                .with_producer_id(ProducerId(4000))
                .with_producer_epoch(2)
        });
    }

    #[test]
    fn describe_configs_every_version() {
        roundtrip(|v| {
            let synonym = |name: &'static str, value: Option<StrBytes>| {
                DescribeConfigsSynonym::default()
                    .with_name(s(name))
                    .with_value(value)
                    .with_source(4)
            };
            let config = |name: &'static str, value: Option<StrBytes>| {
                DescribeConfigsResourceResult::default()
                    .with_name(s(name))
                    .with_value(value.clone())
                    .with_read_only(false)
                    .with_config_source(1)
                    .with_is_sensitive(value.is_none())
                    .with_synonyms(vec![
                        synonym("log.retention.ms", Some(s("1000"))),
                        synonym("secret", None),
                    ])
                    .when(v >= 3, |c| {
                        c.with_config_type(3)
                            .with_documentation(value.is_some().then(|| s("docs")))
                    })
            };
            let result = |name: &'static str, message: Option<StrBytes>| {
                DescribeConfigsResult::default()
                    .with_error_code(0)
                    .with_error_message(message)
                    .with_resource_type(2)
                    .with_resource_name(s(name))
                    .with_configs(vec![
                        config("retention.ms", Some(s("1000"))),
                        config("password", None),
                    ])
            };
            DescribeConfigsResponse::default()
                .with_throttle_time_ms(11)
                .with_results(vec![result("a", None), result("b", Some(s("denied")))])
        });
    }

    #[test]
    fn sasl_authenticate_every_version() {
        roundtrip(|v| {
            SaslAuthenticateResponse::default()
                .with_error_code(58)
                .with_error_message((v != 1).then(|| s("bad password")))
                .with_auth_bytes(bytes(b"v=server-signature"))
                .when(v >= 1, |r| r.with_session_lifetime_ms(3_600_000))
        });
    }

    #[test]
    fn create_partitions_every_version() {
        roundtrip(|_| {
            let result = |name, message: Option<StrBytes>| {
                CreatePartitionsTopicResult::default()
                    .with_name(topic_name(name))
                    .with_error_code(37)
                    .with_error_message(message)
            };
            CreatePartitionsResponse::default()
                .with_throttle_time_ms(11)
                .with_results(vec![result("a", None), result("b", Some(s("invalid")))])
        });
    }

    fn decode<R: ControlResponse>(version: i16, body: &[u8]) -> Result<R, ProtocolError> {
        decode_control_response::<R>(R::API_KEY, version, Bytes::copy_from_slice(body))
    }

    #[test]
    fn huge_array_count_is_refused_before_kafka_protocol_allocates() {
        // DescribeConfigs v1: throttle_time_ms, then 2^31-1 results, with
        // three bytes behind them.
        let body = [0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = decode::<DescribeConfigsResponse>(1, &body).unwrap_err();
        // Our walk's message: kafka-protocol was never called.
        assert!(err.to_string().contains("2147483647 elements"), "{err}");

        // v4, compact: the largest count a varint can carry.
        let body = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3];
        let err = decode::<DescribeConfigsResponse>(4, &body).unwrap_err();
        assert!(err.to_string().contains("4294967294 elements"), "{err}");
    }

    #[test]
    fn huge_nested_array_count_is_refused() {
        // DescribeConfigs v1, one result whose configs claim 2^31-1 entries.
        let mut body = vec![0, 0, 0, 0, 0, 0, 0, 1];
        body.extend_from_slice(&[0, 0, 0xff, 0xff, 2, 0, 1, b'x']); // error, null msg, type, name
        body.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 0, 0]);
        let err = decode::<DescribeConfigsResponse>(1, &body).unwrap_err();
        assert!(err.to_string().contains("2147483647 elements"), "{err}");
    }

    #[test]
    fn known_tagged_field_with_a_wrong_size_is_refused() {
        // CreateTopics v5: kafka-protocol reads tag 0 as two bytes whatever
        // size is declared; a declared size of 5 would shift it off our walk.
        let good = CreateTopicsResponse::default().with_topics(vec![
            CreatableTopicResult::default()
                .with_name(topic_name("a"))
                .with_topic_config_error_code(29),
        ]);
        let body = encode(&good, 5);
        decode_control_response::<CreateTopicsResponse>(ApiKey::CreateTopics, 5, body.clone())
            .unwrap();
        // The topic's tagged section is [1, tag 0, size 2, 0x00, 0x1d] just
        // before the top-level section's final 0.
        let tail = body.len() - 6;
        assert_eq!(&body[tail..], &[1, 0, 2, 0, 29, 0]);
        let mut bad = body[..tail].to_vec();
        bad.extend_from_slice(&[1, 0, 5, 0, 29, 0, 0, 0, 0]);
        let err = decode::<CreateTopicsResponse>(5, &bad).unwrap_err();
        assert!(err.to_string().contains("declares 5 bytes"), "{err}");
    }

    #[test]
    fn apis_and_versions_outside_the_table_are_refused() {
        let err = decode_control_response::<HeartbeatResponse>(ApiKey::Metadata, 0, Bytes::new())
            .unwrap_err();
        assert!(matches!(err, ProtocolError::UnknownApi(3)), "{err}");
        let err = decode_control_response::<HeartbeatResponse>(
            ApiKey::SyncGroup,
            0,
            Bytes::from_static(&[0, 0]),
        )
        .unwrap_err();
        assert!(matches!(err, ProtocolError::UnknownApi(14)), "{err}");
        for v in [-1, 5, i16::MAX] {
            let err = decode::<HeartbeatResponse>(v, &[0, 0, 0, 0, 0, 0, 0]).unwrap_err();
            assert!(
                matches!(
                    err,
                    ProtocolError::Unsupported {
                        api: ApiKey::Heartbeat,
                        ..
                    }
                ),
                "{err}"
            );
        }
        let err = decode::<ListOffsetsResponse>(0, &[0, 0, 0, 0]).unwrap_err();
        assert!(matches!(err, ProtocolError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn table_lists_each_api_once_with_a_valid_range() {
        for row in &CONTROL_APIS {
            assert!(row.versions.min <= row.versions.max, "{:?}", row.api);
            assert!(control_schema(row.api).is_some());
        }
        let keys: std::collections::HashSet<i16> =
            CONTROL_APIS.iter().map(|row| row.api as i16).collect();
        assert_eq!(keys.len(), CONTROL_APIS.len(), "an API appears twice");
    }
}
