//! # kmirror-pool
//!
//! Connections to one Kafka cluster: bootstrap (from `bootstrap.servers` or
//! ZooKeeper registrations), broker discovery, a metadata cache, one
//! pipelined connection per broker, version negotiation, TLS and SASL, and
//! retries with backoff. It owns sockets and time; every byte it sends and
//! reads is encoded and decoded by [`kmirror_protocol`].
//!
//! The entry point is [`Cluster`]: the mirror engine holds one per cluster and
//! sends typed requests to a partition's leader, a group's coordinator or a
//! given broker without knowing about connections.
#![forbid(unsafe_code)]

mod backoff;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod dialer;
pub mod error;
mod frame_buffers;
pub mod sasl;
mod tls;
pub mod zookeeper;

pub use cluster::Cluster;
pub use config::{ClientConfig, ConfigError, Properties};
pub use connection::{BrokerConnection, InFlight};
pub use dialer::{Dialer, Transport};
pub use error::PoolError;
pub use kmirror_protocol as protocol;
