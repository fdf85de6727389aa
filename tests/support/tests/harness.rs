//! The support crate against the real tools: librdkafka (through the venv)
//! against an Apache Kafka cluster, the cluster's TLS listener with a
//! certificate made here with rcgen, SASL over TLS with Kafka's own users,
//! ZooKeeper's CLI, and python failures.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kmirror_test_support::{
    ClusterOptions, KafkaCluster, Listener, ZooKeeper, librdkafka_create_topic,
    librdkafka_list_topics, run_python,
};

/// A throwaway CA and a server certificate for 127.0.0.1 and localhost,
/// written as PEM files (the key as PKCS#8, what Kafka's PEM keystore
/// reads): (ca, cert, key).
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

/// The shared cluster's certificate files: (ca, cert, key).
fn pki() -> &'static (PathBuf, PathBuf, PathBuf) {
    static PKI: OnceLock<(PathBuf, PathBuf, PathBuf)> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = std::env::temp_dir()
            .join("kmirror-tests")
            .join(format!("harness-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        tls_files(&dir)
    })
}

/// One KRaft broker with TLS and SASL listeners (users bob and carol),
/// shared by every test here; each uses names of its own.
fn cluster() -> &'static KafkaCluster {
    KafkaCluster::shared("support-harness", || {
        let (_, cert, key) = pki();
        ClusterOptions::kraft()
            .tls(cert, key)
            .sasl_user("bob", "bob-secret")
            .sasl_user("carol", "carol-secret")
    })
}

const LOGIN: &str = r#"
import sys, json
from confluent_kafka.admin import AdminClient
conf = json.loads(sys.argv[1])
timeout = conf.pop("test.timeout", 10)
errors = []
conf["error_cb"] = lambda e: errors.append(str(e))
admin = AdminClient(conf)
try:
    md = admin.list_topics(timeout=timeout)
    print("ok", " ".join(f"{b.host}:{b.port}" for b in md.brokers.values()))
except Exception as e:
    admin.poll(1)  # serves error_cb: the reasons librdkafka logged
    print("refused", e, errors[:3])
"#;

/// librdkafka's verdict on connecting with `config` (JSON object text;
/// `test.timeout` is the wait in seconds, default 10): `ok ADDRS` with the
/// brokers' advertised addresses, or `refused ERROR [ERRORS]`.
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
    let ca = pki().0.display();
    format!(
        r#"{{"bootstrap.servers": "{bootstrap}", "security.protocol": "{protocol}", "ssl.ca.location": "{ca}", "sasl.mechanism": "{mechanism}", "sasl.username": "{user}", "sasl.password": "{password}""#
    )
}

#[test]
fn librdkafka_creates_and_lists_topics_on_a_kafka_cluster() {
    let kafka = cluster();
    let addr = kafka.bootstrap();
    librdkafka_create_topic(
        &addr,
        "harness-topic",
        3,
        &[("cleanup.policy", "compact"), ("retention.ms", "60000")],
    );
    let topics = librdkafka_list_topics(&addr);
    assert!(
        topics.iter().any(|t| t == "harness-topic"),
        "topics {topics:?}; broker log:\n{}",
        kafka.log(1)
    );
    // Kafka itself agrees: three partitions with leaders, and the configs.
    let partitions = kafka.partitions("harness-topic");
    assert_eq!(partitions.len(), 3, "{partitions:?}");
    assert!(partitions.iter().all(|p| p.leader == 1), "{partitions:?}");
    let configs = kafka.tool_ok(
        "kafka-configs",
        &[
            "--bootstrap-server",
            &addr,
            "--entity-type",
            "topics",
            "--entity-name",
            "harness-topic",
            "--describe",
        ],
    );
    assert!(
        configs.contains("cleanup.policy=compact") && configs.contains("retention.ms=60000"),
        "{configs}"
    );
}

#[test]
fn tls_only_listener() {
    let kafka = cluster();
    let ssl = kafka.bootstrap_for(Listener::Ssl);
    let ca = pki().0.display();
    // Trusted: Kafka advertises the SSL listener's own address.
    let tls = login(&format!(
        r#"{{"bootstrap.servers": "{ssl}", "security.protocol": "SSL", "ssl.ca.location": "{ca}"}}"#
    ));
    assert_eq!(tls.trim(), format!("ok {ssl}"), "log:\n{}", kafka.log(1));
    // The listener speaks TLS only: plaintext gets no answer.
    let plain = login(&format!(
        r#"{{"bootstrap.servers": "{ssl}", "test.timeout": 3}}"#
    ));
    assert!(plain.starts_with("refused"), "{plain}");
    // A CA that did not sign the certificate is refused by librdkafka.
    let other = std::env::temp_dir()
        .join("kmirror-tests")
        .join(format!("harness-other-pki-{}", std::process::id()));
    std::fs::create_dir_all(&other).unwrap();
    let (other_ca, _, _) = tls_files(&other);
    let untrusted = login(&format!(
        r#"{{"bootstrap.servers": "{ssl}", "security.protocol": "SSL", "ssl.ca.location": "{}", "test.timeout": 3}}"#,
        other_ca.display()
    ));
    std::fs::remove_dir_all(&other).unwrap();
    assert!(
        untrusted.starts_with("refused") && untrusted.contains("certificate verify failed"),
        "{untrusted}"
    );
}

#[test]
fn sasl_over_tls() {
    let kafka = cluster();
    let sasl_ssl = kafka.bootstrap_for(Listener::SaslSsl);
    for (user, password) in [("bob", "bob-secret"), ("carol", "carol-secret")] {
        for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            let config = sasl_config(&sasl_ssl, "SASL_SSL", mechanism, user, password);
            let verdict = login(&format!("{config}}}"));
            assert_eq!(
                verdict.trim(),
                format!("ok {sasl_ssl}"),
                "{user} with {mechanism}; log:\n{}",
                kafka.log(1)
            );
        }
    }
    // SASL_PLAINTEXT too, for the users the SCRAM credentials were made for.
    let sasl_plaintext = kafka.bootstrap_for(Listener::SaslPlaintext);
    let config = sasl_config(
        &sasl_plaintext,
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
        "bob",
        "bob-secret",
    );
    let verdict = login(&format!("{config}}}"));
    assert_eq!(verdict.trim(), format!("ok {sasl_plaintext}"));
    // Another user's password is refused, with Kafka's reason.
    for mechanism in ["PLAIN", "SCRAM-SHA-512"] {
        let config = sasl_config(&sasl_ssl, "SASL_SSL", mechanism, "bob", "carol-secret");
        let bad = login(&format!(r#"{config}, "test.timeout": 5}}"#));
        assert!(
            bad.starts_with("refused") && bad.contains("Authentication failed"),
            "{mechanism}: {bad}"
        );
    }
}

#[test]
fn python_failures_panic_with_stderr() {
    let failed = catch_unwind(AssertUnwindSafe(|| {
        run_python(
            "import sys; print('to stdout'); sys.exit('boom on stderr')",
            &["an-arg"],
        )
    }));
    let payload = failed.expect_err("a failing script must panic");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("python script failed"), "{message}");
    assert!(message.contains("boom on stderr"), "{message}");
    assert!(message.contains("to stdout"), "{message}");
    assert!(message.contains("an-arg"), "{message}");
}

#[test]
fn zookeeper_cli_creates_nodes() {
    let zk = ZooKeeper::start();
    zk.create(&[
        ("/kafka/brokers/ids/1", r#"{"a":"b c","n":1}"#),
        ("/kafka/brokers/ids/2", ""),
    ]);
    let output = zk.cli("get /kafka/brokers/ids/1\nls /kafka/brokers/ids\n");
    assert!(output.contains(r#"{"a":"b c","n":1}"#), "{output}");
    assert!(output.contains("[1, 2]"), "{output}");
    // Creating an existing node again is accepted (the CLI says it exists).
    zk.create(&[("/kafka/brokers/ids/2", "")]);
}
