//! The bits of a v2 batch's `attributes` field, and the control record types.

/// Attribute bits of a v2 record batch.
pub mod attributes {
    /// Bits 0-2: the compression codec.
    pub const COMPRESSION_MASK: i16 = 0x07;
    /// Bit 3: the timestamp type (set: LogAppendTime).
    pub const TIMESTAMP_TYPE: i16 = 0x08;
    /// Bit 4: the batch belongs to a transaction.
    pub const TRANSACTIONAL: i16 = 0x10;
    /// Bit 5: the batch holds a control record (a transaction marker).
    pub const CONTROL: i16 = 0x20;
    /// Bit 6: `baseTimestamp` holds the delete horizon of a compacted topic.
    pub const DELETE_HORIZON: i16 = 0x40;
}

/// Which clock a batch's timestamps come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it appended the batch; `maxTimestamp` holds it.
    LogAppendTime,
}

/// The type of a control record, read from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// A transaction was aborted.
    Abort,
    /// A transaction was committed.
    Commit,
    /// Any other type (leader change, snapshot markers).
    Other(i16),
}

impl ControlRecordType {
    /// Reads the type from a control record's key (`version: i16, type: i16`).
    pub fn from_key(key: &[u8]) -> Option<Self> {
        let ty = key.get(2..4)?;
        Some(match i16::from_be_bytes([*ty.first()?, *ty.get(1)?]) {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Other(other),
        })
    }
}
