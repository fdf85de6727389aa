//! Kafka's batch compression codecs: gzip, snappy, lz4 and zstd, framed as
//! Kafka frames them (see kafka-wire-rules.md, "Codecs as Kafka frames them").
//!
//! This module owns the [`Compression`] id, the entry points
//! [`decompress`], [`compress`], [`validate_level`] and
//! [`decompress_lz4_legacy_v0`], and the capped reader that the streaming
//! decoders share; each codec's framing lives in its own submodule.
//!
//! Every decompressor takes a cap and stops with
//! [`CompressionError::TooLarge`] before producing more than that many
//! bytes: a hostile batch must never make us allocate far beyond its size.
//! Output buffers grow as decoded data arrives and never past `cap + 1`
//! bytes; no size claimed by the input is trusted for an allocation unless
//! it was first checked against the cap (and, for snappy, against the most
//! that the input's length can expand to). The decoders' own working memory
//! is bounded by a constant: at most 8 MiB for lz4 (two 4 MiB blocks), and
//! for zstd a window of 8 MiB, or the cap rounded up to a power of two if
//! larger (128 MiB at most).
//!
//! An empty payload is not a valid stream for any codec (every compressor
//! writes at least a header), so it is [`CompressionError::Corrupt`].

mod gzip;
pub(crate) mod lz4;
mod snappy;
mod zstd;

use std::fmt;
use std::io::{ErrorKind, Read};
use std::str::FromStr;

use bytes::Bytes;

use crate::error::CompressionError;

/// A batch's compression codec (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Compression {
    /// No compression.
    None = 0,
    /// gzip (RFC 1952).
    Gzip = 1,
    /// snappy: raw blocks or Java's xerial framing.
    Snappy = 2,
    /// The LZ4 frame format.
    Lz4 = 3,
    /// zstd frames (needs Produce v7 or later).
    Zstd = 4,
}

impl Compression {
    /// All codecs, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec named by a batch's attributes (bits 0-2).
    pub fn from_attributes(attributes: i16) -> Result<Self, CompressionError> {
        let id = (attributes & 0x07) as u8;
        Self::ALL
            .get(usize::from(id))
            .copied()
            .ok_or(CompressionError::UnknownCodec(id))
    }

    /// The codec id as stored in attribute bits 0-2.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The name used by `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a `compression.type` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression type {0:?}; expected one of none, gzip, snappy, lz4, zstd")]
pub struct UnknownCompressionName(pub String);

impl FromStr for Compression {
    type Err = UnknownCompressionName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|c| c.name() == lower)
            .ok_or_else(|| UnknownCompressionName(s.to_owned()))
    }
}

/// Decompresses a batch payload into at most `cap` bytes.
///
/// `Compression::None` returns `input.clone()` (zero-copy) if it fits the
/// cap. Framing per codec (see kafka-wire-rules.md): gzip accepts several
/// concatenated members; snappy accepts Java's xerial framing and raw snappy
/// (librdkafka); lz4 reads one LZ4 frame as Kafka's Java reader does (bytes
/// after the frame's end are ignored); zstd accepts concatenated frames.
///
/// # Errors
///
/// [`CompressionError::TooLarge`] if the payload decompresses (or claims to
/// decompress) to more than `cap` bytes, [`CompressionError::Corrupt`] if it
/// is not valid data for the codec. An lz4 payload of a magic-0 message set
/// carries a wrong header checksum: use [`decompress_lz4_legacy_v0`] for it.
pub fn decompress(
    codec: Compression,
    input: &Bytes,
    cap: usize,
) -> Result<Bytes, CompressionError> {
    if codec != Compression::None && input.is_empty() {
        return Err(empty_input(codec));
    }
    match codec {
        Compression::None if input.len() > cap => Err(CompressionError::TooLarge { codec, cap }),
        Compression::None => Ok(input.clone()),
        Compression::Gzip => gzip::decompress(input, cap),
        Compression::Snappy => snappy::decompress(input, cap),
        Compression::Lz4 => lz4::decompress(input, cap),
        Compression::Zstd => zstd::decompress(input, cap),
    }
}

/// Decompresses the value of a magic-0 (message format v0) lz4 wrapper
/// message into at most `cap` bytes.
///
/// Kafka before 0.10 computed the LZ4 frame header checksum over the magic
/// bytes too (KAFKA-3160), so the checksum of those frames is wrong. Like
/// Kafka's Java reader for magic 0, this ignores the stored header checksum
/// (it replaces it with the right one) and then decodes as [`decompress`]
/// does. Use it only for magic-0 message sets: magic 1 and 2 have the right
/// checksum.
///
/// # Errors
///
/// As [`decompress`] with [`Compression::Lz4`].
pub fn decompress_lz4_legacy_v0(input: &Bytes, cap: usize) -> Result<Bytes, CompressionError> {
    if input.is_empty() {
        return Err(empty_input(Compression::Lz4));
    }
    lz4::decompress_legacy_v0(input, cap)
}

/// Compresses `input` with `codec`, appending the result to `out`.
///
/// `level` is the codec's compression level; `None` picks the codec's Kafka
/// default. Accepted levels, as Kafka's `compression.<codec>.level`:
/// - gzip: 1..=9, or -1 for the default (6);
/// - lz4: 1..=17 (default 9); lz4_flex has a single fast level, so a valid
///   level is accepted and has no effect;
/// - zstd: -131072..=22 (default 3; 0 also means the default);
/// - snappy and none have no levels: only `None` is accepted.
///
/// The framing is what Kafka's Java producer writes: one gzip member, the
/// xerial snappy framing with 32 KiB blocks, one LZ4 frame with 64 KiB
/// independent blocks, one zstd frame (with its content size).
///
/// # Errors
///
/// [`CompressionError::Compress`] if `level` is out of range (the message
/// names the range) or the encoder fails; `out` is then left as it was.
pub fn compress(
    codec: Compression,
    input: &[u8],
    level: Option<i32>,
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    let start = out.len();
    let result = match codec {
        Compression::None => no_levels(codec, level).map(|()| out.extend_from_slice(input)),
        Compression::Gzip => gzip::compress(input, level, out),
        Compression::Snappy => snappy::compress(input, level, out),
        Compression::Lz4 => lz4::compress(input, level, out),
        Compression::Zstd => zstd::compress(input, level, out),
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Checks that `level` is a valid compression level for `codec`, as
/// [`compress`] would: use it to refuse a bad configuration at start-up.
///
/// # Errors
///
/// [`CompressionError::Compress`] naming the allowed range.
pub fn validate_level(codec: Compression, level: Option<i32>) -> Result<(), CompressionError> {
    match codec {
        Compression::None | Compression::Snappy => no_levels(codec, level),
        Compression::Gzip => gzip::level(level).map(drop),
        Compression::Lz4 => lz4::level(level),
        Compression::Zstd => zstd::level(level).map(drop),
    }
}

fn empty_input(codec: Compression) -> CompressionError {
    CompressionError::Corrupt {
        codec,
        reason: "empty input".to_owned(),
    }
}

/// Refuses any level for a codec that has none.
fn no_levels(codec: Compression, level: Option<i32>) -> Result<(), CompressionError> {
    match level {
        None => Ok(()),
        Some(level) => Err(CompressionError::Compress {
            codec,
            reason: format!("{codec} has no compression levels, got level {level}"),
        }),
    }
}

/// The error for a level outside the codec's range, described by `allowed`.
fn level_out_of_range(codec: Compression, level: i32, allowed: &str) -> CompressionError {
    CompressionError::Compress {
        codec,
        reason: format!("compression level {level} is out of range; {codec} accepts {allowed}"),
    }
}

/// The smallest buffer [`read_capped`] starts with.
const MIN_INITIAL_OUTPUT: usize = 8 * 1024;

/// Reads a streaming decoder to its end into a buffer of at most `cap`
/// bytes.
///
/// This is `reader.take(cap as u64 + 1).read_to_end(..)` with the growth of
/// the buffer under our control: it starts at twice the input (at least
/// 8 KiB) and doubles as decoded data arrives, each time by an exact
/// reservation that never passes `cap + 1` bytes, so memory follows what the
/// decoder actually produced, never what the input claims. A full buffer is
/// grown only after a small probe read shows that more data follows, so
/// output that exactly fills it does not double it. Passing `cap` bytes
/// stops decoding with [`CompressionError::TooLarge`].
fn read_capped(
    mut reader: impl Read,
    codec: Compression,
    input_len: usize,
    cap: usize,
) -> Result<Bytes, CompressionError> {
    let too_large = || CompressionError::TooLarge { codec, cap };
    // `out[..filled]` holds the output so far, `out[filled..]` is room.
    let mut out = Vec::new();
    let mut filled = 0;
    loop {
        if filled == out.len() {
            let mut probe = [0; 32];
            let probed = if filled == 0 {
                0
            } else {
                match read_some(&mut reader, &mut probe, codec)? {
                    0 => break,
                    n => n,
                }
            };
            filled += probed;
            if filled > cap {
                return Err(too_large());
            }
            let target = filled
                .saturating_mul(2)
                .max(input_len.saturating_mul(2))
                .max(MIN_INITIAL_OUTPUT)
                .min(cap.saturating_add(1));
            out.reserve_exact(target.saturating_sub(out.len()));
            out.extend_from_slice(probe.get(..probed).unwrap_or_default());
            out.resize(target, 0);
        }
        let Some(room) = out.get_mut(filled..) else {
            break;
        };
        match read_some(&mut reader, room, codec)? {
            0 => break,
            n => filled += n,
        }
        if filled > cap {
            return Err(too_large());
        }
    }
    out.truncate(filled);
    out.shrink_to_fit();
    Ok(Bytes::from(out))
}

/// One `read`, retried if interrupted; a decoder's error means corrupt data.
fn read_some(
    reader: &mut impl Read,
    buf: &mut [u8],
    codec: Compression,
) -> Result<usize, CompressionError> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            result => {
                return result.map_err(|e| CompressionError::Corrupt {
                    codec,
                    reason: e.to_string(),
                });
            }
        }
    }
}

/// Deterministic payloads for the codecs' tests.
#[cfg(test)]
mod test_data {
    /// `len` bytes that no codec can shrink (xorshift output).
    pub(crate) fn incompressible(len: usize) -> Vec<u8> {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[3]
            })
            .collect()
    }

    /// `len` bytes of repetitive, record-like text.
    pub(crate) fn compressible(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut i = 0u64;
        while out.len() < len {
            let line = format!("{{\"id\":{i},\"user\":\"user-{}\",\"ok\":true}}\n", i % 97);
            out.extend_from_slice(line.as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    /// The sizes every codec is round-tripped at: 0 bytes, 1 byte, 100 KiB
    /// incompressible and 1 MiB compressible.
    pub(crate) fn samples() -> Vec<Vec<u8>> {
        vec![
            Vec::new(),
            vec![0x42],
            incompressible(100 * 1024),
            compressible(1024 * 1024),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn none_is_zero_copy_and_capped() {
        let input = Bytes::from_static(b"hello");
        let out = decompress(Compression::None, &input, 5).unwrap();
        assert_eq!(out.as_ptr(), input.as_ptr());
        assert!(matches!(
            decompress(Compression::None, &input, 4),
            Err(CompressionError::TooLarge {
                codec: Compression::None,
                cap: 4
            })
        ));
        assert!(
            decompress(Compression::None, &Bytes::new(), 0)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn none_compress_appends() {
        let mut out = b"head".to_vec();
        compress(Compression::None, b"tail", None, &mut out).unwrap();
        assert_eq!(out, b"headtail");
    }

    #[test]
    fn every_codec_roundtrips_through_the_dispatcher() {
        for codec in CODECS {
            for data in test_data::samples() {
                let mut out = b"prefix".to_vec();
                compress(codec, &data, None, &mut out).unwrap();
                assert_eq!(out.get(..6), Some(&b"prefix"[..]));
                let compressed = Bytes::copy_from_slice(&out[6..]);
                let back = decompress(codec, &compressed, data.len()).unwrap();
                assert_eq!(back, data, "{codec} at {} bytes", data.len());
            }
        }
    }

    #[test]
    fn every_codec_stops_at_the_cap() {
        let zeros = vec![0u8; 1024 * 1024];
        for codec in CODECS {
            let mut out = Vec::new();
            compress(codec, &zeros, None, &mut out).unwrap();
            let out = Bytes::from(out);
            assert!(
                matches!(
                    decompress(codec, &out, 1000),
                    Err(CompressionError::TooLarge { codec: c, cap: 1000 }) if c == codec
                ),
                "{codec}"
            );
            // The exact size fits; one byte less does not.
            assert_eq!(
                decompress(codec, &out, zeros.len()).unwrap().len(),
                zeros.len()
            );
            assert!(matches!(
                decompress(codec, &out, zeros.len() - 1),
                Err(CompressionError::TooLarge { .. })
            ));
        }
    }

    #[test]
    fn empty_or_garbage_input_is_corrupt() {
        for codec in CODECS {
            for input in [
                Bytes::new(),
                Bytes::from_static(b"definitely not compressed data"),
            ] {
                assert!(
                    matches!(
                        decompress(codec, &input, 1 << 20),
                        Err(CompressionError::Corrupt { codec: c, .. }) if c == codec
                    ),
                    "{codec} {input:?}"
                );
            }
        }
        assert!(matches!(
            decompress_lz4_legacy_v0(&Bytes::new(), 100),
            Err(CompressionError::Corrupt { .. })
        ));
    }

    #[test]
    fn levels_are_checked_and_a_bad_level_leaves_out_untouched() {
        let cases = [
            (Compression::None, Some(1), false),
            (Compression::Snappy, Some(1), false),
            (Compression::Gzip, Some(0), false),
            (Compression::Gzip, Some(10), false),
            (Compression::Gzip, Some(-1), true),
            (Compression::Gzip, Some(9), true),
            (Compression::Lz4, Some(0), false),
            (Compression::Lz4, Some(18), false),
            (Compression::Lz4, Some(17), true),
            (Compression::Zstd, Some(23), false),
            (Compression::Zstd, Some(-131_073), false),
            (Compression::Zstd, Some(-131_072), true),
            (Compression::Zstd, Some(22), true),
        ];
        for (codec, level, ok) in cases {
            assert_eq!(
                validate_level(codec, level).is_ok(),
                ok,
                "{codec} {level:?}"
            );
            let mut out = b"kept".to_vec();
            let result = compress(codec, b"data", level, &mut out);
            assert_eq!(result.is_ok(), ok, "{codec} {level:?}");
            if let Err(e) = result {
                assert!(matches!(e, CompressionError::Compress { .. }));
                assert!(e.to_string().contains("level"), "{e}");
                assert_eq!(out, b"kept");
            }
        }
        for codec in Compression::ALL {
            validate_level(codec, None).unwrap();
        }
    }

    /// A reader that hands out its data a few bytes at a time.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_capped_grows_with_the_data_and_stops_at_the_cap() {
        for len in [0, 1, 31, 32, 33, 8191, 8192, 8193, 16_384, 100_000] {
            let data = test_data::compressible(len);
            let out = read_capped(Trickle(&data), Compression::None, 10, len).unwrap();
            assert_eq!(out, data);
            // Uncapped, from a reader that fills whole buffers.
            let out = read_capped(&data[..], Compression::None, 10, usize::MAX).unwrap();
            assert_eq!(out, data);
            if len > 0 {
                assert!(matches!(
                    read_capped(Trickle(&data), Compression::None, 10, len - 1),
                    Err(CompressionError::TooLarge { cap, .. }) if cap == len - 1
                ));
            }
        }
        assert!(matches!(
            read_capped(&b"x"[..], Compression::None, 0, 0),
            Err(CompressionError::TooLarge { cap: 0, .. })
        ));
    }
}
