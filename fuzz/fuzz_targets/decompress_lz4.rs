//! The lz4 decompressor on arbitrary bytes.
//!
//! Input: a lz4 payload as found in a batch. `compression::decompress` with a
//! 1 MiB cap must never panic nor exceed the cap, and the cap must be exact
//! (the output's length suffices, one byte less does not). The input is then
//! compressed and decompressed again and must round-trip.
//! Also runs `decompress_lz4_legacy_v0` (the broken LZ4 framing of magic 0
//! messages) on the same input.
#![no_main]

use kmirror_fuzz::{fuzz_decompress, within_alloc_budget};
use kmirror_protocol::compression::Compression;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    within_alloc_budget(data.len(), || fuzz_decompress(Compression::Lz4, data));
});
