//! snappy as Kafka frames it. Java's producer writes the xerial framing of
//! snappy-java's `SnappyOutputStream`:
//!
//! ```text
//! "\x82SNAPPY\0" | version: i32 BE | compatible version: i32 BE
//! then repeated: length: u32 BE | raw snappy block of that length
//! ```
//!
//! librdkafka writes one raw snappy block. Reading detects the framing by its
//! 8-byte magic, as librdkafka and snappy-java do (no raw block can start
//! with it: it would claim 10626 bytes and open with a copy from before the
//! start). Like snappy-java, a magic found where a block length is expected
//! starts a concatenated stream; the version fields are not checked (as in
//! librdkafka).
//!
//! Writing uses the xerial framing with 32 KiB blocks, byte for byte what
//! Java's producer writes (snappy-java's default block size): every Kafka
//! client reads it (snappy-java, librdkafka, Sarama, franz-go), and a Java
//! consumer then decodes it block by block instead of in one piece.
//!
//! A raw block states its decompressed length up front; it is checked
//! against the cap and against the most that the block's size can expand to
//! before anything is allocated, and the output is allocated once, exactly.

use bytes::Bytes;
use snap::raw::{Decoder, Encoder, decompress_len, max_compress_len};

use super::{Compression, no_levels};
use crate::error::CompressionError;

const CODEC: Compression = Compression::Snappy;

/// The first 8 bytes of a xerial stream.
const XERIAL_MAGIC: [u8; 8] = *b"\x82SNAPPY\0";
/// Magic, version and compatible version.
const XERIAL_HEADER_LEN: usize = 16;
/// The version and compatible version that snappy-java writes.
const XERIAL_VERSION: i32 = 1;
/// snappy-java's default block size, which Kafka's producer uses.
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;
/// The most a snappy block can expand: a 3-byte copy produces at most 64
/// bytes (a literal produces no more than it takes), so a valid block never
/// decompresses to more than 64/3 < 22 times its size.
const MAX_EXPANSION: usize = 22;

/// Decompresses raw snappy or a xerial stream into at most `cap` bytes.
pub(super) fn decompress(input: &Bytes, cap: usize) -> Result<Bytes, CompressionError> {
    if input.starts_with(&XERIAL_MAGIC) {
        decompress_xerial(input, cap)
    } else {
        decompress_raw(input, cap)
    }
}

/// Compresses `input` in the xerial framing, 32 KiB per block.
pub(super) fn compress(
    input: &[u8],
    level: Option<i32>,
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    no_levels(CODEC, level)?;
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    let mut encoder = Encoder::new();
    for block in input.chunks(XERIAL_BLOCK_SIZE) {
        let length_at = out.len();
        let data_at = length_at + 4;
        out.resize(data_at + max_compress_len(block.len()), 0);
        let written = out
            .get_mut(data_at..)
            .ok_or_else(|| compress_error("output buffer too small".to_owned()))
            .and_then(|dst| {
                encoder
                    .compress(block, dst)
                    .map_err(|e| compress_error(e.to_string()))
            })?;
        out.truncate(data_at + written);
        let length = u32::try_from(written)
            .map_err(|_| compress_error(format!("block of {written} bytes")))?;
        if let Some(slot) = out.get_mut(length_at..data_at) {
            slot.copy_from_slice(&length.to_be_bytes());
        }
    }
    Ok(())
}

fn compress_error(reason: String) -> CompressionError {
    CompressionError::Compress {
        codec: CODEC,
        reason,
    }
}

fn corrupt(reason: impl ToString) -> CompressionError {
    CompressionError::Corrupt {
        codec: CODEC,
        reason: reason.to_string(),
    }
}

/// Decompresses one raw snappy block.
fn decompress_raw(input: &[u8], cap: usize) -> Result<Bytes, CompressionError> {
    let mut out = vec![0; claimed_len(input, cap, cap)?];
    decode_block(input, &mut out)?;
    Ok(Bytes::from(out))
}

/// Decompresses a xerial stream: first the blocks' claimed lengths are
/// added up and checked, then the output is allocated once and each block
/// decoded into its place.
fn decompress_xerial(input: &[u8], cap: usize) -> Result<Bytes, CompressionError> {
    let mut total: usize = 0;
    for block in XerialBlocks(input) {
        total += claimed_len(block?, cap.saturating_sub(total), cap)?;
    }
    let mut out = vec![0; total];
    let mut rest = out.as_mut_slice();
    for block in XerialBlocks(input) {
        let block = block?;
        let len = claimed_len(block, rest.len(), cap)?;
        let (dst, tail) = rest
            .split_at_mut_checked(len)
            .ok_or_else(|| corrupt("block lengths changed between passes"))?;
        decode_block(block, dst)?;
        rest = tail;
    }
    Ok(Bytes::from(out))
}

/// The decompressed length that a raw block claims, refused if it exceeds
/// `room` (what is left of `cap`) or what the block's size can expand to.
fn claimed_len(block: &[u8], room: usize, cap: usize) -> Result<usize, CompressionError> {
    let len = decompress_len(block).map_err(corrupt)?;
    if len > room {
        return Err(CompressionError::TooLarge { codec: CODEC, cap });
    }
    let most = block.len().saturating_mul(MAX_EXPANSION);
    if len > most {
        return Err(corrupt(format!(
            "a block of {} bytes claims {len} decompressed bytes, more than the {most} it can hold",
            block.len()
        )));
    }
    Ok(len)
}

/// Decodes a raw block into `out`, which has exactly its claimed length.
fn decode_block(block: &[u8], out: &mut [u8]) -> Result<(), CompressionError> {
    let written = Decoder::new().decompress(block, out).map_err(corrupt)?;
    if written == out.len() {
        Ok(())
    } else {
        Err(corrupt(format!(
            "block decompressed to {written} bytes, {} expected",
            out.len()
        )))
    }
}

/// The raw blocks of a xerial stream, skipping its header and the headers of
/// concatenated streams.
struct XerialBlocks<'a>(&'a [u8]);

impl<'a> Iterator for XerialBlocks<'a> {
    type Item = Result<&'a [u8], CompressionError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.0.is_empty() {
                return None;
            }
            if self.0.starts_with(&XERIAL_MAGIC) {
                let Some(rest) = self.0.get(XERIAL_HEADER_LEN..) else {
                    self.0 = &[];
                    return Some(Err(corrupt("truncated xerial header")));
                };
                self.0 = rest;
                continue;
            }
            let block = self.0.split_first_chunk::<4>().and_then(|(len, rest)| {
                let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
                rest.split_at_checked(len)
            });
            return Some(match block {
                Some((block, rest)) => {
                    self.0 = rest;
                    Ok(block)
                }
                None => {
                    self.0 = &[];
                    Err(corrupt(
                        "xerial block length runs past the end of the input",
                    ))
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::test_data;

    fn xerial(data: &[u8]) -> Bytes {
        let mut out = Vec::new();
        compress(data, None, &mut out).unwrap();
        Bytes::from(out)
    }

    fn raw(data: &[u8]) -> Vec<u8> {
        Encoder::new().compress_vec(data).unwrap()
    }

    /// A xerial stream built by hand with blocks of `block_size`.
    fn xerial_by_hand(data: &[u8], block_size: usize) -> Vec<u8> {
        let mut out = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
        for block in data.chunks(block_size) {
            let block = raw(block);
            out.extend_from_slice(&u32::try_from(block.len()).unwrap().to_be_bytes());
            out.extend_from_slice(&block);
        }
        out
    }

    #[test]
    fn roundtrip_at_several_sizes() {
        for data in test_data::samples() {
            let out = xerial(&data);
            assert_eq!(
                out.get(..16),
                Some(&b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01"[..])
            );
            assert_eq!(decompress(&out, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn writes_32_kib_blocks_like_java() {
        let data = test_data::incompressible(100 * 1024);
        let out = xerial(&data);
        assert_eq!(XerialBlocks(&out).count(), 4);
        assert_eq!(out, xerial_by_hand(&data, 32 * 1024));
    }

    #[test]
    fn reads_raw_snappy() {
        for data in test_data::samples() {
            let out = Bytes::from(raw(&data));
            assert_eq!(decompress(&out, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn reads_other_block_sizes_and_concatenated_streams() {
        let data = test_data::compressible(50_000);
        let one = xerial_by_hand(&data, 1000);
        assert_eq!(
            decompress(&Bytes::from(one.clone()), data.len()).unwrap(),
            data
        );
        let mut two = one;
        two.extend(xerial_by_hand(b"tail", 10));
        let mut expected = data.clone();
        expected.extend_from_slice(b"tail");
        assert_eq!(
            decompress(&Bytes::from(two), expected.len()).unwrap(),
            expected
        );
        // A header with no blocks is an empty stream.
        assert!(decompress(&xerial(b""), 0).unwrap().is_empty());
    }

    #[test]
    fn cap_is_enforced_for_both_framings() {
        let zeros = vec![0; 1 << 20];
        for input in [xerial(&zeros), Bytes::from(raw(&zeros))] {
            assert!(matches!(
                decompress(&input, 1000),
                Err(CompressionError::TooLarge {
                    codec: Compression::Snappy,
                    cap: 1000
                })
            ));
            assert_eq!(decompress(&input, zeros.len()).unwrap().len(), zeros.len());
        }
        // Blocks that each fit the cap but not together.
        let input = Bytes::from(xerial_by_hand(&[7; 3000], 1000));
        assert!(matches!(
            decompress(&input, 2999),
            Err(CompressionError::TooLarge { cap: 2999, .. })
        ));
    }

    #[test]
    fn a_claim_of_4_gib_is_refused_before_allocating() {
        // varint 0xFFFF_FFFF, then a literal of one byte.
        let hostile = b"\xff\xff\xff\xff\x0f\x00a";
        assert_eq!(decompress_len(hostile).unwrap(), 0xFFFF_FFFF);
        let input = Bytes::from_static(hostile);
        assert!(matches!(
            decompress(&input, 64 << 20),
            Err(CompressionError::TooLarge { cap, .. }) if cap == 64 << 20
        ));
        // Even with no cap at all, 7 bytes cannot hold 4 GiB.
        assert!(matches!(
            decompress(&input, usize::MAX),
            Err(CompressionError::Corrupt { .. })
        ));
        // The same claim inside a xerial block.
        let mut framed = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01\0\0\0\x07".to_vec();
        framed.extend_from_slice(hostile);
        let framed = Bytes::from(framed);
        assert!(matches!(
            decompress(&framed, 64 << 20),
            Err(CompressionError::TooLarge { .. })
        ));
        assert!(matches!(
            decompress(&framed, usize::MAX),
            Err(CompressionError::Corrupt { .. })
        ));
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let good = xerial_by_hand(&test_data::compressible(5000), 1000);
        let mut long_length = good.clone();
        long_length[19] = 0xff;
        let mut bad_block = good.clone();
        bad_block[22] ^= 0xff;
        let cases: Vec<Vec<u8>> = vec![
            // Truncated header, truncated block, a length past the end.
            b"\x82SNAPPY\0\0\0".to_vec(),
            good[..good.len() - 1].to_vec(),
            long_length,
            bad_block,
            // An empty xerial block, and a dangling length.
            b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01\0\0\0\0".to_vec(),
            b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01\0\0".to_vec(),
            // Raw: a copy from before the start, fewer bytes than claimed,
            // a varint longer than 5 bytes.
            b"\x05\x01\x01".to_vec(),
            b"\x05\x04ab".to_vec(),
            b"\xff\xff\xff\xff\xff\xff\x01".to_vec(),
        ];
        for input in cases {
            let result = decompress(&Bytes::from(input.clone()), 1 << 20);
            assert!(
                matches!(
                    result,
                    Err(CompressionError::Corrupt {
                        codec: Compression::Snappy,
                        ..
                    })
                ),
                "{input:?}: {:?}",
                result.map(|out| out.len())
            );
        }
    }

    #[test]
    fn has_no_levels() {
        let mut out = Vec::new();
        assert!(matches!(
            compress(b"x", Some(1), &mut out),
            Err(CompressionError::Compress {
                codec: Compression::Snappy,
                ..
            })
        ));
    }
}
