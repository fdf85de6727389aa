//! Secrets in the configuration: passwords that must never reach a log line,
//! a `Debug` print or an error message.
//!
//! This file owns [`Secret`] (a string that prints as `[redacted]`) and the
//! rule that decides which configuration keys hold secrets
//! ([`is_secret_key`]). It never logs anything.

use std::fmt;

/// What a secret prints as, everywhere.
pub(crate) const REDACTED: &str = "[redacted]";

/// A password or other secret taken from the configuration.
///
/// `Debug` and `Display` print `[redacted]`; the only way to the text is
/// [`Secret::expose`], so a secret cannot end up in a log line or an error
/// message by accident.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the code that sends it to a broker or decrypts
    /// a key with it. Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Secret(secret)
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Secret(secret.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Whether the value of configuration key `key` is a secret that must not be
/// shown: any key containing `password`, `jaas` or `secret` (in any case),
/// and `ssl.keystore.key` (an inline private key).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password")
        || key.contains("jaas")
        || key.contains("secret")
        || key == "ssl.keystore.key"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("alice-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        assert_eq!(s.expose(), "alice-secret");
        assert!(!s.is_empty());
        assert!(Secret::default().is_empty());
    }

    #[test]
    fn secret_keys() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.truststore.password",
            "sasl.jaas.config",
            "SASL.JAAS.CONFIG",
            "sasl.oauthbearer.client.secret",
            "ssl.keystore.key",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["sasl.username", "bootstrap.servers", "ssl.key.location"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}
