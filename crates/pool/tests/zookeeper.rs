//! Broker discovery through ZooKeeper: hand-made registrations in Apache
//! Kafka's formats (chroots, odd JSON) written with ZooKeeper's own CLI, and
//! the registrations of a real Apache Kafka 3.9 cluster in ZooKeeper mode
//! (what HDInsight users point kmirror at). The ZooKeeper server is the one
//! from Kafka 3.9's classpath, run by the test harness.

mod common;

use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kmirror_pool::PoolError;
use kmirror_pool::zookeeper::discover_brokers;
use kmirror_test_support::{
    ClusterOptions, KafkaCluster, KafkaVersion, Listener, ZooKeeper, free_port,
    librdkafka_create_topic, librdkafka_list_topics,
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The certificates of the shared cluster's SSL listeners.
fn pki() -> &'static common::Pki {
    static PKI: OnceLock<common::Pki> = OnceLock::new();
    PKI.get_or_init(|| common::Pki::new("zookeeper", &["127.0.0.1", "localhost"]))
}

/// One Apache Kafka 3.9 broker in ZooKeeper mode (registered under the
/// chroot `/kafka` of its own ZooKeeper) with all four listener kinds,
/// shared by every test here. The hand-made registrations live outside
/// that chroot, in the same ZooKeeper server.
fn cluster() -> &'static KafkaCluster {
    KafkaCluster::shared("pool-zookeeper", || {
        let (cert, key) = pki().server_files();
        ClusterOptions::new(KafkaVersion::V3_9)
            .tls(cert, key)
            .sasl_user("hdi", "hdi-secret")
    })
}

fn zookeeper(kafka: &KafkaCluster) -> &ZooKeeper {
    kafka
        .zookeeper()
        .expect("a ZooKeeper-mode cluster has ZooKeeper")
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// A registration as a Kafka 2.x/3.x broker in ZooKeeper mode writes it
/// (version 4), with a PLAINTEXT and an SSL listener.
fn registration_v4(plaintext_port: u16, ssl_port: u16) -> String {
    format!(
        r#"{{"listener_security_protocol_map":{{"PLAINTEXT":"PLAINTEXT","SSL":"SSL"}},"endpoints":["PLAINTEXT://127.0.0.1:{plaintext_port}","SSL://127.0.0.1:{ssl_port}"],"jmx_port":-1,"host":"127.0.0.1","timestamp":"1700000000000","port":{plaintext_port},"version":4}}"#
    )
}

/// Unwraps a discovery error into its two fields.
fn zookeeper_error(result: Result<Vec<String>, PoolError>) -> (String, String) {
    match result {
        Err(PoolError::ZooKeeper { connect, reason }) => (connect, reason),
        other => panic!("expected a ZooKeeper error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_hand_made_registrations_through_zookeeper() {
    let kafka = cluster();
    let broker_addr = kafka.bootstrap();
    librdkafka_create_topic(&broker_addr, "hand-made", 8, &[]);
    let zk = zookeeper(kafka);
    let kafka_port = port_of(&broker_addr);
    let v4 = registration_v4(kafka_port, 1);
    // Under a chroot: broker ids 2 and 10 (numeric order is not string
    // order), one with custom listener names, one in the legacy format, and
    // a child that is not a broker id.
    let custom = format!(
        r#"{{"features":{{}},"listener_security_protocol_map":{{"INTERNAL":"PLAINTEXT","EXTERNAL":"SASL_SSL"}},"endpoints":["EXTERNAL://127.0.0.1:2","INTERNAL://localhost:{kafka_port}"],"jmx_port":-1,"host":null,"port":-1,"rack":"az1","timestamp":"1700000000000","version":5}}"#
    );
    let legacy = format!(
        r#"{{"jmx_port":-1,"timestamp":"1400000000000","host":"127.0.0.1","version":1,"port":{kafka_port}}}"#
    );
    zk.create(&[
        ("/brokers/ids/1", &v4),
        ("/hand/prod/brokers/ids/10", &legacy),
        ("/hand/prod/brokers/ids/2", &custom),
        ("/hand/prod/brokers/ids/not-an-id", "{}"),
        ("/empty/brokers/ids", ""),
    ]);
    let connect = zk.addr();

    // PLAINTEXT: the Kafka broker's address, and it is a working bootstrap
    // server.
    let brokers = discover_brokers(&connect, "PLAINTEXT", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(brokers, std::slice::from_ref(&broker_addr));
    let topics = librdkafka_list_topics(&brokers.join(","));
    assert!(topics.iter().any(|t| t == "hand-made"), "{topics:?}");

    // SSL: the SSL endpoint of the same registration.
    let brokers = discover_brokers(&connect, "ssl", TIMEOUT).await.unwrap();
    assert_eq!(brokers, ["127.0.0.1:1"]);

    // A protocol no broker has: a clear error naming ZooKeeper and the
    // endpoints that exist.
    let (reported, reason) = zookeeper_error(discover_brokers(&connect, "SASL_SSL", TIMEOUT).await);
    assert_eq!(reported, connect);
    assert!(
        reason.contains(&format!(
            r#"broker 1 has no SASL_SSL endpoint; its endpoints are ["PLAINTEXT://127.0.0.1:{kafka_port}", "SSL://127.0.0.1:1"]"#
        )),
        "{reason}"
    );

    // The chroot, with and without a trailing slash; brokers in id order.
    for chroot in ["/hand/prod", "/hand/prod/"] {
        let brokers = discover_brokers(&format!("{connect}{chroot}"), "PLAINTEXT", TIMEOUT)
            .await
            .unwrap();
        assert_eq!(
            brokers,
            [
                format!("localhost:{kafka_port}"),
                format!("127.0.0.1:{kafka_port}")
            ]
        );
    }
    let brokers = discover_brokers(&format!("{connect}/hand/prod"), "SASL_SSL", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(brokers, ["127.0.0.1:2"]);
    let topics = librdkafka_list_topics(&format!("localhost:{kafka_port}"));
    assert!(topics.iter().any(|t| t == "hand-made"), "{topics:?}");

    // A chroot without a cluster, and a cluster without brokers.
    let (_, reason) = zookeeper_error(
        discover_brokers(&format!("{connect}/nothing"), "PLAINTEXT", TIMEOUT).await,
    );
    assert!(
        reason.starts_with("no broker registered under /nothing/brokers/ids"),
        "{reason}"
    );
    let (_, reason) =
        zookeeper_error(discover_brokers(&format!("{connect}/empty"), "PLAINTEXT", TIMEOUT).await);
    assert_eq!(reason, "no broker registered under /empty/brokers/ids");
    let (_, reason) = zookeeper_error(discover_brokers(&connect, "TLS", TIMEOUT).await);
    assert!(reason.contains("unknown security protocol"), "{reason}");

    // A dead server first in the list: the next one answers.
    let dead = free_port();
    let brokers = discover_brokers(&format!("127.0.0.1:{dead},{connect}"), "PLAINTEXT", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(brokers, std::slice::from_ref(&broker_addr));

    // Many sessions one after another: each one is closed, none leaks.
    for _ in 0..20 {
        discover_brokers(&connect, "PLAINTEXT", TIMEOUT)
            .await
            .unwrap();
    }
    let stat = zk.cli("ls /brokers/ids\n");
    assert!(stat.contains("[1]"), "{stat}");
}

#[tokio::test]
async fn unreachable_zookeeper_fails_within_the_timeout() {
    // Nothing listens: refused at once, named in the error.
    let port = free_port();
    let connect = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let (reported, reason) =
        zookeeper_error(discover_brokers(&connect, "PLAINTEXT", Duration::from_secs(2)).await);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(reported, connect);
    assert!(reason.contains(&connect), "{reason}");
    assert!(reason.contains("cannot connect"), "{reason}");

    // A socket that accepts (the kernel's backlog) but never answers: the
    // timeout bounds the whole discovery.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let connect = format!("{},{}", silent.local_addr().unwrap(), "127.0.0.1:1");
    let started = Instant::now();
    let error = discover_brokers(&connect, "PLAINTEXT", Duration::from_millis(800))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "broker discovery through ZooKeeper at {connect} failed"
        )),
        "{message}"
    );
    assert!(
        message.contains("no answer before the deadline"),
        "{message}"
    );
    assert!(message.contains("check zookeeper.connect"), "{message}");

    // A malformed connect string is refused before any connection.
    let (_, reason) = zookeeper_error(discover_brokers("zk:notaport", "PLAINTEXT", TIMEOUT).await);
    assert!(reason.contains("malformed port"), "{reason}");
}

/// Kafka 3.9 in ZooKeeper mode registers every listener (version 5 JSON
/// with `features`); each security protocol finds its own endpoint, and the
/// SASL_SSL one is a working bootstrap server for SCRAM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_every_listener_of_a_real_kafka_3_9_in_zookeeper_mode() {
    let kafka = cluster();
    let connect = kafka.zookeeper_connect();
    let registration = zookeeper(kafka).cli("get /kafka/brokers/ids/1\n");
    assert!(
        registration.contains(r#""version":5"#) && registration.contains("SASL_SSL://"),
        "what Kafka 3.9 registers: {registration}"
    );
    for (protocol, listener) in [
        ("PLAINTEXT", Listener::Plaintext),
        ("SSL", Listener::Ssl),
        ("SASL_PLAINTEXT", Listener::SaslPlaintext),
        ("SASL_SSL", Listener::SaslSsl),
    ] {
        let brokers = discover_brokers(&connect, protocol, TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{protocol}: {e}\n--- registration:\n{registration}"));
        assert_eq!(brokers, [kafka.bootstrap_for(listener)], "{protocol}");
    }

    let props = kmirror_pool::Properties::parse(&format!(
        "zookeeper.connect={connect}\nsecurity.protocol=SASL_SSL\nssl.ca.location={}\n\
         sasl.mechanism=SCRAM-SHA-512\n\
         sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"hdi\" password=\"hdi-secret\";\n",
        pki().ca()
    ))
    .unwrap();
    let parsed = kmirror_pool::ClientConfig::from_properties(&props, &[]).unwrap();
    let cluster = kmirror_pool::Cluster::connect(parsed.config)
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- broker log:\n{}", kafka.log(1)));
    assert_eq!(
        cluster.bootstrap_servers(),
        [kafka.bootstrap_for(Listener::SaslSsl)]
    );
    let metadata = cluster.metadata().await.unwrap();
    assert_eq!(metadata.brokers.len(), 1);
    assert_eq!(
        metadata.brokers[&1].addr,
        kafka.bootstrap_for(Listener::SaslSsl)
    );
}

/// The HDInsight guide's consumer.properties has only `zookeeper.connect`
/// and `group.id`: a cluster client built from exactly that finds the
/// brokers of a real ZooKeeper-mode Kafka and reads the topic the guide
/// creates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_consumer_properties_reach_the_cluster_through_zookeeper() {
    let kafka = cluster();
    librdkafka_create_topic(&kafka.bootstrap(), "testtopic", 8, &[]);

    let props = kmirror_pool::Properties::parse(&format!(
        "zookeeper.connect={}\ngroup.id=mirrorgroup\n",
        kafka.zookeeper_connect()
    ))
    .unwrap();
    let parsed = kmirror_pool::ClientConfig::from_properties(&props, &["group.id"]).unwrap();
    assert!(parsed.unknown_keys.is_empty(), "{:?}", parsed.unknown_keys);
    let cluster = kmirror_pool::Cluster::connect(parsed.config).await.unwrap();
    assert_eq!(cluster.bootstrap_servers(), [kafka.bootstrap()]);
    let metadata = cluster.metadata().await.unwrap();
    assert_eq!(metadata.topics["testtopic"].partitions.len(), 8);
}

/// Kafka 2.1 (what HDInsight 4.0 runs) registers in the older version 4
/// JSON and knows only old request versions (ApiVersions up to v2, so it
/// answers kmirror's first ApiVersions with UNSUPPORTED_VERSION in v0):
/// discovery, version negotiation and metadata still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_and_negotiates_with_a_real_kafka_2_1() {
    use kmirror_pool::protocol::kafka_protocol::messages::ApiKey;
    let kafka = KafkaCluster::start(ClusterOptions::new(KafkaVersion::V2_1).name("pool-zk-2-1"));
    kafka.create_topic("old-topic", 3, 1, &[]);
    let registration = zookeeper(&kafka).cli("get /kafka/brokers/ids/1\n");
    assert!(
        registration.contains(r#""version":4"#),
        "what Kafka 2.1 registers: {registration}"
    );
    let props = kmirror_pool::Properties::parse(&format!(
        "zookeeper.connect={}\ngroup.id=mirrorgroup\n",
        kafka.zookeeper_connect()
    ))
    .unwrap();
    let parsed = kmirror_pool::ClientConfig::from_properties(&props, &["group.id"]).unwrap();
    let cluster = kmirror_pool::Cluster::connect(parsed.config)
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- broker log:\n{}", kafka.log(1)));
    assert_eq!(cluster.bootstrap_servers(), [kafka.bootstrap()]);
    let metadata = cluster.metadata().await.unwrap();
    assert_eq!(metadata.topics["old-topic"].partitions.len(), 3);
    assert_eq!(
        metadata.topics["old-topic"].id, [0; 16],
        "no topic ids in 2.1"
    );
    let conn = cluster.connection_to_broker(1).await.unwrap();
    // Kafka 2.1's highest versions (its ApiVersions answer).
    assert_eq!(conn.versions().version(ApiKey::Metadata).unwrap(), 7);
    assert_eq!(conn.versions().version(ApiKey::Fetch).unwrap(), 10);
    assert_eq!(conn.versions().version(ApiKey::Produce).unwrap(), 7);
    // Changed from nisshi, which named a coordinator at once: Apache Kafka
    // answers the first FindCoordinator of a fresh cluster with
    // COORDINATOR_NOT_AVAILABLE while it creates __consumer_offsets
    // (KafkaApis.handleFindCoordinatorRequest). The pool reports it as a
    // typed, retriable error; waiting is the caller's (the engine's
    // find_coordinator) business, as it is here.
    let deadline = Instant::now() + Duration::from_secs(30);
    let coordinator = loop {
        match cluster.coordinator("mirrorgroup").await {
            Ok(id) => break id,
            Err(PoolError::Kafka { error, .. })
                if error.is_retriable() && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no coordinator: {e}"),
        }
    };
    assert_eq!(coordinator, 1);
}
