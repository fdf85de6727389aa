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
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Result;
use crate::harness::{
    Broker, CREATE_TOPIC, Guarded, Profile, SCRIPT_TIMEOUT, Scripts, build_kmirror,
    describe_status, ensure_tools, parse_json, scratch_dir, wait_timeout, write_file,
};
use crate::json::Json;

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

/// How long the lines may take to arrive at the destination.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long kmirror may take to stop after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

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

    let dir = scratch_dir("demo");
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
    let source = Broker::start(nisshi, "source", dir, &[])?;
    let destination = Broker::start(nisshi, "destination", dir, &[])?;
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

fn show_file(name: &str, text: &str) {
    println!("--- {name}");
    for line in text.lines() {
        println!("    {line}");
    }
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
