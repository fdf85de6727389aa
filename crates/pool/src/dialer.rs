//! How a connection reaches a broker: TCP by default, or a caller's
//! in-memory transport.
//!
//! The deterministic cluster simulation (`tests/sim`) runs the real pool and
//! engine against simulated brokers on one current-thread runtime with a
//! paused clock. It plugs in here: everything above the byte stream (framing,
//! ApiVersions, correlation ids, poisoning, retries) is the code users run.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::DuplexStream;

/// The future a [`Transport`] returns for one connection attempt.
pub type DialFuture<'a> = Pin<Box<dyn Future<Output = std::io::Result<DuplexStream>> + Send + 'a>>;

/// A byte-stream transport to brokers other than TCP.
///
/// Only plaintext listeners (`PLAINTEXT`, `SASL_PLAINTEXT`) run over a
/// transport; TLS needs a socket.
pub trait Transport: Send + Sync {
    /// Opens a connection to `broker` (`host:port`), or fails as a socket
    /// would (`ConnectionRefused` for a broker that is down).
    fn dial<'a>(&'a self, broker: &'a str) -> DialFuture<'a>;
}

/// Where [`crate::BrokerConnection`]s come from (part of
/// [`crate::ClientConfig`], so every cluster built from one config uses the
/// same transport).
#[derive(Clone, Default)]
pub enum Dialer {
    /// TCP sockets (and TLS over them when the protocol says so).
    #[default]
    Tcp,
    /// A caller's transport, plaintext only.
    Custom(Arc<dyn Transport>),
}

impl Dialer {
    /// A dialer over `transport`.
    pub fn custom(transport: Arc<dyn Transport>) -> Self {
        Dialer::Custom(transport)
    }

    /// A seed for the reconnect backoff's jitter towards `broker`. Over TCP
    /// it comes from the clock, so that many kmirror processes do not
    /// retry in lockstep; over a custom transport it is derived from the
    /// address alone, so that a simulation replays exactly.
    pub(crate) fn jitter_seed(&self, broker: &str) -> u64 {
        match self {
            Dialer::Tcp => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9, |d| d.as_nanos() as u64),
            // FNV-1a: stable across runs and platforms.
            Dialer::Custom(_) => broker.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            }),
        }
    }
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dialer::Tcp => f.write_str("Tcp"),
            Dialer::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl PartialEq for Dialer {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Dialer::Tcp, Dialer::Tcp) => true,
            (Dialer::Custom(a), Dialer::Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Dialer {}
