//! How `kmirror` ends: its exit codes, its one-paragraph error messages and
//! the panic hook that turns a bug into a one-line report.
//!
//! # Exit codes
//!
//! | code | meaning |
//! | ---- | ------- |
//! | 0    | success: `--once` caught up and committed, or a clean stop (Ctrl+C, SIGTERM); also `--help`, `--version` |
//! | 1    | a runtime failure: a batch the destination refused for good with `--abort.on.send.failure true` (after committing what was acknowledged), damaged source data, a request refused for good |
//! | 2    | a usage error: a bad, missing, unknown or unsupported flag |
//! | 3    | a configuration error: an unreadable `.properties` file, a bad value, a bad topic pattern, a consumer group shared with members of another kind or a `group.instance.id` used twice, no start offset with `auto.offset.reset=none` |
//! | 4    | cannot connect: unreachable cluster, TLS or authentication failure |
//! | 70   | an internal error (a bug in kmirror; `EX_SOFTWARE` of `sysexits.h`) |
//!
//! Every error is printed on stderr as one paragraph (one line) starting
//! with `kmirror: error: `, saying what is wrong and how to fix it; a panic
//! prints one line starting with `kmirror: internal error: ` and exits 70,
//! never a backtrace.

use std::fmt;
use std::io::Write as _;

/// The exit codes of `kmirror` (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: success (`--once` caught up, a clean stop, `--help`,
    /// `--version`).
    Success,
    /// 1: a runtime failure (a send failure with `--abort.on.send.failure`,
    /// damaged source data, a request refused for good).
    Failure,
    /// 2: a usage error (a bad, missing, unknown or unsupported flag).
    Usage,
    /// 3: a configuration error (an unreadable file, a bad value, a bad
    /// topic pattern).
    Config,
    /// 4: cannot connect (an unreachable cluster, TLS, authentication).
    Connect,
    /// 70: an internal error (a bug).
    Internal,
}

impl Exit {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Config => 3,
            Exit::Connect => 4,
            Exit::Internal => 70,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// An error that ends `kmirror`: the exit code and a message that says what
/// is wrong and what to do, kept to one paragraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    exit: Exit,
    message: String,
}

impl CliError {
    /// An error with this exit code; line breaks in `message` are joined
    /// into one paragraph.
    pub fn new(exit: Exit, message: impl AsRef<str>) -> Self {
        Self {
            exit,
            message: one_paragraph(message.as_ref()),
        }
    }

    /// The exit code.
    pub fn exit(&self) -> Exit {
        self.exit
    }

    /// The message, without the `kmirror: error: ` prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prints `kmirror: error: <message>` on stderr (ignoring a closed
    /// stderr) and returns the exit code.
    pub fn report(&self) -> std::process::ExitCode {
        let _ = writeln!(std::io::stderr().lock(), "{self}");
        self.exit.into()
    }
}

impl fmt::Display for CliError {
    /// `kmirror: error: <message>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kmirror: error: {}", self.message)
    }
}

impl std::error::Error for CliError {}

/// `text` on one line: each line trimmed, blank lines dropped, the rest
/// joined with single spaces.
pub fn one_paragraph(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The line printed for a panic: `kmirror: internal error: <message> at
/// <file>:<line> (please report)`, on one line.
pub fn internal_error_line(message: Option<&str>, location: Option<(&str, u32)>) -> String {
    let message = one_paragraph(message.unwrap_or("a panic without a message"));
    let place = location
        .map(|(file, line)| format!(" at {file}:{line}"))
        .unwrap_or_default();
    format!("kmirror: internal error: {message}{place} (please report)")
}

/// Replaces the default panic output (message and backtrace hint) with
/// [`internal_error_line`] on stderr, then ends the process with exit code
/// 70 ([`Exit::Internal`]), whichever thread panicked.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| (l.file(), l.line()));
        let line = internal_error_line(info.payload_as_str(), location);
        let _ = writeln!(std::io::stderr().lock(), "{line}");
        std::process::exit(i32::from(Exit::Internal.code()));
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let codes: Vec<u8> = [
            Exit::Success,
            Exit::Failure,
            Exit::Usage,
            Exit::Config,
            Exit::Connect,
            Exit::Internal,
        ]
        .into_iter()
        .map(Exit::code)
        .collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 70]);
    }

    #[test]
    fn messages_are_one_paragraph_with_the_prefix() {
        let e = CliError::new(Exit::Config, "first line\n\n   second line  \n");
        assert_eq!(e.message(), "first line second line");
        assert_eq!(e.to_string(), "kmirror: error: first line second line");
        assert_eq!(e.exit(), Exit::Config);
        // Spaces inside a line are kept (they may be part of a value).
        assert_eq!(one_paragraph("a  \"b  c\""), "a  \"b  c\"");
    }

    #[test]
    fn internal_error_line_is_one_line() {
        assert_eq!(
            internal_error_line(Some("boom\nmore"), Some(("src/x.rs", 7))),
            "kmirror: internal error: boom more at src/x.rs:7 (please report)"
        );
        assert_eq!(
            internal_error_line(None, None),
            "kmirror: internal error: a panic without a message (please report)"
        );
    }
}
