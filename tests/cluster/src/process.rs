//! A JVM (or any long-running server) that dies with the process that
//! started it.
//!
//! Shared clusters live in statics that are never dropped, and a test
//! process can be killed outright; either way a JVM must not outlive it. So
//! every server runs under a small shell watchdog whose stdin is a pipe from
//! this process: when the pipe closes (drop, exit, crash), the watchdog
//! kills the server with SIGKILL. The watchdog also writes the server's pid,
//! so [`Server::terminate`] can send it SIGTERM for a graceful stop.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The watchdog: `$1` is the pid file, `$2` a directory to remove when
/// the owner dies (empty: none), the rest the command. It runs the command
/// in the background, records its pid, then blocks reading stdin; at end of
/// file it kills the command. The owner writes `keep` first when it lets
/// go on purpose (a restart needs the data); without it the owner is gone,
/// and the directory goes too (a shared cluster's data never outlives the
/// test run).
const WATCHDOG: &str = r#"pidfile="$1"; cleanup="$2"; shift 2
"$@" </dev/null &
child=$!
echo "$child" > "$pidfile.tmp" && mv "$pidfile.tmp" "$pidfile"
keep=""
while read -r line; do [ "$line" = keep ] && keep=1; done
kill -9 "$child" 2>/dev/null
wait "$child" 2>/dev/null
if [ -z "$keep" ] && [ -n "$cleanup" ]; then rm -rf "$cleanup"; fi
exit 0"#;

/// A running server process under the watchdog.
#[derive(Debug)]
pub struct Server {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    log_path: PathBuf,
}

impl Server {
    /// Starts `command` (its stdout and stderr appended to `log_path`) under
    /// the watchdog and returns once its pid is known.
    ///
    /// # Panics
    ///
    /// If the shell cannot start or the pid does not appear within 10 s.
    pub fn spawn(command: Command, log_path: &Path) -> Self {
        Self::spawn_with_cleanup(command, log_path, None)
    }

    /// Like [`Server::spawn`]; if this process dies (or drops the server
    /// without [`Server::kill`] or [`Server::terminate`]), the watchdog also
    /// removes `cleanup` (a broker's data directory).
    ///
    /// # Panics
    ///
    /// As [`Server::spawn`].
    pub fn spawn_with_cleanup(command: Command, log_path: &Path, cleanup: Option<&Path>) -> Self {
        let pidfile = log_path.with_extension("pid");
        let _ = std::fs::remove_file(&pidfile);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone a file handle: {e}"));
        let program = command.get_program().to_owned();
        let args: Vec<_> = command.get_args().map(ToOwned::to_owned).collect();
        let mut shell = Command::new("bash");
        shell
            .arg("-c")
            .arg(WATCHDOG)
            .arg("kmirror-watchdog")
            .arg(&pidfile)
            .arg(cleanup.map(Path::as_os_str).unwrap_or_default())
            .arg(&program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err);
        if let Some(dir) = command.get_current_dir() {
            shell.current_dir(dir);
        }
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => shell.env(key, value),
                None => shell.env_remove(key),
            };
        }
        let mut watchdog = shell
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start bash to run {program:?}: {e}"));
        let stdin = watchdog.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok())
            {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "the watchdog did not report the pid of {program:?} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        Self {
            watchdog,
            stdin,
            pid,
            log_path: log_path.to_path_buf(),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the server process still runs (not exited, not a zombie).
    pub fn is_running(&self) -> bool {
        is_alive(self.pid)
    }

    /// Sends SIGTERM (a graceful stop: Kafka's controlled shutdown) and
    /// waits up to `timeout` for the process to exit; then SIGKILL.
    /// Returns whether it stopped by itself.
    pub fn terminate(mut self, timeout: Duration) -> bool {
        signal(self.pid, "TERM");
        let deadline = Instant::now() + timeout;
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let graceful = !self.is_running();
        self.stop_watchdog(true);
        graceful
    }

    /// Kills the server with SIGKILL and waits for it (a crash).
    pub fn kill(mut self) {
        signal(self.pid, "KILL");
        self.stop_watchdog(true);
    }

    /// Appends a marker line to the log.
    pub fn note(&self, what: &str) {
        note(&self.log_path, what);
    }

    fn stop_watchdog(&mut self, keep: bool) {
        if let Some(mut stdin) = self.stdin.take() {
            if keep {
                let _ = stdin.write_all(b"keep\n");
            }
            // End of file on its stdin: the watchdog kills what is left
            // and exits.
            drop(stdin);
            let _ = self.watchdog.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_watchdog(false);
    }
}

/// Appends `=== kmirror-test-cluster: WHAT` to a log file.
pub fn note(log_path: &Path, what: &str) {
    if let Ok(mut log) = OpenOptions::new().create(true).append(true).open(log_path) {
        let _ = writeln!(log, "=== kmirror-test-cluster: {what}");
    }
}

/// Whether `pid` runs: `/proc/PID/stat` exists and its state is not zombie
/// or dead.
pub(crate) fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // "pid (comm) S ...": the state follows the last ')'.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| !matches!(state, "Z" | "X" | "x"))
    })
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Creates (truncates) a file for a child's output.
pub(crate) fn create_file(path: &Path) -> File {
    File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
}
