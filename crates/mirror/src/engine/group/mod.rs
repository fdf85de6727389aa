//! kmirror's membership in its consumer group on the source.
//!
//! kmirror joins `group.id` as an ordinary consumer-protocol member (the
//! `range` protocol, subscribed to the mirrored topics), assigns every
//! partition to itself, and heartbeats while it runs. Standard tools then
//! show the group as active with one member, and a second kmirror (or any
//! consumer) started on the same group is refused by the check at start
//! ([`super::admin::ensure_group_idle`]). If another member joins while
//! kmirror runs, kmirror stops: two readers of one group would copy
//! records twice and overwrite each other's commits. Commits carry the
//! member id and generation, as Kafka requires of a group with members
//! (a standalone commit, generation -1, is taken only by an empty group:
//! the final commit falls back to it while the membership is missing).

#[cfg_attr(not(test), allow(dead_code))] // used by the group member (next commit)
pub(crate) mod assignor;

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{self as kp, ApiKey, GroupId};
use kafka_protocol::protocol::StrBytes;
use kmirror_pool::{BrokerConnection, Cluster, PoolError};
use kmirror_protocol::ResponseError;
use tokio::sync::watch;

use super::error::{MirrorError, Side, response_error_is_transient};

/// The protocol type of consumer groups.
const PROTOCOL_TYPE: &str = "consumer";
/// The assignment strategy kmirror announces.
const PROTOCOL_NAME: &str = "range";
/// How long the coordinator waits for a heartbeat before it drops kmirror.
pub(crate) const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How often kmirror heartbeats.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
/// How long a rebalance may take.
pub(crate) const REBALANCE_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest a LeaveGroup may take (it is best effort).
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// JoinGroup rounds in a row answered REBALANCE_IN_PROGRESS (or an
/// outdated generation) before kmirror gives up: another consumer keeps
/// joining the group.
const MAX_CONTENDED_JOINS: u32 = 20;

/// What one JoinGroup/SyncGroup round came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinStep {
    /// kmirror holds the group.
    Joined,
    /// Go again at once (a member id was handed out or forgotten).
    Again,
    /// The group is rebalancing: go again shortly.
    Rebalancing,
}

/// Exponential backoff for retries of transient trouble: 100 ms doubling
/// to [`Backoff::MAX`].
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    attempts: u32,
}

impl Backoff {
    /// The longest wait.
    pub(crate) const MAX: Duration = Duration::from_secs(5);

    /// The wait before the next attempt.
    pub(crate) fn next(&mut self) -> Duration {
        let wait = Duration::from_millis(100)
            .saturating_mul(1 << self.attempts.min(8))
            .min(Self::MAX);
        self.attempts = self.attempts.saturating_add(1);
        wait
    }
}

/// The identity commits carry: generation and member id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The group generation kmirror joined.
    pub generation: i32,
    /// kmirror's member id.
    pub member_id: String,
}

/// The member kmirror is in its group.
#[derive(Debug)]
pub(crate) struct GroupMember {
    source: Cluster,
    group: String,
    topics: Vec<String>,
    state: watch::Sender<Option<Membership>>,
    member_id: String,
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn refused(group: &str, what: &str, error: ResponseError) -> MirrorError {
    MirrorError::Refused {
        side: Side::Source,
        what: format!("{what} for group {group}"),
        error,
        hint: matches!(error, ResponseError::GroupAuthorizationFailed)
            .then(|| "grant the mirror's principal Read on the group".to_owned()),
    }
}

/// The user data of kmirror's subscription: how another kmirror recognises
/// a kmirror member.
const USER_DATA: &[u8] = b"kmirror";

/// `ConsumerProtocolSubscription` v0: the topics and [`USER_DATA`].
fn subscription(topics: &[String]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(i32::try_from(topics.len()).unwrap_or(i32::MAX));
    for t in topics {
        b.put_i16(i16::try_from(t.len()).unwrap_or(i16::MAX));
        b.put_slice(t.as_bytes());
    }
    b.put_i32(i32::try_from(USER_DATA.len()).unwrap_or(0));
    b.put_slice(USER_DATA);
    b.freeze()
}

/// Whether a member's subscription metadata (from DescribeGroups) is a
/// kmirror's: it ends with [`USER_DATA`] as its length-prefixed user data.
pub(crate) fn is_kmirror_member(metadata: &[u8]) -> bool {
    let n = USER_DATA.len();
    metadata.len() >= n + 4
        && metadata.ends_with(USER_DATA)
        && metadata
            .get(metadata.len() - n - 4..metadata.len() - n)
            .is_some_and(|len| len == (n as i32).to_be_bytes())
}

/// `ConsumerProtocolAssignment` v0 with no partitions: kmirror copies
/// what its own controller assigns; the group assignment only says who
/// holds the group.
fn empty_assignment() -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(0);
    b.put_i32(-1);
    b.freeze()
}

impl GroupMember {
    /// A member of `group` subscribed (for tools that show it) to `topics`.
    pub(crate) fn new(source: Cluster, group: String, topics: Vec<String>) -> Self {
        let (state, _) = watch::channel(None);
        Self {
            source,
            group,
            topics,
            state,
            member_id: String::new(),
        }
    }

    /// The identity for commits, `None` while (re)joining.
    pub(crate) fn membership(&self) -> watch::Receiver<Option<Membership>> {
        self.state.subscribe()
    }

    async fn connection(&self) -> Result<Arc<BrokerConnection>, MirrorError> {
        let id = super::admin::find_coordinator(&self.source, &self.group)
            .await
            .map_err(MirrorError::source)?;
        self.source
            .connection_to_broker(id)
            .await
            .map_err(MirrorError::source)
    }

    fn version(conn: &BrokerConnection, api: ApiKey) -> Result<i16, MirrorError> {
        conn.versions().version(api).map_err(|e| {
            MirrorError::source(PoolError::Protocol {
                broker: conn.broker().to_owned(),
                source: Arc::new(e),
            })
        })
    }

    /// Joins the group as its only member and takes the assignment.
    /// Another member in the group is [`MirrorError::GroupInUse`].
    ///
    /// Trouble that passes (the coordinator moving or restarting, a
    /// broker unreachable for a while: [`MirrorError::is_transient`]) is
    /// retried with backoff until `stop`, with a warning each time; only
    /// errors that retrying cannot fix end the run. Returns `Ok(false)` if
    /// stopped before joining.
    pub(crate) async fn join(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<bool, MirrorError> {
        self.state.send_replace(None);
        let mut backoff = Backoff::default();
        let mut contended = 0;
        loop {
            if *stop.borrow() {
                return Ok(false);
            }
            // A JoinGroup may be held by the coordinator for up to the
            // rebalance timeout, and finding the coordinator may wait for
            // one: a stop must not wait behind them.
            let step = tokio::select! {
                biased;
                _ = stopped(stop) => return Ok(false),
                step = self.join_once() => step,
            };
            let wait = match step {
                Ok(JoinStep::Joined) => return Ok(true),
                Ok(JoinStep::Again) => Duration::ZERO,
                Ok(JoinStep::Rebalancing) => {
                    contended += 1;
                    if contended >= MAX_CONTENDED_JOINS {
                        return Err(MirrorError::Refused {
                            side: Side::Source,
                            what: format!("JoinGroup for group {}", self.group),
                            error: ResponseError::RebalanceInProgress,
                            hint: Some(
                                "the group kept rebalancing; is another consumer joining it?"
                                    .into(),
                            ),
                        });
                    }
                    Duration::from_millis(200)
                }
                Err(e) if e.is_transient() => {
                    self.source.invalidate_coordinator(&self.group);
                    let wait = backoff.next();
                    tracing::warn!(group = %self.group, error = %e, retry_in = ?wait, "cannot join the consumer group yet; retrying");
                    wait
                }
                Err(e) => return Err(e),
            };
            if !wait.is_zero() {
                tokio::select! {
                    biased;
                    _ = stopped(stop) => return Ok(false),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// One JoinGroup and SyncGroup round.
    async fn join_once(&mut self) -> Result<JoinStep, MirrorError> {
        let conn = self.connection().await?;
        let version = Self::version(&conn, ApiKey::JoinGroup)?;
        let mut request = kp::JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_session_timeout_ms(millis(SESSION_TIMEOUT))
            .with_member_id(str_bytes(&self.member_id))
            .with_protocol_type(str_bytes(PROTOCOL_TYPE))
            .with_protocols(vec![
                kp::join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(str_bytes(PROTOCOL_NAME))
                    .with_metadata(subscription(&self.topics)),
            ]);
        if version >= 1 {
            request = request.with_rebalance_timeout_ms(millis(REBALANCE_TIMEOUT));
        }
        let response = conn.send(&request).await.map_err(MirrorError::source)?;
        match ResponseError::try_from_code(response.error_code) {
            None => {}
            Some(ResponseError::MemberIdRequired) => {
                self.member_id = response.member_id.to_string();
                return Ok(JoinStep::Again);
            }
            Some(ResponseError::UnknownMemberId) => {
                self.member_id.clear();
                return Ok(JoinStep::Again);
            }
            Some(ResponseError::RebalanceInProgress) => return Ok(JoinStep::Rebalancing),
            Some(error) => return Err(refused(&self.group, "JoinGroup", error)),
        }
        self.member_id = response.member_id.to_string();
        let leader = response.leader.to_string() == self.member_id;
        if leader && response.members.len() > 1 {
            let members = response.members.len() - 1;
            self.leave().await;
            return Err(MirrorError::GroupInUse {
                group: self.group.clone(),
                state: "joined by another member while kmirror joined".into(),
                members,
            });
        }
        let generation = response.generation_id;
        let sync_version = Self::version(&conn, ApiKey::SyncGroup)?;
        let mut sync = kp::SyncGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_generation_id(generation)
            .with_member_id(str_bytes(&self.member_id));
        if sync_version >= 5 {
            sync = sync
                .with_protocol_type(Some(str_bytes(PROTOCOL_TYPE)))
                .with_protocol_name(Some(str_bytes(PROTOCOL_NAME)));
        }
        if leader {
            sync = sync.with_assignments(vec![
                kp::sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(str_bytes(&self.member_id))
                    .with_assignment(empty_assignment()),
            ]);
        }
        let synced = conn.send(&sync).await.map_err(MirrorError::source)?;
        match ResponseError::try_from_code(synced.error_code) {
            None => {}
            Some(ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration) => {
                return Ok(JoinStep::Rebalancing);
            }
            Some(ResponseError::UnknownMemberId) => {
                self.member_id.clear();
                return Ok(JoinStep::Again);
            }
            Some(error) => return Err(refused(&self.group, "SyncGroup", error)),
        }
        if !leader {
            // Someone else leads the group: another consumer is in it.
            self.leave().await;
            return Err(MirrorError::GroupInUse {
                group: self.group.clone(),
                state: "led by another member".into(),
                members: 1,
            });
        }
        tracing::info!(group = %self.group, generation, member_id = %self.member_id, "joined the consumer group");
        self.state.send_replace(Some(Membership {
            generation,
            member_id: self.member_id.clone(),
        }));
        Ok(JoinStep::Joined)
    }

    /// Heartbeats until `stop`; rejoins when the coordinator asks, and
    /// rides through coordinator moves and restarts (retried with
    /// backoff). Returns an error when another member takes part in the
    /// group, or the coordinator refuses kmirror for good.
    pub(crate) async fn keep_alive(
        &mut self,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), MirrorError> {
        let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
        tick.reset();
        loop {
            // `stopped` reads the value, not only its changes: a stop seen
            // (and marked seen) inside `join` still ends the loop here.
            tokio::select! {
                biased;
                _ = stopped(&mut stop) => return Ok(()),
                _ = tick.tick() => {}
            }
            let Some(membership) = self.state.borrow().clone() else {
                if !self.join(&mut stop).await? {
                    return Ok(());
                }
                continue;
            };
            let request = kp::HeartbeatRequest::default()
                .with_group_id(GroupId(str_bytes(&self.group)))
                .with_generation_id(membership.generation)
                .with_member_id(str_bytes(&membership.member_id));
            let heartbeat = async {
                match self.connection().await {
                    Ok(conn) => conn.send(&request).await.map_err(MirrorError::source),
                    Err(e) => Err(e),
                }
            };
            let response = tokio::select! {
                biased;
                _ = stopped(&mut stop) => return Ok(()),
                response = heartbeat => response,
            };
            let code = match response {
                Ok(r) => ResponseError::try_from_code(r.error_code),
                Err(e) if e.is_transient() => {
                    tracing::warn!(group = %self.group, error = %e, "heartbeat failed; retrying");
                    self.source.invalidate_coordinator(&self.group);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match code {
                None => {}
                Some(ResponseError::RebalanceInProgress) => {
                    tracing::warn!(group = %self.group, "the group is rebalancing: another consumer is joining it, or its coordinator moved");
                    if !self.join(&mut stop).await? {
                        return Ok(());
                    }
                }
                Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                    tracing::warn!(group = %self.group, "the coordinator dropped kmirror from the group; joining again");
                    self.member_id.clear();
                    if !self.join(&mut stop).await? {
                        return Ok(());
                    }
                }
                Some(error) if response_error_is_transient(error) => {
                    tracing::warn!(group = %self.group, %error, "heartbeat refused; finding the coordinator again");
                    self.source.invalidate_coordinator(&self.group);
                }
                Some(error) => return Err(refused(&self.group, "Heartbeat", error)),
            }
        }
    }

    /// Leaves the group (best effort, for at most [`LEAVE_TIMEOUT`]: a
    /// coordinator that cannot be found must not hold up a stop), so that
    /// the next start does not wait for the session to expire.
    pub(crate) async fn leave(&self) {
        if self.member_id.is_empty() {
            return;
        }
        if tokio::time::timeout(LEAVE_TIMEOUT, self.send_leave())
            .await
            .is_err()
        {
            tracing::debug!(group = %self.group, "LeaveGroup did not complete in time; the coordinator drops kmirror when its session expires");
        }
        self.state.send_replace(None);
    }

    async fn send_leave(&self) {
        let Ok(conn) = self.connection().await else {
            return;
        };
        let Ok(version) = Self::version(&conn, ApiKey::LeaveGroup) else {
            return;
        };
        let mut request =
            kp::LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(&self.group)));
        request = if version >= 3 {
            request.with_members(vec![
                kp::leave_group_request::MemberIdentity::default()
                    .with_member_id(str_bytes(&self.member_id)),
            ])
        } else {
            request.with_member_id(str_bytes(&self.member_id))
        };
        match conn.send(&request).await {
            Ok(_) => tracing::debug!(group = %self.group, "left the consumer group"),
            Err(e) => tracing::debug!(group = %self.group, error = %e, "LeaveGroup failed"),
        }
    }
}

/// Resolves once `stop` says stop (or its sender is gone), whether or not
/// that value was already seen.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::scripted::{self, Brokers, Reply, Request};

    const SRC: &str = "src:9092";

    /// A coordinator (broker 1) whose JoinGroup answers are `join`'s.
    fn coordinator(join: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Arc<Brokers> {
        Brokers::new(move |r| match r.api {
            ApiKey::Metadata => scripted::metadata(r.version, &[(1, SRC)], &[("t", &[(0, 1)])]),
            ApiKey::FindCoordinator => scripted::find_coordinator(r, 1, SRC),
            ApiKey::JoinGroup => join(r),
            ApiKey::LeaveGroup => scripted::reply(&kp::LeaveGroupResponse::default(), r.version),
            other => panic!("unexpected {other:?}"),
        })
    }

    /// Runs `keep_alive` for a member that must (re)join, stops it at 4 s
    /// (after its first join began at the 3 s heartbeat tick) and returns
    /// how long it took to end after the stop.
    async fn stop_during_rejoin(source: &Arc<Brokers>) -> Duration {
        let mut member = GroupMember::new(source.cluster(SRC).await, "g".into(), vec!["t".into()]);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move { member.keep_alive(stop_rx).await });
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!source.requests(ApiKey::JoinGroup).is_empty());
        let stopped_at = tokio::time::Instant::now();
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("keep_alive ends after a stop during a rejoin")
            .expect("no panic")
            .expect("a stop is no error");
        stopped_at.elapsed()
    }

    /// The coordinator holds the JoinGroup (a rebalance waits for its
    /// members, up to the rebalance timeout): a stop ends the join at
    /// once, not when the request times out.
    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_a_join_the_coordinator_holds() {
        let source = coordinator(|_| Reply::Silent);
        let took = stop_during_rejoin(&source).await;
        assert!(took < Duration::from_millis(100), "took {took:?}");
    }

    /// The coordinator is not available, so the join backs off: a stop
    /// during the backoff ends keep_alive (it went on heartbeat-ticking
    /// for ever, the stop having been seen inside the join).
    #[tokio::test(start_paused = true)]
    async fn a_stop_during_a_join_backoff_ends_keep_alive() {
        let source = coordinator(|r| {
            scripted::reply(
                &kp::JoinGroupResponse::default()
                    .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
                r.version,
            )
        });
        let took = stop_during_rejoin(&source).await;
        assert!(took < Duration::from_millis(100), "took {took:?}");
    }

    #[test]
    fn subscription_is_consumer_protocol_v0() {
        let b = subscription(&["ab".to_owned()]);
        let mut expected = vec![0, 0, 0, 0, 0, 1, 0, 2, b'a', b'b', 0, 0, 0, 7];
        expected.extend_from_slice(b"kmirror");
        assert_eq!(&b[..], &expected[..]);
        assert!(is_kmirror_member(&b));
        assert!(!is_kmirror_member(&subscription(&[])[..10]));
        let mut other = b.to_vec();
        other[13] = 8;
        assert!(!is_kmirror_member(&other));
        assert_eq!(
            &empty_assignment()[..],
            &[0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
    }
}
