//! Broker discovery through a real ZooKeeper server (Debian's `zookeeper`
//! package) holding registrations in Apache Kafka's format, written with
//! ZooKeeper's own CLI and pointing at a real nisshi broker.
//!
//! ZooKeeper must be installed (`apt-get install -y zookeeper`; CI's
//! `.ci/run` installs it): these tests fail, never skip, without it.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use kmirror_pool::PoolError;
use kmirror_pool::zookeeper::discover_brokers;
use kmirror_test_support::{
    Broker, BrokerOptions, ZooKeeper, free_port, librdkafka_create_topic, librdkafka_list_topics,
};

const TIMEOUT: Duration = Duration::from_secs(10);

fn start_zookeeper() -> ZooKeeper {
    assert!(
        ZooKeeper::is_installed(),
        "ZooKeeper is not installed on this machine; install Debian's package with \
         `apt-get update && apt-get install -y zookeeper` (CI's .ci/run does this)"
    );
    ZooKeeper::start()
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

#[tokio::test]
async fn discovers_a_real_broker_through_zookeeper() {
    let broker = Broker::start(BrokerOptions::memory().cluster_id("zk-source"));
    librdkafka_create_topic(&broker.addr(), "testtopic", 8, &[]);
    let zk = start_zookeeper();
    let nisshi_port = broker.port();
    let v4 = registration_v4(nisshi_port, 1);
    // Under a chroot: broker ids 2 and 10 (numeric order is not string
    // order), one with custom listener names, one in the legacy format, and
    // a child that is not a broker id.
    let custom = format!(
        r#"{{"features":{{}},"listener_security_protocol_map":{{"INTERNAL":"PLAINTEXT","EXTERNAL":"SASL_SSL"}},"endpoints":["EXTERNAL://127.0.0.1:2","INTERNAL://localhost:{nisshi_port}"],"jmx_port":-1,"host":null,"port":-1,"rack":"az1","timestamp":"1700000000000","version":5}}"#
    );
    let legacy = format!(
        r#"{{"jmx_port":-1,"timestamp":"1400000000000","host":"127.0.0.1","version":1,"port":{nisshi_port}}}"#
    );
    zk.create(&[
        ("/brokers/ids/1", &v4),
        ("/kafka/prod/brokers/ids/10", &legacy),
        ("/kafka/prod/brokers/ids/2", &custom),
        ("/kafka/prod/brokers/ids/not-an-id", "{}"),
        ("/empty/brokers/ids", ""),
    ]);
    let connect = zk.addr();

    // PLAINTEXT: the nisshi address, and it is a working bootstrap server.
    let brokers = discover_brokers(&connect, "PLAINTEXT", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(brokers, [broker.addr()]);
    let topics = librdkafka_list_topics(&brokers.join(","));
    assert!(topics.iter().any(|t| t == "testtopic"), "{topics:?}");

    // SSL: the SSL endpoint of the same registration.
    let brokers = discover_brokers(&connect, "ssl", TIMEOUT).await.unwrap();
    assert_eq!(brokers, ["127.0.0.1:1"]);

    // A protocol no broker has: a clear error naming ZooKeeper and the
    // endpoints that exist.
    let (reported, reason) = zookeeper_error(discover_brokers(&connect, "SASL_SSL", TIMEOUT).await);
    assert_eq!(reported, connect);
    assert!(
        reason.contains(&format!(
            r#"broker 1 has no SASL_SSL endpoint; its endpoints are ["PLAINTEXT://127.0.0.1:{nisshi_port}", "SSL://127.0.0.1:1"]"#
        )),
        "{reason}"
    );

    // The chroot, with and without a trailing slash; brokers in id order.
    for chroot in ["/kafka/prod", "/kafka/prod/"] {
        let brokers = discover_brokers(&format!("{connect}{chroot}"), "PLAINTEXT", TIMEOUT)
            .await
            .unwrap();
        assert_eq!(
            brokers,
            [
                format!("localhost:{nisshi_port}"),
                format!("127.0.0.1:{nisshi_port}")
            ]
        );
    }
    let brokers = discover_brokers(&format!("{connect}/kafka/prod"), "SASL_SSL", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(brokers, ["127.0.0.1:2"]);
    let topics = librdkafka_list_topics(&format!("localhost:{nisshi_port}"));
    assert!(topics.iter().any(|t| t == "testtopic"), "{topics:?}");

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
    assert_eq!(brokers, [broker.addr()]);

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

/// The HDInsight guide's consumer.properties has only `zookeeper.connect`
/// and `group.id`: a cluster client built from exactly that finds the
/// brokers through ZooKeeper and reads the topic the guide creates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_consumer_properties_reach_the_cluster_through_zookeeper() {
    let broker = Broker::start(BrokerOptions::memory());
    librdkafka_create_topic(&broker.addr(), "testtopic", 8, &[]);
    let zk = start_zookeeper();
    zk.create(&[("/brokers/ids/1", &registration_v4(broker.port(), 1))]);

    let props = kmirror_pool::Properties::parse(&format!(
        "zookeeper.connect={}\ngroup.id=mirrorgroup\n",
        zk.addr()
    ))
    .unwrap();
    let parsed = kmirror_pool::ClientConfig::from_properties(&props, &["group.id"]).unwrap();
    assert!(parsed.unknown_keys.is_empty(), "{:?}", parsed.unknown_keys);
    let cluster = kmirror_pool::Cluster::connect(parsed.config).await.unwrap();
    assert_eq!(cluster.bootstrap_servers(), [broker.addr()]);
    let metadata = cluster.metadata().await.unwrap();
    assert_eq!(metadata.topics["testtopic"].partitions.len(), 8);
}
