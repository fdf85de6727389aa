//! `cargo xtask demo`: the HDInsight MirrorMaker guide's scenario, end to
//! end on this machine, with `kmirror` in place of
//! `kafka-run-class.sh kafka.tools.MirrorMaker` and two local nisshi brokers
//! in place of the source and destination clusters.
//!
//! 1. installs nisshi and the Python clients if missing (`brokers`);
//! 2. builds `kmirror` (release, or debug with `--debug`);
//! 3. starts two nisshi brokers (memory storage) on free loopback ports;
//! 4. creates `testtopic` with 8 partitions on the source (librdkafka);
//! 5. writes the guide's `consumer.properties` and `producer.properties`
//!    (`bootstrap.servers` in place of `zookeeper.connect`);
//! 6. starts `kmirror --consumer.config consumer.properties --producer.config
//!    producer.properties --whitelist testtopic --num.streams 4`;
//! 7. produces ten keyed text lines on the source, one at a time;
//! 8. waits until the destination's `testtopic` holds them;
//! 9. stops kmirror as Ctrl+C does (SIGINT) and checks that it exits 0;
//! 10. reads the destination back and compares it with what was produced,
//!     then shows the group's committed offsets on the source next to the
//!     end offsets.
//!
//! Every child process is killed when the demo ends, also on error. Every
//! wait has a timeout. The files (properties, scripts, logs) stay in
//! `<target>/xtask/demo` for a look afterwards.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::json::Json;
use crate::{Result, brokers, paths};

/// The guide's topic.
const TOPIC: &str = "testtopic";
/// The guide's partition count for it.
const PARTITIONS: i64 = 8;
/// The guide's consumer group.
const GROUP: &str = "mirrorgroup";
/// The guide's `--num.streams`.
const NUM_STREAMS: &str = "4";
/// How many text lines are produced on the source.
const LINES: usize = 10;

/// How long a broker may take to accept connections.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a helper script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the lines may take to arrive at the destination.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long kmirror may take to stop after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Which `cargo build` profile builds kmirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// `cargo build --release` (the default).
    Release,
    /// `cargo build` (`--debug`).
    Debug,
}

/// Reads the demo's options: nothing, `--release` or `--debug`.
pub(crate) fn parse_options(rest: &[String]) -> Result<Profile> {
    let mut profile = Profile::Release;
    for arg in rest {
        match arg.as_str() {
            "--debug" => profile = Profile::Debug,
            "--release" => profile = Profile::Release,
            other => {
                return Err(format!(
                    "unexpected argument {other:?} for demo (it takes --debug or --release; see \
                     `cargo xtask help`)"
                ));
            }
        }
    }
    Ok(profile)
}

/// Runs the whole scenario; an error says which step failed and where the
/// logs are.
pub(crate) fn run(profile: Profile) -> Result<()> {
    let started = Instant::now();
    println!(
        "demo: the HDInsight MirrorMaker guide's scenario, with kmirror in place of \
         kafka.tools.MirrorMaker and two local nisshi brokers as the source and destination \
         clusters"
    );

    step("tools: nisshi and the Python clients (librdkafka)");
    let (nisshi, python) = ensure_tools()?;

    step("build kmirror");
    let kmirror = build_kmirror(profile)?;

    let dir = scratch_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    println!(
        "scratch directory (properties, scripts, logs): {}",
        dir.display()
    );

    let outcome = scenario(&nisshi, &python, &kmirror, &dir);
    match outcome {
        Ok(()) => {
            println!(
                "\ndemo: OK in {:.1} s: testtopic was mirrored from the source to the destination \
                 and kmirror stopped cleanly on Ctrl+C (files and logs in {})",
                started.elapsed().as_secs_f64(),
                dir.display()
            );
            Ok(())
        }
        Err(message) => Err(format!(
            "{message}\n(files and logs of this run: {})",
            dir.display()
        )),
    }
}

/// Steps 3 to 10; every process it starts is killed when it returns.
fn scenario(nisshi: &Path, python: &Path, kmirror: &Path, dir: &Path) -> Result<()> {
    let scenario_started = Instant::now();
    let scripts = Scripts {
        python: python.to_path_buf(),
        dir: dir.to_path_buf(),
    };

    step("start two nisshi brokers: the source and the destination cluster");
    let source = Broker::start(nisshi, "source", dir)?;
    let destination = Broker::start(nisshi, "destination", dir)?;
    println!(
        "source:      {} (nisshi, memory storage, log {})",
        source.addr,
        source.log.display()
    );
    println!(
        "destination: {} (nisshi, memory storage, log {})",
        destination.addr,
        destination.log.display()
    );

    step("create testtopic with 8 partitions on the source (librdkafka AdminClient)");
    let created = scripts.run(
        "create_topic",
        CREATE_TOPIC,
        &[&source.addr.to_string(), TOPIC, &PARTITIONS.to_string()],
    )?;
    let created = parse_json("create_topic", &created)?;
    let partitions = created.get("partitions").and_then(Json::as_i64);
    if partitions != Some(PARTITIONS) {
        return Err(format!(
            "the source reports {partitions:?} partitions for {TOPIC} after creating it with \
             {PARTITIONS}"
        ));
    }
    println!("source topics: {TOPIC} ({PARTITIONS} partitions)");

    step("write the guide's consumer.properties and producer.properties");
    let consumer_properties = format!(
        "# The source cluster (the guide has zookeeper.connect=SOURCE_ZKHOSTS; kmirror reads \
         both)\nbootstrap.servers={}\ngroup.id={GROUP}\n",
        source.addr
    );
    let producer_properties = format!(
        "# The destination cluster\nbootstrap.servers={}\ncompression.type=none\n",
        destination.addr
    );
    write_file(&dir.join("consumer.properties"), &consumer_properties)?;
    write_file(&dir.join("producer.properties"), &producer_properties)?;
    show_file("consumer.properties", &consumer_properties);
    show_file("producer.properties", &producer_properties);

    step("start kmirror with the guide's command line");
    let args = [
        "--consumer.config",
        "consumer.properties",
        "--producer.config",
        "producer.properties",
        "--whitelist",
        TOPIC,
        "--num.streams",
        NUM_STREAMS,
    ];
    println!("$ cd {}", dir.display());
    println!("$ {} {}", kmirror.display(), args.join(" "));
    let mut mirror = Mirror::start(kmirror, &args, dir)?;
    println!(
        "kmirror runs as pid {}; its output follows, prefixed",
        mirror.pid()
    );

    step("produce text lines on the source (librdkafka, one line at a time)");
    let produced = scripts.run(
        "produce",
        PRODUCE,
        &[&source.addr.to_string(), TOPIC, &LINES.to_string()],
    )?;
    mirror.check_running()?;
    let produced = records_of("produce", &parse_json("produce", &produced)?)?;
    print_records(&produced);

    step("wait until the destination's testtopic holds them");
    let wait_started = Instant::now();
    println!(
        "polling the destination with a librdkafka consumer (up to {} s)",
        ARRIVAL_TIMEOUT.as_secs()
    );
    let arrived = scripts.spawn(
        "read_destination",
        READ_DESTINATION,
        &[
            &destination.addr.to_string(),
            TOPIC,
            &LINES.to_string(),
            &ARRIVAL_TIMEOUT.as_secs().to_string(),
        ],
    )?;
    let arrived =
        arrived.wait_while(ARRIVAL_TIMEOUT + SCRIPT_TIMEOUT, || mirror.check_running())?;
    let arrived = parse_json("read_destination", &arrived)?;
    if arrived.get("complete") != Some(&Json::Bool(true)) {
        return Err(format!(
            "after {} s the destination holds {} of the {LINES} records in {TOPIC} (destination \
             topics: {}); kmirror is still running",
            ARRIVAL_TIMEOUT.as_secs(),
            arrived.get("held").and_then(Json::as_i64).unwrap_or(0),
            topic_list(&arrived)
        ));
    }
    println!(
        "all {LINES} records are on the destination after {:.1} s",
        wait_started.elapsed().as_secs_f64()
    );

    step("stop kmirror as Ctrl+C does (kill -INT) and check its exit status");
    let stop_started = Instant::now();
    let (status, output) = mirror.interrupt_and_wait()?;
    println!(
        "kmirror exited {} {:.1} s after SIGINT",
        describe_status(status),
        stop_started.elapsed().as_secs_f64()
    );
    if status.code() != Some(0) {
        return Err(format!(
            "kmirror exited {} after SIGINT; a clean stop exits 0 (its output is above and in \
             {})",
            describe_status(status),
            dir.join("kmirror.log").display()
        ));
    }
    match output
        .iter()
        .find(|line| line.stream == "stdout" && line.text.starts_with("kmirror: mirrored "))
    {
        Some(line) => println!("its summary line: {}", line.text),
        None => println!(
            "warning: kmirror printed no summary line (\"kmirror: mirrored ...\") on stdout"
        ),
    }

    step("what arrived on the destination");
    let final_read = scripts.run(
        "read_destination_after_stop",
        READ_DESTINATION,
        &[
            &destination.addr.to_string(),
            TOPIC,
            &LINES.to_string(),
            "10",
        ],
    )?;
    let final_read = parse_json("read_destination_after_stop", &final_read)?;
    let dest_partitions = final_read.get("partitions").and_then(Json::as_i64);
    println!("destination topics: {}", topic_list(&final_read));
    let received = records_of("read_destination_after_stop", &final_read)?;
    print_records(&received);
    compare(&produced, &received, dest_partitions)?;
    println!(
        "every line arrived exactly once, on the same partition and in the same order as on the \
         source"
    );

    step("the mirror group's committed offsets on the source");
    let offsets = scripts.run(
        "group_offsets",
        GROUP_OFFSETS,
        &[&source.addr.to_string(), TOPIC, GROUP],
    )?;
    let offsets = parse_json("group_offsets", &offsets)?;
    check_offsets(&offsets)?;

    drop(destination);
    drop(source);
    println!(
        "\nthe scenario took {:.1} s (after the tools and the build)",
        scenario_started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Prints a step header.
fn step(text: &str) {
    println!("\n== {text}");
}

/// Runs `brokers` if nisshi or the venv is missing; returns their paths.
fn ensure_tools() -> Result<(PathBuf, PathBuf)> {
    let nisshi = paths::nisshi_bin();
    let python = paths::venv_python();
    if nisshi.is_file() && python.is_file() {
        println!("nisshi:      {}", nisshi.display());
        println!("venv python: {}", python.display());
        return Ok((nisshi, python));
    }
    println!("nisshi or the Python venv is missing: running `cargo xtask brokers` first");
    brokers::run()?;
    Ok((nisshi, python))
}

/// Builds kmirror and returns its executable, as cargo reports it.
fn build_kmirror(profile: Profile) -> Result<PathBuf> {
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
    let mut command = Command::new("cargo");
    command
        .current_dir(paths::workspace_root())
        .args(&args)
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    // `cargo xtask` runs us with the xtask package's CARGO_MANIFEST_DIR,
    // CARGO_PKG_* and so on. Build scripts that watch one of them (ring's
    // does) would see a change and rebuild, once here and once more in the
    // next plain `cargo build --release`.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            command.env_remove(name);
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
    let executable = stdout
        .lines()
        .filter(|line| line.contains("\"compiler-artifact\"") && line.contains("\"executable\""))
        .filter_map(|line| Json::parse(line).ok())
        .filter(|message| {
            message
                .get("target")
                .and_then(|target| target.get("name"))
                .and_then(Json::as_str)
                == Some("kmirror")
        })
        .find_map(|message| {
            message
                .get("executable")
                .and_then(Json::as_str)
                .map(PathBuf::from)
        })
        .ok_or_else(|| {
            format!(
                "`cargo {}` succeeded but reported no kmirror executable",
                args.join(" ")
            )
        })?;
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

/// `<target>/xtask/demo`, next to the running binary's target directory,
/// or a temporary directory.
fn scratch_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .filter(|target| target.join("CACHEDIR.TAG").is_file())
        .map_or_else(
            || std::env::temp_dir().join(format!("kmirror-demo-{}", std::process::id())),
            |target| target.join("xtask").join("demo"),
        )
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn show_file(name: &str, text: &str) {
    println!("--- {name}");
    for line in text.lines() {
        println!("    {line}");
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, unless it has
/// already exited.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Waits up to `timeout` for `child` to exit.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
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

fn describe_status(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("with status {code}"),
        None => format!("on a signal ({status})"),
    }
}

/// The last `max` bytes of a file, for error messages.
fn tail(path: &Path, max: usize) -> String {
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
struct Broker {
    addr: SocketAddr,
    log: PathBuf,
    _process: Guarded,
}

impl Broker {
    /// Starts `nisshi broker` with memory storage on a free port and waits
    /// until the port accepts connections. A port taken between picking it
    /// and nisshi binding it is retried with another.
    fn start(nisshi: &Path, name: &str, dir: &Path) -> Result<Self> {
        let broker_dir = dir.join(name);
        std::fs::create_dir_all(&broker_dir)
            .map_err(|e| format!("cannot create {}: {e}", broker_dir.display()))?;
        let log = broker_dir.join("nisshi.log");
        let mut attempts = 0;
        loop {
            attempts += 1;
            let addr = free_port()?;
            let url = format!("tcp://{addr}");
            let args = [
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
            let mut log_file = File::options()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
            let _ = writeln!(
                log_file,
                "=== xtask demo: starting {} {}",
                nisshi.display(),
                args.join(" ")
            );
            let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
            let mut process = Guarded(
                Command::new(nisshi)
                    .args(args)
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
                    return Ok(Self {
                        addr,
                        log,
                        _process: process,
                    });
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
}

fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// One line kmirror wrote.
#[derive(Debug, Clone)]
struct OutputLine {
    stream: &'static str,
    text: String,
}

/// The running kmirror, its output shown as it comes and kept.
struct Mirror {
    process: Guarded,
    output: Arc<Mutex<Vec<OutputLine>>>,
    readers: Vec<JoinHandle<()>>,
    log: PathBuf,
}

impl Mirror {
    fn start(kmirror: &Path, args: &[&str], dir: &Path) -> Result<Self> {
        let log = dir.join("kmirror.log");
        let log_file = Arc::new(Mutex::new(
            File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?,
        ));
        let mut child = Command::new(kmirror)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", kmirror.display()))?;
        let stdout: Option<ChildStdout> = child.stdout.take();
        let stderr: Option<ChildStderr> = child.stderr.take();
        let process = Guarded(child);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = stdout {
            readers.push(echo_lines(
                stdout,
                "stdout",
                output.clone(),
                log_file.clone(),
            ));
        }
        if let Some(stderr) = stderr {
            readers.push(echo_lines(stderr, "stderr", output.clone(), log_file));
        }
        Ok(Self {
            process,
            output,
            readers,
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// Fails if kmirror has exited.
    fn check_running(&mut self) -> Result<()> {
        match self.process.0.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.join_readers();
                Err(format!(
                    "kmirror exited {} while it should be mirroring; its output is above and in \
                     {}",
                    describe_status(status),
                    self.log.display()
                ))
            }
            Err(e) => Err(format!("cannot check on kmirror: {e}")),
        }
    }

    /// Sends SIGINT (what Ctrl+C sends) and waits for the exit; returns
    /// the status and everything kmirror wrote.
    fn interrupt_and_wait(&mut self) -> Result<(ExitStatus, Vec<OutputLine>)> {
        self.check_running()?;
        let pid = self.pid().to_string();
        println!("$ kill -INT {pid}");
        let status = Command::new("kill")
            .args(["-INT", &pid])
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run `kill -INT {pid}`: {e}"))?;
        if !status.success() {
            return Err(format!("`kill -INT {pid}` failed ({status})"));
        }
        let Some(status) = wait_timeout(&mut self.process.0, STOP_TIMEOUT)? else {
            return Err(format!(
                "kmirror did not exit within {} s of SIGINT (a clean stop drains in-flight \
                 batches and commits); it is killed now",
                STOP_TIMEOUT.as_secs()
            ));
        };
        self.join_readers();
        let output = self
            .output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Ok((status, output))
    }

    /// Waits (briefly) until both output readers have seen the end.
    fn join_readers(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        for reader in std::mem::take(&mut self.readers) {
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
    }
}

/// Echoes every line of `pipe` with a prefix, keeps it and logs it.
fn echo_lines(
    pipe: impl Read + Send + 'static,
    stream: &'static str,
    output: Arc<Mutex<Vec<OutputLine>>>,
    log: Arc<Mutex<File>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(text) = line else { break };
            println!("  [kmirror {stream}] {text}");
            {
                let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = writeln!(log, "[{stream}] {text}");
            }
            output
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(OutputLine { stream, text });
        }
    })
}

/// Runs the helper scripts with the venv's Python, each from a file in the
/// scratch directory with its output next to it.
struct Scripts {
    python: PathBuf,
    dir: PathBuf,
}

/// A running helper script.
struct Script {
    name: String,
    file: PathBuf,
    out: PathBuf,
    err: PathBuf,
    process: Guarded,
}

impl Scripts {
    fn spawn(&self, name: &str, source: &str, args: &[&str]) -> Result<Script> {
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
    fn run(&self, name: &str, source: &str, args: &[&str]) -> Result<String> {
        self.spawn(name, source, args)?
            .wait_while(SCRIPT_TIMEOUT, || Ok(()))
    }
}

impl Script {
    /// Waits up to `timeout` for the script to end, calling `check` as it
    /// runs (an error from it ends the wait); returns its standard output.
    fn wait_while(
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

fn parse_json(name: &str, text: &str) -> Result<Json> {
    let last = text.lines().rev().find(|line| !line.trim().is_empty());
    Json::parse(last.unwrap_or_default().trim())
        .map_err(|e| format!("the {name} script printed no JSON summary ({e}):\n{text}"))
}

/// One record as a script reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    partition: i64,
    offset: i64,
    key: Option<String>,
    value: Option<String>,
}

/// The records of a script's summary: a top-level array, or its `records`.
fn records_of(name: &str, summary: &Json) -> Result<Vec<Record>> {
    let items = summary
        .as_array()
        .or_else(|| summary.get("records").and_then(Json::as_array))
        .ok_or_else(|| format!("the {name} script's summary has no records"))?;
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        let number = |field: &str| {
            item.get(field)
                .and_then(Json::as_i64)
                .ok_or_else(|| format!("a record from {name} has no {field}"))
        };
        let text = |field: &str| item.get(field).and_then(Json::as_str).map(str::to_owned);
        records.push(Record {
            partition: number("partition")?,
            offset: number("offset")?,
            key: text("key"),
            value: text("value"),
        });
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

fn print_records(records: &[Record]) {
    println!("  partition  offset  key     value");
    for r in records {
        println!(
            "  {:>9}  {:>6}  {:<6}  {}",
            r.partition,
            r.offset,
            r.key.as_deref().unwrap_or("(null)"),
            r.value.as_deref().unwrap_or("(null)")
        );
    }
}

fn topic_list(summary: &Json) -> String {
    let topics: Vec<&str> = summary
        .get("topics")
        .and_then(Json::as_array)
        .unwrap_or_default()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    let partitions = summary.get("partitions").and_then(Json::as_i64);
    if topics.is_empty() {
        return "none".to_owned();
    }
    topics
        .iter()
        .map(|topic| match partitions {
            Some(n) if *topic == TOPIC && n > 0 => format!("{topic} ({n} partitions)"),
            _ => (*topic).to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that the destination holds exactly the produced lines, each
/// once, on its source partition and in source order.
fn compare(produced: &[Record], received: &[Record], partitions: Option<i64>) -> Result<()> {
    let mut problems = Vec::new();
    if partitions != Some(PARTITIONS) {
        problems.push(format!(
            "the destination's {TOPIC} has {} partitions, the source's {PARTITIONS}",
            partitions.map_or_else(|| "no".to_owned(), |n| n.to_string())
        ));
    }
    let mut counts: BTreeMap<(&Option<String>, &Option<String>), usize> = BTreeMap::new();
    for r in received {
        *counts.entry((&r.key, &r.value)).or_default() += 1;
    }
    for p in produced {
        let value = p.value.as_deref().unwrap_or("(null)");
        match counts.get(&(&p.key, &p.value)).copied().unwrap_or(0) {
            0 => problems.push(format!("missing on the destination: {value:?}")),
            1 => {}
            n => problems.push(format!(
                "{n} copies on the destination (a clean run should leave one): {value:?}"
            )),
        }
        if let Some(r) = received
            .iter()
            .find(|r| r.key == p.key && r.value == p.value)
            .filter(|r| r.partition != p.partition)
        {
            problems.push(format!(
                "{value:?} is on partition {} of the destination but {} of the source (equal \
                 partition counts keep the partition)",
                r.partition, p.partition
            ));
        }
    }
    for r in received {
        if !produced
            .iter()
            .any(|p| p.key == r.key && p.value == r.value)
        {
            problems.push(format!(
                "on the destination but never produced: {:?}",
                r.value.as_deref().unwrap_or("(null)")
            ));
        }
    }
    // Per partition, the destination's order must be the source's.
    let order = |records: &[Record]| {
        let mut by_partition: BTreeMap<i64, Vec<Option<String>>> = BTreeMap::new();
        for r in records {
            by_partition
                .entry(r.partition)
                .or_default()
                .push(r.value.clone());
        }
        by_partition
    };
    if problems.is_empty() && order(produced) != order(received) {
        problems.push("the order within a partition differs from the source's".to_owned());
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut message = String::from("the destination does not match the source:");
    for problem in &problems {
        let _ = write!(message, "\n  - {problem}");
    }
    Err(message)
}

/// Prints the group's committed offsets next to the end offsets and checks
/// that a clean stop committed everything.
fn check_offsets(summary: &Json) -> Result<()> {
    let state = summary
        .get("state")
        .and_then(Json::as_str)
        .unwrap_or("unknown");
    let members = summary
        .get("members")
        .and_then(Json::as_i64)
        .map_or_else(|| "?".to_owned(), |n| n.to_string());
    println!("group {GROUP}: state {state}, {members} members");
    println!("  partition  committed  end offset  lag");
    let rows = summary
        .get("offsets")
        .and_then(Json::as_array)
        .ok_or("the group_offsets script's summary has no offsets")?;
    let mut behind = Vec::new();
    for row in rows {
        let field = |name: &str| row.get(name).and_then(Json::as_i64).unwrap_or(-1);
        let (partition, committed, end) = (field("partition"), field("committed"), field("end"));
        // librdkafka reports "no committed offset" as -1001.
        let (shown, lag) = if committed >= 0 {
            (committed.to_string(), (end - committed).to_string())
        } else {
            (
                "none".to_owned(),
                if end > 0 {
                    end.to_string()
                } else {
                    "0".to_owned()
                },
            )
        };
        println!("  {partition:>9}  {shown:>9}  {end:>10}  {lag:>3}");
        if committed.max(0) != end {
            behind.push(format!(
                "partition {partition}: committed {shown}, end offset {end}"
            ));
        }
    }
    if rows.len() != usize::try_from(PARTITIONS).unwrap_or(0) {
        return Err(format!(
            "the source reports {} partitions of {TOPIC} for group {GROUP}, expected {PARTITIONS}",
            rows.len()
        ));
    }
    if behind.is_empty() {
        println!(
            "every partition is committed up to its end offset: a restart would copy nothing twice"
        );
        Ok(())
    } else {
        Err(format!(
            "after a clean stop kmirror should have committed every mirrored record, but group \
             {GROUP} is behind: {}",
            behind.join("; ")
        ))
    }
}

/// Creates the topic; prints `{"partitions": N}` as the source reports it.
const CREATE_TOPIC: &str = r#"
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

/// Produces the lines one at a time, keyed, with Java's partitioner;
/// prints where each landed.
const PRODUCE: &str = r#"
import json, sys
from confluent_kafka import Producer

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
producer = Producer({
    "bootstrap.servers": bootstrap,
    "acks": "all",
    "enable.idempotence": True,
    # Java's default partitioner (murmur2 of the key), as kafka-console-producer.sh has.
    "partitioner": "murmur2_random",
})
delivered, failures = [], []

def report(err, msg):
    if err is not None:
        failures.append(str(err))
        return
    delivered.append({
        "partition": msg.partition(), "offset": msg.offset(),
        "key": msg.key().decode(), "value": msg.value().decode(),
    })

for n in range(1, count + 1):
    producer.produce(
        topic,
        key=f"key-{n % 4}".encode(),
        value=f"hello from the source, line {n}".encode(),
        on_delivery=report,
    )
    # One line at a time, as typed into kafka-console-producer.sh: a batch each.
    if producer.flush(30) != 0:
        failures.append(f"line {n} was not acknowledged within 30 s")
        break
if failures:
    sys.exit("produce failed: " + "; ".join(failures))
print(json.dumps(delivered))
"#;

/// Waits until the topic holds `expected` records (or the timeout), then
/// reads everything up to the end offsets.
const READ_DESTINATION: &str = r#"
import json, sys, time
from confluent_kafka import Consumer, KafkaException, TopicPartition

bootstrap, topic = sys.argv[1], sys.argv[2]
expected, timeout = int(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + timeout
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "kmirror-demo-reader",
    "enable.auto.commit": False,
})
ends, topics, held = {}, [], 0
while True:
    metadata = consumer.list_topics(timeout=10)
    topics = sorted(name for name in metadata.topics if not name.startswith("__"))
    found = metadata.topics.get(topic)
    if found is not None and found.error is None and found.partitions:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in sorted(found.partitions)
        }
        held = sum(high - low for low, high in ends.values())
        if held >= expected:
            break
    if time.monotonic() >= deadline:
        print(json.dumps({"complete": False, "topics": topics, "partitions": len(ends),
                          "held": held, "records": []}))
        sys.exit(0)
    time.sleep(0.25)

records = []
pending = {p: high for p, (low, high) in ends.items() if high > low}
if pending:
    consumer.assign([TopicPartition(topic, p, ends[p][0]) for p in pending])
read_deadline = time.monotonic() + 30
while pending:
    if time.monotonic() >= read_deadline:
        sys.exit(f"could not read up to the end offsets within 30 s; still waiting for {pending}")
    msg = consumer.poll(0.5)
    if msg is None:
        continue
    if msg.error():
        raise KafkaException(msg.error())
    key, value = msg.key(), msg.value()
    records.append({
        "partition": msg.partition(), "offset": msg.offset(),
        "key": None if key is None else key.decode("utf-8", "replace"),
        "value": None if value is None else value.decode("utf-8", "replace"),
    })
    if msg.offset() + 1 >= pending.get(msg.partition(), 0):
        pending.pop(msg.partition(), None)
consumer.close()
print(json.dumps({"complete": True, "topics": topics, "partitions": len(ends), "held": held,
                  "records": records}))
"#;

/// The group's state and committed offsets, next to the end offsets.
/// Reads offsets without joining the group.
const GROUP_OFFSETS: &str = r#"
import json, sys
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

bootstrap, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
state, members = "unknown", None
try:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.describe_consumer_groups([group], request_timeout=15).values():
        description = future.result(timeout=30)
        state = getattr(description.state, "name", str(description.state))
        members = len(description.members)
except Exception as e:
    state = f"unknown ({e})"

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False})
metadata = consumer.list_topics(topic, timeout=10)
partitions = sorted(metadata.topics[topic].partitions)
rows = []
for tp in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=30):
    if tp.error:
        raise KafkaException(tp.error)
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
    rows.append({"partition": tp.partition, "committed": tp.offset, "end": high})
consumer.close()
print(json.dumps({"state": state, "members": members, "offsets": rows}))
"#;
