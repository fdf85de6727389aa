//! The mirror's own idempotent producer: producer id, epoch and the
//! per-destination-partition sequence stamped into every batch it sends.
//!
//! [`ProducerSequencer`] owns the numbers Kafka's idempotence checks
//! (kafka-wire-rules.md): each partition's batches carry consecutive base
//! sequences (wrapping to 0 after `i32::MAX`, as Kafka's
//! `DefaultRecordBatch.incrementSequence` does), at most five batches per
//! partition are unacknowledged at once (the broker keeps the last five
//! batches per producer and partition to recognise retries), and a new
//! epoch starts every partition again at sequence 0.
//!
//! A partition's first batch under a producer id and epoch travels alone:
//! Apache Kafka accepts ANY sequence from a producer it holds no state for
//! on a partition (`ProducerAppendInfo.checkSequence`), so if that first
//! batch failed (a new topic whose partitions are not loaded yet answers
//! NOT_LEADER_OR_FOLLOWER for a moment) while the next one succeeded, the
//! later batch would be written first and the retried earlier one refused
//! as out of order: records reordered. Once one batch is acknowledged, the
//! broker checks every sequence and pipelining is safe. The source's own
//! producer fields are never passed through: every batch gets this
//! producer's stamp.
//!
//! It must never send, retry or decide that an error is fatal. The produce
//! side asks [`ProducerSequencer::can_send`], stamps a batch with
//! [`ProducerSequencer::next`], retries a batch with the stamp it already
//! carries, reports acknowledgements, and after a sequence error
//! (OUT_OF_ORDER_SEQUENCE_NUMBER), a fenced or unknown producer, or any
//! batch that failed for good (which leaves a hole in the sequence), bumps
//! the epoch with InitProducerId and calls
//! [`ProducerSequencer::reset_epoch`] or
//! [`ProducerSequencer::reset_producer`]; batches still unacknowledged
//! are then stamped again, in their original order, before being resent.
//!
//! With `acks=1` kmirror does not use idempotence
//! ([`ProducerSequencer::without_idempotence`]): batches carry no producer
//! id, epoch or sequence (-1/-1/-1, as Java's producer without idempotence
//! sends them), a partition's first batch need not travel alone, and the
//! sequencer only numbers each partition's batches locally so that answers
//! can be matched to batches; those numbers never reach the wire.

use std::collections::{HashMap, VecDeque};

use kmirror_protocol::conformance::increment_sequence;
use kmirror_protocol::record::ProducerStamp;

/// Kafka's limit of unacknowledged batches per partition for an idempotent
/// producer (`max.in.flight.requests.per.connection` <= 5).
pub const MAX_IN_FLIGHT_PER_PARTITION: usize = 5;

/// A misuse of the sequencer: each variant means a bug in the caller or an
/// invalid InitProducerId answer, never bad record data.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// A producer id or epoch that InitProducerId never hands out.
    #[error(
        "producer id {producer_id} with epoch {epoch} is not an idempotent producer (both must be >= 0)"
    )]
    InvalidProducer {
        /// The producer id.
        producer_id: i64,
        /// The epoch.
        epoch: i16,
    },
    /// An in-flight limit outside 1..=5.
    #[error(
        "at most {MAX_IN_FLIGHT_PER_PARTITION} batches per partition may be in flight with an \
         idempotent producer, and at least 1; got {0}"
    )]
    InvalidMaxInFlight(usize),
    /// A batch without records.
    #[error("{topic}-{partition}: a batch needs at least one record, got {record_count}")]
    EmptyBatch {
        /// Destination topic.
        topic: String,
        /// Destination partition.
        partition: i32,
        /// The count given.
        record_count: i32,
    },
    /// The partition already has the maximum of batches in flight.
    #[error("{topic}-{partition}: already {limit} batches in flight; wait for an acknowledgement")]
    InFlightFull {
        /// Destination topic.
        topic: String,
        /// Destination partition.
        partition: i32,
        /// The limit.
        limit: usize,
    },
    /// An acknowledgement for a batch that is not in flight.
    #[error("{topic}-{partition}: no batch with base sequence {base_sequence} is in flight")]
    UnknownBatch {
        /// Destination topic.
        topic: String,
        /// Destination partition.
        partition: i32,
        /// The base sequence given.
        base_sequence: i32,
    },
    /// An epoch bump or a new producer id for a sequencer without
    /// idempotence.
    #[error("the producer does not use idempotence (acks=1): it has no epoch to bump")]
    NotIdempotent,
    /// A new epoch that is not above the current one for the same producer.
    #[error(
        "producer {producer_id}: epoch {epoch} does not follow the current epoch {current} \
         (INVALID_PRODUCER_EPOCH at the broker)"
    )]
    EpochRegression {
        /// The producer id.
        producer_id: i64,
        /// The epoch given.
        epoch: i16,
        /// The current epoch.
        current: i16,
    },
}

/// Sequence state of one destination partition.
#[derive(Debug, Clone, Default)]
struct PartitionSequence {
    /// Base sequence of the next batch.
    next: i32,
    /// Base sequences of unacknowledged batches, oldest first.
    in_flight: VecDeque<i32>,
    /// Whether a batch was acknowledged under this producer id and epoch,
    /// so the broker holds this producer's state and checks sequences.
    established: bool,
}

impl PartitionSequence {
    /// Takes the next base sequence for a batch of `record_count` records,
    /// unless `limit` batches are already in flight.
    fn stamp(&mut self, record_count: i32, limit: usize, idempotent: bool) -> Option<i32> {
        if self.in_flight.len() >= self.limit(limit, idempotent) {
            return None;
        }
        let base_sequence = self.next;
        self.next = increment_sequence(base_sequence, record_count);
        self.in_flight.push_back(base_sequence);
        Some(base_sequence)
    }

    /// The in-flight limit of an idempotent producer: `limit` once the
    /// broker knows this producer on the partition, one batch before (see
    /// the module documentation); always `limit` without idempotence.
    fn limit(&self, limit: usize, idempotent: bool) -> usize {
        if self.established || !idempotent {
            limit
        } else {
            1
        }
    }
}

/// The idempotent producer's identity and per-partition sequences (see the
/// module documentation).
///
/// ```
/// use kmirror::sequencer::ProducerSequencer;
///
/// let mut producer = ProducerSequencer::new(4000, 0)?;
/// let first = producer.next("testtopic", 3, 10)?;
/// // A partition's first batch travels alone.
/// producer.acknowledged("testtopic", 3, 0)?;
/// let second = producer.next("testtopic", 3, 5)?;
/// assert_eq!((first.base_sequence, second.base_sequence), (0, 10));
/// producer.reset_epoch(1)?; // after OUT_OF_ORDER_SEQUENCE_NUMBER
/// assert_eq!(producer.next("testtopic", 3, 5)?.base_sequence, 0);
/// # Ok::<(), kmirror::sequencer::SequenceError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ProducerSequencer {
    producer_id: i64,
    epoch: i16,
    max_in_flight: usize,
    /// Whether batches carry this producer's stamp (`acks=all`); without,
    /// they carry -1/-1/-1.
    idempotent: bool,
    /// Destination topic -> partition -> sequence state.
    topics: HashMap<String, HashMap<i32, PartitionSequence>>,
}

impl ProducerSequencer {
    /// The producer `producer_id` at `epoch`, as InitProducerId returned
    /// them, allowing [`MAX_IN_FLIGHT_PER_PARTITION`] batches in flight per
    /// partition.
    pub fn new(producer_id: i64, epoch: i16) -> Result<Self, SequenceError> {
        check_producer(producer_id, epoch)?;
        Ok(Self {
            producer_id,
            epoch,
            max_in_flight: MAX_IN_FLIGHT_PER_PARTITION,
            idempotent: true,
            topics: HashMap::new(),
        })
    }

    /// A producer without idempotence (`acks=1`): every batch is stamped
    /// [`ProducerStamp::NONE`] (-1/-1/-1), a partition's first batch does
    /// not travel alone, and [`ProducerSequencer::next_batch`]'s local
    /// numbers identify batches for [`ProducerSequencer::acknowledged`].
    /// There is no InitProducerId and no epoch to bump.
    ///
    /// ```
    /// use kmirror::sequencer::ProducerSequencer;
    /// use kmirror_protocol::record::ProducerStamp;
    ///
    /// let mut producer = ProducerSequencer::without_idempotence();
    /// let (first, stamp) = producer.next_batch("testtopic", 0, 10)?;
    /// assert_eq!(stamp, ProducerStamp::NONE);
    /// assert!(producer.can_send("testtopic", 0), "pipelined from the start");
    /// producer.acknowledged("testtopic", 0, first)?;
    /// # Ok::<(), kmirror::sequencer::SequenceError>(())
    /// ```
    pub fn without_idempotence() -> Self {
        Self {
            producer_id: -1,
            epoch: -1,
            max_in_flight: MAX_IN_FLIGHT_PER_PARTITION,
            idempotent: false,
            topics: HashMap::new(),
        }
    }

    /// Whether batches carry this producer's id, epoch and sequences.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Lowers the limit of batches in flight per partition
    /// (`max.in.flight.requests.per.connection`), which must be 1..=5.
    pub fn with_max_in_flight(mut self, max_in_flight: usize) -> Result<Self, SequenceError> {
        if !(1..=MAX_IN_FLIGHT_PER_PARTITION).contains(&max_in_flight) {
            return Err(SequenceError::InvalidMaxInFlight(max_in_flight));
        }
        self.max_in_flight = max_in_flight;
        Ok(self)
    }

    /// The producer id.
    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }

    /// The current epoch.
    pub fn epoch(&self) -> i16 {
        self.epoch
    }

    /// The limit of batches in flight per partition.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Whether `partition` of `topic` may take another batch now: fewer
    /// than the in-flight limit are unacknowledged, and none at all while no
    /// batch of this producer id and epoch was acknowledged on the partition
    /// (its first batch travels alone).
    pub fn can_send(&self, topic: &str, partition: i32) -> bool {
        self.partition(topic, partition)
            .is_none_or(|p| p.in_flight.len() < p.limit(self.max_in_flight, self.idempotent))
    }

    /// Unacknowledged batches of `partition` of `topic`.
    pub fn in_flight(&self, topic: &str, partition: i32) -> usize {
        self.partition(topic, partition)
            .map_or(0, |p| p.in_flight.len())
    }

    /// The base sequence the next batch of `partition` of `topic` will get.
    pub fn next_sequence(&self, topic: &str, partition: i32) -> i32 {
        self.partition(topic, partition).map_or(0, |p| p.next)
    }

    /// Stamps the next batch of `record_count` records for `partition` of
    /// `topic`: this producer's id and epoch, and the partition's next base
    /// sequence, which then advances by `record_count` (wrapping after
    /// `i32::MAX`). The batch counts as in flight until
    /// [`ProducerSequencer::acknowledged`]. Without idempotence the stamp
    /// is [`ProducerStamp::NONE`]: use [`ProducerSequencer::next_batch`],
    /// which also returns the batch's local number.
    pub fn next(
        &mut self,
        topic: &str,
        partition: i32,
        record_count: i32,
    ) -> Result<ProducerStamp, SequenceError> {
        self.next_batch(topic, partition, record_count)
            .map(|(_, stamp)| stamp)
    }

    /// Like [`ProducerSequencer::next`], and also returns the partition's
    /// sequence number for the batch, which identifies it in
    /// [`ProducerSequencer::acknowledged`]: the stamp's base sequence with
    /// idempotence, a number that never reaches the wire without.
    pub fn next_batch(
        &mut self,
        topic: &str,
        partition: i32,
        record_count: i32,
    ) -> Result<(i32, ProducerStamp), SequenceError> {
        if record_count <= 0 {
            return Err(SequenceError::EmptyBatch {
                topic: topic.to_owned(),
                partition,
                record_count,
            });
        }
        let limit = self.max_in_flight;
        let idempotent = self.idempotent;
        let full = || SequenceError::InFlightFull {
            topic: topic.to_owned(),
            partition,
            limit,
        };
        let known = self
            .topics
            .get_mut(topic)
            .and_then(|p| p.get_mut(&partition));
        let base_sequence = match known {
            Some(sequence) => sequence
                .stamp(record_count, limit, idempotent)
                .ok_or_else(full)?,
            None => {
                // A partition's first batch; only a topic's first batch
                // allocates its name.
                let mut sequence = PartitionSequence::default();
                let base = sequence
                    .stamp(record_count, limit, idempotent)
                    .ok_or_else(full)?;
                match self.topics.get_mut(topic) {
                    Some(partitions) => {
                        partitions.insert(partition, sequence);
                    }
                    None => {
                        self.topics
                            .insert(topic.to_owned(), HashMap::from([(partition, sequence)]));
                    }
                }
                base
            }
        };
        if !idempotent {
            return Ok((base_sequence, ProducerStamp::NONE));
        }
        Ok((
            base_sequence,
            ProducerStamp {
                producer_id: self.producer_id,
                producer_epoch: self.epoch,
                base_sequence,
            },
        ))
    }

    /// The destination acknowledged the batch of `partition` of `topic`
    /// stamped with `base_sequence` (also for DUPLICATE_SEQUENCE_NUMBER,
    /// which means an earlier attempt was written).
    pub fn acknowledged(
        &mut self,
        topic: &str,
        partition: i32,
        base_sequence: i32,
    ) -> Result<(), SequenceError> {
        let unknown = || SequenceError::UnknownBatch {
            topic: topic.to_owned(),
            partition,
            base_sequence,
        };
        let sequence = self
            .topics
            .get_mut(topic)
            .and_then(|p| p.get_mut(&partition))
            .ok_or_else(unknown)?;
        let position = sequence
            .in_flight
            .iter()
            .position(|s| *s == base_sequence)
            .ok_or_else(unknown)?;
        sequence.in_flight.remove(position);
        sequence.established = true;
        Ok(())
    }

    /// Moves to `epoch` of the same producer (InitProducerId with the
    /// current id and epoch bumped it): every partition starts again at
    /// sequence 0 with nothing in flight.
    pub fn reset_epoch(&mut self, epoch: i16) -> Result<(), SequenceError> {
        self.reset_producer(self.producer_id, epoch)
    }

    /// Moves to producer `producer_id` at `epoch` (InitProducerId may hand
    /// out a new id, for instance when the epoch is exhausted): every
    /// partition starts again at sequence 0 with nothing in flight. The same
    /// id must come with a higher epoch.
    pub fn reset_producer(&mut self, producer_id: i64, epoch: i16) -> Result<(), SequenceError> {
        if !self.idempotent {
            return Err(SequenceError::NotIdempotent);
        }
        check_producer(producer_id, epoch)?;
        if producer_id == self.producer_id && epoch <= self.epoch {
            return Err(SequenceError::EpochRegression {
                producer_id,
                epoch,
                current: self.epoch,
            });
        }
        self.producer_id = producer_id;
        self.epoch = epoch;
        self.topics.clear();
        Ok(())
    }

    fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionSequence> {
        self.topics.get(topic).and_then(|p| p.get(&partition))
    }
}

fn check_producer(producer_id: i64, epoch: i16) -> Result<(), SequenceError> {
    if producer_id < 0 || epoch < 0 {
        return Err(SequenceError::InvalidProducer { producer_id, epoch });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kmirror_protocol::Compression;
    use kmirror_protocol::conformance::{ConformanceChecker, Rule};
    use kmirror_protocol::kafka_protocol::protocol::StrBytes;
    use kmirror_protocol::messages::produce::{
        ProducePartition, ProduceRequest, ProduceTopic, encode_produce_request,
    };
    use kmirror_protocol::record::{BatchBuilder, ProduceBatch};

    use super::*;

    #[test]
    fn sequences_continue_across_batches() {
        let mut p = ProducerSequencer::new(7, 2).unwrap();
        let a = p.next("t", 0, 3).unwrap();
        p.acknowledged("t", 0, 0).unwrap();
        let b = p.next("t", 0, 1).unwrap();
        let c = p.next("t", 0, 100).unwrap();
        assert_eq!(
            a,
            ProducerStamp {
                producer_id: 7,
                producer_epoch: 2,
                base_sequence: 0
            }
        );
        assert_eq!(b.base_sequence, 3);
        assert_eq!(c.base_sequence, 4);
        assert_eq!(p.next_sequence("t", 0), 104);
        assert_eq!(p.in_flight("t", 0), 2);
    }

    #[test]
    fn partitions_and_topics_are_independent() {
        let mut p = ProducerSequencer::new(7, 0).unwrap();
        assert_eq!(p.next("t", 0, 10).unwrap().base_sequence, 0);
        assert_eq!(p.next("t", 1, 10).unwrap().base_sequence, 0);
        assert_eq!(p.next("u", 0, 10).unwrap().base_sequence, 0);
        p.acknowledged("t", 0, 0).unwrap();
        p.acknowledged("t", 1, 0).unwrap();
        assert_eq!(p.next("t", 0, 10).unwrap().base_sequence, 10);
        assert_eq!(p.next("t", 1, 1).unwrap().base_sequence, 10);
        assert_eq!(p.next_sequence("u", 0), 10);
        assert_eq!(p.next_sequence("u", 1), 0);
        assert_eq!(p.in_flight("t", 0), 1);
        assert_eq!(p.in_flight("u", 0), 1);
        assert_eq!(p.in_flight("v", 0), 0);
    }

    #[test]
    fn sequences_wrap_after_i32_max_like_kafka() {
        let mut p = ProducerSequencer::new(1, 0).unwrap();
        let huge = p.next("t", 0, i32::MAX).unwrap();
        assert_eq!(huge.base_sequence, 0);
        p.acknowledged("t", 0, 0).unwrap();
        assert_eq!(p.next_sequence("t", 0), i32::MAX);
        let last = p.next("t", 0, 3).unwrap();
        assert_eq!(last.base_sequence, i32::MAX);
        // i32::MAX, 0, 1 are used: the next batch starts at 2.
        assert_eq!(p.next_sequence("t", 0), 2);
        assert_eq!(p.next_sequence("t", 0), increment_sequence(i32::MAX, 3));
        assert_eq!(p.next("t", 0, 1).unwrap().base_sequence, 2);
        // Exactly reaching i32::MAX + 1 wraps to 0.
        let mut q = ProducerSequencer::new(1, 0).unwrap();
        q.next("t", 0, i32::MAX - 1).unwrap();
        q.acknowledged("t", 0, 0).unwrap();
        q.next("t", 0, 2).unwrap();
        assert_eq!(q.next_sequence("t", 0), 0);
    }

    #[test]
    fn a_partitions_first_batch_travels_alone() {
        // Apache Kafka accepts any sequence from a producer it holds no
        // state for (ProducerAppendInfo.checkSequence): a second batch sent
        // beside a failing first one could be written before it.
        let mut p = ProducerSequencer::new(1, 0).unwrap();
        assert!(p.can_send("t", 0));
        p.next("t", 0, 2).unwrap();
        assert!(!p.can_send("t", 0), "nothing beside the first batch");
        assert!(matches!(
            p.next("t", 0, 1),
            Err(SequenceError::InFlightFull { .. })
        ));
        p.acknowledged("t", 0, 0).unwrap();
        for _ in 0..5 {
            assert!(p.can_send("t", 0), "pipelined once the broker knows us");
            p.next("t", 0, 1).unwrap();
        }
        // A new epoch is a new start: the first batch alone again.
        p.reset_epoch(1).unwrap();
        p.next("t", 0, 1).unwrap();
        assert!(!p.can_send("t", 0));
        // So is a new producer id.
        p.acknowledged("t", 0, 0).unwrap();
        p.reset_producer(2, 0).unwrap();
        p.next("t", 0, 1).unwrap();
        assert!(!p.can_send("t", 0));
    }

    /// Issue 13, item 10: with acks=1 the batches carry no producer
    /// fields, nothing waits for a first acknowledgement, and there is no
    /// epoch to bump.
    #[test]
    fn without_idempotence_batches_carry_no_producer_fields() {
        let mut p = ProducerSequencer::without_idempotence()
            .with_max_in_flight(3)
            .unwrap();
        assert!(!p.is_idempotent());
        let mut numbers = Vec::new();
        for _ in 0..3 {
            assert!(p.can_send("t", 0), "no first batch alone");
            let (number, stamp) = p.next_batch("t", 0, 4).unwrap();
            assert_eq!(stamp, ProducerStamp::NONE);
            numbers.push(number);
        }
        assert!(!p.can_send("t", 0), "the in-flight limit still holds");
        assert_eq!(numbers, [0, 4, 8], "local numbers tell the batches apart");
        p.acknowledged("t", 0, 4).unwrap();
        assert!(p.can_send("t", 0));
        assert_eq!(p.next("t", 0, 1).unwrap(), ProducerStamp::NONE);
        assert_eq!(p.reset_epoch(1), Err(SequenceError::NotIdempotent));
        assert_eq!(p.reset_producer(3, 0), Err(SequenceError::NotIdempotent));
        // Every batch passes Apache Kafka's checks as a producer without
        // idempotence.
        let mut q = ProducerSequencer::without_idempotence();
        let request = stamped_request(&mut q, &[("t", 0, 3), ("t", 1, 2)], Compression::None);
        let mut checker = ConformanceChecker::new();
        let frame = encode_produce_request(&request, 9, 1, Some("kmirror")).unwrap();
        assert_eq!(checker.check_frame(&frame), vec![]);
        for topic in &request.topics {
            for partition in &topic.partitions {
                let header = partition.batch.header();
                assert_eq!(
                    (
                        header.producer_id,
                        header.producer_epoch,
                        header.base_sequence
                    ),
                    (-1, -1, -1)
                );
            }
        }
    }

    #[test]
    fn at_most_five_batches_in_flight_per_partition() {
        let mut p = ProducerSequencer::new(1, 0).unwrap();
        p.next("t", 0, 2).unwrap();
        p.acknowledged("t", 0, 0).unwrap();
        let mut bases = Vec::new();
        for _ in 0..5 {
            assert!(p.can_send("t", 0));
            bases.push(p.next("t", 0, 2).unwrap().base_sequence);
        }
        assert!(!p.can_send("t", 0));
        assert!(p.can_send("t", 1), "other partitions are not held back");
        assert_eq!(
            p.next("t", 0, 1),
            Err(SequenceError::InFlightFull {
                topic: "t".into(),
                partition: 0,
                limit: 5
            })
        );
        assert_eq!(
            p.next_sequence("t", 0),
            12,
            "a refused batch takes no sequence"
        );
        p.acknowledged("t", 0, bases[0]).unwrap();
        assert!(p.can_send("t", 0));
        assert_eq!(p.next("t", 0, 1).unwrap().base_sequence, 12);
        assert!(!p.can_send("t", 0));
        // Acknowledgements out of order free a slot too.
        p.acknowledged("t", 0, bases[3]).unwrap();
        assert_eq!(p.in_flight("t", 0), 4);
    }

    #[test]
    fn a_lower_in_flight_limit() {
        let mut p = ProducerSequencer::new(1, 0)
            .unwrap()
            .with_max_in_flight(1)
            .unwrap();
        p.next("t", 0, 1).unwrap();
        assert!(!p.can_send("t", 0));
        assert!(matches!(
            ProducerSequencer::new(1, 0).unwrap().with_max_in_flight(6),
            Err(SequenceError::InvalidMaxInFlight(6))
        ));
        assert!(matches!(
            ProducerSequencer::new(1, 0).unwrap().with_max_in_flight(0),
            Err(SequenceError::InvalidMaxInFlight(0))
        ));
    }

    #[test]
    fn unknown_acknowledgements_are_refused() {
        let mut p = ProducerSequencer::new(1, 0).unwrap();
        p.next("t", 0, 5).unwrap();
        assert!(matches!(
            p.acknowledged("t", 0, 3),
            Err(SequenceError::UnknownBatch {
                base_sequence: 3,
                ..
            })
        ));
        assert!(p.acknowledged("t", 1, 0).is_err());
        assert!(p.acknowledged("u", 0, 0).is_err());
        p.acknowledged("t", 0, 0).unwrap();
        assert!(p.acknowledged("t", 0, 0).is_err(), "acknowledged twice");
    }

    #[test]
    fn empty_batches_and_invalid_producers_are_refused() {
        let mut p = ProducerSequencer::new(1, 0).unwrap();
        assert!(matches!(
            p.next("t", 0, 0),
            Err(SequenceError::EmptyBatch { .. })
        ));
        assert!(matches!(
            p.next("t", 0, -4),
            Err(SequenceError::EmptyBatch { .. })
        ));
        assert_eq!(p.in_flight("t", 0), 0);
        assert!(matches!(
            ProducerSequencer::new(-1, -1),
            Err(SequenceError::InvalidProducer { .. })
        ));
        assert!(ProducerSequencer::new(5, -1).is_err());
    }

    #[test]
    fn an_epoch_bump_restarts_every_partition_at_zero() {
        let mut p = ProducerSequencer::new(9, 3).unwrap();
        for partition in 0..3 {
            p.next("t", partition, 7).unwrap();
            p.acknowledged("t", partition, 0).unwrap();
            for _ in 0..3 {
                p.next("t", partition, 7).unwrap();
            }
        }
        p.reset_epoch(4).unwrap();
        assert_eq!(p.epoch(), 4);
        for partition in 0..3 {
            assert_eq!(p.in_flight("t", partition), 0);
            assert!(p.can_send("t", partition));
            let stamp = p.next("t", partition, 1).unwrap();
            assert_eq!(
                stamp,
                ProducerStamp {
                    producer_id: 9,
                    producer_epoch: 4,
                    base_sequence: 0
                }
            );
        }
    }

    #[test]
    fn epochs_never_go_back() {
        let mut p = ProducerSequencer::new(9, 3).unwrap();
        p.next("t", 0, 1).unwrap();
        assert_eq!(
            p.reset_epoch(3),
            Err(SequenceError::EpochRegression {
                producer_id: 9,
                epoch: 3,
                current: 3
            })
        );
        assert!(p.reset_epoch(2).is_err());
        assert_eq!(
            p.next_sequence("t", 0),
            1,
            "a refused reset changes nothing"
        );
        // A new producer id may start at any epoch.
        p.reset_producer(10, 0).unwrap();
        assert_eq!(p.producer_id(), 10);
        assert_eq!(p.next("t", 0, 1).unwrap().base_sequence, 0);
    }

    /// A Produce request with one batch of `count` records per
    /// `(topic, partition)`, each stamped by `producer`.
    fn stamped_request(
        producer: &mut ProducerSequencer,
        batches: &[(&str, i32, i32)],
        compression: Compression,
    ) -> ProduceRequest {
        let mut topics: Vec<ProduceTopic> = Vec::new();
        for &(topic, partition, count) in batches {
            let batch = build(producer, topic, partition, count, compression);
            let entry = ProducePartition {
                index: partition,
                batch,
            };
            match topics.iter_mut().find(|t| t.name.as_str() == topic) {
                Some(t) => t.partitions.push(entry),
                None => topics.push(ProduceTopic {
                    name: StrBytes::from_string(topic.to_owned()),
                    partitions: vec![entry],
                }),
            }
        }
        ProduceRequest {
            transactional_id: None,
            acks: -1,
            timeout_ms: 30_000,
            topics,
        }
    }

    fn build(
        producer: &mut ProducerSequencer,
        topic: &str,
        partition: i32,
        count: i32,
        compression: Compression,
    ) -> ProduceBatch {
        let mut builder = BatchBuilder::new(compression);
        for i in 0..count {
            let value = format!("{topic}-{partition}-{i}");
            builder
                .push(
                    1_700_000_000_000 + i64::from(i),
                    Some(b"key"),
                    Some(value.as_bytes()),
                    std::iter::empty(),
                )
                .unwrap();
        }
        builder
            .build(producer.next(topic, partition, count).unwrap())
            .unwrap()
    }

    fn acknowledge_all(producer: &mut ProducerSequencer, request: &ProduceRequest) {
        for topic in &request.topics {
            for p in &topic.partitions {
                let base = p.batch.header().base_sequence;
                producer
                    .acknowledged(topic.name.as_str(), p.index, base)
                    .unwrap();
            }
        }
    }

    #[test]
    fn stamped_batches_pass_the_conformance_checker_across_an_epoch_bump() {
        let mut producer = ProducerSequencer::new(4242, 0).unwrap();
        let mut checker = ConformanceChecker::new();
        let mut correlation = 0;
        let mut send = |request: &ProduceRequest| {
            correlation += 1;
            let frame = encode_produce_request(request, 9, correlation, Some("kmirror")).unwrap();
            assert_eq!(checker.check_frame(&frame), vec![], "request {correlation}");
        };
        // Requests stay in flight until a partition reaches its limit; then
        // the oldest is acknowledged.
        let mut pending: VecDeque<ProduceRequest> = VecDeque::new();
        for round in 0..20 {
            let shape = [
                ("orders", 0, 1 + round % 4),
                ("orders", 1, 3),
                ("orders", 2, 1 + round % 2),
                ("payments", 0, 2),
            ];
            while !shape.iter().all(|(t, p, _)| producer.can_send(t, *p)) {
                let oldest = pending.pop_front().unwrap();
                acknowledge_all(&mut producer, &oldest);
            }
            let request = stamped_request(&mut producer, &shape, Compression::Lz4);
            send(&request);
            pending.push_back(request);
        }
        assert_eq!(pending.len(), 5, "five requests were in flight at once");
        assert_eq!(producer.in_flight("orders", 1), 5);
        assert_eq!(producer.next_sequence("orders", 1), 60);
        // OUT_OF_ORDER_SEQUENCE_NUMBER: InitProducerId bumps the epoch, and
        // what was in flight is stamped again, in order, and resent.
        producer.reset_epoch(1).unwrap();
        for request in pending.drain(..) {
            let shape: Vec<(&str, i32, i32)> = request
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (t.name.as_str(), p.index, p.batch.header().record_count))
                })
                .collect();
            let restamped = stamped_request(&mut producer, &shape, Compression::Lz4);
            send(&restamped);
            acknowledge_all(&mut producer, &restamped);
        }
        for round in 0..6 {
            let shape = [
                ("orders", 0, 2),
                ("orders", 2, 5),
                ("payments", 0, 1 + round),
            ];
            let request = stamped_request(&mut producer, &shape, Compression::None);
            send(&request);
            acknowledge_all(&mut producer, &request);
        }
        // A new producer id starts its own sequences.
        producer.reset_producer(5000, 0).unwrap();
        let request = stamped_request(&mut producer, &[("orders", 0, 3)], Compression::Zstd);
        send(&request);
    }

    #[test]
    fn five_requests_in_flight_pass_the_checker() {
        let mut producer = ProducerSequencer::new(77, 5).unwrap();
        let mut checker = ConformanceChecker::new();
        let first = stamped_request(
            &mut producer,
            &[("t", 0, 4), ("t", 1, 1)],
            Compression::Gzip,
        );
        let frame = encode_produce_request(&first, 11, 100, None).unwrap();
        assert_eq!(checker.check_frame(&frame), vec![]);
        acknowledge_all(&mut producer, &first);
        let mut requests = Vec::new();
        while producer.can_send("t", 0) {
            let request = stamped_request(
                &mut producer,
                &[("t", 0, 4), ("t", 1, 1)],
                Compression::Gzip,
            );
            requests.push(request);
        }
        assert_eq!(requests.len(), 5);
        for (i, request) in requests.iter().enumerate() {
            let frame =
                encode_produce_request(request, 11, i32::try_from(i).unwrap(), None).unwrap();
            assert_eq!(checker.check_frame(&frame), vec![]);
        }
        // A retry of the second request (same stamps) is a duplicate, not
        // a violation.
        let retry = encode_produce_request(&requests[1], 11, 99, None).unwrap();
        assert_eq!(checker.check_frame(&retry), vec![]);
    }

    #[test]
    fn the_checker_catches_a_skipped_sequence() {
        // Guards the tests above: a batch that never reaches the broker
        // leaves a hole that the checker reports, which is why a batch that
        // failed for good requires an epoch bump.
        let mut producer = ProducerSequencer::new(1, 0).unwrap();
        let mut checker = ConformanceChecker::new();
        let first = stamped_request(&mut producer, &[("t", 0, 2)], Compression::None);
        acknowledge_all(&mut producer, &first);
        let _lost = stamped_request(&mut producer, &[("t", 0, 2)], Compression::None);
        let third = stamped_request(&mut producer, &[("t", 0, 2)], Compression::None);
        let frame = encode_produce_request(&first, 9, 1, None).unwrap();
        assert_eq!(checker.check_frame(&frame), vec![]);
        let frame = encode_produce_request(&third, 9, 2, None).unwrap();
        let violations = checker.check_frame(&frame);
        assert!(
            matches!(
                violations.as_slice(),
                [v] if v.rule == Rule::SequenceGap { producer_id: 1, expected: 2, found: 4 }
            ),
            "{violations:?}"
        );
        // After the epoch bump, sequences restart at 0 and pass again.
        producer.reset_epoch(1).unwrap();
        let again = stamped_request(&mut producer, &[("t", 0, 2)], Compression::None);
        let frame = encode_produce_request(&again, 9, 3, None).unwrap();
        assert_eq!(checker.check_frame(&frame), vec![]);
    }
}
