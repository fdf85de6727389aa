//! The PLAIN mechanism ([RFC 4616]).
//!
//! This module owns the encoding of the single PLAIN message,
//! `authzid NUL authcid NUL passwd` with an empty authorization identity, as
//! Kafka's Java client sends it. PLAIN sends the password itself, so it is
//! only safe over TLS; choosing the transport is the connection's business.
//!
//! It must never log, format or otherwise expose the password: [`PlainClient`]
//! implements `Debug` by hand with the password redacted, and the encoded
//! message (which contains the password) is only ever returned to the caller
//! to be sent.
//!
//! [RFC 4616]: https://www.rfc-editor.org/rfc/rfc4616

use std::fmt;

use super::SaslError;

/// The client side of one PLAIN exchange.
///
/// The exchange is one message each way: the client sends
/// `\0username\0password`, the broker answers with empty `auth_bytes`.
pub struct PlainClient {
    username: String,
    password: String,
    state: State,
}

/// Where a PLAIN exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The broker has not answered yet.
    Pending,
    /// The broker accepted the message.
    Complete,
    /// The broker's answer was malformed.
    Failed,
}

impl PlainClient {
    /// Prepares a PLAIN exchange for `username` and `password`.
    ///
    /// # Errors
    ///
    /// [`SaslError::InvalidCredentials`] if either contains a NUL character,
    /// which PLAIN uses as its separator.
    pub fn new(username: &str, password: &str) -> Result<Self, SaslError> {
        if username.contains('\0') {
            return Err(SaslError::InvalidCredentials {
                reason: "the PLAIN username contains a NUL character",
            });
        }
        if password.contains('\0') {
            return Err(SaslError::InvalidCredentials {
                reason: "the PLAIN password contains a NUL character",
            });
        }
        Ok(Self {
            username: username.to_owned(),
            password: password.to_owned(),
            state: State::Pending,
        })
    }

    /// The PLAIN message: an empty authorization identity, NUL, the
    /// username, NUL, the password.
    pub fn initial_response(&self) -> Vec<u8> {
        let mut message = Vec::with_capacity(2 + self.username.len() + self.password.len());
        message.push(0);
        message.extend_from_slice(self.username.as_bytes());
        message.push(0);
        message.extend_from_slice(self.password.as_bytes());
        message
    }

    /// Handles the broker's reply to the PLAIN message, which must be empty;
    /// the exchange is then complete and `Ok(None)` is returned.
    ///
    /// # Errors
    ///
    /// [`SaslError::ServerMessage`] if the reply is not empty,
    /// [`SaslError::UnexpectedChallenge`] if the exchange was already over.
    pub fn handle_challenge(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, SaslError> {
        if self.state != State::Pending {
            return Err(SaslError::UnexpectedChallenge);
        }
        if !server.is_empty() {
            self.state = State::Failed;
            return Err(SaslError::ServerMessage {
                reason: format!(
                    "expected an empty reply to PLAIN authentication, got {} bytes",
                    server.len()
                ),
            });
        }
        self.state = State::Complete;
        Ok(None)
    }

    /// Whether the broker has accepted the PLAIN message.
    pub fn is_complete(&self) -> bool {
        self.state == State::Complete
    }
}

impl fmt::Debug for PlainClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainClient")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("state", &self.state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4616_example() {
        // RFC 4616 section 4: `<NUL>tim<NUL>tanstaaftanstaaf`.
        let mut client = PlainClient::new("tim", "tanstaaftanstaaf").unwrap();
        assert_eq!(client.initial_response(), b"\0tim\0tanstaaftanstaaf");
        assert!(!client.is_complete());
        assert_eq!(client.handle_challenge(&[]), Ok(None));
        assert!(client.is_complete());
        assert_eq!(
            client.handle_challenge(&[]),
            Err(SaslError::UnexpectedChallenge)
        );
    }

    #[test]
    fn non_empty_reply_is_an_error() {
        let mut client = PlainClient::new("tim", "tanstaaftanstaaf").unwrap();
        let err = client.handle_challenge(b"surprise").unwrap_err();
        assert!(matches!(err, SaslError::ServerMessage { .. }), "{err:?}");
        assert!(!client.is_complete());
        assert_eq!(
            client.handle_challenge(&[]),
            Err(SaslError::UnexpectedChallenge)
        );
    }

    #[test]
    fn nul_in_credentials_is_refused_without_echoing_them() {
        let err = PlainClient::new("ti\0m", "pw").unwrap_err();
        assert!(matches!(err, SaslError::InvalidCredentials { .. }));
        let err = PlainClient::new("tim", "hunter\0two").unwrap_err();
        assert!(matches!(err, SaslError::InvalidCredentials { .. }));
        assert!(!err.to_string().contains("hunter"), "{err}");
        assert!(!format!("{err:?}").contains("hunter"), "{err:?}");
    }

    #[test]
    fn debug_does_not_contain_the_password() {
        let client = PlainClient::new("tim", "tanstaaftanstaaf").unwrap();
        let debug = format!("{client:?} {client:#?}");
        assert!(!debug.contains("tanstaaf"), "{debug}");
        assert!(debug.contains("tim"), "{debug}");
    }
}
