//! # kmirror-protocol
//!
//! The sans-io core of kmirror: Kafka bytes in, Kafka bytes out. No sockets,
//! no clocks, no async runtime; [`kmirror-pool`] owns those.
//!
//! The hot path of the mirror lives here: a Fetch response is decoded with
//! its record bytes left as slices of the received buffer
//! ([`messages::fetch`]), each batch is read through a [`record::RecordBatchView`]
//! and classified ([`record::classify`]), a qualifying batch is rewritten as a
//! new 61-byte header in front of its untouched payload ([`record::rewrite`]),
//! and a Produce request carries those two parts as separate chunks for a
//! vectored write ([`messages::produce`]). No record is decoded and no payload
//! byte is copied on that path.
//!
//! Everything else the mirror needs is here too: framing ([`frame`],
//! [`header`]), version negotiation ([`api`]), bounds-checked decoders for
//! every response kmirror reads ([`messages`]), the slow path's record codec
//! and batch builder ([`record`]), the four compression codecs
//! ([`compression`]), Java's default partitioner ([`partitioner`]), and a
//! checker of Apache Kafka's broker rules for Produce requests
//! ([`conformance`]).
//!
//! Nothing in this crate panics on bad input: every length read from the wire
//! is checked against the bytes that remain before anything is allocated.
//!
//! [`kmirror-pool`]: https://docs.rs/kmirror-pool
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod api;
pub mod compression;
pub mod conformance;
pub mod error;
pub mod frame;
pub mod header;
pub mod messages;
pub mod partitioner;
pub mod record;
mod wire;

pub use api::{ApiSpec, NegotiatedVersions, SUPPORTED_APIS};
pub use compression::Compression;
pub use error::{CompressionError, ProtocolError, RecordError};
pub use frame::{FrameDecoder, encode_request};
pub use record::{RecordBatchView, RecordBatches};

/// Kafka's error codes as a typed enum with `is_retriable()` (from the
/// kafka-protocol crate, generated from Apache Kafka's `Errors.java`).
pub use kafka_protocol::ResponseError;

/// The message types of the kafka-protocol crate, re-exported so that users
/// of this crate build requests without depending on it directly.
pub use kafka_protocol;
