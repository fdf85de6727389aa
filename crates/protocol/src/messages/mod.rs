//! Typed Kafka messages.
//!
//! Requests are kafka-protocol's generated types, framed by
//! [`crate::frame::encode_request`]; the one exception is Produce, whose
//! zero-copy encoder is [`produce::ProduceRequestEncoder`].
//!
//! Responses are decoded by this crate's own bounds-checked readers, because
//! kafka-protocol's decoders trust array lengths from the wire
//! (`Vec::with_capacity` on an unchecked count). The hot-path and discovery
//! responses have hand-written decoders into our own types
//! ([`api_versions`], [`metadata`], [`fetch`], [`produce`]); every other
//! response is first walked by a schema-driven bounds checker
//! ([`control`]) and only then decoded into kafka-protocol's type, so no
//! count can exceed the bytes that carry it.
//!
//! The consumer protocol's subscription and assignment, opaque bytes inside
//! JoinGroup and SyncGroup written by the group's members, have their own
//! bounded codec in [`consumer_protocol`].

pub mod api_versions;
pub mod consumer_protocol;
pub mod control;
pub mod fetch;
pub mod metadata;
pub mod produce;
pub mod request;
pub mod response;
mod shape;

pub use request::KafkaRequest;
pub use response::{ResponseBody, decode_response_body};
