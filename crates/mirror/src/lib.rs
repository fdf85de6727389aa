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
//! - [`fetch_plan`]: what to do with one partition of one Fetch response.
//!   [`plan_partition`] turns its record bytes into a
//!   [`FetchedPartitionPlan`]: passthrough, slow-path and skip steps whose
//!   source offset ranges chain from the fetch position to the next one
//!   (compaction holes included, so the ledger sees no gap), after the CRC
//!   check and the READ_COMMITTED filter; a batch larger than the fetch is
//!   reported instead of fetched forever.
//! - [`sequencer`]: the mirror's own idempotent producer.
//!   [`ProducerSequencer`] stamps each destination batch with the producer
//!   id, epoch and per-partition base sequence, keeps at most five batches
//!   in flight per partition, and restarts sequences after an epoch bump.
//!
//! - [`translation`]: exact offset translation. The offset map records
//!   where each stretch of source records landed on the destination
//!   ([`translation::MapRecorder`], written before each commit);
//!   [`translation::OffsetIndex`] reads it back and translates a consumer
//!   group's source position; MirrorMaker 2's checkpoint records carry
//!   the answers to tools built for MirrorMaker 2.
//!
//! [`engine`] is the runtime on top: [`Mirror`] with its fetch loops,
//! produce lanes, topic creation and commits, which own sockets and time.
#![forbid(unsafe_code)]
// Nothing reachable from input may panic (clippy.toml allows these in
// tests).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod engine;
pub mod fetch_plan;
pub mod ledger;
pub mod selection;
pub mod sequencer;
pub mod translation;

pub use engine::{
    Assignor, FetchConfig, GroupConfig, GroupProtocol, Metrics, MetricsSnapshot, Mirror,
    MirrorConfig, MirrorError, OffsetReset, ProduceConfig, RunMode, RunSummary, Side, StopHandle,
};
pub use fetch_plan::{
    FetchPlanError, FetchSettings, FetchedPartitionPlan, IsolationLevel, PlanCounters, PlanStep,
    SkipCause, plan_fetch_partition, plan_partition,
};
pub use ledger::{DispatchId, LedgerError, OffsetLedger, Receipt};
pub use selection::{SelectionError, TopicSelector, TopicVerdict};
pub use sequencer::{ProducerSequencer, SequenceError};

pub use kmirror_pool as pool;
pub use kmirror_protocol as protocol;
