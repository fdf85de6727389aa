//! The error taxonomy of the protocol layer.
//!
//! Two questions decide which variant an error is: did the peer send bytes
//! that break the Kafka protocol (a bug or an attack on their side:
//! [`ProtocolError::Malformed`], [`RecordError`], [`CompressionError`]), or
//! is the peer simply incompatible with us (a configuration problem on ours:
//! [`ProtocolError::Unsupported`])? Every variant carries the context that
//! names the place: API and version, or batch offset.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

use crate::compression::Compression;

/// An error decoding or encoding Kafka protocol messages.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The peer sent bytes that do not form a valid message of this API and
    /// version (a truncated field, a length beyond the frame, an invalid
    /// string). Retrying will not help; the peer has a bug.
    #[error("malformed {api:?} v{version} message from the peer: {reason}")]
    Malformed {
        /// The API whose message was being decoded.
        api: ApiKey,
        /// The version it was decoded at.
        version: i16,
        /// What was wrong and where.
        reason: String,
    },

    /// The broker and kmirror share no version of an API. This is a
    /// compatibility problem, not a bug: the broker is too old or too new for
    /// this build of kmirror.
    #[error(
        "the broker supports {api:?} versions {}, kmirror supports {ours}: no version in common; \
         use a broker release that supports {api:?} v{}..v{}",
        broker.map(|r| r.to_string()).unwrap_or_else(|| "none".to_owned()),
        ours.min,
        ours.max
    )]
    Unsupported {
        /// The API without a common version.
        api: ApiKey,
        /// What the broker announced in ApiVersions (`None`: it does not
        /// support the API at all).
        broker: Option<VersionRange>,
        /// The versions this crate implements.
        ours: VersionRange,
    },

    /// An API key this crate does not implement (for example a response to a
    /// request kmirror never sends).
    #[error("API key {0} is not implemented by kmirror")]
    UnknownApi(i16),

    /// A frame announced a size that is negative or above the configured
    /// maximum; nothing was allocated for it.
    #[error(
        "frame of {size} bytes exceeds the maximum of {max} bytes; \
         raise the maximum frame size if the peer is trusted"
    )]
    FrameTooLarge {
        /// The size the frame announced.
        size: i64,
        /// The configured maximum.
        max: usize,
    },

    /// A consumer-protocol payload from another member of a consumer group
    /// is malformed: the subscription a member put in JoinGroup's protocol
    /// metadata, or the assignment the leader handed out through SyncGroup
    /// (a truncated field, a count beyond the bytes, a negative version).
    /// These bytes are not a Kafka API message, so they get their own
    /// variant; the member that wrote them has a bug.
    #[error(
        "malformed consumer-protocol {what}{} from a group member: {reason}",
        version.map(|v| format!(" v{v}")).unwrap_or_default()
    )]
    MalformedConsumerProtocol {
        /// `"subscription"` or `"assignment"`.
        what: &'static str,
        /// The version its header states (`None`: the header itself is
        /// missing).
        version: Option<i16>,
        /// What was wrong and where.
        reason: String,
    },

    /// A message could not be encoded: a value does not fit the wire format
    /// at this version (for example a string longer than 32767 bytes).
    #[error("cannot encode {api:?} v{version}: {reason}")]
    Encode {
        /// The API being encoded.
        api: ApiKey,
        /// The version it was encoded at.
        version: i16,
        /// What did not fit.
        reason: String,
    },
}

/// An error reading a record batch or the records inside it.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The batch's structure is broken: a length that does not fit, a
    /// record count that the payload cannot hold, a varint that overflows.
    #[error("malformed record batch at offset {base_offset}: {reason}")]
    Malformed {
        /// The batch's base offset as read from the wire (`-1` if unknown).
        base_offset: i64,
        /// What was wrong.
        reason: String,
    },

    /// The stored CRC does not match the bytes: the data was corrupted in
    /// transit or on the broker's disk.
    #[error(
        "corrupt record batch at offset {base_offset}: stored CRC {stored:#010x}, computed {computed:#010x} (damaged on the broker's disk or on the way)"
    )]
    CrcMismatch {
        /// The batch's base offset.
        base_offset: i64,
        /// The CRC stored in the batch header.
        stored: u32,
        /// The CRC computed over the batch.
        computed: u32,
    },

    /// The magic byte names a format this crate does not read.
    #[error("record batch at offset {base_offset} has unknown magic {magic}")]
    UnknownMagic {
        /// The batch's base offset.
        base_offset: i64,
        /// The magic byte found.
        magic: i8,
    },

    /// The batch payload could not be decompressed.
    #[error("record batch at offset {base_offset}: {source}")]
    Compression {
        /// The batch's base offset.
        base_offset: i64,
        /// The codec failure.
        #[source]
        source: CompressionError,
    },

    /// A batch or record to build does not fit Kafka's format (for example
    /// more records than an `i32` counts).
    #[error("cannot build record batch: {0}")]
    Build(String),
}

/// An error compressing or decompressing a batch payload.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// The attributes name a codec that Kafka does not define (values 5-7).
    #[error("unknown compression codec id {0}")]
    UnknownCodec(u8),

    /// The compressed bytes are invalid for the codec.
    #[error("invalid {codec} data: {reason}")]
    Corrupt {
        /// The codec that failed.
        codec: Compression,
        /// What the decoder reported.
        reason: String,
    },

    /// Decompression would produce more than the allowed number of bytes;
    /// decoding stopped before allocating beyond the cap.
    #[error("{codec} data decompresses to more than the cap of {cap} bytes")]
    TooLarge {
        /// The codec.
        codec: Compression,
        /// The cap that was hit.
        cap: usize,
    },

    /// Compression failed (only out of memory or an invalid level).
    #[error("{codec} compression failed: {reason}")]
    Compress {
        /// The codec.
        codec: Compression,
        /// What the encoder reported.
        reason: String,
    },
}
