//! # kmirror
//!
//! The mirror engine: topic selection, partition mapping, fetch,
//! passthrough or slow-path re-produce, offset tracking and commits. A
//! library with no CLI or process-global assumptions; the `kmirror` binary
//! sits on top of it.
//!
//! This crate is filled by the mirror-engine work item; until then it only
//! fixes its place in the workspace.
#![forbid(unsafe_code)]

pub use kmirror_pool as pool;
pub use kmirror_protocol as protocol;
