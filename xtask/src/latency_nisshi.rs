//! `cargo xtask latency --nisshi`: the end-to-end latency on two fresh
//! nisshi brokers, the manual procedure of docs/performance.md as one
//! command. It measures the brokers' share with kmirror's, and nisshi
//! answers a parked fetch only when `fetch.max.wait.ms` runs out, so it
//! says more about nisshi than about kmirror (`cargo xtask latency`
//! without `--nisshi` isolates kmirror).
//!
//! Per run: two nisshi brokers (memory storage, groups formed at once);
//! `xtask/python/latency_probe.py setup` creates topic `lat` (8 partitions,
//! LogAppendTime) on both; kmirror mirrors it (continuous, under GNU time)
//! and, once it logs that it is mirroring, the probe produces `--rate`
//! records/s of 1 KiB for `--seconds` s with librdkafka (lz4,
//! `linger.ms=5`); a pause (2 s plus twice `fetch.max.wait.ms`) lets kmirror
//! copy the tail; kmirror is stopped with SIGINT; the probe reads both
//! topics and matches records by the sequence number in their value:
//! latency = destination append time - source append time (both
//! LogAppendTime, same host clock, whole milliseconds).

use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{
    BROKER_ARGS, Broker, Guarded, Profile, SCRIPT_TIMEOUT, build_kmirror, describe_status,
    ensure_tools, scratch_dir, tail, wait_timeout, write_file,
};
use crate::latency::{
    LatencyOptions, RECORD_BYTES, TimedKmirror, load_average, source_state, write_properties,
};
use crate::timing::Timed;
use crate::{Result, paths};

/// The probe's topic.
const TOPIC: &str = "lat";
/// kmirror's default `fetch.max.wait.ms`.
const DEFAULT_FETCH_WAIT_MS: u64 = 500;
/// How long kmirror may take to join and start mirroring.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One run's figures.
struct Row {
    /// `/proc/loadavg`'s first three fields before the run.
    load: String,
    produced: String,
    matched: u64,
    source: u64,
    /// p50, p90, p99, p99.9, max in ms.
    percentiles: [u64; 5],
    kmirror: Timed,
}

/// Runs the probe `opts.runs` times and prints and writes the rows.
pub(crate) fn run(opts: &LatencyOptions) -> Result<()> {
    let (nisshi, python) = ensure_tools()?;
    let kmirror = build_kmirror(Profile::Release)?;
    let probe = paths::xtask_dir().join("python").join("latency_probe.py");
    let dir = scratch_dir("latency");
    let mut rows = Vec::new();
    for n in 1..=opts.runs {
        let run_dir = dir.join(format!("nisshi-run-{n}"));
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
        println!(
            "latency --nisshi: run {n} of {} (load average {})",
            opts.runs,
            load_average()
        );
        let row = measure(opts, &nisshi, &python, &probe, &kmirror, &run_dir)?;
        println!(
            "latency --nisshi: {}; {} of {} records matched; ms p50 {}, p99 {}, max {}",
            row.produced,
            row.matched,
            row.source,
            row.percentiles[0],
            row.percentiles[2],
            row.percentiles[4]
        );
        rows.push(row);
    }
    let table = table(opts, &rows);
    println!("\n{table}");
    let doc = format!(
        "# End-to-end latency on nisshi (`cargo xtask latency {}`)\n\n{table}\n- two nisshi \
         brokers ({}), topic `{TOPIC}` with 8 partitions and LogAppendTime on both\n- producer: \
         librdkafka from Python (xtask/python/latency_probe.py), lz4, linger.ms=5, 1 KiB \
         records\n- kmirror: continuous, `--num.streams {}`, fetch.max.wait.ms={}\n- latency: \
         destination append time - source append time per record (ms)\n- kmirror: {}\n- per \
         run, the producer's line and the load average before it: {}\n",
        opts.args.join(" "),
        BROKER_ARGS.join(" "),
        opts.streams,
        opts.fetch_max_wait_ms.unwrap_or(DEFAULT_FETCH_WAIT_MS),
        source_state(),
        rows.iter()
            .map(|r| format!("{} (load {})", r.produced, r.load))
            .collect::<Vec<_>>()
            .join("; "),
    );
    write_file(&dir.join("results.md"), &doc)?;
    println!("written to {}", dir.join("results.md").display());
    Ok(())
}

fn table(opts: &LatencyOptions, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| records/s | MB/s | fetch.max.wait.ms | streams | records matched | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | kmirror CPU-s | kmirror peak RSS MiB |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in rows {
        let [p50, p90, p99, p999, max] = row.percentiles;
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {} | {} of {} | {p50} | {p90} | {p99} | {p999} | {max} | {:.2} | {:.1} |",
            opts.rate,
            opts.rate as f64 * RECORD_BYTES as f64 / 1e6,
            opts.fetch_max_wait_ms.unwrap_or(DEFAULT_FETCH_WAIT_MS),
            opts.streams,
            row.matched,
            row.source,
            row.kmirror.cpu(),
            row.kmirror.rss_kib as f64 / 1024.0,
        );
    }
    out
}

fn measure(
    opts: &LatencyOptions,
    nisshi: &Path,
    python: &Path,
    probe: &Path,
    kmirror: &Path,
    dir: &Path,
) -> Result<Row> {
    let load = load_average();
    let source = Broker::start(nisshi, "source", dir, BROKER_ARGS)?;
    let destination = Broker::start(nisshi, "destination", dir, BROKER_ARGS)?;
    let (src, dst) = (source.addr.to_string(), destination.addr.to_string());
    let step = |name: &str, args: &[&str], timeout: Duration| {
        let all: Vec<&str> = [src.as_str(), dst.as_str()]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        run_probe(python, probe, dir, name, &all, timeout)
    };
    step("setup", &["0", "0", "0", "setup"], SCRIPT_TIMEOUT)?;
    write_properties(dir, &src, &dst, opts.fetch_max_wait_ms)?;
    let mut mirror = TimedKmirror::start(kmirror, dir, TOPIC, opts.streams)?;
    mirror.wait_mirroring(START_TIMEOUT)?;
    println!(
        "latency --nisshi: kmirror mirrors {src} to {dst}; producing {} records/s for {} s",
        opts.rate, opts.seconds
    );
    let (rate, seconds) = (opts.rate.to_string(), opts.seconds.to_string());
    let produce_timeout = Duration::from_secs(opts.seconds * 4 + 60);
    let produced = step(
        "produce",
        &[&rate, &seconds, &RECORD_BYTES.to_string(), "produce"],
        produce_timeout,
    )?;
    mirror.check_running()?;
    let wait = opts.fetch_max_wait_ms.unwrap_or(DEFAULT_FETCH_WAIT_MS);
    std::thread::sleep(Duration::from_millis(2000 + 2 * wait));
    let kmirror_time = mirror.stop()?;
    let read = step("read", &["0", "0", "0", "read"], SCRIPT_TIMEOUT)?;
    let (matched, source_records, percentiles) = parse_read(&read)?;
    Ok(Row {
        load,
        produced: produced.trim().to_owned(),
        matched,
        source: source_records,
        percentiles,
        kmirror: kmirror_time,
    })
}

/// Runs one step of the probe; returns its standard output.
fn run_probe(
    python: &Path,
    probe: &Path,
    dir: &Path,
    name: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String> {
    let out = dir.join(format!("probe-{name}.stdout"));
    let err = dir.join(format!("probe-{name}.stderr"));
    let create = |path: &Path| {
        File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
    };
    let mut child = Guarded(
        Command::new(python)
            .arg(probe)
            .args(args)
            .current_dir(dir)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(create(&out)?)
            .stderr(create(&err)?)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?,
    );
    let status = wait_timeout(&mut child.0, timeout)?.ok_or_else(|| {
        format!(
            "the probe's {name} step ran longer than {} s; its stderr:\n{}",
            timeout.as_secs(),
            tail(&err, 3000)
        )
    })?;
    if !status.success() {
        return Err(format!(
            "the probe's {name} step exited {}; its stderr:\n{}",
            describe_status(status),
            tail(&err, 3000)
        ));
    }
    std::fs::read_to_string(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))
}

/// `records N (source M); latency ms: p50 A, p90 B, p99 C, p99.9 D, max E`.
fn parse_read(text: &str) -> Result<(u64, u64, [u64; 5])> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("records "))
        .ok_or_else(|| format!("the probe's read step printed no result:\n{text}"))?;
    let bad = || format!("cannot read the probe's result {line:?}");
    let (head, figures) = line.split_once("; latency ms: ").ok_or_else(bad)?;
    let counts: Vec<u64> = head
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(')').parse().ok())
        .collect();
    let [matched, source] = counts[..] else {
        return Err(bad());
    };
    let value = |name: &str| -> Result<u64> {
        figures
            .split(", ")
            .filter_map(|f| f.split_once(' '))
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.trim().parse().ok())
            .ok_or_else(bad)
    };
    Ok((
        matched,
        source,
        [
            value("p50")?,
            value("p90")?,
            value("p99")?,
            value("p99.9")?,
            value("max")?,
        ],
    ))
}
