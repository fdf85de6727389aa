//! `replay_broker`: BENCH-ONLY stand-ins for Kafka brokers and for a plain
//! TCP relay, for the mirror-only ceiling of `cargo xtask replay`
//! (docs/performance.md, "Mirror-only ceiling"). Nothing here is a broker:
//! no log, no replication, no persistence, no validation beyond what a
//! benchmark needs. Never point a real client at it.
//!
//! Roles (the first argument):
//!
//! - `source`: answers what kmirror asks a source cluster (ApiVersions,
//!   Metadata, FindCoordinator, DescribeGroups, JoinGroup, SyncGroup,
//!   Heartbeat, LeaveGroup, OffsetFetch, OffsetCommit, ListOffsets,
//!   DescribeConfigs) for one topic of `--partitions` partitions, each
//!   holding `--batches` copies of one record batch built once in memory
//!   (`--codec`, 1 KiB records, `--batch-kib` KiB of records; or as many
//!   batches as make `--bytes` over all partitions). Every Fetch
//!   is served from memory: the same batch bytes at each offset, only the
//!   8-byte base offset (outside the CRC) differs, written with vectored
//!   writes, so serving costs a few syscalls per response.
//! - `destination`: the same topic already exists (so kmirror creates
//!   nothing); every Produce is acknowledged at once (error 0, a base
//!   offset); it counts batches, records and bytes and checks the CRC of
//!   the first batch of each request.
//! - `sink`, `relay`, `blast`: the physical floor. `blast` writes the same
//!   batch bytes (`--bytes` in all, over `--streams` connections) to
//!   `relay`, which copies each connection to `sink` with plain
//!   `read`/`write` on a 1 MiB buffer; `sink` counts and times the bytes.
//! - `live`: one process plays both clusters (two listeners, one clock) for
//!   `cargo xtask latency`: a source topic that a generator appends to at a
//!   steady rate, answering Fetch as Apache Kafka does (a parked fetch
//!   returns as soon as `fetch.min.bytes` are there), and a destination
//!   that times each batch from its append on the source to its Produce
//!   (see `replay_broker/live/mod.rs`).
//!
//! `source`, `destination`, `sink` and `relay` print `listening ADDR` on
//! stdout once bound (port 0 picks a free port); `live` prints two such
//! lines, the source's then the destination's. `source` and `destination`
//! then read commands from stdin: `stats` prints one line of `key=value`
//! counters; end of input exits.

use std::collections::HashMap;
use std::io::{BufRead as _, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use kafka_protocol::messages::{self as kp, ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kmirror_benches::{KIB, source_batch};
use kmirror_protocol::compression::Compression;
use kmirror_protocol::messages::produce::decode_produce_request;
use kmirror_protocol::record::RecordBatchView;

// The binary's crate root is this file, so its modules live in
// `replay_broker/` only through a path.
#[path = "replay_broker/live/mod.rs"]
mod live;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

/// The one topic both sides hold.
const TOPIC_ID: [u8; 16] = *b"kmirror-replay-1";
/// The node id of the only broker.
const NODE: i32 = 0;
/// Relay and sink buffer.
const RELAY_BUFFER: usize = 1024 * KIB;
/// At most this many slices per `writev` (Linux's IOV_MAX is 1024).
const MAX_SLICES: usize = 512;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("replay_broker: error: {e}");
        std::process::exit(1);
    }
}

/// `--flag value` options.
struct Args(Vec<(String, String)>);

impl Args {
    fn parse(args: &[String]) -> Result<Self> {
        let mut out = Vec::new();
        let mut iter = args.iter();
        while let Some(flag) = iter.next() {
            let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
            out.push((flag.clone(), value.clone()));
        }
        Ok(Self(out))
    }

    fn get(&self, flag: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self, flag: &str, default: &str) -> String {
        self.get(flag).unwrap_or(default).to_owned()
    }

    fn number(&self, flag: &str, default: u64) -> Result<u64> {
        match self.get(flag) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{flag} expects a whole number, got {v:?}").into()),
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let Some((role, rest)) = args.split_first() else {
        return Err(
            "usage: replay_broker source|destination|sink|relay|blast|live [--flag value]..."
                .into(),
        );
    };
    let opts = Args::parse(rest)?;
    let listen = opts.text("--listen", "127.0.0.1:0");
    match role.as_str() {
        "source" | "destination" => {
            let topic = Topic::new(&opts, role == "source")?;
            serve(&listen, Arc::new(topic))
        }
        "sink" => sink(&listen, opts.number("--connections", 1)?),
        "relay" => relay(
            &listen,
            &opts.text("--upstream", ""),
            opts.number("--connections", 1)?,
        ),
        "blast" => blast(&opts),
        "live" => live::run(&opts),
        other => Err(format!("unknown role {other:?}").into()),
    }
}

fn codec(name: &str) -> Result<Compression> {
    Ok(match name {
        "none" => Compression::None,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        other => return Err(format!("unknown codec {other:?}").into()),
    })
}

/// The batch every offset serves: built once from the bench corpus
/// (`--codec`, `--batch-kib` KiB of 1 KiB records).
fn the_batch(opts: &Args) -> Result<Bytes> {
    let kib = usize::try_from(opts.number("--batch-kib", 1023)?)?;
    Ok(source_batch(
        codec(&opts.text("--codec", "lz4"))?,
        kib * KIB,
        kmirror_benches::SEED,
    ))
}

/// The topic and what this side has counted.
struct Topic {
    name: String,
    partitions: i32,
    source: bool,
    /// The batch (the bytes after the 8-byte base offset are shared).
    batch: Bytes,
    /// Records per batch.
    records_per_batch: i64,
    /// Batches per partition (source).
    batches: i64,
    /// Next base offset per partition (destination).
    next_offset: Vec<AtomicI64>,
    stats: Stats,
    /// Committed offsets (source), only to answer OffsetFetch after a commit.
    committed: Mutex<HashMap<i32, i64>>,
    /// `live`: the log both sides share (then `batch` is empty and unused).
    live: Option<Arc<live::Live>>,
}

#[derive(Default)]
struct Stats {
    fetches: AtomicU64,
    served_batches: AtomicU64,
    served_bytes: AtomicU64,
    produces: AtomicU64,
    batches: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    crc_checked: AtomicU64,
    crc_failed: AtomicU64,
}

impl Topic {
    fn new(opts: &Args, source: bool) -> Result<Self> {
        let partitions = i32::try_from(opts.number("--partitions", 8)?)?;
        let batch = the_batch(opts)?;
        let view = RecordBatchView::new(batch.clone()).map_err(|e| format!("{e}"))?;
        let records_per_batch = i64::from(view.header().last_offset_delta) + 1;
        // `--bytes`: about that many batch bytes over all partitions.
        let batches = match opts.number("--bytes", 0)? {
            0 => opts.number("--batches", 100)?,
            bytes => bytes
                .div_ceil(batch.len() as u64 * u64::try_from(partitions)?)
                .max(1),
        };
        Ok(Self {
            name: opts.text("--topic", "replay"),
            partitions,
            source,
            batch,
            records_per_batch,
            batches: i64::try_from(batches)?,
            next_offset: (0..partitions).map(|_| AtomicI64::new(0)).collect(),
            stats: Stats::default(),
            committed: Mutex::new(HashMap::new()),
            live: None,
        })
    }

    /// One side of `live`: the topic's batches are `live`'s, not one
    /// replayed batch.
    fn live(name: String, partitions: i32, source: bool, live: Arc<live::Live>) -> Self {
        Self {
            name,
            partitions,
            source,
            batch: Bytes::new(),
            records_per_batch: 1,
            batches: 0,
            next_offset: (0..partitions).map(|_| AtomicI64::new(0)).collect(),
            stats: Stats::default(),
            committed: Mutex::new(HashMap::new()),
            live: Some(live),
        }
    }

    /// The end offset of each partition.
    fn end(&self) -> i64 {
        if self.source {
            self.batches * self.records_per_batch
        } else {
            0
        }
    }

    fn stats_line(&self) -> String {
        let s = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "fetches={} served_batches={} served_bytes={} produces={} batches={} records={} bytes={} crc_checked={} crc_failed={} batch_bytes={} records_per_batch={} batches_per_partition={} partitions={}",
            get(&s.fetches),
            get(&s.served_batches),
            get(&s.served_bytes),
            get(&s.produces),
            get(&s.batches),
            get(&s.records),
            get(&s.bytes),
            get(&s.crc_checked),
            get(&s.crc_failed),
            self.batch.len(),
            self.records_per_batch,
            self.batches,
            self.partitions,
        )
    }
}

fn bind(listen: &str) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    println!("listening {addr}");
    std::io::stdout().flush()?;
    Ok((listener, addr))
}

/// Serves Kafka connections until stdin ends.
fn serve(listen: &str, topic: Arc<Topic>) -> Result<()> {
    let (listener, addr) = bind(listen)?;
    accept(listener, addr, topic.clone());
    for line in std::io::stdin().lock().lines() {
        if line?.trim() == "stats" {
            println!("{}", topic.stats_line());
            std::io::stdout().flush()?;
        }
    }
    Ok(())
}

/// Serves each connection `listener` accepts on a thread of its own (as
/// Kafka does, one request at a time per connection), in the background.
fn accept(listener: TcpListener, addr: SocketAddr, topic: Arc<Topic>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let topic = topic.clone();
            std::thread::spawn(move || {
                if let Err(e) = connection(stream, addr, &topic) {
                    eprintln!("replay_broker: connection closed: {e}");
                }
            });
        }
    });
}

/// Reads one size-prefixed frame; `None` at a clean end of stream.
fn read_frame(stream: &mut TcpStream) -> Result<Option<Bytes>> {
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = usize::try_from(i32::from_be_bytes(size))?;
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame)?;
    Ok(Some(Bytes::from(frame)))
}

fn connection(mut stream: TcpStream, addr: SocketAddr, topic: &Topic) -> Result<()> {
    stream.set_nodelay(true)?;
    // `live`: when this connection's last Fetch response was written.
    let mut last_fetch: Option<Instant> = None;
    while let Some(frame) = read_frame(&mut stream)? {
        // The whole request is in: `live` times batches from here.
        let arrived = Instant::now();
        let (Some(key), Some(version)) = (frame.get(0..2), frame.get(2..4)) else {
            return Err("a frame shorter than a request header".into());
        };
        let api = ApiKey::try_from(i16::from_be_bytes([key[0], key[1]]))
            .map_err(|()| "an unknown api key")?;
        let version = i16::from_be_bytes([version[0], version[1]]);
        if api == ApiKey::Produce {
            produce(&mut stream, frame, topic, arrived)?;
            continue;
        }
        let mut body = frame;
        let header = kafka_protocol::protocol::decode_request_header_from_buffer(&mut body)?;
        let cid = header.correlation_id;
        match api {
            ApiKey::ApiVersions => respond(&mut stream, api, version, cid, &api_versions())?,
            ApiKey::Metadata => {
                let request = kp::MetadataRequest::decode(&mut body, version)?;
                respond(
                    &mut stream,
                    api,
                    version,
                    cid,
                    &metadata(&request, addr, topic),
                )?;
            }
            ApiKey::FindCoordinator => {
                let request = kp::FindCoordinatorRequest::decode(&mut body, version)?;
                let response = find_coordinator(&request, version, addr);
                respond(&mut stream, api, version, cid, &response)?;
            }
            ApiKey::DescribeGroups => {
                let request = kp::DescribeGroupsRequest::decode(&mut body, version)?;
                let groups = request
                    .groups
                    .into_iter()
                    .map(|g| {
                        kp::describe_groups_response::DescribedGroup::default()
                            .with_group_id(g)
                            .with_group_state(StrBytes::from_static_str("Empty"))
                    })
                    .collect();
                let response = kp::DescribeGroupsResponse::default().with_groups(groups);
                respond(&mut stream, api, version, cid, &response)?;
            }
            ApiKey::JoinGroup => {
                let request = kp::JoinGroupRequest::decode(&mut body, version)?;
                let member = if request.member_id.is_empty() {
                    StrBytes::from_static_str("replay-member-1")
                } else {
                    request.member_id.clone()
                };
                let protocol = request.protocols.first();
                let response = kp::JoinGroupResponse::default()
                    .with_generation_id(1)
                    .with_protocol_type(Some(request.protocol_type.clone()))
                    .with_protocol_name(protocol.map(|p| p.name.clone()))
                    .with_leader(member.clone())
                    .with_member_id(member.clone())
                    .with_members(vec![
                        kp::join_group_response::JoinGroupResponseMember::default()
                            .with_member_id(member)
                            .with_metadata(
                                protocol.map(|p| p.metadata.clone()).unwrap_or_default(),
                            ),
                    ]);
                respond(&mut stream, api, version, cid, &response)?;
            }
            ApiKey::SyncGroup => {
                let request = kp::SyncGroupRequest::decode(&mut body, version)?;
                let assignment = request
                    .assignments
                    .first()
                    .map(|a| a.assignment.clone())
                    .unwrap_or_default();
                let response = kp::SyncGroupResponse::default()
                    .with_protocol_type(request.protocol_type)
                    .with_protocol_name(request.protocol_name)
                    .with_assignment(assignment);
                respond(&mut stream, api, version, cid, &response)?;
            }
            ApiKey::Heartbeat => {
                respond(
                    &mut stream,
                    api,
                    version,
                    cid,
                    &kp::HeartbeatResponse::default(),
                )?;
            }
            ApiKey::LeaveGroup => {
                let request = kp::LeaveGroupRequest::decode(&mut body, version)?;
                let members = request
                    .members
                    .into_iter()
                    .map(|m| {
                        kp::leave_group_response::MemberResponse::default()
                            .with_member_id(m.member_id)
                            .with_group_instance_id(m.group_instance_id)
                    })
                    .collect();
                let response = kp::LeaveGroupResponse::default().with_members(members);
                respond(&mut stream, api, version, cid, &response)?;
            }
            ApiKey::OffsetFetch => {
                let request = kp::OffsetFetchRequest::decode(&mut body, version)?;
                let response = offset_fetch(&request, topic);
                respond(&mut stream, api, version, cid, &response)?;
            }
            ApiKey::OffsetCommit => {
                let request = kp::OffsetCommitRequest::decode(&mut body, version)?;
                let response = offset_commit(request, topic);
                respond(&mut stream, api, version, cid, &response)?;
            }
            ApiKey::ListOffsets => {
                let request = kp::ListOffsetsRequest::decode(&mut body, version)?;
                respond(
                    &mut stream,
                    api,
                    version,
                    cid,
                    &list_offsets(request, topic),
                )?;
            }
            ApiKey::DescribeConfigs => {
                let request = kp::DescribeConfigsRequest::decode(&mut body, version)?;
                let results = request
                    .resources
                    .into_iter()
                    .map(|r| {
                        kp::describe_configs_response::DescribeConfigsResult::default()
                            .with_resource_type(r.resource_type)
                            .with_resource_name(r.resource_name)
                    })
                    .collect();
                let response = kp::DescribeConfigsResponse::default().with_results(results);
                respond(&mut stream, api, version, cid, &response)?;
            }
            ApiKey::InitProducerId => {
                let response = kp::InitProducerIdResponse::default()
                    .with_producer_id(kp::ProducerId(4242))
                    .with_producer_epoch(0);
                respond(&mut stream, api, version, cid, &response)?;
            }
            ApiKey::Fetch => {
                let request = kp::FetchRequest::decode(&mut body, version)?;
                match &topic.live {
                    Some(log) => {
                        let call = live::FetchCall {
                            request: &request,
                            version,
                            correlation_id: cid,
                            arrived,
                            previous: last_fetch,
                        };
                        last_fetch = Some(live::fetch(&mut stream, &call, topic, log)?);
                    }
                    None => fetch(&mut stream, &request, version, cid, topic)?,
                }
            }
            other => return Err(format!("{other:?} is not replayed").into()),
        }
    }
    Ok(())
}

/// What this stand-in answers to ApiVersions: kmirror's own ranges
/// (Fetch only from v12, the flexible versions the hand encoder writes).
fn api_versions() -> kp::ApiVersionsResponse {
    let keys = kmirror_protocol::api::SUPPORTED_APIS
        .iter()
        .filter(|s| {
            !matches!(
                s.key,
                ApiKey::SaslHandshake | ApiKey::SaslAuthenticate | ApiKey::CreatePartitions
            )
        })
        .map(|s| {
            let min = if s.key == ApiKey::Fetch {
                12
            } else {
                s.ours.min
            };
            kp::api_versions_response::ApiVersion::default()
                .with_api_key(s.key as i16)
                .with_min_version(min)
                .with_max_version(s.ours.max)
        })
        .collect();
    kp::ApiVersionsResponse::default().with_api_keys(keys)
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn metadata(
    request: &kp::MetadataRequest,
    addr: SocketAddr,
    topic: &Topic,
) -> kp::MetadataResponse {
    let ours = kp::metadata_response::MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&topic.name))))
        .with_topic_id(uuid::Uuid::from_bytes(TOPIC_ID))
        .with_partitions(
            (0..topic.partitions)
                .map(|p| {
                    kp::metadata_response::MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(BrokerId(NODE))
                        .with_replica_nodes(vec![BrokerId(NODE)])
                        .with_isr_nodes(vec![BrokerId(NODE)])
                })
                .collect(),
        );
    let topics = match &request.topics {
        None => vec![ours],
        Some(wanted) => wanted
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string());
                if name.as_deref() == Some(topic.name.as_str()) {
                    ours.clone()
                } else {
                    kp::metadata_response::MetadataResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_error_code(3)
                }
            })
            .collect(),
    };
    kp::MetadataResponse::default()
        .with_brokers(vec![
            kp::metadata_response::MetadataResponseBroker::default()
                .with_node_id(BrokerId(NODE))
                .with_host(str_bytes(&addr.ip().to_string()))
                .with_port(i32::from(addr.port())),
        ])
        .with_cluster_id(Some(StrBytes::from_static_str("replay")))
        .with_controller_id(BrokerId(NODE))
        .with_topics(topics)
}

fn find_coordinator(
    request: &kp::FindCoordinatorRequest,
    version: i16,
    addr: SocketAddr,
) -> kp::FindCoordinatorResponse {
    let host = str_bytes(&addr.ip().to_string());
    let port = i32::from(addr.port());
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|k| {
                kp::find_coordinator_response::Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(BrokerId(NODE))
                    .with_host(host.clone())
                    .with_port(port)
            })
            .collect();
        kp::FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        kp::FindCoordinatorResponse::default()
            .with_node_id(BrokerId(NODE))
            .with_host(host)
            .with_port(port)
    }
}

fn offset_fetch(request: &kp::OffsetFetchRequest, topic: &Topic) -> kp::OffsetFetchResponse {
    let committed = topic
        .committed
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    let answer = |name: &TopicName, partitions: &[i32]| {
        partitions
            .iter()
            .map(|p| {
                let offset = if **name == *topic.name {
                    committed.get(p).copied().unwrap_or(-1)
                } else {
                    -1
                };
                (*p, offset)
            })
            .collect::<Vec<_>>()
    };
    if request.groups.is_empty() {
        let topics = request
            .topics
            .iter()
            .flatten()
            .map(|t| {
                kp::offset_fetch_response::OffsetFetchResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        answer(&t.name, &t.partition_indexes)
                            .into_iter()
                            .map(|(p, o)| {
                                kp::offset_fetch_response::OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(o)
                            })
                            .collect(),
                    )
            })
            .collect();
        return kp::OffsetFetchResponse::default().with_topics(topics);
    }
    let groups = request
        .groups
        .iter()
        .map(|g| {
            let topics = g
                .topics
                .iter()
                .flatten()
                .map(|t| {
                    kp::offset_fetch_response::OffsetFetchResponseTopics::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            answer(&t.name, &t.partition_indexes)
                                .into_iter()
                                .map(|(p, o)| {
                                    kp::offset_fetch_response::OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                })
                                .collect(),
                        )
                })
                .collect();
            kp::offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id.clone())
                .with_topics(topics)
        })
        .collect();
    kp::OffsetFetchResponse::default().with_groups(groups)
}

fn offset_commit(request: kp::OffsetCommitRequest, topic: &Topic) -> kp::OffsetCommitResponse {
    let mut committed = topic.committed.lock().unwrap_or_else(|e| e.into_inner());
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    if *t.name == *topic.name {
                        committed.insert(p.partition_index, p.committed_offset);
                    }
                    kp::offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                })
                .collect();
            kp::offset_commit_response::OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    kp::OffsetCommitResponse::default().with_topics(topics)
}

fn list_offsets(request: kp::ListOffsetsRequest, topic: &Topic) -> kp::ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let offset = if let (Some(log), true) = (&topic.live, topic.source) {
                        log.list_offset(p.partition_index, p.timestamp)
                    } else if p.timestamp == -2 {
                        0
                    } else if topic.source {
                        topic.end()
                    } else {
                        usize::try_from(p.partition_index)
                            .ok()
                            .and_then(|i| topic.next_offset.get(i))
                            .map_or(0, |o| o.load(Ordering::Relaxed))
                    };
                    kp::list_offsets_response::ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(offset)
                        .with_leader_epoch(0)
                })
                .collect();
            kp::list_offsets_response::ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    kp::ListOffsetsResponse::default().with_topics(topics)
}

/// Encodes and writes one response.
fn respond<R: Encodable>(
    stream: &mut TcpStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<()> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    kp::ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api.response_header_version(version))?;
    body.encode(&mut buf, version)?;
    let len = i32::try_from(buf.len() - 4)?;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&buf)?;
    Ok(())
}

fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A piece of a Fetch response: a range of the per-response bytes, or the
/// shared batch after its base offset.
enum Piece {
    Meta(usize, usize),
    BatchTail,
}

/// Answers a Fetch (v12 to v16, flexible) from memory: for each requested
/// partition as many whole batches as fit in its `partition_max_bytes` and
/// the response's `max_bytes` (at least one when the response is still
/// empty), each the shared batch with its own base offset.
fn fetch(
    stream: &mut TcpStream,
    request: &kp::FetchRequest,
    version: i16,
    correlation_id: i32,
    topic: &Topic,
) -> Result<()> {
    topic.stats.fetches.fetch_add(1, Ordering::Relaxed);
    let batch_len = topic.batch.len();
    let tail = topic
        .batch
        .get(8..)
        .ok_or("a batch shorter than its base offset")?;
    let end = topic.end();
    let mut meta: Vec<u8> = Vec::with_capacity(1024);
    let mut pieces: Vec<Piece> = Vec::new();
    let mut mark = 0usize;
    let flush = |meta: &Vec<u8>, mark: &mut usize, pieces: &mut Vec<Piece>| {
        if meta.len() > *mark {
            pieces.push(Piece::Meta(*mark, meta.len()));
            *mark = meta.len();
        }
    };
    let max_bytes = usize::try_from(request.max_bytes.max(0))?;
    let mut total = 0usize;
    let mut served = 0u64;
    meta.extend_from_slice(&[0, 0, 0, 0]); // size, patched below
    meta.extend_from_slice(&correlation_id.to_be_bytes());
    put_uvarint(&mut meta, 0); // header tagged fields
    meta.extend_from_slice(&0i32.to_be_bytes()); // throttle_time_ms
    meta.extend_from_slice(&0i16.to_be_bytes()); // error_code
    meta.extend_from_slice(&0i32.to_be_bytes()); // session_id
    put_uvarint(&mut meta, request.topics.len() as u64 + 1);
    for t in &request.topics {
        let ours = if version >= 13 {
            t.topic_id == uuid::Uuid::from_bytes(TOPIC_ID)
        } else {
            *t.topic.0 == *topic.name
        };
        if version >= 13 {
            meta.extend_from_slice(t.topic_id.as_bytes());
        } else {
            put_uvarint(&mut meta, t.topic.0.len() as u64 + 1);
            meta.extend_from_slice(t.topic.0.as_bytes());
        }
        put_uvarint(&mut meta, t.partitions.len() as u64 + 1);
        for p in &t.partitions {
            let known = ours && (0..topic.partitions).contains(&p.partition);
            meta.extend_from_slice(&p.partition.to_be_bytes());
            let error: i16 = if known { 0 } else { 3 };
            meta.extend_from_slice(&error.to_be_bytes());
            let high = if known { end } else { -1 };
            meta.extend_from_slice(&high.to_be_bytes()); // high_watermark
            meta.extend_from_slice(&high.to_be_bytes()); // last_stable_offset
            meta.extend_from_slice(&0i64.to_be_bytes()); // log_start_offset
            put_uvarint(&mut meta, 1); // aborted_transactions: empty
            meta.extend_from_slice(&(-1i32).to_be_bytes()); // preferred_read_replica
            let mut count = 0i64;
            if known && p.fetch_offset >= 0 && p.fetch_offset < end {
                let first = p.fetch_offset / topic.records_per_batch;
                let limit = usize::try_from(p.partition_max_bytes.max(0))?;
                let mut bytes = 0usize;
                while first + count < topic.batches {
                    let fits = bytes + batch_len <= limit && total + batch_len <= max_bytes;
                    if !(fits || (total == 0 && count == 0)) {
                        break;
                    }
                    bytes += batch_len;
                    total += batch_len;
                    count += 1;
                }
            }
            let records_len = usize::try_from(count)? * batch_len;
            put_uvarint(&mut meta, records_len as u64 + 1);
            if count > 0 {
                let first = p.fetch_offset / topic.records_per_batch;
                for i in 0..count {
                    meta.extend_from_slice(&((first + i) * topic.records_per_batch).to_be_bytes());
                    flush(&meta, &mut mark, &mut pieces);
                    pieces.push(Piece::BatchTail);
                }
                served += u64::try_from(count)?;
            }
            put_uvarint(&mut meta, 0); // partition tagged fields
        }
        put_uvarint(&mut meta, 0); // topic tagged fields
    }
    put_uvarint(&mut meta, 0); // response tagged fields
    flush(&meta, &mut mark, &mut pieces);
    // `meta` holds each batch's base offset; the shared tails the rest.
    let size = meta.len() - 4 + usize::try_from(served)? * tail.len();
    meta[0..4].copy_from_slice(&i32::try_from(size)?.to_be_bytes());
    topic
        .stats
        .served_batches
        .fetch_add(served, Ordering::Relaxed);
    topic
        .stats
        .served_bytes
        .fetch_add(u64::try_from(total)?, Ordering::Relaxed);
    if total == 0 {
        // Nothing to serve: wait a little, as a broker waits for data (but
        // not the whole fetch.max.wait.ms, which would only add to kmirror's
        // wall time at the end of the run).
        let wait = u64::try_from(request.max_wait_ms.clamp(0, 10))?;
        std::thread::sleep(Duration::from_millis(wait));
    }
    let mut slices: Vec<IoSlice<'_>> = pieces
        .iter()
        .map(|piece| match piece {
            Piece::Meta(from, to) => IoSlice::new(&meta[*from..*to]),
            Piece::BatchTail => IoSlice::new(tail),
        })
        .collect();
    write_all_vectored(stream, &mut slices)
}

/// `write_all` for slices, at most [`MAX_SLICES`] per call.
fn write_all_vectored(stream: &mut TcpStream, mut slices: &mut [IoSlice<'_>]) -> Result<()> {
    while !slices.is_empty() {
        let n = slices.len().min(MAX_SLICES);
        let written = stream.write_vectored(&slices[..n])?;
        if written == 0 {
            return Err("the peer stopped reading".into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

/// Acknowledges a Produce at once; counts what it carried (and, in
/// `live`, times each batch from its append on the source to `arrived`).
fn produce(stream: &mut TcpStream, frame: Bytes, topic: &Topic, arrived: Instant) -> Result<()> {
    let request = decode_produce_request(frame)?;
    topic.stats.produces.fetch_add(1, Ordering::Relaxed);
    let mut responses = Vec::with_capacity(request.topics.len());
    for (name, partitions) in &request.topics {
        let mut answers = Vec::with_capacity(partitions.len());
        for (index, records) in partitions {
            let records = records.clone().unwrap_or_default();
            let (batches, count) = count_batches(&records, topic, answers.is_empty())?;
            if let Some(log) = topic.live.as_ref().filter(|_| **name == *topic.name) {
                log.received(*index, &records, arrived);
            }
            let base = usize::try_from(*index)
                .ok()
                .and_then(|i| topic.next_offset.get(i))
                .filter(|_| **name == *topic.name)
                .map(|o| o.fetch_add(count, Ordering::Relaxed));
            let stats = &topic.stats;
            stats.batches.fetch_add(batches, Ordering::Relaxed);
            stats
                .records
                .fetch_add(u64::try_from(count)?, Ordering::Relaxed);
            stats
                .bytes
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            answers.push(
                kp::produce_response::PartitionProduceResponse::default()
                    .with_index(*index)
                    .with_error_code(if base.is_some() { 0 } else { 3 })
                    .with_base_offset(base.unwrap_or(-1))
                    .with_log_append_time_ms(-1),
            );
        }
        responses.push(
            kp::produce_response::TopicProduceResponse::default()
                .with_name(TopicName(name.clone()))
                .with_partition_responses(answers),
        );
    }
    if request.acks == 0 {
        return Ok(());
    }
    let response = kp::ProduceResponse::default().with_responses(responses);
    respond(
        stream,
        ApiKey::Produce,
        request.version,
        request.correlation_id,
        &response,
    )
}

/// Batches and records in `records`; checks the CRC of the first batch when
/// `check` is set.
fn count_batches(records: &Bytes, topic: &Topic, check: bool) -> Result<(u64, i64)> {
    let mut at = 0usize;
    let (mut batches, mut count) = (0u64, 0i64);
    while at + 61 <= records.len() {
        let field = |from: usize| -> Result<i32> {
            let raw = records
                .get(at + from..at + from + 4)
                .ok_or("a truncated batch")?;
            Ok(i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]))
        };
        let len = 12 + usize::try_from(field(8)?)?;
        let last_offset_delta = field(23)?;
        if check && batches == 0 {
            topic.stats.crc_checked.fetch_add(1, Ordering::Relaxed);
            let ok = RecordBatchView::new(records.slice(at..(at + len).min(records.len())))
                .is_ok_and(|v| v.verify_crc().is_ok());
            if !ok {
                topic.stats.crc_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        batches += 1;
        count += i64::from(last_offset_delta) + 1;
        at += len;
    }
    Ok((batches, count))
}

/// Counts bytes from `connections` connections until each ends; prints
/// `sink bytes=N seconds=S` (first byte to last byte).
fn sink(listen: &str, connections: u64) -> Result<()> {
    let (listener, _) = bind(listen)?;
    let first: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let mut handles = Vec::new();
    for _ in 0..connections {
        let (mut stream, _) = listener.accept()?;
        let first = first.clone();
        handles.push(std::thread::spawn(move || -> Result<(u64, Instant)> {
            let mut buf = vec![0u8; RELAY_BUFFER];
            let mut total = 0u64;
            let mut last = Instant::now();
            loop {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    return Ok((total, last));
                }
                last = Instant::now();
                if total == 0
                    && let Ok(mut f) = first.lock()
                {
                    f.get_or_insert(last);
                }
                total += n as u64;
            }
        }));
    }
    let mut total = 0u64;
    let mut last: Option<Instant> = None;
    for handle in handles {
        let (bytes, at) = handle.join().map_err(|_| "a sink thread panicked")??;
        total += bytes;
        last = Some(last.map_or(at, |l| l.max(at)));
    }
    let first = first.lock().map_err(|_| "poisoned")?.to_owned();
    let seconds = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    println!("sink bytes={total} seconds={seconds:.6}");
    Ok(())
}

/// The physical floor: copies each of `connections` accepted connections
/// to a new connection to `upstream` with plain read and write calls.
fn relay(listen: &str, upstream: &str, connections: u64) -> Result<()> {
    let (listener, _) = bind(listen)?;
    let mut handles = Vec::new();
    for _ in 0..connections {
        let (mut from, _) = listener.accept()?;
        let mut to = TcpStream::connect(upstream)?;
        handles.push(std::thread::spawn(move || -> Result<()> {
            let mut buf = vec![0u8; RELAY_BUFFER];
            loop {
                let n = from.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                to.write_all(&buf[..n])?;
            }
            to.shutdown(std::net::Shutdown::Write)?;
            Ok(())
        }));
    }
    for handle in handles {
        handle.join().map_err(|_| "a relay thread panicked")??;
    }
    Ok(())
}

/// Writes `--bytes` of the replayed batch (whole batches, each with its own
/// base offset) over `--streams` connections to `--connect`.
fn blast(opts: &Args) -> Result<()> {
    let batch = the_batch(opts)?;
    let target = opts.text("--connect", "");
    let total = opts.number("--bytes", 0)?;
    let streams = opts.number("--streams", 1)?.max(1);
    let batches = total.div_ceil(batch.len() as u64);
    let mut handles = Vec::new();
    for s in 0..streams {
        let batch = batch.clone();
        let mut stream = TcpStream::connect(&target)?;
        let mine = batches / streams + u64::from(s < batches % streams);
        handles.push(std::thread::spawn(move || -> Result<()> {
            let tail = batch.get(8..).ok_or("a short batch")?;
            // Up to 16 batches per writev, as a Fetch response carries them.
            let mut offsets = [[0u8; 8]; 16];
            let mut sent = 0u64;
            while sent < mine {
                let n = usize::try_from((mine - sent).min(16))?;
                for (i, o) in offsets.iter_mut().take(n).enumerate() {
                    *o = i64::try_from(sent + i as u64)?.to_be_bytes();
                }
                let mut slices: Vec<IoSlice<'_>> = offsets
                    .iter()
                    .take(n)
                    .flat_map(|o| [IoSlice::new(o), IoSlice::new(tail)])
                    .collect();
                write_all_vectored(&mut stream, &mut slices)?;
                sent += n as u64;
            }
            stream.shutdown(std::net::Shutdown::Write)?;
            Ok(())
        }));
    }
    for handle in handles {
        handle.join().map_err(|_| "a blast thread panicked")??;
    }
    println!("blast bytes={}", batches * batch.len() as u64);
    Ok(())
}
