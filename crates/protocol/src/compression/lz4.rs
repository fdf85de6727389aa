//! lz4 as Kafka frames it: one LZ4 frame (the lz4 "Frame format"), written
//! with 64 KiB independent blocks and no checksums, as Java's
//! `KafkaLZ4BlockOutputStream` does.
//!
//! Reading accepts what Java's `KafkaLZ4BlockInputStream` accepts, which is
//! everything a Kafka broker lets into a log: frame version 01, independent
//! blocks, maximum block sizes 64 KiB to 4 MiB, optional block and content
//! checksums and content size, no dictionary id. This file walks the frame's
//! structure first (header, block lengths), then lz4_flex's
//! `FrameDecoder` decodes that one frame; bytes after its end mark are
//! ignored, as Java does. Its buffers take at most two blocks: 8 MiB.
//!
//! It also owns the KAFKA-3160 quirk: Kafka before 0.10 hashed the magic
//! bytes into the frame header checksum, so magic-0 message sets carry a
//! wrong checksum byte; [`decompress_legacy_v0`] replaces it with the right
//! one before decoding. Hence the small xxHash32 below.

use std::io::{Read, Write};

use bytes::Bytes;
use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

use super::{Compression, level_out_of_range, read_capped};
use crate::error::CompressionError;

const CODEC: Compression = Compression::Lz4;

/// The LZ4 frame magic number, little-endian on the wire.
const MAGIC: [u8; 4] = 0x184D_2204_u32.to_le_bytes();
/// FLG bits 7-6: the frame version, which must be 01.
const FLG_VERSION_MASK: u8 = 0b1100_0000;
const FLG_VERSION_01: u8 = 0b0100_0000;
const FLG_INDEPENDENT_BLOCKS: u8 = 0b0010_0000;
const FLG_BLOCK_CHECKSUMS: u8 = 0b0001_0000;
const FLG_CONTENT_SIZE: u8 = 0b0000_1000;
const FLG_CONTENT_CHECKSUM: u8 = 0b0000_0100;
/// FLG bit 1 is reserved; bit 0 (dictionary id) is reserved for Kafka too.
const FLG_RESERVED: u8 = 0b0000_0011;
/// BD bits 6-4 hold the maximum block size; the others are reserved.
const BD_RESERVED: u8 = 0b1000_1111;
/// Magic, FLG, BD, content size, header checksum.
const MAX_HEADER_LEN: usize = 4 + 2 + 8 + 1;
/// The high bit of a block length marks a block stored uncompressed.
const BLOCK_UNCOMPRESSED: u32 = 0x8000_0000;

/// The levels of Kafka's `compression.lz4.level`.
const LEVELS: std::ops::RangeInclusive<i32> = 1..=17;

/// Decompresses one LZ4 frame into at most `cap` bytes.
pub(super) fn decompress(input: &Bytes, cap: usize) -> Result<Bytes, CompressionError> {
    decode(input, cap, HeaderChecksum::Verify)
}

/// Decompresses one LZ4 frame of a magic-0 message, whatever its header
/// checksum byte holds (KAFKA-3160).
pub(super) fn decompress_legacy_v0(input: &Bytes, cap: usize) -> Result<Bytes, CompressionError> {
    decode(input, cap, HeaderChecksum::Ignore)
}

/// Checks a Kafka `compression.lz4.level`. lz4_flex has a single (fast)
/// level, so a valid level changes nothing.
pub(super) fn level(level: Option<i32>) -> Result<(), CompressionError> {
    match level {
        Some(l) if !LEVELS.contains(&l) => Err(level_out_of_range(
            CODEC,
            l,
            "1..=17 (lz4_flex has one level: the value is not used)",
        )),
        _ => Ok(()),
    }
}

/// Compresses `input` as one LZ4 frame with 64 KiB independent blocks.
pub(super) fn compress(
    input: &[u8],
    level: Option<i32>,
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    self::level(level)?;
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent);
    let mut encoder = FrameEncoder::with_frame_info(info, out);
    let error = |reason: String| CompressionError::Compress {
        codec: CODEC,
        reason,
    };
    encoder.write_all(input).map_err(|e| error(e.to_string()))?;
    encoder.finish().map_err(|e| error(e.to_string()))?;
    Ok(())
}

/// What to do with the frame header checksum.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeaderChecksum {
    /// Refuse a wrong checksum.
    Verify,
    /// Replace it with the right one (magic-0 data, KAFKA-3160).
    Ignore,
}

fn corrupt(reason: impl ToString) -> CompressionError {
    CompressionError::Corrupt {
        codec: CODEC,
        reason: reason.to_string(),
    }
}

fn decode(input: &Bytes, cap: usize, checksum: HeaderChecksum) -> Result<Bytes, CompressionError> {
    let frame = walk_frame(input, checksum)?;
    let body = input
        .get(frame.header_len..frame.len)
        .ok_or_else(|| corrupt("truncated frame"))?;
    let header = frame.header.get(..frame.header_len).unwrap_or_default();
    let decoder = FrameDecoder::new(header.chain(body));
    read_capped(decoder, CODEC, frame.len, cap)
}

/// The first frame of the input, checked as Kafka's Java reader checks it.
struct Frame {
    /// The frame's header with the right header checksum.
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    /// Where the frame ends in the input.
    len: usize,
}

/// Checks the frame header and walks the block lengths to the end mark,
/// without decompressing anything.
fn walk_frame(input: &[u8], checksum: HeaderChecksum) -> Result<Frame, CompressionError> {
    let mut rest = input;
    let magic: [u8; 4] = take_array(&mut rest)?;
    if magic != MAGIC {
        return Err(corrupt(format!("not an LZ4 frame: magic {magic:02x?}")));
    }
    let [flg, bd] = take_array(&mut rest)?;
    if flg & FLG_VERSION_MASK != FLG_VERSION_01 {
        return Err(corrupt(format!(
            "unsupported frame version in FLG {flg:#04x}"
        )));
    }
    if flg & FLG_RESERVED != 0 || bd & BD_RESERVED != 0 {
        return Err(corrupt(format!(
            "reserved bits or a dictionary id set in FLG {flg:#04x} / BD {bd:#04x}"
        )));
    }
    if flg & FLG_INDEPENDENT_BLOCKS == 0 {
        return Err(corrupt(
            "linked blocks: Kafka's lz4 framing has independent blocks",
        ));
    }
    let max_block: usize = match (bd >> 4) & 0x07 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        id => return Err(corrupt(format!("unsupported maximum block size id {id}"))),
    };
    if flg & FLG_CONTENT_SIZE != 0 {
        take(&mut rest, 8)?;
    }
    let descriptor_end = input.len() - rest.len();
    let [stored] = take_array(&mut rest)?;
    let descriptor = input.get(4..descriptor_end).unwrap_or_default();
    let expected = header_checksum(descriptor);
    if checksum == HeaderChecksum::Verify && stored != expected {
        return Err(corrupt(format!(
            "frame header checksum is {stored:#04x}, expected {expected:#04x} \
             (a magic-0 message written before Kafka 0.10 has this fault, KAFKA-3160: \
             read it with decompress_lz4_legacy_v0)"
        )));
    }
    let header_len = descriptor_end + 1;
    let mut header = [0; MAX_HEADER_LEN];
    if let (Some(dst), Some(src)) = (
        header.get_mut(..descriptor_end),
        input.get(..descriptor_end),
    ) {
        dst.copy_from_slice(src);
    }
    if let Some(slot) = header.get_mut(descriptor_end) {
        *slot = expected;
    }

    let block_checksum_len = if flg & FLG_BLOCK_CHECKSUMS != 0 { 4 } else { 0 };
    loop {
        let word = u32::from_le_bytes(take_array(&mut rest)?);
        if word == 0 {
            break;
        }
        let size = usize::try_from(word & !BLOCK_UNCOMPRESSED).map_err(corrupt)?;
        if size > max_block {
            return Err(corrupt(format!(
                "block of {size} bytes exceeds the frame's maximum of {max_block}"
            )));
        }
        take(&mut rest, size + block_checksum_len)?;
    }
    if flg & FLG_CONTENT_CHECKSUM != 0 {
        take(&mut rest, 4)?;
    }
    Ok(Frame {
        header,
        header_len,
        len: input.len() - rest.len(),
    })
}

/// Splits `N` bytes off the front of `rest`.
fn take_array<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], CompressionError> {
    let (head, tail) = rest
        .split_first_chunk::<N>()
        .ok_or_else(|| corrupt("truncated frame"))?;
    *rest = tail;
    Ok(*head)
}

/// Splits `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], CompressionError> {
    let (head, tail) = rest
        .split_at_checked(n)
        .ok_or_else(|| corrupt("truncated frame"))?;
    *rest = tail;
    Ok(head)
}

/// The frame header checksum: the second byte of the xxHash32 of the frame
/// descriptor (FLG through the optional fields; not the magic).
fn header_checksum(descriptor: &[u8]) -> u8 {
    let [_, byte, _, _] = xxh32(descriptor, 0).to_le_bytes();
    byte
}

const PRIME1: u32 = 0x9E37_79B1;
const PRIME2: u32 = 0x85EB_CA77;
const PRIME3: u32 = 0xC2B2_AE3D;
const PRIME4: u32 = 0x27D4_EB2F;
const PRIME5: u32 = 0x1656_67B1;

/// xxHash32 (the hash the LZ4 frame format uses for its checksums).
fn xxh32(data: &[u8], seed: u32) -> u32 {
    fn round(acc: u32, lane: [u8; 4]) -> u32 {
        acc.wrapping_add(u32::from_le_bytes(lane).wrapping_mul(PRIME2))
            .rotate_left(13)
            .wrapping_mul(PRIME1)
    }

    let (stripes, tail) = data.as_chunks::<16>();
    let mut hash = if stripes.is_empty() {
        seed.wrapping_add(PRIME5)
    } else {
        let mut acc = [
            seed.wrapping_add(PRIME1).wrapping_add(PRIME2),
            seed.wrapping_add(PRIME2),
            seed,
            seed.wrapping_sub(PRIME1),
        ];
        for stripe in stripes {
            for (acc, lane) in acc.iter_mut().zip(stripe.as_chunks::<4>().0) {
                *acc = round(*acc, *lane);
            }
        }
        let [a, b, c, d] = acc;
        a.rotate_left(1)
            .wrapping_add(b.rotate_left(7))
            .wrapping_add(c.rotate_left(12))
            .wrapping_add(d.rotate_left(18))
    };
    // The length modulo 2^32, as the reference implementation adds it.
    hash = hash.wrapping_add(data.len() as u32);
    let (words, bytes) = tail.as_chunks::<4>();
    for word in words {
        hash = hash
            .wrapping_add(u32::from_le_bytes(*word).wrapping_mul(PRIME3))
            .rotate_left(17)
            .wrapping_mul(PRIME4);
    }
    for &byte in bytes {
        hash = hash
            .wrapping_add(u32::from(byte).wrapping_mul(PRIME5))
            .rotate_left(11)
            .wrapping_mul(PRIME1);
    }
    hash ^= hash >> 15;
    hash = hash.wrapping_mul(PRIME2);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(PRIME3);
    hash ^ (hash >> 16)
}

/// Test support: rewrites a frame's header checksum the way Kafka before
/// 0.10 computed it (KAFKA-3160: hashing from the magic bytes through BD).
#[cfg(test)]
pub(crate) fn with_kafka_3160_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    let broken = (xxh32(&frame[..6], 0) >> 8) as u8;
    assert_ne!(broken, frame[6], "pick data whose two checksums differ");
    frame[6] = broken;
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::test_data;

    fn lz4(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        compress(data, None, &mut out).unwrap();
        out
    }

    /// A frame written by lz4_flex with other settings than Kafka's.
    fn lz4_with(info: FrameInfo, data: &[u8]) -> Vec<u8> {
        let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn xxh32_matches_the_reference() {
        assert_eq!(xxh32(b"", 0), 0x02CC_5D05);
        assert_eq!(xxh32(b"abc", 0), 0x32D1_53FF);
        // lz4_flex's content checksum is the xxHash32 of the content.
        for len in (0..70).chain([1000, 4099]) {
            let data = test_data::incompressible(len);
            let frame = lz4_with(FrameInfo::new().content_checksum(true), &data);
            let stored = u32::from_le_bytes(frame[frame.len() - 4..].try_into().unwrap());
            assert_eq!(xxh32(&data, 0), stored, "length {len}");
        }
    }

    #[test]
    fn roundtrip_at_several_sizes_with_kafkas_framing() {
        for data in test_data::samples() {
            let out = lz4(&data);
            // Magic; FLG: version 01, independent blocks; BD: 64 KiB.
            assert_eq!(out[..6], [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40]);
            let back = decompress(&Bytes::from(out), data.len()).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn levels_are_accepted_and_ignored() {
        let data = test_data::compressible(10_000);
        for l in [1, 9, 17] {
            let mut out = Vec::new();
            compress(&data, Some(l), &mut out).unwrap();
            assert_eq!(out, lz4(&data));
        }
        for l in [0, 18, -1] {
            let err = level(Some(l)).unwrap_err();
            assert!(err.to_string().contains("1..=17"), "{err}");
        }
    }

    #[test]
    fn reads_frames_from_other_producers() {
        let data = test_data::compressible(300_000);
        let infos = [
            FrameInfo::new().block_size(BlockSize::Max4MB),
            FrameInfo::new()
                .block_size(BlockSize::Max256KB)
                .block_checksums(true),
            FrameInfo::new()
                .content_checksum(true)
                .content_size(Some(300_000)),
        ];
        for info in infos {
            let frame = Bytes::from(lz4_with(info, &data));
            assert_eq!(decompress(&frame, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn kafka_3160_checksum_needs_the_legacy_reader() {
        let data = test_data::compressible(70_000);
        let legacy = Bytes::from(with_kafka_3160_checksum(lz4(&data)));
        let err = decompress(&legacy, 1 << 20).unwrap_err();
        assert!(matches!(err, CompressionError::Corrupt { .. }));
        assert!(err.to_string().contains("KAFKA-3160"), "{err}");
        assert_eq!(decompress_legacy_v0(&legacy, 1 << 20).unwrap(), data);
        // The legacy reader also takes a right checksum, and a content size.
        let right = Bytes::from(lz4(&data));
        assert_eq!(decompress_legacy_v0(&right, 1 << 20).unwrap(), data);
        let sized = lz4_with(FrameInfo::new().content_size(Some(70_000)), &data);
        let mut sized_broken = sized.clone();
        sized_broken[14] ^= 0xff;
        assert_eq!(
            decompress_legacy_v0(&Bytes::from(sized_broken), 1 << 20).unwrap(),
            data
        );
        // And the cap holds there too.
        assert!(matches!(
            decompress_legacy_v0(&legacy, 1000),
            Err(CompressionError::TooLarge {
                codec: Compression::Lz4,
                cap: 1000
            })
        ));
    }

    #[test]
    fn a_million_zeros_stop_at_the_cap() {
        let input = Bytes::from(lz4(&vec![0; 1 << 20]));
        assert!(matches!(
            decompress(&input, 1000),
            Err(CompressionError::TooLarge {
                codec: Compression::Lz4,
                cap: 1000
            })
        ));
    }

    #[test]
    fn bytes_after_the_frame_are_ignored() {
        let mut input = lz4(b"hello");
        input.extend_from_slice(b"trailing");
        assert_eq!(decompress(&Bytes::from(input), 5).unwrap(), &b"hello"[..]);
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let data = test_data::compressible(200_000);
        let good = lz4(&data);
        let edit = |at: usize, value: u8| {
            let mut bad = good.clone();
            bad[at] = value;
            bad
        };
        let checksummed = lz4_with(FrameInfo::new().content_checksum(true), &data);
        let mut bad_content_checksum = checksummed.clone();
        *bad_content_checksum.last_mut().unwrap() ^= 1;
        // A block whose first match copies from before the start.
        let mut bad_block = good[..7].to_vec();
        bad_block.extend_from_slice(&[3, 0, 0, 0, 0x0f, 0xff, 0xff, 0, 0, 0, 0]);
        let linked = lz4_with(FrameInfo::new().block_mode(BlockMode::Linked), &data);
        let legacy_format = b"\x02\x21\x4c\x18\x00\x00\x00\x00".to_vec();
        let cases = vec![
            good[..3].to_vec(),
            good[..6].to_vec(),
            good[..good.len() - 1].to_vec(),
            edit(0, 0x05),
            edit(4, 0x80),  // version 10
            edit(4, 0x61),  // dictionary id
            edit(5, 0x30),  // block size id 3
            edit(5, 0x41),  // reserved BD bit
            edit(10, 0x7f), // block length beyond 64 KiB
            bad_block,
            bad_content_checksum,
            linked,
            legacy_format,
        ];
        for input in cases {
            for read in [decompress, decompress_legacy_v0] {
                let result = read(&Bytes::from(input.clone()), 1 << 20);
                assert!(
                    matches!(
                        result,
                        Err(CompressionError::Corrupt {
                            codec: Compression::Lz4,
                            ..
                        })
                    ),
                    "{:02x?}: {:?}",
                    &input[..input.len().min(12)],
                    result.map(|out| out.len())
                );
            }
        }
    }
}
