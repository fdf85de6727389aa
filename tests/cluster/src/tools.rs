//! Where `cargo xtask brokers` installed Apache Kafka, and running its
//! command-line tools through the `kafka-tool` launcher.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{process, scratch};

/// An Apache Kafka version the test infrastructure pins (each one a
/// distribution from Maven Central under the tools directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KafkaVersion {
    /// 2.1.1: the oldest line that still runs on Java 17 (HDInsight runs
    /// 2.1 to 3.2). ZooKeeper mode only.
    V2_1,
    /// 3.9.2: the last line with ZooKeeper mode and MirrorMaker 1.
    V3_9,
    /// 4.4.0: the newest 4.x; KRaft only.
    V4_4,
}

impl KafkaVersion {
    /// Every pinned version, oldest first.
    pub const ALL: [KafkaVersion; 3] = [KafkaVersion::V2_1, KafkaVersion::V3_9, KafkaVersion::V4_4];

    /// The newest pinned version (the default test cluster).
    pub const NEWEST: KafkaVersion = KafkaVersion::V4_4;

    /// The full version, as the launcher and the directory name spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaVersion::V2_1 => "2.1.1",
            KafkaVersion::V3_9 => "3.9.2",
            KafkaVersion::V4_4 => "4.4.0",
        }
    }

    /// Whether this version can run in KRaft mode (3.x and later; 3.9 runs
    /// in either mode).
    pub fn has_kraft(self) -> bool {
        self >= KafkaVersion::V3_9
    }

    /// Whether this version can run in ZooKeeper mode (removed in 4.0).
    pub fn has_zookeeper(self) -> bool {
        self <= KafkaVersion::V3_9
    }
}

impl std::fmt::Display for KafkaVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long one tool run may take before it is killed.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// `${KMIRROR_TOOLS:-$HOME/.cache/kmirror/tools}`.
pub fn tools_root() -> PathBuf {
    env_path("KMIRROR_TOOLS").unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".cache").join("kmirror").join("tools")
    })
}

/// The `kafka-tool` launcher.
///
/// # Panics
///
/// If Apache Kafka is not installed for `version`, with a message saying to
/// run `cargo xtask brokers`.
pub fn kafka_tool(version: KafkaVersion) -> PathBuf {
    let root = tools_root();
    let launcher = root.join("kafka-tool");
    let dist = root.join(format!("kafka-{version}"));
    assert!(
        launcher.is_file() && dist.join("INSTALLED").is_file(),
        "Apache Kafka {version} is not installed under {}; run `cargo xtask brokers` \
         (it resolves Kafka from Maven Central with mvn and needs Java 17; set KMIRROR_TOOLS \
         to use another tools directory)",
        root.display()
    );
    launcher
}

/// What a finished tool run printed.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error (Kafka's tools log there).
    pub stderr: String,
}

/// Runs `kafka-tool VERSION TOOL ARGS...` with `stdin` fed to it and
/// returns what it printed, whatever its exit status.
///
/// # Panics
///
/// If Kafka is not installed, the launcher cannot start, or the tool runs
/// longer than [`TOOL_TIMEOUT`].
pub fn run_tool(
    version: KafkaVersion,
    tool: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> ToolOutput {
    let launcher = kafka_tool(version);
    let dir = scratch::new_dir("tool");
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    let in_path = dir.join("stdin");
    std::fs::write(&in_path, stdin.unwrap_or_default())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", in_path.display()));
    let input = std::fs::File::open(&in_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", in_path.display()));
    let mut child = Command::new(&launcher)
        .arg(version.as_str())
        .arg(tool)
        .args(args)
        .env("KAFKA_JVM_PERFORMANCE_OPTS", crate::cluster::QUICK_JVM_OPTS)
        .stdin(Stdio::from(input))
        .stdout(process::create_file(&out_path))
        .stderr(process::create_file(&err_path))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", launcher.display()));
    let status = scratch::wait_with_timeout(&mut child, TOOL_TIMEOUT);
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    let output = ToolOutput {
        success: status.is_some_and(|s| s.success()),
        stdout: read(&out_path),
        stderr: read(&err_path),
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        status.is_some(),
        "`kafka-tool {version} {tool} {}` ran longer than {TOOL_TIMEOUT:?} and was killed\n--- stderr:\n{}\n--- stdout:\n{}",
        args.join(" "),
        output.stderr,
        output.stdout
    );
    output
}

/// Like [`run_tool`], and panics (with everything it printed) unless it
/// exits with status 0; returns its standard output.
pub fn run_tool_ok(
    version: KafkaVersion,
    tool: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> String {
    let output = run_tool(version, tool, args, stdin);
    assert!(
        output.success,
        "`kafka-tool {version} {tool} {}` failed\n--- stderr:\n{}\n--- stdout:\n{}",
        args.join(" "),
        output.stderr,
        output.stdout
    );
    output.stdout
}
