//! The slow path's record decoder on uncompressed record bytes.
//!
//! Input: `[record count: i32 big-endian, records...]`. The records are
//! decoded with `record::decode_records` under a batch header carrying that
//! count and iterated to the end, headers included; records that all decode
//! are re-batched with `BatchBuilder` and must come back unchanged.
#![no_main]

use bytes::Bytes;
use kmirror_fuzz::{exercise_records, within_alloc_budget};
use kmirror_protocol::record::{BatchHeader, decode_records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((count, records)) = data.split_first_chunk::<4>() else {
        return;
    };
    let record_count = i32::from_be_bytes(*count);
    let header = BatchHeader {
        base_offset: 1_000,
        batch_length: 0,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: record_count.wrapping_sub(1),
        base_timestamp: 1_700_000_000_000,
        max_timestamp: 1_700_000_000_000,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count,
    };
    within_alloc_budget(data.len(), || {
        if let Ok(iter) = decode_records(Bytes::copy_from_slice(records), &header) {
            exercise_records(iter, &header);
        }
    });
});
