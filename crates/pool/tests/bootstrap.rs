//! Bootstrap, metadata and the never-auto-create rule, against Apache
//! Kafka, with topics created by librdkafka.

mod common;

use kmirror_pool::Cluster;
use kmirror_pool::protocol::ResponseError;
use kmirror_pool::protocol::messages::metadata::metadata_request;
use kmirror_test_support::{
    ClusterOptions, KafkaCluster, free_port, librdkafka_create_topic, librdkafka_list_topics,
};

/// One KRaft broker for every test here (each uses topic names of its own).
fn cluster() -> &'static KafkaCluster {
    KafkaCluster::shared("pool-bootstrap", ClusterOptions::kraft)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstraps_past_a_dead_address_and_reads_librdkafka_topics() {
    let kafka = cluster();
    let addr = kafka.bootstrap();
    librdkafka_create_topic(&addr, "made-by-librdkafka", 3, &[]);
    let dead = format!("127.0.0.1:{}", free_port());

    let cluster = Cluster::connect(common::config(&format!(
        "bootstrap.servers={dead},{addr}\nrequest.timeout.ms=10000\n"
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
    assert_ne!(topic.id, [0; 16], "KRaft topics have ids");
    assert_eq!(metadata.brokers.len(), 1);
    assert_eq!(metadata.brokers[&1].addr, addr, "the advertised listener");
    assert_eq!(cluster.leader_of("made-by-librdkafka", 2).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_a_missing_topic_never_creates_it() {
    let kafka = cluster();
    let cluster = Cluster::connect(common::config(&format!(
        "bootstrap.servers={}\n",
        kafka.bootstrap()
    )))
    .await
    .unwrap();

    // A Metadata request that NAMES the topic: with auto-creation allowed,
    // Apache Kafka (auto.create.topics.enable=true by default) would create
    // it, so this only passes if kmirror sends allow_auto_topic_creation=false.
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

    let topics = librdkafka_list_topics(&kafka.bootstrap());
    assert!(
        !topics.iter().any(|t| t == "must-not-exist"),
        "topic was auto-created: {topics:?}"
    );
}
