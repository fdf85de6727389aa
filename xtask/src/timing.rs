//! What a measured process costs, for `cargo xtask replay` and `cargo
//! xtask latency`: GNU time's figures (`/usr/bin/time -f '%e %U %S %M'`),
//! CPU seconds from `/proc/<pid>/stat`, and SIGINT to a process run under
//! GNU time (which ignores SIGINT itself while it waits).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::Result;

/// GNU time.
pub(crate) const GNU_TIME: &str = "/usr/bin/time";
/// Its output format: wall, user and system seconds, peak RSS in KiB.
pub(crate) const GNU_TIME_FORMAT: &str = "%e %U %S %M";

/// Fails unless GNU time is installed.
pub(crate) fn require_gnu_time() -> Result<()> {
    if Path::new(GNU_TIME).is_file() {
        Ok(())
    } else {
        Err(format!(
            "{GNU_TIME} (GNU time) is missing: apt-get install time"
        ))
    }
}

/// GNU time's `%e %U %S %M`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timed {
    pub(crate) wall: f64,
    pub(crate) user: f64,
    pub(crate) system: f64,
    pub(crate) rss_kib: u64,
}

impl Timed {
    pub(crate) fn cpu(&self) -> f64 {
        self.user + self.system
    }
}

pub(crate) fn read_time(path: &Path) -> Result<Timed> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let fields: Vec<f64> = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    match fields.as_slice() {
        [wall, user, system, rss] => Ok(Timed {
            wall: *wall,
            user: *user,
            system: *system,
            rss_kib: *rss as u64,
        }),
        _ => Err(format!("cannot read GNU time's output {text:?}")),
    }
}

/// A process's user + system CPU seconds so far (`/proc/<pid>/stat` fields
/// 14 and 15 over `getconf CLK_TCK`).
pub(crate) fn cpu_secs(pid: u32, ticks_per_sec: f64) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("cannot parse {path}"))?
        .split_whitespace()
        .collect();
    // `fields[0]` is field 3.
    let field = |n: usize| -> Result<f64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| format!("cannot parse field {n} of {path}"))
    };
    Ok((field(14)? + field(15)?) / ticks_per_sec)
}

pub(crate) fn clock_ticks() -> Result<f64> {
    let output = Command::new("getconf")
        .arg("CLK_TCK")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `getconf CLK_TCK`: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|t| *t > 0.0)
        .ok_or_else(|| "`getconf CLK_TCK` printed no number".to_owned())
}

/// CPU seconds the whole machine has spent busy so far (`/proc/stat`'s
/// `cpu` line: user, nice, system, irq, softirq and steal; not idle or
/// iowait), for what other processes used during a measurement.
pub(crate) fn machine_busy_secs(ticks_per_sec: f64) -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")
        .map_err(|e| format!("cannot read /proc/stat: {e}"))?;
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .ok_or("/proc/stat has no cpu line")?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: f64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    Ok(busy / ticks_per_sec)
}

/// Sends SIGINT (what Ctrl+C sends) to the program GNU time runs as
/// process `time_pid`: GNU time ignores SIGINT while it waits, so the
/// signal goes to its child, found in `/proc/<pid>/task/<pid>/children`.
pub(crate) fn interrupt_timed(time_pid: u32) -> Result<()> {
    let path = format!("/proc/{time_pid}/task/{time_pid}/children");
    let children =
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let child = children
        .split_whitespace()
        .next()
        .ok_or_else(|| format!("GNU time (pid {time_pid}) runs no program any more"))?;
    let status = Command::new("kill")
        .args(["-INT", child])
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run `kill -INT {child}`: {e}"))?;
    if !status.success() {
        return Err(format!("`kill -INT {child}` failed ({status})"));
    }
    Ok(())
}
