//! End to end, on Apache Kafka: kmirror's log output. `--log.format json`
//! writes one JSON object per line (time, level, target, message,
//! fields), the final error included; `RUST_LOG` changes what is printed.
//!
//! Needs Apache Kafka and the Python clients (`cargo xtask brokers`).

use std::time::Duration;

use kmirror_test_support::{
    ClusterOptions, KafkaCluster, ProduceSpec, librdkafka_create_topic, librdkafka_produce,
};

mod common;

use common::{Exited, Scratch};

fn clusters() -> (&'static KafkaCluster, &'static KafkaCluster) {
    (
        KafkaCluster::shared("logs-source", ClusterOptions::kraft),
        KafkaCluster::shared("logs-destination", ClusterOptions::kraft),
    )
}

/// A topic with a few records on the source, once per test binary.
fn topic() -> &'static str {
    static TOPIC: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    TOPIC.get_or_init(|| {
        let (source, _) = clusters();
        librdkafka_create_topic(&source.bootstrap(), "logged", 2, &[]);
        librdkafka_produce(
            &source.bootstrap(),
            "logged",
            &ProduceSpec::default().count(100),
        );
    });
    "logged"
}

/// `kmirror --once` on the logged topic with its own group, `env` added
/// and `args` after the files; how it ended.
fn run_once(group: &str, env: &[(&str, &str)], args: &[&str]) -> Exited {
    let (source, destination) = clusters();
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={}\ngroup.id={group}\n",
            source.bootstrap()
        ),
        &format!("bootstrap.servers={}\n", destination.bootstrap()),
    );
    let mut argv = vec!["--whitelist", topic(), "--once"];
    argv.extend_from_slice(args);
    scratch
        .spawn_with_env(env, &argv)
        .wait(Duration::from_secs(120))
}

/// Every stderr line as a JSON object; panics on a line that is not one
/// or lacks a member of the format.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{stderr}"));
            for member in ["time", "level", "target", "message"] {
                assert!(
                    value.get(member).is_some_and(serde_json::Value::is_string),
                    "no string {member:?} in {line}"
                );
            }
            assert!(
                value
                    .get("fields")
                    .is_some_and(serde_json::Value::is_object),
                "no object \"fields\" in {line}"
            );
            value
        })
        .collect()
}

fn levels(lines: &[serde_json::Value]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|l| l.get("level").and_then(serde_json::Value::as_str))
        .collect()
}

#[test]
fn json_logs_parse_line_by_line() {
    let exited = run_once("json-logs", &[], &["--log.format", "json"]);
    exited.assert_success();
    let lines = json_lines(&exited.stderr);
    assert!(lines.len() >= 3, "{}", exited.stderr);
    assert!(levels(&lines).iter().all(|l| *l != "DEBUG"));
    // Structured fields are kept as members, typed.
    let stream_field = lines.iter().find_map(|l| l.pointer("/fields/stream"));
    assert!(
        stream_field.is_some_and(serde_json::Value::is_u64),
        "no numeric \"stream\" field in:\n{}",
        exited.stderr
    );
    // The time is RFC 3339 in UTC.
    let time = lines[0]["time"].as_str().unwrap_or_default();
    assert!(
        time.len() >= 20 && time.as_bytes()[4] == b'-' && time.ends_with('Z'),
        "{time}"
    );
    // The summary stays a plain line on stdout.
    assert!(
        exited.stdout.starts_with("kmirror: mirrored "),
        "{}",
        exited.stdout
    );
}

#[test]
fn the_final_error_is_a_json_line_too() {
    let scratch = Scratch::new(
        "bootstrap.servers=127.0.0.1:1\ngroup.id=g\n",
        "bootstrap.servers=127.0.0.1:1\n",
    );
    let exited = scratch
        .spawn(&["--whitelist", "t", "--log.format", "json"])
        .wait(Duration::from_secs(120));
    assert_eq!(exited.code, Some(4), "{}", exited.context());
    let lines = json_lines(&exited.stderr);
    let last = lines.last().expect("a line");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert_eq!(last["fields"]["exit_code"], 4, "{last}");
}

#[test]
fn rust_log_changes_what_is_printed() {
    // The default: INFO and above, no DEBUG.
    let default = json_lines(&run_once("filter-default", &[], &["--log.format", "json"]).stderr);
    assert!(levels(&default).contains(&"INFO"));
    assert!(!levels(&default).contains(&"DEBUG"));

    // A bare level for everything.
    let exited = run_once(
        "filter-warn",
        &[("RUST_LOG", "warn")],
        &["--log.format", "json"],
    );
    exited.assert_success();
    let quiet = json_lines(&exited.stderr);
    assert!(
        levels(&quiet).iter().all(|l| *l == "WARN" || *l == "ERROR"),
        "{}",
        exited.stderr
    );

    // DEBUG for the connection pool only.
    let exited = run_once(
        "filter-pool",
        &[("RUST_LOG", "kmirror=info,kmirror_pool=debug")],
        &["--log.format", "json"],
    );
    exited.assert_success();
    let lines = json_lines(&exited.stderr);
    let debug: Vec<&serde_json::Value> = lines.iter().filter(|l| l["level"] == "DEBUG").collect();
    assert!(!debug.is_empty(), "no DEBUG line:\n{}", exited.stderr);
    for line in debug {
        let target = line["target"].as_str().unwrap_or_default();
        assert!(target.starts_with("kmirror_pool"), "{line}");
    }
    assert!(levels(&lines).contains(&"INFO"));

    // -v is DEBUG everywhere, unless RUST_LOG says otherwise.
    let verbose =
        json_lines(&run_once("filter-verbose", &[], &["--log.format", "json", "-v"]).stderr);
    assert!(levels(&verbose).contains(&"DEBUG"));
    let overridden = run_once(
        "filter-override",
        &[("RUST_LOG", "error")],
        &["--log.format", "json", "-v"],
    );
    assert!(
        json_lines(&overridden.stderr).is_empty(),
        "{}",
        overridden.stderr
    );
}

#[test]
fn a_bad_rust_log_is_a_usage_error() {
    let scratch = Scratch::new("group.id=g\n", "bootstrap.servers=x:1\n");
    let exited = scratch
        .spawn_with_env(&[("RUST_LOG", "kmirror=loud")], &["--whitelist", "t"])
        .wait(Duration::from_secs(30));
    assert_eq!(exited.code, Some(2), "{}", exited.context());
    assert!(
        exited
            .stderr
            .starts_with("kmirror: error: RUST_LOG=\"kmirror=loud\" is not a log filter"),
        "{}",
        exited.stderr
    );
}
