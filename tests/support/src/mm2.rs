//! MirrorMaker 2's checkpoint records through Apache Kafka's own classes:
//! `tests/support/java/Mm2Checkpoints.java`, run from source by Java 17
//! with the MirrorMaker 2 jars (`connect-mirror-client` 4.3.1 and its
//! dependencies) that `cargo xtask brokers` installs under
//! `${KMIRROR_TOOLS:-$HOME/.cache/kmirror/tools}/mm2-4.3.1`.
//!
//! Every call starts one JVM (about a second), so the batch forms
//! ([`java_decode_checkpoints`], [`java_encode_checkpoints`]) take many
//! records at once.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kmirror_test_cluster::{scratch, tools_root};

/// The MirrorMaker 2 distribution's directory under the tools root.
const MM2_DIR: &str = "mm2-4.3.1";

/// How long one run of the Java program may take. `translate` waits up to
/// 30 s in `RemoteClusterUtils` and the consumer's own API timeout (60 s)
/// on top; decoding and encoding take a second or two.
const JAVA_TIMEOUT: Duration = Duration::from_secs(180);

/// JVM options for a short run: start fast, no GC threads to speak of.
const JVM_OPTS: &[&str] = &[
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
];

/// A checkpoint as Java's `org.apache.kafka.connect.mirror.Checkpoint` sees
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JavaCheckpoint {
    /// `consumerGroupId()`.
    pub group: String,
    /// `topicPartition().topic()`: the downstream topic.
    pub topic: String,
    /// `topicPartition().partition()`.
    pub partition: i32,
    /// `upstreamOffset()`.
    pub upstream_offset: i64,
    /// `downstreamOffset()`.
    pub downstream_offset: i64,
    /// `metadata()`.
    pub metadata: String,
}

fn program() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/java/Mm2Checkpoints.java"
    ))
}

/// The MirrorMaker 2 distribution.
///
/// # Panics
///
/// If it is not installed, with a message saying to run
/// `cargo xtask brokers`.
fn mm2_dist() -> PathBuf {
    let dist = tools_root().join(MM2_DIR);
    assert!(
        dist.join("INSTALLED").is_file() && dist.join("lib").is_dir(),
        "MirrorMaker 2 (connect-mirror 4.3.1) is not installed under {}; run `cargo xtask brokers` \
         (it resolves the jars from Maven Central with mvn and needs Java 17; set KMIRROR_TOOLS \
         to use another tools directory)",
        dist.display()
    );
    dist
}

/// Runs `Mm2Checkpoints.java MODE ARGS...` and returns its standard
/// output.
///
/// # Panics
///
/// If the jars are missing, Java cannot start, the program fails (the
/// message holds its stderr) or runs longer than [`JAVA_TIMEOUT`].
fn run_java(mode: &str, args: &[String]) -> String {
    let dist = mm2_dist();
    let java = std::env::var_os("JAVA_HOME")
        .filter(|home| !home.is_empty())
        .map_or_else(
            || PathBuf::from("java"),
            |home| PathBuf::from(home).join("bin").join("java"),
        );
    let dir = scratch::new_dir("mm2-java");
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    let create = |path: &Path| {
        File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
    };
    let mut classpath = dist.join("lib").into_os_string();
    classpath.push("/*");
    let mut log_config = std::ffi::OsString::from("-Dlog4j2.configurationFile=");
    log_config.push(dist.join("config").join("log4j2.properties"));
    let mut child = Command::new(&java)
        .args(JVM_OPTS)
        .arg(log_config)
        .arg("-cp")
        .arg(&classpath)
        .arg(program())
        .arg(mode)
        .args(args)
        // Java decodes its command line with the locale's charset.
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(create(&out_path))
        .stderr(create(&err_path))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} (Java 17 is needed): {e}", java.display()));
    let status = scratch::wait_with_timeout(&mut child, JAVA_TIMEOUT);
    let stdout = std::fs::read(&out_path).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = scratch::tail(&err_path, 8000);
    let _ = std::fs::remove_dir_all(&dir);
    let shown: Vec<&str> = args
        .iter()
        .map(|a| a.get(..a.len().min(80)).unwrap_or(a))
        .take(12)
        .collect();
    match status {
        Some(status) if status.success() => stdout,
        Some(status) => panic!(
            "Mm2Checkpoints.java {mode} failed ({status}), args {shown:?}...\n--- stderr:\n{stderr}\n--- stdout:\n{stdout}"
        ),
        None => panic!(
            "Mm2Checkpoints.java {mode} ran longer than {JAVA_TIMEOUT:?} and was killed, args {shown:?}...\n--- stderr:\n{stderr}\n--- stdout:\n{stdout}"
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(
        text.len().is_multiple_of(2),
        "odd-length hex from Java: {text:?}"
    );
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .unwrap_or_else(|| panic!("bad hex from Java: {text:?}"))
        })
        .collect()
}

/// Undoes the program's escapes (`\\`, `\t`, `\n`, `\r`).
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => panic!("bad escape \\{other:?} from Java in {text:?}"),
        }
    }
    out
}

fn parse<T: std::str::FromStr>(field: &str, line: &str) -> T {
    field
        .parse()
        .unwrap_or_else(|_| panic!("cannot parse {field:?} in Java's line {line:?}"))
}

/// Decodes each (key, value) pair with Java's
/// `Checkpoint.deserializeRecord`, in one JVM: `Ok` with what Java read, or
/// `Err` with the exception Java threw (`SchemaException`, ...).
///
/// # Panics
///
/// If the jars are missing or the program fails.
pub fn java_decode_checkpoints(records: &[(&[u8], &[u8])]) -> Vec<Result<JavaCheckpoint, String>> {
    if records.is_empty() {
        return Vec::new();
    }
    let args: Vec<String> = records
        .iter()
        .flat_map(|(key, value)| [hex(key), hex(value)])
        .collect();
    let stdout = run_java("decode", &args);
    let results: Vec<Result<JavaCheckpoint, String>> = stdout
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                ["ERROR", error] => Err(unescape(error)),
                [group, topic, partition, upstream, downstream, metadata] => Ok(JavaCheckpoint {
                    group: unescape(group),
                    topic: unescape(topic),
                    partition: parse(partition, line),
                    upstream_offset: parse(upstream, line),
                    downstream_offset: parse(downstream, line),
                    metadata: unescape(metadata),
                }),
                _ => panic!("unexpected line from Mm2Checkpoints.java decode: {line:?}"),
            }
        })
        .collect();
    assert_eq!(
        results.len(),
        records.len(),
        "Mm2Checkpoints.java decode printed {} lines for {} records:\n{stdout}",
        results.len(),
        records.len()
    );
    results
}

/// Decodes one checkpoint record with Java's
/// `Checkpoint.deserializeRecord`.
///
/// # Panics
///
/// If the jars are missing, the program fails, or Java refuses the bytes
/// (the message holds Java's exception).
pub fn java_decode_checkpoint(key: &[u8], value: &[u8]) -> JavaCheckpoint {
    match java_decode_checkpoints(&[(key, value)]).pop() {
        Some(Ok(checkpoint)) => checkpoint,
        Some(Err(error)) => panic!(
            "Java's Checkpoint.deserializeRecord refused key {} value {}: {error}",
            hex(key),
            hex(value)
        ),
        None => panic!("Mm2Checkpoints.java decode printed nothing"),
    }
}

/// Encodes each checkpoint with Java's `Checkpoint.recordKey()` and
/// `recordValue()`, in one JVM, and returns the (key, value) bytes.
///
/// The strings go on Java's command line, so they must not contain NUL;
/// Java refuses a string longer than 32767 bytes of UTF-8 (the program
/// then fails and this panics).
///
/// # Panics
///
/// If the jars are missing or the program fails.
pub fn java_encode_checkpoints(checkpoints: &[JavaCheckpoint]) -> Vec<(Vec<u8>, Vec<u8>)> {
    if checkpoints.is_empty() {
        return Vec::new();
    }
    let args: Vec<String> = checkpoints
        .iter()
        .flat_map(|c| {
            [
                c.group.clone(),
                c.topic.clone(),
                c.partition.to_string(),
                c.upstream_offset.to_string(),
                c.downstream_offset.to_string(),
                c.metadata.clone(),
            ]
        })
        .collect();
    let stdout = run_java("encode", &args);
    let records: Vec<(Vec<u8>, Vec<u8>)> = stdout
        .lines()
        .map(|line| match line.split_once('\t') {
            Some((key, value)) => (unhex(key), unhex(value)),
            None => panic!("unexpected line from Mm2Checkpoints.java encode: {line:?}"),
        })
        .collect();
    assert_eq!(
        records.len(),
        checkpoints.len(),
        "Mm2Checkpoints.java encode printed {} lines for {} checkpoints:\n{stdout}",
        records.len(),
        checkpoints.len()
    );
    records
}

/// What MirrorMaker 2's own client makes of the checkpoints on the cluster
/// at `bootstrap`: `RemoteClusterUtils.translateOffsets` for `group` with
/// the checkpoints of source cluster `source_alias` (topic
/// `<source_alias>.checkpoints.internal`, partition 0), with a 30 s
/// timeout. Maps (downstream topic, partition) to the translated offset.
///
/// When the checkpoints topic does not exist, what happens depends on the
/// broker (seen with Kafka 4.4.0): with `auto.create.topics.enable=true`
/// (Kafka's default) the consumer's metadata request creates the topic and
/// the answer is empty within about a second; with `false`,
/// `translateOffsets` waits for the consumer's `default.api.timeout.ms`
/// (60 s, not the 30 s passed to it) and fails with `TimeoutException:
/// Failed to get offsets by times in 60000ms`, and this panics.
///
/// # Panics
///
/// If the jars are missing, the call fails, or it runs longer than three
/// minutes.
pub fn remote_cluster_utils_translate(
    bootstrap: &str,
    source_alias: &str,
    group: &str,
) -> BTreeMap<(String, i32), i64> {
    let args = [
        bootstrap.to_owned(),
        source_alias.to_owned(),
        group.to_owned(),
    ];
    let stdout = run_java("translate", &args);
    stdout
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                [topic, partition, offset] => (
                    (unescape(topic), parse(partition, line)),
                    parse(offset, line),
                ),
                _ => panic!("unexpected line from Mm2Checkpoints.java translate: {line:?}"),
            }
        })
        .collect()
}
