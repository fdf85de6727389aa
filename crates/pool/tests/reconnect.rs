//! A broker killed while requests are in flight: every in-flight request
//! fails with one shared error, and the client reconnects once the broker
//! is back. Against an Apache Kafka broker of its own (it is killed and
//! restarted), which keeps its topics on disk across the restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use kmirror_pool::protocol::kafka_protocol::messages::{
    ApiKey, FetchRequest, TopicName, fetch_request,
};
use kmirror_pool::protocol::kafka_protocol::protocol::StrBytes;
use kmirror_pool::{Cluster, PoolError};
use kmirror_test_support::{ClusterOptions, KafkaCluster, Listener};
use tokio::task::JoinSet;

/// A long-polling fetch: the broker holds it up to `max_wait_ms`, so it stays
/// in flight. From Fetch v13 topics are named by id.
fn long_poll(topic: &str, id: [u8; 16], version: i16) -> FetchRequest {
    let fetch_topic = fetch_request::FetchTopic::default();
    let fetch_topic = if version >= 13 {
        fetch_topic.with_topic_id(uuid::Uuid::from_bytes(id))
    } else {
        fetch_topic.with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
    };
    FetchRequest::default()
        .with_max_wait_ms(10_000)
        .with_min_bytes(1_000_000)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_topic.with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ])])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_broker_fails_all_in_flight_requests_with_one_error_then_reconnects() {
    let mut kafka = KafkaCluster::start(ClusterOptions::kraft().name("pool-reconnect"));
    kafka.create_topic("idle", 1, 1, &[]);
    let addr = kafka.broker_addr(1, Listener::Plaintext);
    let cluster = Cluster::connect(common::config(&format!(
        "bootstrap.servers={addr}\nrequest.timeout.ms=30000\nreconnect.backoff.ms=50\nreconnect.backoff.max.ms=500\n"
    )))
    .await
    .unwrap();
    let conn = cluster.connection(&addr).await.unwrap();
    let version = conn.versions().version(ApiKey::Fetch).unwrap();
    let id = cluster.metadata().await.unwrap().topics["idle"].id;
    let request = Arc::new(long_poll("idle", id, version));

    let mut in_flight = JoinSet::new();
    for _ in 0..50 {
        let conn = Arc::clone(&conn);
        let request = Arc::clone(&request);
        in_flight.spawn(async move { conn.send(&*request).await });
    }
    // Wait until the requests are on the wire.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while conn.in_flight() < 50 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if conn.in_flight() < 50 {
        let done = in_flight
            .try_join_next()
            .map(|r| format!("{:?}", r.unwrap().map(|_| ())));
        panic!(
            "only {} requests in flight; one ended with {done:?}",
            conn.in_flight()
        );
    }

    kafka.kill(1);

    let mut causes = Vec::new();
    while let Some(joined) = in_flight.join_next().await {
        match joined.unwrap() {
            Err(PoolError::ConnectionLost { cause, .. }) => causes.push(cause),
            other => panic!("expected the shared connection error, got {other:?}"),
        }
    }
    assert_eq!(causes.len(), 50);
    assert!(
        causes.iter().all(|c| Arc::ptr_eq(c, &causes[0])),
        "one shared error for all in-flight requests"
    );
    assert!(conn.is_poisoned());
    // A new request on the broken connection fails at once, with the same cause.
    match conn.send(&*request).await {
        Err(PoolError::ConnectionLost { cause, .. }) => assert!(Arc::ptr_eq(&cause, &causes[0])),
        other => panic!("{other:?}"),
    }

    kafka.restart(1);

    // The cluster reconnects (with backoff) and later requests succeed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match cluster.refresh_metadata().await {
            Ok(m) if m.topics.contains_key("idle") => break,
            Ok(_) => panic!("topic lost across the restart (Kafka keeps it on disk)"),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing_like_sleep(&e).await;
            }
            Err(e) => panic!("no reconnect: {e}"),
        }
    }
    let fresh = cluster.connection(&addr).await.unwrap();
    assert!(
        !Arc::ptr_eq(&fresh, &conn),
        "a new connection replaced the poisoned one"
    );
    assert!(!fresh.is_poisoned());
}

async fn tracing_like_sleep(_e: &PoolError) {
    tokio::time::sleep(Duration::from_millis(100)).await;
}
