//! SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 against Apache Kafka's own
//! listeners, over SASL_PLAINTEXT and SASL_SSL. The users are set up the
//! way operators do it: PLAIN in the listener's JAAS configuration, SCRAM
//! credentials created with `kafka-configs` (see `ClusterOptions::sasl_user`).

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kmirror_pool::sasl::SaslMechanism;
use kmirror_pool::{Cluster, PoolError};
use kmirror_test_support::{ClusterOptions, KafkaCluster, Listener};

/// One KRaft broker with TLS and every SASL mechanism on its SASL
/// listeners, users `alice` and `bob`; shared by the tests that only log in.
fn cluster() -> &'static KafkaCluster {
    KafkaCluster::shared("pool-sasl", || {
        let (cert, key) = pki().server_files();
        ClusterOptions::kraft()
            .tls(cert, key)
            .sasl_user("alice", "alice-secret")
            .sasl_user("bob", "bob-secret")
    })
}

/// The shared cluster's certificates.
fn pki() -> &'static common::Pki {
    static PKI: OnceLock<common::Pki> = OnceLock::new();
    PKI.get_or_init(|| common::Pki::new("sasl", &["127.0.0.1", "localhost"]))
}

fn sasl_config(
    kafka: &KafkaCluster,
    listener: Listener,
    mechanism: SaslMechanism,
    user: &str,
    password: &str,
) -> kmirror_pool::ClientConfig {
    let (protocol, tls) = match listener {
        Listener::SaslPlaintext => ("SASL_PLAINTEXT", String::new()),
        Listener::SaslSsl => ("SASL_SSL", format!("ssl.ca.location={}\n", pki().ca())),
        other => panic!("not a SASL listener: {other:?}"),
    };
    let module = match mechanism {
        SaslMechanism::Plain => "org.apache.kafka.common.security.plain.PlainLoginModule",
        _ => "org.apache.kafka.common.security.scram.ScramLoginModule",
    };
    common::config(&format!(
        "bootstrap.servers={}\nsecurity.protocol={protocol}\nsasl.mechanism={mechanism}\n\
         sasl.jaas.config={module} required username=\"{user}\" password=\"{password}\";\n\
         {tls}request.timeout.ms=10000\n",
        kafka.bootstrap_for(listener),
        mechanism = mechanism.name(),
    ))
}

const SASL_LISTENERS: [Listener; 2] = [Listener::SaslPlaintext, Listener::SaslSsl];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mechanism_logs_in_over_sasl_plaintext_and_sasl_ssl() {
    let kafka = cluster();
    for listener in SASL_LISTENERS {
        for mechanism in SaslMechanism::ALL {
            let what = format!("{mechanism} over {listener:?}");
            let cluster = Cluster::connect(sasl_config(
                kafka,
                listener,
                mechanism,
                "alice",
                "alice-secret",
            ))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}\n--- broker log:\n{}", kafka.log(1)));
            let metadata = cluster.metadata().await.unwrap();
            // Kafka answers Metadata with the endpoints of the listener the
            // request came in on.
            assert_eq!(metadata.brokers.len(), 1, "{what}");
            assert_eq!(
                metadata.brokers[&1].addr,
                kafka.bootstrap_for(listener),
                "{what}"
            );
            // A second, authenticated connection, to the advertised address.
            let conn = cluster.connection_to_broker(1).await.unwrap();
            assert!(!conn.is_poisoned(), "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_clearly_with_every_mechanism() {
    let kafka = cluster();
    for listener in SASL_LISTENERS {
        for mechanism in SaslMechanism::ALL {
            let what = format!("{mechanism} over {listener:?}");
            let started = Instant::now();
            let err = Cluster::connect(sasl_config(
                kafka,
                listener,
                mechanism,
                "alice",
                "wrong-password",
            ))
            .await
            .unwrap_err();
            let PoolError::Auth {
                broker,
                mechanism: reported,
                reason,
            } = &err
            else {
                panic!("{what}: an authentication error, not {err:?}");
            };
            assert_eq!(broker, &kafka.bootstrap_for(listener), "{what}");
            assert_eq!(reported, mechanism.name(), "{what}");
            let message = err.to_string();
            // Kafka's own words (SaslServerAuthenticator sends the
            // SaslAuthenticationException's message), then what to check.
            assert!(
                reason.contains("Authentication failed"),
                "{what}: {message}"
            );
            assert!(
                message.contains(mechanism.name()) && message.contains("password"),
                "{what}: {message}"
            );
            assert!(
                !message.contains("wrong-password"),
                "{what}: the password never appears: {message}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{what}: failed fast, no retries until the timeout ({:?})",
                started.elapsed()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_and_another_users_password_are_refused() {
    let kafka = cluster();
    for mechanism in SaslMechanism::ALL {
        for (user, password) in [("mallory", "alice-secret"), ("bob", "alice-secret")] {
            let err = Cluster::connect(sasl_config(
                kafka,
                Listener::SaslPlaintext,
                mechanism,
                user,
                password,
            ))
            .await
            .unwrap_err();
            assert!(
                matches!(err, PoolError::Auth { .. }),
                "{mechanism} as {user}: {err:?}"
            );
        }
    }
    // Bob's own password works: two users, two credentials.
    Cluster::connect(sasl_config(
        kafka,
        Listener::SaslPlaintext,
        SaslMechanism::ScramSha256,
        "bob",
        "bob-secret",
    ))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_against_a_listener_without_sasl_says_so() {
    // Apache Kafka answers a SaslHandshake on a PLAINTEXT listener with
    // ILLEGAL_SASL_STATE and no mechanisms (KafkaApis.handleSaslHandshakeRequest):
    // the error must point at security.protocol, not at sasl.mechanism.
    let kafka = cluster();
    let config = common::config(&format!(
        "bootstrap.servers={}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
         sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"alice-secret\";\n\
         request.timeout.ms=5000\n",
        kafka.bootstrap()
    ));
    let err = Cluster::connect(config).await.unwrap_err();
    assert!(matches!(err, PoolError::Auth { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("security.protocol"), "{message}");
    assert!(!message.contains("set sasl.mechanism"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mechanism_the_broker_refuses_is_named_with_the_alternatives() {
    // A broker of its own: only SCRAM-SHA-512 enabled.
    let kafka = KafkaCluster::start(
        ClusterOptions::kraft()
            .name("pool-sasl-512-only")
            .sasl_user("carol", "carol-secret")
            .config("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
    );
    let config = |mechanism: &str, module: &str| {
        common::config(&format!(
            "bootstrap.servers={}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism={mechanism}\n\
             sasl.jaas.config={module} required username=\"carol\" password=\"carol-secret\";\n\
             request.timeout.ms=10000\n",
            kafka.bootstrap_for(Listener::SaslPlaintext)
        ))
    };
    for (mechanism, module) in [
        (
            "PLAIN",
            "org.apache.kafka.common.security.plain.PlainLoginModule",
        ),
        (
            "SCRAM-SHA-256",
            "org.apache.kafka.common.security.scram.ScramLoginModule",
        ),
    ] {
        let err = Cluster::connect(config(mechanism, module))
            .await
            .unwrap_err();
        assert!(matches!(err, PoolError::Auth { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("does not accept {mechanism}"))
                && message.contains(r#"["SCRAM-SHA-512"]"#),
            "{message}"
        );
    }
    Cluster::connect(config(
        "SCRAM-SHA-512",
        "org.apache.kafka.common.security.scram.ScramLoginModule",
    ))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_against_a_sasl_listener_says_to_set_security_protocol() {
    // Apache Kafka's SaslServerAuthenticator answers ApiVersions before
    // authentication, then closes the connection on any other request
    // (IllegalSaslStateException: "Unexpected Kafka request of type METADATA
    // during SASL handshake"), without an error response.
    let kafka = cluster();
    let started = Instant::now();
    let err = Cluster::connect(common::config(&format!(
        "bootstrap.servers={}\nrequest.timeout.ms=3000\n",
        kafka.bootstrap_for(Listener::SaslPlaintext)
    )))
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, PoolError::Unreachable { .. }), "{err:?}");
    assert!(
        message.contains("security.protocol=SASL_PLAINTEXT or SASL_SSL"),
        "{message}"
    );
    assert!(
        message.contains("the broker closed the connection"),
        "the failure itself, not a later attempt cut short by the deadline: {message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
}
