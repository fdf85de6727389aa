//! SASL/SCRAM-SHA-512 against nisshi with `--authentication`.

mod common;

use std::time::{Duration, Instant};

use kmirror_pool::{Cluster, PoolError};
use kmirror_test_support::Broker;

fn scram_config(
    broker: &Broker,
    mechanism: &str,
    user: &str,
    password: &str,
) -> kmirror_pool::ClientConfig {
    common::config(&format!(
        "bootstrap.servers={}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism={mechanism}\n\
         sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{user}\" password=\"{password}\";\n\
         request.timeout.ms=10000\n",
        broker.addr()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_512_login_succeeds_and_a_wrong_password_fails_clearly() {
    let broker = Broker::start_with_scram_user("alice", "alice-secret");

    let cluster = Cluster::connect(scram_config(
        &broker,
        "SCRAM-SHA-512",
        "alice",
        "alice-secret",
    ))
    .await
    .expect("login with the right password");
    assert_eq!(cluster.metadata().await.unwrap().brokers.len(), 1);

    let started = Instant::now();
    let err = Cluster::connect(scram_config(
        &broker,
        "SCRAM-SHA-512",
        "alice",
        "wrong-password",
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(err, PoolError::Auth { .. }),
        "an authentication error, not I/O: {err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("SCRAM-SHA-512") && message.contains("password"),
        "{message}"
    );
    assert!(
        !message.contains("wrong-password"),
        "the password never appears: {message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed fast, no hang"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mechanism_the_broker_refuses_is_named_with_the_alternatives() {
    let broker = Broker::start_with_scram_user("bob", "bob-secret");
    let err = Cluster::connect(scram_config(&broker, "PLAIN", "bob", "bob-secret"))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, PoolError::Auth { .. }), "{err:?}");
    assert!(message.contains("PLAIN"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_256_login_succeeds() {
    // The harness creates both SCRAM credentials for the user.
    let broker = Broker::start_with_scram_user("carol", "carol-secret");
    let cluster = Cluster::connect(scram_config(
        &broker,
        "SCRAM-SHA-256",
        "carol",
        "carol-secret",
    ))
    .await
    .expect("SCRAM-SHA-256 login");
    assert_eq!(cluster.metadata().await.unwrap().brokers.len(), 1);
    let err = Cluster::connect(scram_config(&broker, "SCRAM-SHA-256", "carol", "nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, PoolError::Auth { .. }), "{err:?}");
}
