//! The live source's log (BENCH-ONLY): per partition the batches the
//! generator has appended, each whole with its base offset set, the log
//! start and the high-water mark, and a condition variable that wakes the
//! parked fetches on every append. It owns what a Fetch, a ListOffsets and
//! the destination's matching read; it never decides when to answer (that
//! is `fetch.rs`). No retention, no transactions: the last stable offset is
//! the high-water mark.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::Result;

/// One appended batch.
pub(super) struct Entry {
    pub(super) base_offset: i64,
    pub(super) records: i64,
    /// The whole batch as served (base offset set, valid CRC).
    pub(super) bytes: Bytes,
    /// When the high-water mark moved past it (it became fetchable).
    pub(super) appended: Instant,
    /// When a Fetch response carrying it was first written.
    pub(super) served: Option<Instant>,
}

/// One partition of the topic.
pub(super) struct Partition {
    pub(super) log_start: i64,
    pub(super) high_watermark: i64,
    pub(super) entries: Vec<Entry>,
}

impl Partition {
    /// The index of the first entry holding `offset` or a later one.
    pub(super) fn first_at(&self, offset: i64) -> usize {
        self.entries
            .partition_point(|e| e.base_offset + e.records <= offset)
    }
}

/// Everything behind the log's lock.
pub(super) struct State {
    pub(super) partitions: Vec<Partition>,
    /// Partitions some Fetch has asked for (the generator starts once
    /// kmirror fetches all of them).
    pub(super) fetched: Vec<bool>,
}

/// The log and its wake-up.
pub(super) struct SourceLog {
    state: Mutex<State>,
    appended: Condvar,
}

impl SourceLog {
    /// `partitions` empty partitions starting (and ending) at `start`.
    pub(super) fn new(partitions: usize, start: i64) -> Self {
        let partition = || Partition {
            log_start: start,
            high_watermark: start,
            entries: Vec::new(),
        };
        Self {
            state: Mutex::new(State {
                partitions: (0..partitions).map(|_| partition()).collect(),
                fetched: vec![false; partitions],
            }),
            appended: Condvar::new(),
        }
    }

    /// The state (a poisoned lock is taken over: every writer leaves it
    /// consistent between statements).
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits up to `timeout` for the next append.
    pub(super) fn wait<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        self.appended
            .wait_timeout(guard, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Appends `bytes` (a batch of `records` records whose base offset is
    /// already `base_offset`) to `partition`, moves the high-water mark past
    /// it and wakes the parked fetches; returns when it became visible.
    pub(super) fn append(
        &self,
        partition: usize,
        base_offset: i64,
        records: i64,
        bytes: Bytes,
    ) -> Result<Instant> {
        let appended = {
            let mut state = self.lock();
            let p = state
                .partitions
                .get_mut(partition)
                .ok_or_else(|| format!("no partition {partition}"))?;
            if base_offset != p.high_watermark {
                return Err(format!(
                    "partition {partition}: a batch at offset {base_offset} appended at the end {}",
                    p.high_watermark
                )
                .into());
            }
            p.high_watermark = base_offset + records;
            let appended = Instant::now();
            p.entries.push(Entry {
                base_offset,
                records,
                bytes,
                appended,
                served: None,
            });
            appended
        };
        self.appended.notify_all();
        Ok(appended)
    }

    /// ListOffsets: the log start for EARLIEST (-2), the high-water mark
    /// otherwise (LATEST and any timestamp: the bench never asks for one);
    /// -1 for a partition it does not have.
    pub(super) fn list_offset(&self, partition: i32, timestamp: i64) -> i64 {
        let state = self.lock();
        usize::try_from(partition)
            .ok()
            .and_then(|i| state.partitions.get(i))
            .map_or(-1, |p| {
                if timestamp == -2 {
                    p.log_start
                } else {
                    p.high_watermark
                }
            })
    }

    /// The `index`-th batch appended to `partition`: its bytes, append time
    /// and first serve time.
    pub(super) fn entry(
        &self,
        partition: usize,
        index: usize,
    ) -> Option<(Bytes, Instant, Option<Instant>)> {
        let state = self.lock();
        let e = state.partitions.get(partition)?.entries.get(index)?;
        Some((e.bytes.clone(), e.appended, e.served))
    }

    /// Notes `at` as the first serve time of each `(partition, index)`
    /// not served before.
    pub(super) fn mark_served(&self, served: &[(usize, usize)], at: Instant) {
        if served.is_empty() {
            return;
        }
        let mut state = self.lock();
        for &(p, i) in served {
            if let Some(e) = state
                .partitions
                .get_mut(p)
                .and_then(|p| p.entries.get_mut(i))
            {
                e.served.get_or_insert(at);
            }
        }
    }

    /// Whether some Fetch has asked for every partition.
    pub(super) fn all_fetched(&self) -> bool {
        self.lock().fetched.iter().all(|f| *f)
    }

    /// Whether some Fetch has asked for any partition.
    pub(super) fn any_fetched(&self) -> bool {
        self.lock().fetched.iter().any(|f| *f)
    }
}
