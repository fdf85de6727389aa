//! The built `kmirror` binary, run as a user runs it: every user mistake
//! gives its exit code and one paragraph on stderr naming the problem and
//! the fix (never a panic or a backtrace). The runs against real brokers
//! are in `mirror.rs`.
//!
//! None of these needs a broker: the unreachable cluster is a free port
//! nobody listens on.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kmirror_test_support::free_port;

/// The guide's command line, after the command name.
const GUIDE_ARGS: &[&str] = &[
    "--consumer.config",
    "consumer.properties",
    "--producer.config",
    "producer.properties",
    "--whitelist",
    "testtopic",
    "--num.streams",
    "4",
];

/// A scratch directory that holds the `.properties` files; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kmirror-cli-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> &Self {
        std::fs::write(self.0.join(name), text).unwrap();
        self
    }

    /// Runs `kmirror args` in this directory.
    fn kmirror(&self, args: &[&str]) -> Run {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_kmirror"))
            .args(args)
            .current_dir(&self.0)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run::new(output, started.elapsed())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The outcome of one run.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn new(output: Output, elapsed: Duration) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed,
        }
    }

    fn context(&self) -> String {
        format!(
            "exit {:?}\n--- stdout:\n{}--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the exit code, that stderr is exactly one line
    /// `kmirror: error: <message>`, that it contains every needle, and
    /// that nothing hints at a panic. Returns the message.
    fn error(&self, code: i32, needles: &[&str]) -> String {
        assert_eq!(self.code, Some(code), "{}", self.context());
        self.no_panic();
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "one paragraph on stderr: {}",
            self.context()
        );
        let message = lines[0]
            .strip_prefix("kmirror: error: ")
            .unwrap_or_else(|| panic!("no `kmirror: error: ` prefix: {}", self.context()));
        for needle in needles {
            assert!(
                message.contains(needle),
                "{needle:?} in: {}",
                self.context()
            );
        }
        assert!(self.stdout.is_empty(), "{}", self.context());
        message.to_owned()
    }

    fn no_panic(&self) {
        for text in [&self.stdout, &self.stderr] {
            for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
                assert!(!text.contains(bad), "{bad:?}: {}", self.context());
            }
        }
    }
}

/// A consumer file that triggers no notice (so that stderr holds only the
/// error).
fn quiet_consumer(bootstrap: &str) -> String {
    format!("bootstrap.servers={bootstrap}\ngroup.id=mirrorgroup\nauto.offset.reset=earliest\n")
}

/// Files that are fine apart from what a test changes.
fn scratch_with(consumer: &str, producer: &str) -> Scratch {
    let scratch = Scratch::new();
    scratch
        .write("consumer.properties", consumer)
        .write("producer.properties", producer);
    scratch
}

fn good_scratch() -> Scratch {
    scratch_with(
        &quiet_consumer("127.0.0.1:9092"),
        "bootstrap.servers=127.0.0.1:9093\n",
    )
}

#[test]
fn missing_file() {
    let s = Scratch::new();
    s.write("producer.properties", "bootstrap.servers=127.0.0.1:9093\n");
    let message = s.kmirror(GUIDE_ARGS).error(3, &[]);
    assert_eq!(
        message,
        "cannot read consumer config consumer.properties: No such file or directory; pass the \
         path of an existing file to --consumer.config"
    );
}

#[test]
fn unreadable_file_a_directory() {
    let s = good_scratch();
    std::fs::create_dir(s.0.join("conf.d")).unwrap();
    let mut args = GUIDE_ARGS.to_vec();
    args[3] = "conf.d";
    let message = s.kmirror(&args).error(3, &[]);
    assert_eq!(
        message,
        "cannot read producer config conf.d: Is a directory; pass the path of a file, not a \
         directory to --producer.config"
    );
}

#[test]
fn bad_regex_lookahead_is_explained() {
    let s = good_scratch();
    let mut args = GUIDE_ARGS.to_vec();
    args[5] = "(?!internal).*";
    s.kmirror(&args).error(
        3,
        &[
            "--whitelist/--include pattern `(?!internal).*` uses a lookahead",
            "Java regex syntax that kmirror's regex engine (the Rust `regex` crate) does not support",
            "--include '.*' --exclude 'internal.*'",
        ],
    );
}

#[test]
fn invalid_regex() {
    let s = good_scratch();
    let mut args = GUIDE_ARGS.to_vec();
    args[5] = "orders(";
    s.kmirror(&args).error(
        3,
        &["--whitelist/--include pattern `orders(` is not a valid regular expression"],
    );
}

#[test]
fn unknown_flag() {
    let s = good_scratch();
    let mut args = GUIDE_ARGS.to_vec();
    args.push("--frobnicate");
    s.kmirror(&args).error(
        2,
        &[
            "unexpected argument '--frobnicate' found",
            "kmirror takes MirrorMaker 1's flags",
            "run 'kmirror --help' for the flags",
        ],
    );
    let mut args = GUIDE_ARGS.to_vec();
    args[6] = "--num-streams";
    let message = s.kmirror(&args).error(2, &[]);
    assert_eq!(
        message,
        "unexpected argument '--num-streams' found; did you mean --num.streams? (MirrorMaker's \
         flags are spelled with dots); run 'kmirror --help' for the flags"
    );
}

#[test]
fn bad_flag_values_and_missing_flags() {
    let s = good_scratch();
    let mut args = GUIDE_ARGS.to_vec();
    args[7] = "0";
    s.kmirror(&args).error(
        2,
        &["invalid value '0' for '--num.streams <N>': 0 is not in 1..=1024"],
    );
    s.kmirror(&GUIDE_ARGS[..2]).error(
        2,
        &[
            "missing --producer.config; pass --producer.config FILE",
            "bootstrap.servers",
        ],
    );
    let without_whitelist = [&GUIDE_ARGS[..4], &GUIDE_ARGS[6..]].concat();
    let message = s.kmirror(&without_whitelist).error(2, &[]);
    assert!(
        message.starts_with(
            "pass --whitelist (or --include) with the topics to mirror, e.g. --whitelist testtopic"
        ),
        "{message}"
    );
}

#[test]
fn bad_config_value() {
    let s = scratch_with(
        &quiet_consumer("127.0.0.1:9092"),
        "bootstrap.servers=127.0.0.1:9093\nacks=2\n",
    );
    let message = s.kmirror(GUIDE_ARGS).error(3, &[]);
    assert_eq!(
        message,
        "producer.properties: invalid value \"2\" for acks; allowed: all (or -1: every in-sync \
         replica has the records; the default) or 1 (the leader only, without idempotence); 0 is \
         refused, as kmirror commits only what the destination acknowledged"
    );
}

#[test]
fn missing_group_id() {
    let s = scratch_with(
        "bootstrap.servers=127.0.0.1:9092\n",
        "bootstrap.servers=127.0.0.1:9093\n",
    );
    let message = s.kmirror(GUIDE_ARGS).error(3, &[]);
    assert_eq!(
        message,
        "consumer.properties: missing group.id; add group.id=... to consumer.properties, the \
         consumer group whose offsets kmirror commits (the HDInsight guide uses \
         group.id=mirrorgroup)"
    );
}

#[test]
fn message_handler_is_refused() {
    let s = good_scratch();
    let mut args = GUIDE_ARGS.to_vec();
    args.extend(["--message.handler", "com.example.MyHandler"]);
    let message = s.kmirror(&args).error(2, &[]);
    assert_eq!(
        message,
        "--message.handler is not supported by kmirror: MirrorMaker's message handlers run Java \
         code; kmirror copies records unchanged (topic, partition, key, value, headers, \
         timestamp); remove --message.handler and --message.handler.args from the command line"
    );
    let mut args = GUIDE_ARGS.to_vec();
    args.extend(["--consumer.rebalance.listener", "com.example.Listener"]);
    s.kmirror(&args).error(
        2,
        &["--consumer.rebalance.listener is not supported by kmirror: MirrorMaker's rebalance listeners run Java code"],
    );
}

#[test]
fn unreachable_cluster() {
    // The source gives up after 1 s; the destination (default 30 s) is not
    // waited for.
    let port = free_port();
    let s = scratch_with(
        &format!(
            "{}request.timeout.ms=1000\n",
            quiet_consumer(&format!("127.0.0.1:{port}"))
        ),
        &format!("bootstrap.servers=127.0.0.1:{}\n", free_port()),
    );
    let run = s.kmirror(GUIDE_ARGS);
    let message = run.error(
        4,
        &["check bootstrap.servers and that the brokers are running and reachable from this host"],
    );
    assert!(
        message.starts_with(&format!(
            "cannot connect to the source cluster (consumer.properties): cannot reach the \
             cluster at 127.0.0.1:{port} within 1s: "
        )),
        "{message}"
    );
    // Within request.timeout.ms (plus slack), not a hang.
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn help_and_version() {
    let s = Scratch::new();
    let run = s.kmirror(&["--help"]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert!(run.stderr.is_empty(), "{}", run.context());
    for needle in [
        "--consumer.config <FILE>",
        "--producer.config <FILE>",
        "--whitelist <PATTERN>",
        "--blacklist <PATTERN>",
        "--num.streams <N>",
        "--offset.commit.interval.ms <MS>",
        "--abort.on.send.failure [<true|false>]",
        "--once",
        "Exit codes:",
        "  4   cannot connect",
    ] {
        assert!(run.stdout.contains(needle), "{needle}: {}", run.context());
    }
    let run = s.kmirror(&["--version"]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert_eq!(
        run.stdout,
        format!("kmirror {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// The panic hook: one line, exit 70, no backtrace (debug builds read
/// `KMIRROR_TEST_PANIC`).
#[cfg(debug_assertions)]
#[test]
fn a_panic_is_one_line_and_exit_70() {
    let output = Command::new(env!("CARGO_BIN_EXE_kmirror"))
        .env("KMIRROR_TEST_PANIC", "1")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let run = Run::new(output, Duration::ZERO);
    assert_eq!(run.code, Some(70), "{}", run.context());
    run.no_panic();
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.context());
    assert!(
        lines[0].starts_with("kmirror: internal error: KMIRROR_TEST_PANIC is set at ")
            && lines[0].ends_with(" (please report)"),
        "{}",
        run.context()
    );
}
