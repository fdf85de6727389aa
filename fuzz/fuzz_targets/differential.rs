//! Differential test of the whole mirror path against kafka-protocol.
//!
//! From the input (read with `arbitrary::Unstructured`) come a list of
//! records (key, value, headers with distinct keys, timestamps), a codec and
//! the fields a source log gives a batch. Then, as the mirror does:
//!
//! 1. build the batch with `BatchBuilder` and make it look fetched: base
//!    offset, leader epoch, transactional and delete-horizon bits set, CRC
//!    recomputed (with the `crc32c` crate, not the code under test);
//! 2. cut it with `RecordBatches`, check its header and CRC, and classify it:
//!    a batch at the fetch position must pass through;
//! 3. rewrite it for produce with a `ProducerStamp` and encode a Produce v9
//!    request around it with `encode_produce_request`.
//!
//! Checks, any failure being a panic:
//!
//! - (a) `ConformanceChecker` finds no violation in the request;
//! - (b) kafka-protocol's `RecordBatchDecoder` (fed kmirror's decompressor,
//!   since kafka-protocol is built without codecs) decodes the fetched and
//!   the rewritten batch into the input records: count, keys, values,
//!   headers as a map (kafka-protocol collapses repeated header keys, hence
//!   the distinct keys), timestamps, offsets, producer fields;
//! - (c) kmirror's own record decoder gives the same, header order included;
//! - (d) the other direction: a batch encoded by kafka-protocol's
//!   `RecordBatchEncoder` (with kmirror's compressor) decodes in kmirror to
//!   the same records and passes through.
#![no_main]

use arbitrary::Unstructured;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records as kp;
use kmirror_fuzz::{CAP, within_alloc_budget};
use kmirror_protocol::compression::{self, Compression};
use kmirror_protocol::conformance::ConformanceChecker;
use kmirror_protocol::messages::produce::{
    ProducePartition, ProduceRequest, ProduceTopic, decode_produce_request, encode_produce_request,
};
use kmirror_protocol::record::{
    AbortedTransactionFilter, BatchBuilder, Disposition, Header, LogEntry, PassthroughPolicy,
    ProducerStamp, Record, RecordBatchView, RecordBatches, SlowPathReason, TimestampType,
    attributes, classify, rewrite_for_produce,
};
use libfuzzer_sys::fuzz_target;

/// Limits that keep one iteration in the sub-millisecond range.
const MAX_RECORDS: usize = 12;
const MAX_KEY: usize = 48;
const MAX_VALUE: usize = 256;
const MAX_HEADERS: usize = 4;
const MAX_HEADER_KEY: usize = 12;
const MAX_HEADER_VALUE: usize = 24;

/// One record to mirror.
#[derive(Debug, Clone)]
struct InRecord {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// Distinct keys, in wire order.
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Everything the input decides.
#[derive(Debug)]
struct Case {
    codec: Compression,
    timestamp_type: TimestampType,
    records: Vec<InRecord>,
    /// Fields of the batch as the source log holds it.
    base_offset: i64,
    leader_epoch: i32,
    source_bits: i16,
    source_stamp: ProducerStamp,
    /// kmirror's producer fields on the destination.
    stamp: ProducerStamp,
    acks: i16,
    partition: i32,
}

fuzz_target!(|data: &[u8]| {
    let Ok(case) = Case::read(&mut Unstructured::new(data)) else {
        return;
    };
    within_alloc_budget(data.len(), || run(&case));
});

impl Case {
    fn read(u: &mut Unstructured<'_>) -> arbitrary::Result<Self> {
        let codec = *u.choose(&Compression::ALL)?;
        let timestamp_type = if u.ratio(1, 4)? {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        };
        // Real timestamps: milliseconds since the epoch, never negative;
        // within a batch they may go backwards. LogAppendTime batches carry
        // the append time as every record's timestamp.
        let mut timestamp = u.int_in_range(0..=1i64 << 50)?;
        let count = u.int_in_range(1..=MAX_RECORDS)?;
        let mut records = Vec::with_capacity(count);
        for _ in 0..count {
            let key = opt_bytes(u, MAX_KEY)?;
            let value = opt_bytes(u, MAX_VALUE)?;
            let mut headers: Vec<(String, Option<Vec<u8>>)> = Vec::new();
            for _ in 0..u.int_in_range(0..=MAX_HEADERS)? {
                let len = u.int_in_range(0..=MAX_HEADER_KEY)?;
                let name = String::from_utf8_lossy(u.bytes(len.min(u.len()))?).into_owned();
                let value = opt_bytes(u, MAX_HEADER_VALUE)?;
                if !headers.iter().any(|(k, _)| *k == name) {
                    headers.push((name, value));
                }
            }
            records.push(InRecord {
                timestamp,
                key,
                value,
                headers,
            });
            if timestamp_type == TimestampType::CreateTime {
                timestamp = (timestamp + u.int_in_range(-5_000..=100_000)?).max(0);
            }
        }
        let source_bits = if u.arbitrary()? {
            attributes::TRANSACTIONAL
        } else {
            0
        } | if u.arbitrary()? {
            attributes::DELETE_HORIZON
        } else {
            0
        };
        Ok(Self {
            codec,
            timestamp_type,
            records,
            base_offset: u.int_in_range(0..=1i64 << 60)?,
            leader_epoch: u.int_in_range(0..=i32::MAX)?,
            source_bits,
            source_stamp: ProducerStamp {
                producer_id: u.arbitrary()?,
                producer_epoch: u.arbitrary()?,
                base_sequence: u.arbitrary()?,
            },
            stamp: if u.arbitrary()? {
                ProducerStamp::NONE
            } else {
                ProducerStamp {
                    producer_id: u.int_in_range(0..=i64::MAX)?,
                    producer_epoch: u.int_in_range(0..=i16::MAX)?,
                    base_sequence: u.int_in_range(0..=i32::MAX)?,
                }
            },
            acks: *u.choose(&[-1, 0, 1])?,
            partition: u.int_in_range(0..=1_000)?,
        })
    }

    fn max_timestamp(&self) -> i64 {
        self.records.iter().map(|r| r.timestamp).max().unwrap_or(-1)
    }
}

/// `None` one time in eight, else up to `max` bytes (fewer if the input runs
/// out).
fn opt_bytes(u: &mut Unstructured<'_>, max: usize) -> arbitrary::Result<Option<Vec<u8>>> {
    if u.ratio(1, 8)? {
        return Ok(None);
    }
    let len = u.int_in_range(0..=max)?.min(u.len());
    Ok(Some(u.bytes(len)?.to_vec()))
}

fn run(case: &Case) {
    let fetched = fetched_batch(case);

    // (2) What a fetch hands the mirror.
    let mut entries = RecordBatches::new(fetched.clone());
    let view = match entries.next() {
        Some(Ok(LogEntry::Batch(view))) => view,
        other => panic!("the fetched batch did not read as one v2 batch: {other:?}"),
    };
    assert!(entries.next().is_none() && entries.truncated_bytes() == 0);
    view.verify_crc().expect("the fetched batch's CRC");
    let h = *view.header();
    let n = case.records.len();
    assert_eq!(h.base_offset, case.base_offset);
    assert_eq!(h.partition_leader_epoch, case.leader_epoch);
    assert_eq!(h.record_count as usize, n);
    assert_eq!(h.last_offset_delta as usize, n - 1);
    assert_eq!(h.compression().ok(), Some(case.codec));
    assert_eq!(h.timestamp_type(), case.timestamp_type);
    assert_eq!(h.base_timestamp, case.records[0].timestamp);
    assert_eq!(h.max_timestamp, case.max_timestamp());
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (
            case.source_stamp.producer_id,
            case.source_stamp.producer_epoch,
            case.source_stamp.base_sequence
        )
    );
    assert!(!AbortedTransactionFilter::new([]).is_aborted(&view));
    let at_position = PassthroughPolicy::at(case.base_offset);
    // A LogAppendTime batch is rebuilt so that its records keep the append
    // time; every other well-formed batch at the position passes through.
    let expected = if case.timestamp_type == TimestampType::LogAppendTime {
        Disposition::SlowPath(SlowPathReason::LogAppendTime)
    } else {
        Disposition::Passthrough
    };
    for policy in [at_position, at_position.with_target_codec(Some(case.codec))] {
        assert_eq!(classify(&h, &policy, false), expected);
    }
    check_kmirror_records(&view, case, case.base_offset, false);
    check_kafka_protocol_records(
        &fetched,
        case,
        case.base_offset,
        case.source_stamp,
        case.source_bits,
    );

    // (3) The passthrough rewrite and the Produce request.
    let batch = rewrite_for_produce(&view, case.stamp);
    let request = ProduceRequest {
        transactional_id: None,
        acks: case.acks,
        timeout_ms: 30_000,
        topics: vec![ProduceTopic {
            name: StrBytes::from_static_str("mirrored"),
            partitions: vec![ProducePartition {
                index: case.partition,
                batch: batch.clone(),
            }],
        }],
    };
    let frame = encode_produce_request(&request, 9, 1, Some("kmirror-fuzz"))
        .expect("encoding the Produce request");

    // (a) Apache Kafka's rules.
    let violations = ConformanceChecker::new().check_frame(&frame);
    assert!(
        violations.is_empty(),
        "conformance violations: {violations:#?}"
    );

    let decoded = decode_produce_request(frame.to_contiguous().slice(4..))
        .expect("decoding our own Produce request");
    let records = match &decoded.topics[..] {
        [(_, partitions)] => match &partitions[..] {
            [(index, Some(records))] if *index == case.partition => records.clone(),
            other => panic!("partitions of the request: {other:?}"),
        },
        other => panic!("topics of the request: {other:?}"),
    };
    assert_eq!(records, batch.to_bytes());

    // (b) and (c) on what the destination receives.
    check_kafka_protocol_records(&records, case, 0, case.stamp, 0);
    let produced = RecordBatchView::new(records).expect("the produced batch");
    produced.verify_crc().expect("the produced batch's CRC");
    check_kmirror_records(&produced, case, 0, true);

    // (d) kafka-protocol encodes, kmirror decodes.
    check_kafka_protocol_encoding(case);
}

/// (1) Builds the batch and makes it look like one read from a source log.
fn fetched_batch(case: &Case) -> Bytes {
    let mut builder = BatchBuilder::new(case.codec).with_timestamp_type(case.timestamp_type);
    for r in &case.records {
        builder
            .push(
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                r.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_deref())),
            )
            .expect("pushing a record");
    }
    let built = builder
        .build(case.source_stamp)
        .expect("building the batch");
    let mut raw = built.to_bytes().to_vec();
    raw[0..8].copy_from_slice(&case.base_offset.to_be_bytes());
    raw[12..16].copy_from_slice(&case.leader_epoch.to_be_bytes());
    let attrs = i16::from_be_bytes([raw[21], raw[22]]) | case.source_bits;
    raw[21..23].copy_from_slice(&attrs.to_be_bytes());
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(raw)
}

/// (c) kmirror's decoder gives back the input records: keys, values,
/// headers in order, offsets from `base_offset`, timestamps.
fn check_kmirror_records(view: &RecordBatchView, case: &Case, base_offset: i64, produced: bool) {
    let h = view.header();
    let records: Vec<Record> = view
        .records(CAP)
        .expect("kmirror: the batch's records")
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("kmirror: decoding a record (produced: {produced}): {e}"));
    assert_eq!(records.len(), case.records.len(), "kmirror: record count");
    for (i, (got, want)) in records.iter().zip(&case.records).enumerate() {
        assert_eq!(
            got.key.as_deref(),
            want.key.as_deref(),
            "kmirror: record {i} key"
        );
        assert_eq!(
            got.value.as_deref(),
            want.value.as_deref(),
            "kmirror: record {i} value"
        );
        let headers: Vec<Header> = got.headers.iter().collect();
        let expected: Vec<Header> = want
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: Bytes::copy_from_slice(k.as_bytes()),
                value: v.as_deref().map(Bytes::copy_from_slice),
            })
            .collect();
        assert_eq!(headers, expected, "kmirror: record {i} headers");
        assert_eq!(
            got.offset(h),
            base_offset + i as i64,
            "kmirror: record {i} offset"
        );
        assert_eq!(
            got.timestamp(h),
            want.timestamp,
            "kmirror: record {i} timestamp"
        );
    }
}

/// Maps kmirror's codec to kafka-protocol's.
fn to_kp(codec: Compression) -> kp::Compression {
    match codec {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
    }
}

/// Maps kafka-protocol's codec to kmirror's.
fn from_kp(codec: kp::Compression) -> Compression {
    match codec {
        kp::Compression::None => Compression::None,
        kp::Compression::Gzip => Compression::Gzip,
        kp::Compression::Snappy => Compression::Snappy,
        kp::Compression::Lz4 => Compression::Lz4,
        kp::Compression::Zstd => Compression::Zstd,
    }
}

/// (b) kafka-protocol decodes `batch` into the input records, with offsets
/// from `base_offset` and the producer fields of `stamp`.
fn check_kafka_protocol_records(
    batch: &Bytes,
    case: &Case,
    base_offset: i64,
    stamp: ProducerStamp,
    bits: i16,
) {
    let mut buf = batch.clone();
    let decompress = |payload: &mut Bytes, codec: kp::Compression| -> anyhow::Result<Bytes> {
        compression::decompress(from_kp(codec), payload, CAP).map_err(anyhow::Error::new)
    };
    let set = kp::RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(decompress))
        .unwrap_or_else(|e| panic!("kafka-protocol refused the batch: {e:#}"));
    assert!(buf.is_empty(), "kafka-protocol left {} bytes", buf.len());
    assert_eq!(set.version, 2);
    assert_eq!(set.compression, to_kp(case.codec));
    assert_eq!(
        set.records.len(),
        case.records.len(),
        "kafka-protocol: record count"
    );
    let timestamp_type = match case.timestamp_type {
        TimestampType::CreateTime => kp::TimestampType::Creation,
        TimestampType::LogAppendTime => kp::TimestampType::LogAppend,
    };
    for (i, (got, want)) in set.records.iter().zip(&case.records).enumerate() {
        assert_eq!(
            got.key.as_deref(),
            want.key.as_deref(),
            "kafka-protocol: record {i} key"
        );
        assert_eq!(
            got.value.as_deref(),
            want.value.as_deref(),
            "kafka-protocol: record {i} value"
        );
        let mut headers: Vec<(String, Option<&[u8]>)> = got
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_deref()))
            .collect();
        let mut expected: Vec<(String, Option<&[u8]>)> = want
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_deref()))
            .collect();
        headers.sort();
        expected.sort();
        assert_eq!(headers, expected, "kafka-protocol: record {i} headers");
        assert_eq!(
            got.timestamp, want.timestamp,
            "kafka-protocol: record {i} timestamp"
        );
        assert_eq!(got.timestamp_type, timestamp_type);
        assert_eq!(
            got.offset,
            base_offset + i as i64,
            "kafka-protocol: record {i} offset"
        );
        assert_eq!(
            (got.producer_id, got.producer_epoch, got.sequence),
            (
                stamp.producer_id,
                stamp.producer_epoch,
                stamp.base_sequence.wrapping_add(i as i32)
            ),
            "kafka-protocol: record {i} producer fields"
        );
        assert_eq!(got.transactional, bits & attributes::TRANSACTIONAL != 0);
        assert_eq!(got.delete_horizon, bits & attributes::DELETE_HORIZON != 0);
        assert!(!got.control);
    }
}

/// (d) A batch of the same records encoded by kafka-protocol (with kmirror's
/// compressor) reads in kmirror as the input records and passes through.
fn check_kafka_protocol_encoding(case: &Case) {
    let records: Vec<kp::Record> = case
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| kp::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: case.leader_epoch,
            producer_id: case.source_stamp.producer_id,
            producer_epoch: case.source_stamp.producer_epoch,
            timestamp_type: kp::TimestampType::Creation,
            offset: case.base_offset + i as i64,
            sequence: case.source_stamp.base_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from)))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let options = kp::RecordEncodeOptions {
        version: 2,
        compression: to_kp(case.codec),
    };
    let codec = case.codec;
    let compress = |plain: &mut BytesMut, out: &mut BytesMut, _: kp::Compression| {
        let mut packed = Vec::new();
        compression::compress(codec, plain, None, &mut packed).map_err(anyhow::Error::new)?;
        out.put_slice(&packed);
        anyhow::Ok(())
    };
    let mut buf = BytesMut::new();
    kp::RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        &records,
        &options,
        Some(compress),
    )
    .unwrap_or_else(|e| panic!("kafka-protocol could not encode the records: {e:#}"));
    let encoded = buf.freeze();

    let mut entries = RecordBatches::new(encoded);
    let view = match entries.next() {
        Some(Ok(LogEntry::Batch(view))) => view,
        other => panic!("kafka-protocol's batch did not read as one v2 batch: {other:?}"),
    };
    assert!(entries.next().is_none() && entries.truncated_bytes() == 0);
    view.verify_crc().expect("kafka-protocol's batch CRC");
    let h = *view.header();
    assert_eq!(h.record_count as usize, case.records.len());
    assert_eq!(
        classify(&h, &PassthroughPolicy::at(case.base_offset), false),
        Disposition::Passthrough
    );
    let records: Vec<Record> = view
        .records(CAP)
        .expect("kmirror: kafka-protocol's batch records")
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("kmirror: decoding kafka-protocol's record: {e}"));
    assert_eq!(records.len(), case.records.len());
    for (i, (got, want)) in records.iter().zip(&case.records).enumerate() {
        assert_eq!(
            got.key.as_deref(),
            want.key.as_deref(),
            "kp->kmirror: record {i} key"
        );
        assert_eq!(
            got.value.as_deref(),
            want.value.as_deref(),
            "kp->kmirror: record {i} value"
        );
        let headers: Vec<(Bytes, Option<Bytes>)> =
            got.headers.iter().map(|h| (h.key, h.value)).collect();
        let expected: Vec<(Bytes, Option<Bytes>)> = want
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    Bytes::copy_from_slice(k.as_bytes()),
                    v.as_deref().map(Bytes::copy_from_slice),
                )
            })
            .collect();
        assert_eq!(headers, expected, "kp->kmirror: record {i} headers");
        assert_eq!(got.offset(&h), case.base_offset + i as i64);
        assert_eq!(
            got.timestamp(&h),
            want.timestamp,
            "kp->kmirror: record {i} timestamp"
        );
    }
}
