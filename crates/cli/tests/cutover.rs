//! Failing consumers over, end to end on Apache Kafka: a librdkafka
//! consumer group reads part of a topic on the source and commits; kmirror
//! copies the topic (keeping its offset map); `kmirror cutover` moves the
//! group; the same group, pointed at the destination, reads the rest.
//! Every test checks that the records read before and after are, per
//! partition, exactly the source's records in order: none lost, none read
//! twice.
//!
//! The destination sits behind the conformance proxy, so the offset map
//! and checkpoint writes go through Apache Kafka's Produce rules too.
//! Needs Apache Kafka 4.4, MirrorMaker 2's jars and the Python clients
//! (`cargo xtask brokers`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use kmirror_test_support::{
    ClusterOptions, Codec, ConformanceProxy, KafkaCluster, ProduceSpec,
    librdkafka_committed_offsets, librdkafka_create_topic, librdkafka_group_read,
    librdkafka_produce, start_cluster_behind_proxy,
};

mod common;

use common::cutover::{
    assert_read_exactly_once, failover_command, mirror_once, scratch, text, translate,
};

fn shared_source() -> &'static KafkaCluster {
    KafkaCluster::shared("cutover-source", ClusterOptions::kraft)
}

fn shared_destination() -> &'static (KafkaCluster, ConformanceProxy) {
    static DESTINATION: OnceLock<(KafkaCluster, ConformanceProxy)> = OnceLock::new();
    DESTINATION.get_or_init(|| {
        start_cluster_behind_proxy(ClusterOptions::kraft().name("cutover-destination"))
    })
}

/// The basic move: 4 partitions, passthrough (lz4 batches kept as they
/// are), the group stopped part way.
#[test]
fn a_group_moves_and_reads_exactly_the_next_record() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = "cut-plain";
    librdkafka_create_topic(&source, topic, 4, &[]);
    let spec = ProduceSpec::default()
        .count(2_000)
        .keys(40)
        .codec(Codec::Lz4);
    librdkafka_produce(&source, topic, &spec);
    let group = "cut-plain-app";
    let before = librdkafka_group_read(&source, group, topic, Some(700));
    let s = scratch(&source, &proxy.addr(), "cut-plain-mirror");
    mirror_once(&s, topic, &[]);

    let translated = translate(&s, group);
    let out = failover_command(&s, &["cutover"], group);
    assert!(out.status.success(), "cutover failed:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The partitions the group committed on the source; the others it
    // starts per auto.offset.reset on both clusters.
    let on_source = librdkafka_committed_offsets(&source, group, topic)
        .values()
        .filter(|o| o.is_some())
        .count();
    assert_eq!(translated.len(), on_source, "{}", text(&out));
    assert!(
        stdout.contains(&format!("committed {on_source} partition(s)")),
        "{}",
        text(&out)
    );
    let committed = librdkafka_committed_offsets(&destination, group, topic);
    for (p, offset) in &translated {
        assert_eq!(
            committed.get(p).copied().flatten(),
            *offset,
            "partition {p}"
        );
    }
    let after = librdkafka_group_read(&destination, group, topic, None);
    assert_read_exactly_once(&source, topic, &before, &after);
    proxy.assert_no_violations();
}

/// The JSON line `kmirror offsets translate` printed for partition 0.
fn translation_of_partition_0(s: &common::Scratch, group: &str) -> serde_json::Value {
    let out = failover_command(s, &["offsets", "translate", "--format", "json"], group);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["partition"] == 0)
        .unwrap_or_else(|| panic!("no translation of partition 0:\n{}", text(&out)))
}

/// kill -9 after the destination acknowledged records and before kmirror
/// committed them: the restarted kmirror copies them again, so the
/// destination holds that stretch twice. A group whose position is in the
/// stretch (or after it) moves to the new copy and reads every record
/// once; a group whose position is before it would read the stretch twice
/// from any position, and the translation says exactly how many records.
#[test]
fn a_kill_between_produce_and_commit_leaves_translation_exact() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = "cut-crash";
    librdkafka_create_topic(&source, topic, 1, &[]);
    librdkafka_produce(
        &source,
        topic,
        &ProduceSpec::default().count(1_000).keys(20),
    );
    let s = scratch(&source, &proxy.addr(), "cut-crash-mirror");
    // Copied and committed (the map written first).
    mirror_once(&s, topic, &[]);
    librdkafka_produce(
        &source,
        topic,
        &ProduceSpec::default().count(1_000).keys(20),
    );
    // Copied, acknowledged, not committed (the first commit would come
    // after a minute): killed.
    let mirror = s.spawn(&["--whitelist", topic, "--offset.commit.interval.ms", "60000"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while common::record_count(&destination, topic) < 2_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "kmirror did not copy the second 1,000 records:\n{}",
            common::tail(&mirror.stderr_now(), 4000)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    mirror.signal("-KILL");
    drop(mirror);
    assert_eq!(
        librdkafka_committed_offsets(&source, "cut-crash-mirror", topic)
            .get(&0)
            .copied()
            .flatten(),
        Some(1_000),
        "kmirror committed after the first run only"
    );
    // Restarted from its commit: source records 1000..2000 are written again.
    mirror_once(&s, topic, &[]);
    assert_eq!(common::record_count(&destination, topic), 3_000);

    let before = librdkafka_group_read(&source, "cut-crash-before", topic, Some(500));
    let inside = librdkafka_group_read(&source, "cut-crash-inside", topic, Some(1_500));
    let end = librdkafka_group_read(&source, "cut-crash-end", topic, None);

    // In the stretch written twice: the new copy, exact.
    let t = translation_of_partition_0(&s, "cut-crash-inside");
    assert_eq!(
        (t["destination_offset"].as_i64(), t["exact"].as_bool()),
        (Some(2_500), Some(true)),
        "{t}"
    );
    // Before it: the old copy, and the stretch's 1,000 records ahead of it
    // twice, as the translation says.
    let t = translation_of_partition_0(&s, "cut-crash-before");
    assert_eq!(t["destination_offset"].as_i64(), Some(500), "{t}");
    assert_eq!(
        (t["exact"].as_bool(), t["repeated"].as_i64()),
        (Some(false), Some(1_000)),
        "{t}"
    );
    // At the end: after the last copy.
    let t = translation_of_partition_0(&s, "cut-crash-end");
    assert_eq!(
        (t["destination_offset"].as_i64(), t["exact"].as_bool()),
        (Some(3_000), Some(true)),
        "{t}"
    );

    for group in ["cut-crash-inside", "cut-crash-before", "cut-crash-end"] {
        let out = failover_command(&s, &["cutover"], group);
        assert!(out.status.success(), "cutover of {group}:\n{}", text(&out));
    }
    // Again: already there, nothing moves.
    let out = failover_command(&s, &["cutover"], "cut-crash-before");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("committed 0 partition(s)"),
        "{}",
        text(&out)
    );
    // Later records reach the groups on the destination once.
    librdkafka_produce(&source, topic, &ProduceSpec::default().count(100).keys(20));
    mirror_once(&s, topic, &[]);
    let after_inside = librdkafka_group_read(&destination, "cut-crash-inside", topic, None);
    assert_read_exactly_once(&source, topic, &inside, &after_inside);
    let after_end = librdkafka_group_read(&destination, "cut-crash-end", topic, None);
    assert_read_exactly_once(&source, topic, &end, &after_end);
    let after_before = librdkafka_group_read(&destination, "cut-crash-before", topic, None);
    assert_eq!(
        before.len() + after_before.len(),
        2_100 + 1_000,
        "the group before the stretch reads every record, the stretch twice"
    );
    proxy.assert_no_violations();
}

/// A librdkafka member of `group` that stays in the group (polling,
/// committing nothing) until dropped.
struct ActiveMember {
    child: std::process::Child,
}

impl ActiveMember {
    fn join(bootstrap: &str, group: &str, topic: &str) -> Self {
        const MEMBER: &str = r#"
import sys
from confluent_kafka import Consumer
bootstrap, group, topic = sys.argv[1], sys.argv[2], sys.argv[3]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
              "auto.offset.reset": "latest", "session.timeout.ms": 10000})
c.subscribe([topic])
joined = False
while True:
    c.poll(0.2)
    if not joined and c.assignment():
        joined = True
        print("joined", flush=True)
"#;
        let mut child = std::process::Command::new(kmirror_test_support::venv_python())
            .args(["-c", MEMBER, bootstrap, group, topic])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "joined", "the member did not join {group}");
        Self { child }
    }
}

impl Drop for ActiveMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kmirror offsets sync`: translations go to the destination groups and
/// to MirrorMaker 2's checkpoints, which `RemoteClusterUtils` (the real
/// connect-mirror-client jar) reads back with the same offsets as
/// `kmirror offsets translate`; a destination group that is further along
/// is never moved back, and one with active members is never touched.
#[test]
fn offsets_sync_feeds_mirrormaker_2_tools_and_never_rewinds_or_touches_active_groups() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = "cut-sync";
    librdkafka_create_topic(&source, topic, 3, &[]);
    librdkafka_produce(
        &source,
        topic,
        &ProduceSpec::default()
            .count(1_500)
            .keys(30)
            .codec(Codec::Zstd),
    );
    let app = "cut-sync-app";
    let busy = "cut-sync-busy";
    librdkafka_group_read(&source, app, topic, Some(600));
    librdkafka_group_read(&source, busy, topic, Some(300));
    let s = scratch(&source, &proxy.addr(), "cut-sync-mirror");
    mirror_once(&s, topic, &[]);

    // The busy group already reads the destination (from its end).
    let member = ActiveMember::join(&destination, busy, topic);
    let out = failover_command(&s, &["offsets", "sync"], "cut-sync-.*");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("group cut-sync-app:"), "{}", text(&out));
    assert!(
        stdout.contains("active member(s) on the destination"),
        "{}",
        text(&out)
    );
    let busy_offsets = librdkafka_committed_offsets(&destination, busy, topic);
    assert!(
        busy_offsets.values().all(Option::is_none),
        "an active group was touched: {busy_offsets:?}"
    );
    drop(member);

    // The same translations, from kmirror and from MirrorMaker 2's client.
    let translated = translate(&s, app);
    let java =
        kmirror_test_support::mm2::remote_cluster_utils_translate(&destination, "source", app);
    let java: BTreeMap<i32, Option<i64>> = java
        .into_iter()
        .filter(|((t, _), _)| t == topic)
        .map(|((_, p), o)| (p, Some(o)))
        .collect();
    assert_eq!(
        java, translated,
        "RemoteClusterUtils.translateOffsets vs kmirror offsets translate"
    );
    let committed = librdkafka_committed_offsets(&destination, app, topic);
    for (p, o) in &translated {
        assert_eq!(committed.get(p).copied().flatten(), *o, "partition {p}");
    }

    // The app reads on from there on the destination (and commits); a
    // second sync leaves it where it is.
    let more = librdkafka_group_read(&destination, app, topic, Some(200));
    assert_eq!(more.len(), 200);
    let moved = librdkafka_committed_offsets(&destination, app, topic);
    let out = failover_command(&s, &["offsets", "sync"], app);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        librdkafka_committed_offsets(&destination, app, topic),
        moved,
        "a destination group was moved back:\n{}",
        text(&out)
    );
    proxy.assert_no_violations();
}

/// `--sync.group.offsets` while mirroring: a group that commits on the
/// source finds its translated offsets on the destination at the next
/// interval, without any command.
#[test]
fn groups_are_synced_while_mirroring() {
    let source = shared_source().bootstrap();
    let (destination, proxy) = shared_destination();
    let destination = destination.bootstrap();
    let topic = "cut-live";
    librdkafka_create_topic(&source, topic, 2, &[]);
    librdkafka_produce(
        &source,
        topic,
        &ProduceSpec::default().count(1_000).keys(10),
    );
    let s = scratch(&source, &proxy.addr(), "cut-live-mirror");
    let mirror = s.spawn(&[
        "--whitelist",
        topic,
        "--offset.commit.interval.ms",
        "500",
        "--sync.group.offsets",
        "cut-live-app",
        "--sync.group.offsets.interval.ms",
        "1000",
    ]);
    let before = librdkafka_group_read(&source, "cut-live-app", topic, Some(400));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let source_committed = librdkafka_committed_offsets(&source, "cut-live-app", topic);
    loop {
        // The coordinator may still be loading the group (NOT_COORDINATOR).
        let committed = std::panic::catch_unwind(|| {
            librdkafka_committed_offsets(&destination, "cut-live-app", topic)
        })
        .unwrap_or_default();
        // Same partition counts, one writer: the translation is the same
        // offset here; what matters is that it arrived by itself.
        if committed == source_committed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the group's offsets did not reach the destination: {committed:?}, source {source_committed:?}\n{}",
            common::tail(&mirror.stderr_now(), 4000)
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let after = librdkafka_group_read(&destination, "cut-live-app", topic, None);
    assert_read_exactly_once(&source, topic, &before, &after);
    mirror.signal("-TERM");
    mirror
        .wait(std::time::Duration::from_secs(60))
        .assert_success();
}
