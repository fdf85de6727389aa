//! From plan steps to destination queues: each partition's steps are
//! staged in offset order, slow-path rebuilds run on worker threads, and a
//! step is dispatched (ledger, destination queue) only when every step
//! before it was.

use super::*;

impl Stream {
    /// Whether `step` is decoded and rebuilt rather than passed through.
    pub(super) fn rebuilds(step: &PlanStep, route: Route) -> bool {
        match step {
            PlanStep::SlowPath { .. } => true,
            PlanStep::Passthrough { .. } => route != Route::SamePartition,
            PlanStep::Skip { .. } => false,
        }
    }

    pub(super) fn rebatch_settings(&self, key: &TopicPartition, route: Route) -> Rebatch {
        let config = &self.ctx.config;
        Rebatch {
            max_batch_bytes: self.slots.get(key).and_then(|s| s.max_batch_bytes),
            route,
            codec: config.produce.compression,
            level: config.produce.compression_level,
            batch_size: config
                .produce
                .batch_size
                .min(config.produce.max_request_size)
                .max(1),
        }
    }

    /// Hands staged slow-path steps to workers, oldest partitions' first,
    /// while fewer than `slow_path_workers` run. With no workers the
    /// stream rebuilds inline when it dispatches.
    pub(super) fn start_jobs(&mut self) {
        let workers = self.ctx.config.slow_path_workers;
        if workers == 0 || self.jobs.len() >= workers {
            return;
        }
        // Called for every fetched partition: only partitions with a step
        // waiting for a worker are worth a look (none on the passthrough
        // path).
        let waiting: Vec<TopicPartition> = self
            .slots
            .iter()
            .filter(|(_, slot)| {
                slot.staged.iter().any(
                    |s| matches!(&s.staged, Staged::Step(step) if Self::rebuilds(step, slot.route)),
                )
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in waiting {
            if self.jobs.len() >= workers {
                return;
            }
            let Some(route) = self.slots.get(&key).map(|s| s.route) else {
                continue;
            };
            let how = self.rebatch_settings(&key, route);
            let Some(slot) = self.slots.get_mut(&key) else {
                continue;
            };
            for staged in slot.staged.iter_mut() {
                if self.jobs.len() >= workers {
                    break;
                }
                let Staged::Step(step) = &staged.staged else {
                    continue;
                };
                if !Self::rebuilds(step, route) {
                    continue;
                }
                let (range, entry) = match step {
                    PlanStep::Passthrough { range, batch } => {
                        (range.clone(), LogEntry::Batch(batch.clone()))
                    }
                    PlanStep::SlowPath { range, entry, .. } => (range.clone(), entry.clone()),
                    PlanStep::Skip { .. } => continue,
                };
                // The decompressed records and the batches built from them
                // are charged to the budget like fetched data: reserved
                // before the rebuild starts, which waits while the budget
                // is short, except when no other rebuild runs (one may
                // then take more than the budget has, as one fetch
                // response may, so that a batch larger than the budget
                // still goes, and nothing waits for ever).
                let estimate = rebuild_estimate(&entry);
                if !self.jobs.is_empty() && self.ctx.budget.available() < estimate {
                    return;
                }
                let budget = self.ctx.budget.clone();
                let reserved = budget.charge(estimate);
                let id = self.next_job;
                self.next_job += 1;
                staged.staged = Staged::Rebuilding(id);
                let job_key = key.clone();
                let blocking = tokio::task::spawn_blocking(move || {
                    let mut reserved = vec![reserved];
                    let pieces = rebatch_measured(&entry, &range, job_key.1, &how, &mut |peak| {
                        if peak > estimate {
                            reserved.push(budget.charge(peak - estimate));
                        }
                    });
                    JobDone {
                        key: job_key,
                        id,
                        range,
                        pieces,
                        _reserved: reserved,
                    }
                });
                self.jobs.spawn(async move {
                    match blocking.await {
                        Ok(done) => done,
                        Err(e) => std::panic::resume_unwind(e.into_panic()),
                    }
                });
            }
        }
    }

    pub(super) fn on_job(&mut self, done: JobDone) {
        let JobDone {
            key,
            id,
            range,
            pieces,
            _reserved: reserved,
        } = done;
        // The batches are charged before the reservation goes.
        let charge = self.charge_rebuilt(&pieces);
        drop(reserved);
        if let Some(slot) = self.slots.get_mut(&key)
            && let Some(staged) = slot
                .staged
                .iter_mut()
                .find(|s| matches!(s.staged, Staged::Rebuilding(j) if j == id))
        {
            staged.staged = Staged::Rebuilt {
                range,
                pieces,
                charge,
            };
        }
        self.start_jobs();
        self.drain_staged(&key);
    }

    /// Dispatches the partition's staged steps from the front until one
    /// is still waiting for a worker.
    pub(super) fn drain_staged(&mut self, key: &TopicPartition) {
        let workers = self.ctx.config.slow_path_workers;
        loop {
            let Some(slot) = self.slots.get_mut(key) else {
                return;
            };
            let route = slot.route;
            let ready = match slot.staged.front().map(|s| &s.staged) {
                None | Some(Staged::Rebuilding(_)) => false,
                Some(Staged::Step(step)) => workers == 0 || !Self::rebuilds(step, route),
                Some(Staged::Rebuilt { .. }) => true,
            };
            if !ready {
                return;
            }
            let Some(StagedStep { staged, held }) = slot.staged.pop_front() else {
                return;
            };
            let result = match staged {
                Staged::Step(step) => self.dispatch(key, route, step, &held),
                Staged::Rebuilt {
                    range,
                    pieces,
                    charge,
                } => self.dispatch_pieces(key, range, pieces, charge, &held),
                Staged::Rebuilding(_) => Ok(()),
            };
            if let Err(e) = result {
                self.fail(e);
                return;
            }
        }
    }

    pub(super) fn dispatch(
        &mut self,
        key: &TopicPartition,
        route: Route,
        step: PlanStep,
        held: &Held,
    ) -> Result<(), MirrorError> {
        let internal = |e: crate::ledger::LedgerError| {
            MirrorError::Internal(format!("{}-{}: {e}", key.0, key.1))
        };
        let (range, entry) = match step {
            PlanStep::Skip { range, .. } => {
                let slot = self.slot_mut(key)?;
                return slot.ledger.skipped(range).map_err(internal);
            }
            PlanStep::Passthrough { range, batch } if route == Route::SamePartition => {
                let records = batch.header().record_count;
                let bytes = batch.as_bytes().len();
                let slot = self.slot_mut(key)?;
                let dispatch = slot
                    .ledger
                    .dispatched(range.clone(), 1, bytes)
                    .map_err(internal)?;
                let out = OutBatch {
                    source: key.clone(),
                    dispatch,
                    range,
                    sources: Vec::new(),
                    payload: Payload::Fetched(batch),
                    stamped: None,
                    records,
                    first_sent: None,
                    awaiting: false,
                    held: held.clone(),
                };
                self.queue_mut(&key.0, key.1).pending.push_back(out);
                return Ok(());
            }
            PlanStep::Passthrough { range, batch } => (range, LogEntry::Batch(batch)),
            PlanStep::SlowPath { range, entry, .. } => (range, entry),
        };
        let how = self.rebatch_settings(key, route);
        // Inline, the rebuild is charged while it runs, then its batches.
        let estimate = rebuild_estimate(&entry);
        let mut reserved = vec![self.ctx.budget.charge(estimate)];
        let budget = self.ctx.budget.clone();
        let pieces = rebatch_measured(&entry, &range, key.1, &how, &mut |peak| {
            if peak > estimate {
                reserved.push(budget.charge(peak - estimate));
            }
        });
        let charge = self.charge_rebuilt(&pieces);
        drop(reserved);
        self.dispatch_pieces(key, range, pieces, charge, held)
    }

    /// Charges the bytes of rebuilt batches to the budget.
    fn charge_rebuilt(&self, pieces: &Result<Vec<Piece>, RecordError>) -> Option<Arc<Charge>> {
        let bytes: usize = pieces.as_ref().ok()?.iter().map(|p| p.batch.len()).sum();
        (bytes > 0).then(|| self.ctx.budget.charge(bytes))
    }

    /// Records a rebuilt step in the ledger and queues its pieces.
    pub(super) fn dispatch_pieces(
        &mut self,
        key: &TopicPartition,
        range: Range<i64>,
        pieces: Result<Vec<Piece>, RecordError>,
        charge: Option<Arc<Charge>>,
        held: &Held,
    ) -> Result<(), MirrorError> {
        let internal = |e: crate::ledger::LedgerError| {
            MirrorError::Internal(format!("{}-{}: {e}", key.0, key.1))
        };
        let pieces = pieces.map_err(|e| MirrorError::SourceData {
            topic: key.0.to_string(),
            partition: key.1,
            broker: "-".into(),
            source: FetchPlanError::Malformed {
                offset: range.start,
                source: e,
            },
        })?;
        let slot = self.slot_mut(key)?;
        if pieces.is_empty() {
            return slot.ledger.skipped(range).map_err(internal);
        }
        let bytes = pieces.iter().map(|p| p.batch.len()).sum();
        let count = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
        let dispatch = slot
            .ledger
            .dispatched(range.clone(), count, bytes)
            .map_err(internal)?;
        let held = Held {
            _rebuilt: charge,
            ..held.clone()
        };
        for piece in pieces {
            let out = OutBatch {
                source: key.clone(),
                dispatch,
                range: range.clone(),
                sources: piece.sources,
                payload: Payload::Built(piece.batch),
                stamped: None,
                records: piece.records,
                first_sent: None,
                awaiting: false,
                held: held.clone(),
            };
            self.queue_mut(&key.0, piece.partition)
                .pending
                .push_back(out);
        }
        Ok(())
    }

    pub(super) fn slot_mut(&mut self, key: &TopicPartition) -> Result<&mut Slot, MirrorError> {
        self.slots
            .get_mut(key)
            .ok_or_else(|| MirrorError::Internal(format!("{}-{} is not assigned", key.0, key.1)))
    }

    pub(super) fn queue_mut(&mut self, topic: &Arc<str>, partition: i32) -> &mut DestQueue {
        let leader = self
            .dest_view
            .snapshot
            .as_ref()
            .and_then(|m| m.leader(topic, partition))
            .map(|b| b.id);
        self.queues
            .entry((topic.clone(), partition))
            .or_insert_with(|| DestQueue::new(leader))
    }
}
