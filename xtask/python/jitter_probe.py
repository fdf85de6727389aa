"""How often this machine stalls a CPU: sleeps 0.5 ms in a loop for
SECONDS seconds and prints every wake-up more than 1.5 ms late (monotonic
seconds, ms late). Pin one per CPU with taskset, on an otherwise idle
machine:  taskset -c 0 python3 jitter_probe.py 20 & taskset -c 1 python3 jitter_probe.py 20"""
import sys, time
seconds = float(sys.argv[1])
end = time.monotonic() + seconds
late, loops = [], 0
while time.monotonic() < end:
    t0 = time.monotonic()
    time.sleep(0.0005)
    d = time.monotonic() - t0 - 0.0005
    loops += 1
    if d > 0.0015:
        late.append((round(t0, 4), round(d * 1000, 2)))
print("loops %d, wake-ups more than 1.5 ms late: %d %s" % (loops, len(late), late))
