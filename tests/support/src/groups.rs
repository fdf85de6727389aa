//! A consumer group as its users run it: librdkafka (confluent-kafka)
//! subscribing with a `group.id`, reading from the group's committed
//! offsets (or the earliest), committing what it read, and leaving. What
//! the failover tests move from the source cluster to the destination.

use std::collections::BTreeMap;

use crate::python::run_python;

const GROUP_READ: &str = r#"
import sys, time
from confluent_kafka import Consumer, KafkaError
bootstrap, group, topic, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
    "session.timeout.ms": 10000,
})
md = consumer.list_topics(topic, timeout=30).topics.get(topic)
if md is None or md.error is not None:
    sys.exit(f"topic {topic!r} is not readable at {bootstrap}: {None if md is None else md.error}")
parts = set(md.partitions)
consumer.subscribe([topic])
read = 0
at_end = set()
deadline = time.monotonic() + 120
out = []
while (limit < 0 and at_end != parts) or (limit >= 0 and read < limit):
    if time.monotonic() > deadline:
        sys.exit(f"group {group!r} read {read} records of {topic!r} at {bootstrap} in 120 s; at the end: {sorted(at_end)}")
    m = consumer.poll(0.5)
    if m is None:
        continue
    if m.error() is not None:
        if m.error().code() == KafkaError._PARTITION_EOF:
            at_end.add(m.partition())
            continue
        sys.exit(f"consume error: {m.error()}")
    at_end.discard(m.partition())
    v = m.value()
    out.append(f"R {m.partition()} {m.offset()} {'-' if v is None else v.hex()}")
    read += 1
if read > 0:
    consumer.commit(asynchronous=False)
for line in out:
    print(line)
consumer.close()
print("E")
"#;

/// One record a group member read: partition, offset, value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// The partition.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The value (`None`: null).
    pub value: Option<Vec<u8>>,
}

/// Joins `group` with librdkafka, reads `topic` from the group's committed
/// offsets (the earliest where none) with `read_committed`, `limit`
/// records (every partition to its end with `None`), commits the positions
/// it reached, and leaves the group. Returns the records in the order
/// read.
///
/// # Panics
///
/// If the topic does not exist, a read fails, or the records do not come
/// within 120 s.
pub fn librdkafka_group_read(
    bootstrap: &str,
    group: &str,
    topic: &str,
    limit: Option<u64>,
) -> Vec<GroupRecord> {
    let limit = limit.map_or_else(|| "-1".to_owned(), |l| l.to_string());
    let out = run_python(GROUP_READ, &[bootstrap, group, topic, &limit]);
    let mut records = Vec::new();
    for line in out.lines() {
        let mut fields = line.split(' ');
        match fields.next() {
            Some("R") => {
                let (Some(p), Some(o), Some(v)) = (fields.next(), fields.next(), fields.next())
                else {
                    panic!("bad line from the group reader: {line:?}");
                };
                records.push(GroupRecord {
                    partition: p.parse().unwrap_or_else(|e| panic!("{line:?}: {e}")),
                    offset: o.parse().unwrap_or_else(|e| panic!("{line:?}: {e}")),
                    value: (v != "-").then(|| unhex(v)),
                });
            }
            Some("E") => return records,
            _ => {}
        }
    }
    panic!("the group reader ended early:\n{out}");
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| {
            s.get(2 * i..2 * i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .unwrap_or_else(|| panic!("not hex: {s:?}"))
        })
        .collect()
}

/// The values of `records` per partition, in the order read.
pub fn values_by_partition(records: &[GroupRecord]) -> BTreeMap<i32, Vec<Option<Vec<u8>>>> {
    let mut out: BTreeMap<i32, Vec<Option<Vec<u8>>>> = BTreeMap::new();
    for r in records {
        out.entry(r.partition).or_default().push(r.value.clone());
    }
    out
}
