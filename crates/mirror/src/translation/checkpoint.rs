//! MirrorMaker 2's checkpoint records, as Apache Kafka's
//! `org.apache.kafka.connect.mirror.Checkpoint` (connect-mirror-client)
//! writes and reads them. Pure codec: no I/O.
//!
//! MirrorMaker 2's `MirrorCheckpointConnector` writes, on the *target*
//! cluster, one record per (consumer group, partition) into the topic
//! [`checkpoints_topic`]`(source alias)` (`<alias>.checkpoints.internal`,
//! `ReplicationPolicy.checkpointsTopic`). `MirrorClient.remoteConsumerOffsets`
//! (behind `RemoteClusterUtils.translateOffsets`) reads partition 0 of that
//! topic from the beginning to its end offset and keeps, for the group it
//! is asked about, the last checkpoint per topic-partition; the topic named
//! in a checkpoint is the *downstream* (target cluster) topic.
//!
//! The layout (Kafka's `protocol.types` schemas, big-endian; `STRING` is an
//! `INT16` byte length, never negative, then that many bytes of UTF-8):
//!
//! ```text
//! key   = group: STRING, topic: STRING, partition: INT32        (no version)
//! value = version: INT16 (= 0),
//!         upstreamOffset: INT64, offset: INT64 (downstream), metadata: STRING
//! ```
//!
//! Where this decoder is stricter than Java's `Checkpoint.deserializeRecord`
//! (which reads the fields it knows and stops):
//!
//! - bytes after the last field are refused ([`CheckpointError::TrailingBytes`]);
//!   Java ignores them;
//! - a value version other than 0 is refused
//!   ([`CheckpointError::UnsupportedVersion`]); Java only `assert`s
//!   `version == 0`, so without `-ea` it reads any version as version 0;
//! - invalid UTF-8 is refused ([`CheckpointError::InvalidUtf8`]); Java
//!   replaces it with U+FFFD.
//!
//! A negative string length is refused, as Java does (`STRING` is not
//! nullable).

use std::fmt;

/// The only version of the checkpoint value that Kafka defines
/// (`Checkpoint.VERSION`).
pub const CHECKPOINT_VALUE_VERSION: i16 = 0;

/// The longest string, in UTF-8 bytes, that a `STRING` field holds
/// (`Short.MAX_VALUE`).
pub const MAX_STRING_BYTES: usize = i16::MAX as usize;

/// The name of the checkpoints topic that MirrorMaker 2 writes on the target
/// cluster for the source cluster `source_alias`, as
/// `ReplicationPolicy.checkpointsTopic` names it (the default of every
/// replication policy Kafka ships): `<source_alias>.checkpoints.internal`.
pub fn checkpoints_topic(source_alias: &str) -> String {
    format!("{source_alias}.checkpoints.internal")
}

/// Which half of a checkpoint record a field belongs to, so that errors
/// say where the bytes were wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordPart {
    /// The record key: group, topic, partition.
    Key,
    /// The record value: version header, offsets, metadata.
    Value,
}

impl fmt::Display for RecordPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordPart::Key => "key",
            RecordPart::Value => "value",
        })
    }
}

/// Why a checkpoint record could not be encoded or decoded.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The bytes end before a field does.
    #[error(
        "checkpoint {part} truncated: field `{field}` needs {needed} bytes, {remaining} remain"
    )]
    Truncated {
        /// Key or value.
        part: RecordPart,
        /// The field being read (Kafka's schema name).
        field: &'static str,
        /// How many bytes the field (or its length prefix) needs.
        needed: usize,
        /// How many bytes were left.
        remaining: usize,
    },
    /// A string's length prefix is negative (Kafka's `STRING` is not
    /// nullable).
    #[error("checkpoint {part}: field `{field}` has negative string length {length}")]
    NegativeLength {
        /// Key or value.
        part: RecordPart,
        /// The field being read.
        field: &'static str,
        /// The length read.
        length: i16,
    },
    /// A string's bytes are not UTF-8.
    #[error("checkpoint {part}: field `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// Key or value.
        part: RecordPart,
        /// The field being read.
        field: &'static str,
    },
    /// Bytes follow the last field.
    #[error("checkpoint {part}: {count} trailing bytes after the last field")]
    TrailingBytes {
        /// Key or value.
        part: RecordPart,
        /// How many bytes were left over.
        count: usize,
    },
    /// The value's version header is not one this codec knows.
    #[error(
        "checkpoint value version {version} is not supported (only version {CHECKPOINT_VALUE_VERSION} is defined)"
    )]
    UnsupportedVersion {
        /// The version read.
        version: i16,
    },
    /// A string is too long for a `STRING` field (Java's encoder refuses it
    /// too).
    #[error(
        "checkpoint field `{field}` is {length} bytes of UTF-8, longer than the {MAX_STRING_BYTES} a STRING holds"
    )]
    StringTooLong {
        /// The field being written.
        field: &'static str,
        /// Its length in UTF-8 bytes.
        length: usize,
    },
}

/// One checkpoint: where a consumer group stood on the source cluster and
/// the matching offset on the target cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The consumer group id (the same on both clusters).
    pub group: String,
    /// The downstream topic: the topic's name on the target cluster.
    pub topic: String,
    /// The partition (the same number on both clusters).
    pub partition: i32,
    /// The group's committed offset on the source cluster.
    pub upstream_offset: i64,
    /// The translated offset on the target cluster (Kafka's field `offset`).
    pub downstream_offset: i64,
    /// The commit metadata, copied from the source commit.
    pub metadata: String,
}

impl Checkpoint {
    /// The record key: `group`, `topic`, `partition` (no version header).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::StringTooLong`] if `group` or `topic` is longer
    /// than [`MAX_STRING_BYTES`] bytes of UTF-8.
    pub fn encode_key(&self) -> Result<Vec<u8>, CheckpointError> {
        let mut out = Vec::with_capacity(
            (2 + self.group.len() + 2 + self.topic.len() + 4).min(2 * (2 + MAX_STRING_BYTES) + 4),
        );
        put_string(&mut out, "group", &self.group)?;
        put_string(&mut out, "topic", &self.topic)?;
        out.extend_from_slice(&self.partition.to_be_bytes());
        Ok(out)
    }

    /// The record value: version 0, `upstreamOffset`, `offset`, `metadata`.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::StringTooLong`] if `metadata` is longer than
    /// [`MAX_STRING_BYTES`] bytes of UTF-8.
    pub fn encode_value(&self) -> Result<Vec<u8>, CheckpointError> {
        let mut out = Vec::with_capacity(2 + 8 + 8 + 2 + self.metadata.len().min(MAX_STRING_BYTES));
        out.extend_from_slice(&CHECKPOINT_VALUE_VERSION.to_be_bytes());
        out.extend_from_slice(&self.upstream_offset.to_be_bytes());
        out.extend_from_slice(&self.downstream_offset.to_be_bytes());
        put_string(&mut out, "metadata", &self.metadata)?;
        Ok(out)
    }

    /// Decodes a checkpoint record from its key and value bytes.
    ///
    /// # Errors
    ///
    /// Truncated input, a negative string length, invalid UTF-8, bytes
    /// after the last field, or a value version other than 0 (see the
    /// module documentation for where this is stricter than Java).
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let mut v = Reader::new(value, RecordPart::Value);
        let version = v.i16("version")?;
        if version != CHECKPOINT_VALUE_VERSION {
            return Err(CheckpointError::UnsupportedVersion { version });
        }
        let upstream_offset = v.i64("upstreamOffset")?;
        let downstream_offset = v.i64("offset")?;
        let metadata = v.string("metadata")?;
        v.finish()?;

        let mut k = Reader::new(key, RecordPart::Key);
        let group = k.string("group")?;
        let topic = k.string("topic")?;
        let partition = k.i32("partition")?;
        k.finish()?;

        Ok(Checkpoint {
            group,
            topic,
            partition,
            upstream_offset,
            downstream_offset,
            metadata,
        })
    }
}

/// Appends a `STRING`: its `INT16` byte length, then its UTF-8 bytes.
fn put_string(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<(), CheckpointError> {
    let length = i16::try_from(s.len()).map_err(|_| CheckpointError::StringTooLong {
        field,
        length: s.len(),
    })?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// A cursor over one half of a record that never reads past its end.
struct Reader<'a> {
    rest: &'a [u8],
    part: RecordPart,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], part: RecordPart) -> Self {
        Reader { rest: bytes, part }
    }

    fn take(&mut self, field: &'static str, needed: usize) -> Result<&'a [u8], CheckpointError> {
        if needed > self.rest.len() {
            return Err(CheckpointError::Truncated {
                part: self.part,
                field,
                needed,
                remaining: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(needed);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CheckpointError> {
        let bytes = self.take(field, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, CheckpointError> {
        self.array(field).map(i16::from_be_bytes)
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, CheckpointError> {
        self.array(field).map(i32::from_be_bytes)
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, CheckpointError> {
        self.array(field).map(i64::from_be_bytes)
    }

    fn string(&mut self, field: &'static str) -> Result<String, CheckpointError> {
        let length = self.i16(field)?;
        let Ok(len) = usize::try_from(length) else {
            return Err(CheckpointError::NegativeLength {
                part: self.part,
                field,
                length,
            });
        };
        // `take` checks `len` against what remains before anything is
        // allocated.
        let bytes = self.take(field, len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(CheckpointError::InvalidUtf8 {
                part: self.part,
                field,
            }),
        }
    }

    fn finish(self) -> Result<(), CheckpointError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CheckpointError::TrailingBytes {
                part: self.part,
                count: self.rest.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Checkpoint {
        Checkpoint {
            group: "g1".to_owned(),
            topic: "t".to_owned(),
            partition: 3,
            upstream_offset: 100,
            downstream_offset: 42,
            metadata: "m".to_owned(),
        }
    }

    /// Key of [`example`], written out from `Checkpoint.KEY_SCHEMA`.
    const EXAMPLE_KEY: &[u8] = &[
        0x00, 0x02, b'g', b'1', // group: STRING "g1"
        0x00, 0x01, b't', // topic: STRING "t"
        0x00, 0x00, 0x00, 0x03, // partition: INT32 3
    ];

    /// Value of [`example`], written out from `Checkpoint.HEADER_SCHEMA`
    /// and `VALUE_SCHEMA_V0`.
    const EXAMPLE_VALUE: &[u8] = &[
        0x00, 0x00, // version: INT16 0
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, // upstreamOffset: INT64 100
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // offset: INT64 42
        0x00, 0x01, b'm', // metadata: STRING "m"
    ];

    #[test]
    fn topic_name() {
        assert_eq!(checkpoints_topic("src"), "src.checkpoints.internal");
        assert_eq!(checkpoints_topic("a.b"), "a.b.checkpoints.internal");
    }

    #[test]
    fn known_bytes() {
        let c = example();
        assert_eq!(c.encode_key().unwrap(), EXAMPLE_KEY);
        assert_eq!(c.encode_value().unwrap(), EXAMPLE_VALUE);
        assert_eq!(Checkpoint::decode(EXAMPLE_KEY, EXAMPLE_VALUE).unwrap(), c);
    }

    #[test]
    fn round_trips() {
        let cases = [
            example(),
            Checkpoint {
                group: String::new(),
                topic: String::new(),
                partition: 0,
                upstream_offset: 0,
                downstream_offset: 0,
                metadata: String::new(),
            },
            Checkpoint {
                group: "grüppe-消费者-🚀".to_owned(),
                topic: "src.orders".to_owned(),
                partition: i32::MAX,
                upstream_offset: i64::MAX,
                downstream_offset: i64::MIN,
                metadata: "x".repeat(MAX_STRING_BYTES),
            },
            Checkpoint {
                group: "g".repeat(MAX_STRING_BYTES),
                topic: "t".repeat(MAX_STRING_BYTES),
                partition: -1,
                upstream_offset: -1,
                downstream_offset: 1 << 40,
                metadata: "é".to_owned(),
            },
        ];
        for c in cases {
            let key = c.encode_key().unwrap();
            let value = c.encode_value().unwrap();
            assert_eq!(key.len(), 2 + c.group.len() + 2 + c.topic.len() + 4);
            assert_eq!(value.len(), 2 + 8 + 8 + 2 + c.metadata.len());
            assert_eq!(Checkpoint::decode(&key, &value).unwrap(), c);
        }
    }

    #[test]
    fn encode_refuses_strings_too_long() {
        let mut c = example();
        c.group = "g".repeat(MAX_STRING_BYTES + 1);
        assert_eq!(
            c.encode_key(),
            Err(CheckpointError::StringTooLong {
                field: "group",
                length: MAX_STRING_BYTES + 1
            })
        );
        assert!(c.encode_value().is_ok());

        let mut c = example();
        // 2 bytes of UTF-8 per char: the limit is in bytes, not chars.
        c.topic = "é".repeat(MAX_STRING_BYTES / 2 + 1);
        assert_eq!(
            c.encode_key(),
            Err(CheckpointError::StringTooLong {
                field: "topic",
                length: MAX_STRING_BYTES + 1
            })
        );

        let mut c = example();
        c.metadata = "m".repeat(100_000);
        assert_eq!(
            c.encode_value(),
            Err(CheckpointError::StringTooLong {
                field: "metadata",
                length: 100_000
            })
        );
        assert!(c.encode_key().is_ok());
    }

    #[test]
    fn every_truncation_is_refused() {
        for cut in 0..EXAMPLE_KEY.len() {
            let err = Checkpoint::decode(&EXAMPLE_KEY[..cut], EXAMPLE_VALUE).unwrap_err();
            assert!(
                matches!(
                    err,
                    CheckpointError::Truncated {
                        part: RecordPart::Key,
                        ..
                    }
                ),
                "key cut at {cut}: {err:?}"
            );
        }
        for cut in 0..EXAMPLE_VALUE.len() {
            let err = Checkpoint::decode(EXAMPLE_KEY, &EXAMPLE_VALUE[..cut]).unwrap_err();
            assert!(
                matches!(
                    err,
                    CheckpointError::Truncated {
                        part: RecordPart::Value,
                        ..
                    }
                ),
                "value cut at {cut}: {err:?}"
            );
        }
    }

    #[test]
    fn truncation_names_the_field() {
        // The key's topic says 1 byte and none follows.
        assert_eq!(
            Checkpoint::decode(&EXAMPLE_KEY[..6], EXAMPLE_VALUE),
            Err(CheckpointError::Truncated {
                part: RecordPart::Key,
                field: "topic",
                needed: 1,
                remaining: 0
            })
        );
        // The downstream offset has 3 of its 8 bytes.
        assert_eq!(
            Checkpoint::decode(EXAMPLE_KEY, &EXAMPLE_VALUE[..13]),
            Err(CheckpointError::Truncated {
                part: RecordPart::Value,
                field: "offset",
                needed: 8,
                remaining: 3
            })
        );
    }

    #[test]
    fn a_huge_length_is_refused_before_allocating() {
        // i16::MAX announced, 1 byte present.
        let key = [0x7f, 0xff, b'g'];
        assert_eq!(
            Checkpoint::decode(&key, EXAMPLE_VALUE),
            Err(CheckpointError::Truncated {
                part: RecordPart::Key,
                field: "group",
                needed: MAX_STRING_BYTES,
                remaining: 1
            })
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut key = EXAMPLE_KEY.to_vec();
        key.push(0);
        assert_eq!(
            Checkpoint::decode(&key, EXAMPLE_VALUE),
            Err(CheckpointError::TrailingBytes {
                part: RecordPart::Key,
                count: 1
            })
        );
        let mut value = EXAMPLE_VALUE.to_vec();
        value.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            Checkpoint::decode(EXAMPLE_KEY, &value),
            Err(CheckpointError::TrailingBytes {
                part: RecordPart::Value,
                count: 3
            })
        );
    }

    #[test]
    fn unknown_versions_are_refused_and_named() {
        for version in [1i16, -1, i16::MAX, i16::MIN] {
            let mut value = EXAMPLE_VALUE.to_vec();
            value[..2].copy_from_slice(&version.to_be_bytes());
            let err = Checkpoint::decode(EXAMPLE_KEY, &value).unwrap_err();
            assert_eq!(err, CheckpointError::UnsupportedVersion { version });
            assert!(err.to_string().contains(&format!("version {version} ")));
        }
    }

    #[test]
    fn negative_string_lengths_are_refused() {
        // Null (-1) is refused too: Kafka's STRING is not nullable.
        for length in [-1i16, -2, i16::MIN] {
            let mut key = EXAMPLE_KEY.to_vec();
            key[..2].copy_from_slice(&length.to_be_bytes());
            assert_eq!(
                Checkpoint::decode(&key, EXAMPLE_VALUE),
                Err(CheckpointError::NegativeLength {
                    part: RecordPart::Key,
                    field: "group",
                    length
                })
            );
            let mut value = EXAMPLE_VALUE.to_vec();
            value[18..20].copy_from_slice(&length.to_be_bytes());
            assert_eq!(
                Checkpoint::decode(EXAMPLE_KEY, &value),
                Err(CheckpointError::NegativeLength {
                    part: RecordPart::Value,
                    field: "metadata",
                    length
                })
            );
        }
        // The topic's length too (offset 4 of the key).
        let mut key = EXAMPLE_KEY.to_vec();
        key[4..6].copy_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(
            Checkpoint::decode(&key, EXAMPLE_VALUE),
            Err(CheckpointError::NegativeLength {
                part: RecordPart::Key,
                field: "topic",
                length: -1
            })
        );
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let mut key = EXAMPLE_KEY.to_vec();
        key[2] = 0xff;
        assert_eq!(
            Checkpoint::decode(&key, EXAMPLE_VALUE),
            Err(CheckpointError::InvalidUtf8 {
                part: RecordPart::Key,
                field: "group"
            })
        );
        let mut key = EXAMPLE_KEY.to_vec();
        key[6] = 0x80;
        assert_eq!(
            Checkpoint::decode(&key, EXAMPLE_VALUE),
            Err(CheckpointError::InvalidUtf8 {
                part: RecordPart::Key,
                field: "topic"
            })
        );
        let mut value = EXAMPLE_VALUE.to_vec();
        value[20] = 0xc3; // a 2-byte sequence cut short
        assert_eq!(
            Checkpoint::decode(EXAMPLE_KEY, &value),
            Err(CheckpointError::InvalidUtf8 {
                part: RecordPart::Value,
                field: "metadata"
            })
        );
    }

    #[test]
    fn errors_say_where() {
        let err = Checkpoint::decode(&EXAMPLE_KEY[..6], EXAMPLE_VALUE).unwrap_err();
        assert_eq!(
            err.to_string(),
            "checkpoint key truncated: field `topic` needs 1 bytes, 0 remain"
        );
    }
}
