//! The three-broker KRaft cluster does what the failover tests rely on:
//! a leader can be moved to any replica, a killed broker loses its
//! leaderships and stays out of the ISR, and a restarted one comes back.

use std::time::Duration;

use kmirror_test_cluster::{ClusterOptions, Election, KafkaCluster, Listener, run_tool_ok};

#[test]
fn leaders_move_brokers_die_and_come_back() {
    let mut cluster = KafkaCluster::start(ClusterOptions::three_brokers());
    assert_eq!(cluster.metadata(&[]).brokers.len(), 3);
    cluster.create_topic("failover", 3, 3, &[]);
    for p in cluster.partitions("failover") {
        assert_eq!(
            p.replicas.len(),
            3,
            "replication factor 3 by default: {p:?}"
        );
        assert_eq!(p.isr.len(), 3, "every replica in sync at the start: {p:?}");
    }

    // Any replica can be made the leader of any partition.
    for target in [2, 3, 1] {
        cluster.move_leader("failover", 0, target);
        assert_eq!(cluster.leader("failover", 0), target);
    }

    // Some data, acknowledged by min.insync.replicas=2 of 3.
    let bootstrap = cluster.bootstrap();
    run_tool_ok(
        cluster.version(),
        "kafka-console-producer",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "failover",
            "--producer-property",
            "acks=all",
        ],
        Some("one\ntwo\nthree\n"),
    );

    // A crash: broker 1 leads partition 0; kill -9 moves its leadership
    // to another in-sync replica and drops it from the ISR.
    cluster.kill(1);
    assert!(!cluster.is_running(1));
    let after = cluster.wait_for_partition(
        "failover",
        0,
        Duration::from_secs(60),
        "led by a live broker",
        |p| p.leader > 1 && !p.isr.contains(&1),
    );
    assert_eq!(after.isr.len(), 2);

    // Restart: it registers again and catches up into the ISR; a preferred
    // election gives it its leadership back.
    cluster.restart(1);
    cluster.wait_for_partition(
        "failover",
        0,
        Duration::from_secs(60),
        "with broker 1 in sync",
        |p| p.isr.contains(&1),
    );
    cluster.elect("failover", 0, Election::Preferred);
    cluster.wait_for_partition(
        "failover",
        0,
        Duration::from_secs(60),
        "led by broker 1",
        |p| p.leader == 1,
    );

    // A graceful stop moves leadership away before the broker exits.
    cluster.stop(1);
    assert_ne!(cluster.leader("failover", 0), 1);

    // The records are all still there.
    let consumed = run_tool_ok(
        cluster.version(),
        "kafka-console-consumer",
        &[
            "--bootstrap-server",
            &cluster.broker_addr(2, Listener::Plaintext),
            "--topic",
            "failover",
            "--from-beginning",
            "--timeout-ms",
            "10000",
        ],
        None,
    );
    let mut lines: Vec<&str> = consumed.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["one", "three", "two"]);
}
