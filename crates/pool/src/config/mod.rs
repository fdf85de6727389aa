//! Client configuration, read from Kafka `.properties` files.
//!
//! This module owns the way from a `--consumer.config` or
//! `--producer.config` file to a typed [`ClientConfig`]: the
//! [`Properties`] syntax, the meaning of the connection keys
//! (`bootstrap.servers`, `zookeeper.connect`, `client.id`,
//! `security.protocol`, `ssl.*`, `sasl.*`, timeouts, socket buffers), their
//! defaults (Java clients' defaults unless noted), and the checks that turn a
//! bad file into a [`ConfigError`] saying what to change. Keys that belong to
//! the engine (`group.id`, `acks`, ...) are the caller's: it names them in
//! `other_known_keys` and reads them from the same [`Properties`].
//!
//! It never opens sockets or certificate files, never reads environment
//! variables, and never logs a secret: passwords are [`Secret`]s, which print
//! as `[redacted]`, and errors and log lines name keys, not secret values.
//!
//! Logging ([`tracing`]): one `warn` per unknown key (with the nearest known
//! key if it is within two edits), an `info` per ignored Java client key
//! ([`IGNORED_KEYS`]), and a `warn` for keys given twice and for settings
//! that the chosen `security.protocol` does not use.
//!
//! Values are trimmed before they are interpreted, as Kafka's `ConfigDef`
//! does (the [`Properties`] themselves keep trailing whitespace, as Java's).
//!
//! ```
//! # use kmirror_pool::config::{ClientConfig, Properties};
//! let props = Properties::parse("bootstrap.servers=wn0-kafka:9092,wn1-kafka:9092\ncompression.type=none\n")?;
//! let parsed = ClientConfig::from_properties(&props, &["compression.type"])?;
//! assert_eq!(parsed.config.bootstrap_servers, ["wn0-kafka:9092", "wn1-kafka:9092"]);
//! assert!(parsed.unknown_keys.is_empty());
//! # Ok::<(), kmirror_pool::config::ConfigError>(())
//! ```

mod error;
mod jaas;
mod keys;
mod properties;
mod secret;
mod security;
mod values;

use std::time::Duration;

pub use crate::sasl::SaslMechanism;
pub use error::ConfigError;
pub use jaas::JaasLogin;
pub use keys::{CLIENT_KEYS, IGNORED_KEYS};
pub use properties::{Iter, MAX_FILE_BYTES, Properties, Property};
pub use secret::{Secret, is_secret_key};
pub use security::{SaslConfig, SecurityProtocol, TlsConfig};
pub use values::split_host_port;

/// The settings of a connection to one cluster.
///
/// `Debug` never shows a password. Build one with
/// [`ClientConfig::from_properties`], or from [`ClientConfig::default`] and
/// field updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Brokers to bootstrap from, each `host:port` (`[v6]:port` for IPv6),
    /// deduplicated (`bootstrap.servers`, or librdkafka's
    /// `metadata.broker.list`). Empty if only `zookeeper.connect` is given.
    pub bootstrap_servers: Vec<String>,
    /// ZooKeeper connect string `host:port[,host:port...][/chroot]`, for
    /// finding the brokers as MirrorMaker 1's old consumer did
    /// (`zookeeper.connect`). At least one of this and
    /// [`bootstrap_servers`](Self::bootstrap_servers) is set.
    pub zookeeper_connect: Option<String>,
    /// The client id sent with every request (`client.id`; default
    /// `kmirror`).
    pub client_id: String,
    /// TLS and SASL or not (`security.protocol`; default `PLAINTEXT`).
    pub security_protocol: SecurityProtocol,
    /// TLS settings; read only when the protocol uses TLS, otherwise the
    /// defaults.
    pub tls: TlsConfig,
    /// SASL settings: `Some` exactly when the protocol uses SASL.
    pub sasl: Option<SaslConfig>,
    /// How often metadata is refreshed even without errors
    /// (`metadata.max.age.ms`; default 300000 ms).
    pub metadata_max_age: Duration,
    /// Pause before retrying a failed request (`retry.backoff.ms`; default
    /// 100 ms).
    pub retry_backoff: Duration,
    /// First pause before reconnecting to a broker (`reconnect.backoff.ms`;
    /// default 50 ms).
    pub reconnect_backoff: Duration,
    /// Longest pause between reconnection attempts
    /// (`reconnect.backoff.max.ms`; default 1000 ms). Never below
    /// [`reconnect_backoff`](Self::reconnect_backoff): a smaller value is
    /// raised to it, which is what Java's backoff does in effect.
    pub reconnect_backoff_max: Duration,
    /// How long to wait for a response (`request.timeout.ms`; default
    /// 30000 ms).
    pub request_timeout: Duration,
    /// How long to wait for a TCP connection (and TLS handshake) to be set
    /// up (`socket.connection.setup.timeout.ms`; default 10000 ms).
    pub connection_setup_timeout: Duration,
    /// `SO_SNDBUF` (`send.buffer.bytes`). `None` (`-1`, and kmirror's
    /// default) leaves it to the operating system, whose autotuning suits
    /// long-distance links better than Java's fixed 128 KiB.
    pub send_buffer_bytes: Option<u32>,
    /// `SO_RCVBUF` (`receive.buffer.bytes`). `None` (`-1`, and kmirror's
    /// default) leaves it to the operating system, whose autotuning suits
    /// long-distance links better than Java's fixed 64 KiB.
    pub receive_buffer_bytes: Option<u32>,
    /// The largest response frame accepted from a broker, in bytes; a
    /// larger size prefix breaks the connection before any memory is
    /// reserved (`receive.message.max.bytes`, librdkafka's name: Java
    /// clients have no such key); default 100 MiB, Kafka's default
    /// `socket.request.max.bytes` and `kmirror_protocol`'s
    /// `DEFAULT_MAX_FRAME_SIZE`. A Fetch response holds at least one whole
    /// record batch, however large, so this must exceed the source's
    /// largest batch.
    pub max_response_size: usize,
    /// How connections reach the brokers: TCP unless a caller plugs in
    /// its own transport (the cluster simulation does). Not a key.
    pub dialer: crate::dialer::Dialer,
}

/// The default `client.id`.
const DEFAULT_CLIENT_ID: &str = "kmirror";
/// The default `metadata.max.age.ms`.
const DEFAULT_METADATA_MAX_AGE: Duration = Duration::from_millis(300_000);
/// The default `retry.backoff.ms`.
const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// The default `reconnect.backoff.ms`.
const DEFAULT_RECONNECT_BACKOFF: Duration = Duration::from_millis(50);
/// The default `reconnect.backoff.max.ms`.
const DEFAULT_RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(1000);
/// The default `request.timeout.ms`.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(30_000);
/// The default [`ClientConfig::max_response_size`] (the protocol crate's
/// `DEFAULT_MAX_FRAME_SIZE`).
const DEFAULT_MAX_RESPONSE_SIZE: usize = 100 * 1024 * 1024;
/// The default `socket.connection.setup.timeout.ms`.
const DEFAULT_CONNECTION_SETUP_TIMEOUT: Duration = Duration::from_millis(10_000);

impl Default for ClientConfig {
    /// `PLAINTEXT`, no servers, client id `kmirror`, Java's default timeouts,
    /// operating system socket buffers.
    fn default() -> Self {
        ClientConfig {
            bootstrap_servers: Vec::new(),
            zookeeper_connect: None,
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            security_protocol: SecurityProtocol::Plaintext,
            tls: TlsConfig::default(),
            sasl: None,
            metadata_max_age: DEFAULT_METADATA_MAX_AGE,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            reconnect_backoff: DEFAULT_RECONNECT_BACKOFF,
            reconnect_backoff_max: DEFAULT_RECONNECT_BACKOFF_MAX,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connection_setup_timeout: DEFAULT_CONNECTION_SETUP_TIMEOUT,
            send_buffer_bytes: None,
            receive_buffer_bytes: None,
            max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
            dialer: crate::dialer::Dialer::Tcp,
        }
    }
}

/// A [`ClientConfig`] and the keys of its file that nobody knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedClientConfig {
    /// The configuration.
    pub config: ClientConfig,
    /// Keys that are neither client keys ([`CLIENT_KEYS`]), nor ignored Java
    /// keys ([`IGNORED_KEYS`]), nor in `other_known_keys`, in file order.
    /// Each was logged with a warning.
    pub unknown_keys: Vec<String>,
}

impl ClientConfig {
    /// Reads a client configuration from `props` (see [`from_properties`]).
    pub fn from_properties(
        props: &Properties,
        other_known_keys: &[&str],
    ) -> Result<ParsedClientConfig, ConfigError> {
        from_properties(props, other_known_keys)
    }
}

/// Reads a client configuration from `props`.
///
/// `other_known_keys` are the caller's own keys (e.g. `group.id`, `acks`,
/// `compression.type`): they are neither read nor reported as unknown. Every
/// other key that is not a client key is logged once: `info` for the Java
/// client keys kmirror ignores, `warn` (with a "did you mean" suggestion) for
/// the rest, which are returned in [`ParsedClientConfig::unknown_keys`].
///
/// Errors: a value that does not parse or is out of range (naming key, value
/// and what is allowed), neither `bootstrap.servers` nor `zookeeper.connect`,
/// a SASL protocol without mechanism or credentials, unsupported mechanisms
/// (GSSAPI, OAUTHBEARER) and non-PEM key stores (JKS, PKCS12), with the way
/// out in the message.
pub fn from_properties(
    props: &Properties,
    other_known_keys: &[&str],
) -> Result<ParsedClientConfig, ConfigError> {
    let unknown_keys = report_keys(props, other_known_keys);
    report_duplicates(props);
    let config = read_config(props)?;
    Ok(ParsedClientConfig {
        config,
        unknown_keys,
    })
}

/// Logs the ignored and unknown keys; returns the unknown ones.
fn report_keys(props: &Properties, other_known_keys: &[&str]) -> Vec<String> {
    let source = props.source_name();
    let mut unknown = Vec::new();
    for (key, _) in props {
        if keys::is_client_key(key) || other_known_keys.contains(&key) {
            continue;
        }
        if let Some(reason) = keys::ignored_reason(key) {
            tracing::info!("ignored: {key} in {source} ({reason})");
            continue;
        }
        match keys::suggest(key, other_known_keys) {
            Some(known) => {
                tracing::warn!("unknown key {key:?} in {source} is not used; did you mean {known}?")
            }
            None => tracing::warn!(
                "unknown key {key:?} in {source} is not used; check its spelling, or remove it"
            ),
        }
        unknown.push(key.to_owned());
    }
    unknown
}

/// Warns about keys given more than once in the file.
fn report_duplicates(props: &Properties) {
    let source = props.source_name();
    for p in props.entries() {
        let (Some(line), [_, ..]) = (p.line(), p.overridden_lines()) else {
            continue;
        };
        let earlier: Vec<String> = p.overridden_lines().iter().map(usize::to_string).collect();
        tracing::warn!(
            "{} is set more than once in {source} (lines {} and {line}); the last value, from \
             line {line}, is used",
            p.key(),
            earlier.join(", "),
        );
    }
}

/// Reads the typed settings.
fn read_config(props: &Properties) -> Result<ClientConfig, ConfigError> {
    let source = props.source_name();
    let bootstrap_servers =
        match values::aliased(props, "bootstrap.servers", "metadata.broker.list")? {
            Some((key, value)) => values::broker_list(key, value)?,
            None => Vec::new(),
        };
    let zookeeper_connect = values::non_empty(props, "zookeeper.connect")
        .map(|v| values::zookeeper_connect("zookeeper.connect", v))
        .transpose()?;
    if bootstrap_servers.is_empty() && zookeeper_connect.is_none() {
        return Err(ConfigError::missing(
            "bootstrap.servers (or zookeeper.connect)",
            format!(
                "{source} must say how to reach the cluster: set \
                 bootstrap.servers=host:port[,host:port...] to some of its brokers, or \
                 zookeeper.connect=host:2181[,host:2181...] to its ZooKeeper as in the HDInsight \
                 guide"
            ),
        ));
    }

    let client_id = values::non_empty(props, "client.id")
        .unwrap_or(DEFAULT_CLIENT_ID)
        .to_owned();

    let security_protocol = security::read_protocol(props)?;
    let tls = if security_protocol.uses_tls() {
        security::read_tls(props)?
    } else {
        let to = match security_protocol {
            SecurityProtocol::SaslPlaintext => "SASL_SSL",
            _ => "SSL (or SASL_SSL)",
        };
        report_unused(props, security::TLS_KEYS, security_protocol, "use TLS", to);
        TlsConfig::default()
    };
    let sasl = if security_protocol.uses_sasl() {
        Some(security::read_sasl(props, security_protocol)?)
    } else {
        let to = match security_protocol {
            SecurityProtocol::Ssl => "SASL_SSL",
            _ => "SASL_PLAINTEXT (or SASL_SSL)",
        };
        report_unused(
            props,
            security::SASL_KEYS,
            security_protocol,
            "log in with SASL",
            to,
        );
        None
    };

    let long = i64::MAX;
    let int = i64::from(i32::MAX);
    let reconnect_backoff = values::millis(
        props,
        "reconnect.backoff.ms",
        DEFAULT_RECONNECT_BACKOFF,
        long,
    )?;
    let reconnect_backoff_max = values::millis(
        props,
        "reconnect.backoff.max.ms",
        DEFAULT_RECONNECT_BACKOFF_MAX,
        long,
    )?
    .max(reconnect_backoff);
    Ok(ClientConfig {
        bootstrap_servers,
        zookeeper_connect,
        client_id,
        security_protocol,
        tls,
        sasl,
        metadata_max_age: values::millis(
            props,
            "metadata.max.age.ms",
            DEFAULT_METADATA_MAX_AGE,
            long,
        )?,
        retry_backoff: values::millis(props, "retry.backoff.ms", DEFAULT_RETRY_BACKOFF, long)?,
        reconnect_backoff,
        reconnect_backoff_max,
        request_timeout: values::millis(props, "request.timeout.ms", DEFAULT_REQUEST_TIMEOUT, int)?,
        connection_setup_timeout: values::millis(
            props,
            "socket.connection.setup.timeout.ms",
            DEFAULT_CONNECTION_SETUP_TIMEOUT,
            long,
        )?,
        send_buffer_bytes: values::buffer_bytes(props, "send.buffer.bytes")?,
        receive_buffer_bytes: values::buffer_bytes(props, "receive.buffer.bytes")?,
        max_response_size: values::response_bytes(
            props,
            "receive.message.max.bytes",
            DEFAULT_MAX_RESPONSE_SIZE,
        )?,
        dialer: crate::dialer::Dialer::Tcp,
    })
}

/// Warns once about the `keys` that are set but unused under `protocol`.
fn report_unused(
    props: &Properties,
    keys: &[&str],
    protocol: SecurityProtocol,
    purpose: &str,
    switch_to: &str,
) {
    let set: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| props.contains_key(k))
        .collect();
    if set.is_empty() {
        return;
    }
    let verb = if set.len() == 1 { "is" } else { "are" };
    tracing::warn!(
        "{}: security.protocol={protocol} does not {purpose}, so {} {verb} unused; set \
         security.protocol={switch_to} to {purpose}",
        props.source_name(),
        set.join(", "),
    );
}

/// A `tracing` subscriber for tests that records every event's level and
/// text.
#[cfg(test)]
pub(crate) mod captured_logs {
    use std::fmt::{Debug, Write as _};
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::{Event, Level, Metadata, Subscriber, span};

    /// The recorded events.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<(Level, String)>>>);

    struct Text(String);

    impl Visit for Text {
        fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, "{value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut text = Text(String::new());
            event.record(&mut text);
            self.0
                .lock()
                .unwrap()
                .push((*event.metadata().level(), text.0));
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }

    /// Runs `f`, returning its result and the events it logged.
    pub(crate) fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<(Level, String)>) {
        let capture = Capture::default();
        let out = tracing::subscriber::with_default(capture.clone(), f);
        let logs = capture.0.lock().unwrap().clone();
        (out, logs)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tracing::Level;

    use super::captured_logs::capture;
    use super::*;

    fn parse_named(
        text: &str,
        name: &str,
        other: &[&str],
    ) -> Result<ParsedClientConfig, ConfigError> {
        from_properties(&Properties::parse_named(text, name).unwrap(), other)
    }

    fn parse(text: &str) -> Result<ParsedClientConfig, ConfigError> {
        parse_named(text, "test.properties", &[])
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
    fn defaults() {
        let c = ClientConfig::default();
        assert_eq!(c.security_protocol, SecurityProtocol::Plaintext);
        assert!(c.bootstrap_servers.is_empty());
        assert_eq!(c.client_id, "kmirror");
        assert!(c.tls.verify_hostname);
        assert_eq!(c.metadata_max_age, Duration::from_millis(300_000));
        assert_eq!(c.retry_backoff, Duration::from_millis(100));
        assert_eq!(c.reconnect_backoff, Duration::from_millis(50));
        assert_eq!(c.reconnect_backoff_max, Duration::from_millis(1000));
        assert_eq!(c.request_timeout, Duration::from_millis(30_000));
        assert_eq!(c.connection_setup_timeout, Duration::from_millis(10_000));
        assert_eq!(c.send_buffer_bytes, None);
        assert_eq!(c.receive_buffer_bytes, None);
        assert_eq!(c.max_response_size, 100 * 1024 * 1024);
        let parsed = config("bootstrap.servers=b:9092");
        assert_eq!(
            parsed,
            ClientConfig {
                bootstrap_servers: vec!["b:9092".into()],
                ..c
            }
        );
    }

    #[test]
    fn the_response_limit_is_receive_message_max_bytes() {
        let c = config("bootstrap.servers=b:9092\nreceive.message.max.bytes=209715200\n");
        assert_eq!(c.max_response_size, 200 * 1024 * 1024);
        let e = error("bootstrap.servers=b:9092\nreceive.message.max.bytes=12\n");
        assert!(e.contains("receive.message.max.bytes"), "{e}");
        assert!(e.contains("from 1000 to 2147483647"), "{e}");
    }

    #[test]
    fn hdinsight_consumer_properties() {
        let text = "zookeeper.connect=zk0-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181,zk1-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181,zk6-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181\ngroup.id=mirrorgroup\n";
        let (parsed, logs) = capture(|| parse_named(text, "consumer.properties", &["group.id"]));
        let parsed = parsed.unwrap();
        assert!(parsed.unknown_keys.is_empty());
        assert!(logs.is_empty(), "{logs:?}");
        let c = parsed.config;
        assert!(c.bootstrap_servers.is_empty());
        assert_eq!(
            c.zookeeper_connect.as_deref(),
            Some(
                "zk0-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181,zk1-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181,zk6-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181"
            )
        );
        assert_eq!(c.security_protocol, SecurityProtocol::Plaintext);
    }

    #[test]
    fn hdinsight_producer_properties() {
        let text = "bootstrap.servers=wn0-kafka:9092,wn1-kafka:9092\ncompression.type=none\n";
        let (parsed, logs) =
            capture(|| parse_named(text, "producer.properties", &["compression.type", "acks"]));
        let parsed = parsed.unwrap();
        assert!(parsed.unknown_keys.is_empty());
        assert!(logs.is_empty(), "{logs:?}");
        assert_eq!(
            parsed.config.bootstrap_servers,
            vec!["wn0-kafka:9092", "wn1-kafka:9092"]
        );
        assert_eq!(parsed.config.zookeeper_connect, None);
    }

    #[test]
    fn sasl_ssl_with_jaas_scram_sha_512() {
        let text = r#"
bootstrap.servers=broker1.example.com:9093,broker2.example.com:9093
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
    username="alice" \
    password="alice-secret";
ssl.truststore.location=/etc/kafka/ca.pem
ssl.truststore.type=PEM
client.id=mirror-1
"#;
        let (parsed, logs) = capture(|| parse(text));
        let c = parsed.unwrap().config;
        assert!(logs.is_empty(), "{logs:?}");
        assert_eq!(c.security_protocol, SecurityProtocol::SaslSsl);
        let sasl = c.sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(sasl.username, "alice");
        assert_eq!(sasl.password.expose(), "alice-secret");
        assert_eq!(c.tls.ca_location, Some(PathBuf::from("/etc/kafka/ca.pem")));
        assert!(c.tls.verify_hostname);
        assert_eq!(c.client_id, "mirror-1");

        let debug = format!("{c:?} {c:#?}");
        assert!(!debug.contains("alice-secret"), "{debug}");
        assert!(debug.contains("[redacted]"));
        assert!(debug.contains("alice"));
    }

    #[test]
    fn librdkafka_style_credentials_and_tls_files() {
        let text = "metadata.broker.list=b:9093\nsecurity.protocol=sasl_ssl\nsasl.mechanisms=SCRAM-SHA-256\nsasl.username=bob\nsasl.password=bob-secret\nssl.ca.location=/ca.pem\nssl.certificate.location=/client.pem\nssl.key.location=/client.key\nssl.key.password=key-secret\nssl.endpoint.identification.algorithm=none\n";
        let (parsed, logs) = capture(|| parse(text));
        let c = parsed.unwrap().config;
        assert!(logs.is_empty(), "{logs:?}");
        assert_eq!(c.bootstrap_servers, vec!["b:9093"]);
        let sasl = c.sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha256);
        assert_eq!(sasl.username, "bob");
        assert_eq!(sasl.password.expose(), "bob-secret");
        assert_eq!(c.tls.ca_location, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            c.tls.certificate_location,
            Some(PathBuf::from("/client.pem"))
        );
        assert_eq!(c.tls.key_location, Some(PathBuf::from("/client.key")));
        assert_eq!(c.tls.key_password.as_ref().unwrap().expose(), "key-secret");
        assert!(!c.tls.verify_hostname);
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("bob-secret") && !debug.contains("key-secret"),
            "{debug}"
        );
    }

    #[test]
    fn numbers_and_buffers() {
        let c = config(
            "bootstrap.servers=b:1\nmetadata.max.age.ms=60000\nretry.backoff.ms=250\nreconnect.backoff.ms=20\nreconnect.backoff.max.ms=5000\nrequest.timeout.ms=45000\nsocket.connection.setup.timeout.ms=3000\nsend.buffer.bytes=131072\nreceive.buffer.bytes=-1\n",
        );
        assert_eq!(c.metadata_max_age, Duration::from_millis(60_000));
        assert_eq!(c.retry_backoff, Duration::from_millis(250));
        assert_eq!(c.reconnect_backoff, Duration::from_millis(20));
        assert_eq!(c.reconnect_backoff_max, Duration::from_millis(5000));
        assert_eq!(c.request_timeout, Duration::from_millis(45_000));
        assert_eq!(c.connection_setup_timeout, Duration::from_millis(3000));
        assert_eq!(c.send_buffer_bytes, Some(131_072));
        assert_eq!(c.receive_buffer_bytes, None);
        // A maximum below the base backoff is raised to it.
        let c =
            config("bootstrap.servers=b:1\nreconnect.backoff.ms=2000\nreconnect.backoff.max.ms=10");
        assert_eq!(c.reconnect_backoff_max, Duration::from_millis(2000));
    }

    #[test]
    fn bad_number_names_key_value_and_range() {
        assert_eq!(
            error("bootstrap.servers=b:1\nrequest.timeout.ms=30s"),
            "invalid value \"30s\" for request.timeout.ms; allowed: a whole number of \
             milliseconds from 0 to 2147483647 (remove the line for the default, 30000)"
        );
        let e = error("bootstrap.servers=b:1\nmetadata.max.age.ms=-5");
        assert!(
            e.contains("\"-5\" for metadata.max.age.ms")
                && e.contains("from 0 to 9223372036854775807"),
            "{e}"
        );
        let e = error("bootstrap.servers=b:1\nsend.buffer.bytes=0");
        assert!(
            e.contains("\"0\" for send.buffer.bytes") && e.contains("-1"),
            "{e}"
        );
        let e = error("bootstrap.servers=b:1\nreceive.buffer.bytes=4294967296");
        assert!(
            e.contains("for receive.buffer.bytes") && e.contains("2147483647"),
            "{e}"
        );
    }

    #[test]
    fn bad_port() {
        assert_eq!(
            error("bootstrap.servers=wn0-kafka:9092,wn1-kafka:90920"),
            "invalid value \"wn0-kafka:9092,wn1-kafka:90920\" for bootstrap.servers; allowed: \
             host:port entries separated by commas, ports from 1 to 65535, IPv6 addresses in \
             brackets, e.g. broker1:9092,broker2:9092 or [::1]:9092 (`wn1-kafka:90920` has port \
             `90920`; a port is a number from 1 to 65535)"
        );
        let e = error("bootstrap.servers=wn0-kafka");
        assert!(
            e.contains("`wn0-kafka` has no port; write it as wn0-kafka:9092"),
            "{e}"
        );
        let e = error("zookeeper.connect=zk0:99999");
        assert!(
            e.contains("for zookeeper.connect") && e.contains("`99999`"),
            "{e}"
        );
    }

    #[test]
    fn ipv6_bootstrap() {
        assert_eq!(
            config("bootstrap.servers=[::1]:9092").bootstrap_servers,
            vec!["[::1]:9092"]
        );
    }

    #[test]
    fn neither_bootstrap_nor_zookeeper() {
        for text in ["group.id=g", "bootstrap.servers=", "bootstrap.servers= , "] {
            let e = parse_named(text, "consumer.properties", &["group.id"]).unwrap_err();
            assert!(matches!(e, ConfigError::Missing { .. }));
            let e = e.to_string();
            assert!(
                e.starts_with(
                    "missing bootstrap.servers (or zookeeper.connect); consumer.properties must say"
                ),
                "{e}"
            );
            assert!(e.contains("zookeeper.connect=host:2181"), "{e}");
        }
    }

    #[test]
    fn unknown_key_warning_with_suggestion() {
        let text = "bootstrap.server=b:9092\nbootstrap.servers=b:9092\ngroup.idd=g\nfoo.bar=secret-looking\ncompression.type=none\n";
        let (parsed, logs) = capture(|| {
            parse_named(
                text,
                "producer.properties",
                &["compression.type", "group.id"],
            )
        });
        let parsed = parsed.unwrap();
        assert_eq!(
            parsed.unknown_keys,
            vec!["bootstrap.server", "group.idd", "foo.bar"]
        );
        let warns = warnings(&logs);
        assert_eq!(
            warns,
            vec![
                "unknown key \"bootstrap.server\" in producer.properties is not used; did you mean bootstrap.servers?",
                "unknown key \"group.idd\" in producer.properties is not used; did you mean group.id?",
                "unknown key \"foo.bar\" in producer.properties is not used; check its spelling, or remove it",
            ]
        );
        assert!(!logs.iter().any(|(_, t)| t.contains("secret-looking")));
    }

    #[test]
    fn ignored_java_keys_log_info_not_warning() {
        let text = "bootstrap.servers=b:9092\nkey.deserializer=org.apache.kafka.common.serialization.ByteArrayDeserializer\nenable.auto.commit=false\ninterceptor.classes=x\n";
        let (parsed, logs) = capture(|| parse(text));
        assert!(parsed.unwrap().unknown_keys.is_empty());
        assert!(warnings(&logs).is_empty(), "{logs:?}");
        let infos: Vec<&str> = logs
            .iter()
            .filter(|(l, _)| *l == Level::INFO)
            .map(|(_, t)| t.as_str())
            .collect();
        assert_eq!(infos.len(), 3, "{infos:?}");
        assert!(
            infos[0].starts_with("ignored: key.deserializer in test.properties ("),
            "{}",
            infos[0]
        );
        // The caller's own keys win over the ignored list.
        let (_, logs) = capture(|| parse_named(text, "c", &["enable.auto.commit"]));
        assert_eq!(logs.len(), 2, "{logs:?}");
    }

    #[test]
    fn duplicate_keys_warn_with_lines() {
        let (parsed, logs) =
            capture(|| parse("bootstrap.servers=a:1\nclient.id=x\nbootstrap.servers=b:2"));
        assert_eq!(parsed.unwrap().config.bootstrap_servers, vec!["b:2"]);
        assert_eq!(
            warnings(&logs),
            vec![
                "bootstrap.servers is set more than once in test.properties (lines 1 and 3); the last value, from line 3, is used"
            ]
        );
    }

    #[test]
    fn credentials_without_sasl_protocol_warn_unused() {
        let text = "bootstrap.servers=b:1\nsasl.mechanism=PLAIN\nsasl.username=u\nsasl.password=hunter2\nssl.ca.location=/ca.pem";
        let (parsed, logs) = capture(|| parse(text));
        let c = parsed.unwrap().config;
        assert!(c.sasl.is_none());
        assert_eq!(c.tls, TlsConfig::default());
        let warns = warnings(&logs);
        assert_eq!(warns.len(), 2, "{warns:?}");
        assert_eq!(
            warns[0],
            "test.properties: security.protocol=PLAINTEXT does not use TLS, so ssl.ca.location is \
             unused; set security.protocol=SSL (or SASL_SSL) to use TLS"
        );
        assert_eq!(
            warns[1],
            "test.properties: security.protocol=PLAINTEXT does not log in with SASL, so \
             sasl.mechanism, sasl.username, sasl.password are unused; set \
             security.protocol=SASL_PLAINTEXT (or SASL_SSL) to log in with SASL"
        );
        assert!(!logs.iter().any(|(_, t)| t.contains("hunter2")));
    }

    #[test]
    fn conflicting_aliases() {
        let e = error("bootstrap.servers=a:1\nmetadata.broker.list=b:1");
        assert!(e.starts_with("bootstrap.servers and metadata.broker.list are both set and disagree; metadata.broker.list is librdkafka's name"), "{e}");
    }

    #[test]
    fn values_are_trimmed_and_empty_client_id_is_default() {
        let c = config("bootstrap.servers = b:1   \nclient.id=\nsecurity.protocol=SSL  ");
        assert_eq!(c.bootstrap_servers, vec!["b:1"]);
        assert_eq!(c.client_id, "kmirror");
        assert_eq!(c.security_protocol, SecurityProtocol::Ssl);
    }

    #[test]
    fn whole_config_debug_never_contains_any_password() {
        let text = "bootstrap.servers=b:1\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"pw-jaas\";\nssl.ca.location=/ca.pem\nssl.certificate.location=/c.pem\nssl.key.location=/k.pem\nssl.key.password=pw-key\n";
        let props = Properties::parse(text).unwrap();
        let parsed = from_properties(&props, &[]).unwrap();
        let debug = format!("{parsed:?}\n{parsed:#?}\n{props:?}\n{props:#?}");
        assert!(
            !debug.contains("pw-jaas") && !debug.contains("pw-key"),
            "{debug}"
        );
    }
}
