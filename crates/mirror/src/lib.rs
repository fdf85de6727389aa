//! # kmirror
//!
//! The mirror engine: topic selection, partition mapping, fetch,
//! passthrough or slow-path re-produce, offset tracking and commits. A
//! library with no CLI or process-global assumptions; the `kmirror` binary
//! sits on top of it.
//!
//! Like `quinn-proto`, the engine's decisions are plain state machines with
//! no I/O and no clock, which the runtime layer feeds with events and which
//! unit tests drive without a broker:
//!
//! - [`selection`]: which source topics are mirrored. [`TopicSelector`]
//!   keeps MirrorMaker 1's `--whitelist`/`--include` and
//!   `--blacklist`/`--exclude` semantics (a regex matched against the whole
//!   topic name, `,` between alternatives, exclude wins) and never selects
//!   an internal topic (`__` prefix).
//! - [`ledger`]: at-least-once offsets for one source partition.
//!   [`OffsetLedger`] accounts for every source offset range dispatched to
//!   the producer or skipped, and answers which offset may be committed:
//!   never one above a record the destination has not acknowledged.
//! - [`sequencer`]: the mirror's own idempotent producer.
//!   [`ProducerSequencer`] stamps each destination batch with the producer
//!   id, epoch and per-partition base sequence, keeps at most five batches
//!   in flight per partition, and restarts sequences after an epoch bump.
//!
//! Fetch loops, produce pipelines, topic creation and the commit loop, which
//! own sockets and time, build on these.
#![forbid(unsafe_code)]
// Nothing reachable from input may panic (clippy.toml allows these in
// tests).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod ledger;
pub mod selection;
pub mod sequencer;

pub use ledger::{DispatchId, LedgerError, OffsetLedger, Receipt};
pub use selection::{SelectionError, TopicSelector, TopicVerdict};
pub use sequencer::{ProducerSequencer, SequenceError};

pub use kmirror_pool as pool;
pub use kmirror_protocol as protocol;
