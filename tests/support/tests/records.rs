//! librdkafka producing a [`ProduceSpec`] corpus into Apache Kafka and reading it
//! back: every field as the spec says, and `assert_same_records` telling
//! equal readings from doctored ones.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use kmirror_test_support::{
    ClusterOptions, Codec, ConsumedRecord, KafkaCluster, ProduceSpec, assert_same_records,
    librdkafka_committed_offsets, librdkafka_consume_all, librdkafka_consume_summary,
    librdkafka_create_topic, librdkafka_end_offsets, librdkafka_produce, run_python,
    value_sequence,
};

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn librdkafka_corpus_round_trips_through_apache_kafka() {
    let kafka = KafkaCluster::start(ClusterOptions::kraft().name("records"));
    let addr = kafka.bootstrap();
    let log = || kafka.log(1);

    // 500 keyed records (every 7th key null, every 11th value null), lz4,
    // headers, and one 900 KB value (record 499).
    librdkafka_create_topic(&addr, "corpus", 3, &[("max.message.bytes", "2000000")]);
    let spec = ProduceSpec::default()
        .count(500)
        .value_size(200)
        .codec(Codec::Lz4)
        .keys(10)
        .null_key_every(7)
        .null_value_every(11)
        .headers(true)
        .large_values(500, 900_000)
        .config("message.max.bytes", "2000000");
    assert_eq!(librdkafka_produce(&addr, "corpus", &spec), 500);

    let corpus = librdkafka_consume_all(&addr, "corpus");
    assert_eq!(corpus.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
    let all: Vec<&ConsumedRecord> = corpus.values().flatten().collect();
    assert_eq!(all.len(), 500, "log:\n{}", log());
    assert_eq!(all.iter().filter(|r| r.key.is_none()).count(), 500 / 7);
    assert_eq!(all.iter().filter(|r| r.value.is_none()).count(), 500 / 11);

    let mut seen = BTreeSet::new();
    let mut key_partition: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
    for (partition, records) in &corpus {
        for (index, r) in records.iter().enumerate() {
            assert_eq!(r.partition, *partition);
            assert_eq!(r.offset, index as i64, "offsets are dense from 0");
            // Header order with the repeated name, the empty and null values.
            assert_eq!(r.headers.len(), 5);
            assert_eq!(r.headers[0], ("h".to_owned(), Some(b"1".to_vec())));
            assert_eq!(r.headers[1], ("h".to_owned(), Some(b"2".to_vec())));
            assert_eq!(r.headers[2], ("empty".to_owned(), Some(Vec::new())));
            assert_eq!(r.headers[3], ("null".to_owned(), None));
            let seq = r.value.as_deref().map_or_else(
                || {
                    let text = r.headers[4].1.as_deref().expect("a seq header");
                    std::str::from_utf8(text).unwrap().parse().unwrap()
                },
                |v| value_sequence(v).expect("a numbered value"),
            );
            assert!(seen.insert(seq), "record {seq} read twice");
            assert_eq!(r.key, spec.expected_key(seq), "key of record {seq}");
            assert_eq!(r.value, spec.expected_value(seq), "value of record {seq}");
            assert_eq!(r.headers, spec.expected_headers(seq), "headers of {seq}");
            assert_eq!(r.timestamp_type, 1, "CreateTime");
            assert!(r.timestamp > 1_600_000_000_000, "timestamp {}", r.timestamp);
            if let Some(key) = &r.key {
                let first = *key_partition.entry(key.clone()).or_insert(*partition);
                assert_eq!(first, *partition, "one key, one partition");
            }
        }
    }
    assert_eq!(seen, (0..500).collect());
    let large = all
        .iter()
        .filter(|r| r.value.as_ref().is_some_and(|v| v.len() == 900_000))
        .count();
    assert_eq!(large, 1, "one 900 KB value");

    let ends = librdkafka_end_offsets(&addr, "corpus");
    let counts: BTreeMap<i32, i64> = corpus.iter().map(|(p, r)| (*p, r.len() as i64)).collect();
    assert_eq!(ends, counts);

    // The summary sees the same: everything numbered (null values through
    // their seq header), in order, no duplicates.
    let summary = librdkafka_consume_summary(&addr, "corpus");
    for (partition, s) in &summary {
        let records = &corpus[partition];
        assert_eq!(s.count, records.len() as u64);
        assert_eq!(s.first_offset, records.first().map(|r| r.offset));
        assert_eq!(s.last_offset, records.last().map(|r| r.offset));
        assert_eq!(s.unnumbered, 0);
        assert_eq!(s.duplicates(), 0);
        assert_eq!(s.first_reorder(), None);
    }
    let numbered: BTreeSet<u64> = summary.values().flat_map(|s| s.distinct()).collect();
    assert_eq!(numbered, (0..500).collect());

    // Equal readings pass; doctored ones fail with a precise message.
    assert_same_records(&corpus, &corpus.clone());
    let mut doctored = corpus.clone();
    let victim = doctored.get_mut(&1).unwrap().get_mut(3).unwrap();
    victim.headers.swap(0, 1);
    let message = panic_message(|| assert_same_records(&corpus, &doctored));
    assert!(
        message.contains("partition 1, record 3") && message.contains("different headers"),
        "{message}"
    );
    let mut shorter = corpus.clone();
    shorter.get_mut(&2).unwrap().pop();
    let message = panic_message(|| assert_same_records(&corpus, &shorter));
    assert!(message.contains("partition 2: source has"), "{message}");

    // Explicit partitions spread null-keyed records evenly; zstd.
    librdkafka_create_topic(&addr, "spread", 4, &[]);
    let spread = ProduceSpec::default()
        .count(40)
        .null_keys()
        .partitions(4)
        .codec(Codec::Zstd)
        .timestamps(1_700_000_000_000);
    librdkafka_produce(&addr, "spread", &spread);
    let summary = librdkafka_consume_summary(&addr, "spread");
    for (partition, s) in &summary {
        let expected: Vec<u64> = (0..40)
            .filter(|i| spread.expected_partition(*i) == Some(*partition))
            .collect();
        assert_eq!(s.sequences, expected, "partition {partition}");
    }
    let records = librdkafka_consume_all(&addr, "spread");
    let first = &records[&3][0];
    assert_eq!(first.key, None);
    assert_eq!(first.timestamp, 1_700_000_000_003);

    // Committed offsets: none for a fresh group, then what it committed.
    let none = librdkafka_committed_offsets(&addr, "records-group", "spread");
    assert_eq!(none, (0..4).map(|p| (p, None)).collect());
    run_python(
        r#"
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "records-group", "enable.auto.commit": False})
c.commit(offsets=[TopicPartition("spread", 0, 7), TopicPartition("spread", 2, 10)], asynchronous=False)
c.close()
"#,
        &[&addr],
    );
    let committed = librdkafka_committed_offsets(&addr, "records-group", "spread");
    assert_eq!(
        committed,
        [(0, Some(7)), (1, None), (2, Some(10)), (3, None)].into()
    );
}
