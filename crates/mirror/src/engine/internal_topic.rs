//! Reading and writing kmirror's small internal topics on the destination
//! (the offset map, MirrorMaker 2's checkpoints): one partition each,
//! written with `acks=all` by plain (not idempotent) Produce requests and
//! read back whole. A record written twice (a retry after a lost answer)
//! is harmless: readers keep the last word per key or merge.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{self as kp, ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kmirror_pool::{Cluster, PoolError};
use kmirror_protocol::ResponseError;
use kmirror_protocol::messages::produce::{ProducePartition, ProduceRequest, ProduceTopic};
use kmirror_protocol::record::{BatchBuilder, LogEntry, ProducerStamp};
use kmirror_protocol::{Compression, RecordBatches};

use super::admin::{self, TopicPartition};
use super::config::OffsetReset;
use super::error::{MirrorError, Side};
use crate::fetch_plan::IsolationLevel;

/// The most one read of an internal topic asks for per fetch.
const FETCH_BYTES: i32 = 8 << 20;

/// Creates `topic` (one partition, `configs`) on the destination unless it
/// exists.
pub async fn ensure(
    destination: &Cluster,
    topic: &str,
    replication_factor: Option<i16>,
    configs: &[(String, String)],
) -> Result<bool, MirrorError> {
    let exists = destination
        .refresh_metadata()
        .await
        .map_err(MirrorError::destination)?
        .topics
        .contains_key(topic);
    if exists {
        return Ok(false);
    }
    admin::create_topic(destination, topic, 1, replication_factor, configs).await
}

/// The most record bytes one batch of an internal topic carries: well
/// under the 1 MiB `max.message.bytes` brokers and topics have by default,
/// so that many records (a compacted source leaves one run per gap) go in
/// several batches rather than one the destination refuses.
const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Appends `records` (key, value) to partition 0 of `topic`, in order, in
/// batches of at most [`MAX_BATCH_BYTES`] (one Produce request each, one
/// after the other), and waits for every in-sync replica to have them.
pub async fn append(
    destination: &Cluster,
    topic: &str,
    records: &[(Vec<u8>, Vec<u8>)],
    timestamp_ms: i64,
) -> Result<(), PoolError> {
    let mut start = 0;
    while start < records.len() {
        let mut bytes = 0;
        let mut end = start;
        while let Some((k, v)) = records.get(end) {
            let size = k.len() + v.len() + 32;
            if end > start && bytes + size > MAX_BATCH_BYTES {
                break;
            }
            bytes += size;
            end += 1;
        }
        let batch = records.get(start..end).unwrap_or_default();
        append_batch(destination, topic, batch, timestamp_ms).await?;
        start = end;
    }
    Ok(())
}

/// One batch of [`append`].
async fn append_batch(
    destination: &Cluster,
    topic: &str,
    records: &[(Vec<u8>, Vec<u8>)],
    timestamp_ms: i64,
) -> Result<(), PoolError> {
    let unbuildable = |e: kmirror_protocol::RecordError| PoolError::Kafka {
        broker: "-".into(),
        api: ApiKey::Produce,
        error: ResponseError::CorruptMessage,
        context: Some(format!("{topic}: cannot build the batch: {e}")),
    };
    let mut builder = BatchBuilder::new(Compression::None);
    for (key, value) in records {
        builder
            .push(timestamp_ms, Some(key), Some(value), std::iter::empty())
            .map_err(unbuildable)?;
    }
    let batch = builder.build(ProducerStamp::NONE).map_err(unbuildable)?;
    let request = ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30_000,
        topics: vec![ProduceTopic {
            name: StrBytes::from_string(topic.to_owned()),
            partitions: vec![ProducePartition { index: 0, batch }],
        }],
    };
    let response = match destination.send_to_leader(topic, 0, &request).await {
        Ok(r) => r,
        Err(e) => {
            destination.invalidate_metadata();
            return Err(e);
        }
    };
    let code = response
        .topics
        .iter()
        .flat_map(|(_, ps)| ps.iter())
        .find(|p| p.index == 0)
        .map(|p| p.error_code);
    match code.map(ResponseError::try_from_code) {
        Some(None) => Ok(()),
        Some(Some(error)) => {
            destination.invalidate_metadata();
            Err(PoolError::Kafka {
                broker: "-".into(),
                api: ApiKey::Produce,
                error,
                context: Some(format!("{topic}-0")),
            })
        }
        None => Err(PoolError::Kafka {
            broker: "-".into(),
            api: ApiKey::Produce,
            error: ResponseError::UnknownServerError,
            context: Some(format!("{topic}-0 is missing from the Produce response")),
        }),
    }
}

/// One record read back: key and value.
pub type KeyValue = (Option<Bytes>, Option<Bytes>);

/// Every record of partition 0 of `topic` on `cluster`, from the log start
/// to the end at the time of the call, in order; `None` if the topic does
/// not exist.
pub async fn read_all(
    cluster: &Cluster,
    side: Side,
    topic: &str,
) -> Result<Option<Vec<KeyValue>>, MirrorError> {
    let wrap = |e| MirrorError::on(side, e);
    let metadata = cluster.refresh_metadata().await.map_err(wrap)?;
    if !metadata.topics.contains_key(topic) {
        return Ok(None);
    }
    let tp: Vec<TopicPartition> = vec![(Arc::from(topic), 0)];
    let mut bounds = Vec::with_capacity(2);
    for reset in [OffsetReset::Earliest, OffsetReset::Latest] {
        let at =
            admin::list_offsets(cluster, side, &tp, reset, IsolationLevel::ReadUncommitted).await?;
        bounds.extend(at.values().next().copied());
    }
    let [start, end] = bounds[..] else {
        return Ok(Some(Vec::new()));
    };
    let mut out = Vec::new();
    let mut position = start;
    while position < end {
        let next = fetch_from(cluster, topic, position, &mut out)
            .await
            .map_err(|e| match e {
                Unreadable::Pool(e) => wrap(e),
                Unreadable::Record(reason) => MirrorError::Destination {
                    topic: topic.to_owned(),
                    reason,
                },
            })?;
        if next <= position {
            return Err(MirrorError::Internal(format!(
                "reading {topic}-0: no progress at offset {position} (end {end})"
            )));
        }
        position = next;
    }
    Ok(Some(out))
}

/// Why a read failed.
enum Unreadable {
    Pool(PoolError),
    Record(String),
}

impl From<PoolError> for Unreadable {
    fn from(e: PoolError) -> Self {
        Unreadable::Pool(e)
    }
}

/// One Fetch of partition 0 of `topic` at `position`: appends its records
/// (past the end read at the start too: a reader wants the latest) and
/// returns the next position.
async fn fetch_from(
    cluster: &Cluster,
    topic: &str,
    position: i64,
    out: &mut Vec<KeyValue>,
) -> Result<i64, Unreadable> {
    let leader = cluster.leader_of(topic, 0).await?;
    let conn = cluster.connection_to_broker(leader).await?;
    let version = conn.versions().version(ApiKey::Fetch).unwrap_or(4);
    let topic_id = cluster
        .metadata()
        .await?
        .topics
        .get(topic)
        .map(|t| t.id)
        .unwrap_or_default();
    let mut t = kp::fetch_request::FetchTopic::default().with_partitions(vec![
        kp::fetch_request::FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(position)
            .with_partition_max_bytes(FETCH_BYTES)
            .with_log_start_offset(-1)
            .with_current_leader_epoch(-1)
            .with_last_fetched_epoch(-1),
    ]);
    if version >= 13 {
        t = t.with_topic_id(uuid::Uuid::from_bytes(topic_id));
    } else {
        t = t.with_topic(TopicName(StrBytes::from_string(topic.to_owned())));
    }
    let mut request = kp::FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_BYTES)
        .with_isolation_level(0)
        .with_topics(vec![t]);
    if version < 15 {
        request = request.with_replica_id(BrokerId(-1));
    }
    let response = conn.send(&request).await?;
    let part = response
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == 0);
    let Some(part) = part else {
        return Ok(position);
    };
    if let Some(error) = ResponseError::try_from_code(part.error_code) {
        cluster.invalidate_metadata();
        return Err(Unreadable::Pool(PoolError::Kafka {
            broker: "-".into(),
            api: ApiKey::Fetch,
            error,
            context: Some(format!("{topic}-0 at offset {position}")),
        }));
    }
    let mut next = position;
    let unreadable = |e: kmirror_protocol::RecordError| {
        Unreadable::Record(format!("cannot read {topic}-0 at offset {position}: {e}"))
    };
    // A truncated last batch ends the iteration (it is fetched whole next).
    for entry in RecordBatches::new(part.records.unwrap_or_default()) {
        let view = match entry.map_err(unreadable)? {
            LogEntry::Batch(view) => view,
            LogEntry::Legacy { offset, .. } => {
                return Err(Unreadable::Record(format!(
                    "{topic}-0 holds an old-format message at offset {offset}: not written by kmirror"
                )));
            }
        };
        next = next.max(view.header().next_offset());
        if view.header().is_control() {
            continue;
        }
        view.verify_crc().map_err(unreadable)?;
        for record in view
            .records(super::slow_path::DECOMPRESSION_CAP)
            .map_err(unreadable)?
        {
            let record = record.map_err(unreadable)?;
            if record.offset(view.header()) >= position {
                out.push((record.key.clone(), record.value.clone()));
            }
        }
    }
    Ok(next)
}
