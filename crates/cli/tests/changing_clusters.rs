//! End to end: the built `kmirror` binary while the clusters change under
//! it (issue 13): a source topic that grows, a rolling restart of a
//! three-broker source, a destination broker that drops out during
//! set-up. Real Apache Kafka clusters; records produced and read back with
//! librdkafka. Needs Apache Kafka and the Python clients (`cargo xtask
//! brokers`).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use kmirror_test_support::{
    ClusterOptions, ConsumedRecord, KafkaCluster, ProduceSpec, assert_same_records,
    librdkafka_consume_all, librdkafka_create_topic, librdkafka_list_topics, librdkafka_produce,
};

mod common;

use common::{Mirror, Scratch, partition_count, record_count, tail};

/// Polls until `topic` at `bootstrap` holds `expected` records in total;
/// panics with kmirror's output if it does not within `timeout`, or if
/// kmirror exits.
fn wait_for_records(
    bootstrap: &str,
    topic: &str,
    expected: i64,
    timeout: Duration,
    mirror: &mut Mirror,
) {
    let deadline = Instant::now() + timeout;
    let mut last = 0;
    while Instant::now() < deadline {
        last = record_count(bootstrap, topic);
        if last >= expected {
            return;
        }
        mirror.assert_running(&format!("while {topic} held {last} of {expected} records"));
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "{topic} at {bootstrap} holds {last} of {expected} records after {timeout:?}; kmirror's \
         stderr:\n{}",
        tail(&mirror.stderr_now(), 6000)
    );
}

/// Grows `topic` to `partitions` with Apache Kafka's own tool.
fn grow(cluster: &KafkaCluster, topic: &str, partitions: i32) {
    let n = partitions.to_string();
    cluster.tool_ok(
        "kafka-topics",
        &[
            "--bootstrap-server",
            &cluster.bootstrap(),
            "--alter",
            "--topic",
            topic,
            "--partitions",
            &n,
        ],
    );
}

/// Item 3: a source topic grown from 4 to 6 partitions while kmirror runs
/// is grown on the destination (which had the same count) and its new
/// partitions are mirrored, each to the same partition; then, with
/// kmirror stopped, grown to 8, and `kmirror --once` started afterwards
/// grows the destination again and ends with everything copied.
#[test]
fn a_source_topic_that_grows_is_grown_at_the_destination_and_mirrored() {
    let source_cluster = KafkaCluster::start(ClusterOptions::kraft().name("grow-source"));
    let source = source_cluster.bootstrap();
    let destination_cluster = KafkaCluster::start(ClusterOptions::kraft().name("grow-destination"));
    let destination = destination_cluster.bootstrap();
    librdkafka_create_topic(&source, "growing", 4, &[]);
    librdkafka_produce(
        &source,
        "growing",
        &ProduceSpec::default().count(200).partitions(4),
    );
    let scratch = Scratch::new(
        &format!("bootstrap.servers={source}\ngroup.id=grower\nmetadata.max.age.ms=1000\n"),
        &format!("bootstrap.servers={destination}\n"),
    );
    let mut mirror = scratch.spawn(&["--whitelist", "growing"]);
    wait_for_records(
        &destination,
        "growing",
        200,
        Duration::from_secs(60),
        &mut mirror,
    );
    assert_eq!(partition_count(&destination, "growing"), 4);

    grow(&source_cluster, "growing", 6);
    librdkafka_produce(
        &source,
        "growing",
        &ProduceSpec::default()
            .count(300)
            .value_size(120)
            .partitions(6),
    );
    wait_for_records(
        &destination,
        "growing",
        500,
        Duration::from_secs(60),
        &mut mirror,
    );
    mirror.signal("-TERM");
    let exited = mirror.wait(Duration::from_secs(60));
    exited.assert_success();
    assert_eq!(partition_count(&destination, "growing"), 6);
    assert_same_records(
        &librdkafka_consume_all(&source, "growing"),
        &librdkafka_consume_all(&destination, "growing"),
    );

    // Grown while kmirror is stopped; --once started afterwards.
    grow(&source_cluster, "growing", 8);
    librdkafka_produce(
        &source,
        "growing",
        &ProduceSpec::default()
            .count(160)
            .value_size(140)
            .partitions(8),
    );
    let exited = scratch
        .spawn(&["--whitelist", "growing", "--once"])
        .wait(Duration::from_secs(120));
    exited.assert_success();
    assert_eq!(partition_count(&destination, "growing"), 8);
    assert_same_records(
        &librdkafka_consume_all(&source, "growing"),
        &librdkafka_consume_all(&destination, "growing"),
    );
}

/// Per partition, the destination holds every source record, the first
/// copy of each in the source's order (later copies are at-least-once
/// duplicates); returns the duplicates. Values must be distinct per
/// partition at the source.
fn assert_nothing_lost(
    source: &BTreeMap<i32, Vec<ConsumedRecord>>,
    destination: &BTreeMap<i32, Vec<ConsumedRecord>>,
) -> usize {
    let mut duplicates = 0;
    for (partition, expected) in source {
        let got = destination
            .get(partition)
            .unwrap_or_else(|| panic!("partition {partition} missing at the destination"));
        let mut seen = HashSet::new();
        let firsts: Vec<&Option<Vec<u8>>> = got
            .iter()
            .map(|r| &r.value)
            .filter(|v| seen.insert(*v))
            .collect();
        duplicates += got.len() - firsts.len();
        let wanted: Vec<&Option<Vec<u8>>> = expected.iter().map(|r| &r.value).collect();
        assert_eq!(
            firsts.len(),
            wanted.len(),
            "partition {partition}: {} distinct records at the destination, {} at the source",
            firsts.len(),
            wanted.len()
        );
        assert!(
            firsts == wanted,
            "partition {partition}: records differ or order broken"
        );
    }
    duplicates
}

/// Item 11: a rolling restart (graceful stop, start) of each broker of a
/// three-broker source in turn while kmirror runs and records keep
/// coming: the group coordinator moves, kmirror rejoins, keeps going and
/// loses nothing.
#[test]
fn a_rolling_restart_of_the_source_is_ridden_through() {
    let mut source_cluster =
        KafkaCluster::start(ClusterOptions::three_brokers().name("rolling-source"));
    let source = source_cluster.bootstrap();
    let destination_cluster =
        KafkaCluster::start(ClusterOptions::kraft().name("rolling-destination"));
    let destination = destination_cluster.bootstrap();
    source_cluster.create_topic("rolling", 3, 3, &[]);
    let mut produced = 0;
    let mut size = 100;
    let mut produce = |n: u64| {
        // A new value size each round keeps every value distinct.
        size += 1;
        librdkafka_produce(
            &source,
            "rolling",
            &ProduceSpec::default()
                .count(n)
                .value_size(size)
                .partitions(3)
                .config("acks", "all"),
        );
        produced += i64::try_from(n).unwrap();
        produced
    };
    let total = produce(600);
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={source}\ngroup.id=rolling\nmetadata.max.age.ms=1000\nrequest.timeout.ms=5000\n"
        ),
        &format!("bootstrap.servers={destination}\nrequest.timeout.ms=5000\n"),
    );
    let mut mirror = scratch.spawn(&["--whitelist", "rolling"]);
    wait_for_records(
        &destination,
        "rolling",
        total,
        Duration::from_secs(60),
        &mut mirror,
    );
    for id in source_cluster.all_ids() {
        source_cluster.stop(id);
        let total = produce(300);
        wait_for_records(
            &destination,
            "rolling",
            total,
            Duration::from_secs(90),
            &mut mirror,
        );
        source_cluster.restart(id);
        // Past a heartbeat or two with the broker back.
        std::thread::sleep(Duration::from_secs(8));
        mirror.assert_running(&format!("after source broker {id} restarted"));
    }
    let total = produce(300);
    wait_for_records(
        &destination,
        "rolling",
        total,
        Duration::from_secs(90),
        &mut mirror,
    );
    mirror.assert_running("after the rolling restart");
    mirror.signal("-TERM");
    let exited = mirror.wait(Duration::from_secs(60));
    exited.assert_success();
    let duplicates = assert_nothing_lost(
        &librdkafka_consume_all(&source, "rolling"),
        &librdkafka_consume_all(&destination, "rolling"),
    );
    eprintln!("rolling restart of the source: nothing lost, {duplicates} duplicates of {total}");
}

/// Item 12: the destination broker goes away a moment after kmirror
/// reached it (while kmirror joins its group on the source, which takes a
/// few seconds here) and comes back: kmirror sets up and mirrors anyway.
#[test]
fn a_destination_restarted_during_set_up_is_waited_for() {
    // A slow first join, as Apache Kafka's default
    // group.initial.rebalance.delay.ms gives: the window in which the
    // destination drops out.
    let source_cluster = KafkaCluster::start(
        ClusterOptions::kraft()
            .name("setup-source")
            .config("group.initial.rebalance.delay.ms", "5000"),
    );
    let source = source_cluster.bootstrap();
    let mut destination_cluster =
        KafkaCluster::start(ClusterOptions::kraft().name("setup-destination"));
    let destination = destination_cluster.bootstrap();
    librdkafka_create_topic(&source, "setup", 4, &[]);
    librdkafka_produce(
        &source,
        "setup",
        &ProduceSpec::default().count(400).partitions(4),
    );
    let scratch = Scratch::new(
        &format!("bootstrap.servers={source}\ngroup.id=setup\n"),
        &format!("bootstrap.servers={destination}\n"),
    );
    let mut mirror = scratch.spawn(&["--whitelist", "setup"]);
    // kmirror reaches both clusters within a second, then joins its group.
    std::thread::sleep(Duration::from_millis(1500));
    mirror.assert_running("before the destination went away");
    destination_cluster.kill(1);
    std::thread::sleep(Duration::from_secs(5));
    destination_cluster.restart(1);
    wait_for_records(
        &destination,
        "setup",
        400,
        Duration::from_secs(90),
        &mut mirror,
    );
    mirror.signal("-TERM");
    let exited = mirror.wait(Duration::from_secs(60));
    exited.assert_success();
    assert_same_records(
        &librdkafka_consume_all(&source, "setup"),
        &librdkafka_consume_all(&destination, "setup"),
    );
}

/// Item 3: the destination topic deleted while kmirror mirrors into it is
/// created again (within kmirror's 10 s check) and what the source gets
/// afterwards arrives there, in order; kmirror does not hang.
#[test]
fn a_destination_topic_deleted_mid_run_is_created_again() {
    let source_cluster = KafkaCluster::start(ClusterOptions::kraft().name("doomed-source"));
    let source = source_cluster.bootstrap();
    let destination_cluster =
        KafkaCluster::start(ClusterOptions::kraft().name("doomed-destination"));
    let destination = destination_cluster.bootstrap();
    librdkafka_create_topic(&source, "doomed", 3, &[]);
    librdkafka_produce(
        &source,
        "doomed",
        &ProduceSpec::default().count(90).partitions(3),
    );
    let scratch = Scratch::new(
        &format!("bootstrap.servers={source}\ngroup.id=doomed\n"),
        &format!("bootstrap.servers={destination}\n"),
    );
    let mut mirror = scratch.spawn(&["--whitelist", "doomed"]);
    wait_for_records(
        &destination,
        "doomed",
        90,
        Duration::from_secs(60),
        &mut mirror,
    );
    destination_cluster.tool_ok(
        "kafka-topics",
        &[
            "--bootstrap-server",
            &destination,
            "--delete",
            "--topic",
            "doomed",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while record_count(&destination, "doomed") > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let later = 150;
    librdkafka_produce(
        &source,
        "doomed",
        &ProduceSpec::default()
            .count(later)
            .value_size(130)
            .partitions(3),
    );
    wait_for_records(
        &destination,
        "doomed",
        i64::try_from(later).unwrap(),
        Duration::from_secs(90),
        &mut mirror,
    );
    mirror.signal("-TERM");
    let exited = mirror.wait(Duration::from_secs(60));
    assert_eq!(exited.code, Some(0), "{}", exited.context());
    assert!(
        exited
            .stderr
            .contains("the destination topic was deleted while kmirror mirrored into it"),
        "{}",
        exited.context()
    );
    assert_eq!(partition_count(&destination, "doomed"), 3);
    // The records produced after the deletion, per partition, in order.
    let source_later: BTreeMap<i32, Vec<ConsumedRecord>> =
        librdkafka_consume_all(&source, "doomed")
            .into_iter()
            .map(|(p, records)| {
                let kept = records
                    .into_iter()
                    .filter(|r| r.value.as_ref().is_some_and(|v| v.len() == 130))
                    .collect();
                (p, kept)
            })
            .collect();
    assert_nothing_lost(
        &source_later,
        &librdkafka_consume_all(&destination, "doomed"),
    );
}

/// Item 11: the source broker (the group's coordinator) restarted while
/// kmirror is in JoinGroup (a slow first join, as with Apache Kafka's
/// default group.initial.rebalance.delay.ms): the connection is lost
/// mid-join, FindCoordinator and JoinGroup are refused for a while, and
/// kmirror joins once the broker is back instead of ending the run.
#[test]
fn a_source_restarted_while_kmirror_joins_its_group_is_waited_for() {
    let mut source_cluster = KafkaCluster::start(
        ClusterOptions::kraft()
            .name("join-source")
            .config("group.initial.rebalance.delay.ms", "5000"),
    );
    let source = source_cluster.bootstrap();
    let destination_cluster = KafkaCluster::start(ClusterOptions::kraft().name("join-destination"));
    let destination = destination_cluster.bootstrap();
    librdkafka_create_topic(&source, "joining", 2, &[]);
    librdkafka_produce(
        &source,
        "joining",
        &ProduceSpec::default().count(200).partitions(2),
    );
    let scratch = Scratch::new(
        &format!("bootstrap.servers={source}\ngroup.id=joining\n"),
        &format!("bootstrap.servers={destination}\n"),
    );
    let mut mirror = scratch.spawn(&["--whitelist", "joining"]);
    // kmirror is waiting in JoinGroup for the rebalance delay.
    std::thread::sleep(Duration::from_millis(2500));
    mirror.assert_running("before the source went away");
    source_cluster.kill(1);
    std::thread::sleep(Duration::from_secs(4));
    source_cluster.restart(1);
    wait_for_records(
        &destination,
        "joining",
        200,
        Duration::from_secs(120),
        &mut mirror,
    );
    mirror.signal("-TERM");
    let exited = mirror.wait(Duration::from_secs(60));
    exited.assert_success();
    assert_same_records(
        &librdkafka_consume_all(&source, "joining"),
        &librdkafka_consume_all(&destination, "joining"),
    );
}

/// Item 9: a source topic deleted and created again while kmirror mirrors
/// it is told by its topic id: kmirror stops with a clear error instead of
/// fetching the old id for ever, and started again it mirrors the new
/// topic from auto.offset.reset (earliest here).
#[test]
fn a_source_topic_recreated_mid_run_is_told_and_mirrored_after_a_restart() {
    let source_cluster = KafkaCluster::start(ClusterOptions::kraft().name("phoenix-source"));
    let source = source_cluster.bootstrap();
    let destination_cluster =
        KafkaCluster::start(ClusterOptions::kraft().name("phoenix-destination"));
    let destination = destination_cluster.bootstrap();
    librdkafka_create_topic(&source, "phoenix", 2, &[]);
    librdkafka_produce(
        &source,
        "phoenix",
        &ProduceSpec::default().count(100).partitions(2),
    );
    let scratch = Scratch::new(
        &format!("bootstrap.servers={source}\ngroup.id=phoenix\n"),
        &format!("bootstrap.servers={destination}\n"),
    );
    let mut mirror = scratch.spawn(&["--whitelist", "phoenix"]);
    wait_for_records(
        &destination,
        "phoenix",
        100,
        Duration::from_secs(60),
        &mut mirror,
    );
    source_cluster.tool_ok(
        "kafka-topics",
        &[
            "--bootstrap-server",
            &source,
            "--delete",
            "--topic",
            "phoenix",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while librdkafka_list_topics(&source)
        .iter()
        .any(|t| t == "phoenix")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    librdkafka_create_topic(&source, "phoenix", 2, &[]);
    librdkafka_produce(
        &source,
        "phoenix",
        &ProduceSpec::default()
            .count(40)
            .value_size(130)
            .partitions(2),
    );
    let exited = mirror.wait(Duration::from_secs(60));
    assert_ne!(exited.code, Some(0), "{}", exited.context());
    assert!(
        exited.stderr.contains("was deleted and created again"),
        "{}",
        exited.context()
    );
    let exited = scratch
        .spawn(&["--whitelist", "phoenix", "--once"])
        .wait(Duration::from_secs(120));
    assert_eq!(exited.code, Some(0), "{}", exited.context());
    assert_eq!(record_count(&destination, "phoenix"), 140);
}
