//! The process's own figures for `/metrics`: CPU time, memory, threads,
//! open files and start time, read from Linux's `/proc/self` (elsewhere
//! they are simply left out).
//!
//! This module only reads `/proc`; it never fails the exposition: a figure
//! that cannot be read is `None`.

/// Clock ticks per second of the times in `/proc/[pid]/stat` (`USER_HZ`):
/// 100 on every Linux architecture, whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// The process's figures at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessFigures {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, in bytes (`VmRSS`).
    pub resident_bytes: Option<u64>,
    /// Virtual memory, in bytes (`VmSize`).
    pub virtual_bytes: Option<u64>,
    /// Threads.
    pub threads: Option<u64>,
    /// Open file descriptors (sockets included).
    pub open_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

impl ProcessFigures {
    /// Reads `/proc/self/stat`, `/proc/self/status`, `/proc/self/fd` and
    /// `/proc/stat`.
    pub fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s));
        let mut figures = Self {
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64),
            ..Self::default()
        };
        if let Some(stat) = stat.as_deref() {
            figures.cpu_seconds = cpu_seconds(stat);
            figures.start_time_seconds = start_ticks(stat)
                .zip(boot_time)
                .map(|(ticks, boot)| boot as f64 + ticks as f64 / USER_HZ);
        }
        if let Some(status) = status.as_deref() {
            figures.resident_bytes = status_kib(status, "VmRSS:").map(|k| k * 1024);
            figures.virtual_bytes = status_kib(status, "VmSize:").map(|k| k * 1024);
            figures.threads = status_value(status, "Threads:");
        }
        figures
    }
}

/// The fields of `/proc/self/stat` after the command name (which may hold
/// spaces and parentheses: the fields start after the last `)`), numbered
/// from field 3 (`state`) on.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    Some(rest.split_whitespace().collect())
}

/// `utime` + `stime` (fields 14 and 15), in seconds.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let fields = stat_fields(stat)?;
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// `starttime` (field 22): ticks after boot.
fn start_ticks(stat: &str) -> Option<u64> {
    stat_fields(stat)?.get(22 - 3)?.parse().ok()
}

/// `btime` of `/proc/stat`: the boot time, in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `Key:   123 kB` line of `/proc/self/status`, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    line.split_whitespace().next()?.parse().ok()
}

/// A `Key:   123` line of `/proc/self/status`.
fn status_value(status: &str, key: &str) -> Option<u64> {
    status_kib(status, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_read_past_a_command_name_with_spaces() {
        let stat = "4242 (km (irror) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 130 0 0 20 0 \
                    9 0 12345 1000000 200 18446744073709551615";
        assert_eq!(cpu_seconds(stat), Some(3.8));
        assert_eq!(start_ticks(stat), Some(12345));
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        let status = "Name:\tkmirror\nVmSize:\t  2048 kB\nVmRSS:\t    512 kB\nThreads:\t9\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(512));
        assert_eq!(status_value(status, "Threads:"), Some(9));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read() {
        let f = ProcessFigures::read();
        assert!(f.resident_bytes.is_some_and(|b| b > 0), "{f:?}");
        assert!(f.threads.is_some_and(|t| t >= 1), "{f:?}");
        assert!(f.cpu_seconds.is_some(), "{f:?}");
        assert!(f.start_time_seconds.is_some_and(|t| t > 1.0e9), "{f:?}");
    }
}
