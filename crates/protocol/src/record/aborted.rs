//! Filtering the batches of aborted transactions out of a READ_COMMITTED
//! fetch, as Apache Kafka's consumer does.
//!
//! A Fetch response lists, per partition, the aborted transactions that
//! overlap it as `(producerId, firstOffset)`. From its first offset until
//! its ABORT marker, every transactional batch of that producer is aborted.
//! Batches arrive in offset order, so one pass with a small set of active
//! aborted producers decides each batch.

use super::attrs::ControlRecordType;
use super::batch::{BatchHeader, RecordBatchView};

/// Decides, batch by batch in offset order, which batches belong to aborted
/// transactions. One filter serves one partition of one Fetch response.
#[derive(Debug, Clone, Default)]
pub struct AbortedTransactionFilter {
    /// Aborted transactions not yet reached, sorted by first offset
    /// descending so the next one is at the end.
    pending: Vec<(i64, i64)>,
    /// Producers whose aborted transaction is open at the current batch.
    active: Vec<i64>,
}

impl AbortedTransactionFilter {
    /// A filter for the `(producer_id, first_offset)` pairs of a Fetch
    /// response partition.
    pub fn new(aborted: impl IntoIterator<Item = (i64, i64)>) -> Self {
        let mut pending: Vec<(i64, i64)> = aborted.into_iter().collect();
        pending.sort_unstable_by_key(|&(_, first)| std::cmp::Reverse(first));
        Self {
            pending,
            active: Vec::new(),
        }
    }

    /// Whether the filter has nothing to filter.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.active.is_empty()
    }

    /// Whether `batch` belongs to an aborted transaction. Must be called for
    /// every batch of the partition in order, control batches included (an
    /// ABORT marker closes its producer's aborted transaction).
    pub fn is_aborted(&mut self, batch: &RecordBatchView) -> bool {
        let header = batch.header();
        if header.producer_id < 0 || self.is_empty() {
            return false;
        }
        self.reach(header);
        let active = self.active.contains(&header.producer_id);
        if header.is_control() {
            if active && control_type(batch) == Some(ControlRecordType::Abort) {
                self.active.retain(|p| *p != header.producer_id);
            }
            return false;
        }
        active && header.is_transactional()
    }

    /// Activates every aborted transaction that starts at or before the
    /// batch's last offset.
    fn reach(&mut self, header: &BatchHeader) {
        while let Some(&(producer, first)) = self.pending.last() {
            if first > header.last_offset() {
                break;
            }
            self.pending.pop();
            if !self.active.contains(&producer) {
                self.active.push(producer);
            }
        }
    }
}

/// The type of a control batch's (single, uncompressed) control record.
fn control_type(batch: &RecordBatchView) -> Option<ControlRecordType> {
    let record = batch.records(1 << 16).ok()?.next()?.ok()?;
    ControlRecordType::from_key(record.key.as_deref()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::Compression;
    use crate::record::attributes;
    use crate::record::{BatchBuilder, ProduceBatch, ProducerStamp};

    fn batch(base: i64, producer: i64, attrs: i16, key: Option<&[u8]>) -> RecordBatchView {
        let mut b = BatchBuilder::new(Compression::None);
        b.push(0, key, Some(b"v"), std::iter::empty()).unwrap();
        let built = b
            .build(ProducerStamp {
                producer_id: producer,
                producer_epoch: 0,
                base_sequence: 0,
            })
            .unwrap();
        let mut h = built.header();
        h.base_offset = base;
        h.attributes |= attrs;
        RecordBatchView::new(ProduceBatch::seal(h, built.payload().clone()).to_bytes()).unwrap()
    }

    const ABORT: &[u8] = &[0, 0, 0, 0];
    const COMMIT: &[u8] = &[0, 0, 0, 1];
    const TXN: i16 = attributes::TRANSACTIONAL;
    const CTRL: i16 = attributes::TRANSACTIONAL | attributes::CONTROL;

    #[test]
    fn aborted_transaction_is_filtered_until_its_marker() {
        // Producer 7 aborts a transaction at 10..=11 (marker at 12), then
        // commits one at 13 (marker at 14). Producer 8 commits at 11.
        let mut f = AbortedTransactionFilter::new([(7, 10)]);
        assert!(f.is_aborted(&batch(10, 7, TXN, Some(b"k"))));
        assert!(!f.is_aborted(&batch(11, 8, TXN, Some(b"k"))));
        assert!(f.is_aborted(&batch(11, 7, TXN, Some(b"k"))));
        assert!(!f.is_aborted(&batch(12, 7, CTRL, Some(ABORT))));
        assert!(!f.is_aborted(&batch(13, 7, TXN, Some(b"k"))));
        assert!(!f.is_aborted(&batch(14, 7, CTRL, Some(COMMIT))));
    }

    #[test]
    fn non_transactional_batches_of_the_producer_are_kept() {
        let mut f = AbortedTransactionFilter::new([(7, 0)]);
        assert!(!f.is_aborted(&batch(0, 7, 0, Some(b"k"))));
    }

    #[test]
    fn transaction_starting_later_is_not_active_yet() {
        let mut f = AbortedTransactionFilter::new([(7, 50)]);
        assert!(!f.is_aborted(&batch(10, 7, TXN, Some(b"k"))));
        assert!(f.is_aborted(&batch(50, 7, TXN, Some(b"k"))));
    }
}
