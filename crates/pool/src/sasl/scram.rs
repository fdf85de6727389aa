//! The SCRAM-SHA-256 and SCRAM-SHA-512 mechanisms ([RFC 5802], [RFC 7677]).
//!
//! This module owns the client side of a SCRAM exchange as Kafka runs it:
//!
//! 1. client-first: `n,,n=<username>,r=<client nonce>` (gs2 header `n,,`: no
//!    channel binding, no authorization identity);
//! 2. server-first: `r=<client nonce + server nonce>,s=<salt>,i=<iterations>`;
//! 3. client-final: `c=biws,r=<nonce>,p=<client proof>`;
//! 4. server-final: `v=<server signature>`, which is checked so that a broker
//!    (or a man in the middle) that does not know the password cannot pass
//!    itself off as the real one; or `e=<error>`.
//!
//! The client nonce is 18 random bytes from the system generator in base64
//! (24 printable characters). The salted password is PBKDF2 (`Hi()` in RFC
//! 5802) with the broker's salt and iteration count, which must be at least
//! [`MIN_ITERATIONS`], Kafka's own minimum. The username is escaped as RFC 5802
//! requires (`=` as `=3D`, `,` as `=2C`) but not normalized with SASLprep:
//! Kafka's Java client does not apply SASLprep either, so doing it here would
//! make non-ASCII usernames or passwords fail against credentials created with
//! Kafka's tools. Kafka's SCRAM extensions (delegation tokens' `tokenauth`)
//! are not supported.
//!
//! It must never log, format or otherwise expose the password or any key
//! derived from it: [`ScramClient`] implements `Debug` by hand and shows
//! neither, and the password is dropped as soon as the salted password has
//! been computed (dropped, not zeroed: the crate forbids `unsafe` and has no
//! zeroizing dependency).
//!
//! [RFC 5802]: https://www.rfc-editor.org/rfc/rfc5802
//! [RFC 7677]: https://www.rfc-editor.org/rfc/rfc7677

use std::fmt;
use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::{digest, hmac, pbkdf2};

use super::{SaslError, SaslMechanism};

/// The lowest iteration count accepted from a broker: RFC 7677's recommended
/// minimum, and the minimum of Kafka's `ScramMechanism`.
pub const MIN_ITERATIONS: u32 = 4096;

/// Random bytes in a client nonce (base64-encoded to 24 characters).
const NONCE_BYTES: usize = 18;

/// The gs2 header: no channel binding, no authorization identity.
const GS2_HEADER: &str = "n,,";

/// The base64 of [`GS2_HEADER`], sent as the channel binding in client-final.
const CHANNEL_BINDING: &str = "biws";

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    /// SHA-256, for SCRAM-SHA-256.
    Sha256,
    /// SHA-512, for SCRAM-SHA-512.
    Sha512,
}

impl ScramHash {
    /// The SASL mechanism using this hash.
    pub const fn mechanism(self) -> SaslMechanism {
        match self {
            Self::Sha256 => SaslMechanism::ScramSha256,
            Self::Sha512 => SaslMechanism::ScramSha512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha512 => &digest::SHA512,
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with this hash's HMAC and an
    /// output as long as the hash.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: NonZeroU32) -> Vec<u8> {
        let mut salted = vec![0; self.digest().output_len()];
        pbkdf2::derive(self.pbkdf2(), iterations, salt, password, &mut salted);
        salted
    }
}

/// The client side of one SCRAM exchange.
pub struct ScramClient {
    hash: ScramHash,
    username: String,
    /// Emptied once the salted password has been computed.
    password: String,
    client_nonce: String,
    /// `n=<escaped username>,r=<client nonce>`, part of the auth message.
    client_first_bare: String,
    state: State,
}

/// Where a SCRAM exchange stands.
enum State {
    /// client-first is ready; the broker's server-first is awaited.
    AwaitingServerFirst,
    /// client-final has been produced; server-final is awaited.
    AwaitingServerFinal {
        /// `HMAC(SaltedPassword, "Server Key")`, to check the signature.
        server_key: Vec<u8>,
        /// client-first-bare, server-first and client-final-without-proof.
        auth_message: String,
    },
    /// The broker proved it knows the password.
    Complete,
    /// A check failed; the exchange is over.
    Failed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::AwaitingServerFirst => "AwaitingServerFirst",
            Self::AwaitingServerFinal { .. } => "AwaitingServerFinal",
            Self::Complete => "Complete",
            Self::Failed => "Failed",
        }
    }
}

impl ScramClient {
    /// Prepares a SCRAM exchange with `hash` for `username` and `password`,
    /// with a fresh random client nonce.
    ///
    /// # Errors
    ///
    /// [`SaslError::RandomUnavailable`] if the system random number generator
    /// fails.
    pub fn new(hash: ScramHash, username: &str, password: &str) -> Result<Self, SaslError> {
        let mut random = [0; NONCE_BYTES];
        SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| SaslError::RandomUnavailable)?;
        Ok(Self::with_nonce(
            hash,
            username,
            password,
            BASE64.encode(random),
        ))
    }

    /// Prepares an exchange with a given client nonce (for test vectors).
    fn with_nonce(hash: ScramHash, username: &str, password: &str, client_nonce: String) -> Self {
        let client_first_bare = format!("n={},r={client_nonce}", escape_username(username));
        Self {
            hash,
            username: username.to_owned(),
            password: password.to_owned(),
            client_nonce,
            client_first_bare,
            state: State::AwaitingServerFirst,
        }
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> SaslMechanism {
        self.hash.mechanism()
    }

    /// The client-first message, `n,,n=<username>,r=<client nonce>`.
    pub fn initial_response(&self) -> Vec<u8> {
        format!("{GS2_HEADER}{}", self.client_first_bare).into_bytes()
    }

    /// Handles server-first (returning client-final) or server-final
    /// (returning `None` once the server signature checks out).
    ///
    /// After an error the exchange is over and every later call returns
    /// [`SaslError::UnexpectedChallenge`].
    ///
    /// # Errors
    ///
    /// [`SaslError::ServerMessage`] for a malformed message,
    /// [`SaslError::NonceMismatch`], [`SaslError::IterationCountTooLow`],
    /// [`SaslError::ServerError`] for `e=`,
    /// [`SaslError::ServerSignatureMismatch`], or
    /// [`SaslError::UnexpectedChallenge`] once the exchange is over.
    pub fn handle_challenge(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, SaslError> {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::AwaitingServerFirst => {
                let (client_final, next) = self.answer_server_first(server)?;
                self.state = next;
                Ok(Some(client_final))
            }
            State::AwaitingServerFinal {
                server_key,
                auth_message,
            } => {
                let server_key = hmac::Key::new(self.hash.hmac(), &server_key);
                verify_server_final(server, &server_key, &auth_message)?;
                self.state = State::Complete;
                Ok(None)
            }
            over @ (State::Complete | State::Failed) => {
                self.state = over;
                Err(SaslError::UnexpectedChallenge)
            }
        }
    }

    /// Whether the exchange has completed and the broker's signature checked
    /// out.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// Checks server-first and computes client-final and the state awaiting
    /// server-final.
    fn answer_server_first(&mut self, server: &[u8]) -> Result<(Vec<u8>, State), SaslError> {
        let server_first = std::str::from_utf8(server)
            .map_err(|_| malformed("the server-first message is not UTF-8"))?;
        let ServerFirst {
            nonce,
            salt,
            iterations,
        } = parse_server_first(server_first)?;
        if nonce.len() <= self.client_nonce.len() || !nonce.starts_with(&self.client_nonce) {
            return Err(SaslError::NonceMismatch);
        }

        let password = std::mem::take(&mut self.password);
        let salted_password = self
            .hash
            .salted_password(password.as_bytes(), &salt, iterations);
        drop(password);

        let algorithm = self.hash.hmac();
        let salted_key = hmac::Key::new(algorithm, &salted_password);
        let client_key = hmac::sign(&salted_key, b"Client Key");
        let stored_key = digest::digest(self.hash.digest(), client_key.as_ref());
        let server_key = hmac::sign(&salted_key, b"Server Key").as_ref().to_vec();

        let client_final_without_proof = format!("c={CHANNEL_BINDING},r={nonce}");
        let auth_message = format!(
            "{},{server_first},{client_final_without_proof}",
            self.client_first_bare
        );
        let client_signature = hmac::sign(
            &hmac::Key::new(algorithm, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let client_proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(client_signature.as_ref())
            .map(|(key, signature)| key ^ signature)
            .collect();

        let client_final = format!(
            "{client_final_without_proof},p={}",
            BASE64.encode(client_proof)
        );
        let next = State::AwaitingServerFinal {
            server_key,
            auth_message,
        };
        Ok((client_final.into_bytes(), next))
    }
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.hash.mechanism())
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("client_nonce", &self.client_nonce)
            .field("state", &self.state.name())
            .finish()
    }
}

/// Escapes a username into an RFC 5802 `saslname`: `=` as `=3D` and `,` as
/// `=2C` (in that order, so the escapes themselves are not escaped).
fn escape_username(username: &str) -> String {
    username.replace('=', "=3D").replace(',', "=2C")
}

/// A [`SaslError::ServerMessage`] with `reason`.
fn malformed(reason: impl Into<String>) -> SaslError {
    SaslError::ServerMessage {
        reason: reason.into(),
    }
}

/// The parts of a server-first message.
struct ServerFirst<'a> {
    /// The client nonce followed by the server's.
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: NonZeroU32,
}

/// Parses `r=<nonce>,s=<salt>,i=<iterations>[,extensions]`, checking the
/// syntax and the iteration count (the nonce is checked by the caller).
fn parse_server_first(message: &str) -> Result<ServerFirst<'_>, SaslError> {
    let mut attributes = message.split(',');
    let first = attributes.next().unwrap_or_default();
    if let Some(error) = first.strip_prefix("e=") {
        return Err(SaslError::ServerError {
            message: error.to_owned(),
        });
    }
    if first.starts_with("m=") {
        return Err(malformed(
            "the broker requires a mandatory SCRAM extension (m=), which is not supported",
        ));
    }
    let nonce = expect_attribute(Some(first), "r=", "nonce")?;
    let salt = expect_attribute(attributes.next(), "s=", "salt")?;
    let iterations = expect_attribute(attributes.next(), "i=", "iteration count")?;
    // Any further attributes are extensions, which RFC 5802 says to ignore.

    if !nonce.bytes().all(|byte| (0x21..=0x7e).contains(&byte)) {
        return Err(malformed(
            "the nonce contains characters that are not printable ASCII",
        ));
    }
    let salt = BASE64
        .decode(salt)
        .map_err(|_| malformed("the salt is not valid base64"))?;
    if salt.is_empty() {
        return Err(malformed("the salt is empty"));
    }
    if iterations.is_empty() || !iterations.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(malformed("the iteration count is not a decimal number"));
    }
    let count: u32 = iterations
        .parse()
        .map_err(|_| malformed("the iteration count is out of range"))?;
    let iterations = NonZeroU32::new(count)
        .filter(|iterations| iterations.get() >= MIN_ITERATIONS)
        .ok_or(SaslError::IterationCountTooLow { count })?;
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

/// The value of `attribute` if it starts with `prefix` (such as `r=`).
fn expect_attribute<'a>(
    attribute: Option<&'a str>,
    prefix: &str,
    what: &str,
) -> Result<&'a str, SaslError> {
    attribute
        .and_then(|attribute| attribute.strip_prefix(prefix))
        .ok_or_else(|| malformed(format!("the server-first message has no {what} ({prefix})")))
}

/// Checks server-final: `v=<signature>` must be `HMAC(ServerKey,
/// AuthMessage)`; `e=<error>` is the broker's refusal.
fn verify_server_final(
    server: &[u8],
    server_key: &hmac::Key,
    auth_message: &str,
) -> Result<(), SaslError> {
    let server_final = std::str::from_utf8(server)
        .map_err(|_| malformed("the server-final message is not UTF-8"))?;
    let first = server_final.split(',').next().unwrap_or_default();
    if let Some(error) = first.strip_prefix("e=") {
        return Err(SaslError::ServerError {
            message: error.to_owned(),
        });
    }
    let verifier = first.strip_prefix("v=").ok_or_else(|| {
        malformed("the server-final message has neither a verifier (v=) nor an error (e=)")
    })?;
    let signature = BASE64
        .decode(verifier)
        .map_err(|_| malformed("the server signature is not valid base64"))?;
    hmac::verify(server_key, auth_message.as_bytes(), &signature)
        .map_err(|_| SaslError::ServerSignatureMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_7677_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC_7677_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const RFC_7677_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC_7677_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_7677_client() -> ScramClient {
        ScramClient::with_nonce(
            ScramHash::Sha256,
            "user",
            "pencil",
            RFC_7677_CLIENT_NONCE.into(),
        )
    }

    /// A client that has sent client-final for the RFC 7677 vector.
    fn rfc_7677_client_awaiting_server_final() -> ScramClient {
        let mut client = rfc_7677_client();
        client
            .handle_challenge(RFC_7677_SERVER_FIRST.as_bytes())
            .unwrap()
            .unwrap();
        client
    }

    #[test]
    fn rfc_7677_sha_256_test_vector() {
        let mut client = rfc_7677_client();
        assert_eq!(client.mechanism(), SaslMechanism::ScramSha256);
        assert_eq!(
            client.initial_response(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        let client_final = client
            .handle_challenge(RFC_7677_SERVER_FIRST.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            RFC_7677_CLIENT_FINAL
        );
        assert!(!client.is_complete());
        assert_eq!(
            client.handle_challenge(RFC_7677_SERVER_FINAL.as_bytes()),
            Ok(None)
        );
        assert!(client.is_complete());
        assert_eq!(
            client.handle_challenge(RFC_7677_SERVER_FINAL.as_bytes()),
            Err(SaslError::UnexpectedChallenge)
        );
        assert!(client.is_complete());
    }

    #[test]
    fn server_final_extensions_are_ignored() {
        let mut client = rfc_7677_client_awaiting_server_final();
        let server_final = format!("{RFC_7677_SERVER_FINAL},x=extension");
        assert_eq!(client.handle_challenge(server_final.as_bytes()), Ok(None));
        assert!(client.is_complete());
    }

    #[test]
    fn wrong_server_signature_is_refused() {
        // The right length and valid base64, one bit off.
        let forged = "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        let mut client = rfc_7677_client_awaiting_server_final();
        let err = client.handle_challenge(forged.as_bytes()).unwrap_err();
        assert_eq!(err, SaslError::ServerSignatureMismatch);
        assert!(err.to_string().contains("man-in-the-middle"), "{err}");
        assert!(!client.is_complete());
        assert_eq!(
            client.handle_challenge(RFC_7677_SERVER_FINAL.as_bytes()),
            Err(SaslError::UnexpectedChallenge)
        );
    }

    #[test]
    fn malformed_server_final_is_an_error() {
        for (server_final, expected) in [
            (&b"v=not base64!"[..], "not valid base64"),
            (b"v=", "signature mismatch"),
            (b"x=something", "neither a verifier"),
            (b"", "neither a verifier"),
            (b"\xff\xfe", "not UTF-8"),
        ] {
            let mut client = rfc_7677_client_awaiting_server_final();
            let err = client.handle_challenge(server_final).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
            assert!(!client.is_complete());
        }
    }

    #[test]
    fn server_error_in_server_final_is_reported() {
        let mut client = rfc_7677_client_awaiting_server_final();
        assert_eq!(
            client.handle_challenge(b"e=invalid-proof"),
            Err(SaslError::ServerError {
                message: "invalid-proof".into()
            })
        );
        assert!(!client.is_complete());
    }

    #[test]
    fn malformed_server_first_messages_are_errors() {
        /// The expected outcome: a malformed-message error whose reason
        /// contains the text, or exactly this error.
        enum Expect {
            Malformed(&'static str),
            Is(SaslError),
        }
        use Expect::{Is, Malformed};

        let nonce = RFC_7677_CLIENT_NONCE;
        let salt = "W22ZaJ0SNY7soEsUEjb6gQ==";
        let low = |count| Is(SaslError::IterationCountTooLow { count });
        let cases: Vec<(Vec<u8>, Expect)> = vec![
            (vec![], Malformed("no nonce")),
            (b"\xff\xfe".to_vec(), Malformed("not UTF-8")),
            (format!("s={salt},i=4096").into(), Malformed("no nonce")),
            (format!("r={nonce}srv,i=4096").into(), Malformed("no salt")),
            (
                format!("r={nonce}srv,i=4096,s={salt}").into(),
                Malformed("no salt"),
            ),
            (
                format!("r={nonce}srv,s={salt}").into(),
                Malformed("no iteration count"),
            ),
            (
                format!("r={nonce}srv,s={salt},").into(),
                Malformed("no iteration count"),
            ),
            (
                format!("r=someone-else,s={salt},i=4096").into(),
                Is(SaslError::NonceMismatch),
            ),
            (
                format!("r={nonce},s={salt},i=4096").into(),
                Is(SaslError::NonceMismatch),
            ),
            (
                format!("r=xx{nonce},s={salt},i=4096").into(),
                Is(SaslError::NonceMismatch),
            ),
            (format!("r={nonce}srv,s={salt},i=1").into(), low(1)),
            (format!("r={nonce}srv,s={salt},i=4095").into(), low(4095)),
            (format!("r={nonce}srv,s={salt},i=0").into(), low(0)),
            (
                format!("r={nonce}srv,s={salt},i=").into(),
                Malformed("not a decimal"),
            ),
            (
                format!("r={nonce}srv,s={salt},i=-4096").into(),
                Malformed("not a decimal"),
            ),
            (
                format!("r={nonce}srv,s={salt},i=+4096").into(),
                Malformed("not a decimal"),
            ),
            (
                format!("r={nonce}srv,s={salt},i=4k").into(),
                Malformed("not a decimal"),
            ),
            (
                format!("r={nonce}srv,s={salt},i=99999999999").into(),
                Malformed("out of range"),
            ),
            (
                format!("r={nonce}srv,s=not base64!,i=4096").into(),
                Malformed("base64"),
            ),
            (
                format!("r={nonce}srv,s=W22ZaJ0,i=4096").into(),
                Malformed("base64"),
            ),
            (
                format!("r={nonce}srv,s=,i=4096").into(),
                Malformed("salt is empty"),
            ),
            (
                format!("r={nonce}sr\u{e9},s={salt},i=4096").into(),
                Malformed("printable"),
            ),
            (
                format!("r={nonce}sr\u{7f},s={salt},i=4096").into(),
                Malformed("printable"),
            ),
            (
                format!("m=ext,r={nonce}srv,s={salt},i=4096").into(),
                Malformed("mandatory"),
            ),
            (
                b"e=unknown-user".to_vec(),
                Is(SaslError::ServerError {
                    message: "unknown-user".into(),
                }),
            ),
        ];
        for (server_first, expect) in cases {
            let shown = String::from_utf8_lossy(&server_first).into_owned();
            let mut client = rfc_7677_client();
            let err = client.handle_challenge(&server_first).unwrap_err();
            match expect {
                Malformed(text) => assert!(
                    matches!(&err, SaslError::ServerMessage { reason } if reason.contains(text)),
                    "{shown:?} gave {err:?}, expected a malformed message ({text})"
                ),
                Is(expected) => assert_eq!(err, expected, "{shown:?}"),
            }
            assert!(!client.is_complete());
            assert_eq!(
                client.handle_challenge(RFC_7677_SERVER_FIRST.as_bytes()),
                Err(SaslError::UnexpectedChallenge),
                "{shown:?}"
            );
        }
    }

    #[test]
    fn server_first_extensions_are_ignored() {
        let mut client = rfc_7677_client();
        let server_first = format!("{RFC_7677_SERVER_FIRST},x=extension");
        let client_final = client
            .handle_challenge(server_first.as_bytes())
            .unwrap()
            .unwrap();
        assert!(client_final.starts_with(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2R"));
    }

    #[test]
    fn username_is_escaped() {
        for (username, saslname) in [
            ("a,b=c", "a=2Cb=3Dc"),
            ("=,", "=3D=2C"),
            ("=2C", "=3D2C"),
            ("plain", "plain"),
        ] {
            let client = ScramClient::with_nonce(ScramHash::Sha512, username, "pw", "nonce".into());
            assert_eq!(
                String::from_utf8(client.initial_response()).unwrap(),
                format!("n,,n={saslname},r=nonce")
            );
        }
    }

    #[test]
    fn client_nonce_is_random_and_printable() {
        let first = ScramClient::new(ScramHash::Sha256, "user", "pencil").unwrap();
        let second = ScramClient::new(ScramHash::Sha256, "user", "pencil").unwrap();
        assert_eq!(first.client_nonce.len(), 24);
        assert!(
            first
                .client_nonce
                .bytes()
                .all(|byte| (0x21..=0x7e).contains(&byte) && byte != b',')
        );
        assert_ne!(first.client_nonce, second.client_nonce);
        let message = String::from_utf8(first.initial_response()).unwrap();
        assert_eq!(message, format!("n,,n=user,r={}", first.client_nonce));
    }

    #[test]
    fn debug_does_not_contain_the_password() {
        let mut client =
            ScramClient::with_nonce(ScramHash::Sha256, "user", "pencil-secret", "nonce".into());
        let debug = format!("{client:?} {client:#?}");
        assert!(!debug.contains("pencil-secret"), "{debug}");
        assert!(debug.contains("user"), "{debug}");
        assert!(debug.contains("AwaitingServerFirst"), "{debug}");
        client
            .handle_challenge(b"r=nonceSERVER,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        let debug = format!("{client:?} {client:#?}");
        assert!(!debug.contains("pencil-secret"), "{debug}");
        assert!(debug.contains("AwaitingServerFinal"), "{debug}");
    }

    /// A minimal SCRAM server holding the stored credential of one user.
    struct TestServer {
        hash: ScramHash,
        saslname: String,
        salt: Vec<u8>,
        iterations: NonZeroU32,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        /// client-first-bare, server-first and the combined nonce, once
        /// client-first has been received.
        exchange: Option<(String, String, String)>,
    }

    impl TestServer {
        fn new(hash: ScramHash, username: &str, password: &str) -> Self {
            let salt = b"kmirror test salt".to_vec();
            let iterations = NonZeroU32::new(MIN_ITERATIONS).unwrap();
            let salted = hash.salted_password(password.as_bytes(), &salt, iterations);
            let salted_key = hmac::Key::new(hash.hmac(), &salted);
            let client_key = hmac::sign(&salted_key, b"Client Key");
            let stored_key = digest::digest(hash.digest(), client_key.as_ref())
                .as_ref()
                .to_vec();
            let server_key = hmac::sign(&salted_key, b"Server Key").as_ref().to_vec();
            Self {
                hash,
                saslname: escape_username(username),
                salt,
                iterations,
                stored_key,
                server_key,
                exchange: None,
            }
        }

        fn server_first(&mut self, client_first: &[u8]) -> Vec<u8> {
            let client_first = std::str::from_utf8(client_first).unwrap();
            let bare = client_first.strip_prefix("n,,").unwrap();
            let (name, nonce) = bare.split_once(',').unwrap();
            assert_eq!(name, format!("n={}", self.saslname));
            let nonce = format!("{}%server-nonce$", nonce.strip_prefix("r=").unwrap());
            let server_first = format!(
                "r={nonce},s={},i={}",
                BASE64.encode(&self.salt),
                self.iterations
            );
            self.exchange = Some((bare.to_owned(), server_first.clone(), nonce));
            server_first.into_bytes()
        }

        /// Checks the client proof; `Err` is the `e=` value to send.
        fn server_final(&self, client_final: &[u8]) -> Result<Vec<u8>, &'static str> {
            let (client_first_bare, server_first, nonce) = self.exchange.as_ref().unwrap();
            let client_final = std::str::from_utf8(client_final).unwrap();
            let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
            assert_eq!(without_proof, format!("c=biws,r={nonce}"));
            let proof = BASE64.decode(proof).unwrap();

            let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
            let stored_key = hmac::Key::new(self.hash.hmac(), &self.stored_key);
            let client_signature = hmac::sign(&stored_key, auth_message.as_bytes());
            let client_key: Vec<u8> = proof
                .iter()
                .zip(client_signature.as_ref())
                .map(|(p, s)| p ^ s)
                .collect();
            let recomputed = digest::digest(self.hash.digest(), &client_key);
            if proof.len() != self.stored_key.len() || recomputed.as_ref() != self.stored_key {
                return Err("invalid-proof");
            }
            let server_key = hmac::Key::new(self.hash.hmac(), &self.server_key);
            let signature = hmac::sign(&server_key, auth_message.as_bytes());
            Ok(format!("v={}", BASE64.encode(signature)).into_bytes())
        }
    }

    #[test]
    fn full_exchange_with_a_test_server() {
        for hash in [ScramHash::Sha512, ScramHash::Sha256] {
            let mut server = TestServer::new(hash, "mirror,user=1", "s3cret");
            let mut client = ScramClient::new(hash, "mirror,user=1", "s3cret").unwrap();
            let server_first = server.server_first(&client.initial_response());
            let client_final = client.handle_challenge(&server_first).unwrap().unwrap();
            let server_final = server.server_final(&client_final).unwrap();
            assert_eq!(client.handle_challenge(&server_final), Ok(None));
            assert!(client.is_complete(), "{hash:?}");
        }
    }

    #[test]
    fn wrong_password_is_detected_by_the_server() {
        let mut server = TestServer::new(ScramHash::Sha512, "mirror", "s3cret");
        let mut client = ScramClient::new(ScramHash::Sha512, "mirror", "wrong").unwrap();
        let server_first = server.server_first(&client.initial_response());
        let client_final = client.handle_challenge(&server_first).unwrap().unwrap();
        let refusal = server.server_final(&client_final).unwrap_err();
        assert_eq!(refusal, "invalid-proof");
        let err = client
            .handle_challenge(format!("e={refusal}").as_bytes())
            .unwrap_err();
        assert_eq!(
            err,
            SaslError::ServerError {
                message: "invalid-proof".into()
            }
        );
        assert!(!client.is_complete());
    }

    #[test]
    fn forged_server_signature_is_refused_by_the_client() {
        let mut server = TestServer::new(ScramHash::Sha512, "mirror", "s3cret");
        let mut client = ScramClient::new(ScramHash::Sha512, "mirror", "s3cret").unwrap();
        let server_first = server.server_first(&client.initial_response());
        let client_final = client.handle_challenge(&server_first).unwrap().unwrap();
        // The real server accepts the proof, but a man in the middle who does
        // not know the password answers with a signature of its own.
        server.server_final(&client_final).unwrap();
        let impostor = TestServer::new(ScramHash::Sha512, "mirror", "guess");
        let forged_key = hmac::Key::new(ScramHash::Sha512.hmac(), &impostor.server_key);
        let (client_first_bare, server_first, _) = server.exchange.clone().unwrap();
        let client_final = String::from_utf8(client_final).unwrap();
        let (without_proof, _) = client_final.rsplit_once(",p=").unwrap();
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let forged = hmac::sign(&forged_key, auth_message.as_bytes());
        let forged = format!("v={}", BASE64.encode(forged));
        assert_eq!(
            client.handle_challenge(forged.as_bytes()),
            Err(SaslError::ServerSignatureMismatch)
        );
        assert!(!client.is_complete());
    }
}
