//! `cargo xtask bench`: an end-to-end benchmark of `kmirror --once` between
//! two local Apache Kafka 4.4.0 brokers (or, `--nisshi`, two nisshi
//! brokers), next to what the brokers do alone with librdkafka.
//!
//! For each cell (codec, value size, partition count):
//!
//! 1. fresh source and destination brokers: a single-broker KRaft cluster
//!    each, from `kmirror-test-cluster` with Kafka's production JVM options
//!    (G1, both JIT compilers, 1 GiB heap), log dirs on local disk, groups
//!    form at once (`group.initial.rebalance.delay.ms=0`); the JVMs' start
//!    (about 6 s) is not measured. With `--nisshi`: nisshi brokers with
//!    memory storage;
//! 2. the topic with P partitions on the source (Kafka's `kafka-topics`,
//!    waiting until every partition has a leader; on nisshi, librdkafka's
//!    AdminClient);
//! 3. **produce**: a librdkafka producer (acks=all, linger.ms=50,
//!    batch.size=1000000, the cell's codec) fills the source; the wall time
//!    from the first `produce()` to the end of `flush()`;
//! 4. **consume**: a librdkafka consumer assigns every partition from the
//!    start and reads to the end offsets; the wall time from `assign()` to
//!    the last record;
//! 5. **kmirror**: `kmirror --once` to the empty destination, run under GNU
//!    time (`/usr/bin/time -f '%e %U %S %M'`: wall, user and system CPU
//!    seconds, peak RSS); the brokers' CPU seconds during it from
//!    `/proc/<pid>/stat` (utime + stime, before and after, in `getconf
//!    CLK_TCK` ticks); the bytes from kmirror's summary line;
//! 6. the destination's end offsets must add up to the source's.
//!
//! Rates are in batch bytes (the record batches as stored, compressed, as
//! kmirror's summary counts them) so the three steps of a cell compare; the
//! ratio of kmirror's rate to the consumer's, both in the same cell on the
//! same brokers, is the figure that survives a loaded machine best, so it
//! has a column of its own, as has the 1-minute load average just before
//! kmirror ran. Results go to stdout as rows and to
//! `<target>/xtask/bench/results.md`.

use std::fmt::Write as _;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kmirror_test_cluster::{ClusterOptions, KafkaCluster, KafkaVersion};

use crate::harness::{
    BROKER_ARGS, Broker, CREATE_TOPIC, Guarded, Profile, SCRIPT_TIMEOUT, Scripts, build_kmirror,
    describe_status, parse_json, scratch_dir, tail, wait_timeout, write_file,
};
use crate::json::Json;
use crate::replay::{Build, build_all, parse_builds};
use crate::{Options, Result, brokers, kafka_dist, paths};

mod peers;

use peers::{Peer, PeerContext, PeerRow};

/// The benchmark's topic.
const TOPIC: &str = "bench";
/// kmirror's consumer group.
const GROUP: &str = "kmirror-bench";
/// GNU time, for kmirror's CPU seconds and peak RSS.
const GNU_TIME: &str = "/usr/bin/time";

/// The matrix: codecs × value sizes × partition counts.
const MATRIX_CODECS: &[&str] = &["none", "lz4", "zstd"];
const MATRIX_SIZES: &[u64] = &[100, 1024, 10240];
const MATRIX_PARTITIONS: &[u32] = &[1, 8, 64];

/// Codecs librdkafka and kmirror both speak.
const CODECS: &[&str] = &["none", "lz4", "zstd", "gzip", "snappy"];

/// Where the values come from, as printed and written to the results.
const VALUE_SOURCE: &str = "each value is a slice, at a random offset, of a 16 MiB text of \
     pseudo-words (5000 random lowercase words of 3-10 letters, Zipf-distributed like natural \
     text, fixed seed), so codecs compress it somewhat as they do real text";

/// `cargo xtask bench`'s options.
#[derive(Debug, Clone)]
pub(crate) struct BenchOptions {
    records: u64,
    size: u64,
    codec: String,
    partitions: u32,
    streams: u32,
    keys: u64,
    matrix: bool,
    /// nisshi brokers instead of Apache Kafka.
    nisshi: bool,
    /// The kmirror builds measured in each cell, each to a fresh
    /// destination.
    builds: Vec<Build>,
    /// Also MirrorMaker 1 and MirrorMaker 2 ([`peers`]).
    peers: bool,
    /// `--cells`: the cells to run, instead of one or the matrix.
    listed: Vec<Cell>,
    /// The command line, for the results file.
    args: Vec<String>,
}

/// Reads the options (see the usage text in `main.rs`).
pub(crate) fn parse_options(rest: &[String]) -> Result<BenchOptions> {
    let matrix = rest.iter().any(|arg| arg == "--matrix");
    let nisshi = rest.iter().any(|arg| arg == "--nisshi");
    let peers = rest.iter().any(|arg| arg == "--peers");
    if peers && nisshi {
        return Err(
            "--peers runs MirrorMaker 1 and 2 on Apache Kafka; it does not go with --nisshi"
                .to_owned(),
        );
    }
    let others: Vec<String> = rest
        .iter()
        .filter(|a| *a != "--matrix" && *a != "--nisshi" && *a != "--peers")
        .cloned()
        .collect();
    let mut opts = Options::parse(
        &others,
        &[
            "--records",
            "--size",
            "--codec",
            "--partitions",
            "--streams",
            "--keys",
            "--builds",
            "--cells",
        ],
    )?;
    let listed = match opts.take("--cells") {
        None => Vec::new(),
        Some(spec) => parse_cells(&spec)?,
    };
    if matrix && !listed.is_empty() {
        return Err("--cells does not go with --matrix".to_owned());
    }
    if matrix {
        for flag in ["--codec", "--partitions"] {
            if opts.take(flag).is_some() {
                return Err(format!(
                    "{flag} does not go with --matrix, which runs every codec and partition count"
                ));
            }
        }
    }
    let number = |opts: &mut Options, flag: &str, default: u64, min: u64| -> Result<u64> {
        match opts.take(flag) {
            None => Ok(default),
            Some(text) => match text.parse::<u64>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(format!(
                    "{flag} expects a whole number of at least {min}, got {text:?}"
                )),
            },
        }
    };
    let records = number(&mut opts, "--records", 200_000, 1)?;
    let size = number(&mut opts, "--size", 1024, 1)?;
    let partitions = number(&mut opts, "--partitions", 8, 1)?;
    let streams = number(&mut opts, "--streams", 4, 1)?;
    let keys = number(&mut opts, "--keys", 1000, 0)?;
    let codec = opts.take("--codec").unwrap_or_else(|| "lz4".to_owned());
    if !CODECS.contains(&codec.as_str()) {
        return Err(format!(
            "--codec expects one of {}, got {codec:?}",
            CODECS.join(", ")
        ));
    }
    let builds = parse_builds(opts.take("--builds").as_deref())?;
    Ok(BenchOptions {
        builds,
        peers,
        listed,
        records,
        size,
        codec,
        partitions: u32::try_from(partitions).map_err(|_| "--partitions is too large")?,
        streams: u32::try_from(streams).map_err(|_| "--streams is too large")?,
        keys,
        matrix,
        nisshi,
        args: rest.to_vec(),
    })
}

/// One benchmark cell.
#[derive(Debug, Clone)]
struct Cell {
    codec: String,
    size: u64,
    partitions: u32,
    records: u64,
}

impl Cell {
    fn name(&self) -> String {
        format!("{} {}B p{}", self.codec, self.size, self.partitions)
    }

    fn slug(&self) -> String {
        format!("{}-{}b-p{}", self.codec, self.size, self.partitions)
    }
}

/// Reads `--cells codec:size:partitions:records,...`.
fn parse_cells(spec: &str) -> Result<Vec<Cell>> {
    spec.split(',')
        .map(|one| {
            let fields: Vec<&str> = one.trim().split(':').collect();
            let bad = || {
                format!(
                    "--cells expects codec:size:partitions:records,... (e.g. lz4:1024:8:200000), \
                     got {one:?}"
                )
            };
            let [codec, size, partitions, records] = fields.as_slice() else {
                return Err(bad());
            };
            if !CODECS.contains(codec) {
                return Err(format!(
                    "--cells: codec {codec:?} is not one of {}",
                    CODECS.join(", ")
                ));
            }
            let number = |text: &str| text.parse::<u64>().ok().filter(|n| *n > 0);
            Ok(Cell {
                codec: (*codec).to_owned(),
                size: number(size).ok_or_else(bad)?,
                partitions: number(partitions)
                    .and_then(|p| u32::try_from(p).ok())
                    .ok_or_else(bad)?,
                records: number(records).ok_or_else(bad)?,
            })
        })
        .collect()
}

fn cells(opts: &BenchOptions) -> Vec<Cell> {
    if !opts.listed.is_empty() {
        return opts.listed.clone();
    }
    if !opts.matrix {
        return vec![Cell {
            codec: opts.codec.clone(),
            size: opts.size,
            partitions: opts.partitions,
            records: opts.records,
        }];
    }
    // Every cell moves about as many value bytes as --records × --size.
    let target = opts.records.saturating_mul(opts.size);
    let mut cells = Vec::new();
    for codec in MATRIX_CODECS {
        for &size in MATRIX_SIZES {
            for &partitions in MATRIX_PARTITIONS {
                cells.push(Cell {
                    codec: (*codec).to_owned(),
                    size,
                    partitions,
                    records: (target / size).max(1),
                });
            }
        }
    }
    cells
}

/// What one cell measured.
#[derive(Debug, Clone)]
struct Row {
    cell: Cell,
    /// The kmirror build, when several are measured.
    build: Option<Build>,
    /// Key and value bytes produced.
    payload_bytes: u64,
    /// Record batch bytes, from kmirror's summary line.
    batch_bytes: u64,
    produce_secs: f64,
    consume_secs: f64,
    mirror: MirrorRun,
    /// kmirror's summary line.
    summary: String,
    passthrough_batches: u64,
    slow_path_batches: u64,
    /// The 1-minute load average (`/proc/loadavg`) just before kmirror ran.
    load_before: f64,
    /// Whether the destination holds the source's records in the same
    /// order, partition by partition ([`order_verdict`]).
    order: String,
    /// With `--peers`, in a cell's first row: every mirror's run of the
    /// cell, kmirror's builds first.
    peers: Vec<PeerRow>,
}

/// kmirror's run: GNU time's figures and the brokers' CPU seconds.
#[derive(Debug, Clone, Copy)]
struct MirrorRun {
    wall_secs: f64,
    user_secs: f64,
    system_secs: f64,
    peak_rss_kib: u64,
    source_cpu_secs: f64,
    destination_cpu_secs: f64,
}

impl Row {
    fn mb(&self) -> f64 {
        self.batch_bytes as f64 / 1e6
    }

    fn kmirror_cpu(&self) -> f64 {
        self.mirror.user_secs + self.mirror.system_secs
    }

    fn broker_cpu(&self) -> f64 {
        self.mirror.source_cpu_secs + self.mirror.destination_cpu_secs
    }

    fn cells(&self) -> Vec<String> {
        let rate = |secs: f64| {
            if secs > 0.0 {
                format!("{:.1}", self.mb() / secs)
            } else {
                "-".to_owned()
            }
        };
        let gb = self.batch_bytes as f64 / 1e9;
        vec![
            match self.build {
                Some(build) => format!("{} [{}]", self.cell.name(), build.name()),
                None => self.cell.name(),
            },
            self.cell.records.to_string(),
            format!("{:.1}", self.payload_bytes as f64 / 1e6),
            format!("{:.1}", self.mb()),
            rate(self.produce_secs),
            rate(self.consume_secs),
            rate(self.mirror.wall_secs),
            if self.mirror.wall_secs > 0.0 {
                format!("{:.2}", self.consume_secs / self.mirror.wall_secs)
            } else {
                "-".to_owned()
            },
            format!("{:.2}", self.mirror.wall_secs),
            if gb > 0.0 {
                format!("{:.2}", self.kmirror_cpu() / gb)
            } else {
                "-".to_owned()
            },
            format!("{:.1}", self.mirror.peak_rss_kib as f64 / 1024.0),
            format!(
                "{:.2} ({:.2}+{:.2})",
                self.broker_cpu(),
                self.mirror.source_cpu_secs,
                self.mirror.destination_cpu_secs
            ),
            if self.broker_cpu() > 0.0 {
                format!("{:.0}%", 100.0 * self.kmirror_cpu() / self.broker_cpu())
            } else {
                "-".to_owned()
            },
            format!("{}/{}", self.passthrough_batches, self.slow_path_batches),
            format!("{:.2}", self.load_before),
            self.order.clone(),
        ]
    }
}

const HEADERS: &[&str] = &[
    "cell",
    "records",
    "payload MB",
    "batch MB",
    "produce MB/s",
    "consume MB/s",
    "kmirror MB/s",
    "kmirror/consume",
    "kmirror wall s",
    "kmirror CPU-s/GB",
    "kmirror peak RSS MiB",
    "broker CPU-s (src+dst)",
    "kmirror CPU % of brokers",
    "batches passed/rebuilt",
    "load 1m",
    "same records, same order",
];

/// A fixed-width text row: the first column left-aligned, the rest right.
fn text_row(cells: &[String]) -> String {
    let mut line = String::new();
    for (i, (cell, header)) in cells.iter().zip(HEADERS).enumerate() {
        let width = header.len().max(if i == 0 { 16 } else { 8 });
        if i == 0 {
            let _ = write!(line, "{cell:<width$}");
        } else {
            let _ = write!(line, "  {cell:>width$}");
        }
    }
    line
}

fn header_cells() -> Vec<String> {
    HEADERS.iter().map(|h| (*h).to_owned()).collect()
}

/// The tools and binaries every cell uses.
struct Tools {
    /// The nisshi binary with `--nisshi`; Apache Kafka otherwise.
    nisshi: Option<PathBuf>,
    python: PathBuf,
    /// The kmirror builds, in the order they run in each cell.
    kmirrors: Vec<(Build, PathBuf)>,
    clock_ticks: f64,
}

/// The Apache Kafka version the benchmark runs against.
const KAFKA: KafkaVersion = KafkaVersion::V4_4;

/// Installs Apache Kafka and the venv (and, with `nisshi`, nisshi) if they
/// are missing; returns nisshi's binary (with `nisshi`) and the venv's
/// Python.
fn ensure_tools(nisshi: bool) -> Result<(Option<PathBuf>, PathBuf)> {
    let python = paths::venv_python();
    if nisshi {
        let bin = brokers::ensure_nisshi()?;
        if !python.is_file() {
            brokers::ensure_venv()?;
        }
        println!("nisshi:      {}", bin.display());
        println!("venv python: {}", python.display());
        return Ok((Some(bin), python));
    }
    if !kafka_dist::installed() || !python.is_file() {
        println!("Apache Kafka or the Python venv is missing: running `cargo xtask brokers` first");
        brokers::run(false)?;
    }
    println!("kafka-tool:  {}", kafka_dist::launcher().display());
    println!("venv python: {}", python.display());
    Ok((None, python))
}

/// One broker under benchmark: a single-broker Apache Kafka cluster or a
/// nisshi broker. Either is stopped when dropped.
enum BenchBroker {
    Kafka(Box<KafkaCluster>),
    Nisshi(Broker),
}

impl BenchBroker {
    /// Starts a fresh broker named `name` (its files under `dir` for nisshi,
    /// under the cluster's scratch directory for Kafka).
    fn start(tools: &Tools, name: &str, dir: &Path) -> Result<Self> {
        match &tools.nisshi {
            Some(nisshi) => Broker::start(nisshi, name, dir, BROKER_ARGS).map(Self::Nisshi),
            None => caught(&format!("the {name} Apache Kafka {KAFKA} broker"), || {
                Box::new(KafkaCluster::start(
                    ClusterOptions::new(KAFKA).performance().name(name),
                ))
            })
            .map(Self::Kafka),
        }
    }

    /// `bootstrap.servers`.
    fn bootstrap(&self) -> String {
        match self {
            Self::Kafka(cluster) => cluster.bootstrap(),
            Self::Nisshi(broker) => broker.addr.to_string(),
        }
    }

    /// The broker process's id, for its CPU time.
    fn pid(&self) -> Result<u32> {
        match self {
            Self::Kafka(cluster) => cluster
                .broker_pid(1)
                .ok_or_else(|| "the Apache Kafka broker does not run".to_owned()),
            Self::Nisshi(broker) => Ok(broker.pid()),
        }
    }

    /// Creates the topic and checks its partition count.
    fn create_topic(&self, scripts: &Scripts, partitions: u32) -> Result<()> {
        let count = match self {
            Self::Kafka(cluster) => {
                let wanted = i32::try_from(partitions).map_err(|_| "too many partitions")?;
                caught(&format!("creating {TOPIC} on the source"), || {
                    cluster.create_topic(TOPIC, wanted, 1, &[]);
                    cluster.partitions(TOPIC).len()
                })?
            }
            Self::Nisshi(_) => {
                let created = scripts.run(
                    "create_topic",
                    CREATE_TOPIC,
                    &[&self.bootstrap(), TOPIC, &partitions.to_string()],
                )?;
                let created = parse_json("create_topic", &created)?;
                created
                    .get("partitions")
                    .and_then(Json::as_i64)
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0)
            }
        };
        if u32::try_from(count).ok() != Some(partitions) {
            return Err(format!(
                "the source reports {count} partitions after creating {TOPIC} with {partitions}"
            ));
        }
        Ok(())
    }

    /// Keeps the broker's log in `dir` (a Kafka cluster removes its scratch
    /// directory when dropped; nisshi logs there already).
    fn keep_log(&self, name: &str, dir: &Path) {
        if let Self::Kafka(cluster) = self {
            let _ = std::fs::write(dir.join(format!("{name}-broker.log")), cluster.log(1));
        }
    }
}

/// Runs `f`, turning a panic (how kmirror-test-cluster fails, with the
/// broker's log in the message) into an error.
fn caught<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "(no message)".to_owned());
        format!("{what}: {message}")
    })
}

/// `/proc/loadavg`'s three load averages (1, 5 and 15 minutes).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The 1-minute load average, or 0.
fn load_1m() -> f64 {
    load_average()
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

/// Runs the benchmark; prints each row as its cell finishes.
pub(crate) fn run(opts: &BenchOptions) -> Result<()> {
    if !Path::new(GNU_TIME).is_file() {
        return Err(format!(
            "{GNU_TIME} (GNU time) is missing; it measures kmirror's CPU time and peak RSS: \
             install it with `apt-get install -y time`"
        ));
    }
    eprintln!(
        "bench: tools ({} and the Python clients)",
        if opts.nisshi {
            "nisshi".to_owned()
        } else {
            format!("Apache Kafka {KAFKA}")
        }
    );
    let (nisshi, python) = ensure_tools(opts.nisshi)?;
    eprintln!("bench: build kmirror");
    let glibc = build_kmirror(Profile::Release)?;
    let dir = scratch_dir("bench");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let kmirrors = if opts.builds == [Build::Glibc] {
        vec![(Build::Glibc, glibc)]
    } else {
        build_all(&opts.builds, &glibc, &dir)?
    };
    let tools = Tools {
        nisshi,
        python,
        kmirrors,
        clock_ticks: clock_ticks()?,
    };
    let machine = machine();
    let versions = versions(&tools);
    let cells = cells(opts);
    let load_start = load_average();
    eprintln!(
        "bench: {} cell(s); {}; load average {load_start}; scripts and logs in {}",
        cells.len(),
        machine,
        dir.display()
    );
    println!("values: {VALUE_SOURCE}");
    println!(
        "MB = 10^6 bytes of record batches as stored (kmirror's summary); produce: librdkafka, \
         acks=all, linger.ms=50, batch.size=1000000; kmirror --once --num.streams {}",
        opts.streams
    );
    println!("{}", text_row(&header_cells()));

    let results = dir.join("results.md");
    let mut rows: Vec<Row> = Vec::new();
    for cell in &cells {
        for row in run_cell(opts, cell, &tools, &dir)? {
            println!("{}", text_row(&row.cells()));
            rows.push(row);
        }
        let load = Load {
            start: load_start.clone(),
            now: load_average(),
        };
        write_file(
            &results,
            &markdown(opts, &machine, &versions, &load, &rows, cells.len()),
        )?;
    }
    if rows.len() > 1 {
        println!("\n{}", text_row(&header_cells()));
        for row in &rows {
            println!("{}", text_row(&row.cells()));
        }
    }
    println!(
        "\nload average (1, 5, 15 min): {load_start} at the start, {} at the end",
        load_average()
    );
    println!("results: {}", results.display());
    if opts.peers {
        let peer_rows: Vec<(Cell, u64, Vec<PeerRow>)> = rows
            .iter()
            .filter(|r| !r.peers.is_empty())
            .map(|r| (r.cell.clone(), r.batch_bytes, r.peers.clone()))
            .collect();
        let table = peers::markdown_table(&peer_rows);
        let ratios = peers::ratios(&peer_rows);
        let peers_md = dir.join("peers.md");
        let peers_svg = dir.join("peers.svg");
        write_file(
            &peers_md,
            &format!(
                "# kmirror, MirrorMaker 1 and MirrorMaker 2\n\n`cargo xtask bench {}`; {machine}; \
                 {versions}\n\n{table}\n```\n{ratios}```\n",
                opts.args.join(" ")
            ),
        )?;
        write_file(&peers_svg, &peers::svg_chart(&peer_rows))?;
        println!("\n{table}\n{ratios}");
        println!("peers: {} and {}", peers_md.display(), peers_svg.display());
    }
    Ok(())
}

/// The load averages at the start and after the latest cell.
struct Load {
    start: String,
    now: String,
}

/// Runs one cell on fresh brokers, which are stopped when it returns; their
/// logs stay in the cell's directory.
fn run_cell(opts: &BenchOptions, cell: &Cell, tools: &Tools, dir: &Path) -> Result<Vec<Row>> {
    let cell_dir = dir.join(cell.slug());
    std::fs::create_dir_all(&cell_dir)
        .map_err(|e| format!("cannot create {}: {e}", cell_dir.display()))?;
    eprintln!("bench: {}: start the brokers", cell.name());
    // Both at once: a JVM's start is mostly waiting.
    let (source, destination) = std::thread::scope(|scope| {
        let source = scope.spawn(|| BenchBroker::start(tools, "source", &cell_dir));
        let destination = BenchBroker::start(tools, "destination", &cell_dir);
        let source = source
            .join()
            .unwrap_or_else(|_| Err("the source broker's start panicked".to_owned()));
        (source, destination)
    });
    let fail = |message: String| {
        format!(
            "cell {}: {message} (files in {})",
            cell.name(),
            cell_dir.display()
        )
    };
    let (source, destination) = (source.map_err(fail)?, destination.map_err(fail)?);
    let rows = measure_cell(opts, cell, tools, &cell_dir, &source, &destination).map_err(fail);
    destination.keep_log("destination", &cell_dir);
    // Each peer gets a fresh destination of its own: this one goes.
    drop(destination);
    let mut rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            source.keep_log("source", &cell_dir);
            return Err(e);
        }
    };
    if opts.peers {
        let peers = run_peers(opts, cell, tools, &cell_dir, &source, &rows).map_err(fail);
        source.keep_log("source", &cell_dir);
        if let Some(first) = rows.first_mut() {
            first.peers = peers?;
        }
    } else {
        source.keep_log("source", &cell_dir);
    }
    Ok(rows)
}

/// `--peers`: kmirror's builds as measured, then MirrorMaker 1 (as the
/// guide runs it, and tuned) and MirrorMaker 2, each from the cell's
/// source to a fresh destination.
fn run_peers(
    opts: &BenchOptions,
    cell: &Cell,
    tools: &Tools,
    cell_dir: &Path,
    source: &BenchBroker,
    kmirror_rows: &[Row],
) -> Result<Vec<PeerRow>> {
    let batch_bytes = kmirror_rows.first().map_or(0, |r| r.batch_bytes);
    let mut runs: Vec<PeerRow> = kmirror_rows
        .iter()
        .map(|r| {
            let peer = Peer::Kmirror(r.build.unwrap_or(Build::Glibc));
            PeerRow::from_kmirror(peer, peer.settings(cell, opts.streams), &r.mirror, &r.order)
        })
        .collect();
    let ctx = PeerContext {
        tools,
        cell,
        cell_dir,
        source,
        streams: opts.streams,
        records: cell.records,
        timeout: SCRIPT_TIMEOUT
            + Duration::from_secs(cell.records.saturating_mul(cell.size) / 1_000_000),
    };
    for peer in Peer::JVM {
        eprintln!("bench: {}: {}", cell.name(), peer.name());
        let run = peers::run_peer(&ctx, peer).map_err(|e| format!("{}: {e}", peer.name()))?;
        eprintln!(
            "bench: {}: {}: {:.2} s, {:.1} MB/s, {:.1} CPU-s/GB, every record: {}, same order: {}",
            cell.name(),
            peer.name(),
            run.wall_secs,
            run.rate(batch_bytes),
            run.cpu_per_gb(batch_bytes),
            run.arrived,
            run.order
        );
        runs.push(run);
    }
    Ok(runs)
}

/// Fills the source, reads it back and runs kmirror (see the module's
/// documentation).
fn measure_cell(
    opts: &BenchOptions,
    cell: &Cell,
    tools: &Tools,
    cell_dir: &Path,
    source: &BenchBroker,
    first_destination: &BenchBroker,
) -> Result<Vec<Row>> {
    let name = cell.name();
    let scripts = Scripts {
        python: tools.python.clone(),
        dir: cell_dir.to_path_buf(),
    };
    let source_addr = source.bootstrap();
    // Generous: about 1 MB/s, however slow the machine.
    let long =
        SCRIPT_TIMEOUT + Duration::from_secs(cell.records.saturating_mul(cell.size) / 1_000_000);

    source.create_topic(&scripts, cell.partitions)?;

    eprintln!("bench: {name}: produce {} records", cell.records);
    let filled = scripts
        .spawn(
            "fill",
            FILL,
            &[
                &source_addr,
                TOPIC,
                &cell.records.to_string(),
                &cell.size.to_string(),
                &cell.codec,
                &opts.keys.to_string(),
            ],
        )
        .and_then(|script| script.wait_while(long, || Ok(())))?;
    let filled = parse_json("fill", &filled)?;
    let produce_secs = number(&filled, "seconds")?;
    let payload_bytes = whole(&filled, "payload_bytes")?;

    eprintln!("bench: {name}: consume");
    let consumed = scripts
        .spawn(
            "consume",
            CONSUME,
            &[&source_addr, TOPIC, &long.as_secs().to_string()],
        )
        .and_then(|script| script.wait_while(long + SCRIPT_TIMEOUT, || Ok(())))?;
    let consumed = parse_json("consume", &consumed)?;
    let consume_secs = number(&consumed, "seconds")?;
    let consumed_records = whole(&consumed, "records")?;
    if consumed_records != cell.records {
        return Err(format!(
            "the consumer read {consumed_records} records, the producer wrote {}",
            cell.records
        ));
    }

    let mut rows = Vec::new();
    let several = tools.kmirrors.len() > 1;
    for (i, (build, kmirror)) in tools.kmirrors.iter().enumerate() {
        // Each build after the first copies to a fresh destination broker.
        let fresh = if i == 0 {
            None
        } else {
            eprintln!(
                "bench: {name}: a fresh destination for the {} build",
                build.name()
            );
            Some(BenchBroker::start(
                tools,
                &format!("destination-{}", build.name()),
                cell_dir,
            )?)
        };
        let destination = fresh.as_ref().unwrap_or(first_destination);
        let destination_addr = destination.bootstrap();
        eprintln!("bench: {name}: kmirror --once ({} build)", build.name());
        write_file(
            &cell_dir.join("consumer.properties"),
            &format!(
                "bootstrap.servers={source_addr}\ngroup.id={GROUP}-{}\n",
                build.name()
            ),
        )?;
        write_file(
            &cell_dir.join("producer.properties"),
            &format!("bootstrap.servers={destination_addr}\n"),
        )?;
        let load_before = load_1m();
        let (mirror, stdout) = run_mirror(
            tools,
            kmirror,
            cell_dir,
            opts.streams,
            source,
            destination,
            long,
        )?;
        let summary = stdout
            .lines()
            .find(|line| line.starts_with("kmirror: mirrored "))
            .ok_or_else(|| "kmirror printed no summary line on stdout".to_owned())?
            .to_owned();
        let parsed = parse_summary(&summary)?;
        if parsed.records != cell.records {
            return Err(format!(
                "kmirror mirrored {} records, the source holds {}: {summary}",
                parsed.records, cell.records
            ));
        }

        let ends = scripts.run(
            "end_offsets",
            END_OFFSETS,
            &[&source_addr, &destination_addr, TOPIC],
        )?;
        let ends = parse_json("end_offsets", &ends)?;
        let side = |which: &str, field: &str| {
            ends.get(which)
                .and_then(|s| s.get(field))
                .and_then(Json::as_i64)
                .unwrap_or(-1)
        };
        let (source_end, destination_end) =
            (side("source", "records"), side("destination", "records"));
        if source_end != destination_end
            || u64::try_from(source_end).ok() != Some(cell.records)
            || side("destination", "partitions") != i64::from(cell.partitions)
        {
            return Err(format!(
                "after kmirror the end offsets differ: the source's {TOPIC} holds {source_end} records \
             in {} partitions, the destination's {destination_end} in {} (produced {})",
                side("source", "partitions"),
                side("destination", "partitions"),
                cell.records
            ));
        }
        eprintln!(
            "bench: {name}: produce {produce_secs:.2} s, consume {consume_secs:.2} s, kmirror {:.2} s; \
         destination end offsets add up to the source's ({destination_end}); compare the records",
            mirror.wall_secs
        );
        let compared = scripts
            .spawn(
                "compare",
                COMPARE,
                &[
                    &source_addr,
                    &destination_addr,
                    TOPIC,
                    &long.as_secs().to_string(),
                ],
            )
            .and_then(|script| script.wait_while(long + SCRIPT_TIMEOUT, || Ok(())))?;
        let compared = parse_json("compare", &compared)?;
        let order = order_verdict(&compared)?;
        if order != "yes" {
            eprintln!(
                "bench: {name}: WARNING: the destination's records differ from the source's: {order} \
             (details in {})",
                cell_dir.join("compare.stdout").display()
            );
        }
        if let Some(fresh) = &fresh {
            fresh.keep_log(&format!("destination-{}", build.name()), cell_dir);
        }
        rows.push(Row {
            cell: cell.clone(),
            build: several.then_some(*build),
            payload_bytes,
            batch_bytes: parsed.bytes,
            produce_secs,
            consume_secs,
            mirror,
            summary,
            passthrough_batches: parsed.passthrough,
            slow_path_batches: parsed.slow_path,
            load_before,
            order,
            peers: Vec::new(),
        });
    }
    Ok(rows)
}

/// What the compare script found: `yes` when every destination partition
/// holds the source partition's records in the same order, else which
/// partitions differ and how (`p2 reordered from #0`, `p5 lost/added`).
fn order_verdict(compared: &Json) -> Result<String> {
    let Some(Json::Array(differences)) = compared.get("differences") else {
        return Err(format!(
            "the compare script printed no differences: {compared:?}"
        ));
    };
    if differences.is_empty() {
        return Ok("yes".to_owned());
    }
    let verdicts: Vec<String> = differences
        .iter()
        .map(|d| {
            let field = |f: &str| d.get(f).and_then(Json::as_i64).unwrap_or(-1);
            let same_records = matches!(d.get("same_records"), Some(Json::Bool(true)));
            if same_records {
                format!(
                    "p{} reordered from #{}",
                    field("partition"),
                    field("first_difference")
                )
            } else {
                format!("p{} lost/added", field("partition"))
            }
        })
        .collect();
    Ok(format!("NO: {}", verdicts.join(", ")))
}

/// GNU time running kmirror; on drop kills kmirror (time's child) and
/// then time, if they still run.
struct Timed(Guarded);

impl Drop for Timed {
    fn drop(&mut self) {
        if matches!(self.0.0.try_wait(), Ok(None)) {
            let pid = self.0.0.id();
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for child in children.split_whitespace() {
                let _ = Command::new("kill")
                    .args(["-KILL", child])
                    .stdin(Stdio::null())
                    .status();
            }
        }
    }
}

/// Runs `kmirror --once` under GNU time; returns its figures and stdout.
fn run_mirror(
    tools: &Tools,
    kmirror: &Path,
    dir: &Path,
    streams: u32,
    source: &BenchBroker,
    destination: &BenchBroker,
    timeout: Duration,
) -> Result<(MirrorRun, String)> {
    let time_file = dir.join("kmirror.time");
    let stdout_file = dir.join("kmirror.stdout");
    let stderr_file = dir.join("kmirror.stderr");
    let create = |path: &Path| {
        File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
    };
    let streams = streams.to_string();
    let flags = mirror_maker_flags(&streams);
    let pids = (source.pid()?, destination.pid()?);
    let before = (cpu_ticks(pids.0)?, cpu_ticks(pids.1)?);
    let mut timed = Timed(Guarded(
        Command::new(GNU_TIME)
            .args(["-f", "%e %U %S %M", "-o"])
            .arg(&time_file)
            .arg(kmirror)
            .args(flags)
            .arg("--once")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(create(&stdout_file)?)
            .stderr(create(&stderr_file)?)
            .spawn()
            .map_err(|e| format!("cannot run {GNU_TIME}: {e}"))?,
    ));
    let status = wait_timeout(&mut timed.0.0, timeout)?.ok_or_else(|| {
        format!(
            "kmirror --once did not finish within {} s and was killed; its stderr:\n{}",
            timeout.as_secs(),
            tail(&stderr_file, 4000)
        )
    })?;
    let after = (cpu_ticks(pids.0)?, cpu_ticks(pids.1)?);
    if !status.success() {
        return Err(format!(
            "kmirror --once exited {}; its stderr ({}):\n{}",
            describe_status(status),
            stderr_file.display(),
            tail(&stderr_file, 4000)
        ));
    }
    let times = std::fs::read_to_string(&time_file)
        .map_err(|e| format!("cannot read {}: {e}", time_file.display()))?;
    let fields: Vec<&str> = times
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let parse = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| format!("cannot read GNU time's output {times:?}"))
    };
    let ticks = |from: u64, to: u64| to.saturating_sub(from) as f64 / tools.clock_ticks;
    let run = MirrorRun {
        wall_secs: parse(0)?,
        user_secs: parse(1)?,
        system_secs: parse(2)?,
        peak_rss_kib: parse(3)? as u64,
        source_cpu_secs: ticks(before.0, after.0),
        destination_cpu_secs: ticks(before.1, after.1),
    };
    let stdout = std::fs::read_to_string(&stdout_file).unwrap_or_default();
    Ok((run, stdout))
}

/// MirrorMaker 1's command line as the guide writes it, which kmirror
/// takes too: the two files in the working directory, the benchmark's
/// topic, `streams` streams.
fn mirror_maker_flags(streams: &str) -> [&str; 8] {
    [
        "--consumer.config",
        "consumer.properties",
        "--producer.config",
        "producer.properties",
        "--whitelist",
        TOPIC,
        "--num.streams",
        streams,
    ]
}

/// A process's user + system CPU time so far, in clock ticks
/// (`/proc/<pid>/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("cannot parse {path}"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts with field 3.
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("cannot parse field {n} of {path}"))
    };
    Ok(field(14)? + field(15)?)
}

/// `getconf CLK_TCK`: the unit of `/proc/<pid>/stat`'s times.
fn clock_ticks() -> Result<f64> {
    let output = Command::new("getconf")
        .arg("CLK_TCK")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `getconf CLK_TCK`: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    match text.trim().parse::<f64>() {
        Ok(ticks) if output.status.success() && ticks > 0.0 => Ok(ticks),
        _ => Err(format!("`getconf CLK_TCK` printed {text:?}")),
    }
}

/// What the summary line says.
#[derive(Debug, PartialEq)]
struct Summary {
    records: u64,
    bytes: u64,
    passthrough: u64,
    slow_path: u64,
}

/// Reads `kmirror: mirrored N records (X MiB) from ...: P batches passed
/// through untouched, S rebuilt on the slow path, ...`.
fn parse_summary(line: &str) -> Result<Summary> {
    let bad = || format!("cannot read kmirror's summary line {line:?}");
    let rest = line.strip_prefix("kmirror: mirrored ").ok_or_else(bad)?;
    let (records, rest) = rest.split_once(" records (").ok_or_else(bad)?;
    let (size, rest) = rest.split_once(')').ok_or_else(bad)?;
    let (amount, unit) = size.split_once(' ').ok_or_else(bad)?;
    let scale: f64 = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let amount: f64 = amount.parse().map_err(|_| bad())?;
    let word_before = |marker: &str| -> Result<u64> {
        let (before, _) = rest.split_once(marker).ok_or_else(bad)?;
        before
            .split_whitespace()
            .last()
            .and_then(|w| w.parse().ok())
            .ok_or_else(bad)
    };
    Ok(Summary {
        records: records.parse().map_err(|_| bad())?,
        bytes: (amount * scale).round() as u64,
        passthrough: word_before(" batches passed through")?,
        slow_path: word_before(" rebuilt on the slow path")?,
    })
}

fn number(summary: &Json, field: &str) -> Result<f64> {
    match summary.get(field) {
        Some(Json::Number(n)) => Ok(*n),
        other => Err(format!("the script's summary has {other:?} as {field}")),
    }
}

fn whole(summary: &Json, field: &str) -> Result<u64> {
    summary
        .get(field)
        .and_then(Json::as_i64)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("the script's summary has no whole {field}"))
}

/// `nproc`, the CPU model and the memory, for the results.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim())
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or_else(
            || "unknown memory".to_owned(),
            |kib| format!("{:.1} GiB memory", kib / 1024.0 / 1024.0),
        );
    format!("{cpus} CPUs (nproc), {model}, {memory}")
}

/// The versions of kmirror, the brokers and librdkafka, for the results.
fn versions(tools: &Tools) -> String {
    let line = |program: &Path, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    format!(
        "{}; {}; librdkafka {} (confluent-kafka {})",
        line(
            tools
                .kmirrors
                .first()
                .map_or(Path::new("kmirror"), |(_, p)| p),
            &["--version"],
        ),
        match &tools.nisshi {
            Some(nisshi) => line(nisshi, &["--version"]),
            None => format!(
                "Apache Kafka {KAFKA} (Maven Central) on {}",
                kafka_dist::java_version().unwrap_or_else(|_| "unknown Java".to_owned())
            ),
        },
        line(
            &tools.python,
            &[
                "-c",
                "import confluent_kafka; print(confluent_kafka.libversion()[0])"
            ]
        ),
        line(
            &tools.python,
            &[
                "-c",
                "import importlib.metadata as m; print(m.version('confluent-kafka'))"
            ]
        ),
    )
}

/// The results file: settings, machine, the table and the summary lines.
fn markdown(
    opts: &BenchOptions,
    machine: &str,
    versions: &str,
    load: &Load,
    rows: &[Row],
    planned: usize,
) -> String {
    let mut md = String::from("# kmirror end-to-end benchmark\n\n");
    let command = if opts.args.is_empty() {
        "cargo xtask bench".to_owned()
    } else {
        format!("cargo xtask bench {}", opts.args.join(" "))
    };
    let _ = writeln!(
        md,
        "Command: `{command}` ({} of {planned} cells done)\n",
        rows.len()
    );
    let _ = writeln!(md, "- machine: {machine}");
    let _ = writeln!(md, "- versions: {versions}");
    let _ = writeln!(
        md,
        "- load average (1, 5, 15 min, /proc/loadavg): {} at the start, {} after the latest \
         cell; the `load 1m` column is the 1-minute figure just before kmirror ran. Other work \
         on the machine slows every step of a cell alike, so the kmirror/consume ratio (the \
         consumer's wall time over kmirror's, same brokers, same data) compares better across \
         runs than the absolute rates",
        load.start, load.now
    );
    if opts.nisshi {
        let _ = writeln!(
            md,
            "- brokers: two nisshi brokers on 127.0.0.1, memory storage, fresh for every cell, \
             `--group-initial-rebalance-delay 0s`; on the same machine as kmirror and the clients"
        );
    } else {
        let _ = writeln!(
            md,
            "- brokers: two single-broker Apache Kafka {KAFKA} clusters (KRaft, combined \
             broker+controller) on 127.0.0.1 from kmirror-test-cluster, fresh for every cell \
             (their start is not measured), Kafka's production JVM options (`{}`, -Xmx1g \
             -Xms1g), log dirs on local disk, group.initial.rebalance.delay.ms=0, \
             num.network.threads=2, num.io.threads=4, the topic created with kafka-topics \
             (replication factor 1); on the same machine as kmirror and the clients",
            kmirror_test_cluster::PERFORMANCE_JVM_OPTS
        );
    }
    let _ = writeln!(
        md,
        "- produce: librdkafka (confluent-kafka), acks=all, linger.ms=50, batch.size=1000000, \
         the cell's codec, {}; wall time from the first produce() to the end of flush()",
        if opts.keys == 0 {
            "null keys".to_owned()
        } else {
            format!("{} distinct keys (murmur2 partitioner)", opts.keys)
        }
    );
    let _ = writeln!(md, "- values: {VALUE_SOURCE}");
    let _ = writeln!(
        md,
        "- consume: librdkafka consumer, assign() every partition from offset 0, read to the end \
         offsets; wall time from assign() to the last record"
    );
    let _ = writeln!(
        md,
        "- kmirror: `kmirror --once --num.streams {}`, producer.properties without \
         compression.type (batches keep their codec), to an empty destination; wall, user+system \
         CPU and peak RSS from GNU time (`/usr/bin/time -f '%e %U %S %M'`; the wall includes \
         start-up, connecting, creating the destination topic and the final commit); broker CPU \
         from /proc/<pid>/stat utime+stime before and after the run",
        opts.streams
    );
    let _ = writeln!(
        md,
        "- checks: the destination's end offsets add up to the source's (else the cell fails); \
         then both topics are read partition by partition and compared record by record \
         (CRC-32 of key and value): `same records, same order` is `yes`, or names the \
         partitions that differ (`reordered from #i`: the same records in another order from \
         the i-th on; `lost/added`: different records)"
    );
    let _ = writeln!(
        md,
        "- MB = 10^6 bytes. Rates divide the record batch bytes (as stored, compressed; kmirror's \
         summary line) by the wall time, for all three steps; payload MB = keys + values \
         produced. CPU-s/GB is per 10^9 batch bytes\n"
    );
    let _ = writeln!(md, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(
        md,
        "|{}",
        HEADERS
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for row in rows {
        let _ = writeln!(md, "| {} |", row.cells().join(" | "));
    }
    let _ = writeln!(md, "\nkmirror's summary lines:\n");
    for row in rows {
        let _ = writeln!(md, "- {}: `{}`", row.cell.name(), row.summary);
    }
    md
}

/// Fills the topic: values are slices of a pseudo-word text, produced
/// with librdkafka; prints the wall time of produce + flush.
const FILL: &str = r#"
import json, random, sys, time
from confluent_kafka import Producer

bootstrap, topic = sys.argv[1], sys.argv[2]
count, size, codec, keys = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])

rng = random.Random(20240601)
letters = "abcdefghijklmnopqrstuvwxyz"
words = ["".join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(5000)]
cum, total = [], 0.0
for rank in range(len(words)):
    total += 1.0 / (rank + 1)  # Zipf: the n-th word is n times rarer than the first
    cum.append(total)
corpus_bytes = 16 << 20
corpus = " ".join(rng.choices(words, cum_weights=cum, k=corpus_bytes // 5)).encode()[:corpus_bytes]
while len(corpus) < 2 * size:
    corpus += corpus
span = len(corpus) - size
values = [corpus[o:o + size] for o in (rng.randrange(span) for _ in range(count))]
key_list = [f"key-{n:06d}".encode() for n in range(keys)]
payload = count * size + sum(len(key_list[n % keys]) for n in range(count)) if keys else count * size

failures = []
def report(err, msg):
    failures.append(str(err))

producer = Producer({
    "bootstrap.servers": bootstrap,
    "acks": "all",
    "linger.ms": 50,
    "batch.size": 1000000,
    "compression.type": codec,
    "queue.buffering.max.messages": 1000000,
    "queue.buffering.max.kbytes": 1048576,
    "partitioner": "murmur2_random",
    "delivery.report.only.error": True,
    "on_delivery": report,
})
producer.list_topics(topic, timeout=30)

produce, poll = producer.produce, producer.poll
started = time.perf_counter()
for n, value in enumerate(values):
    key = key_list[n % keys] if keys else None
    while True:
        try:
            produce(topic, value, key)
            break
        except BufferError:
            poll(0.005)
    if n & 1023 == 0:
        poll(0)
left = producer.flush(900)
seconds = time.perf_counter() - started
if left or failures:
    sys.exit(f"produce failed: {left} records unacknowledged; {failures[:5]}")
print(json.dumps({"seconds": seconds, "records": count, "payload_bytes": payload}))
"#;

/// Reads the topic from the start to the end offsets with a librdkafka
/// consumer (assign, no group); prints the wall time.
const CONSUME: &str = r#"
import json, sys, time
from confluent_kafka import Consumer, KafkaException, TopicPartition

bootstrap, topic, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "kmirror-bench-reader",
    "enable.auto.commit": False,
})
metadata = consumer.list_topics(topic, timeout=30)
partitions = sorted(metadata.topics[topic].partitions)
ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in partitions}
expected = sum(high - low for low, high in ends.values())
pending = {p: high for p, (low, high) in ends.items() if high > low}

started = time.perf_counter()
deadline = started + timeout
consumer.assign([TopicPartition(topic, p, ends[p][0]) for p in pending])
records = 0
while pending:
    if time.perf_counter() > deadline:
        sys.exit(f"could not read to the end offsets within {timeout} s: {records} of {expected}")
    batch = consumer.consume(10000, 0.5)
    if not batch:
        continue
    errors = [m.error() for m in batch if m.error() is not None]
    if errors:
        raise KafkaException(errors[0])
    records += len(batch)
    for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
        if tp.offset >= pending[tp.partition]:
            del pending[tp.partition]
seconds = time.perf_counter() - started
consumer.close()
print(json.dumps({"seconds": seconds, "records": records, "expected": expected}))
"#;

/// Reads the topic on both brokers, partition by partition (assign from
/// offset 0 to the end offsets), and compares the sequences of records (a
/// CRC-32 of key and value each); prints the partitions that differ, with
/// the first index where they do and whether they hold the same records in
/// another order.
const COMPARE: &str = r#"
import json, sys, time, zlib
from collections import Counter
from confluent_kafka import Consumer, KafkaException, TopicPartition

source, destination, topic, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
crc32 = zlib.crc32

def read(bootstrap):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kmirror-bench-compare",
                         "enable.auto.commit": False})
    metadata = consumer.list_topics(topic, timeout=30)
    partitions = sorted(metadata.topics[topic].partitions)
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            for p in partitions}
    records = {p: [] for p in partitions}
    pending = {p: high for p, (low, high) in ends.items() if high > low}
    consumer.assign([TopicPartition(topic, p, ends[p][0]) for p in pending])
    deadline = time.perf_counter() + timeout
    while pending:
        if time.perf_counter() > deadline:
            sys.exit(f"could not read {bootstrap} to the end offsets within {timeout} s")
        for m in consumer.consume(10000, 0.5):
            if m.error() is not None:
                raise KafkaException(m.error())
            p = m.partition()
            if p in pending:
                records[p].append(crc32(m.value() or b"", crc32(m.key() or b"")))
                if m.offset() + 1 >= pending[p]:
                    del pending[p]
    consumer.close()
    return records

a, b = read(source), read(destination)
differences = []
for p in sorted(set(a) | set(b)):
    left, right = a.get(p, []), b.get(p, [])
    if left == right:
        continue
    first = next((i for i, (x, y) in enumerate(zip(left, right)) if x != y), min(len(left), len(right)))
    differences.append({"partition": p, "source": len(left), "destination": len(right),
                        "first_difference": first, "same_records": Counter(left) == Counter(right)})
print(json.dumps({"differences": differences}))
"#;

/// The topic's partition count and end offsets summed, on both brokers.
const END_OFFSETS: &str = r#"
import json, sys
from confluent_kafka import Consumer, TopicPartition

source, destination, topic = sys.argv[1], sys.argv[2], sys.argv[3]
def ends(bootstrap):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kmirror-bench-check",
                         "enable.auto.commit": False})
    found = consumer.list_topics(topic, timeout=30).topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        consumer.close()
        return {"partitions": 0, "records": 0}
    total = 0
    for p in found.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        total += high - low
    consumer.close()
    return {"partitions": len(found.partitions), "records": total}
print(json.dumps({"source": ends(source), "destination": ends(destination)}))
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_line() {
        let line = "kmirror: mirrored 200000 records (95.3 MiB) from 1 topic in 4.3 s: 1523 \
                    batches passed through untouched, 2 rebuilt on the slow path, 0 skipped \
                    (control, aborted or empty); 0 retried, 0 refused";
        assert_eq!(
            parse_summary(line),
            Ok(Summary {
                records: 200_000,
                bytes: (95.3_f64 * 1024.0 * 1024.0).round() as u64,
                passthrough: 1523,
                slow_path: 2,
            })
        );
        let small = "kmirror: mirrored 10 records (1021 B) from 1 topic in 4.3 s: 10 batches \
                     passed through untouched, 0 rebuilt on the slow path, 0 skipped";
        assert_eq!(parse_summary(small).map(|s| s.bytes), Ok(1021));
        assert!(parse_summary("kmirror: mirrored nothing").is_err());
    }

    #[test]
    fn the_matrix_moves_the_same_bytes_per_cell() {
        let opts = parse_options(&["--matrix".to_owned()]).expect("options");
        let cells = cells(&opts);
        assert_eq!(cells.len(), 27);
        for cell in &cells {
            let bytes = cell.records * cell.size;
            assert!(bytes.abs_diff(204_800_000) < cell.size, "{cell:?}");
        }
        assert!(
            parse_options(&[
                "--matrix".to_owned(),
                "--codec".to_owned(),
                "lz4".to_owned()
            ])
            .is_err()
        );
        assert!(parse_options(&["--codec".to_owned(), "brotli".to_owned()]).is_err());
    }
}
