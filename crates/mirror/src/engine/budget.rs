//! The memory bound: `buffer.memory` bytes of fetched data may wait for the
//! destination at once; fetching pauses when they are used up.
//!
//! A Fetch response's record bytes stay alive as long as any batch sliced
//! from them waits (passthrough never copies), so the budget charges whole
//! responses: [`MemoryBudget::charge`] takes the bytes, and the returned
//! [`Charge`], shared by every batch of the response, gives them back when
//! its last holder drops it. Backlog size therefore never changes memory
//! use. The slow path charges what it decompresses and builds the same way
//! (`stream/staging.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Bytes of fetched data in use, against a limit.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    released: Notify,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            used: AtomicUsize::new(0),
            released: Notify::new(),
        })
    }

    /// Bytes that may still be fetched (0 when full).
    pub fn available(&self) -> usize {
        self.limit.saturating_sub(self.used.load(Ordering::Acquire))
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes `bytes` (which may overshoot the limit by one response: Kafka
    /// returns a batch larger than the requested size rather than none).
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Arc<Charge> {
        self.used.fetch_add(bytes, Ordering::AcqRel);
        Arc::new(Charge {
            budget: self.clone(),
            bytes,
        })
    }

    /// Resolves after bytes were given back (or at once if some are free
    /// already when polled after a release).
    pub async fn released(&self) {
        self.released.notified().await;
    }
}

/// Bytes taken from a [`MemoryBudget`], given back on drop.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        self.budget.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_is_given_back_when_its_last_holder_drops_it() {
        let budget = MemoryBudget::new(100);
        let charge = budget.charge(70);
        let held_by_a_batch = charge.clone();
        assert_eq!(budget.available(), 30);
        drop(charge);
        assert_eq!(budget.available(), 30);
        drop(held_by_a_batch);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn one_response_may_overshoot_and_then_nothing_is_available() {
        let budget = MemoryBudget::new(100);
        let _big = budget.charge(150);
        assert_eq!(budget.available(), 0);
        assert_eq!(budget.used(), 150);
    }
}
