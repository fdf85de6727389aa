//! Golden bytes from a real exchange between librdkafka (PyPI
//! confluent-kafka 2.16.1) and a nisshi 0.8.1 broker, captured through a
//! recording proxy by `cargo xtask fixtures` (see
//! `tests/fixtures/golden/MANIFEST.md`): every codec, null key, null value,
//! repeated header keys.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kmirror_protocol::conformance::ConformanceChecker;
use kmirror_protocol::header::decode_response_header;
use kmirror_protocol::messages::api_versions::decode_api_versions_response;
use kmirror_protocol::messages::fetch::{FetchTopicRef, decode_fetch_response};
use kmirror_protocol::messages::metadata::decode_metadata_response;
use kmirror_protocol::messages::produce::{
    ProducePartition, ProduceRequest, ProduceTopic, decode_produce_request, encode_produce_request,
};
use kmirror_protocol::record::{
    Disposition, LogEntry, PassthroughPolicy, ProducerStamp, RecordBatchView, RecordBatches,
    classify, rewrite_for_produce,
};
use kmirror_protocol::{Compression, NegotiatedVersions};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

fn fixture(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/fixtures/golden/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// One expected record: key, value, headers in order, timestamp.
type ExpectedRecord = (
    Option<String>,
    Option<String>,
    Vec<(String, Option<String>)>,
    i64,
);

/// The 20 records the script produced (MANIFEST.md, "Records").
fn expected_record(i: usize) -> ExpectedRecord {
    let key = (i != 3).then(|| format!("key-{i}"));
    let value = (i != 5).then(|| format!("value-{i}"));
    let headers = if i == 7 {
        vec![
            ("h".into(), Some("1".into())),
            ("h".into(), Some("2".into())),
            ("other".into(), None),
        ]
    } else {
        vec![("trace".into(), Some(i.to_string()))]
    };
    (key, value, headers, 1_700_000_000_000 + i as i64)
}

fn utf8(b: &Option<Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8(b.to_vec()).unwrap())
}

fn assert_records(view: &RecordBatchView) {
    let records: Vec<_> = view.records(1 << 20).unwrap().map(Result::unwrap).collect();
    assert_eq!(records.len(), 20);
    for (i, r) in records.iter().enumerate() {
        let (key, value, headers, ts) = expected_record(i);
        assert_eq!(utf8(&r.key), key, "record {i} key");
        assert_eq!(utf8(&r.value), value, "record {i} value");
        let got: Vec<(String, Option<String>)> = r
            .headers
            .iter()
            .map(|h| (String::from_utf8(h.key.to_vec()).unwrap(), utf8(&h.value)))
            .collect();
        assert_eq!(got, headers, "record {i} headers, in order with repeats");
        assert_eq!(r.timestamp(view.header()), ts, "record {i} timestamp");
        assert_eq!(r.offset(view.header()), i as i64);
    }
}

fn fetched_batch(codec: &str) -> (Bytes, RecordBatchView) {
    let frame = fixture(&format!("fetch-{codec}-v16-response.bin"));
    let (correlation_id, body) = decode_response_header(frame.clone(), ApiKey::Fetch, 16).unwrap();
    assert_eq!(correlation_id, 2);
    let response = decode_fetch_response(body, 16).unwrap();
    assert_eq!(response.topics.len(), 1);
    assert!(
        matches!(response.topics[0].topic, FetchTopicRef::Id(_)),
        "v16 names topics by id"
    );
    let partition = &response.topics[0].partitions[0];
    assert_eq!(
        (
            partition.partition_index,
            partition.error_code,
            partition.high_watermark
        ),
        (0, 0, 20)
    );
    let records = partition.records.clone().unwrap();
    assert!(
        frame.as_ptr_range().contains(&records.as_ptr()),
        "records are a slice of the frame"
    );
    let mut batches = RecordBatches::new(records);
    let Some(Ok(LogEntry::Batch(view))) = batches.next() else {
        panic!("{codec}: one v2 batch")
    };
    assert!(batches.next().is_none());
    (frame, view)
}

#[test]
fn fetch_responses_decode_to_the_produced_records_in_every_codec() {
    for codec in CODECS {
        let (_, view) = fetched_batch(codec);
        view.verify_crc().unwrap();
        assert_eq!(
            view.header().compression().unwrap(),
            codec.parse::<Compression>().unwrap()
        );
        assert_records(&view);
    }
}

#[test]
fn librdkafka_produce_requests_pass_the_conformance_checker() {
    let mut checker = ConformanceChecker::new();
    for codec in CODECS {
        let request = fixture(&format!("produce-{codec}-v10-request.bin"));
        assert_eq!(checker.check(request.clone()), vec![], "{codec}");
        let decoded = decode_produce_request(request).unwrap();
        assert_eq!(decoded.version, 10);
        assert_eq!(decoded.acks, -1);
        assert_eq!(decoded.topics[0].0.as_str(), format!("golden-{codec}"));
        let records = decoded.topics[0].1[0].1.clone().unwrap();
        let view = RecordBatchView::new(records).unwrap();
        assert_records(&view);
    }
}

#[test]
fn passthrough_of_the_fetched_batch_rebuilds_librdkafkas_produce_request() {
    // nisshi stores batches verbatim, so the fetched batch is the produced
    // one. Rewriting it with the producer fields librdkafka used, and
    // framing it with the request fields librdkafka used, must give
    // librdkafka's request back, except the leader epoch (librdkafka sends
    // 0, kmirror -1; the broker overwrites it anyway).
    for codec in CODECS {
        let (_, view) = fetched_batch(codec);
        assert_eq!(
            classify(view.header(), &PassthroughPolicy::at(0), false),
            Disposition::Passthrough
        );
        let h = view.header();
        let stamp = ProducerStamp {
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
        };
        let batch = rewrite_for_produce(&view, stamp);
        assert_eq!(batch.payload(), &view.payload(), "payload untouched");

        let theirs = fixture(&format!("produce-{codec}-v10-request.bin"));
        let decoded = decode_produce_request(theirs.clone()).unwrap();
        let request = ProduceRequest {
            transactional_id: None,
            acks: decoded.acks,
            timeout_ms: decoded.timeout_ms,
            topics: vec![ProduceTopic {
                name: decoded.topics[0].0.clone(),
                partitions: vec![ProducePartition { index: 0, batch }],
            }],
        };
        let ours = encode_produce_request(
            &request,
            decoded.version,
            decoded.correlation_id,
            decoded.client_id.as_deref(),
        )
        .unwrap()
        .to_contiguous();
        let ours = &ours[4..];
        assert_eq!(ours.len(), theirs.len(), "{codec}: same frame length");
        let differing: Vec<usize> = (0..ours.len()).filter(|&i| ours[i] != theirs[i]).collect();
        // The only difference: the 4 bytes of partitionLeaderEpoch, 12..16
        // into the batch, 0 from librdkafka and -1 from kmirror.
        // v10 is flexible: three empty tagged-field sections (partition,
        // topic, request) follow the batch.
        let batch_start = theirs.len() - view.as_bytes().len() - 3;
        let epoch = batch_start + 12..batch_start + 16;
        assert!(
            differing.iter().all(|i| epoch.contains(i)),
            "{codec}: bytes {differing:?} differ"
        );
        assert_eq!(&ours[epoch.clone()], &(-1i32).to_be_bytes());
        assert_eq!(&theirs[epoch], &0i32.to_be_bytes());
    }
}

#[test]
fn api_versions_response_negotiates_with_nisshi() {
    let (correlation_id, body) = decode_response_header(
        fixture("apiversions-v3-response.bin"),
        ApiKey::ApiVersions,
        3,
    )
    .unwrap();
    assert_eq!(correlation_id, 1);
    let response = decode_api_versions_response(body, 3).unwrap();
    assert_eq!(response.error_code, 0);
    let versions = NegotiatedVersions::negotiate(&response);
    // nisshi 0.8.1 announces Produce 3-11, Fetch 0-17, Metadata 0-12.
    assert_eq!(versions.version(ApiKey::Produce).unwrap(), 11);
    assert_eq!(versions.version(ApiKey::Fetch).unwrap(), 16);
    assert_eq!(versions.version(ApiKey::Metadata).unwrap(), 12);
}

#[test]
fn metadata_response_names_broker_and_topic() {
    let (_, body) =
        decode_response_header(fixture("metadata-v12-response.bin"), ApiKey::Metadata, 12).unwrap();
    let m = decode_metadata_response(body, 12).unwrap();
    assert_eq!(m.brokers.len(), 1);
    assert_eq!(m.brokers[0].node_id, 111);
    assert_eq!(m.brokers[0].host.as_str(), "127.0.0.1");
    let topic = &m.topics[0];
    assert_eq!(topic.name.as_ref().unwrap().as_str(), "golden-none");
    assert_eq!(topic.partitions.len(), 1);
    assert_ne!(topic.topic_id, [0; 16]);
}
