//! The control-plane requests the engine makes: group state and offsets on
//! the source, topic configs and creation, and the producer id on the
//! destination. Each request is built for the version the broker's
//! connection negotiated, since several change shape between versions.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::{
    self as kp, ApiKey, BrokerId, GroupId, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kmirror_pool::{BrokerConnection, Cluster, PoolError};
use kmirror_protocol::ResponseError;

use super::config::OffsetReset;
use super::error::{MirrorError, Side};
use crate::fetch_plan::IsolationLevel;

/// A source (or destination) topic partition.
pub type TopicPartition = (Arc<str>, i32);

/// The topic configs worth copying to a destination topic kmirror creates:
/// what shapes retention, compaction and record format. Placement and
/// replication settings (and anything broker-specific) are left to the
/// destination.
pub const COPIED_TOPIC_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "message.timestamp.difference.max.ms",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

/// DescribeConfigs' `config_source` for a topic's own setting.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
/// DescribeConfigs' resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn kafka_error(code: i16) -> Option<ResponseError> {
    ResponseError::try_from_code(code)
}

fn pool_kafka(
    conn: &BrokerConnection,
    api: ApiKey,
    error: ResponseError,
    context: String,
) -> PoolError {
    PoolError::Kafka {
        broker: conn.broker().to_owned(),
        api,
        error,
        context: Some(context),
    }
}

fn version(conn: &BrokerConnection, api: ApiKey) -> Result<i16, PoolError> {
    conn.versions()
        .version(api)
        .map_err(|e| PoolError::Protocol {
            broker: conn.broker().to_owned(),
            source: Arc::new(e),
        })
}

/// How long kmirror waits for a group's coordinator to become available.
const COORDINATOR_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The node id of `group`'s coordinator, waiting (up to
/// [`COORDINATOR_WAIT`]) while the broker answers that none is available
/// yet. Apache Kafka answers COORDINATOR_NOT_AVAILABLE to the first
/// FindCoordinator of a new cluster while it creates `__consumer_offsets`
/// (`KafkaApis.handleFindCoordinatorRequest`), and while a partition of it
/// has no leader; COORDINATOR_LOAD_IN_PROGRESS while loading it.
pub(crate) async fn find_coordinator(cluster: &Cluster, group: &str) -> Result<i32, PoolError> {
    let deadline = tokio::time::Instant::now() + COORDINATOR_WAIT;
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        match cluster.coordinator(group).await {
            Err(PoolError::Kafka { error, .. })
                if coordinator_busy(error) && tokio::time::Instant::now() + backoff < deadline =>
            {
                tracing::debug!(%group, "no group coordinator available yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
            }
            result => return result,
        }
    }
}

/// Whether `error` says that the group's coordinator is not available,
/// has moved, or is still loading the group: worth asking again.
fn coordinator_busy(error: ResponseError) -> bool {
    matches!(
        error,
        ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::NotCoordinator
    )
}

/// Runs `request` (made to `group`'s coordinator) again, with the
/// coordinator looked up anew, while it is refused because the coordinator
/// is busy ([`coordinator_busy`]), for up to [`COORDINATOR_WAIT`]. Apache
/// Kafka answers COORDINATOR_LOAD_IN_PROGRESS to DescribeGroups and
/// OffsetFetch while it loads a `__consumer_offsets` partition, as it does
/// right after creating the topic (`GroupCoordinatorService`).
async fn at_coordinator<T, F, Fut>(
    cluster: &Cluster,
    group: &str,
    mut request: F,
) -> Result<T, MirrorError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, MirrorError>>,
{
    let deadline = tokio::time::Instant::now() + COORDINATOR_WAIT;
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        match request().await {
            Err(MirrorError::Refused { error, .. })
                if coordinator_busy(error) && tokio::time::Instant::now() + backoff < deadline =>
            {
                tracing::debug!(%group, %error, "the group coordinator is busy; retrying");
                cluster.invalidate_coordinator(group);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
            }
            result => return result,
        }
    }
}

async fn coordinator_connection(
    cluster: &Cluster,
    group: &str,
) -> Result<Arc<BrokerConnection>, PoolError> {
    let id = find_coordinator(cluster, group).await?;
    cluster.connection_to_broker(id).await
}

/// The offsets `group` committed on the source for `partitions`; a
/// partition without a commit is absent.
pub async fn committed_offsets(
    source: &Cluster,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, i64>, MirrorError> {
    Ok(committed_positions(source, group, partitions)
        .await?
        .into_iter()
        .map(|(k, (offset, _))| (k, offset))
        .collect())
}

/// As [`committed_offsets`], with the leader epoch committed with each
/// offset (OffsetFetch v5+; -1 when unknown), which lets the first Fetch
/// after a restart find a truncation of the log below it (KIP-320).
pub async fn committed_positions(
    source: &Cluster,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, (i64, i32)>, MirrorError> {
    committed_positions_on(source, Side::Source, group, partitions).await
}

/// [`committed_positions`] of a group on either cluster.
pub async fn committed_positions_on(
    cluster: &Cluster,
    side: Side,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, (i64, i32)>, MirrorError> {
    at_coordinator(cluster, group, || {
        committed_offsets_once(cluster, side, group, partitions)
    })
    .await
}

async fn committed_offsets_once(
    source: &Cluster,
    side: Side,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, (i64, i32)>, MirrorError> {
    let wrap = |e| MirrorError::on(side, e);
    let conn = coordinator_connection(source, group).await.map_err(wrap)?;
    let version = version(&conn, ApiKey::OffsetFetch).map_err(wrap)?;
    let mut by_topic: BTreeMap<Arc<str>, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic.clone()).or_default().push(*partition);
    }
    let request = if version >= 8 {
        let topics = by_topic
            .iter()
            .map(|(t, ps)| {
                kp::offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partition_indexes(ps.clone())
            })
            .collect();
        kp::OffsetFetchRequest::default().with_groups(vec![
            kp::offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_topics(Some(topics)),
        ])
    } else {
        let topics = by_topic
            .iter()
            .map(|(t, ps)| {
                kp::offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partition_indexes(ps.clone())
            })
            .collect();
        kp::OffsetFetchRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_topics(Some(topics))
    };
    let response = conn.send(&request).await.map_err(wrap)?;
    let refused = |error: ResponseError| MirrorError::Refused {
        side,
        what: format!("OffsetFetch for group {group}"),
        error,
        hint: None,
    };
    let mut out = BTreeMap::new();
    let mut record = |topic: &str, partition: i32, offset: i64, epoch: i32, code: i16| {
        if let Some(error) = kafka_error(code) {
            return Err(refused(error));
        }
        if offset >= 0
            && let Some((t, _)) = partitions
                .iter()
                .find(|(t, p)| &**t == topic && *p == partition)
        {
            out.insert(
                (t.clone(), partition),
                (offset, if version >= 5 { epoch } else { -1 }),
            );
        }
        Ok(())
    };
    // v8+ answers per group, older versions for the one group.
    let partitions: Vec<(StrBytes, i32, i64, i32, i16)> = if version >= 8 {
        let mut all = Vec::new();
        for g in response.groups {
            if let Some(error) = kafka_error(g.error_code) {
                return Err(refused(error));
            }
            for t in g.topics {
                all.extend(t.partitions.iter().map(|p| {
                    let (offset, epoch) = (p.committed_offset, p.committed_leader_epoch);
                    (
                        t.name.0.clone(),
                        p.partition_index,
                        offset,
                        epoch,
                        p.error_code,
                    )
                }));
            }
        }
        all
    } else {
        if let Some(error) = kafka_error(response.error_code) {
            return Err(refused(error));
        }
        response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    let (offset, epoch) = (p.committed_offset, p.committed_leader_epoch);
                    (
                        t.name.0.clone(),
                        p.partition_index,
                        offset,
                        epoch,
                        p.error_code,
                    )
                })
            })
            .collect()
    };
    for (topic, partition, offset, epoch, code) in partitions {
        record(&topic, partition, offset, epoch, code)?;
    }
    Ok(out)
}

/// Where `reset` puts each of `partitions` (ListOffsets to each leader):
/// the log start for earliest, the end (the last stable offset under
/// READ_COMMITTED) for latest.
pub async fn list_offsets(
    cluster: &Cluster,
    side: Side,
    partitions: &[TopicPartition],
    reset: OffsetReset,
    isolation: IsolationLevel,
) -> Result<BTreeMap<TopicPartition, i64>, MirrorError> {
    let wrap = |e| MirrorError::on(side, e);
    let timestamp = match reset {
        OffsetReset::Earliest => -2,
        OffsetReset::Latest | OffsetReset::None => -1,
    };
    let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
    for tp in partitions {
        let leader = cluster.leader_of(&tp.0, tp.1).await.map_err(wrap)?;
        by_leader.entry(leader).or_default().push(tp.clone());
    }
    let mut out = BTreeMap::new();
    for (leader, tps) in by_leader {
        let conn = cluster.connection_to_broker(leader).await.map_err(wrap)?;
        let mut by_topic: BTreeMap<Arc<str>, Vec<i32>> = BTreeMap::new();
        for (t, p) in &tps {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
        let topics = by_topic
            .iter()
            .map(|(t, ps)| {
                kp::list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partitions(
                        ps.iter()
                            .map(|p| {
                                kp::list_offsets_request::ListOffsetsPartition::default()
                                    .with_partition_index(*p)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )
            })
            .collect();
        let request = kp::ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation.wire_value())
            .with_topics(topics);
        let response = conn.send(&request).await.map_err(wrap)?;
        for t in response.topics {
            for p in t.partitions {
                if let Some(error) = kafka_error(p.error_code) {
                    if error.is_retriable() {
                        cluster.invalidate_metadata();
                    }
                    return Err(wrap(pool_kafka(
                        &conn,
                        ApiKey::ListOffsets,
                        error,
                        format!("{}-{}", &*t.name, p.partition_index),
                    )));
                }
                if let Some((topic, _)) = tps
                    .iter()
                    .find(|(n, q)| **n == **t.name && *q == p.partition_index)
                {
                    out.insert((topic.clone(), p.partition_index), p.offset);
                }
            }
        }
    }
    Ok(out)
}

/// How one partition's commit went.
pub type CommitResult = Result<(), ResponseError>;

/// Commits `offsets` for `group` on the source as `member` (generation and
/// member id), or without one (generation -1) the way admin tools set an
/// empty group's offsets, each with its leader epoch from `epochs`
/// (OffsetCommit v6+, as Java's consumer does). Returns each partition's
/// outcome.
pub async fn commit_offsets(
    source: &Cluster,
    group: &str,
    member: Option<(i32, &str)>,
    offsets: &[(TopicPartition, i64)],
    epochs: &BTreeMap<TopicPartition, i32>,
) -> Result<Vec<(TopicPartition, CommitResult)>, PoolError> {
    let conn = match coordinator_connection(source, group).await {
        Ok(conn) => conn,
        Err(e) => {
            source.invalidate_coordinator(group);
            return Err(e);
        }
    };
    let with_epochs = conn
        .versions()
        .version(ApiKey::OffsetCommit)
        .is_ok_and(|v| v >= 6);
    let mut by_topic: BTreeMap<Arc<str>, Vec<(i32, i64, i32)>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        let epoch = if with_epochs {
            epochs.get(&(t.clone(), *p)).copied().unwrap_or(-1)
        } else {
            -1
        };
        by_topic.entry(t.clone()).or_default().push((*p, *o, epoch));
    }
    let topics = by_topic
        .iter()
        .map(|(t, ps)| {
            kp::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(str_bytes(t)))
                .with_partitions(
                    ps.iter()
                        .map(|(p, o, e)| {
                            kp::offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                                .with_committed_leader_epoch(*e)
                                .with_committed_metadata(Some(StrBytes::from_static_str("")))
                        })
                        .collect(),
                )
        })
        .collect();
    let request = kp::OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(member.map_or(-1, |(generation, _)| generation))
        .with_member_id(str_bytes(member.map_or("", |(_, id)| id)))
        .with_topics(topics);
    let response = match conn.send(&request).await {
        Ok(r) => r,
        Err(e) => {
            source.invalidate_coordinator(group);
            return Err(e);
        }
    };
    let mut out = Vec::new();
    for t in response.topics {
        for p in t.partitions {
            let Some((tp, _)) = offsets
                .iter()
                .find(|((n, q), _)| **n == **t.name && *q == p.partition_index)
            else {
                continue;
            };
            let result = match kafka_error(p.error_code) {
                None => Ok(()),
                Some(e) => {
                    if matches!(
                        e,
                        ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable
                    ) {
                        source.invalidate_coordinator(group);
                    }
                    Err(e)
                }
            };
            out.push((tp.clone(), result));
        }
    }
    Ok(out)
}

/// A consumer group as DescribeGroups tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance`,
    /// `Dead` (no such group), or a KIP-848 group's state.
    pub state: String,
    /// `consumer` for consumer groups.
    pub protocol_type: String,
    /// Its members' client ids and hosts.
    pub members: Vec<String>,
}

/// Describes `group` on `cluster` (DescribeGroups to its coordinator).
pub async fn describe_group(
    cluster: &Cluster,
    side: Side,
    group: &str,
) -> Result<GroupDescription, MirrorError> {
    let wrap = |e| MirrorError::on(side, e);
    let conn = coordinator_connection(cluster, group).await.map_err(wrap)?;
    let request = kp::DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]);
    let response = match conn.send(&request).await {
        Ok(r) => r,
        Err(e) => {
            cluster.invalidate_coordinator(group);
            return Err(wrap(e));
        }
    };
    let g = response.groups.into_iter().next().ok_or_else(|| {
        MirrorError::Internal(format!(
            "DescribeGroups for {group}: no group in the answer"
        ))
    })?;
    if let Some(error) = kafka_error(g.error_code) {
        if error == ResponseError::GroupIdNotFound {
            // Kafka 4's coordinator says so for a group it never had
            // (older ones answer the state Dead).
            return Ok(GroupDescription {
                state: "Dead".to_owned(),
                protocol_type: String::new(),
                members: Vec::new(),
            });
        }
        if matches!(
            error,
            ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable
        ) {
            cluster.invalidate_coordinator(group);
        }
        return Err(MirrorError::Refused {
            side,
            what: format!("DescribeGroups for group {group}"),
            error,
            hint: None,
        });
    }
    Ok(GroupDescription {
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        members: g
            .members
            .iter()
            .map(|m| {
                format!(
                    "{} ({} at {})",
                    m.member_id.as_str(),
                    m.client_id.as_str(),
                    m.client_host.as_str()
                )
            })
            .collect(),
    })
}

/// Every consumer group on `cluster` (ListGroups to every broker: each
/// lists the groups it coordinates).
pub async fn list_groups(cluster: &Cluster, side: Side) -> Result<Vec<String>, MirrorError> {
    let wrap = |e| MirrorError::on(side, e);
    let metadata = cluster.refresh_metadata().await.map_err(wrap)?;
    let mut out = Vec::new();
    for id in metadata.brokers.keys() {
        let response = cluster
            .send_to_broker(*id, &kp::ListGroupsRequest::default())
            .await
            .map_err(wrap)?;
        if let Some(error) = kafka_error(response.error_code) {
            return Err(MirrorError::Refused {
                side,
                what: format!("ListGroups on broker {id}"),
                error,
                hint: None,
            });
        }
        out.extend(
            response
                .groups
                .into_iter()
                .filter(|g| g.protocol_type.is_empty() || g.protocol_type.as_str() == "consumer")
                .map(|g| g.group_id.0.to_string()),
        );
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// One entry of a topic's DescribeConfigs answer.
struct ConfigEntry {
    name: String,
    value: Option<String>,
    source: i8,
    sensitive: bool,
}

/// Every config of `topic`, or the error code the broker gave.
async fn describe_topic(
    cluster: &Cluster,
    topic: &str,
) -> Result<Result<Vec<ConfigEntry>, ResponseError>, PoolError> {
    let request = kp::DescribeConfigsRequest::default().with_resources(vec![
        kp::describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(str_bytes(topic))
            .with_configuration_keys(None),
    ]);
    let leader = cluster.leader_of(topic, 0).await?;
    let response = cluster.send_to_broker(leader, &request).await?;
    let mut out = Vec::new();
    for result in response.results {
        if let Some(error) = kafka_error(result.error_code) {
            return Ok(Err(error));
        }
        out.extend(result.configs.into_iter().map(|c| ConfigEntry {
            name: c.name.to_string(),
            value: c.value.map(|v| v.to_string()),
            source: c.config_source,
            sensitive: c.is_sensitive,
        }));
    }
    Ok(Ok(out))
}

/// How long `topic` keeps its records, in ms: -1 for ever (also for a
/// compacted topic, whose latest records stay), 7 days if the broker does
/// not say.
pub async fn retention_ms(source: &Cluster, topic: &str) -> Result<i64, MirrorError> {
    const DEFAULT: i64 = 7 * 24 * 3_600_000;
    let Ok(entries) = describe_topic(source, topic)
        .await
        .map_err(MirrorError::source)?
    else {
        return Ok(DEFAULT);
    };
    let value = |name: &str| {
        entries
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.value.clone())
    };
    if value("cleanup.policy").is_some_and(|p| p.contains("compact")) {
        return Ok(-1);
    }
    Ok(value("retention.ms")
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(DEFAULT, |ms| if ms < 0 { -1 } else { ms }))
}

/// The topic's own (non-default) settings among [`COPIED_TOPIC_CONFIGS`].
pub async fn copied_topic_configs(
    source: &Cluster,
    topic: &str,
) -> Result<Vec<(String, String)>, MirrorError> {
    let entries = match describe_topic(source, topic)
        .await
        .map_err(MirrorError::source)?
    {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(%topic, %error, "cannot read the source topic's configs; the destination topic gets the destination's defaults");
            return Ok(Vec::new());
        }
    };
    Ok(entries
        .into_iter()
        .filter(|c| {
            c.source == DYNAMIC_TOPIC_CONFIG
                && !c.sensitive
                && COPIED_TOPIC_CONFIGS.contains(&c.name.as_str())
        })
        .filter_map(|c| c.value.map(|v| (c.name, v)))
        .collect())
}

/// The destination topic's effective `max.message.bytes` (its own setting
/// or the broker's default), if the broker says.
pub async fn max_message_bytes(destination: &Cluster, topic: &str) -> Option<usize> {
    let entries = match describe_topic(destination, topic).await {
        Ok(Ok(entries)) => entries,
        Ok(Err(error)) => {
            tracing::debug!(%topic, %error, "no max.message.bytes from the destination");
            return None;
        }
        Err(e) => {
            tracing::debug!(%topic, error = %e, "no max.message.bytes from the destination");
            return None;
        }
    };
    entries
        .into_iter()
        .find(|c| c.name == "max.message.bytes")
        .and_then(|c| c.value)
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|v| *v > 0)
}

/// Creates `topic` on the destination with `partitions` partitions and
/// `configs`; returns whether this call created it. A topic that appeared
/// meanwhile (TOPIC_ALREADY_EXISTS: another kmirror process of the group
/// racing to create it) is fine: the caller checks its partition count in
/// the metadata.
pub async fn create_topic(
    destination: &Cluster,
    topic: &str,
    partitions: i32,
    replication_factor: Option<i16>,
    configs: &[(String, String)],
) -> Result<bool, MirrorError> {
    let metadata = destination
        .metadata()
        .await
        .map_err(MirrorError::destination)?;
    let target = if metadata.brokers.contains_key(&metadata.controller_id) {
        metadata.controller_id
    } else {
        metadata.brokers.keys().next().copied().unwrap_or(-1)
    };
    let conn = destination
        .connection_to_broker(target)
        .await
        .map_err(MirrorError::destination)?;
    let version = version(&conn, ApiKey::CreateTopics).map_err(MirrorError::destination)?;
    // -1 (the broker's default) needs CreateTopics v4+ (Kafka 2.4); before
    // that, 3 (the usual production setting) capped at the broker count.
    let brokers = i16::try_from(metadata.brokers.len())
        .unwrap_or(i16::MAX)
        .max(1);
    let replication = replication_factor.unwrap_or(if version >= 4 { -1 } else { brokers.min(3) });
    let request = kp::CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            kp::create_topics_request::CreatableTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_num_partitions(partitions)
                .with_replication_factor(replication)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            kp::create_topics_request::CreatableTopicConfig::default()
                                .with_name(str_bytes(k))
                                .with_value(Some(str_bytes(v)))
                        })
                        .collect(),
                ),
        ]);
    let response = conn
        .send(&request)
        .await
        .map_err(MirrorError::destination)?;
    let mut created = true;
    for result in response.topics {
        match kafka_error(result.error_code) {
            None => {}
            Some(ResponseError::TopicAlreadyExists) => created = false,
            Some(error) => {
                let detail = result
                    .error_message
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                return Err(MirrorError::Refused {
                    side: Side::Destination,
                    what: format!("CreateTopics for {topic} ({partitions} partitions) {detail}"),
                    error,
                    hint: Some(match error {
                        ResponseError::TopicAuthorizationFailed
                        | ResponseError::ClusterAuthorizationFailed => {
                            "grant the mirror's principal Create on the destination, or create the topic there yourself".to_owned()
                        }
                        ResponseError::InvalidReplicationFactor => {
                            "the destination has fewer brokers than the replication factor; create the topic yourself".to_owned()
                        }
                        _ => "create the destination topic yourself with the partition count of the source".to_owned(),
                    }),
                });
            }
        }
    }
    destination.invalidate_metadata();
    Ok(created)
}

/// Grows `topic` on the destination to `partitions` partitions
/// (CreatePartitions to the controller), as a source topic that grew must
/// grow where it is mirrored. A topic that already has that many
/// (INVALID_PARTITIONS: someone grew it meanwhile) is fine: the caller
/// reads the count from the metadata.
pub async fn create_partitions(
    destination: &Cluster,
    topic: &str,
    partitions: i32,
) -> Result<(), MirrorError> {
    let metadata = destination
        .metadata()
        .await
        .map_err(MirrorError::destination)?;
    let target = if metadata.brokers.contains_key(&metadata.controller_id) {
        metadata.controller_id
    } else {
        metadata.brokers.keys().next().copied().unwrap_or(-1)
    };
    let request = kp::CreatePartitionsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            kp::create_partitions_request::CreatePartitionsTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_count(partitions)
                .with_assignments(None),
        ]);
    let response = destination
        .send_to_broker(target, &request)
        .await
        .map_err(MirrorError::destination)?;
    destination.invalidate_metadata();
    for result in response.results {
        match kafka_error(result.error_code) {
            None | Some(ResponseError::InvalidPartitions) => {}
            Some(error) => {
                let detail = result
                    .error_message
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                return Err(MirrorError::Refused {
                    side: Side::Destination,
                    what: format!("CreatePartitions for {topic} (to {partitions}) {detail}"),
                    error,
                    hint: Some(match error {
                        ResponseError::TopicAuthorizationFailed
                        | ResponseError::ClusterAuthorizationFailed => {
                            "grant the mirror's principal Alter on the destination topic, or add the partitions there yourself".to_owned()
                        }
                        _ => format!("add partitions to the destination topic yourself (kafka-topics --alter --partitions {partitions})"),
                    }),
                });
            }
        }
    }
    Ok(())
}

/// An idempotent producer id and epoch from the destination; with
/// `current`, asks to bump that producer's epoch (InitProducerId v3+),
/// else for a new id. A bump refused with INVALID_PRODUCER_EPOCH or
/// PRODUCER_FENCED asks for a new id instead.
pub async fn init_producer_id(
    destination: &Cluster,
    current: Option<(i64, i16)>,
) -> Result<(i64, i16), PoolError> {
    let metadata = destination.metadata().await?;
    let mut last = None;
    for id in metadata.brokers.keys() {
        let conn = match destination.connection_to_broker(*id).await {
            Ok(c) => c,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let version = version(&conn, ApiKey::InitProducerId)?;
        let (pid, epoch) = match current {
            Some((pid, epoch)) if version >= 3 => (pid, epoch),
            _ => (-1, -1),
        };
        let request = kp::InitProducerIdRequest::default()
            .with_transactional_id(None::<TransactionalId>)
            .with_transaction_timeout_ms(i32::MAX)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch);
        let mut answer = conn.send(&request).await;
        let refused_bump = answer.as_ref().is_ok_and(|r| {
            matches!(
                kafka_error(r.error_code),
                Some(ResponseError::InvalidProducerEpoch | ResponseError::ProducerFenced)
            )
        });
        if pid >= 0 && refused_bump {
            // The broker no longer holds this producer at this epoch (its
            // state expired, or the id moved on): ask for a new producer
            // id instead of bumping for ever.
            let fresh = request
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            answer = conn.send(&fresh).await;
        }
        match answer {
            Ok(r) => match kafka_error(r.error_code) {
                None => return Ok((r.producer_id.0, r.producer_epoch)),
                Some(error) => {
                    last = Some(pool_kafka(
                        &conn,
                        ApiKey::InitProducerId,
                        error,
                        "idempotent producer".into(),
                    ));
                    if !error.is_retriable() && error != ResponseError::InvalidProducerEpoch {
                        break;
                    }
                }
            },
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(PoolError::Shutdown))
}
