//! The source cluster's own producer: keyed records whose value is
//! `partition:offset:generation`, where each lands in the source (and how
//! many unclean elections truncated the partition before), so that the
//! destination can be checked record by record.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::cluster::SimCluster;
use crate::rng::SimRng;

/// Create times start here (2026-01-01).
const EPOCH_MS: i64 = 1_767_225_600_000;

/// Appends one batch of 1 to 5 records to `topic`/`partition` as its
/// leader would (no-op while the partition has no leader). Returns the
/// records written.
pub fn produce(
    c: &mut SimCluster,
    rng: &mut SimRng,
    topic: &str,
    partition: i32,
    now_ms: i64,
) -> i64 {
    let Some(p) = c.partition_mut(topic, partition) else {
        return 0;
    };
    if p.leader < 0 {
        return 0;
    }
    let base = p.log.log_end();
    let generation = p.truncations.len();
    let count = i64::try_from(rng.between(1, 5)).unwrap_or(1);
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let offset = base + i;
            let mut headers = kafka_protocol::indexmap::IndexMap::new();
            if offset % 3 == 0 {
                headers.insert("trace".into(), Some(Bytes::from(format!("t{offset}"))));
            }
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset,
                sequence: -1,
                timestamp: EPOCH_MS + now_ms,
                key: (offset % 7 != 0).then(|| Bytes::from(format!("key-{}", offset % 13))),
                value: Some(Bytes::from(format!("{partition}:{offset}:{generation}"))),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    if RecordBatchEncoder::encode(&mut buf, &records, &options).is_err() {
        return 0;
    }
    let epoch = p.leader_epoch;
    if p.log.append(&buf, epoch).is_err() {
        return 0;
    }
    if p.hwm_catch_up_at.is_none() {
        let end = p.log.log_end();
        p.log.set_high_watermark(end);
    }
    count
}

/// The parts of a workload value, `partition:offset:generation` (as
/// written above): the source partition and offset the record was
/// produced at, and how many unclean elections had cut the log before.
/// `None` for anything else.
pub fn parse_value(value: Option<&Bytes>) -> Option<(i32, i64, usize)> {
    let text = std::str::from_utf8(value?).ok()?;
    let mut parts = text.split(':');
    let parsed = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    parts.next().is_none().then_some(parsed)
}
