//! `cargo xtask replay`: the mirror-only ceiling. kmirror between two
//! BENCH-ONLY replay brokers (`replay_broker` of kmirror-benches) that play
//! both clusters from memory, so only kmirror's own cost is measured, next
//! to a plain TCP relay of the same bytes (the physical floor).
//!
//! 1. Builds kmirror and `replay_broker` (release, two cargo invocations so
//!    the bench crate's features never reach kmirror's build).
//! 2. Starts the replay source (one topic, P partitions, each holding N
//!    copies of one 1 KiB-record batch of the chosen codec, N chosen so the
//!    topic holds about `--gb` GB of batches) and the replay destination
//!    (the topic already there; every Produce acknowledged at once).
//! 3. Runs `kmirror --once --num.streams S` under GNU time; the two replay
//!    brokers' CPU seconds from `/proc/<pid>/stat`.
//! 4. Checks that the destination received every batch, record and byte.
//! 5. The floor: `replay_broker blast` writes the same number of batch bytes
//!    over S connections through `replay_broker relay` (a read/write loop,
//!    under GNU time) into `replay_broker sink`, which times first to last
//!    byte.
//!
//! Results go to stdout and `<target>/xtask/replay/results.md`.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{
    Guarded, Profile, build_kmirror, describe_status, scratch_dir, tail, wait_timeout, write_file,
};
use crate::replay_process::{Replay, build_replay, read_line, stat};
use crate::timing::{
    GNU_TIME, GNU_TIME_FORMAT, Timed, clock_ticks, cpu_secs, read_time, require_gnu_time,
};
use crate::{Options, Result};

const TOPIC: &str = "replay";
const GROUP: &str = "kmirror-replay";
/// Codecs the replay brokers build batches with.
pub(crate) const CODECS: &[&str] = &["none", "lz4", "zstd", "gzip", "snappy"];
/// Bound on each timed run.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// `cargo xtask replay`'s options.
#[derive(Debug, Clone)]
pub(crate) struct ReplayOptions {
    gb: f64,
    partitions: u32,
    streams: u32,
    codec: String,
    batch_kib: u32,
    /// kmirror's `check.crcs` (its default: true).
    check_crcs: bool,
    /// kmirror's `compression.type`: another codec than the source's puts
    /// every batch on the slow path (decode, re-encode).
    compression: Option<String>,
    /// The kmirror builds measured, in turn.
    builds: Vec<Build>,
    /// Rounds over the builds.
    runs: u32,
    args: Vec<String>,
}

/// A kmirror build to measure (`--builds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Build {
    /// `cargo build --release`: the host's glibc target.
    Glibc,
    /// The release profile for `x86_64-unknown-linux-musl`: musl's libc
    /// and allocator, otherwise the same as `Glibc`.
    Musl,
    /// What `cargo xtask dist` ships: musl with the `dist` profile (fat
    /// LTO, one codegen unit, stripped) and jemalloc as the allocator.
    Dist,
    /// The same with musl's own allocator.
    DistMuslMalloc,
}

/// `--builds`' value: a comma-separated list of build names (default
/// `glibc`).
pub(crate) fn parse_builds(list: Option<&str>) -> Result<Vec<Build>> {
    let Some(list) = list else {
        return Ok(vec![Build::Glibc]);
    };
    list.split(',')
        .map(|name| match name.trim() {
            "glibc" => Ok(Build::Glibc),
            "musl" => Ok(Build::Musl),
            "dist" => Ok(Build::Dist),
            "dist-musl-malloc" => Ok(Build::DistMuslMalloc),
            other => Err(format!(
                "--builds expects a comma-separated list of glibc, musl, dist, \
                 dist-musl-malloc; got {other:?}"
            )),
        })
        .collect()
}

/// Builds each of `builds` (`glibc` is the release build already made)
/// and keeps a copy of each executable in `dir` (builds with other
/// features overwrite the same file).
pub(crate) fn build_all(
    builds: &[Build],
    glibc: &Path,
    dir: &Path,
) -> Result<Vec<(Build, PathBuf)>> {
    let mut binaries = Vec::new();
    for build in builds {
        let built = match build {
            Build::Glibc => glibc.to_path_buf(),
            Build::Musl => crate::dist::build_musl("release", &[])?,
            Build::Dist => crate::dist::build_musl("dist", &[crate::dist::DIST_FEATURES])?,
            Build::DistMuslMalloc => crate::dist::build_musl("dist", &[])?,
        };
        let kept = dir.join(format!("kmirror-{}", build.name()));
        std::fs::copy(&built, &kept)
            .map_err(|e| format!("cannot copy {} to {}: {e}", built.display(), kept.display()))?;
        binaries.push((*build, kept));
    }
    Ok(binaries)
}

impl Build {
    /// The build's name in `--builds` and in tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Build::Glibc => "glibc",
            Build::Musl => "musl",
            Build::Dist => "dist",
            Build::DistMuslMalloc => "dist-musl-malloc",
        }
    }
}

/// Reads the options (see the usage text in `main.rs`).
pub(crate) fn parse_options(rest: &[String]) -> Result<ReplayOptions> {
    let mut opts = Options::parse(
        rest,
        &[
            "--gb",
            "--partitions",
            "--streams",
            "--codec",
            "--batch-kib",
            "--check-crcs",
            "--builds",
            "--runs",
            "--compression",
        ],
    )?;
    let whole = |opts: &mut Options, flag: &str, default: u32| -> Result<u32> {
        match opts.take(flag) {
            None => Ok(default),
            Some(text) => match text.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(format!(
                    "{flag} expects a whole number of at least 1, got {text:?}"
                )),
            },
        }
    };
    let gb = match opts.take("--gb") {
        None => 2.0,
        Some(text) => match text.parse::<f64>() {
            Ok(gb) if gb > 0.0 && gb < 1000.0 => gb,
            _ => return Err(format!("--gb expects a positive number, got {text:?}")),
        },
    };
    let partitions = whole(&mut opts, "--partitions", 8)?;
    let streams = whole(&mut opts, "--streams", 1)?;
    let batch_kib = whole(&mut opts, "--batch-kib", 1023)?;
    let codec = opts.take("--codec").unwrap_or_else(|| "lz4".to_owned());
    if !CODECS.contains(&codec.as_str()) {
        return Err(format!(
            "--codec expects one of {}, got {codec:?}",
            CODECS.join(", ")
        ));
    }
    let check_crcs = match opts.take("--check-crcs").as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(format!("--check-crcs expects true or false, got {other:?}"));
        }
    };
    let runs = whole(&mut opts, "--runs", 1)?;
    let compression = opts.take("--compression");
    if let Some(c) = compression.as_deref()
        && !CODECS.contains(&c)
    {
        return Err(format!(
            "--compression expects one of {}, got {c:?}",
            CODECS.join(", ")
        ));
    }
    let builds = parse_builds(opts.take("--builds").as_deref())?;
    Ok(ReplayOptions {
        gb,
        partitions,
        streams,
        codec,
        batch_kib,
        check_crcs,
        compression,
        builds,
        runs,
        args: rest.to_vec(),
    })
}

/// What one kmirror run measured.
struct KmirrorRun {
    build: Build,
    bytes: u64,
    batches: u64,
    batch_bytes: u64,
    records_per_batch: u64,
    kmirror: Timed,
    summary: String,
    source_cpu: f64,
    destination_cpu: f64,
}

/// What the TCP relay of the same bytes measured.
struct RelayRun {
    relay: Timed,
    relay_secs: f64,
}

fn gbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e9 / secs.max(1e-9)
}

fn per_gb(cpu: f64, bytes: u64) -> f64 {
    cpu / (bytes as f64 / 1e9)
}

/// Runs the whole measurement: each build in turn, `--runs` rounds, then
/// the relay once.
pub(crate) fn run(opts: &ReplayOptions) -> Result<()> {
    require_gnu_time()?;
    let glibc = build_kmirror(Profile::Release)?;
    let replay = build_replay(&glibc)?;
    let dir = scratch_dir("replay");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let binaries = build_all(&opts.builds, &glibc, &dir)?;
    let ticks = clock_ticks()?;
    let mut runs = Vec::new();
    for round in 1..=opts.runs {
        for (build, kmirror) in &binaries {
            println!(
                "replay: round {round} of {}, {} build",
                opts.runs,
                build.name()
            );
            runs.push(measure_kmirror(
                opts, *build, kmirror, &replay, &dir, ticks,
            )?);
        }
    }
    let bytes = runs.first().map_or(0, |r| r.bytes);
    let relay = measure_relay(opts, &replay, &dir, bytes)?;
    let table = table(opts, &runs, &relay);
    println!("\n{table}");
    let mut doc = String::new();
    let _ = writeln!(
        doc,
        "# Mirror-only ceiling (`cargo xtask replay {}`)\n",
        opts.args.join(" ")
    );
    let _ = writeln!(doc, "{table}");
    for (build, path) in &binaries {
        let _ = writeln!(doc, "- {}: `{}`", build.name(), path.display());
    }
    if let Some(m) = runs.first() {
        let _ = writeln!(
            doc,
            "- batch: {} bytes, {} records of 1 KiB, codec {}; {} batches in {} partitions\n- kmirror: `{}`\n- relay: {} bytes in {:.3} s (sink first to last byte), relay process {:.2} s wall under GNU time",
            m.batch_bytes,
            m.records_per_batch,
            opts.codec,
            m.batches,
            opts.partitions,
            m.summary,
            m.bytes,
            relay.relay_secs,
            relay.relay.wall
        );
    }
    write_file(&dir.join("results.md"), &doc)?;
    println!("written to {}", dir.join("results.md").display());
    Ok(())
}

fn table(opts: &ReplayOptions, runs: &[KmirrorRun], relay: &RelayRun) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| cell | build | batch bytes | kmirror wall s | kmirror GB/s | kmirror CPU-s/GB | kmirror peak RSS MiB | replay brokers CPU-s (src+dst) | relay GB/s | relay CPU-s/GB | kmirror/relay GB/s | kmirror/relay CPU |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in runs {
        let k = &m.kmirror;
        let k_rate = gbps(m.bytes, k.wall);
        let r_rate = gbps(m.bytes, relay.relay_secs);
        let _ = writeln!(
            out,
            "| {} p{} s{}{}{} | {} | {} | {:.2} | {:.2} | {:.3} | {:.1} | {:.2} ({:.2}+{:.2}) | {:.2} | {:.3} | {:.2} | {:.1}x |",
            opts.codec,
            opts.partitions,
            opts.streams,
            if opts.check_crcs {
                ""
            } else {
                " check.crcs=false"
            },
            opts.compression
                .as_deref()
                .map_or_else(String::new, |c| format!(" to {c}")),
            m.build.name(),
            m.bytes,
            k.wall,
            k_rate,
            per_gb(k.cpu(), m.bytes),
            k.rss_kib as f64 / 1024.0,
            m.source_cpu + m.destination_cpu,
            m.source_cpu,
            m.destination_cpu,
            r_rate,
            per_gb(relay.relay.cpu(), m.bytes),
            k_rate / r_rate.max(1e-9),
            k.cpu() / relay.relay.cpu().max(1e-9),
        );
    }
    out
}

/// One `kmirror --once` between fresh replay brokers.
fn measure_kmirror(
    opts: &ReplayOptions,
    build: Build,
    kmirror: &Path,
    replay: &Path,
    dir: &Path,
    ticks: f64,
) -> Result<KmirrorRun> {
    let target_bytes = (opts.gb * 1e9) as u64;
    let common = |role: &str| {
        let mut c = Command::new(replay);
        c.arg(role)
            .args(["--topic", TOPIC])
            .args(["--partitions", &opts.partitions.to_string()])
            .args(["--codec", &opts.codec])
            .args(["--batch-kib", &opts.batch_kib.to_string()])
            .current_dir(dir);
        c
    };
    let mut source = Replay::start(
        common("source").args(["--bytes", &target_bytes.to_string()]),
        "source",
        dir,
    )?;
    let mut destination = Replay::start(&mut common("destination"), "destination", dir)?;
    let plan = source.stats("source")?;
    let batch_bytes = stat(&plan, "batch_bytes")?;
    let records_per_batch = stat(&plan, "records_per_batch")?;
    let batches = stat(&plan, "batches_per_partition")? * u64::from(opts.partitions);
    let bytes = batches * batch_bytes;
    println!(
        "replay: source {} ({batches} batches of {batch_bytes} bytes, {} records each, codec {}), destination {}",
        source.addr, records_per_batch, opts.codec, destination.addr
    );
    write_file(
        &dir.join("consumer.properties"),
        &format!(
            "bootstrap.servers={}\ngroup.id={GROUP}\nauto.offset.reset=earliest\ncheck.crcs={}\n",
            source.addr, opts.check_crcs
        ),
    )?;
    write_file(
        &dir.join("producer.properties"),
        &match &opts.compression {
            Some(codec) => format!(
                "bootstrap.servers={}\ncompression.type={codec}\n",
                destination.addr
            ),
            None => format!("bootstrap.servers={}\n", destination.addr),
        },
    )?;

    println!("replay: kmirror --once --num.streams {}", opts.streams);
    let time_file = dir.join("kmirror.time");
    let create =
        |name: &str| File::create(dir.join(name)).map_err(|e| format!("cannot create {name}: {e}"));
    let before = (
        cpu_secs(source.pid(), ticks)?,
        cpu_secs(destination.pid(), ticks)?,
    );
    let mut child = Guarded(
        Command::new(GNU_TIME)
            .args(["-f", GNU_TIME_FORMAT, "-o"])
            .arg(&time_file)
            .arg(kmirror)
            .args(["--consumer.config", "consumer.properties"])
            .args(["--producer.config", "producer.properties"])
            .args(["--whitelist", TOPIC, "--once"])
            .args(["--num.streams", &opts.streams.to_string()])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(create("kmirror.stdout")?)
            .stderr(create("kmirror.stderr")?)
            .spawn()
            .map_err(|e| format!("cannot run {GNU_TIME}: {e}"))?,
    );
    let status = wait_timeout(&mut child.0, RUN_TIMEOUT)?
        .ok_or_else(|| format!("kmirror did not finish within {} s", RUN_TIMEOUT.as_secs()))?;
    let after = (
        cpu_secs(source.pid(), ticks)?,
        cpu_secs(destination.pid(), ticks)?,
    );
    if !status.success() {
        return Err(format!(
            "kmirror --once exited {}; its stderr:\n{}",
            describe_status(status),
            tail(&dir.join("kmirror.stderr"), 4000)
        ));
    }
    let kmirror_time = read_time(&time_file)?;
    let summary = std::fs::read_to_string(dir.join("kmirror.stdout"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("kmirror: mirrored "))
        .unwrap_or("(no summary line)")
        .to_owned();
    let got = destination.stats("destination")?;
    let expected_records = batches * records_per_batch;
    let (got_batches, got_records, got_bytes) = (
        stat(&got, "batches")?,
        stat(&got, "records")?,
        stat(&got, "bytes")?,
    );
    // Recompressed on the slow path, the batches and their bytes differ;
    // every record must still arrive.
    let recompressed = opts.compression.as_deref().is_some_and(|c| c != opts.codec);
    let same = if recompressed {
        got_records == expected_records
    } else {
        (got_batches, got_records, got_bytes) == (batches, expected_records, bytes)
    };
    if !same || stat(&got, "crc_failed")? != 0 {
        return Err(format!(
            "the destination received {got_batches} batches, {got_records} records, {got_bytes} bytes \
             ({} CRC failures); the source holds {batches}, {expected_records}, {bytes}",
            stat(&got, "crc_failed")?
        ));
    }
    println!(
        "replay: kmirror {:.2} s; the destination received all {batches} batches ({bytes} bytes, CRC checked on {} of them)",
        kmirror_time.wall,
        stat(&got, "crc_checked")?
    );
    println!("replay: {summary}");
    source.stop();
    destination.stop();
    Ok(KmirrorRun {
        build,
        bytes,
        batches,
        batch_bytes,
        records_per_batch,
        kmirror: kmirror_time,
        summary,
        source_cpu: after.0 - before.0,
        destination_cpu: after.1 - before.1,
    })
}

/// The floor: the same bytes through a plain TCP relay.
fn measure_relay(opts: &ReplayOptions, replay: &Path, dir: &Path, bytes: u64) -> Result<RelayRun> {
    println!(
        "replay: TCP relay of the same {bytes} bytes over {} connection(s)",
        opts.streams
    );
    let connections = opts.streams.to_string();
    let mut sink = Replay::start(
        Command::new(replay)
            .args(["sink", "--connections", &connections])
            .current_dir(dir),
        "sink",
        dir,
    )?;
    let relay_time = dir.join("relay.time");
    let mut relay = Replay::start(
        Command::new(GNU_TIME)
            .args(["-f", GNU_TIME_FORMAT, "-o"])
            .arg(&relay_time)
            .arg(replay)
            .args([
                "relay",
                "--upstream",
                &sink.addr,
                "--connections",
                &connections,
            ])
            .current_dir(dir),
        "relay",
        dir,
    )?;
    let blast = Command::new(replay)
        .args([
            "blast",
            "--connect",
            &relay.addr,
            "--bytes",
            &bytes.to_string(),
        ])
        .args(["--streams", &connections, "--codec", &opts.codec])
        .args(["--batch-kib", &opts.batch_kib.to_string()])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the blast: {e}"))?;
    if !blast.status.success() {
        return Err(format!(
            "the blast failed: {}",
            String::from_utf8_lossy(&blast.stderr)
        ));
    }
    let relay_status =
        wait_timeout(&mut relay.child.0, RUN_TIMEOUT)?.ok_or("the relay did not finish")?;
    if !relay_status.success() {
        return Err(format!(
            "the relay exited {}",
            describe_status(relay_status)
        ));
    }
    let line = read_line(&mut sink.stdout, "sink")?;
    let _ = wait_timeout(&mut sink.child.0, Duration::from_secs(10));
    let fields: Vec<(String, f64)> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect();
    let field = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("cannot read the sink's line {line:?}"))
    };
    let (sunk, relay_secs) = (field("bytes")? as u64, field("seconds")?);
    if sunk != bytes {
        return Err(format!(
            "the sink received {sunk} bytes, the blast sent {bytes}"
        ));
    }
    let relay_figures = read_time(&relay_time)?;
    drop(relay);
    drop(sink);
    Ok(RelayRun {
        relay: relay_figures,
        relay_secs,
    })
}
