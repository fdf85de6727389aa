//! `replay_broker live`: BENCH-ONLY. One process plays both clusters for
//! `cargo xtask latency` (docs/performance.md, "Latency"), so that one
//! monotonic clock times both ends of kmirror:
//!
//! - the **source** listener serves a topic of `--partitions` partitions
//!   that starts empty (at `--start-offset`); once kmirror fetches every
//!   partition, a generator appends batches of `--batch-records` 1 KiB
//!   records (`--codec`) round-robin over the partitions, `--rate` records
//!   per second in all, for `--seconds` seconds (`log.rs`,
//!   `generator.rs`). Fetch is answered as Apache Kafka answers it: at once
//!   when `fetch.min.bytes` are there, else parked until an append brings
//!   them or `fetch.max.wait.ms` runs out (`fetch.rs`);
//! - the **destination** listener acknowledges every Produce at once and
//!   matches each batch it carries to the source batch it copies, taking
//!   the time from the batch's append to the moment the Produce request
//!   was read whole (`latency.rs`).
//!
//! Batches appended in the first `--warmup-ms` milliseconds are left out of
//! the figures. After the last append it waits (at most `--drain-seconds`)
//! for every batch to arrive, prints one line `result key=value ...` (times
//! in µs) and serves on until its stdin ends; `stats` on stdin prints the
//! line again. Not a broker: no persistence, no replication, one topic.

use std::io::{BufRead as _, Write as _};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kmirror_benches::RECORD_SIZE;

use crate::{Args, Result, Topic, accept, bind, codec};

mod fetch;
mod generator;
mod latency;
mod log;

use fetch::Outcome;
pub(crate) use fetch::{FetchCall, fetch};
use generator::{Pace, micros};
use latency::{Percentiles, Recorder};
use log::SourceLog;

/// The most record bytes a run may hold in memory.
const MAX_RUN_BYTES: f64 = 4.0 * 1024.0 * 1024.0 * 1024.0;
/// The batch interval per partition the default `--batch-records` aims at
/// (librdkafka's `linger.ms=5`).
const LINGER: f64 = 0.005;
/// How long the generator waits for kmirror to fetch every partition once
/// it fetched one.
const ALL_FETCHED_WAIT: Duration = Duration::from_secs(5);
/// How many of the slowest batches go to stderr.
const SLOWEST: usize = 10;

/// What both listeners share.
pub(crate) struct Live {
    log: SourceLog,
    recorder: Recorder,
    /// When the measured window opens (the end of the warm-up).
    measured_from: OnceLock<Instant>,
    /// When the last batch was appended.
    ended: OnceLock<Instant>,
    fetches: Mutex<FetchTally>,
}

/// Fetch requests that arrived within the measured window.
#[derive(Debug, Default)]
struct FetchTally {
    immediate: u64,
    woken: u64,
    timed_out: u64,
    /// From a connection's previous Fetch response written to this Fetch
    /// read whole, µs: kmirror's turnaround between fetches.
    gaps: Vec<u64>,
}

impl Live {
    fn in_window(&self, at: Instant) -> bool {
        self.measured_from.get().is_some_and(|from| at >= *from)
            && self.ended.get().is_none_or(|end| at <= *end)
    }

    /// ListOffsets on the source.
    pub(crate) fn list_offset(&self, partition: i32, timestamp: i64) -> i64 {
        self.log.list_offset(partition, timestamp)
    }

    /// The destination received `records` for `partition` (read whole at
    /// `arrived`).
    pub(crate) fn received(&self, partition: i32, records: &Bytes, arrived: Instant) {
        self.recorder.record(&self.log, partition, records, arrived);
    }

    fn note_fetch(&self, call: &FetchCall<'_>, outcome: Outcome, _written: Instant) {
        if !self.in_window(call.arrived) {
            return;
        }
        let mut tally = self.fetches.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Outcome::Immediate => tally.immediate += 1,
            Outcome::Woken => tally.woken += 1,
            Outcome::TimedOut => tally.timed_out += 1,
        }
        if let Some(previous) = call.previous {
            tally
                .gaps
                .push(micros(call.arrived.saturating_duration_since(previous)));
        }
    }
}

/// The mode's options.
struct Settings {
    topic: String,
    pace: Pace,
    seconds: u64,
    warmup: Duration,
    drain: Duration,
    start_timeout: Duration,
}

impl Settings {
    fn parse(opts: &Args) -> Result<Self> {
        let at_least_one = |flag: &str, default: u64| -> Result<u64> {
            match opts.number(flag, default)? {
                0 => Err(format!("{flag} must be at least 1").into()),
                n => Ok(n),
            }
        };
        let partitions = usize::try_from(at_least_one("--partitions", 8)?)?;
        if partitions > 100_000 {
            return Err("--partitions must be at most 100000".into());
        }
        let rate = at_least_one("--rate", 30_000)?;
        let seconds = at_least_one("--seconds", 10)?;
        let default_batch = ((rate as f64 * LINGER / partitions as f64).round() as u64).max(1);
        let batch_records = usize::try_from(at_least_one("--batch-records", default_batch)?)?;
        let warmup = Duration::from_millis(opts.number("--warmup-ms", 1000)?);
        if warmup >= Duration::from_secs(seconds) {
            return Err("--warmup-ms must be shorter than --seconds".into());
        }
        let run_bytes = rate as f64 * seconds as f64 * RECORD_SIZE as f64;
        if run_bytes > MAX_RUN_BYTES {
            return Err(format!(
                "--rate {rate} for --seconds {seconds} would hold {:.1} GiB of records in memory \
                 (at most 4)",
                run_bytes / 1024f64.powi(3)
            )
            .into());
        }
        let batches = ((rate * seconds) as usize).div_ceil(batch_records);
        let start_offset = i64::try_from(opts.number("--start-offset", 0)?)?;
        Ok(Self {
            topic: opts.text("--topic", "replay"),
            pace: Pace {
                partitions,
                rate: rate as f64,
                batch_records,
                batches,
                codec: codec(&opts.text("--codec", "lz4"))?,
                start_offset,
            },
            seconds,
            warmup,
            drain: Duration::from_secs(opts.number("--drain-seconds", 30)?),
            start_timeout: Duration::from_secs(opts.number("--start-seconds", 120)?),
        })
    }
}

/// Runs the mode (see the module's doc comment).
pub(crate) fn run(opts: &Args) -> Result<()> {
    let settings = Settings::parse(opts)?;
    let pace = &settings.pace;
    let batches = generator::prepare(pace)?;
    let batch_bytes: usize = batches.iter().map(|b| b.bytes.len()).sum();
    eprintln!(
        "replay_broker live: {} batches of {} records ({} bytes on average), {} partitions, {} records/s for {} s",
        batches.len(),
        pace.batch_records,
        batch_bytes / batches.len().max(1),
        pace.partitions,
        pace.rate,
        settings.seconds
    );
    let partitions = i32::try_from(pace.partitions)?;
    let live = Arc::new(Live {
        log: SourceLog::new(pace.partitions, pace.start_offset),
        recorder: Recorder::new(pace.partitions),
        measured_from: OnceLock::new(),
        ended: OnceLock::new(),
        fetches: Mutex::new(FetchTally::default()),
    });
    let source = Topic::live(settings.topic.clone(), partitions, true, live.clone());
    let destination = Topic::live(settings.topic.clone(), partitions, false, live.clone());
    let (source_listener, source_addr) = bind(&opts.text("--listen", "127.0.0.1:0"))?;
    let (destination_listener, destination_addr) =
        bind(&opts.text("--listen-destination", "127.0.0.1:0"))?;
    accept(source_listener, source_addr, Arc::new(source));
    accept(
        destination_listener,
        destination_addr,
        Arc::new(destination),
    );

    wait_for_fetchers(&live.log, settings.start_timeout)?;
    let start = Instant::now();
    // Debug shows the raw clock (CLOCK_MONOTONIC on Linux), to line the
    // slow batches below up with `perf record -k CLOCK_MONOTONIC` traces.
    eprintln!("replay_broker live: generator started at {start:?}");
    let _ = live.measured_from.set(start + settings.warmup);
    let lateness = generator::publish(&live.log, batches, pace.interval(), start)?;
    let ended = Instant::now();
    let _ = live.ended.set(ended);
    let expected = u64::try_from(pace.batches)?;
    let deadline = ended + settings.drain;
    while live.recorder.batches() < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    report_slowest(&live, pace, start, &lateness);
    let line = result_line(&live, &settings, ended - start, batch_bytes, lateness);
    println!("{line}");
    std::io::stdout().flush()?;
    for command in std::io::stdin().lock().lines() {
        if command?.trim() == "stats" {
            println!("{line}");
            std::io::stdout().flush()?;
        }
    }
    Ok(())
}

/// Waits until kmirror fetches every partition (or, once it fetched one,
/// at most [`ALL_FETCHED_WAIT`]).
fn wait_for_fetchers(log: &SourceLog, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    loop {
        if log.all_fetched() {
            return Ok(());
        }
        let now = Instant::now();
        if first.is_none() && log.any_fetched() {
            first = Some(now);
        }
        if first.is_some_and(|f| now - f >= ALL_FETCHED_WAIT) {
            eprintln!("replay_broker live: not every partition fetched; starting anyway");
            return Ok(());
        }
        if first.is_none() && now - started >= timeout {
            return Err(format!(
                "no Fetch within {} s: is kmirror running against the source listener?",
                timeout.as_secs()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The slowest batches shown with each part of their time, on stderr: with
/// the generator's worst lateness around the same append (the batches
/// appended just before and after), which tells a stall of the whole
/// machine (the generator late too) from one of kmirror's.
fn report_slowest(live: &Live, pace: &Pace, start: Instant, lateness: &[u64]) {
    let tally = live.recorder.tally();
    let mut measured: Vec<_> = tally
        .samples
        .iter()
        .filter(|s| live.in_window(s.appended))
        .collect();
    measured.sort_by_key(|s| std::cmp::Reverse(s.received.saturating_duration_since(s.appended)));
    for s in measured.iter().take(SLOWEST) {
        let k = s.index * pace.partitions + s.partition;
        let near = lateness
            .get(k.saturating_sub(pace.partitions)..(k + pace.partitions).min(lateness.len()))
            .and_then(|l| l.iter().max())
            .copied()
            .unwrap_or(0);
        let span = |from: Instant, to: Instant| micros(to.saturating_duration_since(from));
        let (in_log, in_kmirror) = s.served.map_or(("?".to_owned(), "?".to_owned()), |at| {
            (
                span(s.appended, at).to_string(),
                span(at, s.received).to_string(),
            )
        });
        eprintln!(
            "replay_broker live: slow batch at {:.1} ms: partition {} batch {}: {} us = {} us in the log + {} us in kmirror; generator late by up to {near} us around it",
            s.appended.saturating_duration_since(start).as_secs_f64() * 1000.0,
            s.partition,
            s.index,
            span(s.appended, s.received),
            in_log,
            in_kmirror,
        );
    }
}

/// The one-line result: counts, and percentiles in µs of the whole time
/// (`latency_us`), of its part in the source log (`in_log_us`: append to
/// the Fetch response carrying it written) and of its part after
/// (`in_kmirror_us`: that response written to the Produce read whole), of
/// the gap between a Fetch response and the next Fetch (`fetch_gap_us`),
/// and of how late the generator appended (`late_us`).
fn result_line(
    live: &Live,
    settings: &Settings,
    ran: Duration,
    batch_bytes: usize,
    lateness: Vec<u64>,
) -> String {
    let pace = &settings.pace;
    let tally = live.recorder.tally();
    let measured: Vec<_> = tally
        .samples
        .iter()
        .filter(|s| live.in_window(s.appended))
        .collect();
    let span = |from: Instant, to: Instant| micros(to.saturating_duration_since(from));
    let total = Percentiles::of(
        measured
            .iter()
            .map(|s| span(s.appended, s.received))
            .collect(),
    );
    let in_log = Percentiles::of(
        measured
            .iter()
            .filter_map(|s| Some(span(s.appended, s.served?)))
            .collect(),
    );
    let in_kmirror = Percentiles::of(
        measured
            .iter()
            .filter_map(|s| Some(span(s.served?, s.received)))
            .collect(),
    );
    let fetches = live.fetches.lock().unwrap_or_else(PoisonError::into_inner);
    let gaps = Percentiles::of(fetches.gaps.clone());
    let late = Percentiles::of(lateness);
    let appended = pace.batches as u64;
    let records = appended * pace.batch_records as u64;
    format!(
        "result batches={appended} received={} measured={} missing={} mismatches={} unexpected={} \
         partitions={} records_per_batch={} batch_bytes_mean={} codec_bytes={batch_bytes} \
         rate={} achieved_rate={:.0} seconds={:.3} warmup_ms={} \
         {} {} {} fetches={} fetch_immediate={} fetch_woken={} fetch_timed_out={} {} {}",
        tally.batches,
        total.count,
        appended.saturating_sub(tally.batches),
        tally.mismatches,
        tally.unexpected,
        pace.partitions,
        pace.batch_records,
        batch_bytes / pace.batches.max(1),
        pace.rate,
        records as f64 / ran.as_secs_f64().max(1e-9),
        ran.as_secs_f64(),
        settings.warmup.as_millis(),
        total.fields("latency_us"),
        in_log.fields("in_log_us"),
        in_kmirror.fields("in_kmirror_us"),
        fetches.immediate + fetches.woken + fetches.timed_out,
        fetches.immediate,
        fetches.woken,
        fetches.timed_out,
        gaps.fields("fetch_gap_us"),
        late.fields("late_us"),
    )
}
