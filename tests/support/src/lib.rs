//! # kmirror-test-support
//!
//! What kmirror's integration tests need from the machine: Apache Kafka
//! clusters ([`KafkaCluster`], from `kmirror-test-cluster`: KRaft or
//! ZooKeeper mode, one or three brokers, TLS and SASL listeners, Kafka's
//! own command-line tools), a proxy that checks every Produce request
//! against Apache Kafka's rules ([`ConformanceProxy`]), and third-party
//! clients (librdkafka through PyPI's `confluent-kafka`, see
//! [`run_python`]) to cross-check what kmirror does, and MirrorMaker 2's
//! own checkpoint classes run by Java ([`mm2`]).
//!
//! Everything here is synchronous and quick (process starts, port polls), so
//! async tests may call it directly. Failures panic with a message that says
//! what to do, because a panic is how a test fails; the broker's or server's
//! log is part of the message.
//!
//! The tools are installed by `cargo xtask brokers` into
//! `${KMIRROR_TOOLS:-$HOME/.cache/kmirror/tools}` (Apache Kafka and
//! ZooKeeper from Maven Central) and `${KMIRROR_VENV:-$HOME/.cache/kmirror/venv}`
//! (the Python clients).
#![forbid(unsafe_code)]

mod conformance_proxy;
mod groups;
pub mod mm2;
mod paths;
mod python;
mod records;

pub use conformance_proxy::{ConformanceProxy, ConformanceReport, start_cluster_behind_proxy};
pub use groups::{GroupRecord, librdkafka_group_read, values_by_partition};
pub use kmirror_test_cluster::{
    ClusterOptions, ClusterView, Election, KafkaCluster, KafkaVersion, Listener, Mode,
    PartitionInfo, ToolOutput, ZooKeeper, free_port, kafka_tool, run_tool, run_tool_ok,
};
pub use paths::venv_python;
pub use python::{librdkafka_create_topic, librdkafka_list_topics, run_python};
pub use records::{
    Codec, ConsumedRecord, PartitionSummary, ProduceSpec, assert_same_records,
    librdkafka_committed_offsets, librdkafka_consume_all, librdkafka_consume_summary,
    librdkafka_end_offsets, librdkafka_produce, value_sequence,
};
