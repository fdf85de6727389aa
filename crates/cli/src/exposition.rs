//! `/metrics`: the engine's [`Observation`] and the process's figures in
//! Prometheus' text exposition format (version 0.0.4).
//!
//! Written by hand rather than with `prometheus-client`: that crate writes
//! OpenMetrics text, whose counters (`# TYPE x counter` over `x_total`
//! samples) the classic text parser of `promtool check metrics` and of
//! older scrapers reads as untyped series without help. The classic
//! format is read by every Prometheus version and by OpenMetrics parsers
//! alike. Names follow Prometheus' conventions: a `kmirror_` prefix, base
//! units in the name (`_seconds`, `_bytes`), `_total` on counters.
//! docs/metrics.md describes every series; a test keeps the two in step.

use std::fmt::Write as _;

use kmirror::engine::metrics::{HistogramSnapshot, Observation};

use crate::process::ProcessFigures;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What goes into one exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpositionOptions {
    /// Whether per-partition series are written (`--metrics.partitions`).
    pub partitions: bool,
}

/// The whole exposition: build info, the engine's series (if it runs
/// yet), the process's.
pub fn render(
    observation: Option<&Observation>,
    process: &ProcessFigures,
    options: ExpositionOptions,
) -> String {
    let mut e = Exposition::default();
    e.family(
        "kmirror_build_info",
        Kind::Gauge,
        "kmirror's version and build: always 1.",
    );
    e.sample(
        "kmirror_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("target", &target()),
            (
                "profile",
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
            ),
        ],
        1.0,
    );
    if let Some(o) = observation {
        engine(&mut e, o, options);
    }
    process_series(&mut e, process);
    e.out
}

/// The platform kmirror was built for, e.g. `x86_64-linux-musl`.
fn target() -> String {
    let libc = if cfg!(target_env = "musl") {
        "-musl"
    } else if cfg!(target_env = "gnu") {
        "-gnu"
    } else {
        ""
    };
    format!("{}-{}{libc}", std::env::consts::ARCH, std::env::consts::OS)
}

fn engine(e: &mut Exposition, o: &Observation, options: ExpositionOptions) {
    let t = &o.totals;
    for (name, help, pick) in [
        (
            "kmirror_records_total",
            "Records acknowledged by the destination, by source topic and path (passthrough, \
             slow_path); for path=skipped, source offsets not mirrored (control records, aborted \
             transactions, empty batches, compaction gaps).",
            0,
        ),
        (
            "kmirror_bytes_total",
            "Record batch bytes acknowledged by the destination, by source topic and path; for \
             path=skipped, bytes of fetched batches not mirrored.",
            1,
        ),
        (
            "kmirror_batches_total",
            "Record batches acknowledged by the destination, by source topic and path; for \
             path=skipped, fetched batches not mirrored.",
            2,
        ),
    ] {
        e.family(name, Kind::Counter, help);
        for (topic, path, counts) in &o.topics {
            let value = match pick {
                0 => counts.records,
                1 => counts.bytes,
                _ => counts.batches,
            };
            e.sample(
                name,
                &[("topic", topic), ("path", path.label())],
                value as f64,
            );
        }
    }
    e.counter(
        "kmirror_fetched_bytes_total",
        "Record bytes received from the source in Fetch responses.",
        t.fetched_bytes,
    );
    e.counter(
        "kmirror_produce_requests_total",
        "Produce requests sent to the destination.",
        t.produce_requests,
    );
    e.counter(
        "kmirror_produce_retries_total",
        "Batch sends retried after a retriable error or a failed request.",
        t.retried_batches,
    );
    e.family(
        "kmirror_produce_errors_total",
        Kind::Counter,
        "Produce errors: error is Apache Kafka's error name for a partition error \
         (NOT_ENOUGH_REPLICAS, NOT_LEADER_OR_FOLLOWER, ...), or connection, request_timeout, \
         other for a request without an answer.",
    );
    for (error, n) in &o.produce_errors {
        e.sample(
            "kmirror_produce_errors_total",
            &[("error", error)],
            *n as f64,
        );
    }
    e.counter(
        "kmirror_batches_failed_total",
        "Batches the destination refused for good, or out of retries.",
        t.failed_batches,
    );
    e.counter(
        "kmirror_records_written_off_total",
        "Records skipped after a refusal with --abort.on.send.failure false.",
        t.written_off_records,
    );
    e.counter(
        "kmirror_offset_commits_total",
        "Successful OffsetCommit requests to the source group.",
        t.commits,
    );
    e.counter(
        "kmirror_producer_epoch_bumps_total",
        "Producer epoch bumps (the destination lost the idempotent producer's sequence).",
        t.epoch_bumps,
    );
    e.counter(
        "kmirror_offset_resets_total",
        "Source partition positions reset per auto.offset.reset (out of range).",
        t.offset_resets,
    );
    e.counter(
        "kmirror_truncations_total",
        "Source partitions found truncated below kmirror's position (unclean leader \
         election, KIP-320).",
        t.truncations,
    );
    e.family(
        "kmirror_throttled_seconds_total",
        Kind::Counter,
        "Time brokers asked kmirror to hold its requests for (quotas, KIP-219), by cluster.",
    );
    e.sample(
        "kmirror_throttled_seconds_total",
        &[("cluster", "source")],
        t.fetch_throttled.as_secs_f64(),
    );
    e.sample(
        "kmirror_throttled_seconds_total",
        &[("cluster", "destination")],
        t.produce_throttled.as_secs_f64(),
    );
    e.histogram(
        "kmirror_replication_latency_seconds",
        "Time from a batch's source timestamp (append time, or its first record's create \
         time) to its acknowledgement by the destination, one observation per batch.",
        &o.replication_latency,
    );
    e.gauge(
        "kmirror_lag_records",
        "Offsets between each partition's acknowledged offset and the source's end, summed.",
        t.lag as f64,
    );
    e.gauge(
        "kmirror_lag_seconds",
        "Age of the oldest record not yet acknowledged by the destination, over all \
         partitions (0 when caught up).",
        o.max_lag_seconds,
    );
    if o.partitions.iter().any(|p| p.progress.target.is_some()) {
        e.gauge(
            "kmirror_once_remaining_records",
            "With --once: offsets still to acknowledge before the end offsets seen at start.",
            t.remaining as f64,
        );
    }
    e.gauge(
        "kmirror_assigned_partitions",
        "Source partitions assigned to kmirror.",
        o.assigned_partitions as f64,
    );
    if let Some(generation) = o.group_generation {
        e.gauge(
            "kmirror_group_generation",
            "The generation of kmirror's consumer group on the source.",
            f64::from(generation),
        );
    }
    e.gauge(
        "kmirror_stalled_partitions",
        "Partitions with records to move and nothing acknowledged for longer than \
         --ready.stall.ms.",
        o.stalled_partitions as f64,
    );
    if let Some((used, limit)) = o.buffer {
        e.gauge(
            "kmirror_buffer_used_bytes",
            "Bytes of buffer.memory in use: fetched data not yet acknowledged, and the room \
             reserved for the fetches in flight.",
            used as f64,
        );
        e.gauge(
            "kmirror_buffer_limit_bytes",
            "buffer.memory: the most fetched data that may wait for the destination.",
            limit as f64,
        );
    }
    e.family(
        "kmirror_cluster_connected",
        Kind::Gauge,
        "1 if the last exchange with the cluster succeeded (Fetch for the source, Produce for \
         the destination), else 0.",
    );
    for (cluster, up) in [
        ("source", o.readiness.source_connected),
        ("destination", o.readiness.destination_connected),
    ] {
        e.sample(
            "kmirror_cluster_connected",
            &[("cluster", cluster)],
            f64::from(u8::from(up)),
        );
    }
    e.gauge(
        "kmirror_ready",
        "1 if /ready answers 200: both clusters connected, partitions assigned, none stalled.",
        f64::from(u8::from(o.readiness.ready)),
    );
    e.gauge(
        "kmirror_healthy",
        "1 if /health answers 200: every stream's loop ran recently.",
        f64::from(u8::from(o.health.healthy)),
    );
    if options.partitions {
        partition_series(e, o);
    }
}

/// The per-partition series (`--metrics.partitions true`).
fn partition_series(e: &mut Exposition, o: &Observation) {
    type Pick = fn(&kmirror::engine::metrics::PartitionObservation) -> Option<f64>;
    let series: [(&str, &str, Pick); 5] = [
        (
            "kmirror_partition_lag_records",
            "Offsets between the partition's acknowledged offset and the source's end.",
            |p| Some(p.lag_records as f64),
        ),
        (
            "kmirror_partition_lag_seconds",
            "Age of the partition's oldest record not yet acknowledged by the destination \
             (0 when caught up).",
            |p| Some(p.lag_seconds),
        ),
        (
            "kmirror_partition_acknowledged_offset",
            "The offset below which the destination acknowledged every record: what the next \
             commit commits.",
            |p| Some(p.progress.acknowledged as f64),
        ),
        (
            "kmirror_partition_committed_offset",
            "The offset last committed to the source group (absent before the first commit).",
            |p| p.progress.committed.map(|c| c as f64),
        ),
        (
            "kmirror_partition_high_water_mark",
            "The source partition's high-water mark last seen (its last stable offset under \
             isolation.level=read_committed).",
            |p| Some(p.progress.end as f64),
        ),
    ];
    for (name, help, pick) in series {
        e.family(name, Kind::Gauge, help);
        for p in &o.partitions {
            if let Some(value) = pick(p) {
                let partition = p.partition.to_string();
                e.sample(
                    name,
                    &[("topic", &p.topic), ("partition", &partition)],
                    value,
                );
            }
        }
    }
}

fn process_series(e: &mut Exposition, p: &ProcessFigures) {
    if let Some(v) = p.cpu_seconds {
        e.family(
            "process_cpu_seconds_total",
            Kind::Counter,
            "User and system CPU time spent, in seconds.",
        );
        e.sample("process_cpu_seconds_total", &[], v);
    }
    let gauges = [
        (
            "process_resident_memory_bytes",
            "Resident memory size, in bytes.",
            p.resident_bytes.map(|v| v as f64),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size, in bytes.",
            p.virtual_bytes.map(|v| v as f64),
        ),
        (
            "process_threads",
            "Threads of the process.",
            p.threads.map(|v| v as f64),
        ),
        (
            "process_open_fds",
            "Open file descriptors, sockets included.",
            p.open_fds.map(|v| v as f64),
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            p.start_time_seconds,
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(v) = value {
            e.gauge(name, help, v);
        }
    }
}

/// A metric family's type.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The text being written.
#[derive(Debug, Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let escaped = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{label}=\"{escaped}\"");
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&number(value));
        self.out.push('\n');
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, Kind::Counter, help);
        self.sample(name, &[], value as f64);
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, Kind::Gauge, help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.family(name, Kind::Histogram, help);
        let bucket = format!("{name}_bucket");
        for (bound, count) in h.bounds.iter().zip(&h.cumulative) {
            self.sample(&bucket, &[("le", &number(*bound))], *count as f64);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count as f64);
        self.sample(&format!("{name}_sum"), &[], h.sum.as_secs_f64());
        self.sample(&format!("{name}_count"), &[], h.count as f64);
    }
}

/// A sample value as Prometheus writes it: integers without a fraction,
/// `+Inf`, `-Inf`, `NaN`.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmirror::engine::metrics::{Judgement, Metrics};

    #[test]
    fn numbers_are_written_as_prometheus_reads_them() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut e = Exposition::default();
        e.sample("m", &[("topic", "a\"b\\c")], 1.0);
        assert_eq!(e.out, "m{topic=\"a\\\"b\\\\c\"} 1\n");
    }

    #[test]
    fn per_partition_series_can_be_left_out() {
        let metrics = Metrics::default();
        let observation = metrics.observe(Judgement::default());
        let with = render(
            Some(&observation),
            &ProcessFigures::default(),
            ExpositionOptions { partitions: true },
        );
        assert!(with.contains("# TYPE kmirror_partition_lag_records gauge"));
        let without = render(
            Some(&observation),
            &ProcessFigures::default(),
            ExpositionOptions { partitions: false },
        );
        assert!(!without.contains("kmirror_partition_"), "{without}");
        assert!(without.contains("kmirror_lag_records 0"), "{without}");
        assert!(without.contains("kmirror_build_info{version="), "{without}");
    }

    /// docs/metrics.md names every series the exposition can write.
    #[test]
    fn every_series_is_documented() {
        let doc = include_str!("../../../docs/metrics.md");
        let metrics = Metrics::default();
        metrics.set_group_generation(1);
        let text = render(
            Some(&metrics.observe(Judgement::default())),
            &ProcessFigures::read(),
            ExpositionOptions { partitions: true },
        );
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split_whitespace().nth(2).unwrap_or_default();
            assert!(
                doc.contains(&format!("`{name}`")),
                "{name} is not in docs/metrics.md"
            );
        }
    }
}
