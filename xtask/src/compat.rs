//! `cargo xtask compat`: kmirror between every pair of the pinned Apache
//! Kafka versions (2.1.1 and 3.9.2 in ZooKeeper mode, 4.4.0 in KRaft mode),
//! both directions and same-version pairs, with every codec, a compacted
//! source with offset gaps, a transactional source read with
//! `read_committed`, and (on 2.1, the only one that still writes them)
//! message format v1 and v0 topics.
//!
//! 1. builds kmirror (release) and the `api_versions` example, which
//!    connects with kmirror's own client and prints the version kmirror
//!    negotiated for every API it speaks (from the broker's ApiVersions);
//! 2. starts one cluster per version (`kmirror-test-cluster`; the cleaner
//!    backs off 1 s instead of 15 s) and fills one source topic per case with
//!    `xtask/python/compat.py setup` (librdkafka);
//! 3. for every ordered pair (a fresh second cluster for a same-version
//!    pair) and case, runs `kmirror --whitelist TOPIC --once --verbose` with
//!    a group of its own, then `compat.py verify`: both sides read back with
//!    librdkafka (`read_committed`) and compared record by record (key,
//!    value, headers, timestamp type and timestamp), destination offsets
//!    dense from 0, the group's committed offsets on the source equal to the
//!    source's end offsets, and the case's own rule (350 committed and no
//!    aborted transactional records; the compacted source really had gaps);
//! 4. prints the table and writes `docs/compatibility.md` (all runs) or
//!    `<target>/xtask/compat/compatibility.md` (a subset chosen with
//!    `--pairs` or `--cases`).

use std::fmt::Write as _;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kmirror_test_cluster::{ClusterOptions, KafkaCluster, KafkaVersion};

use crate::harness::{
    Guarded, Profile, build_kmirror, describe_status, scratch_dir, tail, wait_timeout, write_file,
};
use crate::json::Json;
use crate::{Options, Result, paths};

/// Every case, in table order.
const CASES: &[&str] = &[
    "none",
    "gzip",
    "snappy",
    "lz4",
    "zstd",
    "compact",
    "tx",
    "v1-none",
    "v1-snappy",
    "v0-none",
    "v0-lz4",
];

/// The APIs whose negotiated versions the report shows.
const SHOWN_APIS: &[&str] = &[
    "Produce",
    "Fetch",
    "ListOffsets",
    "Metadata",
    "OffsetCommit",
    "OffsetFetch",
    "FindCoordinator",
    "JoinGroup",
    "CreateTopics",
    "DescribeConfigs",
    "ApiVersions",
];

/// How long one kmirror `--once` run may take.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one helper script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// What to run.
pub(crate) struct CompatOptions {
    pairs: Option<Vec<(KafkaVersion, KafkaVersion)>>,
    cases: Option<Vec<String>>,
}

fn parse_version(text: &str) -> Result<KafkaVersion> {
    KafkaVersion::ALL
        .into_iter()
        .find(|v| v.as_str() == text || v.as_str().starts_with(&format!("{text}.")))
        .ok_or_else(|| format!("unknown Kafka version {text:?} (2.1, 3.9 or 4.4)"))
}

pub(crate) fn parse_options(args: &[String]) -> Result<CompatOptions> {
    let mut opts = Options::parse(args, &["--pairs", "--cases"])?;
    let pairs = opts
        .take("--pairs")
        .map(|list| {
            list.split(',')
                .map(|pair| {
                    let (s, d) = pair
                        .split_once(':')
                        .ok_or_else(|| format!("--pairs expects SRC:DST,..., got {pair:?}"))?;
                    Ok((parse_version(s)?, parse_version(d)?))
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    let cases = opts
        .take("--cases")
        .map(|list| {
            list.split(',')
                .map(|case| {
                    if CASES.contains(&case) {
                        Ok(case.to_owned())
                    } else {
                        Err(format!("unknown case {case:?}; cases: {}", CASES.join(",")))
                    }
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    Ok(CompatOptions { pairs, cases })
}

/// Whether `case` applies to a source of `version`: message formats v0
/// and v1 only on 2.1 (3.x ignores `message.format.version` and 4.x has no
/// such setting).
fn applies(version: KafkaVersion, case: &str) -> bool {
    !case.starts_with('v') || version == KafkaVersion::V2_1
}

fn short(version: KafkaVersion) -> String {
    version.as_str().rsplit_once('.').map_or_else(
        || version.as_str().to_owned(),
        |(major_minor, _)| major_minor.to_owned(),
    )
}

fn topic_name(source: KafkaVersion, case: &str) -> String {
    format!("c{}-{case}", short(source).replace('.', ""))
}

/// One case's result.
struct Outcome {
    ok: bool,
    /// The table cell.
    cell: String,
    /// What a reader needs to know (the failure, the path taken).
    detail: String,
}

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

struct Tools {
    kmirror: PathBuf,
    api_versions: PathBuf,
    python: PathBuf,
    script: PathBuf,
    dir: PathBuf,
}

impl Tools {
    /// Runs `compat.py ARGS` and returns its last line as JSON.
    fn script(&self, log_name: &str, args: &[&str]) -> Result<Json> {
        let out = self.dir.join(format!("{log_name}.stdout"));
        let err = self.dir.join(format!("{log_name}.stderr"));
        let create =
            |p: &Path| File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()));
        let mut child = Guarded(
            Command::new(&self.python)
                .arg(&self.script)
                .args(args)
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(create(&out)?)
                .stderr(create(&err)?)
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?,
        );
        let status = wait_timeout(&mut child.0, SCRIPT_TIMEOUT)?;
        let stdout = std::fs::read_to_string(&out).unwrap_or_default();
        match status {
            Some(s) if s.success() => {
                let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
                Json::parse(last.unwrap_or_default().trim())
                    .map_err(|e| format!("compat.py {} printed no JSON ({e}): {stdout}", args[0]))
            }
            Some(s) => Err(format!(
                "compat.py {} failed {}: {}",
                args.join(" "),
                describe_status(s),
                one_line(&tail(&err, 1500))
            )),
            None => Err(format!(
                "compat.py {} ran longer than {} s",
                args.join(" "),
                SCRIPT_TIMEOUT.as_secs()
            )),
        }
    }

    /// kmirror's negotiated versions with the cluster at `bootstrap`:
    /// `(api, chosen)`.
    fn negotiated(&self, bootstrap: &str) -> Result<Negotiated> {
        let output = Command::new(&self.api_versions)
            .arg(bootstrap)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.api_versions.display()))?;
        if !output.status.success() {
            return Err(format!(
                "api_versions {bootstrap}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(3, ' ');
                let api = fields.next()?.to_owned();
                let _ours = fields.next()?;
                Some((api, fields.next()?.to_owned()))
            })
            .collect())
    }
}

fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.len() > 600 {
        let mut end = joined.len() - 600;
        while !joined.is_char_boundary(end) {
            end += 1;
        }
        format!("...{}", &joined[end..])
    } else {
        joined
    }
}

/// `cargo build --release -p kmirror-cli --example api_versions`; its
/// executable as cargo reports it.
fn build_api_versions() -> Result<PathBuf> {
    let args = [
        "build",
        "--release",
        "-p",
        "kmirror-cli",
        "--example",
        "api_versions",
    ];
    println!("building: cargo {}", args.join(" "));
    crate::harness::cargo_build_executable(&args, "api_versions")
}

fn start_cluster(version: KafkaVersion, name: &str) -> Result<KafkaCluster> {
    let started = Instant::now();
    let cluster = caught(&format!("starting Apache Kafka {version}"), || {
        KafkaCluster::start(
            ClusterOptions::new(version)
                .name(name)
                // The cleaner looks for work every second, not every 15.
                .config("log.cleaner.backoff.ms", "1000"),
        )
    })?;
    println!(
        "started Apache Kafka {version} ({:?}) as {name} at {} in {:.1} s",
        cluster.mode(),
        cluster.bootstrap(),
        started.elapsed().as_secs_f64()
    );
    Ok(cluster)
}

/// The numbers of kmirror's summary line: `(records, passed through,
/// rebuilt on the slow path)`.
fn summary(stdout: &str) -> Option<(u64, u64, u64)> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("kmirror: mirrored "))?;
    let number_before = |needle: &str| -> Option<u64> {
        let end = line.find(needle)?;
        let digits: String = line[..end]
            .trim_end()
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        digits.parse().ok()
    };
    Some((
        number_before("records (")?,
        number_before("batches passed through")?,
        number_before("rebuilt on the slow path")?,
    ))
}

/// Mirrors one case's topic from `source` to `destination` and verifies it.
fn run_case(
    tools: &Tools,
    source: &KafkaCluster,
    destination: &KafkaCluster,
    case: &str,
) -> Result<Outcome> {
    let (s, d) = (source.version(), destination.version());
    let topic = topic_name(s, case);
    let group = format!("compat-{}-{}-{case}", short(s), short(d));
    let dir = tools
        .dir
        .join(format!("{}-to-{}", short(s), short(d)))
        .join(case);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let isolation = if case == "tx" {
        "isolation.level=read_committed\n"
    } else {
        ""
    };
    write_file(
        &dir.join("consumer.properties"),
        &format!(
            "bootstrap.servers={}\ngroup.id={group}\n{isolation}",
            source.bootstrap()
        ),
    )?;
    write_file(
        &dir.join("producer.properties"),
        &format!("bootstrap.servers={}\n", destination.bootstrap()),
    )?;
    let out = dir.join("kmirror.stdout");
    let err = dir.join("kmirror.stderr");
    let create =
        |p: &Path| File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()));
    let started = Instant::now();
    let mut child = Guarded(
        Command::new(&tools.kmirror)
            .args([
                "--consumer.config",
                "consumer.properties",
                "--producer.config",
                "producer.properties",
                "--whitelist",
                &topic,
                "--once",
                "--verbose",
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(create(&out)?)
            .stderr(create(&err)?)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", tools.kmirror.display()))?,
    );
    let status = wait_timeout(&mut child.0, MIRROR_TIMEOUT)?;
    let seconds = started.elapsed().as_secs_f64();
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr_tail = || {
        let text = tail(&err, 200_000);
        let errors: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("WARN") || l.contains("error"))
            .collect();
        one_line(&errors.join(" | "))
    };
    let exit_problem = match status {
        None => Some(format!(
            "kmirror --once did not exit within {} s: {}",
            MIRROR_TIMEOUT.as_secs(),
            stderr_tail()
        )),
        Some(st) if !st.success() => Some(format!(
            "kmirror exited {}: {}",
            describe_status(st),
            stderr_tail()
        )),
        Some(_) => None,
    };
    let verified = tools.script(
        &format!("verify-{}-{}-{case}", short(s), short(d)),
        &[
            "verify",
            &source.bootstrap(),
            &destination.bootstrap(),
            &topic,
            &group,
            case,
        ],
    )?;
    let ok = exit_problem.is_none() && verified.get("ok") == Some(&Json::Bool(true));
    let detail = verified
        .get("detail")
        .and_then(Json::as_str)
        .unwrap_or_default();
    let path = summary(&stdout).map_or_else(
        || "no summary line".to_owned(),
        |(records, passed, slow)| {
            format!("{records} records, {passed} batches passed through, {slow} rebuilt")
        },
    );
    let mut notes = vec![format!("{path}, {seconds:.1} s")];
    if let Some(problem) = exit_problem {
        notes.push(problem);
    }
    if !detail.is_empty() {
        notes.push(detail.to_owned());
    }
    let cell = match (ok, summary(&stdout)) {
        (false, _) => "FAIL".to_owned(),
        (true, Some((_, _, slow))) if slow > 0 => "pass (slow path)".to_owned(),
        (true, _) => "pass".to_owned(),
    };
    Ok(Outcome {
        ok,
        cell,
        detail: notes.join("; "),
    })
}

/// Fills every case's topic on `cluster`; returns per case the setup's
/// JSON summary or its error.
fn setup_source(
    tools: &Tools,
    cluster: &KafkaCluster,
    cases: &[String],
) -> Vec<(String, Result<String>)> {
    let v = cluster.version();
    cases
        .iter()
        .filter(|case| applies(v, case))
        .map(|case| {
            let topic = topic_name(v, case);
            let started = Instant::now();
            let result = tools
                .script(
                    &format!("setup-{}-{case}", short(v)),
                    &["setup", &cluster.bootstrap(), &topic, case],
                )
                .map(|json| {
                    json.as_object()
                        .unwrap_or_default()
                        .iter()
                        .filter(|(k, _)| k != "case")
                        .map(|(k, v)| {
                            let value = v.as_i64().map_or_else(
                                || v.as_str().unwrap_or_default().to_owned(),
                                |n| n.to_string(),
                            );
                            format!("{k} {value}")
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                });
            println!(
                "  setup {topic} on {v}: {} ({:.1} s)",
                match &result {
                    Ok(text) => text.clone(),
                    Err(e) => format!("FAILED: {e}"),
                },
                started.elapsed().as_secs_f64()
            );
            (case.clone(), result)
        })
        .collect()
}

/// `(api, version chosen)` per API kmirror speaks.
type Negotiated = Vec<(String, String)>;

struct Report {
    /// `(source, destination, case, outcome)`.
    rows: Vec<(KafkaVersion, KafkaVersion, String, Outcome)>,
    setups: Vec<(KafkaVersion, String, Result<String>)>,
    negotiated: Vec<(KafkaVersion, Result<Negotiated>)>,
}

pub(crate) fn run(options: &CompatOptions) -> Result<()> {
    let started = Instant::now();
    let python = paths::venv_python();
    if !python.is_file() {
        return Err(format!(
            "no Python venv at {}: run `cargo xtask brokers`",
            python.display()
        ));
    }
    let kmirror = build_kmirror(Profile::Release)?;
    let api_versions = build_api_versions()?;
    let dir = scratch_dir("compat");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tools = Tools {
        kmirror,
        api_versions,
        python,
        script: paths::xtask_dir().join("python").join("compat.py"),
        dir: dir.clone(),
    };
    let all_pairs: Vec<(KafkaVersion, KafkaVersion)> = KafkaVersion::ALL
        .into_iter()
        .flat_map(|s| KafkaVersion::ALL.into_iter().map(move |d| (s, d)))
        .collect();
    let pairs = options.pairs.clone().unwrap_or_else(|| all_pairs.clone());
    let cases: Vec<String> = options
        .cases
        .clone()
        .unwrap_or_else(|| CASES.iter().map(|c| (*c).to_owned()).collect());
    let complete = options.pairs.is_none() && options.cases.is_none();

    let mut report = Report {
        rows: Vec::new(),
        setups: Vec::new(),
        negotiated: Vec::new(),
    };
    let versions: Vec<KafkaVersion> = KafkaVersion::ALL
        .into_iter()
        .filter(|v| pairs.iter().any(|(s, d)| s == v || d == v))
        .collect();
    let mut clusters = Vec::new();
    for v in &versions {
        clusters.push(start_cluster(*v, &format!("compat-{}", short(*v)))?);
    }
    let cluster = |v: KafkaVersion| clusters.iter().find(|c| c.version() == v);
    for c in &clusters {
        let negotiated = tools.negotiated(&c.bootstrap());
        match &negotiated {
            Ok(list) => println!(
                "kmirror negotiated with {}: {}",
                c.version(),
                list.iter()
                    .filter(|(api, _)| SHOWN_APIS.contains(&api.as_str()))
                    .map(|(api, v)| format!("{api} v{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => println!("api_versions against {}: {e}", c.version()),
        }
        report.negotiated.push((c.version(), negotiated));
    }
    for c in &clusters {
        if pairs.iter().any(|(s, _)| *s == c.version()) {
            println!("filling the source topics on {}", c.version());
            for (case, result) in setup_source(&tools, c, &cases) {
                report.setups.push((c.version(), case, result));
            }
        }
    }
    // Cross pairs first on the long-lived clusters, then same-version pairs
    // each with a fresh destination of that version.
    let mut ordered: Vec<(KafkaVersion, KafkaVersion)> =
        pairs.iter().copied().filter(|(s, d)| s != d).collect();
    ordered.extend(pairs.iter().copied().filter(|(s, d)| s == d));
    for (s, d) in ordered {
        let source = cluster(s).ok_or("no source cluster")?;
        let fresh;
        let destination = if s == d {
            fresh = start_cluster(d, &format!("compat-{}-destination", short(d)))?;
            &fresh
        } else {
            cluster(d).ok_or("no destination cluster")?
        };
        println!("{s} -> {d}");
        for case in cases.iter().filter(|c| applies(s, c)) {
            let setup = report
                .setups
                .iter()
                .find(|(v, c, _)| *v == s && c == case)
                .map(|(_, _, r)| r.clone());
            let outcome = match setup {
                Some(Err(e)) => Outcome {
                    ok: false,
                    cell: "setup failed".to_owned(),
                    detail: e,
                },
                _ => run_case(&tools, source, destination, case).unwrap_or_else(|e| Outcome {
                    ok: false,
                    cell: "FAIL".to_owned(),
                    detail: e,
                }),
            };
            println!(
                "  {case:<10} {:<16} {}",
                outcome.cell,
                one_line(&outcome.detail)
            );
            report.rows.push((s, d, case.clone(), outcome));
        }
    }
    let elapsed = started.elapsed();
    let markdown = render(&report, &cases, &pairs, elapsed);
    println!("\n{}", table(&report, &cases, &pairs));
    let path = if complete {
        paths::workspace_root()
            .join("docs")
            .join("compatibility.md")
    } else {
        dir.join("compatibility.md")
    };
    write_file(&path, &markdown)?;
    let failed = report.rows.iter().filter(|(_, _, _, o)| !o.ok).count();
    println!(
        "{} cases, {failed} failed, in {:.0} s; wrote {}",
        report.rows.len(),
        elapsed.as_secs_f64(),
        path.display()
    );
    if failed > 0 {
        return Err(format!(
            "{failed} of {} cases failed (see {})",
            report.rows.len(),
            path.display()
        ));
    }
    Ok(())
}

/// The pass/fail table in Markdown.
fn table(report: &Report, cases: &[String], pairs: &[(KafkaVersion, KafkaVersion)]) -> String {
    let mut out = String::from("| source → destination |");
    for case in cases {
        let _ = write!(out, " {case} |");
    }
    out.push_str("\n|---|");
    for _ in cases {
        out.push_str("---|");
    }
    out.push('\n');
    for (s, d) in pairs {
        let _ = write!(out, "| {s} → {d} |");
        for case in cases {
            let cell = report
                .rows
                .iter()
                .find(|(rs, rd, rc, _)| rs == s && rd == d && rc == case)
                .map_or(
                    if applies(*s, case) { "not run" } else { "n/a" },
                    |(_, _, _, o)| o.cell.as_str(),
                );
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

fn render(
    report: &Report,
    cases: &[String],
    pairs: &[(KafkaVersion, KafkaVersion)],
    elapsed: Duration,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Compatibility: kmirror between Apache Kafka versions\n\n\
         Generated by `cargo xtask compat` (xtask/src/compat.rs, xtask/python/compat.py) on \
         this machine in {:.0} s of wall time: {} cases, {} failed. Every cell is one \
         `kmirror --once` run of one source topic into a destination of the other version, \
         read back on both sides with librdkafka and compared record by record. A reduced \
         matrix runs in CI as `cargo test -p kmirror-cli --test compatibility`.\n",
        elapsed.as_secs_f64(),
        report.rows.len(),
        report.rows.iter().filter(|(_, _, _, o)| !o.ok).count()
    );
    md.push_str(
        "Versions: Apache Kafka 2.1.1 (the oldest that runs on Java 17; ZooKeeper mode), \
         3.9.2 (ZooKeeper mode) and 4.4.0 (KRaft), from Maven Central, one broker each \
         (`kmirror-test-cluster`). Same-version pairs mirror into a second, fresh cluster of \
         that version.\n\n## Results\n\n",
    );
    md.push_str(&table(report, cases, pairs));
    md.push_str(
        "\n`pass`: kmirror exited 0, the destination holds exactly the source's records \
         (per partition, in order: key, value, headers, timestamp type and timestamp; v0 \
         records have no timestamp), at offsets dense from 0, and the group's committed \
         offsets on the source are the source's end offsets. `pass (slow path)`: the same, \
         with batches rebuilt by kmirror (up-conversion of v0/v1 message sets, or a compacted \
         batch). `n/a`: the source version cannot write that format.\n\n\
         ## Cases\n\n\
         - `none`, `gzip`, `snappy`, `lz4`, `zstd`: 300 records over 3 partitions, produced \
           by librdkafka (idempotent, acks=all) with that codec: keys (every 7th null), \
           values (every 11th null), headers (a repeated name, an empty and a null value), \
           explicit CreateTime timestamps.\n\
         - `compact`: `cleanup.policy=compact`, 401 records in 4 rounds over 2 partitions \
           (100 keys, then 25 of them overwritten three times, so some old records survive \
           between cleaned ranges; segment.ms=100, min.cleanable.dirty.ratio=0.01, the \
           broker's cleaner backing off 1 s); the setup waits until the cleaner left offset gaps, then resets segment.ms \
           and the dirty ratio so that nothing changes any more (the destination topic gets \
           `cleanup.policy=compact` from kmirror). The destination must hold the surviving \
           records densely.\n\
         - `tx`: a librdkafka transactional producer writes 10 transactions of 50 records \
           over 2 partitions and aborts every third (350 committed, 150 aborted); kmirror \
           reads with `isolation.level=read_committed`. Only the 350 committed records may \
           arrive, and no control batch (the destination's offsets are dense 0..n).\n\
         - `v1-none`, `v1-snappy`, `v0-none`, `v0-lz4` (2.1 sources only): a topic with \
           `message.format.version=0.10.2` (magic 1) or `0.9.0` (magic 0); the broker converts \
           librdkafka's batches on write, so Fetch returns legacy message sets (v0 LZ4 with \
           Kafka's old, wrong frame header checksum) that kmirror must up-convert to v2 \
           batches. 200 records over 2 partitions, no headers, not idempotent (legacy formats \
           refuse idempotent producers).\n\n",
    );
    md.push_str("## Versions kmirror negotiated\n\n");
    md.push_str(
        "kmirror sends ApiVersions on every connection and picks, per API, the highest version \
         both sides implement (crates/protocol/src/api.rs). What it picked against each broker, \
         printed by `crates/cli/examples/api_versions.rs` (kmirror's own client):\n\n",
    );
    md.push_str("| API |");
    for (v, _) in &report.negotiated {
        let _ = write!(md, " {v} |");
    }
    md.push_str("\n|---|");
    for _ in &report.negotiated {
        md.push_str("---|");
    }
    md.push('\n');
    for api in SHOWN_APIS {
        let _ = write!(md, "| {api} |");
        for (_, result) in &report.negotiated {
            let cell = match result {
                Ok(list) => list
                    .iter()
                    .find(|(a, _)| a == api)
                    .map_or("?".to_owned(), |(_, v)| {
                        if v.starts_with("none") {
                            "none".to_owned()
                        } else {
                            format!("v{v}")
                        }
                    }),
                Err(_) => "error".to_owned(),
            };
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
    }
    md.push_str(
        "\nWhat each version supports for a mirror: 2.1 writes and serves message formats v0 \
         and v1 per topic (`message.format.version`), Produce up to v7 (zstd needs v7, so \
         zstd batches reach a 2.1 destination) and Fetch up to v10 (no KIP-392 follower \
         fetching, no topic ids). 3.9 ignores `message.format.version` (always v2 under \
         inter.broker.protocol.version 3.0+). 4.x removed message formats v0/v1 entirely. \
         v0 records (no timestamp) arrive as CreateTime -1, which every destination version \
         accepts and librdkafka reads as CreateTime -1.\n\n\
         ## Findings\n\n\
         Failures, if any, are in the table and under Details per case. Observed besides:\n\n\
         - Uncompressed v0/v1 message sets are up-converted one v2 batch per record: \
           `v1-none` and `v0-none` report \"200 rebuilt on the slow path\" for 200 records, and \
           Kafka's DumpLogSegments on a 4.4 destination of a 200-record uncompressed v1 \
           partition shows 200 batches of `count: 1` (175 bytes each against the source's \
           139-byte v1 messages). Correct, but larger and slower than one batch per fetched \
           run of entries: each legacy entry is its own slow-path step \
           (crates/mirror/src/fetch_plan.rs, `legacy`). Compressed v0/v1 wrappers \
           (`v1-snappy`, `v0-lz4`) become one batch per wrapper.\n\n\
         ## Setup of the source topics\n\n",
    );
    for (v, case, result) in &report.setups {
        let text = match result {
            Ok(text) => text.clone(),
            Err(e) => format!("FAILED: {}", one_line(e)),
        };
        let _ = writeln!(md, "- {v} `{}`: {text}", topic_name(*v, case));
    }
    md.push_str("\n## Details per case\n\n");
    for (s, d, case, outcome) in &report.rows {
        let _ = writeln!(
            md,
            "- {s} → {d} `{case}`: **{}**: {}",
            outcome.cell,
            one_line(&outcome.detail)
        );
    }
    md.push_str(
        "\n## Running it\n\n```sh\ncargo xtask brokers   # once: Apache Kafka from Maven \
         Central, the Python venv\ncargo xtask compat    # the full matrix; writes this file\n\
         cargo xtask compat --pairs 2.1:4.4,4.4:2.1 --cases zstd,tx   # a subset; writes \
         target/xtask/compat/compatibility.md\n\
         cargo test -p kmirror-cli --test compatibility   # the reduced matrix of CI\n```\n\n\
         Each case's files (properties, kmirror's `--verbose` log, the scripts' output) stay \
         in `target/xtask/compat/`.\n",
    );
    md
}
