//! `cargo xtask fuzz`: runs the cargo-fuzz targets of `fuzz/` one after the
//! other for a fixed time each and prints a summary.
//!
//! Each target starts from a scratch copy of its committed seed corpus and
//! of its regression inputs (`fuzz/corpus/<target>` and
//! `fuzz/regressions/<target>` copied to `target/fuzz-corpus/<target>`), so
//! the committed seeds never grow and every run replays past findings. libFuzzer runs with `-rss_limit_mb=2048
//! -malloc_limit_mb=2048`, a per-target `-max_len` and `-print_final_stats=1`,
//! whose `stat::number_of_executed_units` line gives the run count. A crash
//! leaves its input in `fuzz/artifacts/<target>/` (cargo-fuzz's default) and
//! makes the command fail, naming the artifact. The full libFuzzer output of
//! each target is in `target/fuzz-logs/<target>.log`.
//!
//! cargo-fuzz is installed with `cargo install cargo-fuzz --locked` when
//! `cargo fuzz` is missing; the targets need the nightly toolchain.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Options, Result, paths};

/// One fuzz target and the largest input libFuzzer may generate for it.
struct Target {
    name: &'static str,
    max_len: usize,
}

const KIB: usize = 1024;

/// Every target of `fuzz/Cargo.toml`, in the order they run. The lengths
/// keep iterations fast: a frame or a partition's records large enough for
/// several batches; codec inputs that can still expand up to the targets'
/// 1 MiB cap; a group member's subscription or assignment; small structured
/// input for the differential target.
const TARGETS: &[Target] = &[
    Target {
        name: "response_decode",
        max_len: 256 * KIB,
    },
    Target {
        name: "batch_iter",
        max_len: 256 * KIB,
    },
    Target {
        name: "record_decode",
        max_len: 64 * KIB,
    },
    Target {
        name: "decompress_gzip",
        max_len: 64 * KIB,
    },
    Target {
        name: "decompress_snappy",
        max_len: 64 * KIB,
    },
    Target {
        name: "decompress_lz4",
        max_len: 64 * KIB,
    },
    Target {
        name: "decompress_zstd",
        max_len: 64 * KIB,
    },
    Target {
        name: "produce_request",
        max_len: 256 * KIB,
    },
    Target {
        name: "consumer_protocol",
        max_len: 4 * KIB,
    },
    Target {
        name: "differential",
        max_len: 8 * KIB,
    },
];

/// Seconds per target when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 60;

/// A single input running longer than this is reported as a hang.
const INPUT_TIMEOUT_SECS: u64 = 20;

/// How a target's run ended.
struct Outcome {
    target: &'static str,
    seconds: u64,
    runs: Option<u64>,
    result: String,
    artifact: Option<String>,
    log: PathBuf,
}

/// Runs `cargo xtask fuzz [--seconds N] [--target NAME]`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut opts = Options::parse(args, &["--seconds", "--target"])?;
    let seconds = match opts.take("--seconds") {
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("--seconds expects a positive whole number, got {s:?}"))?,
        None => DEFAULT_SECONDS,
    };
    let targets: Vec<&Target> = match opts.take("--target") {
        Some(name) => vec![TARGETS.iter().find(|t| t.name == name).ok_or_else(|| {
            let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
            format!(
                "unknown fuzz target {name:?}; targets: {}",
                names.join(", ")
            )
        })?],
        None => TARGETS.iter().collect(),
    };

    let root = paths::workspace_root();
    ensure_nightly()?;
    ensure_cargo_fuzz()?;
    build(&root, &targets)?;

    let mut outcomes = Vec::new();
    for target in targets {
        outcomes.push(run_target(&root, target, seconds)?);
    }
    print_summary(&outcomes);

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result != "ok").collect();
    if failed.is_empty() {
        return Ok(());
    }
    for o in &failed {
        eprintln!(
            "fuzz: {} {}: input {}, log {}",
            o.target,
            o.result,
            o.artifact.as_deref().unwrap_or("(none written)"),
            o.log.display()
        );
        if let Some(artifact) = &o.artifact {
            eprintln!(
                "      reproduce: cargo +nightly fuzz run --fuzz-dir fuzz {} {artifact}",
                o.target
            );
        }
    }
    Err(format!("{} fuzz target(s) failed", failed.len()))
}

/// `cargo` with the toolchain pins of the `cargo xtask` invocation removed,
/// so that `+nightly` and cargo-fuzz pick their own.
fn cargo() -> Command {
    let mut cmd = Command::new("cargo");
    for var in ["RUSTUP_TOOLCHAIN", "CARGO", "RUSTC", "RUSTDOC"] {
        cmd.env_remove(var);
    }
    cmd
}

fn ensure_nightly() -> Result<()> {
    let ok = cargo()
        .args(["+nightly", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err("the fuzz targets need the nightly toolchain: \
             rustup toolchain install nightly --profile minimal"
            .to_owned())
    }
}

fn ensure_cargo_fuzz() -> Result<()> {
    let installed = cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return Ok(());
    }
    println!("fuzz: cargo-fuzz is missing; cargo install cargo-fuzz --locked");
    let status = cargo()
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cargo install cargo-fuzz --locked failed ({status})"
        ))
    }
}

/// Builds the targets up front (all of them in one cargo invocation), so
/// that the timed runs only fuzz.
fn build(root: &Path, targets: &[&Target]) -> Result<()> {
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["+nightly", "fuzz", "build", "--fuzz-dir", "fuzz"]);
    if let [only] = targets {
        cmd.arg(only.name);
    }
    println!("fuzz: building the fuzz targets (cargo +nightly fuzz build)");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo fuzz build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo fuzz build failed ({status})"))
    }
}

/// Copies the committed seeds and regression inputs of `name` into a fresh
/// scratch corpus.
fn scratch_corpus(root: &Path, name: &str) -> Result<PathBuf> {
    let scratch = root.join("target").join("fuzz-corpus").join(name);
    if scratch.exists() {
        fs::remove_dir_all(&scratch)
            .map_err(|e| format!("cannot clear {}: {e}", scratch.display()))?;
    }
    fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join("fuzz").join(kind).join(name)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                let copy = format!("{kind}-{}", entry.file_name().to_string_lossy());
                fs::copy(&path, scratch.join(copy))
                    .map_err(|e| format!("cannot copy {}: {e}", path.display()))?;
            }
        }
    }
    Ok(scratch)
}

fn run_target(root: &Path, target: &Target, seconds: u64) -> Result<Outcome> {
    let corpus = scratch_corpus(root, target.name)?;
    let logs = root.join("target").join("fuzz-logs");
    fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let log = logs.join(format!("{}.log", target.name));
    let log_file =
        fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let log_err = log_file
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    fs::create_dir_all(root.join("fuzz").join("artifacts").join(target.name))
        .map_err(|e| format!("cannot create the artifacts directory: {e}"))?;

    println!(
        "fuzz: {} for {seconds} s (max_len {}, log {})",
        target.name,
        target.max_len,
        log.display()
    );
    let started = Instant::now();
    let mut child = cargo()
        .current_dir(root)
        .args(["+nightly", "fuzz", "run", "--fuzz-dir", "fuzz", target.name])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-max_len={}", target.max_len))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .args([
            "-rss_limit_mb=2048",
            "-malloc_limit_mb=2048",
            "-print_final_stats=1",
        ])
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("cannot run cargo fuzz run: {e}"))?;

    // libFuzzer stops itself; this only guards against a fuzzer that does
    // not (a hang outside an input, a stuck build lock).
    let deadline = Duration::from_secs(seconds + INPUT_TIMEOUT_SECS + 600);
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("waiting for cargo fuzz run: {e}"))?
        {
            break Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let elapsed = started.elapsed().as_secs();

    let mut text = String::new();
    fs::File::open(&log)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| format!("cannot read {}: {e}", log.display()))?;
    let runs = final_stat(&text, "stat::number_of_executed_units:");
    let artifact = artifact_path(&text).map(|p| {
        let path = Path::new(&p);
        if path.is_absolute() {
            p
        } else {
            root.join(path).display().to_string()
        }
    });
    let result = match status {
        None => format!("killed after {elapsed} s"),
        Some(s) if s.success() => "ok".to_owned(),
        Some(s) => failure_kind(&text).unwrap_or_else(|| format!("failed ({s})")),
    };
    if result != "ok" {
        print_tail(&text, 60);
    }
    Ok(Outcome {
        target: target.name,
        seconds: elapsed,
        runs,
        result,
        artifact,
        log,
    })
}

/// The value of a `-print_final_stats=1` line, e.g.
/// `stat::number_of_executed_units: 123456`.
fn final_stat(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

/// The input libFuzzer saved for a crash: `Test unit written to PATH`.
fn artifact_path(text: &str) -> Option<String> {
    text.lines().rev().find_map(|l| {
        l.split_once("Test unit written to ")
            .map(|(_, p)| p.trim().to_owned())
    })
}

/// What kind of failure libFuzzer reported.
fn failure_kind(text: &str) -> Option<String> {
    let kinds = [
        ("ERROR: libFuzzer: deadly signal", "crash"),
        ("panicked at", "crash (panic)"),
        ("ERROR: libFuzzer: out-of-memory", "out of memory"),
        ("ERROR: libFuzzer: timeout", "timeout"),
        ("ERROR: AddressSanitizer", "crash (ASan)"),
        ("ERROR: libFuzzer: fuzz target exited", "target exited"),
        (
            "ERROR: libFuzzer: fuzz target overwrites",
            "overwrote input",
        ),
    ];
    kinds
        .iter()
        .find(|(needle, _)| text.contains(needle))
        .map(|(_, kind)| (*kind).to_owned())
}

fn print_tail(text: &str, lines: usize) {
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    eprintln!(
        "---- last {} lines of the fuzzer's output ----",
        all.len() - from
    );
    for line in &all[from..] {
        eprintln!("{line}");
    }
    eprintln!("----");
}

fn print_summary(outcomes: &[Outcome]) {
    println!();
    println!("{:<20} {:>8} {:>12}  result", "target", "seconds", "runs");
    for o in outcomes {
        let runs = o.runs.map_or_else(|| "-".to_owned(), |r| r.to_string());
        println!(
            "{:<20} {:>8} {:>12}  {}",
            o.target, o.seconds, runs, o.result
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_final_stats_and_artifacts() {
        let log = "#2 INITED cov: 10\n\
                   ==1== ERROR: libFuzzer: deadly signal\n\
                   artifact_prefix='fuzz/artifacts/x/'; Test unit written to fuzz/artifacts/x/crash-ab12\n\
                   stat::number_of_executed_units: 4321\n\
                   stat::average_exec_per_sec:     72\n";
        assert_eq!(
            final_stat(log, "stat::number_of_executed_units:"),
            Some(4321)
        );
        assert_eq!(
            artifact_path(log).as_deref(),
            Some("fuzz/artifacts/x/crash-ab12")
        );
        assert_eq!(failure_kind(log).as_deref(), Some("crash"));
        assert_eq!(
            final_stat("Done 5 runs", "stat::number_of_executed_units:"),
            None
        );
    }

    #[test]
    fn every_target_is_declared_in_the_fuzz_manifest() {
        let manifest = fs::read_to_string(paths::workspace_root().join("fuzz/Cargo.toml"))
            .expect("fuzz/Cargo.toml");
        for t in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{}\"", t.name)),
                "{} is missing from fuzz/Cargo.toml",
                t.name
            );
        }
        let declared = manifest.matches("[[bin]]").count();
        assert_eq!(
            declared,
            TARGETS.len(),
            "fuzz/Cargo.toml has targets the runner skips"
        );
    }
}
