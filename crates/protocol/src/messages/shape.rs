//! A declarative description of Kafka message layouts and a bounds-checked
//! walker over them.
//!
//! This module owns the [`Field`] schema language and [`walk`]/[`check`],
//! which read a message body only to prove its shape: every array count,
//! string length and bytes length fits in the bytes that remain, every
//! field of the version is present, tagged-field sections are well formed,
//! and (in [`check`]) nothing trails the message. Nothing is kept: the walk
//! exists so that a decoder which trusts wire counts (kafka-protocol's) only
//! ever sees bytes whose counts are already bounded by the frame.
//!
//! This module must never allocate in proportion to a count read from the
//! wire, never trust a length before checking it against the remaining
//! bytes, and never panic on any input.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::error::ProtocolError;
use crate::wire::WireReader;

/// The wire type of one field.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// INT8.
    Int8,
    /// BOOLEAN (one byte, like INT8).
    Bool,
    /// INT16.
    Int16,
    /// INT32.
    Int32,
    /// INT64.
    Int64,
    /// UUID (16 bytes).
    Uuid,
    /// A non-null STRING (COMPACT_STRING in flexible versions).
    String,
    /// A NULLABLE_STRING (COMPACT_NULLABLE_STRING in flexible versions).
    NullableString,
    /// Non-null BYTES (COMPACT_BYTES in flexible versions).
    Bytes,
    /// A non-null array of structs with the given fields; in flexible
    /// versions each element ends with its own tagged-field section.
    Array(&'static [Field]),
    /// A nullable array of structs.
    NullableArray(&'static [Field]),
    /// A non-null array of non-null strings.
    ArrayOfString,
    /// A non-null array of INT32s.
    ArrayOfInt32,
    /// A nullable struct: an INT8 that is 1 when the struct follows
    /// (anything else: null), then the struct.
    NullableStruct(&'static [Field]),
}

impl Kind {
    /// The fewest bytes a value of this kind can take on the wire.
    const fn min_size(self, flexible: bool) -> usize {
        match self {
            Kind::Int8 | Kind::Bool | Kind::NullableStruct(_) => 1,
            Kind::Int16 => 2,
            Kind::Int32 => 4,
            Kind::Int64 => 8,
            Kind::Uuid => 16,
            // Compact lengths are varints of at least one byte.
            _ if flexible => 1,
            Kind::String | Kind::NullableString => 2,
            Kind::Bytes
            | Kind::Array(_)
            | Kind::NullableArray(_)
            | Kind::ArrayOfString
            | Kind::ArrayOfInt32 => 4,
        }
    }
}

/// One field of a struct: its kind, the versions it exists in, and, for a
/// tagged field that the decoder reads by tag, its tag.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    kind: Kind,
    since: i16,
    until: i16,
    tag: Option<u32>,
}

/// A field of `kind` present in every version (narrow it with
/// [`Field::since`] and [`Field::until`]).
pub(crate) const fn f(kind: Kind) -> Field {
    Field {
        kind,
        since: 0,
        until: i16::MAX,
        tag: None,
    }
}

impl Field {
    /// The field exists from `version` on.
    pub(crate) const fn since(self, version: i16) -> Self {
        Self {
            since: version,
            ..self
        }
    }

    /// The field exists up to `version` (inclusive).
    pub(crate) const fn until(self, version: i16) -> Self {
        Self {
            until: version,
            ..self
        }
    }

    /// The field is a tagged field with `tag` that the decoder reads by its
    /// type, not by its declared size. Such a field must be described:
    /// the walk then requires its value to fill exactly the declared size,
    /// so that the decoder and the walk stay at the same byte. Tagged
    /// fields the decoder keeps as raw bytes need no description.
    pub(crate) const fn tag(self, tag: u32) -> Self {
        Self {
            tag: Some(tag),
            ..self
        }
    }

    fn present(&self, version: i16) -> bool {
        self.since <= version && version <= self.until
    }
}

/// The fewest bytes one struct of `schema` can take at `version`.
fn min_struct_size(schema: &[Field], version: i16, flexible: bool) -> usize {
    let fields: usize = schema
        .iter()
        .filter(|field| field.tag.is_none() && field.present(version))
        .map(|field| field.kind.min_size(flexible))
        .sum();
    // The tagged-field section takes at least its count byte.
    fields.saturating_add(usize::from(flexible))
}

/// Reads one struct of `schema` at `version`: its present fields in order,
/// then (in flexible versions) its tagged-field section.
pub(crate) fn walk(
    schema: &[Field],
    r: &mut WireReader,
    version: i16,
    flexible: bool,
) -> Result<(), ProtocolError> {
    for field in schema
        .iter()
        .filter(|field| field.tag.is_none() && field.present(version))
    {
        walk_value(field.kind, r, version, flexible)?;
    }
    if flexible {
        walk_tagged_fields(schema, r, version)?;
    }
    Ok(())
}

/// Reads one value of `kind`.
fn walk_value(
    kind: Kind,
    r: &mut WireReader,
    version: i16,
    flexible: bool,
) -> Result<(), ProtocolError> {
    match kind {
        Kind::Int8 | Kind::Bool => r.skip(1, "int8"),
        Kind::Int16 => r.skip(2, "int16"),
        Kind::Int32 => r.skip(4, "int32"),
        Kind::Int64 => r.skip(8, "int64"),
        Kind::Uuid => r.skip(16, "uuid"),
        Kind::String => r.string(flexible).map(drop),
        Kind::NullableString => r.nullable_string(flexible).map(drop),
        Kind::Bytes => r.bytes(flexible).map(drop),
        Kind::Array(element) => {
            let min = min_struct_size(element, version, flexible);
            let count = r.array_len(flexible, min)?;
            walk_structs(element, count, r, version, flexible)
        }
        Kind::NullableArray(element) => {
            let min = min_struct_size(element, version, flexible);
            match r.nullable_array_len(flexible, min)? {
                Some(count) => walk_structs(element, count, r, version, flexible),
                None => Ok(()),
            }
        }
        Kind::ArrayOfString => {
            let count = r.array_len(flexible, Kind::String.min_size(flexible))?;
            for _ in 0..count {
                r.string(flexible)?;
            }
            Ok(())
        }
        Kind::ArrayOfInt32 => {
            let count = r.array_len(flexible, 4)?;
            r.skip(count.saturating_mul(4), "int32 array")
        }
        Kind::NullableStruct(fields) => {
            let present = r.i8()?;
            if present == 1 {
                walk(fields, r, version, flexible)?;
            }
            Ok(())
        }
    }
}

/// Reads `count` structs; `count` was already checked against the bytes
/// that remain, so the loop is bounded by the input.
fn walk_structs(
    schema: &[Field],
    count: usize,
    r: &mut WireReader,
    version: i16,
    flexible: bool,
) -> Result<(), ProtocolError> {
    for _ in 0..count {
        walk(schema, r, version, flexible)?;
    }
    Ok(())
}

/// Reads a tagged-field section: tags strictly increasing, each size within
/// the remaining bytes, and each tag that `schema` describes filled exactly
/// by its value. Every entry takes at least two bytes, so the loop is
/// bounded by the input whatever count it announces.
fn walk_tagged_fields(
    schema: &[Field],
    r: &mut WireReader,
    version: i16,
) -> Result<(), ProtocolError> {
    let count = r.unsigned_varint()?;
    let mut last_tag: Option<u32> = None;
    for _ in 0..count {
        let tag = r.unsigned_varint()?;
        if last_tag.is_some_and(|last| tag <= last) {
            return Err(r.malformed("tagged fields out of order"));
        }
        last_tag = Some(tag);
        let size = usize::try_from(r.unsigned_varint()?)
            .map_err(|_| r.malformed("tagged field size does not fit in memory"))?;
        let known = schema
            .iter()
            .find(|field| field.tag == Some(tag) && field.present(version));
        match known {
            None => r.skip(size, "tagged field")?,
            Some(field) => {
                let before = r.remaining();
                walk_value(field.kind, r, version, true)?;
                let used = before.saturating_sub(r.remaining());
                if used != size {
                    return Err(r.malformed(format_args!(
                        "tagged field {tag} declares {size} bytes but its value takes {used}"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Walks a whole message body of `api` at `version` and requires every byte
/// to be consumed. `body` is cloned (a reference-count increment), not read
/// in place.
pub(crate) fn check(
    schema: &[Field],
    api: ApiKey,
    version: i16,
    flexible: bool,
    body: &Bytes,
) -> Result<(), ProtocolError> {
    let mut r = WireReader::new(body.clone(), api, version);
    walk(schema, &mut r, version, flexible)?;
    r.finish()
}

/// Test support: bodies built from a layout.
#[cfg(test)]
pub(crate) mod sample {
    use super::{Field, Kind};
    use bytes::{BufMut, Bytes, BytesMut};

    /// Builds a body from a layout alone, for tests that compare our layouts
    /// with another codec: every present field, two elements per array,
    /// nullable fields alternately null and non-null, every described tagged
    /// field with a value and one unknown tagged field per struct.
    pub(crate) fn body(schema: &[Field], version: i16, flexible: bool) -> Bytes {
        let mut sampler = Sampler::default();
        sampler.write_struct(schema, version, flexible);
        sampler.buf.freeze()
    }

    #[derive(Default)]
    struct Sampler {
        buf: BytesMut,
        nullables: u32,
    }

    impl Sampler {
        /// Alternates between null (`true`) and non-null.
        fn next_is_null(&mut self) -> bool {
            self.nullables += 1;
            self.nullables.is_multiple_of(2)
        }

        fn length(&mut self, len: Option<usize>, flexible: bool, wide: bool) {
            match (len, flexible, wide) {
                (None, true, _) => self.buf.put_u8(0),
                (Some(n), true, _) => {
                    crate::wire::put_unsigned_varint(&mut self.buf, u32::try_from(n + 1).unwrap());
                }
                (None, false, true) => self.buf.put_i32(-1),
                (None, false, false) => self.buf.put_i16(-1),
                (Some(n), false, true) => self.buf.put_i32(i32::try_from(n).unwrap()),
                (Some(n), false, false) => self.buf.put_i16(i16::try_from(n).unwrap()),
            }
        }

        fn string(&mut self, flexible: bool) {
            self.length(Some(3), flexible, false);
            self.buf.extend_from_slice(b"str");
        }

        fn write_struct(&mut self, schema: &[Field], version: i16, flexible: bool) {
            for field in schema
                .iter()
                .filter(|field| field.tag.is_none() && field.present(version))
            {
                self.write_value(field.kind, version, flexible);
            }
            if flexible {
                let known: Vec<&Field> = schema
                    .iter()
                    .filter(|field| field.tag.is_some() && field.present(version))
                    .collect();
                crate::wire::put_unsigned_varint(
                    &mut self.buf,
                    u32::try_from(known.len() + 1).unwrap(),
                );
                for field in known {
                    let mut value = Sampler::default();
                    value.write_value(field.kind, version, true);
                    crate::wire::put_unsigned_varint(&mut self.buf, field.tag.unwrap());
                    crate::wire::put_unsigned_varint(
                        &mut self.buf,
                        u32::try_from(value.buf.len()).unwrap(),
                    );
                    self.buf.extend_from_slice(&value.buf);
                }
                // An unknown tag, above every tag the layouts describe.
                self.buf.extend_from_slice(&[100, 2, 0xab, 0xcd]);
            }
        }

        fn write_value(&mut self, kind: Kind, version: i16, flexible: bool) {
            match kind {
                Kind::Int8 => self.buf.put_i8(-3),
                Kind::Bool => self.buf.put_u8(1),
                Kind::Int16 => self.buf.put_i16(0x0102),
                Kind::Int32 => self.buf.put_i32(0x0304_0506),
                Kind::Int64 => self.buf.put_i64(0x0708_090a_0b0c_0d0e),
                Kind::Uuid => self.buf.extend_from_slice(&[0x5a; 16]),
                Kind::String => self.string(flexible),
                Kind::NullableString => {
                    if self.next_is_null() {
                        self.length(None, flexible, false);
                    } else {
                        self.string(flexible);
                    }
                }
                Kind::Bytes => {
                    self.length(Some(2), flexible, true);
                    self.buf.extend_from_slice(&[0xfe, 0xff]);
                }
                Kind::Array(element) => {
                    self.length(Some(2), flexible, true);
                    self.write_struct(element, version, flexible);
                    self.write_struct(element, version, flexible);
                }
                Kind::NullableArray(element) => {
                    if self.next_is_null() {
                        self.length(None, flexible, true);
                    } else {
                        self.length(Some(2), flexible, true);
                        self.write_struct(element, version, flexible);
                        self.write_struct(element, version, flexible);
                    }
                }
                Kind::ArrayOfString => {
                    self.length(Some(2), flexible, true);
                    self.string(flexible);
                    self.string(flexible);
                }
                Kind::ArrayOfInt32 => {
                    self.length(Some(2), flexible, true);
                    self.buf.put_i32(7);
                    self.buf.put_i32(-8);
                }
                Kind::NullableStruct(fields) => {
                    self.buf.put_i8(1);
                    self.write_struct(fields, version, flexible);
                }
            }
        }
    }
}
