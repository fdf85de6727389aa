//! What the failover tests share: the mirror's files, running the
//! failover commands, and the check that a group read every record
//! exactly once across the move.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kmirror_test_support::{GroupRecord, librdkafka_consume_all, values_by_partition};

use super::{Scratch, kmirror_binary, tail};

/// The mirror's two files: its own group on the source, the destination
/// through the proxy.
pub fn scratch(source: &str, proxy: &str, mirror_group: &str) -> Scratch {
    Scratch::new(
        &format!("bootstrap.servers={source}\ngroup.id={mirror_group}\n"),
        &format!("bootstrap.servers={proxy}\n"),
    )
}

/// Runs `kmirror` with `args` in the scratch directory and waits for it.
pub fn kmirror(scratch: &Scratch, args: &[&str]) -> Output {
    Command::new(kmirror_binary())
        .args(args)
        .current_dir(scratch.dir())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        tail(&String::from_utf8_lossy(&out.stderr), 6000)
    )
}

pub const FILES: [&str; 4] = [
    "--consumer.config",
    "consumer.properties",
    "--producer.config",
    "producer.properties",
];

/// `kmirror` followed by a failover command, its group and the files.
pub fn failover_command(scratch: &Scratch, command: &[&str], group: &str) -> Output {
    let mut args: Vec<&str> = command.to_vec();
    args.extend(["--group", group]);
    args.extend(FILES);
    kmirror(scratch, &args)
}

/// Mirrors `topic` with `--once` and the extra flags; asserts exit 0.
pub fn mirror_once(scratch: &Scratch, topic: &str, extra: &[&str]) {
    let mut args = vec!["--whitelist", topic, "--once"];
    args.extend(extra);
    let exited = scratch.spawn(&args).wait(Duration::from_secs(120));
    exited.assert_success();
}

/// `kmirror offsets translate --format json`: per partition, the
/// destination offset (`None` where there is no exact translation).
pub fn translate(scratch: &Scratch, group: &str) -> BTreeMap<i32, Option<i64>> {
    let out = failover_command(
        scratch,
        &["offsets", "translate", "--format", "json"],
        group,
    );
    let mut offsets = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}\n{}", text(&out)));
        offsets.insert(
            v["partition"].as_i64().unwrap() as i32,
            v["destination_offset"].as_i64(),
        );
    }
    assert!(
        !offsets.is_empty(),
        "no translation printed:\n{}",
        text(&out)
    );
    offsets
}

/// Asserts that what the group read on the source (`before`) and then on
/// the destination (`after`) is, per partition, exactly the source's
/// records in order.
pub fn assert_read_exactly_once(
    source: &str,
    topic: &str,
    before: &[GroupRecord],
    after: &[GroupRecord],
) {
    let all = librdkafka_consume_all(source, topic);
    let before = values_by_partition(before);
    let after = values_by_partition(after);
    let mut total_before = 0;
    for (partition, records) in &all {
        let expected: Vec<Option<Vec<u8>>> = records.iter().map(|r| r.value.clone()).collect();
        let mut read = before.get(partition).cloned().unwrap_or_default();
        total_before += read.len();
        read.extend(after.get(partition).cloned().unwrap_or_default());
        if read != expected {
            let first = read
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(read.len().min(expected.len()));
            panic!(
                "partition {partition}: the group read {} records ({} on the source, {} on the \
                 destination), the source holds {}; first difference at record {first}",
                read.len(),
                before.get(partition).map_or(0, Vec::len),
                after.get(partition).map_or(0, Vec::len),
                expected.len()
            );
        }
    }
    assert!(total_before > 0, "the group read nothing on the source");
}
