//! TLS against an Apache Kafka SSL listener serving a certificate made in
//! the test (Kafka's PEM keystore): trusted, untrusted, hostname
//! verification on and off, and the wrong `security.protocol` either way.

mod common;

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kmirror_pool::{Cluster, PoolError};
use kmirror_test_support::{ClusterOptions, KafkaCluster, Listener};

/// The shared broker's certificates: the server certificate names only the
/// IP address 127.0.0.1 (the address Kafka advertises), not `localhost`.
fn pki() -> &'static common::Pki {
    static PKI: OnceLock<common::Pki> = OnceLock::new();
    PKI.get_or_init(|| common::Pki::new("tls", &["127.0.0.1"]))
}

/// One KRaft broker with an SSL listener, shared by every test here.
fn cluster() -> &'static KafkaCluster {
    KafkaCluster::shared("pool-tls", || {
        let (cert, key) = pki().server_files();
        ClusterOptions::kraft().tls(cert, key)
    })
}

fn tls_config(bootstrap: &str, ca: &str, extra: &str) -> kmirror_pool::ClientConfig {
    common::config(&format!(
        "bootstrap.servers={bootstrap}\nsecurity.protocol=SSL\nssl.ca.location={ca}\nrequest.timeout.ms=5000\n{extra}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_ca_connects_and_reads_metadata() {
    let kafka = cluster();
    let ssl = kafka.bootstrap_for(Listener::Ssl);
    let cluster = Cluster::connect(tls_config(&ssl, &pki().ca(), ""))
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- broker log:\n{}", kafka.log(1)));
    let metadata = cluster.metadata().await.unwrap();
    assert_eq!(metadata.brokers.len(), 1);
    // Kafka advertises the endpoint of the listener the request came in on.
    assert_eq!(metadata.brokers[&1].addr, ssl);
    let conn = cluster.connection_to_broker(1).await.unwrap();
    assert!(!conn.is_poisoned());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_is_refused_with_a_clear_error() {
    let kafka = cluster();
    let other = common::Pki::new("other", &["127.0.0.1"]);
    let ssl = kafka.bootstrap_for(Listener::Ssl);
    let started = Instant::now();
    let err = Cluster::connect(tls_config(&ssl, &other.ca(), ""))
        .await
        .unwrap_err();
    assert!(matches!(err, PoolError::Tls { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("ssl.ca.location"),
        "tells what to set: {message}"
    );
    assert!(message.contains(&ssl), "names the broker: {message}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "not retried until the timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_verification_is_on_by_default_and_can_be_turned_off() {
    // Changed from the nisshi version, which served a certificate for
    // "localhost" and connected to 127.0.0.1: here the certificate names
    // only 127.0.0.1 (what the shared broker advertises, so the other tests
    // can verify it) and this test connects by the name "localhost", which
    // resolves to the same listener. The mismatch is the same check.
    let kafka = cluster();
    let port = kafka
        .bootstrap_for(Listener::Ssl)
        .rsplit_once(':')
        .map(|(_, port)| port.to_owned())
        .unwrap();
    let by_name = format!("localhost:{port}");
    let err = Cluster::connect(tls_config(&by_name, &pki().ca(), ""))
        .await
        .unwrap_err();
    assert!(matches!(err, PoolError::Tls { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("ssl.endpoint.identification.algorithm"),
        "{err}"
    );

    let off = "ssl.endpoint.identification.algorithm=\n";
    let cluster = Cluster::connect(tls_config(&by_name, &pki().ca(), off))
        .await
        .unwrap();
    assert_eq!(cluster.metadata().await.unwrap().brokers.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_plaintext_listener_fails_at_once_naming_security_protocol() {
    // Apache Kafka reads the ClientHello as a frame size far above
    // socket.request.max.bytes and closes the connection
    // (InvalidReceiveException in NetworkReceive), so the handshake ends
    // with an EOF, not a protocol alert.
    let kafka = cluster();
    let started = Instant::now();
    let err = Cluster::connect(tls_config(&kafka.bootstrap(), &pki().ca(), ""))
        .await
        .unwrap_err();
    assert!(matches!(err, PoolError::Tls { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("security.protocol"), "{message}");
    assert!(message.contains(&kafka.bootstrap()), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_to_a_tls_listener_fails_naming_security_protocol() {
    // Apache Kafka's SslTransportLayer either answers a plaintext
    // ApiVersions with a TLS alert record (its SSLEngine rejects the bytes)
    // or waits for the rest of what it takes for a TLS record, so the
    // client sees a TLS record where a frame size belongs, or silence.
    // Either way the error must name security.protocol.
    let kafka = cluster();
    let ssl = kafka.bootstrap_for(Listener::Ssl);
    let started = Instant::now();
    let err = Cluster::connect(common::config(&format!(
        "bootstrap.servers={ssl}\nrequest.timeout.ms=3000\n"
    )))
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("security.protocol=SSL or SASL_SSL"),
        "{message}"
    );
    assert!(message.contains(&ssl), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn missing_ca_file_is_a_config_error_naming_it() {
    let broker_less = common::config(
        "bootstrap.servers=127.0.0.1:1\nsecurity.protocol=SSL\nssl.ca.location=/nonexistent/ca.pem\n",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(Cluster::connect(broker_less)).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    assert!(!Path::new("/nonexistent/ca.pem").exists());
}
