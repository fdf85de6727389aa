//! The consumer protocol's own payloads: the subscription a member of a
//! consumer group puts in JoinGroup's protocol metadata
//! (`ConsumerProtocolSubscription`) and the assignment the leader hands each
//! member through SyncGroup (`ConsumerProtocolAssignment`).
//!
//! These are not Kafka API messages but opaque bytes inside them, written by
//! the group's members (Java consumers, other clients, kmirror itself) and
//! relayed by the coordinator. Both start with an INT16 version and use the
//! classic (non-flexible) encoding. Like Java's `ConsumerProtocol`, a version
//! above the highest known is read as the highest (later versions may only
//! add fields at the end) and bytes after the known fields are ignored.
//!
//! This module owns encoding and decoding only; it never panics on any
//! input, and reads every count through the crate's `WireReader`, so
//! nothing is allocated beyond what the remaining bytes can hold. It never
//! decides anything about assignments (that is the group member's job).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use crate::error::ProtocolError;
use crate::wire::WireReader;

/// The highest version of both payloads that this module knows
/// (`ConsumerProtocolSubscription` and `ConsumerProtocolAssignment` share
/// their version range, 0..=3).
pub const CONSUMER_PROTOCOL_MAX_VERSION: i16 = 3;

/// A topic and some of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicPartitions {
    /// The topic name.
    pub topic: String,
    /// Partition numbers of that topic.
    pub partitions: Vec<i32>,
}

/// ConsumerProtocolSubscription (v0..=v3): what a consumer-protocol member
/// sends in JoinGroup's protocol metadata.
///
/// Java's consumer sorts `topics` and `owned_partitions` (by topic, then
/// partition) before encoding; [`Subscription::encode`] writes them in the
/// order given, so sort them first for byte-identical output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The topics the member wants to consume.
    pub topics: Vec<String>,
    /// Opaque assignor data (Java's cooperative-sticky assignor puts the
    /// member's generation here as an INT32 in v0 and v1).
    pub user_data: Option<Bytes>,
    /// The partitions the member owns (v1+; empty below).
    pub owned_partitions: Vec<TopicPartitions>,
    /// The generation in which the member got `owned_partitions` (v2+; -1
    /// when absent).
    pub generation_id: i32,
    /// The member's `client.rack` (v3+). Decoded as written: Java treats an
    /// empty rack like none.
    pub rack_id: Option<String>,
}

impl Default for Subscription {
    /// No topics, no user data, nothing owned, generation -1, no rack.
    fn default() -> Self {
        Self {
            topics: Vec::new(),
            user_data: None,
            owned_partitions: Vec::new(),
            generation_id: -1,
            rack_id: None,
        }
    }
}

impl Subscription {
    /// Encodes at `version` (0..=3), leaving out the fields that version
    /// lacks. Like Java, a version above 3 writes 3; a negative version
    /// writes 0.
    ///
    /// Encoding cannot fail: a string longer than the format's 32767 bytes
    /// (no topic name can be; a rack id could) is cut at the last character
    /// boundary that fits, and no count can exceed `i32::MAX` in memory that
    /// exists.
    pub fn encode(&self, version: i16) -> Bytes {
        let version = version.clamp(0, CONSUMER_PROTOCOL_MAX_VERSION);
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        put_array_len(&mut buf, self.topics.len());
        for topic in self.topics.iter().take(MAX_COUNT) {
            put_string(&mut buf, topic);
        }
        put_nullable_bytes(&mut buf, self.user_data.as_ref());
        if version >= 1 {
            put_topic_partitions(&mut buf, &self.owned_partitions);
        }
        if version >= 2 {
            buf.put_i32(self.generation_id);
        }
        if version >= 3 {
            match &self.rack_id {
                Some(rack) => put_string(&mut buf, rack),
                None => buf.put_i16(-1),
            }
        }
        buf.freeze()
    }

    /// Decodes any version; like Java's ConsumerProtocol, a version above 3
    /// is read as 3 (later versions only add fields at the end), bytes after
    /// the known fields are ignored. A negative version, a null where the
    /// schema allows none, a truncated field or a count beyond the bytes
    /// that remain is [`ProtocolError::MalformedConsumerProtocol`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        const WHAT: &str = "subscription";
        let mut r = reader(bytes);
        let version = r.i16().map_err(|e| relabel(e, WHAT, None))?;
        Self::decode_fields(&mut r, version).map_err(|e| relabel(e, WHAT, Some(version)))
    }

    fn decode_fields(r: &mut WireReader, version: i16) -> Result<Self, ProtocolError> {
        let version = schema_version(r, version)?;
        let n = r.array_len(false, MIN_STRING)?;
        let mut topics = Vec::with_capacity(n);
        for _ in 0..n {
            topics.push(r.string(false)?.to_string());
        }
        let user_data = r.nullable_bytes(false)?;
        let owned_partitions = if version >= 1 {
            read_topic_partitions(r)?
        } else {
            Vec::new()
        };
        let generation_id = if version >= 2 { r.i32()? } else { -1 };
        let rack_id = if version >= 3 {
            r.nullable_string(false)?.map(|s| s.to_string())
        } else {
            None
        };
        Ok(Self {
            topics,
            user_data,
            owned_partitions,
            generation_id,
            rack_id,
        })
    }
}

/// ConsumerProtocolAssignment (v0..=v3): what SyncGroup hands each member.
/// The schema is the same at every version (v1..=v3 exist to stay in step
/// with the subscription).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    /// The partitions assigned to the member.
    pub partitions: Vec<TopicPartitions>,
    /// Opaque assignor data.
    pub user_data: Option<Bytes>,
}

impl Assignment {
    /// Encodes at `version` (0..=3). Like Java, a version above 3 writes 3;
    /// a negative version writes 0. Cannot fail (see
    /// [`Subscription::encode`] for the limits).
    pub fn encode(&self, version: i16) -> Bytes {
        let version = version.clamp(0, CONSUMER_PROTOCOL_MAX_VERSION);
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        put_topic_partitions(&mut buf, &self.partitions);
        put_nullable_bytes(&mut buf, self.user_data.as_ref());
        buf.freeze()
    }

    /// Decodes any version, as [`Subscription::decode`] does.
    ///
    /// Zero bytes decode to an empty assignment: the coordinator hands zero
    /// bytes, with no error, to a member the leader's SyncGroup left out
    /// (and to every member along with an error code), so an empty payload
    /// means "nothing for you". Java is stricter: `ConsumerProtocol` fails
    /// on it (a buffer underflow reading the version) and
    /// `ConsumerCoordinator` throws an `IllegalStateException` from `poll()`;
    /// the caller here decides what an empty assignment means. One byte, or
    /// a version with nothing after it, is malformed.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        const WHAT: &str = "assignment";
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let mut r = reader(bytes);
        let version = r.i16().map_err(|e| relabel(e, WHAT, None))?;
        Self::decode_fields(&mut r, version).map_err(|e| relabel(e, WHAT, Some(version)))
    }

    fn decode_fields(r: &mut WireReader, version: i16) -> Result<Self, ProtocolError> {
        schema_version(r, version)?;
        let partitions = read_topic_partitions(r)?;
        let user_data = r.nullable_bytes(false)?;
        Ok(Self {
            partitions,
            user_data,
        })
    }
}

/// Smallest encoding of a string (its INT16 length).
const MIN_STRING: usize = 2;
/// Smallest encoding of a `TopicPartition` entry: an empty topic name and
/// an empty partition array.
const MIN_TOPIC_PARTITIONS: usize = 2 + 4;
/// Smallest encoding of a partition number.
const MIN_PARTITION: usize = 4;
/// The most elements an INT32 count can announce.
const MAX_COUNT: usize = i32::MAX as usize;

/// A reader over a copy of `bytes` (the `Bytes` fields come back as slices
/// of that copy). The API key and version only label errors, which
/// [`relabel`] replaces.
fn reader(bytes: &[u8]) -> WireReader {
    WireReader::new(Bytes::copy_from_slice(bytes), ApiKey::JoinGroup, 0)
}

/// The schema version to read `version` with: as stated up to the highest
/// known, the highest above it; a negative version is malformed.
fn schema_version(r: &WireReader, version: i16) -> Result<i16, ProtocolError> {
    if version < 0 {
        Err(r.malformed(format_args!("unsupported version {version}")))
    } else {
        Ok(version.min(CONSUMER_PROTOCOL_MAX_VERSION))
    }
}

/// Turns the reader's API-message error into the consumer-protocol one.
fn relabel(e: ProtocolError, what: &'static str, version: Option<i16>) -> ProtocolError {
    match e {
        ProtocolError::Malformed { reason, .. } => ProtocolError::MalformedConsumerProtocol {
            what,
            version,
            reason,
        },
        other => other,
    }
}

fn read_topic_partitions(r: &mut WireReader) -> Result<Vec<TopicPartitions>, ProtocolError> {
    let n = r.array_len(false, MIN_TOPIC_PARTITIONS)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let topic = r.string(false)?.to_string();
        let count = r.array_len(false, MIN_PARTITION)?;
        let mut partitions = Vec::with_capacity(count);
        for _ in 0..count {
            partitions.push(r.i32()?);
        }
        out.push(TopicPartitions { topic, partitions });
    }
    Ok(out)
}

fn put_topic_partitions(buf: &mut BytesMut, entries: &[TopicPartitions]) {
    put_array_len(buf, entries.len());
    for entry in entries.iter().take(MAX_COUNT) {
        put_string(buf, &entry.topic);
        put_array_len(buf, entry.partitions.len());
        for &p in entry.partitions.iter().take(MAX_COUNT) {
            buf.put_i32(p);
        }
    }
}

/// An INT32 array count; callers write at most [`MAX_COUNT`] elements.
fn put_array_len(buf: &mut BytesMut, len: usize) {
    buf.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
}

/// A non-null STRING, cut to the longest prefix of at most 32767 bytes that
/// ends on a character boundary.
fn put_string(buf: &mut BytesMut, s: &str) {
    let mut end = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let bytes = s.as_bytes().get(..end).unwrap_or_default();
    buf.put_i16(i16::try_from(bytes.len()).unwrap_or(i16::MAX));
    buf.put_slice(bytes);
}

/// NULLABLE_BYTES, cut to `i32::MAX` bytes (more cannot be framed).
fn put_nullable_bytes(buf: &mut BytesMut, data: Option<&Bytes>) {
    match data {
        None => buf.put_i32(-1),
        Some(data) => {
            let bytes = data.get(..data.len().min(MAX_COUNT)).unwrap_or_default();
            put_array_len(buf, bytes.len());
            buf.put_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{
        ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
        consumer_protocol_assignment as kpa, consumer_protocol_subscription as kps,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn tp(topic: &str, partitions: &[i32]) -> TopicPartitions {
        TopicPartitions {
            topic: topic.to_owned(),
            partitions: partitions.to_vec(),
        }
    }

    fn full_subscription() -> Subscription {
        Subscription {
            topics: vec!["t0".to_owned(), "topic-1".to_owned()],
            user_data: Some(Bytes::from_static(&[1, 2, 3])),
            owned_partitions: vec![tp("t0", &[0, 2]), tp("topic-1", &[1])],
            generation_id: 7,
            rack_id: Some("r1".to_owned()),
        }
    }

    fn full_assignment() -> Assignment {
        Assignment {
            partitions: vec![tp("t0", &[0, 1]), tp("t1", &[2])],
            user_data: Some(Bytes::from_static(&[9, 8])),
        }
    }

    /// What `s` decodes to after an encoding at `version`: the fields the
    /// version lacks take their defaults.
    fn as_seen_at(s: &Subscription, version: i16) -> Subscription {
        let mut out = s.clone();
        if version < 1 {
            out.owned_partitions.clear();
        }
        if version < 2 {
            out.generation_id = -1;
        }
        if version < 3 {
            out.rack_id = None;
        }
        out
    }

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    // --- byte-exact encodings, written by hand from the JSON schemas ---

    #[test]
    fn subscription_v0_bytes_follow_the_schema() {
        let s = Subscription {
            topics: vec!["t0".to_owned(), "t1".to_owned()],
            ..Subscription::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x00, 0x00,             // version 0
            0x00, 0x00, 0x00, 0x02, // Topics: 2
            0x00, 0x02, b't', b'0', //   "t0"
            0x00, 0x02, b't', b'1', //   "t1"
            0xff, 0xff, 0xff, 0xff, // UserData: null
        ];
        assert_eq!(&s.encode(0)[..], expected);
        assert_eq!(Subscription::decode(expected).unwrap(), s);
    }

    #[test]
    fn subscription_v3_bytes_follow_the_schema() {
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x00, 0x03,             // version 3
            0x00, 0x00, 0x00, 0x02, // Topics: 2
            0x00, 0x02, b't', b'0',
            0x00, 0x07, b't', b'o', b'p', b'i', b'c', b'-', b'1',
            0x00, 0x00, 0x00, 0x03, // UserData: 3 bytes
            0x01, 0x02, 0x03,
            0x00, 0x00, 0x00, 0x02, // OwnedPartitions: 2 topics
            0x00, 0x02, b't', b'0', //   Topic "t0"
            0x00, 0x00, 0x00, 0x02, //   Partitions: 2
            0x00, 0x00, 0x00, 0x00, //     0
            0x00, 0x00, 0x00, 0x02, //     2
            0x00, 0x07, b't', b'o', b'p', b'i', b'c', b'-', b'1',
            0x00, 0x00, 0x00, 0x01, //   Partitions: 1
            0x00, 0x00, 0x00, 0x01, //     1
            0x00, 0x00, 0x00, 0x07, // GenerationId: 7
            0x00, 0x02, b'r', b'1', // RackId: "r1"
        ];
        assert_eq!(&full_subscription().encode(3)[..], expected);
        assert_eq!(Subscription::decode(expected).unwrap(), full_subscription());
    }

    #[test]
    fn null_rack_and_empty_owned_partitions_at_v3() {
        let s = Subscription {
            topics: vec!["a".to_owned()],
            ..Subscription::default()
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x00, 0x03,
            0x00, 0x00, 0x00, 0x01, 0x00, 0x01, b'a',
            0xff, 0xff, 0xff, 0xff, // UserData: null
            0x00, 0x00, 0x00, 0x00, // OwnedPartitions: none
            0xff, 0xff, 0xff, 0xff, // GenerationId: -1
            0xff, 0xff,             // RackId: null
        ];
        assert_eq!(&s.encode(3)[..], expected);
        assert_eq!(Subscription::decode(expected).unwrap(), s);
    }

    #[test]
    fn assignment_v0_bytes_follow_the_schema() {
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x00, 0x00,             // version 0
            0x00, 0x00, 0x00, 0x02, // AssignedPartitions: 2 topics
            0x00, 0x02, b't', b'0',
            0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
            0x00, 0x02, b't', b'1',
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,
            0x00, 0x00, 0x00, 0x02, 0x09, 0x08, // UserData: 2 bytes
        ];
        assert_eq!(&full_assignment().encode(0)[..], expected);
        assert_eq!(Assignment::decode(expected).unwrap(), full_assignment());
    }

    // --- against other encoders ---

    /// Encodings by Apache Kafka 3.9.2's `ConsumerProtocol`
    /// (`serializeSubscription`/`serializeAssignment` at each version),
    /// printed as hex by a throwaway Java program. Java was handed the topics
    /// and owned partitions of `full_subscription()` out of order and sorted
    /// them itself; the assignment is `full_assignment()`.
    const JAVA_SUBSCRIPTIONS: [&str; 4] = [
        "000000000002000274300007746f7069632d3100000003010203",
        "000100000002000274300007746f7069632d310000000301020300000002000274300000000200000000\
         000000020007746f7069632d310000000100000001",
        "000200000002000274300007746f7069632d310000000301020300000002000274300000000200000000\
         000000020007746f7069632d31000000010000000100000007",
        "000300000002000274300007746f7069632d310000000301020300000002000274300000000200000000\
         000000020007746f7069632d3100000001000000010000000700027231",
    ];
    const JAVA_ASSIGNMENTS: [&str; 4] = [
        "00000000000200027430000000020000000000000001000274310000000100000002000000020908",
        "00010000000200027430000000020000000000000001000274310000000100000002000000020908",
        "00020000000200027430000000020000000000000001000274310000000100000002000000020908",
        "00030000000200027430000000020000000000000001000274310000000100000002000000020908",
    ];

    #[test]
    fn java_encodings_match_ours_at_every_version() {
        for v in 0..=3i16 {
            let java = hex(JAVA_SUBSCRIPTIONS[v as usize]);
            assert_eq!(
                full_subscription().encode(v)[..],
                java[..],
                "subscription v{v}"
            );
            assert_eq!(
                Subscription::decode(&java).unwrap(),
                as_seen_at(&full_subscription(), v)
            );
            let java = hex(JAVA_ASSIGNMENTS[v as usize]);
            assert_eq!(full_assignment().encode(v)[..], java[..], "assignment v{v}");
            assert_eq!(Assignment::decode(&java).unwrap(), full_assignment());
        }
    }

    #[test]
    fn kafka_protocol_crate_encodes_the_same_bytes() {
        let s = full_subscription();
        let kp = ConsumerProtocolSubscription::default()
            .with_topics(s.topics.iter().map(|t| StrBytes::from(t.clone())).collect())
            .with_user_data(s.user_data.clone())
            .with_owned_partitions(
                s.owned_partitions
                    .iter()
                    .map(|e| {
                        kps::TopicPartition::default()
                            .with_topic(TopicName(StrBytes::from(e.topic.clone())))
                            .with_partitions(e.partitions.clone())
                    })
                    .collect(),
            )
            .with_generation_id(s.generation_id)
            .with_rack_id(s.rack_id.clone().map(StrBytes::from));
        let a = full_assignment();
        let kpa = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(
                a.partitions
                    .iter()
                    .map(|e| {
                        kpa::TopicPartition::default()
                            .with_topic(TopicName(StrBytes::from(e.topic.clone())))
                            .with_partitions(e.partitions.clone())
                    })
                    .collect(),
            )
            .with_user_data(a.user_data.clone());
        for v in 0..=3i16 {
            let mut expected = BytesMut::new();
            expected.put_i16(v);
            kp.encode(&mut expected, v).unwrap();
            assert_eq!(s.encode(v), expected, "subscription v{v}");
            let mut expected = BytesMut::new();
            expected.put_i16(v);
            kpa.encode(&mut expected, v).unwrap();
            assert_eq!(a.encode(v), expected, "assignment v{v}");
        }
    }

    // --- versions ---

    #[test]
    fn round_trip_at_every_version() {
        let variants = [
            full_subscription(),
            Subscription::default(),
            Subscription {
                user_data: Some(Bytes::new()),
                rack_id: Some(String::new()),
                generation_id: i32::MAX,
                owned_partitions: vec![tp("x", &[]), tp("é", &[i32::MIN, -1, 0])],
                ..Subscription::default()
            },
        ];
        for s in &variants {
            for v in 0..=3 {
                let bytes = s.encode(v);
                assert_eq!(bytes[..2], v.to_be_bytes());
                assert_eq!(
                    Subscription::decode(&bytes).unwrap(),
                    as_seen_at(s, v),
                    "v{v}"
                );
            }
        }
        for a in [full_assignment(), Assignment::default()] {
            for v in 0..=3 {
                assert_eq!(Assignment::decode(&a.encode(v)).unwrap(), a, "v{v}");
            }
        }
    }

    #[test]
    fn a_later_version_is_read_as_3_and_trailing_bytes_are_ignored() {
        let mut bytes = BytesMut::from(&full_subscription().encode(3)[..]);
        bytes[..2].copy_from_slice(&9i16.to_be_bytes());
        bytes.put_slice(b"a field from version 9");
        assert_eq!(Subscription::decode(&bytes).unwrap(), full_subscription());

        let mut bytes = BytesMut::from(&full_assignment().encode(3)[..]);
        bytes[..2].copy_from_slice(&i16::MAX.to_be_bytes());
        bytes.put_slice(&[0xff; 5]);
        assert_eq!(Assignment::decode(&bytes).unwrap(), full_assignment());

        // A v1 reader of v3 bytes stops after OwnedPartitions, as Java's would.
        let mut bytes = BytesMut::from(&full_subscription().encode(3)[..]);
        bytes[..2].copy_from_slice(&1i16.to_be_bytes());
        assert_eq!(
            Subscription::decode(&bytes).unwrap(),
            as_seen_at(&full_subscription(), 1)
        );
    }

    #[test]
    fn encode_clamps_the_version_like_java() {
        let s = full_subscription();
        assert_eq!(s.encode(4), s.encode(3));
        assert_eq!(s.encode(i16::MAX), s.encode(3));
        assert_eq!(s.encode(-1), s.encode(0));
        let a = full_assignment();
        assert_eq!(a.encode(12), a.encode(3));
        assert_eq!(a.encode(i16::MIN), a.encode(0));
    }

    #[test]
    fn a_negative_version_is_malformed() {
        let mut bytes = BytesMut::from(&full_subscription().encode(0)[..]);
        bytes[..2].copy_from_slice(&(-1i16).to_be_bytes());
        let err = Subscription::decode(&bytes).unwrap_err();
        assert!(
            matches!(
                &err,
                ProtocolError::MalformedConsumerProtocol {
                    what: "subscription",
                    version: Some(-1),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("unsupported version -1"), "{err}");
        let mut bytes = BytesMut::from(&full_assignment().encode(0)[..]);
        bytes[..2].copy_from_slice(&i16::MIN.to_be_bytes());
        assert!(Assignment::decode(&bytes).is_err());
    }

    // --- hostile and broken input ---

    #[test]
    fn an_empty_assignment_is_no_partitions() {
        assert_eq!(Assignment::decode(&[]).unwrap(), Assignment::default());
        assert!(Assignment::decode(&[0]).is_err(), "half a version");
        assert!(Assignment::decode(&[0, 0]).is_err(), "a version alone");
    }

    #[test]
    fn an_empty_subscription_is_malformed() {
        let err = Subscription::decode(&[]).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::MalformedConsumerProtocol { version: None, .. }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn truncation_at_every_cut_point_is_an_error() {
        for v in 0..=3 {
            let full = full_subscription().encode(v);
            for cut in 0..full.len() {
                let err = Subscription::decode(&full[..cut]).unwrap_err();
                assert!(
                    matches!(err, ProtocolError::MalformedConsumerProtocol { .. }),
                    "v{v} cut {cut}: {err:?}"
                );
            }
            let full = full_assignment().encode(v);
            // Cut 0 is the empty assignment, valid on purpose.
            for cut in 1..full.len() {
                assert!(Assignment::decode(&full[..cut]).is_err(), "v{v} cut {cut}");
            }
        }
    }

    #[test]
    fn a_huge_count_with_few_bytes_is_refused_before_allocating() {
        // Topics: 2^31 - 1 strings, 4 bytes follow.
        let topics = [0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1, b'a', 0];
        let err = Subscription::decode(&topics).unwrap_err();
        assert!(err.to_string().contains("2147483647 elements"), "{err}");

        // OwnedPartitions: 2^31 - 1 entries.
        let mut owned = BytesMut::new();
        owned.put_slice(&[0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        owned.put_i32(i32::MAX);
        owned.put_slice(&[0; 8]);
        assert!(Subscription::decode(&owned).is_err());

        // One topic whose Partitions announce 2^31 - 1 numbers.
        let mut partitions = BytesMut::new();
        partitions.put_slice(&[0, 0, 0, 0, 0, 1, 0, 1, b't']);
        partitions.put_i32(i32::MAX);
        partitions.put_slice(&[0; 8]);
        let err = Assignment::decode(&partitions).unwrap_err();
        assert!(err.to_string().contains("2147483647 elements"), "{err}");

        // UserData: 2 GiB announced.
        let user_data = [0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 1, 2];
        assert!(Subscription::decode(&user_data).is_err());
    }

    #[test]
    fn nulls_the_schema_does_not_allow_are_malformed() {
        // Topics: null.
        assert!(
            Subscription::decode(&[0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
        // One topic, null name.
        assert!(
            Subscription::decode(&[0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
        // AssignedPartitions: null.
        assert!(
            Assignment::decode(&[0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
        // A negative length below -1.
        assert!(Assignment::decode(&[0, 0, 0xff, 0xff, 0xff, 0xfe]).is_err());
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        let bytes = [0, 0, 0, 0, 0, 1, 0, 2, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff];
        let err = Subscription::decode(&bytes).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }

    #[test]
    fn a_string_too_long_for_the_format_is_cut_at_a_char_boundary() {
        // 16384 two-byte characters: 32768 bytes, one more than fits.
        let rack = "é".repeat(16384);
        let s = Subscription {
            rack_id: Some(rack.clone()),
            ..Subscription::default()
        };
        let back = Subscription::decode(&s.encode(3)).unwrap();
        let cut = back.rack_id.unwrap();
        assert_eq!(cut.len(), 32766);
        assert!(rack.starts_with(&cut));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds = [full_subscription().encode(3), full_assignment().encode(3)];
        for i in 0..20_000 {
            let mut bytes = seeds[i % 2].to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            bytes.truncate((next() as usize) % (bytes.len() + 1));
            let _ = Subscription::decode(&bytes);
            let _ = Assignment::decode(&bytes);
        }
    }
}
