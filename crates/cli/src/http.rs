//! `--metrics.listen`: a small HTTP/1.1 endpoint on tokio serving
//! `/metrics` (Prometheus), `/health` and `/ready`.
//!
//! This module owns the socket, the parsing of a request line and the
//! three answers; what the answers say is the engine's
//! ([`Metrics::observe`], [`Metrics::health`], [`Metrics::readiness`]) and
//! [`exposition`](crate::exposition)'s. One request per connection
//! (`Connection: close`), a request head of at most 8 KiB read within 5 s:
//! enough for Prometheus, curl, systemd and load balancer probes, and
//! nothing a slow or hostile client can hold open. It never panics on
//! what a client sends.
//!
//! - `/health`: 200 while the process runs and every stream's loop ran in
//!   the last 30 s (also during start-up, before the clusters answer);
//!   503 otherwise.
//! - `/ready`: 200 once both clusters answered, partitions are assigned
//!   and none has had records to move with nothing acknowledged for
//!   `--ready.stall.ms`; 503 with the reasons otherwise.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kmirror::Metrics;
use kmirror::engine::metrics::Judgement;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::exit::{CliError, Exit};
use crate::exposition::{self, ExpositionOptions};
use crate::process::ProcessFigures;

/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stream's loop may be silent before `/health` says no.
pub const HEALTH_SILENCE: Duration = Duration::from_secs(30);

/// What the endpoint serves, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointOptions {
    /// Per-partition series in `/metrics`.
    pub partitions: bool,
    /// When `/ready` calls a partition stalled.
    pub stall_after: Duration,
}

/// A listening endpoint. The engine's metrics are attached once the
/// mirror exists; before that `/health` is 200, `/ready` 503 and
/// `/metrics` has the build and process series only.
#[derive(Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    metrics: Arc<OnceLock<Arc<Metrics>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    /// Binds `addr` and serves on the current runtime.
    ///
    /// # Errors
    ///
    /// A configuration error (exit 3) naming the address if it cannot be
    /// bound (in use, not local, no permission).
    pub async fn start(addr: SocketAddr, options: EndpointOptions) -> Result<Self, CliError> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            CliError::new(
                Exit::Config,
                format!(
                    "--metrics.listen {addr}: cannot listen there ({e}); choose a free port on \
                     an address of this machine, e.g. --metrics.listen 0.0.0.0:9464"
                ),
            )
        })?;
        let addr = listener.local_addr().unwrap_or(addr);
        let metrics: Arc<OnceLock<Arc<Metrics>>> = Arc::new(OnceLock::new());
        let task = tokio::spawn(serve(listener, metrics.clone(), options));
        tracing::info!(
            "serving metrics on http://{addr}/metrics, health on /health and readiness on /ready"
        );
        Ok(Self {
            addr,
            metrics,
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `metrics` from now on (the first one attached stays).
    pub fn attach(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    listener: TcpListener,
    metrics: Arc<OnceLock<Arc<Metrics>>>,
    options: EndpointOptions,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let _ = answer(stream, metrics.get().cloned(), options).await;
                });
            }
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::debug!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request and writes its answer.
async fn answer(
    mut stream: TcpStream,
    metrics: Option<Arc<Metrics>>,
    options: EndpointOptions,
) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    };
    let response = respond(&head, metrics.as_deref(), options);
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// The request head, up to the blank line (or [`MAX_HEAD`] bytes).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    Ok(head)
}

/// The whole HTTP response to a request head.
pub fn respond(head: &[u8], metrics: Option<&Metrics>, options: EndpointOptions) -> Vec<u8> {
    let line = head
        .split(|b| *b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim().to_owned())
        .unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method.is_empty() || !parts.next().is_some_and(|v| v.starts_with("HTTP/1")) {
        return response(400, "text/plain", "bad request\n", true);
    }
    let with_body = method != "HEAD";
    if method != "GET" && method != "HEAD" {
        return response(405, "text/plain", "only GET and HEAD\n", with_body);
    }
    let judgement = Judgement {
        stall_after: options.stall_after,
        max_silence: HEALTH_SILENCE,
    };
    match path {
        "/metrics" => {
            let observation = metrics.map(|m| m.observe(judgement));
            let body = exposition::render(
                observation.as_ref(),
                &ProcessFigures::read(),
                ExpositionOptions {
                    partitions: options.partitions,
                },
            );
            response(200, exposition::CONTENT_TYPE, &body, with_body)
        }
        "/health" => {
            let health = metrics.map(|m| m.health(HEALTH_SILENCE));
            match health {
                Some(h) if !h.healthy => {
                    let body = format!("not healthy: {}\n", h.reasons.join("; "));
                    response(503, "text/plain", &body, with_body)
                }
                _ => response(200, "text/plain", "ok\n", with_body),
            }
        }
        "/ready" => match metrics.map(|m| m.readiness(options.stall_after)) {
            Some(r) if r.ready => response(200, "text/plain", "ready\n", with_body),
            Some(r) => {
                let body = format!("not ready: {}\n", r.reasons.join("; "));
                response(503, "text/plain", &body, with_body)
            }
            None => response(
                503,
                "text/plain",
                "not ready: connecting to the clusters\n",
                with_body,
            ),
        },
        "/" => response(
            200,
            "text/plain",
            "kmirror: /metrics (Prometheus), /health, /ready\n",
            with_body,
        ),
        _ => response(
            404,
            "text/plain",
            "not found: try /metrics, /health or /ready\n",
            with_body,
        ),
    }
}

fn response(status: u16, content_type: &str, body: &str, with_body: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: EndpointOptions = EndpointOptions {
        partitions: true,
        stall_after: Duration::from_secs(60),
    };

    fn status(response: &[u8]) -> String {
        String::from_utf8_lossy(response)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn the_three_paths_before_the_mirror_runs() {
        let r = respond(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", None, OPTIONS);
        assert_eq!(status(&r), "HTTP/1.1 200 OK");
        let r = respond(b"GET /ready HTTP/1.1\r\n\r\n", None, OPTIONS);
        assert_eq!(status(&r), "HTTP/1.1 503 Service Unavailable");
        let r = respond(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", None, OPTIONS);
        let text = String::from_utf8_lossy(&r);
        assert!(text.contains(exposition::CONTENT_TYPE), "{text}");
        assert!(text.contains("kmirror_build_info{"), "{text}");
    }

    #[test]
    fn bad_requests_are_answered_not_fatal() {
        for (head, code) in [
            (&b""[..], "400"),
            (b"\xff\xfe garbage", "400"),
            (b"POST /metrics HTTP/1.1\r\n\r\n", "405"),
            (b"GET /nope HTTP/1.1\r\n\r\n", "404"),
        ] {
            let r = respond(head, None, OPTIONS);
            assert!(status(&r).contains(code), "{head:?}: {}", status(&r));
        }
        let r = respond(b"HEAD /health HTTP/1.1\r\n\r\n", None, OPTIONS);
        assert!(String::from_utf8_lossy(&r).ends_with("\r\n\r\n"));
    }

    #[test]
    fn ready_answers_with_the_reasons() {
        let m = Metrics::default();
        let r = respond(b"GET /ready HTTP/1.1\r\n\r\n", Some(&m), OPTIONS);
        let text = String::from_utf8_lossy(&r);
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(text.contains("no source partition is assigned"), "{text}");
    }
}
