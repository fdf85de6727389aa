//! Shared helpers for the pool's integration tests: client configs as a
//! user writes them, and throwaway certificates for Kafka's TLS listeners.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kmirror_pool::{ClientConfig, Properties};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A client config from `.properties` text, as a user would write it.
pub fn config(text: &str) -> ClientConfig {
    let props = Properties::parse(text).expect("valid properties");
    ClientConfig::from_properties(&props, &[])
        .expect("valid client config")
        .config
}

static PKI_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A throwaway CA and a server certificate it signs, as PEM files: what
/// [`kmirror_test_support::ClusterOptions::tls`] serves (rcgen writes the
/// key as PKCS#8 PEM, which Kafka's PEM keystore requires) and what
/// kmirror's `ssl.ca.location` trusts.
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA, and a server certificate for `names` (DNS names, or IP
    /// addresses, which rcgen writes as IP SANs).
    pub fn new(tag: &str, names: &[&str]) -> Self {
        let dir = std::env::temp_dir().join("kmirror-tests").join(format!(
            "pki-{tag}-{}-{}",
            std::process::id(),
            PKI_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("kmirror test CA {tag}"));
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("broker"),
        );
        let server = params.signed_by(&server_key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
        Self { dir }
    }

    /// A file of this PKI (`ca.pem`, `server.pem`, `server.key`).
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The CA certificate's path, for `ssl.ca.location`.
    pub fn ca(&self) -> String {
        self.path("ca.pem")
    }

    /// The server certificate chain and key, for `ClusterOptions::tls`.
    pub fn server_files(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("server.pem"), self.dir.join("server.key"))
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
