//! The fetch side of a stream: one Fetch in flight per source broker,
//! each asking for a fair share of the memory budget, and the plan of
//! every partition it returns.

use super::*;
use kmirror_protocol::messages::fetch::FetchPartition;

impl Stream {
    /// The most one fetch may ask for: `fetch.max.bytes`, capped at a fair
    /// share of the budget so that the long-polling fetches of every stream
    /// to every source broker it fetches from fit in it at once, with room
    /// left for data waiting on the destination (a fetch reserves what it
    /// asks for until its response is in).
    pub(super) fn fetch_share(&self) -> usize {
        fetch_share(
            self.ctx.config.fetch.max_bytes,
            self.ctx.budget.limit(),
            self.ctx.config.streams,
            self.source_brokers(),
        )
    }

    /// How many source brokers lead this stream's partitions (at least 1):
    /// each has a fetch of its own in flight.
    fn source_brokers(&self) -> usize {
        let mut leaders: Vec<i32> = self.slots.values().filter_map(|s| s.leader).collect();
        leaders.sort_unstable();
        leaders.dedup();
        leaders.len().max(1)
    }

    /// The least budget worth a fetch: half a share.
    pub(super) fn useful_fetch(&self) -> usize {
        (self.fetch_share() / 2).max(1)
    }

    /// Whether fetching waits for the destination to acknowledge data.
    pub(super) fn budget_short(&self) -> bool {
        self.ctx.budget.available() < self.useful_fetch()
    }

    pub(super) fn start_fetches(&mut self) {
        // Called on every turn of the stream's loop: what `/health` and
        // the buffer gauge read.
        self.ctx.metrics.heartbeat(self.index);
        self.ctx.metrics.observe_budget(&self.ctx.budget);
        if self.stopping || self.fatal.is_some() {
            return;
        }
        let now = Instant::now();
        // Apply out-of-range resets once nothing below them is in flight.
        for slot in self.slots.values_mut() {
            if let Some(to) = slot.reset_to
                && slot.ledger.is_settled()
                && slot.staged.is_empty()
                && !slot.fetching
            {
                if let Some(map) = slot.map.as_mut() {
                    // Copying again from `to` (a truncation) or skipping
                    // to it: a new session from there.
                    map.restart(new_session_id(), to, slot.ledger.committable());
                }
                match slot.ledger.committed() {
                    // Keep the commit point known so a commit is only sent
                    // when it moves. Not after a truncation: the offset
                    // committed carries the leader epoch of the log that
                    // diverged, and whoever starts from it next (a restart,
                    // the partition's next owner in the group) would find
                    // the same divergence and copy the records since the
                    // cut again; it is committed anew with the new epoch.
                    Some(c) if !slot.truncated => {
                        slot.ledger.reset(to);
                        slot.ledger.mark_committed(c);
                    }
                    _ => {
                        slot.ledger.reset(to);
                    }
                }
                if slot.truncated {
                    let replaced = u64::try_from(slot.position - to).unwrap_or(0);
                    tracing::warn!(topic = %slot.topic, partition = slot.partition, truncated_at = to, position = slot.position, replaced,
                        "the source partition was truncated below the mirror's position (an unclean leader election, KIP-320): \
                         the destination keeps the records that were there; the records now at these offsets are copied too");
                    self.ctx.metrics.truncated(replaced);
                } else {
                    tracing::info!(topic = %slot.topic, partition = slot.partition, from = slot.position, to, "out-of-range fetch position reset");
                    self.ctx.metrics.offset_reset();
                }
                slot.position = to;
                slot.reset_to = None;
                slot.truncated = false;
            }
        }
        let useful = self.useful_fetch();
        if self.budget_short() {
            return;
        }
        // Suspects of an oversized response that left the broker (moved,
        // unassigned, done) need no more looking at.
        for (broker, oversized) in self.oversized.iter_mut() {
            while let Some(front) = oversized.suspects.front() {
                let here = self.slots.get(front).is_some_and(|s| {
                    s.leader == Some(*broker) && s.target.is_none_or(|t| s.position < t)
                });
                if here {
                    break;
                }
                oversized.suspects.pop_front();
            }
        }
        let mut by_broker: BTreeMap<i32, Vec<FetchedPartition>> = BTreeMap::new();
        for slot in self.slots.values() {
            let Some(leader) = slot.leader else { continue };
            if let Some(front) = self.oversized.get(&leader).and_then(|o| o.suspects.front())
                && (*front.0 != *slot.topic || front.1 != slot.partition)
            {
                // The broker's partitions go one at a time.
                continue;
            }
            if slot.fetching
                || slot.revoked
                || slot.unsent.strong_count() > 0
                || slot.reset_to.is_some()
                || slot.resetting
                || slot.retry_at.is_some_and(|t| now < t)
                || self.fetch_brokers.contains(&leader)
                || self.fetch_throttle.holds(leader, now)
                || slot.target.is_some_and(|t| slot.position >= t)
            {
                continue;
            }
            by_broker.entry(leader).or_default().push((
                slot.topic.clone(),
                slot.topic_id,
                slot.partition,
                slot.position,
            ));
        }
        // Brokers take turns at the budget: when it is short, the broker
        // after the one served last goes first, so a fetch that keeps coming
        // back from a low broker id cannot starve the others.
        let turns = self.fetch_order.brokers_in_turn(by_broker.keys().copied());
        for broker in turns {
            let Some(mut partitions) = by_broker.remove(&broker) else {
                continue;
            };
            let available = self.ctx.budget.available();
            if available < useful {
                break;
            }
            self.fetch_order.started(broker);
            self.fetch_order.arrange(&mut partitions);
            for (topic, _, partition, _) in &partitions {
                if let Some(slot) = self.slots.get_mut(&(topic.clone(), *partition)) {
                    slot.fetching = true;
                    slot.retry_at = None;
                }
            }
            self.fetch_brokers.insert(broker);
            let sizes: Vec<usize> = partitions
                .iter()
                .map(|(t, _, p, _)| {
                    self.slots
                        .get(&(t.clone(), *p))
                        .map_or(1 << 20, |s| s.fetch_size)
                })
                .collect();
            let epochs: Vec<(i32, i32)> = partitions
                .iter()
                .map(|(t, _, p, _)| {
                    let last = self
                        .slots
                        .get(&(t.clone(), *p))
                        .map_or(-1, |s| s.last_fetched_epoch);
                    (self.leader_epoch(t, *p), last)
                })
                .collect();
            let cluster = self.ctx.source.clone();
            let fetch = self.ctx.config.fetch.clone();
            let max_bytes = self
                .fetch_share()
                .min(available)
                .min(self.oversized.get(&broker).map_or(usize::MAX, |o| o.cap))
                .max(1);
            // Held until the response is in and charged for what it holds,
            // so fetches in flight never promise more than the budget.
            let reservation = self.ctx.budget.charge(max_bytes);
            let job = FetchJob {
                broker,
                partitions,
                max_bytes,
                _reservation: reservation,
            };
            self.fetch_tasks.spawn(async move {
                let conn = match cluster.connection_to_broker(job.broker).await {
                    Ok(conn) => conn,
                    Err(e) => {
                        return FetchDone {
                            job,
                            broker_addr: String::new(),
                            result: Err(e),
                        };
                    }
                };
                let addr = conn.broker().to_owned();
                let request = match fetch_request(
                    conn.versions(),
                    &job,
                    &sizes,
                    &epochs,
                    &fetch,
                    max_bytes,
                ) {
                    Ok(r) => r,
                    Err(e) => {
                        return FetchDone {
                            job,
                            broker_addr: addr.clone(),
                            result: Err(PoolError::Protocol {
                                broker: addr,
                                source: Arc::new(e),
                            }),
                        };
                    }
                };
                let result = conn.send(&request).await;
                FetchDone {
                    job,
                    broker_addr: addr,
                    result,
                }
            });
        }
    }

    /// A fetch response announced `size` bytes, above the `max` a
    /// connection accepts, and broke the connection (every fetch of the
    /// same partitions would break it again). Apache Kafka answers a
    /// Fetch with at most `max_bytes`, except that the first batch with
    /// data is always returned whole, however large. So: fetches to the
    /// broker ask for at most half the limit from now on, and when
    /// several partitions were in the fetch, they are fetched one at a
    /// time until each came back once; a single partition whose response
    /// is still too large at that size holds a batch that can never be
    /// fetched, and the stream stops saying which and what to change.
    fn on_oversized_response(&mut self, job: &FetchJob, broker: &str, size: i64, max: usize) {
        let cap = (max / 2).max(1);
        if let [(topic, _, partition, position)] = job.partitions.as_slice()
            && job.max_bytes <= cap
        {
            self.fail(MirrorError::BatchTooLarge {
                topic: topic.to_string(),
                partition: *partition,
                offset: *position,
                size,
                max,
                broker: broker.to_owned(),
            });
            return;
        }
        tracing::warn!(
            broker,
            size,
            max,
            asked = job.max_bytes,
            partitions = job.partitions.len(),
            "a fetch response was larger than kmirror accepts (receive.message.max.bytes); fetching at most half of that from this broker, and the partitions of that fetch one at a time to find the one with an oversized batch"
        );
        let oversized = self.oversized.entry(job.broker).or_default();
        oversized.cap = oversized.cap.min(cap);
        if job.partitions.len() > 1 {
            oversized.suspects = job
                .partitions
                .iter()
                .map(|(t, _, p, _)| (t.clone(), *p))
                .collect();
        }
        let retry_at = Instant::now() + self.ctx.config.produce.retry_backoff;
        for (topic, _, partition, _) in &job.partitions {
            if let Some(slot) = self.slots.get_mut(&(topic.clone(), *partition)) {
                slot.retry_at = Some(retry_at);
            }
        }
    }

    /// The leader epoch of a source partition in the metadata its leader
    /// was taken from (-1 if unknown), sent as the current leader epoch
    /// (KIP-320, Fetch v9+): a broker that is no longer the leader, or
    /// whose epoch differs, answers FENCED_LEADER_EPOCH or
    /// UNKNOWN_LEADER_EPOCH instead of data, and the metadata is refreshed.
    fn leader_epoch(&self, topic: &str, partition: i32) -> i32 {
        self.source_view
            .snapshot
            .as_ref()
            .and_then(|m| m.topics.get(topic))
            .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
            .map_or(-1, |p| p.leader_epoch)
    }

    pub(super) fn on_fetch(&mut self, done: FetchDone) {
        let FetchDone {
            job,
            broker_addr,
            result,
        } = done;
        self.fetch_brokers.remove(&job.broker);
        let mut positions: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for (topic, _, partition, position) in &job.partitions {
            if let Some(slot) = self.slots.get_mut(&(topic.clone(), *partition)) {
                slot.fetching = false;
            }
            positions.insert((topic.clone(), *partition), *position);
        }
        let backoff = self.ctx.config.produce.retry_backoff;
        match &result {
            Ok(_) => self.ctx.metrics.link_ok(Side::Source),
            Err(e) => self.ctx.metrics.link_failed(Side::Source, e),
        }
        let response = match result {
            Ok(r) => r,
            Err(e) if e.frame_too_large().is_some() => {
                let (size, max) = e.frame_too_large().unwrap_or_default();
                self.on_oversized_response(&job, &broker_addr, size, max);
                return;
            }
            Err(e) => {
                tracing::warn!(broker = job.broker, error = %e, "fetch failed; retrying");
                let stale = e.invalidates_metadata() || !e.is_retriable();
                if stale {
                    self.ctx.source.invalidate_metadata();
                }
                for (topic, _, partition, _) in &job.partitions {
                    if let Some(slot) = self.slots.get_mut(&(topic.clone(), *partition)) {
                        slot.retry_at = Some(Instant::now() + backoff);
                        if stale {
                            slot.leader = None;
                        }
                    }
                }
                return;
            }
        };
        if let Some(throttle) =
            self.fetch_throttle
                .note(job.broker, response.throttle_time_ms, Instant::now())
        {
            self.ctx.metrics.throttled(Side::Source, throttle);
            tracing::debug!(broker = %broker_addr, ?throttle, "the source broker throttles kmirror's fetches (quota): the next fetch from it waits");
        }
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            tracing::warn!(broker = %broker_addr, %error, "fetch refused; retrying");
            for (topic, _, partition, _) in &job.partitions {
                if let Some(slot) = self.slots.get_mut(&(topic.clone(), *partition)) {
                    slot.retry_at = Some(Instant::now() + backoff);
                }
            }
            return;
        }
        if let [(topic, _, partition, _)] = job.partitions.as_slice()
            && let Some(oversized) = self.oversized.get_mut(&job.broker)
            && oversized
                .suspects
                .front()
                .is_some_and(|(t, p)| t == topic && p == partition)
        {
            // Its response fit: not the partition with the large batch.
            oversized.suspects.pop_front();
            if oversized.suspects.is_empty() {
                tracing::info!(broker = %broker_addr, "the oversized fetch response is not seen again; fetching the broker's partitions together again");
            }
        }
        let total: usize = response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .sum();
        self.ctx.metrics.add_fetched(total);
        if total > 0 {
            tracing::trace!(broker = %broker_addr, bytes = total, "fetched");
        }
        let charge = (total > 0).then(|| self.ctx.budget.charge(total));
        for topic in response.topics {
            let name: Arc<str> = match &topic.topic {
                FetchTopicRef::Name(n) => match job.partitions.iter().find(|(t, ..)| **t == **n) {
                    Some((t, ..)) => t.clone(),
                    None => continue,
                },
                FetchTopicRef::Id(id) => match job.partitions.iter().find(|(_, i, ..)| i == id) {
                    Some((t, ..)) => t.clone(),
                    None => continue,
                },
            };
            for p in topic.partitions {
                let key = (name.clone(), p.partition_index);
                let Some(&asked) = positions.get(&key) else {
                    continue;
                };
                if self.slots.get(&key).is_none_or(|s| s.position != asked) {
                    continue;
                }
                self.on_fetched_partition(&key, &broker_addr, p, charge.as_ref());
                if self.fatal.is_some() {
                    return;
                }
            }
        }
    }

    pub(super) fn on_fetched_partition(
        &mut self,
        key: &TopicPartition,
        broker: &str,
        p: FetchPartition,
        charge: Option<&Arc<Charge>>,
    ) {
        let config = self.ctx.config.clone();
        let backoff = config.produce.retry_backoff;
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        if slot.revoked {
            // Being given up: its new owner fetches this from the offset
            // committed at the handover.
            return;
        }
        if partition_error(&p).is_none()
            && let Some(diverging) = p.diverging_epoch
        {
            // KIP-320: the leader's log diverged from what was fetched.
            // Go on from where the shared epoch ends (once nothing below
            // the old position is in flight), as Java's consumer does.
            // No epoch of the leader's is at most ours (end offset -1):
            // everything it holds diverged, so go on from its log start.
            let to = if diverging.end_offset >= 0 {
                diverging.end_offset
            } else {
                p.log_start_offset.max(0)
            };
            if to < slot.position && !slot.resetting {
                slot.reset_to = Some(to);
                slot.truncated = true;
            }
            slot.last_fetched_epoch = diverging.epoch;
            return;
        }
        if let Some(error) = partition_error(&p) {
            match error {
                ResponseError::OffsetOutOfRange => {
                    let reset = config.fetch.offset_reset;
                    if reset == OffsetReset::None {
                        let position = slot.position;
                        self.fail(MirrorError::NoStartOffset {
                            topic: key.0.to_string(),
                            partition: key.1,
                            why: format!("offset {position} is out of range on the source"),
                        });
                        return;
                    }
                    tracing::warn!(topic = %key.0, partition = key.1, position = slot.position, reset = ?reset,
                        "fetch position out of range on the source (data deleted by retention, or the topic was recreated); resetting per auto.offset.reset");
                    slot.resetting = true;
                    let cluster = self.ctx.source.clone();
                    let isolation = config.fetch.isolation;
                    let k = key.clone();
                    self.control.spawn(async move {
                        let result = admin::list_offsets(
                            &cluster,
                            Side::Source,
                            std::slice::from_ref(&k),
                            reset,
                            isolation,
                        )
                        .await
                        .and_then(|m| {
                            m.get(&k).copied().ok_or_else(|| {
                                MirrorError::Internal(format!(
                                    "ListOffsets did not answer for {}-{}",
                                    k.0, k.1
                                ))
                            })
                        });
                        ControlDone::Reset(k, result)
                    });
                }
                e if e.is_retriable()
                    || matches!(
                        e,
                        ResponseError::NotLeaderOrFollower
                            | ResponseError::UnknownTopicOrPartition
                            | ResponseError::UnknownTopicId
                            | ResponseError::FencedLeaderEpoch
                            | ResponseError::UnknownLeaderEpoch
                    ) =>
                {
                    tracing::debug!(topic = %key.0, partition = key.1, %broker, error = %e, "fetch partition error; refreshing metadata");
                    slot.leader = None;
                    slot.retry_at = Some(Instant::now() + backoff);
                    self.ctx.source.invalidate_metadata();
                }
                e => {
                    self.fail(MirrorError::Refused {
                        side: Side::Source,
                        what: format!("Fetch of {}-{} from broker {broker}", key.0, key.1),
                        error: e,
                        hint: matches!(e, ResponseError::TopicAuthorizationFailed)
                            .then(|| "grant the mirror's principal Read on the topic".to_owned()),
                    });
                }
            }
            return;
        }
        let end = if config.fetch.isolation == crate::fetch_plan::IsolationLevel::ReadCommitted
            && p.last_stable_offset >= 0
        {
            p.last_stable_offset
        } else {
            p.high_watermark
        };
        slot.end = end;
        let policy = PassthroughPolicy::at(slot.position)
            .with_target_codec(config.produce.compression)
            .with_max_batch_bytes(slot.max_batch_bytes);
        let settings = FetchSettings::default()
            .with_isolation(config.fetch.isolation)
            .with_check_crcs(config.fetch.check_crcs);
        let plan = match plan_fetch_partition(&p, &policy, settings) {
            Ok(plan) => plan,
            Err(FetchPlanError::BatchLargerThanFetch {
                needed_at_least,
                position,
            }) => {
                let Some(raised) = raised_fetch_size(needed_at_least, slot.fetch_size) else {
                    let source = FetchPlanError::BatchLargerThanFetch {
                        needed_at_least,
                        position,
                    };
                    self.fail(MirrorError::SourceData {
                        topic: key.0.to_string(),
                        partition: key.1,
                        broker: broker.to_owned(),
                        source,
                    });
                    return;
                };
                tracing::info!(topic = %key.0, partition = key.1, position, needed_at_least, fetch_size = raised,
                    "a batch is larger than max.partition.fetch.bytes; fetching this partition with a larger size");
                slot.fetch_size = raised;
                return;
            }
            Err(source) => {
                self.fail(MirrorError::SourceData {
                    topic: key.0.to_string(),
                    partition: key.1,
                    broker: broker.to_owned(),
                    source,
                });
                return;
            }
        };
        // The first batch's time, for the lag in seconds.
        let mut first_timestamp = None;
        if let Some(records) = &p.records {
            let mut last_epoch = None;
            for entry in kmirror_protocol::RecordBatches::new(records.clone()).flatten() {
                if let kmirror_protocol::record::LogEntry::Batch(batch) = entry {
                    let header = batch.header();
                    last_epoch = Some(header.partition_leader_epoch);
                    first_timestamp.get_or_insert_with(|| source_timestamp(header));
                }
            }
            if let Some(epoch) = last_epoch.filter(|e| *e >= 0) {
                slot.last_fetched_epoch = epoch;
            }
        }
        let counters = plan.counters();
        let route = slot.route;
        // Placing records by key decodes every batch, qualifying or not.
        let (passthrough, slow) = match route {
            Route::SamePartition => (counters.passthrough_batches, counters.slow_path_batches),
            Route::ByKey { .. } => (0, counters.passthrough_batches + counters.slow_path_batches),
        };
        self.ctx
            .metrics
            .add_plan(passthrough, slow, counters.skipped_batches);
        let skipped_offsets: i64 = plan
            .steps()
            .iter()
            .filter_map(|step| match step {
                PlanStep::Skip { range, .. } => Some(range.end - range.start),
                _ => None,
            })
            .sum();
        self.ctx.metrics.skipped(
            &key.0,
            u64::try_from(skipped_offsets).unwrap_or(0),
            counters.skipped_bytes,
            counters.skipped_batches,
        );
        let next = plan.next_position();
        if let Some(ts) = first_timestamp
            && next > slot.position
        {
            self.ctx.metrics.fetched_up_to(&key.0, key.1, next, ts);
        }
        if next > slot.position {
            self.fetch_order.returned_data(key);
        }
        if let Some(slot) = self.slots.get_mut(key) {
            slot.position = next;
            let unsent = Arc::new(Unsent);
            slot.unsent = Arc::downgrade(&unsent);
            let held = Held {
                _charge: charge.cloned(),
                _rebuilt: None,
                unsent: Some(unsent),
            };
            slot.staged
                .extend(plan.into_steps().into_iter().map(|step| StagedStep {
                    staged: Staged::Step(step),
                    held: held.clone(),
                }));
        }
        self.start_jobs();
        self.drain_staged(key);
    }
}

/// The time a batch's records were written on the source, as the lag in
/// seconds and the replication latency count it: the append time for
/// LogAppendTime batches, else the first record's create time (ms since
/// the Unix epoch; -1 when the producer set none).
pub(super) fn source_timestamp(header: &kmirror_protocol::record::BatchHeader) -> i64 {
    match header.timestamp_type() {
        kmirror_protocol::record::TimestampType::LogAppendTime => header.max_timestamp,
        kmirror_protocol::record::TimestampType::CreateTime => header.base_timestamp,
    }
}

/// Builds the Fetch request for `job` at the connection's version: topics
/// by name up to v12, by id from v13; the partitions in the job's order,
/// each with its size, (v9+) its current leader epoch and (v12+) the epoch
/// of the last batch fetched, so that the leader answers a diverging epoch
/// if its log was truncated below the position (KIP-320); no fetch session
/// (a full fetch each time).
fn fetch_request(
    versions: &NegotiatedVersions,
    job: &FetchJob,
    sizes: &[usize],
    epochs: &[(i32, i32)],
    fetch: &crate::engine::config::FetchConfig,
    max_bytes: usize,
) -> Result<kp::FetchRequest, kmirror_protocol::ProtocolError> {
    let version = versions.version(ApiKey::Fetch)?;
    let mut topics: Vec<kp::fetch_request::FetchTopic> = Vec::new();
    for (i, ((topic, id, partition, position), size)) in
        job.partitions.iter().zip(sizes).enumerate()
    {
        let mut part = kp::fetch_request::FetchPartition::default()
            .with_partition(*partition)
            .with_fetch_offset(*position)
            .with_partition_max_bytes(i32::try_from(*size).unwrap_or(i32::MAX));
        let (current, last_fetched) = epochs.get(i).copied().unwrap_or((-1, -1));
        if version >= 9 {
            part = part.with_current_leader_epoch(current);
        }
        if version >= 12 {
            part = part.with_last_fetched_epoch(last_fetched);
        }
        if version >= 5 {
            part = part.with_log_start_offset(-1);
        }
        let existing = topics.iter_mut().find(|t| {
            if version >= 13 {
                t.topic_id == uuid::Uuid::from_bytes(*id)
            } else {
                *t.topic.0 == **topic
            }
        });
        match existing {
            Some(t) => t.partitions.push(part),
            None => {
                let mut t = kp::fetch_request::FetchTopic::default().with_partitions(vec![part]);
                if version >= 13 {
                    t = t.with_topic_id(uuid::Uuid::from_bytes(*id));
                } else {
                    t = t.with_topic(TopicName(StrBytes::from_string(topic.to_string())));
                }
                topics.push(t);
            }
        }
    }
    let mut request = kp::FetchRequest::default()
        .with_max_wait_ms(i32::try_from(fetch.max_wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(i32::try_from(fetch.min_bytes).unwrap_or(i32::MAX))
        .with_max_bytes(i32::try_from(max_bytes).unwrap_or(i32::MAX))
        .with_isolation_level(fetch.isolation.wire_value())
        .with_topics(topics);
    if version < 15 {
        request = request.with_replica_id(BrokerId(-1));
    }
    Ok(request)
}

/// The error the broker reports for one fetched partition. Only the
/// broker's code decides: right after an election Apache Kafka's new leader
/// reports a high-water mark below its log end until the followers catch
/// up, and answers OFFSET_OUT_OF_RANGE only past the log end, so a position
/// above the high-water mark with no error means "nothing yet": wait.
fn partition_error(p: &FetchPartition) -> Option<ResponseError> {
    ResponseError::try_from_code(p.error_code)
}

/// The fetch size for a partition whose batch at the fetch position needs
/// at least `needed_at_least` bytes while fetched with `current`: the next
/// power of two, at least double, at most [`MAX_PARTITION_FETCH`] (or
/// `current`, when configured above it). `None` when no larger size can
/// hold the batch (the partition then stops with a clear error). Total:
/// no overflow, no panic, whatever the sizes.
fn raised_fetch_size(needed_at_least: usize, current: usize) -> Option<usize> {
    let cap = MAX_PARTITION_FETCH.max(current);
    if needed_at_least > cap {
        return None;
    }
    let raised = needed_at_least
        .checked_next_power_of_two()
        .unwrap_or(cap)
        .max(current.saturating_mul(2))
        .min(cap);
    (raised > current && raised >= needed_at_least).then_some(raised)
}

/// The most one fetch asks for: `fetch.max.bytes`, capped so that one
/// fetch per stream and per source broker, all in flight at once, reserve
/// at most half of the budget (`budget`), never below
/// [`MIN_FETCH_SHARE`]. Sized per stream only, the fetches of a stream to
/// its first two brokers took the whole budget, and a third broker's
/// partitions were never fetched again (with a lag of 0 shown for them).
fn fetch_share(max_bytes: u32, budget: usize, streams: usize, brokers: usize) -> usize {
    let limit = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let fetches = streams.max(1).saturating_mul(brokers.max(1));
    let share = (budget / fetches.saturating_mul(2)).max(MIN_FETCH_SHARE);
    limit.min(share).max(1)
}

/// A source broker whose Fetch response was larger than a connection
/// accepts (see `Stream::on_oversized_response`).
#[derive(Debug)]
pub(super) struct Oversized {
    /// The most a fetch to it asks for from now on.
    pub(super) cap: usize,
    /// The partitions that may hold the oversized batch, fetched alone in
    /// this order until each came back once.
    pub(super) suspects: VecDeque<TopicPartition>,
}

impl Default for Oversized {
    fn default() -> Self {
        Self {
            cap: usize::MAX,
            suspects: VecDeque::new(),
        }
    }
}

/// The order of each broker's partitions in its fetches, rotated as the
/// Java consumer rotates it, and the order in which brokers get their
/// fetch when the budget is short (round robin).
///
/// On Fetch v3 and later Apache Kafka fills a response in request order up
/// to `fetch.max.bytes` (only the first partition with data may exceed it,
/// with one batch), so with a fixed order the last partitions of a busy
/// broker starve. A partition that returned data goes to the back of the
/// order; partitions that returned nothing keep their place in front (a
/// partition never seen sorts first, in key order).
#[derive(Debug, Default)]
pub(super) struct FetchOrder {
    /// When each partition last returned data (a counter, not a clock).
    turns: BTreeMap<TopicPartition, u64>,
    next_turn: u64,
    /// The broker whose fetch started last.
    last_broker: Option<i32>,
}

impl FetchOrder {
    /// Sorts one fetch's partitions: least recently served first (stable,
    /// so ties keep the order given).
    pub(super) fn arrange(&self, partitions: &mut [FetchedPartition]) {
        partitions.sort_by_cached_key(|(topic, _, partition, _)| {
            self.turns
                .get(&(topic.clone(), *partition))
                .copied()
                .unwrap_or(0)
        });
    }

    /// Records that `key` returned data: it goes to the back of the order.
    pub(super) fn returned_data(&mut self, key: &TopicPartition) {
        self.next_turn += 1;
        self.turns.insert(key.clone(), self.next_turn);
    }

    /// The brokers to fetch from, in the order they get the budget: those
    /// after the broker whose fetch started last first, then the rest
    /// (each once, in id order within each part).
    pub(super) fn brokers_in_turn(&self, brokers: impl IntoIterator<Item = i32>) -> Vec<i32> {
        let mut brokers: Vec<i32> = brokers.into_iter().collect();
        brokers.sort_unstable();
        brokers.dedup();
        if let Some(last) = self.last_broker {
            let split = brokers.partition_point(|b| *b <= last);
            brokers.rotate_left(split);
        }
        brokers
    }

    /// Records that a fetch to `broker` started.
    pub(super) fn started(&mut self, broker: i32) {
        self.last_broker = Some(broker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(error_code: i16, high_watermark: i64) -> FetchPartition {
        FetchPartition {
            partition_index: 0,
            error_code,
            high_watermark,
            last_stable_offset: high_watermark,
            log_start_offset: 0,
            aborted_transactions: None,
            preferred_read_replica: -1,
            records: None,
            diverging_epoch: None,
        }
    }

    /// Right after an election Apache Kafka's new leader reports a
    /// high-water mark below its log end; a caught-up mirror fetches above
    /// it and must wait, not reset (issue 13, item 1).
    #[test]
    fn a_position_above_the_high_water_mark_is_not_out_of_range() {
        // The fetch position (100) is above the high-water mark (90): no
        // error, so nothing to do but wait.
        let waiting = answer(0, 90);
        assert!(100 > waiting.high_watermark);
        assert_eq!(partition_error(&waiting), None);
        assert_eq!(partition_error(&answer(0, 100)), None);
        assert_eq!(
            partition_error(&answer(ResponseError::OffsetOutOfRange.code(), 90)),
            Some(ResponseError::OffsetOutOfRange)
        );
        assert_eq!(
            partition_error(&answer(ResponseError::NotLeaderOrFollower.code(), -1)),
            Some(ResponseError::NotLeaderOrFollower)
        );
    }

    /// Raising the fetch size for an oversized batch never panics, always
    /// grows or refuses, and never goes past the cap unless configured
    /// there (issue 13, item 6).
    #[test]
    fn raising_the_fetch_size_is_total() {
        const MIB: usize = 1 << 20;
        // The ordinary case: the next power of two, at least double.
        assert_eq!(raised_fetch_size(3 * MIB, MIB), Some(4 * MIB));
        assert_eq!(raised_fetch_size(MIB + 1, MIB), Some(2 * MIB));
        // max.partition.fetch.bytes above half the cap.
        assert_eq!(raised_fetch_size(40 * MIB, 33 * MIB), Some(64 * MIB));
        // A second oversized batch at the cap: no further raise.
        assert_eq!(raised_fetch_size(70 * MIB, 64 * MIB), None);
        // Configured above the cap.
        assert_eq!(raised_fetch_size(130 * MIB, 100 * MIB), None);
        // A batch bigger than the cap: refused at once.
        assert_eq!(raised_fetch_size(65 * MIB, MIB), None);
        // Hostile sizes.
        assert_eq!(raised_fetch_size(usize::MAX, MIB), None);
        assert_eq!(raised_fetch_size(usize::MAX, usize::MAX), None);
        for current in [
            1,
            MIB,
            31 * MIB,
            32 * MIB,
            33 * MIB,
            63 * MIB,
            64 * MIB,
            200 * MIB,
        ] {
            for needed in [
                current + 1,
                2 * current,
                64 * MIB,
                64 * MIB + 1,
                usize::MAX / 2,
            ] {
                if let Some(raised) = raised_fetch_size(needed, current) {
                    assert!(
                        raised > current && raised >= needed,
                        "{needed} {current} {raised}"
                    );
                    assert!(raised <= MAX_PARTITION_FETCH.max(current));
                }
            }
        }
    }

    /// From Fetch v9 each partition carries its leader epoch from the
    /// metadata (KIP-320), in the order the job lists the partitions.
    #[test]
    fn the_fetch_carries_the_current_leader_epochs_in_the_jobs_order() {
        use kmirror_protocol::messages::api_versions::{ApiVersionRange, ApiVersionsResponse};
        let versions = |max: i16| {
            NegotiatedVersions::negotiate(&ApiVersionsResponse {
                error_code: 0,
                api_keys: vec![ApiVersionRange {
                    api_key: ApiKey::Fetch as i16,
                    min_version: 4,
                    max_version: max,
                }],
                throttle_time_ms: 0,
            })
        };
        let job = FetchJob {
            broker: 1,
            partitions: vec![
                (Arc::from("t"), [1; 16], 2, 10),
                (Arc::from("u"), [2; 16], 0, 20),
                (Arc::from("t"), [1; 16], 0, 30),
            ],
            max_bytes: 1000,
            _reservation: MemoryBudget::new(1 << 20).charge(1),
        };
        let fetch = crate::engine::config::FetchConfig::new("g");
        let sizes = [100, 200, 300];
        let epochs = [(7, 6), (3, 2), (5, -1)];
        for max in [8, 12, 16] {
            let v = versions(max).version(ApiKey::Fetch).unwrap();
            let request =
                fetch_request(&versions(max), &job, &sizes, &epochs, &fetch, 1000).unwrap();
            let got: Vec<(i32, i64, i32, i32, i32)> = request
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| {
                    (
                        p.partition,
                        p.fetch_offset,
                        p.partition_max_bytes,
                        p.current_leader_epoch,
                        p.last_fetched_epoch,
                    )
                })
                .collect();
            let epoch = |e: i32| if v >= 9 { e } else { -1 };
            // The last fetched epoch (v12+) lets the leader answer a
            // diverging epoch after an unclean election (KIP-320).
            let last = |e: i32| if v >= 12 { e } else { -1 };
            assert_eq!(
                got,
                vec![
                    (2, 10, 100, epoch(7), last(6)),
                    (0, 30, 300, epoch(5), last(-1)),
                    (0, 20, 200, epoch(3), last(2))
                ],
                "Fetch v{v}"
            );
        }
    }

    /// One stream fetching from three source brokers with the defaults
    /// (64 MiB budget, fetch.max.bytes 50 MiB): the three fetches in flight
    /// at once fit in half the budget. Sized per stream only (32 MiB each),
    /// two of them took it all and the third broker was never fetched.
    #[test]
    fn one_fetch_per_stream_and_broker_fits_in_half_the_budget() {
        const MIB: usize = 1 << 20;
        let budget = 64 * MIB;
        let max = 50 * 1024 * 1024;
        for streams in 1..=8 {
            for brokers in 1..=12 {
                let share = fetch_share(max, budget, streams, brokers);
                assert!(share >= MIN_FETCH_SHARE.min(50 * MIB));
                if share > MIN_FETCH_SHARE {
                    assert!(
                        share * streams * brokers <= budget / 2,
                        "{streams} streams, {brokers} brokers: {share}"
                    );
                }
            }
        }
        assert_eq!(fetch_share(max, budget, 1, 3), budget / 6);
        assert_eq!(fetch_share(max, budget, 1, 1), 32 * MIB);
        assert_eq!(fetch_share(1000, budget, 1, 3), 1000);
        assert_eq!(fetch_share(max, 0, 4, 3), MIN_FETCH_SHARE);
        assert_eq!(fetch_share(max, budget, 0, 0), 32 * MIB);
    }

    /// When the budget holds fewer fetches than there are brokers, the
    /// brokers take turns: a fetch that keeps coming back from broker 1
    /// does not keep broker 3 out (it did when brokers went in id order).
    #[test]
    fn brokers_take_turns_when_the_budget_is_short() {
        let mut order = FetchOrder::default();
        assert_eq!(order.brokers_in_turn([3, 1, 2]), vec![1, 2, 3]);
        order.started(1);
        assert_eq!(order.brokers_in_turn([1, 2, 3]), vec![2, 3, 1]);
        order.started(3);
        assert_eq!(order.brokers_in_turn([1, 2, 3]), vec![1, 2, 3]);
        order.started(2);
        assert_eq!(order.brokers_in_turn([1, 3]), vec![3, 1]);
        assert_eq!(order.brokers_in_turn([]), Vec::<i32>::new());

        // Room for two fetches, three brokers always with data to fetch;
        // the oldest fetch in flight answers first.
        let mut order = FetchOrder::default();
        let mut in_flight: VecDeque<i32> = VecDeque::new();
        let mut served = BTreeMap::<i32, u32>::new();
        for _ in 0..30 {
            let idle = [1, 2, 3].into_iter().filter(|b| !in_flight.contains(b));
            for broker in order.brokers_in_turn(idle) {
                if in_flight.len() == 2 {
                    break;
                }
                order.started(broker);
                in_flight.push_back(broker);
                *served.entry(broker).or_default() += 1;
            }
            in_flight.pop_front();
        }
        for broker in [1, 2, 3] {
            let n = served.get(&broker).copied().unwrap_or(0);
            assert!(n >= 9, "broker {broker} fetched {n} times: {served:?}");
        }
    }

    fn key(p: i32) -> TopicPartition {
        (Arc::from("t"), p)
    }

    /// Fetches of one broker where every partition always has more data
    /// than a response holds: Apache Kafka (Fetch v3+) fills the response
    /// in request order up to fetch.max.bytes, so only the first partitions
    /// get data. Rotating as the Java consumer does serves every partition
    /// (issue 13, item 5).
    #[test]
    fn busy_partitions_take_turns_at_the_front_of_a_fetch() {
        const PARTITIONS: i32 = 4;
        // Each partition has 1 MB waiting; a response holds 1.5 MB.
        const RESPONSE: usize = 1_500_000;
        const BATCH: usize = 1_000_000;
        let mut order = FetchOrder::default();
        let mut served = [0u32; PARTITIONS as usize];
        for _ in 0..40 {
            let mut request: Vec<FetchedPartition> = (0..PARTITIONS)
                .map(|p| (Arc::from("t"), [0; 16], p, 0))
                .collect();
            order.arrange(&mut request);
            let mut room = RESPONSE;
            let mut first = true;
            for (_, _, p, _) in &request {
                // The first partition gets its batch whatever the size;
                // later ones only what fits.
                if first || BATCH <= room {
                    room = room.saturating_sub(BATCH);
                    first = false;
                    served[usize::try_from(*p).unwrap()] += 1;
                    order.returned_data(&key(*p));
                }
            }
        }
        for (p, n) in served.iter().enumerate() {
            assert!(
                *n >= 9,
                "partition {p} was served {n} times in 40 fetches: {served:?}"
            );
        }
    }
}
