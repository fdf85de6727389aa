//! The binary's log output: `tracing` events as text lines on stderr.

use std::io::IsTerminal as _;

use tracing::Level;

/// Installs a `tracing` subscriber that writes `INFO` and above (`DEBUG`
/// and above if `verbose`) to stderr, without targets, in colour only on a
/// terminal. Does nothing if a subscriber is already installed.
pub fn init(verbose: bool) {
    let level = if verbose { Level::DEBUG } else { Level::INFO };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_max_level(level)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Logs a [`Notice`](crate::settings::Notice) at its level.
pub fn notice(notice: &crate::settings::Notice) {
    match notice.level {
        crate::settings::NoticeLevel::Info => tracing::info!("{}", notice.text),
        crate::settings::NoticeLevel::Warn => tracing::warn!("{}", notice.text),
    }
}
