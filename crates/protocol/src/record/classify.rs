//! Which fetched batches may pass through untouched, which need the slow
//! path, and which must not be mirrored at all (kafka-wire-rules.md, "The
//! fast path and the slow path").

use super::batch::BatchHeader;
use crate::compression::Compression;

/// What the destination expects of the batches kmirror forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PassthroughPolicy {
    /// The next offset the mirror needs; records below it were mirrored
    /// already.
    pub fetch_position: i64,
    /// The codec the destination must receive; `None` keeps each batch's own.
    pub target_codec: Option<Compression>,
    /// The destination topic's `max.message.bytes`, if known.
    pub max_batch_bytes: Option<usize>,
}

impl PassthroughPolicy {
    /// A policy for a fetch at `fetch_position` that keeps codecs and has no
    /// size limit.
    pub fn at(fetch_position: i64) -> Self {
        Self {
            fetch_position,
            target_codec: None,
            max_batch_bytes: None,
        }
    }

    /// Requires batches compressed with `codec` (`None`: keep each batch's).
    pub fn with_target_codec(mut self, codec: Option<Compression>) -> Self {
        self.target_codec = codec;
        self
    }

    /// Limits a forwarded batch to `max` bytes (the destination topic's
    /// `max.message.bytes`).
    pub fn with_max_batch_bytes(mut self, max: Option<usize>) -> Self {
        self.max_batch_bytes = max;
        self
    }
}

/// What to do with one fetched batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Rewrite the header and forward the payload untouched.
    Passthrough,
    /// Decode the records and re-batch them.
    SlowPath(SlowPathReason),
    /// Do not mirror anything of this batch.
    Skip(SkipReason),
}

/// Why a batch cannot pass through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlowPathReason {
    /// Offsets inside the batch have gaps (a compacted topic): Kafka would
    /// store the gaps or recompress; rebuild with dense deltas.
    SparseOffsets,
    /// The batch starts before the fetch position: drop the records below it.
    StartsBeforePosition,
    /// The batch's codec is not the one the destination must receive.
    CodecChange {
        /// The batch's codec.
        from: Compression,
        /// The codec required.
        to: Compression,
    },
    /// The batch's codec bits are not a known codec: the slow path reports it.
    UnknownCodec,
    /// The batch is larger than the destination accepts: split it.
    TooLarge,
    /// A LogAppendTime batch: its records' timestamps are the batch's
    /// append time, which passthrough would lose (a CreateTime destination
    /// topic reads base timestamp plus deltas, the producer's original
    /// times; a LogAppendTime one refuses the batch with INVALID_TIMESTAMP).
    /// Rebuild it as CreateTime with the append time on every record.
    LogAppendTime,
    /// A message set entry in format v0 or v1: up-convert it. ([`classify`]
    /// sees only v2 batches; the fetch side assigns this reason.)
    LegacyFormat {
        /// The entry's magic byte, 0 or 1.
        magic: i8,
    },
}

/// Why a batch is not mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// A transaction marker; brokers refuse them from clients.
    ControlBatch,
    /// No records (left by compaction).
    Empty,
    /// Part of an aborted transaction.
    Aborted,
    /// Every record is below the fetch position.
    BelowPosition,
}

/// Classifies a fetched v2 batch. `aborted` comes from
/// [`super::AbortedTransactionFilter`].
pub fn classify(header: &BatchHeader, policy: &PassthroughPolicy, aborted: bool) -> Disposition {
    if header.is_control() {
        return Disposition::Skip(SkipReason::ControlBatch);
    }
    if aborted {
        return Disposition::Skip(SkipReason::Aborted);
    }
    if header.record_count <= 0 {
        return Disposition::Skip(SkipReason::Empty);
    }
    if header.last_offset() < policy.fetch_position {
        return Disposition::Skip(SkipReason::BelowPosition);
    }
    if !header.has_dense_offsets() {
        return Disposition::SlowPath(SlowPathReason::SparseOffsets);
    }
    if header.base_offset < policy.fetch_position {
        return Disposition::SlowPath(SlowPathReason::StartsBeforePosition);
    }
    let Ok(codec) = header.compression() else {
        return Disposition::SlowPath(SlowPathReason::UnknownCodec);
    };
    if header.timestamp_type() == super::TimestampType::LogAppendTime {
        return Disposition::SlowPath(SlowPathReason::LogAppendTime);
    }
    if let Some(to) = policy.target_codec
        && to != codec
    {
        return Disposition::SlowPath(SlowPathReason::CodecChange { from: codec, to });
    }
    if policy
        .max_batch_bytes
        .is_some_and(|max| header.size_in_bytes() > max)
    {
        return Disposition::SlowPath(SlowPathReason::TooLarge);
    }
    Disposition::Passthrough
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::attributes;

    fn header(base: i64, count: i32, last_delta: i32, attrs: i16) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 100,
            partition_leader_epoch: 3,
            magic: 2,
            crc: 0,
            attributes: attrs,
            last_offset_delta: last_delta,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: count,
        }
    }

    #[test]
    fn a_log_append_time_batch_is_rebuilt_to_keep_its_timestamps() {
        let p = PassthroughPolicy::at(0);
        assert_eq!(
            classify(&header(0, 5, 4, attributes::TIMESTAMP_TYPE), &p, false),
            Disposition::SlowPath(SlowPathReason::LogAppendTime)
        );
    }

    #[test]
    fn plain_batch_at_position_passes_through() {
        let p = PassthroughPolicy::at(100);
        assert_eq!(
            classify(&header(100, 5, 4, 3), &p, false),
            Disposition::Passthrough
        );
        assert_eq!(
            classify(&header(200, 5, 4, 3), &p, false),
            Disposition::Passthrough
        );
    }

    #[test]
    fn every_rule_of_the_fast_path() {
        let p = PassthroughPolicy::at(100);
        let skip = |r| Disposition::Skip(r);
        let slow = |r| Disposition::SlowPath(r);
        assert_eq!(
            classify(&header(100, 1, 0, attributes::CONTROL), &p, false),
            skip(SkipReason::ControlBatch)
        );
        assert_eq!(
            classify(&header(100, 1, 0, attributes::TRANSACTIONAL), &p, true),
            skip(SkipReason::Aborted)
        );
        assert_eq!(
            classify(&header(100, 0, 3, 0), &p, false),
            skip(SkipReason::Empty)
        );
        assert_eq!(
            classify(&header(90, 5, 4, 0), &p, false),
            skip(SkipReason::BelowPosition)
        );
        assert_eq!(
            classify(&header(100, 3, 9, 0), &p, false),
            slow(SlowPathReason::SparseOffsets)
        );
        assert_eq!(
            classify(&header(98, 5, 4, 0), &p, false),
            slow(SlowPathReason::StartsBeforePosition)
        );
        let zstd = p.with_target_codec(Some(Compression::Zstd));
        assert_eq!(
            classify(&header(100, 5, 4, 3), &zstd, false),
            slow(SlowPathReason::CodecChange {
                from: Compression::Lz4,
                to: Compression::Zstd
            })
        );
        assert_eq!(
            classify(&header(100, 5, 4, 7), &p, false),
            slow(SlowPathReason::UnknownCodec)
        );
        let small = p.with_max_batch_bytes(Some(50));
        assert_eq!(
            classify(&header(100, 5, 4, 0), &small, false),
            slow(SlowPathReason::TooLarge)
        );
    }

    #[test]
    fn transactional_committed_batch_passes_through() {
        let p = PassthroughPolicy::at(0);
        assert_eq!(
            classify(&header(0, 2, 1, attributes::TRANSACTIONAL), &p, false),
            Disposition::Passthrough
        );
    }
}
