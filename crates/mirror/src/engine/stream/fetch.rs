//! The fetch side of a stream: one Fetch in flight per source broker,
//! each asking for a fair share of the memory budget, and the plan of
//! every partition it returns.

use super::*;

impl Stream {
    /// The most one fetch may ask for: `fetch.max.bytes`, capped at a fair
    /// share of the budget so that every stream's long-polling fetch fits
    /// in it with room left for data waiting on the destination (a fetch
    /// reserves what it asks for until its response is in).
    pub(super) fn fetch_share(&self) -> usize {
        let limit = usize::try_from(self.ctx.config.fetch.max_bytes).unwrap_or(usize::MAX);
        let streams = self.ctx.config.streams.max(1);
        let share = (self.ctx.budget.limit() / (2 * streams)).max(MIN_FETCH_SHARE);
        limit.min(share).max(1)
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
                if let Some(c) = slot.ledger.committed() {
                    slot.ledger.reset(to);
                    // Keep the commit point known so a commit is only sent
                    // when it moves.
                    slot.ledger.mark_committed(c);
                } else {
                    slot.ledger.reset(to);
                }
                slot.position = to;
                slot.reset_to = None;
            }
        }
        let useful = self.useful_fetch();
        if self.budget_short() {
            return;
        }
        let mut by_broker: BTreeMap<i32, Vec<FetchedPartition>> = BTreeMap::new();
        for slot in self.slots.values() {
            let Some(leader) = slot.leader else { continue };
            if slot.fetching
                || slot.unsent.strong_count() > 0
                || slot.reset_to.is_some()
                || slot.resetting
                || slot.retry_at.is_some_and(|t| now < t)
                || self.fetch_brokers.contains(&leader)
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
        for (broker, partitions) in by_broker {
            let available = self.ctx.budget.available();
            if available < useful {
                break;
            }
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
            let cluster = self.ctx.source.clone();
            let fetch = self.ctx.config.fetch.clone();
            let max_bytes = self.fetch_share().min(available).max(1);
            // Held until the response is in and charged for what it holds,
            // so fetches in flight never promise more than the budget.
            let reservation = self.ctx.budget.charge(max_bytes);
            let job = FetchJob {
                broker,
                partitions,
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
                let request = match fetch_request(conn.versions(), &job, &sizes, &fetch, max_bytes)
                {
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

    pub(super) fn on_fetch(&mut self, done: FetchDone) {
        let FetchDone {
            job,
            broker_addr,
            result,
        } = done;
        self.fetch_brokers.remove(&job.broker);
        let mut positions: HashMap<TopicPartition, i64> = HashMap::new();
        for (topic, _, partition, position) in &job.partitions {
            if let Some(slot) = self.slots.get_mut(&(topic.clone(), *partition)) {
                slot.fetching = false;
            }
            positions.insert((topic.clone(), *partition), *position);
        }
        let backoff = self.ctx.config.produce.retry_backoff;
        let response = match result {
            Ok(r) => r,
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
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            tracing::warn!(broker = %broker_addr, %error, "fetch refused; retrying");
            for (topic, _, partition, _) in &job.partitions {
                if let Some(slot) = self.slots.get_mut(&(topic.clone(), *partition)) {
                    slot.retry_at = Some(Instant::now() + backoff);
                }
            }
            return;
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
        p: kmirror_protocol::messages::fetch::FetchPartition,
        charge: Option<&Arc<Charge>>,
    ) {
        let config = self.ctx.config.clone();
        let backoff = config.produce.retry_backoff;
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        // Apache Kafka answers OFFSET_OUT_OF_RANGE for a position past the
        // high-water mark; some compatible brokers return nothing instead,
        // which would stall the partition for ever.
        let past_the_end =
            p.error_code == 0 && p.high_watermark >= 0 && slot.position > p.high_watermark;
        let code = if past_the_end {
            ResponseError::OffsetOutOfRange.code()
        } else {
            p.error_code
        };
        if let Some(error) = ResponseError::try_from_code(code) {
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
                let raised = needed_at_least
                    .next_power_of_two()
                    .clamp(slot.fetch_size * 2, MAX_PARTITION_FETCH);
                if raised <= slot.fetch_size {
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
                } else {
                    tracing::info!(topic = %key.0, partition = key.1, position, needed_at_least, fetch_size = raised,
                        "a batch is larger than max.partition.fetch.bytes; fetching this partition with a larger size");
                    slot.fetch_size = raised;
                }
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
        let next = plan.next_position();
        if let Some(slot) = self.slots.get_mut(key) {
            slot.position = next;
            let unsent = Arc::new(Unsent);
            slot.unsent = Arc::downgrade(&unsent);
            let held = Held {
                _charge: charge.cloned(),
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

/// Builds the Fetch request for `job` at the connection's version: topics
/// by name up to v12, by id from v13; no fetch session (a full fetch each
/// time).
fn fetch_request(
    versions: &NegotiatedVersions,
    job: &FetchJob,
    sizes: &[usize],
    fetch: &crate::engine::config::FetchConfig,
    max_bytes: usize,
) -> Result<kp::FetchRequest, kmirror_protocol::ProtocolError> {
    let version = versions.version(ApiKey::Fetch)?;
    let mut topics: Vec<kp::fetch_request::FetchTopic> = Vec::new();
    for ((topic, id, partition, position), size) in job.partitions.iter().zip(sizes) {
        let mut part = kp::fetch_request::FetchPartition::default()
            .with_partition(*partition)
            .with_fetch_offset(*position)
            .with_partition_max_bytes(i32::try_from(*size).unwrap_or(i32::MAX));
        if version >= 9 {
            part = part.with_current_leader_epoch(-1);
        }
        if version >= 12 {
            part = part.with_last_fetched_epoch(-1);
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
