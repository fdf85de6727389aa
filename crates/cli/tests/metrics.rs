//! End to end, on Apache Kafka: `--metrics.listen`. `/metrics` is scraped
//! while kmirror mirrors and checked against what the test produced; the
//! exposition passes `promtool check metrics`, a real Prometheus server
//! scrapes it, and docs/alerts.yml passes `promtool check rules`.
//! `/ready` turns 503 while the destination is stopped and 200 again after
//! it returns, `/health` staying 200 throughout.
//!
//! Needs Apache Kafka and the Python clients (`cargo xtask brokers`) and
//! Prometheus' `prometheus` and `promtool` (Debian's `prometheus` package:
//! `apt-get install prometheus`; `.ci/run` installs it).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kmirror_test_support::{
    ClusterOptions, KafkaCluster, ProduceSpec, free_port, librdkafka_create_topic,
    librdkafka_produce,
};

mod common;

use common::{Mirror, Scratch, http_get, sample, sum_of, tail, wait_caught_up};

fn shared_source() -> &'static KafkaCluster {
    KafkaCluster::shared("metrics-source", ClusterOptions::kraft)
}

fn shared_destination() -> &'static KafkaCluster {
    KafkaCluster::shared("metrics-destination", ClusterOptions::kraft)
}

/// Runs `program args` with `stdin`; its status and output.
fn run(program: &str, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program} ({e}): install Prometheus (Debian: apt-get install \
                 prometheus)"
            )
        });
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Scrapes `/metrics` until `done` holds for the exposition; returns it.
fn scrape_until(
    addr: &str,
    mirror: &mut Mirror,
    timeout: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        mirror.assert_running(what);
        if let Some((200, body)) = http_get(addr, "/metrics") {
            if done(&body) {
                return body;
            }
            last = body;
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: not seen within {timeout:?}; last exposition:\n{last}\nkmirror's stderr:\n{}",
            tail(&mirror.stderr_now(), 4000)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Asks `path` until its status is `status`; returns the body. Every
/// `/health` asked meanwhile must be 200.
fn wait_status(
    addr: &str,
    path: &str,
    status: u16,
    mirror: &mut Mirror,
    timeout: Duration,
) -> String {
    let start = Instant::now();
    loop {
        mirror.assert_running(&format!("waiting for {path} to answer {status}"));
        let health = http_get(addr, "/health");
        assert!(
            matches!(health, Some((200, _))),
            "/health answered {health:?} while waiting for {path} {status}"
        );
        let last = match http_get(addr, path) {
            Some((s, body)) if s == status => return body,
            other => other,
        };
        assert!(
            start.elapsed() < timeout,
            "{path} did not answer {status} within {timeout:?}; last: {last:?}; kmirror's \
             stderr:\n{}",
            tail(&mirror.stderr_now(), 4000)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until kmirror's endpoint answers (it listens once its settings
/// are read).
fn wait_listening(addr: &str, mirror: &mut Mirror) {
    let start = Instant::now();
    while http_get(addr, "/health").is_none() {
        mirror.assert_running("waiting for the metrics endpoint");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing listens on {addr}; kmirror's stderr:\n{}",
            mirror.stderr_now()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The example alert rules are valid Prometheus rules.
#[test]
fn the_example_alert_rules_pass_promtool() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/alerts.yml");
    let (ok, out) = run("promtool", &["check", "rules", rules], "");
    assert!(ok, "promtool check rules {rules}:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The counters match what was produced, the lag reaches 0, the
/// exposition is valid for promtool, and Prometheus scrapes it.
#[test]
fn metrics_count_what_was_mirrored_and_prometheus_scrapes_them() {
    const TOPIC: &str = "metered";
    const RECORDS: u64 = 1_500;
    let (source, destination) = (shared_source(), shared_destination());
    librdkafka_create_topic(&source.bootstrap(), TOPIC, 3, &[]);
    librdkafka_produce(
        &source.bootstrap(),
        TOPIC,
        &ProduceSpec::default().count(RECORDS).keys(30),
    );
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id=metered-group\n",
            source.bootstrap()
        ),
        &format!("bootstrap.servers={}\n", destination.bootstrap()),
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let mut mirror = scratch.spawn(&[
        "--whitelist",
        TOPIC,
        "--metrics.listen",
        &addr,
        "--offset.commit.interval.ms",
        "500",
    ]);
    let passthrough = format!("kmirror_records_total{{topic=\"{TOPIC}\",path=\"passthrough\"}}");
    let text = scrape_until(
        &addr,
        &mut mirror,
        Duration::from_secs(120),
        "every record counted, lag 0, offsets committed",
        |t| {
            sample(t, &passthrough) == Some(RECORDS as f64)
                && sample(t, "kmirror_lag_records") == Some(0.0)
                && sum_of(t, "kmirror_partition_committed_offset", TOPIC) == RECORDS as f64
        },
    );
    // What the test produced, seen from every side.
    let records = RECORDS as f64;
    assert_eq!(
        sum_of(&text, "kmirror_partition_high_water_mark", TOPIC),
        records
    );
    assert_eq!(
        sum_of(&text, "kmirror_partition_acknowledged_offset", TOPIC),
        records
    );
    assert_eq!(sum_of(&text, "kmirror_partition_lag_records", TOPIC), 0.0);
    assert_eq!(sum_of(&text, "kmirror_partition_lag_seconds", TOPIC), 0.0);
    assert_eq!(sample(&text, "kmirror_lag_seconds"), Some(0.0));
    assert_eq!(sample(&text, "kmirror_assigned_partitions"), Some(3.0));
    let batches = sample(
        &text,
        &format!("kmirror_batches_total{{topic=\"{TOPIC}\",path=\"passthrough\"}}"),
    )
    .unwrap_or(0.0);
    assert!(batches >= 3.0, "{batches} batches for 3 partitions");
    assert_eq!(
        sample(
            &text,
            &format!("kmirror_records_total{{topic=\"{TOPIC}\",path=\"slow_path\"}}")
        ),
        Some(0.0)
    );
    // One latency observation per acknowledged batch.
    assert_eq!(
        sample(&text, "kmirror_replication_latency_seconds_count"),
        Some(batches)
    );
    assert!(
        sample(
            &text,
            &format!("kmirror_bytes_total{{topic=\"{TOPIC}\",path=\"passthrough\"}}")
        )
        .is_some_and(|b| b > records * 100.0),
        "bytes below the values' size"
    );
    assert_eq!(sample(&text, "kmirror_ready"), Some(1.0));
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|b| b > 0.0));
    assert!(text.contains("kmirror_build_info{version=\""), "{text}");

    let (ok, out) = run("promtool", &["check", "metrics"], &text);
    assert!(
        ok,
        "promtool check metrics:\n{out}\n--- exposition:\n{text}"
    );

    // A real Prometheus server scrapes it.
    let dir = std::env::temp_dir().join(format!("kmirror-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kmirror\n    \
             static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let mut prometheus = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus (Debian: apt-get install prometheus)");
    let query = format!(
        "/api/v1/query?query={}",
        percent_encode(&format!("sum({passthrough})"))
    );
    let start = Instant::now();
    let answer = loop {
        match http_get(&web, &query) {
            Some((200, body)) if body.contains(&format!("\"{RECORDS}\"")) => break body,
            other => {
                let waited = start.elapsed();
                if waited > Duration::from_secs(60) {
                    let _ = prometheus.kill();
                    panic!(
                        "Prometheus did not return {RECORDS} for {passthrough} within \
                         {waited:?}: {other:?}; its log:\n{}",
                        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let up = http_get(
        &web,
        &format!(
            "/api/v1/query?query={}",
            percent_encode("up{job=\"kmirror\"}")
        ),
    );
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(answer.contains("\"status\":\"success\""), "{answer}");
    assert!(
        up.as_ref().is_some_and(|(_, b)| b.contains("\"1\"]")),
        "up{{job=\"kmirror\"}}: {up:?}"
    );

    mirror.signal("-INT");
    mirror.wait(Duration::from_secs(60)).assert_success();
}

/// `/ready` says no once the destination has been stopped for longer than
/// `--ready.stall.ms`, and yes again once it is back; `/health` says yes
/// all along.
#[test]
fn ready_follows_a_stopped_destination_and_health_stays_up() {
    const TOPIC: &str = "readiness";
    let source = shared_source();
    let mut destination = KafkaCluster::start(ClusterOptions::kraft().name("ready-destination"));
    librdkafka_create_topic(&source.bootstrap(), TOPIC, 2, &[]);
    librdkafka_produce(
        &source.bootstrap(),
        TOPIC,
        &ProduceSpec::default().count(200),
    );
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id=ready-group\n",
            source.bootstrap()
        ),
        &format!(
            "bootstrap.servers={}\nrequest.timeout.ms=5000\ndelivery.timeout.ms=600000\n",
            destination.bootstrap()
        ),
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let mut mirror = scratch.spawn(&[
        "--whitelist",
        TOPIC,
        "--metrics.listen",
        &addr,
        "--ready.stall.ms",
        "3000",
    ]);
    wait_listening(&addr, &mut mirror);
    wait_status(&addr, "/ready", 200, &mut mirror, Duration::from_secs(120));
    wait_caught_up(
        source,
        &destination,
        TOPIC,
        2,
        &mut mirror,
        Duration::from_secs(120),
        "before the stop",
    );

    let id = destination.all_ids()[0];
    destination.stop(id);
    // Something to move while the destination is away.
    librdkafka_produce(
        &source.bootstrap(),
        TOPIC,
        &ProduceSpec::default().count(200),
    );
    let reasons = wait_status(&addr, "/ready", 503, &mut mirror, Duration::from_secs(120));
    assert!(
        reasons.contains("destination") || reasons.contains("stalled"),
        "{reasons}"
    );
    let text = http_get(&addr, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert_eq!(sample(&text, "kmirror_ready"), Some(0.0), "{text}");
    assert!(
        sample(&text, "kmirror_lag_records").is_some_and(|l| l > 0.0),
        "{text}"
    );

    destination.restart(id);
    wait_status(&addr, "/ready", 200, &mut mirror, Duration::from_secs(180));
    wait_caught_up(
        source,
        &destination,
        TOPIC,
        2,
        &mut mirror,
        Duration::from_secs(120),
        "after the destination returned",
    );
    mirror.signal("-INT");
    mirror.wait(Duration::from_secs(60)).assert_success();
}

/// `%XX` for everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}
