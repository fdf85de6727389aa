//! End to end: several `kmirror` processes in one consumer group on Apache
//! Kafka, as MirrorMaker 1 users run them on several head nodes. The
//! source cluster's group coordinator spreads the partitions over the
//! processes and moves them when one comes or goes; kmirror must mirror
//! every partition from exactly one process at a time, lose nothing when
//! a process is killed, hand partitions over without copying more than
//! the uncommitted window again, move only what changes owner with
//! `cooperative-sticky`, rebalance nothing on a rolling restart of static
//! members, share a group with Apache Kafka's own MirrorMaker 1, and do
//! the same with KIP-848's consumer protocol.
//!
//! Membership is read the way operators read it, with Kafka's
//! `kafka-consumer-groups --describe --members --verbose`. Records come
//! from librdkafka (keyed, numbered, at a fixed rate, for the whole test)
//! and are checked at the end record by record: nothing lost, each
//! partition in order, duplicates counted.
//!
//! Needs Apache Kafka 4.x and 3.9 and the Python clients (`cargo xtask
//! brokers`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kmirror_test_support::{
    ClusterOptions, KafkaCluster, KafkaVersion, librdkafka_committed_offsets,
    librdkafka_end_offsets,
};

mod common;

use common::producer::ContinuousProducer;
use common::{Mirror, Scratch, assert_complete_in_order, tail};

const PARTITIONS: i32 = 24;
/// Records per second from the producer.
const RATE: u32 = 300;
const KEYS: u32 = 96;
const VALUE_SIZE: usize = 100;
const MAX_BATCH_RECORDS: u32 = 20;
/// kmirror's commit interval in these tests (`--offset.commit.interval.ms`).
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// The group's session timeout in these tests.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A source and a destination: single KRaft nodes of the newest Apache
/// Kafka, with the coordinator's timeouts short enough for a test (the
/// KIP-848 ones as well: their minimums are 45 s and 5 s by default).
fn clusters(name: &str) -> (KafkaCluster, KafkaCluster) {
    let options = |side: &str| {
        ClusterOptions::kraft()
            .name(&format!("{name}-{side}"))
            .config("group.initial.rebalance.delay.ms", "0")
            .config("group.consumer.session.timeout.ms", "10000")
            .config("group.consumer.min.session.timeout.ms", "10000")
            .config("group.consumer.heartbeat.interval.ms", "1000")
            .config("group.consumer.min.heartbeat.interval.ms", "1000")
    };
    let source = KafkaCluster::start(options("source"));
    let destination = KafkaCluster::start(options("destination"));
    (source, destination)
}

/// The consumer file of one process: the source, the group, the short
/// session timeout, and `extra` lines.
/// [`clusters`], `topic` with [`PARTITIONS`] partitions on the source, and
/// the continuous keyed producer writing into it.
fn start(name: &str, topic: &str) -> (KafkaCluster, KafkaCluster, ContinuousProducer) {
    let (source, destination) = clusters(name);
    source.create_topic(topic, PARTITIONS, 1, &[]);
    let producer = ContinuousProducer::start(
        &source.bootstrap(),
        topic,
        RATE,
        KEYS,
        VALUE_SIZE,
        MAX_BATCH_RECORDS,
    );
    (source, destination, producer)
}

fn consumer_file(source: &KafkaCluster, group: &str, extra: &str) -> String {
    format!(
        "bootstrap.servers={}\ngroup.id={group}\nsession.timeout.ms={}\nheartbeat.interval.ms=1000\n{extra}",
        source.bootstrap(),
        SESSION_TIMEOUT.as_millis()
    )
}

fn producer_file(destination: &KafkaCluster) -> String {
    format!("bootstrap.servers={}\n", destination.bootstrap())
}

/// Starts one kmirror process mirroring `topic`.
fn start_mirror(scratch: &Scratch, topic: &str) -> Mirror {
    scratch.spawn(&[
        "--whitelist",
        topic,
        "--num.streams",
        "1",
        "--offset.commit.interval.ms",
        &COMMIT_INTERVAL.as_millis().to_string(),
    ])
}

/// One member as `kafka-consumer-groups --describe --members --verbose`
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    id: String,
    instance: Option<String>,
    partitions: BTreeSet<i32>,
}

/// The group's members and their partitions of `topic`, as Kafka's tool
/// describes them (none while it cannot: a rebalance, no members).
fn members(source: &KafkaCluster, group: &str, topic: &str) -> Vec<Member> {
    let bootstrap = source.bootstrap();
    let out = source.tool(
        "kafka-consumer-groups",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--describe",
            "--group",
            group,
            "--members",
            "--verbose",
        ],
    );
    let mut lines = out.stdout.lines().skip_while(|l| !l.starts_with("GROUP"));
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split_whitespace().collect();
    let column = |names: &[&str]| columns.iter().position(|c| names.contains(c));
    // 3.x prints `ASSIGNMENT` as `topic(0,1)`; 4.x `CURRENT-ASSIGNMENT` as
    // `topic:0,1`, and GROUP-INSTANCE-ID only when a member has one.
    let (Some(id_at), Some(assignment_at)) = (
        column(&["CONSUMER-ID"]),
        column(&["ASSIGNMENT", "CURRENT-ASSIGNMENT"]),
    ) else {
        panic!("unexpected kafka-consumer-groups output:\n{}", out.stdout);
    };
    let instance_at = column(&["GROUP-INSTANCE-ID"]);
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let assignment = fields.get(assignment_at).copied().unwrap_or("-");
            let list = assignment
                .strip_prefix(&format!("{topic}("))
                .and_then(|rest| rest.strip_suffix(')'))
                .or_else(|| assignment.strip_prefix(&format!("{topic}:")));
            let partitions = list
                .map(|list| list.split(',').filter_map(|p| p.parse().ok()).collect())
                .unwrap_or_default();
            Member {
                id: fields.get(id_at).copied().unwrap_or("").to_owned(),
                instance: instance_at
                    .and_then(|at| fields.get(at))
                    .filter(|i| **i != "-")
                    .map(|i| (*i).to_owned()),
                partitions,
            }
        })
        .collect()
}

/// Waits until the group has `count` members whose assignments are
/// disjoint, cover every partition and are balanced (the settled state of
/// every assignor here; the mirrors must keep running);
/// returns them and how long that took.
fn wait_for_split(
    source: &KafkaCluster,
    group: &str,
    topic: &str,
    count: usize,
    mirrors: &mut [&mut Mirror],
    timeout: Duration,
    when: &str,
) -> (Vec<Member>, Duration) {
    let start = Instant::now();
    loop {
        for m in mirrors.iter_mut() {
            m.assert_running(when);
        }
        let now = members(source, group, topic);
        let total: usize = now.iter().map(|m| m.partitions.len()).sum();
        let union: BTreeSet<i32> = now.iter().flat_map(|m| m.partitions.clone()).collect();
        let sizes = now.iter().map(|m| m.partitions.len());
        let balanced = sizes.clone().max().unwrap_or(0) - sizes.min().unwrap_or(0) <= 1;
        if now.len() == count
            && total == union.len()
            && union.len() == PARTITIONS as usize
            && balanced
        {
            return (now, start.elapsed());
        }
        assert!(
            start.elapsed() < timeout,
            "{when}: the group did not split {PARTITIONS} partitions over {count} members within \
             {timeout:?}; it shows {now:?}; the mirrors' stderr:\n{}",
            mirrors
                .iter()
                .map(|m| tail(&m.stderr_now(), 3000).to_owned())
                .collect::<Vec<_>>()
                .join("\n=====\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Stops the producer, waits until the group's committed offsets reach the
/// source's end offsets (the destination then holds everything: kmirror
/// commits only what it acknowledged; the destination's end offsets would
/// not do, duplicates raise them), stops `mirrors` with SIGTERM (each must
/// exit 0), and checks every record; returns (records produced,
/// duplicates).
fn finish(
    source: &KafkaCluster,
    destination: &KafkaCluster,
    group: &str,
    topic: &str,
    producer: ContinuousProducer,
    mut mirrors: Vec<Mirror>,
) -> (u64, u64) {
    let (produced, _) = producer.finish();
    let ends = librdkafka_end_offsets(&source.bootstrap(), topic);
    let start = Instant::now();
    loop {
        for m in &mut mirrors {
            m.assert_running("after the producer stopped");
        }
        let committed = librdkafka_committed_offsets(&source.bootstrap(), group, topic);
        let behind: Vec<(i32, i64, Option<i64>)> = ends
            .iter()
            .map(|(p, end)| (*p, *end, committed.get(p).copied().flatten()))
            .filter(|(_, end, c)| c.is_none_or(|c| c < *end))
            .collect();
        if behind.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "after the producer stopped, group {group} has not committed to the end within 120 s: \
             (partition, end, committed) {behind:?}; the mirrors' stderr:\n{}",
            mirrors
                .iter()
                .map(|m| tail(&m.stderr_now(), 3000).to_owned())
                .collect::<Vec<_>>()
                .join("\n=====\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for m in &mirrors {
        m.signal("-TERM");
    }
    for m in mirrors {
        m.wait(Duration::from_secs(60)).assert_success();
    }
    let duplicates = assert_complete_in_order(&source.bootstrap(), &destination.bootstrap(), topic);
    (produced, duplicates)
}

/// The partitions of `topic` named in kmirror's "gave partitions up" log
/// lines, each line's set in order.
fn given_up(stderr: &str) -> Vec<BTreeSet<i32>> {
    stderr
        .lines()
        .filter(|l| l.contains("gave partitions up"))
        .map(|l| {
            let Some(start) = l.find('[') else {
                return BTreeSet::new();
            };
            let end = l[start..].find(']').map_or(l.len(), |e| start + e);
            l[start + 1..end]
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect()
        })
        .collect()
}

/// How many times kmirror's log says it joined the group.
fn joins(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("joined the consumer group"))
        .count()
}

/// The three-process test, with the classic protocol or KIP-848's.
fn three_processes_then_one_killed(name: &str, protocol: &str) {
    let topic = "scaled";
    let group = format!("{name}-group");
    let (source, destination, producer) = start(name, topic);
    let extra = format!("group.protocol={protocol}\n");
    let scratch = Scratch::new(
        &consumer_file(&source, &group, &extra),
        &producer_file(&destination),
    );
    let mut a = start_mirror(&scratch, topic);
    let mut b = start_mirror(&scratch, topic);
    let mut c = start_mirror(&scratch, topic);
    let (split, took) = wait_for_split(
        &source,
        &group,
        topic,
        3,
        &mut [&mut a, &mut b, &mut c],
        Duration::from_secs(90),
        "with three processes",
    );
    eprintln!("three members after {took:?}: {split:?}");
    for m in &split {
        assert!(
            (7..=9).contains(&m.partitions.len()),
            "each process mirrors about a third: {split:?}"
        );
    }
    common::wait_caught_up(
        &source,
        &destination,
        topic,
        PARTITIONS,
        &mut a,
        Duration::from_secs(90),
        "with three processes",
    );
    let log = if protocol == "consumer" {
        "KIP-848"
    } else {
        "classic"
    };
    assert!(
        a.stderr_now().contains(log),
        "the protocol is logged: {}",
        tail(&a.stderr_now(), 3000)
    );

    // kill -9 one of them: its partitions move to the other two.
    c.signal("-KILL");
    let killed_at = Instant::now();
    let _ = c.wait(Duration::from_secs(10));
    let (split, _) = wait_for_split(
        &source,
        &group,
        topic,
        2,
        &mut [&mut a, &mut b],
        SESSION_TIMEOUT + Duration::from_secs(60),
        "after kill -9 of one process",
    );
    let moved_after = killed_at.elapsed();
    eprintln!("two members {moved_after:?} after the kill: {split:?}");
    assert!(
        moved_after <= SESSION_TIMEOUT + Duration::from_secs(15),
        "the killed process's partitions moved within the session timeout ({SESSION_TIMEOUT:?}) \
         and a rebalance: took {moved_after:?}"
    );
    let (produced, duplicates) = finish(&source, &destination, &group, topic, producer, vec![a, b]);
    // Copied again: at most what the killed process had not committed,
    // about one commit interval of its third of the records, plus what was
    // in flight. A generous bound of 3 s of the whole rate.
    let bound = u64::from(RATE) * 3;
    eprintln!(
        "{protocol}: {produced} records, {duplicates} copied twice (bound {bound}), partitions moved {moved_after:?} after kill -9"
    );
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, more than the uncommitted window ({bound})"
    );
}

/// Three processes share one group: Kafka's tool shows three members with
/// disjoint assignments; kill -9 of one moves its partitions to the others
/// within the session timeout; nothing is lost, order holds, duplicates
/// stay within the uncommitted window.
#[test]
fn three_processes_share_a_group_and_survive_a_kill() {
    three_processes_then_one_killed("group-classic", "classic");
}

/// The same with KIP-848's consumer protocol (`group.protocol=consumer`),
/// which Apache Kafka 4.x offers: the broker assigns.
#[test]
fn three_processes_with_the_kip_848_protocol() {
    three_processes_then_one_killed("group-kip848", "consumer");
}

/// cooperative-sticky: a fourth process joins, then one leaves
/// gracefully. Only the partitions that change owner are given up; the
/// others never pause (their owners' logs show no revocation of them).
#[test]
fn cooperative_sticky_moves_only_the_partitions_that_change_owner() {
    let topic = "cooperative";
    let group = "cooperative-group";
    let (source, destination, mut producer) = start("group-cooperative", topic);
    let scratch = Scratch::new(
        &consumer_file(
            &source,
            group,
            "partition.assignment.strategy=cooperative-sticky\n",
        ),
        &producer_file(&destination),
    );
    let mut mirrors: Vec<Mirror> = (0..3).map(|_| start_mirror(&scratch, topic)).collect();
    let (before, _) = {
        let mut refs: Vec<&mut Mirror> = mirrors.iter_mut().collect();
        wait_for_split(
            &source,
            group,
            topic,
            3,
            &mut refs,
            Duration::from_secs(90),
            "with three processes",
        )
    };
    producer.assert_running("with three processes");
    let given_up_before: Vec<usize> = mirrors
        .iter()
        .map(|m| given_up(&m.stderr_now()).len())
        .collect();

    // A fourth joins: each of the three gives up only what moves to it.
    mirrors.push(start_mirror(&scratch, topic));
    let (after, took) = {
        let mut refs: Vec<&mut Mirror> = mirrors.iter_mut().collect();
        wait_for_split(
            &source,
            group,
            topic,
            4,
            &mut refs,
            Duration::from_secs(90),
            "after a fourth process joined",
        )
    };
    eprintln!("four members after {took:?}: before {before:?} after {after:?}");
    let owner = |split: &[Member], p: i32| {
        split
            .iter()
            .find(|m| m.partitions.contains(&p))
            .map(|m| m.id.clone())
    };
    let moved: BTreeSet<i32> = (0..PARTITIONS)
        .filter(|p| owner(&before, *p) != owner(&after, *p))
        .collect();
    let mut revoked = BTreeSet::new();
    for (m, seen) in mirrors.iter().zip(&given_up_before) {
        for set in given_up(&m.stderr_now()).into_iter().skip(*seen) {
            revoked.extend(set);
        }
    }
    assert!(
        !moved.is_empty() && moved.len() < PARTITIONS as usize / 2,
        "a fourth member takes about a quarter: moved {moved:?}"
    );
    assert_eq!(
        revoked, moved,
        "only the partitions that changed owner were given up (eager would give up all {PARTITIONS})"
    );

    // One leaves gracefully: the others give nothing up.
    let leaving = mirrors.remove(0);
    let counts: Vec<usize> = mirrors
        .iter()
        .map(|m| given_up(&m.stderr_now()).len())
        .collect();
    leaving.signal("-TERM");
    leaving.wait(Duration::from_secs(60)).assert_success();
    {
        let mut refs: Vec<&mut Mirror> = mirrors.iter_mut().collect();
        wait_for_split(
            &source,
            group,
            topic,
            3,
            &mut refs,
            Duration::from_secs(60),
            "after one process left",
        );
    }
    for (m, before) in mirrors.iter().zip(counts) {
        assert_eq!(
            given_up(&m.stderr_now()).len(),
            before,
            "a member that stays gives nothing up when another leaves: {}",
            tail(&m.stderr_now(), 3000)
        );
    }
    let (produced, duplicates) = finish(&source, &destination, group, topic, producer, mirrors);
    eprintln!("cooperative-sticky: {produced} records, {duplicates} copied twice");
    assert_eq!(
        duplicates, 0,
        "graceful handovers commit before they give up"
    );
}

/// Static membership (`group.instance.id`): a rolling restart of every
/// process moves nothing and triggers no rebalance (no process joins
/// again but the restarted one, at the same generation), and nothing is
/// lost.
#[test]
fn a_rolling_restart_of_static_members_rebalances_nothing() {
    let topic = "static";
    let group = "static-group";
    let (source, destination, producer) = start("group-static", topic);
    // A restart must come back within the session: 30 s here.
    let scratches: Vec<Scratch> = (0..3)
        .map(|i| {
            Scratch::new(
                &format!(
                    "bootstrap.servers={}\ngroup.id={group}\nsession.timeout.ms=30000\n\
                     heartbeat.interval.ms=1000\ngroup.instance.id=head-node-{i}\n",
                    source.bootstrap()
                ),
                &producer_file(&destination),
            )
        })
        .collect();
    let mut mirrors: Vec<Mirror> = scratches.iter().map(|s| start_mirror(s, topic)).collect();
    let (before, _) = {
        let mut refs: Vec<&mut Mirror> = mirrors.iter_mut().collect();
        wait_for_split(
            &source,
            group,
            topic,
            3,
            &mut refs,
            Duration::from_secs(90),
            "with three static members",
        )
    };
    // Wait until every member has settled (the group's last rebalance done).
    std::thread::sleep(Duration::from_secs(3));
    let by_instance = |split: &[Member]| -> BTreeMap<String, BTreeSet<i32>> {
        split
            .iter()
            .map(|m| (m.instance.clone().unwrap_or_default(), m.partitions.clone()))
            .collect()
    };
    for i in 0..3 {
        let joins_before: Vec<usize> = mirrors.iter().map(|m| joins(&m.stderr_now())).collect();
        let old = mirrors.remove(i);
        old.signal("-TERM");
        let exited = old.wait(Duration::from_secs(60));
        exited.assert_success();
        assert!(
            exited
                .stderr
                .contains("static member: not leaving the group"),
            "{}",
            exited.context()
        );
        mirrors.insert(i, start_mirror(&scratches[i], topic));
        let start = Instant::now();
        while joins(&mirrors[i].stderr_now()) == 0 {
            mirrors[i].assert_running("restarting a static member");
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the restarted member did not join: {}",
                tail(&mirrors[i].stderr_now(), 3000)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Give a rebalance, if one were triggered, time to show.
        std::thread::sleep(Duration::from_secs(3));
        for (j, m) in mirrors.iter().enumerate() {
            if j != i {
                assert_eq!(
                    joins(&m.stderr_now()),
                    joins_before[j],
                    "restarting head-node-{i} made head-node-{j} join again (a rebalance): {}",
                    tail(&m.stderr_now(), 3000)
                );
            }
        }
        let (now, _) = {
            let mut refs: Vec<&mut Mirror> = mirrors.iter_mut().collect();
            wait_for_split(
                &source,
                group,
                topic,
                3,
                &mut refs,
                Duration::from_secs(30),
                "after restarting a static member",
            )
        };
        assert_eq!(
            by_instance(&now),
            by_instance(&before),
            "restarting head-node-{i} moved partitions"
        );
    }
    let (produced, duplicates) = finish(&source, &destination, group, topic, producer, mirrors);
    eprintln!("static members: {produced} records, {duplicates} copied twice");
}

/// Replacing a running MirrorMaker 1 live: Apache Kafka 3.9's MirrorMaker
/// 1 mirrors with the guide's files (plus the `bootstrap.servers` its Java
/// consumer needs); kmirror starts with the same files and group and takes
/// part of the partitions; MirrorMaker 1 is stopped; kmirror takes the
/// rest. Then MirrorMaker 1 joins kmirror's group: kmirror leads and
/// assigns for its Java consumers. Nothing lost, per-partition order kept.
#[test]
fn mirrormaker_1_is_replaced_live() {
    let topic = "testtopic";
    let group = "mirrorgroup";
    let (source, destination, producer) = start("group-mm1", topic);
    // As an operator running MirrorMaker 1 had it: MirrorMaker 1 leaves
    // creation to the destination broker (one partition), so the topic
    // was created there by hand.
    destination.create_topic(topic, PARTITIONS, 1, &[]);
    let consumer = format!(
        "zookeeper.connect=unused:2181\nbootstrap.servers={}\ngroup.id={group}\n\
         auto.offset.reset=earliest\nsession.timeout.ms={}\nheartbeat.interval.ms=1000\n",
        source.bootstrap(),
        SESSION_TIMEOUT.as_millis()
    );
    let producer_props = format!(
        "bootstrap.servers={}\ncompression.type=none\n",
        destination.bootstrap()
    );
    let scratch = Scratch::new(&consumer, &producer_props);
    // Two streams: MirrorMaker 1 is two consumers, two members.
    let mut mm1 = common::MirrorMaker1::start(&scratch, KafkaVersion::V3_9, topic, 2);
    let (alone, _) = wait_for_split(
        &source,
        group,
        topic,
        2,
        &mut [],
        Duration::from_secs(120),
        "MirrorMaker 1 alone",
    );
    mm1.assert_running("MirrorMaker 1 alone");
    eprintln!("MirrorMaker 1 alone: {alone:?}");

    let mut kmirror = start_mirror(&scratch, topic);
    let (shared, _) = wait_for_split(
        &source,
        group,
        topic,
        3,
        &mut [&mut kmirror],
        Duration::from_secs(120),
        "kmirror joined MirrorMaker 1's group",
    );
    mm1.assert_running("kmirror joined its group");
    eprintln!("shared with MirrorMaker 1: {shared:?}");
    assert!(
        shared.iter().all(|m| !m.partitions.is_empty()),
        "kmirror took part of the partitions: {shared:?}"
    );
    std::thread::sleep(Duration::from_secs(5));

    // MirrorMaker 1 is stopped as an operator stops it (Ctrl+C).
    mm1.stop();
    let (alone, _) = wait_for_split(
        &source,
        group,
        topic,
        1,
        &mut [&mut kmirror],
        Duration::from_secs(60),
        "after MirrorMaker 1 stopped",
    );
    eprintln!("kmirror alone: {alone:?}");

    // MirrorMaker 1 joins again: kmirror leads the group now and assigns
    // for MirrorMaker 1's Java consumers too, which take what it computed.
    let mut mm1 = common::MirrorMaker1::start(&scratch, KafkaVersion::V3_9, topic, 2);
    let (led, _) = wait_for_split(
        &source,
        group,
        topic,
        3,
        &mut [&mut kmirror],
        Duration::from_secs(120),
        "MirrorMaker 1 joined kmirror's group",
    );
    mm1.assert_running("in kmirror's group");
    eprintln!("kmirror leading MirrorMaker 1's consumers: {led:?}");
    assert!(
        kmirror
            .stderr_now()
            .contains("kmirror leads the group: computed the assignment"),
        "kmirror, the group's oldest member, leads it: {}",
        tail(&kmirror.stderr_now(), 3000)
    );
    std::thread::sleep(Duration::from_secs(3));
    mm1.stop();
    wait_for_split(
        &source,
        group,
        topic,
        1,
        &mut [&mut kmirror],
        Duration::from_secs(60),
        "after MirrorMaker 1 stopped again",
    );
    let (produced, duplicates) =
        finish(&source, &destination, group, topic, producer, vec![kmirror]);
    eprintln!("MirrorMaker 1 replaced: {produced} records, {duplicates} copied twice");
}
