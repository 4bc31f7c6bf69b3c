#!/usr/bin/env python3
"""What a `skyio http --rate --latency-log` run's slow 1% have in common (bench/gateway-tail).

  tail-analysis.py LOG.csv [SCHED.txt PIDS]

LOG.csv: the latency log. Prints p50/p99, the p99 without the first 200 ms (the sender's
ramp: it opens connections as requests find none free), how many of the slow 1% fall in
the ramp or opened a connection, and the slow requests grouped in bursts (requests due less
than 5 ms apart). With SCHED.txt (`perf script` of sched:sched_switch and sched:sched_wakeup,
recorded system-wide with -k mono) and PIDS ("name=pid,name=pid"): for each burst, whether
one of those processes was runnable and not running (woken or preempted) for >= 0.3 ms in
it, and what ran meanwhile.
"""
import csv
import re
import sys
from collections import Counter

RAMP_US = 200000


def load(path):
    rows = list(csv.DictReader(open(path)))
    rows.sort(key=lambda r: int(r["index"]))
    return rows


def pct(sorted_vals, p):
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p / 100))] if sorted_vals else 0


def bursts_of(rows, p99):
    out = []
    for r in rows:
        if int(r["latency_us"]) < p99:
            continue
        a = int(r["due_mono_us"])
        b = a + int(r["latency_us"])
        if out and a - out[-1][1] < 5000:
            out[-1][1] = max(out[-1][1], b)
            out[-1][2] += 1
        else:
            out.append([a, b, 1])
    return out


def sched_waits(path, pids):
    """(start, end, pid, kind, cpu) of each time one of pids waited for a CPU, and what ran."""
    state, waits, ran, oncpu = {}, [], [], {}
    pat = re.compile(r"\s*(.+?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s+(.*)")
    for line in open(path):
        m = pat.match(line)
        if not m:
            continue
        _, _, _, cpu, t, ev, tr = m.groups()
        t, cpu = int(float(t) * 1e6), int(cpu)
        if ev == "sched_wakeup":
            w = re.search(r" pid=(\d+)", tr).group(1)
            if state.get(w, ("x",))[0] != "run":
                state[w] = ("wait", t, "woken")
            continue
        f = dict(re.findall(r"(\w+)=(\S+)", tr.replace(" ==> ", " ")))
        prev, nxt = f["prev_pid"], f["next_pid"]
        state[prev] = ("wait", t, "preempted") if f["prev_state"].startswith("R") else ("sleep",)
        s = state.get(nxt)
        if s and s[0] == "wait" and nxt in pids:
            waits.append((s[1], t, nxt, s[2], cpu))
        state[nxt] = ("run", cpu)
        if cpu in oncpu:
            ran.append((oncpu[cpu][1], t, oncpu[cpu][0], oncpu[cpu][2]))
        oncpu[cpu] = (f["next_comm"], t, nxt)
    return waits, ran


def ran_during(ran, a, b, ours):
    """What else ran on either CPU from a to b (us each, the most first)."""
    c = Counter()
    for s, e, comm, pid in ran:
        o = min(b, e) - max(a, s)
        if o > 0 and pid not in ours and pid != "0":
            c[comm] += o
    return ", ".join("%s %.1f ms" % (k, v / 1000) for k, v in c.most_common(3)) or "nothing else"


def main():
    rows = load(sys.argv[1])
    t0 = int(rows[0]["due_mono_us"])
    lat = sorted(int(r["latency_us"]) for r in rows)
    p99 = pct(lat, 99)
    after = sorted(int(r["latency_us"]) for r in rows if int(r["due_mono_us"]) - t0 >= RAMP_US)
    slow = [r for r in rows if int(r["latency_us"]) >= p99]
    new_conn = [r for r in rows if r["new_connection"] == "1"]
    print("  requests %d: p50 %d us, p99 %d us; without the first 200 ms: p50 %d, p99 %d us"
          % (len(rows), pct(lat, 50), p99, pct(after, 50), pct(after, 99)))
    print("  the sender opened %d connections (%d in the first 200 ms); of the slow 1%% (%d): "
          "%d in the first 200 ms, %d opened a connection"
          % (len(new_conn), sum(1 for r in new_conn if int(r["due_mono_us"]) - t0 < RAMP_US),
             len(slow), sum(1 for r in slow if int(r["due_mono_us"]) - t0 < RAMP_US),
             sum(1 for r in slow if r["new_connection"] == "1")))
    bursts = bursts_of(rows, p99)
    if len(sys.argv) < 4:
        print("  slow bursts (ms from the start: slow requests): "
              + " ".join("%.0f:%d" % ((a - t0) / 1000, n) for a, _, n in bursts[:30]))
        return
    names = dict(kv.split("=") for kv in sys.argv[3].split(","))
    pids = {v: k for k, v in names.items()}
    waits, ran = sched_waits(sys.argv[2], pids)
    ours = set(pids)
    explained = 0
    for a, b, n in bursts:
        ws = sorted((w for w in waits if w[1] > a - 2000 and w[0] < b and w[1] - w[0] >= 300),
                    key=lambda w: w[0] - w[1])
        if ws:
            explained += n
        what = "; ".join("%s %s, waited %.1f ms on CPU %d (ran: %s)"
                         % (pids[w[2]], w[3], (w[1] - w[0]) / 1000, w[4],
                            ran_during(ran, w[0], w[1], ours)) for w in ws[:2])
        print("  burst at %.1f-%.1f ms, %d slow: %s"
              % ((a - t0) / 1000, (b - t0) / 1000, n, what or "none of them waited >= 0.3 ms"))
    long_waits = Counter((pids[w[2]], w[3]) for w in waits if w[1] - w[0] >= 500 and w[0] >= t0)
    print("  waits of >= 0.5 ms for a CPU in the run: %s"
          % (", ".join("%s %s %d" % (k[0], k[1], v) for k, v in sorted(long_waits.items())) or "none"))
    print("  slow requests in bursts where one of them waited >= 0.3 ms for a CPU: %d of %d"
          % (explained, len(slow)))


if __name__ == "__main__":
    main()
