#!/usr/bin/env python3
"""hookflow benchmark: accepts/s, p99, finished runs/s, deliveries/s and RSS,
beside a bare libmicrohttpd baseline (bench_baseline) measured in the same
invocation -- only that ratio is stable on shared machines (DESIGN.md,
"Measuring"). A benchmark, not a test: targets are reported, never asserted;
the exit status is 1 only when the load itself went wrong (non-2xx answers,
socket errors, a queue that did not drain, a server that did not start).

    /usr/bin/python3 tests/bench/bench.py --build build [--duration 10]
        [--out bench.json] [--workers N] [--skip PHASE,...] [--keep]
        [--against OTHER_BUILD]

With --against, every hookflow phase runs a second time, right after the
first, with OTHER_BUILD's hookflow (e.g. a build of main before a change), and
a last table sets the two side by side: a change's cost measured in one run.

Phases (each on a fresh temporary directory, 127.0.0.1 only):
  baseline   bench_baseline under wrk
  full       hookflow --sync full, one async workflow whose step is `return 1`
  normal     the same with --sync normal
  runs       a one-step workflow doing db.exec(INSERT); finished runs/s from the
             start of the load until hookflow_queue_depth is back to 0
  deliveries a one-step workflow doing webhook.emit() to a second
             bench_baseline used as the sink; skipped, with a note, while the
             engine has no outbound delivery (the probe run fails)

Load: wrk -c64 -t2 -dDURATIONs --latency, POST of a 1 KiB JSON body with
Content-Type: application/json, keep-alive. Python 3 standard library only.
"""

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HOST = "127.0.0.1"
TOKEN = "bench-admin-token"
BODY_SIZE = 1024

# Targets from the performance brief (reported, never asserted).
TARGET_ACCEPT_RATIO = 0.60
TARGET_P99_MS = 5.0
TARGET_RUNS_PER_S = 10000.0
TARGET_DELIVERIES_PER_S = 5000.0
TARGET_IDLE_RSS_MB = 10.0
TARGET_LOAD_RSS_MB = 64.0

LISTEN_RE = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# request body and wrk script

def make_body(size=BODY_SIZE):
    """A JSON object of exactly `size` bytes with a numeric field `n`."""
    doc = {"n": 1, "source": "hookflow-bench", "kind": "ticket.created",
           "pad": ""}
    empty = len(json.dumps(doc, separators=(",", ":")))
    doc["pad"] = "x" * (size - empty)
    text = json.dumps(doc, separators=(",", ":"))
    assert len(text) == size, len(text)
    return text


def write_wrk_script(path, body):
    assert "]==]" not in body
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                "wrk.body = [==[" + body + "]==]\n")


UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def parse_wrk(out):
    res = {"requests": None, "seconds": None, "req_per_s": None,
           "non_2xx_3xx": 0, "socket_errors": {}, "latency_ms": {}}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out)
    if m:
        res["requests"] = int(m.group(1))
        res["seconds"] = float(m.group(2)) * UNIT_MS[m.group(3)] / 1000.0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["req_per_s"] = float(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        res["non_2xx_3xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m:
        res["socket_errors"] = dict(zip(
            ("connect", "read", "write", "timeout"), map(int, m.groups())))
    dist = out.split("Latency Distribution", 1)
    if len(dist) == 2:
        for pct, val, unit in re.findall(
                r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", dist[1], re.M):
            res["latency_ms"]["p" + pct] = float(val) * UNIT_MS[unit]
    res["p99_ms"] = res["latency_ms"].get("p99")
    return res


def run_wrk(url, script, args):
    cmd = ["wrk", "-c%d" % args.connections, "-t%d" % args.threads,
           "-d%ds" % args.duration, "--latency", "-s", script, url]
    log("  " + " ".join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=args.duration + 60)
    if p.returncode != 0:
        raise RuntimeError("wrk failed (%d):\n%s" % (p.returncode, p.stdout))
    res = parse_wrk(p.stdout)
    res["raw"] = p.stdout
    if res["req_per_s"] is None:
        raise RuntimeError("cannot parse wrk output:\n" + p.stdout)
    return res


# --------------------------------------------------------------------------
# processes

def proc_status(pid):
    """VmRSS / VmHWM in KiB, or {} once the process is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_s(pid):
    """utime + stime of the process, seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class RssSampler:
    """Samples VmRSS every `interval` s on a thread; peak = max(VmHWM, max)."""

    def __init__(self, pid, interval=0.1):
        self.pid, self.interval = pid, interval
        self.max_rss = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            st = proc_status(self.pid)
            self.max_rss = max(self.max_rss, st.get("VmRSS", 0))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=2)

    def peak_kib(self):
        return max(self.max_rss, proc_status(self.pid).get("VmHWM", 0))


class Server:
    def __init__(self, name, argv, cwd=None):
        self.name, self.argv, self.cwd = name, argv, cwd
        self.proc = None
        self.port = None
        self.lines = []
        self._ready = threading.Event()

    def _reader(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if len(self.lines) > 2000:  # keep memory bounded
                del self.lines[:1000]
            m = LISTEN_RE.search(line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._ready.set()
        self._ready.set()  # EOF: let start() notice the exit

    def start(self, timeout=15.0):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("HOOKFLOW_")}
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._reader, daemon=True).start()
        if not self._ready.wait(timeout) or self.port is None:
            self.stop()
            raise RuntimeError("%s did not start:\n%s" % (
                self.name, "\n".join(self.lines[-20:])))
        return self

    @property
    def pid(self):
        return self.proc.pid

    def url(self, path=""):
        return "http://%s:%d%s" % (HOST, self.port, path)

    def died(self):
        """None while running, else a description of the exit."""
        if self.proc is None or self.proc.poll() is None:
            return None
        rc = self.proc.returncode
        how = ("killed by signal %d" % -rc) if rc < 0 else ("exit %d" % rc)
        return "%s %s; last log lines:\n    %s" % (
            self.name, how, "\n    ".join(self.lines[-10:]))

    def log_tail(self, n=10):
        """Last lines of the log past start-up, for the report."""
        return [l for l in self.lines if "listening on" not in l
                and " loaded " not in l][-n:]

    def stop(self, timeout=15.0):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log("  %s did not exit within %.0fs of SIGTERM; killing"
                % (self.name, timeout))
            self.proc.kill()
            return self.proc.wait(5)


def http(method, url, body=None, headers=None, timeout=5.0):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def scrape(server):
    """/metrics as {(name, frozenset(labels)): value}."""
    status, text = http("GET", server.url("/metrics"))
    if status != 200:
        raise RuntimeError("/metrics answered %d" % status)
    out = {}
    for line in text.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$", line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            pass
    return out


def metric(samples, name, **labels):
    """Sum of every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items()
               if n == name and want <= set(ls))


# --------------------------------------------------------------------------
# hookflow setup

def workflow_yaml(name, path, step_lua):
    body = "\n".join("      " + line for line in step_lua.splitlines())
    return ("name: %s\non:\n  webhook:\n    path: %s\n    methods: [POST]\n"
            "steps:\n  - id: s\n    run: |\n%s\n" % (name, path, body))


def hookflow_server(args, root, sync, workflows):
    """workflows: {name: (path, step_lua)}."""
    wf, sc = os.path.join(root, "workflows"), os.path.join(root, "scripts")
    os.makedirs(wf, exist_ok=True)
    os.makedirs(sc, exist_ok=True)
    for name, (path, lua) in workflows.items():
        with open(os.path.join(wf, name + ".yml"), "w") as f:
            f.write(workflow_yaml(name, path, lua))
    argv = [args.hookflow, "serve", "--listen", HOST + ":0",
            "--workflows", wf, "--scripts", sc,
            "--state", os.path.join(root, "hookflow.db"),
            "--data", os.path.join(root, "data.db"),
            "--admin-token", TOKEN, "--sync", sync]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    return Server("hookflow(%s)" % sync, argv, cwd=root)


def wait_drained(server, timeout, poll=0.05):
    """Poll /metrics until hookflow_queue_depth == 0. Returns (t, samples)
    at the first zero, or (None, last samples) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    samples = {}
    while True:
        now = time.monotonic()
        try:
            samples = scrape(server)
            if metric(samples, "hookflow_queue_depth") == 0:
                return now, samples
        except (OSError, RuntimeError) as e:
            log("  /metrics: %s" % e)
        if now >= deadline:
            return None, samples
        time.sleep(poll)


def quick_check(path):
    """PRAGMA quick_check of a database file once the server is gone."""
    try:
        con = sqlite3.connect(path, timeout=10)
        try:
            return ", ".join(r[0] for r in con.execute("PRAGMA quick_check"))
        finally:
            con.close()
    except sqlite3.Error as e:
        return "error: %s" % e


class Phase:
    """Holds a started server for a phase: stops it on the way out and turns
    a failure caused by its death into an error that says so."""

    def __init__(self, srv):
        self.srv = srv

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        died = self.srv.died() if typ is not None else None
        self.srv.stop()
        if died and not issubclass(typ, KeyboardInterrupt):
            raise RuntimeError(died) from exc
        return False


def mib(kib):
    return round(kib / 1024.0, 2) if kib else None


# --------------------------------------------------------------------------
# phases

def phase_baseline(args, script):
    log("baseline: bench_baseline (libmicrohttpd, pool of 2 + epoll)")
    srv = Server("bench_baseline", [args.baseline]).start()
    try:
        time.sleep(0.3)
        idle = proc_status(srv.pid).get("VmRSS")
        cpu0 = proc_cpu_s(srv.pid)
        with RssSampler(srv.pid) as rs:
            w = run_wrk(srv.url("/bench/ingest"), script, args)
        cpu = proc_cpu_s(srv.pid) - cpu0
        return {"wrk": w, "req_per_s": w["req_per_s"], "p99_ms": w["p99_ms"],
                "idle_rss_mib": mib(idle), "peak_rss_mib": mib(rs.peak_kib()),
                "cpu_s": round(cpu, 2),
                "cpu_us_per_req": round(cpu * 1e6 / max(w["requests"], 1), 1)}
    finally:
        srv.stop()


def phase_ingest(args, script, sync):
    log("ingest: hookflow --sync %s, async workflow, step `return 1`" % sync)
    root = os.path.join(args.tmp, "ingest-" + sync)
    srv = hookflow_server(args, root, sync, {
        "bench-ingest": ("/bench/ingest", "return 1")}).start()
    with Phase(srv):
        time.sleep(0.5)
        idle = proc_status(srv.pid).get("VmRSS")
        cpu0 = proc_cpu_s(srv.pid)
        with RssSampler(srv.pid) as rs:
            t0 = time.monotonic()
            w = run_wrk(srv.url("/bench/ingest"), script, args)
            t_load = time.monotonic()
            at_end = scrape(srv)
            t_drain, m = wait_drained(srv, args.drain_timeout)
        cpu = proc_cpu_s(srv.pid) - cpu0
        time.sleep(0.5)
        after = proc_status(srv.pid).get("VmRSS")
        accepted = metric(m, "hookflow_events_total", status="202")
        other = sum(v for (n, ls), v in m.items()
                    if n == "hookflow_events_total"
                    and ("status", "202") not in ls)
        ok = metric(m, "hookflow_runs_total", status="succeeded")
        res = {
            "sync": sync, "wrk": w, "req_per_s": w["req_per_s"],
            "p99_ms": w["p99_ms"], "non_2xx": w["non_2xx_3xx"],
            "socket_errors": w["socket_errors"],
            "accepted_202": int(accepted), "answered_other": int(other),
            "queue_depth_at_load_end": int(metric(at_end,
                                                  "hookflow_queue_depth")),
            "runs_succeeded": int(ok),
            "runs_failed": int(metric(m, "hookflow_runs_total",
                                      status="failed")),
            "drained": t_drain is not None,
            "drain_s_after_load": (round(t_drain - t_load, 2)
                                   if t_drain else None),
            "runs_per_s_load_to_drain": (round(ok / (t_drain - t0), 1)
                                         if t_drain else None),
            "idle_rss_mib": mib(idle), "peak_rss_mib": mib(rs.peak_kib()),
            "rss_after_drain_mib": mib(after),
            "cpu_s": round(cpu, 2),
            "cpu_us_per_accept": round(cpu * 1e6 / max(accepted, 1), 1),
            "server_log": srv.log_tail(),
        }
    res["state_db_check"] = quick_check(os.path.join(root, "hookflow.db"))
    return res


def phase_runs(args, script):
    log("runs: hookflow --sync %s, one step db.exec(INSERT)" % args.runs_sync)
    root = os.path.join(args.tmp, "runs")
    os.makedirs(root, exist_ok=True)
    data = os.path.join(root, "data.db")
    con = sqlite3.connect(data, timeout=10)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)")
    con.commit()
    con.close()
    srv = hookflow_server(args, root, args.runs_sync, {
        "bench-runs": ("/bench/runs",
                       'db.exec("INSERT INTO t(v) VALUES (?)", event.body.n)')
    }).start()
    with Phase(srv):
        time.sleep(0.5)
        idle = proc_status(srv.pid).get("VmRSS")
        with RssSampler(srv.pid) as rs:
            t0 = time.monotonic()
            w = run_wrk(srv.url("/bench/runs"), script, args)
            t_load = time.monotonic()
            at_end = scrape(srv)
            t_drain, m = wait_drained(srv, args.drain_timeout)
        ok = metric(m, "hookflow_runs_total", workflow="bench-runs",
                    status="succeeded")
        failed = metric(m, "hookflow_runs_total", workflow="bench-runs",
                        status="failed")
        ok_at_end = metric(at_end, "hookflow_runs_total",
                           workflow="bench-runs", status="succeeded")
        accepted = metric(m, "hookflow_events_total", status="202")
        backlog = metric(at_end, "hookflow_queue_depth")
        status, body = http("GET", srv.url(
            "/api/runs?workflow=bench-runs&status=succeeded&limit=1"),
            headers={"Authorization": "Bearer " + TOKEN})
        last_run = None
        if status == 200:
            runs = json.loads(body).get("runs") or []
            last_run = runs[0]["id"] if runs else None
        peak = rs.peak_kib()
        log_tail = srv.log_tail()
    check = quick_check(os.path.join(root, "hookflow.db"))
    con = sqlite3.connect(data, timeout=10)
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    con.close()
    elapsed = (t_drain - t0) if t_drain else None
    drain = (t_drain - t_load) if t_drain else None
    return {
        "sync": args.runs_sync, "wrk": w, "req_per_s": w["req_per_s"],
        "p99_ms": w["p99_ms"], "non_2xx": w["non_2xx_3xx"],
        "socket_errors": w["socket_errors"], "accepted_202": int(accepted),
        "runs_succeeded": int(ok), "runs_failed": int(failed),
        "rows_in_data_db": rows, "last_succeeded_run": last_run,
        "drained": t_drain is not None,
        "load_s": round(t_load - t0, 2),
        "drain_s_after_load": round(drain, 2) if drain is not None else None,
        "queue_depth_at_load_end": int(backlog),
        "runs_per_s": round(ok / elapsed, 1) if elapsed else None,
        # A queue that kept up means the figure is the accept rate, not the
        # limit of the run path.
        "accept_limited": bool(t_drain) and backlog < 1000,
        "runs_per_s_during_load": round(ok_at_end / (t_load - t0), 1),
        "runs_per_s_drain_only": (round((ok - ok_at_end) / drain, 1)
                                  if drain and backlog > 1000 else None),
        "idle_rss_mib": mib(idle), "peak_rss_mib": mib(peak),
        "state_db_check": check, "server_log": log_tail,
    }


def phase_deliveries(args, script):
    """Hook for the outbound benchmark: each run emits one delivery to a
    second bench_baseline (the sink counts the POSTs it answered). Skipped
    when a probe run does not get a delivery through (outbound not built)."""
    log("deliveries: hookflow + webhook.emit() to a bench_baseline sink")
    sink = Server("sink", [args.baseline]).start()
    root = os.path.join(args.tmp, "deliveries")
    srv = None
    try:
        def sink_posts():
            status, body = http("GET", sink.url("/count"))
            return json.loads(body)["posts"] if status == 200 else -1

        lua = 'return webhook.emit("%s", { n = event.body.n })' % \
            sink.url("/sink")
        srv = hookflow_server(args, root, args.runs_sync, {
            "bench-deliveries": ("/bench/deliveries", lua)}).start()
        status, _ = http("POST", srv.url("/bench/deliveries"),
                         body=make_body().encode(),
                         headers={"Content-Type": "application/json"})
        deadline = time.monotonic() + 5
        while sink_posts() < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        if status != 202 or sink_posts() < 1:
            _, body = http("GET", srv.url(
                "/api/runs?workflow=bench-deliveries&limit=1"),
                headers={"Authorization": "Bearer " + TOKEN})
            why = "probe delivery did not arrive within 5s"
            try:
                run = (json.loads(body).get("runs") or [None])[0]
                if run and run.get("error"):
                    why += " (run %s: %s)" % (run["status"], run["error"])
            except ValueError:
                pass
            log("  skipped: " + why)
            return {"skipped": "outbound delivery not available: " + why}
        base = sink_posts()
        with Phase(srv), RssSampler(srv.pid) as rs:
            t0 = time.monotonic()
            w = run_wrk(srv.url("/bench/deliveries"), script, args)
            t_load = time.monotonic()
            t_drain, m = wait_drained(srv, args.drain_timeout)
            if srv.died():
                raise RuntimeError(srv.died())
            if t_drain is None:
                raise RuntimeError("queue did not drain within %.0fs"
                                   % args.drain_timeout)
            want = metric(m, "hookflow_runs_total",
                          workflow="bench-deliveries", status="succeeded") - 1
            # Then until the sink has seen one POST per run (bounded).
            deadline = time.monotonic() + args.drain_timeout
            t_done, got = None, sink_posts() - base
            while time.monotonic() < deadline:
                got = sink_posts() - base
                if got >= want:
                    t_done = time.monotonic()
                    break
                time.sleep(0.05)
        return {
            "wrk": w, "req_per_s": w["req_per_s"], "p99_ms": w["p99_ms"],
            "non_2xx": w["non_2xx_3xx"], "socket_errors": w["socket_errors"],
            "runs_succeeded": int(want), "delivered": int(got),
            # More POSTs at the sink than emits: sent more than once.
            "duplicates": max(0, int(got - want)),
            "accept_limited": t_done is not None and t_done - t_load < 1.0,
            "drained": t_done is not None,
            "load_s": round(t_load - t0, 2),
            "deliveries_per_s": (round(got / (t_done - t0), 1)
                                 if t_done else None),
            "peak_rss_mib": mib(rs.peak_kib()),
        }
    finally:
        if srv is not None:
            srv.stop()
        sink.stop()


# --------------------------------------------------------------------------
# report

def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%%.%df" % nd) % v
    return str(v)


def build_table(r):
    b = r.get("baseline") or {}
    rows = []

    def row(name, hv, bv=None, target=None, ok=None, nd=1):
        ratio = (hv / bv) if (hv is not None and bv) else None
        rows.append({"metric": name, "hookflow": hv, "baseline": bv,
                     "ratio": round(ratio, 3) if ratio is not None else None,
                     "target": target,
                     "meets_target": ok, "_nd": nd})

    for sync in ("full", "normal"):
        p = r.get("ingest_" + sync)
        if not p:
            continue
        rps, bps = p["req_per_s"], b.get("req_per_s")
        row("accepts/s (--sync %s)" % sync, rps, bps,
            ">= %.0f%% of baseline" % (TARGET_ACCEPT_RATIO * 100),
            (rps / bps >= TARGET_ACCEPT_RATIO) if bps else None)
        row("p99 ms (--sync %s)" % sync, p["p99_ms"], b.get("p99_ms"),
            "<= %.0f ms" % TARGET_P99_MS,
            p["p99_ms"] is not None and p["p99_ms"] <= TARGET_P99_MS, nd=2)
        row("non-2xx (--sync %s)" % sync, p["non_2xx"], None, "0",
            p["non_2xx"] == 0, nd=0)
        row("CPU us/accept (--sync %s)" % sync, p["cpu_us_per_accept"],
            b.get("cpu_us_per_req"))
    p = r.get("runs")
    if p:
        row("finished runs/s (db.exec step%s)" % (
            ", accept-limited" if p.get("accept_limited") else ""),
            p["runs_per_s"], None,
            ">= %.0f" % TARGET_RUNS_PER_S,
            p["runs_per_s"] is not None
            and p["runs_per_s"] >= TARGET_RUNS_PER_S)
    p = r.get("deliveries")
    if p:
        v = p.get("deliveries_per_s")
        row("deliveries/s" + (" (skipped)" if "skipped" in p else
                              ", accept-limited" if p.get("accept_limited")
                              else ""), v,
            None, ">= %.0f" % TARGET_DELIVERIES_PER_S,
            None if v is None else v >= TARGET_DELIVERIES_PER_S)
    p = r.get("ingest_full")
    if p:
        row("idle RSS MiB", p["idle_rss_mib"], b.get("idle_rss_mib"),
            "<= %.0f MB" % TARGET_IDLE_RSS_MB,
            p["idle_rss_mib"] * 1.048576 <= TARGET_IDLE_RSS_MB
            if p["idle_rss_mib"] else None, nd=2)
    peaks = [r[k]["peak_rss_mib"] for k in
             ("ingest_full", "ingest_normal", "runs", "deliveries")
             if r.get(k) and r[k].get("peak_rss_mib")]
    if peaks:
        pk = max(peaks)
        row("peak RSS MiB under load", pk, b.get("peak_rss_mib"),
            "<= %.0f MB" % TARGET_LOAD_RSS_MB,
            pk * 1.048576 <= TARGET_LOAD_RSS_MB, nd=2)
    return rows


def print_table(rows):
    hdr = ("metric", "hookflow", "baseline", "ratio", "target", "")
    lines = [hdr]
    for x in rows:
        mark = {True: "ok", False: "MISS", None: ""}[x["meets_target"]]
        lines.append((x["metric"], fmt(x["hookflow"], x["_nd"]),
                      fmt(x["baseline"], x["_nd"]), fmt(x["ratio"], 3),
                      x["target"] or "", mark))
    w = [max(len(str(l[i])) for l in lines) for i in range(len(hdr))]
    for i, l in enumerate(lines):
        print("  ".join(str(c).ljust(w[j]) if j == 0 or j >= 4
                        else str(c).rjust(w[j]) for j, c in enumerate(l)))
        if i == 0:
            print("  ".join("-" * n for n in w))


def compare_table(rows, other_rows):
    """Pairs each metric of this build with the other build's."""
    theirs = {x["metric"].split(", accept")[0]: x["hookflow"]
              for x in other_rows}
    out = []
    for x in rows:
        tv = theirs.get(x["metric"].split(", accept")[0])
        hv = x["hookflow"]
        out.append({"metric": x["metric"], "this": hv, "against": tv,
                    "ratio": round(hv / tv, 3) if hv is not None and tv
                    else None, "_nd": x["_nd"]})
    return out


def print_compare(rows):
    lines = [("metric", "this", "against", "this/against")]
    for x in rows:
        lines.append((x["metric"], fmt(x["this"], x["_nd"]),
                      fmt(x["against"], x["_nd"]), fmt(x["ratio"], 3)))
    w = [max(len(str(l[i])) for l in lines) for i in range(4)]
    for i, l in enumerate(lines):
        print("  ".join(str(c).ljust(w[j]) if j == 0 else str(c).rjust(w[j])
                        for j, c in enumerate(l)))
        if i == 0:
            print("  ".join("-" * n for n in w))
    for x in rows:
        x.pop("_nd", None)


def print_details(r):
    print("\nabsolute numbers")
    for key, p in r.items():
        if not isinstance(p, dict) or key in ("config",):
            continue
        print("  [%s]" % key)
        for k, v in p.items():
            if k == "wrk":
                lat = v.get("latency_ms", {})
                print("    %-28s %s requests in %.2fs; latency ms %s" % (
                    "wrk", v["requests"], v["seconds"] or 0,
                    " ".join("%s=%.3f" % kv for kv in lat.items())))
                continue
            print("    %-28s %s" % (k, v))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(here, "..", "..",
                                                   "build"),
                    help="meson build directory (default: ./build)")
    ap.add_argument("--duration", type=int, default=10,
                    help="seconds of wrk load per phase (default 10)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0,
                    help="hookflow --workers (default: hookflow's own)")
    ap.add_argument("--runs-sync", choices=("full", "normal"), default="full",
                    help="--sync for the runs and deliveries phases")
    ap.add_argument("--drain-timeout", type=float, default=60.0,
                    help="max seconds to wait for the queue to drain")
    ap.add_argument("--skip", default="",
                    help="comma-separated phases to skip: baseline, full, "
                         "normal, runs, deliveries")
    ap.add_argument("--out", help="write the results as JSON to this file")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    ap.add_argument("--against", metavar="OTHER_BUILD",
                    help="also run each hookflow phase with this build's "
                         "hookflow and compare")
    args = ap.parse_args()

    args.build = os.path.abspath(args.build)
    args.hookflow = os.path.join(args.build, "hookflow")
    args.baseline = os.path.join(args.build, "tests", "bench",
                                 "bench_baseline")
    other = (os.path.join(os.path.abspath(args.against), "hookflow")
             if args.against else None)
    for exe in (args.hookflow, args.baseline) + ((other,) if other else ()):
        if not os.access(exe, os.X_OK):
            sys.exit("bench: %s not found; run `ninja -C %s`"
                     % (exe, args.build))
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk not found in PATH")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    args.tmp = tempfile.mkdtemp(prefix="hookflow-bench-")
    script = os.path.join(args.tmp, "post.lua")
    write_wrk_script(script, make_body())
    results = {"config": {
        "duration_s": args.duration, "connections": args.connections,
        "wrk_threads": args.threads, "body_bytes": BODY_SIZE,
        "workers": args.workers or "default", "runs_sync": args.runs_sync,
        "cpus": os.cpu_count()}}
    problems = []
    against = {}
    t_start = time.monotonic()
    try:
        phases = [("baseline", "baseline", lambda: phase_baseline(args, script)),
                  ("full", "ingest_full",
                   lambda: phase_ingest(args, script, "full")),
                  ("normal", "ingest_normal",
                   lambda: phase_ingest(args, script, "normal")),
                  ("runs", "runs", lambda: phase_runs(args, script)),
                  ("deliveries", "deliveries",
                   lambda: phase_deliveries(args, script))]
        for short, key, fn in phases:
            if short in skip:
                continue
            try:
                results[key] = fn()
            except Exception as e:  # report and carry on with the others
                problems.append("%s: %s" % (short, e))
                log("  %s failed: %s" % (short, e))
                continue
            if other and short != "baseline":
                mine, args.hookflow = args.hookflow, other
                tmp, args.tmp = args.tmp, os.path.join(args.tmp, "against")
                os.makedirs(args.tmp, exist_ok=True)
                try:
                    against[key] = fn()
                except Exception as e:
                    problems.append("%s (against): %s" % (short, e))
                finally:
                    args.hookflow, args.tmp = mine, tmp
            p = results[key]
            # The runs and deliveries phases push harder than runs can
            # finish: 503 + Retry-After from --max-queue is the designed
            # backpressure there, reported but not a problem.
            if p.get("non_2xx") and short in ("full", "normal"):
                problems.append("%s: %d non-2xx answers" % (short,
                                                           p["non_2xx"]))
            elif p.get("non_2xx"):
                log("  %s: %d answers were 503 (backpressure, --max-queue)"
                    % (short, p["non_2xx"]))
            if any((p.get("socket_errors") or {}).values()):
                problems.append("%s: socket errors %s"
                                % (short, p["socket_errors"]))
            if p.get("drained") is False:
                problems.append("%s: queue did not drain within %.0fs"
                                % (short, args.drain_timeout))
            if p.get("duplicates"):
                problems.append("%s: %d deliveries more than emits"
                                % (short, p["duplicates"]))
            if p.get("state_db_check") not in (None, "ok"):
                problems.append("%s: state database check: %s"
                                % (short, p["state_db_check"]))
            if key == "runs" and p["rows_in_data_db"] > p["accepted_202"]:
                problems.append("runs: %d rows in data.db for %d accepted "
                                "events: steps ran more than once"
                                % (p["rows_in_data_db"], p["accepted_202"]))
            elif (key == "runs" and p["drained"]
                  and p["rows_in_data_db"] != p["runs_succeeded"]):
                problems.append("runs: %d rows in data.db but %d runs "
                                "succeeded" % (p["rows_in_data_db"],
                                               p["runs_succeeded"]))
            if problems and p.get("server_log"):
                problems.append("%s: server log tail:\n    %s" % (
                    short, "\n    ".join(p["server_log"])))
    finally:
        if args.keep:
            log("kept " + args.tmp)
        else:
            shutil.rmtree(args.tmp, ignore_errors=True)

    for p in results.values():
        if isinstance(p, dict) and "wrk" in p:
            p["wrk"].pop("raw", None)
    rows = build_table(results)
    results["table"] = [{k: v for k, v in x.items() if k != "_nd"}
                        for x in rows]
    results["problems"] = problems
    results["elapsed_s"] = round(time.monotonic() - t_start, 1)

    print()
    print_table(rows)
    if other:
        against["baseline"] = results.get("baseline")
        results["against"] = {"build": os.path.abspath(args.against),
                              "table": compare_table(rows,
                                                     build_table(against))}
    print_details({k: v for k, v in results.items()
                   if k not in ("table", "problems", "against")})
    for key in ("ingest_full", "ingest_normal"):
        if key in results:
            print("non-2xx answers reported by wrk (%s): %d" % (
                key, results[key]["non_2xx"]))
    if other:
        print("\nthis build (%s) against %s:" % (args.build,
                                                 results["against"]["build"]))
        print_compare(results["against"]["table"])
    if problems:
        print("\nPROBLEMS:\n  " + "\n  ".join(problems))
    print("\ntotal %.1fs" % results["elapsed_s"])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
