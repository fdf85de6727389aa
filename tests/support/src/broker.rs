//! nisshi brokers: one single-broker cluster per [`Broker`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, paths, scratch};

/// How long a broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long `nisshi user create` may take.
const USER_CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a broker keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// `memory://nisshi/`: fast, lost on kill.
    #[default]
    Memory,
    /// `sqlite://<scratch dir>/broker.db`: survives [`Broker::kill`] and
    /// [`Broker::restart`]; needed for users and `--authentication`.
    Sqlite,
}

/// A SCRAM mechanism for [`Broker::create_user_with`] (nisshi's
/// `user create --mechanism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scram {
    /// SCRAM-SHA-256 (`--mechanism scram256`).
    Sha256,
    /// SCRAM-SHA-512 (`--mechanism scram512`, nisshi's default).
    Sha512,
}

impl Scram {
    fn nisshi_name(self) -> &'static str {
        match self {
            Scram::Sha256 => "scram256",
            Scram::Sha512 => "scram512",
        }
    }
}

/// How to start a [`Broker`]. Build with [`BrokerOptions::default`] (memory
/// storage, plaintext, no authentication, a free port) and the methods.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    storage: Storage,
    tls: Option<(PathBuf, PathBuf)>,
    authentication: bool,
    cluster_id: Option<String>,
    port: Option<u16>,
    advertised: Option<String>,
    extra_args: Vec<String>,
    tansu: bool,
}

impl BrokerOptions {
    /// Memory storage (the default).
    pub fn memory() -> Self {
        Self::default()
    }

    /// The tansu build of [`crate::tansu_bin`] instead of nisshi, with
    /// memory storage: a broker that accepts transactional producers.
    pub fn transactional_tansu() -> Self {
        Self {
            tansu: true,
            ..Self::default()
        }
    }

    /// SQLite storage in the broker's scratch directory.
    pub fn sqlite() -> Self {
        Self::default().storage(Storage::Sqlite)
    }

    /// Sets the storage engine.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// Makes the listener TLS-only with this PEM certificate (chain) and
    /// PEM private key (nisshi's `--cert`/`--key`).
    pub fn tls(mut self, cert_pem: impl Into<PathBuf>, key_pem: impl Into<PathBuf>) -> Self {
        self.tls = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Requires SASL authentication (`--authentication`; SQLite storage
    /// only, and the users must exist, see [`Broker::start_with_scram_user`]).
    pub fn authentication(mut self, on: bool) -> Self {
        self.authentication = on;
        self
    }

    /// The cluster id (default `kmirror-test`).
    pub fn cluster_id(mut self, id: impl Into<String>) -> Self {
        self.cluster_id = Some(id.into());
        self
    }

    /// Listens on this port of 127.0.0.1 instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Advertises `host:port` in metadata instead of the listener address
    /// (for a proxy in front of the broker, or a name that must resolve).
    pub fn advertised(mut self, host_port: impl Into<String>) -> Self {
        self.advertised = Some(host_port.into());
        self
    }

    /// Appends raw arguments to `nisshi broker` (for example
    /// `--group-initial-rebalance-delay`, `0`).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }
}

/// A running nisshi broker, a single-broker cluster on 127.0.0.1. Killed
/// (SIGKILL) when dropped; its scratch directory (log, SQLite database) is
/// removed then, unless the test is panicking.
#[derive(Debug)]
pub struct Broker {
    options: BrokerOptions,
    port: u16,
    dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker and waits until its port accepts connections.
    ///
    /// # Panics
    ///
    /// If nisshi is not installed (run `cargo xtask brokers`), cannot start,
    /// or does not accept within 15 s; the message holds its log.
    pub fn start(options: BrokerOptions) -> Self {
        assert!(
            !options.authentication || options.storage == Storage::Sqlite,
            "nisshi's --authentication needs SQLite storage (memory storage cannot hold users)"
        );
        let dir = scratch::new_dir("nisshi");
        let log_path = dir.join("broker.log");
        let port = options.port.unwrap_or_else(free_port);
        let mut broker = Self {
            options,
            port,
            dir,
            log_path,
            child: None,
        };
        broker.spawn();
        broker
    }

    /// Starts a SQLite broker that requires SASL and knows the user `name`
    /// with `password` for both SCRAM-SHA-256 and SCRAM-SHA-512 (PLAIN is
    /// not offered by nisshi).
    ///
    /// nisshi creates users only while running without `--authentication`,
    /// so this starts it plain, runs `nisshi user create`, and restarts it
    /// with `--authentication` on the same database and port.
    ///
    /// # Panics
    ///
    /// As [`Broker::start`], or if the user cannot be created.
    pub fn start_with_scram_user(name: &str, password: &str) -> Self {
        Self::start_with_scram_users(BrokerOptions::sqlite(), &[(name, password)])
    }

    /// Like [`Broker::start_with_scram_user`] with several users and other
    /// options (TLS, cluster id...); the storage is forced to SQLite and the
    /// users are created over a plaintext listener before TLS is switched on.
    ///
    /// # Panics
    ///
    /// As [`Broker::start`], or if a user cannot be created.
    pub fn start_with_scram_users(options: BrokerOptions, users: &[(&str, &str)]) -> Self {
        let wanted = options.storage(Storage::Sqlite).authentication(true);
        let mut setup = wanted.clone().authentication(false);
        setup.tls = None;
        let mut broker = Self::start(setup);
        for (name, password) in users {
            broker.create_user(name, password);
        }
        broker.kill();
        broker.options = wanted;
        broker.spawn();
        broker
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The listener's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's scratch directory (log, database).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything the broker wrote to stdout and stderr, across restarts
    /// (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Whether the process is running (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the broker with SIGKILL and waits for it to exit. Memory
    /// storage loses everything; SQLite keeps what was committed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.note("killed");
        }
    }

    /// Starts the broker again on the same port with the same options and
    /// (for SQLite) the same database, killing it first if it runs.
    ///
    /// # Panics
    ///
    /// As [`Broker::start`].
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Creates a user with SCRAM-SHA-256 and SCRAM-SHA-512 credentials
    /// (`nisshi user create`, once per mechanism). nisshi accepts this only
    /// while running without `--authentication`; SQLite storage keeps the
    /// user across the restart that switches it on.
    ///
    /// # Panics
    ///
    /// If the command fails; the message holds its output and the broker log.
    pub fn create_user(&self, name: &str, password: &str) {
        self.create_user_with(name, password, Scram::Sha256);
        self.create_user_with(name, password, Scram::Sha512);
    }

    /// Creates a user with a credential for one SCRAM mechanism only:
    /// `nisshi user create --broker tcp://127.0.0.1:PORT --mechanism M NAME PASSWORD`.
    ///
    /// # Panics
    ///
    /// As [`Broker::create_user`].
    pub fn create_user_with(&self, name: &str, password: &str, mechanism: Scram) {
        let nisshi = paths::nisshi_bin();
        let out_path = self.dir.join("user-create.log");
        let out = File::create(&out_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", out_path.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone a file handle: {e}"));
        let broker_url = format!("tcp://{}", self.addr());
        let mut child = Command::new(&nisshi)
            .args(["user", "create", "--broker", &broker_url, "--mechanism"])
            .arg(mechanism.nisshi_name())
            .args([name, password])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", nisshi.display()));
        let status = scratch::wait_with_timeout(&mut child, USER_CREATE_TIMEOUT);
        if !status.is_some_and(|s| s.success()) {
            panic!(
                "`nisshi user create --broker {broker_url} --mechanism {} {name} ...` failed ({status:?})\n--- its output:\n{}\n--- broker log:\n{}",
                mechanism.nisshi_name(),
                scratch::tail(&out_path, 4000),
                scratch::tail(&self.log_path, 4000)
            );
        }
    }

    fn args(&self) -> Vec<String> {
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = self
            .options
            .advertised
            .as_ref()
            .map_or_else(|| listener.clone(), |a| format!("tcp://{a}"));
        let storage = match self.options.storage {
            Storage::Memory if self.options.tansu => "memory://tansu/".to_owned(),
            Storage::Memory => "memory://nisshi/".to_owned(),
            // nisshi reads the URL's path relative to its working directory
            // after dropping one slash: `sqlite:////abs/path` is absolute.
            Storage::Sqlite => format!("sqlite:///{}", self.dir.join("broker.db").display()),
        };
        let mut args = vec![
            "broker".to_owned(),
            "--listener-url".to_owned(),
            listener,
            "--advertised-listener-url".to_owned(),
            advertised,
            "--storage-engine".to_owned(),
            storage,
            "--cluster-id".to_owned(),
            self.options
                .cluster_id
                .clone()
                .unwrap_or_else(|| "kmirror-test".to_owned()),
        ];
        if let Some((cert, key)) = &self.options.tls {
            args.push("--cert".to_owned());
            args.push(cert.display().to_string());
            args.push("--key".to_owned());
            args.push(key.display().to_string());
        }
        if self.options.authentication {
            args.push("--authentication".to_owned());
        }
        if !self.options.tansu {
            // Groups form at once, as Kafka's own tests configure
            // (group.initial.rebalance.delay.ms=0): every kmirror start
            // joins its group.
            args.push("--group-initial-rebalance-delay".to_owned());
            args.push("0s".to_owned());
        }
        args.extend(self.options.extra_args.iter().cloned());
        args
    }

    /// Appends a marker line to the log.
    fn note(&self, what: &str) {
        if let Ok(mut log) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
        {
            let _ = writeln!(log, "=== kmirror-test-support: {what}");
        }
    }

    /// Starts the process and waits for the port. A restart can race the
    /// old listener's release, so an early "address in use" exit is retried
    /// until the deadline.
    fn spawn(&mut self) {
        let nisshi = if self.options.tansu {
            paths::tansu_bin()
        } else {
            paths::nisshi_bin()
        };
        let args = self.args();
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.note(&format!("starting {} {}", nisshi.display(), args.join(" ")));
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log_path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log_path.display()));
            let log_err = log
                .try_clone()
                .unwrap_or_else(|e| panic!("cannot clone a file handle: {e}"));
            let child = Command::new(&nisshi)
                .args(&args)
                .current_dir(&self.dir)
                .env("RUST_BACKTRACE", "1")
                // The command line says everything; no stray settings.
                .env_remove("SCHEMA_REGISTRY")
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", nisshi.display()));
            self.child = Some(child);
            match self.wait_for_port(address, deadline) {
                Ok(()) => return,
                Err(exited) => {
                    let log = self.log();
                    let in_use = log
                        .rsplit("=== kmirror-test-support: starting")
                        .next()
                        .is_some_and(|last| last.contains("in use") || last.contains("AddrInUse"));
                    if !(exited && in_use && Instant::now() < deadline) {
                        self.kill();
                        panic!(
                            "nisshi on {address} {}; its command line: {} {}\n--- log ({}):\n{}",
                            if exited {
                                "exited before accepting connections"
                            } else {
                                "did not accept connections within 15 s"
                            },
                            nisshi.display(),
                            args.join(" "),
                            self.log_path.display(),
                            scratch::tail(&self.log_path, 6000)
                        );
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Polls until the port accepts; `Err(true)` if the process exited,
    /// `Err(false)` at the deadline.
    fn wait_for_port(&mut self, address: SocketAddr, deadline: Instant) -> Result<(), bool> {
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if !self.is_running() {
                if let Some(mut child) = self.child.take() {
                    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    self.note(&format!("exited: {status}"));
                }
                return Err(true);
            }
            if Instant::now() >= deadline {
                return Err(false);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        scratch::remove_dir(&self.dir, &format!("nisshi broker on port {}", self.port));
    }
}
