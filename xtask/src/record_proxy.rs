//! `cargo xtask record-proxy`: a TCP proxy that records Kafka frames.
//!
//! Every accepted connection gets its own upstream connection. Bytes are
//! forwarded in both directions exactly as read; a copy is cut into Kafka
//! frames (4-byte big-endian size, then the frame) on the side. Each request
//! frame is written to `{seq:04}-{api}-v{version}-c{conn}-request.bin` and the
//! response with the same correlation id on the same connection to the same
//! name ending in `-response.bin`. Files hold the frame without its size
//! prefix: a request file starts with the request header (api key, api
//! version, correlation id, ...), a response file with the correlation id.
//!
//! A frame is on disk before its bytes are forwarded, so anything a client
//! has seen has been recorded.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::Result;

/// Frames larger than this are not Kafka (or not recordable); recording of
/// that direction stops while forwarding goes on.
const MAX_FRAME: usize = 512 * 1024 * 1024;

/// Kafka API key names, indexed by key (Apache Kafka 4.x numbering).
const API_NAMES: &[&str] = &[
    "Produce",                      // 0
    "Fetch",                        // 1
    "ListOffsets",                  // 2
    "Metadata",                     // 3
    "LeaderAndIsr",                 // 4
    "StopReplica",                  // 5
    "UpdateMetadata",               // 6
    "ControlledShutdown",           // 7
    "OffsetCommit",                 // 8
    "OffsetFetch",                  // 9
    "FindCoordinator",              // 10
    "JoinGroup",                    // 11
    "Heartbeat",                    // 12
    "LeaveGroup",                   // 13
    "SyncGroup",                    // 14
    "DescribeGroups",               // 15
    "ListGroups",                   // 16
    "SaslHandshake",                // 17
    "ApiVersions",                  // 18
    "CreateTopics",                 // 19
    "DeleteTopics",                 // 20
    "DeleteRecords",                // 21
    "InitProducerId",               // 22
    "OffsetForLeaderEpoch",         // 23
    "AddPartitionsToTxn",           // 24
    "AddOffsetsToTxn",              // 25
    "EndTxn",                       // 26
    "WriteTxnMarkers",              // 27
    "TxnOffsetCommit",              // 28
    "DescribeAcls",                 // 29
    "CreateAcls",                   // 30
    "DeleteAcls",                   // 31
    "DescribeConfigs",              // 32
    "AlterConfigs",                 // 33
    "AlterReplicaLogDirs",          // 34
    "DescribeLogDirs",              // 35
    "SaslAuthenticate",             // 36
    "CreatePartitions",             // 37
    "CreateDelegationToken",        // 38
    "RenewDelegationToken",         // 39
    "ExpireDelegationToken",        // 40
    "DescribeDelegationToken",      // 41
    "DeleteGroups",                 // 42
    "ElectLeaders",                 // 43
    "IncrementalAlterConfigs",      // 44
    "AlterPartitionReassignments",  // 45
    "ListPartitionReassignments",   // 46
    "OffsetDelete",                 // 47
    "DescribeClientQuotas",         // 48
    "AlterClientQuotas",            // 49
    "DescribeUserScramCredentials", // 50
    "AlterUserScramCredentials",    // 51
    "Vote",                         // 52
    "BeginQuorumEpoch",             // 53
    "EndQuorumEpoch",               // 54
    "DescribeQuorum",               // 55
    "AlterPartition",               // 56
    "UpdateFeatures",               // 57
    "Envelope",                     // 58
    "FetchSnapshot",                // 59
    "DescribeCluster",              // 60
    "DescribeProducers",            // 61
    "BrokerRegistration",           // 62
    "BrokerHeartbeat",              // 63
    "UnregisterBroker",             // 64
    "DescribeTransactions",         // 65
    "ListTransactions",             // 66
    "AllocateProducerIds",          // 67
    "ConsumerGroupHeartbeat",       // 68
    "ConsumerGroupDescribe",        // 69
    "ControllerRegistration",       // 70
    "GetTelemetrySubscriptions",    // 71
    "PushTelemetry",                // 72
    "AssignReplicasToDirs",         // 73
    "ListClientMetricsResources",   // 74
    "DescribeTopicPartitions",      // 75
    "ShareGroupHeartbeat",          // 76
    "ShareGroupDescribe",           // 77
    "ShareFetch",                   // 78
    "ShareAcknowledge",             // 79
    "AddRaftVoter",                 // 80
    "RemoveRaftVoter",              // 81
    "UpdateRaftVoter",              // 82
    "InitializeShareGroupState",    // 83
    "ReadShareGroupState",          // 84
    "WriteShareGroupState",         // 85
    "DeleteShareGroupState",        // 86
    "ReadShareGroupStateSummary",   // 87
];

/// The name of a Kafka API key, or `api{key}` for unknown keys.
pub(crate) fn api_name(key: i16) -> String {
    usize::try_from(key)
        .ok()
        .and_then(|index| API_NAMES.get(index))
        .map_or_else(|| format!("api{key}"), |name| (*name).to_owned())
}

/// One recorded frame file, as named by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordedName {
    /// Global sequence number shared by a request and its response.
    pub(crate) seq: u32,
    /// API key from the request header.
    pub(crate) api_key: i16,
    /// API version from the request header.
    pub(crate) api_version: i16,
    /// Connection number (order of acceptance, from 0).
    pub(crate) conn: u32,
    /// `true` for a request file, `false` for a response file.
    pub(crate) is_request: bool,
}

/// What a request left behind for its response.
#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u32,
    api_key: i16,
    api_version: i16,
}

/// Shared state of one proxy: output directory and counters.
#[derive(Debug)]
struct Recorder {
    out: PathBuf,
    upstream: SocketAddr,
    seq: AtomicU32,
    next_conn: AtomicU32,
    active: AtomicUsize,
    verbose: bool,
    write_error_reported: AtomicBool,
}

/// A proxy running on background threads; it lives as long as the process.
#[derive(Debug, Clone)]
pub(crate) struct ProxyHandle {
    recorder: Arc<Recorder>,
}

impl ProxyHandle {
    /// Waits until no connection is open (after at least one was) or the
    /// timeout passes; returns whether the proxy is idle.
    pub(crate) fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.recorder.active.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many connections the proxy has accepted so far.
    pub(crate) fn connections(&self) -> u32 {
        self.recorder.next_conn.load(Ordering::SeqCst)
    }
}

/// `cargo xtask record-proxy`: binds `listen` and proxies to `upstream`
/// until the process is killed.
pub(crate) fn run_forever(listen: SocketAddr, upstream: SocketAddr, out: &Path) -> Result<()> {
    let listener =
        TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let recorder = Arc::new(Recorder::new(out, upstream, true)?);
    eprintln!(
        "record-proxy: {listen} -> {upstream}, recording into {} (Ctrl+C to stop)",
        out.display()
    );
    accept_loop(&listener, &recorder);
    Err("the listener stopped accepting connections".to_owned())
}

/// Starts a quiet proxy on an already bound listener, on background threads.
pub(crate) fn start(
    listener: TcpListener,
    upstream: SocketAddr,
    out: &Path,
) -> Result<ProxyHandle> {
    let recorder = Arc::new(Recorder::new(out, upstream, false)?);
    let for_thread = Arc::clone(&recorder);
    std::thread::Builder::new()
        .name("record-proxy-accept".to_owned())
        .spawn(move || accept_loop(&listener, &for_thread))
        .map_err(|e| format!("cannot spawn the proxy thread: {e}"))?;
    Ok(ProxyHandle { recorder })
}

fn accept_loop(listener: &TcpListener, recorder: &Arc<Recorder>) {
    for client in listener.incoming() {
        match client {
            Ok(client) => {
                let conn = recorder.next_conn.fetch_add(1, Ordering::SeqCst);
                recorder.active.fetch_add(1, Ordering::SeqCst);
                let for_thread = Arc::clone(recorder);
                let spawned = std::thread::Builder::new()
                    .name(format!("record-proxy-c{conn}"))
                    .spawn(move || {
                        for_thread.serve(conn, client);
                        for_thread.active.fetch_sub(1, Ordering::SeqCst);
                    });
                if let Err(e) = spawned {
                    eprintln!("record-proxy: cannot spawn a thread for connection {conn}: {e}");
                    recorder.active.fetch_sub(1, Ordering::SeqCst);
                }
            }
            Err(e) => {
                eprintln!("record-proxy: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Recorder {
    fn new(out: &Path, upstream: SocketAddr, verbose: bool) -> Result<Self> {
        std::fs::create_dir_all(out)
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        Ok(Self {
            out: out.to_path_buf(),
            upstream,
            seq: AtomicU32::new(1),
            next_conn: AtomicU32::new(0),
            active: AtomicUsize::new(0),
            verbose,
            write_error_reported: AtomicBool::new(false),
        })
    }

    /// Proxies one client connection until both directions are closed.
    fn serve(self: &Arc<Self>, conn: u32, client: TcpStream) {
        let upstream = match TcpStream::connect(self.upstream) {
            Ok(upstream) => upstream,
            Err(e) => {
                eprintln!(
                    "record-proxy: c{conn}: cannot connect to {}: {e}",
                    self.upstream
                );
                return;
            }
        };
        if self.verbose {
            let peer = client
                .peer_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string());
            eprintln!("record-proxy: c{conn}: {peer} connected");
        }
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let pending: Arc<Mutex<HashMap<i32, Pending>>> = Arc::default();
        let clones = (client.try_clone(), upstream.try_clone());
        let (Ok(client_rx), Ok(upstream_rx)) = clones else {
            eprintln!("record-proxy: c{conn}: cannot clone sockets");
            return;
        };
        let responses = {
            let recorder = Arc::clone(self);
            let pending = Arc::clone(&pending);
            let client_tx = client;
            std::thread::Builder::new()
                .name(format!("record-proxy-c{conn}-resp"))
                .spawn(move || {
                    recorder.pump(conn, upstream_rx, client_tx, false, &pending);
                })
        };
        self.pump(conn, client_rx, upstream, true, &pending);
        match responses {
            Ok(handle) => {
                let _ = handle.join();
            }
            Err(e) => eprintln!("record-proxy: c{conn}: cannot spawn a thread: {e}"),
        }
        if self.verbose {
            eprintln!("record-proxy: c{conn}: closed");
        }
    }

    /// Copies `from` to `to` until EOF, recording frames on the way.
    fn pump(
        &self,
        conn: u32,
        mut from: TcpStream,
        mut to: TcpStream,
        requests: bool,
        pending: &Mutex<HashMap<i32, Pending>>,
    ) {
        let mut frames = FrameSplitter::default();
        let mut buf = vec![0_u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => {
                    // Half-close: pass the EOF on, keep the other way open.
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let chunk = buf.get(..n).unwrap_or_default();
            for frame in frames.push(chunk) {
                if requests {
                    self.record_request(conn, &frame, pending);
                } else {
                    self.record_response(conn, &frame, pending);
                }
            }
            if to.write_all(chunk).is_err() {
                break;
            }
        }
        // An error on either side ends the whole connection.
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    }

    fn record_request(&self, conn: u32, frame: &[u8], pending: &Mutex<HashMap<i32, Pending>>) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let header = (read_i16(frame, 0), read_i16(frame, 2), read_i32(frame, 4));
        let (Some(api_key), Some(api_version), Some(correlation_id)) = header else {
            self.write(&format!("{seq:04}-short-c{conn}-request.bin"), frame);
            return;
        };
        pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                correlation_id,
                Pending {
                    seq,
                    api_key,
                    api_version,
                },
            );
        let name = format!(
            "{seq:04}-{}-v{api_version}-c{conn}-request.bin",
            api_name(api_key)
        );
        if self.verbose {
            eprintln!(
                "record-proxy: {name} ({} bytes, correlation id {correlation_id})",
                frame.len()
            );
        }
        self.write(&name, frame);
    }

    fn record_response(&self, conn: u32, frame: &[u8], pending: &Mutex<HashMap<i32, Pending>>) {
        let matched = read_i32(frame, 0).and_then(|correlation_id| {
            pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&correlation_id)
        });
        let name = match matched {
            Some(Pending {
                seq,
                api_key,
                api_version,
            }) => {
                format!(
                    "{seq:04}-{}-v{api_version}-c{conn}-response.bin",
                    api_name(api_key)
                )
            }
            None => {
                let seq = self.seq.fetch_add(1, Ordering::SeqCst);
                format!("{seq:04}-unmatched-c{conn}-response.bin")
            }
        };
        if self.verbose {
            eprintln!("record-proxy: {name} ({} bytes)", frame.len());
        }
        self.write(&name, frame);
    }

    fn write(&self, name: &str, frame: &[u8]) {
        let path = self.out.join(name);
        if let Err(e) = std::fs::write(&path, frame)
            && !self.write_error_reported.swap(true, Ordering::SeqCst)
        {
            eprintln!(
                "record-proxy: cannot write {}: {e} (further errors not shown)",
                path.display()
            );
        }
    }
}

/// Cuts a byte stream into size-prefixed frames.
#[derive(Debug, Default)]
struct FrameSplitter {
    buffer: Vec<u8>,
    /// Set once a size prefix made no sense; the stream is then not Kafka.
    broken: bool,
}

impl FrameSplitter {
    /// Appends `bytes`; returns the frames completed, without size prefixes.
    fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        if self.broken {
            return frames;
        }
        self.buffer.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(size) = read_i32(&self.buffer, start) {
            let Ok(size) = usize::try_from(size) else {
                self.broken = true;
                break;
            };
            if size > MAX_FRAME {
                self.broken = true;
                break;
            }
            let end = start + 4 + size;
            let Some(frame) = self.buffer.get(start + 4..end) else {
                break;
            };
            frames.push(frame.to_vec());
            start = end;
        }
        if self.broken {
            self.buffer = Vec::new();
        } else {
            self.buffer.drain(..start);
        }
        frames
    }
}

fn read_i16(bytes: &[u8], at: usize) -> Option<i16> {
    let raw = bytes.get(at..at + 2)?;
    Some(i16::from_be_bytes(raw.try_into().ok()?))
}

fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let raw = bytes.get(at..at + 4)?;
    Some(i32::from_be_bytes(raw.try_into().ok()?))
}

/// Parses a file name written by the proxy.
pub(crate) fn parse_name(name: &str) -> Option<RecordedName> {
    let stem = name.strip_suffix(".bin")?;
    let (stem, is_request) = if let Some(stem) = stem.strip_suffix("-request") {
        (stem, true)
    } else {
        (stem.strip_suffix("-response")?, false)
    };
    let mut parts = stem.split('-');
    let seq = parts.next()?.parse().ok()?;
    let api = parts.next()?;
    let api_version = parts.next()?.strip_prefix('v')?.parse().ok()?;
    let conn = parts.next()?.strip_prefix('c')?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let api_key = API_NAMES
        .iter()
        .position(|candidate| *candidate == api)
        .and_then(|index| i16::try_from(index).ok())
        .or_else(|| api.strip_prefix("api")?.parse().ok())?;
    Some(RecordedName {
        seq,
        api_key,
        api_version,
        conn,
        is_request,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_across_chunks() {
        let mut splitter = FrameSplitter::default();
        assert!(splitter.push(&[0, 0, 0]).is_empty());
        assert!(splitter.push(&[3, 1, 2]).is_empty());
        let frames = splitter.push(&[3, 0, 0, 0, 1, 9, 0]);
        assert_eq!(frames, vec![vec![1, 2, 3], vec![9]]);
        assert!(splitter.push(&[0, 0]).is_empty());
        assert_eq!(splitter.push(&[0]), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn negative_size_stops_recording() {
        let mut splitter = FrameSplitter::default();
        assert!(splitter.push(&[0xff, 0xff, 0xff, 0xff, 1]).is_empty());
        assert!(splitter.push(&[0, 0, 0, 1, 7]).is_empty());
    }

    #[test]
    fn names_round_trip() {
        let name = format!("{:04}-{}-v{}-c{}-request.bin", 12, api_name(18), 3, 0);
        assert_eq!(name, "0012-ApiVersions-v3-c0-request.bin");
        assert_eq!(
            parse_name(&name),
            Some(RecordedName {
                seq: 12,
                api_key: 18,
                api_version: 3,
                conn: 0,
                is_request: true
            })
        );
        assert_eq!(
            parse_name("0013-api999-v1-c2-response.bin").map(|n| n.api_key),
            Some(999)
        );
        assert_eq!(parse_name("0014-unmatched-c2-response.bin"), None);
    }
}
