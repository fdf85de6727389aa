//! Why the engine stopped, or could not start: each error names the cluster,
//! topic and partition it concerns and what to do about it.

use kmirror_pool::PoolError;
use kmirror_protocol::ResponseError;

use crate::fetch_plan::FetchPlanError;

/// Which cluster an error concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The cluster read from.
    Source,
    /// The cluster written to.
    Destination,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

/// An error that stops the mirror.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// A cluster could not be reached or refused a request for good.
    #[error("{side} cluster: {source}")]
    Cluster {
        /// Which cluster.
        side: Side,
        /// What failed.
        #[source]
        source: PoolError,
    },
    /// A request concerning a group, topic or partition was refused with an
    /// error that retrying cannot fix.
    #[error("{side} cluster refused {what}: {error}{}", hint_text(.hint))]
    Refused {
        /// Which cluster.
        side: Side,
        /// The request and what it concerned.
        what: String,
        /// The error.
        error: ResponseError,
        /// What to do about it.
        hint: Option<String>,
    },
    /// A partition has no committed offset (or an out-of-range one) and
    /// `auto.offset.reset=none`.
    #[error(
        "{topic}-{partition}: {why} and auto.offset.reset=none; set auto.offset.reset=earliest or \
         latest in the consumer config, or commit a start offset for the group"
    )]
    NoStartOffset {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Why there is no usable offset.
        why: String,
    },
    /// The source sent record data that cannot be mirrored faithfully.
    #[error("{topic}-{partition} on source broker {broker}: {source}")]
    SourceData {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The broker's address.
        broker: String,
        /// What was wrong.
        #[source]
        source: FetchPlanError,
    },
    /// A source record batch is larger than the largest response kmirror
    /// accepts from a broker (`receive.message.max.bytes`): a Fetch
    /// response always carries the batch at the fetch position whole, so
    /// every fetch of the partition broke the connection.
    #[error(
        "{topic}-{partition} on source broker {broker}: the record batch at offset {offset} is \
         too large for kmirror to fetch (the broker's answer was {size} bytes, above the \
         {max} bytes kmirror accepts in one response). Raise receive.message.max.bytes in the \
         consumer config above {size}; on the source, the topic's max.message.bytes (or the brokers' \
         message.max.bytes) lets producers write batches this large, and lowering it keeps \
         new ones out"
    )]
    BatchTooLarge {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The fetch position: where the batch is.
        offset: i64,
        /// The size the broker's answer announced.
        size: i64,
        /// The largest response accepted.
        max: usize,
        /// The broker's address.
        broker: String,
    },
    /// The destination refused a batch for good and
    /// `--abort.on.send.failure` is true.
    #[error(
        "the destination refused source offsets {start}..{end} of {topic}-{partition} (destination \
         partition {destination_partition}): {reason}. Acknowledged progress was committed; fix \
         the cause, or run with --abort.on.send.failure false to log and skip such batches"
    )]
    SendFailed {
        /// The source topic.
        topic: String,
        /// The source partition.
        partition: i32,
        /// The destination partition.
        destination_partition: i32,
        /// First source offset of the refused range.
        start: i64,
        /// One past the last.
        end: i64,
        /// What the destination said.
        reason: String,
    },
    /// A batch was refused retriably (or its request failed) more often
    /// than `retries` allows. kmirror stops rather than skip it, whatever
    /// `--abort.on.send.failure` says: nothing past it is committed.
    #[error(
        "source offsets {start}..{end} of {topic}-{partition} (destination partition \
         {destination_partition}) were not acknowledged after retries={retries} resends; last \
         error: {reason}. Acknowledged progress was committed and nothing past these offsets \
         (no record is lost: the next start mirrors them again); fix the cause, or raise retries \
         in the producer config (remove the line to retry for ever, bounded only by \
         delivery.timeout.ms if set)"
    )]
    RetriesExhausted {
        /// The source topic.
        topic: String,
        /// The source partition.
        partition: i32,
        /// The destination partition.
        destination_partition: i32,
        /// First source offset of the batch.
        start: i64,
        /// One past the last.
        end: i64,
        /// The `retries` setting.
        retries: u32,
        /// The last error.
        reason: String,
    },
    /// A source topic being mirrored was deleted and created again (its
    /// topic id changed): the positions kmirror holds belong to the old
    /// topic and mean nothing in the new one.
    #[error(
        "source topic {topic} was deleted and created again (its topic id changed) while kmirror \
         mirrored it; kmirror stopped rather than read the new topic at the old topic's \
         positions. Start kmirror again: the new topic starts per auto.offset.reset (a \
         committed offset past its end is reset)"
    )]
    SourceTopicRecreated {
        /// The topic.
        topic: String,
    },
    /// A destination topic exists with a configuration kmirror cannot
    /// mirror into.
    #[error("destination topic {topic}: {reason}")]
    Destination {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// The configuration asks for something kmirror will not do (the
    /// message names the setting and what to set instead).
    #[error("{0}")]
    Config(String),
    /// A bug: an invariant of the engine broke. Nothing was committed past
    /// acknowledged data.
    #[error("internal error: {0}; please report it")]
    Internal(String),
}

fn hint_text(hint: &Option<String>) -> String {
    hint.as_deref()
        .map(|h| format!("; {h}"))
        .unwrap_or_default()
}

impl MirrorError {
    pub(crate) fn source(source: PoolError) -> Self {
        MirrorError::Cluster {
            side: Side::Source,
            source,
        }
    }

    pub(crate) fn destination(source: PoolError) -> Self {
        MirrorError::Cluster {
            side: Side::Destination,
            source,
        }
    }

    /// A failure of the `side` cluster.
    pub(crate) fn on(side: Side, source: PoolError) -> Self {
        MirrorError::Cluster { side, source }
    }

    /// Whether the error may go away by itself once a cluster that was
    /// already reached comes back or settles: a broker restarting
    /// (connection refused or lost, timeouts), a leader or coordinator
    /// moving, metadata that lags. Such errors are retried with backoff
    /// after the first contact; configuration, authorization and protocol
    /// errors are not.
    pub fn is_transient(&self) -> bool {
        match self {
            MirrorError::Cluster { source, .. } => pool_error_is_transient(source),
            MirrorError::Refused { error, .. } => response_error_is_transient(*error),
            _ => false,
        }
    }
}

/// [`MirrorError::is_transient`] for a client error.
pub(crate) fn pool_error_is_transient(error: &PoolError) -> bool {
    match error {
        PoolError::Io { .. }
        | PoolError::Timeout { .. }
        | PoolError::ConnectionLost { .. }
        | PoolError::Unreachable { .. }
        | PoolError::UnknownTopicOrPartition { .. } => true,
        PoolError::Kafka { error, .. } => response_error_is_transient(*error),
        _ => false,
    }
}

/// [`MirrorError::is_transient`] for an error code: Kafka's retriable
/// errors, plus a broker that is missing from the metadata for now.
pub(crate) fn response_error_is_transient(error: ResponseError) -> bool {
    error.is_retriable()
        || matches!(
            error,
            ResponseError::BrokerNotAvailable
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress
                | ResponseError::NotCoordinator
                | ResponseError::LeaderNotAvailable
                | ResponseError::NotLeaderOrFollower
                | ResponseError::RebalanceInProgress
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_and_moves_are_transient_refusals_are_not() {
        let lost = MirrorError::destination(PoolError::Io {
            broker: "b:9092".into(),
            kind: std::io::ErrorKind::ConnectionRefused,
            message: "Connection refused".into(),
        });
        assert!(lost.is_transient());
        let moved = MirrorError::Refused {
            side: Side::Source,
            what: "SyncGroup".into(),
            error: ResponseError::CoordinatorNotAvailable,
            hint: None,
        };
        assert!(moved.is_transient());
        let denied = MirrorError::Refused {
            side: Side::Source,
            what: "JoinGroup".into(),
            error: ResponseError::GroupAuthorizationFailed,
            hint: None,
        };
        assert!(!denied.is_transient());
        assert!(!MirrorError::Internal("x".into()).is_transient());
    }
}
