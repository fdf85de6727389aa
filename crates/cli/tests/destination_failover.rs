//! End to end, on Apache Kafka: the produce side of issue 13. A
//! three-broker destination (replication factor 3, `min.insync.replicas=2`)
//! loses the leader of a busy partition to SIGKILL while kmirror copies;
//! kmirror must resolve the partition's new leader and carry on (item 4).
//! With `acks=1` kmirror mirrors without idempotence: the batches on the
//! destination carry no producer id (item 10).
//!
//! The tests share one source (one KRaft broker) and one destination (three
//! KRaft nodes) and take turns on them (one kills a broker). Set
//! `KMIRROR_TEST_BIN` to run another kmirror binary (an older build, to see
//! a test fail). Needs Apache Kafka and the Python clients
//! (`cargo xtask brokers`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use kmirror_test_support::{
    ClusterOptions, Codec, KafkaCluster, ProduceSpec, librdkafka_committed_offsets,
    librdkafka_consume_summary, librdkafka_create_topic, librdkafka_end_offsets,
    librdkafka_list_topics, librdkafka_produce,
};

/// The source and the three-broker destination.
struct Clusters {
    source: KafkaCluster,
    destination: KafkaCluster,
}

/// The clusters, one test at a time.
fn clusters() -> MutexGuard<'static, Clusters> {
    static CLUSTERS: OnceLock<Mutex<Clusters>> = OnceLock::new();
    CLUSTERS
        .get_or_init(|| {
            Mutex::new(Clusters {
                source: KafkaCluster::start(ClusterOptions::kraft().name("failover-source")),
                destination: KafkaCluster::start(
                    ClusterOptions::three_brokers().name("failover-destination"),
                ),
            })
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// A scratch directory with the `.properties` files and kmirror's output.
struct Scratch(PathBuf);

impl Scratch {
    fn new(consumer: &str, producer: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kmirror-failover-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("consumer.properties"), consumer).unwrap();
        std::fs::write(dir.join("producer.properties"), producer).unwrap();
        Self(dir)
    }

    /// Starts `kmirror` with the two files and `args`.
    fn spawn(&self, args: &[&str]) -> Mirror {
        let binary = std::env::var_os("KMIRROR_TEST_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_kmirror")),
            PathBuf::from,
        );
        let out = self.0.join("run.out");
        let err = self.0.join("run.err");
        let child = Command::new(binary)
            .args([
                "--consumer.config",
                "consumer.properties",
                "--producer.config",
                "producer.properties",
            ])
            .args(args)
            .current_dir(&self.0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Mirror {
            child: Some(child),
            out,
            err,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A running `kmirror`; killed on drop.
struct Mirror {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

/// How a run ended.
struct Exited {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Exited {
    fn context(&self) -> String {
        format!(
            "exit {:?}\n--- stdout:\n{}--- stderr (last 6000 bytes):\n{}",
            self.code,
            self.stdout,
            tail(&self.stderr, 6000)
        )
    }

    fn assert_success(&self) {
        assert_eq!(self.code, Some(0), "{}", self.context());
        for bad in ["panicked", "kmirror: error"] {
            assert!(!self.stderr.contains(bad), "{bad}: {}", self.context());
        }
    }
}

fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

impl Mirror {
    fn stderr_now(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Waits for the process to end.
    fn wait(mut self, timeout: Duration) -> Exited {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let exited = Exited {
            code: status.and_then(|s| s.code()),
            stdout: std::fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.err).unwrap_or_default(),
        };
        assert!(
            status.is_some(),
            "kmirror did not exit within {timeout:?}: {}",
            exited.context()
        );
        exited
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The end offsets of `topic` (empty while it does not exist). Right after
/// a broker is killed a partition has no leader for a few seconds and the
/// query fails: asked again then.
fn destination_ends(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    for _ in 0..40 {
        let asked = std::panic::catch_unwind(|| {
            if librdkafka_list_topics(bootstrap).iter().any(|t| t == topic) {
                librdkafka_end_offsets(bootstrap, topic)
            } else {
                BTreeMap::new()
            }
        });
        match asked {
            Ok(ends) => return ends,
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    panic!("the end offsets of {topic} at {bootstrap} cannot be read");
}

/// Nothing lost and per-partition order kept at the destination; returns
/// the duplicates.
fn assert_complete_in_order(source: &str, destination: &str, topic: &str) -> u64 {
    let expected: BTreeMap<i32, Vec<u64>> = librdkafka_consume_summary(source, topic)
        .into_iter()
        .map(|(p, s)| (p, s.sequences))
        .collect();
    let actual = librdkafka_consume_summary(destination, topic);
    let mut duplicates = 0;
    for (partition, sequences) in &expected {
        let got = actual
            .get(partition)
            .unwrap_or_else(|| panic!("partition {partition} missing at the destination"));
        let missing = got.missing(sequences.iter().copied());
        assert!(
            missing.is_empty(),
            "partition {partition}: {} records lost, first {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert_eq!(
            got.first_reorder(),
            None,
            "partition {partition}: order broken"
        );
        let distinct: Vec<u64> = {
            let mut seen = BTreeSet::new();
            got.sequences
                .iter()
                .copied()
                .filter(|s| seen.insert(*s))
                .collect()
        };
        assert_eq!(
            &distinct, sequences,
            "partition {partition}: distinct records differ"
        );
        duplicates += got.duplicates();
    }
    duplicates
}

/// The group's committed offsets equal the source's end offsets.
fn assert_committed_to_the_end(source: &str, group: &str, topic: &str) {
    let ends = librdkafka_end_offsets(source, topic);
    let committed = librdkafka_committed_offsets(source, group, topic);
    let expected: BTreeMap<i32, Option<i64>> =
        ends.into_iter().map(|(p, o)| (p, Some(o))).collect();
    assert_eq!(
        committed, expected,
        "committed offsets of {group} on {topic}"
    );
}

/// Issue 13, item 4: the leader of a busy destination partition is killed
/// (SIGKILL) while kmirror copies. kmirror resolves the new leader and
/// carries on: nothing lost, order kept, no exit, the copy complete within
/// a bounded time. Before the fix the partitions that the dead broker led
/// were resent to it for ever.
#[test]
fn killing_the_leader_of_a_busy_destination_partition_loses_nothing() {
    const TOPIC: &str = "busy";
    const RECORDS: u64 = 60_000;
    /// From the kill to the last record at the destination.
    const RECOVERY_BOUND: Duration = Duration::from_secs(120);
    let mut clusters = clusters();
    let source = clusters.source.bootstrap();
    let destination = clusters.destination.bootstrap();
    librdkafka_create_topic(&source, TOPIC, 4, &[]);
    let spec = ProduceSpec::default()
        .count(RECORDS)
        .value_size(1024)
        .codec(Codec::Snappy)
        .keys(100)
        .linger_ms(50)
        .batch_size(32 * 1024);
    librdkafka_produce(&source, TOPIC, &spec);
    // Small fetches and requests, so that the copy takes long enough to
    // kill a broker in the middle of it.
    let scratch = Scratch::new(
        &format!(
            "bootstrap.servers={source}\ngroup.id=failover\nmax.partition.fetch.bytes=16384\n\
             fetch.max.bytes=32768\n"
        ),
        &format!(
            "bootstrap.servers={destination}\nmax.request.size=32768\nrequest.timeout.ms=5000\n"
        ),
    );
    let mut mirror = scratch.spawn(&["--whitelist", TOPIC, "--once"]);
    let started = Instant::now();
    let copied_at_kill = loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no record reached the destination in 120 s: {}",
            tail(&mirror.stderr_now(), 6000)
        );
        assert!(
            !mirror.has_exited(),
            "kmirror exited early: {}",
            tail(&mirror.stderr_now(), 6000)
        );
        let copied: i64 = destination_ends(&destination, TOPIC).values().sum();
        if copied > 0 {
            break copied;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let victim = clusters.destination.leader(TOPIC, 0);
    assert!(victim >= 0, "partition 0 of {TOPIC} has no leader");
    clusters.destination.kill(victim);
    let killed_at = Instant::now();
    assert!(
        copied_at_kill < RECORDS as i64,
        "the copy was over before the kill; make it larger"
    );
    eprintln!(
        "killed destination broker {victim} (leader of {TOPIC}-0) after {copied_at_kill} records"
    );
    // Recovery: the partition moves on under its new leader, and the copy
    // completes.
    let partition0_at_kill = destination_ends(&destination, TOPIC)
        .get(&0)
        .copied()
        .unwrap_or(0);
    let mut partition0_moved = None;
    let complete_after = loop {
        let elapsed = killed_at.elapsed();
        let ends = destination_ends(&destination, TOPIC);
        let copied: i64 = ends.values().sum();
        if partition0_moved.is_none() && ends.get(&0).copied().unwrap_or(0) > partition0_at_kill {
            partition0_moved = Some(elapsed);
        }
        if copied >= RECORDS as i64 {
            break elapsed;
        }
        assert!(
            elapsed < RECOVERY_BOUND,
            "{copied} of {RECORDS} records at the destination {elapsed:?} after the leader of \
             {TOPIC}-0 (broker {victim}) was killed ({copied_at_kill} at the kill); kmirror's \
             stderr:\n{}",
            tail(&mirror.stderr_now(), 6000)
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let exited = mirror.wait(Duration::from_secs(120));
    exited.assert_success();
    let duplicates = assert_complete_in_order(&source, &destination, TOPIC);
    assert_committed_to_the_end(&source, "failover", TOPIC);
    let retries = exited
        .stderr
        .lines()
        .filter(|l| l.contains("produce request failed"))
        .count();
    eprintln!(
        "destination leader failover: broker {victim} killed after {copied_at_kill} of {RECORDS} \
         records; {TOPIC}-0 written to again {partition0_moved:?} after the kill, copy complete \
         {complete_after:?} after it; {retries} failed produce requests logged; nothing lost, \
         order kept, {duplicates} duplicates; kmirror exited 0 after {:?}",
        started.elapsed()
    );
    clusters.destination.restart(victim);
}

/// The producer id, epoch and base sequence of every batch of `topic` at
/// `bootstrap`, read with kmirror's own Fetch.
fn batch_producers(bootstrap: &str, topic: &str) -> BTreeSet<(i64, i16, bool)> {
    use kmirror_protocol::kafka_protocol::messages::{self as kp, TopicName};
    use kmirror_protocol::kafka_protocol::protocol::StrBytes;
    use kmirror_protocol::record::{LogEntry, RecordBatches};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = kmirror_pool::ClientConfig {
        bootstrap_servers: bootstrap.split(',').map(str::to_owned).collect(),
        ..Default::default()
    };
    runtime.block_on(async {
        let cluster = kmirror_pool::Cluster::connect(config).await.unwrap();
        let metadata = cluster.metadata().await.unwrap();
        let info = &metadata.topics[topic];
        let mut producers = BTreeSet::new();
        for p in &info.partitions {
            let conn = cluster
                .connection_to_broker(p.leader.unwrap())
                .await
                .unwrap();
            let version = conn.versions().version(kp::ApiKey::Fetch).unwrap();
            let mut t = kp::fetch_request::FetchTopic::default().with_partitions(vec![
                kp::fetch_request::FetchPartition::default()
                    .with_partition(p.partition)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(64 * 1024 * 1024),
            ]);
            t = if version >= 13 {
                t.with_topic_id(uuid::Uuid::from_bytes(info.id))
            } else {
                t.with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            };
            let request = kp::FetchRequest::default()
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(64 * 1024 * 1024)
                .with_topics(vec![t]);
            let response = conn.send(&request).await.unwrap();
            for t in response.topics {
                for part in t.partitions {
                    assert_eq!(
                        part.error_code, 0,
                        "fetch of {topic}-{}",
                        part.partition_index
                    );
                    for entry in RecordBatches::new(part.records.unwrap_or_default()) {
                        if let LogEntry::Batch(view) = entry.unwrap() {
                            let h = view.header();
                            producers.insert((
                                h.producer_id,
                                h.producer_epoch,
                                h.base_sequence >= 0,
                            ));
                        }
                    }
                }
            }
        }
        producers
    })
}

/// Issue 13, item 10: with `acks=1` kmirror does not use idempotence: no
/// InitProducerId, and the batches carry -1/-1/-1 (before the fix they
/// carried kmirror's producer id and sequences, which the broker then
/// checks although kmirror announced no idempotence). The warning names
/// what acks=1 gives up, and the copy is still complete and in order.
#[test]
fn acks_one_mirrors_without_producer_ids() {
    const TOPIC: &str = "leader-acks";
    let clusters = clusters();
    let source = clusters.source.bootstrap();
    let destination = clusters.destination.bootstrap();
    librdkafka_create_topic(&source, TOPIC, 2, &[]);
    let spec = ProduceSpec::default()
        .count(5_000)
        .value_size(200)
        .keys(20)
        .linger_ms(20);
    librdkafka_produce(&source, TOPIC, &spec);
    let scratch = Scratch::new(
        &format!("bootstrap.servers={source}\ngroup.id=leader-acks\n"),
        &format!("bootstrap.servers={destination}\nacks=1\nmax.request.size=16384\n"),
    );
    let exited = scratch
        .spawn(&["--whitelist", TOPIC, "--once"])
        .wait(Duration::from_secs(180));
    exited.assert_success();
    let producers = batch_producers(&destination, TOPIC);
    assert_eq!(
        producers,
        BTreeSet::from([(-1, -1, false)]),
        "producer id, epoch and whether a sequence is set, per batch at the destination"
    );
    assert!(
        exited
            .stderr
            .contains("acks=1: kmirror mirrors without idempotence"),
        "no acks=1 warning: {}",
        exited.context()
    );
    let duplicates = assert_complete_in_order(&source, &destination, TOPIC);
    assert_committed_to_the_end(&source, "leader-acks", TOPIC);
    eprintln!("acks=1: 5000 records, batches without producer fields, {duplicates} duplicates");
}
