//! `cargo xtask chaos`: a fault campaign on real Apache Kafka (issue 13).
//!
//! Two three-broker Apache Kafka 4.4.0 KRaft clusters (source and
//! destination, replication factor 3, `min.insync.replicas=2`), each behind
//! a TCP proxy of ours (one port per broker; the brokers advertise the
//! proxies on their `PROXIED` listener, so kmirror's every connection goes
//! through them). A continuous librdkafka producer (`xtask/python/chaos.py
//! produce`, acks=all, idempotent) writes keyed records carrying their
//! per-key sequence number and the trial number into `chaos-0` (6
//! partitions) and every topic added later; kmirror (release build)
//! mirrors `chaos-.*` continuously.
//!
//! Each trial applies one fault picked by a seeded generator (a shuffled
//! cycle over every kind, so N trials cover the kinds evenly): kill -9 or
//! graceful restart of a source or destination broker (the leader of a
//! partition of the busy topic), a forced leader election, a rolling
//! restart, a connection cut or stall in a proxy, kill -9 of kmirror and a
//! restart, partitions added to the source topic, a new topic. The trial
//! measures the time from the fault until the destination holds what the
//! source held two seconds after the fault (and again after the fault
//! ended), with a deadline: past it kmirror is stalled, which is recorded,
//! and kmirror is restarted. When kmirror exits, the exit is recorded with
//! its last log lines and kmirror is restarted 5 s later (as systemd
//! would). At the end the producer stops, kmirror catches up and is stopped
//! with SIGINT, and `chaos.py verify` reads every partition on both sides.
//!
//! Not covered: an unclean election. With three combined broker+controller
//! nodes, the ISR of a partition cannot shrink to a dead leader while an
//! out-of-sync replica is alive without two nodes down, and two nodes down
//! is a lost controller quorum: no election of any kind happens.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write as _};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kmirror_test_cluster::{ClusterOptions, KafkaCluster, Listener};

use crate::harness::{self, Guarded, Profile, describe_status, tail, wait_timeout, write_file};
use crate::json::Json;
use crate::{Result, paths};

/// The busy topic; new topics are `chaos-1`, `chaos-2`, ...
const MAIN_TOPIC: &str = "chaos-0";
const WHITELIST: &str = "chaos-.*";
const MAIN_PARTITIONS: i32 = 6;
const MAX_PARTITIONS: i32 = 12;
const GROUP: &str = "chaos-mirror";
/// How long the destination may stay behind after a fault ended.
const STALL_DEADLINE: Duration = Duration::from_secs(120);
/// How long a restarted kmirror gets after a stall.
const RESTART_DEADLINE: Duration = Duration::from_secs(150);
const SETTLE: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(500);
/// What an operator's supervisor waits before restarting an exited kmirror.
const RESTART_SEC: Duration = Duration::from_secs(5);
const BROKER_DOWN: Duration = Duration::from_secs(10);
const CUT_FOR: Duration = Duration::from_secs(10);
/// Longer than a client's default request.timeout.ms (30 s).
const STALL_FOR: Duration = Duration::from_secs(40);

pub(crate) struct ChaosOptions {
    trials: usize,
    seed: Option<u64>,
    rate: u32,
    streams: u16,
}

pub(crate) fn parse_options(args: &[String]) -> Result<ChaosOptions> {
    let mut options = ChaosOptions {
        trials: 5,
        seed: None,
        rate: 300,
        streams: 3,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, value) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), v.to_owned()),
            None => (
                arg.clone(),
                iter.next()
                    .ok_or_else(|| format!("{arg} expects a value"))?
                    .clone(),
            ),
        };
        let number = |what: &str| -> Result<u64> {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag} expects {what}, got {value:?}"))
        };
        match flag.as_str() {
            "--trials" => {
                options.trials =
                    usize::try_from(number("a number of trials")?).map_err(|e| e.to_string())?;
            }
            "--seed" => options.seed = Some(number("a number")?),
            "--rate" => {
                options.rate = u32::try_from(number("records per second")?)
                    .map_err(|e| e.to_string())?
                    .max(1);
            }
            "--num.streams" => {
                options.streams = u16::try_from(number("a stream count")?)
                    .map_err(|e| e.to_string())?
                    .max(1);
            }
            _ => {
                return Err(format!(
                    "unknown chaos option {flag:?} (see `cargo xtask help`)"
                ));
            }
        }
    }
    Ok(options)
}

/// splitmix64: small, seeded, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Destination => "destination",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    BrokerKill(Side),
    BrokerRestart(Side),
    Election(Side),
    RollingRestart(Side),
    Cut(Side),
    Stall(Side),
    MirrorKill,
    AddPartitions,
    NewTopic,
}

const ALL_FAULTS: [Fault; 15] = [
    Fault::BrokerKill(Side::Source),
    Fault::BrokerKill(Side::Destination),
    Fault::BrokerRestart(Side::Source),
    Fault::BrokerRestart(Side::Destination),
    Fault::Election(Side::Source),
    Fault::Election(Side::Destination),
    Fault::RollingRestart(Side::Source),
    Fault::RollingRestart(Side::Destination),
    Fault::Cut(Side::Source),
    Fault::Cut(Side::Destination),
    Fault::Stall(Side::Source),
    Fault::Stall(Side::Destination),
    Fault::MirrorKill,
    Fault::AddPartitions,
    Fault::NewTopic,
];

// ---------------------------------------------------------------------------
// The proxy

const PASS: u8 = 0;
const CUT: u8 = 1;
const STALL: u8 = 2;

/// One listening port per broker, forwarding to the broker's own PROXIED
/// listener (which advertises the proxy's port). `CUT` closes every connection and every new one at once;
/// `STALL` keeps connections open but forwards nothing.
struct Proxy {
    mode: Arc<AtomicU8>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn bind(n: usize) -> Result<(Self, Vec<TcpListener>, Vec<u16>)> {
        let mut listeners = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..n {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .map_err(|e| format!("cannot bind a proxy port: {e}"))?;
            ports.push(listener.local_addr().map_err(|e| e.to_string())?.port());
            listeners.push(listener);
        }
        let proxy = Self {
            mode: Arc::new(AtomicU8::new(PASS)),
            conns: Arc::new(Mutex::new(Vec::new())),
        };
        Ok((proxy, listeners, ports))
    }

    fn start(&self, listeners: Vec<TcpListener>, upstreams: Vec<SocketAddr>) {
        for (listener, upstream) in listeners.into_iter().zip(upstreams) {
            let mode = Arc::clone(&self.mode);
            let conns = Arc::clone(&self.conns);
            std::thread::spawn(move || accept_loop(&listener, upstream, &mode, &conns));
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        if mode == CUT {
            let mut conns = self
                .conns
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for conn in conns.drain(..) {
                let _ = conn.shutdown(Shutdown::Both);
            }
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    upstream: SocketAddr,
    mode: &Arc<AtomicU8>,
    conns: &Arc<Mutex<Vec<TcpStream>>>,
) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        if mode.load(Ordering::SeqCst) == CUT {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        {
            let mut list = conns
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            list.retain(|s| s.peer_addr().is_ok());
            list.push(c3);
            list.push(s3);
        }
        let m1 = Arc::clone(mode);
        let m2 = Arc::clone(mode);
        std::thread::spawn(move || pump(client, s2, &m1));
        std::thread::spawn(move || pump(server, c2, &m2));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, mode: &AtomicU8) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = vec![0u8; 64 * 1024];
    'outer: loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                loop {
                    match mode.load(Ordering::SeqCst) {
                        STALL => std::thread::sleep(Duration::from_millis(50)),
                        CUT => break 'outer,
                        _ => break,
                    }
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------
// End offsets, with ListOffsets v1 (std only, PLAINTEXT listeners)

type Offsets = BTreeMap<(String, i32), i64>;

/// The high-water marks of every partition of `topics` (a topic the
/// cluster does not know is left out); `None` if any partition has no
/// leader or its leader does not answer.
fn end_offsets(cluster: &KafkaCluster, topics: &[String]) -> Option<Offsets> {
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let view = catch_unwind(AssertUnwindSafe(|| cluster.metadata(&refs))).ok()?;
    let brokers: HashMap<i32, SocketAddr> = view
        .brokers
        .iter()
        .filter_map(|(id, host, port)| Some((*id, format!("{host}:{port}").parse().ok()?)))
        .collect();
    let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    for (topic, error, partitions) in &view.topics {
        if *error != 0 {
            continue;
        }
        for p in partitions {
            if p.leader < 0 {
                return None;
            }
            by_leader
                .entry(p.leader)
                .or_default()
                .push((topic.clone(), p.partition));
        }
    }
    let mut out = Offsets::new();
    for (leader, partitions) in by_leader {
        let addr = brokers.get(&leader)?;
        out.extend(list_offsets(*addr, &partitions)?);
    }
    Some(out)
}

fn list_offsets(addr: SocketAddr, partitions: &[(String, i32)]) -> Option<Offsets> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let mut body = Vec::new();
    body.extend_from_slice(&2i16.to_be_bytes()); // ListOffsets
    body.extend_from_slice(&1i16.to_be_bytes()); // v1
    body.extend_from_slice(&7i32.to_be_bytes());
    let client = b"kmirror-chaos";
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    body.extend_from_slice(&(-1i32).to_be_bytes()); // replica id
    body.extend_from_slice(&i32::try_from(by_topic.len()).ok()?.to_be_bytes());
    for (topic, parts) in &by_topic {
        body.extend_from_slice(&i16::try_from(topic.len()).ok()?.to_be_bytes());
        body.extend_from_slice(topic.as_bytes());
        body.extend_from_slice(&i32::try_from(parts.len()).ok()?.to_be_bytes());
        for p in parts {
            body.extend_from_slice(&p.to_be_bytes());
            body.extend_from_slice(&(-1i64).to_be_bytes()); // latest
        }
    }
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    stream
        .write_all(&i32::try_from(body.len()).ok()?.to_be_bytes())
        .ok()?;
    stream.write_all(&body).ok()?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let size = usize::try_from(i32::from_be_bytes(size)).ok()?;
    if size > 1 << 20 {
        return None;
    }
    let mut response = vec![0u8; size];
    stream.read_exact(&mut response).ok()?;
    let mut r = Reader(&response);
    r.take(4)?; // correlation id
    let mut out = Offsets::new();
    for _ in 0..r.i32()? {
        let len = usize::try_from(r.i16()?).ok()?;
        let topic = String::from_utf8_lossy(r.take(len)?).into_owned();
        for _ in 0..r.i32()? {
            let partition = r.i32()?;
            let error = r.i16()?;
            r.take(8)?; // timestamp
            let offset = i64::from_be_bytes(r.take(8)?.try_into().ok()?);
            if error != 0 {
                return None;
            }
            out.insert((topic.clone(), partition), offset);
        }
    }
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// Whether the destination holds at least what `target` (the source at
/// some instant) held: partition by partition where the destination has
/// at least as many partitions, else by topic total (kmirror re-partitions
/// by key then).
fn reached(target: &Offsets, destination: &Offsets) -> bool {
    let mut topics: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for ((t, p), o) in target {
        topics.entry(t).or_default().push((*p, *o));
    }
    topics.iter().all(|(topic, parts)| {
        let dst: Vec<(i32, i64)> = destination
            .iter()
            .filter(|((t, _), _)| t == topic)
            .map(|((_, p), o)| (*p, *o))
            .collect();
        if dst.len() >= parts.len() {
            parts
                .iter()
                .all(|(p, o)| *o == 0 || dst.iter().any(|(dp, doff)| dp == p && doff >= o))
        } else {
            dst.iter().map(|(_, o)| o).sum::<i64>() >= parts.iter().map(|(_, o)| o).sum::<i64>()
        }
    })
}

// ---------------------------------------------------------------------------
// kmirror under supervision

struct Mirror {
    exe: PathBuf,
    dir: PathBuf,
    streams: u16,
    child: Option<Child>,
    run: u32,
}

impl Mirror {
    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.join(format!("kmirror-run{run:02}.log"))
    }

    fn spawn(&mut self) -> Result<()> {
        self.run += 1;
        let path = self.log_path(self.run);
        let file =
            File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let streams = self.streams.to_string();
        let child = Command::new(&self.exe)
            .args([
                "--consumer.config",
                "consumer.properties",
                "--producer.config",
                "producer.properties",
                "--whitelist",
                WHITELIST,
                "--num.streams",
                &streams,
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.exe.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// The exit status if kmirror has exited (once).
    fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGINT, as Ctrl+C; SIGKILL after `timeout`. The exit, or `None` if
    /// it had to be killed.
    fn interrupt(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .stdin(Stdio::null())
            .status();
        let status = wait_timeout(&mut child, timeout).ok().flatten();
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }

    fn mark(&self) -> (u32, u64) {
        let len = std::fs::metadata(self.log_path(self.run)).map_or(0, |m| m.len());
        (self.run, len)
    }

    /// kmirror's output since `mark`, across restarts.
    fn since(&self, mark: (u32, u64)) -> String {
        let mut text = String::new();
        for run in mark.0..=self.run {
            let Ok(mut file) = File::open(self.log_path(run)) else {
                continue;
            };
            if run == mark.0 {
                let _ = file.seek(SeekFrom::Start(mark.1));
            } else {
                let _ = writeln!(text, "=== chaos: kmirror run {run} ===");
            }
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
        text
    }

    fn last_lines(&self, n: usize) -> String {
        let text = tail(&self.log_path(self.run), 64 * 1024);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ---------------------------------------------------------------------------
// The campaign

/// Something kmirror did that an operator would be paged for.
struct Event {
    trial: usize,
    fault: String,
    what: String,
    log: String,
}

struct Trial {
    n: usize,
    fault: String,
    recovered: Option<f64>,
    notes: Vec<String>,
}

/// The recovery measurement of the current trial.
struct Watch {
    t0: Instant,
    target_at: Instant,
    target: Option<Offsets>,
    reached: bool,
    first: Option<f64>,
}

impl Watch {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            t0: now,
            target_at: now + Duration::from_secs(2),
            target: None,
            reached: false,
            first: None,
        }
    }

    fn retarget(&mut self) {
        self.target_at = Instant::now() + Duration::from_secs(2);
        self.target = None;
        self.reached = false;
    }
}

struct Campaign {
    src: KafkaCluster,
    dst: KafkaCluster,
    src_proxy: Proxy,
    dst_proxy: Proxy,
    mirror: Mirror,
    rng: Rng,
    dir: PathBuf,
    topics: Vec<String>,
    partitions: i32,
    watch: Watch,
    trial: usize,
    fault: String,
    events: Vec<Event>,
    restarts: u32,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(no message)".to_owned())
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(300).collect()
}

impl Campaign {
    fn cluster(&self, side: Side) -> &KafkaCluster {
        match side {
            Side::Source => &self.src,
            Side::Destination => &self.dst,
        }
    }

    fn cluster_mut(&mut self, side: Side) -> &mut KafkaCluster {
        match side {
            Side::Source => &mut self.src,
            Side::Destination => &mut self.dst,
        }
    }

    fn proxy(&self, side: Side) -> &Proxy {
        match side {
            Side::Source => &self.src_proxy,
            Side::Destination => &self.dst_proxy,
        }
    }

    fn write_topics(&self) -> Result<()> {
        write_file(
            &self.dir.join("topics"),
            &format!("{}\n", self.topics.join("\n")),
        )
    }

    /// One observation: kmirror alive (restarted after an exit, as a
    /// supervisor would), and whether the destination caught up with the
    /// current target.
    fn tick(&mut self) {
        if let Some(status) = self.mirror.exited() {
            let at = self.watch.t0.elapsed().as_secs_f64();
            let what = format!("kmirror exited {} at +{at:.1} s", describe_status(status));
            println!("  ! {what}; restarting it in {} s", RESTART_SEC.as_secs());
            self.events.push(Event {
                trial: self.trial,
                fault: self.fault.clone(),
                what,
                log: self.mirror.last_lines(15),
            });
            std::thread::sleep(RESTART_SEC);
            self.restarts += 1;
            if let Err(e) = self.mirror.spawn() {
                println!("  ! cannot restart kmirror: {e}");
            }
        }
        let now = Instant::now();
        if self.watch.target.is_none() && now >= self.watch.target_at {
            self.watch.target = end_offsets(&self.src, &self.topics);
        }
        if let Some(target) = &self.watch.target
            && !self.watch.reached
            && let Some(destination) = end_offsets(&self.dst, &self.topics)
            && reached(target, &destination)
        {
            self.watch.reached = true;
            if self.watch.first.is_none() {
                self.watch.first = Some(self.watch.t0.elapsed().as_secs_f64());
            }
        }
    }

    fn sleep_observing(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            self.tick();
            std::thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
        }
    }

    /// Waits (observing) until every partition of every topic on `side` has
    /// a leader and three in-sync replicas, up to `timeout`.
    fn wait_healthy(&mut self, side: Side, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let topics = self.topics.clone();
            let healthy = catch_unwind(AssertUnwindSafe(|| {
                let cluster = self.cluster(side);
                topics.iter().all(|t| {
                    let parts = cluster.partitions(t);
                    side == Side::Destination && parts.is_empty()
                        || !parts.is_empty()
                            && parts.iter().all(|p| p.leader >= 0 && p.isr.len() == 3)
                })
            }))
            .unwrap_or(false);
            if healthy {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.sleep_observing(Duration::from_secs(1));
        }
    }

    /// A partition of the busy topic and its leader on `side`.
    fn busy_leader(&mut self, side: Side) -> (i32, i32) {
        let parts = self.cluster(side).partitions(MAIN_TOPIC);
        if parts.is_empty() {
            return (-1, i32::try_from(self.rng.below(3)).unwrap_or(0) + 1);
        }
        let p = &parts[self.rng.below(parts.len())];
        let leader = if p.leader > 0 {
            p.leader
        } else {
            i32::try_from(self.rng.below(3)).unwrap_or(0) + 1
        };
        (p.partition, leader)
    }

    /// Applies a fault (all its steps, observing in between); returns what
    /// was done.
    fn apply(&mut self, fault: Fault) -> Result<String> {
        match fault {
            Fault::BrokerKill(side) => {
                let (p, id) = self.busy_leader(side);
                self.fault = format!(
                    "kill -9 {} broker {id} (leader of {MAIN_TOPIC}-{p}), restart after {} s",
                    side.name(),
                    BROKER_DOWN.as_secs()
                );
                self.cluster_mut(side).kill(id);
                self.sleep_observing(BROKER_DOWN);
                self.cluster_mut(side).restart(id);
            }
            Fault::BrokerRestart(side) => {
                let (p, id) = self.busy_leader(side);
                self.fault = format!(
                    "graceful restart of {} broker {id} (leader of {MAIN_TOPIC}-{p})",
                    side.name()
                );
                self.cluster_mut(side).stop(id);
                self.sleep_observing(Duration::from_secs(5));
                self.cluster_mut(side).restart(id);
            }
            Fault::Election(side) => {
                let parts = self.cluster(side).partitions(MAIN_TOPIC);
                if parts.is_empty() {
                    return Err(format!(
                        "{MAIN_TOPIC} has no partitions on the {}",
                        side.name()
                    ));
                }
                let info = parts[self.rng.below(parts.len())].clone();
                let others: Vec<i32> = info
                    .isr
                    .iter()
                    .copied()
                    .filter(|r| *r != info.leader)
                    .collect();
                if others.is_empty() {
                    return Err(format!("no other in-sync replica: {info:?}"));
                }
                let to = others[self.rng.below(others.len())];
                self.fault = format!(
                    "leader election on the {}: {MAIN_TOPIC}-{} from broker {} to {to}",
                    side.name(),
                    info.partition,
                    info.leader
                );
                self.cluster(side)
                    .move_leader(MAIN_TOPIC, info.partition, to);
            }
            Fault::RollingRestart(side) => {
                self.fault = format!("rolling restart of the {} (brokers 1, 2, 3)", side.name());
                for id in 1..=3 {
                    self.cluster_mut(side).stop(id);
                    self.sleep_observing(Duration::from_secs(2));
                    self.cluster_mut(side).restart(id);
                    self.wait_healthy(side, Duration::from_secs(90));
                }
            }
            Fault::Cut(side) => {
                self.fault = format!(
                    "cut every connection to the {} for {} s (proxy refuses and closes)",
                    side.name(),
                    CUT_FOR.as_secs()
                );
                self.proxy(side).set(CUT);
                self.sleep_observing(CUT_FOR);
                self.proxy(side).set(PASS);
            }
            Fault::Stall(side) => {
                self.fault = format!(
                    "stall every connection to the {} for {} s (proxy forwards nothing)",
                    side.name(),
                    STALL_FOR.as_secs()
                );
                self.proxy(side).set(STALL);
                self.sleep_observing(STALL_FOR);
                self.proxy(side).set(PASS);
            }
            Fault::MirrorKill => {
                self.fault = "kill -9 kmirror, restart at once".to_owned();
                self.mirror.kill9();
                self.mirror.spawn()?;
            }
            Fault::AddPartitions => {
                let to = (self.partitions + 2).min(MAX_PARTITIONS);
                if to == self.partitions {
                    return Err(format!("{MAIN_TOPIC} already has {to} partitions"));
                }
                self.fault = format!(
                    "partitions added to the source's {MAIN_TOPIC}: {} -> {to}",
                    self.partitions
                );
                let mut args = self.src.admin_target();
                let to_arg = to.to_string();
                args.extend(
                    ["--alter", "--topic", MAIN_TOPIC, "--partitions", &to_arg].map(str::to_owned),
                );
                self.src.tool_ok(
                    "kafka-topics",
                    &args.iter().map(String::as_str).collect::<Vec<_>>(),
                );
                self.partitions = to;
                // The producer refreshes its metadata every 3 s: only then do
                // the new partitions hold records the target can ask for.
                self.sleep_observing(Duration::from_secs(8));
            }
            Fault::NewTopic => {
                let topic = format!("chaos-{}", self.topics.len());
                self.fault = format!("new source topic {topic} (3 partitions)");
                self.src.create_topic(&topic, 3, 3, &[]);
                self.topics.push(topic);
                self.write_topics()?;
            }
        }
        Ok(self.fault.clone())
    }

    fn ensure_brokers_running(&mut self) {
        for side in [Side::Source, Side::Destination] {
            for id in 1..=3 {
                if !self.cluster(side).is_running(id) {
                    println!("  restarting {} broker {id}", side.name());
                    let _ = catch_unwind(AssertUnwindSafe(|| self.cluster_mut(side).restart(id)));
                }
            }
        }
        for side in [Side::Source, Side::Destination] {
            self.proxy(side).set(PASS);
        }
    }

    fn run_trial(&mut self, n: usize, fault: Fault) -> Result<Trial> {
        self.trial = n;
        self.fault = format!("{fault:?}");
        for side in [Side::Source, Side::Destination] {
            if !self.wait_healthy(side, Duration::from_secs(90)) {
                println!("  (the {} is not fully in sync after 90 s)", side.name());
            }
        }
        write_file(&self.dir.join("trial"), &format!("{n}\n"))?;
        let mark = self.mirror.mark();
        let events_before = self.events.len();
        let mut notes = Vec::new();
        self.watch = Watch::new();
        println!("trial {n}: {fault:?}");
        match catch_unwind(AssertUnwindSafe(|| self.apply(fault))) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => notes.push(format!("fault not applied: {}", first_line(&e))),
            Err(payload) => notes.push(format!(
                "fault step failed: {}",
                first_line(&panic_message(&*payload))
            )),
        }
        self.ensure_brokers_running();
        println!("  {}", self.fault);
        self.watch.retarget();
        let deadline = Instant::now() + STALL_DEADLINE;
        while !self.watch.reached && Instant::now() < deadline {
            self.sleep_observing(TICK);
        }
        if !self.watch.reached {
            let what = format!(
                "stalled: the destination did not reach the source's end offsets within {} s of \
                 the fault's end",
                STALL_DEADLINE.as_secs()
            );
            println!("  ! {what}; restarting kmirror (SIGINT)");
            let log = self.mirror.last_lines(15);
            let status = self.mirror.interrupt(Duration::from_secs(30));
            let stop = status.map_or_else(
                || "did not exit within 30 s of SIGINT: killed".to_owned(),
                |s| format!("exited {} on SIGINT", describe_status(s)),
            );
            self.events.push(Event {
                trial: n,
                fault: self.fault.clone(),
                what: format!("{what}; kmirror {stop}"),
                log,
            });
            self.restarts += 1;
            self.mirror.spawn()?;
            self.watch.retarget();
            let deadline = Instant::now() + RESTART_DEADLINE;
            while !self.watch.reached && Instant::now() < deadline {
                self.sleep_observing(TICK);
            }
            notes.push(if self.watch.reached {
                "stall; caught up after a restart".to_owned()
            } else {
                "stall; still stalled after a restart".to_owned()
            });
        }
        self.sleep_observing(SETTLE);
        for event in &self.events[events_before..] {
            if !event.what.starts_with("stalled") {
                notes.push(event.what.clone());
            }
        }
        let log = self.dir.join(format!("trial-{n:02}.log"));
        write_file(
            &log,
            &format!("=== trial {n}: {}\n{}", self.fault, self.mirror.since(mark)),
        )?;
        let recovered = self.watch.first;
        println!(
            "  recovered: {}{}",
            recovered.map_or_else(|| "no".to_owned(), |s| format!("{s:.1} s")),
            if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join("; "))
            }
        );
        Ok(Trial {
            n,
            fault: self.fault.clone(),
            recovered,
            notes,
        })
    }
}

fn count(json: &Json, field: &str, trial: &str) -> i64 {
    json.get(field)
        .and_then(|m| m.get(trial))
        .and_then(Json::as_i64)
        .unwrap_or(0)
}

fn total(json: &Json, field: &str) -> i64 {
    match json.get(field) {
        Some(Json::Object(members)) => members.iter().filter_map(|(_, v)| v.as_i64()).sum(),
        Some(v) => v.as_i64().unwrap_or(0),
        None => 0,
    }
}

fn strings(json: &Json, field: &str) -> Vec<String> {
    json.get(field)
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn run(options: &ChaosOptions) -> Result<()> {
    let started = Instant::now();
    let seed = options.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() ^ u64::from(d.subsec_nanos()))
    });
    println!(
        "chaos: seed {seed} ({} trials; replay with `cargo xtask chaos --trials {} --seed {seed}`)",
        options.trials, options.trials
    );
    let python = paths::venv_python();
    if !python.is_file() {
        return Err(format!(
            "{} is missing: run `cargo xtask brokers`",
            python.display()
        ));
    }
    let script = paths::xtask_dir().join("python").join("chaos.py");
    let exe = harness::build_kmirror(Profile::Release)?;
    let dir = harness::scratch_dir("chaos");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    // Clusters behind proxies, started side by side.
    let (src_proxy, src_listeners, src_ports) = Proxy::bind(3)?;
    let (dst_proxy, dst_listeners, dst_ports) = Proxy::bind(3)?;
    let t = Instant::now();
    let (src, dst) = std::thread::scope(|s| {
        let start = |name: &'static str, ports: Vec<u16>| {
            s.spawn(move || {
                catch_unwind(|| {
                    KafkaCluster::start(
                        ClusterOptions::three_brokers()
                            .name(name)
                            .behind_proxy(&ports),
                    )
                })
                .map_err(|p| format!("starting {name}: {}", panic_message(&*p)))
            })
        };
        let a = start("chaos-src", src_ports);
        let b = start("chaos-dst", dst_ports);
        (
            a.join()
                .unwrap_or_else(|_| Err("starting chaos-src".to_owned())),
            b.join()
                .unwrap_or_else(|_| Err("starting chaos-dst".to_owned())),
        )
    });
    let (src, dst) = (src?, dst?);
    println!(
        "started two three-broker Apache Kafka {} clusters in {:.1} s",
        src.version(),
        t.elapsed().as_secs_f64()
    );
    let upstreams = |c: &KafkaCluster| -> Vec<SocketAddr> {
        c.all_ids()
            .iter()
            .filter_map(|id| c.broker_addr(*id, Listener::Proxied).parse().ok())
            .collect()
    };
    src_proxy.start(src_listeners, upstreams(&src));
    dst_proxy.start(dst_listeners, upstreams(&dst));
    catch_unwind(AssertUnwindSafe(|| {
        src.create_topic(MAIN_TOPIC, MAIN_PARTITIONS, 3, &[]);
    }))
    .map_err(|p| panic_message(&*p))?;
    write_file(
        &dir.join("consumer.properties"),
        &format!(
            // A restarted kmirror gets the partitions once the killed
            // one's session expired: 10 s, not Java's 45 s default.
            "bootstrap.servers={}\ngroup.id={GROUP}\nauto.offset.reset=earliest\n\
             session.timeout.ms=10000\nheartbeat.interval.ms=1000\n",
            src.bootstrap_for(Listener::Proxied)
        ),
    )?;
    write_file(
        &dir.join("producer.properties"),
        &format!(
            "bootstrap.servers={}\n",
            dst.bootstrap_for(Listener::Proxied)
        ),
    )?;
    let mut campaign = Campaign {
        mirror: Mirror {
            exe,
            dir: dir.clone(),
            streams: options.streams,
            child: None,
            run: 0,
        },
        src,
        dst,
        src_proxy,
        dst_proxy,
        rng: Rng(seed),
        dir: dir.clone(),
        topics: vec![MAIN_TOPIC.to_owned()],
        partitions: MAIN_PARTITIONS,
        watch: Watch::new(),
        trial: 0,
        fault: "warm-up".to_owned(),
        events: Vec::new(),
        restarts: 0,
    };
    campaign.write_topics()?;
    write_file(&dir.join("trial"), "0\n")?;
    let create =
        |p: &Path| File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()));
    let rate = options.rate.to_string();
    let mut producer = Guarded(
        Command::new(&python)
            .arg(&script)
            .args(["produce", &campaign.src.bootstrap()])
            .arg(&dir)
            .arg(&rate)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(create(&dir.join("producer.stdout"))?)
            .stderr(create(&dir.join("producer.stderr"))?)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?,
    );
    campaign.mirror.spawn()?;
    println!(
        "producer: {} records/s (acks=all, idempotent) into {MAIN_TOPIC} ({MAIN_PARTITIONS} \
         partitions); kmirror --whitelist '{WHITELIST}' --num.streams {} through the proxies",
        options.rate, options.streams
    );
    // Warm-up: the first catch-up.
    campaign.watch = Watch::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !campaign.watch.reached && Instant::now() < deadline {
        campaign.sleep_observing(TICK);
    }
    println!(
        "warm-up: {}",
        campaign.watch.first.map_or_else(
            || "kmirror did not catch up within 120 s".to_owned(),
            |s| format!("kmirror caught up in {s:.1} s")
        )
    );
    campaign.sleep_observing(SETTLE);

    let mut order: Vec<Fault> = Vec::new();
    let mut trials = Vec::new();
    for n in 1..=options.trials {
        if order.is_empty() {
            order = ALL_FAULTS.to_vec();
            campaign.rng.shuffle(&mut order);
            order.reverse();
        }
        let fault = order.pop().unwrap_or(Fault::MirrorKill);
        if let Ok(Some(status)) = producer.0.try_wait() {
            return Err(format!(
                "the producer exited {}: {}",
                describe_status(status),
                tail(&dir.join("producer.stderr"), 2000)
            ));
        }
        trials.push(campaign.run_trial(n, fault)?);
    }

    // The end: stop the producer, let kmirror catch up, stop it.
    println!("stopping the producer");
    write_file(&dir.join("stop"), "")?;
    let status = wait_timeout(&mut producer.0, Duration::from_secs(180))?;
    let produced = std::fs::read_to_string(dir.join("producer.stdout")).unwrap_or_default();
    let producer_summary = harness::parse_json("chaos producer", &produced).ok();
    if !status.is_some_and(|s| s.success()) {
        println!(
            "the producer did not end cleanly: {}",
            tail(&dir.join("producer.stderr"), 2000)
        );
    }
    campaign.trial = options.trials + 1;
    campaign.fault = "final catch-up".to_owned();
    campaign.watch = Watch::new();
    campaign.watch.target_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !campaign.watch.reached && Instant::now() < deadline {
        campaign.sleep_observing(TICK);
    }
    // Reached by totals (fewer destination partitions) can hide a tail not
    // yet copied behind duplicates: also wait until the destination has not
    // moved for 10 s.
    let mut last = end_offsets(&campaign.dst, &campaign.topics);
    let mut still_since = Instant::now();
    while Instant::now() < deadline && still_since.elapsed() < Duration::from_secs(10) {
        campaign.sleep_observing(Duration::from_secs(1));
        let now = end_offsets(&campaign.dst, &campaign.topics);
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    let caught_up = campaign
        .watch
        .first
        .map_or_else(|| "not within 180 s".to_owned(), |s| format!("{s:.1} s"));
    println!("final catch-up: {caught_up}");
    let stop = campaign.mirror.interrupt(Duration::from_secs(60));
    let stop = stop.map_or_else(
        || "did not exit within 60 s of SIGINT: killed".to_owned(),
        |s| format!("exited {} on SIGINT", describe_status(s)),
    );
    println!("kmirror {stop}");
    println!(
        "verifying: reading every partition of {} on both clusters",
        campaign.topics.join(", ")
    );
    let out_path = dir.join("verify.json");
    let mut args = vec![
        "verify".to_owned(),
        campaign.src.bootstrap(),
        campaign.dst.bootstrap(),
        out_path.display().to_string(),
    ];
    args.extend(campaign.topics.iter().cloned());
    let mut verifier = Guarded(
        Command::new(&python)
            .arg(&script)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(create(&dir.join("verify.stdout"))?)
            .stderr(create(&dir.join("verify.stderr"))?)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?,
    );
    let status = wait_timeout(&mut verifier.0, Duration::from_secs(900))?;
    if !status.is_some_and(|s| s.success()) {
        return Err(format!(
            "chaos.py verify failed: {}",
            tail(&dir.join("verify.stderr"), 3000)
        ));
    }
    let verdict = Json::parse(
        std::fs::read_to_string(&out_path)
            .map_err(|e| format!("cannot read {}: {e}", out_path.display()))?
            .trim(),
    )?;

    // The report.
    let mut table = String::from(
        "| trial | fault | records | lost | reordered | duplicates | time to recover | kmirror |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let row = |table: &mut String, n: &str, fault: &str, recover: &str, notes: &str| {
        let _ = writeln!(
            table,
            "| {n} | {fault} | {} | {} | {} | {} | {recover} | {notes} |",
            count(&verdict, "produced", n),
            count(&verdict, "lost", n),
            count(&verdict, "reordered", n),
            count(&verdict, "duplicates", n),
        );
    };
    row(
        &mut table,
        "0",
        "(warm-up, before the first fault)",
        "-",
        "",
    );
    for t in &trials {
        let recover = match (t.recovered, t.notes.iter().any(|n| n.starts_with("stall"))) {
            (Some(s), false) => format!("{s:.1} s"),
            (Some(s), true) => format!("{s:.1} s (after a restart)"),
            (None, _) => format!("stalled (> {} s)", STALL_DEADLINE.as_secs()),
        };
        row(
            &mut table,
            &t.n.to_string(),
            &t.fault,
            &recover,
            &t.notes.join("; "),
        );
    }
    let (produced_total, lost, reordered, duplicates) = (
        total(&verdict, "produced"),
        total(&verdict, "lost"),
        total(&verdict, "reordered"),
        total(&verdict, "duplicates"),
    );
    let _ = writeln!(
        table,
        "| **total** | {} trials | {produced_total} | {lost} | {reordered} | {duplicates} | | {} restarts of kmirror |",
        trials.len(),
        campaign.restarts
    );
    let elapsed = started.elapsed().as_secs_f64();
    let mut report = format!(
        "# kmirror fault campaign\n\n\
         Generated by `cargo xtask chaos --trials {} --seed {seed}` (xtask/src/chaos.rs, \
         xtask/python/chaos.py) in {:.0} s: two three-broker Apache Kafka {} KRaft clusters \
         (replication factor 3, min.insync.replicas=2) behind TCP proxies, a librdkafka producer \
         at {} records/s (acks=all, idempotent; 64 keys per topic, per-key sequence numbers), \
         kmirror --whitelist '{WHITELIST}' --num.streams {} running throughout.\n\n\
         Records are counted by the trial during which they were produced. Time to recover: from \
         the fault until the destination holds what the source held 2 s after the fault (and 2 s \
         after its end); stalled past {} s after the fault's end, kmirror is stopped with SIGINT \
         and restarted. An exited kmirror is restarted after {} s. Lost: on the source, not on the \
         destination. Reordered: per key and destination partition, a later sequence before an \
         earlier one. Duplicates: extra copies on the destination.\n\n{table}\n",
        options.trials,
        elapsed,
        campaign.src.version(),
        options.rate,
        options.streams,
        STALL_DEADLINE.as_secs(),
        RESTART_SEC.as_secs(),
    );
    let _ = writeln!(
        report,
        "Final catch-up after the producer stopped: {caught_up}; kmirror {stop}.\n\
         On the destination but not on the source: {}; on the source itself: {} reordered, {} \
         duplicated.",
        total(&verdict, "extra"),
        total(&verdict, "source_reordered"),
        total(&verdict, "source_duplicates"),
    );
    if let Some(summary) = &producer_summary {
        let _ = writeln!(
            report,
            "The producer had {} records acknowledged and {} failed.",
            total(summary, "acked"),
            total(summary, "failed"),
        );
    }
    for (title, field) in [
        ("Lost (samples)", "lost_samples"),
        ("Reordered (samples)", "reordered_samples"),
        ("Extra (samples)", "extra_samples"),
    ] {
        let samples = strings(&verdict, field);
        if !samples.is_empty() {
            let _ = writeln!(report, "\n## {title}\n");
            for s in samples {
                let _ = writeln!(report, "- {s}");
            }
        }
    }
    if !campaign.events.is_empty() {
        let _ = writeln!(report, "\n## kmirror failures\n");
        for e in &campaign.events {
            let _ = writeln!(
                report,
                "### trial {}: {}\n\n{}. Last log lines:\n\n```\n{}\n```\n",
                e.trial, e.fault, e.what, e.log
            );
        }
    }
    let _ = writeln!(
        report,
        "\nkmirror's log of each trial: target/xtask/chaos/trial-NN.log; whole runs: \
         kmirror-runNN.log."
    );
    let results = dir.join("results.md");
    write_file(&results, &report)?;
    println!("\n{table}");
    for e in &campaign.events {
        println!(
            "trial {} ({}): {}\n    {}",
            e.trial,
            e.fault,
            e.what,
            e.log.replace('\n', "\n    ")
        );
    }
    println!(
        "lost {lost}, reordered {reordered}, duplicates {duplicates} over {produced_total} \
         records; {} restarts of kmirror; {elapsed:.0} s; written to {}",
        campaign.restarts,
        results.display()
    );
    if lost > 0 || reordered > 0 {
        return Err(format!(
            "{lost} records lost and {reordered} reordered (see {})",
            results.display()
        ));
    }
    Ok(())
}
