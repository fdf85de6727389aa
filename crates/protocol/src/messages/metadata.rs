//! Metadata: brokers, topics, partitions and leaders. Our own bounded
//! decoder (the response can be large and is decoded often), and a request
//! constructor that never lets a broker auto-create a topic.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, MetadataRequest, TopicName, metadata_request};
use kafka_protocol::protocol::StrBytes;

use crate::api::is_flexible;
use crate::error::ProtocolError;
use crate::wire::WireReader;

/// A Metadata request for `topics` (`None`: every topic) with
/// `allow_auto_topic_creation = false`, always: a request naming a missing
/// topic must never create it.
pub fn metadata_request(topics: Option<&[&str]>) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| {
                    metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string((*n).to_owned()))))
                })
                .collect()
        }))
        .with_allow_auto_topic_creation(false)
}

/// A broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataBroker {
    /// The broker id.
    pub node_id: i32,
    /// Advertised host.
    pub host: StrBytes,
    /// Advertised port.
    pub port: i32,
    /// Rack, if configured.
    pub rack: Option<StrBytes>,
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataPartition {
    /// Partition error (e.g. LEADER_NOT_AVAILABLE).
    pub error_code: i16,
    /// The partition number.
    pub partition_index: i32,
    /// The leader's broker id, or -1.
    pub leader_id: i32,
    /// The leader epoch (v7+), else -1.
    pub leader_epoch: i32,
    /// All replicas.
    pub replica_nodes: Vec<i32>,
    /// In-sync replicas.
    pub isr_nodes: Vec<i32>,
    /// Offline replicas (v5+).
    pub offline_replicas: Vec<i32>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataTopic {
    /// Topic error (e.g. UNKNOWN_TOPIC_OR_PARTITION).
    pub error_code: i16,
    /// The name (null only in v12+ answers to requests by id).
    pub name: Option<StrBytes>,
    /// The topic id (v10+), else all zeros.
    pub topic_id: [u8; 16],
    /// Whether Kafka marks it internal (`__consumer_offsets`, ...).
    pub is_internal: bool,
    /// Its partitions.
    pub partitions: Vec<MetadataPartition>,
}

/// A decoded Metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataResponse {
    /// Throttle time.
    pub throttle_time_ms: i32,
    /// The brokers.
    pub brokers: Vec<MetadataBroker>,
    /// The cluster id.
    pub cluster_id: Option<StrBytes>,
    /// The controller's id.
    pub controller_id: i32,
    /// The topics.
    pub topics: Vec<MetadataTopic>,
    /// Top-level error (v13+), else 0.
    pub error_code: i16,
}

/// Decodes a Metadata response body at `version` (4..=13).
pub fn decode_metadata_response(
    body: Bytes,
    version: i16,
) -> Result<MetadataResponse, ProtocolError> {
    let flexible = is_flexible(ApiKey::Metadata, version)?;
    let mut r = WireReader::new(body, ApiKey::Metadata, version);
    let throttle_time_ms = r.i32()?;
    let n = r.array_len(flexible, 10)?;
    let mut brokers = Vec::with_capacity(n);
    for _ in 0..n {
        brokers.push(MetadataBroker {
            node_id: r.i32()?,
            host: r.string(flexible)?,
            port: r.i32()?,
            rack: r.nullable_string(flexible)?,
        });
        tagged(&mut r, flexible)?;
    }
    let cluster_id = r.nullable_string(flexible)?;
    let controller_id = r.i32()?;
    let n = r.array_len(flexible, 8)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let error_code = r.i16()?;
        let name = if version >= 12 {
            r.nullable_string(flexible)?
        } else {
            Some(r.string(flexible)?)
        };
        let topic_id = if version >= 10 { r.uuid()? } else { [0; 16] };
        let is_internal = r.bool()?;
        let pn = r.array_len(flexible, 18)?;
        let mut partitions = Vec::with_capacity(pn);
        for _ in 0..pn {
            partitions.push(MetadataPartition {
                error_code: r.i16()?,
                partition_index: r.i32()?,
                leader_id: r.i32()?,
                leader_epoch: if version >= 7 { r.i32()? } else { -1 },
                replica_nodes: int32_array(&mut r, flexible)?,
                isr_nodes: int32_array(&mut r, flexible)?,
                offline_replicas: if version >= 5 {
                    int32_array(&mut r, flexible)?
                } else {
                    Vec::new()
                },
            });
            tagged(&mut r, flexible)?;
        }
        if version >= 8 {
            r.i32()?; // topic_authorized_operations
        }
        tagged(&mut r, flexible)?;
        topics.push(MetadataTopic {
            error_code,
            name,
            topic_id,
            is_internal,
            partitions,
        });
    }
    if (8..=10).contains(&version) {
        r.i32()?; // cluster_authorized_operations
    }
    let error_code = if version >= 13 { r.i16()? } else { 0 };
    tagged(&mut r, flexible)?;
    r.finish()?;
    Ok(MetadataResponse {
        throttle_time_ms,
        brokers,
        cluster_id,
        controller_id,
        topics,
        error_code,
    })
}

fn tagged(r: &mut WireReader, flexible: bool) -> Result<(), ProtocolError> {
    if flexible {
        r.skip_tagged_fields()?;
    }
    Ok(())
}

fn int32_array(r: &mut WireReader, flexible: bool) -> Result<Vec<i32>, ProtocolError> {
    let n = r.array_len(flexible, 4)?;
    (0..n).map(|_| r.i32()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::metadata_response as kp;
    use kafka_protocol::protocol::Encodable;

    fn sample() -> kp::MetadataResponse {
        let partition = |i: i32| {
            kp::MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(BrokerId(1))
                .with_leader_epoch(5)
                .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                .with_isr_nodes(vec![BrokerId(1)])
                .with_offline_replicas(vec![BrokerId(2)])
        };
        kp::MetadataResponse::default()
            .with_throttle_time_ms(3)
            .with_brokers(vec![
                kp::MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("b1"))
                    .with_port(9092)
                    .with_rack(Some(StrBytes::from_static_str("r1"))),
            ])
            .with_cluster_id(Some(StrBytes::from_static_str("c")))
            .with_controller_id(BrokerId(1))
            .with_topics(vec![
                kp::MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                    .with_partitions(vec![partition(0), partition(1)]),
            ])
    }

    #[test]
    fn decodes_every_version_we_support() {
        for v in 4..=13 {
            let mut buf = bytes::BytesMut::new();
            sample().encode(&mut buf, v).unwrap();
            let m = decode_metadata_response(buf.freeze(), v).unwrap();
            assert_eq!(m.brokers[0].host.as_str(), "b1", "v{v}");
            assert_eq!(m.brokers[0].port, 9092);
            assert_eq!(m.topics[0].name.as_ref().unwrap().as_str(), "t");
            assert_eq!(m.topics[0].partitions.len(), 2);
            assert_eq!(m.topics[0].partitions[1].partition_index, 1);
            assert_eq!(m.topics[0].partitions[1].replica_nodes, vec![1, 2]);
            assert_eq!(
                m.topics[0].partitions[1].leader_epoch,
                if v >= 7 { 5 } else { -1 }
            );
        }
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let mut buf = bytes::BytesMut::new();
        sample().encode(&mut buf, 12).unwrap();
        let full = buf.freeze();
        for cut in 0..full.len() {
            assert!(
                decode_metadata_response(full.slice(..cut), 12).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn request_never_allows_auto_creation() {
        let req = metadata_request(Some(&["a", "b"]));
        assert!(!req.allow_auto_topic_creation);
        assert_eq!(req.topics.unwrap().len(), 2);
        assert!(metadata_request(None).topics.is_none());
    }
}
