//! `cargo xtask demo`: the HDInsight MirrorMaker guide's scenario, end to
//! end on this machine, on real Apache Kafka 3.9.2 clusters in ZooKeeper
//! mode, with Kafka's own tools, once with `kmirror` and once with Apache
//! Kafka's own MirrorMaker 1 (`kafka.tools.MirrorMaker`), side by side.
//!
//! 1. installs Apache Kafka if missing (`brokers`) and builds `kmirror`
//!    (release, or debug with `--debug`);
//! 2. for each mirror, on a fresh pair of clusters (source and destination,
//!    one broker and one ZooKeeper each, `kmirror-test-cluster`):
//!    - `kafka-topics --create --topic testtopic --partitions 8` on the
//!      source;
//!    - writes the guide's `consumer.properties` (`zookeeper.connect` of the
//!      source, chroot included, and `group.id=mirrorgroup`, nothing else)
//!      and `producer.properties` (`bootstrap.servers` of the destination,
//!      `compression.type=none`);
//!    - starts the mirror with the guide's flags (`--consumer.config
//!      consumer.properties --producer.config producer.properties
//!      --whitelist testtopic --num.streams 4`). If it refuses the guide's
//!      files and exits, its error is shown in one line and it is started
//!      again with the one-line change it needs (`bootstrap.servers` of the
//!      source added to `consumer.properties`);
//!    - waits until `kafka-consumer-groups --describe --members` shows the
//!      mirror in group `mirrorgroup` (kmirror: one member, which assigns
//!      the partitions to its streams itself; MirrorMaker 1: a consumer per
//!      stream, owning the 8 partitions between them), then 2 s more
//!      (MirrorMaker 1's consumers start at the latest offset, so lines
//!      produced before they looked it up would be skipped);
//!    - `kafka-console-producer` writes plain text lines on the source (no
//!      keys, as the guide types them), while the end offsets of both
//!      clusters are polled (ListOffsets, every 20 ms) to time the moment
//!      the last line is on the source and on the destination;
//!    - stops the mirror as Ctrl+C does (SIGINT) and records its exit
//!      status (kmirror must exit 0);
//!    - reads the destination with `kafka-console-consumer --from-beginning`
//!      (and the source, to compare) and describes the group with
//!      `kafka-consumer-groups --describe --group mirrorgroup`;
//! 3. prints both results side by side.
//!
//! kmirror must accept the guide's files, deliver every line once on its
//! source partition, exit 0 on SIGINT and leave lag 0; otherwise the demo
//! fails. MirrorMaker 1's results are shown as they are. Every process is
//! killed when the demo ends, also on error; every wait has a timeout. The
//! files, the mirrors' output and the brokers' and ZooKeepers' logs stay in
//! `<target>/xtask/demo`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kmirror_test_cluster::{
    ClusterOptions, KafkaCluster, KafkaVersion, PERFORMANCE_JVM_OPTS, ToolOutput, run_tool,
};

use crate::Result;
use crate::harness::{
    Guarded, Profile, build_kmirror, describe_status, scratch_dir, wait_timeout, write_file,
};
use crate::kafka_dist;
use crate::wire::Reader;

/// The guide's topic.
const TOPIC: &str = "testtopic";
/// The guide's partition count for it.
const PARTITIONS: i32 = 8;
/// The guide's consumer group.
const GROUP: &str = "mirrorgroup";
/// The guide's `--num.streams`.
const NUM_STREAMS: &str = "4";
/// How many text lines are produced on the source.
const LINES: usize = 10;
/// The Apache Kafka the clusters, the tools and MirrorMaker 1 run.
const KAFKA: KafkaVersion = KafkaVersion::V3_9;

/// How long a mirror may take to join its group and own every partition.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// After every partition is assigned: time for the consumers to look up
/// their start offsets before anything is produced.
const READY_GRACE: Duration = Duration::from_secs(2);
/// How long the lines may take to arrive on the destination after the last
/// one is on the source.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the console producer may take to put the lines on the source.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(150);
/// How often the end offsets are polled while the lines travel.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// How long a mirror may take to stop after SIGINT.
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

/// Runs the whole demo; an error says which step failed and where the
/// logs are.
pub(crate) fn run(profile: Profile) -> Result<()> {
    let started = Instant::now();
    println!(
        "demo: the HDInsight MirrorMaker guide's scenario on Apache Kafka {KAFKA} (ZooKeeper \
         mode) with Kafka's own tools, with kmirror and then with Apache Kafka's own \
         MirrorMaker 1 (kafka.tools.MirrorMaker) in its place"
    );

    step("Apache Kafka 3.9.2 (ZooKeeper mode, its tools and MirrorMaker 1)");
    if !kafka_dist::installed() {
        println!("Apache Kafka is not installed: running `cargo xtask brokers`' install first");
        kafka_dist::ensure_all()?;
    }
    let launcher = kafka_dist::launcher();
    println!("kafka-tool:  {}", launcher.display());

    step("build kmirror");
    let kmirror = build_kmirror(profile)?;

    let dir = scratch_dir("demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    println!(
        "scratch directory (properties, mirror output, broker and ZooKeeper logs): {}",
        dir.display()
    );

    // kmirror-test-cluster and Kafka's tools report failures by panicking
    // (with the broker's log in the message): turn every panic into this
    // command's error, and keep the default hook from printing it twice.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        both(&kmirror, &launcher, &dir)
    }));
    std::panic::set_hook(hook);
    let outcome = outcome.unwrap_or_else(|payload| Err(panic_message(payload.as_ref())));
    match outcome {
        Ok(()) => {
            println!(
                "\ndemo: OK in {:.1} s (files and logs in {})",
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

/// The text of a panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Which mirror a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Kmirror,
    MirrorMaker,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Kmirror => "kmirror",
            Kind::MirrorMaker => "MirrorMaker 1",
        }
    }

    /// The short name for directories, logs and output prefixes.
    fn tag(self) -> &'static str {
        match self {
            Kind::Kmirror => "kmirror",
            Kind::MirrorMaker => "mm1",
        }
    }

    /// The members the mirror's group has once it runs: kmirror is one
    /// member whatever `--num.streams`; MirrorMaker 1 runs a consumer per
    /// stream.
    fn members(self) -> usize {
        match self {
            Kind::Kmirror => 1,
            Kind::MirrorMaker => 4,
        }
    }
}

/// What one run showed.
#[derive(Debug)]
struct Outcome {
    /// `None`: the guide's files were accepted; else the one-line error and
    /// exit status of the refusal.
    refused: Option<String>,
    /// The destination topic's partition count after the run.
    destination_partitions: usize,
    /// Records read from the destination, per partition.
    per_partition: BTreeMap<i32, usize>,
    /// Whether the destination holds each line once, on its source
    /// partition, in source order.
    matches_source: std::result::Result<(), String>,
    /// From the last line on the source to the last line on the
    /// destination; `None` if not all arrived.
    time_to_last: Option<TimeToLast>,
    /// How many of the lines were on the destination when the wait ended.
    arrived: i64,
    /// The exit on SIGINT.
    exit: String,
    /// `kafka-consumer-groups --describe` after the stop.
    group: Vec<GroupRow>,
}

/// Both runs, then the comparison.
fn both(kmirror: &Path, launcher: &Path, dir: &Path) -> Result<()> {
    let ours = scenario(Kind::Kmirror, kmirror, &dir.join("kmirror"))?;
    let theirs = scenario(Kind::MirrorMaker, launcher, &dir.join("mm1"))?;
    print_comparison(&ours, &theirs);
    Ok(())
}

/// One run of the guide on fresh clusters.
fn scenario(kind: Kind, program: &Path, dir: &Path) -> Result<Outcome> {
    let started = Instant::now();
    let name = kind.name();
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    println!("\n######## the guide with {name}");

    step(&format!(
        "{name}: fresh source and destination clusters (Apache Kafka {KAFKA}, ZooKeeper mode, one \
         broker and one ZooKeeper each)"
    ));
    let clusters = Clusters::start(kind, dir)?;
    let source = &clusters.source;
    let destination = &clusters.destination;
    println!(
        "source:      zookeeper.connect={}  bootstrap.servers={}",
        source.zookeeper_connect(),
        source.bootstrap()
    );
    println!(
        "destination: zookeeper.connect={}  bootstrap.servers={}",
        destination.zookeeper_connect(),
        destination.bootstrap()
    );
    println!("(both started in {:.1} s)", started.elapsed().as_secs_f64());

    step(&format!(
        "{name}: create testtopic with 8 partitions on the source (kafka-topics)"
    ));
    let partitions = PARTITIONS.to_string();
    let create = [
        "--bootstrap-server",
        &source.bootstrap(),
        "--create",
        "--topic",
        TOPIC,
        "--partitions",
        &partitions,
        "--replication-factor",
        "1",
    ]
    .map(str::to_owned);
    println!(
        "$ kafka-topics {}   (the guide: --zookeeper $SOURCE_ZKHOSTS --replication-factor 2; \
         3.x's kafka-topics takes --bootstrap-server, and these clusters have one broker)",
        create.join(" ")
    );
    let created = tool_ok(
        "kafka-topics",
        &create.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    )?;
    show_output(&created);
    wait_for_leaders(source)?;

    step(&format!(
        "{name}: the guide's consumer.properties and producer.properties"
    ));
    let guide_consumer = format!(
        "zookeeper.connect={}\ngroup.id={GROUP}\n",
        source.zookeeper_connect()
    );
    let producer = format!(
        "bootstrap.servers={}\ncompression.type=none\n",
        destination.bootstrap()
    );
    write_file(&dir.join("consumer.properties"), &guide_consumer)?;
    write_file(&dir.join("producer.properties"), &producer)?;
    show_file("consumer.properties", &guide_consumer);
    show_file("producer.properties", &producer);

    step(&format!("{name}: start it with the guide's command line"));
    let mut mirror = start_mirror(kind, program, dir, "")?;
    let mut refused = None;
    if let Some((status, line)) = wait_ready(kind, &mut mirror, source)? {
        if kind == Kind::Kmirror {
            return Err(format!(
                "kmirror refused the guide's files and exited {}: {line}",
                describe_status(status)
            ));
        }
        println!(
            "{name} refused the guide's consumer.properties and exited {}:\n  {line}",
            describe_status(status)
        );
        refused = Some(format!("{line} (exit {})", exit_code(status)));
        step(&format!(
            "{name} again, with the one-line change it needs: bootstrap.servers added to \
             consumer.properties"
        ));
        write_file(&dir.join("consumer.properties.guide"), &guide_consumer)?;
        let changed = format!("{guide_consumer}bootstrap.servers={}\n", source.bootstrap());
        write_file(&dir.join("consumer.properties"), &changed)?;
        show_file("consumer.properties", &changed);
        mirror = start_mirror(kind, program, dir, "-bootstrap")?;
        if let Some((status, line)) = wait_ready(kind, &mut mirror, source)? {
            return Err(format!(
                "{name} exited {} with bootstrap.servers added too: {line}",
                describe_status(status)
            ));
        }
    }
    println!(
        "waiting {} s more, as a user switching to the source's shell would: MirrorMaker 1's \
         consumers start at the latest offset once they have looked it up",
        READY_GRACE.as_secs()
    );
    std::thread::sleep(READY_GRACE);
    mirror.check_running(name)?;

    step(&format!(
        "{name}: type {LINES} text lines into kafka-console-producer on the source"
    ));
    let lines: Vec<String> = (1..=LINES)
        .map(|n| format!("hello from the source, line {n}"))
        .collect();
    let mut input = lines.join("\n");
    input.push('\n');
    println!(
        "$ kafka-console-producer --bootstrap-server {} --topic {TOPIC}   (the guide: \
         --broker-list; the lines on its stdin)",
        source.bootstrap()
    );
    for line in &lines {
        println!("> {line}");
    }
    let arrival = std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            run_tool(
                KAFKA,
                "kafka-console-producer",
                &["--bootstrap-server", &source.bootstrap(), "--topic", TOPIC],
                Some(&input),
            )
        });
        let arrival = watch_arrival(kind, &mut mirror, source, destination, &producer);
        let produced = producer
            .join()
            .map_err(|payload| panic_message(payload.as_ref()));
        (arrival, produced)
    });
    let produced = arrival.1?;
    if !produced.success {
        return Err(format!(
            "kafka-console-producer failed\n--- stderr:\n{}\n--- stdout:\n{}",
            produced.stderr, produced.stdout
        ));
    }
    let arrival = arrival.0?;
    let time_to_last = arrival.time_to_last();
    match time_to_last {
        Some(took) => println!(
            "all {LINES} lines were on the source {:.2} s after kafka-console-producer started, \
             and on the destination {took} after the last one reached the source (end offsets of \
             both polled every {} ms)",
            (arrival.source_at - arrival.started).as_secs_f64(),
            POLL_EVERY.as_millis()
        ),
        None if kind == Kind::Kmirror => {
            return Err(format!(
                "{} s after the last line reached the source, the destination holds {} of the \
                 {LINES} lines (kmirror is still running; its output is above)",
                ARRIVAL_TIMEOUT.as_secs(),
                arrival.destination_total
            ));
        }
        None => println!(
            "after {} s the destination holds {} of the {LINES} lines",
            ARRIVAL_TIMEOUT.as_secs(),
            arrival.destination_total
        ),
    }

    step(&format!(
        "{name}: stop it as Ctrl+C does (kill -INT) and check its exit status"
    ));
    let stop_started = Instant::now();
    let (status, output) = mirror.interrupt_and_wait()?;
    let exit = match status {
        Some(status) => {
            println!(
                "{name} exited {} {:.1} s after SIGINT",
                describe_status(status),
                stop_started.elapsed().as_secs_f64()
            );
            exit_code(status)
        }
        None => {
            println!(
                "{name} did not exit within {} s of SIGINT; killed",
                STOP_TIMEOUT.as_secs()
            );
            format!("none within {} s (killed)", STOP_TIMEOUT.as_secs())
        }
    };
    if kind == Kind::Kmirror {
        if status.and_then(|s| s.code()) != Some(0) {
            return Err(format!(
                "kmirror exited {exit} after SIGINT; a clean stop exits 0 (its output is above \
                 and in {})",
                mirror.log.display()
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
    }

    step(&format!(
        "{name}: read the destination (kafka-console-consumer --from-beginning)"
    ));
    let destination_partitions = destination_partitions(destination);
    let destination_total = end_offsets(destination)
        .map(|ends| ends.values().sum::<i64>())
        .unwrap_or(0);
    println!(
        "destination testtopic: {}",
        match destination_partitions {
            0 => "does not exist".to_owned(),
            1 => "1 partition".to_owned(),
            n => format!("{n} partitions"),
        }
    );
    let (received, from_source) = std::thread::scope(|scope| {
        let from_source = scope.spawn(|| read_topic(source, LINES as i64));
        let received = read_topic(destination, destination_total);
        let from_source = from_source
            .join()
            .unwrap_or_else(|payload| Err(panic_message(payload.as_ref())));
        (received, from_source)
    });
    let (received, shown) = received?;
    let (from_source, _) = from_source?;
    println!("{}", shown.trim_end());
    let mut per_partition = BTreeMap::new();
    for record in &received {
        *per_partition.entry(record.partition).or_insert(0) += 1;
    }
    println!(
        "{} records on the destination: {}",
        received.len(),
        describe_partitions(&per_partition)
    );
    let matches_source = compare(&from_source, &received);
    match (&matches_source, kind) {
        (Ok(()), _) => println!(
            "every line arrived exactly once, on the same partition and in the same order as on \
             the source"
        ),
        (Err(problems), Kind::Kmirror) => {
            return Err(format!(
                "the destination does not match the source:{problems}"
            ));
        }
        (Err(problems), Kind::MirrorMaker) => {
            println!("the destination differs from the source:{problems}");
        }
    }

    step(&format!(
        "{name}: the group's committed offsets on the source (kafka-consumer-groups)"
    ));
    let describe = [
        "--bootstrap-server",
        &source.bootstrap(),
        "--describe",
        "--group",
        GROUP,
    ]
    .map(str::to_owned);
    println!("$ kafka-consumer-groups {}", describe.join(" "));
    let described = tool_ok(
        "kafka-consumer-groups",
        &describe.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    )?;
    show_output(&described);
    let group = group_rows(&described);
    if kind == Kind::Kmirror {
        check_lag(&group)?;
        println!(
            "every partition is committed up to its end offset: a restart would copy nothing \
             twice"
        );
    }

    drop(clusters);
    println!(
        "\n{name}: this run took {:.1} s (fresh clusters included)",
        started.elapsed().as_secs_f64()
    );
    Ok(Outcome {
        refused,
        destination_partitions,
        per_partition,
        matches_source,
        time_to_last,
        arrived: arrival.destination_total,
        exit,
        group,
    })
}

/// The source and destination clusters of one run; their brokers' and
/// ZooKeepers' logs are copied into the run's directory when dropped.
struct Clusters {
    source: KafkaCluster,
    destination: KafkaCluster,
    dir: PathBuf,
}

impl Clusters {
    /// Starts both at once.
    fn start(kind: Kind, dir: &Path) -> Result<Self> {
        let tag = kind.tag();
        let (source, destination) = std::thread::scope(|scope| {
            let start = |side: &str| {
                let name = format!("{tag}-{side}");
                scope.spawn(move || KafkaCluster::start(ClusterOptions::new(KAFKA).name(&name)))
            };
            let source = start("source");
            let destination = start("destination");
            let joined = |handle: std::thread::ScopedJoinHandle<'_, KafkaCluster>, side: &str| {
                handle.join().map_err(|payload| {
                    format!(
                        "the {side} cluster did not start: {}",
                        panic_message(payload.as_ref())
                    )
                })
            };
            (joined(source, "source"), joined(destination, "destination"))
        });
        Ok(Self {
            source: source?,
            destination: destination?,
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Clusters {
    fn drop(&mut self) {
        for (side, cluster) in [("source", &self.source), ("destination", &self.destination)] {
            let _ = std::fs::write(self.dir.join(format!("{side}-broker.log")), cluster.log(1));
            if let Some(zookeeper) = cluster.zookeeper() {
                let _ = std::fs::write(
                    self.dir.join(format!("{side}-zookeeper.log")),
                    zookeeper.log(),
                );
            }
        }
    }
}

/// Runs one of Kafka 3.9's tools; an error holds what it printed.
fn tool_ok(tool: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let output = run_tool(KAFKA, tool, args, stdin);
    if output.success {
        Ok(output.stdout)
    } else {
        Err(format!(
            "`kafka-tool {KAFKA} {tool} {}` failed\n--- stderr:\n{}\n--- stdout:\n{}",
            args.join(" "),
            output.stderr.trim_end(),
            output.stdout.trim_end()
        ))
    }
}

/// Waits until every partition of the source's topic has a leader.
fn wait_for_leaders(cluster: &KafkaCluster) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let partitions = cluster.partitions(TOPIC);
        if partitions.len() == PARTITIONS as usize && partitions.iter().all(|p| p.leader >= 0) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{TOPIC} on the source has no leader for every partition 60 s after creation: \
                 {partitions:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the mirror in `dir` with the guide's flags.
fn start_mirror(kind: Kind, program: &Path, dir: &Path, suffix: &str) -> Result<Mirror> {
    let flags = [
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
    let mut command = Command::new(program);
    match kind {
        Kind::Kmirror => {
            println!("$ {} {}", program.display(), flags.join(" "));
        }
        Kind::MirrorMaker => {
            println!(
                "$ kafka-tool {KAFKA} kafka-mirror-maker {}   (kafka-run-class.sh \
                 kafka.tools.MirrorMaker, with kafka-run-class.sh's JVM options)",
                flags.join(" ")
            );
            command
                .args([KAFKA.as_str(), "kafka-mirror-maker"])
                .env("KAFKA_HEAP_OPTS", "-Xmx256M")
                .env("KAFKA_JVM_PERFORMANCE_OPTS", PERFORMANCE_JVM_OPTS);
        }
    }
    command.args(flags);
    let mirror = Mirror::start(
        command,
        kind.tag(),
        &dir.join(format!("{}{suffix}.log", kind.tag())),
        dir,
    )?;
    println!(
        "{} runs as pid {}; its output follows, prefixed",
        kind.name(),
        mirror.pid()
    );
    Ok(mirror)
}

/// Waits until the mirror's group is stable with its members (and, for
/// MirrorMaker 1, every partition assigned); `Some` (status, one line of
/// error) if the mirror exits first.
fn wait_ready(
    kind: Kind,
    mirror: &mut Mirror,
    source: &KafkaCluster,
) -> Result<Option<(ExitStatus, String)>> {
    let started = Instant::now();
    let deadline = started + READY_TIMEOUT;
    let expected = kind.members();
    println!(
        "waiting until kafka-consumer-groups --describe --group {GROUP} --members shows {expected} \
         member{}{}",
        if expected == 1 { "" } else { "s" },
        match kind {
            Kind::Kmirror => "",
            Kind::MirrorMaker => " owning all 8 partitions",
        }
    );
    let bootstrap = source.bootstrap();
    loop {
        if let Some(status) = mirror.exited()? {
            return Ok(Some((status, mirror.error_line())));
        }
        let output = run_tool(
            KAFKA,
            "kafka-consumer-groups",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--describe",
                "--group",
                GROUP,
                "--members",
            ],
            None,
        );
        // GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS
        let members: Vec<usize> = output
            .stdout
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.len() >= 5 && fields[0] == GROUP)
                    .then(|| fields[4].parse().ok())
                    .flatten()
            })
            .collect();
        let owned: usize = members.iter().sum();
        let ready =
            members.len() == expected && (kind == Kind::Kmirror || owned == PARTITIONS as usize);
        if ready {
            println!("ready after {:.1} s:", started.elapsed().as_secs_f64());
            show_output(&output.stdout);
            if kind == Kind::Kmirror {
                println!(
                    "(kmirror holds the group as one member with an empty assignment, #PARTITIONS \
                     0: it assigns the partitions to its streams itself)"
                );
            }
            return Ok(None);
        }
        if Instant::now() >= deadline {
            if let Some(status) = mirror.exited()? {
                return Ok(Some((status, mirror.error_line())));
            }
            return Err(format!(
                "{} did not join group {GROUP} with {expected} member(s) within {} s; the last \
                 kafka-consumer-groups --describe --members said:\n{}{}",
                kind.name(),
                READY_TIMEOUT.as_secs(),
                output.stdout.trim_end(),
                output.stderr.trim_end()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// When the lines were on the source and on the destination.
struct Arrival {
    started: Instant,
    /// Just before the last poll that found the source without every line.
    source_before: Instant,
    /// Just after the first poll that found every line on the source.
    source_at: Instant,
    /// Just after the first poll that found every line on the destination.
    destination_at: Option<Instant>,
    destination_total: i64,
}

/// From the last line's arrival on the source to its arrival on the
/// destination, as the polls could tell.
#[derive(Debug, Clone, Copy)]
enum TimeToLast {
    /// Seen in a later poll than the source: about this long (give or take
    /// a poll).
    About(Duration),
    /// Seen in the same poll as the source: at most this long.
    AtMost(Duration),
}

impl std::fmt::Display for TimeToLast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeToLast::About(took) => write!(f, "{:.3} s", took.as_secs_f64()),
            TimeToLast::AtMost(took) => write!(f, "< {:.3} s", took.as_secs_f64()),
        }
    }
}

impl Arrival {
    fn time_to_last(&self) -> Option<TimeToLast> {
        let destination_at = self.destination_at?;
        Some(
            if destination_at.duration_since(self.source_at) < POLL_EVERY {
                TimeToLast::AtMost(destination_at - self.source_before)
            } else {
                TimeToLast::About(destination_at - self.source_at)
            },
        )
    }
}

/// Polls both clusters' end offsets while the producer runs, until the
/// destination holds every line or [`ARRIVAL_TIMEOUT`] after the source
/// does.
fn watch_arrival(
    kind: Kind,
    mirror: &mut Mirror,
    source: &KafkaCluster,
    destination: &KafkaCluster,
    producer: &std::thread::ScopedJoinHandle<'_, ToolOutput>,
) -> Result<Arrival> {
    let started = Instant::now();
    let lines = LINES as i64;
    let mut source_before = started;
    let mut source_at = None;
    let mut producer_done: Option<Instant> = None;
    loop {
        let before = Instant::now();
        let source_total = end_offsets(source)
            .map(|ends| ends.values().sum::<i64>())
            .unwrap_or(0);
        if source_at.is_none() {
            if source_total >= lines {
                source_at = Some(Instant::now());
            } else {
                source_before = before;
            }
        }
        let destination_total = end_offsets(destination)
            .map(|ends| ends.values().sum::<i64>())
            .unwrap_or(0);
        let now = Instant::now();
        if let Some(source_at) = source_at {
            if destination_total >= lines {
                return Ok(Arrival {
                    started,
                    source_before,
                    source_at,
                    destination_at: Some(now),
                    destination_total,
                });
            }
            if now >= source_at + ARRIVAL_TIMEOUT {
                return Ok(Arrival {
                    started,
                    source_before,
                    source_at,
                    destination_at: None,
                    destination_total,
                });
            }
        } else {
            if producer.is_finished() {
                let done = *producer_done.get_or_insert(now);
                if now >= done + Duration::from_secs(10) {
                    return Err(format!(
                        "kafka-console-producer ended, but the source holds {source_total} of \
                         the {LINES} lines"
                    ));
                }
            }
            if now >= started + PRODUCE_TIMEOUT {
                return Err(format!(
                    "the source holds {source_total} of the {LINES} lines {} s after \
                     kafka-console-producer started",
                    PRODUCE_TIMEOUT.as_secs()
                ));
            }
        }
        mirror.check_running(kind.name())?;
        std::thread::sleep(POLL_EVERY);
    }
}

/// Sends one request (classic header v1, client id `kmirror-demo`) and
/// returns the response after its correlation id.
fn exchange(addr: SocketAddr, api_key: i16, version: i16, body: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    let client = b"kmirror-demo";
    let mut frame = Vec::with_capacity(body.len() + 32);
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&i16::try_from(client.len()).ok()?.to_be_bytes());
    frame.extend_from_slice(client);
    frame.extend_from_slice(body);
    let size = i32::try_from(frame.len() - 4).ok()?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&frame).ok()?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let size = usize::try_from(i32::from_be_bytes(size)).ok()?;
    if !(4..=(16 << 20)).contains(&size) {
        return None;
    }
    let mut response = vec![0u8; size];
    stream.read_exact(&mut response).ok()?;
    Some(response.split_off(4))
}

/// The single broker's address of a cluster.
fn broker_addr(cluster: &KafkaCluster) -> Option<SocketAddr> {
    cluster.bootstrap().split(',').next()?.parse().ok()
}

/// The partition count of the destination's topic (0: no such topic).
fn destination_partitions(cluster: &KafkaCluster) -> usize {
    broker_addr(cluster)
        .and_then(|addr| kmirror_test_cluster::metadata(addr, &[TOPIC]))
        .and_then(|view| {
            view.topics
                .into_iter()
                .find(|(name, error, _)| name == TOPIC && *error == 0)
        })
        .map_or(0, |(_, _, partitions)| partitions.len())
}

/// The end offset of every partition of the topic (ListOffsets v1, latest,
/// asked of the one broker, which leads them all); empty while the topic
/// does not exist, `None` if the broker does not answer.
fn end_offsets(cluster: &KafkaCluster) -> Option<BTreeMap<i32, i64>> {
    let addr = broker_addr(cluster)?;
    let view = kmirror_test_cluster::metadata(addr, &[TOPIC])?;
    let Some((_, 0, partitions)) = view.topics.into_iter().find(|(name, _, _)| name == TOPIC)
    else {
        return Some(BTreeMap::new());
    };
    if partitions.is_empty() {
        return Some(BTreeMap::new());
    }
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes()); // replica id: a consumer
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    body.extend_from_slice(&i16::try_from(TOPIC.len()).ok()?.to_be_bytes());
    body.extend_from_slice(TOPIC.as_bytes());
    body.extend_from_slice(&i32::try_from(partitions.len()).ok()?.to_be_bytes());
    for partition in &partitions {
        body.extend_from_slice(&partition.partition.to_be_bytes());
        body.extend_from_slice(&(-1i64).to_be_bytes()); // latest
    }
    let response = exchange(addr, 2, 1, &body)?;
    let mut reader = Reader::new(&response);
    let mut ends = BTreeMap::new();
    for _ in 0..reader.array_len(false).ok()?? {
        let _topic = reader.string(false).ok()?;
        for _ in 0..reader.array_len(false).ok()?? {
            let partition = reader.i32().ok()?;
            let error = reader.i16().ok()?;
            let _timestamp = reader.i64().ok()?;
            let offset = reader.i64().ok()?;
            if error == 0 {
                ends.insert(partition, offset);
            }
        }
    }
    Some(ends)
}

/// One record as `kafka-console-consumer` prints it with the partition and
/// offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    partition: i32,
    offset: i64,
    value: String,
}

/// Reads `count` records of the topic from the beginning with
/// `kafka-console-consumer` and returns them and the tool's output for
/// display.
fn read_topic(cluster: &KafkaCluster, count: i64) -> Result<(Vec<Record>, String)> {
    let bootstrap = cluster.bootstrap();
    let max = count.max(1).to_string();
    let args = [
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        TOPIC,
        "--from-beginning",
        "--max-messages",
        &max,
        "--timeout-ms",
        "20000",
        "--property",
        "print.partition=true",
        "--property",
        "print.offset=true",
    ];
    let mut shown = format!(
        "$ kafka-console-consumer {}   (the guide: --zookeeper $DEST_ZKHOSTS --topic testtopic \
         --from-beginning; 3.x's takes --bootstrap-server)\n",
        args.join(" ")
    );
    if count == 0 {
        shown.push_str("  (nothing to read: the topic is empty or missing)\n");
        return Ok((Vec::new(), shown));
    }
    let output = run_tool(KAFKA, "kafka-console-consumer", &args, None);
    let mut records = Vec::new();
    for line in output.stdout.lines() {
        let _ = writeln!(shown, "  {line}");
        let mut fields = line.splitn(3, '\t');
        let (Some(partition), Some(offset), Some(value)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Some(partition), Some(offset)) = (
            partition
                .strip_prefix("Partition:")
                .and_then(|p| p.parse().ok()),
            offset.strip_prefix("Offset:").and_then(|o| o.parse().ok()),
        ) else {
            continue;
        };
        records.push(Record {
            partition,
            offset,
            value: value.to_owned(),
        });
    }
    if let Some(total) = output
        .stderr
        .lines()
        .find(|line| line.contains("Processed a total of"))
    {
        let _ = writeln!(shown, "  {}", total.trim());
    }
    if i64::try_from(records.len()).unwrap_or(0) < count {
        return Err(format!(
            "kafka-console-consumer read {} of the {count} records of {TOPIC} on {bootstrap}\n\
             --- stderr:\n{}\n--- stdout:\n{}",
            records.len(),
            output.stderr.trim_end(),
            output.stdout.trim_end()
        ));
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok((records, shown))
}

/// `p3: 10` or `p0: 4, p5: 6`.
fn describe_partitions(per_partition: &BTreeMap<i32, usize>) -> String {
    if per_partition.is_empty() {
        return "none".to_owned();
    }
    per_partition
        .iter()
        .map(|(partition, count)| format!("p{partition}: {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the destination holds exactly the source's records, each once,
/// on its source partition and in source order; `Err` lists the problems
/// (each on a line of its own).
fn compare(source: &[Record], destination: &[Record]) -> std::result::Result<(), String> {
    let by_partition = |records: &[Record]| {
        let mut map: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for r in records {
            map.entry(r.partition).or_default().push(r.value.clone());
        }
        map
    };
    let mut problems = String::new();
    let count =
        |records: &[Record], value: &str| records.iter().filter(|r| r.value == value).count();
    for r in source {
        match count(destination, &r.value) {
            0 => {
                let _ = write!(problems, "\n  - missing on the destination: {:?}", r.value);
            }
            1 => {}
            n => {
                let _ = write!(
                    problems,
                    "\n  - {n} copies on the destination: {:?}",
                    r.value
                );
            }
        }
    }
    for r in destination {
        if count(source, &r.value) == 0 {
            let _ = write!(problems, "\n  - never produced: {:?}", r.value);
        }
    }
    if problems.is_empty() && by_partition(source) != by_partition(destination) {
        let _ = write!(
            problems,
            "\n  - the lines are not on the source's partitions in the source's order (source: \
             {}; destination: {})",
            partitions_of(source),
            partitions_of(destination)
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn partitions_of(records: &[Record]) -> String {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.partition).or_insert(0usize) += 1;
    }
    describe_partitions(&counts)
}

/// One row of `kafka-consumer-groups --describe`.
#[derive(Debug, Clone)]
struct GroupRow {
    partition: i32,
    committed: Option<i64>,
    end: Option<i64>,
    lag: Option<i64>,
}

/// The rows of `kafka-consumer-groups --describe` for the topic: `GROUP
/// TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST
/// CLIENT-ID`, `-` for none.
fn group_rows(output: &str) -> Vec<GroupRow> {
    let number = |field: &str| field.parse::<i64>().ok();
    let mut rows: Vec<GroupRow> = output
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 || fields[0] != GROUP || fields[1] != TOPIC {
                return None;
            }
            Some(GroupRow {
                partition: fields[2].parse().ok()?,
                committed: number(fields[3]),
                end: number(fields[4]),
                lag: number(fields[5]),
            })
        })
        .collect();
    rows.sort_by_key(|row| row.partition);
    rows
}

/// kmirror must have committed every partition up to its end.
fn check_lag(rows: &[GroupRow]) -> Result<()> {
    if rows.len() != PARTITIONS as usize {
        return Err(format!(
            "kafka-consumer-groups shows {} partitions of {TOPIC} for group {GROUP}, expected \
             {PARTITIONS}",
            rows.len()
        ));
    }
    let behind: Vec<String> = rows
        .iter()
        .filter(|row| row.committed.is_none() || row.committed != row.end || row.lag != Some(0))
        .map(|row| {
            format!(
                "partition {}: committed {}, end {}",
                row.partition,
                show_offset(row.committed),
                show_offset(row.end)
            )
        })
        .collect();
    if behind.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "after a clean stop kmirror should have committed every partition up to its end, \
             but group {GROUP} is behind: {}",
            behind.join("; ")
        ))
    }
}

fn show_offset(offset: Option<i64>) -> String {
    offset.map_or_else(|| "-".to_owned(), |o| o.to_string())
}

/// The group's offsets in one cell: committed offsets of the partitions
/// that hold records, what the empty ones have, the total lag.
/// `kafka-consumer-groups` lists only partitions with a committed offset
/// once the group has no members.
fn describe_group(rows: &[GroupRow]) -> String {
    if rows.is_empty() {
        return "nothing committed".to_owned();
    }
    let with_records: Vec<String> = rows
        .iter()
        .filter(|row| row.end.unwrap_or(0) > 0)
        .map(|row| format!("p{}: {}", row.partition, show_offset(row.committed)))
        .collect();
    let committed_empty = rows
        .iter()
        .filter(|row| row.end.unwrap_or(0) == 0 && row.committed.is_some())
        .count();
    let empty = PARTITIONS as usize - with_records.len();
    let lag: i64 = rows
        .iter()
        .map(|row| {
            row.lag
                .unwrap_or_else(|| row.end.unwrap_or(0) - row.committed.unwrap_or(0))
        })
        .sum();
    let empty = if committed_empty == empty {
        format!("{empty} empty at 0")
    } else if committed_empty == 0 {
        format!("{empty} empty: none")
    } else {
        format!("{empty} empty: {committed_empty} at 0")
    };
    format!("{}; {empty}; lag {lag}", with_records.join(", "))
}

fn exit_code(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => code.to_string(),
        None => format!("{status}"),
    }
}

/// The two runs side by side.
fn print_comparison(ours: &Outcome, theirs: &Outcome) {
    step("side by side: the guide's scenario on Apache Kafka 3.9.2 (ZooKeeper mode)");
    let accepted = |outcome: &Outcome| match &outcome.refused {
        None => "yes".to_owned(),
        Some(_) => "no (ran with bootstrap.servers added)".to_owned(),
    };
    let records = |outcome: &Outcome| {
        format!(
            "{} ({})",
            outcome.per_partition.values().sum::<usize>(),
            describe_partitions(&outcome.per_partition)
        )
    };
    let partitions = |outcome: &Outcome| outcome.destination_partitions.to_string();
    let same = |outcome: &Outcome| match &outcome.matches_source {
        Ok(()) => "yes".to_owned(),
        Err(problems) if problems.contains("partitions") && !problems.contains("missing") => {
            "lines once each, partitions not kept".to_owned()
        }
        Err(_) => "no".to_owned(),
    };
    let time = |outcome: &Outcome| match outcome.time_to_last {
        Some(took) => took.to_string(),
        None => format!(
            "{} of {LINES} after {} s",
            outcome.arrived,
            ARRIVAL_TIMEOUT.as_secs()
        ),
    };
    let rows: [(&str, String, String); 7] = [
        (
            "accepted the guide's files verbatim",
            accepted(ours),
            accepted(theirs),
        ),
        (
            "destination testtopic partitions",
            partitions(ours),
            partitions(theirs),
        ),
        ("records on the destination", records(ours), records(theirs)),
        (
            "same partition and order as source",
            same(ours),
            same(theirs),
        ),
        ("time to the last record", time(ours), time(theirs)),
        (
            "exit status on SIGINT",
            ours.exit.clone(),
            theirs.exit.clone(),
        ),
        (
            "mirrorgroup committed offsets, lag",
            describe_group(&ours.group),
            describe_group(&theirs.group),
        ),
    ];
    let width = rows
        .iter()
        .map(|(_, ours, _)| ours.len())
        .max()
        .unwrap_or(0)
        .max("kmirror".len());
    println!("{:<36}  {:<width$}  MirrorMaker 1 ({KAFKA})", "", "kmirror");
    for (label, ours, theirs) in &rows {
        println!("{label:<36}  {ours:<width$}  {theirs}");
    }
    if let Some(refusal) = &theirs.refused {
        println!("\nMirrorMaker 1 with the guide's consumer.properties: {refusal}");
        println!(
            "(its Java KafkaConsumer needs bootstrap.servers and ignores zookeeper.connect; it ran \
             with one line added: bootstrap.servers=<source brokers>)"
        );
    }
    println!(
        "time to the last record: from the last line's arrival on the source to its arrival on \
         the destination, end offsets polled every {} ms. Each mirror ran on fresh clusters, \
         started with kafka-run-class.sh's defaults for MirrorMaker 1, and the lines were \
         produced only after kafka-consumer-groups showed the mirror in its group.",
        POLL_EVERY.as_millis()
    );
    if theirs.exit == "130" {
        println!(
            "MirrorMaker 1's 130 is the JVM's exit on SIGINT (128 + 2) after its shutdown hook \
             stopped the mirror."
        );
    }
    if theirs.destination_partitions != PARTITIONS as usize {
        println!(
            "MirrorMaker 1 does not create topics: the destination broker auto-created testtopic \
             on its first produce with its num.partitions ({}), inside MirrorMaker 1's time to \
             the last record; kmirror creates it with the source's partition count when it \
             starts.",
            theirs.destination_partitions
        );
    }
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

fn show_output(text: &str) {
    for line in text.lines() {
        println!("  {line}");
    }
}

/// One line a mirror wrote.
#[derive(Debug, Clone)]
struct OutputLine {
    stream: &'static str,
    text: String,
}

/// A running mirror, its output shown as it comes (Java stack frames only
/// in the log) and kept.
struct Mirror {
    process: Guarded,
    output: Arc<Mutex<Vec<OutputLine>>>,
    readers: Vec<JoinHandle<()>>,
    log: PathBuf,
}

impl Mirror {
    fn start(mut command: Command, tag: &'static str, log: &Path, dir: &Path) -> Result<Self> {
        let log_file = Arc::new(Mutex::new(
            File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?,
        ));
        let mut child = command
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
        let stdout: Option<ChildStdout> = child.stdout.take();
        let stderr: Option<ChildStderr> = child.stderr.take();
        let process = Guarded(child);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = stdout {
            readers.push(echo_lines(
                stdout,
                tag,
                "stdout",
                output.clone(),
                log_file.clone(),
            ));
        }
        if let Some(stderr) = stderr {
            readers.push(echo_lines(stderr, tag, "stderr", output.clone(), log_file));
        }
        Ok(Self {
            process,
            output,
            readers,
            log: log.to_path_buf(),
        })
    }

    fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// The exit status if the mirror has exited (its output then read to
    /// the end).
    fn exited(&mut self) -> Result<Option<ExitStatus>> {
        match self.process.0.try_wait() {
            Ok(None) => Ok(None),
            Ok(Some(status)) => {
                self.join_readers();
                Ok(Some(status))
            }
            Err(e) => Err(format!("cannot check on the mirror: {e}")),
        }
    }

    /// Fails if the mirror has exited.
    fn check_running(&mut self, name: &str) -> Result<()> {
        match self.exited()? {
            None => Ok(()),
            Some(status) => Err(format!(
                "{name} exited {} while it should be mirroring: {}\n(its output is above and in \
                 {})",
                describe_status(status),
                self.error_line(),
                self.log.display()
            )),
        }
    }

    /// The line that says why the mirror stopped: a Java exception's last
    /// cause, or the last line that reads as an error.
    fn error_line(&self) -> String {
        let output = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        let texts = || output.iter().rev().map(|line| line.text.trim());
        texts()
            .find_map(|text| text.strip_prefix("Caused by: "))
            .or_else(|| {
                texts().find(|text| {
                    text.contains("ERROR") || text.contains("error") || text.contains("Exception")
                })
            })
            .or_else(|| texts().next())
            .unwrap_or("(no output)")
            .to_owned()
    }

    /// Sends SIGINT (what Ctrl+C sends) and waits for the exit; returns
    /// the status (`None`: no exit in time, killed) and everything the
    /// mirror wrote.
    fn interrupt_and_wait(&mut self) -> Result<(Option<ExitStatus>, Vec<OutputLine>)> {
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
        let status = wait_timeout(&mut self.process.0, STOP_TIMEOUT)?;
        if status.is_none() {
            let _ = self.process.0.kill();
            let _ = self.process.0.wait();
        }
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

/// Echoes every line of `pipe` with a prefix (not Java's stack frames),
/// keeps it and logs it.
fn echo_lines(
    pipe: impl Read + Send + 'static,
    tag: &'static str,
    stream: &'static str,
    output: Arc<Mutex<Vec<OutputLine>>>,
    log: Arc<Mutex<File>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(text) = line else { break };
            let frame = text.starts_with('\t') || text.starts_with("Caused by:");
            if !frame {
                println!("  [{tag} {stream}] {text}");
            }
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
