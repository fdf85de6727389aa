//! The errors of reading a client configuration.
//!
//! This file owns [`ConfigError`]. Every message names what is wrong (the
//! file, the line, the key, the value) and says what to change. Values of
//! secret keys (see [`is_secret_key`](super::is_secret_key)) are replaced by
//! `[redacted]` when the error is built, so neither `Display` nor `Debug` can
//! leak them.

use std::path::PathBuf;

use super::secret::{REDACTED, is_secret_key};

/// An invalid or unreadable client configuration.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file could not be read.
    #[error("cannot read {what} {}: {reason}; {hint}", path.display())]
    Read {
        /// What the file is, e.g. `consumer config`.
        what: String,
        /// The path given.
        path: PathBuf,
        /// The operating system's reason, e.g. `No such file or directory`.
        reason: String,
        /// What to do about it.
        hint: String,
    },

    /// A `.properties` file breaks the syntax (the only such case in Java's
    /// format is a malformed `\uXXXX` escape).
    #[error("{source_name} line {line}: {reason}")]
    Syntax {
        /// The file's path, or a name for text that came from elsewhere.
        source_name: String,
        /// The 1-based line where the offending key/value pair starts.
        line: usize,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// A key has a value kmirror cannot use.
    #[error("invalid value {} for {key}; allowed: {allowed}", quoted(value))]
    InvalidValue {
        /// The key.
        key: String,
        /// The value as written (`[redacted]` for secret keys).
        value: String,
        /// What the key accepts.
        allowed: String,
    },

    /// A required setting is absent.
    #[error("missing {what}; {hint}")]
    Missing {
        /// What is missing, naming the key(s).
        what: String,
        /// What to set.
        hint: String,
    },

    /// A valid Kafka setting that kmirror does not support.
    #[error("{key}={} is not supported by kmirror; {hint}", quoted(value))]
    Unsupported {
        /// The key.
        key: String,
        /// The value as written (`[redacted]` for secret keys).
        value: String,
        /// What to use instead.
        hint: String,
    },

    /// Two settings that say the same thing say different things.
    #[error("{first} and {second} are both set and disagree; {hint}")]
    Conflict {
        /// The first key (or keys).
        first: String,
        /// The second key (or keys).
        second: String,
        /// Which one to keep.
        hint: String,
    },

    /// `sasl.jaas.config` cannot be parsed. The message never contains the
    /// value.
    #[error(
        "cannot parse sasl.jaas.config: {reason}; write it as Java clients do, e.g. \
         sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
         username=\"alice\" password=\"alice-secret\";"
    )]
    Jaas {
        /// What is wrong, with the character position.
        reason: String,
    },
}

impl ConfigError {
    /// An [`ConfigError::InvalidValue`], with the value redacted if `key` is
    /// a secret key.
    pub(crate) fn invalid_value(key: &str, value: &str, allowed: impl Into<String>) -> Self {
        ConfigError::InvalidValue {
            key: key.to_owned(),
            value: shown_value(key, value),
            allowed: allowed.into(),
        }
    }

    /// An [`ConfigError::Unsupported`], with the value redacted if `key` is a
    /// secret key.
    pub(crate) fn unsupported(key: &str, value: &str, hint: impl Into<String>) -> Self {
        ConfigError::Unsupported {
            key: key.to_owned(),
            value: shown_value(key, value),
            hint: hint.into(),
        }
    }

    /// A [`ConfigError::Missing`].
    pub(crate) fn missing(what: impl Into<String>, hint: impl Into<String>) -> Self {
        ConfigError::Missing {
            what: what.into(),
            hint: hint.into(),
        }
    }

    /// A [`ConfigError::Conflict`].
    pub(crate) fn conflict(
        first: impl Into<String>,
        second: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        ConfigError::Conflict {
            first: first.into(),
            second: second.into(),
            hint: hint.into(),
        }
    }
}

/// The value as an error may show it.
fn shown_value(key: &str, value: &str) -> String {
    if is_secret_key(key) {
        REDACTED.to_owned()
    } else {
        value.to_owned()
    }
}

/// A value in quotes (with escapes for control characters), or the bare
/// `[redacted]` marker.
fn quoted(value: &str) -> String {
    if value == REDACTED {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_value_names_key_value_and_allowed() {
        let e = ConfigError::invalid_value("security.protocol", "TLS", "PLAINTEXT or SSL");
        assert_eq!(
            e.to_string(),
            "invalid value \"TLS\" for security.protocol; allowed: PLAINTEXT or SSL"
        );
    }

    #[test]
    fn secret_values_are_redacted_in_display_and_debug() {
        let e = ConfigError::invalid_value("sasl.password", "hunter2", "anything");
        assert!(!e.to_string().contains("hunter2"));
        assert!(!format!("{e:?}").contains("hunter2"));
        assert!(e.to_string().contains("[redacted]"));
        let e = ConfigError::unsupported("sasl.jaas.config", "x password=\"hunter2\"", "no");
        assert!(!e.to_string().contains("hunter2"));
        assert!(!format!("{e:?}").contains("hunter2"));
    }

    #[test]
    fn read_error_message() {
        let e = ConfigError::Read {
            what: "consumer config".into(),
            path: "/x/consumer.properties".into(),
            reason: "No such file or directory".into(),
            hint: "pass the path of an existing file to --consumer.config".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot read consumer config /x/consumer.properties: No such file or directory; \
             pass the path of an existing file to --consumer.config"
        );
    }
}
