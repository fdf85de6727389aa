//! Offset translation across a mirror: MirrorMaker 2's checkpoint records.
pub mod checkpoint;
