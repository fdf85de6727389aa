//! # kmirror-pool
//!
//! Connections to one Kafka cluster: bootstrap, broker discovery, metadata,
//! one pipelined connection per broker, version negotiation, TLS and SASL,
//! retries. It owns sockets and time; the bytes it sends and reads are
//! encoded and decoded by [`kmirror_protocol`].
//!
//! This crate is filled by the cluster-connections work item; until then it
//! only fixes its place in the workspace.
#![forbid(unsafe_code)]

pub use kmirror_protocol as protocol;
