//! A TCP proxy that checks every Produce request passing through it against
//! Apache Kafka's broker rules ([`ConformanceChecker`]).
//!
//! The checker states Apache Kafka's rules in one place and names the rule a
//! request broke, which a broker's error code does not. Put a
//! [`ConformanceProxy`] between the client under test and the broker (the
//! broker advertising the proxy's address, see
//! [`start_cluster_behind_proxy`]), and every Produce
//! request the client sends also goes through one [`ConformanceChecker`]
//! shared by all connections (it remembers idempotent sequences across
//! requests and connections).
//!
//! Bytes are forwarded exactly as read, in both directions. The
//! client-to-broker stream is cut into frames on the side (4-byte big-endian
//! size, then the request); a Produce frame (api key 0) is copied and
//! checked after its last bytes were forwarded, so checking overlaps with the
//! broker's work. [`ConformanceProxy::report`] waits for the checks of every
//! frame already read, so a report taken after the client saw its responses
//! covers every request it sent.
//!
//! Plaintext only: a TLS stream has no readable frames (its first bytes read
//! as a size above 256 MiB), which the report lists as undecodable.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kmirror_protocol::conformance::{ConformanceChecker, TopicRules};
use kmirror_protocol::messages::produce::{DecodedProduceRequest, decode_produce_request};
use kmirror_protocol::record::{LogEntry, RecordBatches};

use kmirror_test_cluster::{ClusterOptions, KafkaCluster, Listener};

/// Read buffer per direction and connection.
const BUFFER_SIZE: usize = 256 * 1024;

/// The largest frame inspected; a larger (or negative) size ends the
/// inspection of its connection.
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// The most a Produce frame's buffer reserves up front.
const MAX_RESERVE: usize = 16 * 1024 * 1024;

/// Violations listed in a report; more are only counted.
const MAX_LISTED: usize = 10_000;

/// Violations shown in a failure message.
const MAX_SHOWN: usize = 20;

/// How long a new client connection waits for the upstream connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`ConformanceProxy::report`] waits for checks under way.
const REPORT_WAIT: Duration = Duration::from_secs(120);

/// What a [`ConformanceProxy`] saw, from the start until the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConformanceReport {
    /// Client connections accepted.
    pub connections: u64,
    /// Produce frames (api key 0) seen, decodable or not.
    pub produce_requests: u64,
    /// Record batches (magic 2) in the decodable Produce requests.
    pub batches: u64,
    /// Records in those batches, from their headers' `recordCount`.
    pub records: u64,
    /// Control batches among them (Apache Kafka refuses them from clients).
    pub control_batches: u64,
    /// Every broken rule (up to 10 000, see
    /// [`ConformanceReport::violations_total`]), each as
    /// `connection N, correlation id C, Produce vV: <violation>`.
    pub violations: Vec<String>,
    /// The number of broken rules, listed or not.
    pub violations_total: u64,
    /// Produce frames that do not decode, and connections whose inspection
    /// stopped on a frame size that is negative or above 256 MiB (their
    /// bytes are still forwarded).
    pub undecodable: Vec<String>,
}

impl ConformanceReport {
    /// Whether no rule was broken and every frame could be inspected.
    pub fn is_conformant(&self) -> bool {
        self.violations_total == 0 && self.undecodable.is_empty()
    }

    /// Counts and the first violations and undecodable frames, for failure
    /// messages.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} connections, {} Produce requests, {} batches, {} records, {} control batches, \
             {} violations, {} undecodable",
            self.connections,
            self.produce_requests,
            self.batches,
            self.records,
            self.control_batches,
            self.violations_total,
            self.undecodable.len()
        );
        if !self.violations.is_empty() {
            out.push_str(&format!(
                "\nviolations (first {}):",
                MAX_SHOWN.min(self.violations.len())
            ));
            for v in self.violations.iter().take(MAX_SHOWN) {
                out.push_str("\n  ");
                out.push_str(v);
            }
        }
        if !self.undecodable.is_empty() {
            out.push_str(&format!(
                "\nundecodable (first {}):",
                MAX_SHOWN.min(self.undecodable.len())
            ));
            for u in self.undecodable.iter().take(MAX_SHOWN) {
                out.push_str("\n  ");
                out.push_str(u);
            }
        }
        out
    }
}

/// A conformance-checking TCP proxy on 127.0.0.1 in front of one upstream
/// broker. Each client connection gets its own upstream connection (made
/// when the client connects, so a restarted broker is simply reconnected to)
/// and two forwarding threads that end when either side closes.
///
/// Dropping the proxy stops its accept loop and closes the connections that
/// are still open.
pub struct ConformanceProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ConformanceProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConformanceProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

struct Shared {
    upstream: String,
    stop: AtomicBool,
    next_connection: AtomicU64,
    state: Mutex<State>,
    /// Signalled when `State::pending` drops to 0.
    idle: Condvar,
    /// Clones of the sockets of open connections, to close them on drop.
    open: Mutex<HashMap<u64, [TcpStream; 2]>>,
}

struct State {
    checker: ConformanceChecker,
    report: ConformanceReport,
    /// Frames read but not checked yet.
    pending: usize,
    /// Records (from batch headers) per topic name, in decodable requests.
    records_by_topic: HashMap<String, u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bind(listen_port: u16) -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, listen_port)).unwrap_or_else(|e| {
        panic!("the conformance proxy cannot bind 127.0.0.1:{listen_port}: {e}")
    })
}

impl ConformanceProxy {
    /// Listens on `127.0.0.1:listen_port` (0: any free port, see
    /// [`ConformanceProxy::addr`]) and forwards every connection to
    /// `upstream` (`host:port`), checking Produce requests with a checker
    /// that knows no topic configs (see [`ConformanceProxy::declare_topic`]).
    ///
    /// # Panics
    ///
    /// If the port cannot be bound.
    pub fn start(listen_port: u16, upstream: &str) -> ConformanceProxy {
        Self::start_with_checker(listen_port, upstream, ConformanceChecker::new())
    }

    /// Like [`ConformanceProxy::start`] with a prepared checker (for
    /// example one built with [`ConformanceChecker::with_topic`]).
    ///
    /// # Panics
    ///
    /// If the port cannot be bound.
    pub fn start_with_checker(
        listen_port: u16,
        upstream: &str,
        checker: ConformanceChecker,
    ) -> ConformanceProxy {
        Self::serve(bind(listen_port), upstream, checker)
    }

    fn serve(listener: TcpListener, upstream: &str, checker: ConformanceChecker) -> Self {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("cannot read the address of a bound socket: {e}"));
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            stop: AtomicBool::new(false),
            next_connection: AtomicU64::new(0),
            state: Mutex::new(State {
                checker,
                report: ConformanceReport::default(),
                pending: 0,
                records_by_topic: HashMap::new(),
            }),
            idle: Condvar::new(),
            open: Mutex::new(HashMap::new()),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("conformance-proxy-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &shared))
                .unwrap_or_else(|e| panic!("cannot start the conformance proxy's thread: {e}"))
        };
        Self {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers` and for the broker's
    /// advertised address.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The upstream address every connection is forwarded to.
    pub fn upstream(&self) -> &str {
        &self.shared.upstream
    }

    /// Declares a destination topic's configs to the shared checker
    /// (`max.message.bytes`, LogAppendTime, compaction); applies to the
    /// requests checked from now on.
    pub fn declare_topic(&self, topic: &str, rules: TopicRules) {
        let mut state = lock(&self.shared.state);
        state.checker = std::mem::take(&mut state.checker).with_topic(topic, rules);
    }

    /// What the proxy saw so far. Waits (up to two minutes) until every
    /// frame already read from a client has been checked.
    pub fn report(&self) -> ConformanceReport {
        let state = lock(&self.shared.state);
        let (state, _) = self
            .shared
            .idle
            .wait_timeout_while(state, REPORT_WAIT, |s| s.pending > 0)
            .unwrap_or_else(PoisonError::into_inner);
        state.report.clone()
    }

    /// Records (counted from batch headers) that decodable Produce requests
    /// carried to `topic` so far, so that tests sharing one proxy can tell
    /// their own traffic apart. Waits like [`ConformanceProxy::report`].
    pub fn records_to(&self, topic: &str) -> u64 {
        let state = lock(&self.shared.state);
        let (state, _) = self
            .shared
            .idle
            .wait_timeout_while(state, REPORT_WAIT, |s| s.pending > 0)
            .unwrap_or_else(PoisonError::into_inner);
        state.records_by_topic.get(topic).copied().unwrap_or(0)
    }

    /// Asserts that no Produce request broke a rule, every frame could be
    /// inspected, and at least one Produce request went through.
    ///
    /// # Panics
    ///
    /// Otherwise, listing the counts and the first violations.
    pub fn assert_conformant(&self) {
        self.assert(true);
    }

    /// Like [`ConformanceProxy::assert_conformant`], but passes when no
    /// Produce request was seen at all.
    ///
    /// # Panics
    ///
    /// If a rule was broken or a frame could not be inspected.
    pub fn assert_no_violations(&self) {
        self.assert(false);
    }

    fn assert(&self, require_produce: bool) {
        let report = self.report();
        assert!(
            report.is_conformant(),
            "Produce requests through the conformance proxy {} (to {}) break Apache Kafka's rules: {}",
            self.addr,
            self.shared.upstream,
            report.summary()
        );
        assert!(
            !require_produce || report.produce_requests > 0,
            "no Produce request went through the conformance proxy {} (to {}): {}",
            self.addr,
            self.shared.upstream,
            report.summary()
        );
    }
}

impl Drop for ConformanceProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).is_ok();
        if let Some(accept) = self.accept.take()
            && woke
        {
            let _ = accept.join();
        }
        for (_, sockets) in lock(&self.shared.open).drain() {
            for socket in sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Starts a one-broker Apache Kafka cluster with a [`ConformanceProxy`] in
/// front of it: clients bootstrap with [`ConformanceProxy::addr`] and every
/// later connection goes through it too (the broker advertises the proxy's
/// address on its [`Listener::Proxied`] listener, and Kafka answers Metadata
/// with the endpoints of the listener a request came in on). The broker's
/// own PLAINTEXT listener ([`KafkaCluster::bootstrap`]) stays direct, for
/// the test's own clients.
///
/// The proxy's port is bound before the broker starts, so nothing can take
/// it in between. [`KafkaCluster::restart`] keeps working: the broker comes
/// back on the same ports and the proxy connects upstream anew for each
/// client connection.
///
/// # Panics
///
/// As [`KafkaCluster::start`], or if no port can be bound.
pub fn start_cluster_behind_proxy(options: ClusterOptions) -> (KafkaCluster, ConformanceProxy) {
    let listener = bind(0);
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the address of a bound socket: {e}"))
        .port();
    let cluster = KafkaCluster::start(options.behind_proxy(&[port]));
    let upstream = cluster.broker_addr(1, Listener::Proxied);
    let proxy = ConformanceProxy::serve(listener, &upstream, ConformanceChecker::new());
    (cluster, proxy)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let client = match incoming {
            Ok(client) => client,
            Err(_) => {
                // Out of descriptors or an aborted handshake: do not spin.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let id = shared.next_connection.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&shared.state).report.connections += 1;
        let conn_shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name(format!("conformance-proxy-conn-{id}"))
            .spawn(move || handle_connection(&conn_shared, id, client));
        if spawned.is_err() {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn connect_upstream(upstream: &str) -> Option<TcpStream> {
    let addrs = upstream.to_socket_addrs().ok()?;
    addrs
        .into_iter()
        .find_map(|addr| TcpStream::connect_timeout(&addr, UPSTREAM_CONNECT_TIMEOUT).ok())
}

fn handle_connection(shared: &Arc<Shared>, id: u64, client: TcpStream) {
    let Some(upstream) = connect_upstream(&shared.upstream) else {
        // Broker down (being restarted?): the client sees a closed
        // connection and retries.
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let clones = (|| {
        Some((
            client.try_clone().ok()?,
            upstream.try_clone().ok()?,
            client.try_clone().ok()?,
            upstream.try_clone().ok()?,
        ))
    })();
    let Some((client_out, upstream_in, client_reg, upstream_reg)) = clones else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        return;
    };
    lock(&shared.open).insert(id, [client_reg, upstream_reg]);
    // Registered before the flag is read: either this sees the flag or the
    // proxy's drop sees the registration.
    if shared.stop.load(Ordering::SeqCst) {
        close(&client, &upstream);
        lock(&shared.open).remove(&id);
        return;
    }

    let downstream = thread::Builder::new()
        .name(format!("conformance-proxy-conn-{id}-down"))
        .spawn(move || {
            copy(upstream_in, &client_out);
            let _ = client_out.shutdown(Shutdown::Both);
        });
    match downstream {
        Ok(downstream) => {
            forward_inspecting(shared, id, &client, &upstream);
            close(&client, &upstream);
            let _ = downstream.join();
        }
        Err(_) => close(&client, &upstream),
    }
    lock(&shared.open).remove(&id);
}

fn close(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

/// Broker to client: plain copying.
fn copy(mut from: TcpStream, mut to: &TcpStream) {
    let mut buf = vec![0u8; BUFFER_SIZE];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
}

/// Client to broker: forwards each read as is, then checks the Produce
/// frames it completed.
fn forward_inspecting(shared: &Shared, id: u64, mut from: &TcpStream, mut to: &TcpStream) {
    let mut buf = vec![0u8; BUFFER_SIZE];
    let mut frames = FrameCutter::default();
    let mut events = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        frames.feed(&buf[..n], &mut events);
        if !events.is_empty() {
            // Counted before the bytes reach the broker, so a report taken
            // after the response waits for this check.
            lock(&shared.state).pending += events.len();
        }
        let written = to.write_all(&buf[..n]);
        for event in events.drain(..) {
            inspect(shared, id, event);
        }
        if written.is_err() {
            break;
        }
    }
}

/// Counts from a decoded request, computed outside the lock.
#[derive(Default)]
struct Counts {
    batches: u64,
    records: u64,
    control_batches: u64,
    by_topic: Vec<(String, u64)>,
}

fn count(request: &DecodedProduceRequest) -> Counts {
    let mut counts = Counts::default();
    for (topic, partitions) in &request.topics {
        let before = counts.records;
        for (_, records) in partitions {
            let Some(records) = records else { continue };
            for entry in RecordBatches::new(records.clone()) {
                match entry {
                    Ok(LogEntry::Batch(view)) => {
                        let header = view.header();
                        counts.batches += 1;
                        counts.records += u64::try_from(header.record_count).unwrap_or(0);
                        if header.is_control() {
                            counts.control_batches += 1;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        counts
            .by_topic
            .push((topic.to_string(), counts.records - before));
    }
    counts
}

fn inspect(shared: &Shared, id: u64, event: Event) {
    match event {
        Event::Produce(frame) => {
            let correlation = frame
                .get(4..8)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or_else(|| "?".to_owned(), |b| i32::from_be_bytes(b).to_string());
            let decoded = decode_produce_request(frame.clone())
                .map(|request| (request.version, count(&request)));
            let mut state = lock(&shared.state);
            state.report.produce_requests += 1;
            match decoded {
                Err(e) => {
                    let line = format!(
                        "connection {id}, correlation id {correlation}: a Produce frame of {} bytes does not decode: {e}",
                        frame.len()
                    );
                    state.report.undecodable.push(line);
                }
                Ok((version, counts)) => {
                    state.report.batches += counts.batches;
                    state.report.records += counts.records;
                    state.report.control_batches += counts.control_batches;
                    for (topic, records) in counts.by_topic {
                        *state.records_by_topic.entry(topic).or_default() += records;
                    }
                    let violations = state.checker.check(frame);
                    for violation in violations {
                        state.report.violations_total += 1;
                        if state.report.violations.len() < MAX_LISTED {
                            let line = format!(
                                "connection {id}, correlation id {correlation}, Produce v{version}: {violation}"
                            );
                            state.report.violations.push(line);
                        }
                    }
                }
            }
            finish(shared, state);
        }
        Event::BadSize(size) => {
            let mut state = lock(&shared.state);
            state.report.undecodable.push(format!(
                "connection {id}: frame size {size} is negative or above {MAX_FRAME} bytes; \
                 the rest of this connection is forwarded without inspection"
            ));
            finish(shared, state);
        }
    }
}

fn finish(shared: &Shared, mut state: MutexGuard<'_, State>) {
    state.pending = state.pending.saturating_sub(1);
    if state.pending == 0 {
        shared.idle.notify_all();
    }
}

/// A completed frame worth checking.
enum Event {
    /// A Produce frame without its size prefix (header first).
    Produce(Bytes),
    /// A size prefix out of range; inspection stopped.
    BadSize(i32),
}

/// Cuts a client's byte stream into request frames.
enum FrameCutter {
    /// Reading the 4-byte size.
    Size { buf: [u8; 4], have: usize },
    /// Reading a body of `size` bytes; `kept` holds it while the api key is
    /// unknown or 0 (Produce), and is `None` for other requests.
    Body {
        size: usize,
        got: usize,
        kept: Option<BytesMut>,
    },
    /// Inspection stopped.
    Off,
}

impl Default for FrameCutter {
    fn default() -> Self {
        FrameCutter::Size {
            buf: [0; 4],
            have: 0,
        }
    }
}

impl FrameCutter {
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<Event>) {
        while !data.is_empty() {
            match self {
                FrameCutter::Off => return,
                FrameCutter::Size { buf, have } => {
                    let take = (4 - *have).min(data.len());
                    buf[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    data = &data[take..];
                    if *have == 4 {
                        let size = i32::from_be_bytes(*buf);
                        *self = match usize::try_from(size) {
                            Ok(0) => FrameCutter::default(),
                            Ok(size) if size <= MAX_FRAME => FrameCutter::Body {
                                size,
                                got: 0,
                                kept: Some(BytesMut::with_capacity(2)),
                            },
                            _ => {
                                out.push(Event::BadSize(size));
                                FrameCutter::Off
                            }
                        };
                    }
                }
                FrameCutter::Body { size, got, kept } => {
                    let take = (*size - *got).min(data.len());
                    let (chunk, rest) = data.split_at(take);
                    data = rest;
                    *got += take;
                    if let Some(body) = kept.as_mut() {
                        // The api key first, so that other requests are
                        // not copied.
                        let head = 2usize.saturating_sub(body.len()).min(chunk.len());
                        body.extend_from_slice(&chunk[..head]);
                        let produce = body.len() < 2 || body[..2] == [0, 0];
                        if produce {
                            if body.len() == 2 && body.capacity() < (*size).min(MAX_RESERVE) {
                                body.reserve((*size).min(MAX_RESERVE) - 2);
                            }
                            body.extend_from_slice(&chunk[head..]);
                        } else {
                            *kept = None;
                        }
                    }
                    if *got == *size {
                        if let Some(body) = kept.take()
                            && body.len() >= 2
                        {
                            out.push(Event::Produce(body.freeze()));
                        }
                        *self = FrameCutter::default();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    fn produce_bodies(events: &[Event]) -> Vec<Vec<u8>> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Produce(b) => Some(b.to_vec()),
                Event::BadSize(_) => None,
            })
            .collect()
    }

    #[test]
    fn cuts_frames_at_any_split_and_keeps_only_produce() {
        let mut stream = Vec::new();
        stream.extend(frame(b"\x00\x00\x00\x09produce-one"));
        stream.extend(frame(b"\x00\x01\x00\x0cfetch"));
        stream.extend(frame(b""));
        stream.extend(frame(b"\x00"));
        stream.extend(frame(b"\x00\x00two"));
        for step in [1, 2, 3, 5, 7, 64] {
            let mut cutter = FrameCutter::default();
            let mut events = Vec::new();
            for chunk in stream.chunks(step) {
                cutter.feed(chunk, &mut events);
            }
            assert_eq!(
                produce_bodies(&events),
                vec![
                    b"\x00\x00\x00\x09produce-one".to_vec(),
                    b"\x00\x00two".to_vec()
                ],
                "chunks of {step}"
            );
            assert!(matches!(cutter, FrameCutter::Size { have: 0, .. }));
        }
    }

    #[test]
    fn stops_on_bad_sizes() {
        for size in [-1i32, (MAX_FRAME + 1) as i32] {
            let mut cutter = FrameCutter::default();
            let mut events = Vec::new();
            let mut stream = size.to_be_bytes().to_vec();
            stream.extend(frame(b"\x00\x00after"));
            cutter.feed(&stream, &mut events);
            assert!(matches!(events[..], [Event::BadSize(s)] if s == size));
            assert!(matches!(cutter, FrameCutter::Off));
        }
    }
}
