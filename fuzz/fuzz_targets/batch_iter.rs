//! The fast path over one partition's fetched record bytes.
//!
//! Input: the record bytes of a Fetch response partition. Every entry is
//! cut out with `RecordBatches`; each v2 batch has its header read, its CRC
//! checked, is run through the aborted-transaction filter, classified under
//! several policies, rewritten for produce and has its records decoded
//! (1 MiB cap) down to their headers; each v0/v1 entry is read with
//! `read_legacy_entry` (1 MiB cap) and up-converted. See
//! `kmirror_fuzz::exercise_log_entries` for the invariants checked.
#![no_main]

use bytes::Bytes;
use kmirror_fuzz::{aborted_list_of, exercise_log_entries, within_alloc_budget};
use kmirror_protocol::record::AbortedTransactionFilter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    within_alloc_budget(data.len(), || {
        let records = Bytes::copy_from_slice(data);
        let mut filter = AbortedTransactionFilter::new(aborted_list_of(&records));
        exercise_log_entries(&records, &mut filter);
    });
});
