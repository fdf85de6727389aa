//! What the end-to-end tests share for running the `kmirror` binary: a
//! scratch directory with the consumer and producer `.properties` files
//! ([`Scratch`]), a running process ([`Mirror`]), how it ended
//! ([`Exited`]), and a few checks of what arrived at the destination.
//!
//! The binary is the one cargo built for these tests; set `KMIRROR_BIN` to
//! the path of another kmirror build (a copy of an older commit's, say) to
//! run it against the same tests, for instance to see a test fail before a
//! fix.
//!
//! Each test binary compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod cutover;
pub mod producer;

use kmirror_test_support::{
    KafkaCluster, librdkafka_committed_offsets, librdkafka_consume_summary, librdkafka_end_offsets,
    librdkafka_list_topics,
};

/// The kmirror binary under test: `KMIRROR_BIN` if set, else this build's.
pub fn kmirror_binary() -> PathBuf {
    std::env::var_os("KMIRROR_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_kmirror")),
        PathBuf::from,
    )
}

/// A scratch directory with the `.properties` files and kmirror's output;
/// removed on drop unless a test is failing.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(consumer: &str, producer: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kmirror-{}-test-{}-{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("consumer.properties"), consumer).unwrap();
        std::fs::write(dir.join("producer.properties"), producer).unwrap();
        Self(dir)
    }

    /// The directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.0
    }

    /// Starts `kmirror` with the two files and `args`; output goes to
    /// `run-N.out` / `run-N.err`.
    pub fn spawn(&self, args: &[&str]) -> Mirror {
        self.spawn_with_env(&[], args)
    }

    /// [`Scratch::spawn`] with `env` added to kmirror's environment.
    pub fn spawn_with_env(&self, env: &[(&str, &str)], args: &[&str]) -> Mirror {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let out = self.0.join(format!("run-{n}.out"));
        let err = self.0.join(format!("run-{n}.err"));
        let child = Command::new(kmirror_binary())
            .args([
                "--consumer.config",
                "consumer.properties",
                "--producer.config",
                "producer.properties",
            ])
            .args(args)
            .envs(env.iter().map(|(k, v)| (OsStr::new(k), OsStr::new(v))))
            .current_dir(&self.0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Mirror {
            child: Some(child),
            out,
            err,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A running `kmirror`; killed on drop.
pub struct Mirror {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Mirror {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `signal` (`-INT`, `-TERM`, `-KILL`, ...) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    pub fn stdout_now(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr_now(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Stdout so far and the last `bytes` of stderr, for a message.
    pub fn output(&self, bytes: usize) -> String {
        format!(
            "--- stdout:\n{}--- stderr (last {bytes} bytes):\n{}",
            self.stdout_now(),
            tail(&self.stderr_now(), bytes)
        )
    }

    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Panics (with kmirror's output) if the process has ended.
    pub fn assert_running(&mut self, when: &str) {
        let child = self.child.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "kmirror exited ({status}) {when}:\n{}",
                tail(&self.stderr_now(), 6000)
            );
        }
    }

    /// Waits for the process to end; panics (after killing it) if it does
    /// not within `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Exited {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let exited = Exited {
            code: status.and_then(|s| s.code()),
            stdout: self.stdout_now(),
            stderr: self.stderr_now(),
        };
        assert!(
            status.is_some(),
            "kmirror did not exit within {timeout:?}: {}",
            exited.context()
        );
        exited
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a run ended.
pub struct Exited {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Exited {
    /// The exit code, stdout and the last 6000 bytes of stderr.
    pub fn context(&self) -> String {
        self.context_with_tail(6000)
    }

    /// The exit code, stdout and the last `bytes` of stderr.
    pub fn context_with_tail(&self, bytes: usize) -> String {
        format!(
            "exit {:?}\n--- stdout:\n{}--- stderr (last {bytes} bytes):\n{}",
            self.code,
            self.stdout,
            tail(&self.stderr, bytes)
        )
    }

    /// Exit 0, and no panic, `ERROR` line or `kmirror: error` on stderr.
    pub fn assert_success(&self) {
        assert_eq!(self.code, Some(0), "{}", self.context());
        for bad in ["panicked", "ERROR", "kmirror: error"] {
            assert!(!self.stderr.contains(bad), "{bad}: {}", self.context());
        }
    }

    /// The counters of the final summary line.
    pub fn summary(&self) -> Summary {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with("kmirror: mirrored "))
            .unwrap_or_else(|| panic!("no summary line: {}", self.context()));
        let number_before = |needle: &str| -> u64 {
            let end = line
                .find(needle)
                .unwrap_or_else(|| panic!("{needle:?} in {line}"));
            let digits: String = line[..end]
                .chars()
                .rev()
                .skip_while(|c| *c == ' ')
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            digits
                .parse()
                .unwrap_or_else(|_| panic!("{needle:?} in {line}"))
        };
        Summary {
            records: number_before("records ("),
            passthrough: number_before("batches passed through"),
            slow: number_before("rebuilt on the slow path"),
        }
    }
}

/// The counters of kmirror's final summary line.
pub struct Summary {
    pub records: u64,
    pub passthrough: u64,
    pub slow: u64,
}

/// The last `bytes` of `text` (from a character boundary).
pub fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Records at `bootstrap` in `topic` so far (0 before the topic exists).
pub fn record_count(bootstrap: &str, topic: &str) -> i64 {
    if librdkafka_list_topics(bootstrap).iter().any(|t| t == topic) {
        librdkafka_end_offsets(bootstrap, topic).values().sum()
    } else {
        0
    }
}

pub fn partition_count(bootstrap: &str, topic: &str) -> usize {
    librdkafka_end_offsets(bootstrap, topic).len()
}

/// The group's committed offsets equal the source's end offsets.
pub fn assert_committed_to_the_end(source: &str, group: &str, topic: &str) {
    let ends = librdkafka_end_offsets(source, topic);
    let committed = librdkafka_committed_offsets(source, group, topic);
    let expected: BTreeMap<i32, Option<i64>> =
        ends.into_iter().map(|(p, o)| (p, Some(o))).collect();
    assert_eq!(
        committed, expected,
        "committed offsets of {group} on {topic}"
    );
}

/// Nothing lost and per-partition order kept at the destination; returns
/// the duplicates.
pub fn assert_complete_in_order(source: &str, destination: &str, topic: &str) -> u64 {
    let expected: BTreeMap<i32, Vec<u64>> = librdkafka_consume_summary(source, topic)
        .into_iter()
        .map(|(p, s)| (p, s.sequences))
        .collect();
    let actual = librdkafka_consume_summary(destination, topic);
    let mut duplicates = 0;
    for (partition, sequences) in &expected {
        let got = actual
            .get(partition)
            .unwrap_or_else(|| panic!("partition {partition} missing at the destination"));
        let missing = got.missing(sequences.iter().copied());
        assert!(
            missing.is_empty(),
            "partition {partition}: {} records lost, first {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert_eq!(
            got.first_reorder(),
            None,
            "partition {partition}: order broken"
        );
        // Only the source's own records, in the source's order.
        let distinct: Vec<u64> = {
            let mut seen = BTreeSet::new();
            got.sequences
                .iter()
                .copied()
                .filter(|s| seen.insert(*s))
                .collect()
        };
        assert_eq!(
            &distinct, sequences,
            "partition {partition}: distinct records differ"
        );
        duplicates += got.duplicates();
    }
    duplicates
}

/// Calls `visit` with the view of every record batch of
/// `topic` at `bootstrap`, read with kmirror's own Fetch from offset 0
/// (librdkafka does not show a batch's codec or producer fields).
pub fn for_each_batch(
    bootstrap: &str,
    topic: &str,
    mut visit: impl FnMut(&kmirror_protocol::record::RecordBatchView),
) {
    use kmirror_protocol::kafka_protocol::messages::{self as kp, TopicName};
    use kmirror_protocol::kafka_protocol::protocol::StrBytes;
    use kmirror_protocol::record::{LogEntry, RecordBatches};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = kmirror_pool::ClientConfig {
        bootstrap_servers: bootstrap.split(',').map(str::to_owned).collect(),
        ..Default::default()
    };
    runtime.block_on(async {
        let cluster = kmirror_pool::Cluster::connect(config).await.unwrap();
        let metadata = cluster.metadata().await.unwrap();
        let info = &metadata.topics[topic];
        for p in &info.partitions {
            let conn = cluster
                .connection_to_broker(p.leader.unwrap())
                .await
                .unwrap();
            let version = conn.versions().version(kp::ApiKey::Fetch).unwrap();
            let mut t = kp::fetch_request::FetchTopic::default().with_partitions(vec![
                kp::fetch_request::FetchPartition::default()
                    .with_partition(p.partition)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(64 * 1024 * 1024),
            ]);
            t = if version >= 13 {
                t.with_topic_id(uuid::Uuid::from_bytes(info.id))
            } else {
                t.with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            };
            let request = kp::FetchRequest::default()
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(64 * 1024 * 1024)
                .with_topics(vec![t]);
            let response = conn.send(&request).await.unwrap();
            for t in response.topics {
                for part in t.partitions {
                    assert_eq!(
                        part.error_code, 0,
                        "fetch of {topic}-{}",
                        part.partition_index
                    );
                    for entry in RecordBatches::new(part.records.unwrap_or_default()) {
                        if let LogEntry::Batch(view) = entry.unwrap() {
                            visit(&view);
                        }
                    }
                }
            }
        }
    });
}

/// Waits until every partition of `topic` on the destination holds at
/// least what the source partition held when called (kmirror must run
/// throughout; `when` says when, in failures); returns how long it took.
/// The destination topic counts once it has all its `partitions`.
pub fn wait_caught_up(
    source: &KafkaCluster,
    destination: &KafkaCluster,
    topic: &str,
    partitions: i32,
    mirror: &mut Mirror,
    timeout: Duration,
    when: &str,
) -> Duration {
    let start = Instant::now();
    let target = librdkafka_end_offsets(&source.bootstrap(), topic);
    let expected = usize::try_from(partitions).unwrap_or(0);
    loop {
        mirror.assert_running(when);
        let got = if destination.partitions(topic).len() == expected {
            librdkafka_end_offsets(&destination.bootstrap(), topic)
        } else {
            BTreeMap::new()
        };
        if target
            .iter()
            .all(|(p, end)| got.get(p).is_some_and(|g| g >= end))
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "{when}: the destination holds {got:?}, the source held {target:?}, after \
             {timeout:?}; kmirror's stderr:\n{}",
            tail(&mirror.stderr_now(), 6000)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Apache Kafka's own MirrorMaker 1 (`kafka.tools.MirrorMaker`) running
/// with a [`Scratch`]'s two files; killed on drop.
pub struct MirrorMaker1 {
    child: Option<Child>,
    log: PathBuf,
}

impl MirrorMaker1 {
    /// Starts MirrorMaker 1 of `version` with the guide's flags:
    /// `--consumer.config consumer.properties --producer.config
    /// producer.properties --whitelist TOPIC --num.streams N`.
    pub fn start(
        scratch: &Scratch,
        version: kmirror_test_support::KafkaVersion,
        topic: &str,
        streams: u32,
    ) -> Self {
        let log = scratch.dir().join("mirrormaker1.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(kmirror_test_support::kafka_tool(version))
            .args([version.as_str(), "kafka-mirror-maker"])
            .args([
                "--consumer.config",
                "consumer.properties",
                "--producer.config",
                "producer.properties",
                "--whitelist",
                topic,
                "--num.streams",
                &streams.to_string(),
            ])
            .env("KAFKA_HEAP_OPTS", "-Xmx256m")
            .current_dir(scratch.dir())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            log,
        }
    }

    /// What it printed.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with its output) if it has ended.
    pub fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "MirrorMaker 1 exited ({status}) {when}:\n{}",
                tail(&self.output(), 6000)
            );
        }
    }

    /// Stops it as Ctrl+C does (SIGINT: its shutdown hook commits and
    /// leaves the group) and waits for it to end. MirrorMaker 1 does not
    /// always end on SIGINT within a minute (seen on a loaded machine):
    /// then it is killed, and what it had not committed is copied again by
    /// whoever takes its partitions (duplicates, which the tests count).
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() >= deadline {
                eprintln!(
                    "MirrorMaker 1 did not stop within 60 s of SIGINT: killed. Its output:\n{}",
                    tail(&self.output(), 3000)
                );
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for MirrorMaker1 {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `GET path` on `addr` (kmirror's `--metrics.listen`, a Prometheus
/// server): the status and body, or `None` if nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The value of the sample `series` (its name and labels exactly as
/// written, e.g. `kmirror_records_total{topic="t",path="passthrough"}`)
/// in a Prometheus exposition.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The sum of every sample of `name` whose labels contain `with`.
pub fn sum_of(exposition: &str, name: &str, with: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
