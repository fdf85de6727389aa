//! The conformance proxy: librdkafka's idempotent producer passes through it
//! clean, deliberately bad requests are reported (the checker is shared
//! across connections), bytes are forwarded exactly, and a broker restart
//! behind it keeps working. The brokers are Apache Kafka.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kmirror_protocol::Compression;
use kmirror_protocol::header::RequestHeader;
use kmirror_protocol::kafka_protocol::messages::produce_request as kp;
use kmirror_protocol::kafka_protocol::messages::{ApiKey, ProduceRequest as KpRequest, TopicName};
use kmirror_protocol::kafka_protocol::protocol::{Encodable, StrBytes};
use kmirror_protocol::messages::produce::{
    ProducePartition, ProduceRequest, ProduceTopic, encode_produce_request,
};
use kmirror_protocol::record::{BatchBuilder, ProducerStamp};
use kmirror_test_support::{
    ClusterOptions, ConformanceProxy, ConformanceReport, KafkaCluster, librdkafka_create_topic,
    librdkafka_list_topics, run_python, start_cluster_behind_proxy,
};

/// A KRaft broker behind a conformance proxy, shared by the tests that
/// neither restart it nor need the proxy's counts to themselves.
fn proxied() -> &'static (KafkaCluster, ConformanceProxy) {
    static PROXIED: OnceLock<(KafkaCluster, ConformanceProxy)> = OnceLock::new();
    PROXIED.get_or_init(|| start_cluster_behind_proxy(ClusterOptions::kraft().name("proxied")))
}

const PRODUCE: &str = r#"
import sys
from confluent_kafka import Producer
bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
producer = Producer({
    "bootstrap.servers": bootstrap,
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 5,
})
delivered, errors = [0], []
def on_delivery(err, msg):
    if err is not None:
        errors.append(str(err))
    else:
        delivered[0] += 1
for i in range(n):
    producer.produce(topic, key=f"key-{i}".encode(), value=(f"value-{i}-" + "x" * 200).encode(),
                     partition=i % 3, on_delivery=on_delivery)
    producer.poll(0)
left = producer.flush(60)
print(delivered[0], left, errors[:5])
"#;

#[test]
fn librdkafka_idempotent_lz4_producer_is_conformant() {
    let (kafka, proxy) = proxied();
    librdkafka_create_topic(&proxy.addr(), "through-proxy", 3, &[]);
    let out = run_python(PRODUCE, &[&proxy.addr(), "through-proxy", "200"]);
    assert_eq!(out.trim(), "200 0 []", "broker log:\n{}", kafka.log(1));
    proxy.assert_conformant();
    let report = proxy.report();
    assert!(report.produce_requests > 0, "{}", report.summary());
    assert!(report.batches >= 3, "{}", report.summary());
    assert_eq!(report.records, 200, "{}", report.summary());
    assert_eq!(report.control_batches, 0, "{}", report.summary());
    // The bootstrap connection and the one to the advertised broker (the
    // proxy again).
    assert!(report.connections >= 2, "{}", report.summary());
}

fn batch(records: usize, stamp: ProducerStamp) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..records {
        b.push(1_000 + i as i64, Some(b"k"), Some(b"v"), std::iter::empty())
            .unwrap();
    }
    b.build(stamp).unwrap().to_bytes()
}

/// A framed Produce v9 request with raw `records` for partition 0 of `topic`,
/// encoded by kafka-protocol (kmirror's encoder cannot put two batches in
/// one partition).
fn raw_produce(correlation_id: i32, topic: &str, records: Bytes) -> Vec<u8> {
    let request = KpRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            kp::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_data(vec![
                    kp::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let mut body = BytesMut::new();
    RequestHeader {
        api: ApiKey::Produce,
        version: 9,
        correlation_id,
        client_id: Some("conformance-test"),
    }
    .encode(&mut body)
    .unwrap();
    request.encode(&mut body, 9).unwrap();
    let mut framed = BytesMut::new();
    framed.put_i32(body.len() as i32);
    framed.put_slice(&body);
    framed.to_vec()
}

/// A framed Produce v9 request built by kmirror's encoder: one batch of
/// `records` records with `stamp`.
fn kmirror_produce(
    correlation_id: i32,
    topic: &str,
    records: usize,
    stamp: ProducerStamp,
) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..records {
        b.push(i as i64, None, Some(b"v"), std::iter::empty())
            .unwrap();
    }
    let request = ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 1000,
        topics: vec![ProduceTopic {
            name: StrBytes::from_string(topic.to_owned()),
            partitions: vec![ProducePartition {
                index: 0,
                batch: b.build(stamp).unwrap(),
            }],
        }],
    };
    encode_produce_request(&request, 9, correlation_id, Some("conformance-test"))
        .unwrap()
        .to_contiguous()
        .to_vec()
}

/// Writes `bytes` on a new connection to the proxy and closes it, without
/// waiting for any answer.
fn send(proxy: &ConformanceProxy, bytes: &[u8]) {
    let mut stream = TcpStream::connect(proxy.addr()).unwrap();
    stream.write_all(bytes).unwrap();
    // Let the proxy read it before the close (it inspects what it read
    // either way; this only avoids a reset racing the bytes).
    thread::sleep(Duration::from_millis(100));
    let _ = stream.shutdown(Shutdown::Both);
}

fn wait_for(
    proxy: &ConformanceProxy,
    done: impl Fn(&ConformanceReport) -> bool,
) -> ConformanceReport {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let report = proxy.report();
        if done(&report) || Instant::now() > deadline {
            return report;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_requests_are_reported_across_connections() {
    // A proxy of its own (the counts below are exact), in front of the
    // shared broker's PLAINTEXT listener: nothing here bootstraps, so the
    // advertised addresses do not matter.
    let (kafka, _) = proxied();
    let proxy = ConformanceProxy::start(0, &kafka.bootstrap());
    proxy.assert_no_violations();

    // Two batches for one partition in one request.
    let two = [batch(1, ProducerStamp::NONE), batch(1, ProducerStamp::NONE)].concat();
    send(&proxy, &raw_produce(41, "bad", Bytes::from(two)));
    let report = wait_for(&proxy, |r| r.produce_requests >= 1);
    assert_eq!(report.produce_requests, 1, "{}", report.summary());
    assert_eq!(report.batches, 2);
    assert_eq!(report.records, 2);

    // A sequence gap between two connections: the checker is shared.
    let stamp = |base_sequence| ProducerStamp {
        producer_id: 4242,
        producer_epoch: 0,
        base_sequence,
    };
    send(&proxy, &kmirror_produce(42, "bad", 1, stamp(0)));
    wait_for(&proxy, |r| r.produce_requests >= 2);
    send(&proxy, &kmirror_produce(43, "bad", 1, stamp(7)));
    let report = wait_for(&proxy, |r| r.produce_requests >= 3);

    assert_eq!(report.produce_requests, 3, "{}", report.summary());
    assert!(report.undecodable.is_empty(), "{}", report.summary());
    assert_eq!(report.violations_total, 2, "{}", report.summary());
    assert!(
        report.violations[0].starts_with("connection 1, correlation id 41, Produce v9: bad-0: ")
            && report.violations[0].contains("MultipleBatches(2)"),
        "{}",
        report.summary()
    );
    assert!(
        report.violations[1].starts_with("connection 3, correlation id 43, Produce v9: bad-0: ")
            && report.violations[1].contains("SequenceGap")
            && report.violations[1].contains("expected: 1, found: 7"),
        "{}",
        report.summary()
    );
    let failed = catch_unwind(AssertUnwindSafe(|| proxy.assert_conformant()));
    let message = failed
        .expect_err("assert_conformant passed with violations")
        .downcast::<String>()
        .map(|s| *s)
        .unwrap_or_default();
    assert!(message.contains("MultipleBatches(2)"), "{message}");
}

/// An upstream that echoes every connection back.
fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            thread::spawn(move || {
                let mut back = stream.try_clone().unwrap();
                let _ = std::io::copy(&mut stream, &mut back);
                let _ = back.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// Sends `bytes` through the proxy to the echo server and returns what came
/// back (reading while writing, so that neither side's buffers fill up).
fn echo_through(proxy: &ConformanceProxy, bytes: Vec<u8>) -> Vec<u8> {
    let expected = bytes.len();
    let mut stream = TcpStream::connect(proxy.addr()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || writer.write_all(&bytes).unwrap());
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut back = Vec::with_capacity(expected);
    let mut buf = vec![0u8; 1 << 16];
    while back.len() < expected {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => back.extend_from_slice(&buf[..n]),
        }
    }
    sender.join().unwrap();
    back
}

#[test]
fn bytes_are_forwarded_exactly_and_bad_frames_are_listed() {
    let proxy = ConformanceProxy::start(0, &echo_server());
    assert_ne!(proxy.port(), 0);

    // A large non-Produce frame, an undecodable Produce frame, then noise
    // that reads as a huge size: inspection stops, forwarding goes on.
    let mut sent = Vec::new();
    let big: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    sent.extend_from_slice(&((big.len() + 2) as i32).to_be_bytes());
    sent.extend_from_slice(&[0, 1]);
    sent.extend_from_slice(&big);
    sent.extend_from_slice(&11i32.to_be_bytes());
    sent.extend_from_slice(b"\x00\x00\x00\x09garbage");
    sent.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
    sent.extend_from_slice(&big[..100_000]);
    let back = echo_through(&proxy, sent.clone());
    assert!(
        back == sent,
        "echoed {} of {} bytes",
        back.len(),
        sent.len()
    );

    let report = proxy.report();
    assert_eq!(report.produce_requests, 1, "{}", report.summary());
    assert_eq!(report.undecodable.len(), 2, "{}", report.summary());
    assert!(
        report.undecodable[0].contains("does not decode"),
        "{}",
        report.summary()
    );
    assert!(
        report.undecodable[1].contains("frame size 2147483647"),
        "{}",
        report.summary()
    );
    assert!(!report.is_conformant());

    // Dropping the proxy closes its port.
    let addr = proxy.addr();
    drop(proxy);
    assert!(TcpStream::connect(&addr).is_err(), "{addr} still accepts");
}

#[test]
fn broker_restart_behind_the_proxy() {
    let (mut kafka, proxy) =
        start_cluster_behind_proxy(ClusterOptions::kraft().name("proxied-restart"));
    librdkafka_create_topic(&proxy.addr(), "survives", 1, &[]);
    kafka.restart(1);
    let topics = librdkafka_list_topics(&proxy.addr());
    assert!(
        topics.iter().any(|t| t == "survives"),
        "topics after restart {topics:?}; broker log:\n{}",
        kafka.log(1)
    );
    // The advertised address is the proxy's.
    let brokers = run_python(
        r#"
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=30)
for b in md.brokers.values():
    print(f"{b.host}:{b.port}")
"#,
        &[&proxy.addr()],
    );
    assert_eq!(brokers.trim(), proxy.addr());
    proxy.assert_no_violations();
}
