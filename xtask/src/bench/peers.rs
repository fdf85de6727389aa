//! `cargo xtask bench --peers`: the same cell mirrored by what users run
//! today, next to kmirror, on the same Apache Kafka brokers and data.
//!
//! After the cell's source is filled and kmirror has mirrored it (each of
//! the `--builds`, e.g. `glibc,dist` for the static binary that ships; see
//! the parent module), each peer mirrors the same source to a fresh, empty
//! destination broker of its own:
//!
//! - **MirrorMaker 1** of Apache Kafka 3.9.2 (`kafka.tools.MirrorMaker`,
//!   kafka-run-class's JVM options and heap), twice: *guide*, the
//!   HDInsight guide's command and files (`--num.streams 4`,
//!   `compression.type=none`, plus `auto.offset.reset=earliest` so that it
//!   copies what the source holds, as kmirror does); *tuned*, one stream
//!   per partition (at most 8), `batch.size=1000000`, `linger.ms=50` and
//!   the source's codec;
//! - **MirrorMaker 2** of the newest 4.x (`connect-mirror-maker` in
//!   dedicated mode, `IdentityReplicationPolicy` so the topic keeps its
//!   name, `tasks.max` = `--streams`, the producer on the source's codec,
//!   connect-mirror-maker.sh's heap).
//!
//! A JVM mirror does not stop by itself: a librdkafka script polls the
//! destination's end offsets every 100 ms, and the mirror's wall time is
//! from its start to the moment they add up to the source's. Its CPU
//! seconds (the JVM's, from `/proc/<pid>/stat`) and peak RSS (`VmHWM`)
//! are read then, before it is stopped; the brokers' CPU seconds are
//! counted over the same span. The records are then compared partition by
//! partition with the source, as kmirror's are.

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{
    BenchBroker, Cell, GROUP, MirrorRun, TOPIC, Tools, cpu_ticks, mirror_maker_flags, number,
    order_verdict, whole,
};
use crate::harness::{Scripts, parse_json, tail, wait_timeout, write_file};
use crate::replay::Build;
use crate::{Result, kafka_dist};

/// The MirrorMaker 1 the guide runs.
const MM1_VERSION: &str = "3.9.2";
/// kafka-run-class.sh's JVM options, as MirrorMaker 1 runs with them.
const MM1_JVM: &str = "-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
     -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
     -XX:MaxInlineLevel=15 -Djava.awt.headless=true";
/// kafka-run-class.sh's default heap.
const MM1_HEAP: &str = "-Xmx256M";
/// connect-mirror-maker.sh's heap.
const MM2_HEAP: &str = "-Xms256M -Xmx2G";
/// Value bytes above which a peer's records are not compared one by one.
const COMPARE_LIMIT: u64 = 600_000_000;

/// A mirror of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Peer {
    /// A kmirror build (measured by the parent module).
    Kmirror(Build),
    /// MirrorMaker 1 as the guide runs it.
    Mm1Guide,
    /// MirrorMaker 1 tuned.
    Mm1Tuned,
    /// MirrorMaker 2, dedicated mode.
    Mm2,
}

impl Peer {
    /// The JVM mirrors, in the table's order.
    pub(super) const JVM: [Peer; 3] = [Peer::Mm1Guide, Peer::Mm1Tuned, Peer::Mm2];

    pub(super) fn name(self) -> String {
        match self {
            Peer::Kmirror(build) => format!("kmirror ({})", build.name()),
            Peer::Mm1Guide => "MirrorMaker 1 (guide)".to_owned(),
            Peer::Mm1Tuned => "MirrorMaker 1 (tuned)".to_owned(),
            Peer::Mm2 => "MirrorMaker 2".to_owned(),
        }
    }

    fn slug(self) -> String {
        match self {
            Peer::Kmirror(build) => format!("kmirror-{}", build.name()),
            Peer::Mm1Guide => "mm1-guide".to_owned(),
            Peer::Mm1Tuned => "mm1-tuned".to_owned(),
            Peer::Mm2 => "mm2".to_owned(),
        }
    }

    /// The settings it ran with, for the results.
    pub(super) fn settings(self, cell: &Cell, streams: u32) -> String {
        match self {
            Peer::Kmirror(_) => {
                format!("--once --num.streams {streams}; defaults (acks=all, idempotent)")
            }
            Peer::Mm1Guide => format!(
                "Kafka {MM1_VERSION}; --num.streams 4; compression.type=none; \
                 auto.offset.reset=earliest; {MM1_HEAP}; destination topic created beforehand"
            ),
            Peer::Mm1Tuned => format!(
                "Kafka {MM1_VERSION}; --num.streams {}; compression.type={}; batch.size=1000000; \
                 linger.ms=50; auto.offset.reset=earliest; {MM1_HEAP}; destination topic created \
                 beforehand",
                mm1_tuned_streams(cell),
                cell.codec
            ),
            Peer::Mm2 => format!(
                "connect-mirror {}; dedicated mode; tasks.max={streams}; IdentityReplicationPolicy; \
                 producer compression.type={}; {MM2_HEAP}",
                kafka_dist::MM2_VERSION,
                cell.codec
            ),
        }
    }
}

/// MirrorMaker 1 tuned: one consumer per partition, at most 8.
fn mm1_tuned_streams(cell: &Cell) -> u32 {
    cell.partitions.clamp(1, 8)
}

/// What one mirror did in one cell.
#[derive(Debug, Clone)]
pub(super) struct PeerRow {
    pub(super) peer: Peer,
    pub(super) settings: String,
    /// From its start to the last record on the destination.
    pub(super) wall_secs: f64,
    /// The mirror process's user + system CPU seconds (JVM included).
    pub(super) cpu_secs: f64,
    pub(super) peak_rss_kib: u64,
    pub(super) source_cpu_secs: f64,
    pub(super) destination_cpu_secs: f64,
    /// The destination's end offsets add up to the source's.
    pub(super) arrived: bool,
    /// [`order_verdict`]'s answer.
    pub(super) order: String,
}

impl PeerRow {
    /// kmirror's glibc run, measured by the parent module.
    pub(super) fn from_kmirror(peer: Peer, settings: String, run: &MirrorRun, order: &str) -> Self {
        Self {
            peer,
            settings,
            wall_secs: run.wall_secs,
            cpu_secs: run.user_secs + run.system_secs,
            peak_rss_kib: run.peak_rss_kib,
            source_cpu_secs: run.source_cpu_secs,
            destination_cpu_secs: run.destination_cpu_secs,
            arrived: true,
            order: order.to_owned(),
        }
    }

    /// MB/s of record batches.
    pub(super) fn rate(&self, batch_bytes: u64) -> f64 {
        if self.wall_secs > 0.0 {
            batch_bytes as f64 / 1e6 / self.wall_secs
        } else {
            0.0
        }
    }

    /// CPU seconds per GB of record batches.
    pub(super) fn cpu_per_gb(&self, batch_bytes: u64) -> f64 {
        let gb = batch_bytes as f64 / 1e9;
        if gb > 0.0 { self.cpu_secs / gb } else { 0.0 }
    }
}

/// What every peer run of a cell needs.
pub(super) struct PeerContext<'a> {
    pub(super) tools: &'a Tools,
    pub(super) cell: &'a Cell,
    pub(super) cell_dir: &'a std::path::Path,
    pub(super) source: &'a BenchBroker,
    pub(super) streams: u32,
    pub(super) records: u64,
    pub(super) timeout: Duration,
}

/// Runs a JVM `peer` from the cell's source to a fresh destination broker.
pub(super) fn run_peer(ctx: &PeerContext<'_>, peer: Peer) -> Result<PeerRow> {
    let dir = ctx.cell_dir.join(peer.slug());
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let destination = BenchBroker::start(ctx.tools, &format!("dst-{}", peer.slug()), &dir)?;
    let result = run_on(ctx, peer, &dir, &destination);
    destination.keep_log("destination", &dir);
    result
}

fn run_on(
    ctx: &PeerContext<'_>,
    peer: Peer,
    dir: &std::path::Path,
    destination: &BenchBroker,
) -> Result<PeerRow> {
    let source_addr = ctx.source.bootstrap();
    let destination_addr = destination.bootstrap();
    let settings = peer.settings(ctx.cell, ctx.streams);
    let group = format!("{GROUP}-{}", peer.slug());
    let scripts = Scripts {
        python: ctx.tools.python.clone(),
        dir: dir.to_path_buf(),
    };
    let row = match peer {
        Peer::Kmirror(_) => {
            return Err("kmirror's builds are measured by the cell itself".to_owned());
        }
        Peer::Mm1Guide | Peer::Mm1Tuned => {
            let tuned = peer == Peer::Mm1Tuned;
            // MirrorMaker 1 creates no topic: the destination broker would
            // auto-create it with one partition. Created beforehand with
            // the source's count, as its operators do.
            destination.create_topic(&scripts, ctx.cell.partitions)?;
            write_file(
                &dir.join("consumer.properties"),
                &format!(
                    "bootstrap.servers={source_addr}\ngroup.id={group}\nauto.offset.reset=earliest\n"
                ),
            )?;
            let producer = if tuned {
                format!(
                    "bootstrap.servers={destination_addr}\ncompression.type={}\nbatch.size=1000000\nlinger.ms=50\n",
                    ctx.cell.codec
                )
            } else {
                format!("bootstrap.servers={destination_addr}\ncompression.type=none\n")
            };
            write_file(&dir.join("producer.properties"), &producer)?;
            let streams = if tuned {
                mm1_tuned_streams(ctx.cell)
            } else {
                4
            }
            .to_string();
            let mut command = Command::new(kafka_dist::launcher());
            command
                .args([MM1_VERSION, "kafka-mirror-maker"])
                .args(mirror_maker_flags(&streams))
                .env("KAFKA_HEAP_OPTS", MM1_HEAP)
                .env("KAFKA_JVM_PERFORMANCE_OPTS", MM1_JVM);
            run_jvm(ctx, peer, settings, dir, &scripts, destination, command)?
        }
        Peer::Mm2 => {
            let rf = [
                "replication.factor",
                "checkpoints.topic.replication.factor",
                "heartbeats.topic.replication.factor",
                "offset-syncs.topic.replication.factor",
                "offset.storage.replication.factor",
                "status.storage.replication.factor",
                "config.storage.replication.factor",
            ]
            .iter()
            .fold(String::new(), |mut out, key| {
                let _ = writeln!(out, "{key}=1");
                out
            });
            write_file(
                &dir.join("mm2.properties"),
                &format!(
                    "clusters=src, dst\nsrc.bootstrap.servers={source_addr}\n\
                     dst.bootstrap.servers={destination_addr}\nsrc->dst.enabled=true\n\
                     src->dst.topics={TOPIC}\ndst->src.enabled=false\n\
                     replication.policy.class=org.apache.kafka.connect.mirror.IdentityReplicationPolicy\n\
                     tasks.max={}\ndst.producer.compression.type={}\n\
                     src.consumer.auto.offset.reset=earliest\n{rf}",
                    ctx.streams, ctx.cell.codec
                ),
            )?;
            let mut command = Command::new(kafka_dist::launcher());
            command
                .args(["mm2", "connect-mirror-maker", "mm2.properties"])
                .env("KAFKA_HEAP_OPTS", MM2_HEAP)
                .env("KAFKA_JVM_PERFORMANCE_OPTS", MM1_JVM);
            run_jvm(ctx, peer, settings, dir, &scripts, destination, command)?
        }
    };
    // Reading a large cell back twice per mirror takes longer than the
    // mirrors: there the end offsets (checked while waiting) must do.
    if ctx.cell.records.saturating_mul(ctx.cell.size) > COMPARE_LIMIT {
        return Ok(PeerRow {
            order: "not compared (end offsets add up)".to_owned(),
            ..row
        });
    }
    let long = ctx.timeout;
    let compared = scripts
        .spawn(
            "compare",
            super::COMPARE,
            &[
                &source_addr,
                &destination_addr,
                TOPIC,
                &long.as_secs().to_string(),
            ],
        )
        .and_then(|script| script.wait_while(long + crate::harness::SCRIPT_TIMEOUT, || Ok(())))?;
    let order = order_verdict(&parse_json("compare", &compared)?)?;
    Ok(PeerRow { order, ..row })
}

/// A JVM mirror: started, timed until the destination holds every record,
/// measured, stopped.
fn run_jvm(
    ctx: &PeerContext<'_>,
    peer: Peer,
    settings: String,
    dir: &std::path::Path,
    scripts: &Scripts,
    destination: &BenchBroker,
    mut command: Command,
) -> Result<PeerRow> {
    let log = dir.join("mirror.log");
    let file =
        std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let clone = file
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let pids = (ctx.source.pid()?, destination.pid()?);
    let before = (cpu_ticks(pids.0)?, cpu_ticks(pids.1)?);
    let started = Instant::now();
    let child = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(clone)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", peer.name()))?;
    let mut jvm = Jvm(child);
    let waited = scripts
        .spawn(
            "wait_end",
            WAIT_END,
            &[
                &destination.bootstrap(),
                TOPIC,
                &ctx.records.to_string(),
                &ctx.timeout.as_secs().to_string(),
            ],
        )
        .and_then(|script| {
            script.wait_while(ctx.timeout + crate::harness::SCRIPT_TIMEOUT, || {
                match jvm.0.try_wait() {
                    Ok(Some(status)) => Err(format!(
                        "{} exited ({status}) before the destination held every record; its log:\n{}",
                        peer.name(),
                        tail(&log, 4000)
                    )),
                    _ => Ok(()),
                }
            })
        });
    let wall_secs = started.elapsed().as_secs_f64();
    let pid = jvm.0.id();
    let cpu = cpu_ticks(pid);
    let rss = peak_rss_kib(pid);
    let after = (cpu_ticks(pids.0)?, cpu_ticks(pids.1)?);
    jvm.stop();
    let waited = parse_json("wait_end", &waited?)?;
    let arrived = whole(&waited, "records")? == ctx.records;
    let _ = number(&waited, "seconds")?;
    let ticks = ctx.tools.clock_ticks;
    let span = |from: u64, to: u64| to.saturating_sub(from) as f64 / ticks;
    Ok(PeerRow {
        peer,
        settings,
        wall_secs,
        cpu_secs: cpu? as f64 / ticks,
        peak_rss_kib: rss?,
        source_cpu_secs: span(before.0, after.0),
        destination_cpu_secs: span(before.1, after.1),
        arrived,
        order: String::new(),
    })
}

/// A running JVM mirror: SIGTERM (its shutdown hook), then SIGKILL.
struct Jvm(Child);

impl Jvm {
    fn stop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .stdin(Stdio::null())
                .status();
            if !matches!(
                wait_timeout(&mut self.0, Duration::from_secs(30)),
                Ok(Some(_))
            ) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
}

impl Drop for Jvm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A process's peak resident set (`VmHWM` of `/proc/<pid>/status`), KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| format!("no VmHWM in {path}"))
}

/// Polls the destination's end offsets every 100 ms until they add up to
/// `argv[3]` records (or `argv[4]` seconds pass); prints how many and when.
const WAIT_END: &str = r#"
import json, sys, time
from confluent_kafka import Consumer, KafkaException, TopicPartition
bootstrap, topic, wanted, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
start = time.monotonic()
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-wait-end", "enable.auto.commit": False})
total = 0
while time.monotonic() - start < timeout:
    md = c.list_topics(topic, timeout=5)
    t = md.topics.get(topic)
    if t is not None and t.error is None and t.partitions:
        total = 0
        try:
            for p in t.partitions:
                low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)
                total += high
        except KafkaException:
            # A topic just created: its leaders are not elected yet.
            total = 0
        if total >= wanted:
            break
    time.sleep(0.1)
c.close()
print(json.dumps({"records": total, "seconds": time.monotonic() - start}))
"#;

/// The results table of `--peers`, one row per cell and mirror.
pub(super) fn markdown_table(rows: &[(Cell, u64, Vec<PeerRow>)]) -> String {
    let mut out = String::from(
        "| cell | mirror | wall s | MB/s | CPU-s/GB | peak RSS MiB | broker CPU-s (src+dst) | every record | same order | settings |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (cell, batch_bytes, peers) in rows {
        for p in peers {
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.1} | {:.1} | {:.0} | {:.1} ({:.1}+{:.1}) | {} | {} | {} |",
                cell.name(),
                p.peer.name(),
                p.wall_secs,
                p.rate(*batch_bytes),
                p.cpu_per_gb(*batch_bytes),
                p.peak_rss_kib as f64 / 1024.0,
                p.source_cpu_secs + p.destination_cpu_secs,
                p.source_cpu_secs,
                p.destination_cpu_secs,
                if p.arrived { "yes" } else { "NO" },
                if p.order.is_empty() { "-" } else { &p.order },
                p.settings
            );
        }
    }
    out
}

/// Two grouped bar charts (throughput, CPU per GB) of every mirror by
/// cell, as SVG.
pub(super) fn svg_chart(rows: &[(Cell, u64, Vec<PeerRow>)]) -> String {
    const COLORS: [&str; 5] = ["#1b9e77", "#66c2a5", "#d95f02", "#fc8d62", "#7570b3"];
    let (width, panel, top, left) = (960.0, 260.0, 40.0, 70.0);
    let bar_area = width - left - 20.0;
    let group = bar_area / rows.len().max(1) as f64;
    // Every mirror that ran, in the order of the first cell's rows.
    let mut series: Vec<Peer> = Vec::new();
    for peer in rows
        .iter()
        .flat_map(|(_, _, peers)| peers.iter().map(|p| p.peer))
    {
        if !series.contains(&peer) {
            series.push(peer);
        }
    }
    let bar = (group - 16.0) / series.len().max(1) as f64;
    let mut svg = String::new();
    let height = top + 2.0 * (panel + 70.0) + 40.0;
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{left}" y="22" font-size="14">kmirror, MirrorMaker 1 and MirrorMaker 2 on the same Apache Kafka brokers (cargo xtask bench --peers)</text>"#
    );
    type Metric = fn(&PeerRow, u64) -> f64;
    let panels: [(&str, Metric); 2] = [
        ("MB/s of record batches (higher is better)", |p, b| {
            p.rate(b)
        }),
        (
            "CPU seconds per GB, mirror process (lower is better)",
            |p, b| p.cpu_per_gb(b),
        ),
    ];
    for (index, (title, metric)) in panels.iter().enumerate() {
        let y0 = top + index as f64 * (panel + 70.0) + 20.0;
        let max = rows
            .iter()
            .flat_map(|(_, b, peers)| peers.iter().map(move |p| metric(p, *b)))
            .fold(0.0_f64, f64::max)
            .max(1e-9);
        let _ = writeln!(
            svg,
            r#"<text x="{left}" y="{y0}" font-size="12">{title}</text>"#
        );
        let base = y0 + 10.0 + panel;
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{base}" x2="{}" y2="{base}" stroke="#333"/>"##,
            width - 20.0
        );
        for tick in 0..=4 {
            let v = max * f64::from(tick) / 4.0;
            let y = base - panel * f64::from(tick) / 4.0;
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="{}" text-anchor="end">{v:.0}</text><line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/>"##,
                left - 6.0,
                y + 4.0,
                width - 20.0
            );
        }
        for (g, (cell, batch_bytes, peers)) in rows.iter().enumerate() {
            let gx = left + g as f64 * group + 8.0;
            for (i, peer) in series.iter().enumerate() {
                let Some(p) = peers.iter().find(|p| p.peer == *peer) else {
                    continue;
                };
                let v = metric(p, *batch_bytes);
                let h = panel * v / max;
                let x = gx + i as f64 * bar;
                let _ = writeln!(
                    svg,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {v:.1}</title></rect>"#,
                    base - h,
                    (bar - 2.0).max(1.0),
                    COLORS[i % COLORS.len()],
                    peer.name()
                );
                // The value above the bar: a short bar stays readable.
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{}</text>"#,
                    x + bar / 2.0 - 1.0,
                    base - h - 3.0,
                    if v >= 100.0 {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.1}")
                    }
                );
            }
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                gx + (group - 16.0) / 2.0,
                base + 16.0,
                cell.name()
            );
        }
    }
    let legend_y = height - 20.0;
    for (i, peer) in series.iter().enumerate() {
        let x = left + i as f64 * 170.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{legend_y}">{}</text>"#,
            legend_y - 10.0,
            COLORS[i % COLORS.len()],
            x + 16.0,
            peer.name()
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// kmirror's rates against each peer's, cell by cell, for the notes.
pub(super) fn ratios(rows: &[(Cell, u64, Vec<PeerRow>)]) -> String {
    let mut out = String::new();
    for (cell, b, peers) in rows {
        let Some(k) = peers.iter().find(|p| matches!(p.peer, Peer::Kmirror(_))) else {
            continue;
        };
        for p in peers.iter().filter(|p| p.peer != k.peer) {
            let _ = writeln!(
                out,
                "{}: {} vs {}: throughput x{:.2}, CPU per GB x{:.2}, peak RSS x{:.2}",
                cell.name(),
                k.peer.name(),
                p.peer.name(),
                k.rate(*b) / p.rate(*b).max(1e-9),
                k.cpu_per_gb(*b) / p.cpu_per_gb(*b).max(1e-9),
                k.peak_rss_kib as f64 / (p.peak_rss_kib as f64).max(1.0)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(peer: Peer, wall: f64, cpu: f64) -> PeerRow {
        PeerRow {
            peer,
            settings: String::new(),
            wall_secs: wall,
            cpu_secs: cpu,
            peak_rss_kib: 1024,
            source_cpu_secs: 1.0,
            destination_cpu_secs: 2.0,
            arrived: true,
            order: "yes".into(),
        }
    }

    #[test]
    fn the_table_and_chart_show_every_mirror_of_every_cell() {
        let cell = Cell {
            codec: "lz4".into(),
            size: 1024,
            partitions: 8,
            records: 1000,
        };
        let rows = vec![(
            cell,
            2_000_000_000,
            vec![
                row(Peer::Kmirror(Build::Glibc), 10.0, 4.0),
                row(Peer::Mm2, 40.0, 80.0),
            ],
        )];
        let table = markdown_table(&rows);
        assert!(table.contains("| lz4 1024B p8 | kmirror (glibc) | 10.00 | 200.0 | 2.0 | 1 |"));
        assert!(table.contains("| lz4 1024B p8 | MirrorMaker 2 | 40.00 | 50.0 | 40.0 | 1 |"));
        let svg = svg_chart(&rows);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 4, "two bars in two panels");
        let ratios = ratios(&rows);
        assert_eq!(
            ratios.trim(),
            "lz4 1024B p8: kmirror (glibc) vs MirrorMaker 2: throughput x4.00, CPU per GB x0.05, peak RSS x1.00"
        );
    }
}
