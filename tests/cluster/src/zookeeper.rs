//! Standalone ZooKeeper servers, from the ZooKeeper 3.8 jars on Apache
//! Kafka 3.9's classpath: the coordination service of ZooKeeper-mode
//! clusters, and what `zookeeper.connect` discovery reads.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{Server, note};
use crate::tools::{KafkaVersion, kafka_tool, run_tool};
use crate::{free_port, scratch};

/// How long the JVM may take to serve.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A standalone ZooKeeper server on 127.0.0.1 with a scratch data
/// directory (admin server off, the `ruok` and `srvr` four-letter words
/// on). Killed when dropped, or when the process that started it exits.
#[derive(Debug)]
pub struct ZooKeeper {
    port: u16,
    dir: PathBuf,
    log_path: PathBuf,
    server: Option<Server>,
}

impl ZooKeeper {
    /// Starts a server on a free port and waits until it answers `ruok`.
    ///
    /// # Panics
    ///
    /// If Kafka 3.9 is not installed (run `cargo xtask brokers`), or the
    /// server does not serve within 30 s (the message holds its log).
    pub fn start() -> Self {
        let launcher = kafka_tool(KafkaVersion::V3_9);
        let dir = scratch::new_dir("zookeeper");
        let port = free_port();
        let data = dir.join("data");
        std::fs::create_dir_all(&data)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", data.display()));
        let config = dir.join("zoo.cfg");
        std::fs::write(
            &config,
            format!(
                "tickTime=500\n\
                 dataDir={}\n\
                 clientPort={port}\n\
                 clientPortAddress=127.0.0.1\n\
                 maxClientCnxns=0\n\
                 admin.enableServer=false\n\
                 4lw.commands.whitelist=ruok,srvr\n",
                data.display()
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let log_path = dir.join("zookeeper.log");
        let mut command = Command::new(launcher);
        command
            .args(["3.9.2", "zookeeper-server"])
            .arg(&config)
            .env("KAFKA_HEAP_OPTS", "-Xmx128m")
            .env("KAFKA_JVM_PERFORMANCE_OPTS", crate::cluster::QUICK_JVM_OPTS);
        note(&log_path, "starting ZooKeeper");
        let server = Server::spawn(command, &log_path);
        let mut zk = Self {
            port,
            dir,
            log_path,
            server: Some(server),
        };
        zk.wait_until_serving();
        zk
    }

    /// `127.0.0.1:PORT`, for `zookeeper.connect`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's output so far (for failure messages).
    pub fn log(&self) -> String {
        scratch::tail(&self.log_path, 1 << 20)
    }

    /// Creates persistent znodes `(path, data)` with ZooKeeper's own CLI
    /// (`org.apache.zookeeper.ZooKeeperMain`, one batch on its stdin),
    /// creating missing parents with empty data first. Data must not
    /// contain `'` or a line break (Kafka's registration JSON does not).
    ///
    /// # Panics
    ///
    /// If a listed node cannot be created; the message holds the CLI's
    /// output.
    pub fn create(&self, nodes: &[(&str, &str)]) {
        let mut commands = String::new();
        let mut parents: Vec<&str> = Vec::new();
        for (path, data) in nodes {
            assert!(
                path.starts_with('/')
                    && !path.ends_with('/')
                    && !path.contains(char::is_whitespace),
                "not a znode path: {path:?}"
            );
            assert!(
                !data.contains(['\'', '\n', '\r']),
                "znode data for the ZooKeeper CLI cannot contain a quote or a line break: {data:?}"
            );
            for (index, _) in path.match_indices('/').skip(1) {
                let parent = path.get(..index).unwrap_or_default();
                if !parents.contains(&parent) && !nodes.iter().any(|(p, _)| *p == parent) {
                    parents.push(parent);
                    commands.push_str(&format!("create {parent} ''\n"));
                }
            }
        }
        for (path, data) in nodes {
            commands.push_str(&format!("create {path} '{data}'\n"));
        }
        let created = |output: &str, path: &str| {
            output.contains(&format!("Created {path}"))
                || output.contains(&format!("Node already exists: {path}"))
        };
        // The CLI can lose its first connection on a loaded machine
        // (ConnectionLoss): retry what is missing.
        let mut output = String::new();
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500));
            }
            output = self.cli(&commands);
            if nodes.iter().all(|(path, _)| created(&output, path)) {
                return;
            }
        }
        let missing: Vec<&str> = nodes
            .iter()
            .map(|(path, _)| *path)
            .filter(|path| !created(&output, path))
            .collect();
        panic!(
            "the ZooKeeper CLI did not create {missing:?} in 5 attempts\n--- commands:\n{commands}\n--- output:\n{output}"
        );
    }

    /// Runs ZooKeeper's CLI against this server with `commands` (one per
    /// line) on its stdin and returns everything it printed.
    ///
    /// # Panics
    ///
    /// If the CLI cannot run or takes longer than two minutes.
    pub fn cli(&self, commands: &str) -> String {
        let mut input = commands.to_owned();
        input.push_str("quit\n");
        let output = run_tool(
            KafkaVersion::V3_9,
            "kafka-run-class",
            &[
                "org.apache.zookeeper.ZooKeeperMain",
                "-server",
                &self.addr(),
            ],
            Some(&input),
        );
        format!("{}{}", output.stdout, output.stderr)
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
            note(&self.log_path, "killed");
        }
    }

    fn wait_until_serving(&mut self) {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if four_letter_word(address, "ruok").as_deref() == Some("imok") {
                return;
            }
            let exited = self.server.as_ref().is_none_or(|s| !s.is_running());
            if exited || Instant::now() >= deadline {
                self.kill();
                panic!(
                    "ZooKeeper on {address} {}\n--- log ({}):\n{}",
                    if exited {
                        "exited before serving"
                    } else {
                        "did not answer `ruok` within 30 s"
                    },
                    self.log_path.display(),
                    scratch::tail(&self.log_path, 6000)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Sends a four-letter command and returns the answer.
fn four_letter_word(address: SocketAddr, word: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(word.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.kill();
        scratch::remove_dir(&self.dir, &format!("ZooKeeper on port {}", self.port));
    }
}
