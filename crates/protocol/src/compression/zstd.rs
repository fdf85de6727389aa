//! zstd as Kafka frames it: plain zstd frames (several may follow each
//! other). Decoding is streaming (`zstd::stream::read::Decoder`), so the
//! output grows with the data, never with a size the frame claims.
//!
//! The decoder's own memory is its window, which the frame header chooses.
//! It is limited with `window_log_max`: 8 MiB (what every level up to 19
//! uses on data of unknown size; Kafka's default level 3 uses 2 MiB), or
//! the cap rounded up to a power of two if larger, and never beyond 128 MiB,
//! libzstd's default limit, which Java consumers keep too. A frame that
//! needs more is refused as corrupt before its window is allocated. A frame
//! that states a content size above the cap is refused at once.

use std::io::Write;
use std::ops::RangeInclusive;

use bytes::Bytes;
use zstd::stream::read::Decoder;
use zstd::stream::write::Encoder;
use zstd::zstd_safe;

use super::{Compression, level_out_of_range, read_capped};
use crate::error::CompressionError;

const CODEC: Compression = Compression::Zstd;

/// The levels of Kafka's `compression.zstd.level` (libzstd's range).
const LEVELS: RangeInclusive<i32> = -131_072..=22;
/// Kafka's default `compression.zstd.level`.
const DEFAULT_LEVEL: i32 = 3;
/// The smallest window limit: 8 MiB.
const MIN_WINDOW_LOG_MAX: u32 = 23;
/// The largest window limit: 128 MiB, libzstd's default.
const MAX_WINDOW_LOG_MAX: u32 = 27;

/// Decompresses zstd frames into at most `cap` bytes.
///
/// Each frame is decoded on its own, so that a frame stating a content size
/// is held to it: a frame that claims more than it holds is corrupt, even
/// between frames that state no size (fuzz findings
/// `empty-frame-with-content-size`, `hollow-frame-before-valid-frame`).
pub(super) fn decompress(input: &Bytes, cap: usize) -> Result<Bytes, CompressionError> {
    let mut frames = Vec::new();
    let mut start = 0;
    while start < input.len() {
        let rest = input.get(start..).unwrap_or_default();
        let len = zstd_safe::find_frame_compressed_size(rest)
            .ok()
            .filter(|len| *len > 0 && *len <= rest.len())
            .ok_or_else(|| CompressionError::Corrupt {
                codec: CODEC,
                reason: format!("no complete zstd frame at byte {start}"),
            })?;
        frames.push(start..start + len);
        start += len;
    }
    match frames.as_slice() {
        [single] if single.len() == input.len() => decompress_frame(input, cap),
        _ => {
            let mut out = Vec::new();
            for range in frames {
                let left = cap.saturating_sub(out.len());
                let frame = decompress_frame(&input.slice(range), left).map_err(|e| match e {
                    CompressionError::TooLarge { .. } => {
                        CompressionError::TooLarge { codec: CODEC, cap }
                    }
                    other => other,
                })?;
                out.extend_from_slice(&frame);
            }
            Ok(Bytes::from(out))
        }
    }
}

/// Decodes exactly one frame into at most `cap` bytes.
fn decompress_frame(frame: &Bytes, cap: usize) -> Result<Bytes, CompressionError> {
    let declared = zstd_safe::get_frame_content_size(frame).ok().flatten();
    if declared.is_some_and(|size| size > u64::try_from(cap).unwrap_or(u64::MAX)) {
        return Err(CompressionError::TooLarge { codec: CODEC, cap });
    }
    let data: &[u8] = frame;
    let mut decoder = Decoder::with_buffer(data).map_err(corrupt)?;
    decoder
        .window_log_max(window_log_max(cap))
        .map_err(corrupt)?;
    let out = read_capped(decoder, CODEC, frame.len(), cap)?;
    if let Some(size) = declared
        && u64::try_from(out.len()).ok() != Some(size)
    {
        return Err(CompressionError::Corrupt {
            codec: CODEC,
            reason: format!(
                "a frame states {size} bytes of content but holds {}",
                out.len()
            ),
        });
    }
    Ok(out)
}

/// The largest window (as a power of two) that the decoder may allocate
/// for output capped at `cap` bytes.
fn window_log_max(cap: usize) -> u32 {
    let cap_log = usize::BITS - cap.saturating_sub(1).leading_zeros();
    cap_log.clamp(MIN_WINDOW_LOG_MAX, MAX_WINDOW_LOG_MAX)
}

/// The libzstd level for a Kafka `compression.zstd.level` (`None`: 3).
pub(super) fn level(level: Option<i32>) -> Result<i32, CompressionError> {
    match level {
        None => Ok(DEFAULT_LEVEL),
        Some(l) if LEVELS.contains(&l) => Ok(l),
        Some(l) => Err(level_out_of_range(CODEC, l, "-131072..=22")),
    }
}

/// Compresses `input` as one zstd frame that states its content size (so
/// that decoders size their window to the data).
pub(super) fn compress(
    input: &[u8],
    level: Option<i32>,
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    let level = self::level(level)?;
    let error = |e: std::io::Error| CompressionError::Compress {
        codec: CODEC,
        reason: e.to_string(),
    };
    let mut encoder = Encoder::new(out, level).map_err(error)?;
    encoder
        .set_pledged_src_size(u64::try_from(input.len()).ok())
        .and_then(|()| encoder.include_contentsize(true))
        .and_then(|()| encoder.write_all(input))
        .map_err(error)?;
    encoder.finish().map_err(error)?;
    Ok(())
}

fn corrupt(e: std::io::Error) -> CompressionError {
    CompressionError::Corrupt {
        codec: CODEC,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::test_data;

    fn zstd(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        compress(data, None, &mut out).unwrap();
        out
    }

    /// A frame of unknown content size, as Java's streaming producer writes.
    fn zstd_streamed(data: &[u8], checksum: bool) -> Vec<u8> {
        let mut encoder = Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_checksum(checksum).unwrap();
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// A frame whose header asks for a window of `2^window_log` bytes and
    /// holds one raw block of one byte.
    fn frame_with_window(window_log: u8) -> Bytes {
        let descriptor = (window_log - 10) << 3;
        Bytes::from(vec![
            0x28, 0xb5, 0x2f, 0xfd, 0x00, descriptor, 0x09, 0x00, 0x00, b'x',
        ])
    }

    #[test]
    fn roundtrip_at_several_sizes() {
        for data in test_data::samples() {
            let out = zstd(&data);
            assert_eq!(
                zstd_safe::get_frame_content_size(&out).unwrap(),
                Some(data.len() as u64)
            );
            assert_eq!(decompress(&Bytes::from(out), data.len()).unwrap(), data);
            let streamed = zstd_streamed(&data, false);
            assert_eq!(
                decompress(&Bytes::from(streamed), data.len()).unwrap(),
                data
            );
        }
    }

    #[test]
    fn roundtrip_at_the_ends_of_the_level_range() {
        let data = test_data::compressible(20_000);
        for l in [-131_072, -1, 0, 1, 19, 22] {
            let mut out = Vec::new();
            compress(&data, Some(l), &mut out).unwrap();
            assert_eq!(
                decompress(&Bytes::from(out), data.len()).unwrap(),
                data,
                "level {l}"
            );
        }
        for l in [23, -131_073, i32::MIN, i32::MAX] {
            let err = level(Some(l)).unwrap_err();
            assert!(err.to_string().contains("-131072..=22"), "{err}");
        }
        assert_eq!(level(None).unwrap(), 3);
    }

    #[test]
    fn reads_concatenated_frames() {
        let mut input = zstd(b"hello, ");
        input.extend(zstd_streamed(b"world", true));
        assert_eq!(
            decompress(&Bytes::from(input), 12).unwrap(),
            &b"hello, world"[..]
        );
    }

    #[test]
    fn a_million_zeros_stop_at_the_cap() {
        let zeros = vec![0; 1 << 20];
        // Refused from the stated content size, and while streaming.
        for input in [zstd(&zeros), zstd_streamed(&zeros, false)] {
            assert!(matches!(
                decompress(&Bytes::from(input), 1000),
                Err(CompressionError::TooLarge {
                    codec: Compression::Zstd,
                    cap: 1000
                })
            ));
        }
    }

    #[test]
    fn the_window_is_limited() {
        assert_eq!(window_log_max(0), 23);
        assert_eq!(window_log_max(1000), 23);
        assert_eq!(window_log_max((16 << 20) + 1), 25);
        assert_eq!(window_log_max(usize::MAX), 27);
        // 8 MiB windows are always allowed.
        assert_eq!(decompress(&frame_with_window(23), 1000).unwrap(), &b"x"[..]);
        // 128 MiB only if the cap is that large, never more.
        assert!(matches!(
            decompress(&frame_with_window(27), 1000),
            Err(CompressionError::Corrupt {
                codec: Compression::Zstd,
                ..
            })
        ));
        assert_eq!(
            decompress(&frame_with_window(27), 128 << 20).unwrap(),
            &b"x"[..]
        );
        assert!(matches!(
            decompress(&frame_with_window(28), usize::MAX),
            Err(CompressionError::Corrupt { .. })
        ));
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let data = test_data::compressible(100_000);
        let good = zstd_streamed(&data, true);
        let mut bad_checksum = good.clone();
        *bad_checksum.last_mut().unwrap() ^= 1;
        let mut bad_magic = good.clone();
        bad_magic[0] ^= 1;
        let cases = vec![
            good[..good.len() / 2].to_vec(),
            good[..3].to_vec(),
            bad_checksum,
            bad_magic,
            b"\x28\xb5\x2f\xfd\x00\x58\x0f\x00\x00".to_vec(), // a reserved block type
        ];
        for input in cases {
            let result = decompress(&Bytes::from(input.clone()), 1 << 20);
            assert!(
                matches!(
                    result,
                    Err(CompressionError::Corrupt {
                        codec: Compression::Zstd,
                        ..
                    })
                ),
                "{:02x?}: {:?}",
                &input[..input.len().min(12)],
                result.map(|out| out.len())
            );
        }
    }

    /// Fuzz finding (fuzz/regressions/decompress_zstd/
    /// empty-frame-with-content-size): a frame header stating 1 byte of
    /// content followed by an empty last block decoded as valid and empty.
    #[test]
    fn frame_claiming_more_content_than_it_holds_is_corrupt() {
        let frame =
            Bytes::from_static(&[0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x00, 0x20, 0x01, 0x00, 0x00]);
        assert!(matches!(
            decompress(&frame, 1 << 20),
            Err(CompressionError::Corrupt { .. })
        ));
    }

    /// Fuzz finding (fuzz/regressions/decompress_zstd/
    /// hollow-frame-before-valid-frame): a frame stating 20000 bytes that
    /// holds none, followed by a frame without a stated size ("hello").
    #[test]
    fn hollow_frame_before_a_valid_frame_is_corrupt() {
        let input = Bytes::from_static(&[
            0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x20, 0x4d, 0x01, 0x00, 0x00, 0x28, 0xb5, 0x2f, 0xfd,
            0x04, 0x58, 0x29, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0xa3, 0x6d, 0x9f, 0x88,
        ]);
        assert!(matches!(
            decompress(&input, 1 << 20),
            Err(CompressionError::Corrupt { .. })
        ));
    }

    #[test]
    fn concatenated_frames_decode_in_order_within_the_cap() {
        let mut input = zstd(b"first ");
        input.extend(zstd_streamed(b"second", false));
        let input = Bytes::from(input);
        assert_eq!(&decompress(&input, 100).unwrap()[..], b"first second");
        assert!(matches!(
            decompress(&input, 8),
            Err(CompressionError::TooLarge { cap: 8, .. })
        ));
    }
}
