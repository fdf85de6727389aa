#!/usr/bin/env python3
"""Golden exchange between librdkafka (PyPI confluent-kafka) and a broker.

Run by `cargo xtask fixtures` through its recording proxy:

    golden_exchange.py --bootstrap 127.0.0.1:PORT

For each codec (none, gzip, snappy, lz4, zstd) it creates the topic
golden-<codec> (1 partition), produces the 20 records of `golden_records()`
with an idempotent producer in one batch, then reads them back from offset 0
with a fresh Consumer (assign, no group join) and checks that key, value,
headers (in order) and timestamp match. On success it prints a JSON summary
on stdout; diagnostics go to stderr. Exit status 0 only if every topic read
back exactly what was produced.
"""

import argparse
import importlib.metadata as metadata
import json
import sys
import time

from confluent_kafka import (
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
    TIMESTAMP_CREATE_TIME,
    libversion,
)
from confluent_kafka.admin import AdminClient, NewTopic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
RECORDS = 20
BASE_TIMESTAMP_MS = 1_700_000_000_000
CLIENT_ID = "kmirror-golden"


def golden_records():
    """The records every topic gets, as (key, value, headers, timestamp_ms)."""
    records = []
    for n in range(RECORDS):
        key = None if n == 3 else f"key-{n}".encode()
        value = None if n == 5 else f"value-{n}".encode()
        if n == 7:
            headers = [("h", b"1"), ("h", b"2"), ("other", None)]
        else:
            headers = [("trace", str(n).encode())]
        records.append((key, value, headers, BASE_TIMESTAMP_MS + n))
    return records


def text(raw):
    return None if raw is None else raw.decode("utf-8")


def as_json(key, value, headers, timestamp, offset=None):
    out = {
        "key": text(key),
        "value": text(value),
        "headers": [[k, text(v)] for k, v in (headers or [])],
        "timestamp": timestamp,
    }
    if offset is not None:
        out["offset"] = offset
    return out


def log(*args):
    print("golden_exchange:", *args, file=sys.stderr, flush=True)


def create_topics(bootstrap, topics):
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": CLIENT_ID})
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=1, replication_factor=1) for t in topics],
        operation_timeout=10,
        request_timeout=15,
    )
    for topic, future in futures.items():
        future.result()
        log("created", topic)


def produce(bootstrap, topic, codec, records):
    delivered = []
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append(msg.offset())

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": CLIENT_ID,
            "compression.type": codec,
            "enable.idempotence": True,
            "linger.ms": 100,
            "batch.num.messages": 10000,
        }
    )
    for key, value, headers, timestamp in records:
        producer.produce(
            topic,
            key=key,
            value=value,
            headers=headers,
            timestamp=timestamp,
            partition=0,
            on_delivery=on_delivery,
        )
    remaining = producer.flush(30)
    if remaining or errors or len(delivered) != len(records):
        raise RuntimeError(
            f"{topic}: {remaining} undelivered, errors {errors}, offsets {delivered}"
        )
    log(f"produced {len(delivered)} records to {topic} at offsets {sorted(delivered)}")
    return sorted(delivered)


def consume(bootstrap, topic, count):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": CLIENT_ID,
            "group.id": f"golden-{topic}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.wait.max.ms": 10,
            "enable.partition.eof": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            kind, timestamp = msg.timestamp()
            if kind != TIMESTAMP_CREATE_TIME:
                raise RuntimeError(f"{topic}: timestamp type {kind}, expected CreateTime")
            got.append(as_json(msg.key(), msg.value(), msg.headers(), timestamp, msg.offset()))
    finally:
        consumer.close()
    log(f"consumed {len(got)} records from {topic}")
    return got


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    args = parser.parse_args()

    records = golden_records()
    topics = {codec: f"golden-{codec}" for codec in CODECS}
    create_topics(args.bootstrap, list(topics.values()))

    expected = [as_json(*r) for r in records]
    summary = {
        "librdkafka": libversion()[0],
        # version() is a bare string in confluent-kafka 2.16 (a tuple before).
        "confluent_kafka": metadata.version("confluent-kafka"),
        "records": expected,
        "topics": {},
    }
    failures = []
    for codec, topic in topics.items():
        offsets = produce(args.bootstrap, topic, codec, records)
        consumed = consume(args.bootstrap, topic, len(records))
        read_back = [{k: v for k, v in r.items() if k != "offset"} for r in consumed]
        if read_back != expected:
            failures.append(topic)
            log(f"MISMATCH in {topic}: read {json.dumps(consumed)}")
        summary["topics"][topic] = {
            "codec": codec,
            "produced_offsets": offsets,
            "consumed": consumed,
            "matches": read_back == expected,
        }
    json.dump(summary, sys.stdout, indent=2)
    print()
    if failures:
        log("read back differs from what was produced:", ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
