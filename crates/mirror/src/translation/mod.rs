//! Exact offset translation: where each source record landed on the
//! destination, kept durably in the destination cluster, and what a
//! consumer group's source position is on the destination.
//!
//! - [`map_record`]: the offset map topic's records: runs of consecutive
//!   source records written as consecutive destination records.
//! - [`recorder`]: per source partition, what the destination's
//!   acknowledgements taught the stream, until it is written (before the
//!   commit that depends on it).
//! - [`index`]: the map read back, and the translation of a position.
//! - [`checkpoint`]: MirrorMaker 2's checkpoint records, written with the
//!   translations so that `RemoteClusterUtils.translateOffsets` reads them.

pub mod checkpoint;
pub mod index;
pub mod map_record;
pub mod recorder;
mod wire;

#[cfg(test)]
mod model_tests;

pub use index::{Derivation, OffsetIndex, TranslateError, Translation};
pub use map_record::{MapRecord, OffsetRun, offset_map_topic};
pub use recorder::{MapFlush, MapRecorder};
pub use wire::RecordFormatError;
