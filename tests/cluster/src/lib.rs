//! # kmirror-test-cluster
//!
//! Apache Kafka on this machine, for kmirror's tests, demo and benchmarks:
//! [`KafkaCluster`] starts one or more brokers of a pinned version
//! ([`KafkaVersion`]) on free loopback ports, in KRaft mode or ZooKeeper
//! mode (with a [`ZooKeeper`] of its own), with PLAINTEXT, TLS and SASL
//! (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) listeners; it kills, stops and
//! restarts brokers and moves partition leaders with Kafka's own tools.
//! [`run_tool`] runs any of Kafka's command-line tools.
//!
//! Kafka comes from Maven Central, installed by `cargo xtask brokers` into
//! `${KMIRROR_TOOLS:-$HOME/.cache/kmirror/tools}` with the `kafka-tool`
//! launcher. Every JVM runs under a watchdog that kills it when the process
//! that started it exits, so clusters shared through [`KafkaCluster::shared`]
//! (never dropped) never outlive a test run.
//!
//! Std only, so that `xtask` can use it without building the product. Failures
//! panic with a message that says what to do, because a panic is how a test
//! fails; the broker's log is part of the message.
#![forbid(unsafe_code)]

mod cluster;
mod probe;
mod process;
pub mod scratch;
mod tools;
mod zookeeper;

pub use cluster::{
    ClusterOptions, Election, KafkaCluster, Listener, Mode, PERFORMANCE_JVM_OPTS, QUICK_JVM_OPTS,
};
pub use probe::{ClusterView, PartitionInfo, metadata};
pub use process::Server;
pub use tools::{
    KafkaVersion, TOOL_TIMEOUT, ToolOutput, kafka_tool, run_tool, run_tool_ok, tools_root,
};
pub use zookeeper::ZooKeeper;

use std::net::{Ipv4Addr, TcpListener};

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0,
/// read, released). Another process may take it before the caller binds it;
/// on a test machine that is rare enough.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the address of a bound socket: {e}"))
        .port()
}
