//! [`Cluster`]: one Kafka cluster as the engine sees it.
//!
//! It bootstraps from `bootstrap.servers` (or ZooKeeper registrations),
//! keeps a metadata cache (brokers, topics, partitions, leaders) that is
//! refreshed when older than `metadata.max.age.ms` or when an error says it
//! is stale, holds one pipelined [`BrokerConnection`] per broker and
//! reconnects with exponential backoff, and finds group coordinators. The
//! engine sends typed requests to a partition's leader, a group's
//! coordinator or a broker id without handling connections itself.
//!
//! Metadata requests always set `allow_auto_topic_creation = false`: a
//! request for a missing topic must never create it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kmirror_protocol::ResponseError;
use kmirror_protocol::kafka_protocol::messages::{ApiKey, FindCoordinatorRequest};
use kmirror_protocol::kafka_protocol::protocol::StrBytes;
use kmirror_protocol::messages::KafkaRequest;
use kmirror_protocol::messages::metadata::{MetadataResponse, metadata_request};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::config::{ClientConfig, SecurityProtocol};
use crate::connection::BrokerConnection;
use crate::error::PoolError;

/// A broker as the metadata names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The broker id.
    pub id: i32,
    /// `host:port` to connect to.
    pub addr: String,
    /// Its rack, if configured.
    pub rack: Option<String>,
}

/// One partition's leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition number.
    pub partition: i32,
    /// The leader's broker id, `None` while there is no leader.
    pub leader: Option<i32>,
    /// The leader epoch (-1 if the broker does not say).
    pub leader_epoch: i32,
    /// The partition's error in the metadata, if any.
    pub error: Option<ResponseError>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic name.
    pub name: String,
    /// The topic id (all zeros if the broker predates topic ids).
    pub id: [u8; 16],
    /// Whether Kafka marks it internal.
    pub is_internal: bool,
    /// Its partitions, sorted by number.
    pub partitions: Vec<PartitionInfo>,
}

/// A snapshot of the cluster's metadata.
#[derive(Debug, Clone)]
pub struct ClusterMetadata {
    /// The cluster id.
    pub cluster_id: Option<String>,
    /// The controller's broker id.
    pub controller_id: i32,
    /// Brokers by id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicInfo>,
    fetched_at: Instant,
}

impl ClusterMetadata {
    fn from_response(response: MetadataResponse) -> Self {
        let brokers = response
            .brokers
            .into_iter()
            .map(|b| {
                let host = b.host.to_string();
                let addr = if host.contains(':') {
                    format!("[{host}]:{}", b.port)
                } else {
                    format!("{host}:{}", b.port)
                };
                (
                    b.node_id,
                    BrokerInfo {
                        id: b.node_id,
                        addr,
                        rack: b.rack.map(|r| r.to_string()),
                    },
                )
            })
            .collect();
        let topics = response
            .topics
            .into_iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| {
                let name = t.name?.to_string();
                let mut partitions: Vec<PartitionInfo> = t
                    .partitions
                    .into_iter()
                    .map(|p| PartitionInfo {
                        partition: p.partition_index,
                        leader: (p.leader_id >= 0).then_some(p.leader_id),
                        leader_epoch: p.leader_epoch,
                        error: ResponseError::try_from_code(p.error_code),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                Some((
                    name.clone(),
                    TopicInfo {
                        name,
                        id: t.topic_id,
                        is_internal: t.is_internal,
                        partitions,
                    },
                ))
            })
            .collect();
        Self {
            cluster_id: response.cluster_id.map(|c| c.to_string()),
            controller_id: response.controller_id,
            brokers,
            topics,
            fetched_at: Instant::now(),
        }
    }

    /// The leader of `topic`/`partition`.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<&BrokerInfo> {
        let leader = self
            .topics
            .get(topic)?
            .partitions
            .iter()
            .find(|p| p.partition == partition)?
            .leader?;
        self.brokers.get(&leader)
    }

    /// How long ago this snapshot was fetched.
    pub fn age(&self) -> Duration {
        self.fetched_at.elapsed()
    }
}

/// Per-broker connection state: the live connection, or when the next
/// attempt may start.
struct Slot {
    current: Option<Arc<BrokerConnection>>,
    backoff: Backoff,
    next_attempt: Option<Instant>,
}

struct Inner {
    config: ClientConfig,
    tls: Option<tokio_rustls::TlsConnector>,
    bootstrap: Vec<String>,
    metadata: RwLock<Option<Arc<ClusterMetadata>>>,
    stale: std::sync::atomic::AtomicBool,
    refresh: tokio::sync::Mutex<()>,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    coordinators: Mutex<HashMap<String, i32>>,
}

/// One Kafka cluster (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap", &self.inner.bootstrap)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to the cluster: finds the bootstrap brokers (from
    /// `bootstrap.servers`, else from ZooKeeper), and fetches metadata from
    /// the first that answers. Retries with backoff until
    /// `request.timeout.ms` has passed, then fails with
    /// [`PoolError::Unreachable`]; authentication, TLS and configuration
    /// errors fail at once.
    pub async fn connect(config: ClientConfig) -> Result<Self, PoolError> {
        // Build the TLS setup first: a bad CA file is a configuration error
        // to report at once, whatever the network does.
        let tls = match config.security_protocol {
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
                Some(crate::tls::connector(&config.tls)?)
            }
            SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext => None,
        };
        let bootstrap = if !config.bootstrap_servers.is_empty() {
            config.bootstrap_servers.clone()
        } else if let Some(zk) = &config.zookeeper_connect {
            crate::zookeeper::discover_brokers(
                zk,
                config.security_protocol.name(),
                config.request_timeout,
            )
            .await?
        } else {
            return Err(PoolError::Config(crate::config::ConfigError::Missing {
                what: "bootstrap.servers or zookeeper.connect".into(),
                hint: "set bootstrap.servers=host:port[,host:port...] in the client config".into(),
            }));
        };
        let cluster = Self {
            inner: Arc::new(Inner {
                config,
                tls,
                bootstrap,
                metadata: RwLock::new(None),
                stale: std::sync::atomic::AtomicBool::new(true),
                refresh: tokio::sync::Mutex::new(()),
                slots: Mutex::new(HashMap::new()),
                coordinators: Mutex::new(HashMap::new()),
            }),
        };
        cluster.bootstrap().await?;
        Ok(cluster)
    }

    async fn bootstrap(&self) -> Result<(), PoolError> {
        let timeout = self.inner.config.request_timeout;
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new(
            self.inner.config.reconnect_backoff,
            self.inner.config.reconnect_backoff_max,
            self.inner.config.dialer.jitter_seed("bootstrap"),
        );
        let mut last_error = String::from("no attempt was made");
        // Whether `last_error` is an actual failure, which says more than a
        // later attempt cut short by the deadline.
        let mut failed = false;
        // A broker that accepts but never answers (a long GC pause) must
        // not take the whole deadline: each attempt gets its share, and the
        // next address is tried.
        let addresses = u32::try_from(self.inner.bootstrap.len())
            .unwrap_or(u32::MAX)
            .max(1);
        let per_attempt = (timeout / addresses)
            .max(Duration::from_secs(1))
            .min(timeout);
        loop {
            for addr in &self.inner.bootstrap {
                let attempt_deadline = deadline.min(Instant::now() + per_attempt);
                let attempt =
                    tokio::time::timeout_at(attempt_deadline, self.fetch_metadata_from(addr)).await;
                match attempt {
                    Ok(Ok(metadata)) => {
                        self.store_metadata(metadata);
                        return Ok(());
                    }
                    Ok(Err(e)) if !e.is_retriable() && !matches!(e, PoolError::Protocol { .. }) => {
                        return Err(e);
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(broker = %addr, error = %e, "bootstrap attempt failed");
                        last_error = self.explain(&e);
                        failed = true;
                    }
                    Err(_) if failed => {}
                    Err(_) => last_error = self.no_answer(addr),
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PoolError::Unreachable {
                    servers: self.inner.bootstrap.join(","),
                    timeout,
                    last_error,
                });
            }
            // Keep trying until the deadline, never sleeping past it.
            tokio::time::sleep(backoff.next_delay().min(deadline - now)).await;
        }
    }

    /// Why a bootstrap server may not have answered in time. Apache Kafka's
    /// SSL listener never answers a plaintext ApiVersions: the JDK's
    /// SSLEngine waits for the rest of what it reads as a TLS record, so a
    /// wrong `security.protocol` looks like a silent broker.
    fn no_answer(&self, addr: &str) -> String {
        match self.inner.config.security_protocol {
            SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext => format!(
                "no answer from {addr} before the deadline (the connection was accepted but nothing \
                 came back: if this is a TLS listener, set security.protocol=SSL or SASL_SSL)"
            ),
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
                format!("no answer from {addr} before the deadline")
            }
        }
    }

    /// A bootstrap failure, with a hint when it looks like a wrong
    /// `security.protocol`: Apache Kafka's SASL listeners answer ApiVersions
    /// before authentication, then close the connection without an error
    /// response on any other request (`SaslServerAuthenticator` throws
    /// `IllegalSaslStateException`).
    fn explain(&self, e: &PoolError) -> String {
        let closed = match e {
            PoolError::ConnectionLost { cause, .. } => matches!(
                **cause,
                PoolError::Io {
                    kind: std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset,
                    ..
                }
            ),
            _ => false,
        };
        let without_sasl = matches!(
            self.inner.config.security_protocol,
            SecurityProtocol::Plaintext | SecurityProtocol::Ssl
        );
        if closed && without_sasl {
            format!(
                "{e} (after answering ApiVersions: if this is a SASL listener, set \
                 security.protocol=SASL_PLAINTEXT or SASL_SSL, sasl.mechanism and sasl.jaas.config)"
            )
        } else {
            e.to_string()
        }
    }

    /// The client configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The bootstrap addresses in use.
    pub fn bootstrap_servers(&self) -> &[String] {
        &self.inner.bootstrap
    }

    fn store_metadata(&self, metadata: ClusterMetadata) {
        let metadata = Arc::new(metadata);
        *self
            .inner
            .metadata
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(metadata);
        self.inner
            .stale
            .store(false, std::sync::atomic::Ordering::Release);
    }

    fn cached_metadata(&self) -> Option<Arc<ClusterMetadata>> {
        self.inner
            .metadata
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn fetch_metadata_from(&self, addr: &str) -> Result<ClusterMetadata, PoolError> {
        let conn = self.connection(addr).await?;
        let response = conn.send(&metadata_request(None)).await?;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            return Err(PoolError::Kafka {
                broker: addr.to_owned(),
                api: ApiKey::Metadata,
                error,
                context: None,
            });
        }
        Ok(ClusterMetadata::from_response(response))
    }

    /// Marks the metadata stale: the next access refreshes it. Called by the
    /// engine on NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION,
    /// LEADER_NOT_AVAILABLE, FENCED/UNKNOWN_LEADER_EPOCH, and broken
    /// connections ([`PoolError::invalidates_metadata`]).
    pub fn invalidate_metadata(&self) {
        self.inner
            .stale
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The current metadata, refreshed first if it is stale or older than
    /// `metadata.max.age.ms`. If the refresh fails, the last snapshot is
    /// returned when there is one.
    pub async fn metadata(&self) -> Result<Arc<ClusterMetadata>, PoolError> {
        let current = self.cached_metadata();
        let fresh = current.as_ref().is_some_and(|m| {
            !self.inner.stale.load(std::sync::atomic::Ordering::Acquire)
                && m.age() < self.inner.config.metadata_max_age
        });
        match (fresh, current) {
            (true, Some(m)) => Ok(m),
            (_, current) => match self.refresh_metadata().await {
                Ok(m) => Ok(m),
                Err(e) => match current {
                    Some(m) => {
                        tracing::warn!(error = %e, "metadata refresh failed; using the last snapshot");
                        Ok(m)
                    }
                    None => Err(e),
                },
            },
        }
    }

    /// Fetches metadata now (one refresh at a time; callers that waited for
    /// a refresh in progress get its result).
    pub async fn refresh_metadata(&self) -> Result<Arc<ClusterMetadata>, PoolError> {
        let started = Instant::now();
        let _guard = self.inner.refresh.lock().await;
        if let Some(m) = self.cached_metadata()
            && m.fetched_at >= started
        {
            return Ok(m);
        }
        let mut candidates: Vec<String> = self
            .cached_metadata()
            .map(|m| m.brokers.values().map(|b| b.addr.clone()).collect())
            .unwrap_or_default();
        for addr in &self.inner.bootstrap {
            if !candidates.contains(addr) {
                candidates.push(addr.clone());
            }
        }
        let mut last = None;
        for addr in &candidates {
            match self.fetch_metadata_from(addr).await {
                Ok(m) => {
                    self.store_metadata(m);
                    return self.cached_metadata().ok_or(PoolError::Shutdown);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(PoolError::Shutdown))
    }

    /// The connection to `addr`, opened (or reopened after it broke) on
    /// demand. Reconnects wait out an exponential backoff with jitter
    /// (`reconnect.backoff.ms` to `reconnect.backoff.max.ms`).
    pub async fn connection(&self, addr: &str) -> Result<Arc<BrokerConnection>, PoolError> {
        let slot = {
            let mut slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots
                .entry(addr.to_owned())
                .or_insert_with(|| {
                    Arc::new(tokio::sync::Mutex::new(Slot {
                        current: None,
                        backoff: Backoff::new(
                            self.inner.config.reconnect_backoff,
                            self.inner.config.reconnect_backoff_max,
                            self.inner.config.dialer.jitter_seed(addr),
                        ),
                        next_attempt: None,
                    }))
                })
                .clone()
        };
        let mut slot = slot.lock().await;
        if let Some(conn) = &slot.current {
            if !conn.is_poisoned() {
                return Ok(conn.clone());
            }
            tracing::info!(broker = %addr, "reconnecting to broker");
            slot.current = None;
        }
        if let Some(at) = slot.next_attempt {
            tokio::time::sleep_until(at).await;
        }
        match BrokerConnection::connect_with(addr, &self.inner.config, self.inner.tls.as_ref())
            .await
        {
            Ok(conn) => {
                let conn = Arc::new(conn);
                slot.backoff.reset();
                slot.next_attempt = None;
                slot.current = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let delay = slot.backoff.next_delay();
                tracing::debug!(broker = %addr, error = %e, retry_in = ?delay, attempts = slot.backoff.attempts(), "connect failed");
                slot.next_attempt = Some(Instant::now() + delay);
                Err(e)
            }
        }
    }

    /// The connection to broker `id`, refreshing metadata once if the id is
    /// unknown.
    pub async fn connection_to_broker(&self, id: i32) -> Result<Arc<BrokerConnection>, PoolError> {
        let mut metadata = self.metadata().await?;
        if !metadata.brokers.contains_key(&id) {
            metadata = self.refresh_metadata().await?;
        }
        let addr = metadata
            .brokers
            .get(&id)
            .map(|b| b.addr.clone())
            .ok_or_else(|| PoolError::Kafka {
                broker: "-".into(),
                api: ApiKey::Metadata,
                error: ResponseError::BrokerNotAvailable,
                context: Some(format!("broker id {id} is not in the cluster metadata")),
            })?;
        self.connection(&addr).await
    }

    /// Sends `request` to broker `id`.
    pub async fn send_to_broker<R: KafkaRequest>(
        &self,
        id: i32,
        request: &R,
    ) -> Result<R::Response, PoolError> {
        let conn = self.connection_to_broker(id).await?;
        self.observe(conn.send(request).await)
    }

    /// The broker id leading `topic`/`partition`, refreshing metadata once
    /// if it is unknown.
    pub async fn leader_of(&self, topic: &str, partition: i32) -> Result<i32, PoolError> {
        let mut metadata = self.metadata().await?;
        for attempt in 0..2 {
            if let Some(t) = metadata.topics.get(topic) {
                match t.partitions.iter().find(|p| p.partition == partition) {
                    Some(PartitionInfo {
                        leader: Some(id), ..
                    }) => return Ok(*id),
                    Some(p) if attempt == 1 => {
                        return Err(PoolError::Kafka {
                            broker: "-".into(),
                            api: ApiKey::Metadata,
                            error: p.error.unwrap_or(ResponseError::LeaderNotAvailable),
                            context: Some(format!("{topic}-{partition}")),
                        });
                    }
                    _ => {}
                }
            }
            if attempt == 0 {
                metadata = self.refresh_metadata().await?;
            }
        }
        Err(PoolError::UnknownTopicOrPartition {
            topic: topic.to_owned(),
            partition,
        })
    }

    /// Sends `request` to the leader of `topic`/`partition`.
    pub async fn send_to_leader<R: KafkaRequest>(
        &self,
        topic: &str,
        partition: i32,
        request: &R,
    ) -> Result<R::Response, PoolError> {
        let leader = self.leader_of(topic, partition).await?;
        self.send_to_broker(leader, request).await
    }

    /// Sends `request` to any broker (the first that can be reached, trying
    /// brokers with a live connection first).
    pub async fn send_to_any<R: KafkaRequest>(
        &self,
        request: &R,
    ) -> Result<R::Response, PoolError> {
        let (_, conn) = self.any_connection().await?;
        self.observe(conn.send(request).await)
    }

    /// A connection to any broker that can be reached: those with a live
    /// connection first, then every broker in the metadata, then the
    /// bootstrap servers. Returns its address too.
    async fn any_connection(&self) -> Result<(String, Arc<BrokerConnection>), PoolError> {
        let metadata = self.metadata().await?;
        let mut addrs: Vec<String> = metadata.brokers.values().map(|b| b.addr.clone()).collect();
        addrs.extend(self.inner.bootstrap.iter().cloned());
        let live: Vec<String> = {
            let slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
            addrs
                .iter()
                .filter(|a| {
                    slots
                        .get(*a)
                        .and_then(|s| s.try_lock().ok())
                        .is_some_and(|s| s.current.as_ref().is_some_and(|c| !c.is_poisoned()))
                })
                .cloned()
                .collect()
        };
        let mut last = None;
        for addr in live.iter().chain(addrs.iter()) {
            match self.connection(addr).await {
                Ok(conn) => return Ok((addr.clone(), conn)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(PoolError::Shutdown))
    }

    /// The coordinator of consumer group `group`, found with
    /// FindCoordinator and cached until [`Cluster::invalidate_coordinator`].
    pub async fn coordinator(&self, group: &str) -> Result<i32, PoolError> {
        if let Some(id) = self
            .inner
            .coordinators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
        {
            return Ok(*id);
        }
        // Any broker answers FindCoordinator: ask one that can be reached
        // (during a rolling restart the first one may be down).
        let (addr, conn) = self.any_connection().await?;
        let version = conn
            .versions()
            .version(ApiKey::FindCoordinator)
            .map_err(|e| PoolError::protocol(&addr, e))?;
        let key = StrBytes::from_string(group.to_owned());
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key(key)
        };
        let response = self.observe(conn.send(&request).await)?;
        let (error_code, node) = match response.coordinators.first() {
            Some(c) if version >= 4 => (c.error_code, c.node_id.0),
            _ => (response.error_code, response.node_id.0),
        };
        if let Some(error) = ResponseError::try_from_code(error_code) {
            return Err(PoolError::Kafka {
                broker: addr,
                api: ApiKey::FindCoordinator,
                error,
                context: Some(format!("group {group}")),
            });
        }
        self.inner
            .coordinators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group.to_owned(), node);
        Ok(node)
    }

    /// Forgets the cached coordinator of `group` (after NOT_COORDINATOR or
    /// COORDINATOR_NOT_AVAILABLE).
    pub fn invalidate_coordinator(&self, group: &str) {
        self.inner
            .coordinators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(group);
    }

    /// Sends `request` to the coordinator of `group`.
    pub async fn send_to_coordinator<R: KafkaRequest>(
        &self,
        group: &str,
        request: &R,
    ) -> Result<R::Response, PoolError> {
        let id = self.coordinator(group).await?;
        let result = self.send_to_broker(id, request).await;
        if result.as_ref().is_err_and(PoolError::invalidates_metadata) {
            self.invalidate_coordinator(group);
        }
        result
    }

    /// Marks metadata stale after errors that say it is.
    fn observe<T>(&self, result: Result<T, PoolError>) -> Result<T, PoolError> {
        if let Err(e) = &result
            && e.invalidates_metadata()
        {
            self.invalidate_metadata();
        }
        result
    }
}
