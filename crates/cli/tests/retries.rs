//! End to end, on Apache Kafka: the producer's `retries` key. With
//! `retries=0` a batch whose Produce request fails (here: the destination
//! broker stopped after kmirror started, so the connection is refused) is
//! not sent again: kmirror stops with exit 1, names the key, and commits
//! nothing past the batch. Without the key kmirror resends for ever, as
//! Java's producer does by default: `metrics.rs`'s readiness test stops
//! the destination the same way and sees every record arrive once it is
//! back.
//!
//! Needs Apache Kafka and the Python clients (`cargo xtask brokers`).

use std::time::Duration;

use kmirror_test_support::{
    ClusterOptions, KafkaCluster, ProduceSpec, librdkafka_committed_offsets,
    librdkafka_create_topic, librdkafka_end_offsets, librdkafka_produce,
};

mod common;

use common::{Scratch, wait_caught_up};

#[test]
fn retries_zero_stops_at_the_first_failed_send_and_commits_nothing_past_it() {
    const TOPIC: &str = "no-retries";
    const GROUP: &str = "no-retries-group";
    let source = KafkaCluster::start(ClusterOptions::kraft().name("retries-source"));
    let mut destination = KafkaCluster::start(ClusterOptions::kraft().name("retries-destination"));
    librdkafka_create_topic(&source.bootstrap(), TOPIC, 1, &[]);
    librdkafka_produce(
        &source.bootstrap(),
        TOPIC,
        &ProduceSpec::default().count(50),
    );
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id={GROUP}\n",
            source.bootstrap()
        ),
        &format!("bootstrap.servers={}\nretries=0\n", destination.bootstrap()),
    );
    let mut mirror = scratch.spawn(&["--whitelist", TOPIC, "--offset.commit.interval.ms", "200"]);
    wait_caught_up(
        &source,
        &destination,
        TOPIC,
        1,
        &mut mirror,
        Duration::from_secs(120),
        "before the destination stops",
    );
    // The first 50 committed (the commit interval is short).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while librdkafka_committed_offsets(&source.bootstrap(), GROUP, TOPIC).get(&0) != Some(&Some(50))
    {
        mirror.assert_running("waiting for the first commit");
        assert!(std::time::Instant::now() < deadline, "50 never committed");
        std::thread::sleep(Duration::from_millis(200));
    }

    let id = destination.all_ids()[0];
    destination.stop(id);
    librdkafka_produce(
        &source.bootstrap(),
        TOPIC,
        &ProduceSpec::default().count(50),
    );
    let exited = mirror.wait(Duration::from_secs(120));
    assert_eq!(exited.code, Some(1), "{}", exited.context());
    let error = exited
        .stderr
        .lines()
        .find(|l| l.starts_with("kmirror: error: "))
        .unwrap_or_else(|| panic!("no error line: {}", exited.context()));
    assert!(error.contains("retries=0"), "{error}");
    assert!(error.contains(&format!("{TOPIC}-0")), "{error}");
    assert!(error.contains("nothing past these offsets"), "{error}");

    // Nothing past the records the destination holds is committed.
    let committed = librdkafka_committed_offsets(&source.bootstrap(), GROUP, TOPIC);
    assert_eq!(committed.get(&0), Some(&Some(50)), "{committed:?}");
    destination.restart(id);
    let written = librdkafka_end_offsets(&destination.bootstrap(), TOPIC);
    assert_eq!(written.get(&0), Some(&50), "{written:?}");
}
