//! A continuous producer for the end-to-end tests: librdkafka (the test
//! venv's confluent-kafka) with `acks=all` and idempotence, Java's
//! partitioner over numbered keys.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kmirror_test_support::venv_python;

use super::tail;

/// The continuous producer: runs until the file `argv[3]` exists, then
/// flushes and prints what it produced and what was delivered.
const PRODUCER: &str = r#"
import os, sys, time
from confluent_kafka import Producer
bootstrap, topic, stop_path = sys.argv[1], sys.argv[2], sys.argv[3]
rate, keys, size, batch = (int(a) for a in sys.argv[4:8])
errors = []
delivered = [0]
def on_delivery(err, msg):
    if err is not None:
        errors.append(f"partition {msg.partition()}: {err}")
    else:
        delivered[0] += 1
producer = Producer({
    "bootstrap.servers": bootstrap,
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 10,
    "batch.num.messages": batch,
    "partitioner": "murmur2_random",
    "on_delivery": on_delivery,
})
pad = bytes(range(256)) * (size // 256 + 1)
start = time.monotonic()
i = 0
while not os.path.exists(stop_path):
    due = int((time.monotonic() - start) * rate)
    while i < due:
        prefix = b"value-%d:" % i
        try:
            producer.produce(topic, prefix + pad[: max(0, size - len(prefix))], b"key-%d" % (i % keys))
        except BufferError:
            producer.poll(0.05)
            continue
        i += 1
    producer.poll(0.02)
left = producer.flush(150)
print(f"produced {i} delivered {delivered[0]} undelivered {left} errors {len(errors)}")
for e in errors[:5]:
    print("error", e)
sys.exit(1 if errors or left else 0)
"#;

/// librdkafka writing numbered, keyed records (`key-{i % keys}`, values
/// `value-{i}:` padded to `value_size`, the numbering
/// [`super::assert_complete_in_order`] reads) into a topic at a fixed rate
/// until [`ContinuousProducer::finish`]; killed on drop.
pub struct ContinuousProducer {
    child: Option<Child>,
    dir: PathBuf,
    started: Instant,
}

impl ContinuousProducer {
    /// Starts producing `rate` records a second into `topic`, in batches
    /// of at most `max_batch` records.
    pub fn start(
        bootstrap: &str,
        topic: &str,
        rate: u32,
        keys: u32,
        value_size: usize,
        max_batch: u32,
    ) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kmirror-{}-producer-{}-{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let child = Command::new(venv_python())
            .arg("-c")
            .arg(PRODUCER)
            .arg(bootstrap)
            .arg(topic)
            .arg(dir.join("stop"))
            .args([
                rate.to_string(),
                keys.to_string(),
                value_size.to_string(),
                max_batch.to_string(),
            ])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(file("out"))
            .stderr(file("err"))
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            dir,
            started: Instant::now(),
        }
    }

    /// What the producer printed.
    pub fn output(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "--- producer stdout:\n{}--- producer stderr:\n{}",
            read("out"),
            tail(&read("err"), 4000)
        )
    }

    /// Panics if the producer has ended before it was told to.
    pub fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("the producer exited ({status}) {when}:\n{}", self.output());
        }
    }

    /// Stops producing, waits for the flush; returns how many records were
    /// produced (every one of them delivered) and for how long.
    pub fn finish(mut self) -> (u64, Duration) {
        std::fs::write(self.dir.join("stop"), b"").unwrap();
        let produced_for = self.started.elapsed();
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(200);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the producer did not finish its flush:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let output = self.output();
        assert!(
            status.success(),
            "the producer failed ({status}):\n{output}"
        );
        let line = output
            .lines()
            .find(|l| l.starts_with("produced "))
            .unwrap_or_else(|| panic!("no count from the producer:\n{output}"));
        let fields: Vec<&str> = line.split(' ').collect();
        let produced: u64 = fields[1].parse().unwrap();
        let delivered: u64 = fields[3].parse().unwrap();
        assert_eq!(produced, delivered, "{output}");
        (produced, produced_for)
    }
}

impl Drop for ContinuousProducer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
