//! Shared by `cargo xtask demo`, `bench` and `latency`: the tools, the
//! kmirror build, nisshi brokers on free loopback ports, helper scripts run
//! with the venv's Python, and child processes killed when dropped.

use std::fs::File;
use std::io::{Read, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::json::Json;
use crate::{Result, brokers, paths};

/// How long a broker may take to accept connections.
pub(crate) const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a helper script may run.
pub(crate) const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);
/// Makes nisshi form groups at once, as Kafka's own tests configure
/// (`group.initial.rebalance.delay.ms=0`).
pub(crate) const BROKER_ARGS: &[&str] = &["--group-initial-rebalance-delay", "0s"];

/// Which `cargo build` profile builds kmirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// `cargo build --release` (the default).
    Release,
    /// `cargo build` (`--debug`).
    Debug,
}

/// Runs `brokers` if nisshi or the venv is missing; returns their paths.
pub(crate) fn ensure_tools() -> Result<(PathBuf, PathBuf)> {
    let nisshi = paths::nisshi_bin();
    let python = paths::venv_python();
    if nisshi.is_file() && python.is_file() {
        println!("nisshi:      {}", nisshi.display());
        println!("venv python: {}", python.display());
        return Ok((nisshi, python));
    }
    println!("nisshi or the Python venv is missing: running `cargo xtask brokers` first");
    brokers::run(true)?;
    Ok((nisshi, python))
}

/// Runs `cargo ARGS --message-format=json-render-diagnostics` in the
/// workspace and returns the executable of target `name` as cargo reports
/// it.
pub(crate) fn cargo_build_executable(args: &[&str], name: &str) -> Result<PathBuf> {
    let mut command = Command::new("cargo");
    command
        .current_dir(paths::workspace_root())
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    // `cargo xtask` runs us with the xtask package's CARGO_MANIFEST_DIR,
    // CARGO_PKG_* and so on. Build scripts that watch one of them (ring's
    // does) would see a change and rebuild, once here and once more in the
    // next plain `cargo build --release`.
    for (var, _) in std::env::vars_os() {
        let Some(var) = var.to_str() else { continue };
        if var.starts_with("CARGO_PKG_")
            || matches!(
                var,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            command.env_remove(var);
        }
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo {}` failed ({})",
            args.join(" "),
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter(|line| line.contains("\"compiler-artifact\"") && line.contains("\"executable\""))
        .filter_map(|line| Json::parse(line).ok())
        .filter(|message| {
            message
                .get("target")
                .and_then(|target| target.get("name"))
                .and_then(Json::as_str)
                == Some(name)
        })
        .find_map(|message| {
            message
                .get("executable")
                .and_then(Json::as_str)
                .map(PathBuf::from)
        })
        .ok_or_else(|| {
            format!(
                "`cargo {}` succeeded but reported no {name} executable",
                args.join(" ")
            )
        })
}

/// Builds kmirror and returns its executable, as cargo reports it.
pub(crate) fn build_kmirror(profile: Profile) -> Result<PathBuf> {
    let mut args = vec!["build"];
    if profile == Profile::Release {
        args.push("--release");
    }
    args.extend(["-p", "kmirror-cli", "--bin", "kmirror"]);
    println!(
        "building the {} binary: cargo {}",
        match profile {
            Profile::Release => "release",
            Profile::Debug => "debug",
        },
        args.join(" ")
    );
    let build_started = Instant::now();
    let executable = cargo_build_executable(&args, "kmirror")?;
    let version = Command::new(&executable)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", executable.display()))?;
    println!(
        "built in {:.1} s: {} ({})",
        build_started.elapsed().as_secs_f64(),
        executable.display(),
        String::from_utf8_lossy(&version.stdout).trim()
    );
    Ok(executable)
}

/// `<target>/xtask/<name>`, next to the running binary's target directory,
/// or a temporary directory.
pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .filter(|target| target.join("CACHEDIR.TAG").is_file())
        .map_or_else(
            || std::env::temp_dir().join(format!("kmirror-{name}-{}", std::process::id())),
            |target| target.join("xtask").join(name),
        )
}

pub(crate) fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A child process killed (SIGKILL) and reaped when dropped, unless it has
/// already exited.
pub(crate) struct Guarded(pub(crate) Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Waits up to `timeout` for `child` to exit.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("cannot wait: {e}"))? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn describe_status(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("with status {code}"),
        None => format!("on a signal ({status})"),
    }
}

/// The last `max` bytes of a file, for error messages.
pub(crate) fn tail(path: &Path, max: usize) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        let start = bytes.len().saturating_sub(max);
        text = String::from_utf8_lossy(bytes.get(start..).unwrap_or_default()).into_owned();
    }
    text.trim_end().to_owned()
}

/// A nisshi broker: a single-broker cluster on 127.0.0.1.
pub(crate) struct Broker {
    pub(crate) addr: SocketAddr,
    #[allow(dead_code, reason = "the demo printed it; it runs on Apache Kafka now")]
    pub(crate) log: PathBuf,
    process: Guarded,
}

impl Broker {
    /// Starts `nisshi broker` with memory storage on a free port (plus
    /// `extra_args`) and waits until the port accepts connections. A port
    /// taken between picking it and nisshi binding it is retried with
    /// another.
    pub(crate) fn start(
        nisshi: &Path,
        name: &str,
        dir: &Path,
        extra_args: &[&str],
    ) -> Result<Self> {
        let broker_dir = dir.join(name);
        std::fs::create_dir_all(&broker_dir)
            .map_err(|e| format!("cannot create {}: {e}", broker_dir.display()))?;
        let log = broker_dir.join("nisshi.log");
        let mut attempts = 0;
        loop {
            attempts += 1;
            let addr = free_port()?;
            let url = format!("tcp://{addr}");
            let mut args = vec![
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://nisshi/",
                "--cluster-id",
                name,
            ];
            args.extend_from_slice(extra_args);
            let mut log_file = File::options()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
            let _ = writeln!(
                log_file,
                "=== xtask: starting {} {}",
                nisshi.display(),
                args.join(" ")
            );
            let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
            let mut process = Guarded(
                Command::new(nisshi)
                    .args(&args)
                    .current_dir(&broker_dir)
                    // The command line says everything; no stray settings.
                    .env_remove("SCHEMA_REGISTRY")
                    .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .stdin(Stdio::null())
                    .stdout(log_file)
                    .stderr(log_err)
                    .spawn()
                    .map_err(|e| format!("cannot start {}: {e}", nisshi.display()))?,
            );
            let deadline = Instant::now() + BROKER_START_TIMEOUT;
            loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Ok(Self { addr, log, process });
                }
                if let Ok(Some(status)) = process.0.try_wait() {
                    if attempts < 3 && tail(&log, 2000).contains("in use") {
                        break;
                    }
                    return Err(format!(
                        "the {name} broker (nisshi) exited {} before accepting connections on \
                         {addr}; its log ({}):\n{}",
                        describe_status(status),
                        log.display(),
                        tail(&log, 4000)
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "the {name} broker (nisshi) did not accept connections on {addr} within \
                         {} s; its log ({}):\n{}",
                        BROKER_START_TIMEOUT.as_secs(),
                        log.display(),
                        tail(&log, 4000)
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The broker process's id (for its CPU time in `/proc`).
    pub(crate) fn pid(&self) -> u32 {
        self.process.0.id()
    }
}

pub(crate) fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// Runs the helper scripts with the venv's Python, each from a file in the
/// scratch directory with its output next to it.
pub(crate) struct Scripts {
    pub(crate) python: PathBuf,
    pub(crate) dir: PathBuf,
}

/// A running helper script.
pub(crate) struct Script {
    name: String,
    file: PathBuf,
    out: PathBuf,
    err: PathBuf,
    process: Guarded,
}

impl Scripts {
    pub(crate) fn spawn(&self, name: &str, source: &str, args: &[&str]) -> Result<Script> {
        let file = self.dir.join(format!("{name}.py"));
        write_file(&file, source)?;
        let out = self.dir.join(format!("{name}.stdout"));
        let err = self.dir.join(format!("{name}.stderr"));
        let create = |path: &Path| {
            File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
        };
        let child = Command::new(&self.python)
            .arg(&file)
            .args(args)
            .current_dir(&self.dir)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(create(&out)?)
            .stderr(create(&err)?)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?;
        Ok(Script {
            name: name.to_owned(),
            file,
            out,
            err,
            process: Guarded(child),
        })
    }

    /// Runs a script to its end (at most [`SCRIPT_TIMEOUT`]) and returns
    /// its standard output.
    pub(crate) fn run(&self, name: &str, source: &str, args: &[&str]) -> Result<String> {
        self.spawn(name, source, args)?
            .wait_while(SCRIPT_TIMEOUT, || Ok(()))
    }
}

impl Script {
    /// Waits up to `timeout` for the script to end, calling `check` as it
    /// runs (an error from it ends the wait); returns its standard output.
    pub(crate) fn wait_while(
        mut self,
        timeout: Duration,
        mut check: impl FnMut() -> Result<()>,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self
                .process
                .0
                .try_wait()
                .map_err(|e| format!("cannot wait for {}: {e}", self.name))?
            {
                break status;
            }
            check()?;
            if Instant::now() >= deadline {
                return Err(format!(
                    "the {} script ({}) ran longer than {} s and was killed; its stderr:\n{}",
                    self.name,
                    self.file.display(),
                    timeout.as_secs(),
                    tail(&self.err, 4000)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = std::fs::read(&self.out)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        if status.success() {
            return Ok(stdout);
        }
        let stderr = tail(&self.err, 4000);
        let hint = if stderr.contains("No module named") {
            "\nthe venv lacks confluent-kafka: run `cargo xtask brokers`"
        } else {
            ""
        };
        Err(format!(
            "the {} script ({}) failed ({}); its stderr:\n{stderr}{hint}",
            self.name,
            self.file.display(),
            describe_status(status)
        ))
    }
}

pub(crate) fn parse_json(name: &str, text: &str) -> Result<Json> {
    let last = text.lines().rev().find(|line| !line.trim().is_empty());
    Json::parse(last.unwrap_or_default().trim())
        .map_err(|e| format!("the {name} script printed no JSON summary ({e}):\n{text}"))
}

/// Creates the topic; prints `{"partitions": N}` as the source reports it.
pub(crate) const CREATE_TOPIC: &str = r#"
import json, sys
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
admin = AdminClient({"bootstrap.servers": bootstrap})
futures = admin.create_topics(
    [NewTopic(topic, num_partitions=partitions, replication_factor=1)], request_timeout=30
)
for future in futures.values():
    future.result(timeout=60)
metadata = admin.list_topics(topic=topic, timeout=30)
print(json.dumps({"partitions": len(metadata.topics[topic].partitions)}))
"#;
