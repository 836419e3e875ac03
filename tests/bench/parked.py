#!/usr/bin/env python3
"""Parked runs cost a row, not memory (issue 15's benchmark): park N runs
that sleep until one due time, report the server's RSS before and after, then
how long the wake-up of all of them takes when their time comes (finished
runs/s, from the due time until every run has succeeded). A measurement, not
a test: nothing is asserted but that every run finished.

    /usr/bin/python3 tests/bench/parked.py --build build [-n 100000]
        [--lead S] [--clients C] [serve flags, e.g. --workers 2 --sync normal]

Each run is one event to a workflow whose first step is
`until: "${{ event.body.at }}"` (every event carries the same `at`: the due
time, --lead seconds after the load starts, default N/800 + 20) and whose
second step is `return 1`. The load is C threads (default 8) of keep-alive
POSTs from this script. Figures:
  RSS idle     VmRSS 0.5 s after the start
  RSS parked   VmRSS once hookflow_runs_waiting is N (and its peak, VmHWM,
               which includes the load)
  park         events/s of the load (each parks one run)
  wake         seconds from the due time until hookflow_runs_total
               {status="succeeded"} is N, and N / that = finished runs/s;
               the wake-up goes through the disk backlog (--max-queue pages)
Python 3 standard library only; 127.0.0.1 only. Exit 1 when not every run
finished.
"""
import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

WORKFLOW = """name: parked
on:
  webhook:
    path: /park
steps:
  - id: hold
    until: "${{ event.body.at }}"
  - id: done
    run: return 1
"""


def load(port, n, at, clients):
    """POSTs n events (C threads, keep-alive); returns (seconds, non-202)."""
    body = json.dumps({"at": at, "pad": "x" * 200}).encode()
    counts = [n // clients + (1 if i < n % clients else 0)
              for i in range(clients)]
    bad = []

    def worker(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(k):
            c.request("POST", "/park", body,
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status != 202:
                bad.append(r.status)
        c.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in counts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - t0, bad


def wait_metric(srv, fn, timeout, poll=0.05):
    """Polls /metrics until fn(samples) is true: (monotonic t, samples), or
    (None, samples) after timeout."""
    deadline = time.monotonic() + timeout
    samples = {}
    while True:
        now = time.monotonic()
        samples = bench.scrape(srv)
        if fn(samples):
            return now, samples
        if now >= deadline:
            return None, samples
        time.sleep(poll)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..",
                                                   "build"))
    ap.add_argument("-n", type=int, default=100000, help="parked runs")
    ap.add_argument("--lead", type=float, help="seconds until the due time")
    ap.add_argument("--clients", type=int, default=8)
    args, serve_args = ap.parse_known_args()
    n = args.n
    lead = args.lead or n / 800 + 20
    tmp = tempfile.mkdtemp(prefix="hookflow-parked-")
    wf = os.path.join(tmp, "workflows")
    os.makedirs(wf)
    with open(os.path.join(wf, "parked.yml"), "w") as f:
        f.write(WORKFLOW)
    argv = [os.path.join(os.path.abspath(args.build), "hookflow"), "serve",
            "--listen", "127.0.0.1:0", "--workflows", wf,
            "--state", os.path.join(tmp, "hookflow.db"),
            "--data", os.path.join(tmp, "data.db"),
            "--admin-token", "bench", "--max-backlog", str(2 * n + 1000),
            *serve_args]
    srv = bench.Server("hookflow", argv, cwd=tmp).start()
    rc = 0
    try:
        time.sleep(0.5)
        idle = bench.proc_status(srv.pid)
        due_wall = time.time() + lead
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(due_wall)) + \
            ".%03dZ" % int((due_wall % 1) * 1000)
        due_mono = time.monotonic() + lead
        secs, bad = load(srv.port, n, at, args.clients)
        t, s = wait_metric(srv, lambda s: bench.metric(
            s, "hookflow_runs_waiting") >= n, max(lead - secs, 1) + 60)
        parked = bench.proc_status(srv.pid)
        waiting = bench.metric(s, "hookflow_runs_waiting")
        late = time.monotonic() > due_mono
        print("parked %d runs in %.1fs (%.0f events/s, %d non-202)%s"
              % (waiting, secs, n / secs, len(bad),
                 "; LATE: the due time passed before all parked "
                 "(raise --lead)" if late else ""))
        print("RSS idle %.1f MiB; RSS with %d runs parked %.1f MiB "
              "(peak during the load %.1f MiB)"
              % (idle.get("VmRSS", 0) / 1024, waiting,
                 parked.get("VmRSS", 0) / 1024,
                 parked.get("VmHWM", 0) / 1024))
        t, s = wait_metric(srv, lambda s: bench.metric(
            s, "hookflow_runs_total", status="succeeded") >= n,
            lead + 600)
        done = bench.metric(s, "hookflow_runs_total", status="succeeded")
        after = bench.proc_status(srv.pid)
        if t is None:
            print("only %d of %d runs finished" % (done, n))
            rc = 1
        else:
            wake = t - due_mono
            print("woke and finished %d runs in %.2fs after their due time: "
                  "%.0f finished runs/s (RSS after %.1f MiB, peak %.1f MiB)"
                  % (done, wake, done / wake if wake > 0 else float("inf"),
                     after.get("VmRSS", 0) / 1024,
                     after.get("VmHWM", 0) / 1024))
        print("command: %s" % " ".join(argv))
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
