//! `cargo xtask latency`: what a record waits between its append on the
//! source and its arrival on the destination, at a steady produce rate.
//!
//! By default kmirror's own share: one BENCH-ONLY `replay_broker live`
//! process (kmirror-benches) plays both clusters, so one clock times both
//! ends. Its source appends batches of 1 KiB records at `--rate` records/s
//! round-robin over `--partitions` partitions and answers Fetch as Apache
//! Kafka does (a parked fetch returns as soon as `fetch.min.bytes` are
//! there); its destination acknowledges every Produce at once and times
//! each batch from its append on the source to the moment the Produce
//! carrying it was read whole. kmirror runs between them continuously
//! (`--num.streams S`, default consumer and producer settings) under GNU
//! time and is stopped with SIGINT once every batch has arrived.
//!
//! 1. Builds kmirror and `replay_broker` (release, as `cargo xtask replay`).
//! 2. Per run: starts `replay_broker live`, writes the two properties files,
//!    runs kmirror, waits for the live broker's result line (it prints it
//!    when every batch arrived, or after 30 s), stops kmirror with SIGINT
//!    and checks it exits 0 and that every batch arrived unchanged.
//! 3. Prints one row per run and writes `<target>/xtask/latency/results.md`.
//!
//! `--nisshi` runs the end-to-end probe on two nisshi brokers instead
//! (`latency_nisshi.rs`).

use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{
    Guarded, Profile, build_kmirror, describe_status, scratch_dir, tail, wait_timeout, write_file,
};
use crate::replay::CODECS;
use crate::replay_process::{Replay, build_replay};
use crate::timing::{
    GNU_TIME, GNU_TIME_FORMAT, Timed, clock_ticks, cpu_secs, interrupt_timed, machine_busy_secs,
    read_time, require_gnu_time,
};
use crate::{Options, Result, latency_nisshi};

/// The mirrored topic.
const TOPIC: &str = "latency";
/// kmirror's consumer group.
const GROUP: &str = "kmirror-latency";
/// The default rate, "half load": 30,000 records/s of 1 KiB (30.7 MB/s of
/// records), about half of the 60-77 MB/s librdkafka produced into nisshi
/// in `cargo xtask bench` (docs/performance.md).
pub(crate) const HALF_LOAD: u64 = 30_000;
/// How long kmirror may take to stop after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the live broker waits for kmirror's first Fetch.
const START_SECONDS: u64 = 60;
/// The record size of both modes.
pub(crate) const RECORD_BYTES: u64 = 1024;

/// `cargo xtask latency`'s options.
#[derive(Debug, Clone)]
pub(crate) struct LatencyOptions {
    pub(crate) rate: u64,
    pub(crate) seconds: u64,
    partitions: u32,
    codec: String,
    pub(crate) streams: u32,
    batch_records: Option<u64>,
    pub(crate) runs: u32,
    nisshi: bool,
    pub(crate) fetch_max_wait_ms: Option<u64>,
    /// The command line, for the results file.
    pub(crate) args: Vec<String>,
}

/// Reads the options (see the usage text in `main.rs`).
pub(crate) fn parse_options(rest: &[String]) -> Result<LatencyOptions> {
    let nisshi = rest.iter().any(|arg| arg == "--nisshi");
    let others: Vec<String> = rest.iter().filter(|a| *a != "--nisshi").cloned().collect();
    let mut opts = Options::parse(
        &others,
        &[
            "--rate",
            "--seconds",
            "--partitions",
            "--codec",
            "--streams",
            "--batch-records",
            "--runs",
            "--fetch-max-wait-ms",
        ],
    )?;
    if nisshi {
        for flag in ["--partitions", "--codec", "--batch-records"] {
            if opts.take(flag).is_some() {
                return Err(format!(
                    "{flag} does not go with --nisshi: the probe (xtask/python/latency_probe.py) \
                     produces to 8 partitions with librdkafka, lz4 and linger.ms=5"
                ));
            }
        }
    }
    let number = |opts: &mut Options, flag: &str, min: u64| -> Result<Option<u64>> {
        match opts.take(flag) {
            None => Ok(None),
            Some(text) => match text.parse::<u64>() {
                Ok(n) if n >= min => Ok(Some(n)),
                _ => Err(format!(
                    "{flag} expects a whole number of at least {min}, got {text:?}"
                )),
            },
        }
    };
    let small = |n: Option<u64>, default: u32, flag: &str| -> Result<u32> {
        n.map_or(Ok(default), |n| {
            u32::try_from(n).map_err(|_| format!("{flag} is too large"))
        })
    };
    let rate = number(&mut opts, "--rate", 1)?.unwrap_or(HALF_LOAD);
    let seconds = number(&mut opts, "--seconds", 2)?.unwrap_or(10);
    let partitions = small(number(&mut opts, "--partitions", 1)?, 8, "--partitions")?;
    let streams = small(number(&mut opts, "--streams", 1)?, 1, "--streams")?;
    let runs = small(number(&mut opts, "--runs", 1)?, 1, "--runs")?;
    let batch_records = number(&mut opts, "--batch-records", 1)?;
    let fetch_max_wait_ms = number(&mut opts, "--fetch-max-wait-ms", 0)?;
    let codec = opts.take("--codec").unwrap_or_else(|| "lz4".to_owned());
    if !CODECS.contains(&codec.as_str()) {
        return Err(format!(
            "--codec expects one of {}, got {codec:?}",
            CODECS.join(", ")
        ));
    }
    Ok(LatencyOptions {
        rate,
        seconds,
        partitions,
        codec,
        streams,
        batch_records,
        runs,
        nisshi,
        fetch_max_wait_ms,
        args: rest.to_vec(),
    })
}

/// Runs the measurement.
pub(crate) fn run(opts: &LatencyOptions) -> Result<()> {
    require_gnu_time()?;
    if opts.nisshi {
        return latency_nisshi::run(opts);
    }
    let kmirror = build_kmirror(Profile::Release)?;
    let replay = build_replay(&kmirror)?;
    let dir = scratch_dir("latency");
    let mut rows = Vec::new();
    for n in 1..=opts.runs {
        let run_dir = dir.join(format!("run-{n}"));
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
        println!(
            "latency: run {n} of {} (load average {})",
            opts.runs,
            load_average()
        );
        let row = measure(opts, &kmirror, &replay, &run_dir)?;
        println!("latency: {}", row.raw);
        rows.push(row);
    }
    let table = table(opts, &rows)?;
    println!("\n{table}");
    let mut doc = String::new();
    let _ = writeln!(
        doc,
        "# kmirror's added latency (`cargo xtask latency {}`)\n",
        opts.args.join(" ")
    );
    let _ = writeln!(doc, "{table}");
    let _ = writeln!(
        doc,
        "- source and destination: one `replay_broker live` process (bench-only); 1 KiB records, \
         codec {}, {} partitions, {} records/s for {} s, the first second left out\n\
         - kmirror: continuous, `--num.streams {}`, default consumer and producer settings{}, \
         stopped with SIGINT\n- times from a batch's append on the source to the Produce carrying \
         it read whole; `in log` = append to the Fetch response carrying it written, `in kmirror` = \
         that response written to the Produce read\n\nThe live broker's result lines (µs):\n",
        opts.codec,
        opts.partitions,
        opts.rate,
        opts.seconds,
        opts.streams,
        opts.fetch_max_wait_ms
            .map(|ms| format!(" but fetch.max.wait.ms={ms}"))
            .unwrap_or_default(),
    );
    for row in &rows {
        let _ = writeln!(doc, "    {}", row.raw);
    }
    for (n, row) in rows.iter().enumerate() {
        let _ = writeln!(
            doc,
            "\nRun {}, the slowest batches (the generator's lateness around them tells a stall \
             of the whole machine from one of kmirror's):\n",
            n + 1
        );
        for line in &row.slowest {
            let _ = writeln!(doc, "    {line}");
        }
    }
    let _ = writeln!(
        doc,
        "\nkmirror: {}; load average before each run: {}",
        source_state(),
        rows.iter()
            .map(|r| r.load.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    write_file(&dir.join("results.md"), &doc)?;
    println!("written to {}", dir.join("results.md").display());
    Ok(())
}

/// One run: the live broker's figures and kmirror's cost.
struct Row {
    figures: Vec<(String, f64)>,
    raw: String,
    kmirror: Timed,
    /// The live broker's CPU seconds while kmirror ran.
    live_cpu: f64,
    /// CPU seconds every other process used meanwhile.
    others: f64,
    /// `/proc/loadavg`'s first three fields before the run.
    load: String,
    /// The live broker's lines on its slowest batches.
    slowest: Vec<String>,
}

impl Row {
    fn get(&self, key: &str) -> Result<f64> {
        self.figures
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("the live broker's result lacks {key}: {}", self.raw))
    }

    /// A figure in µs as ms with 2 decimals.
    fn ms(&self, key: &str) -> Result<String> {
        Ok(format!("{:.2}", self.get(key)? / 1000.0))
    }
}

fn table(opts: &LatencyOptions, rows: &[Row]) -> Result<String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| cell | records/s | MB/s | batch records | batch bytes | batches measured | p50 ms | p99 ms | p99.9 ms | max ms | p99 in source log ms | p99 in kmirror ms | fetches woken/timed out/at once | kmirror CPU-s | kmirror peak RSS MiB | live broker CPU-s | other processes CPU-s |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in rows {
        let rate = row.get("rate")?;
        let _ = writeln!(
            out,
            "| {} p{} s{} | {rate:.0} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{}/{} | {:.2} | {:.1} | {:.2} | {:.2} |",
            opts.codec,
            opts.partitions,
            opts.streams,
            rate * RECORD_BYTES as f64 / 1e6,
            row.get("records_per_batch")?,
            row.get("batch_bytes_mean")?,
            row.get("measured")?,
            row.ms("latency_us_p50")?,
            row.ms("latency_us_p99")?,
            row.ms("latency_us_p999")?,
            row.ms("latency_us_max")?,
            row.ms("in_log_us_p99")?,
            row.ms("in_kmirror_us_p99")?,
            row.get("fetch_woken")?,
            row.get("fetch_timed_out")?,
            row.get("fetch_immediate")?,
            row.kmirror.cpu(),
            row.kmirror.rss_kib as f64 / 1024.0,
            row.live_cpu,
            row.others,
        );
    }
    Ok(out)
}

fn measure(opts: &LatencyOptions, kmirror: &Path, replay: &Path, dir: &Path) -> Result<Row> {
    let load = load_average();
    let mut command = Command::new(replay);
    command
        .arg("live")
        .args(["--topic", TOPIC])
        .args(["--partitions", &opts.partitions.to_string()])
        .args(["--rate", &opts.rate.to_string()])
        .args(["--seconds", &opts.seconds.to_string()])
        .args(["--codec", &opts.codec])
        .args(["--start-seconds", &START_SECONDS.to_string()])
        .current_dir(dir);
    if let Some(records) = opts.batch_records {
        command.args(["--batch-records", &records.to_string()]);
    }
    let mut live = Replay::start(&mut command, "live", dir)?;
    let second = live.line("live")?;
    let destination = second
        .strip_prefix("listening ")
        .ok_or_else(|| format!("the live broker printed {second:?} instead of `listening ADDR`"))?
        .to_owned();
    let source = live.addr.clone();
    write_properties(dir, &source, &destination, opts.fetch_max_wait_ms)?;
    println!(
        "latency: kmirror --num.streams {} from {source} to {destination} (replay_broker live: {} records/s, {} s, {} partitions, {})",
        opts.streams, opts.rate, opts.seconds, opts.partitions, opts.codec
    );
    let ticks = clock_ticks()?;
    let before = (machine_busy_secs(ticks)?, cpu_secs(live.pid(), ticks)?);
    let mirror = TimedKmirror::start(kmirror, dir, TOPIC, opts.streams)?;
    let line = match live.line("live") {
        Ok(line) => line,
        Err(e) => {
            return Err(format!(
                "{e}; kmirror's stderr:\n{}\nthe live broker's stderr:\n{}",
                tail(&dir.join("kmirror.stderr"), 3000),
                tail(&dir.join("live.stderr"), 2000)
            ));
        }
    };
    let raw = line
        .strip_prefix("result ")
        .ok_or_else(|| format!("the live broker printed {line:?} instead of its result"))?
        .to_owned();
    let after = (machine_busy_secs(ticks)?, cpu_secs(live.pid(), ticks)?);
    let kmirror_time = mirror.stop()?;
    live.stop();
    // kmirror's CPU after the result line (its stop) is small; counted
    // whole here, so `others` errs low.
    let live_cpu = after.1 - before.1;
    let others = (after.0 - before.0 - live_cpu - kmirror_time.cpu()).max(0.0);
    let figures: Vec<(String, f64)> = raw
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect();
    let row = Row {
        figures,
        raw,
        kmirror: kmirror_time,
        live_cpu,
        others,
        load,
        slowest: std::fs::read_to_string(dir.join("live.stderr"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("replay_broker live: slow batch "))
            .map(str::to_owned)
            .collect(),
    };
    let (missing, mismatches, unexpected) = (
        row.get("missing")?,
        row.get("mismatches")?,
        row.get("unexpected")?,
    );
    if missing != 0.0 || mismatches != 0.0 || unexpected != 0.0 {
        return Err(format!(
            "the destination did not receive every source batch unchanged ({missing} missing, \
             {mismatches} changed, {unexpected} unexpected): {}",
            row.raw
        ));
    }
    Ok(row)
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`): other work on
/// the machine shows in the tail.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// What kmirror was built from: the commit, and the files under `crates/`
/// that differ from it (the build takes the working tree as it is).
pub(crate) fn source_state() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(crate::paths::workspace_root())
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "built from a tree git does not describe".to_owned();
    };
    match git(&["status", "--porcelain", "--", "crates"]) {
        Some(changes) if !changes.is_empty() => format!(
            "built from commit {commit} with uncommitted changes in crates/ ({})",
            changes
                .lines()
                .filter_map(|l| l.get(3..))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!("built from commit {commit}"),
    }
}

/// `consumer.properties` and `producer.properties` in `dir`: defaults but
/// for the bootstrap servers, the group, `auto.offset.reset=earliest` and
/// `fetch.max.wait.ms` when given.
pub(crate) fn write_properties(
    dir: &Path,
    source: &str,
    destination: &str,
    fetch_max_wait_ms: Option<u64>,
) -> Result<()> {
    let mut consumer =
        format!("bootstrap.servers={source}\ngroup.id={GROUP}\nauto.offset.reset=earliest\n");
    if let Some(ms) = fetch_max_wait_ms {
        let _ = writeln!(consumer, "fetch.max.wait.ms={ms}");
    }
    write_file(&dir.join("consumer.properties"), &consumer)?;
    write_file(
        &dir.join("producer.properties"),
        &format!("bootstrap.servers={destination}\n"),
    )
}

/// kmirror mirroring continuously under GNU time, its output in
/// `kmirror.stdout` and `kmirror.stderr`.
pub(crate) struct TimedKmirror {
    child: Guarded,
    dir: std::path::PathBuf,
}

impl TimedKmirror {
    /// Starts `kmirror --whitelist TOPIC --num.streams S` with the
    /// properties files of `dir`.
    pub(crate) fn start(kmirror: &Path, dir: &Path, topic: &str, streams: u32) -> Result<Self> {
        let create = |name: &str| {
            File::create(dir.join(name)).map_err(|e| format!("cannot create {name}: {e}"))
        };
        let child = Guarded(
            Command::new(GNU_TIME)
                .args(["-f", GNU_TIME_FORMAT, "-o"])
                .arg(dir.join("kmirror.time"))
                .arg(kmirror)
                .args(["--consumer.config", "consumer.properties"])
                .args(["--producer.config", "producer.properties"])
                .args(["--whitelist", topic])
                .args(["--num.streams", &streams.to_string()])
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(create("kmirror.stdout")?)
                .stderr(create("kmirror.stderr")?)
                .spawn()
                .map_err(|e| format!("cannot run {GNU_TIME}: {e}"))?,
        );
        Ok(Self {
            child,
            dir: dir.to_path_buf(),
        })
    }

    /// Fails if kmirror has exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        match self.child.0.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "kmirror exited {} while it should be mirroring; its stderr:\n{}",
                describe_status(status),
                tail(&self.dir.join("kmirror.stderr"), 3000)
            )),
            Err(e) => Err(format!("cannot check on kmirror: {e}")),
        }
    }

    /// Waits up to `timeout` until kmirror logs that it is mirroring.
    pub(crate) fn wait_mirroring(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let log = self.dir.join("kmirror.stderr");
        loop {
            self.check_running()?;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("mirroring topic=") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "kmirror did not start mirroring within {} s; its stderr:\n{}",
                    timeout.as_secs(),
                    tail(&log, 3000)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops kmirror as Ctrl+C does, checks it exits 0, and returns GNU
    /// time's figures.
    pub(crate) fn stop(mut self) -> Result<Timed> {
        self.check_running()?;
        interrupt_timed(self.child.0.id())?;
        let status = wait_timeout(&mut self.child.0, STOP_TIMEOUT)?.ok_or_else(|| {
            format!(
                "kmirror did not exit within {} s of SIGINT",
                STOP_TIMEOUT.as_secs()
            )
        })?;
        if !status.success() {
            return Err(format!(
                "kmirror exited {} after SIGINT; its stderr:\n{}",
                describe_status(status),
                tail(&self.dir.join("kmirror.stderr"), 3000)
            ));
        }
        read_time(&self.dir.join("kmirror.time"))
    }
}
