//! The bench-only `replay_broker` (kmirror-benches) as xtask runs it: its
//! release build, and a running instance with its stdin (commands) and
//! stdout (`listening ADDR` lines, counters, results).

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::Result;
use crate::harness::{Guarded, wait_timeout};

/// A running `replay_broker` with its stdin (for `stats`) and stdout.
pub(crate) struct Replay {
    pub(crate) child: Guarded,
    stdin: Option<ChildStdin>,
    pub(crate) stdout: BufReader<ChildStdout>,
    pub(crate) addr: String,
}

impl Replay {
    pub(crate) fn start(command: &mut Command, name: &str, dir: &Path) -> Result<Self> {
        let stderr = File::create(dir.join(format!("{name}.stderr")))
            .map_err(|e| format!("cannot create {name}.stderr: {e}"))?;
        let mut child = Guarded(
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .map_err(|e| format!("cannot start {name}: {e}"))?,
        );
        let stdin = child.0.stdin.take();
        let stdout = child.0.stdout.take().ok_or("no stdout")?;
        let mut stdout = BufReader::new(stdout);
        let line = read_line(&mut stdout, name)?;
        let addr = line
            .strip_prefix("listening ")
            .ok_or_else(|| format!("{name} printed {line:?} instead of `listening ADDR`"))?
            .to_owned();
        Ok(Self {
            child,
            stdin,
            stdout,
            addr,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// The broker's counters, as `key=value` pairs.
    pub(crate) fn stats(&mut self, name: &str) -> Result<Vec<(String, u64)>> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        stdin
            .write_all(b"stats\n")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot ask {name} for its counters: {e}"))?;
        let line = read_line(&mut self.stdout, name)?;
        Ok(line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
            .collect())
    }

    /// The next line it prints (blocks until it does or exits).
    pub(crate) fn line(&mut self, name: &str) -> Result<String> {
        read_line(&mut self.stdout, name)
    }

    pub(crate) fn stop(mut self) {
        // End of input makes it exit.
        self.stdin = None;
        let _ = wait_timeout(&mut self.child.0, Duration::from_secs(5));
    }
}

pub(crate) fn read_line(reader: &mut BufReader<ChildStdout>, name: &str) -> Result<String> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("cannot read {name}'s output: {e}"))?;
    if line.is_empty() {
        return Err(format!("{name} exited early (see its .stderr file)"));
    }
    Ok(line.trim().to_owned())
}

pub(crate) fn stat(stats: &[(String, u64)], key: &str) -> Result<u64> {
    stats
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("the replay broker's counters lack {key}"))
}

/// Builds `replay_broker` (release) next to kmirror.
pub(crate) fn build_replay(kmirror: &Path) -> Result<PathBuf> {
    let args = [
        "build",
        "--release",
        "-p",
        "kmirror-benches",
        "--bin",
        "replay_broker",
    ];
    println!(
        "building the bench-only replay broker: cargo {}",
        args.join(" ")
    );
    let status = Command::new("cargo")
        .current_dir(crate::paths::workspace_root())
        .args(args)
        .env_remove("CARGO_MANIFEST_DIR")
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("`cargo {}` failed ({status})", args.join(" ")));
    }
    let path = kmirror.with_file_name("replay_broker");
    if !path.is_file() {
        return Err(format!("no {} after the build", path.display()));
    }
    Ok(path)
}
