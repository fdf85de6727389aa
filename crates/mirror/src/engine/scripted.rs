//! Scripted brokers for the engine's unit tests: an in-memory transport
//! (the pool's [`Dialer::Custom`]) whose brokers answer each request with
//! what the test's handler returns, so that the real pool and engine code
//! run against answers a test chooses (a throttle time, an oversized
//! frame, a JoinGroup that never returns). ApiVersions is answered by the
//! harness itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{self as kp, ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kmirror_pool::dialer::{DialFuture, Dialer, Transport};
use kmirror_pool::{ClientConfig, Cluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

/// One request a scripted broker received.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The broker's `host:port`.
    pub broker: String,
    pub api: ApiKey,
    pub version: i16,
    /// The body, after the request header.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

impl Request {
    /// The body decoded as `T`.
    pub(crate) fn decode<T: Decodable>(&self) -> T {
        T::decode(&mut self.body.clone(), self.version).expect("a request kmirror sent decodes")
    }
}

/// What a scripted broker does with a request.
pub(crate) enum Reply {
    /// Answers with this body at once.
    Now(Bytes),
    /// Answers with this body after a while (later requests on the
    /// connection wait, as a broker handles a connection's requests in
    /// order).
    After(Duration, Bytes),
    /// Never answers (later requests are still read and answered).
    Silent,
    /// Sends a frame size prefix of `size` bytes and closes the
    /// connection.
    Oversized(i32),
}

/// `message` encoded at `version`, answered at once.
pub(crate) fn reply<M: Encodable>(message: &M, version: i16) -> Reply {
    Reply::Now(encode(message, version))
}

/// `message` encoded at `version`.
pub(crate) fn encode<M: Encodable>(message: &M, version: i16) -> Bytes {
    let mut b = BytesMut::new();
    message
        .encode(&mut b, version)
        .expect("a scripted answer encodes");
    b.freeze()
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// Scripted brokers: every connection to any address is answered by one
/// handler (which can tell brokers apart by [`Request::broker`]).
pub(crate) struct Brokers {
    handler: Box<Handler>,
    log: Mutex<Vec<Request>>,
}

impl Brokers {
    pub(crate) fn new(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            handler: Box::new(handler),
            log: Mutex::new(Vec::new()),
        })
    }

    /// The requests of `api` received so far, in order.
    pub(crate) fn requests(&self, api: ApiKey) -> Vec<Request> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| r.api == api)
            .cloned()
            .collect()
    }

    /// A client configuration that reaches these brokers at `bootstrap`.
    pub(crate) fn config(self: &Arc<Self>, bootstrap: &str) -> ClientConfig {
        ClientConfig {
            bootstrap_servers: vec![bootstrap.to_owned()],
            dialer: Dialer::custom(Arc::new(Dial(self.clone()))),
            reconnect_backoff: Duration::from_millis(10),
            reconnect_backoff_max: Duration::from_millis(50),
            ..ClientConfig::default()
        }
    }

    /// A cluster connected through `bootstrap`.
    pub(crate) async fn cluster(self: &Arc<Self>, bootstrap: &str) -> Cluster {
        Cluster::connect(self.config(bootstrap))
            .await
            .expect("the scripted cluster answers the bootstrap")
    }
}

struct Dial(Arc<Brokers>);

impl Transport for Dial {
    fn dial<'a>(&'a self, broker: &'a str) -> DialFuture<'a> {
        let (client, server) = tokio::io::duplex(1 << 20);
        tokio::spawn(serve(self.0.clone(), broker.to_owned(), server));
        Box::pin(async move { Ok(client) })
    }
}

/// The versions the scripted brokers offer (kmirror's tested maximums).
const VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 4, 9),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 6),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 6),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::SyncGroup, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 5),
    (ApiKey::InitProducerId, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 2),
];

fn api_versions(version: i16) -> Bytes {
    let keys = VERSIONS
        .iter()
        .map(|(key, min, max)| {
            kp::api_versions_response::ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    encode(
        &kp::ApiVersionsResponse::default().with_api_keys(keys),
        version,
    )
}

async fn serve(brokers: Arc<Brokers>, broker: String, mut io: DuplexStream) {
    loop {
        let mut size = [0u8; 4];
        if io.read_exact(&mut size).await.is_err() {
            return;
        }
        let len = usize::try_from(i32::from_be_bytes(size)).unwrap_or(0);
        let mut frame = vec![0u8; len];
        if io.read_exact(&mut frame).await.is_err() {
            return;
        }
        let mut frame = Bytes::from(frame);
        let header = kafka_protocol::protocol::decode_request_header_from_buffer(&mut frame)
            .expect("kmirror sends valid request headers");
        let api = ApiKey::try_from(header.request_api_key).expect("a known API");
        let version = header.request_api_version;
        let request = Request {
            broker: broker.clone(),
            api,
            version,
            body: frame,
            at: Instant::now(),
        };
        let answer = if api == ApiKey::ApiVersions {
            Reply::Now(api_versions(version))
        } else {
            (brokers.handler)(&request)
        };
        brokers
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
        let body = match answer {
            Reply::Now(body) => body,
            Reply::After(wait, body) => {
                tokio::time::sleep(wait).await;
                body
            }
            Reply::Silent => continue,
            Reply::Oversized(size) => {
                let _ = io.write_all(&size.to_be_bytes()).await;
                return;
            }
        };
        let mut out = BytesMut::new();
        let flexible_header = api.response_header_version(version) >= 1;
        let header_len = if flexible_header { 5 } else { 4 };
        out.put_i32(i32::try_from(header_len + body.len()).expect("a small answer"));
        out.put_i32(header.correlation_id);
        if flexible_header {
            out.put_u8(0);
        }
        out.put_slice(&body);
        if io.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// A Metadata answer: `brokers` as `(id, host:port)`, `topics` as
/// `(name, [(partition, leader)])`, every leader epoch 0.
pub(crate) fn metadata(
    version: i16,
    brokers: &[(i32, &str)],
    topics: &[(&str, &[(i32, i32)])],
) -> Reply {
    let brokers = brokers
        .iter()
        .map(|(id, addr)| {
            let (host, port) = addr.rsplit_once(':').expect("host:port");
            kp::metadata_response::MetadataResponseBroker::default()
                .with_node_id(BrokerId(*id))
                .with_host(StrBytes::from_string(host.to_owned()))
                .with_port(port.parse().expect("a port"))
        })
        .collect();
    let topics = topics
        .iter()
        .map(|(name, partitions)| {
            kp::metadata_response::MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string((*name).to_owned()))))
                .with_topic_id(uuid::Uuid::from_bytes([7; 16]))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|(p, leader)| {
                            kp::metadata_response::MetadataResponsePartition::default()
                                .with_partition_index(*p)
                                .with_leader_id(BrokerId(*leader))
                                .with_leader_epoch(0)
                                .with_replica_nodes(vec![BrokerId(*leader)])
                                .with_isr_nodes(vec![BrokerId(*leader)])
                        })
                        .collect(),
                )
        })
        .collect();
    reply(
        &kp::MetadataResponse::default()
            .with_brokers(brokers)
            .with_controller_id(BrokerId(1))
            .with_topics(topics),
        version,
    )
}

/// One partition's part of a Fetch answer.
pub(crate) struct Fetched {
    pub error_code: i16,
    pub high_watermark: i64,
    pub records: Option<Bytes>,
}

impl Fetched {
    /// Records ending at `high_watermark`.
    pub(crate) fn records(records: Bytes, high_watermark: i64) -> Self {
        Self {
            error_code: 0,
            high_watermark,
            records: Some(records),
        }
    }

    /// Nothing (yet) past the fetch position.
    pub(crate) fn nothing(high_watermark: i64) -> Self {
        Self {
            error_code: 0,
            high_watermark,
            records: None,
        }
    }

    /// An error for the partition.
    pub(crate) fn error(error_code: i16) -> Self {
        Self {
            error_code,
            high_watermark: -1,
            records: None,
        }
    }
}

/// A Fetch answer with `throttle_time_ms`, each requested partition
/// answered by `partition(topic, partition, fetch offset)`.
pub(crate) fn fetch(
    request: &Request,
    throttle_time_ms: i32,
    partition: impl Fn(&str, i32, i64) -> Fetched,
) -> Bytes {
    let fetch: kp::FetchRequest = request.decode();
    let responses = fetch
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let answer = partition(&t.topic.0, p.partition, p.fetch_offset);
                    kp::fetch_response::PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_error_code(answer.error_code)
                        .with_high_watermark(answer.high_watermark)
                        .with_last_stable_offset(answer.high_watermark)
                        .with_log_start_offset(0)
                        .with_aborted_transactions(Some(Vec::new()))
                        .with_preferred_read_replica(BrokerId(-1))
                        .with_records(answer.records)
                })
                .collect();
            kp::fetch_response::FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    encode(
        &kp::FetchResponse::default()
            .with_throttle_time_ms(throttle_time_ms)
            .with_responses(responses),
        request.version,
    )
}

/// A Produce answer acknowledging every batch, with `throttle_time_ms`.
pub(crate) fn produce_ok(request: &Request, throttle_time_ms: i32) -> Bytes {
    let produce: kp::ProduceRequest = request.decode();
    let responses = produce
        .topic_data
        .iter()
        .map(|t| {
            kp::produce_response::TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_partition_responses(
                    t.partition_data
                        .iter()
                        .map(|p| {
                            kp::produce_response::PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_base_offset(0)
                                .with_log_append_time_ms(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    encode(
        &kp::ProduceResponse::default()
            .with_throttle_time_ms(throttle_time_ms)
            .with_responses(responses),
        request.version,
    )
}

/// An InitProducerId answer: producer id 1000, epoch 0.
pub(crate) fn init_producer_id(request: &Request) -> Reply {
    reply(
        &kp::InitProducerIdResponse::default()
            .with_producer_id(kp::ProducerId(1000))
            .with_producer_epoch(0),
        request.version,
    )
}

/// A FindCoordinator answer naming broker `id` at `addr` (`host:port`).
pub(crate) fn find_coordinator(request: &Request, id: i32, addr: &str) -> Reply {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    reply(
        &kp::FindCoordinatorResponse::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_string(host.to_owned()))
            .with_port(port.parse().expect("a port")),
        request.version,
    )
}

/// An OffsetCommit answer with `error_code` for every partition.
pub(crate) fn offset_commit(request: &Request, error_code: i16) -> Reply {
    let commit: kp::OffsetCommitRequest = request.decode();
    let topics = commit
        .topics
        .iter()
        .map(|t| {
            kp::offset_commit_response::OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            kp::offset_commit_response::OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error_code)
                        })
                        .collect(),
                )
        })
        .collect();
    reply(
        &kp::OffsetCommitResponse::default().with_topics(topics),
        request.version,
    )
}

/// A ListOffsets answer giving `offset` for every partition.
pub(crate) fn list_offsets(request: &Request, offset: i64) -> Reply {
    let list: kp::ListOffsetsRequest = request.decode();
    let topics = list
        .topics
        .iter()
        .map(|t| {
            kp::list_offsets_response::ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            kp::list_offsets_response::ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_timestamp(-1)
                                .with_offset(offset)
                        })
                        .collect(),
                )
        })
        .collect();
    reply(
        &kp::ListOffsetsResponse::default().with_topics(topics),
        request.version,
    )
}

/// A v2 record batch at `base_offset` of `records` records, each with key
/// `k` and a value of `value_len` bytes `x`, compressed with `codec`.
pub(crate) fn batch(
    base_offset: i64,
    records: usize,
    codec: kmirror_protocol::Compression,
    value_len: usize,
) -> Bytes {
    use kmirror_protocol::record::{BatchBuilder, ProducerStamp};
    let value = vec![b'x'; value_len];
    let mut b = BatchBuilder::new(codec);
    for i in 0..records {
        b.push(
            1_000 + i64::try_from(i).expect("few records"),
            Some(b"k".as_slice()),
            Some(value.as_slice()),
            std::iter::empty::<(&[u8], Option<&[u8]>)>(),
        )
        .expect("a record");
    }
    let built = b.build(ProducerStamp::NONE).expect("a batch");
    let mut raw = built.to_bytes().to_vec();
    // The base offset is outside the CRC.
    raw[..8].copy_from_slice(&base_offset.to_be_bytes());
    Bytes::from(raw)
}
