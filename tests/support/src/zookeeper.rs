//! Standalone ZooKeeper servers from Debian's `zookeeper` package, for tests
//! of discovery through `zookeeper.connect`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, scratch};

/// Debian's server script; its presence means the package is installed.
const ZK_SERVER_SH: &str = "/usr/share/zookeeper/bin/zkServer.sh";
/// Debian's CLI script.
const ZK_CLI_SH: &str = "/usr/share/zookeeper/bin/zkCli.sh";
/// The server jar (its manifest's Class-Path names the other jars).
const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
/// An SLF4J binding that logs to stderr, so the server log says something.
const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";

/// How long the JVM may take to serve.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `zkCli.sh` batch may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

const INSTALL_HINT: &str = "install Debian's ZooKeeper with \
     `apt-get update && apt-get install -y zookeeper` (needs a Java runtime; CI's .ci/run installs it)";

/// A standalone ZooKeeper server on 127.0.0.1 with a scratch data
/// directory, started with `QuorumPeerMain` and a generated `zoo.cfg`
/// (admin server off, the `ruok` and `srvr` four-letter words on). Killed
/// when dropped.
#[derive(Debug)]
pub struct ZooKeeper {
    port: u16,
    dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

impl ZooKeeper {
    /// Whether Debian's `zookeeper` package is installed.
    pub fn is_installed() -> bool {
        Path::new(ZK_SERVER_SH).is_file() && Path::new(ZK_JAR).is_file()
    }

    /// Starts a server on a free port and waits until it answers `ruok`.
    ///
    /// # Panics
    ///
    /// If ZooKeeper is not installed (the message says how to install it),
    /// or the server does not serve within 30 s (the message holds its log).
    pub fn start() -> Self {
        assert!(
            Self::is_installed(),
            "ZooKeeper is not installed ({ZK_SERVER_SH} or {ZK_JAR} is missing); {INSTALL_HINT}"
        );
        let dir = scratch::new_dir("zookeeper");
        let port = free_port();
        let data = dir.join("data");
        std::fs::create_dir_all(&data)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", data.display()));
        let config = dir.join("zoo.cfg");
        std::fs::write(
            &config,
            format!(
                "tickTime=2000\n\
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

        let mut classpath = format!("{}:{ZK_JAR}", dir.display());
        if Path::new(SLF4J_SIMPLE_JAR).is_file() {
            classpath.push(':');
            classpath.push_str(SLF4J_SIMPLE_JAR);
        }
        let log_path = dir.join("zookeeper.log");
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone a file handle: {e}"));
        let child = Command::new("java")
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .arg("-cp")
            .arg(&classpath)
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run java for ZooKeeper: {e}; a Java runtime is needed ({INSTALL_HINT})"
                )
            });
        let mut server = Self {
            port,
            dir,
            log_path,
            child: Some(child),
        };
        server.wait_until_serving();
        server
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
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Creates persistent znodes `(path, data)` with ZooKeeper's own CLI
    /// (`zkCli.sh -server 127.0.0.1:PORT`, one batch), creating missing
    /// parents with empty data first. Data must not contain `'` or a line
    /// break (Kafka's registration JSON does not).
    ///
    /// # Panics
    ///
    /// If a listed node already exists or the CLI fails; the message holds
    /// the CLI's output.
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
                "znode data for zkCli.sh cannot contain a quote or a line break: {data:?}"
            );
            for (index, _) in path.match_indices('/').skip(1) {
                let parent = path.get(..index).unwrap_or_default();
                if !parents.contains(&parent) && !nodes.iter().any(|(p, _)| *p == parent) {
                    parents.push(parent);
                    commands.push_str(&format!("create {parent} ''\n"));
                }
            }
        }
        // Listed nodes in order, after their parents (a listed parent comes
        // first when the caller lists it first).
        for (path, data) in nodes {
            commands.push_str(&format!("create {path} '{data}'\n"));
        }
        // zkCli.sh can lose its first connection on a loaded machine
        // (ConnectionLoss): retry what is missing; "already exists" from an
        // earlier attempt counts as created.
        let created = |output: &str, path: &str| {
            output.contains(&format!("Created {path}\n"))
                || output.contains(&format!("Node already exists: {path}"))
        };
        let mut output = String::new();
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(500));
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
            "zkCli.sh did not create {missing:?} in 5 attempts\n--- commands:\n{commands}\n--- output:\n{output}"
        );
    }

    /// Runs `zkCli.sh -server 127.0.0.1:PORT` with `commands` (one per line)
    /// on its stdin and returns its output.
    ///
    /// # Panics
    ///
    /// If the CLI cannot run or takes longer than a minute.
    pub fn cli(&self, commands: &str) -> String {
        let out_path = self.dir.join("cli.log");
        let out = File::create(&out_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", out_path.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone a file handle: {e}"));
        let mut child = Command::new(ZK_CLI_SH)
            .args(["-server", &self.addr()])
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {ZK_CLI_SH}: {e}; {INSTALL_HINT}"));
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(commands.as_bytes());
            let _ = stdin.write_all(b"quit\n");
        }
        let status = scratch::wait_with_timeout(&mut child, CLI_TIMEOUT);
        let output = std::fs::read(&out_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        assert!(
            status.is_some(),
            "zkCli.sh ran longer than {CLI_TIMEOUT:?}\n--- output:\n{output}"
        );
        output
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_until_serving(&mut self) {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if four_letter_word(address, "ruok").as_deref() == Some("imok") {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .is_none_or(|child| !matches!(child.try_wait(), Ok(None)));
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
