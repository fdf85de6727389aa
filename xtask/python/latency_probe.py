"""Mirror latency at a steady produce rate: the source and destination
topics are LogAppendTime, so each record carries its append time on both
sides (same host clock); latency = destination append - source append."""
import sys, time, os
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
src, dst, rate, seconds, size = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
mode = sys.argv[6]
if mode == "setup":
    for b in (src, dst):
        a = AdminClient({"bootstrap.servers": b})
        for f in a.create_topics([NewTopic("lat", num_partitions=8, replication_factor=1, config={"message.timestamp.type": "LogAppendTime"})]).values(): f.result()
    sys.exit(0)
if mode == "produce":
    p = Producer({"bootstrap.servers": src, "linger.ms": 5, "compression.type": "lz4"})
    payload = os.urandom(size)
    n = int(rate * seconds); start = time.time()
    for i in range(n):
        target = start + i / rate
        d = target - time.time()
        if d > 0: time.sleep(d)
        p.produce("lat", key=b"k%d" % (i % 1000), value=b"%010d" % i + payload[10:])
        p.poll(0)
    p.flush()
    print("produced", n, "in", round(time.time() - start, 1), "s")
    sys.exit(0)
def read(b):
    c = Consumer({"bootstrap.servers": b, "group.id": "lat-read-%d" % os.getpid(), "enable.auto.commit": False})
    md = c.list_topics("lat", timeout=10)
    out = {}
    for q in md.topics["lat"].partitions:
        lo, hi = c.get_watermark_offsets(TopicPartition("lat", q), timeout=10)
        c.assign([TopicPartition("lat", q, lo)])
        got = 0
        while got < hi - lo:
            for m in c.consume(min(1000, hi - lo - got), 5):
                if m.error(): continue
                got += 1
                out[m.value()[:10]] = m.timestamp()
    c.close()
    return out
s, d = read(src), read(dst)
lat = sorted(d[k][1] - s[k][1] for k in s if k in d)
n = len(lat)
if n == 0:
    sys.exit("no record of the source found on the destination (source %d)" % len(s))
q = lambda f: lat[min(n - 1, int(n * f))]
print("records %d (source %d); latency ms: p50 %d, p90 %d, p99 %d, p99.9 %d, max %d" % (n, len(s), q(0.5), q(0.9), q(0.99), q(0.999), lat[-1]))
