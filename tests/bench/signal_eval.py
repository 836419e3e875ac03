#!/usr/bin/env python3
"""What one wait_for signal costs per waiting run (issue 13 / the signal
limits): park N runs on one wait_for path, then send K signals that match
none of them (so nothing resumes and every run is evaluated each time), and
report the median seconds per signal and per `if:` evaluation (that / N),
and the server's CPU time per evaluation over all K signals (/proc: less
sensitive than wall time to other load on a shared machine).
A measurement, not a test: nothing is asserted but the answers (202, or 503
when a signal passed its budget: then reported, and the figure is a floor).

    /usr/bin/python3 tests/bench/signal_eval.py --build build [-n 2000]
        [-k 7] [--pad BYTES] [--against OTHER_BUILD]

--pad puts a string of that many bytes in each signal's body (the signal is
converted for every evaluation: its size is part of the cost). With
--against, the same measurement runs with OTHER_BUILD's hookflow right after,
then once more with the first build (shared machines are noisy: compare the
ratios, DESIGN.md "Measuring"). Python 3 standard library only; 127.0.0.1
only.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

WORKFLOW = """name: waiter
on:
  webhook:
    path: /tickets
steps:
  - id: approval
    wait_for:
      path: /approvals
      if: signal.body.ticket == event.body.ticket
      timeout: 1h
  - id: after
    run: return 1
"""


def start(binary, tmp):
    wf = os.path.join(tmp, "workflows")
    os.makedirs(wf, exist_ok=True)
    with open(os.path.join(wf, "waiter.yml"), "w") as f:
        f.write(WORKFLOW)
    cmd = [binary, "serve", "--listen", "127.0.0.1:0", "--workflows", wf,
           "--state", os.path.join(tmp, "state.db"),
           "--data", os.path.join(tmp, "data.db"), "--workers", "2",
           "--max-body", "4MiB"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True)
    port = []
    ready = threading.Event()

    def pump():
        for line in p.stderr:
            m = re.search(r"listening on http://[\d.]+:(\d+)", line)
            if m:
                port.append(int(m.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    ready.wait(20)
    if not port:
        p.kill()
        sys.exit("server did not start: " + binary)
    return p, port[0]


def post(c, path, body):
    c.request("POST", path, json.dumps(body).encode(),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read()


def waiting(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    m = re.search(r"^hookflow_runs_waiting (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(binary, n, k, pad):
    tmp = tempfile.mkdtemp(prefix="hf-sigeval-")
    p, port = start(binary, tmp)
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for i in range(n):
            st, _ = post(c, "/tickets", {"ticket": i})
            if st != 202:
                sys.exit(f"park: {st}")
        deadline = time.monotonic() + 120
        while waiting(port) < n:
            if time.monotonic() > deadline:
                sys.exit("runs did not all park")
            time.sleep(0.1)
        times, statuses = [], []
        cpu0 = cpu_seconds(p.pid)
        for _ in range(k):
            t0 = time.monotonic()
            st, body = post(c, "/approvals", {"ticket": -1, "pad": "x" * pad})
            times.append(time.monotonic() - t0)
            statuses.append(st)
            if st not in (202, 503):
                sys.exit(f"signal: {st} {body[:200]!r}")
        cpu = cpu_seconds(p.pid) - cpu0
        c.close()
        return statistics.median(times), cpu / (k * n), statuses
    finally:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--against")
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("-k", type=int, default=7)
    ap.add_argument("--pad", type=int, default=0)
    a = ap.parse_args()
    builds = [a.build] + ([a.against, a.build] if a.against else [])
    rows = []
    for b in builds:
        med, cpu, sts = measure(os.path.join(b, "hookflow"), a.n, a.k, a.pad)
        rows.append((b, med, cpu))
        print(f"{b}: n={a.n} pad={a.pad}: {med * 1000:.1f} ms per signal, "
              f"{med / a.n * 1e6:.1f} us per evaluation (wall), "
              f"{cpu * 1e6:.1f} us CPU per evaluation; answers "
              f"{sorted(set(sts))}", flush=True)
    if a.against:
        wall = (rows[0][1] + rows[2][1]) / 2 / rows[1][1]
        cpu = (rows[0][2] + rows[2][2]) / 2 / rows[1][2]
        print(f"ratio {a.build} / {a.against}: wall {wall:.2f}, "
              f"CPU {cpu:.2f}")


if __name__ == "__main__":
    main()
