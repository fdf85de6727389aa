//! The errors of talking to a cluster.
//!
//! The split follows the question a user asks: is it my configuration
//! ([`PoolError::Config`], [`PoolError::Auth`], [`PoolError::Tls`],
//! [`PoolError::Unreachable`]), the network ([`PoolError::Io`],
//! [`PoolError::Timeout`], [`PoolError::ConnectionLost`]), the broker
//! answering with a Kafka error ([`PoolError::Kafka`]), or the broker sending
//! bytes that break the protocol ([`PoolError::Protocol`])? Every variant
//! names the broker it concerns.

use std::sync::Arc;
use std::time::Duration;

use kmirror_protocol::kafka_protocol::messages::ApiKey;
use kmirror_protocol::{ProtocolError, ResponseError};

use crate::config::ConfigError;

/// An error of the connection layer.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// The client configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// No bootstrap server answered within the deadline.
    #[error(
        "cannot reach the cluster at {servers} within {timeout:?}: {last_error}; \
         check bootstrap.servers and that the brokers are running and reachable from this host"
    )]
    Unreachable {
        /// The bootstrap servers tried.
        servers: String,
        /// How long kmirror tried.
        timeout: Duration,
        /// The last failure seen.
        last_error: String,
    },

    /// A socket error talking to a broker.
    #[error("I/O error with broker {broker}: {message}")]
    Io {
        /// `host:port` of the broker.
        broker: String,
        /// The error kind.
        kind: std::io::ErrorKind,
        /// The error text.
        message: String,
    },

    /// The TLS handshake failed (certificate not trusted, wrong hostname...).
    #[error("TLS handshake with {broker} failed: {reason}")]
    Tls {
        /// `host:port` of the broker.
        broker: String,
        /// What the TLS library reported, with a hint.
        reason: String,
    },

    /// SASL authentication failed.
    #[error("SASL {mechanism} authentication with {broker} failed: {reason}")]
    Auth {
        /// `host:port` of the broker.
        broker: String,
        /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
        mechanism: String,
        /// What the broker said, or what did not verify.
        reason: String,
    },

    /// The broker sent bytes that break the Kafka protocol.
    #[error("broker {broker} broke the protocol: {source}")]
    Protocol {
        /// `host:port` of the broker.
        broker: String,
        /// The decoding error.
        #[source]
        source: Arc<ProtocolError>,
    },

    /// No response within `request.timeout.ms`.
    #[error("{api:?} request to broker {broker} timed out after {after:?}")]
    Timeout {
        /// `host:port` of the broker.
        broker: String,
        /// The request's API.
        api: ApiKey,
        /// The timeout.
        after: Duration,
    },

    /// The connection broke while the request was in flight or queued;
    /// every request on it failed with this same error. The next request
    /// reconnects.
    #[error("connection to broker {broker} lost: {cause}")]
    ConnectionLost {
        /// `host:port` of the broker.
        broker: String,
        /// Why the connection broke (shared by all failed requests).
        cause: Arc<PoolError>,
    },

    /// The broker answered with a Kafka error code.
    #[error("{api:?} to broker {broker} failed: {error}{}", context.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Kafka {
        /// `host:port` of the broker, or `-` if the request was not sent.
        broker: String,
        /// The request's API.
        api: ApiKey,
        /// The error code.
        error: ResponseError,
        /// Topic, partition or group the error concerns.
        context: Option<String>,
    },

    /// A topic or partition the caller asked for is not in the cluster's
    /// metadata (never auto-created by kmirror).
    #[error("topic {topic} partition {partition} does not exist in the cluster")]
    UnknownTopicOrPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },

    /// Discovery through ZooKeeper failed.
    #[error("broker discovery through ZooKeeper at {connect} failed: {reason}")]
    ZooKeeper {
        /// The `zookeeper.connect` string.
        connect: String,
        /// What went wrong.
        reason: String,
    },

    /// The client was shut down.
    #[error("the cluster client was shut down")]
    Shutdown,
}

impl PoolError {
    /// Whether retrying the same request later may succeed (network trouble,
    /// timeouts, retriable Kafka errors). Configuration, authentication and
    /// protocol violations are not retriable.
    pub fn is_retriable(&self) -> bool {
        match self {
            PoolError::Io { .. } | PoolError::Timeout { .. } | PoolError::ConnectionLost { .. } => {
                true
            }
            PoolError::Kafka { error, .. } => error.is_retriable(),
            _ => false,
        }
    }

    /// Whether the error means the cached metadata is stale and should be
    /// refreshed before retrying (leader moved, partition unknown, broker
    /// gone).
    pub fn invalidates_metadata(&self) -> bool {
        match self {
            PoolError::Kafka { error, .. } => matches!(
                error,
                ResponseError::NotLeaderOrFollower
                    | ResponseError::UnknownTopicOrPartition
                    | ResponseError::LeaderNotAvailable
                    | ResponseError::FencedLeaderEpoch
                    | ResponseError::UnknownLeaderEpoch
                    | ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
            ),
            PoolError::Io { .. } | PoolError::ConnectionLost { .. } => true,
            PoolError::UnknownTopicOrPartition { .. } => true,
            _ => false,
        }
    }

    /// When a response frame announced more bytes than
    /// [`ClientConfig::max_response_size`](crate::ClientConfig) allows (the
    /// connection then broke, failing every request on it): the size it
    /// announced and the limit.
    pub fn frame_too_large(&self) -> Option<(i64, usize)> {
        match self {
            PoolError::Protocol { source, .. } => match **source {
                ProtocolError::FrameTooLarge { size, max } => Some((size, max)),
                _ => None,
            },
            PoolError::ConnectionLost { cause, .. } => cause.frame_too_large(),
            _ => None,
        }
    }

    pub(crate) fn io(broker: &str, e: &std::io::Error) -> Self {
        PoolError::Io {
            broker: broker.to_owned(),
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    pub(crate) fn protocol(broker: &str, e: ProtocolError) -> Self {
        PoolError::Protocol {
            broker: broker.to_owned(),
            source: Arc::new(e),
        }
    }
}
