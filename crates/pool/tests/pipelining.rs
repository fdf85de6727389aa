//! Many requests in flight on one connection, each answered and matched to
//! its own request by correlation id, against Apache Kafka (which reads
//! one request per connection at a time, so the pipelining here is the
//! client's: frames queued on the socket while earlier ones are answered).

mod common;

/// One KRaft broker for both tests (they only ask for topics that do not
/// exist, under names of their own).
fn cluster() -> &'static KafkaCluster {
    KafkaCluster::shared("pool-pipelining", ClusterOptions::kraft)
}

use std::sync::Arc;

use kmirror_pool::Cluster;
use kmirror_pool::protocol::messages::metadata::metadata_request;
use kmirror_test_support::{ClusterOptions, KafkaCluster};
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_in_flight_are_all_answered_and_matched() {
    let addr = cluster().bootstrap();
    let cluster = Cluster::connect(common::config(&format!("bootstrap.servers={addr}\n")))
        .await
        .unwrap();
    let conn = cluster.connection(&addr).await.unwrap();

    // Each request names a different (missing) topic, so each response
    // proves which request it answers.
    let mut requests = JoinSet::new();
    for i in 0..1000 {
        let conn = Arc::clone(&conn);
        requests.spawn(async move {
            let name = format!("probe-{i}");
            let response = conn.send(&metadata_request(Some(&[name.as_str()]))).await;
            (name, response)
        });
    }
    let mut peak = 0;
    while requests.len() > 990 {
        peak = peak.max(conn.in_flight());
        tokio::task::yield_now().await;
        if peak > 1 {
            break;
        }
    }
    let mut answered = 0;
    while let Some(joined) = requests.join_next().await {
        let (name, response) = joined.unwrap();
        let response = response.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(response.topics.len(), 1);
        assert_eq!(
            response.topics[0].name.as_ref().unwrap().as_str(),
            name,
            "response matched to the wrong request"
        );
        answered += 1;
    }
    assert_eq!(answered, 1000);
    assert!(
        peak > 1,
        "requests were never in flight together (peak {peak})"
    );
    assert_eq!(conn.in_flight(), 0);
    assert!(!conn.is_poisoned());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_requests_leave_the_connection_usable() {
    let addr = cluster().bootstrap();
    let cluster = Cluster::connect(common::config(&format!("bootstrap.servers={addr}\n")))
        .await
        .unwrap();
    let conn = cluster.connection(&addr).await.unwrap();

    // Start 500 requests and abort every other one at an arbitrary point:
    // queued, being written, or waiting for the response.
    let mut tasks = Vec::new();
    for i in 0..500 {
        let conn = Arc::clone(&conn);
        tasks.push(tokio::spawn(async move {
            let name = format!("cancel-{i}");
            conn.send(&metadata_request(Some(&[name.as_str()])))
                .await
                .map(|r| (name, r))
        }));
    }
    for (i, task) in tasks.iter().enumerate() {
        if i % 2 == 0 {
            task.abort();
        }
    }
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok(Ok((name, response))) => {
                assert_eq!(response.topics[0].name.as_ref().unwrap().as_str(), name)
            }
            Ok(Err(e)) => panic!("request {i} failed: {e}"),
            Err(join) => assert!(join.is_cancelled() && i % 2 == 0),
        }
    }
    // No half-written frame: the connection still works, and every waiter
    // of a cancelled request was forgotten (late responses are dropped).
    let response = conn
        .send(&metadata_request(Some(&["after-cancel"])))
        .await
        .unwrap();
    assert_eq!(
        response.topics[0].name.as_ref().unwrap().as_str(),
        "after-cancel"
    );
    assert!(!conn.is_poisoned());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while conn.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(conn.in_flight(), 0);
}
