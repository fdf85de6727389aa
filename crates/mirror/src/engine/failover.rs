//! Moving consumer groups from the source to the destination: each
//! partition's committed source offset translated exactly with the offset
//! map ([`crate::translation`]), committed to the same group on the
//! destination, and recorded as MirrorMaker 2 checkpoints so that tools
//! built for MirrorMaker 2 (`RemoteClusterUtils.translateOffsets`) read
//! the same answers.
//!
//! The rules: a destination group with members is never touched (its
//! consumers own their offsets), a destination offset is never moved
//! backwards, and a partition whose records kmirror placed by key (the
//! partition counts differ) has no exact translation and is refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use kmirror_pool::Cluster;
use thiserror::Error;

use super::admin::{self, GroupDescription, TopicPartition};
use super::error::{MirrorError, Side};
use super::internal_topic;
use crate::translation::checkpoint::{Checkpoint, checkpoints_topic};
use crate::translation::{MapRecord, OffsetIndex, TranslateError, Translation, offset_map_topic};

/// Why a failover step did not happen.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum FailoverError {
    /// A cluster failed or refused a request.
    #[error(transparent)]
    Cluster(#[from] MirrorError),
    /// The destination has no offset map.
    #[error(
        "the destination has no offset map topic {topic}: kmirror has not mirrored into it with \
         the offset map on (it is on unless --offset.map false), or --source.alias differs from \
         the mirror's"
    )]
    NoOffsetMap {
        /// The topic looked for.
        topic: String,
    },
    /// A group has members where it must have none.
    #[error(
        "group {group} has {} active member(s) on the {side} cluster ({}); {hint}",
        members.len(),
        members.join(", ")
    )]
    ActiveGroup {
        /// The group.
        group: String,
        /// Where.
        side: Side,
        /// Its members.
        members: Vec<String>,
        /// What to do.
        hint: &'static str,
    },
    /// The group committed nothing on the source.
    #[error("group {group} has no committed offsets on the source cluster for mirrored topics")]
    NothingCommitted {
        /// The group.
        group: String,
    },
    /// Some partitions have no exact translation.
    #[error(
        "group {group}: {} partition(s) cannot be translated exactly, so nothing was committed:\n  {}",
        problems.len(),
        problems.join("\n  ")
    )]
    NotTranslatable {
        /// The group.
        group: String,
        /// One line per partition.
        problems: Vec<String>,
    },
}

/// Why one partition has no exact translation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PartitionProblem {
    /// The map cannot place the offset.
    #[error(transparent)]
    Map(#[from] TranslateError),
    /// kmirror placed the topic's records by key.
    #[error(
        "the source has {source_partitions} partitions and the destination {destination_partitions}: \
         kmirror places such records by key, so the records of one source partition are spread \
         over several destination partitions and no destination offset stands for a source \
         offset; give both the same partition count before mirroring to fail over exactly"
    )]
    PlacedByKey {
        /// Source partitions.
        source_partitions: usize,
        /// Destination partitions.
        destination_partitions: usize,
    },
    /// The topic does not exist on the destination.
    #[error("the topic does not exist on the destination")]
    NotOnDestination,
}

/// One partition of a group: its source offset, the translation, and the
/// destination group's offset before any commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPlan {
    /// The topic (the same name on both clusters).
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset on the source.
    pub source_offset: i64,
    /// Its translation.
    pub translation: Result<Translation, PartitionProblem>,
    /// The group's committed offset on the destination, if any.
    pub destination_before: Option<i64>,
    /// Source offsets the translation stands behind the group's offset:
    /// 0 when exact; more when kmirror had not copied up to the group's
    /// offset yet and the sync placed the group where kmirror's account
    /// ends (the group reads those records again on the destination, and
    /// the next sync moves it on).
    pub behind: i64,
}

impl PartitionPlan {
    /// The offset to commit on the destination: the translation, unless
    /// the destination group is already there or further (never moved
    /// back).
    pub fn to_commit(&self) -> Option<i64> {
        let t = self.translation.as_ref().ok()?;
        match self.destination_before {
            Some(before) if before >= t.destination_offset => None,
            _ => Some(t.destination_offset),
        }
    }
}

/// What a sync or cutover did for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSync {
    /// The group.
    pub group: String,
    /// Every partition, before the commit.
    pub plans: Vec<PartitionPlan>,
    /// The offsets committed on the destination.
    pub committed: BTreeMap<(String, i32), i64>,
    /// Why nothing was committed (an active destination group), if so.
    pub skipped: Option<String>,
}

/// The clusters and the names of the translation topics.
#[derive(Clone)]
pub struct Failover {
    source: Cluster,
    destination: Cluster,
    map_topic: String,
    checkpoints_topic: String,
    replication_factor: Option<i16>,
}

impl Failover {
    /// For a mirror from the source cluster called `source_alias` (the
    /// offset map `kmirror-offset-map.<alias>.internal`, the checkpoints
    /// `<alias>.checkpoints.internal`, as MirrorMaker 2 names them).
    pub fn new(
        source: Cluster,
        destination: Cluster,
        source_alias: &str,
        replication_factor: Option<i16>,
    ) -> Self {
        Self {
            source,
            destination,
            map_topic: offset_map_topic(source_alias),
            checkpoints_topic: checkpoints_topic(source_alias),
            replication_factor,
        }
    }

    /// Reads the offset map.
    pub async fn index(&self) -> Result<OffsetIndex, FailoverError> {
        let records =
            internal_topic::read_all(&self.destination, Side::Destination, &self.map_topic)
                .await?
                .ok_or_else(|| FailoverError::NoOffsetMap {
                    topic: self.map_topic.clone(),
                })?;
        let mut index = OffsetIndex::new();
        for (i, (key, value)) in records.into_iter().enumerate() {
            let (Some(key), Some(value)) = (key, value) else {
                continue;
            };
            match MapRecord::decode(&key, &value) {
                Ok(record) => index.apply(record),
                Err(e) => {
                    return Err(MirrorError::Destination {
                        topic: self.map_topic.clone(),
                        reason: format!(
                            "record {i} of the offset map cannot be read ({e}); it was not \
                             written by this kmirror"
                        ),
                    }
                    .into());
                }
            }
        }
        Ok(index)
    }

    /// Describes `group` on one side.
    pub async fn describe(
        &self,
        side: Side,
        group: &str,
    ) -> Result<GroupDescription, FailoverError> {
        let cluster = match side {
            Side::Source => &self.source,
            Side::Destination => &self.destination,
        };
        Ok(admin::describe_group(cluster, side, group).await?)
    }

    /// Every consumer group on the source.
    pub async fn source_groups(&self) -> Result<Vec<String>, FailoverError> {
        Ok(admin::list_groups(&self.source, Side::Source).await?)
    }

    /// Translates every committed offset of `group` on the source.
    pub async fn plan(
        &self,
        index: &OffsetIndex,
        group: &str,
    ) -> Result<Vec<PartitionPlan>, FailoverError> {
        let source_meta = self
            .source
            .refresh_metadata()
            .await
            .map_err(MirrorError::source)?;
        let dest_meta = self
            .destination
            .refresh_metadata()
            .await
            .map_err(MirrorError::destination)?;
        let tps: Vec<TopicPartition> = source_meta
            .topics
            .values()
            .filter(|t| !t.is_internal && !crate::selection::is_internal_topic(&t.name))
            .flat_map(|t| {
                let name: Arc<str> = Arc::from(t.name.as_str());
                t.partitions
                    .iter()
                    .map(move |p| (name.clone(), p.partition))
            })
            .collect();
        if tps.is_empty() {
            return Ok(Vec::new());
        }
        let committed =
            admin::committed_positions_on(&self.source, Side::Source, group, &tps).await?;
        let on_destination: Vec<TopicPartition> = committed
            .keys()
            .filter(|(t, _)| dest_meta.topics.contains_key(&**t))
            .cloned()
            .collect();
        let before = if on_destination.is_empty() {
            BTreeMap::new()
        } else {
            admin::committed_positions_on(
                &self.destination,
                Side::Destination,
                group,
                &on_destination,
            )
            .await?
        };
        let mut plans = Vec::new();
        for ((topic, partition), (offset, _)) in committed {
            let source_partitions = source_meta
                .topics
                .get(&*topic)
                .map_or(0, |t| t.partitions.len());
            let translation = match dest_meta.topics.get(&*topic) {
                None => Err(PartitionProblem::NotOnDestination),
                Some(d) if d.partitions.len() != source_partitions => {
                    Err(PartitionProblem::PlacedByKey {
                        source_partitions,
                        destination_partitions: d.partitions.len(),
                    })
                }
                Some(_) => index
                    .translate(&topic, partition, offset)
                    .map_err(PartitionProblem::from),
            };
            plans.push(PartitionPlan {
                destination_before: before.get(&(topic.clone(), partition)).map(|(o, _)| *o),
                topic: topic.to_string(),
                partition,
                source_offset: offset,
                translation,
                behind: 0,
            });
        }
        Ok(plans)
    }

    /// Records the translations of `plans` as MirrorMaker 2 checkpoints of
    /// `group` (upstream = the source offset, downstream = its
    /// translation).
    pub async fn write_checkpoints(
        &self,
        group: &str,
        plans: &[PartitionPlan],
    ) -> Result<(), FailoverError> {
        let mut records = Vec::new();
        for plan in plans {
            let Ok(t) = &plan.translation else {
                continue;
            };
            let checkpoint = Checkpoint {
                group: group.to_owned(),
                topic: plan.topic.clone(),
                partition: plan.partition,
                upstream_offset: plan.source_offset,
                downstream_offset: t.destination_offset,
                metadata: String::new(),
            };
            let invalid = |e: crate::translation::checkpoint::CheckpointError| {
                FailoverError::Cluster(MirrorError::Config(format!(
                    "group {group}, {}-{}: cannot write a checkpoint: {e}",
                    plan.topic, plan.partition
                )))
            };
            records.push((
                checkpoint.encode_key().map_err(invalid)?,
                checkpoint.encode_value().map_err(invalid)?,
            ));
        }
        if records.is_empty() {
            return Ok(());
        }
        internal_topic::ensure(
            &self.destination,
            &self.checkpoints_topic,
            self.replication_factor,
            &[("cleanup.policy".to_owned(), "compact".to_owned())],
        )
        .await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        internal_topic::append(&self.destination, &self.checkpoints_topic, &records, now)
            .await
            .map_err(MirrorError::destination)?;
        Ok(())
    }

    /// Translates `group` and commits the translations on the destination
    /// unless its group there has members; never moves an offset back.
    /// Records checkpoints either way. With `all_or_nothing`, a partition
    /// without an exact translation stops everything (nothing committed).
    pub async fn sync_group(
        &self,
        index: &OffsetIndex,
        group: &str,
        all_or_nothing: bool,
        dry_run: bool,
    ) -> Result<GroupSync, FailoverError> {
        let mut plans = self.plan(index, group).await?;
        if !all_or_nothing {
            // A group ahead of kmirror's account: placed where the account
            // ends rather than not at all (never ahead of its records).
            for p in &mut plans {
                if let Err(PartitionProblem::Map(TranslateError::NotCopiedYet { complete_to })) =
                    p.translation
                    && let Ok(t) = index.translate(&p.topic, p.partition, complete_to)
                {
                    p.behind = p.source_offset - complete_to;
                    p.translation = Ok(t);
                }
            }
        }
        if plans.is_empty() {
            return Err(FailoverError::NothingCommitted {
                group: group.to_owned(),
            });
        }
        let problems: Vec<String> = plans
            .iter()
            .filter_map(|p| {
                p.translation.as_ref().err().map(|e| {
                    format!(
                        "{}-{} at source offset {}: {e}",
                        p.topic, p.partition, p.source_offset
                    )
                })
            })
            .collect();
        if all_or_nothing && !problems.is_empty() {
            return Err(FailoverError::NotTranslatable {
                group: group.to_owned(),
                problems,
            });
        }
        let mut sync = GroupSync {
            group: group.to_owned(),
            plans,
            committed: BTreeMap::new(),
            skipped: None,
        };
        if dry_run {
            return Ok(sync);
        }
        self.write_checkpoints(group, &sync.plans).await?;
        let destination = self.describe(Side::Destination, group).await?;
        if !destination.members.is_empty() {
            sync.skipped = Some(format!(
                "the group has {} active member(s) on the destination; its consumers own its offsets",
                destination.members.len()
            ));
            return Ok(sync);
        }
        let offsets: Vec<(TopicPartition, i64)> = sync
            .plans
            .iter()
            .filter_map(|p| Some(((Arc::from(p.topic.as_str()), p.partition), p.to_commit()?)))
            .collect();
        if offsets.is_empty() {
            return Ok(sync);
        }
        let results =
            admin::commit_offsets(&self.destination, group, None, &offsets, &BTreeMap::new())
                .await
                .map_err(MirrorError::destination)?;
        for ((topic, partition), result) in results {
            match result {
                Ok(()) => {
                    if let Some((_, o)) = offsets
                        .iter()
                        .find(|((t, p), _)| *t == topic && *p == partition)
                    {
                        sync.committed.insert((topic.to_string(), partition), *o);
                    }
                }
                Err(error) => {
                    let hint = match error {
                        kmirror_protocol::ResponseError::UnknownMemberId
                        | kmirror_protocol::ResponseError::IllegalGeneration => {
                            "a consumer joined the destination group meanwhile; stop it and run again"
                        }
                        _ => "run again",
                    };
                    return Err(MirrorError::Refused {
                        side: Side::Destination,
                        what: format!("OffsetCommit for group {group} ({topic}-{partition})"),
                        error,
                        hint: Some(hint.to_owned()),
                    }
                    .into());
                }
            }
        }
        Ok(sync)
    }
}
