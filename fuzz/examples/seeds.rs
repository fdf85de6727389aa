//! Writes the committed seed corpus of every fuzz target to
//! `fuzz/corpus/<target>/`.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds [-- GOLDEN_DIR]
//! ```
//!
//! Seeds are valid inputs of each target: responses of every supported API
//! at its lowest, highest and first flexible versions, encoded by
//! kafka-protocol's encoders (`broker` feature); record batches in every
//! codec, transactional and control batches and v0/v1 messages; compressed
//! blobs; Produce requests at several versions; consumer-protocol
//! subscriptions and assignments at every version; and pseudo-random bytes
//! for the differential target. Every response seed is decoded with kmirror's
//! own decoder and reported if it does not decode, since a valid response
//! that kmirror refuses is a finding in itself.
//!
//! If the golden captures of real librdkafka/broker exchanges exist
//! (`crates/protocol/tests/fixtures/golden/`, or `GOLDEN_DIR`), their
//! responses join `response_decode` (behind the selector bytes of their API
//! and version), their Fetch records join `batch_iter` and their Produce
//! requests join `produce_request`.
//!
//! The output is deterministic; existing seeds of the same names are
//! overwritten, other files are left alone.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{self as kpm, ApiKey, BrokerId, GroupId, ProducerId, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kmirror_protocol::SUPPORTED_APIS;
use kmirror_protocol::compression::{self, Compression};
use kmirror_protocol::header::{decode_response_header, encode_response_header};
use kmirror_protocol::messages::consumer_protocol::{
    Assignment, CONSUMER_PROTOCOL_MAX_VERSION, Subscription, TopicPartitions,
};
use kmirror_protocol::messages::decode_response_body;
use kmirror_protocol::messages::produce::{
    ProducePartition, ProduceRequest, ProduceTopic, encode_produce_request,
};
use kmirror_protocol::messages::{ResponseBody, produce::decode_produce_request};
use kmirror_protocol::record::{
    BATCH_HEADER_LEN, BatchBuilder, ProducerStamp, RecordBatchView, TimestampType, attributes,
    rewrite_for_produce,
};

fn main() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let golden = std::env::args_os().nth(1).map_or_else(
        || fuzz_dir.join("../crates/protocol/tests/fixtures/golden"),
        PathBuf::from,
    );
    let mut out = Corpus::new(fuzz_dir.join("corpus"));
    response_seeds(&mut out);
    record_seeds(&mut out);
    codec_seeds(&mut out);
    produce_seeds(&mut out);
    consumer_protocol_seeds(&mut out);
    differential_seeds(&mut out);
    if golden.is_dir() {
        golden_seeds(&mut out, &golden);
    } else {
        println!("no golden fixtures at {}", golden.display());
    }
    out.summary();
}

/// Writes seed files and counts them per target.
struct Corpus {
    root: PathBuf,
    written: BTreeMap<&'static str, (usize, usize)>,
}

impl Corpus {
    fn new(root: PathBuf) -> Self {
        Self {
            root,
            written: BTreeMap::new(),
        }
    }

    fn put(&mut self, target: &'static str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.bin"));
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        let entry = self.written.entry(target).or_default();
        entry.0 += 1;
        entry.1 += bytes.len();
    }

    fn summary(&self) {
        for (target, (files, bytes)) in &self.written {
            println!("{target:<20} {files:>4} seeds {bytes:>9} bytes");
        }
    }
}

// ---------------------------------------------------------------------------
// Record batches
// ---------------------------------------------------------------------------

/// A record: timestamp, key, value, headers.
type Rec<'a> = (
    i64,
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    Vec<(&'a [u8], Option<&'a [u8]>)>,
);

fn sample_records() -> Vec<Rec<'static>> {
    vec![
        (
            1_700_000_000_000,
            Some(b"user-1"),
            Some(b"{\"clicks\":3}"),
            vec![],
        ),
        (
            1_700_000_000_005,
            None,
            Some(b"no key here"),
            vec![(b"trace-id", Some(b"abc123")), (b"origin", None)],
        ),
        (
            1_700_000_000_002,
            Some(b"user-2"),
            None,
            vec![(b"dup", Some(b"1")), (b"dup", Some(b"2"))],
        ),
        (
            1_700_000_000_010,
            Some(b""),
            Some(b""),
            vec![(b"", Some(b""))],
        ),
    ]
}

/// A v2 batch as a source log holds it: built, then given a base offset,
/// a leader epoch and extra attribute bits, with its CRC recomputed.
fn fetched_batch(
    codec: Compression,
    records: &[Rec<'_>],
    base_offset: i64,
    extra_attributes: i16,
    stamp: ProducerStamp,
) -> Bytes {
    let mut builder = BatchBuilder::new(codec);
    for (ts, k, v, h) in records {
        builder
            .push(*ts, *k, *v, h.iter().copied())
            .expect("pushing a sample record");
    }
    let batch = builder.build(stamp).expect("building a sample batch");
    let mut raw = batch.to_bytes().to_vec();
    raw[0..8].copy_from_slice(&base_offset.to_be_bytes());
    raw[12..16].copy_from_slice(&7i32.to_be_bytes());
    let attrs = i16::from_be_bytes([raw[21], raw[22]]) | extra_attributes;
    raw[21..23].copy_from_slice(&attrs.to_be_bytes());
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(raw)
}

/// A transaction marker: a control batch with one record whose key is
/// `(version 0, type)` (0 abort, 1 commit).
fn control_batch(base_offset: i64, producer_id: i64, commit: bool) -> Bytes {
    let key = [0, 0, 0, u8::from(commit)];
    let value = [0, 0, 0, 0, 0, 0];
    let stamp = ProducerStamp {
        producer_id,
        producer_epoch: 0,
        base_sequence: -1,
    };
    let records = [(1_700_000_000_100, Some(&key[..]), Some(&value[..]), vec![])];
    fetched_batch(
        Compression::None,
        &records,
        base_offset,
        attributes::TRANSACTIONAL | attributes::CONTROL,
        stamp,
    )
}

/// One v0/v1 message entry (offset, size, CRC-32, magic, attributes,
/// [timestamp], key, value).
fn legacy_message(
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = Vec::new();
    body.put_i8(magic);
    body.put_i8(attributes);
    if magic == 1 {
        body.put_i64(timestamp);
    }
    for field in [key, value] {
        match field {
            None => body.put_i32(-1),
            Some(b) => {
                body.put_i32(b.len() as i32);
                body.put_slice(b);
            }
        }
    }
    let mut out = Vec::new();
    out.put_i64(offset);
    out.put_i32(body.len() as i32 + 4);
    out.put_u32(kafka_protocol::records::IEEE.checksum(&body));
    out.put_slice(&body);
    out
}

/// A compressed v1 wrapper around three messages with relative offsets.
fn legacy_wrapper(codec: Compression, last_offset: i64) -> Vec<u8> {
    let mut inner = Vec::new();
    for i in 0..3 {
        let value = format!("legacy value {i}");
        inner.extend(legacy_message(
            i,
            1,
            0,
            1_500_000_000_000 + i,
            None,
            Some(value.as_bytes()),
        ));
    }
    let mut packed = Vec::new();
    compression::compress(codec, &inner, None, &mut packed).expect("compressing a wrapper");
    legacy_message(
        last_offset,
        1,
        codec.id() as i8,
        1_500_000_000_002,
        None,
        Some(&packed),
    )
}

fn record_seeds(out: &mut Corpus) {
    let records = sample_records();
    let idempotent = ProducerStamp {
        producer_id: 1001,
        producer_epoch: 2,
        base_sequence: 40,
    };
    let mut partition_log = Vec::new();
    for codec in Compression::ALL {
        let batch = fetched_batch(codec, &records, 100, 0, idempotent);
        out.put("batch_iter", &format!("batch-{codec}"), &batch);
        partition_log.extend_from_slice(&batch);
        if codec == Compression::None {
            // The records section alone, behind its count.
            let mut seed = 4i32.to_be_bytes().to_vec();
            seed.extend_from_slice(&batch[BATCH_HEADER_LEN..]);
            out.put("record_decode", "four-records", &seed);
        }
    }
    out.put("batch_iter", "five-codecs-in-a-row", &partition_log);

    // A transaction of producer 77 that is aborted, then one that commits,
    // interleaved with producer 78's plain batch, and a truncated tail.
    let txn = attributes::TRANSACTIONAL;
    let p77 = ProducerStamp {
        producer_id: 77,
        producer_epoch: 0,
        base_sequence: 0,
    };
    let mut log = Vec::new();
    log.extend(fetched_batch(Compression::Lz4, &records[..2], 10, txn, p77));
    log.extend(fetched_batch(
        Compression::None,
        &records[..1],
        12,
        0,
        idempotent,
    ));
    log.extend(control_batch(13, 77, false));
    log.extend(fetched_batch(
        Compression::Zstd,
        &records[1..3],
        14,
        txn,
        p77,
    ));
    log.extend(control_batch(16, 77, true));
    let tail = fetched_batch(Compression::Gzip, &records, 17, 0, idempotent);
    log.extend_from_slice(&tail[..tail.len() / 2]);
    out.put("batch_iter", "transactions-and-truncated-tail", &log);

    // Compaction leaves gaps and a delete horizon; LogAppendTime batches.
    let mut sparse = fetched_batch(
        Compression::None,
        &records,
        200,
        attributes::DELETE_HORIZON,
        ProducerStamp::NONE,
    )
    .to_vec();
    sparse[23..27].copy_from_slice(&9i32.to_be_bytes()); // lastOffsetDelta
    let crc = crc32c::crc32c(&sparse[21..]);
    sparse[17..21].copy_from_slice(&crc.to_be_bytes());
    out.put("batch_iter", "sparse-offsets-delete-horizon", &sparse);
    let mut builder =
        BatchBuilder::new(Compression::Snappy).with_timestamp_type(TimestampType::LogAppendTime);
    for (_, k, v, h) in &records {
        builder
            .push(1_700_000_009_999, *k, *v, h.iter().copied())
            .expect("pushing");
    }
    let batch = builder.build(ProducerStamp::NONE).expect("building");
    out.put("batch_iter", "log-append-time", &batch.to_bytes());

    // Message sets v0 and v1.
    let mut legacy = Vec::new();
    legacy.extend(legacy_message(5, 0, 0, 0, Some(b"k0"), Some(b"magic zero")));
    legacy.extend(legacy_message(
        6,
        1,
        0,
        1_500_000_000_000,
        Some(b"k1"),
        Some(b"magic one"),
    ));
    legacy.extend(legacy_message(7, 1, 0x08, 1_500_000_000_001, None, None));
    out.put("batch_iter", "legacy-v0-v1", &legacy);
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4] {
        out.put(
            "batch_iter",
            &format!("legacy-v1-{codec}-wrapper"),
            &legacy_wrapper(codec, 42),
        );
    }
    // One record with a null key and a null value: count 1, length 6,
    // attributes, timestamp delta, offset delta, key -1, value -1, no headers.
    out.put(
        "record_decode",
        "one-null-record",
        &[0, 0, 0, 1, 0x0c, 0, 0, 0, 0x01, 0x01, 0],
    );
}

// ---------------------------------------------------------------------------
// Codecs
// ---------------------------------------------------------------------------

/// The magic and header of Java's xerial snappy framing.
const XERIAL_HEADER: [u8; 16] = [
    0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
];

fn codec_seeds(out: &mut Corpus) {
    let batch = fetched_batch(
        Compression::None,
        &sample_records(),
        0,
        0,
        ProducerStamp::NONE,
    );
    let records = &batch[BATCH_HEADER_LEN..];
    let text: Vec<u8> = (0..200)
        .flat_map(|i| format!("{{\"id\":{i},\"name\":\"user-{}\"}}\n", i % 13).into_bytes())
        .collect();
    let samples: [(&str, &[u8]); 4] = [
        ("empty", b""),
        ("one-byte", b"x"),
        ("records", records),
        ("json-lines", &text),
    ];
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let target = match codec {
            Compression::Gzip => "decompress_gzip",
            Compression::Snappy => "decompress_snappy",
            Compression::Lz4 => "decompress_lz4",
            _ => "decompress_zstd",
        };
        for (name, data) in samples {
            let mut packed = Vec::new();
            compression::compress(codec, data, None, &mut packed).expect("compressing a sample");
            out.put(target, name, &packed);
            if codec == Compression::Snappy && packed.starts_with(&XERIAL_HEADER) {
                // librdkafka's raw snappy: the xerial blocks without framing.
                let mut raw = Vec::new();
                let mut rest = &packed[XERIAL_HEADER.len()..];
                while let [a, b, c, d, tail @ ..] = rest {
                    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
                    raw.extend_from_slice(&tail[..len]);
                    rest = &tail[len..];
                }
                if name == "json-lines" || name == "records" {
                    out.put(target, &format!("{name}-raw"), &raw);
                }
            }
        }
        // Two members / frames back to back.
        let mut twice = Vec::new();
        compression::compress(codec, b"first ", None, &mut twice).expect("compressing");
        compression::compress(codec, b"second", None, &mut twice).expect("compressing");
        out.put(target, "concatenated", &twice);
    }
    for level in [1, 9] {
        let mut packed = Vec::new();
        compression::compress(Compression::Gzip, &text, Some(level), &mut packed)
            .expect("compressing");
        out.put(
            "decompress_gzip",
            &format!("json-lines-level-{level}"),
            &packed,
        );
    }
    let mut packed = Vec::new();
    compression::compress(Compression::Zstd, &text, Some(19), &mut packed).expect("compressing");
    out.put("decompress_zstd", "json-lines-level-19", &packed);
}

// ---------------------------------------------------------------------------
// Produce requests
// ---------------------------------------------------------------------------

fn produce_seeds(out: &mut Corpus) {
    let records = sample_records();
    let stamp = ProducerStamp {
        producer_id: 9,
        producer_epoch: 0,
        base_sequence: 0,
    };
    let batch = |codec, base| {
        let fetched = fetched_batch(codec, &records, base, attributes::TRANSACTIONAL, stamp);
        let view = RecordBatchView::new(fetched).expect("a sample batch");
        rewrite_for_produce(&view, stamp)
    };
    for (version, codec) in [
        (3, Compression::None),
        (7, Compression::Gzip),
        (8, Compression::Snappy),
        (9, Compression::Lz4),
        (12, Compression::Zstd),
    ] {
        let request = ProduceRequest {
            transactional_id: (version == 8).then(|| "mirror-txn".to_owned()),
            acks: -1,
            timeout_ms: 30_000,
            topics: vec![
                ProduceTopic {
                    name: StrBytes::from_static_str("orders"),
                    partitions: vec![
                        ProducePartition {
                            index: 0,
                            batch: batch(codec, 500),
                        },
                        ProducePartition {
                            index: 3,
                            batch: batch(Compression::None, 0),
                        },
                    ],
                },
                ProduceTopic {
                    name: StrBytes::from_static_str("clicks"),
                    partitions: vec![ProducePartition {
                        index: 1,
                        batch: batch(codec, 9),
                    }],
                },
            ],
        };
        let frame = encode_produce_request(&request, version, 17, Some("kmirror"))
            .expect("encoding a sample Produce request");
        let bytes = frame.to_contiguous().slice(4..);
        decode_produce_request(bytes.clone()).expect("decoding a sample Produce request");
        out.put(
            "produce_request",
            &format!("produce-v{version}-{codec}"),
            &bytes,
        );
    }
}

// ---------------------------------------------------------------------------
// Consumer protocol
// ---------------------------------------------------------------------------

fn consumer_protocol_seeds(out: &mut Corpus) {
    let owned = |topic: &str, partitions: &[i32]| TopicPartitions {
        topic: topic.to_owned(),
        partitions: partitions.to_vec(),
    };
    let subscription = Subscription {
        topics: vec!["clicks".to_owned(), "orders".to_owned()],
        user_data: Some(Bytes::from_static(&[0, 0, 0, 4])),
        owned_partitions: vec![owned("clicks", &[0, 2]), owned("orders", &[1])],
        generation_id: 4,
        rack_id: Some("rack-a".to_owned()),
    };
    let assignment = Assignment {
        partitions: vec![owned("clicks", &[1, 3]), owned("orders", &[0])],
        user_data: None,
    };
    for version in 0..=CONSUMER_PROTOCOL_MAX_VERSION {
        let bytes = subscription.encode(version);
        Subscription::decode(&bytes).expect("decoding a sample subscription");
        out.put(
            "consumer_protocol",
            &format!("subscription-v{version}"),
            &bytes,
        );
        let bytes = assignment.encode(version);
        Assignment::decode(&bytes).expect("decoding a sample assignment");
        out.put(
            "consumer_protocol",
            &format!("assignment-v{version}"),
            &bytes,
        );
    }
    // A later version with a field this reader does not know.
    let mut later = BytesMut::from(&subscription.encode(CONSUMER_PROTOCOL_MAX_VERSION)[..]);
    later[..2].copy_from_slice(&(CONSUMER_PROTOCOL_MAX_VERSION + 1).to_be_bytes());
    later.put_i32(7);
    out.put("consumer_protocol", "subscription-later-version", &later);
    out.put("consumer_protocol", "assignment-empty", &[]);
}

// ---------------------------------------------------------------------------
// Differential
// ---------------------------------------------------------------------------

fn differential_seeds(out: &mut Corpus) {
    let mut state: u64 = 0x243F_6A88_85A3_08D3;
    for (i, len) in [64usize, 256, 1024, 4096].into_iter().enumerate() {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[5]
            })
            .collect();
        out.put("differential", &format!("random-{i}-{len}"), &bytes);
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

fn name(s: &'static str) -> StrBytes {
    StrBytes::from_static_str(s)
}

fn topic(s: &'static str) -> TopicName {
    TopicName(name(s))
}

const TOPIC_ID: uuid::Uuid = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);

/// Encodes `response` at `version`, or `None` if it has fields that this
/// version cannot carry.
fn encode<R: Encodable>(response: &R, version: i16) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    response.encode(&mut buf, version).ok()?;
    Some(buf.freeze())
}

fn fetch_responses() -> Vec<kpm::FetchResponse> {
    use kpm::fetch_response as f;
    let records = sample_records();
    let mut log = Vec::new();
    log.extend(fetched_batch(
        Compression::Lz4,
        &records,
        10,
        attributes::TRANSACTIONAL,
        ProducerStamp {
            producer_id: 5,
            producer_epoch: 0,
            base_sequence: 0,
        },
    ));
    log.extend(control_batch(14, 5, false));
    log.extend(fetched_batch(
        Compression::None,
        &records[..2],
        15,
        0,
        ProducerStamp::NONE,
    ));
    let log = Bytes::from(log);
    let partitions = |records: Bytes| {
        vec![
            f::PartitionData::default()
                .with_partition_index(0)
                .with_high_watermark(17)
                .with_last_stable_offset(17)
                .with_log_start_offset(0)
                .with_aborted_transactions(Some(vec![
                    f::AbortedTransaction::default()
                        .with_producer_id(ProducerId(5))
                        .with_first_offset(10),
                ]))
                .with_records(Some(records)),
            f::PartitionData::default()
                .with_partition_index(1)
                .with_error_code(6)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_preferred_read_replica(BrokerId(2))
                .with_records(None),
        ]
    };
    let by_name = f::FetchableTopicResponse::default()
        .with_topic(topic("orders"))
        .with_partitions(partitions(log.clone()));
    let by_id = f::FetchableTopicResponse::default()
        .with_topic_id(TOPIC_ID)
        .with_partitions(partitions(log));
    vec![
        f::FetchResponse::default()
            .with_throttle_time_ms(1)
            .with_session_id(44)
            .with_responses(vec![by_name]),
        f::FetchResponse::default()
            .with_throttle_time_ms(1)
            .with_session_id(44)
            .with_responses(vec![by_id]),
        f::FetchResponse::default(),
    ]
}

fn metadata_responses() -> Vec<kpm::MetadataResponse> {
    use kpm::metadata_response as m;
    let partition = |i| {
        m::MetadataResponsePartition::default()
            .with_partition_index(i)
            .with_leader_id(BrokerId(1))
            .with_leader_epoch(3)
            .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
            .with_isr_nodes(vec![BrokerId(1)])
            .with_offline_replicas(vec![BrokerId(2)])
    };
    let without_ids = m::MetadataResponse::default()
        .with_throttle_time_ms(2)
        .with_brokers(vec![
            m::MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(name("broker-1"))
                .with_port(9092)
                .with_rack(Some(name("rack-a"))),
            m::MetadataResponseBroker::default()
                .with_node_id(BrokerId(2))
                .with_host(name("broker-2"))
                .with_port(9093),
        ])
        .with_cluster_id(Some(name("cluster")))
        .with_controller_id(BrokerId(1))
        .with_topics(vec![
            m::MetadataResponseTopic::default()
                .with_name(Some(topic("orders")))
                .with_partitions(vec![partition(0), partition(1)]),
            m::MetadataResponseTopic::default()
                .with_error_code(3)
                .with_name(Some(topic("missing"))),
        ]);
    // Topic ids exist from v10 on; older versions refuse to encode them.
    let mut with_ids = without_ids.clone();
    for t in &mut with_ids.topics {
        t.topic_id = TOPIC_ID;
    }
    vec![with_ids, without_ids, kpm::MetadataResponse::default()]
}

/// A broker's ApiVersions answer, and its UNSUPPORTED_VERSION answer, which
/// Apache Kafka always encodes at v0 whatever version was asked.
fn api_versions_responses() -> (kpm::ApiVersionsResponse, kpm::ApiVersionsResponse) {
    let keys: Vec<_> = SUPPORTED_APIS
        .iter()
        .map(|s| {
            kpm::api_versions_response::ApiVersion::default()
                .with_api_key(s.key as i16)
                .with_min_version(0)
                .with_max_version(s.ours.max + 1)
        })
        .collect();
    (
        kpm::ApiVersionsResponse::default()
            .with_api_keys(keys.clone())
            .with_throttle_time_ms(0),
        kpm::ApiVersionsResponse::default()
            .with_error_code(35)
            .with_api_keys(keys),
    )
}

fn produce_responses() -> Vec<kpm::ProduceResponse> {
    use kpm::produce_response as p;
    let partition = p::PartitionProduceResponse::default()
        .with_index(2)
        .with_error_code(0)
        .with_base_offset(1_000)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(0);
    let failed = p::PartitionProduceResponse::default()
        .with_index(3)
        .with_error_code(87)
        .with_base_offset(-1)
        .with_record_errors(vec![
            p::BatchIndexAndErrorMessage::default()
                .with_batch_index(1)
                .with_batch_index_error_message(Some(name("bad record"))),
        ])
        .with_error_message(Some(name("invalid record")));
    vec![
        p::ProduceResponse::default()
            .with_responses(vec![
                p::TopicProduceResponse::default()
                    .with_name(topic("orders"))
                    .with_partition_responses(vec![partition.clone(), failed]),
            ])
            .with_throttle_time_ms(5),
        p::ProduceResponse::default().with_responses(vec![
            p::TopicProduceResponse::default()
                .with_name(topic("orders"))
                .with_partition_responses(vec![partition]),
        ]),
    ]
}

/// Sample bodies of `api` at `version`: every candidate that this version
/// can carry.
fn bodies(api: ApiKey, version: i16) -> Vec<Bytes> {
    let mut out: Vec<Bytes> = Vec::new();
    macro_rules! candidates {
        ($($response:expr),* $(,)?) => {{
            $(
                if let Some(body) = encode(&$response, version) {
                    out.push(body);
                }
            )*
        }};
    }
    match api {
        ApiKey::Fetch => fetch_responses()
            .iter()
            .for_each(|r| out.extend(encode(r, version))),
        ApiKey::Metadata => metadata_responses()
            .iter()
            .for_each(|r| out.extend(encode(r, version))),
        ApiKey::ApiVersions => {
            let (ok, unsupported) = api_versions_responses();
            out.extend(encode(&ok, version));
            out.extend(encode(&unsupported, 0));
        }
        ApiKey::Produce => produce_responses()
            .iter()
            .for_each(|r| out.extend(encode(r, version))),
        ApiKey::ListOffsets => {
            use kpm::list_offsets_response as l;
            candidates!(kpm::ListOffsetsResponse::default().with_topics(vec![
                l::ListOffsetsTopicResponse::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![
                        l::ListOffsetsPartitionResponse::default()
                            .with_partition_index(0)
                            .with_timestamp(-1)
                            .with_offset(1234)
                            .with_leader_epoch(4),
                    ]),
            ]));
            candidates!(kpm::ListOffsetsResponse::default().with_topics(vec![
                l::ListOffsetsTopicResponse::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![
                        l::ListOffsetsPartitionResponse::default()
                            .with_partition_index(0)
                            .with_timestamp(-1)
                            .with_offset(1234),
                    ]),
            ]));
        }
        ApiKey::OffsetCommit => {
            use kpm::offset_commit_response as c;
            candidates!(kpm::OffsetCommitResponse::default().with_topics(vec![
                c::OffsetCommitResponseTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![
                        c::OffsetCommitResponsePartition::default()
                            .with_partition_index(0)
                            .with_error_code(0),
                        c::OffsetCommitResponsePartition::default()
                            .with_partition_index(1)
                            .with_error_code(22),
                    ]),
            ]));
        }
        ApiKey::OffsetFetch => {
            use kpm::offset_fetch_response as o;
            candidates!(
                kpm::OffsetFetchResponse::default().with_topics(vec![
                    o::OffsetFetchResponseTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![
                            o::OffsetFetchResponsePartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(77)
                                .with_committed_leader_epoch(3)
                                .with_metadata(Some(name("kmirror"))),
                        ]),
                ]),
                kpm::OffsetFetchResponse::default().with_topics(vec![
                    o::OffsetFetchResponseTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![
                            o::OffsetFetchResponsePartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(77)
                                .with_metadata(Some(name("kmirror"))),
                        ]),
                ]),
                kpm::OffsetFetchResponse::default().with_groups(vec![
                    o::OffsetFetchResponseGroup::default()
                        .with_group_id(GroupId(name("mirror")))
                        .with_topics(vec![
                            o::OffsetFetchResponseTopics::default()
                                .with_name(topic("orders"))
                                .with_partitions(vec![
                                    o::OffsetFetchResponsePartitions::default()
                                        .with_partition_index(0)
                                        .with_committed_offset(77)
                                        .with_committed_leader_epoch(3),
                                ]),
                        ]),
                ]),
            );
        }
        ApiKey::FindCoordinator => {
            use kpm::find_coordinator_response as f;
            candidates!(
                kpm::FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(2))
                    .with_host(name("broker-2"))
                    .with_port(9093),
                kpm::FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(2))
                    .with_host(name("broker-2"))
                    .with_port(9093)
                    .with_error_message(Some(name("ok"))),
                kpm::FindCoordinatorResponse::default().with_coordinators(vec![
                    f::Coordinator::default()
                        .with_key(name("mirror"))
                        .with_node_id(BrokerId(2))
                        .with_host(name("broker-2"))
                        .with_port(9093),
                ]),
            );
        }
        ApiKey::JoinGroup => {
            use kpm::join_group_response as j;
            let member = j::JoinGroupResponseMember::default()
                .with_member_id(name("m-1"))
                .with_metadata(Bytes::from_static(b"\0\0\0\0\0\x01\0\x06orders"));
            candidates!(
                kpm::JoinGroupResponse::default()
                    .with_generation_id(3)
                    .with_protocol_name(Some(name("range")))
                    .with_leader(name("m-1"))
                    .with_member_id(name("m-1"))
                    .with_members(vec![member.clone()]),
                kpm::JoinGroupResponse::default()
                    .with_generation_id(3)
                    .with_protocol_type(Some(name("consumer")))
                    .with_protocol_name(Some(name("range")))
                    .with_leader(name("m-1"))
                    .with_member_id(name("m-1"))
                    .with_members(vec![member]),
            );
        }
        ApiKey::Heartbeat => candidates!(
            kpm::HeartbeatResponse::default().with_error_code(27),
            kpm::HeartbeatResponse::default()
                .with_throttle_time_ms(3)
                .with_error_code(27),
        ),
        ApiKey::LeaveGroup => {
            use kpm::leave_group_response as l;
            candidates!(
                kpm::LeaveGroupResponse::default().with_error_code(0),
                kpm::LeaveGroupResponse::default().with_members(vec![
                    l::MemberResponse::default()
                        .with_member_id(name("m-1"))
                        .with_group_instance_id(Some(name("i-1"))),
                ]),
            );
        }
        ApiKey::SyncGroup => candidates!(
            kpm::SyncGroupResponse::default().with_assignment(Bytes::from_static(b"\0\0\0\0")),
            kpm::SyncGroupResponse::default()
                .with_protocol_type(Some(name("consumer")))
                .with_protocol_name(Some(name("range")))
                .with_assignment(Bytes::from_static(b"\0\0\0\0")),
        ),
        ApiKey::DescribeGroups => {
            use kpm::describe_groups_response as d;
            candidates!(kpm::DescribeGroupsResponse::default().with_groups(vec![
                d::DescribedGroup::default()
                    .with_group_id(GroupId(name("mirror")))
                    .with_group_state(name("Stable"))
                    .with_protocol_type(name("consumer"))
                    .with_protocol_data(name("range"))
                    .with_members(vec![
                        d::DescribedGroupMember::default()
                            .with_member_id(name("m-1"))
                            .with_client_id(name("kmirror"))
                            .with_client_host(name("/10.0.0.1")),
                    ]),
            ]));
        }
        ApiKey::SaslHandshake => candidates!(
            kpm::SaslHandshakeResponse::default()
                .with_mechanisms(vec![name("PLAIN"), name("SCRAM-SHA-512")]),
        ),
        ApiKey::CreateTopics => {
            use kpm::create_topics_response as c;
            let result = c::CreatableTopicResult::default()
                .with_name(topic("orders"))
                .with_error_code(36)
                .with_error_message(Some(name("already exists")));
            candidates!(
                kpm::CreateTopicsResponse::default().with_topics(vec![
                    result
                        .clone()
                        .with_topic_id(TOPIC_ID)
                        .with_num_partitions(3)
                        .with_replication_factor(1)
                        .with_configs(Some(vec![
                            c::CreatableTopicConfigs::default()
                                .with_name(name("cleanup.policy"))
                                .with_value(Some(name("compact"))),
                        ])),
                ]),
                kpm::CreateTopicsResponse::default().with_topics(vec![result.clone()]),
                kpm::CreateTopicsResponse::default().with_topics(vec![
                    c::CreatableTopicResult::default()
                        .with_name(topic("orders"))
                        .with_error_code(36),
                ]),
            );
        }
        ApiKey::InitProducerId => candidates!(
            kpm::InitProducerIdResponse::default()
                .with_producer_id(ProducerId(4000))
                .with_producer_epoch(1),
        ),
        ApiKey::DescribeConfigs => {
            use kpm::describe_configs_response as d;
            candidates!(
                kpm::DescribeConfigsResponse::default().with_results(vec![
                    d::DescribeConfigsResult::default()
                        .with_resource_type(2)
                        .with_resource_name(name("orders"))
                        .with_configs(vec![
                            d::DescribeConfigsResourceResult::default()
                                .with_name(name("max.message.bytes"))
                                .with_value(Some(name("1048588")))
                                .with_config_source(5)
                                .with_synonyms(vec![
                                    d::DescribeConfigsSynonym::default()
                                        .with_name(name("message.max.bytes"))
                                        .with_value(Some(name("1048588")))
                                        .with_source(5),
                                ])
                                .with_config_type(5)
                                .with_documentation(Some(name("doc"))),
                        ]),
                ]),
                kpm::DescribeConfigsResponse::default().with_results(vec![
                    d::DescribeConfigsResult::default()
                        .with_resource_type(2)
                        .with_resource_name(name("orders"))
                        .with_configs(vec![
                            d::DescribeConfigsResourceResult::default()
                                .with_name(name("max.message.bytes"))
                                .with_value(Some(name("1048588")))
                                .with_config_source(5)
                                .with_synonyms(vec![
                                    d::DescribeConfigsSynonym::default()
                                        .with_name(name("message.max.bytes"))
                                        .with_value(Some(name("1048588")))
                                        .with_source(5),
                                ]),
                        ]),
                ]),
            );
        }
        ApiKey::SaslAuthenticate => candidates!(
            kpm::SaslAuthenticateResponse::default()
                .with_auth_bytes(Bytes::from_static(b"server-final"))
                .with_session_lifetime_ms(3_600_000),
            kpm::SaslAuthenticateResponse::default()
                .with_error_code(58)
                .with_error_message(Some(name("bad password"))),
        ),
        ApiKey::CreatePartitions => {
            use kpm::create_partitions_response as c;
            candidates!(kpm::CreatePartitionsResponse::default().with_results(vec![
                c::CreatePartitionsTopicResult::default()
                    .with_name(topic("orders"))
                    .with_error_code(37)
                    .with_error_message(Some(name("too few"))),
            ]));
        }
        _ => {}
    }
    out.dedup();
    out
}

/// The `response_decode` input for `body` as the response of `api` at
/// `version`: selector bytes, response header, body.
fn response_input(index: usize, api: ApiKey, version: i16, min: i16, body: &[u8]) -> Vec<u8> {
    let mut frame = BytesMut::new();
    frame.put_u8(index as u8);
    frame.put_u8((version - min) as u8);
    encode_response_header(&mut frame, api, version, 99).expect("a response header");
    frame.put_slice(body);
    frame.to_vec()
}

/// Whether kmirror decodes the frame part of a `response_decode` input.
fn decodes(input: &[u8], api: ApiKey, version: i16) -> Result<(), String> {
    let frame = Bytes::copy_from_slice(&input[2..]);
    let (_, body) = decode_response_header(frame, api, version).map_err(|e| e.to_string())?;
    match decode_response_body(api, version, body) {
        Ok(ResponseBody::Fetch(fetch)) => {
            // Check the records too: the seed is only useful if they read.
            for p in fetch.topics.iter().flat_map(|t| &t.partitions) {
                for entry in
                    kmirror_protocol::RecordBatches::new(p.records.clone().unwrap_or_default())
                {
                    entry.map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

fn response_seeds(out: &mut Corpus) {
    let mut refused = 0;
    for (index, spec) in SUPPORTED_APIS.iter().enumerate() {
        let (min, max) = (spec.ours.min, spec.ours.max);
        let mut versions = vec![min, spec.first_flexible - 1, spec.first_flexible, max];
        versions.retain(|v| (min..=max).contains(v));
        versions.sort_unstable();
        versions.dedup();
        for version in versions {
            let bodies = bodies(spec.key, version);
            if bodies.is_empty() {
                println!(
                    "warning: no sample {:?} v{version} response encodes",
                    spec.key
                );
            }
            for (i, body) in bodies.iter().enumerate() {
                let input = response_input(index, spec.key, version, min, body);
                if let Err(e) = decodes(&input, spec.key, version) {
                    refused += 1;
                    println!(
                        "FINDING? kmirror refuses kafka-protocol's {:?} v{version} sample {i}: {e}",
                        spec.key
                    );
                }
                out.put(
                    "response_decode",
                    &format!("{:?}-v{version}-{i}", spec.key),
                    &input,
                );
            }
        }
    }
    if refused > 0 {
        println!("{refused} sample responses were refused by kmirror (see above)");
    }
}

// ---------------------------------------------------------------------------
// Golden captures
// ---------------------------------------------------------------------------

/// Reads the API, version and kind (`request` or `response`) from a golden
/// file name: the curated `{api}[-{what}]-v{version}-{kind}.bin` (e.g.
/// `fetch-gzip-v16-response.bin`) or the recording proxy's
/// `{seq}-{Api}-v{version}-c{conn}-{kind}.bin`. The API is matched without
/// regard to case.
fn parse_golden_name(file: &str) -> Option<(ApiKey, i16, &str)> {
    let stem = file.strip_suffix(".bin")?;
    let parts: Vec<&str> = stem.split('-').collect();
    let kind = *parts.last()?;
    let version = parts
        .iter()
        .find_map(|p| p.strip_prefix('v').and_then(|v| v.parse().ok()))?;
    let api = parts.iter().find_map(|p| {
        SUPPORTED_APIS
            .iter()
            .map(|s| s.key)
            .find(|k| format!("{k:?}").eq_ignore_ascii_case(p))
    })?;
    Some((api, version, kind))
}

fn golden_seeds(out: &mut Corpus, dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for path in files {
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some((api, version, kind)) = parse_golden_name(file) else {
            continue;
        };
        let Ok(bytes) = fs::read(&path) else {
            continue;
        };
        let stem = file.trim_end_matches(".bin");
        if kind == "request" && api == ApiKey::Produce {
            out.put("produce_request", &format!("golden-{stem}"), &bytes);
            continue;
        }
        if kind != "response" {
            continue;
        }
        let Some((index, spec)) = SUPPORTED_APIS
            .iter()
            .enumerate()
            .find(|(_, s)| s.key == api)
        else {
            continue;
        };
        if !(spec.ours.min..=spec.ours.max).contains(&version) {
            println!("golden {file}: v{version} is outside kmirror's range, skipped");
            continue;
        }
        let mut input = vec![index as u8, (version - spec.ours.min) as u8];
        input.extend_from_slice(&bytes);
        if let Err(e) = decodes(&input, spec.key, version) {
            println!("FINDING? kmirror refuses golden {file}: {e}");
        }
        out.put("response_decode", &format!("golden-{stem}"), &input);

        if spec.key == ApiKey::Fetch
            && let Ok((_, body)) = decode_response_header(Bytes::from(bytes), spec.key, version)
            && let Ok(ResponseBody::Fetch(fetch)) = decode_response_body(spec.key, version, body)
        {
            let records = fetch
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .filter_map(|p| p.records.clone())
                .filter(|r| !r.is_empty());
            for (i, r) in records.enumerate() {
                out.put("batch_iter", &format!("golden-{stem}-p{i}"), &r);
            }
        }
    }
}
