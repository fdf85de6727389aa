//! Offset commits: what every partition's ledger allows, to the source
//! group, as kmirror's member.

use super::*;
use crate::engine::internal_topic;

/// The longest wait before a failed commit is tried again.
const COMMIT_RETRY_MAX: Duration = Duration::from_secs(5);

/// How often a partition's offset map account is written again when
/// nothing new was written for it (a quiet partition), so that the map
/// topic's retention never removes the account of a partition that is
/// still mirrored.
const MAP_REFRESH: Duration = Duration::from_secs(3_600);

impl Stream {
    pub(super) fn start_commit(&mut self) {
        if self.commit_busy {
            return;
        }
        let offsets: Vec<(TopicPartition, i64)> = self
            .slots
            .iter()
            .filter_map(|(k, s)| s.ledger.commit_due().map(|o| (k.clone(), o)))
            .collect();
        let now = Instant::now();
        let refresh: Vec<(TopicPartition, i64)> = self
            .slots
            .iter()
            .filter(|(k, s)| {
                s.map.is_some()
                    && now.duration_since(s.map_refreshed) > MAP_REFRESH
                    && !offsets.iter().any(|(o, _)| o == *k)
            })
            .map(|(k, s)| (k.clone(), s.ledger.committable()))
            .collect();
        if offsets.is_empty() && refresh.is_empty() {
            return;
        }
        let member = self.ctx.membership.borrow().clone();
        if member.is_none() && !self.stopping && !offsets.is_empty() {
            tracing::debug!("not committing while kmirror (re)joins its group");
            self.commit_failed();
            return;
        }
        if member.is_none() {
            // Stopping while the membership is missing (the group task
            // rejoins): a standalone commit (generation -1), which the
            // coordinator takes once the group is empty; refused while a
            // member holds it, and then tried again (the membership may
            // be back by then) until the final commit's deadline.
            tracing::debug!(
                stream = self.index,
                "final commit while kmirror rejoins its group: trying a standalone commit"
            );
        }
        self.commit_busy = true;
        // The epoch of the last batch fetched, committed with each offset:
        // after a restart the first Fetch sends it, so that a truncation
        // of the log below the committed offset is found (KIP-320). It may
        // be newer than the committed record's: the leader's end offset
        // for it is still at or above the offset unless the log diverged.
        let epochs: BTreeMap<TopicPartition, i32> = offsets
            .iter()
            .filter_map(|(k, _)| Some((k.clone(), self.slots.get(k)?.last_fetched_epoch)))
            .collect();
        // Where the records below each offset landed goes to the offset
        // map first: a committed offset always has its mapping.
        let flushes: Vec<(TopicPartition, MapFlush)> = offsets
            .iter()
            // A commit always writes the session's record (also when it
            // retries one that failed): the map orders sessions by their
            // last record, so the committing session is the latest.
            .map(|(k, o)| (k, o, true))
            .chain(refresh.iter().map(|(k, o)| (k, o, true)))
            .filter_map(|(k, o, force)| {
                let flush = self
                    .slots
                    .get(k)?
                    .map
                    .as_ref()?
                    .flush(&k.0, k.1, *o, force)?;
                Some((k.clone(), flush))
            })
            .collect();
        let mut map_records = Vec::new();
        for record in flushes.iter().flat_map(|(_, f)| &f.records) {
            match record.encode_key() {
                Ok(key) => map_records.push((key, record.encode_value())),
                Err(e) => {
                    self.commit_busy = false;
                    self.fail(MirrorError::Internal(format!("offset map: {e}")));
                    return;
                }
            }
        }
        let map_topic = self.ctx.config.offset_map_topic.clone();
        let destination = self.ctx.destination.clone();
        let cluster = self.ctx.source.clone();
        let group = self.ctx.config.fetch.group_id.clone();
        self.control.spawn(async move {
            if let Some(topic) = map_topic.filter(|_| !map_records.is_empty())
                && let Err(e) =
                    internal_topic::append(&destination, &topic, &map_records, now_ms()).await
            {
                tracing::warn!(topic, error = %e, "cannot write the offset map; the commit waits for it");
                return ControlDone::Commit(offsets, Vec::new(), Err(e));
            }
            if offsets.is_empty() {
                return ControlDone::Commit(offsets, flushes, Ok(Vec::new()));
            }
            let member = member
                .as_ref()
                .map(|m| (m.generation, m.member_id.as_str()));
            let result = admin::commit_offsets(&cluster, &group, member, &offsets, &epochs).await;
            ControlDone::Commit(offsets, flushes, result)
        });
    }

    /// The offset map records of a commit were written.
    pub(super) fn on_map_written(&mut self, written: &[(TopicPartition, MapFlush)]) {
        let now = Instant::now();
        for (key, flush) in written {
            if let Some(slot) = self.slots.get_mut(key)
                && let Some(map) = slot.map.as_mut()
            {
                map.written(flush);
                slot.map_refreshed = now;
            }
        }
    }

    pub(super) fn on_commit(
        &mut self,
        offsets: Vec<(TopicPartition, i64)>,
        result: Result<Vec<(TopicPartition, admin::CommitResult)>, PoolError>,
    ) {
        self.commit_busy = false;
        let results = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "offset commit failed; retrying");
                self.commit_failed();
                return;
            }
        };
        let mut ok = 0usize;
        let mut failed = false;
        for (key, result) in results {
            let Some(&(_, offset)) = offsets.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            match result {
                Ok(()) => {
                    ok += 1;
                    if let Some(slot) = self.slots.get_mut(&key) {
                        slot.ledger.mark_committed(offset);
                    }
                }
                // The group task rejoins, or (KIP-848) the commit carried
                // a member epoch the next heartbeat replaces: retried with
                // the membership then current.
                Err(
                    e @ (ResponseError::UnknownMemberId
                    | ResponseError::IllegalGeneration
                    | ResponseError::RebalanceInProgress
                    | ResponseError::StaleMemberEpoch
                    | ResponseError::FencedMemberEpoch),
                ) => {
                    tracing::warn!(topic = %key.0, partition = key.1, error = %e, "offset commit refused while the group changes; retrying");
                    failed = true;
                }
                Err(e) if e.is_retriable() => {
                    tracing::warn!(topic = %key.0, partition = key.1, error = %e, "offset commit refused; retrying");
                    failed = true;
                }
                Err(e) => {
                    self.fail(MirrorError::Refused {
                        side: Side::Source,
                        what: format!(
                            "OffsetCommit for group {} ({}-{})",
                            self.ctx.config.fetch.group_id, key.0, key.1
                        ),
                        error: e,
                        hint: None,
                    });
                    // Refused for good: asking again at stop cannot help.
                    self.final_commit.done = true;
                    return;
                }
            }
        }
        if ok > 0 {
            self.ctx.metrics.committed();
            tracing::debug!(stream = self.index, partitions = ok, "offsets committed");
        }
        if failed {
            self.commit_failed();
        } else {
            self.commit_retry = CommitRetry::default();
        }
    }

    /// Schedules the next attempt after a failed commit: `retry.backoff.ms`
    /// doubling with each failure in a row, at most [`COMMIT_RETRY_MAX`],
    /// and never later than the next interval would.
    fn commit_failed(&mut self) {
        let backoff = self
            .ctx
            .config
            .produce
            .retry_backoff
            .max(Duration::from_millis(10));
        let failures = self.commit_retry.failures.min(16);
        let wait = backoff
            .saturating_mul(1 << failures)
            .min(COMMIT_RETRY_MAX)
            .min(self.ctx.config.commit_interval);
        self.commit_retry.failures = self.commit_retry.failures.saturating_add(1);
        self.commit_retry.at = Some(Instant::now() + wait);
    }
}
