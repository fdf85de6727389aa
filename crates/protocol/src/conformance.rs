//! A checker of Apache Kafka's broker rules for Produce requests
//! (kafka-wire-rules.md, "What the broker rejects in a client's Produce").
//!
//! The broker the tests run against is laxer than Apache Kafka, so every
//! Produce request kmirror sends in tests also goes through
//! [`ConformanceChecker::check`], which returns every violation it finds,
//! each naming topic and partition. The checker is stateful across requests
//! for the idempotent-producer rules (sequence continuity, epochs), and
//! knows the destination topics' configs where the test gives them
//! ([`TopicRules`]).

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;

use crate::compression::Compression;
use crate::messages::produce::{DecodedProduceRequest, ProduceFrame, decode_produce_request};
use crate::record::{LogEntry, RecordBatchView, RecordBatches, TimestampType};

/// Cap on decompressed records while checking (Kafka's largest sane batch).
const CHECK_DECOMPRESS_CAP: usize = 256 * 1024 * 1024;

/// The destination topic's configs that decide what the broker accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopicRules {
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: Option<usize>,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// `cleanup.policy` includes `compact`.
    pub compacted: bool,
}

/// One broken rule.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// The bytes are not a Produce request kmirror could have meant.
    Unparseable(String),
    /// `acks` is not 0, 1 or -1.
    InvalidAcks(i16),
    /// A partition carries null records.
    NullRecords,
    /// A partition carries more than one batch (INVALID_RECORD from v3).
    MultipleBatches(usize),
    /// A partition's records hold a batch with magic other than 2.
    NotMagicV2(i8),
    /// A batch is cut short or structurally broken.
    MalformedBatch(String),
    /// The CRC does not match (CORRUPT_MESSAGE).
    CrcMismatch {
        /// Stored.
        stored: u32,
        /// Computed.
        computed: u32,
    },
    /// `baseOffset` is not 0 (INVALID_RECORD).
    NonZeroBaseOffset(i64),
    /// `recordCount` is 0 or negative.
    NoRecords(i32),
    /// `lastOffsetDelta != recordCount - 1`.
    LastOffsetDelta {
        /// Found.
        last_offset_delta: i32,
        /// The record count.
        record_count: i32,
    },
    /// A record's offset delta is not its index (gaps, or out of order).
    SparseOffsetDelta {
        /// Index of the record.
        index: i32,
        /// Its offset delta.
        offset_delta: i32,
    },
    /// The records cannot be decompressed or decoded.
    UndecodableRecords(String),
    /// A control batch (refused from clients).
    ControlBatch,
    /// The transactional bit without a transactional id in the request.
    TransactionalWithoutId,
    /// The delete-horizon bit (only a compacting broker sets it).
    DeleteHorizonSet,
    /// A producer id with a negative base sequence.
    ProducerIdWithoutSequence {
        /// The producer id.
        producer_id: i64,
        /// The sequence.
        base_sequence: i32,
    },
    /// zstd before Produce v7.
    ZstdBeforeV7(i16),
    /// A sequence that skips ahead (OUT_OF_ORDER_SEQUENCE_NUMBER).
    SequenceGap {
        /// The producer.
        producer_id: i64,
        /// The sequence the broker expects next.
        expected: i32,
        /// The sequence sent.
        found: i32,
    },
    /// A new epoch whose first sequence is not 0.
    NewEpochNotFromZero {
        /// The producer.
        producer_id: i64,
        /// The new epoch.
        epoch: i16,
        /// The sequence sent.
        base_sequence: i32,
    },
    /// An epoch lower than one already used (INVALID_PRODUCER_EPOCH).
    EpochRegression {
        /// The producer.
        producer_id: i64,
        /// The epoch sent.
        epoch: i16,
        /// The highest epoch seen before.
        previous: i16,
    },
    /// A batch larger than the topic's `max.message.bytes` (MESSAGE_TOO_LARGE).
    BatchTooLarge {
        /// Batch size.
        size: usize,
        /// The topic's limit.
        max: usize,
    },
    /// A LogAppendTime batch sent to a LogAppendTime topic (INVALID_TIMESTAMP).
    LogAppendTimeToLogAppendTimeTopic,
    /// A null key sent to a compacted topic.
    NullKeyOnCompactedTopic {
        /// Index of the record in the batch.
        index: i32,
    },
}

/// A broken rule and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The topic (empty for request-level rules).
    pub topic: String,
    /// The partition (-1 for request-level rules).
    pub partition: i32,
    /// The rule.
    pub rule: Rule,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.topic.is_empty() {
            write!(f, "request: {:?}", self.rule)
        } else {
            write!(f, "{}-{}: {:?}", self.topic, self.partition, self.rule)
        }
    }
}

/// Checks Produce requests against Apache Kafka's rules; remembers producer
/// sequences across requests.
#[derive(Debug, Clone, Default)]
pub struct ConformanceChecker {
    topics: HashMap<String, TopicRules>,
    /// `(producer id, topic, partition)` -> (epoch, next expected sequence).
    sequences: HashMap<(i64, String, i32), (i16, i32)>,
}

impl ConformanceChecker {
    /// A checker that knows no topic configs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a destination topic's configs.
    pub fn with_topic(mut self, topic: &str, rules: TopicRules) -> Self {
        self.topics.insert(topic.to_owned(), rules);
        self
    }

    /// Checks an encoded request frame as kmirror sends it (size prefix
    /// included).
    pub fn check_frame(&mut self, frame: &ProduceFrame) -> Vec<Violation> {
        let bytes = frame.to_contiguous();
        self.check(bytes.slice(4.min(bytes.len())..))
    }

    /// Checks a Produce request without its size prefix (header first) and
    /// returns every violation found.
    pub fn check(&mut self, request: Bytes) -> Vec<Violation> {
        let mut out = Vec::new();
        let req = match decode_produce_request(request) {
            Ok(r) => r,
            Err(e) => {
                out.push(Violation {
                    topic: String::new(),
                    partition: -1,
                    rule: Rule::Unparseable(e.to_string()),
                });
                return out;
            }
        };
        if !(-1..=1).contains(&req.acks) {
            out.push(Violation {
                topic: String::new(),
                partition: -1,
                rule: Rule::InvalidAcks(req.acks),
            });
        }
        for (topic, partitions) in &req.topics {
            for (partition, records) in partitions {
                let mut push = |rule| {
                    out.push(Violation {
                        topic: topic.to_string(),
                        partition: *partition,
                        rule,
                    })
                };
                self.check_partition(&req, topic, *partition, records.as_ref(), &mut push);
            }
        }
        out
    }

    fn check_partition(
        &mut self,
        req: &DecodedProduceRequest,
        topic: &str,
        partition: i32,
        records: Option<&Bytes>,
        push: &mut impl FnMut(Rule),
    ) {
        let Some(records) = records else {
            push(Rule::NullRecords);
            return;
        };
        let mut batches = RecordBatches::new(records.clone());
        let mut views = Vec::new();
        for entry in batches.by_ref() {
            match entry {
                Ok(LogEntry::Batch(v)) => views.push(v),
                Ok(LogEntry::Legacy { magic, .. }) => push(Rule::NotMagicV2(magic)),
                Err(e) => push(Rule::MalformedBatch(e.to_string())),
            }
        }
        if batches.truncated_bytes() > 0 {
            push(Rule::MalformedBatch(format!(
                "{} bytes of an incomplete batch at the end",
                batches.truncated_bytes()
            )));
        }
        if views.len() > 1 {
            push(Rule::MultipleBatches(views.len()));
        }
        if views.is_empty() && records.is_empty() {
            push(Rule::NoRecords(0));
        }
        let rules = self.topics.get(topic).copied().unwrap_or_default();
        for view in &views {
            check_batch(req, view, &rules, push);
            self.check_sequence(topic, partition, view, push);
        }
    }

    fn check_sequence(
        &mut self,
        topic: &str,
        partition: i32,
        view: &RecordBatchView,
        push: &mut impl FnMut(Rule),
    ) {
        let h = view.header();
        if h.producer_id < 0 || h.base_sequence < 0 || h.record_count <= 0 {
            return;
        }
        let key = (h.producer_id, topic.to_owned(), partition);
        let next = increment_sequence(h.base_sequence, h.record_count);
        match self.sequences.get(&key).copied() {
            None => {
                self.sequences.insert(key, (h.producer_epoch, next));
            }
            Some((epoch, _)) if h.producer_epoch < epoch => push(Rule::EpochRegression {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                previous: epoch,
            }),
            Some((epoch, _)) if h.producer_epoch > epoch => {
                if h.base_sequence != 0 {
                    push(Rule::NewEpochNotFromZero {
                        producer_id: h.producer_id,
                        epoch: h.producer_epoch,
                        base_sequence: h.base_sequence,
                    });
                }
                self.sequences.insert(key, (h.producer_epoch, next));
            }
            Some((epoch, expected)) => {
                if h.base_sequence == expected {
                    self.sequences.insert(key, (epoch, next));
                } else if sequence_is_ahead(h.base_sequence, expected) {
                    push(Rule::SequenceGap {
                        producer_id: h.producer_id,
                        expected,
                        found: h.base_sequence,
                    });
                }
                // A sequence behind the expected one is a retry of a batch
                // already sent; the broker answers DUPLICATE_SEQUENCE_NUMBER.
            }
        }
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap to 0
/// after `i32::MAX`.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Whether `found` lies ahead of `expected` in wrapping sequence space.
fn sequence_is_ahead(found: i32, expected: i32) -> bool {
    let distance = i64::from(found) - i64::from(expected);
    let span = i64::from(i32::MAX) + 1;
    let forward = distance.rem_euclid(span);
    forward != 0 && forward < span / 2
}

fn check_batch(
    req: &DecodedProduceRequest,
    view: &RecordBatchView,
    rules: &TopicRules,
    push: &mut impl FnMut(Rule),
) {
    let h = view.header();
    if let Err(crate::error::RecordError::CrcMismatch {
        stored, computed, ..
    }) = view.verify_crc()
    {
        push(Rule::CrcMismatch { stored, computed });
    }
    if h.base_offset != 0 {
        push(Rule::NonZeroBaseOffset(h.base_offset));
    }
    // partitionLeaderEpoch is overwritten by the leader, so any value is
    // accepted (librdkafka sends 0); kmirror sends -1 by convention.
    if h.record_count <= 0 {
        push(Rule::NoRecords(h.record_count));
    }
    if !h.has_dense_offsets() {
        push(Rule::LastOffsetDelta {
            last_offset_delta: h.last_offset_delta,
            record_count: h.record_count,
        });
    }
    if h.is_control() {
        push(Rule::ControlBatch);
    }
    if h.is_transactional() && req.transactional_id.is_none() {
        push(Rule::TransactionalWithoutId);
    }
    if h.has_delete_horizon() {
        push(Rule::DeleteHorizonSet);
    }
    if h.producer_id >= 0 && h.base_sequence < 0 {
        push(Rule::ProducerIdWithoutSequence {
            producer_id: h.producer_id,
            base_sequence: h.base_sequence,
        });
    }
    if matches!(h.compression(), Ok(Compression::Zstd)) && req.version < 7 {
        push(Rule::ZstdBeforeV7(req.version));
    }
    if let Some(max) = rules.max_message_bytes
        && h.size_in_bytes() > max
    {
        push(Rule::BatchTooLarge {
            size: h.size_in_bytes(),
            max,
        });
    }
    if rules.log_append_time && h.timestamp_type() == TimestampType::LogAppendTime {
        push(Rule::LogAppendTimeToLogAppendTimeTopic);
    }
    check_records(view, rules, push);
}

fn check_records(view: &RecordBatchView, rules: &TopicRules, push: &mut impl FnMut(Rule)) {
    let records = match view.records(CHECK_DECOMPRESS_CAP) {
        Ok(r) => r,
        Err(e) => {
            push(Rule::UndecodableRecords(e.to_string()));
            return;
        }
    };
    let mut index: i32 = 0;
    for record in records {
        match record {
            Ok(r) => {
                if r.offset_delta != index {
                    push(Rule::SparseOffsetDelta {
                        index,
                        offset_delta: r.offset_delta,
                    });
                }
                if rules.compacted && r.key.is_none() {
                    push(Rule::NullKeyOnCompactedTopic { index });
                }
            }
            Err(e) => {
                push(Rule::UndecodableRecords(e.to_string()));
                return;
            }
        }
        index = index.saturating_add(1);
    }
}
