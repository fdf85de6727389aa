//! Giving partitions up when the group moves them to another member.
//!
//! A partition is given up only after fetching for it stopped, the
//! batches made from what was already fetched were acknowledged by the
//! destination (or the drain timeout passed) and its offset was
//! committed: its new owner starts exactly where kmirror's acknowledged
//! records end, so a rebalance loses nothing and copies nothing again
//! (beyond what a timeout leaves unacknowledged). Data fetched for it
//! after the revocation is dropped, not written.

use super::*;

/// Partitions being given up.
pub(super) struct Revocation {
    partitions: BTreeSet<TopicPartition>,
    commit: bool,
    /// Until when their batches are waited for.
    drain_deadline: Instant,
    /// Until when their commit is retried.
    commit_deadline: Instant,
    done: Option<oneshot::Sender<()>>,
}

impl Revocation {
    /// The next time the stream must look at this revocation.
    pub(super) fn deadline(&self) -> Instant {
        if Instant::now() < self.drain_deadline {
            self.drain_deadline
        } else {
            self.commit_deadline
        }
    }
}

/// How long a revocation waits for its partitions' batches to be
/// acknowledged: the group's rebalance timeout (`max.poll.interval.ms`),
/// less the time its commit may take and a margin, as Java's consumer may
/// spend up to that timeout in its revocation callback (MirrorMaker 1
/// flushes its producer there, without a bound). At least the drain
/// timeout of a stop. Giving up earlier would commit less than was on its
/// way and copy the rest again.
pub(crate) fn drain_timeout(config: &MirrorConfig) -> Duration {
    config
        .fetch
        .membership
        .max_poll_interval
        .saturating_sub(FINAL_COMMIT_TIMEOUT + Duration::from_secs(5))
        .max(config.drain_timeout)
}

impl Stream {
    /// Starts giving `partitions` up (those this stream holds).
    pub(super) fn revoke(
        &mut self,
        partitions: BTreeSet<TopicPartition>,
        commit: bool,
        done: oneshot::Sender<()>,
    ) {
        for tp in &partitions {
            if let Some(slot) = self.slots.get_mut(tp) {
                slot.revoked = true;
            }
        }
        if !commit {
            // The membership is lost: their new owner may already copy
            // them. What was not written yet is not written.
            self.drop_unwritten(&partitions);
        }
        let now = Instant::now();
        let drain_deadline = now
            + if commit {
                drain_timeout(&self.ctx.config)
            } else {
                Duration::ZERO
            };
        tracing::debug!(
            stream = self.index,
            partitions = partitions.len(),
            commit,
            "giving partitions up"
        );
        self.revocations.push(Revocation {
            partitions,
            commit,
            drain_deadline,
            commit_deadline: drain_deadline + FINAL_COMMIT_TIMEOUT,
            done: Some(done),
        });
    }

    /// Finishes every revocation whose partitions are drained and
    /// committed (or out of time).
    pub(super) fn progress_revocations(&mut self) {
        if self.revocations.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut finished = Vec::new();
        let mut commit_wanted = false;
        for (index, r) in self.revocations.iter().enumerate() {
            let drained = r.partitions.iter().all(|tp| {
                self.slots
                    .get(tp)
                    .is_none_or(|s| !s.fetching && s.staged.is_empty() && s.ledger.is_settled())
            });
            if !drained && now < r.drain_deadline {
                continue;
            }
            let due = r.commit
                && r.partitions.iter().any(|tp| {
                    self.slots
                        .get(tp)
                        .is_some_and(|s| s.ledger.commit_due().is_some())
                });
            if due && now < r.commit_deadline {
                commit_wanted = true;
                continue;
            }
            if !drained {
                tracing::warn!(
                    stream = self.index,
                    partitions = r.partitions.len(),
                    "drain timeout while giving partitions up: committed what the destination acknowledged; their new owner copies the rest again"
                );
            }
            if due {
                tracing::warn!(
                    stream = self.index,
                    partitions = r.partitions.len(),
                    "the commit of partitions given up did not succeed in time: their new owner copies again from the offsets committed last (duplicates, no loss)"
                );
            }
            finished.push(index);
        }
        if commit_wanted && self.commit_retry.at.is_none() {
            self.start_commit();
        }
        for index in finished.into_iter().rev() {
            let mut r = self.revocations.remove(index);
            self.drop_unwritten(&r.partitions);
            for tp in &r.partitions {
                if let Some(slot) = self.slots.remove(tp) {
                    let mut ledger = slot.ledger;
                    ledger.reset(slot.position);
                    self.retired.insert(tp.clone(), ledger);
                    self.ctx.metrics.forget_progress(&tp.0, tp.1);
                }
            }
            if let Some(done) = r.done.take() {
                let _ = done.send(());
            }
        }
    }

    /// Drops the batches of `partitions` not yet written to the
    /// destination, and their staged steps. Batches written keep their
    /// place: they hold sequence numbers the ones behind them follow.
    fn drop_unwritten(&mut self, partitions: &BTreeSet<TopicPartition>) {
        for q in self.queues.values_mut() {
            q.pending
                .retain(|b| b.stamped.is_some() || !partitions.contains(&b.source));
        }
        for tp in partitions {
            if let Some(slot) = self.slots.get_mut(tp) {
                slot.staged.clear();
            }
        }
    }
}
