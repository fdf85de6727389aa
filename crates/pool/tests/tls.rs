//! TLS against a nisshi listener with a CA and server certificate made in
//! the test: trusted, untrusted, and hostname verification on and off.

mod common;

use std::path::Path;

use kmirror_pool::{Cluster, PoolError};
use kmirror_test_support::{Broker, BrokerOptions};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

struct Pki {
    dir: std::path::PathBuf,
}

impl Pki {
    /// A CA, and a server certificate it signs for `names`.
    fn new(tag: &str, names: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("kmirror-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap()
                .signed_by(&server_key, &ca, &ca_key)
                .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn broker(&self) -> Broker {
        Broker::start(
            BrokerOptions::memory().tls(self.dir.join("server.pem"), self.dir.join("server.key")),
        )
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_config(broker: &Broker, ca: &str, extra: &str) -> kmirror_pool::ClientConfig {
    common::config(&format!(
        "bootstrap.servers={}\nsecurity.protocol=SSL\nssl.ca.location={ca}\nrequest.timeout.ms=5000\n{extra}",
        broker.addr()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_ca_connects_and_reads_metadata() {
    let pki = Pki::new("ok", &["localhost", "127.0.0.1"]);
    let broker = pki.broker();
    let cluster = Cluster::connect(tls_config(&broker, &pki.path("ca.pem"), ""))
        .await
        .unwrap();
    assert_eq!(cluster.metadata().await.unwrap().brokers.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_is_refused_with_a_clear_error() {
    let pki = Pki::new("server", &["127.0.0.1"]);
    let other = Pki::new("other", &["127.0.0.1"]);
    let broker = pki.broker();
    let err = Cluster::connect(tls_config(&broker, &other.path("ca.pem"), ""))
        .await
        .unwrap_err();
    assert!(matches!(err, PoolError::Tls { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("ssl.ca.location"),
        "tells what to set: {message}"
    );
    assert!(
        message.contains(&broker.addr()),
        "names the broker: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_verification_is_on_by_default_and_can_be_turned_off() {
    // The certificate names only "localhost"; we connect to 127.0.0.1.
    let pki = Pki::new("name", &["localhost"]);
    let broker = pki.broker();
    let err = Cluster::connect(tls_config(&broker, &pki.path("ca.pem"), ""))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("ssl.endpoint.identification.algorithm"),
        "{err}"
    );

    let off = "ssl.endpoint.identification.algorithm=\n";
    Cluster::connect(tls_config(&broker, &pki.path("ca.pem"), off))
        .await
        .unwrap();
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
