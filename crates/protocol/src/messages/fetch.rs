//! Fetch: the request is kafka-protocol's type; the response is decoded here
//! so that each partition's records stay a slice of the received frame (the
//! start of the zero-copy path) and no count from the wire is trusted.
//!
//! Versions 4 to 16. From v13 topics are named by id instead of name
//! ([`FetchTopicRef`]). Of the tagged fields, a partition's diverging epoch
//! (v12+, KIP-320: the log was truncated below the fetch position) is read;
//! the others (current leader, node endpoints) are skipped: kmirror reacts
//! to the partition error codes and refreshes metadata instead.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;

use crate::api::is_flexible;
use crate::error::ProtocolError;
use crate::record::AbortedTransactionFilter;
use crate::wire::WireReader;

/// How a Fetch response names a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchTopicRef {
    /// By name (v4-v12).
    Name(StrBytes),
    /// By topic id (v13+).
    Id([u8; 16]),
}

/// An aborted transaction overlapping the fetched range (READ_COMMITTED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    /// The producer that aborted.
    pub producer_id: i64,
    /// The first offset of the aborted transaction.
    pub first_offset: i64,
}

/// One partition of a Fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartition {
    /// The partition number.
    pub partition_index: i32,
    /// The partition's error code.
    pub error_code: i16,
    /// The high-water mark.
    pub high_watermark: i64,
    /// The last stable offset (end of committed data for READ_COMMITTED).
    pub last_stable_offset: i64,
    /// The log start offset (v5+), else -1.
    pub log_start_offset: i64,
    /// Aborted transactions in the fetched range (READ_COMMITTED only).
    pub aborted_transactions: Option<Vec<AbortedTransaction>>,
    /// The replica to fetch from instead (v11+), else -1.
    pub preferred_read_replica: i32,
    /// The records, a slice of the response frame.
    pub records: Option<Bytes>,
    /// The leader's log diverged from what was fetched (v12+, KIP-320):
    /// the last epoch the leader shares with the fetcher's last fetched
    /// epoch, and where it ends. Records from there on were truncated
    /// (an unclean election); fetching must go on from `end_offset`.
    pub diverging_epoch: Option<DivergingEpoch>,
}

/// A Fetch response's diverging epoch (KIP-320).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DivergingEpoch {
    /// The leader epoch.
    pub epoch: i32,
    /// Its end offset on the leader.
    pub end_offset: i64,
}

impl FetchPartition {
    /// A filter for this partition's aborted transactions.
    pub fn aborted_filter(&self) -> AbortedTransactionFilter {
        AbortedTransactionFilter::new(
            self.aborted_transactions
                .iter()
                .flatten()
                .map(|a| (a.producer_id, a.first_offset)),
        )
    }
}

/// One topic of a Fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTopic {
    /// The topic.
    pub topic: FetchTopicRef,
    /// Its partitions.
    pub partitions: Vec<FetchPartition>,
}

/// A decoded Fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// Throttle time.
    pub throttle_time_ms: i32,
    /// Top-level error (v7+), else 0.
    pub error_code: i16,
    /// The fetch session id (v7+), else 0.
    pub session_id: i32,
    /// The topics.
    pub topics: Vec<FetchTopic>,
}

/// Smallest encoded partition: index, error, three offsets, null aborted
/// list, null records.
const MIN_PARTITION_LEN: usize = 4 + 2 + 8 + 8 + 1 + 1;

/// Decodes a Fetch response body at `version` (4..=16).
pub fn decode_fetch_response(body: Bytes, version: i16) -> Result<FetchResponse, ProtocolError> {
    let flexible = is_flexible(ApiKey::Fetch, version)?;
    let mut r = WireReader::new(body, ApiKey::Fetch, version);
    let throttle_time_ms = r.i32()?;
    let (error_code, session_id) = if version >= 7 {
        (r.i16()?, r.i32()?)
    } else {
        (0, 0)
    };
    let n = r.array_len(flexible, 2)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let topic = if version >= 13 {
            FetchTopicRef::Id(r.uuid()?)
        } else {
            FetchTopicRef::Name(r.string(flexible)?)
        };
        let pn = r.array_len(flexible, MIN_PARTITION_LEN)?;
        let mut partitions = Vec::with_capacity(pn);
        for _ in 0..pn {
            partitions.push(decode_partition(&mut r, version, flexible)?);
        }
        if flexible {
            r.skip_tagged_fields()?;
        }
        topics.push(FetchTopic { topic, partitions });
    }
    if flexible {
        r.skip_tagged_fields()?;
    }
    r.finish()?;
    Ok(FetchResponse {
        throttle_time_ms,
        error_code,
        session_id,
        topics,
    })
}

fn decode_partition(
    r: &mut WireReader,
    version: i16,
    flexible: bool,
) -> Result<FetchPartition, ProtocolError> {
    let partition_index = r.i32()?;
    let error_code = r.i16()?;
    let high_watermark = r.i64()?;
    let last_stable_offset = r.i64()?;
    let log_start_offset = if version >= 5 { r.i64()? } else { -1 };
    let aborted_transactions = match r.nullable_array_len(flexible, 16)? {
        None => None,
        Some(n) => {
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push(AbortedTransaction {
                    producer_id: r.i64()?,
                    first_offset: r.i64()?,
                });
                if flexible {
                    r.skip_tagged_fields()?;
                }
            }
            Some(list)
        }
    };
    let preferred_read_replica = if version >= 11 { r.i32()? } else { -1 };
    let records = r.nullable_bytes(flexible)?;
    let diverging_epoch = if flexible {
        partition_tags(r, version)?
    } else {
        None
    };
    Ok(FetchPartition {
        partition_index,
        error_code,
        high_watermark,
        last_stable_offset,
        log_start_offset,
        aborted_transactions,
        preferred_read_replica,
        records,
        diverging_epoch,
    })
}

/// A partition's tagged fields: tag 0 is the diverging epoch (an
/// `EpochEndOffset`: epoch, end offset, its own tagged fields); the others
/// are skipped. Each field is read within its stated size.
fn partition_tags(
    r: &mut WireReader,
    version: i16,
) -> Result<Option<DivergingEpoch>, ProtocolError> {
    let mut diverging = None;
    r.tagged_fields(|tag, field| {
        if tag == 0 {
            let mut f = WireReader::new(field, ApiKey::Fetch, version);
            let epoch = f.i32()?;
            let end_offset = f.i64()?;
            f.skip_tagged_fields()?;
            f.finish()?;
            diverging = Some(DivergingEpoch { epoch, end_offset });
        }
        Ok(())
    })?;
    Ok(diverging)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response as kp;
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
    use kafka_protocol::protocol::Encodable;

    fn sample(records: Bytes) -> kp::FetchResponse {
        sample_at(records, 12)
    }

    fn sample_at(records: Bytes, version: i16) -> kp::FetchResponse {
        let partition = |i: i32, recs: Option<Bytes>| {
            kp::PartitionData::default()
                .with_partition_index(i)
                .with_high_watermark(100)
                .with_last_stable_offset(90)
                .with_log_start_offset(if version >= 5 { 1 } else { -1 })
                .with_aborted_transactions(Some(vec![
                    kp::AbortedTransaction::default()
                        .with_producer_id(ProducerId(7))
                        .with_first_offset(50),
                ]))
                .with_records(recs)
        };
        kp::FetchResponse::default()
            .with_throttle_time_ms(1)
            .with_session_id(if version >= 7 { 9 } else { 0 })
            .with_responses(vec![{
                let topic = kp::FetchableTopicResponse::default()
                    .with_partitions(vec![partition(0, Some(records)), partition(1, None)]);
                // From v13 topics are named by id (the default, nil, here).
                if version < 13 {
                    topic.with_topic(TopicName(StrBytes::from_static_str("t")))
                } else {
                    topic
                }
            }])
    }

    #[test]
    fn decodes_every_version_and_keeps_records_as_slices() {
        let records = Bytes::from(vec![0xab; 300]);
        for v in 4..=16 {
            let mut buf = bytes::BytesMut::new();
            sample_at(records.clone(), v).encode(&mut buf, v).unwrap();
            let frame = buf.freeze();
            let resp = decode_fetch_response(frame.clone(), v).unwrap();
            let t = &resp.topics[0];
            if v < 13 {
                assert_eq!(t.topic, FetchTopicRef::Name(StrBytes::from_static_str("t")));
            } else {
                assert_eq!(t.topic, FetchTopicRef::Id([0; 16]));
            }
            let p = &t.partitions[0];
            assert_eq!((p.high_watermark, p.last_stable_offset), (100, 90), "v{v}");
            assert_eq!(p.aborted_transactions.as_ref().unwrap()[0].first_offset, 50);
            let recs = p.records.as_ref().unwrap();
            assert_eq!(recs.len(), 300);
            assert!(
                frame.as_ptr_range().contains(&recs.as_ptr()),
                "records are a slice of the frame"
            );
            assert_eq!(t.partitions[1].records, None);
            assert_eq!(resp.session_id, if v >= 7 { 9 } else { 0 });
        }
    }

    /// KIP-320: from v12 a partition may carry a diverging epoch (tagged
    /// field 0) next to other tagged fields, which are skipped.
    #[test]
    fn reads_the_diverging_epoch_from_v12() {
        for v in 12..=16 {
            let mut response = sample_at(Bytes::from_static(b"xyz"), v);
            response.responses[0].partitions[0].diverging_epoch = kp::EpochEndOffset::default()
                .with_epoch(4)
                .with_end_offset(77);
            response.responses[0].partitions[0].current_leader = kp::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(2))
                .with_leader_epoch(5);
            let mut buf = bytes::BytesMut::new();
            response.encode(&mut buf, v).unwrap();
            let decoded = decode_fetch_response(buf.freeze(), v).unwrap();
            let partitions = &decoded.topics[0].partitions;
            assert_eq!(
                partitions[0].diverging_epoch,
                Some(DivergingEpoch {
                    epoch: 4,
                    end_offset: 77
                }),
                "v{v}"
            );
            assert_eq!(partitions[1].diverging_epoch, None, "v{v}");
        }
    }

    #[test]
    fn hostile_partition_count_is_refused_without_allocation() {
        // throttle, then a topic array claiming 2^31-1 topics.
        let body = Bytes::from_static(&[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1, b't']);
        let err = decode_fetch_response(body, 4).unwrap_err();
        assert!(matches!(err, ProtocolError::Malformed { .. }));
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let mut buf = bytes::BytesMut::new();
        sample(Bytes::from_static(b"abc"))
            .encode(&mut buf, 12)
            .unwrap();
        let full = buf.freeze();
        for cut in 0..full.len() {
            assert!(
                decode_fetch_response(full.slice(..cut), 12).is_err(),
                "cut {cut}"
            );
        }
    }
}
