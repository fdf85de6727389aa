//! gzip (RFC 1952) as Kafka frames it: a plain gzip stream. Reading accepts
//! several concatenated members, as Java's `GZIPInputStream` does; writing
//! produces one member.

use std::io::Write;

use bytes::Bytes;
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::{Compression, level_out_of_range, read_capped};
use crate::error::CompressionError;

const CODEC: Compression = Compression::Gzip;

/// Decompresses every gzip member of `input` into at most `cap` bytes.
pub(super) fn decompress(input: &Bytes, cap: usize) -> Result<Bytes, CompressionError> {
    // `&[u8]` is already buffered: the bufread decoder reads it in place.
    let data: &[u8] = input;
    read_capped(MultiGzDecoder::new(data), CODEC, input.len(), cap)
}

/// The flate2 level for a Kafka `compression.gzip.level`: 1..=9, or -1 (and
/// `None`) for zlib's default, 6, which is what Java's `Deflater` uses.
pub(super) fn level(level: Option<i32>) -> Result<flate2::Compression, CompressionError> {
    match level {
        None | Some(-1) => Ok(flate2::Compression::default()),
        Some(l @ 1..=9) => Ok(flate2::Compression::new(l.unsigned_abs())),
        Some(l) => Err(level_out_of_range(
            CODEC,
            l,
            "1..=9, or -1 for the default (6)",
        )),
    }
}

/// Compresses `input` as one gzip member appended to `out`.
pub(super) fn compress(
    input: &[u8],
    level: Option<i32>,
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    let mut encoder = GzEncoder::new(out, self::level(level)?);
    encoder
        .write_all(input)
        .and_then(|()| encoder.try_finish())
        .map_err(|e| CompressionError::Compress {
            codec: CODEC,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::test_data;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        compress(data, None, &mut out).unwrap();
        out
    }

    #[test]
    fn roundtrip_at_several_sizes_and_levels() {
        for data in test_data::samples() {
            for level in [None, Some(1), Some(9)] {
                let mut out = Vec::new();
                compress(&data, level, &mut out).unwrap();
                assert_eq!(out.get(..2), Some(&[0x1f, 0x8b][..]));
                let back = decompress(&Bytes::from(out), data.len()).unwrap();
                assert_eq!(back, data);
            }
        }
    }

    #[test]
    fn reads_concatenated_members() {
        let mut input = gzip(b"hello, ");
        input.extend(gzip(b""));
        input.extend(gzip(b"world"));
        let out = decompress(&Bytes::from(input), 100).unwrap();
        assert_eq!(out, &b"hello, world"[..]);
    }

    #[test]
    fn cap_counts_across_members() {
        let mut input = gzip(&[1; 600]);
        input.extend(gzip(&[2; 600]));
        let input = Bytes::from(input);
        assert_eq!(decompress(&input, 1200).unwrap().len(), 1200);
        assert!(matches!(
            decompress(&input, 1000),
            Err(CompressionError::TooLarge {
                codec: Compression::Gzip,
                cap: 1000
            })
        ));
    }

    #[test]
    fn a_million_zeros_stop_at_the_cap() {
        let input = Bytes::from(gzip(&vec![0; 1 << 20]));
        assert!(matches!(
            decompress(&input, 1000),
            Err(CompressionError::TooLarge {
                codec: Compression::Gzip,
                cap: 1000
            })
        ));
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let good = gzip(&test_data::compressible(10_000));
        let mut bad_crc = good.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 1;
        let mut bad_data = good.clone();
        bad_data[20] ^= 0x55;
        let truncated = good[..good.len() - 5].to_vec();
        let mut bad_magic = good.clone();
        bad_magic[0] = 0;
        let mut trailing_garbage = good;
        trailing_garbage.extend_from_slice(b"garbage");
        for input in [
            bad_crc,
            bad_data,
            truncated,
            bad_magic,
            trailing_garbage,
            vec![0x1f],
        ] {
            assert!(matches!(
                decompress(&Bytes::from(input), 1 << 20),
                Err(CompressionError::Corrupt {
                    codec: Compression::Gzip,
                    ..
                })
            ));
        }
    }

    #[test]
    fn levels() {
        for ok in [None, Some(-1), Some(1), Some(6), Some(9)] {
            level(ok).unwrap();
        }
        for bad in [Some(0), Some(10), Some(-2), Some(i32::MIN)] {
            let err = level(bad).unwrap_err();
            assert!(err.to_string().contains("1..=9"), "{err}");
        }
    }
}
