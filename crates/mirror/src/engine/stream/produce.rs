//! The produce side of a stream: stamping batches with the idempotent
//! producer's sequences when they are sent, building requests per
//! destination broker, and the answers (acknowledged, resent, epoch bump,
//! refused for good).

use std::sync::atomic::{AtomicU64, Ordering};

use kmirror_pool::BrokerConnection;

use super::super::metrics::{MirrorPath, kafka_error_name};

use super::*;

/// A batch as it goes to the destination, stamped.
#[derive(Debug)]
pub(super) struct Stamped {
    /// The bytes sent.
    pub(super) batch: ProduceBatch,
    /// Its number in the destination partition's sequence: the base
    /// sequence on the wire with idempotence, a local number without
    /// (the wire then carries -1).
    pub(super) sequence: i32,
}

impl Stream {
    /// Whether this run uses the idempotent producer (`acks=all`).
    fn idempotent(&self) -> bool {
        self.ctx.config.produce.idempotent()
    }

    pub(super) fn pump_produce(&mut self) {
        if self.fatal.is_some() && self.producer.sequencer.is_none() {
            return;
        }
        if self.producer.sequencer.is_none() && !self.idempotent() {
            // acks=1: no InitProducerId, batches carry -1/-1/-1.
            let max_in_flight = self.ctx.config.produce.max_in_flight;
            match ProducerSequencer::without_idempotence().with_max_in_flight(max_in_flight) {
                Ok(s) => self.producer.sequencer = Some(s),
                Err(e) => {
                    self.fail(MirrorError::Internal(e.to_string()));
                    return;
                }
            }
        }
        if self.producer.sequencer.is_none() || self.producer.bump_needed {
            let awaiting: usize = self.queues.values().map(|q| q.awaiting).sum();
            let any_waiting = self.queues.values().any(|q| !q.is_empty());
            if !self.producer.pid_busy
                && awaiting == 0
                && (any_waiting || self.producer.sequencer.is_none())
            {
                self.producer.pid_busy = true;
                let cluster = self.ctx.destination.clone();
                let current = self
                    .producer
                    .sequencer
                    .as_ref()
                    .map(|s| (s.producer_id(), s.epoch()));
                let delay = self.producer.pid_backoff;
                self.control.spawn(async move {
                    tokio::time::sleep(delay).await;
                    ControlDone::ProducerId(admin::init_producer_id(&cluster, current).await)
                });
            }
            return;
        }
        let now = Instant::now();
        let backoff = self.ctx.config.produce.retry_backoff;
        for q in self.queues.values_mut() {
            if q.resend && q.awaiting == 0 {
                q.requeue_sent();
                q.retries = q.retries.saturating_add(1);
                q.retry_at = Some(now + retry_backoff(backoff, q.retries));
            }
        }
        loop {
            match self.build_requests(now) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    self.fail(e);
                    break;
                }
            }
        }
    }

    /// Builds at most one request per destination broker, one batch per
    /// partition, and hands them to the lanes. Returns how many were sent.
    pub(super) fn build_requests(&mut self, now: Instant) -> Result<usize, MirrorError> {
        if self.fatal.is_some() {
            // Dispatched after the error (a fetch or a rebuild that was
            // still under way).
            self.drop_unsent();
        }
        let Some(sequencer) = self.producer.sequencer.as_mut() else {
            return Ok(0);
        };
        // A batch that cannot be stamped stops the stream, but only after
        // the requests drafted so far are handed over: their batches are
        // already counted as sent.
        let mut unstampable = None;
        let max_request = self.ctx.config.produce.max_request_size;
        let check_crcs = self.ctx.config.fetch.check_crcs;
        let mut requests: BTreeMap<i32, RequestDraft> = BTreeMap::new();
        for ((topic, partition), q) in self.queues.iter_mut() {
            if q.retry_at.is_some_and(|t| now >= t) {
                // Passed: a timer left set would keep the stream's loop
                // waking at once (issue 13, item 8).
                q.retry_at = None;
            }
            if q.pending.is_empty() || q.resend || q.retry_at.is_some() {
                continue;
            }
            let Some(leader) = q.leader else { continue };
            if self.produce_throttle.holds(leader, now) {
                continue;
            }
            if self.lane_requests.get(&leader).copied().unwrap_or(0) >= MAX_REQUESTS_PER_BROKER {
                continue;
            }
            let Some(front) = q.pending.front() else {
                continue;
            };
            if front.stamped.is_none() && !sequencer.can_send(topic, *partition) {
                continue;
            }
            let size = match &front.payload {
                Payload::Fetched(v) => v.as_bytes().len(),
                Payload::Built(b) => b.len(),
            };
            let entry = requests
                .entry(leader)
                .or_insert_with(|| (Vec::new(), 0, Vec::new()));
            if entry.1 > 0 && entry.1 + size > max_request {
                continue;
            }
            let Some(mut batch) = q.pending.pop_front() else {
                continue;
            };
            if batch.stamped.is_none() {
                let (sequence, stamp) = match sequencer.next_batch(topic, *partition, batch.records)
                {
                    Ok(stamped) => stamped,
                    Err(e) => {
                        unstampable = Some(MirrorError::Internal(e.to_string()));
                        q.pending.push_front(batch);
                        break;
                    }
                };
                let stamped = match &batch.payload {
                    // Without check.crcs the payload is not read: the source
                    // CRC is carried over, so a corrupt batch stays corrupt
                    // and the destination refuses it.
                    Payload::Fetched(view) if !check_crcs => rewrite_for_produce(view, stamp),
                    Payload::Fetched(view) => match rewrite_verified(view, stamp) {
                        Ok(stamped) => stamped,
                        Err(e) => {
                            let broker = self
                                .source_view
                                .snapshot
                                .as_ref()
                                .and_then(|m| m.leader(&batch.source.0, batch.source.1))
                                .map_or_else(|| "(leader unknown)".to_owned(), |b| b.addr.clone());
                            unstampable = Some(MirrorError::SourceData {
                                topic: batch.source.0.to_string(),
                                partition: batch.source.1,
                                broker,
                                source: FetchPlanError::Malformed {
                                    offset: batch.range.start,
                                    source: e,
                                },
                            });
                            q.pending.push_front(batch);
                            break;
                        }
                    },
                    Payload::Built(b) => b.restamp(stamp),
                };
                batch.stamped = Some(Stamped {
                    batch: stamped,
                    sequence,
                });
            }
            let Some((stamped, sequence)) = batch
                .stamped
                .as_ref()
                .map(|s| (s.batch.clone(), s.sequence))
            else {
                continue;
            };
            batch.held.unsent = None;
            batch.awaiting = true;
            batch.first_sent.get_or_insert(now);
            q.awaiting += 1;
            q.sent.push_back(batch);
            entry.1 += size;
            entry.2.push(((topic.clone(), *partition), sequence));
            let partition_entry = ProducePartition {
                index: *partition,
                batch: stamped,
            };
            match entry.0.iter_mut().find(|t| *t.name == **topic) {
                Some(t) => t.partitions.push(partition_entry),
                None => entry.0.push(ProduceTopic {
                    name: StrBytes::from_string(topic.to_string()),
                    partitions: vec![partition_entry],
                }),
            }
        }
        let sent = requests.len();
        let config = &self.ctx.config;
        let timeout_ms = i32::try_from(self.ctx.destination.config().request_timeout.as_millis())
            .unwrap_or(30_000);
        for (broker, (topics, _, tag)) in requests {
            let request = ProduceRequest {
                transactional_id: None,
                acks: config.produce.acks,
                timeout_ms,
                topics,
            };
            *self.lane_requests.entry(broker).or_insert(0) += 1;
            self.ctx.metrics.request_sent();
            let lane = self.lanes.entry(broker).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let fence = Arc::new(AtomicU64::new(0));
                tokio::spawn(produce_lane(
                    self.ctx.destination.clone(),
                    broker,
                    rx,
                    self.produce_done_tx.clone(),
                    fence.clone(),
                ));
                Lane { jobs: tx, fence }
            });
            let job = ProduceJob {
                request,
                tag,
                generation: self.producer.generation,
                fence: lane.fence.load(Ordering::Acquire),
            };
            if let Err(mpsc::error::SendError(job)) = lane.jobs.send(job) {
                return Err(MirrorError::Internal(format!(
                    "produce lane to broker {broker} is gone ({} batches)",
                    job.tag.len()
                )));
            }
        }
        match unstampable {
            Some(e) => Err(e),
            None => Ok(sent),
        }
    }

    pub(super) fn on_produce(&mut self, done: ProduceDone) {
        if let Some(n) = self.lane_requests.get_mut(&done.broker) {
            *n = n.saturating_sub(1);
        }
        if let Ok(response) = &done.result
            && let Some(throttle) =
                self.produce_throttle
                    .note(done.broker, response.throttle_time_ms, Instant::now())
        {
            self.ctx.metrics.throttled(Side::Destination, throttle);
            tracing::debug!(
                broker = done.broker,
                ?throttle,
                "the destination broker throttles kmirror's produce requests (quota): the next request to it waits"
            );
        }
        match &done.result {
            Ok(_) => self.ctx.metrics.link_ok(Side::Destination),
            Err(e) => {
                self.ctx.metrics.link_failed(Side::Destination, e);
                self.ctx.metrics.produce_error(request_failure_label(e));
            }
        }
        if done.generation != self.producer.generation {
            return;
        }
        let mut answers: Vec<(TopicPartition, i32, Outcome)> = Vec::with_capacity(done.tag.len());
        match done.result {
            Err(e) => {
                tracing::warn!(broker = done.broker, error = %e, "produce request failed; retrying its batches");
                let stale = request_failure_stales_leader(&e);
                if stale {
                    self.ctx.destination.invalidate_metadata();
                }
                let reason = e.to_string();
                for (key, seq) in done.tag {
                    if stale && let Some(q) = self.queues.get_mut(&key) {
                        q.leader = None;
                    }
                    answers.push((key, seq, Outcome::Retry(reason.clone())));
                }
            }
            Ok(response) => {
                for (key, seq) in done.tag {
                    let part = response
                        .topics
                        .iter()
                        .filter(|(name, _)| **name == *key.0)
                        .flat_map(|(_, ps)| ps.iter())
                        .find(|p| p.index == key.1);
                    let outcome = self.classify_answer(&key, seq, part);
                    answers.push((key, seq, outcome));
                }
            }
        }
        for (key, seq, outcome) in answers {
            self.apply_outcome(&key, seq, outcome);
        }
    }

    /// How the destination's answer for one batch (`seq` of `key`; `None`
    /// if the partition is missing from the response) is treated:
    /// acknowledged, resent, resent after an epoch bump, or failed for
    /// good. A leader that may have moved is forgotten so that it is
    /// looked up again.
    fn classify_answer(
        &mut self,
        key: &TopicPartition,
        seq: i32,
        part: Option<&kmirror_protocol::messages::produce::ProducePartitionResponse>,
    ) -> Outcome {
        match part {
            // acks=0 (no response at all) is refused at start:
            // a batch counts as written only once acknowledged.
            None => Outcome::Retry("the partition is missing from the Produce response".into()),
            Some(p) => match ResponseError::try_from_code(p.error_code) {
                None => Outcome::Acknowledged((p.base_offset >= 0).then_some(p.base_offset)),
                Some(e) => {
                    self.ctx.metrics.produce_error(&kafka_error_name(e));
                    self.classify_error(key, seq, p, e)
                }
            },
        }
    }

    /// How a partition error in a Produce answer is treated (see
    /// [`Self::classify_answer`]).
    fn classify_error(
        &mut self,
        key: &TopicPartition,
        seq: i32,
        p: &kmirror_protocol::messages::produce::ProducePartitionResponse,
        error: ResponseError,
    ) -> Outcome {
        {
            match error {
                // Written before; older brokers do not say where.
                ResponseError::DuplicateSequenceNumber => {
                    Outcome::Acknowledged((p.base_offset >= 0).then_some(p.base_offset))
                }
                ResponseError::OutOfOrderSequenceNumber => {
                    let earlier = self
                        .queues
                        .get(key)
                        .and_then(|q| q.sent.front())
                        .and_then(OutBatch::base_sequence)
                        != Some(seq);
                    if earlier {
                        Outcome::Retry("out of order after an earlier failed batch".into())
                    } else {
                        Outcome::Bump("the destination lost this producer's sequence (OUT_OF_ORDER_SEQUENCE_NUMBER)".into())
                    }
                }
                e @ (ResponseError::UnknownProducerId
                | ResponseError::InvalidProducerEpoch
                | ResponseError::ProducerFenced) => Outcome::Bump(e.to_string()),
                ResponseError::CorruptMessage if self.source_crc_bad(key, seq) => Outcome::Failed(
                    "CORRUPT_MESSAGE: the batch's bytes do not match the CRC \
                         the source stored with them (corrupted on the source or \
                         on the way; check.crcs=false passed it on unchecked)"
                        .into(),
                ),
                e if stale_leader(e) || e.is_retriable() => {
                    if stale_leader(e) {
                        self.ctx.destination.invalidate_metadata();
                        if let Some(q) = self.queues.get_mut(key) {
                            q.leader = None;
                        }
                    }
                    Outcome::Retry(e.to_string())
                }
                e => {
                    let message = p
                        .error_message
                        .as_deref()
                        .map(|m| format!(": {}", m.trim_end_matches('.')))
                        .unwrap_or_default();
                    let records = p.record_errors.len();
                    let extra = if records > 0 {
                        format!(" ({records} record errors)")
                    } else {
                        String::new()
                    };
                    Outcome::Failed(format!("{e}{message}{extra}"))
                }
            }
        }
    }

    /// Whether the passed-through batch sent as `seq` to `key` fails its
    /// source CRC check (resending it cannot help).
    fn source_crc_bad(&self, key: &TopicPartition, seq: i32) -> bool {
        self.queues
            .get(key)
            .and_then(|q| q.sent.iter().find(|b| b.base_sequence() == Some(seq)))
            .is_some_and(|b| match &b.payload {
                Payload::Fetched(view) => view.verify_crc().is_err(),
                Payload::Built(_) => false,
            })
    }

    pub(super) fn apply_outcome(&mut self, key: &TopicPartition, seq: i32, outcome: Outcome) {
        let now = Instant::now();
        let delivery_timeout = self.ctx.config.produce.delivery_timeout;
        let idempotent = self.idempotent();
        let outcome = match outcome {
            // Without idempotence there is no producer state to lose (the
            // broker answers no sequence errors to -1/-1/-1): resend.
            Outcome::Bump(reason) if !idempotent => Outcome::Retry(reason),
            other => other,
        };
        let Some(q) = self.queues.get_mut(key) else {
            return;
        };
        let Some(index) = q
            .sent
            .iter()
            .position(|b| b.awaiting && b.base_sequence() == Some(seq))
        else {
            return;
        };
        let outcome = match outcome {
            Outcome::Retry(reason) | Outcome::Bump(reason)
                if delivery_timeout.is_some_and(|t| {
                    q.sent
                        .get(index)
                        .and_then(|b| b.first_sent)
                        .is_some_and(|f| now.duration_since(f) > t)
                }) =>
            {
                Outcome::Failed(format!("delivery.timeout.ms expired; last error: {reason}"))
            }
            other => other,
        };
        match outcome {
            Outcome::Acknowledged(base_offset) => {
                let Some(batch) = q.sent.remove(index) else {
                    return;
                };
                q.awaiting = q.awaiting.saturating_sub(1);
                q.retries = 0;
                if let Some(s) = self.producer.sequencer.as_mut() {
                    let _ = s.acknowledged(&key.0, key.1, seq);
                }
                let latency = batch
                    .first_sent
                    .map_or(Duration::ZERO, |f| now.duration_since(f));
                let bytes = batch.stamped.as_ref().map_or(0, |s| s.batch.len() as u64);
                let path = match batch.payload {
                    Payload::Fetched(_) => MirrorPath::Passthrough,
                    Payload::Built(_) => MirrorPath::SlowPath,
                };
                self.ctx.metrics.batch_acknowledged(
                    &batch.source.0,
                    path,
                    u64::try_from(batch.records).unwrap_or(0),
                    bytes,
                    latency,
                    batch
                        .stamped
                        .as_ref()
                        .map(|s| super::fetch::source_timestamp(&s.batch.header())),
                );
                if let Some(slot) = self.slots.get_mut(&batch.source) {
                    match slot.ledger.acknowledged(batch.dispatch) {
                        Ok(Receipt::Applied { .. }) => {
                            if let Some(map) = slot.map.as_mut() {
                                batch.with_source_offsets(|s| map.acknowledged(s, base_offset));
                            }
                        }
                        Ok(Receipt::Stale) => {}
                        Err(e) => self.fail(MirrorError::Internal(format!(
                            "{}-{}: {e}",
                            batch.source.0, batch.source.1
                        ))),
                    }
                }
            }
            Outcome::Retry(reason)
                if self
                    .ctx
                    .config
                    .produce
                    .retries
                    .is_some_and(|limit| q.retries >= limit) =>
            {
                // Out of retries: the batch is never skipped (that would
                // commit past it), the stream stops.
                let retries = self.ctx.config.produce.retries.unwrap_or(0);
                let Some(batch) = q.sent.remove(index) else {
                    return;
                };
                q.awaiting = q.awaiting.saturating_sub(1);
                self.producer.bump_needed |= idempotent;
                self.ctx.metrics.batch_failed(0);
                if let Some(slot) = self.slots.get_mut(&batch.source)
                    && let Err(e) = slot.ledger.failed(batch.dispatch)
                {
                    self.fail(MirrorError::Internal(e.to_string()));
                    return;
                }
                self.fail(MirrorError::RetriesExhausted {
                    topic: batch.source.0.to_string(),
                    partition: batch.source.1,
                    destination_partition: key.1,
                    start: batch.range.start,
                    end: batch.range.end,
                    retries,
                    reason,
                });
            }
            Outcome::Retry(reason) => {
                if let Some(b) = q.sent.get_mut(index) {
                    b.awaiting = false;
                }
                q.awaiting = q.awaiting.saturating_sub(1);
                q.resend = true;
                self.ctx.metrics.batch_retried();
                tracing::debug!(topic = %key.0, partition = key.1, %reason, "batch will be resent");
            }
            Outcome::Bump(reason) => {
                if let Some(b) = q.sent.get_mut(index) {
                    b.awaiting = false;
                }
                q.awaiting = q.awaiting.saturating_sub(1);
                q.resend = true;
                if !self.producer.bump_needed {
                    tracing::warn!(topic = %key.0, partition = key.1, %reason, "bumping the producer epoch and resending unacknowledged batches");
                }
                self.producer.bump_needed = true;
            }
            Outcome::Failed(reason) => {
                let Some(batch) = q.sent.remove(index) else {
                    return;
                };
                q.awaiting = q.awaiting.saturating_sub(1);
                // The refused batch leaves a hole in the sequence.
                self.producer.bump_needed |= idempotent;
                let abort = self.ctx.config.abort_on_send_failure;
                let Some(slot) = self.slots.get_mut(&batch.source) else {
                    return;
                };
                let ledger = if abort {
                    slot.ledger.failed(batch.dispatch)
                } else {
                    slot.ledger.written_off(batch.dispatch)
                };
                if let Err(e) = ledger {
                    self.fail(MirrorError::Internal(e.to_string()));
                    return;
                }
                self.ctx.metrics.batch_failed(if abort {
                    0
                } else {
                    u64::try_from(batch.records).unwrap_or(0)
                });
                let error = MirrorError::SendFailed {
                    topic: batch.source.0.to_string(),
                    partition: batch.source.1,
                    destination_partition: key.1,
                    start: batch.range.start,
                    end: batch.range.end,
                    reason,
                };
                if abort {
                    self.fail(error);
                } else {
                    tracing::error!(error = %error, records = batch.records, "skipping the batch (abort.on.send.failure=false)");
                }
            }
        }
    }

    pub(super) fn on_producer_id(&mut self, result: Result<(i64, i16), PoolError>) {
        self.producer.pid_busy = false;
        let (pid, epoch) = match result {
            Ok(p) => {
                self.producer.pid_backoff = Duration::ZERO;
                p
            }
            Err(e) => {
                if matches!(producer_id_failure(&e), PidFailure::Retry) {
                    // Apache Kafka answers COORDINATOR_LOAD_IN_PROGRESS
                    // until the broker holds a block of producer ids from
                    // the controller (RPCProducerIdManager): back off.
                    self.producer.pid_backoff = if self.producer.pid_backoff.is_zero() {
                        self.ctx
                            .config
                            .produce
                            .retry_backoff
                            .max(Duration::from_millis(10))
                    } else {
                        (self.producer.pid_backoff * 2).min(Duration::from_secs(1))
                    };
                    tracing::warn!(error = %e, retry_in = ?self.producer.pid_backoff, "InitProducerId failed; retrying");
                    self.dest_view.refreshed_at = None;
                    self.ctx.destination.invalidate_metadata();
                } else {
                    let PidFailure::Fatal(error) = producer_id_failure(&e) else {
                        return;
                    };
                    self.fail(error);
                }
                return;
            }
        };
        let max_in_flight = self.ctx.config.produce.max_in_flight;
        match self.producer.sequencer.as_mut() {
            None => match ProducerSequencer::new(pid, epoch)
                .and_then(|s| s.with_max_in_flight(max_in_flight))
            {
                Ok(s) => {
                    tracing::debug!(
                        stream = self.index,
                        producer_id = pid,
                        epoch,
                        "idempotent producer ready"
                    );
                    self.producer.sequencer = Some(s);
                }
                Err(e) => self.fail(MirrorError::Internal(e.to_string())),
            },
            Some(s) => {
                let result = if pid == s.producer_id() && epoch <= s.epoch() {
                    Err(crate::sequencer::SequenceError::EpochRegression {
                        producer_id: pid,
                        epoch,
                        current: s.epoch(),
                    })
                } else {
                    s.reset_producer(pid, epoch)
                };
                if let Err(e) = result {
                    self.fail(MirrorError::Internal(e.to_string()));
                    return;
                }
                self.producer.generation += 1;
                self.producer.bump_needed = false;
                self.ctx.metrics.epoch_bumped();
                // Nothing is awaited (the bump waits for that): every
                // unacknowledged batch is stamped again, in order.
                for q in self.queues.values_mut() {
                    q.requeue_sent();
                    for b in q.pending.iter_mut() {
                        b.stamped = None;
                    }
                }
                tracing::info!(
                    stream = self.index,
                    producer_id = pid,
                    epoch,
                    "producer epoch bumped; unacknowledged batches are sent again in order"
                );
            }
        }
    }
}

/// Writes one destination broker's Produce requests in the order received
/// and reports each response as it arrives. Raises `fence` when a
/// connection dies with requests on it, and fails unwritten the jobs made
/// before (see [`Lane`]).
async fn produce_lane(
    cluster: Cluster,
    broker: i32,
    mut jobs: mpsc::UnboundedReceiver<ProduceJob>,
    done: mpsc::UnboundedSender<ProduceDone>,
    fence: Arc<AtomicU64>,
) {
    let mut last: Option<Arc<BrokerConnection>> = None;
    while let Some(job) = jobs.recv().await {
        let ProduceJob {
            request,
            tag,
            generation,
            fence: made_at,
        } = job;
        let conn = cluster.connection_to_broker(broker).await;
        if let (Ok(conn), Some(previous)) = (&conn, &last)
            && !Arc::ptr_eq(conn, previous)
            && previous.is_poisoned()
        {
            // Its requests fail as lost; the stream must see that before
            // anything made meanwhile is written.
            fence.fetch_add(1, Ordering::AcqRel);
        }
        if let Ok(conn) = &conn {
            last = Some(conn.clone());
        }
        let submitted = if made_at < fence.load(Ordering::Acquire) {
            let addr = conn
                .as_ref()
                .map_or_else(|_| format!("broker {broker}"), |c| c.broker().to_owned());
            Err(PoolError::ConnectionLost {
                cause: Arc::new(PoolError::Io {
                    broker: addr.clone(),
                    kind: std::io::ErrorKind::ConnectionAborted,
                    message: "not written: an earlier request was lost with its connection, \
                              so this one is resent after it, in order"
                        .into(),
                }),
                broker: addr,
            })
        } else {
            match conn {
                Ok(conn) => conn.submit(&request).await,
                Err(e) => Err(e),
            }
        };
        match submitted {
            Ok(in_flight) => {
                let done = done.clone();
                let fence = fence.clone();
                tokio::spawn(async move {
                    let result = in_flight.response().await;
                    if matches!(result, Err(PoolError::ConnectionLost { .. })) {
                        fence.fetch_add(1, Ordering::AcqRel);
                    }
                    let _ = done.send(ProduceDone {
                        broker,
                        tag,
                        generation,
                        result,
                    });
                });
            }
            Err(e) => {
                if done
                    .send(ProduceDone {
                        broker,
                        tag,
                        generation,
                        result: Err(e),
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Whether a partition's error in a Produce response means its leader may
/// have moved or be unable to write, so that the destination metadata must
/// be refreshed and the leader resolved again before the batch is resent:
/// the errors of Java's `InvalidMetadataException` family (which make its
/// producer request a metadata update), BROKER_NOT_AVAILABLE and a
/// broker-side REQUEST_TIMED_OUT (a leader that cannot reach its
/// followers may be about to lose its leadership). Each of them is retried.
fn stale_leader(error: ResponseError) -> bool {
    matches!(
        error,
        ResponseError::NotLeaderOrFollower
            | ResponseError::UnknownTopicOrPartition
            | ResponseError::LeaderNotAvailable
            | ResponseError::KafkaStorageError
            | ResponseError::NetworkException
            | ResponseError::RequestTimedOut
            | ResponseError::FencedLeaderEpoch
            | ResponseError::UnknownLeaderEpoch
            | ResponseError::UnknownTopicId
            | ResponseError::BrokerNotAvailable
    )
}

/// Whether a failed Produce request (no response: the connection was lost
/// or refused, the request timed out, the broker left the metadata) means
/// the leaders of its partitions must be resolved again. Always: as Java's
/// producer does after a disconnection or a timeout, the next attempt goes
/// to the broker that the refreshed metadata names, not to the same broker
/// for ever (a broker lost for good, or hung, would keep its partitions'
/// batches retried against it).
fn request_failure_stales_leader(_error: &PoolError) -> bool {
    true
}

/// The `error` label of a failed Produce request (no answer): Kafka's
/// error name for an error the broker answered, else the client side's
/// failure.
fn request_failure_label(error: &PoolError) -> &'static str {
    match error {
        PoolError::Timeout { .. } => "request_timeout",
        PoolError::ConnectionLost { .. } | PoolError::Io { .. } | PoolError::Unreachable { .. } => {
            "connection"
        }
        _ => "other",
    }
}

/// How long a destination partition waits before its batches are resent
/// after `retries` consecutive failed attempts: `retry.backoff.ms`, doubled
/// on each further failure up to one second (or `retry.backoff.ms` if that
/// is larger), as Java's producer does with `retry.backoff.max.ms`.
fn retry_backoff(base: Duration, retries: u32) -> Duration {
    let cap = base.max(RETRY_BACKOFF_MAX);
    base.saturating_mul(1u32 << retries.saturating_sub(1).min(16))
        .min(cap)
}

/// The longest wait between attempts to resend a partition's batches.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What an InitProducerId failure calls for.
#[derive(Debug)]
enum PidFailure {
    /// Ask again after a backoff.
    Retry,
    /// Stop kmirror with this error.
    Fatal(MirrorError),
}

/// Classifies an InitProducerId failure as Java's producer does
/// (`TransactionManager.InitProducerIdHandler`): transport failures and
/// retriable errors (the coordinator loading or moving, concurrent
/// transactions) are retried after a backoff; authorization failures,
/// a broker without idempotence and any unexpected error stop kmirror.
fn producer_id_failure(error: &PoolError) -> PidFailure {
    let PoolError::Kafka { error: code, .. } = error else {
        return if error.is_retriable() {
            PidFailure::Retry
        } else {
            PidFailure::Fatal(MirrorError::destination(error.clone()))
        };
    };
    let code = *code;
    if code.is_retriable() || code == ResponseError::ConcurrentTransactions {
        return PidFailure::Retry;
    }
    let what = "InitProducerId (kmirror's idempotent producer, used with acks=all)".to_owned();
    let hint = match code {
        ResponseError::ClusterAuthorizationFailed
        | ResponseError::TransactionalIdAuthorizationFailed => Some(
            "kmirror's principal may not use an idempotent producer on the destination: grant \
             it the IdempotentWrite operation on the cluster resource (kafka-acls.sh --add \
             --allow-principal User:<name> --operation IdempotentWrite --cluster; brokers \
             with KIP-679 also accept Write on a topic), or set acks=1 in the producer config to \
             mirror without idempotence (see the README for what that gives up)"
                .to_owned(),
        ),
        ResponseError::UnsupportedVersion | ResponseError::UnsupportedForMessageFormat => Some(
            "the destination cannot run an idempotent producer (Kafka before 0.11, or topics \
             on message format v0/v1); set acks=1 in the producer config to mirror without \
             idempotence (see the README for what that gives up)"
                .to_owned(),
        ),
        _ => Some(format!("an unexpected answer to InitProducerId ({error})")),
    };
    PidFailure::Fatal(MirrorError::Refused {
        side: Side::Destination,
        what,
        error: code,
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(error: ResponseError) -> PoolError {
        PoolError::Kafka {
            broker: "localhost:9092".into(),
            api: ApiKey::InitProducerId,
            error,
            context: Some("idempotent producer".into()),
        }
    }

    /// Item 8 of issue 13: once a produce retry timer has passed, the
    /// stream's loop must not wake every millisecond for it.
    #[test]
    fn a_passed_retry_timer_does_not_spin_the_loop() {
        let start = Instant::now();
        // A batch was retried once, 100 ms after `start`; the timer is
        // never cleared.
        let retry_at = start + Duration::from_millis(100);
        let mut now = start;
        let mut wakeups = 0;
        while now < start + Duration::from_secs(2) {
            now = wakeup(now, [retry_at], false, None);
            wakeups += 1;
        }
        // Once for the timer, then once a second.
        assert!(
            wakeups <= 3,
            "{wakeups} wakeups in 2 s of simulated time with one passed retry timer"
        );
    }

    #[test]
    fn wakeups_follow_timers_ahead_budget_and_drain() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(wakeup(now, [], false, None), now + ms(1000));
        assert_eq!(wakeup(now, [now + ms(30)], false, None), now + ms(30));
        assert_eq!(wakeup(now, [now + ms(300)], true, None), now + ms(50));
        assert_eq!(
            wakeup(now, [now + ms(300)], false, Some(now + ms(20))),
            now + ms(20)
        );
        // A deadline that passed still ends the wait (the drain is over).
        assert_eq!(wakeup(now, [], false, Some(now)), now + ms(1));
    }

    /// Item 7 of issue 13: a cluster without the IdempotentWrite ACL
    /// answers CLUSTER_AUTHORIZATION_FAILED; retrying cannot help.
    #[test]
    fn init_producer_id_errors_are_classified() {
        for fatal in [
            ResponseError::ClusterAuthorizationFailed,
            ResponseError::TransactionalIdAuthorizationFailed,
            ResponseError::UnsupportedVersion,
            ResponseError::InvalidRequest,
        ] {
            match producer_id_failure(&kafka(fatal)) {
                PidFailure::Fatal(e) => {
                    let text = e.to_string();
                    assert!(text.contains("InitProducerId"), "{text}");
                    if fatal == ResponseError::ClusterAuthorizationFailed {
                        assert!(text.contains("IdempotentWrite"), "{text}");
                        assert!(text.contains("acks=1"), "{text}");
                    }
                }
                PidFailure::Retry => panic!("{fatal:?} retried"),
            }
        }
        for retriable in [
            kafka(ResponseError::CoordinatorLoadInProgress),
            kafka(ResponseError::CoordinatorNotAvailable),
            kafka(ResponseError::NotCoordinator),
            kafka(ResponseError::ConcurrentTransactions),
            kafka(ResponseError::RequestTimedOut),
            kafka(ResponseError::NotEnoughReplicas),
            PoolError::Timeout {
                broker: "b:1".into(),
                api: ApiKey::InitProducerId,
                after: Duration::from_secs(30),
            },
            PoolError::Io {
                broker: "b:1".into(),
                kind: std::io::ErrorKind::ConnectionRefused,
                message: "refused".into(),
            },
        ] {
            assert!(
                matches!(producer_id_failure(&retriable), PidFailure::Retry),
                "{retriable} is not retried"
            );
        }
    }

    /// Item 4 of issue 13: connection-level failures and the partition
    /// errors of a broker that lost its disk or its leadership send the
    /// partition back to the metadata for its leader.
    #[test]
    fn connection_failures_and_storage_errors_resolve_the_leader_again() {
        for error in [
            ResponseError::NotLeaderOrFollower,
            ResponseError::LeaderNotAvailable,
            ResponseError::UnknownTopicOrPartition,
            ResponseError::KafkaStorageError,
            ResponseError::NetworkException,
            ResponseError::RequestTimedOut,
            ResponseError::FencedLeaderEpoch,
            ResponseError::UnknownLeaderEpoch,
            ResponseError::BrokerNotAvailable,
        ] {
            assert!(stale_leader(error), "{error:?}");
        }
        for error in [
            ResponseError::MessageTooLarge,
            ResponseError::InvalidRecord,
            ResponseError::NotEnoughReplicas,
        ] {
            assert!(!stale_leader(error), "{error:?}");
        }
        let broker = "b:1".to_owned();
        for failure in [
            PoolError::Timeout {
                broker: broker.clone(),
                api: ApiKey::Produce,
                after: Duration::from_secs(30),
            },
            PoolError::Io {
                broker: broker.clone(),
                kind: std::io::ErrorKind::ConnectionRefused,
                message: "refused".into(),
            },
            PoolError::ConnectionLost {
                broker: broker.clone(),
                cause: Arc::new(PoolError::Shutdown),
            },
            PoolError::Kafka {
                broker: "-".into(),
                api: ApiKey::Metadata,
                error: ResponseError::BrokerNotAvailable,
                context: Some("broker id 2 is not in the cluster metadata".into()),
            },
        ] {
            assert!(request_failure_stales_leader(&failure), "{failure}");
        }
    }
}
