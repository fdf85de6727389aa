//! Bootstrap, metadata and the never-auto-create rule, against a real
//! nisshi broker, with topics created by librdkafka.

mod common;

use kmirror_pool::Cluster;
use kmirror_pool::protocol::ResponseError;
use kmirror_pool::protocol::messages::metadata::metadata_request;
use kmirror_test_support::{
    Broker, BrokerOptions, free_port, librdkafka_create_topic, librdkafka_list_topics,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstraps_past_a_dead_address_and_reads_librdkafka_topics() {
    let broker = Broker::start(BrokerOptions::memory());
    librdkafka_create_topic(&broker.addr(), "made-by-librdkafka", 3, &[]);
    let dead = format!("127.0.0.1:{}", free_port());

    let cluster = Cluster::connect(common::config(&format!(
        "bootstrap.servers={dead},{}\nrequest.timeout.ms=10000\n",
        broker.addr()
    )))
    .await
    .expect("bootstrap through the second address");

    let metadata = cluster.metadata().await.unwrap();
    let topic = metadata
        .topics
        .get("made-by-librdkafka")
        .expect("topic in metadata");
    assert_eq!(topic.partitions.len(), 3);
    assert!(topic.partitions.iter().all(|p| p.leader.is_some()));
    assert_eq!(metadata.brokers.len(), 1);
    assert_eq!(
        cluster.leader_of("made-by-librdkafka", 2).await.unwrap(),
        *metadata.brokers.keys().next().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_a_missing_topic_never_creates_it() {
    let broker = Broker::start(BrokerOptions::memory());
    let cluster = Cluster::connect(common::config(&format!(
        "bootstrap.servers={}\n",
        broker.addr()
    )))
    .await
    .unwrap();

    // A Metadata request that NAMES the topic: with auto-creation allowed,
    // Kafka and nisshi would create it.
    let response = cluster
        .send_to_any(&metadata_request(Some(&["must-not-exist"])))
        .await
        .unwrap();
    assert_eq!(response.topics.len(), 1);
    assert_eq!(
        ResponseError::try_from_code(response.topics[0].error_code),
        Some(ResponseError::UnknownTopicOrPartition)
    );
    let err = cluster.leader_of("must-not-exist", 0).await.unwrap_err();
    assert!(err.to_string().contains("must-not-exist"), "{err}");

    let topics = librdkafka_list_topics(&broker.addr());
    assert!(
        !topics.iter().any(|t| t == "must-not-exist"),
        "topic was auto-created: {topics:?}"
    );
}
