//! Broker discovery through ZooKeeper, for configurations that name the
//! source cluster by `zookeeper.connect` instead of `bootstrap.servers`.
//!
//! MirrorMaker 1's old consumer found a cluster through its ZooKeeper, and
//! guides (the HDInsight one among them) still write
//! `zookeeper.connect=zk0:2181,zk1:2181` into `consumer.properties`. A Kafka
//! broker in ZooKeeper mode registers itself as the ephemeral znode
//! `<chroot>/brokers/ids/<id>`, whose data is a JSON document like
//!
//! ```json
//! {"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT","SSL":"SSL"},
//!  "endpoints":["PLAINTEXT://b1:9092","SSL://b1:9093"],
//!  "jmx_port":-1,"host":"b1","port":9092,"timestamp":"1700000000000","version":4}
//! ```
//!
//! [`discover_brokers`] reads those registrations once and turns them into a
//! `bootstrap.servers` list; from then on kmirror talks to brokers only.
//!
//! It speaks the ZooKeeper client protocol itself (no ZooKeeper library):
//! one session, `getChildren` on `<chroot>/brokers/ids`, `getData` on each
//! child, then `closeSession`. Every length read from the server is checked
//! against the bytes received before anything is allocated, frames are
//! capped at [`MAX_FRAME_BYTES`], the JSON reader bounds its nesting depth,
//! and the whole exchange runs under one deadline.
//!
//! Limits: the ZooKeeper connection is plaintext and unauthenticated (no
//! ZooKeeper TLS, SASL or digest ACLs); a registration znode protected by an
//! ACL is reported as such.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::error::PoolError;

/// The port used for a ZooKeeper server named without one.
pub const DEFAULT_PORT: u16 = 2181;

/// The largest frame accepted from a ZooKeeper server. ZooKeeper's own limit
/// (`jute.maxbuffer`) defaults to 1 MiB; broker registrations are a few
/// hundred bytes.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// At most this many brokers are read (the lowest ids); a bootstrap list
/// needs only a few.
const MAX_BROKERS: usize = 10_000;

/// At most this many servers in a connect string.
const MAX_SERVERS: usize = 256;

/// The deepest JSON nesting accepted in a registration (real ones nest 3).
const MAX_JSON_DEPTH: usize = 32;

/// The session timeout asked for; the session is closed explicitly at the
/// end, this only bounds how long it lingers if kmirror vanishes midway.
const SESSION_TIMEOUT_MS: i32 = 10_000;

/// How long the closing handshake may take at most.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How many watch notifications or pings may precede a reply.
const MAX_SKIPPED_FRAMES: usize = 64;

/// How many per-broker problems an error message lists.
const MAX_LISTED_PROBLEMS: usize = 8;

const OP_GET_DATA: i32 = 4;
const OP_GET_CHILDREN: i32 = 8;
const OP_CLOSE_SESSION: i32 = -11;
const XID_NOTIFICATION: i32 = -1;
const XID_PING: i32 = -2;
const ERR_NO_NODE: i32 = -101;
const ERR_NO_AUTH: i32 = -102;

/// The Kafka security protocols a client can ask for.
const SECURITY_PROTOCOLS: [&str; 4] = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// Reads the broker registrations of the Kafka cluster whose ZooKeeper is
/// `connect` and returns one `host:port` per broker, sorted by broker id,
/// for the listener that speaks `security_protocol`.
///
/// - `connect` is a `zookeeper.connect` value: `host1:2181,host2:2181/chroot`
///   (port defaults to 2181, IPv6 hosts in brackets, the chroot optional).
///   The servers are tried in order; the first that opens a session is used.
/// - `security_protocol` is Kafka's `security.protocol` name, `PLAINTEXT`,
///   `SSL`, `SASL_PLAINTEXT` or `SASL_SSL` (any case). A broker's endpoint is
///   chosen through its `listener_security_protocol_map` (or by listener
///   name when the map is absent); for `PLAINTEXT`, registrations with only
///   the legacy `host`/`port` fields are understood too.
/// - `timeout` bounds the whole discovery, connecting included.
///
/// A broker without a suitable endpoint, or whose registration cannot be
/// read, is skipped with a warning; the call fails only when no broker is
/// left, and its error then says why each one was skipped.
///
/// # Errors
///
/// [`PoolError::ZooKeeper`] naming `connect` and what went wrong: a
/// malformed connect string or protocol name, no server reachable within
/// `timeout`, no broker registered, or no broker with a suitable endpoint.
pub async fn discover_brokers(
    connect: &str,
    security_protocol: &str,
    timeout: Duration,
) -> Result<Vec<String>, PoolError> {
    let error = |reason: String| PoolError::ZooKeeper {
        connect: connect.to_owned(),
        reason,
    };
    let protocol = protocol_name(security_protocol).map_err(error)?;
    let parsed = ConnectString::parse(connect)?;
    let start = Instant::now();
    // A timeout too large to add is as good as none.
    let deadline = start
        .checked_add(timeout)
        .or_else(|| start.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(start);

    let mut session = Session::open(&parsed, deadline, timeout)
        .await
        .map_err(error)?;
    let read = session.read_registrations(&parsed.chroot, deadline).await;
    session.close(deadline).await;
    let registrations = read.map_err(error)?;

    let (brokers, problems) = select_endpoints(&registrations, protocol);
    if brokers.is_empty() {
        return Err(error(format!(
            "no broker has a usable {protocol} endpoint: {}",
            list_problems(&problems)
        )));
    }
    for problem in &problems {
        tracing::warn!(zookeeper = connect, "skipping a broker: {problem}");
    }
    tracing::info!(
        "discovered {} broker(s) through ZooKeeper at {connect} ({} via {}): {}",
        brokers.len(),
        protocol,
        session.server,
        brokers.join(",")
    );
    Ok(brokers)
}

/// Returns the canonical (upper-case) name of a Kafka security protocol.
fn protocol_name(name: &str) -> Result<&'static str, String> {
    let trimmed = name.trim();
    SECURITY_PROTOCOLS
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(trimmed))
        .ok_or_else(|| {
            format!(
                "unknown security protocol {:?}; expected one of {}",
                truncate(name, 64),
                SECURITY_PROTOCOLS.join(", ")
            )
        })
}

/// A parsed `zookeeper.connect` value: servers and an optional chroot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    servers: Vec<Server>,
    /// Empty for none, else `/a/b` (no trailing slash).
    chroot: String,
}

/// One ZooKeeper server: a host (without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Server {
    host: String,
    port: u16,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl ConnectString {
    /// Parses `host1:port1,host2:port2/chroot/path`.
    ///
    /// Ports default to 2181; IPv6 addresses go in brackets (`[::1]:2181`);
    /// empty entries (a trailing comma) are ignored; a chroot of `/` means
    /// none and a trailing slash is dropped.
    ///
    /// # Errors
    ///
    /// [`PoolError::ZooKeeper`] saying what is malformed.
    pub fn parse(connect: &str) -> Result<Self, PoolError> {
        Self::parse_inner(connect).map_err(|reason| PoolError::ZooKeeper {
            connect: connect.to_owned(),
            reason,
        })
    }

    fn parse_inner(connect: &str) -> Result<Self, String> {
        let connect = connect.trim();
        if connect.is_empty() {
            return Err(
                "the connect string is empty; expected host:port[,host:port...][/chroot]"
                    .to_owned(),
            );
        }
        let (hosts, chroot) = match connect.find('/') {
            Some(slash) => connect.split_at(slash),
            None => (connect, ""),
        };
        let mut servers = Vec::new();
        for entry in hosts.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if servers.len() == MAX_SERVERS {
                return Err(format!("more than {MAX_SERVERS} servers"));
            }
            servers.push(parse_server(entry)?);
        }
        if servers.is_empty() {
            return Err(
                "no server in the connect string; expected host:port[,host:port...][/chroot]"
                    .to_owned(),
            );
        }
        Ok(Self {
            servers,
            chroot: parse_chroot(chroot)?,
        })
    }

    /// The servers, as `host:port` (`[v6]:port` for IPv6), in order.
    pub fn servers(&self) -> Vec<String> {
        self.servers.iter().map(ToString::to_string).collect()
    }

    /// The chroot, `/a/b`, if there is one.
    pub fn chroot(&self) -> Option<&str> {
        Some(self.chroot.as_str()).filter(|c| !c.is_empty())
    }
}

fn parse_server(entry: &str) -> Result<Server, String> {
    let shown = truncate(entry, 80);
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("server {shown:?} has an unclosed '['"))?;
        if !is_ipv6_literal(host) {
            return Err(format!("server {shown:?} has a malformed IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| {
                format!("server {shown:?}: expected ':port' after the IPv6 address")
            })?),
        };
        (host, port)
    } else {
        let (host, port) = match entry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(format!(
                "server {shown:?} has more than one ':'; write IPv6 addresses in brackets, [::1]:2181"
            ));
        }
        if !is_host_name(host) {
            return Err(format!("server {shown:?} has a malformed host name"));
        }
        (host, port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => parse_port(port).ok_or_else(|| {
            format!("server {shown:?} has a malformed port (expected 1 to 65535)")
        })?,
    };
    Ok(Server {
        host: host.to_owned(),
        port,
    })
}

fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// An IPv6 address, optionally with a zone (`fe80::1%eth0`), no brackets.
fn is_ipv6_literal(host: &str) -> bool {
    let (address, zone) = match host.split_once('%') {
        Some((address, zone)) => (address, Some(zone)),
        None => (host, None),
    };
    address.parse::<std::net::Ipv6Addr>().is_ok()
        && zone.is_none_or(|zone| {
            !zone.is_empty()
                && zone.len() <= 64
                && zone
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        })
}

fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().filter(|p| *p != 0)
}

fn parse_chroot(chroot: &str) -> Result<String, String> {
    let trimmed = chroot.strip_suffix('/').unwrap_or(chroot);
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let shown = truncate(chroot, 80);
    if trimmed.len() > 1024 {
        return Err(format!("the chroot {shown:?} is longer than 1024 bytes"));
    }
    // `trimmed` starts with '/', so the first segment is the empty one before it.
    for segment in trimmed.split('/').skip(1) {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!(
                "the chroot {shown:?} has an empty, '.' or '..' path segment"
            ));
        }
        if segment.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "the chroot {shown:?} has a control or whitespace character"
            ));
        }
    }
    Ok(trimmed.to_owned())
}

// ---------------------------------------------------------------------------
// The ZooKeeper session.

/// An open session with one ZooKeeper server.
struct Session {
    stream: TcpStream,
    /// `host:port` of the server, for messages.
    server: String,
    next_xid: i32,
}

/// A reply: its body, or ZooKeeper's error code.
enum Reply {
    Ok(Vec<u8>),
    Err(i32),
}

impl Session {
    /// Opens a session with the first server that accepts one. Each server
    /// gets an equal share of the time left, the last one all of it.
    async fn open(
        connect: &ConnectString,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut failures = Vec::new();
        let count = connect.servers.len();
        for (index, server) in connect.servers.iter().enumerate() {
            let now = Instant::now();
            if now >= deadline {
                failures.push(format!("{server}: not tried, the time was up"));
                continue;
            }
            let left = u32::try_from(count - index).unwrap_or(u32::MAX).max(1);
            let attempt_deadline = now + (deadline - now) / left;
            match Self::open_one(server, attempt_deadline).await {
                Ok(session) => {
                    tracing::debug!(server = %server, "ZooKeeper session opened");
                    return Ok(session);
                }
                Err(reason) => {
                    tracing::debug!(server = %server, "ZooKeeper server refused: {reason}");
                    failures.push(reason);
                }
            }
        }
        Err(format!(
            "no ZooKeeper server opened a session within {timeout:?}: {}; check zookeeper.connect and that ZooKeeper runs and is reachable from this host",
            failures.join("; ")
        ))
    }

    async fn open_one(server: &Server, deadline: Instant) -> Result<Self, String> {
        let label = server.to_string();
        let stream = match timeout_at(
            deadline,
            TcpStream::connect((server.host.as_str(), server.port)),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("{label}: cannot connect: {e}")),
            Err(_) => return Err(format!("{label}: no connection before the deadline")),
        };
        // Latency matters more than throughput for these few small requests.
        let _ = stream.set_nodelay(true);
        let mut session = Self {
            stream,
            server: label,
            next_xid: 1,
        };
        session.send(&connect_request(), deadline).await?;
        let frame = session.receive(deadline).await?;
        parse_connect_response(&frame).map_err(|e| format!("{}: {e}", session.server))?;
        Ok(session)
    }

    /// Reads every broker registration under `<chroot>/brokers/ids`.
    async fn read_registrations(
        &mut self,
        chroot: &str,
        deadline: Instant,
    ) -> Result<Vec<Registration>, String> {
        let ids_path = format!("{chroot}/brokers/ids");
        let children = match self.request(OP_GET_CHILDREN, &ids_path, deadline).await? {
            Reply::Ok(body) => parse_children(&body)
                .map_err(|e| format!("{}: bad getChildren reply: {e}", self.server))?,
            Reply::Err(ERR_NO_NODE) => {
                return Err(format!(
                    "no broker registered under {ids_path}: the node does not exist{}",
                    if chroot.is_empty() {
                        " (if the cluster lives under a chroot, append it to zookeeper.connect: host:2181/kafka)"
                    } else {
                        " (is the chroot in zookeeper.connect right?)"
                    }
                ));
            }
            Reply::Err(code) => return Err(self.refused("getChildren", &ids_path, code)),
        };
        if children.is_empty() {
            return Err(format!("no broker registered under {ids_path}"));
        }

        let mut ids = Vec::with_capacity(children.len());
        let mut registrations = Vec::new();
        for child in children {
            match child.parse::<i32>() {
                Ok(id) => ids.push((id, child)),
                Err(_) => registrations.push(Registration {
                    id: None,
                    data: Err(format!(
                        "{ids_path}/{} is not a broker id",
                        truncate(&child, 64)
                    )),
                }),
            }
        }
        ids.sort_unstable_by_key(|(id, _)| *id);
        if ids.len() > MAX_BROKERS {
            tracing::warn!(
                "{ids_path} lists {} brokers; reading the {MAX_BROKERS} lowest ids",
                ids.len()
            );
            ids.truncate(MAX_BROKERS);
        }
        for (id, child) in ids {
            let path = format!("{ids_path}/{child}");
            let data = match self.request(OP_GET_DATA, &path, deadline).await? {
                Reply::Ok(body) => match parse_data(&body) {
                    Ok(Some(data)) if !data.is_empty() => Ok(data),
                    Ok(_) => Err(format!("broker {id} has an empty registration at {path}")),
                    Err(e) => return Err(format!("{}: bad getData reply: {e}", self.server)),
                },
                Reply::Err(ERR_NO_NODE) => Err(format!(
                    "broker {id} deregistered while its registration was being read"
                )),
                Reply::Err(code) => Err(self.refused("getData", &path, code)),
            };
            registrations.push(Registration { id: Some(id), data });
        }
        Ok(registrations)
    }

    fn refused(&self, operation: &str, path: &str, code: i32) -> String {
        let hint = if code == ERR_NO_AUTH {
            " (kmirror reads ZooKeeper without authentication; the znode's ACL must allow world read)"
        } else {
            ""
        };
        format!(
            "{} answered {operation} {path} with {} ({code}){hint}",
            self.server,
            error_name(code)
        )
    }

    /// Sends one request and reads its reply.
    async fn request(&mut self, op: i32, path: &str, deadline: Instant) -> Result<Reply, String> {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        let mut payload = Vec::with_capacity(13 + path.len());
        put_i32(&mut payload, xid);
        put_i32(&mut payload, op);
        if op != OP_CLOSE_SESSION {
            put_string(&mut payload, path)?;
            payload.push(0); // watch: false
        }
        self.send(&payload, deadline).await?;

        for _ in 0..=MAX_SKIPPED_FRAMES {
            let frame = self.receive(deadline).await?;
            let mut reader = Reader::new(&frame);
            let header = (|| Some((reader.i32()?, reader.i64()?, reader.i32()?)))();
            let Some((reply_xid, _zxid, err)) = header else {
                return Err(format!(
                    "{}: a reply of {} bytes is shorter than its header",
                    self.server,
                    frame.len()
                ));
            };
            if reply_xid == XID_NOTIFICATION || reply_xid == XID_PING {
                continue;
            }
            if reply_xid != xid {
                return Err(format!(
                    "{}: expected the reply to request {xid}, got one for {reply_xid}",
                    self.server
                ));
            }
            return Ok(if err == 0 {
                Reply::Ok(reader.rest().to_vec())
            } else {
                Reply::Err(err)
            });
        }
        Err(format!(
            "{}: more than {MAX_SKIPPED_FRAMES} notifications before a reply",
            self.server
        ))
    }

    /// Closes the session; best effort, never longer than [`CLOSE_GRACE`].
    async fn close(&mut self, deadline: Instant) {
        let deadline = deadline
            .max(Instant::now())
            .min(Instant::now() + CLOSE_GRACE);
        if let Err(e) = self.request(OP_CLOSE_SESSION, "", deadline).await {
            tracing::debug!("closing the ZooKeeper session: {e}");
        }
        let _ = timeout_at(deadline, self.stream.shutdown()).await;
    }

    async fn send(&mut self, payload: &[u8], deadline: Instant) -> Result<(), String> {
        let length = i32::try_from(payload.len())
            .map_err(|_| format!("a request of {} bytes is too large", payload.len()))?;
        let mut frame = Vec::with_capacity(4 + payload.len());
        put_i32(&mut frame, length);
        frame.extend_from_slice(payload);
        match timeout_at(deadline, self.stream.write_all(&frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{}: cannot send: {e}", self.server)),
            Err(_) => Err(format!("{}: timed out sending a request", self.server)),
        }
    }

    async fn receive(&mut self, deadline: Instant) -> Result<Vec<u8>, String> {
        let mut prefix = [0u8; 4];
        self.read_exact(&mut prefix, deadline).await?;
        let length = i32::from_be_bytes(prefix);
        let length = usize::try_from(length)
            .ok()
            .filter(|l| *l <= MAX_FRAME_BYTES)
            .ok_or_else(|| {
                format!(
                    "{}: announced a frame of {length} bytes (at most {MAX_FRAME_BYTES} accepted); is this a ZooKeeper server?",
                    self.server
                )
            })?;
        let mut frame = vec![0u8; length];
        self.read_exact(&mut frame, deadline).await?;
        Ok(frame)
    }

    async fn read_exact(&mut self, buf: &mut [u8], deadline: Instant) -> Result<(), String> {
        match timeout_at(deadline, self.stream.read_exact(buf)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(format!(
                "{}: the server closed the connection (is it a ZooKeeper server that serves clients?)",
                self.server
            )),
            Ok(Err(e)) => Err(format!("{}: cannot read: {e}", self.server)),
            Err(_) => Err(format!("{}: no answer before the deadline", self.server)),
        }
    }
}

/// ZooKeeper's name for an error code.
fn error_name(code: i32) -> &'static str {
    match code {
        -1 => "SystemError",
        -2 => "RuntimeInconsistency",
        -3 => "DataInconsistency",
        -4 => "ConnectionLoss",
        -5 => "MarshallingError",
        -6 => "Unimplemented",
        -7 => "OperationTimeout",
        -8 => "BadArguments",
        -13 => "NewConfigNoQuorum",
        -14 => "ReconfigInProgress",
        -100 => "APIError",
        ERR_NO_NODE => "NoNode",
        ERR_NO_AUTH => "NoAuth",
        -103 => "BadVersion",
        -112 => "SessionExpired",
        -114 => "InvalidACL",
        -115 => "AuthFailed",
        -118 => "SessionMoved",
        -119 => "NotReadOnly",
        -124 => "QuotaExceeded",
        -125 => "Throttled",
        _ => "an unknown error",
    }
}

fn put_i32(buf: &mut Vec<u8>, value: i32) {
    buf.extend_from_slice(&value.to_be_bytes());
}

fn put_string(buf: &mut Vec<u8>, value: &str) -> Result<(), String> {
    let length = i32::try_from(value.len()).map_err(|_| "a path is too long".to_owned())?;
    put_i32(buf, length);
    buf.extend_from_slice(value.as_bytes());
    Ok(())
}

/// ConnectRequest: protocolVersion 0, lastZxidSeen 0, timeOut, sessionId 0,
/// passwd (16 zero bytes), readOnly false.
fn connect_request() -> Vec<u8> {
    let mut buf = Vec::with_capacity(45);
    put_i32(&mut buf, 0);
    buf.extend_from_slice(&0i64.to_be_bytes());
    put_i32(&mut buf, SESSION_TIMEOUT_MS);
    buf.extend_from_slice(&0i64.to_be_bytes());
    put_i32(&mut buf, 16);
    buf.extend_from_slice(&[0u8; 16]);
    buf.push(0);
    buf
}

/// ConnectResponse: protocolVersion, timeOut, sessionId, passwd, and
/// (optionally) readOnly. A non-positive timeout means the server refused
/// the session.
fn parse_connect_response(frame: &[u8]) -> Result<(), String> {
    let mut reader = Reader::new(frame);
    let parsed = (|| {
        let _protocol_version = reader.i32()?;
        let timeout = reader.i32()?;
        let session_id = reader.i64()?;
        let _passwd = reader.buffer().ok()?;
        Some((timeout, session_id))
    })();
    match parsed {
        Some((timeout, session_id)) if timeout > 0 && session_id != 0 => Ok(()),
        Some(_) => Err("the server refused the session".to_owned()),
        None => Err(format!(
            "a connect response of {} bytes is malformed; is this a ZooKeeper server?",
            frame.len()
        )),
    }
}

/// GetChildrenResponse: vector<ustring>.
fn parse_children(body: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = Reader::new(body);
    let count = reader.i32().ok_or("truncated child count")?;
    if count == -1 {
        return Ok(Vec::new());
    }
    let count = usize::try_from(count).map_err(|_| format!("negative child count {count}"))?;
    // Each child takes at least its 4-byte length prefix.
    if count > reader.remaining() / 4 {
        return Err(format!(
            "{count} children announced in {} bytes",
            reader.remaining()
        ));
    }
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        let name = reader
            .buffer()?
            .ok_or("a null child name")
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())?;
        if name.is_empty() || name.contains('/') {
            return Err(format!("a malformed child name {:?}", truncate(&name, 64)));
        }
        children.push(name);
    }
    Ok(children)
}

/// GetDataResponse: buffer data, then the node's Stat (ignored).
fn parse_data(body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut reader = Reader::new(body);
    Ok(reader.buffer()?.map(<[u8]>::to_vec))
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn rest(&self) -> &'a [u8] {
        self.buf
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn i32(&mut self) -> Option<i32> {
        let (head, tail) = self.buf.split_first_chunk::<4>()?;
        self.buf = tail;
        Some(i32::from_be_bytes(*head))
    }

    fn i64(&mut self) -> Option<i64> {
        let (head, tail) = self.buf.split_first_chunk::<8>()?;
        self.buf = tail;
        Some(i64::from_be_bytes(*head))
    }

    /// A length-prefixed buffer; length -1 is null.
    fn buffer(&mut self) -> Result<Option<&'a [u8]>, String> {
        let length = self.i32().ok_or("truncated length")?;
        if length == -1 {
            return Ok(None);
        }
        let n = usize::try_from(length).map_err(|_| format!("negative length {length}"))?;
        self.take(n)
            .map(Some)
            .ok_or_else(|| format!("a length of {n} bytes with {} bytes left", self.buf.len()))
    }
}

// ---------------------------------------------------------------------------
// Registrations and endpoint selection.

/// One child of `/brokers/ids`: its id (if numeric) and its data, or why it
/// could not be read.
struct Registration {
    id: Option<i32>,
    data: Result<Vec<u8>, String>,
}

/// Picks each broker's endpoint for `protocol`; returns the addresses in
/// broker id order and the problems of the brokers left out.
fn select_endpoints(registrations: &[Registration], protocol: &str) -> (Vec<String>, Vec<String>) {
    let mut brokers = Vec::new();
    let mut problems = Vec::new();
    for registration in registrations {
        let outcome = match (&registration.data, registration.id) {
            (Err(problem), _) => Err(problem.clone()),
            (Ok(data), Some(id)) => BrokerInfo::parse(data)
                .map_err(|e| format!("broker {id} has a malformed registration: {e}"))
                .and_then(|info| info.endpoint_for(id, protocol)),
            (Ok(_), None) => continue,
        };
        match outcome {
            Ok(address) => brokers.push(address),
            Err(problem) => problems.push(problem),
        }
    }
    (brokers, problems)
}

fn list_problems(problems: &[String]) -> String {
    let mut text = problems
        .iter()
        .take(MAX_LISTED_PROBLEMS)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > MAX_LISTED_PROBLEMS {
        text.push_str(&format!(
            "; and {} more",
            problems.len() - MAX_LISTED_PROBLEMS
        ));
    }
    text
}

/// What discovery needs from a broker registration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct BrokerInfo {
    /// `LISTENER://host:port`, in the broker's order.
    endpoints: Vec<String>,
    /// Listener name to security protocol name, if the broker sent a map.
    protocol_map: Option<Vec<(String, String)>>,
    /// The legacy plaintext host and port (registration versions 1 to 3).
    host: Option<String>,
    port: Option<i64>,
}

impl BrokerInfo {
    /// Reads a registration's JSON.
    fn parse(data: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
        let Json::Object(fields) = Json::parse(text)? else {
            return Err("not a JSON object".to_owned());
        };
        let field = |name: &str| {
            fields
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value)
                .filter(|value| !matches!(value, Json::Null))
        };
        let endpoints = match field("endpoints") {
            None => Vec::new(),
            Some(Json::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Json::String(s) => Ok(s.clone()),
                    _ => Err("\"endpoints\" holds a non-string".to_owned()),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("\"endpoints\" is not an array".to_owned()),
        };
        let protocol_map = match field("listener_security_protocol_map") {
            None => None,
            Some(Json::Object(entries)) => Some(
                entries
                    .iter()
                    .map(|(listener, value)| match value {
                        Json::String(protocol) => Ok((listener.clone(), protocol.clone())),
                        _ => Err(format!(
                            "\"listener_security_protocol_map\" maps {:?} to a non-string",
                            truncate(listener, 64)
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(_) => return Err("\"listener_security_protocol_map\" is not an object".to_owned()),
        };
        let host = match field("host") {
            None => None,
            Some(Json::String(host)) => Some(host.clone()),
            Some(_) => return Err("\"host\" is not a string".to_owned()),
        };
        let port = match field("port") {
            None => None,
            Some(Json::Number(number)) => number.parse::<i64>().ok(),
            Some(_) => return Err("\"port\" is not a number".to_owned()),
        };
        Ok(Self {
            endpoints,
            protocol_map,
            host,
            port,
        })
    }

    /// The `host:port` of this broker's endpoint for `protocol`.
    fn endpoint_for(&self, id: i32, protocol: &str) -> Result<String, String> {
        for endpoint in &self.endpoints {
            let Some((listener, address)) = endpoint.split_once("://") else {
                continue;
            };
            let listener_protocol = match &self.protocol_map {
                Some(map) => map
                    .iter()
                    .rev()
                    .find(|(name, _)| name.eq_ignore_ascii_case(listener))
                    .map(|(_, protocol)| protocol.as_str()),
                None => Some(listener),
            };
            if listener_protocol.is_some_and(|p| p.eq_ignore_ascii_case(protocol)) {
                return parse_endpoint_address(address).ok_or_else(|| {
                    format!(
                        "broker {id} has a malformed {protocol} endpoint {:?}",
                        truncate(endpoint, 120)
                    )
                });
            }
        }
        if protocol == "PLAINTEXT" {
            let legacy = self
                .host
                .as_deref()
                .zip(
                    self.port
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p != 0),
                )
                .and_then(|(host, port)| parse_endpoint_address(&format!("{host}:{port}")));
            if let Some(address) = legacy {
                return Ok(address);
            }
        }
        let shown: Vec<&str> = self
            .endpoints
            .iter()
            .take(16)
            .map(|e| truncate(e, 120))
            .collect();
        Err(format!(
            "broker {id} has no {protocol} endpoint; its endpoints are {shown:?}{}",
            if self.endpoints.len() > shown.len() {
                " and more"
            } else {
                ""
            }
        ))
    }
}

/// Checks an endpoint's `host:port` (`[v6]:port`) and returns it in the
/// form `bootstrap.servers` takes.
fn parse_endpoint_address(address: &str) -> Option<String> {
    let (host, port) = address.rsplit_once(':')?;
    let port = parse_port(port)?;
    let valid = match host.strip_prefix('[') {
        Some(rest) => is_ipv6_literal(rest.strip_suffix(']')?),
        None => is_host_name(host),
    };
    valid.then(|| format!("{host}:{port}"))
}

/// The first `max` characters of `text` (for messages about hostile input).
fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => text.get(..end).unwrap_or(text),
        None => text,
    }
}

// ---------------------------------------------------------------------------
// A small JSON reader: enough for registrations, strict, depth-bounded.

/// A JSON value. Numbers keep their text; objects keep their order and
/// duplicate keys (lookups take the last).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses one JSON document (RFC 8259) with surrounding whitespace.
    fn parse(text: &str) -> Result<Json, String> {
        let mut parser = JsonParser {
            text,
            pos: 0,
            depth: 0,
        };
        let value = parser.value()?;
        parser.skip_whitespace();
        if parser.pos != text.len() {
            return Err(format!("unexpected data at byte {}", parser.pos));
        }
        Ok(value)
    }
}

struct JsonParser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl JsonParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn error<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.pos))
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        if self.bump() == Some(byte) {
            Ok(())
        } else {
            self.error(&format!("expected '{}'", char::from(byte)))
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        let end = self.pos + word.len();
        if self.text.as_bytes().get(self.pos..end) == Some(word.as_bytes()) {
            self.pos = end;
            Ok(value)
        } else {
            self.error("unexpected token")
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.error("unexpected character"),
            None => self.error("unexpected end"),
        }
    }

    fn nested(&mut self, parse: fn(&mut Self) -> Result<Json, String>) -> Result<Json, String> {
        if self.depth >= MAX_JSON_DEPTH {
            return self.error(&format!("nested deeper than {MAX_JSON_DEPTH}"));
        }
        self.depth += 1;
        let value = parse(self);
        self.depth -= 1;
        value
    }

    fn object(&mut self) -> Result<Json, String> {
        self.expect(b'{')?;
        let mut fields = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(fields));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return self.error("expected a key");
            }
            let key = self.string()?;
            self.skip_whitespace();
            self.expect(b':')?;
            let value = self.value()?;
            fields.push((key, value));
            self.skip_whitespace();
            match self.bump() {
                Some(b',') => {}
                Some(b'}') => return Ok(Json::Object(fields)),
                _ => return self.error("expected ',' or '}'"),
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_whitespace();
            match self.bump() {
                Some(b',') => {}
                Some(b']') => return Ok(Json::Array(items)),
                _ => return self.error("expected ',' or ']'"),
            }
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.bump() {
            Some(b'0') => {}
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.error("malformed number"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return self.error("malformed number");
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return self.error("malformed number");
            }
            self.digits();
        }
        match self.text.get(start..self.pos) {
            Some(number) => Ok(Json::Number(number.to_owned())),
            None => self.error("malformed number"),
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            // Copy the run up to the next quote, backslash or control byte.
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|b| b != b'"' && b != b'\\' && b >= 0x20)
            {
                self.pos += 1;
            }
            // Both ends sit on ASCII bytes or the end, so they are char
            // boundaries of the (valid UTF-8) text.
            match self.text.get(start..self.pos) {
                Some(run) => out.push_str(run),
                None => return self.error("malformed string"),
            }
            match self.bump() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => {
                    let escaped = match self.bump() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => return self.error("invalid escape"),
                    };
                    out.push(escaped);
                }
                Some(_) => return self.error("control character in a string"),
                None => return self.error("unterminated string"),
            }
        }
    }

    /// After `\u`: four hex digits, a surrogate pair as two escapes.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.bump() != Some(b'\\') || self.bump() != Some(b'u') {
                    return self.error("unpaired surrogate");
                }
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return self.error("unpaired surrogate");
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return self.error("unpaired surrogate"),
            _ => first,
        };
        match char::from_u32(code) {
            Some(c) => Ok(c),
            None => self.error("invalid code point"),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut value = 0u32;
        for _ in 0..4 {
            let digit = match self.bump() {
                Some(b) => char::from(b).to_digit(16),
                None => None,
            };
            match digit {
                Some(d) => value = value * 16 + d,
                None => return self.error("invalid \\u escape"),
            }
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(connect: &str) -> Vec<String> {
        ConnectString::parse(connect).unwrap().servers()
    }

    #[test]
    fn connect_string_forms() {
        let parsed = ConnectString::parse("zk0:2181,zk1:2182/kafka/prod").unwrap();
        assert_eq!(parsed.servers(), ["zk0:2181", "zk1:2182"]);
        assert_eq!(parsed.chroot(), Some("/kafka/prod"));

        assert_eq!(servers("zk0"), ["zk0:2181"]);
        assert_eq!(servers(" zk0:1 , zk1 ,"), ["zk0:1", "zk1:2181"]);
        assert_eq!(
            servers("[::1]:2000,[fe80::1%eth0]"),
            ["[::1]:2000", "[fe80::1%eth0]:2181"]
        );
        assert_eq!(ConnectString::parse("zk:1/").unwrap().chroot(), None);
        assert_eq!(ConnectString::parse("zk:1").unwrap().chroot(), None);
        assert_eq!(
            ConnectString::parse("zk:1/kafka/").unwrap().chroot(),
            Some("/kafka")
        );
        let v6 = ConnectString::parse("[::1]:2000/c").unwrap();
        assert_eq!(v6.servers[0].host, "::1");
        assert_eq!(v6.chroot(), Some("/c"));
    }

    #[test]
    fn connect_string_hostile() {
        for bad in [
            "",
            "   ",
            ",,,",
            "/kafka",
            "zk:",
            "zk:0",
            "zk:65536",
            "zk:99999999999999999999",
            "zk:-1",
            "zk:+1",
            "zk:12a",
            "::1:2181",
            "[::1",
            "[]:1",
            "[::1]2181",
            "[::1]:",
            "[zz::1]:1",
            "zk zk:1",
            "zk\n:1",
            "zk:1//kafka",
            "zk:1/kafka//x",
            "zk:1/./x",
            "zk:1/x/..",
            "zk:1/x y",
            "zk:1/x\u{0}",
            "héllo:1",
            &format!("zk:1/{}", "a".repeat(2000)),
            &"a:1,".repeat(MAX_SERVERS + 1),
            &format!("{}:1", "a".repeat(300)),
        ] {
            let error = ConnectString::parse(bad).unwrap_err();
            let PoolError::ZooKeeper { connect, reason } = &error else {
                panic!("{bad:?}: {error:?}");
            };
            assert_eq!(connect, bad);
            assert!(!reason.is_empty());
            // Messages about hostile input stay short.
            assert!(error.to_string().len() < 600 + bad.len(), "{error}");
        }
    }

    #[test]
    fn protocol_names() {
        assert_eq!(protocol_name("sasl_ssl"), Ok("SASL_SSL"));
        assert_eq!(protocol_name(" PLAINTEXT "), Ok("PLAINTEXT"));
        assert!(protocol_name("TLS").unwrap_err().contains("SASL_PLAINTEXT"));
        assert!(protocol_name("").is_err());
    }

    #[test]
    fn json_reader() {
        let value = Json::parse(
            r#" {"a": [1, -2.5e+3, 0, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"],
                 "b": {"c": {}}, "d": [], "a": "last"} "#,
        )
        .unwrap();
        let Json::Object(fields) = value else {
            panic!()
        };
        assert_eq!(fields.len(), 4);
        assert_eq!(
            fields[0].1,
            Json::Array(vec![
                Json::Number("1".into()),
                Json::Number("-2.5e+3".into()),
                Json::Number("0".into()),
                Json::Bool(true),
                Json::Bool(false),
                Json::Null,
                Json::String("x\"\\/\u{8}\u{c}\n\r\té😀".into()),
            ])
        );
        assert_eq!(
            Json::parse("\"héllo\"").unwrap(),
            Json::String("héllo".into())
        );
        assert_eq!(Json::parse("-0").unwrap(), Json::Number("-0".into()));
    }

    #[test]
    fn json_reader_hostile() {
        let deep_ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(Json::parse(&deep_ok).is_ok());
        let too_deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH + 1),
            "]".repeat(MAX_JSON_DEPTH + 1)
        );
        assert!(Json::parse(&too_deep).unwrap_err().contains("deeper"));
        // Far deeper than the stack could take if the depth were unbounded.
        assert!(Json::parse(&"[".repeat(1_000_000)).is_err());
        assert!(Json::parse(&"{\"a\":".repeat(1_000_000)).is_err());
        for bad in [
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\":1 \"b\":2}",
            "\"unterminated",
            "\"bad \\x escape\"",
            "\"\\u12\"",
            "\"\\u12g4\"",
            "\"\\ud800\"",
            "\"\\ud800\\u0041\"",
            "\"\\udc00\"",
            "\"tab\there\"",
            "\"nl\nhere\"",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "tru",
            "nul",
            "truex",
            "[1] [2]",
            "{} x",
            "\u{feff}{}",
            "NaN",
            "Infinity",
        ] {
            assert!(Json::parse(bad).is_err(), "{bad:?} parsed");
        }
        // Numbers too large for i64 are kept as text, not an error.
        assert_eq!(
            Json::parse("123456789012345678901234567890").unwrap(),
            Json::Number("123456789012345678901234567890".into())
        );
    }

    fn registration(json: &str) -> BrokerInfo {
        BrokerInfo::parse(json.as_bytes()).unwrap()
    }

    const V4: &str = r#"{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT","SSL":"SSL"},"endpoints":["PLAINTEXT://127.0.0.1:9092","SSL://127.0.0.1:9093"],"jmx_port":-1,"host":"127.0.0.1","timestamp":"1700000000000","port":9092,"version":4}"#;

    #[test]
    fn endpoint_selection() {
        let info = registration(V4);
        assert_eq!(info.endpoint_for(1, "PLAINTEXT").unwrap(), "127.0.0.1:9092");
        assert_eq!(info.endpoint_for(1, "SSL").unwrap(), "127.0.0.1:9093");
        let error = info.endpoint_for(1, "SASL_SSL").unwrap_err();
        assert_eq!(
            error,
            r#"broker 1 has no SASL_SSL endpoint; its endpoints are ["PLAINTEXT://127.0.0.1:9092", "SSL://127.0.0.1:9093"]"#
        );

        // Custom listener names map through the protocol map.
        let custom = registration(
            r#"{"listener_security_protocol_map":{"INTERNAL":"SASL_PLAINTEXT","EXTERNAL":"SASL_SSL","REPLICATION":"PLAINTEXT"},
                "endpoints":["INTERNAL://10.0.0.1:9092","EXTERNAL://[2001:db8::1]:9094","REPLICATION://b1.example:9093"],
                "features":{"metadata.version":{"min_version":1,"max_version":7}},"rack":"az1",
                "jmx_port":-1,"host":null,"port":-1,"timestamp":"1","version":5}"#,
        );
        assert_eq!(
            custom.endpoint_for(7, "sasl_plaintext").unwrap(),
            "10.0.0.1:9092"
        );
        assert_eq!(
            custom.endpoint_for(7, "SASL_SSL").unwrap(),
            "[2001:db8::1]:9094"
        );
        assert_eq!(
            custom.endpoint_for(7, "PLAINTEXT").unwrap(),
            "b1.example:9093"
        );
        assert!(
            custom
                .endpoint_for(7, "SSL")
                .unwrap_err()
                .starts_with("broker 7 has no SSL endpoint")
        );

        // Without a map, the listener name is the protocol.
        let no_map = registration(r#"{"endpoints":["SSL://h:1","PLAINTEXT://h:2"]}"#);
        assert_eq!(no_map.endpoint_for(1, "SSL").unwrap(), "h:1");
        assert_eq!(no_map.endpoint_for(1, "PLAINTEXT").unwrap(), "h:2");

        // Legacy registrations (version 1) have only host and port.
        let legacy =
            registration(r#"{"jmx_port":-1,"timestamp":"1","host":"old","version":1,"port":9092}"#);
        assert_eq!(legacy.endpoint_for(3, "PLAINTEXT").unwrap(), "old:9092");
        assert!(legacy.endpoint_for(3, "SSL").is_err());
        // The legacy fields of a broker with no plaintext listener are null/-1.
        let tls_only = registration(
            r#"{"listener_security_protocol_map":{"SSL":"SSL"},"endpoints":["SSL://h:9093"],"host":null,"port":-1,"version":4}"#,
        );
        assert!(
            tls_only
                .endpoint_for(2, "PLAINTEXT")
                .unwrap_err()
                .contains("no PLAINTEXT endpoint")
        );
    }

    #[test]
    fn hostile_registrations() {
        for bad in [
            "[]",
            "\"x\"",
            "{\"endpoints\":\"PLAINTEXT://h:1\"}",
            "{\"endpoints\":[1]}",
            "{\"listener_security_protocol_map\":[]}",
            "{\"listener_security_protocol_map\":{\"A\":1}}",
            "{\"host\":1}",
            "{\"port\":\"1\"}",
        ] {
            assert!(BrokerInfo::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(
            BrokerInfo::parse(b"{\"host\":\"\xff\"}")
                .unwrap_err()
                .contains("UTF-8")
        );

        // Malformed endpoints are reported, never returned.
        for endpoint in [
            "PLAINTEXT://",
            "PLAINTEXT://:9092",
            "PLAINTEXT://h",
            "PLAINTEXT://h:0",
            "PLAINTEXT://h:70000",
            "PLAINTEXT://h:1/x",
            "PLAINTEXT://h h:1",
            "PLAINTEXT://h,i:1",
            "PLAINTEXT://[::1:1",
            "PLAINTEXT://[]:1",
        ] {
            let info = registration(&format!("{{\"endpoints\":[\"{endpoint}\"]}}"));
            let error = info.endpoint_for(4, "PLAINTEXT").unwrap_err();
            assert!(
                error.contains("malformed PLAINTEXT endpoint"),
                "{endpoint}: {error}"
            );
        }
        // Endpoints without "://" are ignored; huge ones are cut in messages.
        let long = format!(
            "{{\"endpoints\":[\"garbage\",\"SSL://{}:1\"]}}",
            "h".repeat(100_000)
        );
        let error = registration(&long)
            .endpoint_for(4, "PLAINTEXT")
            .unwrap_err();
        assert!(error.len() < 400, "{error}");
        // Legacy fields out of range are not used.
        for legacy in [
            r#"{"host":"h","port":0}"#,
            r#"{"host":"h","port":65536}"#,
            r#"{"host":"","port":1}"#,
            r#"{"host":"h","port":1.5}"#,
        ] {
            assert!(
                registration(legacy).endpoint_for(1, "PLAINTEXT").is_err(),
                "{legacy}"
            );
        }
    }

    #[test]
    fn selection_over_brokers() {
        let regs = vec![
            Registration {
                id: None,
                data: Err("/brokers/ids/x is not a broker id".into()),
            },
            Registration {
                id: Some(1),
                data: Ok(V4.as_bytes().to_vec()),
            },
            Registration {
                id: Some(2),
                data: Ok(b"{".to_vec()),
            },
            Registration {
                id: Some(3),
                data: Ok(br#"{"endpoints":["PLAINTEXT://c:3"]}"#.to_vec()),
            },
        ];
        let (brokers, problems) = select_endpoints(&regs, "PLAINTEXT");
        assert_eq!(brokers, ["127.0.0.1:9092", "c:3"]);
        assert_eq!(problems.len(), 2);
        assert!(problems[1].starts_with("broker 2 has a malformed registration"));
        let (brokers, problems) = select_endpoints(&regs, "SSL");
        assert_eq!(brokers, ["127.0.0.1:9093"]);
        assert_eq!(problems.len(), 3);
        let many: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
        assert!(list_problems(&many).ends_with("; and 12 more"));
    }

    #[test]
    fn wire_decoding_hostile() {
        // getChildren: counts and lengths beyond the body, negatives, nulls.
        assert_eq!(
            parse_children(&(-1i32).to_be_bytes()).unwrap(),
            Vec::<String>::new()
        );
        assert!(parse_children(&[]).is_err());
        assert!(parse_children(&(-2i32).to_be_bytes()).is_err());
        assert!(parse_children(&i32::MAX.to_be_bytes()).is_err());
        let mut body = 1i32.to_be_bytes().to_vec();
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(parse_children(&body).is_err());
        let mut body = 1i32.to_be_bytes().to_vec();
        body.extend_from_slice(&(-1i32).to_be_bytes());
        assert!(parse_children(&body).is_err());
        let mut body = 2i32.to_be_bytes().to_vec();
        for name in ["1", "a/b"] {
            body.extend_from_slice(&(name.len() as i32).to_be_bytes());
            body.extend_from_slice(name.as_bytes());
        }
        assert!(parse_children(&body).is_err());
        let mut body = 2i32.to_be_bytes().to_vec();
        for name in ["2", "10"] {
            body.extend_from_slice(&(name.len() as i32).to_be_bytes());
            body.extend_from_slice(name.as_bytes());
        }
        assert_eq!(parse_children(&body).unwrap(), ["2", "10"]);

        // getData.
        assert_eq!(parse_data(&(-1i32).to_be_bytes()).unwrap(), None);
        assert!(parse_data(&(-5i32).to_be_bytes()).is_err());
        assert!(parse_data(&5i32.to_be_bytes()).is_err());
        let mut body = 2i32.to_be_bytes().to_vec();
        body.extend_from_slice(b"{}");
        body.extend_from_slice(&[0u8; 68]);
        assert_eq!(parse_data(&body).unwrap(), Some(b"{}".to_vec()));

        // ConnectResponse.
        assert!(parse_connect_response(&[]).is_err());
        assert!(parse_connect_response(&[0; 15]).is_err());
        let mut ok = Vec::new();
        ok.extend_from_slice(&0i32.to_be_bytes());
        ok.extend_from_slice(&10_000i32.to_be_bytes());
        ok.extend_from_slice(&42i64.to_be_bytes());
        ok.extend_from_slice(&16i32.to_be_bytes());
        ok.extend_from_slice(&[7; 16]);
        assert!(parse_connect_response(&ok).is_ok());
        ok.push(0);
        assert!(parse_connect_response(&ok).is_ok());
        let mut refused = ok.clone();
        refused[4..8].copy_from_slice(&0i32.to_be_bytes());
        assert!(
            parse_connect_response(&refused)
                .unwrap_err()
                .contains("refused")
        );
        let mut huge = ok[..16].to_vec();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(parse_connect_response(&huge).is_err());

        assert_eq!(connect_request().len(), 45);
    }

    /// A fake server that answers every connection with `reply` and then
    /// holds the socket open.
    async fn fake_server(reply: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    let _ = socket.read(&mut buf).await;
                    let _ = socket.write_all(&reply).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        address
    }

    #[tokio::test]
    async fn hostile_servers() {
        // A frame length far beyond the cap is refused before allocating.
        let address = fake_server(i32::MAX.to_be_bytes().to_vec()).await;
        let error = discover_brokers(&address, "PLAINTEXT", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("is this a ZooKeeper server"),
            "{error}"
        );
        assert!(error.to_string().contains(&address), "{error}");

        // An unbounded timeout is accepted (no overflow).
        let error = discover_brokers(&address, "PLAINTEXT", Duration::MAX)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("is this a ZooKeeper server"),
            "{error}"
        );

        // A negative length likewise.
        let address = fake_server((-7i32).to_be_bytes().to_vec()).await;
        let error = discover_brokers(&address, "PLAINTEXT", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("-7 bytes"), "{error}");

        // A server that never answers runs into the deadline, not forever.
        let address = fake_server(Vec::new()).await;
        let started = std::time::Instant::now();
        let error = discover_brokers(&address, "PLAINTEXT", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(
            error.to_string().contains("no answer before the deadline"),
            "{error}"
        );

        // Unknown protocol names fail before any connection.
        let error = discover_brokers(&address, "KERBEROS", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("unknown security protocol"),
            "{error}"
        );
    }
}
