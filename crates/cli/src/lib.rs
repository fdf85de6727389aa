//! # kmirror-cli
//!
//! The `kmirror` command line: a drop-in for Apache Kafka's MirrorMaker 1
//! that takes the same flags and `.properties` files.
//!
//! - [`args`]: the flags (`--consumer.config`, `--producer.config`,
//!   `--whitelist`/`--include`, `--blacklist`/`--exclude`, `--num.streams`,
//!   `--offset.commit.interval.ms`, `--abort.on.send.failure`, `--once`),
//!   parsed with clap, and clap's errors reworded into one paragraph;
//! - [`settings`]: the two files and the flags checked into typed
//!   [`MirrorSettings`](settings::MirrorSettings);
//! - [`preflight`]: connecting to both clusters and reporting what is there;
//! - [`exit`]: the exit codes, the error type and the panic hook;
//! - [`logging`]: the binary's `tracing` subscriber (`RUST_LOG`,
//!   `--log.format json`) and the terminal's progress line;
//! - [`http`], [`exposition`], [`process`]: `--metrics.listen`'s
//!   `/metrics`, `/health` and `/ready`.
//!
//! Only the binary installs the panic hook and the subscriber; the engine
//! (`kmirror`) never does.
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod args;
pub mod exit;
pub mod exposition;
pub mod failover_cmd;
pub mod http;
pub mod logging;
pub mod preflight;
pub mod process;
pub mod run;
pub mod settings;

pub use exit::{CliError, Exit};
