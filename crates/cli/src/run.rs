//! Running the mirror: the engine's configuration from the settings, the
//! signals that stop it, the status output, and the exit code.
//!
//! Ctrl+C or SIGTERM stops gracefully (stop fetching, drain in-flight
//! batches, commit) and exits 0; a second signal exits at once with 130,
//! losing nothing that was committed (uncommitted records are mirrored
//! again on the next start).

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use kmirror::engine::admin::COPIED_TOPIC_CONFIGS;
use kmirror::fetch_plan::IsolationLevel as EngineIsolation;
use kmirror::protocol::ResponseError;
use kmirror::{
    FetchConfig, Metrics, MetricsSnapshot, Mirror, MirrorConfig, MirrorError, OffsetReset,
    ProduceConfig, RunMode, RunSummary, Side, StopHandle,
};
use kmirror_pool::PoolError;

use kmirror::engine::failover::{Failover, FailoverError};

use crate::exit::{CliError, Exit};
use crate::logging::ProgressLine;
use crate::preflight::connect_error;
use crate::settings::{AutoOffsetReset, IsolationLevel, MirrorSettings};

/// Status line interval in continuous mode without a terminal.
const CONTINUOUS_STATUS: Duration = Duration::from_secs(30);
/// Status line interval with `--once` without a terminal.
const ONCE_STATUS: Duration = Duration::from_secs(5);
/// Redraw interval of the progress display on a terminal.
const TERMINAL_REFRESH: Duration = Duration::from_secs(1);

/// The engine's configuration for `settings`.
pub fn engine_config(settings: &MirrorSettings) -> MirrorConfig {
    let consumer = &settings.consumer;
    let producer = &settings.producer;
    let mut config = MirrorConfig::new(
        settings.source.clone(),
        settings.destination.clone(),
        settings.selector.clone(),
        consumer.group_id.clone(),
    );
    config.fetch = FetchConfig {
        group_id: consumer.group_id.clone(),
        offset_reset: match consumer.auto_offset_reset {
            AutoOffsetReset::Earliest => OffsetReset::Earliest,
            AutoOffsetReset::Latest => OffsetReset::Latest,
            AutoOffsetReset::None => OffsetReset::None,
        },
        isolation: match consumer.isolation_level {
            IsolationLevel::ReadCommitted => EngineIsolation::ReadCommitted,
            IsolationLevel::ReadUncommitted => EngineIsolation::ReadUncommitted,
        },
        max_bytes: consumer.fetch_max_bytes,
        max_partition_bytes: consumer.max_partition_fetch_bytes,
        max_wait: consumer.fetch_max_wait,
        min_bytes: consumer.fetch_min_bytes,
        check_crcs: consumer.check_crcs,
        membership: consumer.membership.clone(),
    };
    let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    config.produce = ProduceConfig {
        acks: producer.acks.wire_value(),
        compression: producer.compression,
        compression_level: producer
            .compression
            .and_then(|c| producer.compression_levels.for_codec(c)),
        batch_size: to_usize(u64::from(producer.batch_size)),
        max_request_size: to_usize(u64::from(producer.max_request_size)),
        buffer_memory: to_usize(producer.buffer_memory),
        delivery_timeout: producer.delivery_timeout,
        // Java's default, i32::MAX, is "for ever".
        retries: (producer.retries < i32::MAX.unsigned_abs()).then_some(producer.retries),
        max_in_flight: usize::from(producer.max_in_flight.clamp(1, 5)),
        retry_backoff: settings.destination.retry_backoff,
        replication_factor: producer.replication_factor,
    };
    config.streams = usize::from(settings.run.num_streams.max(1));
    config.offset_map_topic = settings
        .run
        .offset_map
        .then(|| kmirror::translation::offset_map_topic(&settings.run.source_alias));
    config.commit_interval = settings.run.offset_commit_interval;
    config.abort_on_send_failure = settings.run.abort_on_send_failure;
    config.mode = if settings.run.once {
        RunMode::Once
    } else {
        RunMode::Continuous
    };
    // New topics are found as often as the consumer refreshes metadata
    // (`metadata.max.age.ms`), as a Java consumer's pattern subscription
    // does.
    config.topic_refresh_interval = settings.source.metadata_max_age;
    config.partition_by_key = settings.run.partition_by_key.clone();
    if let Some(threads) = settings.run.slow_path_threads {
        config.slow_path_workers = usize::from(threads);
    }
    config
}

/// Runs the mirror on the current runtime until it stops.
pub async fn run(
    settings: &MirrorSettings,
    source: kmirror_pool::Cluster,
    destination: kmirror_pool::Cluster,
    endpoint: Option<&crate::http::Endpoint>,
) -> Result<RunSummary, CliError> {
    let config = engine_config(settings);
    tracing::debug!(configs = ?COPIED_TOPIC_CONFIGS, "topic configs copied to topics kmirror creates");
    let once = config.mode == RunMode::Once;
    let group_sync = match &settings.run.sync_group_offsets {
        Some((pattern, every)) => Some(tokio::spawn(sync_group_offsets(
            Failover::new(
                source.clone(),
                destination.clone(),
                &settings.run.source_alias,
                settings.producer.replication_factor,
            ),
            crate::failover_cmd::group_pattern(pattern)?,
            settings.consumer.group_id.clone(),
            *every,
        ))),
        None => None,
    };
    let mirror = Mirror::with_clusters(config, source, destination)
        .await
        .map_err(|e| mirror_error(settings, e))?;
    let stop = mirror.stop_handle();
    let metrics = mirror.metrics();
    if let Some(endpoint) = endpoint {
        endpoint.attach(metrics.clone());
    }
    let signals = tokio::spawn(watch_signals(stop.clone()));
    let status = tokio::spawn(report_status(metrics.clone(), once));
    let result = mirror.run().await;
    signals.abort();
    status.abort();
    if let Some(task) = group_sync {
        task.abort();
    }
    clear_progress_line();
    let summary = result.map_err(|e| mirror_error(settings, e))?;
    Ok(summary)
}

/// `--sync.group.offsets`: every `every`, the source groups matching
/// `groups` (kmirror's own excepted) are translated, recorded as
/// checkpoints and committed on the destination where their group has no
/// members; a failure is logged and tried again next time.
async fn sync_group_offsets(
    failover: Failover,
    groups: regex::Regex,
    own_group: String,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let index = match failover.index().await {
            Ok(index) => index,
            Err(e) => {
                tracing::debug!(error = %e, "group offset sync: no offset map to read yet");
                continue;
            }
        };
        let names = match failover.source_groups().await {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(error = %e, "group offset sync: cannot list the source's groups");
                continue;
            }
        };
        for group in names
            .iter()
            .filter(|g| **g != own_group && groups.is_match(g))
        {
            match failover.sync_group(&index, group, false, false).await {
                Ok(sync) => {
                    let untranslated = sync.plans.iter().filter(|p| p.translation.is_err()).count();
                    tracing::info!(
                        %group,
                        committed = sync.committed.len(),
                        untranslated,
                        skipped = sync.skipped.as_deref().unwrap_or(""),
                        "group offsets synced to the destination"
                    );
                }
                Err(FailoverError::NothingCommitted { .. }) => {}
                Err(e) => {
                    tracing::warn!(%group, error = %e, "group offset sync failed; trying again at the next interval")
                }
            }
        }
    }
}

/// The final line: what was copied, and how; then, when they happened,
/// the out-of-range offsets reset and the time quotas held kmirror back.
pub fn summary_line(summary: &RunSummary, elapsed: Duration) -> String {
    let m = &summary.metrics;
    let mut extra = String::new();
    if m.offset_resets > 0 {
        extra.push_str(&format!(
            "; {} reset per auto.offset.reset (out of range)",
            plural(
                usize::try_from(m.offset_resets).unwrap_or(usize::MAX),
                "partition position",
                "partition positions"
            )
        ));
    }
    if m.truncations > 0 {
        extra.push_str(&format!(
            "; {} truncated on the source below the mirror's position (unclean leader election): \
             {} offsets replaced, their old records kept on the destination",
            plural(
                usize::try_from(m.truncations).unwrap_or(usize::MAX),
                "partition",
                "partitions"
            ),
            m.truncated_records
        ));
    }
    if !m.fetch_throttled.is_zero() || !m.produce_throttled.is_zero() {
        extra.push_str(&format!(
            "; throttled by quotas for {:.1} s on the source and {:.1} s on the destination",
            m.fetch_throttled.as_secs_f64(),
            m.produce_throttled.as_secs_f64()
        ));
    }
    format!(
        "kmirror: mirrored {} records ({}) from {} in {:.1} s: {} batches passed through \
         untouched, {} rebuilt on the slow path, {} skipped (control, aborted or empty); {} \
         retried, {} refused{}{extra}",
        m.records,
        human_bytes(m.bytes),
        plural(summary.topics.len(), "topic", "topics"),
        elapsed.as_secs_f64(),
        m.passthrough_batches,
        m.slow_path_batches,
        m.skipped_batches,
        m.retried_batches,
        m.failed_batches,
        if m.written_off_records > 0 {
            format!(" ({} records skipped)", m.written_off_records)
        } else {
            String::new()
        }
    )
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The exit code and message for an engine error.
pub fn mirror_error(settings: &MirrorSettings, e: MirrorError) -> CliError {
    match e {
        MirrorError::Cluster { side, source } => {
            let (role, file) = match side {
                Side::Source => ("source", settings.consumer_file.display().to_string()),
                Side::Destination => ("destination", settings.producer_file.display().to_string()),
            };
            match source {
                e @ (PoolError::Unreachable { .. }
                | PoolError::Auth { .. }
                | PoolError::Tls { .. }
                | PoolError::Config(_)
                | PoolError::ZooKeeper { .. }) => connect_error(role, &file, e),
                e => CliError::new(Exit::Failure, format!("{role} cluster ({file}): {e}")),
            }
        }
        e @ (MirrorError::NoStartOffset { .. }
        | MirrorError::Refused {
            error:
                ResponseError::InconsistentGroupProtocol
                | ResponseError::FencedInstanceId
                | ResponseError::UnreleasedInstanceId,
            ..
        }) => CliError::new(Exit::Config, e.to_string()),
        e @ MirrorError::Internal(_) => CliError::new(Exit::Internal, e.to_string()),
        e => CliError::new(Exit::Failure, e.to_string()),
    }
}

/// Stops the mirror on the first Ctrl+C or SIGTERM; exits at once on the
/// second.
async fn watch_signals(stop: StopHandle) {
    let mut signals = 0;
    loop {
        if !next_signal().await {
            return;
        }
        signals += 1;
        if signals == 1 {
            tracing::info!(
                "stop requested: draining in-flight batches and committing (signal again to exit at once)"
            );
            stop.stop();
        } else {
            clear_progress_line();
            let _ = writeln!(
                std::io::stderr(),
                "kmirror: stopped at once; offsets committed so far are kept, and records after them are mirrored again on the next start"
            );
            std::process::exit(130);
        }
    }
}

/// Waits for Ctrl+C or SIGTERM; false if signals cannot be watched.
#[cfg(unix)]
async fn next_signal() -> bool {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return tokio::signal::ctrl_c().await.is_ok();
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.is_ok(),
        r = term.recv() => r.is_some(),
    }
}

/// Waits for Ctrl+C; false if it cannot be watched.
#[cfg(not(unix))]
async fn next_signal() -> bool {
    tokio::signal::ctrl_c().await.is_ok()
}

fn clear_progress_line() {
    ProgressLine::stderr().clear();
}

/// On a terminal, a progress display redrawn every second; otherwise a
/// status line every few seconds (`--once`) or every 30 s.
async fn report_status(metrics: std::sync::Arc<Metrics>, once: bool) {
    // JSON log lines stay JSON lines: status lines are log events then.
    let terminal = std::io::stderr().is_terminal() && !crate::logging::json_lines();
    let every = match (terminal, once) {
        (true, _) => TERMINAL_REFRESH,
        (false, true) => ONCE_STATUS,
        (false, false) => CONTINUOUS_STATUS,
    };
    let started = Instant::now();
    let mut last = (Instant::now(), metrics.snapshot());
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let snapshot = metrics.snapshot();
        let line = status_line(
            &last.1,
            &snapshot,
            now.duration_since(last.0),
            started.elapsed(),
            once,
        );
        last = (now, snapshot);
        if terminal {
            // Log lines written meanwhile go above it (logging.rs).
            ProgressLine::stderr().show(&line);
        } else {
            tracing::info!("{line}");
        }
    }
}

/// One status line: totals, rate over the last interval, lag, and with
/// `--once` what remains and an ETA.
pub fn status_line(
    before: &MetricsSnapshot,
    now: &MetricsSnapshot,
    interval: Duration,
    elapsed: Duration,
    once: bool,
) -> String {
    let secs = interval.as_secs_f64().max(0.001);
    let records = now.records.saturating_sub(before.records);
    let bytes = now.bytes.saturating_sub(before.bytes);
    let rate_records = records as f64 / secs;
    let mut line = format!(
        "{} records, {} mirrored ({:.0} records/s, {}/s), lag {} records, {} partitions, {:.0} s",
        now.records,
        human_bytes(now.bytes),
        rate_records,
        human_bytes((bytes as f64 / secs) as u64),
        now.lag,
        now.partitions,
        elapsed.as_secs_f64()
    );
    if once {
        let eta = if rate_records > 0.0 {
            format!("{:.0} s", now.remaining as f64 / rate_records)
        } else {
            "-".to_owned()
        };
        line.push_str(&format!(", {} records to go, ETA {eta}", now.remaining));
    }
    line
}

/// `512 B`, `1.5 MiB`, `2.0 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match (unit, UNITS.get(unit)) {
        (0, _) => format!("{n} B"),
        (_, Some(u)) => format!("{value:.1} {u}"),
        _ => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn the_summary_counts_out_of_range_resets_and_throttling() {
        let quiet = RunSummary {
            metrics: MetricsSnapshot {
                records: 10,
                ..Default::default()
            },
            topics: vec!["t".into()],
        };
        let line = summary_line(&quiet, Duration::from_secs(1));
        assert!(!line.contains("reset"), "{line}");
        assert!(!line.contains("throttled"), "{line}");
        let eventful = RunSummary {
            metrics: MetricsSnapshot {
                records: 10,
                offset_resets: 2,
                fetch_throttled: Duration::from_millis(1500),
                ..Default::default()
            },
            topics: vec!["t".into()],
        };
        let line = summary_line(&eventful, Duration::from_secs(1));
        assert!(
            line.contains("; 2 partition positions reset per auto.offset.reset (out of range)"),
            "{line}"
        );
        assert!(
            line.contains(
                "throttled by quotas for 1.5 s on the source and 0.0 s on the destination"
            ),
            "{line}"
        );
        // The counters the end-to-end tests read keep their place.
        assert!(line.contains("0 rebuilt on the slow path"), "{line}");
    }

    #[test]
    fn status_line_shows_rate_lag_and_eta() {
        let before = MetricsSnapshot {
            records: 1_000,
            bytes: 1024 * 1024,
            ..Default::default()
        };
        let now = MetricsSnapshot {
            records: 3_000,
            bytes: 3 * 1024 * 1024,
            lag: 40,
            remaining: 4_000,
            partitions: 8,
            ..Default::default()
        };
        let line = status_line(
            &before,
            &now,
            Duration::from_secs(2),
            Duration::from_secs(9),
            true,
        );
        assert!(line.contains("3000 records"), "{line}");
        assert!(line.contains("1000 records/s"), "{line}");
        assert!(line.contains("1.0 MiB/s"), "{line}");
        assert!(line.contains("lag 40"), "{line}");
        assert!(line.contains("ETA 4 s"), "{line}");
    }
}
