//! The support crate against the real tools: nisshi brokers with memory and
//! SQLite storage, librdkafka through the venv, ZooKeeper and its CLI.

use std::path::{Path, PathBuf};

use kmirror_test_support::{
    Broker, BrokerOptions, ZooKeeper, free_port, librdkafka_create_topic, librdkafka_list_topics,
    run_python,
};

#[test]
fn memory_broker_serves_librdkafka() {
    let broker = Broker::start(BrokerOptions::memory().cluster_id("harness-memory"));
    assert_eq!(broker.addr(), format!("127.0.0.1:{}", broker.port()));
    librdkafka_create_topic(
        &broker.addr(),
        "harness-topic",
        3,
        &[("cleanup.policy", "compact"), ("retention.ms", "60000")],
    );
    let topics = librdkafka_list_topics(&broker.addr());
    assert!(
        topics.iter().any(|t| t == "harness-topic"),
        "topics {topics:?}; broker log:\n{}",
        broker.log()
    );
}

#[test]
fn sqlite_broker_keeps_topics_across_kill_and_restart() {
    let mut broker = Broker::start(BrokerOptions::sqlite());
    let port = broker.port();
    librdkafka_create_topic(&broker.addr(), "durable", 2, &[]);
    broker.kill();
    assert!(!broker.is_running());
    assert!(
        std::net::TcpStream::connect(broker.addr()).is_err(),
        "a killed broker still accepts"
    );
    broker.restart();
    assert_eq!(broker.port(), port);
    assert!(broker.is_running());
    let topics = librdkafka_list_topics(&broker.addr());
    assert!(
        topics.iter().any(|t| t == "durable"),
        "topics after restart {topics:?}; broker log:\n{}",
        broker.log()
    );
}

#[test]
fn explicit_port_and_advertised_address() {
    let port = free_port();
    let broker = Broker::start(BrokerOptions::memory().port(port).advertised("localhost:1"));
    assert_eq!(broker.port(), port);
    // The metadata names the advertised address, not the listener.
    let brokers = run_python(
        r#"
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=30)
for b in md.brokers.values():
    print(f"{b.host}:{b.port}")
"#,
        &[&broker.addr()],
    );
    assert_eq!(brokers.trim(), "localhost:1", "log:\n{}", broker.log());
}

const LOGIN: &str = r#"
import sys, json
from confluent_kafka.admin import AdminClient
conf = json.loads(sys.argv[1])
timeout = conf.pop("test.timeout", 10)
try:
    md = AdminClient(conf).list_topics(timeout=timeout)
    print("ok", len(md.brokers))
except Exception as e:
    print("refused", e)
"#;

/// librdkafka's verdict on connecting with `config` (JSON object text;
/// `test.timeout` is the wait in seconds, default 10).
fn login(config: &str) -> String {
    run_python(LOGIN, &[config])
}

fn sasl_config(
    bootstrap: &str,
    protocol: &str,
    mechanism: &str,
    user: &str,
    password: &str,
) -> String {
    format!(
        r#"{{"bootstrap.servers": "{bootstrap}", "security.protocol": "{protocol}", "sasl.mechanism": "{mechanism}", "sasl.username": "{user}", "sasl.password": "{password}""#
    )
}

#[test]
fn scram_user_dance() {
    let broker = Broker::start_with_scram_user("alice", "alice-secret");
    let addr = broker.addr();
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let config = sasl_config(&addr, "SASL_PLAINTEXT", mechanism, "alice", "alice-secret");
        let good = login(&format!("{config}}}"));
        assert!(
            good.starts_with("ok 1"),
            "{mechanism}: {good}\nlog:\n{}",
            broker.log()
        );
    }
    let config = sasl_config(&addr, "SASL_PLAINTEXT", "SCRAM-SHA-512", "alice", "wrong");
    let bad = login(&format!(r#"{config}, "test.timeout": 3}}"#));
    assert!(bad.starts_with("refused"), "{bad}\nlog:\n{}", broker.log());
    let plain = login(&format!(
        r#"{{"bootstrap.servers": "{addr}", "test.timeout": 3}}"#
    ));
    assert!(
        plain.starts_with("refused"),
        "{plain}\nlog:\n{}",
        broker.log()
    );
}

/// A throwaway CA and a server certificate for 127.0.0.1 and localhost,
/// written as PEM files: (ca, cert, key).
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kmirror test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("kmirror-tests")
        .join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn tls_only_listener() {
    let dir = temp_dir("harness-tls");
    let (ca, cert, key) = tls_files(&dir);
    let broker = Broker::start(BrokerOptions::memory().tls(&cert, &key));
    let ca = ca.display();
    let addr = broker.addr();
    let tls = login(&format!(
        r#"{{"bootstrap.servers": "{addr}", "security.protocol": "SSL", "ssl.ca.location": "{ca}"}}"#
    ));
    assert!(tls.starts_with("ok 1"), "{tls}\nlog:\n{}", broker.log());
    let plain = login(&format!(
        r#"{{"bootstrap.servers": "{addr}", "test.timeout": 3}}"#
    ));
    assert!(
        plain.starts_with("refused"),
        "{plain}\nlog:\n{}",
        broker.log()
    );
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sasl_over_tls() {
    let dir = temp_dir("harness-sasl-ssl");
    let (ca, cert, key) = tls_files(&dir);
    let broker = Broker::start_with_scram_users(
        BrokerOptions::sqlite().tls(&cert, &key),
        &[("bob", "bob-secret"), ("carol", "carol-secret")],
    );
    for (user, password) in [("bob", "bob-secret"), ("carol", "carol-secret")] {
        let config = sasl_config(&broker.addr(), "SASL_SSL", "SCRAM-SHA-512", user, password);
        let ca = ca.display();
        let verdict = login(&format!(r#"{config}, "ssl.ca.location": "{ca}"}}"#));
        assert!(
            verdict.starts_with("ok 1"),
            "{user}: {verdict}\nlog:\n{}",
            broker.log()
        );
    }
    drop(broker);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[should_panic(expected = "python script failed")]
fn python_failures_panic_with_stderr() {
    run_python("import sys; sys.exit('boom')", &[]);
}

#[test]
fn zookeeper_cli_creates_nodes() {
    if !ZooKeeper::is_installed() {
        panic!(
            "ZooKeeper is not installed: apt-get update && apt-get install -y zookeeper (CI installs it)"
        );
    }
    let zk = ZooKeeper::start();
    zk.create(&[
        ("/kafka/brokers/ids/1", r#"{"a":"b c","n":1}"#),
        ("/kafka/brokers/ids/2", ""),
    ]);
    let output = zk.cli("get /kafka/brokers/ids/1\nls /kafka/brokers/ids\n");
    assert!(output.contains(r#"{"a":"b c","n":1}"#), "{output}");
    assert!(output.contains("[1, 2]"), "{output}");
}
