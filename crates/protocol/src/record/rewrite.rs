//! The passthrough rewrite: a fetched batch becomes a batch a broker accepts
//! from a client, by replacing its 61-byte header and nothing else.
//!
//! The new header has `baseOffset = 0`, `partitionLeaderEpoch = -1`, the
//! transactional and delete-horizon bits cleared, kmirror's own producer id,
//! epoch and sequence, and a CRC for the new header fields and the untouched
//! payload. The payload is never copied: a [`ProduceBatch`] holds it as the
//! same slice of the fetched buffer. [`rewrite_verified`] reads it once to
//! check the source CRC; [`rewrite_for_produce`] does not read it at all
//! and carries the source CRC over to the new header.

use bytes::{BufMut, Bytes, BytesMut};

use super::attrs::attributes;
use super::batch::{BATCH_HEADER_LEN, BatchHeader, CRC_START, RecordBatchView};
use super::crc::CrcShift;
use crate::error::RecordError;

/// The idempotent-producer fields stamped into every batch kmirror sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerStamp {
    /// Producer id from the destination's InitProducerId, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the batch's first record in this partition, or -1.
    pub base_sequence: i32,
}

impl ProducerStamp {
    /// No idempotence: -1 / -1 / -1.
    pub const NONE: ProducerStamp = ProducerStamp {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

/// A batch ready to be produced, in two parts: a header built by kmirror and
/// a payload that is either a slice of a fetched buffer (passthrough) or a
/// buffer the slow path built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceBatch {
    header: [u8; BATCH_HEADER_LEN],
    payload: Bytes,
}

impl ProduceBatch {
    /// Assembles a batch from a header (whose length and CRC fields are
    /// recomputed here) and its payload.
    pub(crate) fn seal(mut header: BatchHeader, payload: Bytes) -> Self {
        header.batch_length = batch_length(&payload);
        let raw = header.encode();
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(raw.get(CRC_START..).unwrap_or_default()),
            &payload,
        );
        Self::with_crc(raw, payload, crc)
    }

    /// The batch with its CRC field set.
    fn with_crc(mut raw: [u8; BATCH_HEADER_LEN], payload: Bytes, crc: u32) -> Self {
        if let Some(field) = raw.get_mut(17..21) {
            field.copy_from_slice(&crc.to_be_bytes());
        }
        Self {
            header: raw,
            payload,
        }
    }

    /// The same batch stamped with other producer fields (after an epoch
    /// bump, or a slow-path batch built before its sequence was known).
    /// The payload is shared, not copied, and not read: the CRC is updated
    /// from the changed header fields alone ([`carry_crc`]).
    pub fn restamp(&self, stamp: ProducerStamp) -> Self {
        let mut header = self.header();
        header.producer_id = stamp.producer_id;
        header.producer_epoch = stamp.producer_epoch;
        header.base_sequence = stamp.base_sequence;
        let raw = header.encode();
        let crc = carry_crc(&self.header, &raw, self.payload.len());
        Self::with_crc(raw, self.payload.clone(), crc)
    }

    /// The 61 header bytes.
    pub fn header_bytes(&self) -> &[u8; BATCH_HEADER_LEN] {
        &self.header
    }

    /// The decoded header.
    pub fn header(&self) -> BatchHeader {
        BatchHeader::decode(&self.header)
    }

    /// The payload (records, compressed if a codec is set).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Total encoded size.
    pub fn len(&self) -> usize {
        BATCH_HEADER_LEN + self.payload.len()
    }

    /// Always false: a batch has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The batch as one contiguous buffer. This copies the payload: for
    /// tests, the checker and the slow path only, never the hot path.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len());
        out.put_slice(&self.header);
        out.put_slice(&self.payload);
        out.freeze()
    }
}

/// Rewrites a fetched batch for re-produce (see the module documentation).
///
/// The caller decides with [`super::classify()`] that the batch qualifies;
/// this function only replaces header fields. It does not read the payload:
/// the new CRC is the fetched batch's stored CRC updated for the changed
/// header fields ([`carry_crc`]), so it is valid exactly when the stored one
/// was. A batch corrupted in transit or on the source's disk stays
/// detectably corrupt, and a broker refuses it (`CORRUPT_MESSAGE`) instead
/// of storing it. To find the corruption before sending, use
/// [`rewrite_verified`] (one CRC-32C pass over the payload).
pub fn rewrite_for_produce(view: &RecordBatchView, stamp: ProducerStamp) -> ProduceBatch {
    let payload = view.payload();
    let mut header = produce_header(view, stamp);
    header.batch_length = batch_length(&payload);
    let raw = header.encode();
    let old = view.as_bytes().get(..BATCH_HEADER_LEN).unwrap_or_default();
    let crc = carry_crc(old, &raw, payload.len());
    ProduceBatch::with_crc(raw, payload, crc)
}

/// The CRC-32C of a batch whose CRC-covered header fields changed from
/// `old` to `new` (whole 61-byte headers; `old` carries the stored CRC)
/// in front of the same `payload_len` bytes, without reading them.
///
/// CRC-32C is affine: `crc(a ‖ p) = shift_p(crc(a)) ^ crc(p)`, so for
/// headers `a` and `a'` of equal length,
/// `crc(a' ‖ p) = crc(a ‖ p) ^ shift_p(crc(a') ^ crc(a))`.
fn carry_crc(old: &[u8], new: &[u8; BATCH_HEADER_LEN], payload_len: usize) -> u32 {
    let stored = old
        .get(17..21)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes);
    let old_fields = old.get(CRC_START..BATCH_HEADER_LEN).unwrap_or_default();
    let new_fields = new.get(CRC_START..).unwrap_or_default();
    let delta = crc32c::crc32c(old_fields) ^ crc32c::crc32c(new_fields);
    stored ^ CrcShift::over(payload_len).scale(delta)
}

/// [`rewrite_for_produce`] that also checks the fetched batch's CRC, in the
/// same single pass over the payload: the CRC-32C of the payload is
/// computed once and combined with the old header fields (to check the
/// source CRC) and with the new ones (to seal the rewritten batch).
///
/// Use it whenever the source CRC was not checked yet: a rewrite computes a
/// fresh, valid CRC, so a payload corrupted in transit or on the source's
/// disk would otherwise reach the destination looking sound.
pub fn rewrite_verified(
    view: &RecordBatchView,
    stamp: ProducerStamp,
) -> Result<ProduceBatch, RecordError> {
    let payload = view.payload();
    // One pass over the payload; both CRCs come from it.
    let payload_crc = crc32c::crc32c(&payload);
    let shift = CrcShift::over(payload.len());
    let old_fields = view
        .as_bytes()
        .get(CRC_START..BATCH_HEADER_LEN)
        .unwrap_or_default();
    let computed = shift.combine(crc32c::crc32c(old_fields), payload_crc);
    let header = view.header();
    if computed != header.crc {
        return Err(RecordError::CrcMismatch {
            base_offset: header.base_offset,
            stored: header.crc,
            computed,
        });
    }
    let mut new_header = produce_header(view, stamp);
    new_header.batch_length = batch_length(&payload);
    let raw = new_header.encode();
    let crc = shift.combine(
        crc32c::crc32c(raw.get(CRC_START..).unwrap_or_default()),
        payload_crc,
    );
    Ok(ProduceBatch::with_crc(raw, payload, crc))
}

/// `batchLength` of a batch with `payload`.
fn batch_length(payload: &Bytes) -> i32 {
    let body_len = BATCH_HEADER_LEN - super::LOG_OVERHEAD + payload.len();
    i32::try_from(body_len).unwrap_or(i32::MAX)
}

/// The header a rewritten batch gets (see the module documentation).
fn produce_header(view: &RecordBatchView, stamp: ProducerStamp) -> BatchHeader {
    let mut header = *view.header();
    header.base_offset = 0;
    header.partition_leader_epoch = -1;
    header.attributes &= !(attributes::TRANSACTIONAL | attributes::DELETE_HORIZON);
    header.producer_id = stamp.producer_id;
    header.producer_epoch = stamp.producer_epoch;
    header.base_sequence = stamp.base_sequence;
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::Compression;
    use crate::record::BatchBuilder;

    fn fetched_batch() -> Bytes {
        let mut b = BatchBuilder::new(Compression::None);
        b.push(7, Some(b"k"), Some(b"v"), std::iter::empty())
            .unwrap();
        b.push(9, None, Some(b"w"), std::iter::empty()).unwrap();
        let built = b
            .build(ProducerStamp {
                producer_id: 4242,
                producer_epoch: 3,
                base_sequence: 17,
            })
            .unwrap();
        // Make it look like a batch read from a source log.
        let mut h = built.header();
        h.base_offset = 1_000;
        h.partition_leader_epoch = 12;
        h.attributes |= attributes::TRANSACTIONAL | attributes::DELETE_HORIZON;
        ProduceBatch::seal(h, built.payload().clone()).to_bytes()
    }

    #[test]
    fn rewrite_sets_every_field_kafka_requires_and_keeps_the_rest() {
        let view = RecordBatchView::new(fetched_batch()).unwrap();
        let stamp = ProducerStamp {
            producer_id: 9,
            producer_epoch: 0,
            base_sequence: 100,
        };
        let out = rewrite_for_produce(&view, stamp);
        let h = out.header();
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.partition_leader_epoch, -1);
        assert!(!h.is_transactional());
        assert!(!h.has_delete_horizon());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (9, 0, 100)
        );
        let src = view.header();
        assert_eq!(h.record_count, src.record_count);
        assert_eq!(h.last_offset_delta, src.last_offset_delta);
        assert_eq!(h.base_timestamp, src.base_timestamp);
        assert_eq!(h.max_timestamp, src.max_timestamp);
        assert_eq!(h.batch_length, src.batch_length);
        // The CRC is valid over the rewritten batch.
        RecordBatchView::new(out.to_bytes())
            .unwrap()
            .verify_crc()
            .unwrap();
    }

    #[test]
    fn rewrite_never_copies_the_payload() {
        let fetched = fetched_batch();
        let view = RecordBatchView::new(fetched.clone()).unwrap();
        let out = rewrite_for_produce(&view, ProducerStamp::NONE);
        assert_eq!(out.payload().as_ptr(), fetched[BATCH_HEADER_LEN..].as_ptr());
        assert_eq!(out.payload().len(), fetched.len() - BATCH_HEADER_LEN);
    }

    #[test]
    fn verified_rewrite_equals_the_plain_rewrite_and_catches_corruption() {
        let fetched = fetched_batch();
        let view = RecordBatchView::new(fetched.clone()).unwrap();
        let stamp = ProducerStamp {
            producer_id: 3,
            producer_epoch: 1,
            base_sequence: 7,
        };
        assert_eq!(
            rewrite_verified(&view, stamp).unwrap(),
            rewrite_for_produce(&view, stamp)
        );

        let mut corrupt = fetched.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x01;
        let view = RecordBatchView::new(Bytes::from(corrupt)).unwrap();
        assert!(matches!(
            rewrite_verified(&view, stamp),
            Err(RecordError::CrcMismatch {
                base_offset: 1_000,
                ..
            })
        ));
    }

    #[test]
    fn a_carried_crc_keeps_a_corrupt_batch_detectably_corrupt() {
        let mut corrupt = fetched_batch().to_vec();
        let middle = BATCH_HEADER_LEN + (corrupt.len() - BATCH_HEADER_LEN) / 2;
        corrupt[middle] ^= 0x20;
        let view = RecordBatchView::new(Bytes::from(corrupt)).unwrap();
        assert!(view.verify_crc().is_err());
        let stamp = ProducerStamp {
            producer_id: 1,
            producer_epoch: 0,
            base_sequence: 0,
        };
        let out = rewrite_for_produce(&view, stamp);
        let sent = RecordBatchView::new(out.to_bytes()).unwrap();
        assert!(sent.verify_crc().is_err());
        // Restamping neither repairs it.
        let again = RecordBatchView::new(out.restamp(ProducerStamp::NONE).to_bytes()).unwrap();
        assert!(again.verify_crc().is_err());
    }

    #[test]
    fn restamp_changes_only_the_producer_fields_and_keeps_a_valid_crc() {
        let view = RecordBatchView::new(fetched_batch()).unwrap();
        let first = rewrite_for_produce(&view, ProducerStamp::NONE);
        let stamp = ProducerStamp {
            producer_id: 77,
            producer_epoch: 2,
            base_sequence: 40,
        };
        let again = first.restamp(stamp);
        assert_eq!(again, rewrite_for_produce(&view, stamp));
        assert_eq!(again.payload().as_ptr(), first.payload().as_ptr());
        RecordBatchView::new(again.to_bytes())
            .unwrap()
            .verify_crc()
            .unwrap();
    }
}
