"""The data side of `cargo xtask chaos` (librdkafka through confluent-kafka).

    chaos.py produce BOOTSTRAP DIR RATE
        A continuous idempotent producer (acks=all, enable.idempotence=true)
        writing RATE records/s in all over the topics listed in DIR/topics
        (one a line, re-read every second; new topics join as they appear).
        Each topic has 64 keys k0..k63; a record's value is
        "KEY|SEQ|TRIAL|PAD" where SEQ is the key's own sequence number (from
        0, per topic) and TRIAL the number in DIR/trial when the record was
        handed to librdkafka. Runs until DIR/stop exists, then flushes and
        prints one JSON line: records acknowledged and failed per trial.

    chaos.py verify SOURCE DESTINATION OUT TOPIC...
        Reads every partition of each TOPIC on both clusters from the
        beginning to the high watermarks and writes OUT (JSON): per trial
        (the trial that produced the record) the records on the source, lost
        (on the source, not on the destination), reordered (per key and
        destination partition, a later sequence before an earlier one),
        duplicates (extra copies on the destination), extra (on the
        destination, not on the source); the same checks of the source
        itself; samples of what was lost and reordered.
"""

import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaError, OFFSET_BEGINNING, Producer, TopicPartition

KEYS = 64
PAD = "x" * 60


def read_lines(path):
    try:
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def produce(bootstrap, directory, rate):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 20,
        "compression.type": "lz4",
        # Pick up partitions added to a topic within seconds.
        "topic.metadata.refresh.interval.ms": 3000,
        "message.timeout.ms": 600000,
    })
    acked = {}
    failed = {}
    errors = []

    def report(err, msg):
        trial = msg.value().split(b"|")[2].decode()
        if err is None:
            acked[trial] = acked.get(trial, 0) + 1
        else:
            failed[trial] = failed.get(trial, 0) + 1
            if len(errors) < 20:
                errors.append(f"{msg.topic()} {msg.key()}: {err}")
            print(f"delivery failed: {msg.topic()} {msg.key()}: {err}", file=sys.stderr)

    seqs = {}
    topics = []
    trial = "0"
    next_check = 0.0
    interval = 1.0 / rate
    next_send = time.monotonic()
    i = 0
    while True:
        now = time.monotonic()
        if now >= next_check:
            next_check = now + 1.0
            if os.path.exists(os.path.join(directory, "stop")):
                break
            topics = read_lines(os.path.join(directory, "topics")) or topics
            lines = read_lines(os.path.join(directory, "trial"))
            trial = lines[0] if lines else trial
        if not topics:
            time.sleep(0.1)
            continue
        if now < next_send:
            producer.poll(min(next_send - now, 0.05))
            continue
        next_send += interval
        if next_send < now - 1.0:
            next_send = now  # fell behind (a stall): no burst to catch up
        topic = topics[i % len(topics)]
        key = f"k{(i // len(topics)) % KEYS}"
        i += 1
        seq = seqs.get((topic, key), 0)
        seqs[(topic, key)] = seq + 1
        value = f"{key}|{seq}|{trial}|{PAD}"
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(120)
    print(json.dumps({"acked": acked, "failed": failed, "unflushed": remaining,
                      "errors": errors}))


def read_all(bootstrap, topics):
    """{(topic, partition): [(key, seq, trial), ...]} in offset order."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "chaos-verify",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
        "fetch.max.bytes": 16 << 20,
    })
    md = consumer.list_topics(timeout=30)
    assignment = []
    ends = {}
    for topic in topics:
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            continue
        for p in sorted(t.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            ends[(topic, p)] = high
            if high > low:
                assignment.append(TopicPartition(topic, p, OFFSET_BEGINNING))
    data = {tp: [] for tp in ends}
    if not assignment:
        consumer.close()
        return data
    consumer.assign(assignment)
    pending = {(tp.topic, tp.partition) for tp in assignment}
    deadline = time.monotonic() + 600
    while pending and time.monotonic() < deadline:
        for msg in consumer.consume(10000, 1.0):
            tp = (msg.topic(), msg.partition())
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= ends.get(tp, 0):
                        pending.discard(tp)
                    continue
                raise SystemExit(f"reading {tp}: {msg.error()}")
            fields = msg.value().split(b"|")
            data[tp].append((fields[0].decode(), int(fields[1]), fields[2].decode()))
            if msg.offset() + 1 >= ends.get(tp, 0):
                pending.discard(tp)
    consumer.close()
    if pending:
        raise SystemExit(f"could not read to the end of {sorted(pending)}")
    return data


def check_order(data):
    """Per key and partition: reordered (seq below the key's max so far and
    not a copy of one seen before) and duplicates (copies); per trial."""
    reordered, duplicates, samples = {}, {}, []
    seen = set()
    for (topic, partition), records in sorted(data.items()):
        highest = {}
        for key, seq, trial in records:
            ident = (topic, key, seq)
            if ident in seen:
                duplicates[trial] = duplicates.get(trial, 0) + 1
                continue
            seen.add(ident)
            top = highest.get(key, -1)
            if seq < top:
                reordered[trial] = reordered.get(trial, 0) + 1
                if len(samples) < 10:
                    samples.append(f"{topic}-{partition} key {key}: seq {seq} after {top}")
            else:
                highest[key] = seq
    return reordered, duplicates, samples, seen


def verify(source, destination, out, topics):
    started = time.monotonic()
    src = read_all(source, topics)
    dst = read_all(destination, topics)
    s_reordered, s_duplicates, s_samples, s_seen = check_order(src)
    d_reordered, d_duplicates, d_samples, d_seen = check_order(dst)
    trial_of = {}
    where = {}
    for (topic, partition), records in src.items():
        for key, seq, trial in records:
            trial_of[(topic, key, seq)] = trial
            where[(topic, key, seq)] = partition
    produced, lost, extra = {}, {}, {}
    lost_samples = []
    for ident, trial in trial_of.items():
        produced[trial] = produced.get(trial, 0) + 1
        if ident not in d_seen:
            lost[trial] = lost.get(trial, 0) + 1
            if len(lost_samples) < 20:
                lost_samples.append(f"{ident[0]}-{where[ident]} key {ident[1]} seq {ident[2]} "
                                    f"(trial {trial})")
    extra_samples = []
    for ident in d_seen - set(trial_of):
        extra[ident[2]] = extra.get(ident[2], 0) + 1
        if len(extra_samples) < 10:
            extra_samples.append(f"{ident}")
    result = {
        "produced": produced, "lost": lost, "reordered": d_reordered,
        "duplicates": d_duplicates, "extra": sum(extra.values()),
        "source_reordered": sum(s_reordered.values()),
        "source_duplicates": sum(s_duplicates.values()),
        "lost_samples": lost_samples, "reordered_samples": d_samples,
        "source_reordered_samples": s_samples, "extra_samples": extra_samples,
        "source_partitions": {f"{t}-{p}": len(r) for (t, p), r in sorted(src.items())},
        "destination_partitions": {f"{t}-{p}": len(r) for (t, p), r in sorted(dst.items())},
        "seconds": round(time.monotonic() - started, 1),
    }
    with open(out, "w") as f:
        json.dump(result, f)
    print(json.dumps({"ok": True, "seconds": result["seconds"]}))


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "produce":
        produce(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif len(sys.argv) >= 6 and sys.argv[1] == "verify":
        verify(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
