//! KIP-848's consumer group protocol (`group.protocol=consumer`, Apache
//! Kafka 4.0 and newer): one request, ConsumerGroupHeartbeat, carries the
//! subscription and the partitions kmirror owns; the broker computes the
//! assignment (`group.remote.assignor`) and hands each member its target
//! in its heartbeat answers.
//!
//! Reconciliation, as Java's consumer does it: partitions the target
//! leaves out are given up first (fetching stopped, in-flight batches
//! acknowledged, offsets committed), then reported in the next heartbeat;
//! new partitions start at once. The broker hands a partition to its new
//! owner only once the old one reported it released, so no partition is
//! ever mirrored by two members. Commits carry the member epoch as their
//! generation (OffsetCommit v9+).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{self as kp, ApiKey, GroupId, TopicName};
use kmirror_protocol::ResponseError;
use tokio::sync::watch;

use super::{Backoff, MemberCore, Membership, describe, millis, stopped, str_bytes};
use crate::engine::admin::TopicPartition;
use crate::engine::error::{MirrorError, response_error_is_transient};

/// The member epoch that joins the group.
const JOIN_EPOCH: i32 = 0;
/// The member epoch that leaves it.
const LEAVE_EPOCH: i32 = -1;
/// The member epoch with which a static member leaves for a restart (its
/// partitions wait for it until the session times out).
const STATIC_LEAVE_EPOCH: i32 = -2;
/// The longest a leaving heartbeat may take.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the source's coordinator offers ConsumerGroupHeartbeat.
pub(super) async fn offered(core: &MemberCore) -> Result<bool, MirrorError> {
    let mut backoff = Backoff::default();
    loop {
        match core.connection().await {
            Ok(conn) => {
                return Ok(conn
                    .versions()
                    .version(ApiKey::ConsumerGroupHeartbeat)
                    .is_ok());
            }
            Err(e) if e.is_transient() => {
                core.source.invalidate_coordinator(&core.group);
                tokio::time::sleep(backoff.next()).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A KIP-848 member.
pub(super) struct ConsumerMember {
    core: MemberCore,
    member_id: String,
    epoch: i32,
    heartbeat_interval: Duration,
    /// What the last heartbeat that carried the full state reported, to
    /// send only what changed (null fields mean "unchanged").
    reported: Option<Reported>,
    /// Topic names by id, from the source's metadata.
    names: BTreeMap<[u8; 16], Arc<str>>,
}

/// The state the broker last heard.
#[derive(Clone, PartialEq, Eq)]
struct Reported {
    topics: Vec<String>,
    owned: BTreeSet<TopicPartition>,
}

impl ConsumerMember {
    pub(super) fn new(core: MemberCore) -> Self {
        let heartbeat_interval = core.config.heartbeat_interval;
        Self {
            core,
            member_id: new_member_id(),
            epoch: JOIN_EPOCH,
            heartbeat_interval,
            reported: None,
            names: BTreeMap::new(),
        }
    }

    fn group(&self) -> &str {
        &self.core.group
    }

    /// Heartbeats until `stop`, reconciling every assignment the broker
    /// hands out; then leaves.
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), MirrorError> {
        let result = self.run_until_stopped(&mut stop).await;
        self.leave().await;
        result
    }

    async fn run_until_stopped(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), MirrorError> {
        let mut backoff = Backoff::default();
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = stopped(stop) => return Ok(()),
                _ = tokio::time::sleep_until(next) => {}
                changed = self.core.subscribed.changed() => {
                    if changed.is_ok() {
                        self.core.subscribed.mark_unchanged();
                        tracing::info!(group = %self.group(), "the selected topics changed: telling the broker");
                    }
                }
            }
            let beat = tokio::select! {
                biased;
                _ = stopped(stop) => return Ok(()),
                beat = self.heartbeat() => beat,
            };
            let response = match beat {
                Ok(r) => r,
                Err(e) if e.is_transient() => {
                    self.core.source.invalidate_coordinator(&self.core.group);
                    // The broker's answer is lost: send everything again.
                    self.reported = None;
                    let wait = backoff.next();
                    tracing::warn!(group = %self.group(), error = %e, retry_in = ?wait, "consumer group heartbeat failed; retrying");
                    next = tokio::time::Instant::now() + wait;
                    continue;
                }
                Err(e) => return Err(e),
            };
            next = tokio::time::Instant::now() + self.heartbeat_interval;
            match ResponseError::try_from_code(response.error_code) {
                None => backoff = Backoff::default(),
                Some(ResponseError::UnknownMemberId | ResponseError::FencedMemberEpoch) => {
                    let why = if response.error_code == ResponseError::UnknownMemberId.code() {
                        "the coordinator no longer knows kmirror (its session expired?)"
                    } else {
                        "kmirror's member epoch was fenced"
                    };
                    // A revocation the stopped engine no longer answers
                    // must not be waited for (as in the classic member).
                    tokio::select! {
                        biased;
                        _ = stopped(stop) => return Ok(()),
                        () = self.lose_all(why) => {}
                    }
                    next = tokio::time::Instant::now();
                    continue;
                }
                Some(error) if response_error_is_transient(error) => {
                    tracing::warn!(group = %self.group(), %error, "consumer group heartbeat refused; finding the coordinator again");
                    self.core.source.invalidate_coordinator(&self.core.group);
                    self.reported = None;
                    next = tokio::time::Instant::now() + backoff.next();
                    continue;
                }
                Some(error) => {
                    let detail = response
                        .error_message
                        .as_ref()
                        .map(|m| format!("ConsumerGroupHeartbeat ({m})"))
                        .unwrap_or_else(|| "ConsumerGroupHeartbeat".to_owned());
                    return Err(self.core.refused(&detail, error));
                }
            }
            if let Some(id) = response.member_id.as_ref().filter(|id| !id.is_empty()) {
                self.member_id = id.to_string();
            }
            let interval = u64::try_from(response.heartbeat_interval_ms).unwrap_or(0);
            if interval > 0 {
                self.heartbeat_interval = Duration::from_millis(interval);
                next = tokio::time::Instant::now() + self.heartbeat_interval;
            }
            let epoch_changed = response.member_epoch != self.epoch;
            self.epoch = response.member_epoch;
            if epoch_changed {
                self.core.state.send_replace(Some(Membership {
                    generation: self.epoch,
                    member_id: self.member_id.clone(),
                    group_instance_id: self.core.config.group_instance_id.clone(),
                }));
            }
            if let Some(assignment) = response.assignment {
                let reconciled = tokio::select! {
                    biased;
                    _ = stopped(stop) => return Ok(()),
                    reconciled = self.reconcile(assignment) => reconciled?,
                };
                if reconciled {
                    // Tell the broker what kmirror owns now, at once.
                    next = tokio::time::Instant::now();
                }
            }
        }
    }

    /// Moves to the broker's target assignment: gives up what it leaves
    /// out, starts what it adds. Returns whether the owned set changed.
    async fn reconcile(
        &mut self,
        assignment: kp::consumer_group_heartbeat_response::Assignment,
    ) -> Result<bool, MirrorError> {
        let mut target = BTreeSet::new();
        for tp in &assignment.topic_partitions {
            let id = *tp.topic_id.as_bytes();
            let Some(name) = self.topic_name(id).await? else {
                tracing::warn!(group = %self.group(), topic_id = %tp.topic_id, "assigned a topic the source's metadata does not show yet; taking it at the next heartbeat");
                self.reported = None;
                continue;
            };
            for p in &tp.partitions {
                target.insert((name.clone(), *p));
            }
        }
        let revoked: BTreeSet<TopicPartition> =
            self.core.owned.difference(&target).cloned().collect();
        let added: BTreeSet<TopicPartition> =
            target.difference(&self.core.owned).cloned().collect();
        if revoked.is_empty() && added.is_empty() {
            return Ok(false);
        }
        tracing::info!(group = %self.group(), member_epoch = self.epoch, member_id = %self.member_id,
            assigned = %describe(&target), added = added.len(), revoked = revoked.len(),
            "the broker assigned kmirror's partitions (KIP-848)");
        if !revoked.is_empty() {
            let args = self.beat_args();
            self.core
                .revoke_heartbeating(revoked, true, |_| args.request(None))
                .await;
        }
        self.core.assigned(added);
        Ok(true)
    }

    /// A topic's name by id, reading the source's metadata again when the
    /// id is new.
    async fn topic_name(&mut self, id: [u8; 16]) -> Result<Option<Arc<str>>, MirrorError> {
        if let Some(name) = self.names.get(&id) {
            return Ok(Some(name.clone()));
        }
        let metadata = self
            .core
            .source
            .refresh_metadata()
            .await
            .map_err(MirrorError::source)?;
        for topic in metadata.topics.values() {
            self.names
                .entry(topic.id)
                .or_insert_with(|| Arc::from(topic.name.as_str()));
        }
        Ok(self.names.get(&id).cloned())
    }

    /// Loses every partition without a commit, and joins again.
    async fn lose_all(&mut self, why: &str) {
        tracing::warn!(group = %self.group(), partitions = self.core.owned.len(), "{why}: its partitions are dropped without a commit and kmirror joins again");
        self.core.state.send_replace(None);
        let owned = std::mem::take(&mut self.core.owned);
        self.core.revoke(owned, false, || async {}).await;
        self.epoch = JOIN_EPOCH;
        self.reported = None;
    }

    fn beat_args(&self) -> BeatArgs {
        BeatArgs {
            group: self.core.group.clone(),
            member_id: self.member_id.clone(),
            epoch: self.epoch,
            instance_id: self.core.config.group_instance_id.clone(),
        }
    }

    /// One heartbeat with what changed since the broker last heard (all
    /// of it when joining or after a lost answer).
    async fn heartbeat(&mut self) -> Result<kp::ConsumerGroupHeartbeatResponse, MirrorError> {
        let conn = self.core.connection().await?;
        let now = Reported {
            topics: self.core.subscribed.borrow().keys().cloned().collect(),
            owned: self.core.owned.clone(),
        };
        let full = self.epoch == JOIN_EPOCH || self.reported.is_none();
        let changed = |f: &dyn Fn(&Reported) -> bool| full || self.reported.as_ref().is_none_or(f);
        let topics_changed = changed(&|r| r.topics != now.topics);
        let owned_changed = changed(&|r| r.owned != now.owned);
        let mut request = self.beat_args().request(None);
        if full {
            request = request
                .with_rebalance_timeout_ms(millis(self.core.config.max_poll_interval))
                .with_server_assignor(self.core.config.remote_assignor.as_deref().map(str_bytes));
        }
        if topics_changed {
            request = request.with_subscribed_topic_names(Some(
                now.topics.iter().map(|t| TopicName(str_bytes(t))).collect(),
            ));
        }
        if owned_changed {
            request = request.with_topic_partitions(Some(self.owned_by_id(&now.owned).await?));
        }
        let response = conn.send(&request).await.map_err(MirrorError::source)?;
        if response.error_code == 0 {
            self.reported = Some(now);
        }
        Ok(response)
    }

    /// The owned partitions as the request carries them: by topic id.
    async fn owned_by_id(
        &mut self,
        owned: &BTreeSet<TopicPartition>,
    ) -> Result<Vec<kp::consumer_group_heartbeat_request::TopicPartitions>, MirrorError> {
        let mut by_topic: BTreeMap<Arc<str>, Vec<i32>> = BTreeMap::new();
        for (t, p) in owned {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
        let mut out = Vec::with_capacity(by_topic.len());
        for (topic, partitions) in by_topic {
            let id = match self.names.iter().find(|(_, n)| **n == topic) {
                Some((id, _)) => *id,
                None => {
                    let metadata = self
                        .core
                        .source
                        .metadata()
                        .await
                        .map_err(MirrorError::source)?;
                    match metadata.topics.get(&*topic) {
                        Some(t) => t.id,
                        None => continue,
                    }
                }
            };
            out.push(
                kp::consumer_group_heartbeat_request::TopicPartitions::default()
                    .with_topic_id(uuid::Uuid::from_bytes(id))
                    .with_partitions(partitions),
            );
        }
        Ok(out)
    }

    /// Leaves the group (a static member with epoch -2: its partitions
    /// wait for its restart).
    async fn leave(&mut self) {
        self.core.state.send_replace(None);
        if self.epoch <= JOIN_EPOCH {
            return;
        }
        let epoch = if self.core.config.group_instance_id.is_some() {
            STATIC_LEAVE_EPOCH
        } else {
            LEAVE_EPOCH
        };
        let request = self.beat_args().request(Some(epoch));
        let send = async {
            let conn = self.core.connection().await?;
            conn.send(&request).await.map_err(MirrorError::source)
        };
        match tokio::time::timeout(LEAVE_TIMEOUT, send).await {
            Ok(Ok(_)) => tracing::info!(group = %self.group(), "left the consumer group"),
            Ok(Err(e)) => tracing::debug!(group = %self.group(), error = %e, "leaving failed"),
            Err(_) => tracing::debug!(group = %self.group(), "leaving did not complete in time"),
        }
    }
}

/// What every ConsumerGroupHeartbeat carries.
#[derive(Clone)]
struct BeatArgs {
    group: String,
    member_id: String,
    epoch: i32,
    instance_id: Option<String>,
}

impl BeatArgs {
    /// A heartbeat that changes nothing (`epoch` replaces the member's to
    /// leave).
    fn request(&self, epoch: Option<i32>) -> kp::ConsumerGroupHeartbeatRequest {
        kp::ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_member_id(str_bytes(&self.member_id))
            .with_member_epoch(epoch.unwrap_or(self.epoch))
            .with_instance_id(self.instance_id.as_deref().map(str_bytes))
            .with_rebalance_timeout_ms(-1)
    }
}

/// A member id for KIP-848 (from v1 the member makes its own): 22
/// characters of URL-safe base64 over 16 random bytes, like Java's
/// `Uuid.randomUuid().toString()`.
fn new_member_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let state = std::collections::hash_map::RandomState::new();
    let mut bits = [0u64; 2];
    for (i, word) in bits.iter_mut().enumerate() {
        let mut h = state.build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        *word = h.finish();
    }
    let value = (u128::from(bits[0]) << 64) | u128::from(bits[1]);
    (0..22)
        .filter_map(|i| ALPHABET.get(((value >> (i * 6)) & 63) as usize))
        .map(|c| char::from(*c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_22_url_safe_characters_and_differ() {
        let a = new_member_id();
        let b = new_member_id();
        assert_eq!(a.len(), 22);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, b);
    }
}
