//! Third-party clients: inline Python scripts run by the venv's interpreter,
//! and librdkafka (confluent-kafka) admin calls built on them.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use kmirror_test_cluster::scratch;

use crate::paths;

/// How long a script may run before it is killed and the test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `script` (Python source) with the venv's interpreter, `args` as
/// `sys.argv[1:]`, and returns its standard output.
///
/// # Panics
///
/// If the venv is missing, the script exits with an error (the message
/// holds its stderr and stdout), or it runs longer than three minutes.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let python = paths::venv_python();
    let dir = scratch::new_dir("python");
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    let create = |path: &std::path::Path| {
        File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
    };
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(create(&out_path))
        .stderr(create(&err_path))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let status = scratch::wait_with_timeout(&mut child, SCRIPT_TIMEOUT);
    let stdout = std::fs::read(&out_path).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = scratch::tail(&err_path, 8000);
    let _ = std::fs::remove_dir_all(&dir);
    match status {
        Some(status) if status.success() => stdout,
        Some(status) => panic!(
            "python script failed ({status}), args {args:?}\n--- stderr:\n{stderr}\n--- stdout:\n{stdout}\n--- script:\n{script}"
        ),
        None => panic!(
            "python script ran longer than {SCRIPT_TIMEOUT:?} and was killed, args {args:?}\n--- stderr:\n{stderr}\n--- stdout:\n{stdout}\n--- script:\n{script}"
        ),
    }
}

const CREATE_TOPIC: &str = r#"
import sys
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = dict(pair.split("=", 1) for pair in sys.argv[4:])
admin = AdminClient({"bootstrap.servers": bootstrap})
futures = admin.create_topics(
    [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config)],
    request_timeout=30,
)
for future in futures.values():
    future.result(timeout=60)
print("created")
"#;

const LIST_TOPICS: &str = r#"
import sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
metadata = admin.list_topics(timeout=30)
for name in sorted(metadata.topics):
    print(name)
"#;

/// Creates `topic` with `partitions` partitions (replication factor 1) and
/// the given topic configs through librdkafka's admin client (a
/// cross-check with a client nobody here wrote).
///
/// # Panics
///
/// If the venv is missing or the broker refuses.
pub fn librdkafka_create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let partitions = partitions.to_string();
    let pairs: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec![bootstrap, topic, partitions.as_str()];
    args.extend(pairs.iter().map(String::as_str));
    run_python(CREATE_TOPIC, &args);
}

/// The topic names librdkafka's metadata shows for the cluster at
/// `bootstrap`, sorted (internal topics included).
///
/// # Panics
///
/// If the venv is missing or the cluster does not answer within 30 s.
pub fn librdkafka_list_topics(bootstrap: &str) -> Vec<String> {
    run_python(LIST_TOPICS, &[bootstrap])
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}
