//! Many requests in flight on one connection, each answered and matched to
//! its own request by correlation id.

mod common;

use std::sync::Arc;

use kmirror_pool::Cluster;
use kmirror_pool::protocol::messages::metadata::metadata_request;
use kmirror_test_support::{Broker, BrokerOptions};
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_in_flight_are_all_answered_and_matched() {
    let broker = Broker::start(BrokerOptions::memory());
    let cluster = Cluster::connect(common::config(&format!(
        "bootstrap.servers={}\n",
        broker.addr()
    )))
    .await
    .unwrap();
    let conn = cluster.connection(&broker.addr()).await.unwrap();

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
