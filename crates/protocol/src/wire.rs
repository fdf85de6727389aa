//! Bounds-checked primitives of the Kafka wire format.
//!
//! [`WireReader`] reads from a `Bytes` buffer and never trusts a length: every
//! string, byte array and array count is checked against the bytes that
//! remain before anything is sliced or allocated. Byte fields come back as
//! slices of the input (`Bytes`), never copies. [`WireWriter`] is the
//! matching encoder for the messages we frame ourselves.
//!
//! This module must never panic on any input.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;

use crate::error::ProtocolError;

/// A cursor over one message's bytes that returns typed errors instead of
/// panicking.
#[derive(Debug, Clone)]
pub(crate) struct WireReader {
    buf: Bytes,
    start_len: usize,
    api: ApiKey,
    version: i16,
}

impl WireReader {
    /// Reads `buf` as a message of `api` at `version` (used in errors).
    pub(crate) fn new(buf: Bytes, api: ApiKey, version: i16) -> Self {
        let start_len = buf.len();
        Self {
            buf,
            start_len,
            api,
            version,
        }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Position from the start, for error messages.
    fn position(&self) -> usize {
        self.start_len - self.buf.len()
    }

    /// Builds a [`ProtocolError::Malformed`] naming the current position.
    pub(crate) fn malformed(&self, reason: impl std::fmt::Display) -> ProtocolError {
        ProtocolError::Malformed {
            api: self.api,
            version: self.version,
            reason: format!("{reason} (at byte {})", self.position()),
        }
    }

    fn need(&self, n: usize, what: &str) -> Result<(), ProtocolError> {
        if self.buf.len() < n {
            Err(self.malformed(format_args!(
                "{what} needs {n} bytes but only {} remain",
                self.buf.len()
            )))
        } else {
            Ok(())
        }
    }

    pub(crate) fn i8(&mut self) -> Result<i8, ProtocolError> {
        self.need(1, "int8")?;
        Ok(self.buf.get_i8())
    }

    pub(crate) fn bool(&mut self) -> Result<bool, ProtocolError> {
        Ok(self.i8()? != 0)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, ProtocolError> {
        self.need(2, "int16")?;
        Ok(self.buf.get_i16())
    }

    pub(crate) fn i32(&mut self) -> Result<i32, ProtocolError> {
        self.need(4, "int32")?;
        Ok(self.buf.get_i32())
    }

    pub(crate) fn i64(&mut self) -> Result<i64, ProtocolError> {
        self.need(8, "int64")?;
        Ok(self.buf.get_i64())
    }

    pub(crate) fn uuid(&mut self) -> Result<[u8; 16], ProtocolError> {
        self.need(16, "uuid")?;
        let mut out = [0u8; 16];
        self.buf.copy_to_slice(&mut out);
        Ok(out)
    }

    /// An unsigned LEB128 varint of at most 5 bytes (Kafka's UNSIGNED_VARINT).
    pub(crate) fn unsigned_varint(&mut self) -> Result<u32, ProtocolError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            self.need(1, "varint")?;
            let b = self.buf.get_u8();
            if i == 4 && b > 0x0f {
                return Err(self.malformed("unsigned varint overflows 32 bits"));
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed("unsigned varint longer than 5 bytes"))
    }

    /// Takes `n` bytes as a slice of the input.
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<Bytes, ProtocolError> {
        self.need(n, what)?;
        Ok(self.buf.split_to(n))
    }

    /// Skips `n` bytes.
    pub(crate) fn skip(&mut self, n: usize, what: &str) -> Result<(), ProtocolError> {
        self.need(n, what)?;
        self.buf.advance(n);
        Ok(())
    }

    /// Length of a string or bytes field: `None` for null.
    fn length(&mut self, flexible: bool, wide: bool) -> Result<Option<usize>, ProtocolError> {
        let n: i64 = if flexible {
            i64::from(self.unsigned_varint()?) - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        match n {
            -1 => Ok(None),
            n if n < -1 => Err(self.malformed(format_args!("negative length {n}"))),
            n => usize::try_from(n)
                .map(Some)
                .map_err(|_| self.malformed("length does not fit in memory")),
        }
    }

    /// A nullable string (INT16 length, or COMPACT in flexible versions).
    pub(crate) fn nullable_string(
        &mut self,
        flexible: bool,
    ) -> Result<Option<StrBytes>, ProtocolError> {
        match self.length(flexible, false)? {
            None => Ok(None),
            Some(n) => {
                let raw = self.take(n, "string")?;
                StrBytes::from_utf8(raw)
                    .map(Some)
                    .map_err(|_| self.malformed("string is not valid UTF-8"))
            }
        }
    }

    /// A non-null string.
    pub(crate) fn string(&mut self, flexible: bool) -> Result<StrBytes, ProtocolError> {
        self.nullable_string(flexible)?
            .ok_or_else(|| self.malformed("null where a string is required"))
    }

    /// Nullable bytes (INT32 length, or COMPACT in flexible versions), as a
    /// slice of the input.
    pub(crate) fn nullable_bytes(
        &mut self,
        flexible: bool,
    ) -> Result<Option<Bytes>, ProtocolError> {
        match self.length(flexible, true)? {
            None => Ok(None),
            Some(n) => self.take(n, "bytes").map(Some),
        }
    }

    /// Non-null bytes.
    pub(crate) fn bytes(&mut self, flexible: bool) -> Result<Bytes, ProtocolError> {
        self.nullable_bytes(flexible)?
            .ok_or_else(|| self.malformed("null where bytes are required"))
    }

    /// A nullable array count, checked so that `count * min_element_size`
    /// fits in the bytes that remain. Callers may allocate `count` elements.
    pub(crate) fn nullable_array_len(
        &mut self,
        flexible: bool,
        min_element_size: usize,
    ) -> Result<Option<usize>, ProtocolError> {
        let Some(n) = self.length(flexible, true)? else {
            return Ok(None);
        };
        let needed = n.saturating_mul(min_element_size.max(1));
        if needed > self.remaining() {
            return Err(self.malformed(format_args!(
                "array of {n} elements needs at least {needed} bytes but only {} remain",
                self.remaining()
            )));
        }
        Ok(Some(n))
    }

    /// A non-null array count (see [`Self::nullable_array_len`]).
    pub(crate) fn array_len(
        &mut self,
        flexible: bool,
        min_element_size: usize,
    ) -> Result<usize, ProtocolError> {
        self.nullable_array_len(flexible, min_element_size)?
            .ok_or_else(|| self.malformed("null where an array is required"))
    }

    /// Skips a tagged-field section (flexible versions only).
    pub(crate) fn skip_tagged_fields(&mut self) -> Result<(), ProtocolError> {
        self.tagged_fields(|_, _| Ok(()))
    }

    /// Walks a tagged-field section (flexible versions only), handing each
    /// field's tag and bytes (a slice, within its stated size) to `field`;
    /// tags must increase.
    pub(crate) fn tagged_fields(
        &mut self,
        mut field: impl FnMut(u32, Bytes) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        let count = self.unsigned_varint()?;
        let mut last_tag: Option<u32> = None;
        for _ in 0..count {
            let tag = self.unsigned_varint()?;
            if last_tag.is_some_and(|last| tag <= last) {
                return Err(self.malformed("tagged fields out of order"));
            }
            last_tag = Some(tag);
            let size = self.unsigned_varint()?;
            let bytes = self.take(size as usize, "tagged field")?;
            field(tag, bytes)?;
        }
        Ok(())
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), ProtocolError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.malformed(format_args!("{} unexpected trailing bytes", self.buf.len())))
        }
    }
}

/// Appends Kafka primitives to a `BytesMut`.
#[derive(Debug)]
pub(crate) struct WireWriter<'a> {
    pub(crate) buf: &'a mut BytesMut,
    api: ApiKey,
    version: i16,
}

impl<'a> WireWriter<'a> {
    pub(crate) fn new(buf: &'a mut BytesMut, api: ApiKey, version: i16) -> Self {
        Self { buf, api, version }
    }

    fn encode_error(&self, reason: impl Into<String>) -> ProtocolError {
        ProtocolError::Encode {
            api: self.api,
            version: self.version,
            reason: reason.into(),
        }
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub(crate) fn unsigned_varint(&mut self, v: u32) {
        put_unsigned_varint(self.buf, v);
    }

    /// Writes a string or byte-array length (or -1 for null).
    fn length(
        &mut self,
        len: Option<usize>,
        flexible: bool,
        wide: bool,
    ) -> Result<(), ProtocolError> {
        match (len, flexible) {
            (None, true) => self.unsigned_varint(0),
            (None, false) if wide => self.i32(-1),
            (None, false) => self.i16(-1),
            (Some(n), true) => {
                let n = u32::try_from(n)
                    .ok()
                    .and_then(|n| n.checked_add(1))
                    .ok_or_else(|| self.encode_error(format!("length {n} too large")))?;
                self.unsigned_varint(n);
            }
            (Some(n), false) if wide => {
                let n = i32::try_from(n)
                    .map_err(|_| self.encode_error(format!("length {n} too large")))?;
                self.i32(n);
            }
            (Some(n), false) => {
                let n = i16::try_from(n)
                    .map_err(|_| self.encode_error(format!("string of {n} bytes too long")))?;
                self.i16(n);
            }
        }
        Ok(())
    }

    pub(crate) fn nullable_string(
        &mut self,
        s: Option<&str>,
        flexible: bool,
    ) -> Result<(), ProtocolError> {
        self.length(s.map(str::len), flexible, false)?;
        if let Some(s) = s {
            self.buf.put_slice(s.as_bytes());
        }
        Ok(())
    }

    pub(crate) fn string(&mut self, s: &str, flexible: bool) -> Result<(), ProtocolError> {
        self.nullable_string(Some(s), flexible)
    }

    /// Writes only the length prefix of a bytes field whose content follows
    /// in a separate chunk.
    pub(crate) fn bytes_len(&mut self, len: usize, flexible: bool) -> Result<(), ProtocolError> {
        self.length(Some(len), flexible, true)
    }

    pub(crate) fn array_len(&mut self, len: usize, flexible: bool) -> Result<(), ProtocolError> {
        self.length(Some(len), flexible, true)
    }

    /// An empty tagged-field section.
    pub(crate) fn no_tagged_fields(&mut self) {
        self.buf.put_u8(0);
    }
}

/// Appends an unsigned LEB128 varint.
pub(crate) fn put_unsigned_varint(buf: &mut impl BufMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Encoded size of an unsigned varint.
pub(crate) fn unsigned_varint_len(v: u32) -> usize {
    match v {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0xfff_ffff => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &'static [u8]) -> WireReader {
        WireReader::new(Bytes::from_static(bytes), ApiKey::Metadata, 12)
    }

    #[test]
    fn array_count_beyond_remaining_bytes_is_refused_before_allocation() {
        // Two billion elements announced, four bytes present.
        let mut r = reader(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1]);
        let err = r.array_len(false, 4).unwrap_err();
        assert!(err.to_string().contains("2147483647 elements"), "{err}");
    }

    #[test]
    fn compact_lengths_are_offset_by_one_and_zero_is_null() {
        let mut r = reader(&[0x00, 0x03, b'h', b'i']);
        assert_eq!(r.nullable_string(true).unwrap(), None);
        assert_eq!(r.string(true).unwrap().as_str(), "hi");
        r.finish().unwrap();
    }

    #[test]
    fn varint_of_six_bytes_is_malformed() {
        let mut r = reader(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(r.unsigned_varint().is_err());
        let mut r = reader(&[0xff, 0xff, 0xff, 0xff, 0x1f]);
        assert!(
            r.unsigned_varint().is_err(),
            "fifth byte above 0x0f overflows"
        );
    }

    #[test]
    fn varint_roundtrip_at_every_width() {
        for v in [
            0u32,
            1,
            127,
            128,
            16383,
            16384,
            2_097_151,
            2_097_152,
            u32::MAX,
        ] {
            let mut buf = BytesMut::new();
            put_unsigned_varint(&mut buf, v);
            assert_eq!(buf.len(), unsigned_varint_len(v));
            let mut r = WireReader::new(buf.freeze(), ApiKey::Metadata, 0);
            assert_eq!(r.unsigned_varint().unwrap(), v);
        }
    }

    #[test]
    fn invalid_utf8_string_is_malformed_not_panic() {
        let mut r = reader(&[0, 2, 0xff, 0xfe]);
        assert!(r.string(false).is_err());
    }

    #[test]
    fn tagged_fields_are_skipped_and_checked() {
        let mut r = reader(&[2, 0, 1, 9, 3, 2, 8, 8, 7]);
        r.skip_tagged_fields().unwrap();
        assert_eq!(r.remaining(), 1);
        let mut r = reader(&[1, 0, 5, 1]);
        assert!(r.skip_tagged_fields().is_err(), "size beyond remaining");
    }
}
