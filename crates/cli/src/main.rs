//! The `kmirror` binary: parse the flags, check the configuration, connect
//! to both clusters.
//!
//! Exit codes (see `kmirror_cli::exit`): 0 success, 1 runtime failure, 2
//! usage error, 3 configuration error, 4 cannot connect, 70 internal error,
//! 130 a second Ctrl+C or SIGTERM during the graceful stop.
//! Every error is one paragraph on stderr starting with `kmirror: error: `.
//!
//! After the preflight, the mirror runs until Ctrl+C or SIGTERM (or, with
//! `--once`, until caught up). In debug builds only, the environment variable
//! `KMIRROR_TEST_PANIC` makes it panic at start, so that tests can check
//! the panic hook.
#![forbid(unsafe_code)]

use std::io::Write as _;

/// The dist build's allocator (`--features jemalloc`, turned on by `cargo
/// xtask dist`): musl's malloc cost the slow path 2.3-2.8 times the CPU
/// of glibc's; jemalloc costs less than glibc's (docs/performance.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use std::process::ExitCode;

use kmirror_cli::args::{self, Args, Invocation, LogFormat};
use kmirror_cli::settings::MirrorSettings;
use kmirror_cli::{CliError, Exit, exit, failover_cmd, http, logging, preflight, run};

fn main() -> ExitCode {
    exit::install_panic_hook();
    if cfg!(debug_assertions) && std::env::var_os("KMIRROR_TEST_PANIC").is_some() {
        panic!("KMIRROR_TEST_PANIC is set");
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if failover_cmd::is_failover_command(argv.get(1)) {
        return match failover_cmd::main(argv) {
            Ok(()) => Exit::Success.into(),
            Err(e) => e.report(),
        };
    }
    let args = match args::parse(argv) {
        Ok(Invocation::Run(args)) => args,
        Ok(Invocation::Print(text)) => {
            let _ = write!(std::io::stdout().lock(), "{text}");
            return Exit::Success.into();
        }
        Err(e) => return e.report(),
    };
    let rust_log = std::env::var(logging::FILTER_VAR).ok();
    let filter = match logging::filter(rust_log.as_deref(), args.verbose) {
        Ok(filter) => filter,
        Err(message) => return CliError::new(Exit::Usage, message).report(),
    };
    logging::init(filter, args.log_format, rust_log.is_some());
    match run(&args) {
        Ok(()) => Exit::Success.into(),
        Err(e) if args.log_format == LogFormat::Json => {
            // One more JSON line rather than a plain one among them.
            tracing::error!(exit_code = e.exit().code(), "{}", e.message());
            e.exit().into()
        }
        Err(e) => e.report(),
    }
}

/// The runtime's worker threads: one per stream, at most one per CPU.
///
/// A stream is one task, and its I/O tasks mostly wake one another: with
/// more workers than streams, idle workers are woken (a futex call and a
/// context switch) for nearly every batch. At a steady 30,000 records/s one
/// stream used about 45% less CPU on one worker than on two, with the same
/// latency (`cargo xtask latency`, docs/performance.md). Slow-path rebuilds
/// run on the blocking pool, not on these workers.
fn worker_threads(streams: u16) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    usize::from(streams).clamp(1, cpus)
}

/// Everything after parsing.
fn run(args: &Args) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let settings = MirrorSettings::load(args)?;
    settings.notices.iter().for_each(logging::notice);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads(settings.run.num_streams))
        .enable_all()
        .build()
        .map_err(|e| CliError::new(Exit::Failure, format!("cannot start the runtime: {e}")))?;
    let summary = runtime.block_on(async {
        // Listening first: a port in use fails at once, and /health
        // answers while the clusters are being reached.
        let endpoint = match settings.run.metrics_listen {
            Some(addr) => Some(
                http::Endpoint::start(
                    addr,
                    http::EndpointOptions {
                        partitions: settings.run.metrics_partitions,
                        stall_after: settings.run.ready_stall,
                    },
                )
                .await?,
            ),
            None => None,
        };
        let (report, source, destination) = preflight::check_connected(&settings).await?;
        for line in report.lines() {
            tracing::info!("{line}");
        }
        run::run(&settings, source, destination, endpoint.as_ref()).await
    })?;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", run::summary_line(&summary, started.elapsed()));
    Ok(())
}
