//! Record batches: the zero-copy fast path and the slow path's building
//! blocks.
//!
//! Fast path: [`RecordBatches`] cuts one partition's record bytes into
//! [`RecordBatchView`]s (slices of the fetched buffer), [`classify()`] decides
//! per batch whether it may pass through, and [`rewrite_for_produce`] turns a
//! qualifying batch into a [`ProduceBatch`]: a new 61-byte header in front of
//! the untouched payload slice.
//!
//! Slow path: [`decode_records`] reads the records of a batch without an
//! allocation per record, [`BatchBuilder`] builds a new batch with dense
//! offset deltas, and [`legacy`] reads message sets v0/v1 and up-converts
//! them.

mod aborted;
mod attrs;
mod batch;
mod builder;
mod classify;
mod crc;
mod decode;
pub mod legacy;
mod rewrite;
mod varint;

pub use aborted::AbortedTransactionFilter;
pub use attrs::{ControlRecordType, TimestampType, attributes};
pub use batch::{
    BATCH_HEADER_LEN, BatchHeader, LOG_OVERHEAD, LogEntry, RecordBatchView, RecordBatches,
};
pub use builder::BatchBuilder;
pub use classify::{Disposition, PassthroughPolicy, SkipReason, SlowPathReason, classify};
pub use decode::{Header, HeaderIter, Record, RecordHeaders, RecordIter, decode_records};
pub use rewrite::{ProduceBatch, ProducerStamp, rewrite_for_produce, rewrite_verified};
