//! SASL authentication, without I/O.
//!
//! This module owns the client side of the SASL mechanisms kmirror speaks to
//! Kafka brokers: PLAIN ([RFC 4616], in [`plain`]) and SCRAM-SHA-256 /
//! SCRAM-SHA-512 ([RFC 5802], [RFC 7677], in [`scram`]). It turns credentials
//! and the broker's challenges into the bytes of the next client message, and
//! checks that a SCRAM broker proves it knows the password. It also owns
//! [`SaslMechanism`], the one definition of the mechanism names used by the
//! configuration (`sasl.mechanism`) and the connection.
//!
//! It never does I/O and never looks at the clock: the connection code wraps
//! each message in a `SaslAuthenticate` request and hands the response's
//! `auth_bytes` back to [`SaslSession::handle_challenge`]. Broker errors
//! reported in the `SaslAuthenticate` response's error code are the
//! connection's business, not this module's.
//!
//! It must never log, format or otherwise expose the password: no
//! [`SaslError`] carries it, and every type that holds it implements `Debug`
//! by hand with the password redacted.
//!
//! # Driving an exchange
//!
//! ```
//! use kmirror_pool::sasl::{SaslError, SaslMechanism, SaslSession};
//!
//! /// `round_trip` sends one `SaslAuthenticate` request with the given
//! /// `auth_bytes` and returns the `auth_bytes` of the broker's response.
//! fn authenticate(mut round_trip: impl FnMut(Vec<u8>) -> Vec<u8>) -> Result<(), SaslError> {
//!     let mut session = SaslSession::new(SaslMechanism::ScramSha256, "alice", "alice-secret")?;
//!     let mut message = session.initial_response();
//!     while let Some(next) = session.handle_challenge(&round_trip(message))? {
//!         message = next;
//!     }
//!     assert!(session.is_complete());
//!     Ok(())
//! }
//! ```
//!
//! [RFC 4616]: https://www.rfc-editor.org/rfc/rfc4616
//! [RFC 5802]: https://www.rfc-editor.org/rfc/rfc5802
//! [RFC 7677]: https://www.rfc-editor.org/rfc/rfc7677

pub mod plain;
pub mod scram;

use std::fmt;
use std::str::FromStr;

pub use plain::PlainClient;
pub use scram::{ScramClient, ScramHash};

/// The comma-separated list of supported mechanism names, for error messages.
const SUPPORTED_NAMES: &str = "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512";

/// A SASL mechanism kmirror can authenticate with (Kafka's `sasl.mechanism`).
///
/// Parsing with [`FromStr`] is case-insensitive; [`name`](Self::name) and
/// [`Display`](fmt::Display) give the canonical upper-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    /// `PLAIN` (RFC 4616): the password is sent as is, so use it only over TLS.
    Plain,
    /// `SCRAM-SHA-256` (RFC 5802, RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-512` (RFC 5802 with SHA-512).
    ScramSha512,
}

impl SaslMechanism {
    /// Every supported mechanism, in the order of the error messages.
    pub const ALL: [Self; 3] = [Self::Plain, Self::ScramSha256, Self::ScramSha512];

    /// The mechanism's name as Kafka spells it in `sasl.mechanism` and in the
    /// `SaslHandshake` request.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SaslMechanism {
    type Err = SaslError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|mechanism| mechanism.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| SaslError::UnsupportedMechanism { name: s.to_owned() })
    }
}

/// Why a SASL exchange failed on the client side.
///
/// No variant ever carries the password.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The configured mechanism name is not one kmirror supports.
    #[error("unsupported SASL mechanism `{name}`: supported mechanisms are {SUPPORTED_NAMES}")]
    UnsupportedMechanism {
        /// The name as configured.
        name: String,
    },

    /// The credentials cannot be encoded for the mechanism (for example a NUL
    /// character with PLAIN).
    #[error("invalid SASL credentials: {reason}")]
    InvalidCredentials {
        /// What is wrong, without the password.
        reason: &'static str,
    },

    /// The system random number generator failed, so no SCRAM nonce could be
    /// made.
    #[error("cannot generate a SCRAM client nonce: the system random number generator failed")]
    RandomUnavailable,

    /// The broker sent a message that does not follow the mechanism's syntax.
    #[error("malformed SASL message from the broker: {reason}")]
    ServerMessage {
        /// What is wrong with the message.
        reason: String,
    },

    /// The SCRAM server nonce does not extend the nonce this client sent.
    #[error(
        "the broker's SCRAM nonce does not extend the client nonce: possible replay or man-in-the-middle"
    )]
    NonceMismatch,

    /// The broker asked for fewer PBKDF2 iterations than Kafka's minimum.
    #[error(
        "the broker asked for {count} SCRAM iterations, below the minimum of {min}",
        min = scram::MIN_ITERATIONS
    )]
    IterationCountTooLow {
        /// The iteration count the broker sent.
        count: u32,
    },

    /// The SCRAM server signature is wrong.
    #[error(
        "the broker could not prove it knows the password: possible man-in-the-middle \
         (SCRAM server signature mismatch)"
    )]
    ServerSignatureMismatch,

    /// The broker ended the SCRAM exchange with an `e=` error.
    #[error("the broker rejected the SCRAM authentication: {message}")]
    ServerError {
        /// The error value the broker sent (such as `invalid-proof`).
        message: String,
    },

    /// A challenge arrived after the exchange had completed or failed.
    #[error("unexpected SASL challenge: the exchange is already over")]
    UnexpectedChallenge,
}

/// One client-side SASL exchange, whatever the mechanism.
///
/// Make one per connection with [`SaslSession::new`], send
/// [`initial_response`](Self::initial_response), then feed every response's
/// `auth_bytes` to [`handle_challenge`](Self::handle_challenge) and send what
/// it returns until it returns `Ok(None)`.
#[derive(Debug)]
pub enum SaslSession {
    /// A PLAIN exchange.
    Plain(PlainClient),
    /// A SCRAM-SHA-256 or SCRAM-SHA-512 exchange.
    Scram(ScramClient),
}

impl SaslSession {
    /// Starts an exchange with `mechanism` for `username` and `password`.
    ///
    /// # Errors
    ///
    /// [`SaslError::InvalidCredentials`] if PLAIN cannot encode the
    /// credentials; [`SaslError::RandomUnavailable`] if no SCRAM nonce can be
    /// generated.
    pub fn new(
        mechanism: SaslMechanism,
        username: &str,
        password: &str,
    ) -> Result<Self, SaslError> {
        Ok(match mechanism {
            SaslMechanism::Plain => Self::Plain(PlainClient::new(username, password)?),
            SaslMechanism::ScramSha256 => {
                Self::Scram(ScramClient::new(ScramHash::Sha256, username, password)?)
            }
            SaslMechanism::ScramSha512 => {
                Self::Scram(ScramClient::new(ScramHash::Sha512, username, password)?)
            }
        })
    }

    /// The mechanism of this exchange, for the `SaslHandshake` request.
    pub fn mechanism(&self) -> SaslMechanism {
        match self {
            Self::Plain(_) => SaslMechanism::Plain,
            Self::Scram(client) => client.mechanism(),
        }
    }

    /// The first client message, sent in the first `SaslAuthenticate`
    /// request. Calling it again returns the same bytes.
    pub fn initial_response(&self) -> Vec<u8> {
        match self {
            Self::Plain(client) => client.initial_response(),
            Self::Scram(client) => client.initial_response(),
        }
    }

    /// Handles the `auth_bytes` of a successful `SaslAuthenticate` response.
    ///
    /// Returns `Ok(Some(message))` with the next message to send, or
    /// `Ok(None)` when the exchange is complete. For SCRAM, handling the
    /// server-first message runs PBKDF2 with the broker's iteration count
    /// (a few milliseconds at Kafka's default 4096).
    ///
    /// # Errors
    ///
    /// A [`SaslError`] if the broker's message is malformed or fails a check;
    /// the exchange is then over and the connection must be closed.
    pub fn handle_challenge(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, SaslError> {
        match self {
            Self::Plain(client) => client.handle_challenge(server),
            Self::Scram(client) => client.handle_challenge(server),
        }
    }

    /// Whether the exchange has completed successfully (for SCRAM, including
    /// the check of the broker's signature).
    pub fn is_complete(&self) -> bool {
        match self {
            Self::Plain(client) => client.is_complete(),
            Self::Scram(client) => client.is_complete(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names_round_trip_case_insensitively() {
        for mechanism in SaslMechanism::ALL {
            assert_eq!(mechanism.name().parse::<SaslMechanism>(), Ok(mechanism));
            assert_eq!(
                mechanism
                    .name()
                    .to_ascii_lowercase()
                    .parse::<SaslMechanism>(),
                Ok(mechanism)
            );
            assert_eq!(mechanism.to_string(), mechanism.name());
        }
        assert_eq!("Scram-Sha-512".parse(), Ok(SaslMechanism::ScramSha512));
    }

    #[test]
    fn unknown_mechanism_lists_the_supported_names() {
        let err = "GSSAPI".parse::<SaslMechanism>().unwrap_err();
        assert_eq!(
            err,
            SaslError::UnsupportedMechanism {
                name: "GSSAPI".into()
            }
        );
        let text = err.to_string();
        assert!(text.contains("GSSAPI"), "{text}");
        for mechanism in SaslMechanism::ALL {
            assert!(text.contains(mechanism.name()), "{text}");
        }
    }

    #[test]
    fn sessions_report_their_mechanism() {
        for mechanism in SaslMechanism::ALL {
            let session = SaslSession::new(mechanism, "user", "pencil").unwrap();
            assert_eq!(session.mechanism(), mechanism);
            assert!(!session.is_complete());
        }
    }

    #[test]
    fn session_debug_does_not_contain_the_password() {
        for mechanism in SaslMechanism::ALL {
            let session = SaslSession::new(mechanism, "user", "hunter2-secret").unwrap();
            let debug = format!("{session:?} {session:#?}");
            assert!(!debug.contains("hunter2-secret"), "{debug}");
            assert!(debug.contains("user"), "{debug}");
        }
    }

    #[test]
    fn plain_session_completes_on_the_empty_broker_reply() {
        let mut session =
            SaslSession::new(SaslMechanism::Plain, "tim", "tanstaaftanstaaf").unwrap();
        assert_eq!(session.initial_response(), b"\0tim\0tanstaaftanstaaf");
        assert_eq!(session.handle_challenge(b""), Ok(None));
        assert!(session.is_complete());
    }
}
