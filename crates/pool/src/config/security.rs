//! The security settings of a client: protocol, TLS files and SASL
//! credentials.
//!
//! This file owns [`SecurityProtocol`], [`TlsConfig`], [`SaslMechanism`] and
//! [`SaslConfig`] and the reading of the `ssl.*` and `sasl.*` keys (Java
//! client names and librdkafka's). It checks that the settings fit together
//! and says what to change when they do not; it never opens the files it is
//! given (the TLS layer does) and never logs a secret.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::sasl::SaslMechanism;

use super::error::ConfigError;
use super::jaas::{JaasLogin, LoginModuleKind};
use super::properties::Properties;
use super::secret::Secret;
use super::values::{aliased, non_empty, trimmed};

/// How a client talks to the brokers (`security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SecurityProtocol {
    /// Plain TCP, no authentication (`PLAINTEXT`, the default).
    #[default]
    Plaintext,
    /// TLS (`SSL`).
    Ssl,
    /// SASL authentication over plain TCP (`SASL_PLAINTEXT`).
    SaslPlaintext,
    /// SASL authentication over TLS (`SASL_SSL`).
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol, in Kafka's order.
    pub const ALL: [Self; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name for the protocol, e.g. `SASL_SSL`.
    pub const fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections use TLS (`SSL`, `SASL_SSL`).
    pub const fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL (`SASL_PLAINTEXT`,
    /// `SASL_SSL`).
    pub const fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// Parses Kafka's name, in any case as Java clients accept it.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// TLS settings, used when [`SecurityProtocol::uses_tls`]. All files are
/// PEM; kmirror only records their paths here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The CA certificates that sign the brokers' certificates
    /// (`ssl.truststore.location` with `ssl.truststore.type=PEM`, or
    /// `ssl.ca.location`). `None`: the TLS layer's default roots.
    pub ca_location: Option<PathBuf>,
    /// The client certificate chain (`ssl.certificate.location`, or
    /// `ssl.keystore.location`, which holds chain and key in one file).
    pub certificate_location: Option<PathBuf>,
    /// The client certificate's private key (`ssl.key.location`, or
    /// `ssl.keystore.location`; may be the same file as the certificate).
    pub key_location: Option<PathBuf>,
    /// The password of an encrypted private key (`ssl.key.password`).
    pub key_password: Option<Secret>,
    /// Whether the broker's certificate must match its host name (on unless
    /// `ssl.endpoint.identification.algorithm` is empty, as in Java).
    pub verify_hostname: bool,
}

impl Default for TlsConfig {
    /// No files, hostname verification on.
    fn default() -> Self {
        TlsConfig {
            ca_location: None,
            certificate_location: None,
            key_location: None,
            key_password: None,
            verify_hostname: true,
        }
    }
}

/// SASL settings, used when [`SecurityProtocol::uses_sasl`]. `Debug` shows
/// the password as `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslConfig {
    /// The mechanism (`sasl.mechanism`).
    pub mechanism: SaslMechanism,
    /// The user name (from `sasl.jaas.config` or `sasl.username`).
    pub username: String,
    /// The password (from `sasl.jaas.config` or `sasl.password`).
    pub password: Secret,
}

/// The keys of TLS settings, for the warning that they are unused without
/// TLS.
pub(crate) const TLS_KEYS: &[&str] = &[
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.truststore.certificates",
    "ssl.ca.location",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
];

/// The keys of SASL settings, for the warning that they are unused without
/// SASL.
pub(crate) const SASL_KEYS: &[&str] = &[
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.jaas.config",
    "sasl.username",
    "sasl.password",
];

/// How to turn a Java trust store into PEM.
const TRUSTSTORE_CONVERSION: &str = "convert it to PEM, e.g. `keytool -exportcert -rfc \
     -keystore truststore.jks -alias CARoot -file ca.pem` (JKS) or `openssl pkcs12 -in \
     truststore.p12 -nokeys -out ca.pem` (PKCS12), then set ssl.truststore.location=ca.pem \
     and ssl.truststore.type=PEM, or ssl.ca.location=ca.pem";

/// How to turn a Java key store into PEM.
const KEYSTORE_CONVERSION: &str = "convert it to PEM, e.g. `keytool -importkeystore \
     -srckeystore keystore.jks -destkeystore keystore.p12 -deststoretype PKCS12` (JKS to \
     PKCS12), then `openssl pkcs12 -in keystore.p12 -out keystore.pem -nodes` (certificate \
     chain and private key; -nodes leaves the key unencrypted, so protect the file), then set \
     ssl.keystore.location=keystore.pem and ssl.keystore.type=PEM, or \
     ssl.certificate.location and ssl.key.location";

/// Reads `security.protocol` (default `PLAINTEXT`).
pub(crate) fn read_protocol(props: &Properties) -> Result<SecurityProtocol, ConfigError> {
    match trimmed(props, "security.protocol") {
        None => Ok(SecurityProtocol::Plaintext),
        Some(value) => SecurityProtocol::from_name(value).ok_or_else(|| {
            ConfigError::invalid_value(
                "security.protocol",
                value,
                "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
            )
        }),
    }
}

/// Reads the TLS settings.
pub(crate) fn read_tls(props: &Properties) -> Result<TlsConfig, ConfigError> {
    reject_inline_pem(props)?;
    let ca_location = ca_location(props)?;
    let (certificate_location, key_location) = client_certificate(props)?;
    let key_password = non_empty(props, "ssl.key.password").map(Secret::new);
    if key_password.is_some() && key_location.is_none() {
        tracing::warn!(
            "{}: ssl.key.password is set but there is no client key (ssl.keystore.location or \
             ssl.key.location), so it is unused",
            props.source_name()
        );
    }
    let verify_hostname = verify_hostname(props)?;
    check_certificate_verification(props)?;
    Ok(TlsConfig {
        ca_location: ca_location.map(PathBuf::from),
        certificate_location: certificate_location.map(PathBuf::from),
        key_location: key_location.map(PathBuf::from),
        key_password,
        verify_hostname,
    })
}

/// Refuses PEM text given inline (`ssl.truststore.certificates`,
/// `ssl.keystore.certificate.chain`, `ssl.keystore.key`).
fn reject_inline_pem(props: &Properties) -> Result<(), ConfigError> {
    let keystore_hint = "write the certificate chain and the private key to a PEM file and set \
                         ssl.keystore.location to its path (or ssl.certificate.location and \
                         ssl.key.location)";
    for (key, hint) in [
        (
            "ssl.truststore.certificates",
            "write the certificates to a PEM file and set ssl.truststore.location (or \
             ssl.ca.location) to its path",
        ),
        ("ssl.keystore.certificate.chain", keystore_hint),
        ("ssl.keystore.key", keystore_hint),
    ] {
        if non_empty(props, key).is_some() {
            return Err(ConfigError::Unsupported {
                key: key.to_owned(),
                value: "(PEM text)".to_owned(),
                hint: format!("kmirror reads PEM from files only; {hint}"),
            });
        }
    }
    Ok(())
}

/// The CA file: `ssl.truststore.location` (PEM) or `ssl.ca.location`.
fn ca_location(props: &Properties) -> Result<Option<&str>, ConfigError> {
    let truststore = store_location(
        props,
        "ssl.truststore.location",
        "ssl.truststore.type",
        TRUSTSTORE_CONVERSION,
    )?;
    match (truststore, non_empty(props, "ssl.ca.location")) {
        (Some(a), Some(b)) if a != b => Err(ConfigError::conflict(
            "ssl.truststore.location",
            "ssl.ca.location",
            "both name the CA certificates to trust; keep one of them",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// The client certificate and key files: `ssl.keystore.location` (PEM, both
/// in one file) or `ssl.certificate.location` and `ssl.key.location`.
fn client_certificate(props: &Properties) -> Result<(Option<&str>, Option<&str>), ConfigError> {
    let keystore = store_location(
        props,
        "ssl.keystore.location",
        "ssl.keystore.type",
        KEYSTORE_CONVERSION,
    )?;
    let certificate = non_empty(props, "ssl.certificate.location");
    let key = non_empty(props, "ssl.key.location");
    if let Some(store) = keystore {
        if certificate.is_some_and(|c| c != store) || key.is_some_and(|k| k != store) {
            return Err(ConfigError::conflict(
                "ssl.keystore.location",
                "ssl.certificate.location/ssl.key.location",
                "set either ssl.keystore.location (one PEM file with the certificate chain and \
                 the private key) or ssl.certificate.location and ssl.key.location",
            ));
        }
        return Ok((Some(store), Some(store)));
    }
    match (certificate, key) {
        (Some(_), None) => Err(ConfigError::missing(
            "ssl.key.location",
            "ssl.certificate.location is set, so kmirror needs the client certificate's \
             private key: set ssl.key.location to its PEM file (or remove \
             ssl.certificate.location)",
        )),
        (None, Some(_)) => Err(ConfigError::missing(
            "ssl.certificate.location",
            "ssl.key.location is set, so kmirror needs the client certificate: set \
             ssl.certificate.location to its PEM file (or remove ssl.key.location)",
        )),
        pair => Ok(pair),
    }
}

/// `ssl.endpoint.identification.algorithm`: `https` (the default) checks the
/// host name, empty (or librdkafka's `none`) does not.
fn verify_hostname(props: &Properties) -> Result<bool, ConfigError> {
    match trimmed(props, "ssl.endpoint.identification.algorithm") {
        None => Ok(true),
        Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("https") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("none") => Ok(false),
        Some(v) => Err(ConfigError::invalid_value(
            "ssl.endpoint.identification.algorithm",
            v,
            "https (check that the broker's certificate matches its host name, the default) \
             or an empty value (do not check; librdkafka's none is accepted too)",
        )),
    }
}

/// librdkafka's `enable.ssl.certificate.verification`: only `true` is
/// supported.
fn check_certificate_verification(props: &Properties) -> Result<(), ConfigError> {
    match trimmed(props, "enable.ssl.certificate.verification") {
        None => Ok(()),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(()),
        Some(v) if v.eq_ignore_ascii_case("false") => Err(ConfigError::unsupported(
            "enable.ssl.certificate.verification",
            v,
            "kmirror always checks the broker's certificate; set ssl.ca.location (or \
             ssl.truststore.location) to the CA that signed it, and \
             ssl.endpoint.identification.algorithm= (empty) to skip only the host name check",
        )),
        Some(v) => Err(ConfigError::invalid_value(
            "enable.ssl.certificate.verification",
            v,
            "true or false",
        )),
    }
}

/// The location of a trust or key store, which must be PEM.
fn store_location<'a>(
    props: &'a Properties,
    location_key: &str,
    type_key: &str,
    conversion: &str,
) -> Result<Option<&'a str>, ConfigError> {
    let location = non_empty(props, location_key);
    match non_empty(props, type_key) {
        Some(t) if t.eq_ignore_ascii_case("PEM") => {}
        Some(t) => {
            return Err(ConfigError::unsupported(
                type_key,
                t,
                format!("kmirror reads PEM files only; {conversion}"),
            ));
        }
        None => {
            if let Some(path) = location.filter(|p| looks_like_java_store(p)) {
                return Err(ConfigError::unsupported(
                    location_key,
                    path,
                    format!(
                        "the file looks like a JKS or PKCS12 store (without {type_key}, Java \
                         reads it as JKS) and kmirror reads PEM files only; {conversion}"
                    ),
                ));
            }
        }
    }
    Ok(location)
}

/// Whether a path's extension says JKS or PKCS12.
fn looks_like_java_store(path: &str) -> bool {
    Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| {
            [
                "jks",
                "p12",
                "pfx",
                "pkcs12",
                "keystore",
                "truststore",
                "bcfks",
            ]
            .iter()
            .any(|x| x.eq_ignore_ascii_case(e))
        })
}

/// Reads the SASL settings of a protocol that uses SASL.
pub(crate) fn read_sasl(
    props: &Properties,
    protocol: SecurityProtocol,
) -> Result<SaslConfig, ConfigError> {
    let mechanism = match aliased(props, "sasl.mechanism", "sasl.mechanisms")? {
        None => None,
        Some((key, value)) => Some(parse_mechanism(key, value)?),
    };
    let jaas = non_empty(props, "sasl.jaas.config")
        .map(JaasLogin::parse)
        .transpose()?;
    let jaas_kind = jaas.as_ref().map(JaasLogin::kind);

    let Some(mechanism) = mechanism else {
        let guess = match jaas_kind {
            Some(LoginModuleKind::Plain) => {
                "; sasl.jaas.config uses PlainLoginModule, so that is PLAIN"
            }
            Some(LoginModuleKind::Scram) => {
                "; sasl.jaas.config uses ScramLoginModule, so that is SCRAM-SHA-256 or \
                 SCRAM-SHA-512, whichever the brokers enable"
            }
            _ => "",
        };
        return Err(ConfigError::missing(
            "sasl.mechanism",
            format!(
                "security.protocol={protocol} logs in with SASL: set sasl.mechanism to PLAIN, \
                 SCRAM-SHA-256 or SCRAM-SHA-512 (Java's default, GSSAPI, is not supported by \
                 kmirror){guess}"
            ),
        ));
    };

    let from_jaas = match jaas {
        None => None,
        Some(login) => Some(jaas_credentials(login, mechanism, props.source_name())?),
    };
    let from_keys = match (
        non_empty(props, "sasl.username"),
        trimmed(props, "sasl.password"),
    ) {
        (Some(user), Some(password)) => {
            if password.is_empty() {
                return Err(ConfigError::invalid_value(
                    "sasl.password",
                    password,
                    "a non-empty password",
                ));
            }
            Some((user.to_owned(), Secret::new(password)))
        }
        (Some(_), None) => {
            return Err(ConfigError::missing(
                "sasl.password",
                "sasl.username is set; set sasl.password too (or put both in sasl.jaas.config)",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::missing(
                "sasl.username",
                "sasl.password is set; set sasl.username too (or put both in sasl.jaas.config)",
            ));
        }
        (None, None) => None,
    };
    let (username, password) = match (from_jaas, from_keys) {
        (Some(a), Some(b)) if a != b => {
            return Err(ConfigError::conflict(
                "sasl.jaas.config",
                "sasl.username/sasl.password",
                "set the credentials once, either in sasl.jaas.config or in sasl.username and \
                 sasl.password",
            ));
        }
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => {
            let module = match mechanism {
                SaslMechanism::Plain => "org.apache.kafka.common.security.plain.PlainLoginModule",
                SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                    "org.apache.kafka.common.security.scram.ScramLoginModule"
                }
            };
            return Err(ConfigError::missing(
                "SASL credentials",
                format!(
                    "security.protocol={protocol} with sasl.mechanism={mechanism} needs a user \
                     name and password: set sasl.jaas.config={module} required \
                     username=\"...\" password=\"...\"; (or sasl.username and sasl.password)"
                ),
            ));
        }
    };

    if mechanism == SaslMechanism::Plain && protocol == SecurityProtocol::SaslPlaintext {
        tracing::warn!(
            "{}: sasl.mechanism=PLAIN with security.protocol=SASL_PLAINTEXT sends the password \
             unencrypted; use SASL_SSL, or SCRAM, where the brokers allow it",
            props.source_name()
        );
    }
    Ok(SaslConfig {
        mechanism,
        username,
        password,
    })
}

/// Parses `sasl.mechanism`.
fn parse_mechanism(key: &str, value: &str) -> Result<SaslMechanism, ConfigError> {
    if let Some(m) = SaslMechanism::ALL
        .into_iter()
        .find(|m| m.name().eq_ignore_ascii_case(value))
    {
        return Ok(m);
    }
    if ["GSSAPI", "OAUTHBEARER"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(value))
    {
        return Err(ConfigError::unsupported(
            key,
            value,
            "kmirror supports PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; ask the cluster's \
             operators for a user with one of them",
        ));
    }
    Err(ConfigError::invalid_value(
        key,
        value,
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
    ))
}

/// The user name and password of a JAAS login, checked against the
/// mechanism.
fn jaas_credentials(
    login: JaasLogin,
    mechanism: SaslMechanism,
    source: &str,
) -> Result<(String, Secret), ConfigError> {
    let class = login.login_module.as_str();
    match login.kind() {
        LoginModuleKind::Kerberos | LoginModuleKind::OAuthBearer => {
            return Err(ConfigError::unsupported(
                "sasl.jaas.config",
                "",
                format!(
                    "its login module {class} is for GSSAPI or OAUTHBEARER; use \
                     org.apache.kafka.common.security.scram.ScramLoginModule or \
                     org.apache.kafka.common.security.plain.PlainLoginModule with username and \
                     password options"
                ),
            ));
        }
        LoginModuleKind::Plain if mechanism != SaslMechanism::Plain => tracing::warn!(
            "{source}: sasl.jaas.config uses PlainLoginModule but sasl.mechanism={mechanism}; \
             kmirror logs in with {mechanism} using its username and password"
        ),
        LoginModuleKind::Scram if mechanism == SaslMechanism::Plain => tracing::warn!(
            "{source}: sasl.jaas.config uses ScramLoginModule but sasl.mechanism=PLAIN; \
             kmirror logs in with PLAIN using its username and password"
        ),
        LoginModuleKind::Other => tracing::warn!(
            "{source}: sasl.jaas.config names the login module {class}, which kmirror cannot \
             run; it logs in with {mechanism} using the username and password options"
        ),
        LoginModuleKind::Plain | LoginModuleKind::Scram => {}
    }
    let username = match login.username {
        Some(u) if !u.is_empty() => u,
        Some(_) => {
            return Err(ConfigError::Jaas {
                reason: "the username option is empty".to_owned(),
            });
        }
        None => {
            return Err(ConfigError::Jaas {
                reason: "it has no username option; add username=\"...\" before the final ;"
                    .to_owned(),
            });
        }
    };
    let password = match login.password {
        Some(p) if !p.is_empty() => p,
        Some(_) => {
            return Err(ConfigError::Jaas {
                reason: "the password option is empty".to_owned(),
            });
        }
        None => {
            return Err(ConfigError::Jaas {
                reason: "it has no password option; add password=\"...\" before the final ;"
                    .to_owned(),
            });
        }
    };
    Ok((username, password))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tracing::Level;

    use super::super::captured_logs::capture;
    use super::super::{ClientConfig, ConfigError, ParsedClientConfig, from_properties};
    use super::*;

    fn parse(text: &str) -> Result<ParsedClientConfig, ConfigError> {
        from_properties(
            &Properties::parse_named(text, "test.properties").unwrap(),
            &[],
        )
    }

    fn config(text: &str) -> ClientConfig {
        parse(text).unwrap().config
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn warnings(logs: &[(Level, String)]) -> Vec<&str> {
        logs.iter()
            .filter(|(l, _)| *l == Level::WARN)
            .map(|(_, t)| t.as_str())
            .collect()
    }

    #[test]
    fn plain_jaas_and_pem_keystore() {
        let c = config(
            "bootstrap.servers=b:9093\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=u password=p;\nssl.keystore.location=/ks.pem\nssl.keystore.type=PEM\nssl.endpoint.identification.algorithm=\n",
        );
        let sasl = c.sasl.unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::Plain);
        assert_eq!((sasl.username.as_str(), sasl.password.expose()), ("u", "p"));
        assert_eq!(c.tls.certificate_location, Some(PathBuf::from("/ks.pem")));
        assert_eq!(c.tls.key_location, Some(PathBuf::from("/ks.pem")));
        assert!(!c.tls.verify_hostname);
        let c = config(
            "bootstrap.servers=b:1\nsecurity.protocol=SSL\nssl.endpoint.identification.algorithm=HTTPS",
        );
        assert!(c.tls.verify_hostname);
        assert!(c.sasl.is_none());
    }

    #[test]
    fn security_protocol_values() {
        assert_eq!(
            config("bootstrap.servers=b:1\nsecurity.protocol=ssl").security_protocol,
            SecurityProtocol::Ssl
        );
        assert_eq!(
            error("bootstrap.servers=b:1\nsecurity.protocol=TLS"),
            "invalid value \"TLS\" for security.protocol; allowed: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
        );
    }

    #[test]
    fn sasl_needs_mechanism_and_credentials() {
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.username=u\nsasl.password=p",
        );
        assert!(e.starts_with("missing sasl.mechanism; security.protocol=SASL_SSL logs in with SASL: set sasl.mechanism to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"), "{e}");
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=u password=p;",
        );
        assert!(e.contains("PlainLoginModule, so that is PLAIN"), "{e}");
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256",
        );
        assert!(e.starts_with("missing SASL credentials; security.protocol=SASL_SSL with sasl.mechanism=SCRAM-SHA-256 needs a user name and password: set sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required"), "{e}");
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=u",
        );
        assert!(
            e.starts_with("missing sasl.password; sasl.username is set"),
            "{e}"
        );
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.password=hunter2",
        );
        assert!(
            e.starts_with("missing sasl.username;") && !e.contains("hunter2"),
            "{e}"
        );
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=u\nsasl.password=",
        );
        assert!(e.contains("for sasl.password"), "{e}");
    }

    #[test]
    fn unsupported_mechanisms() {
        for m in ["GSSAPI", "OAUTHBEARER"] {
            let e = error(&format!(
                "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism={m}"
            ));
            assert_eq!(
                e,
                format!(
                    "sasl.mechanism=\"{m}\" is not supported by kmirror; kmirror supports PLAIN, \
                     SCRAM-SHA-256 and SCRAM-SHA-512; ask the cluster's operators for a user with \
                     one of them"
                )
            );
        }
        let e = error("bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM");
        assert_eq!(
            e,
            "invalid value \"SCRAM\" for sasl.mechanism; allowed: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
        );
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;",
        );
        assert!(e.starts_with("sasl.jaas.config=[redacted] is not supported by kmirror; its login module com.sun.security.auth.module.Krb5LoginModule"), "{e}");
    }

    #[test]
    fn non_pem_stores_explain_the_conversion() {
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SSL\nssl.truststore.location=/t.jks\nssl.truststore.type=JKS",
        );
        assert!(e.starts_with("ssl.truststore.type=\"JKS\" is not supported by kmirror; kmirror reads PEM files only; convert it to PEM"), "{e}");
        assert!(
            e.contains("keytool")
                && e.contains("openssl")
                && e.contains("ssl.truststore.type=PEM")
                && e.contains("ssl.ca.location"),
            "{e}"
        );
        let e =
            error("bootstrap.servers=b:1\nsecurity.protocol=SSL\nssl.truststore.location=/t.jks");
        assert!(e.starts_with("ssl.truststore.location=\"/t.jks\" is not supported by kmirror; the file looks like a JKS or PKCS12 store"), "{e}");
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SSL\nssl.keystore.location=/k.p12\nssl.keystore.type=PKCS12",
        );
        assert!(
            e.starts_with("ssl.keystore.type=\"PKCS12\" is not supported by kmirror")
                && e.contains("openssl pkcs12"),
            "{e}"
        );
    }

    #[test]
    fn tls_conflicts_and_missing_halves() {
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SSL\nssl.truststore.location=/a.pem\nssl.ca.location=/b.pem",
        );
        assert!(
            e.starts_with(
                "ssl.truststore.location and ssl.ca.location are both set and disagree; "
            ),
            "{e}"
        );
        let e =
            error("bootstrap.servers=b:1\nsecurity.protocol=SSL\nssl.certificate.location=/c.pem");
        assert!(
            e.starts_with("missing ssl.key.location; ssl.certificate.location is set"),
            "{e}"
        );
        let e = error("bootstrap.servers=b:1\nsecurity.protocol=SSL\nssl.key.location=/k.pem");
        assert!(
            e.starts_with("missing ssl.certificate.location; ssl.key.location is set"),
            "{e}"
        );
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SSL\nssl.keystore.location=/a.pem\nssl.key.location=/k.pem",
        );
        assert!(
            e.contains("ssl.keystore.location and ssl.certificate.location/ssl.key.location"),
            "{e}"
        );
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SSL\nssl.endpoint.identification.algorithm=ldaps",
        );
        assert!(
            e.starts_with(
                "invalid value \"ldaps\" for ssl.endpoint.identification.algorithm; allowed: https"
            ),
            "{e}"
        );
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SSL\nenable.ssl.certificate.verification=false",
        );
        assert!(e.starts_with("enable.ssl.certificate.verification=\"false\" is not supported by kmirror; kmirror always checks"), "{e}");
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SSL\nssl.truststore.certificates=-----BEGIN CERTIFICATE-----",
        );
        assert!(e.starts_with("ssl.truststore.certificates=\"(PEM text)\" is not supported by kmirror; kmirror reads PEM from files only"), "{e}");
    }

    #[test]
    fn credential_conflicts_never_show_passwords() {
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=u\nsasl.password=hunter2\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=u password=hunter3;",
        );
        assert!(
            e.starts_with(
                "sasl.jaas.config and sasl.username/sasl.password are both set and disagree;"
            ),
            "{e}"
        );
        assert!(!e.contains("hunter"), "{e}");
        // Identical credentials in both places are fine.
        let c = config(
            "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.username=u\nsasl.password=p\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=u password=p;",
        );
        assert_eq!(c.sasl.unwrap().username, "u");
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=u password=\"hunter2;",
        );
        assert!(
            e.starts_with("cannot parse sasl.jaas.config: the quoted value starting at character"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let e = error(
            "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required password=hunter2;",
        );
        assert!(
            e.contains("it has no username option") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn login_module_and_plain_warnings() {
        let (parsed, logs) = capture(|| {
            parse(
                "bootstrap.servers=b:1\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=u password=hunter2;",
            )
        });
        assert!(parsed.is_ok());
        let warns = warnings(&logs);
        assert_eq!(warns.len(), 2, "{warns:?}");
        assert!(
            warns[0].contains("uses ScramLoginModule but sasl.mechanism=PLAIN"),
            "{}",
            warns[0]
        );
        assert!(
            warns[1].contains("sends the password unencrypted"),
            "{}",
            warns[1]
        );
        assert!(!logs.iter().any(|(_, t)| t.contains("hunter2")));
    }

    #[test]
    fn protocol_names_and_properties() {
        for p in SecurityProtocol::ALL {
            assert_eq!(
                SecurityProtocol::from_name(&p.name().to_lowercase()),
                Some(p)
            );
            assert_eq!(p.to_string(), p.name());
        }
        assert!(
            !SecurityProtocol::Plaintext.uses_tls() && !SecurityProtocol::Plaintext.uses_sasl()
        );
        assert!(SecurityProtocol::Ssl.uses_tls() && !SecurityProtocol::Ssl.uses_sasl());
        assert!(
            !SecurityProtocol::SaslPlaintext.uses_tls()
                && SecurityProtocol::SaslPlaintext.uses_sasl()
        );
        assert!(SecurityProtocol::SaslSsl.uses_tls() && SecurityProtocol::SaslSsl.uses_sasl());
        assert_eq!(SecurityProtocol::default(), SecurityProtocol::Plaintext);
        assert!(TlsConfig::default().verify_hostname);
    }

    #[test]
    fn java_store_extensions() {
        assert!(looks_like_java_store("/x/truststore.jks"));
        assert!(looks_like_java_store("/x/client.P12"));
        assert!(!looks_like_java_store("/x/ca.pem"));
        assert!(!looks_like_java_store("/x/ca"));
    }
}
