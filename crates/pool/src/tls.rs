//! TLS client setup with rustls: trusted CAs from a PEM file (or the Mozilla
//! roots compiled into the binary when none is configured), an optional
//! client certificate, and hostname verification that can be turned off
//! like Java's `ssl.endpoint.identification.algorithm=`.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

use crate::config::{ConfigError, TlsConfig};

fn read_error(key: &str, path: &Path, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_owned(),
        value: path.display().to_string(),
        allowed: format!("a readable PEM file ({reason})"),
    }
}

/// Builds the connector for `tls`.
pub(crate) fn connector(tls: &TlsConfig) -> Result<TlsConnector, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &tls.ca_location {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| read_error("ssl.ca.location", path, e))?
                .collect::<Result<_, _>>()
                .map_err(|e| read_error("ssl.ca.location", path, e))?;
            if certs.is_empty() {
                return Err(read_error("ssl.ca.location", path, "no certificate in it"));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| read_error("ssl.ca.location", path, e))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let roots = Arc::new(roots);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::InvalidValue {
            key: "security.protocol".into(),
            value: "SSL".into(),
            allowed: format!("a working TLS setup ({e})"),
        })?;
    let builder = if tls.verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| ConfigError::InvalidValue {
                key: "ssl.ca.location".into(),
                value: String::new(),
                allowed: format!("usable CA certificates ({e})"),
            })?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoHostnameVerification { inner }))
    };
    let config = match (&tls.certificate_location, &tls.key_location) {
        (Some(cert_path), Some(key_path)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
                .map_err(|e| read_error("ssl.certificate.location", cert_path, e))?
                .collect::<Result<_, _>>()
                .map_err(|e| read_error("ssl.certificate.location", cert_path, e))?;
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
                read_error(
                    "ssl.key.location",
                    key_path,
                    format!("{e}; encrypted keys are not supported, decrypt it with openssl pkey"),
                )
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| read_error("ssl.key.location", key_path, e))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(ConfigError::Missing {
                what: "ssl.certificate.location and ssl.key.location".into(),
                hint: "a client certificate needs both its certificate and its key".into(),
            });
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The TLS server name for `host`.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}

/// Verifies the certificate chain but not that it names the host
/// (`ssl.endpoint.identification.algorithm=`).
#[derive(Debug)]
struct NoHostnameVerification {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for NoHostnameVerification {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
