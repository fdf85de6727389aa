//! One-broker clusters of every pinned version and mode start, serve
//! Kafka's own tools, and log users in over SASL the way operators set
//! them up.

use kmirror_test_cluster::{
    ClusterOptions, KafkaCluster, KafkaVersion, Listener, Mode, run_tool_ok,
};

/// Produces three lines with Kafka's console producer and reads them back
/// with its console consumer, both of `tools`' version.
fn round_trip(
    cluster: &KafkaCluster,
    tools: KafkaVersion,
    topic: &str,
    client_config: Option<&str>,
) {
    let (bootstrap, config_args) = match client_config {
        None => (cluster.bootstrap(), Vec::new()),
        Some(config) => {
            let path = cluster.dir().join(format!("{topic}-client.properties"));
            std::fs::write(&path, config).expect("write the client config");
            (
                cluster.bootstrap_for(Listener::SaslPlaintext),
                vec![path.display().to_string()],
            )
        }
    };
    let mut produce = vec!["--bootstrap-server", bootstrap.as_str(), "--topic", topic];
    let mut consume = vec![
        "--bootstrap-server",
        bootstrap.as_str(),
        "--topic",
        topic,
        "--from-beginning",
        "--max-messages",
        "3",
        "--timeout-ms",
        "30000",
    ];
    if let Some(path) = config_args.first() {
        // 4.x deprecates --producer.config/--consumer.config for
        // --command-config, which older tools lack.
        produce.extend(["--command-config", path.as_str()]);
        consume.extend(["--command-config", path.as_str()]);
    }
    run_tool_ok(tools, "kafka-console-producer", &produce, Some("a\nb\nc\n"));
    let out = run_tool_ok(tools, "kafka-console-consumer", &consume, None);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["a", "b", "c"],
        "from {}",
        cluster.bootstrap()
    );
}

#[test]
fn kraft_4x_serves_kafkas_tools() {
    let cluster = KafkaCluster::start(ClusterOptions::kraft());
    assert_eq!(cluster.mode(), Mode::KRaft);
    cluster.create_topic("plain", 1, 1, &[]);
    round_trip(&cluster, KafkaVersion::NEWEST, "plain", None);
}

#[test]
fn zookeeper_mode_3_9_registers_brokers_in_zookeeper() {
    let cluster = KafkaCluster::start(ClusterOptions::new(KafkaVersion::V3_9));
    assert_eq!(cluster.mode(), Mode::ZooKeeper);
    let zk = cluster
        .zookeeper()
        .expect("a ZooKeeper-mode cluster has ZooKeeper");
    let ids = zk.cli("ls /kafka/brokers/ids\n");
    assert!(
        ids.contains("[1]"),
        "broker 1 registered under the chroot: {ids}"
    );
    cluster.create_topic("zk", 2, 1, &[]);
    round_trip(&cluster, KafkaVersion::V3_9, "zk", None);
}

#[test]
fn oldest_2_1_runs_on_this_java() {
    let cluster = KafkaCluster::start(ClusterOptions::new(KafkaVersion::V2_1));
    cluster.create_topic("old", 2, 1, &[]);
    // Today's tools against the old broker, as a migration would use them.
    round_trip(&cluster, KafkaVersion::NEWEST, "old", None);
}

#[test]
fn sasl_plain_and_scram_users_log_in() {
    let cluster = KafkaCluster::start(ClusterOptions::kraft().sasl_user("alice", "alice-secret"));
    cluster.create_topic("sasl", 1, 1, &[]);
    for (i, mechanism, module) in [
        (
            0,
            "PLAIN",
            "org.apache.kafka.common.security.plain.PlainLoginModule",
        ),
        (
            1,
            "SCRAM-SHA-256",
            "org.apache.kafka.common.security.scram.ScramLoginModule",
        ),
        (
            2,
            "SCRAM-SHA-512",
            "org.apache.kafka.common.security.scram.ScramLoginModule",
        ),
    ] {
        let topic = format!("sasl-{i}");
        cluster.create_topic(&topic, 1, 1, &[]);
        let config = format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism={mechanism}\n\
             sasl.jaas.config={module} required username=\"alice\" password=\"alice-secret\";\n"
        );
        round_trip(&cluster, KafkaVersion::NEWEST, &topic, Some(&config));
    }
    // A wrong password is refused.
    let path = cluster.dir().join("wrong.properties");
    std::fs::write(
        &path,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
         sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"nope\";\n",
    )
    .expect("write the client config");
    let out = kmirror_test_cluster::run_tool(
        KafkaVersion::NEWEST,
        "kafka-topics",
        &[
            "--bootstrap-server",
            &cluster.bootstrap_for(Listener::SaslPlaintext),
            "--command-config",
            &path.display().to_string(),
            "--list",
        ],
        None,
    );
    assert!(!out.success, "a wrong password must fail: {}", out.stdout);
    assert!(
        out.stderr.contains("Authentication failed")
            || out.stdout.contains("Authentication failed"),
        "{}",
        out.stderr
    );
}
