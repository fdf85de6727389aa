//! The Produce rules checker finds each violation of Apache Kafka's broker
//! rules (one test per rule) and finds none in what kmirror builds.
//!
//! Bad requests are encoded with kafka-protocol's own encoder from raw batch
//! bytes, so the checker is tested on input kmirror's encoder would refuse
//! to produce.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request as kp;
use kafka_protocol::messages::{ProduceRequest as KpProduceRequest, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kmirror_protocol::Compression;
use kmirror_protocol::conformance::{ConformanceChecker, Rule, TopicRules, increment_sequence};
use kmirror_protocol::header::RequestHeader;
use kmirror_protocol::messages::produce::{
    ProducePartition, ProduceRequest, ProduceTopic, encode_produce_request,
};
use kmirror_protocol::record::{
    BatchBuilder, BatchHeader, ProducerStamp, TimestampType, attributes,
};

const STAMP: ProducerStamp = ProducerStamp {
    producer_id: 10,
    producer_epoch: 0,
    base_sequence: 0,
};

fn good_batch(codec: Compression, n: usize, stamp: ProducerStamp) -> Bytes {
    let mut b = BatchBuilder::new(codec);
    for i in 0..n {
        b.push(
            1_000 + i as i64,
            Some(format!("k{i}").as_bytes()),
            Some(b"v"),
            std::iter::empty(),
        )
        .unwrap();
    }
    b.build(stamp).unwrap().to_bytes()
}

/// A good batch with header fields edited and the CRC made valid again.
fn edited(edit: impl FnOnce(&mut BatchHeader)) -> Bytes {
    let good = good_batch(Compression::None, 3, STAMP);
    let mut h = BatchHeader::decode(good[..61].try_into().unwrap());
    edit(&mut h);
    let mut raw = [&h.encode()[..], &good[61..]].concat();
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(raw)
}

/// A Produce request (without size prefix) carrying raw `records` per
/// partition, encoded by kafka-protocol.
fn raw_request(
    version: i16,
    transactional_id: Option<&str>,
    parts: &[(&str, i32, Option<Bytes>)],
) -> Bytes {
    let mut topics: Vec<kp::TopicProduceData> = Vec::new();
    for (t, p, records) in parts {
        let pd = kp::PartitionProduceData::default()
            .with_index(*p)
            .with_records(records.clone());
        match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
            Some(td) => td.partition_data.push(pd),
            None => topics.push(
                kp::TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string((*t).to_owned())))
                    .with_partition_data(vec![pd]),
            ),
        }
    }
    let req = KpProduceRequest::default()
        .with_transactional_id(transactional_id.map(|s| StrBytes::from_string(s.to_owned()).into()))
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(topics);
    let mut buf = BytesMut::new();
    RequestHeader {
        api: kafka_protocol::messages::ApiKey::Produce,
        version,
        correlation_id: 1,
        client_id: None,
    }
    .encode(&mut buf)
    .unwrap();
    req.encode(&mut buf, version).unwrap();
    buf.freeze()
}

fn rules_of(version: i16, records: Bytes) -> Vec<Rule> {
    ConformanceChecker::new()
        .check(raw_request(version, None, &[("t", 0, Some(records))]))
        .into_iter()
        .map(|v| v.rule)
        .collect()
}

#[test]
fn kmirror_built_requests_pass_at_every_version() {
    let mut checker = ConformanceChecker::new();
    for version in 3..=12 {
        let codecs: &[Compression] = if version >= 7 {
            &Compression::ALL
        } else {
            &Compression::ALL[..4]
        };
        let partitions = codecs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut b = BatchBuilder::new(*c);
                b.push(
                    5,
                    None,
                    None,
                    [(&b"h"[..], None), (&b"h"[..], Some(&b"2"[..]))].into_iter(),
                )
                .unwrap();
                ProducePartition {
                    index: i as i32,
                    batch: b.build(ProducerStamp::NONE).unwrap(),
                }
            })
            .collect();
        let req = ProduceRequest {
            transactional_id: None,
            acks: 1,
            timeout_ms: 100,
            topics: vec![ProduceTopic {
                name: StrBytes::from_static_str("t"),
                partitions,
            }],
        };
        let frame = encode_produce_request(&req, version, 1, None).unwrap();
        assert_eq!(checker.check_frame(&frame), vec![], "v{version}");
    }
}

#[test]
fn two_batches_in_one_partition() {
    let two = [
        good_batch(Compression::None, 1, ProducerStamp::NONE),
        good_batch(Compression::None, 1, ProducerStamp::NONE),
    ]
    .concat();
    assert!(rules_of(9, Bytes::from(two)).contains(&Rule::MultipleBatches(2)));
}

#[test]
fn base_offset_not_zero() {
    assert_eq!(
        rules_of(9, edited(|h| h.base_offset = 77)),
        vec![Rule::NonZeroBaseOffset(77)]
    );
}

#[test]
fn any_leader_epoch_is_accepted_because_the_leader_overwrites_it() {
    assert_eq!(
        rules_of(9, edited(|h| h.partition_leader_epoch = 4)),
        vec![]
    );
}

#[test]
fn last_offset_delta_mismatch() {
    assert!(
        rules_of(9, edited(|h| h.last_offset_delta = 5)).contains(&Rule::LastOffsetDelta {
            last_offset_delta: 5,
            record_count: 3
        })
    );
}

#[test]
fn control_batch() {
    assert!(
        rules_of(9, edited(|h| h.attributes |= attributes::CONTROL)).contains(&Rule::ControlBatch)
    );
}

#[test]
fn transactional_bit_without_transactional_id() {
    let records = edited(|h| h.attributes |= attributes::TRANSACTIONAL);
    assert!(rules_of(9, records.clone()).contains(&Rule::TransactionalWithoutId));
    let with_id =
        ConformanceChecker::new().check(raw_request(9, Some("txn"), &[("t", 0, Some(records))]));
    assert_eq!(with_id, vec![]);
}

#[test]
fn delete_horizon_bit() {
    assert_eq!(
        rules_of(9, edited(|h| h.attributes |= attributes::DELETE_HORIZON)),
        vec![Rule::DeleteHorizonSet]
    );
}

#[test]
fn producer_id_without_sequence() {
    assert_eq!(
        rules_of(9, edited(|h| h.base_sequence = -1)),
        vec![Rule::ProducerIdWithoutSequence {
            producer_id: 10,
            base_sequence: -1
        }]
    );
}

#[test]
fn zstd_needs_produce_v7() {
    let zstd = good_batch(Compression::Zstd, 2, ProducerStamp::NONE);
    assert_eq!(rules_of(6, zstd.clone()), vec![Rule::ZstdBeforeV7(6)]);
    assert_eq!(rules_of(7, zstd), vec![]);
}

#[test]
fn crc_mismatch() {
    let mut raw = good_batch(Compression::None, 2, ProducerStamp::NONE).to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 0x55;
    assert!(
        rules_of(9, Bytes::from(raw))
            .iter()
            .any(|r| matches!(r, Rule::CrcMismatch { .. }))
    );
}

#[test]
fn gapped_inner_offsets_in_an_uncompressed_batch() {
    // Three records whose deltas are 0, 1, 2 but whose header claims dense
    // offsets is fine; rewrite the second record's delta to 5.
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..3 {
        b.push(i, Some(b"k"), Some(b"v"), std::iter::empty())
            .unwrap();
    }
    let raw = b.build(ProducerStamp::NONE).unwrap().to_bytes().to_vec();
    // Record layout: len, attrs, tsDelta, offsetDelta... each record here is
    // 8 bytes + 1 length byte; the second record's offset delta is at
    // 61 + 9 + 3 (zig-zag 1 = 0x02).
    let mut raw = raw;
    let at = 61 + 9 + 3;
    assert_eq!(raw[at], 0x02, "layout assumption");
    raw[at] = 0x0a; // zig-zag 5
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        rules_of(9, Bytes::from(raw)),
        vec![Rule::SparseOffsetDelta {
            index: 1,
            offset_delta: 5
        }]
    );
}

#[test]
fn null_records_and_empty_records() {
    let v = ConformanceChecker::new().check(raw_request(9, None, &[("t", 0, None)]));
    assert_eq!(v[0].rule, Rule::NullRecords);
    assert_eq!(rules_of(9, Bytes::new()), vec![Rule::NoRecords(0)]);
}

#[test]
fn legacy_magic_is_refused() {
    let mut raw = good_batch(Compression::None, 1, ProducerStamp::NONE).to_vec();
    raw[16] = 1;
    assert!(rules_of(9, Bytes::from(raw)).contains(&Rule::NotMagicV2(1)));
}

#[test]
fn topic_rules_size_timestamp_type_and_compaction() {
    let rules = TopicRules {
        max_message_bytes: Some(64),
        log_append_time: true,
        compacted: true,
    };
    let mut checker = ConformanceChecker::new().with_topic("t", rules);
    let mut b =
        BatchBuilder::new(Compression::None).with_timestamp_type(TimestampType::LogAppendTime);
    b.push(1, None, Some(&[7u8; 100]), std::iter::empty())
        .unwrap();
    let records = b.build(ProducerStamp::NONE).unwrap().to_bytes();
    let found: Vec<Rule> = checker
        .check(raw_request(9, None, &[("t", 0, Some(records.clone()))]))
        .into_iter()
        .map(|v| v.rule)
        .collect();
    assert!(found.contains(&Rule::BatchTooLarge {
        size: records.len(),
        max: 64
    }));
    assert!(found.contains(&Rule::LogAppendTimeToLogAppendTimeTopic));
    assert!(found.contains(&Rule::NullKeyOnCompactedTopic { index: 0 }));
}

#[test]
fn idempotent_sequences_across_requests() {
    let mut checker = ConformanceChecker::new();
    let send = |c: &mut ConformanceChecker, epoch: i16, seq: i32, n: usize| -> Vec<Rule> {
        let stamp = ProducerStamp {
            producer_id: 10,
            producer_epoch: epoch,
            base_sequence: seq,
        };
        c.check(raw_request(
            9,
            None,
            &[("t", 0, Some(good_batch(Compression::None, n, stamp)))],
        ))
        .into_iter()
        .map(|v| v.rule)
        .collect()
    };
    assert_eq!(
        send(&mut checker, 0, 100, 5),
        vec![],
        "first sequence of an unknown producer is free"
    );
    assert_eq!(send(&mut checker, 0, 105, 5), vec![]);
    assert_eq!(
        send(&mut checker, 0, 105, 5),
        vec![],
        "a retry is not a gap"
    );
    assert_eq!(
        send(&mut checker, 0, 120, 1),
        vec![Rule::SequenceGap {
            producer_id: 10,
            expected: 110,
            found: 120
        }]
    );
    assert_eq!(
        send(&mut checker, 1, 3, 1),
        vec![Rule::NewEpochNotFromZero {
            producer_id: 10,
            epoch: 1,
            base_sequence: 3
        }]
    );
    assert_eq!(
        send(&mut checker, 0, 4, 1),
        vec![Rule::EpochRegression {
            producer_id: 10,
            epoch: 0,
            previous: 1
        }]
    );
    // Another partition has its own sequence.
    let other = checker.check(raw_request(
        9,
        None,
        &[("t", 1, Some(good_batch(Compression::None, 1, STAMP)))],
    ));
    assert_eq!(other, vec![]);
}

#[test]
fn sequences_wrap_like_kafka() {
    assert_eq!(increment_sequence(i32::MAX, 1), 0);
    assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    assert_eq!(increment_sequence(5, 3), 8);
}

#[test]
fn garbage_is_reported_not_panicked_on() {
    let v = ConformanceChecker::new().check(Bytes::from_static(b"\x00\x00\x00\x09garbage"));
    assert!(matches!(v[0].rule, Rule::Unparseable(_)));
}
