//! Apache Kafka clusters on loopback: one or more brokers of a pinned
//! version, in KRaft mode (combined broker+controller nodes) or ZooKeeper
//! mode (with their own ZooKeeper server), with PLAINTEXT, TLS and SASL
//! listeners.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::probe::{self, ClusterView, PartitionInfo};
use crate::process::{Server, note};
use crate::tools::{KafkaVersion, ToolOutput, kafka_tool, run_tool, run_tool_ok};
use crate::zookeeper::ZooKeeper;
use crate::{free_port, scratch};

/// JVM options for test brokers and tools: quick start-up (client compiler
/// only, serial GC) over peak throughput.
pub const QUICK_JVM_OPTS: &str =
    "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData -Djava.awt.headless=true";

/// JVM options for brokers under benchmark: Kafka's own defaults (G1, both
/// JIT compilers).
pub const PERFORMANCE_JVM_OPTS: &str = "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
     -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true";

/// How long a cluster may take until every broker is registered.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// How a cluster keeps its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// KRaft: every node is a combined broker and controller.
    KRaft,
    /// ZooKeeper mode, with a ZooKeeper server of the cluster's own (its
    /// brokers register under the chroot `/kafka`).
    ZooKeeper,
}

/// A listener a client can connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// `PLAINTEXT`: always there (also the inter-broker listener).
    Plaintext,
    /// `SSL`: with [`ClusterOptions::tls`].
    Ssl,
    /// `SASL_PLAINTEXT`: with [`ClusterOptions::sasl_user`]; PLAIN,
    /// SCRAM-SHA-256 and SCRAM-SHA-512.
    SaslPlaintext,
    /// `SASL_SSL`: with both.
    SaslSsl,
    /// `PROXIED`: plaintext, advertised at another port (a proxy in front
    /// of the broker, see [`ClusterOptions::behind_proxy`]). Its
    /// [`KafkaCluster::bootstrap_for`] is the proxies' addresses; its
    /// [`KafkaCluster::broker_addr`] the broker's own listener.
    Proxied,
}

impl Listener {
    fn name(self) -> &'static str {
        match self {
            Listener::Plaintext => "PLAINTEXT",
            Listener::Ssl => "SSL",
            Listener::SaslPlaintext => "SASL_PLAINTEXT",
            Listener::SaslSsl => "SASL_SSL",
            Listener::Proxied => "PROXIED",
        }
    }
}

/// Which leader election [`KafkaCluster::elect`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// The preferred replica (the first of the replica list) becomes leader
    /// if it is in sync.
    Preferred,
    /// Any live replica, in sync or not (data loss allowed): Kafka's
    /// unclean election.
    Unclean,
}

/// How to start a [`KafkaCluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    version: KafkaVersion,
    mode: Mode,
    brokers: usize,
    tls: Option<(PathBuf, PathBuf)>,
    users: Vec<(String, String)>,
    configs: Vec<(String, String)>,
    heap: String,
    jvm_opts: &'static str,
    name: String,
    proxies: Vec<u16>,
}

impl ClusterOptions {
    /// One broker of `version`: KRaft for 4.x, ZooKeeper mode for 3.9 and
    /// 2.1 (the reason they are pinned); PLAINTEXT only.
    pub fn new(version: KafkaVersion) -> Self {
        Self {
            version,
            mode: if version.has_zookeeper() {
                Mode::ZooKeeper
            } else {
                Mode::KRaft
            },
            brokers: 1,
            tls: None,
            users: Vec::new(),
            configs: Vec::new(),
            heap: "-Xmx512m -Xms64m".to_owned(),
            jvm_opts: QUICK_JVM_OPTS,
            name: "kafka".to_owned(),
            proxies: Vec::new(),
        }
    }

    /// One KRaft broker of the newest version: the fast default.
    pub fn kraft() -> Self {
        Self::new(KafkaVersion::NEWEST)
    }

    /// Three KRaft nodes of the newest version, replication factor 3 and
    /// `min.insync.replicas=2` by default.
    pub fn three_brokers() -> Self {
        Self::kraft().brokers(3)
    }

    /// Sets the metadata mode.
    ///
    /// # Panics
    ///
    /// If the version does not have it (ZooKeeper mode ended with 3.9;
    /// KRaft began with 3.x).
    pub fn mode(mut self, mode: Mode) -> Self {
        let ok = match mode {
            Mode::KRaft => self.version.has_kraft(),
            Mode::ZooKeeper => self.version.has_zookeeper(),
        };
        assert!(ok, "Apache Kafka {} has no {mode:?} mode", self.version);
        self.mode = mode;
        self
    }

    /// Adds the [`Listener::Proxied`] listener: broker `i` (in id order)
    /// advertises it as `127.0.0.1:proxy_ports[i]`, where a proxy forwards
    /// to the broker's own port. Clients that bootstrap through a proxy see
    /// only proxy addresses (Kafka answers Metadata with the endpoints of
    /// the listener the request came in on).
    pub fn behind_proxy(mut self, proxy_ports: &[u16]) -> Self {
        self.proxies = proxy_ports.to_vec();
        self
    }

    /// The number of brokers (1 to 9).
    pub fn brokers(mut self, n: usize) -> Self {
        assert!(
            (1..=9).contains(&n),
            "a test cluster has 1 to 9 brokers, not {n}"
        );
        self.brokers = n;
        self
    }

    /// Adds `SSL` (and, with SASL users, `SASL_SSL`) listeners serving this
    /// PEM certificate chain and PKCS#8 PEM private key (Kafka's PEM
    /// keystore, 2.7 and later).
    pub fn tls(mut self, cert_pem: impl Into<PathBuf>, key_pem: impl Into<PathBuf>) -> Self {
        assert!(
            self.version >= KafkaVersion::V3_9,
            "PEM keystores need Apache Kafka 2.7 or later, not {}",
            self.version
        );
        self.tls = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Adds a user for SASL PLAIN (in the listener's JAAS configuration)
    /// and SCRAM-SHA-256 and SCRAM-SHA-512 (created after start with
    /// `kafka-configs --alter --add-config SCRAM-SHA-256=[...]`, as
    /// operators do), and the `SASL_PLAINTEXT` listener.
    pub fn sasl_user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_owned(), password.to_owned()));
        self
    }

    /// Sets a broker configuration (`server.properties`) on every broker;
    /// later settings win.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.configs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// JVM options for benchmarks ([`PERFORMANCE_JVM_OPTS`]) and a 1 GiB
    /// heap, instead of the quick-start test options.
    pub fn performance(mut self) -> Self {
        self.jvm_opts = PERFORMANCE_JVM_OPTS;
        self.heap = "-Xmx1g -Xms1g".to_owned();
        self
    }

    /// A name for the scratch directory and messages (default `kafka`).
    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }
}

/// One broker's ports.
#[derive(Debug, Clone)]
struct Ports {
    plaintext: u16,
    controller: u16,
    ssl: u16,
    sasl_plaintext: u16,
    sasl_ssl: u16,
    proxied: u16,
}

/// One broker (KRaft: broker+controller) of a cluster.
#[derive(Debug)]
struct Node {
    id: i32,
    ports: Ports,
    dir: PathBuf,
    log_path: PathBuf,
    config_path: PathBuf,
    server: Option<Server>,
}

/// A running Apache Kafka cluster on 127.0.0.1. Every process is killed
/// when the cluster is dropped or the test process exits; the scratch
/// directory (configs, data, logs) is removed on drop unless the thread is
/// panicking.
#[derive(Debug)]
pub struct KafkaCluster {
    options: ClusterOptions,
    dir: PathBuf,
    zookeeper: Option<ZooKeeper>,
    nodes: Vec<Node>,
}

static SHARED: OnceLock<Mutex<HashMap<String, &'static KafkaCluster>>> = OnceLock::new();

impl KafkaCluster {
    /// Starts a cluster and waits until every broker is registered.
    ///
    /// # Panics
    ///
    /// If Kafka is not installed (run `cargo xtask brokers`), a broker does
    /// not start or does not register within 90 s (the message holds its
    /// log), or a SCRAM user cannot be created.
    pub fn start(options: ClusterOptions) -> Self {
        kafka_tool(options.version);
        let dir = scratch::new_dir(&format!("{}-{}", options.name, options.version));
        let zookeeper = (options.mode == Mode::ZooKeeper).then(ZooKeeper::start);
        let n = options.brokers;
        assert!(
            options.proxies.is_empty() || options.proxies.len() == n,
            "behind_proxy needs one proxy port per broker: {} for {n}",
            options.proxies.len()
        );
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let id = i32::try_from(i + 1).unwrap_or(1);
                let node_dir = dir.join(format!("broker-{id}"));
                std::fs::create_dir_all(&node_dir)
                    .unwrap_or_else(|e| panic!("cannot create {}: {e}", node_dir.display()));
                Node {
                    id,
                    ports: Ports {
                        plaintext: free_port(),
                        controller: free_port(),
                        ssl: free_port(),
                        sasl_plaintext: free_port(),
                        sasl_ssl: free_port(),
                        proxied: free_port(),
                    },
                    log_path: node_dir.join("broker.log"),
                    config_path: node_dir.join("server.properties"),
                    dir: node_dir,
                    server: None,
                }
            })
            .collect();
        let mut cluster = Self {
            options,
            dir,
            zookeeper,
            nodes,
        };
        cluster.write_configs();
        if cluster.options.mode == Mode::KRaft {
            cluster.format_storage();
        }
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i);
        }
        cluster.wait_until_registered(&cluster.all_ids());
        cluster.create_scram_users();
        cluster
    }

    /// A cluster shared by every test of this process that asks for the
    /// same `name`: started (with `options`) by the first, never stopped
    /// (its processes end with the test process). Tests sharing it must use
    /// topic and group names of their own.
    ///
    /// # Panics
    ///
    /// As [`KafkaCluster::start`].
    pub fn shared(name: &str, options: impl FnOnce() -> ClusterOptions) -> &'static KafkaCluster {
        let map = SHARED.get_or_init(|| Mutex::new(HashMap::new()));
        // Held while starting, so two tests never start the same cluster;
        // a panic while starting poisons nothing useful, so recover.
        let mut map = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cluster) = map.get(name) {
            return cluster;
        }
        let cluster: &'static KafkaCluster = Box::leak(Box::new(Self::start(options().name(name))));
        map.insert(name.to_owned(), cluster);
        cluster
    }

    /// The version this cluster runs.
    pub fn version(&self) -> KafkaVersion {
        self.options.version
    }

    /// The metadata mode.
    pub fn mode(&self) -> Mode {
        self.options.mode
    }

    /// The node ids, `1..=n`.
    pub fn all_ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|node| node.id).collect()
    }

    /// `bootstrap.servers` for the PLAINTEXT listener of every broker.
    pub fn bootstrap(&self) -> String {
        self.bootstrap_for(Listener::Plaintext)
    }

    /// `bootstrap.servers` for one kind of listener of every broker.
    ///
    /// # Panics
    ///
    /// If the cluster has no such listener.
    pub fn bootstrap_for(&self, listener: Listener) -> String {
        self.nodes
            .iter()
            .map(|node| self.advertised_addr(node, listener))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `127.0.0.1:PORT` of broker `id`'s listener.
    ///
    /// # Panics
    ///
    /// If there is no such broker or listener.
    pub fn broker_addr(&self, id: i32, listener: Listener) -> String {
        self.node_addr(self.node(id), listener)
    }

    /// `zookeeper.connect` of a ZooKeeper-mode cluster (with its chroot).
    ///
    /// # Panics
    ///
    /// Under KRaft.
    pub fn zookeeper_connect(&self) -> String {
        let zk = self
            .zookeeper
            .as_ref()
            .unwrap_or_else(|| panic!("a KRaft cluster has no zookeeper.connect"));
        format!("{}/kafka", zk.addr())
    }

    /// The cluster's ZooKeeper server, in ZooKeeper mode.
    pub fn zookeeper(&self) -> Option<&ZooKeeper> {
        self.zookeeper.as_ref()
    }

    /// The cluster's scratch directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Broker `id`'s log so far (for failure messages).
    pub fn log(&self, id: i32) -> String {
        scratch::tail(&self.node(id).log_path, 1 << 20)
    }

    /// Whether broker `id` runs.
    pub fn is_running(&self, id: i32) -> bool {
        self.node(id)
            .server
            .as_ref()
            .is_some_and(Server::is_running)
    }

    /// The process id of broker `id`'s JVM (the launcher execs java), for
    /// its CPU time in `/proc/<pid>/stat`; `None` while it is killed or
    /// stopped.
    ///
    /// # Panics
    ///
    /// If there is no such broker.
    pub fn broker_pid(&self, id: i32) -> Option<u32> {
        self.node(id).server.as_ref().map(Server::pid)
    }

    /// Kills broker `id` with SIGKILL (a crash: no controlled shutdown).
    pub fn kill(&mut self, id: i32) {
        let i = self.index(id);
        if let Some(server) = self.nodes[i].server.take() {
            server.kill();
            note(&self.nodes[i].log_path, "killed (SIGKILL)");
        }
    }

    /// Stops broker `id` gracefully (SIGTERM: Kafka's controlled shutdown
    /// moves its leaderships away first) and waits for it to exit, up to
    /// a minute; then kills it.
    pub fn stop(&mut self, id: i32) {
        let i = self.index(id);
        if let Some(server) = self.nodes[i].server.take() {
            let graceful = server.terminate(Duration::from_secs(60));
            note(
                &self.nodes[i].log_path,
                if graceful {
                    "stopped (SIGTERM)"
                } else {
                    "did not stop within 60 s of SIGTERM: killed"
                },
            );
        }
    }

    /// Starts broker `id` again with the same configuration, ports and data
    /// (killing it first if it runs) and waits until it is registered.
    pub fn restart(&mut self, id: i32) {
        self.kill(id);
        let i = self.index(id);
        self.spawn(i);
        self.wait_until_registered(&[id]);
    }

    /// What Metadata shows for `topics` (all topics when empty), asked of
    /// the first running broker that answers.
    ///
    /// # Panics
    ///
    /// If no broker answers.
    pub fn metadata(&self, topics: &[&str]) -> ClusterView {
        for node in &self.nodes {
            if node.server.as_ref().is_some_and(Server::is_running)
                && let Some(view) = probe::metadata(
                    SocketAddr::from((Ipv4Addr::LOCALHOST, node.ports.plaintext)),
                    topics,
                )
            {
                return view;
            }
        }
        panic!("no broker of {} answers Metadata", self.describe());
    }

    /// The partitions of `topic` as Metadata shows them (empty if unknown).
    pub fn partitions(&self, topic: &str) -> Vec<PartitionInfo> {
        self.metadata(&[topic])
            .topics
            .into_iter()
            .find(|(name, _, _)| name == topic)
            .map(|(_, _, partitions)| partitions)
            .unwrap_or_default()
    }

    /// The leader of a partition, or -1.
    pub fn leader(&self, topic: &str, partition: i32) -> i32 {
        self.partitions(topic)
            .iter()
            .find(|p| p.partition == partition)
            .map_or(-1, |p| p.leader)
    }

    /// Waits until `check` holds for the partition (up to `timeout`) and
    /// returns its description then.
    ///
    /// # Panics
    ///
    /// At the timeout, with the last description.
    pub fn wait_for_partition(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
        what: &str,
        check: impl Fn(&PartitionInfo) -> bool,
    ) -> PartitionInfo {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .partitions(topic)
                .into_iter()
                .find(|p| p.partition == partition);
            if let Some(info) = &found
                && check(info)
            {
                return info.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{topic}-{partition} on {}: not {what} within {timeout:?}; last seen {found:?}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates a topic with Kafka's own `kafka-topics --create` and waits
    /// until every partition has a leader. `replication` 0 means the
    /// cluster's default (3 on three brokers, else 1).
    ///
    /// # Panics
    ///
    /// If the tool fails or a partition has no leader within 60 s.
    pub fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication: i16,
        configs: &[(&str, &str)],
    ) {
        let partitions_arg = partitions.to_string();
        let replication = if replication > 0 {
            replication
        } else {
            i16::try_from(self.nodes.len().min(3)).unwrap_or(1)
        };
        let replication_arg = replication.to_string();
        let mut args = self.admin_target();
        args.extend(
            [
                "--create",
                "--topic",
                topic,
                "--partitions",
                &partitions_arg,
                "--replication-factor",
                &replication_arg,
            ]
            .map(str::to_owned),
        );
        for (key, value) in configs {
            args.push("--config".to_owned());
            args.push(format!("{key}={value}"));
        }
        self.tool_ok(
            "kafka-topics",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let parts = self.partitions(topic);
            if parts.len() == usize::try_from(partitions).unwrap_or(0)
                && parts.iter().all(|p| p.leader >= 0 && p.error == 0)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{topic} on {}: not every partition has a leader within 60 s: {parts:?}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs a leader election for one partition with Kafka's own
    /// `kafka-leader-election` (3.9 and later) and returns its output.
    ///
    /// # Panics
    ///
    /// If the tool fails.
    pub fn elect(&self, topic: &str, partition: i32, election: Election) -> String {
        assert!(
            self.options.version >= KafkaVersion::V3_9,
            "kafka-leader-election needs Apache Kafka 2.4 or later"
        );
        let partition = partition.to_string();
        let kind = match election {
            Election::Preferred => "PREFERRED",
            Election::Unclean => "UNCLEAN",
        };
        let bootstrap = self.running_bootstrap();
        self.tool_ok(
            "kafka-leader-election",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--election-type",
                kind,
                "--topic",
                topic,
                "--partition",
                &partition,
            ],
        )
    }

    /// Makes broker `id` the leader of a partition: reorders the replica
    /// list so that `id` is the preferred replica (`kafka-reassign-partitions
    /// --execute`, same replicas), then runs a preferred election and waits
    /// until `id` leads. `id` must be an in-sync replica.
    ///
    /// # Panics
    ///
    /// If `id` is not a replica, a tool fails, or `id` does not lead within
    /// 60 s.
    pub fn move_leader(&self, topic: &str, partition: i32, id: i32) {
        let info = self.wait_for_partition(topic, partition, Duration::from_secs(30), "led", |p| {
            p.leader >= 0
        });
        assert!(
            info.replicas.contains(&id),
            "broker {id} is not a replica of {topic}-{partition}: {info:?}"
        );
        if info.leader == id {
            return;
        }
        let mut replicas = vec![id];
        replicas.extend(info.replicas.iter().copied().filter(|r| *r != id));
        let replicas = replicas
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let plan = format!(
            r#"{{"version":1,"partitions":[{{"topic":"{topic}","partition":{partition},"replicas":[{replicas}]}}]}}"#
        );
        let plan_path = self
            .dir
            .join(format!("reassign-{topic}-{partition}-{id}.json"));
        std::fs::write(&plan_path, plan)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", plan_path.display()));
        let plan_arg = plan_path.display().to_string();
        let bootstrap = self.running_bootstrap();
        let reassign = [
            "--bootstrap-server",
            &bootstrap,
            "--reassignment-json-file",
            &plan_arg,
        ];
        let mut execute = reassign.to_vec();
        execute.push("--execute");
        self.tool_ok("kafka-reassign-partitions", &execute);
        let mut verify = reassign.to_vec();
        verify.push("--verify");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.tool("kafka-reassign-partitions", &verify);
            if out.success && out.stdout.contains("is completed") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "reassigning {topic}-{partition} to [{replicas}] did not complete within 60 s: {}{}",
                out.stdout,
                out.stderr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        self.elect(topic, partition, Election::Preferred);
        self.wait_for_partition(
            topic,
            partition,
            Duration::from_secs(60),
            &format!("led by broker {id}"),
            |p| p.leader == id,
        );
    }

    /// Runs one of Kafka's tools of this cluster's version (see the
    /// `kafka-tool` launcher) and returns what it printed.
    pub fn tool(&self, tool: &str, args: &[&str]) -> ToolOutput {
        run_tool(self.options.version, tool, args, None)
    }

    /// Like [`KafkaCluster::tool`], and panics unless it succeeds; returns
    /// its standard output.
    pub fn tool_ok(&self, tool: &str, args: &[&str]) -> String {
        run_tool_ok(self.options.version, tool, args, None)
    }

    /// The arguments that point an admin tool at this cluster:
    /// `--bootstrap-server` (or `--zookeeper` for 2.1's `kafka-topics` and
    /// `kafka-configs`, which knew nothing else).
    pub fn admin_target(&self) -> Vec<String> {
        if self.options.version == KafkaVersion::V2_1 {
            vec!["--zookeeper".to_owned(), self.zookeeper_connect()]
        } else {
            vec!["--bootstrap-server".to_owned(), self.running_bootstrap()]
        }
    }

    fn running_bootstrap(&self) -> String {
        let running: Vec<String> = self
            .nodes
            .iter()
            .filter(|node| node.server.as_ref().is_some_and(Server::is_running))
            .map(|node| self.node_addr(node, Listener::Plaintext))
            .collect();
        if running.is_empty() {
            self.bootstrap()
        } else {
            running.join(",")
        }
    }

    fn describe(&self) -> String {
        format!(
            "Apache Kafka {} ({:?}, {} broker{}, {})",
            self.options.version,
            self.options.mode,
            self.nodes.len(),
            if self.nodes.len() == 1 { "" } else { "s" },
            self.bootstrap()
        )
    }

    fn node(&self, id: i32) -> &Node {
        &self.nodes[self.index(id)]
    }

    fn index(&self, id: i32) -> usize {
        self.nodes
            .iter()
            .position(|node| node.id == id)
            .unwrap_or_else(|| panic!("{} has no broker {id}", self.describe()))
    }

    fn has_listener(&self, listener: Listener) -> bool {
        match listener {
            Listener::Plaintext => true,
            Listener::Ssl => self.options.tls.is_some(),
            Listener::SaslPlaintext => !self.options.users.is_empty(),
            Listener::SaslSsl => self.options.tls.is_some() && !self.options.users.is_empty(),
            Listener::Proxied => !self.options.proxies.is_empty(),
        }
    }

    /// Where clients are told to connect: the listener's own address, or
    /// for [`Listener::Proxied`] the proxy's.
    fn advertised_addr(&self, node: &Node, listener: Listener) -> String {
        if listener == Listener::Proxied {
            let i = self.index(node.id);
            return format!("127.0.0.1:{}", self.options.proxies[i]);
        }
        self.node_addr(node, listener)
    }

    fn node_addr(&self, node: &Node, listener: Listener) -> String {
        assert!(
            self.has_listener(listener),
            "{} has no {} listener (see ClusterOptions::tls and ::sasl_user)",
            self.describe(),
            listener.name()
        );
        let port = match listener {
            Listener::Plaintext => node.ports.plaintext,
            Listener::Ssl => node.ports.ssl,
            Listener::SaslPlaintext => node.ports.sasl_plaintext,
            Listener::SaslSsl => node.ports.sasl_ssl,
            Listener::Proxied => node.ports.proxied,
        };
        format!("127.0.0.1:{port}")
    }

    fn write_configs(&self) {
        let n = self.nodes.len();
        let replication = n.min(3);
        let min_isr = if n >= 3 { 2 } else { 1 };
        let listeners: Vec<Listener> = [
            Listener::Plaintext,
            Listener::Ssl,
            Listener::SaslPlaintext,
            Listener::SaslSsl,
            Listener::Proxied,
        ]
        .into_iter()
        .filter(|l| self.has_listener(*l))
        .collect();
        let voters = self
            .nodes
            .iter()
            .map(|node| format!("{}@127.0.0.1:{}", node.id, node.ports.controller))
            .collect::<Vec<_>>()
            .join(",");
        let keystore = self.options.tls.as_ref().map(|(cert, key)| {
            // Kafka's PEM keystore file: the private key, then the chain.
            let path = self.dir.join("keystore.pem");
            let read = |p: &Path| {
                std::fs::read_to_string(p)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
            };
            std::fs::write(&path, format!("{}\n{}", read(key), read(cert)))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            path
        });
        for node in &self.nodes {
            let mut lines: Vec<(String, String)> = Vec::new();
            let mut set = |k: &str, v: String| lines.push((k.to_owned(), v));
            let advertised = listeners
                .iter()
                .map(|l| format!("{}://{}", l.name(), self.advertised_addr(node, *l)))
                .collect::<Vec<_>>()
                .join(",");
            let mut all_listeners = listeners
                .iter()
                .map(|l| format!("{}://{}", l.name(), self.node_addr(node, *l)))
                .collect::<Vec<_>>()
                .join(",");
            let mut protocol_map = listeners
                .iter()
                .map(|l| match l {
                    Listener::Proxied => "PROXIED:PLAINTEXT".to_owned(),
                    l => format!("{0}:{0}", l.name()),
                })
                .collect::<Vec<_>>()
                .join(",");
            match self.options.mode {
                Mode::KRaft => {
                    set("process.roles", "broker,controller".to_owned());
                    set("node.id", node.id.to_string());
                    set("controller.quorum.voters", voters.clone());
                    set("controller.listener.names", "CONTROLLER".to_owned());
                    all_listeners.push_str(&format!(
                        ",CONTROLLER://127.0.0.1:{}",
                        node.ports.controller
                    ));
                    protocol_map.push_str(",CONTROLLER:PLAINTEXT");
                    // Fence a crashed broker sooner than the default 9 s.
                    set("broker.session.timeout.ms", "6000".to_owned());
                    set("broker.heartbeat.interval.ms", "1000".to_owned());
                }
                Mode::ZooKeeper => {
                    set("broker.id", node.id.to_string());
                    set("zookeeper.connect", self.zookeeper_connect());
                    set("zookeeper.session.timeout.ms", "6000".to_owned());
                }
            }
            set("listeners", all_listeners);
            set("advertised.listeners", advertised);
            set("listener.security.protocol.map", protocol_map);
            set("inter.broker.listener.name", "PLAINTEXT".to_owned());
            set("log.dirs", node.dir.join("data").display().to_string());
            set("num.partitions", "1".to_owned());
            set("default.replication.factor", replication.to_string());
            set("min.insync.replicas", min_isr.to_string());
            set("offsets.topic.replication.factor", replication.to_string());
            set("offsets.topic.num.partitions", "4".to_owned());
            set(
                "transaction.state.log.replication.factor",
                replication.to_string(),
            );
            set("transaction.state.log.min.isr", min_isr.to_string());
            set("transaction.state.log.num.partitions", "4".to_owned());
            set("group.initial.rebalance.delay.ms", "0".to_owned());
            set("num.network.threads", "2".to_owned());
            set("num.io.threads", "4".to_owned());
            set("log.cleaner.dedupe.buffer.size", "8388608".to_owned());
            if self.options.version >= KafkaVersion::V4_4 {
                set(
                    "share.coordinator.state.topic.replication.factor",
                    replication.to_string(),
                );
                set("share.coordinator.state.topic.min.isr", min_isr.to_string());
            }
            if let Some(keystore) = &keystore {
                set("ssl.keystore.type", "PEM".to_owned());
                set("ssl.keystore.location", keystore.display().to_string());
                set("ssl.client.auth", "none".to_owned());
            }
            if !self.options.users.is_empty() {
                set(
                    "sasl.enabled.mechanisms",
                    "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".to_owned(),
                );
                let plain_users: String = self
                    .options
                    .users
                    .iter()
                    .map(|(name, password)| format!(" user_{name}=\"{password}\""))
                    .collect();
                for listener in ["sasl_plaintext", "sasl_ssl"] {
                    set(
                        &format!("listener.name.{listener}.plain.sasl.jaas.config"),
                        format!(
                            "org.apache.kafka.common.security.plain.PlainLoginModule required{plain_users};"
                        ),
                    );
                    for scram in ["scram-sha-256", "scram-sha-512"] {
                        set(
                            &format!("listener.name.{listener}.{scram}.sasl.jaas.config"),
                            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                                .to_owned(),
                        );
                    }
                }
            }
            for (key, value) in &self.options.configs {
                lines.push((key.clone(), value.clone()));
            }
            // Later settings win: keep the last of each key.
            let mut text = String::from("# Written by kmirror-test-cluster.\n");
            for (i, (key, value)) in lines.iter().enumerate() {
                if lines[i + 1..].iter().any(|(k, _)| k == key) {
                    continue;
                }
                text.push_str(&format!("{key}={}\n", escape(value)));
            }
            std::fs::write(&node.config_path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", node.config_path.display()));
        }
    }

    /// `kafka-storage format` for every node, in parallel, with one
    /// cluster id.
    fn format_storage(&self) {
        let id = cluster_id();
        let version = self.options.version;
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .nodes
                .iter()
                .map(|node| {
                    let id = id.clone();
                    let config = node.config_path.display().to_string();
                    scope.spawn(move || {
                        run_tool(
                            version,
                            "kafka-storage",
                            &["format", "-t", &id, "-c", &config],
                            None,
                        )
                    })
                })
                .collect();
            for (node, handle) in self.nodes.iter().zip(handles) {
                let output = handle
                    .join()
                    .unwrap_or_else(|_| panic!("formatting broker {} panicked", node.id));
                assert!(
                    output.success,
                    "kafka-storage format failed for broker {} of {}\n--- stderr:\n{}\n--- stdout:\n{}",
                    node.id,
                    self.describe(),
                    output.stderr,
                    output.stdout
                );
            }
        });
    }

    fn spawn(&mut self, i: usize) {
        let launcher = kafka_tool(self.options.version);
        let node = &self.nodes[i];
        let mut command = Command::new(launcher);
        command
            .arg(self.options.version.as_str())
            .arg("kafka-server")
            .arg(&node.config_path)
            .current_dir(&node.dir)
            .env("KAFKA_HEAP_OPTS", &self.options.heap)
            .env("KAFKA_JVM_PERFORMANCE_OPTS", self.options.jvm_opts);
        note(
            &node.log_path,
            &format!("starting broker {} of {}", node.id, self.describe()),
        );
        let data = node.dir.join("data");
        let server = Server::spawn_with_cleanup(command, &node.log_path, Some(&data));
        self.nodes[i].server = Some(server);
    }

    fn wait_until_registered(&self, ids: &[i32]) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            for id in ids {
                let node = self.node(*id);
                if !node.server.as_ref().is_some_and(Server::is_running) {
                    panic!(
                        "broker {id} of {} exited while starting\n--- log ({}):\n{}",
                        self.describe(),
                        node.log_path.display(),
                        scratch::tail(&node.log_path, 8000)
                    );
                }
            }
            let registered = ids.iter().all(|id| {
                let node = self.node(*id);
                probe::metadata(
                    SocketAddr::from((Ipv4Addr::LOCALHOST, node.ports.plaintext)),
                    &[],
                )
                .is_some_and(|view| {
                    let seen: Vec<i32> = view.brokers.iter().map(|b| b.0).collect();
                    self.nodes
                        .iter()
                        .filter(|n| n.server.as_ref().is_some_and(Server::is_running))
                        .all(|n| seen.contains(&n.id))
                })
            });
            if registered {
                return;
            }
            if Instant::now() >= deadline {
                let logs: String = ids
                    .iter()
                    .map(|id| {
                        let node = self.node(*id);
                        format!(
                            "\n--- broker {id} log ({}):\n{}",
                            node.log_path.display(),
                            scratch::tail(&node.log_path, 4000)
                        )
                    })
                    .collect();
                panic!(
                    "brokers {ids:?} of {} did not register within {START_TIMEOUT:?}{logs}",
                    self.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates the SCRAM credentials of every user the way operators do:
    /// `kafka-configs --alter --add-config 'SCRAM-SHA-256=[password=P]'
    /// --entity-type users --entity-name NAME`, then the same for
    /// SCRAM-SHA-512.
    fn create_scram_users(&self) {
        for (name, password) in &self.options.users {
            // One mechanism per request: KRaft refuses two alterations of
            // one user in one AlterUserScramCredentials.
            for config in [
                format!("SCRAM-SHA-256=[iterations=4096,password={password}]"),
                format!("SCRAM-SHA-512=[password={password}]"),
            ] {
                let mut args = self.admin_target();
                args.extend(
                    [
                        "--alter",
                        "--add-config",
                        &config,
                        "--entity-type",
                        "users",
                        "--entity-name",
                        name,
                    ]
                    .map(str::to_owned),
                );
                self.tool_ok(
                    "kafka-configs",
                    &args.iter().map(String::as_str).collect::<Vec<_>>(),
                );
            }
        }
        if self.options.users.is_empty() {
            return;
        }
        // Credentials travel through the metadata log (or ZooKeeper) to each
        // broker; give them a moment to land.
        std::thread::sleep(Duration::from_millis(500));
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(server) = node.server.take() {
                server.kill();
            }
        }
        self.zookeeper.take();
        scratch::remove_dir(&self.dir, &format!("Kafka cluster {}", self.options.name));
    }
}

/// Escapes a value for a `.properties` file (backslashes; the JAAS quotes
/// and spaces are fine as they are).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\")
}

/// A random cluster id: 16 bytes, base64url without padding, as `kafka-storage
/// random-uuid` prints, never starting with `-` (it would read as a flag).
fn cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut state = nanos ^ (u128::from(std::process::id()) << 64) ^ 0x9E37_79B9_7F4A_7C15;
    let mut bytes = [0u8; 16];
    for byte in &mut bytes {
        // xorshift on 128 bits: enough for distinct test cluster ids.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = (state >> 56) as u8;
    }
    bytes[0] &= 0x7f; // first character from A..f: never '-'
    let mut out = String::new();
    let mut bits = 0u32;
    let mut acc = 0u32;
    for byte in bytes {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}
