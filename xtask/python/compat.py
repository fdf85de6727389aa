"""The data side of `cargo xtask compat` (librdkafka through confluent-kafka).

    compat.py setup BOOTSTRAP TOPIC CASE
        Create TOPIC on the source and fill it for CASE:
        none|gzip|snappy|lz4|zstd   300 records over 3 partitions: keys (some
                                    null), values (some null), headers (a
                                    repeated name, an empty and a null value),
                                    explicit CreateTime timestamps;
        v1-none|v1-snappy           message.format.version=0.10.2 (magic 1,
        v0-none|v0-lz4              the broker converts on write) or 0.9.0
                                    (magic 0); no headers, no idempotence;
        compact                     cleanup.policy=compact, 4 rounds of
                                    overwrites (100 keys, then 25 of them), waits until the
                                    cleaner left offset gaps, then resets the
                                    fast-cleaning settings so that nothing
                                    changes any more;
        tx                          a transactional producer: 10 transactions
                                    of 50 records over 2 partitions, every
                                    third aborted (350 committed, 150
                                    aborted).
        Prints one JSON line.

    compat.py verify SOURCE DESTINATION TOPIC GROUP CASE
        Read TOPIC on both sides with read_committed to the high watermarks
        and compare partition by partition, record by record (key, value,
        headers, timestamp type and timestamp; not timestamps for v0), check
        that the destination's offsets are dense from 0, the group's
        committed offsets on the source equal the source's end offsets, and
        the case's own rule. Prints one JSON line: {"ok": ..., "detail": ...}.
"""

import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
LEGACY = {"v1-none": ("0.10.2", "none"), "v1-snappy": ("0.10.2", "snappy"),
          "v0-none": ("0.9.0", "none"), "v0-lz4": ("0.9.0", "lz4")}
TS_BASE = int(time.time() * 1000) - 3_600_000


def create(bootstrap, topic, partitions, config):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config)],
        request_timeout=30)
    for f in futures.values():
        f.result(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        if md is not None and md.error is None and len(md.partitions) == partitions \
                and all(p.leader >= 0 for p in md.partitions.values()):
            return admin
        time.sleep(0.2)
    sys.exit(f"{topic}: partitions without a leader after 30 s")


def produce(bootstrap, topic, records, codec, idempotent=True, headers=True, linger=20):
    errors = []
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": idempotent,
            "compression.type": codec, "linger.ms": linger,
            "on_delivery": lambda err, msg: err and errors.append(str(err))}
    p = Producer(conf)
    for key, value, partition, ts, hs in records:
        kwargs = {}
        if partition is not None:
            kwargs["partition"] = partition
        if ts is not None:
            kwargs["timestamp"] = ts
        if headers and hs:
            kwargs["headers"] = hs
        p.produce(topic, value, key, **kwargs)
    left = p.flush(60)
    if errors or left:
        sys.exit(f"produce to {topic}: {len(errors)} errors ({errors[:3]}), {left} left")


def numbered(n, partitions, headers):
    out = []
    for i in range(n):
        key = None if (i + 1) % 7 == 0 else b"key-%d" % (i % 20)
        value = None if (i + 1) % 11 == 0 else b"value-%d:" % i + bytes((i + j) % 256 for j in range(100))
        hs = [("h", b"1"), ("h", b"2"), ("empty", b""), ("null", None), ("seq", b"%d" % i)] if headers else None
        out.append((key, value, i % partitions, TS_BASE + i, hs))
    return out


def read(bootstrap, topic):
    """{partition: [(offset, key, value, headers, ts_type, ts)]}, watermarks."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compat-reader-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=30).topics.get(topic)
    if md is None or md.error is not None:
        raise RuntimeError(f"{topic} is not readable at {bootstrap}: {None if md is None else md.error}")
    parts = sorted(md.partitions)
    marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in parts}
    out = {p: [] for p in parts}
    pending = {p for p in parts if marks[p][1] > marks[p][0]}
    if pending:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
    idle = time.monotonic() + 30
    while pending:
        msgs = c.consume(num_messages=1000, timeout=0.5)
        if msgs:
            idle = time.monotonic() + 30
        elif time.monotonic() > idle:
            raise RuntimeError(f"no progress reading {topic} at {bootstrap}: {sorted(pending)} of {marks}")
        for m in msgs:
            p = m.partition()
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= marks[p][1]:
                        pending.discard(p)
                    continue
                raise RuntimeError(f"consume error on {topic}-{p}: {m.error()}")
            tt, ts = m.timestamp()
            out[p].append((m.offset(), m.key(), m.value(), list(m.headers() or ()), tt, ts))
            if m.offset() >= marks[p][1] - 1:
                pending.discard(p)
    c.close()
    for p in out:
        seen = {}
        for r in out[p]:
            seen[r[0]] = r
        out[p] = [seen[o] for o in sorted(seen)]
    return out, marks


def gaps(reading):
    n = 0
    for records in reading.values():
        offsets = [-1] + [r[0] for r in records]
        n += sum(1 for a, b in zip(offsets, offsets[1:]) if b != a + 1)
    return n


def setup(bootstrap, topic, case):
    info = {"case": case}
    if case in CODECS:
        create(bootstrap, topic, 3, {})
        produce(bootstrap, topic, numbered(300, 3, True), case)
        info["records"] = 300
    elif case in LEGACY:
        fmt, codec = LEGACY[case]
        create(bootstrap, topic, 2, {"message.format.version": fmt})
        produce(bootstrap, topic, numbered(200, 2, False), codec, idempotent=False, headers=False)
        info["records"] = 200
    elif case == "compact":
        admin = create(bootstrap, topic, 2, {
            "cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01",
            "min.compaction.lag.ms": "0", "delete.retention.ms": "100"})
        n = 0
        for rnd in range(4):
            records = []
            for i in range(100):
                # Round 0's keys 25 to 99 are never overwritten: they stay
                # between cleaned ranges, so the gaps are inside the log.
                key = b"key-%d" % (i if rnd == 0 else i % 25)
                records.append((key, b"value-%d:round-%d" % (n, rnd), None, None,
                                [("round", b"%d" % rnd)]))
                n += 1
            produce(bootstrap, topic, records, "none", linger=5)
            time.sleep(1.0)
        # One more record rolls the last round's segment so it can be cleaned.
        produce(bootstrap, topic, [(b"key-0", b"value-%d:last" % n, None, None, None)], "none")
        n += 1
        deadline = time.monotonic() + 60
        reading, _ = read(bootstrap, topic)
        while gaps(reading) == 0 and time.monotonic() < deadline:
            time.sleep(1)
            reading, _ = read(bootstrap, topic)
        # Stop further cleaning: back to the default segment.ms and dirty
        # ratio (AlterConfigs replaces the topic's whole configuration).
        res = ConfigResource("topic", topic, set_config={"cleanup.policy": "compact"})
        for f in admin.alter_configs([res]).values():
            f.result(timeout=30)
        stable = None
        for _ in range(20):
            time.sleep(2)
            again, _ = read(bootstrap, topic)
            key = [(p, [r[0] for r in rs]) for p, rs in sorted(again.items())]
            if key == stable:
                break
            stable = key
        info.update(records=n, remaining=sum(len(r) for r in again.values()), gaps=gaps(again))
    elif case == "tx":
        create(bootstrap, topic, 2, {})
        committed, aborted, redone = transactions(bootstrap, topic)
        info.update(committed=committed, aborted=aborted)
        if redone:
            info["redone"] = "; ".join(redone)
    else:
        sys.exit(f"unknown case {case!r}")
    print(json.dumps(info))


def transactions(bootstrap, topic):
    """10 transactions of 50 records over 2 partitions, every third aborted.

    Each transaction's records are flushed before it ends. A transaction
    that fails (librdkafka against 3.9 once answered an abort with a fatal
    INVALID_TXN_STATE) is redone with a new producer of the same
    transactional.id, whose init_transactions aborts what the old one left
    open; the failures are returned so the report shows them.
    """
    from confluent_kafka import KafkaException

    def producer():
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "compat-" + topic,
                      "linger.ms": 5})
        p.init_transactions(60)
        return p

    p = producer()
    committed = aborted = 0
    redone = []
    for tx in range(10):
        for attempt in range(3):
            try:
                p.begin_transaction()
                for i in range(50):
                    n = tx * 50 + i
                    p.produce(topic, key=b"key-%d" % (n % 7), value=b"value-%d:tx%d" % (n, tx),
                              partition=n % 2, timestamp=TS_BASE + n)
                p.flush(60)
                if tx % 3 == 1:
                    p.abort_transaction(60)
                    aborted += 50
                else:
                    p.commit_transaction(60)
                    committed += 50
                break
            except KafkaException as e:
                if attempt == 2:
                    raise
                redone.append(f"transaction {tx}: {e.args[0].str()}")
                p = producer()
    return committed, aborted, redone


def committed_offsets(bootstrap, group, topic, parts):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    got = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in parts], timeout=30)}
    c.close()
    return got


def text(b):
    if b is None:
        return "null"
    return repr(b[:40]) + ("..." if len(b) > 40 else "")


def verify(source, destination, topic, group, case):
    src, src_marks = read(source, topic)
    dst, _ = read(destination, topic)
    compare_ts = not case.startswith("v0")
    problems = []
    if sorted(src) != sorted(dst):
        problems.append(f"partitions differ: source {sorted(src)}, destination {sorted(dst)}")
    total = 0
    for p in sorted(src):
        s, d = src[p], dst.get(p, [])
        total += len(d)
        for i, (a, b) in enumerate(zip(s, d)):
            fields = [("key", a[1], b[1]), ("value", a[2], b[2]), ("headers", a[3], b[3])]
            if compare_ts:
                fields += [("timestamp type", a[4], b[4]), ("timestamp", a[5], b[5])]
            for name, x, y in fields:
                if x != y:
                    show = text if name in ("key", "value") else str
                    problems.append(f"partition {p} record {i} (source offset {a[0]}, destination "
                                    f"offset {b[0]}): {name} {show(x)} != {show(y)}")
                    break
            if problems:
                break
        if len(s) != len(d):
            problems.append(f"partition {p}: source {len(s)} records, destination {len(d)}")
        offsets = [r[0] for r in d]
        if offsets != list(range(len(d))):
            problems.append(f"partition {p}: destination offsets not dense from 0: {offsets[:10]}...")
        if problems:
            break
    committed = committed_offsets(source, group, topic, sorted(src))
    ends = {p: src_marks[p][1] for p in src}
    if committed != ends:
        problems.append(f"committed offsets of {group} {committed} != source end offsets {ends}")
    notes = []
    if case == "tx":
        values = [r[2] for rs in dst.values() for r in rs]
        bad = [v for v in values if v is not None and int(v.rsplit(b"tx", 1)[1]) % 3 == 1]
        if len(values) != 350 or bad:
            problems.append(f"{len(values)} records arrived (350 committed), {len(bad)} of aborted transactions")
    if case == "compact":
        g = gaps(src)
        notes.append(f"source offset gaps {g}")
        if g == 0:
            notes.append("the cleaner left no gaps")
    if case.startswith("v0"):
        types = sorted({(r[4], r[5] if r[5] < 0 else "t") for rs in dst.values() for r in rs})
        notes.append(f"destination timestamps {types}")
    print(json.dumps({"ok": not problems, "records": total,
                      "detail": "; ".join(problems[:3] + notes)}))


def main():
    cmd = sys.argv[1]
    if cmd == "setup":
        setup(*sys.argv[2:5])
    elif cmd == "verify":
        try:
            verify(*sys.argv[2:7])
        except Exception as e:  # a reading failure is the case's result
            print(json.dumps({"ok": False, "records": 0, "detail": f"verification error: {e}"}))
    else:
        sys.exit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
