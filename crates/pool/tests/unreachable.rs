//! An unreachable cluster gives a clear error within the configured timeout.

mod common;

use std::time::{Duration, Instant};

use kmirror_pool::{Cluster, PoolError};
use kmirror_test_support::free_port;

#[tokio::test]
async fn unreachable_cluster_fails_clearly_within_the_timeout() {
    let a = format!("127.0.0.1:{}", free_port());
    let b = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let err = Cluster::connect(common::config(&format!(
        "bootstrap.servers={a},{b}\nrequest.timeout.ms=2000\nreconnect.backoff.ms=50\n"
    )))
    .await
    .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, PoolError::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&a) && message.contains(&b),
        "names the servers: {message}"
    );
    assert!(
        message.contains("bootstrap.servers"),
        "says what to check: {message}"
    );
    // Within the configured 2 s (plus scheduling slack), not a hang.
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(1500),
        "gave up early: {elapsed:?}"
    );
}

#[tokio::test]
async fn unresolvable_host_is_named_in_the_error() {
    let err = Cluster::connect(common::config(
        "bootstrap.servers=no-such-host.invalid:9092\nrequest.timeout.ms=1000\n",
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
}

#[tokio::test]
async fn a_broker_that_never_answers_times_out_within_request_timeout() {
    // Accepts connections and reads, but never writes a byte.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let err = Cluster::connect(common::config(&format!(
        "bootstrap.servers={addr}\nrequest.timeout.ms=1500\n"
    )))
    .await
    .unwrap_err();
    assert!(matches!(err, PoolError::Unreachable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
}
