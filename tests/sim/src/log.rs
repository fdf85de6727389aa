//! One partition's log as an Apache Kafka leader keeps it: record batches
//! at offsets, the high-water mark, the log start, and the idempotent
//! producer state that decides whether an appended batch is new, a
//! duplicate of one of the last five, or out of sequence
//! (`ProducerStateManager` and `ProducerAppendInfo` in Kafka's source).

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};

/// Kafka's error codes the log answers with.
pub mod code {
    /// No error.
    pub const NONE: i16 = 0;
    /// OFFSET_OUT_OF_RANGE.
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    /// CORRUPT_MESSAGE.
    pub const CORRUPT_MESSAGE: i16 = 2;
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// LEADER_NOT_AVAILABLE.
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    /// NOT_LEADER_OR_FOLLOWER.
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// REQUEST_TIMED_OUT.
    pub const REQUEST_TIMED_OUT: i16 = 7;
    /// COORDINATOR_NOT_AVAILABLE.
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// NOT_COORDINATOR.
    pub const NOT_COORDINATOR: i16 = 16;
    /// NOT_ENOUGH_REPLICAS.
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    /// ILLEGAL_GENERATION.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// UNKNOWN_MEMBER_ID.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// INCONSISTENT_GROUP_PROTOCOL.
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    /// REBALANCE_IN_PROGRESS.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// TOPIC_ALREADY_EXISTS.
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    /// INVALID_PARTITIONS.
    pub const INVALID_PARTITIONS: i16 = 37;
    /// INVALID_REQUEST.
    pub const INVALID_REQUEST: i16 = 42;
    /// OUT_OF_ORDER_SEQUENCE_NUMBER.
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    /// INVALID_PRODUCER_EPOCH.
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    /// FENCED_LEADER_EPOCH.
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    /// UNKNOWN_LEADER_EPOCH.
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    /// MEMBER_ID_REQUIRED.
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    /// PRODUCER_FENCED.
    pub const PRODUCER_FENCED: i16 = 90;
    /// UNKNOWN_TOPIC_ID.
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

/// The fixed header of a v2 record batch (61 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Base offset as written by the sender.
    pub base_offset: i64,
    /// Offset of the last record relative to the base.
    pub last_offset_delta: i32,
    /// Producer id (-1: not idempotent).
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// First record's sequence (-1: none).
    pub base_sequence: i32,
    /// Records in the batch.
    pub record_count: i32,
}

/// Size of a v2 batch header.
pub const HEADER_LEN: usize = 61;

fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses and checks one batch that must be the whole of `bytes` (Apache
/// Kafka requires exactly one batch per partition in a Produce request):
/// magic 2, the length field, and the CRC-32C.
pub fn parse_single_batch(bytes: &[u8]) -> Result<BatchHeader, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "{} bytes is shorter than a batch header",
            bytes.len()
        ));
    }
    let length = be_i32(bytes, 8).ok_or("no length")?;
    if usize::try_from(length).ok().map(|l| l + 12) != Some(bytes.len()) {
        return Err(format!(
            "batch length {length} + 12 != {} bytes: not exactly one batch",
            bytes.len()
        ));
    }
    if bytes.get(16) != Some(&2) {
        return Err(format!("magic {:?}, expected 2", bytes.get(16)));
    }
    let crc = u32::from_be_bytes(
        bytes
            .get(17..21)
            .ok_or("no crc")?
            .try_into()
            .map_err(|_| "crc")?,
    );
    let computed = crc32c::crc32c(bytes.get(21..).ok_or("no body")?);
    if crc != computed {
        return Err(format!("CRC {crc:#x} != computed {computed:#x}"));
    }
    let header = BatchHeader {
        base_offset: be_i64(bytes, 0).ok_or("base offset")?,
        last_offset_delta: be_i32(bytes, 23).ok_or("last offset delta")?,
        producer_id: be_i64(bytes, 43).ok_or("producer id")?,
        producer_epoch: be_i16(bytes, 51).ok_or("producer epoch")?,
        base_sequence: be_i32(bytes, 53).ok_or("base sequence")?,
        record_count: be_i32(bytes, 57).ok_or("record count")?,
    };
    if header.record_count <= 0 || header.last_offset_delta != header.record_count - 1 {
        return Err(format!(
            "record count {} and last offset delta {} disagree",
            header.record_count, header.last_offset_delta
        ));
    }
    Ok(header)
}

/// One batch in the log.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    /// First offset.
    pub base_offset: i64,
    /// Last offset.
    pub last_offset: i64,
    /// The leader epoch it was appended in.
    pub leader_epoch: i32,
    /// The batch as stored: base offset and leader epoch set.
    pub bytes: Bytes,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written at this base offset.
    New(i64),
    /// A retry of one of the producer's last five batches, already at this
    /// base offset: nothing written (Kafka answers NONE with the old offset).
    Duplicate(i64),
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    /// (first sequence, last sequence, base offset) of the last five batches.
    recent: VecDeque<(i32, i32, i64)>,
}

/// One partition's log (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct PartitionLog {
    batches: Vec<StoredBatch>,
    log_start: i64,
    log_end: i64,
    high_watermark: i64,
    producers: BTreeMap<i64, ProducerEntry>,
}

fn wrap_add(seq: i32, n: i32) -> i32 {
    if seq > i32::MAX - n {
        n - (i32::MAX - seq) - 1
    } else {
        seq + n
    }
}

impl PartitionLog {
    /// The first offset still in the log.
    pub fn log_start(&self) -> i64 {
        self.log_start
    }

    /// The next offset to be written.
    pub fn log_end(&self) -> i64 {
        self.log_end
    }

    /// The high-water mark: what consumers may read.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Sets the high-water mark (never above the log end).
    pub fn set_high_watermark(&mut self, hwm: i64) {
        self.high_watermark = hwm.clamp(self.log_start, self.log_end);
    }

    /// Every batch, in offset order.
    pub fn batches(&self) -> &[StoredBatch] {
        &self.batches
    }

    /// Appends one checked batch as the leader in `leader_epoch`, applying
    /// the idempotent producer rules. The high-water mark is not moved.
    pub fn append(&mut self, batch: &[u8], leader_epoch: i32) -> Result<Appended, i16> {
        let header = parse_single_batch(batch).map_err(|_| code::CORRUPT_MESSAGE)?;
        let last_seq = wrap_add(header.base_sequence, header.last_offset_delta);
        // A producer the log holds no state for may start anywhere (Apache
        // Kafka 2.5+, KIP-360).
        if header.producer_id >= 0
            && let Some(entry) = self.producers.get(&header.producer_id)
        {
            if header.producer_epoch < entry.epoch {
                return Err(code::INVALID_PRODUCER_EPOCH);
            }
            if header.producer_epoch == entry.epoch {
                if let Some(&(_, _, offset)) = entry
                    .recent
                    .iter()
                    .find(|(first, last, _)| *first == header.base_sequence && *last == last_seq)
                {
                    return Ok(Appended::Duplicate(offset));
                }
                let expected = entry
                    .recent
                    .back()
                    .map_or(0, |(_, last, _)| wrap_add(*last, 1));
                if header.base_sequence != expected {
                    return Err(code::OUT_OF_ORDER_SEQUENCE_NUMBER);
                }
            } else if header.base_sequence != 0 {
                // A new epoch starts at sequence 0.
                return Err(code::OUT_OF_ORDER_SEQUENCE_NUMBER);
            }
        }
        let base_offset = self.log_end;
        let mut stored = BytesMut::from(batch);
        if let Some(b) = stored.get_mut(0..8) {
            b.copy_from_slice(&base_offset.to_be_bytes());
        }
        if let Some(b) = stored.get_mut(12..16) {
            b.copy_from_slice(&leader_epoch.to_be_bytes());
        }
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        self.batches.push(StoredBatch {
            base_offset,
            last_offset,
            leader_epoch,
            bytes: stored.freeze(),
        });
        self.log_end = last_offset + 1;
        if header.producer_id >= 0 {
            let entry = self.producers.entry(header.producer_id).or_default();
            if entry.epoch != header.producer_epoch {
                entry.recent.clear();
                entry.epoch = header.producer_epoch;
            }
            entry
                .recent
                .push_back((header.base_sequence, last_seq, base_offset));
            while entry.recent.len() > 5 {
                entry.recent.pop_front();
            }
        }
        Ok(Appended::New(base_offset))
    }

    /// Drops every batch from the one holding `offset` on (an unclean
    /// election: the new leader never had them). Returns the new log end.
    pub fn truncate(&mut self, offset: i64) -> i64 {
        let keep = self.batches.partition_point(|b| b.last_offset < offset);
        self.batches.truncate(keep);
        self.log_end = self
            .batches
            .last()
            .map_or(self.log_start, |b| b.last_offset + 1);
        self.high_watermark = self.high_watermark.min(self.log_end);
        self.log_end
    }

    /// Apache Kafka's `LeaderEpochFileCache.endOffsetFor`: for the
    /// latest epoch, the log end; otherwise the largest epoch at most
    /// `epoch` (or `epoch` itself if every known one is larger) and the
    /// start of the next larger epoch; `(-1, -1)` if no epoch is larger.
    pub fn end_offset_for(&self, epoch: i32) -> (i32, i64) {
        let latest = self.batches.last().map(|b| b.leader_epoch);
        if latest == Some(epoch) {
            return (epoch, self.log_end);
        }
        let Some(higher) = self.batches.iter().find(|b| b.leader_epoch > epoch) else {
            return (-1, -1);
        };
        let floor = self
            .batches
            .iter()
            .map(|b| b.leader_epoch)
            .filter(|e| *e <= epoch)
            .max();
        (floor.unwrap_or(epoch), higher.base_offset)
    }

    /// Whole batches from the one holding `offset`, below `upto`, at most
    /// `max_bytes` unless the first alone is larger and `first_may_exceed`
    /// (KIP-74: a fetch always makes progress).
    pub fn read(&self, offset: i64, upto: i64, max_bytes: usize, first_may_exceed: bool) -> Bytes {
        let start = self.batches.partition_point(|b| b.last_offset < offset);
        let mut out = BytesMut::new();
        for batch in self.batches.iter().skip(start) {
            if batch.last_offset >= upto {
                break;
            }
            if out.len() + batch.bytes.len() > max_bytes && !(out.is_empty() && first_may_exceed) {
                break;
            }
            out.extend_from_slice(&batch.bytes);
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, count: i32) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[8..12].copy_from_slice(&((HEADER_LEN - 12) as i32).to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn retries_are_deduplicated_and_gaps_refused() {
        let mut log = PartitionLog::default();
        assert_eq!(log.append(&batch(7, 0, 0, 3), 0), Ok(Appended::New(0)));
        assert_eq!(log.append(&batch(7, 0, 3, 2), 0), Ok(Appended::New(3)));
        assert_eq!(
            log.append(&batch(7, 0, 0, 3), 0),
            Ok(Appended::Duplicate(0))
        );
        assert_eq!(
            log.append(&batch(7, 0, 9, 1), 0),
            Err(code::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(
            log.append(&batch(7, 1, 4, 1), 0),
            Err(code::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(log.append(&batch(7, 1, 0, 1), 0), Ok(Appended::New(5)));
        assert_eq!(
            log.append(&batch(7, 0, 5, 1), 0),
            Err(code::INVALID_PRODUCER_EPOCH)
        );
        assert_eq!(log.log_end(), 6);
    }

    #[test]
    fn reads_whole_batches_and_always_one() {
        let mut log = PartitionLog::default();
        for seq in 0..3 {
            log.append(&batch(1, 0, seq, 1), 0).unwrap();
        }
        log.set_high_watermark(2);
        assert_eq!(log.read(0, 2, 1 << 20, false).len(), 2 * HEADER_LEN);
        assert_eq!(log.read(1, 2, 10, true).len(), HEADER_LEN);
        assert!(log.read(1, 2, 10, false).is_empty());
    }
}
