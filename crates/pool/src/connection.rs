//! One pipelined connection to one broker.
//!
//! Many requests are in flight at once, matched to their responses by
//! correlation id. Two tasks own the socket: the writer takes whole frames
//! from a bounded queue and writes them with vectored writes (so the
//! zero-copy Produce chunks reach the socket uncopied, and a cancelled
//! request can never leave half a frame behind), and the reader cuts frames
//! and hands each to the waiter registered under its correlation id. When
//! either side fails, the connection is poisoned: every waiter, present and
//! future, gets the same [`PoolError::ConnectionLost`], and the owner
//! ([`crate::Cluster`]) opens a new connection for later requests.
//!
//! Opening a connection runs the handshake on the bare socket first: TCP
//! (and TLS), ApiVersions and version negotiation, then SASL if configured.

use std::collections::HashMap;
use std::io::IoSlice;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kmirror_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kmirror_protocol::kafka_protocol::protocol::StrBytes;
use kmirror_protocol::messages::KafkaRequest;
use kmirror_protocol::messages::api_versions::UNSUPPORTED_VERSION;
use kmirror_protocol::{FrameDecoder, NegotiatedVersions, ProtocolError, ResponseError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{ClientConfig, SecurityProtocol};
use crate::error::PoolError;
use crate::frame_buffers::{FrameBuffers, LARGE_FRAME};
use crate::sasl::SaslSession;

/// What to check when the broker refuses the credentials.
const CREDENTIALS_HINT: &str =
    "check the username and password (sasl.jaas.config, or sasl.username and sasl.password)";

/// Frames waiting for the writer; senders wait when it is full.
const OUTGOING_QUEUE: usize = 256;
/// Smallest read buffer reservation; large reads keep syscalls few.
const READ_RESERVE: usize = 256 * 1024;
/// Slices handed to one vectored write.
const MAX_IOVECS: usize = 64;

/// What a waiter receives: the response body, or why there is none.
type Reply = Result<Bytes, PoolError>;

struct Waiter {
    api: ApiKey,
    version: i16,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Pending {
    waiters: HashMap<i32, Waiter>,
    poisoned: Option<Arc<PoolError>>,
}

/// State shared by the connection handle and its two tasks.
struct Shared {
    broker: String,
    pending: Mutex<Pending>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation is a single insert/remove), so recover from poison.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lost(&self, cause: &Arc<PoolError>) -> PoolError {
        PoolError::ConnectionLost {
            broker: self.broker.clone(),
            cause: cause.clone(),
        }
    }

    fn register(&self, correlation_id: i32, waiter: Waiter) -> Result<(), PoolError> {
        let mut pending = self.lock();
        if let Some(cause) = &pending.poisoned {
            return Err(self.lost(cause));
        }
        pending.waiters.insert(correlation_id, waiter);
        Ok(())
    }

    fn take(&self, correlation_id: i32) -> Option<Waiter> {
        self.lock().waiters.remove(&correlation_id)
    }

    fn poisoned(&self) -> Option<Arc<PoolError>> {
        self.lock().poisoned.clone()
    }

    /// Fails every waiter with the same error and refuses new requests.
    fn poison(&self, cause: PoolError) {
        let (cause, waiters) = {
            let mut pending = self.lock();
            if pending.poisoned.is_some() {
                return;
            }
            let cause = Arc::new(cause);
            pending.poisoned = Some(cause.clone());
            (cause, std::mem::take(&mut pending.waiters))
        };
        tracing::debug!(broker = %self.broker, error = %cause, in_flight = waiters.len(), "connection poisoned");
        for (_, waiter) in waiters {
            let _ = waiter.reply.send(Err(self.lost(&cause)));
        }
    }
}

/// A pipelined connection to one broker (see the module documentation).
pub struct BrokerConnection {
    shared: Arc<Shared>,
    versions: NegotiatedVersions,
    client_id: Option<String>,
    request_timeout: Duration,
    next_correlation_id: AtomicI32,
    outgoing: mpsc::Sender<Vec<Bytes>>,
    tasks: [JoinHandle<()>; 2],
}

impl std::fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConnection")
            .field("broker", &self.shared.broker)
            .field("poisoned", &self.shared.poisoned().is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for BrokerConnection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.shared.poison(PoolError::Shutdown);
    }
}

impl BrokerConnection {
    /// Opens a connection to `broker` (`host:port`) and runs the handshake.
    pub async fn connect(broker: &str, config: &ClientConfig) -> Result<Self, PoolError> {
        let tls = match config.security_protocol {
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
                Some(crate::tls::connector(&config.tls)?)
            }
            SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext => None,
        };
        Self::connect_with(broker, config, tls.as_ref()).await
    }

    /// As [`BrokerConnection::connect`], with a TLS connector built once by
    /// the caller (required when the protocol is SSL or SASL_SSL).
    pub(crate) async fn connect_with(
        broker: &str,
        config: &ClientConfig,
        tls: Option<&tokio_rustls::TlsConnector>,
    ) -> Result<Self, PoolError> {
        if let crate::dialer::Dialer::Custom(transport) = &config.dialer {
            return Self::connect_over(broker, config, transport.as_ref()).await;
        }
        let tcp = tokio::time::timeout(
            config.connection_setup_timeout,
            tcp_connect(broker, config),
        )
        .await
        .map_err(|_| PoolError::Io {
            broker: broker.to_owned(),
            kind: std::io::ErrorKind::TimedOut,
            message: format!(
                "TCP connect did not complete within {:?} (socket.connection.setup.timeout.ms)",
                config.connection_setup_timeout
            ),
        })??;
        let deadline = Instant::now() + config.request_timeout;
        match config.security_protocol {
            SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext => {
                let mut stream = tcp;
                let versions = handshake(&mut stream, broker, config, deadline).await?;
                let (rd, wr) = stream.into_split();
                Ok(Self::spawn(broker, config, versions, rd, wr))
            }
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
                let connector = tls.ok_or_else(|| PoolError::Tls {
                    broker: broker.to_owned(),
                    reason: "no TLS connector was set up for an SSL listener".into(),
                })?;
                let host = host_of(broker);
                let name = crate::tls::server_name(host).map_err(|reason| PoolError::Tls {
                    broker: broker.to_owned(),
                    reason,
                })?;
                let mut stream = tokio::time::timeout_at(deadline, connector.connect(name, tcp))
                    .await
                    .map_err(|_| PoolError::Tls {
                        broker: broker.to_owned(),
                        reason: "the TLS handshake timed out (is the broker's listener TLS?)"
                            .into(),
                    })?
                    .map_err(|e| tls_error(broker, &e))?;
                let versions = handshake(&mut stream, broker, config, deadline).await?;
                let (rd, wr) = tokio::io::split(stream);
                Ok(Self::spawn(broker, config, versions, rd, wr))
            }
        }
    }

    /// Opens a connection over a caller's [`Transport`] (plaintext only).
    async fn connect_over(
        broker: &str,
        config: &ClientConfig,
        transport: &dyn crate::dialer::Transport,
    ) -> Result<Self, PoolError> {
        if matches!(
            config.security_protocol,
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
        ) {
            return Err(PoolError::Tls {
                broker: broker.to_owned(),
                reason: "TLS needs a TCP socket; a custom transport carries plaintext only".into(),
            });
        }
        let mut stream =
            tokio::time::timeout(config.connection_setup_timeout, transport.dial(broker))
                .await
                .map_err(|_| PoolError::Io {
                    broker: broker.to_owned(),
                    kind: std::io::ErrorKind::TimedOut,
                    message: format!(
                        "connect did not complete within {:?} (socket.connection.setup.timeout.ms)",
                        config.connection_setup_timeout
                    ),
                })?
                .map_err(|e| PoolError::io(broker, &e))?;
        let deadline = Instant::now() + config.request_timeout;
        let versions = handshake(&mut stream, broker, config, deadline).await?;
        let (rd, wr) = tokio::io::split(stream);
        Ok(Self::spawn(broker, config, versions, rd, wr))
    }

    fn spawn<R, W>(
        broker: &str,
        config: &ClientConfig,
        versions: NegotiatedVersions,
        rd: R,
        wr: W,
    ) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(Shared {
            broker: broker.to_owned(),
            pending: Mutex::new(Pending::default()),
        });
        let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
        // `max_response_size`: a larger frame breaks the connection with
        // FrameTooLarge before anything is reserved for it.
        let decoder = FrameDecoder::new(config.max_response_size);
        let reader = tokio::spawn(read_loop(rd, shared.clone(), decoder));
        let writer = tokio::spawn(write_loop(wr, rx, shared.clone()));
        Self {
            shared,
            versions,
            client_id: Some(config.client_id.clone()),
            request_timeout: config.request_timeout,
            next_correlation_id: AtomicI32::new(1),
            outgoing: tx,
            tasks: [reader, writer],
        }
    }

    /// The broker's `host:port`.
    pub fn broker(&self) -> &str {
        &self.shared.broker
    }

    /// The versions negotiated with this broker.
    pub fn versions(&self) -> &NegotiatedVersions {
        &self.versions
    }

    /// Whether the connection broke; a broken connection fails every request.
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned().is_some()
    }

    /// `request.timeout.ms`: how long [`BrokerConnection::send`] waits.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Number of requests waiting for a response.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().waiters.len()
    }

    /// Sends `request` at the negotiated version and waits for its response
    /// (at most `request.timeout.ms`). Dropping the returned future at any
    /// point is safe: the frame is either written whole or not at all, and a
    /// late response is discarded.
    pub async fn send<R: KafkaRequest>(&self, request: &R) -> Result<R::Response, PoolError> {
        self.submit(request).await?.response().await
    }

    /// [`BrokerConnection::send`] waiting up to `timeout` instead of
    /// `request.timeout.ms`: for a request the broker may hold longer, as
    /// a group coordinator holds a JoinGroup up to the rebalance timeout
    /// (Java's consumer waits that long plus 5 s).
    pub async fn send_with_timeout<R: KafkaRequest>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, PoolError> {
        self.submit_with_timeout(request, timeout)
            .await?
            .response()
            .await
    }

    /// Queues `request` for writing and returns once it is queued, with a
    /// handle to await its response. Requests submitted one after the other
    /// from one task are written in that order, which is what an idempotent
    /// producer with several requests in flight per partition needs; the
    /// responses may then be awaited concurrently. Dropping the handle
    /// discards the response.
    pub async fn submit<R: KafkaRequest>(&self, request: &R) -> Result<InFlight<R>, PoolError> {
        self.submit_with_timeout(request, self.request_timeout)
            .await
    }

    async fn submit_with_timeout<R: KafkaRequest>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<InFlight<R>, PoolError> {
        let broker = self.broker();
        let version = self
            .versions
            .version(R::API)
            .map_err(|e| PoolError::protocol(broker, e))?;
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let frame = request
            .encode_frame(version, correlation_id, self.client_id.as_deref())
            .map_err(|e| PoolError::protocol(broker, e))?;
        let deadline = Instant::now() + timeout;
        let mut in_flight = InFlight {
            shared: self.shared.clone(),
            api: R::API,
            version,
            correlation_id,
            deadline,
            timeout,
            reply: None,
            without_reply: request.response_without_reply(),
            armed: false,
        };
        if in_flight.without_reply.is_none() {
            let (reply, response) = oneshot::channel();
            self.shared.register(
                correlation_id,
                Waiter {
                    api: R::API,
                    version,
                    reply,
                },
            )?;
            in_flight.reply = Some(response);
            in_flight.armed = true;
        }
        // On failure `in_flight` drops here and forgets its waiter.
        self.enqueue(frame, R::API, deadline).await?;
        Ok(in_flight)
    }

    async fn enqueue(
        &self,
        frame: Vec<Bytes>,
        api: ApiKey,
        deadline: Instant,
    ) -> Result<(), PoolError> {
        match tokio::time::timeout_at(deadline, self.outgoing.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(lost_error(&self.shared)),
            Err(_) => Err(PoolError::Timeout {
                broker: self.broker().to_owned(),
                api,
                after: self.request_timeout,
            }),
        }
    }
}

fn lost_error(shared: &Shared) -> PoolError {
    match shared.poisoned() {
        Some(cause) => shared.lost(&cause),
        None => PoolError::Shutdown,
    }
}

/// A request written (or queued to be written) on a connection, whose
/// response has not been awaited yet; see [`BrokerConnection::submit`].
pub struct InFlight<R: KafkaRequest> {
    shared: Arc<Shared>,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    deadline: Instant,
    timeout: Duration,
    reply: Option<oneshot::Receiver<Reply>>,
    without_reply: Option<R::Response>,
    /// Whether dropping must forget the waiter.
    armed: bool,
}

impl<R: KafkaRequest> std::fmt::Debug for InFlight<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("broker", &self.shared.broker)
            .field("api", &self.api)
            .field("correlation_id", &self.correlation_id)
            .finish_non_exhaustive()
    }
}

impl<R: KafkaRequest> InFlight<R> {
    /// Waits for the response (until `request.timeout.ms` after the
    /// request was submitted) and decodes it.
    pub async fn response(mut self) -> Result<R::Response, PoolError> {
        if let Some(response) = self.without_reply.take() {
            return Ok(response);
        }
        let Some(reply) = self.reply.take() else {
            return Err(PoolError::Shutdown);
        };
        let result = match tokio::time::timeout_at(self.deadline, reply).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_dropped)) => Err(lost_error(&self.shared)),
            Err(_) => Err(PoolError::Timeout {
                broker: self.shared.broker.clone(),
                api: self.api,
                after: self.timeout,
            }),
        };
        // Completed or failed through the waiter: nothing left to forget,
        // except on timeout, where the waiter must go.
        self.armed = matches!(result, Err(PoolError::Timeout { .. }));
        let body = result?;
        R::decode_response(body, self.version)
            .map_err(|e| PoolError::protocol(&self.shared.broker, e))
    }
}

impl<R: KafkaRequest> Drop for InFlight<R> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.take(self.correlation_id);
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut rd: R, shared: Arc<Shared>, decoder: FrameDecoder) {
    let mut buf = BytesMut::with_capacity(READ_RESERVE);
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => dispatch(&shared, frame),
                Ok(None) => break,
                Err(e) => {
                    shared.poison(PoolError::protocol(&shared.broker, e));
                    return;
                }
            }
        }
        let announced = decoder.announced_size(&buf).ok().flatten().unwrap_or(0);
        if announced >= LARGE_FRAME {
            // A large frame (a Fetch response) goes into a recycled buffer
            // of its size, read straight from the socket.
            let pool = FrameBuffers::global();
            let mut body = pool.take(announced);
            buf.advance(4);
            body.extend_from_slice(&buf.split_to(buf.len().min(announced)));
            while body.len() < announced {
                let remaining = announced - body.len();
                let read = rd.read_buf(&mut (&mut body).limit(remaining)).await;
                if !read_went_on(&shared, read) {
                    return;
                }
            }
            dispatch(&shared, pool.freeze(body));
            continue;
        }
        // Reserve room for the whole frame being received, at least a large
        // chunk, so big Fetch responses arrive in few reads.
        let want = (announced + 4).saturating_sub(buf.len()).max(READ_RESERVE);
        buf.reserve(want);
        if !read_went_on(&shared, rd.read_buf(&mut buf).await) {
            return;
        }
    }
}

/// Whether a socket read brought bytes; on end of stream or an error the
/// connection is poisoned and the reader must stop.
fn read_went_on(shared: &Shared, read: std::io::Result<usize>) -> bool {
    match read {
        Ok(0) => {
            shared.poison(PoolError::Io {
                broker: shared.broker.clone(),
                kind: std::io::ErrorKind::UnexpectedEof,
                message: "the broker closed the connection".into(),
            });
            false
        }
        Ok(_) => true,
        Err(e) => {
            shared.poison(PoolError::io(&shared.broker, &e));
            false
        }
    }
}

fn dispatch(shared: &Shared, frame: Bytes) {
    let Some(correlation_id) = kmirror_protocol::header::peek_correlation_id(&frame) else {
        shared.poison(PoolError::protocol(
            &shared.broker,
            ProtocolError::Malformed {
                api: ApiKey::ApiVersions,
                version: -1,
                reason: format!(
                    "response frame of {} bytes has no correlation id",
                    frame.len()
                ),
            },
        ));
        return;
    };
    let Some(waiter) = shared.take(correlation_id) else {
        tracing::debug!(broker = %shared.broker, correlation_id, "response to a request that timed out or was cancelled");
        return;
    };
    let reply = kmirror_protocol::header::decode_response_header(frame, waiter.api, waiter.version)
        .map(|(_, body)| body)
        .map_err(|e| PoolError::protocol(&shared.broker, e));
    let _ = waiter.reply.send(reply);
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Vec<Bytes>>,
    shared: Arc<Shared>,
) {
    let mut batch: Vec<Vec<Bytes>> = Vec::new();
    while let Some(frame) = rx.recv().await {
        batch.push(frame);
        // Coalesce whatever else is queued into the same writes.
        while batch.len() < MAX_IOVECS {
            match rx.try_recv() {
                Ok(frame) => batch.push(frame),
                Err(_) => break,
            }
        }
        if let Err(e) = write_frames(&mut wr, &batch).await {
            shared.poison(PoolError::io(&shared.broker, &e));
            return;
        }
        batch.clear();
    }
    let _ = wr.shutdown().await;
}

/// Writes every chunk of every frame with vectored writes, resuming after
/// partial writes.
async fn write_frames<W: AsyncWrite + Unpin>(
    wr: &mut W,
    frames: &[Vec<Bytes>],
) -> std::io::Result<()> {
    let mut chunks = frames.iter().flatten().filter(|c| !c.is_empty());
    // The current chunk and how much of it is written.
    let mut head: Option<(&Bytes, usize)> = chunks.next().map(|c| (c, 0));
    let mut rest: Vec<&Bytes> = Vec::with_capacity(MAX_IOVECS);
    while let Some((first, written)) = head {
        rest.clear();
        rest.extend(chunks.clone().take(MAX_IOVECS - 1));
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(rest.len() + 1);
        slices.push(IoSlice::new(first.get(written..).unwrap_or_default()));
        slices.extend(rest.iter().map(|c| IoSlice::new(c)));
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        // Advance over what was written.
        let first_left = first.len() - written;
        if n < first_left {
            head = Some((first, written + n));
            continue;
        }
        n -= first_left;
        head = None;
        for c in chunks.by_ref() {
            if n < c.len() {
                head = Some((c, n));
                break;
            }
            n -= c.len();
        }
        if head.is_none() {
            // Either everything is written, or the next chunk starts fresh.
            head = chunks.next().map(|c| (c, 0));
        }
    }
    wr.flush().await
}

async fn tcp_connect(
    broker: &str,
    config: &ClientConfig,
) -> Result<tokio::net::TcpStream, PoolError> {
    let addrs = tokio::net::lookup_host(broker)
        .await
        .map_err(|e| PoolError::Io {
            broker: broker.to_owned(),
            kind: e.kind(),
            message: format!("cannot resolve {broker}: {e}"),
        })?;
    let mut last: Option<PoolError> = None;
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| PoolError::io(broker, &e))?;
        if let Some(n) = config.send_buffer_bytes {
            let _ = socket.set_send_buffer_size(n);
        }
        if let Some(n) = config.receive_buffer_bytes {
            let _ = socket.set_recv_buffer_size(n);
        }
        match socket.connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(PoolError::io(broker, &e)),
        }
    }
    Err(last.unwrap_or_else(|| PoolError::Io {
        broker: broker.to_owned(),
        kind: std::io::ErrorKind::NotFound,
        message: format!("{broker} resolves to no address"),
    }))
}

fn host_of(broker: &str) -> &str {
    broker.rsplit_once(':').map_or(broker, |(host, _)| host)
}

fn tls_error(broker: &str, e: &std::io::Error) -> PoolError {
    use rustls::CertificateError as C;
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let hint = match rustls_error {
        Some(rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        )) => {
            "; the certificate does not name this host: connect by a name it contains, or set \
             ssl.endpoint.identification.algorithm= (empty) to skip hostname verification"
        }
        Some(rustls::Error::InvalidCertificate(
            C::UnknownIssuer | C::BadSignature | C::BadEncoding,
        )) => {
            "; the broker's certificate is not signed by a trusted CA: set ssl.ca.location (or \
             ssl.truststore.location with ssl.truststore.type=PEM) to the CA that signed it"
        }
        Some(rustls::Error::InvalidCertificate(
            C::Expired | C::NotValidYet | C::ExpiredContext { .. },
        )) => {
            "; the broker's certificate is outside its validity period: check the broker's \
             certificate and this host's clock"
        }
        Some(rustls::Error::InvalidMessage(_)) => {
            "; the broker did not answer with TLS: is its listener plaintext? then use \
             security.protocol=PLAINTEXT or SASL_PLAINTEXT"
        }
        // Apache Kafka's PLAINTEXT listener reads the ClientHello as an
        // oversized frame and closes the connection without a word.
        _ if matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ) =>
        {
            "; the broker closed the connection during the TLS handshake: is its listener \
             plaintext? then use security.protocol=PLAINTEXT or SASL_PLAINTEXT"
        }
        _ => "",
    };
    PoolError::Tls {
        broker: broker.to_owned(),
        reason: format!("{e}{hint}"),
    }
}

/// One request-response exchange on the bare socket, before the
/// connection's tasks exist.
async fn exchange<S, R>(
    stream: &mut S,
    broker: &str,
    request: &R,
    version: i16,
    correlation_id: i32,
    config: &ClientConfig,
    deadline: Instant,
) -> Result<R::Response, PoolError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: KafkaRequest,
{
    // Reported in timeout errors: the handshake's whole budget.
    let timeout = deadline.saturating_duration_since(Instant::now());
    let timed_out = || PoolError::Timeout {
        broker: broker.to_owned(),
        api: R::API,
        after: timeout,
    };
    let frame = request
        .encode_frame(version, correlation_id, Some(config.client_id.as_str()))
        .map_err(|e| PoolError::protocol(broker, e))?;
    let io = async {
        write_frames(stream, &[frame]).await?;
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).await?;
        Ok::<_, std::io::Error>(size)
    };
    let size = match tokio::time::timeout_at(deadline, io).await {
        Ok(Ok(size)) => size,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(PoolError::Io {
                broker: broker.to_owned(),
                kind: e.kind(),
                message: format!(
                    "the broker closed the connection during the {:?} handshake; if its listener \
                     requires TLS or SASL, set security.protocol accordingly",
                    R::API
                ),
            });
        }
        Ok(Err(e)) => return Err(PoolError::io(broker, &e)),
        Err(_) => return Err(timed_out()),
    };
    if looks_like_tls_record(size) {
        return Err(PoolError::Tls {
            broker: broker.to_owned(),
            reason: format!(
                "the broker answered the {:?} request with a TLS record (its listener is SSL or \
                 SASL_SSL): set security.protocol=SSL or SASL_SSL",
                R::API
            ),
        });
    }
    let decoder = FrameDecoder::new(config.max_response_size);
    let len = decoder
        .announced_size(&size)
        .map_err(|e| PoolError::protocol(broker, e))?
        .unwrap_or(0);
    let mut frame = vec![0u8; len];
    match tokio::time::timeout_at(deadline, stream.read_exact(&mut frame)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(PoolError::io(broker, &e)),
        Err(_) => return Err(timed_out()),
    }
    let (cid, body) =
        kmirror_protocol::header::decode_response_header(Bytes::from(frame), R::API, version)
            .map_err(|e| PoolError::protocol(broker, e))?;
    if cid != correlation_id {
        return Err(PoolError::protocol(
            broker,
            ProtocolError::Malformed {
                api: R::API,
                version,
                reason: format!("correlation id {cid} answers request {correlation_id}"),
            },
        ));
    }
    R::decode_response(body, version).map_err(|e| PoolError::protocol(broker, e))
}

/// Whether the first four bytes of an answer are a TLS record header
/// (content type 20 to 23, protocol major version 3) rather than a frame
/// size: Apache Kafka's SSL listener may answer a plaintext request with a
/// TLS alert (its SSLEngine fails on the bytes) instead of keeping silent.
/// As a frame size this would be over 335 MB, which no handshake answer is.
fn looks_like_tls_record(size: [u8; 4]) -> bool {
    (0x14..=0x17).contains(&size[0]) && size[1] == 0x03
}

/// ApiVersions, negotiation, then SASL if configured.
async fn handshake<S>(
    stream: &mut S,
    broker: &str,
    config: &ClientConfig,
    deadline: Instant,
) -> Result<NegotiatedVersions, PoolError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("kmirror"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    let ours = kmirror_protocol::api::api_spec(ApiKey::ApiVersions)
        .map_err(|e| PoolError::protocol(broker, e))?
        .ours;
    let mut response = exchange(stream, broker, &request, ours.max, 0, config, deadline).await?;
    if response.error_code == UNSUPPORTED_VERSION {
        // The broker answered in v0 with its own range: retry within it.
        let theirs = response
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .map_or(0, |k| k.max_version)
            .min(ours.max);
        response = exchange(stream, broker, &request, theirs, 1, config, deadline).await?;
    }
    if let Some(error) = ResponseError::try_from_code(response.error_code) {
        return Err(PoolError::Kafka {
            broker: broker.to_owned(),
            api: ApiKey::ApiVersions,
            error,
            context: None,
        });
    }
    let versions = NegotiatedVersions::negotiate(&response);
    if let Some(sasl) = &config.sasl
        && matches!(
            config.security_protocol,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    {
        authenticate(stream, broker, config, sasl, &versions, deadline).await?;
    }
    Ok(versions)
}

/// Why the broker refused a `SaslHandshake`, and what to change.
///
/// Apache Kafka answers UNSUPPORTED_SASL_MECHANISM with the listener's
/// enabled mechanisms when the mechanism is not among them, but
/// ILLEGAL_SASL_STATE with no mechanisms at all when the listener does not
/// do SASL (a PLAINTEXT or SSL listener: `KafkaApis.handleSaslHandshakeRequest`).
/// The second is a `security.protocol` mistake, not a `sasl.mechanism` one.
fn handshake_refusal(mechanism: &str, error_code: i16, enabled: &[&str]) -> String {
    match ResponseError::try_from_code(error_code) {
        Some(ResponseError::UnsupportedSaslMechanism) if !enabled.is_empty() => format!(
            "the broker does not accept {mechanism}; it accepts {enabled:?}: set sasl.mechanism to one of them"
        ),
        Some(ResponseError::UnsupportedSaslMechanism) => format!(
            "the broker does not accept {mechanism} and enables no SASL mechanism on this listener: \
             check security.protocol (PLAINTEXT or SSL if the listener has no SASL) and the broker's \
             sasl.enabled.mechanisms"
        ),
        Some(ResponseError::IllegalSaslState) => format!(
            "the listener does not do SASL (the broker answered the {mechanism} handshake with \
             ILLEGAL_SASL_STATE): check security.protocol, which should be PLAINTEXT or SSL for \
             this listener, or connect to the broker's SASL_PLAINTEXT or SASL_SSL listener"
        ),
        Some(other) => format!(
            "the broker refused the {mechanism} handshake with {other} (error code {error_code}); \
             it enables {enabled:?}"
        ),
        None => format!(
            "the broker refused the {mechanism} handshake (error code {error_code}); it enables \
             {enabled:?}"
        ),
    }
}

async fn authenticate<S>(
    stream: &mut S,
    broker: &str,
    config: &ClientConfig,
    sasl: &crate::config::SaslConfig,
    versions: &NegotiatedVersions,
    deadline: Instant,
) -> Result<(), PoolError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mechanism = sasl.mechanism.name();
    let auth_error = |reason: String| PoolError::Auth {
        broker: broker.to_owned(),
        mechanism: mechanism.to_owned(),
        reason,
    };
    let handshake_version = versions
        .version(ApiKey::SaslHandshake)
        .map_err(|e| PoolError::protocol(broker, e))?;
    if handshake_version < 1 {
        return Err(auth_error(
            "the broker only supports SaslHandshake v0 (Kafka before 1.0), which kmirror does not"
                .into(),
        ));
    }
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    let answer = exchange(
        stream,
        broker,
        &handshake,
        handshake_version,
        2,
        config,
        deadline,
    )
    .await?;
    if answer.error_code != 0 {
        let enabled: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(auth_error(handshake_refusal(
            mechanism,
            answer.error_code,
            &enabled,
        )));
    }
    let auth_version = versions
        .version(ApiKey::SaslAuthenticate)
        .map_err(|e| PoolError::protocol(broker, e))?;
    let mut session = SaslSession::new(sasl.mechanism, &sasl.username, sasl.password.expose())
        .map_err(|e| auth_error(e.to_string()))?;
    let mut message = session.initial_response();
    let mut correlation_id = 3;
    loop {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
        let answer = exchange(
            stream,
            broker,
            &request,
            auth_version,
            correlation_id,
            config,
            deadline,
        )
        .await?;
        correlation_id += 1;
        if answer.error_code != 0 {
            let text = answer
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| format!("error code {}", answer.error_code));
            return Err(auth_error(format!("{text}; {CREDENTIALS_HINT}")));
        }
        let next = session
            .handle_challenge(&answer.auth_bytes)
            .map_err(|e| match e {
                crate::sasl::SaslError::ServerError { .. } => {
                    auth_error(format!("{e}; {CREDENTIALS_HINT}"))
                }
                other => auth_error(other.to_string()),
            })?;
        match next {
            Some(next) => message = next,
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::handshake_refusal;

    mod oversized {
        use std::sync::Arc;

        use bytes::{BufMut, BytesMut};
        use kmirror_protocol::kafka_protocol::messages::ApiKey;
        use kmirror_protocol::messages::metadata::metadata_request;
        use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

        use crate::dialer::{DialFuture, Dialer, Transport};
        use crate::{BrokerConnection, ClientConfig};

        /// A broker that completes the handshake (ApiVersions in v0) and
        /// then answers every request with a frame of `size` bytes (only
        /// the size is ever sent).
        struct Announcing {
            size: i32,
        }

        impl Transport for Announcing {
            fn dial<'a>(&'a self, _broker: &'a str) -> DialFuture<'a> {
                let (client, server) = tokio::io::duplex(1 << 16);
                tokio::spawn(serve(server, self.size));
                Box::pin(async move { Ok(client) })
            }
        }

        /// An ApiVersions v0 answer.
        fn api_versions(
            correlation_id: i32,
            error_code: i16,
            keys: &[(ApiKey, i16, i16)],
        ) -> Vec<u8> {
            let mut body = BytesMut::new();
            body.put_i32(correlation_id);
            body.put_i16(error_code);
            body.put_i32(i32::try_from(keys.len()).unwrap());
            for (key, min, max) in keys {
                body.put_i16(*key as i16);
                body.put_i16(*min);
                body.put_i16(*max);
            }
            let mut frame = (i32::try_from(body.len()).unwrap()).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            frame
        }

        async fn serve(mut io: DuplexStream, size: i32) {
            let keys = [(ApiKey::ApiVersions, 0, 0), (ApiKey::Metadata, 4, 9)];
            for turn in 0.. {
                let Ok(len) = io.read_i32().await else { return };
                let mut frame = vec![0u8; usize::try_from(len).unwrap()];
                if io.read_exact(&mut frame).await.is_err() {
                    return;
                }
                let correlation_id = i32::from_be_bytes(frame[4..8].try_into().unwrap());
                let answer = match turn {
                    // UNSUPPORTED_VERSION: kmirror asks again in v0.
                    0 => api_versions(correlation_id, 35, &keys),
                    1 => api_versions(correlation_id, 0, &keys),
                    _ => size.to_be_bytes().to_vec(),
                };
                if io.write_all(&answer).await.is_err() {
                    return;
                }
            }
        }

        /// `max_response_size` is the limit the connection enforces: a
        /// frame above it breaks the connection with FrameTooLarge naming
        /// both sizes (the limit was always Kafka's 100 MiB default, and a
        /// 2 MiB frame was waited for instead).
        #[tokio::test]
        async fn a_frame_above_max_response_size_breaks_the_connection() {
            let config = ClientConfig {
                dialer: Dialer::custom(Arc::new(Announcing { size: 2 << 20 })),
                max_response_size: 1 << 20,
                request_timeout: std::time::Duration::from_secs(5),
                ..ClientConfig::default()
            };
            let conn = BrokerConnection::connect("b:9092", &config)
                .await
                .expect("the handshake completes");
            let err = conn.send(&metadata_request(None)).await.unwrap_err();
            assert_eq!(err.frame_too_large(), Some((2 << 20, 1 << 20)), "{err}");
            assert!(conn.is_poisoned());
        }
    }

    #[test]
    fn handshake_refusals_point_at_the_setting_to_change() {
        let unsupported = handshake_refusal("PLAIN", 33, &["SCRAM-SHA-512"]);
        assert!(
            unsupported.contains(r#"it accepts ["SCRAM-SHA-512"]: set sasl.mechanism"#),
            "{unsupported}"
        );
        // What Apache Kafka answers on a listener without SASL.
        let no_sasl = handshake_refusal("SCRAM-SHA-512", 34, &[]);
        assert!(no_sasl.contains("check security.protocol"), "{no_sasl}");
        assert!(!no_sasl.contains("set sasl.mechanism"), "{no_sasl}");
        let none_enabled = handshake_refusal("PLAIN", 33, &[]);
        assert!(none_enabled.contains("security.protocol"), "{none_enabled}");
        let unknown = handshake_refusal("PLAIN", 9999, &[]);
        assert!(unknown.contains("(error code 9999)"), "{unknown}");
    }

    #[test]
    fn a_tls_alert_is_told_from_a_frame_size() {
        use super::looks_like_tls_record;
        // A fatal alert record, TLS 1.2, as a JDK SSLEngine sends it.
        assert!(looks_like_tls_record([0x15, 0x03, 0x03, 0x00]));
        assert!(looks_like_tls_record([0x16, 0x03, 0x01, 0x02]));
        // Ordinary Kafka frame sizes.
        assert!(!looks_like_tls_record([0x00, 0x00, 0x01, 0x2c]));
        assert!(!looks_like_tls_record(1_048_576i32.to_be_bytes()));
    }
}
