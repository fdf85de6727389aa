//! The answers of a simulated broker, one function per API, following
//! Apache Kafka's rules where they matter to a mirror: leadership and
//! leader epochs, the high-water mark, whole batches and KIP-74 in Fetch,
//! the idempotent producer's sequences in Produce, `min.insync.replicas`,
//! the group coordinator's generation checks.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, FetchRequest, FetchResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
    InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse, ProducerId,
    RequestKind, ResponseKind, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use crate::cluster::{GroupState, Held, JoinAnswer, SimCluster, SimGroup, SimMember, SyncAnswer};
use crate::log::{Appended, code};
use crate::world::{Side, World};

/// The versions the simulated brokers offer (about Apache Kafka 3.0's; the
/// Fetch range includes topic ids, v13).
pub const OFFERED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 13),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 4, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
];

/// A handled request.
#[derive(Debug)]
pub struct Handled {
    /// The answer.
    pub response: ResponseKind,
    /// For a Fetch: whether it may wait for data (nothing to return, no
    /// error); the server then asks again until `max_wait_ms`.
    pub may_wait: bool,
    /// Whether it was a Fetch or Produce (throttling applies).
    pub throttleable: bool,
    /// A JoinGroup or SyncGroup the coordinator holds: `response` is a
    /// placeholder, the server polls [`poll_held`] for the answer.
    pub held: Option<Held>,
}

impl Handled {
    fn now(response: ResponseKind) -> Self {
        Self {
            response,
            may_wait: false,
            throttleable: false,
            held: None,
        }
    }
}

/// Builds a kafka-protocol message (their structs are non-exhaustive):
/// the default with the given fields set.
macro_rules! msg {
    ($t:ident { $($f:ident : $v:expr),* $(,)? }) => {{
        let mut m = $t::default();
        $(m.$f = $v;)*
        m
    }};
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn min_insync(c: &SimCluster, topic: &str, partition: i32) -> bool {
    let Some(p) = c.partition(topic, partition) else {
        return false;
    };
    let live = p
        .replicas
        .iter()
        .filter(|r| c.brokers.get(r).is_some_and(|b| b.up))
        .count();
    live >= 2.min(p.replicas.len())
}

/// Answers one request that arrived at `broker` of the cluster on `side`.
pub fn handle(
    world: &mut World,
    side: Side,
    broker: i32,
    version: i16,
    request: RequestKind,
    now: Instant,
    instance: u64,
) -> Result<Handled, String> {
    world.cluster(side).tick(now);
    let handled = match request {
        RequestKind::ApiVersions(_) => Handled::now(ResponseKind::ApiVersions(api_versions())),
        RequestKind::Metadata(r) => Handled::now(ResponseKind::Metadata(metadata(
            world.cluster(side),
            r,
            version,
        ))),
        RequestKind::Fetch(r) => fetch(world.cluster(side), broker, r, version),
        RequestKind::ListOffsets(r) => Handled::now(ResponseKind::ListOffsets(list_offsets(
            world.cluster(side),
            broker,
            r,
        ))),
        RequestKind::Produce(r) => produce(world, side, broker, r, version),
        RequestKind::FindCoordinator(r) => Handled::now(ResponseKind::FindCoordinator(
            find_coordinator(world.cluster(side), r),
        )),
        RequestKind::JoinGroup(r) => {
            join_group(world.cluster(side), broker, r, version, now, instance)
        }
        RequestKind::SyncGroup(r) => sync_group(world.cluster(side), broker, r, now),
        RequestKind::Heartbeat(r) => Handled::now(ResponseKind::Heartbeat(heartbeat(
            world.cluster(side),
            broker,
            r,
            now,
        ))),
        RequestKind::LeaveGroup(r) => Handled::now(ResponseKind::LeaveGroup(leave_group(
            world.cluster(side),
            broker,
            r,
            now,
        ))),
        RequestKind::DescribeGroups(r) => Handled::now(ResponseKind::DescribeGroups(
            describe_groups(world.cluster(side), broker, r),
        )),
        RequestKind::OffsetCommit(r) => Handled::now(ResponseKind::OffsetCommit(offset_commit(
            world, side, broker, r,
        ))),
        RequestKind::OffsetFetch(r) => Handled::now(ResponseKind::OffsetFetch(offset_fetch(
            world.cluster(side),
            broker,
            r,
        ))),
        RequestKind::CreateTopics(r) => Handled::now(ResponseKind::CreateTopics(create_topics(
            world.cluster(side),
            r,
        ))),
        RequestKind::CreatePartitions(r) => Handled::now(ResponseKind::CreatePartitions(
            create_partitions(world.cluster(side), r),
        )),
        RequestKind::DescribeConfigs(r) => Handled::now(ResponseKind::DescribeConfigs(
            describe_configs(world.cluster(side), r),
        )),
        RequestKind::InitProducerId(r) => Handled::now(ResponseKind::InitProducerId(
            init_producer_id(world, side, r),
        )),
        other => return Err(format!("the simulation does not serve {other:?}")),
    };
    world.drain_group_notes();
    Ok(handled)
}

/// ApiVersions: [`OFFERED`].
pub fn api_versions() -> ApiVersionsResponse {
    msg!(ApiVersionsResponse {
        api_keys: OFFERED
            .iter()
            .map(|(key, min, max)| msg!(ApiVersion {
                api_key: *key as i16,
                min_version: *min,
                max_version: *max
            }))
            .collect()
    })
}

fn metadata(c: &SimCluster, r: MetadataRequest, version: i16) -> MetadataResponse {
    let brokers = c
        .brokers
        .values()
        .filter(|b| b.up)
        .map(|b| {
            let (host, port) = b.addr.rsplit_once(':').unwrap_or((&b.addr, "9092"));
            msg!(MetadataResponseBroker {
                node_id: BrokerId(b.id),
                host: s(host),
                port: port.parse().unwrap_or(9092)
            })
        })
        .collect();
    let names: Vec<String> = match &r.topics {
        None => c.topics.keys().cloned().collect(),
        Some(list) => list
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect(),
    };
    let topics = names
        .into_iter()
        .map(|name| match c.topics.get(&name) {
            None => msg!(MetadataResponseTopic {
                error_code: code::UNKNOWN_TOPIC_OR_PARTITION,
                name: Some(TopicName(s(&name)))
            }),
            Some(t) => msg!(MetadataResponseTopic {
                name: Some(TopicName(s(&name))),
                topic_id: if version >= 10 {
                    uuid::Uuid::from_bytes(t.id)
                } else {
                    uuid::Uuid::nil()
                },
                partitions: t
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let up = |r: &i32| c.brokers.get(r).is_some_and(|b| b.up);
                        msg!(MetadataResponsePartition {
                            error_code: if p.leader < 0 {
                                code::LEADER_NOT_AVAILABLE
                            } else {
                                code::NONE
                            },
                            partition_index: i as i32,
                            leader_id: BrokerId(p.leader),
                            leader_epoch: if version >= 7 { p.leader_epoch } else { -1 },
                            replica_nodes: p.replicas.iter().copied().map(BrokerId).collect(),
                            isr_nodes: p
                                .replicas
                                .iter()
                                .copied()
                                .filter(up)
                                .map(BrokerId)
                                .collect(),
                            offline_replicas: if version >= 5 {
                                p.replicas
                                    .iter()
                                    .copied()
                                    .filter(|r| !up(r))
                                    .map(BrokerId)
                                    .collect()
                            } else {
                                Vec::new()
                            }
                        })
                    })
                    .collect()
            }),
        })
        .collect();
    msg!(MetadataResponse {
        brokers: brokers,
        cluster_id: Some(s(&format!("sim-{}", c.name))),
        controller_id: BrokerId(c.brokers.values().find(|b| b.up).map_or(-1, |b| b.id)),
        topics: topics
    })
}

/// Checks leadership and the client's leader epoch for a partition.
fn leader_check(c: &SimCluster, broker: i32, topic: &str, partition: i32, epoch: i32) -> i16 {
    let Some(p) = c.partition(topic, partition) else {
        return code::UNKNOWN_TOPIC_OR_PARTITION;
    };
    if p.leader != broker {
        return code::NOT_LEADER_OR_FOLLOWER;
    }
    if epoch >= 0 && epoch < p.leader_epoch {
        return code::FENCED_LEADER_EPOCH;
    }
    if epoch > p.leader_epoch {
        return code::UNKNOWN_LEADER_EPOCH;
    }
    code::NONE
}

fn fetch(c: &SimCluster, broker: i32, r: FetchRequest, version: i16) -> Handled {
    let by_id: BTreeMap<[u8; 16], String> =
        c.topics.iter().map(|(n, t)| (t.id, n.clone())).collect();
    let mut total = 0usize;
    let mut any_error = false;
    let max_bytes = usize::try_from(r.max_bytes).unwrap_or(0);
    let mut responses = Vec::new();
    for t in r.topics {
        let name = if version >= 13 {
            by_id.get(t.topic_id.as_bytes()).cloned()
        } else {
            Some(t.topic.0.to_string())
        };
        let mut partitions = Vec::new();
        for fp in t.partitions {
            let mut data = msg!(PartitionData {
                partition_index: fp.partition,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                aborted_transactions: Some(Vec::new()),
                preferred_read_replica: BrokerId(-1),
                records: Some(Bytes::new())
            });
            let Some(name) = &name else {
                data.error_code = code::UNKNOWN_TOPIC_ID;
                any_error = true;
                partitions.push(data);
                continue;
            };
            let epoch = if version >= 9 {
                fp.current_leader_epoch
            } else {
                -1
            };
            let error = leader_check(c, broker, name, fp.partition, epoch);
            if error != code::NONE {
                data.error_code = error;
                any_error = true;
                partitions.push(data);
                continue;
            }
            let Some(p) = c.partition(name, fp.partition) else {
                continue;
            };
            let log = &p.log;
            data.high_watermark = log.high_watermark();
            data.last_stable_offset = log.high_watermark();
            data.log_start_offset = log.log_start();
            // KIP-320 (v12+): a fetcher whose last fetched epoch ends
            // below its position on this leader was fed records this log
            // no longer has. Checked before the range, as Kafka does.
            tracing::debug!(target: "kmirror_sim", topic = %name, partition = fp.partition, offset = fp.fetch_offset,
                last_fetched_epoch = fp.last_fetched_epoch, current_leader_epoch = fp.current_leader_epoch, version, "fetch");
            if version >= 12 && fp.last_fetched_epoch >= 0 {
                let (epoch, end) = log.end_offset_for(fp.last_fetched_epoch);
                if epoch < fp.last_fetched_epoch || end < fp.fetch_offset {
                    data.diverging_epoch = EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end);
                    any_error = true;
                    partitions.push(data);
                    continue;
                }
            }
            if fp.fetch_offset < log.log_start() || fp.fetch_offset > log.log_end() {
                data.error_code = code::OFFSET_OUT_OF_RANGE;
                any_error = true;
                partitions.push(data);
                continue;
            }
            let limit = usize::try_from(fp.partition_max_bytes)
                .unwrap_or(0)
                .min(max_bytes.saturating_sub(total));
            let records = log.read(fp.fetch_offset, log.high_watermark(), limit, total == 0);
            total += records.len();
            data.records = Some(records);
            partitions.push(data);
        }
        responses.push(msg!(FetchableTopicResponse {
            topic: if version >= 13 {
                TopicName::default()
            } else {
                t.topic
            },
            topic_id: if version >= 13 {
                t.topic_id
            } else {
                uuid::Uuid::nil()
            },
            partitions: partitions
        }));
    }
    Handled {
        response: ResponseKind::Fetch(msg!(FetchResponse {
            responses: responses
        })),
        may_wait: total == 0 && !any_error && r.max_wait_ms > 0,
        throttleable: true,
        held: None,
    }
}

fn list_offsets(c: &SimCluster, broker: i32, r: ListOffsetsRequest) -> ListOffsetsResponse {
    msg!(ListOffsetsResponse {
        topics: r
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                msg!(ListOffsetsTopicResponse {
                    partitions: t
                        .partitions
                        .iter()
                        .map(|lp| {
                            let mut out = msg!(ListOffsetsPartitionResponse {
                                partition_index: lp.partition_index,
                                timestamp: -1,
                                offset: -1,
                                leader_epoch: -1
                            });
                            let error = leader_check(
                                c,
                                broker,
                                &name,
                                lp.partition_index,
                                lp.current_leader_epoch,
                            );
                            if error != code::NONE {
                                out.error_code = error;
                                return out;
                            }
                            if let Some(p) = c.partition(&name, lp.partition_index) {
                                out.leader_epoch = p.leader_epoch;
                                out.offset = match lp.timestamp {
                                    -2 => p.log.log_start(),
                                    -1 => p.log.high_watermark(),
                                    _ => p.log.log_start(),
                                };
                            }
                            out
                        })
                        .collect(),
                    name: t.name
                })
            })
            .collect()
    })
}

fn produce(
    world: &mut World,
    side: Side,
    broker: i32,
    r: ProduceRequest,
    _version: i16,
) -> Handled {
    let mut responses = Vec::new();
    for t in r.topic_data {
        let name = t.name.0.to_string();
        let mut partition_responses = Vec::new();
        for pd in t.partition_data {
            let mut out = msg!(PartitionProduceResponse {
                index: pd.index,
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: -1
            });
            let c = world.cluster(side);
            let mut error = leader_check(c, broker, &name, pd.index, -1);
            if error == code::NONE && r.acks == -1 && !min_insync(c, &name, pd.index) {
                error = code::NOT_ENOUGH_REPLICAS;
            }
            if error != code::NONE {
                out.error_code = error;
                partition_responses.push(out);
                continue;
            }
            let records = pd.records.unwrap_or_default();
            let Some(p) = c.partition_mut(&name, pd.index) else {
                continue;
            };
            let epoch = p.leader_epoch;
            if let Ok(h) = crate::log::parse_single_batch(&records) {
                tracing::debug!(
                    target: "kmirror_sim",
                    topic = %name, partition = pd.index, broker, producer_id = h.producer_id,
                    epoch = h.producer_epoch, base_sequence = h.base_sequence, records = h.record_count,
                    "produce"
                );
            }
            match p.log.append(&records, epoch) {
                Ok(appended) => {
                    if p.hwm_catch_up_at.is_none() {
                        let end = p.log.log_end();
                        p.log.set_high_watermark(end);
                    }
                    out.log_start_offset = p.log.log_start();
                    match appended {
                        Appended::New(base) => {
                            out.base_offset = base;
                            let stored = p.log.batches().last().map(|b| b.bytes.clone());
                            if side == Side::Destination
                                && let Some(stored) = stored
                            {
                                world
                                    .appended_in_epoch
                                    .insert((name.clone(), pd.index), epoch);
                                world.on_destination_append(&name, pd.index, &stored);
                            }
                        }
                        Appended::Duplicate(base) => out.base_offset = base,
                    }
                }
                Err(e) => out.error_code = e,
            }
            partition_responses.push(out);
        }
        responses.push(msg!(TopicProduceResponse {
            name: t.name,
            partition_responses: partition_responses
        }));
    }
    Handled {
        response: ResponseKind::Produce(msg!(ProduceResponse {
            responses: responses
        })),
        may_wait: false,
        throttleable: true,
        held: None,
    }
}

fn coordinator_error(c: &SimCluster, broker: i32) -> i16 {
    if c.coordinator < 0 {
        code::COORDINATOR_NOT_AVAILABLE
    } else if c.coordinator != broker {
        code::NOT_COORDINATOR
    } else {
        code::NONE
    }
}

fn find_coordinator(c: &SimCluster, _r: FindCoordinatorRequest) -> FindCoordinatorResponse {
    match c.brokers.get(&c.coordinator).filter(|b| b.up) {
        Some(b) => {
            let (host, port) = b.addr.rsplit_once(':').unwrap_or((&b.addr, "9092"));
            msg!(FindCoordinatorResponse {
                node_id: BrokerId(b.id),
                host: s(host),
                port: port.parse().unwrap_or(9092)
            })
        }
        None => msg!(FindCoordinatorResponse {
            error_code: code::COORDINATOR_NOT_AVAILABLE,
            node_id: BrokerId(-1)
        }),
    }
}

fn join_response(error: i16, member: &str) -> JoinGroupResponse {
    msg!(JoinGroupResponse {
        error_code: error,
        generation_id: -1,
        member_id: s(member)
    })
}

/// The JoinGroup response carrying `answer`.
pub fn join_answered(answer: &JoinAnswer, member: &str) -> JoinGroupResponse {
    msg!(JoinGroupResponse {
        generation_id: answer.generation,
        protocol_type: Some(s("consumer")),
        protocol_name: Some(s(&answer.protocol)),
        leader: s(&answer.leader),
        member_id: s(member),
        members: answer
            .members
            .iter()
            .map(|(id, metadata)| {
                msg!(JoinGroupResponseMember {
                    member_id: s(id),
                    metadata: metadata.clone()
                })
            })
            .collect()
    })
}

/// JoinGroup, as Apache Kafka's `GroupCoordinator.handleJoinGroup`: a new
/// member (after MEMBER_ID_REQUIRED at v4+) or a known one whose
/// protocols changed (or the leader) starts a rebalance; the JoinGroup is
/// then held until the join completes. A follower rejoining with the same
/// protocols once the join completed gets the current generation at once.
fn join_group(
    c: &mut SimCluster,
    broker: i32,
    r: JoinGroupRequest,
    version: i16,
    now: Instant,
    instance: u64,
) -> Handled {
    let join = |response: JoinGroupResponse| Handled::now(ResponseKind::JoinGroup(response));
    let error = coordinator_error(c, broker);
    if error != code::NONE {
        return join(join_response(error, ""));
    }
    let group_id = r.group_id.0.to_string();
    let protocols: Vec<(String, Bytes)> = r
        .protocols
        .iter()
        .map(|p| (p.name.to_string(), p.metadata.clone()))
        .collect();
    let session_timeout =
        Duration::from_millis(u64::try_from(r.session_timeout_ms).unwrap_or(10_000));
    let rebalance_timeout = if version >= 1 {
        Duration::from_millis(u64::try_from(r.rebalance_timeout_ms).unwrap_or(10_000))
    } else {
        session_timeout
    };
    if r.protocol_type.as_str() != "consumer" || protocols.is_empty() {
        return join(join_response(code::INCONSISTENT_GROUP_PROTOCOL, ""));
    }
    let mut member_id = r.member_id.to_string();
    if member_id.is_empty() {
        let id = c.new_member_id(&format!("kmirror-{instance}"));
        let group = c
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| SimGroup::new(&group_id));
        group.maintain(now);
        if !group.supports(&protocols) {
            return join(join_response(code::INCONSISTENT_GROUP_PROTOCOL, ""));
        }
        if version >= 4 {
            group.pending.insert(id.clone(), now + session_timeout);
            return join(join_response(code::MEMBER_ID_REQUIRED, &id));
        }
        member_id = id;
    }
    let group = c
        .groups
        .entry(group_id.clone())
        .or_insert_with(|| SimGroup::new(&group_id));
    group.maintain(now);
    let held = Handled {
        response: ResponseKind::JoinGroup(JoinGroupResponse::default()),
        may_wait: false,
        throttleable: false,
        held: Some(Held::Join {
            group: group_id.clone(),
            member: member_id.clone(),
        }),
    };
    let new = group.pending.remove(&member_id).is_some() || r.member_id.is_empty();
    if !new && !group.members.contains_key(&member_id) {
        return join(join_response(code::UNKNOWN_MEMBER_ID, &member_id));
    }
    // A lone member may change its protocols at will.
    let alone = group.members.len() == 1 && group.members.contains_key(&member_id);
    if !alone && !group.supports(&protocols) {
        return join(join_response(code::INCONSISTENT_GROUP_PROTOCOL, &member_id));
    }
    if new {
        if group.state != GroupState::PreparingRebalance {
            group.prepare_rebalance(now, "a member joined");
        }
        group.members.insert(
            member_id.clone(),
            SimMember {
                seen: now,
                session_timeout,
                rebalance_timeout,
                protocols,
                assignment: Bytes::new(),
                joined: true,
                client: format!("process instance {instance}"),
            },
        );
        group.notes.push(format!(
            "group {group_id}: member {member_id} of process instance {instance} joins"
        ));
        group.maybe_complete_join(now);
        return held;
    }
    let leader = group.leader == member_id;
    let Some(m) = group.members.get_mut(&member_id) else {
        return join(join_response(code::UNKNOWN_MEMBER_ID, &member_id));
    };
    let same = m.protocols == protocols;
    m.seen = now;
    m.session_timeout = session_timeout;
    m.rebalance_timeout = rebalance_timeout;
    m.protocols = protocols;
    match group.state {
        GroupState::CompletingRebalance | GroupState::Stable
            if same && !(leader && group.state == GroupState::Stable) =>
        {
            let answer = group.current_answer(&member_id);
            join(join_answered(&answer, &member_id))
        }
        GroupState::PreparingRebalance => {
            if let Some(m) = group.members.get_mut(&member_id) {
                m.joined = true;
            }
            group.maybe_complete_join(now);
            held
        }
        _ => {
            group.prepare_rebalance(now, "a member rejoined with new metadata");
            if let Some(m) = group.members.get_mut(&member_id) {
                m.joined = true;
            }
            group.maybe_complete_join(now);
            held
        }
    }
}

/// A held JoinGroup or SyncGroup: its answer, or `None` while the
/// coordinator still holds it.
pub fn poll_held(
    world: &mut World,
    side: Side,
    broker: i32,
    held: &Held,
    now: Instant,
) -> Option<ResponseKind> {
    let c = world.cluster(side);
    c.tick(now);
    let error = coordinator_error(c, broker);
    let response = match held {
        Held::Join { group, member } => {
            if error != code::NONE {
                return Some(ResponseKind::JoinGroup(join_response(error, member)));
            }
            let Some(g) = c.groups.get_mut(group) else {
                return Some(ResponseKind::JoinGroup(join_response(
                    code::UNKNOWN_MEMBER_ID,
                    member,
                )));
            };
            match g.poll_join(member, now)? {
                Ok(answer) => ResponseKind::JoinGroup(join_answered(&answer, member)),
                Err(e) => ResponseKind::JoinGroup(join_response(e, member)),
            }
        }
        Held::Sync {
            group,
            member,
            generation,
        } => {
            if error != code::NONE {
                return Some(ResponseKind::SyncGroup(msg!(SyncGroupResponse {
                    error_code: error
                })));
            }
            let answer = c
                .groups
                .get_mut(group)
                .map_or(SyncAnswer::Error(code::UNKNOWN_MEMBER_ID), |g| {
                    g.poll_sync(member, *generation, now)
                });
            match answer {
                SyncAnswer::Wait => return None,
                SyncAnswer::Error(e) => {
                    ResponseKind::SyncGroup(msg!(SyncGroupResponse { error_code: e }))
                }
                SyncAnswer::Assignment(a) => ResponseKind::SyncGroup(msg!(SyncGroupResponse {
                    protocol_type: Some(s("consumer")),
                    protocol_name: c.groups.get(group).map(|g| s(&g.protocol)),
                    assignment: a
                })),
            }
        }
    };
    Some(response)
}

/// Member and generation checks shared by SyncGroup, Heartbeat and
/// OffsetCommit.
fn member_error(group: Option<&mut SimGroup>, member: &str, generation: i32) -> i16 {
    let Some(group) = group else {
        return code::UNKNOWN_MEMBER_ID;
    };
    if !group.members.contains_key(member) {
        return code::UNKNOWN_MEMBER_ID;
    }
    if generation != group.generation {
        return code::ILLEGAL_GENERATION;
    }
    code::NONE
}

/// SyncGroup: the leader's stores every assignment and makes the group
/// Stable; a follower's is held until then.
fn sync_group(c: &mut SimCluster, broker: i32, r: SyncGroupRequest, now: Instant) -> Handled {
    let sync = |error: i16| {
        Handled::now(ResponseKind::SyncGroup(msg!(SyncGroupResponse {
            error_code: error
        })))
    };
    let mut error = coordinator_error(c, broker);
    let member = r.member_id.to_string();
    let group_id = r.group_id.0.to_string();
    if error == code::NONE {
        error = member_error(c.groups.get_mut(&group_id), &member, r.generation_id);
    }
    if error != code::NONE {
        return sync(error);
    }
    let Some(group) = c.groups.get_mut(&group_id) else {
        return sync(code::UNKNOWN_MEMBER_ID);
    };
    if let Some(m) = group.members.get_mut(&member) {
        m.seen = now;
    }
    match group.state {
        GroupState::Empty => return sync(code::UNKNOWN_MEMBER_ID),
        GroupState::PreparingRebalance => return sync(code::REBALANCE_IN_PROGRESS),
        GroupState::CompletingRebalance if group.leader == member => {
            for m in group.members.values_mut() {
                m.assignment = Bytes::new();
            }
            for a in &r.assignments {
                if let Some(m) = group.members.get_mut(&a.member_id.to_string()) {
                    m.assignment = a.assignment.clone();
                }
            }
            group.state = GroupState::Stable;
            group.notes.push(format!(
                "group {group_id}: generation {} stable",
                group.generation
            ));
        }
        GroupState::CompletingRebalance | GroupState::Stable => {}
    }
    Handled {
        response: ResponseKind::SyncGroup(SyncGroupResponse::default()),
        may_wait: false,
        throttleable: false,
        held: Some(Held::Sync {
            group: group_id,
            member,
            generation: r.generation_id,
        }),
    }
}

/// Heartbeat: keeps the session; REBALANCE_IN_PROGRESS while a rebalance
/// is prepared (Kafka still refreshes the session then).
fn heartbeat(
    c: &mut SimCluster,
    broker: i32,
    r: HeartbeatRequest,
    now: Instant,
) -> HeartbeatResponse {
    let mut error = coordinator_error(c, broker);
    let member = r.member_id.to_string();
    if error == code::NONE {
        let group = c.groups.get_mut(&r.group_id.0.to_string());
        error = member_error(group, &member, r.generation_id);
    }
    if let Some(group) = c.groups.get_mut(&r.group_id.0.to_string()) {
        if error == code::ILLEGAL_GENERATION {
            group.lost += 1;
            group.notes.push(format!(
                "group {}: heartbeat of {member} with generation {} refused: ILLEGAL_GENERATION",
                group.id, r.generation_id
            ));
        }
        if error == code::NONE {
            if let Some(m) = group.members.get_mut(&member) {
                m.seen = now;
            }
            error = match group.state {
                GroupState::Empty => code::UNKNOWN_MEMBER_ID,
                GroupState::PreparingRebalance => code::REBALANCE_IN_PROGRESS,
                GroupState::CompletingRebalance | GroupState::Stable => code::NONE,
            };
        }
    }
    msg!(HeartbeatResponse { error_code: error })
}

fn leave_group(
    c: &mut SimCluster,
    broker: i32,
    r: LeaveGroupRequest,
    now: Instant,
) -> LeaveGroupResponse {
    let error = coordinator_error(c, broker);
    if error != code::NONE {
        return msg!(LeaveGroupResponse { error_code: error });
    }
    let mut ids: Vec<String> = r.members.iter().map(|m| m.member_id.to_string()).collect();
    if !r.member_id.is_empty() {
        ids.push(r.member_id.to_string());
    }
    let group_id = r.group_id.0.to_string();
    let mut members = Vec::new();
    for id in &ids {
        let found = c
            .groups
            .get_mut(&group_id)
            .is_some_and(|g| g.members.contains_key(id));
        if let Some(group) = c.groups.get_mut(&group_id) {
            group.remove(id, now, "left the group");
        }
        members.push(msg!(MemberResponse {
            member_id: s(id),
            error_code: if found {
                code::NONE
            } else {
                code::UNKNOWN_MEMBER_ID
            }
        }));
    }
    if r.members.is_empty() {
        msg!(LeaveGroupResponse {
            error_code: members.first().map_or(code::NONE, |m| m.error_code)
        })
    } else {
        msg!(LeaveGroupResponse { members: members })
    }
}

fn describe_groups(
    c: &mut SimCluster,
    broker: i32,
    r: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let error = coordinator_error(c, broker);
    msg!(DescribeGroupsResponse {
        groups: r
            .groups
            .into_iter()
            .map(|g| {
                let group = c.groups.get(&g.0.to_string());
                let members: Vec<DescribedGroupMember> = group
                    .map(|gr| {
                        gr.members
                            .iter()
                            .map(|(id, m)| {
                                msg!(DescribedGroupMember {
                                    member_id: s(id),
                                    client_id: s("kmirror"),
                                    client_host: s("/127.0.0.1"),
                                    member_metadata: m.metadata(&gr.protocol),
                                    member_assignment: m.assignment.clone()
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                msg!(DescribedGroup {
                    error_code: error,
                    group_id: g,
                    group_state: s(match group.map(|g| g.state) {
                        None => "Dead",
                        Some(GroupState::Empty) => "Empty",
                        Some(GroupState::PreparingRebalance) => "PreparingRebalance",
                        Some(GroupState::CompletingRebalance) => "CompletingRebalance",
                        Some(GroupState::Stable) => "Stable",
                    }),
                    protocol_type: s(if group.is_some() { "consumer" } else { "" }),
                    protocol_data: s(group.map_or("", |g| g.protocol.as_str())),
                    members: members
                })
            })
            .collect()
    })
}

fn offset_commit(
    world: &mut World,
    side: Side,
    broker: i32,
    r: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let now = Instant::now();
    let c = world.cluster(side);
    let mut error = coordinator_error(c, broker);
    let group_id = r.group_id.0.to_string();
    if error == code::NONE {
        let group = c
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| SimGroup::new(&group_id));
        group.maintain(now);
        let member = r.member_id.to_string();
        // Apache Kafka's GroupCoordinator: a commit with no generation is
        // accepted for an empty group only; otherwise member and generation
        // must match, and the group must not be awaiting its assignment.
        if r.generation_id_or_member_epoch < 0 && group.state == GroupState::Empty {
        } else if !group.members.contains_key(&member) {
            error = code::UNKNOWN_MEMBER_ID;
        } else if r.generation_id_or_member_epoch != group.generation {
            // Not a lost member: a commit refused is retried (or was one
            // the client had already given up on, delivered late).
            error = code::ILLEGAL_GENERATION;
            group.notes.push(format!(
                "group {group_id}: commit of {member} with generation {} refused: ILLEGAL_GENERATION",
                r.generation_id_or_member_epoch
            ));
        } else if group.state == GroupState::CompletingRebalance {
            error = code::REBALANCE_IN_PROGRESS;
        } else if let Some(m) = group.members.get_mut(&member) {
            m.seen = now;
        }
    }
    let mut topics = Vec::new();
    let mut committed = Vec::new();
    for t in r.topics {
        let name = t.name.0.to_string();
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                if error == code::NONE {
                    committed.push((
                        name.clone(),
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch,
                    ));
                }
                msg!(OffsetCommitResponsePartition {
                    partition_index: p.partition_index,
                    error_code: error
                })
            })
            .collect();
        topics.push(msg!(OffsetCommitResponseTopic {
            name: t.name,
            partitions: partitions
        }));
    }
    for (topic, partition, offset, epoch) in committed {
        world.on_commit(&topic, partition, offset);
        let group = world
            .cluster(side)
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| SimGroup::new(&group_id));
        group.epochs.insert((topic.clone(), partition), epoch);
        group.offsets.insert((topic, partition), offset);
    }
    msg!(OffsetCommitResponse { topics: topics })
}

fn offset_fetch(c: &mut SimCluster, broker: i32, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let error = coordinator_error(c, broker);
    if error != code::NONE {
        return msg!(OffsetFetchResponse { error_code: error });
    }
    let group = c
        .groups
        .get(&r.group_id.0.to_string())
        .cloned()
        .unwrap_or_default();
    let wanted: Vec<(String, Vec<i32>)> = match r.topics {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (t, p) in group.offsets.keys() {
                by_topic.entry(t.clone()).or_default().push(*p);
            }
            by_topic.into_iter().collect()
        }
    };
    msg!(OffsetFetchResponse {
        topics: wanted
            .into_iter()
            .map(|(name, partitions)| msg!(OffsetFetchResponseTopic {
                partitions: partitions
                    .into_iter()
                    .map(|p| msg!(OffsetFetchResponsePartition {
                        partition_index: p,
                        committed_offset: group
                            .offsets
                            .get(&(name.clone(), p))
                            .copied()
                            .unwrap_or(-1),
                        committed_leader_epoch: group
                            .epochs
                            .get(&(name.clone(), p))
                            .copied()
                            .unwrap_or(-1),
                        metadata: Some(s(""))
                    }))
                    .collect(),
                name: TopicName(s(&name))
            }))
            .collect()
    })
}

fn create_topics(c: &mut SimCluster, r: CreateTopicsRequest) -> CreateTopicsResponse {
    msg!(CreateTopicsResponse {
        topics: r
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let partitions = if t.num_partitions > 0 {
                    t.num_partitions
                } else {
                    1
                };
                let mut out = msg!(CreatableTopicResult {
                    name: t.name.clone(),
                    num_partitions: partitions,
                    replication_factor: c.brokers.len() as i16
                });
                if c.topics.contains_key(&name) {
                    out.error_code = code::TOPIC_ALREADY_EXISTS;
                    out.error_message = Some(s(&format!("Topic '{name}' already exists.")));
                } else if !r.validate_only {
                    let configs = t
                        .configs
                        .iter()
                        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                        .collect();
                    c.create_topic(&name, partitions, configs);
                    if let Some(topic) = c.topics.get(&name) {
                        out.topic_id = uuid::Uuid::from_bytes(topic.id);
                    }
                }
                out
            })
            .collect()
    })
}

fn create_partitions(c: &mut SimCluster, r: CreatePartitionsRequest) -> CreatePartitionsResponse {
    msg!(CreatePartitionsResponse {
        results: r
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let current = c.topics.get(&name).map(|t| t.partitions.len() as i32);
                let error_code = match current {
                    None => code::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(n) if t.count <= n => code::INVALID_PARTITIONS,
                    Some(_) if r.validate_only => code::NONE,
                    Some(_) => {
                        c.add_partitions(&name, t.count);
                        code::NONE
                    }
                };
                msg!(CreatePartitionsTopicResult {
                    name: t.name,
                    error_code: error_code
                })
            })
            .collect()
    })
}

const TOPIC_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.type", "CreateTime"),
    ("min.insync.replicas", "2"),
    ("retention.ms", "604800000"),
];

fn describe_configs(c: &SimCluster, r: DescribeConfigsRequest) -> DescribeConfigsResponse {
    msg!(DescribeConfigsResponse {
        results: r
            .resources
            .into_iter()
            .map(|res| {
                let name = res.resource_name.to_string();
                let mut out = msg!(DescribeConfigsResult {
                    resource_type: res.resource_type,
                    resource_name: res.resource_name.clone()
                });
                if res.resource_type == 2 {
                    match c.topics.get(&name) {
                        None => out.error_code = code::UNKNOWN_TOPIC_OR_PARTITION,
                        Some(t) => {
                            let mut all: BTreeMap<String, (String, i8)> = TOPIC_DEFAULTS
                                .iter()
                                .map(|(k, v)| ((*k).to_owned(), ((*v).to_owned(), 5)))
                                .collect();
                            for (k, v) in &t.configs {
                                all.insert(k.clone(), (v.clone(), 1));
                            }
                            out.configs = all
                                .into_iter()
                                .filter(|(k, _)| {
                                    res.configuration_keys
                                        .as_ref()
                                        .is_none_or(|keys| keys.iter().any(|x| x.as_str() == k))
                                })
                                .map(|(k, (v, source))| {
                                    msg!(DescribeConfigsResourceResult {
                                        name: s(&k),
                                        value: Some(s(&v)),
                                        config_source: source
                                    })
                                })
                                .collect();
                        }
                    }
                }
                out
            })
            .collect()
    })
}

fn init_producer_id(
    world: &mut World,
    side: Side,
    r: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if side == Side::Destination {
        world.producer_ids += 1;
    }
    let _ = r;
    // Apache Kafka hands an idempotent (non-transactional) producer a new
    // producer id every time.
    let (id, epoch) = world.cluster(side).new_producer();
    msg!(InitProducerIdResponse {
        producer_id: ProducerId(id),
        producer_epoch: epoch,
        ongoing_txn_producer_id: ProducerId(-1),
        ongoing_txn_producer_epoch: -1
    })
}
