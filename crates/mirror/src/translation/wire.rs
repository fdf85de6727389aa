//! A bounded reader and a writer for the fixed-layout records of the
//! translation topics (Kafka's own primitive types: big-endian integers,
//! strings with an `int16` length).

use thiserror::Error;

/// A record of a translation topic that cannot be read.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordFormatError {
    /// Fewer bytes than the field needs.
    #[error("{what}: {needed} bytes needed at byte {at}, {left} left")]
    Truncated {
        /// The field.
        what: &'static str,
        /// Where it starts.
        at: usize,
        /// Its size.
        needed: usize,
        /// What remained.
        left: usize,
    },
    /// Bytes after the last field.
    #[error("{what}: {extra} bytes after the last field")]
    TrailingBytes {
        /// The record part (key or value).
        what: &'static str,
        /// How many.
        extra: usize,
    },
    /// A format version this build does not read.
    #[error("{what}: version {version} is not one this kmirror reads (it reads {supported})")]
    UnknownVersion {
        /// The record part.
        what: &'static str,
        /// The version found.
        version: i16,
        /// The versions read.
        supported: &'static str,
    },
    /// A field outside its range.
    #[error("{what}: {reason}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A string longer than Kafka's `int16` length allows.
    #[error("{what}: {len} bytes is longer than a string may be ({max})", max = i16::MAX)]
    StringTooLong {
        /// The field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
}

/// Reads fields from a byte slice, checking each against what remains.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], RecordFormatError> {
        let slice = self.bytes_of(what, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn bytes_of(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], RecordFormatError> {
        let left = self.bytes.len().saturating_sub(self.at);
        let slice = self
            .at
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.at..end))
            .ok_or(RecordFormatError::Truncated {
                what,
                at: self.at,
                needed: n,
                left,
            })?;
        self.at += n;
        Ok(slice)
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, RecordFormatError> {
        self.take::<2>(what).map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, RecordFormatError> {
        self.take::<4>(what).map(i32::from_be_bytes)
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, RecordFormatError> {
        self.take::<8>(what).map(i64::from_be_bytes)
    }

    /// A string: `int16` length (not negative) and UTF-8 bytes.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, RecordFormatError> {
        let len = self.i16(what)?;
        let len = usize::try_from(len).map_err(|_| RecordFormatError::Invalid {
            what,
            reason: format!("negative length {len}"),
        })?;
        let bytes = self.bytes_of(what, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| RecordFormatError::Invalid {
            what,
            reason: format!("not UTF-8: {e}"),
        })
    }

    /// The bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    /// Refuses bytes after the last field.
    pub(crate) fn finish(self, what: &'static str) -> Result<(), RecordFormatError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(RecordFormatError::TrailingBytes { what, extra }),
        }
    }
}

/// Appends fields to a buffer.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn i16(&mut self, v: i16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn string(
        &mut self,
        what: &'static str,
        s: &str,
    ) -> Result<&mut Self, RecordFormatError> {
        let len = i16::try_from(s.len())
            .map_err(|_| RecordFormatError::StringTooLong { what, len: s.len() })?;
        self.i16(len);
        self.buf.extend_from_slice(s.as_bytes());
        Ok(self)
    }
}
