//! # kmirror-test-support
//!
//! What kmirror's integration tests need from the machine: real brokers
//! ([`Broker`], the Kafka-compatible nisshi), real ZooKeeper servers
//! ([`ZooKeeper`], for `zookeeper.connect` discovery), and third-party
//! clients (librdkafka through PyPI's `confluent-kafka`, see
//! [`run_python`]) to cross-check what kmirror does.
//!
//! Everything here is synchronous and quick (process starts, port polls), so
//! async tests may call it directly. Failures panic with a message that says
//! what to do, because a panic is how a test fails; the broker's or server's
//! log is part of the message.
//!
//! The tools are installed by `cargo xtask brokers` into
//! `${KMIRROR_TOOLS:-$HOME/.cache/kmirror/tools}` (nisshi) and
//! `${KMIRROR_VENV:-$HOME/.cache/kmirror/venv}` (the Python clients);
//! ZooKeeper comes from Debian's `zookeeper` package.
#![forbid(unsafe_code)]

mod broker;
mod conformance_proxy;
mod paths;
mod python;
mod records;
mod scratch;
mod zookeeper;

pub use broker::{Broker, BrokerOptions, Scram, Storage};
pub use conformance_proxy::{ConformanceProxy, ConformanceReport, start_broker_behind_proxy};
pub use paths::{nisshi_bin, tansu_bin, venv_python};
pub use python::{librdkafka_create_topic, librdkafka_list_topics, run_python};
pub use records::{
    Codec, ConsumedRecord, PartitionSummary, ProduceSpec, assert_same_records,
    librdkafka_committed_offsets, librdkafka_consume_all, librdkafka_consume_summary,
    librdkafka_end_offsets, librdkafka_produce, value_sequence,
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
