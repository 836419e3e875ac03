#!/usr/bin/env python3
"""hookflow benchmark: issue 13's target table -- accepts/s against a bare
libmicrohttpd baseline (bench_baseline) measured in the same invocation (only
that ratio is stable on shared machines: DESIGN.md, "Measuring"), p99, CPU per
event split by thread, WAL bytes per event, the drain rate of a backlog,
deliveries/s and RSS -- each row printed beside its target. A benchmark, not a
test: targets are reported, never asserted; the exit status is 1 only when
the load itself went wrong (non-2xx answers where none are expected, socket
errors, a queue that did not drain, a server that did not start).

    /usr/bin/python3 tests/bench/bench.py --build build [--duration 10]
        [--out bench.json] [--workers N] [--skip PHASE,...] [--keep]
        [--against OTHER_BUILD] [--backlog N] [--backlog-timeout S]
        [--backlog-rss-limit MIB] [--outbox-n N] [--wal-split]
    /usr/bin/python3 tests/bench/bench.py --pg [--pg-nodes 1,2,3]
        [--pg-step return|db] [--duration 10] ...   # bench_pg.py (root)

With --against, every hookflow phase runs a second time, right after the
first, with OTHER_BUILD's hookflow (e.g. a build of main before a change), and
a last table sets the two side by side: a change's cost measured in one run.
A quick check of the script itself: --duration 3 --backlog 20000.

Phases (each on a fresh temporary directory, 127.0.0.1 only):
  baseline   bench_baseline under wrk; its CPU us per request
  full       hookflow --sync full, one async workflow whose step is `return 1`:
             accepts/s, 503s, seconds from the load's end until every run has
             finished (hookflow_queue_depth 0), p99, CPU and WAL bytes per event
  normal     the same with --sync normal
  runs       a one-step workflow doing db.exec(INSERT); finished runs/s from the
             start of the load until hookflow_queue_depth is back to 0; each
             row names its run and run.attempt: a step run twice at the same
             attempt is a problem, as are more rows than accepted events
  deliveries a one-step workflow doing webhook.emit() to a second
             bench_baseline used as the sink, under wrk (one emit per run)
  outbox     tests/bench/outbox_rate.py's measurement: --outbox-n deliveries
             (default 20000), 500 webhook.emit() per run, to a bench_baseline
             sink; deliveries/s from the first POST to the sink's last count
  backlog    accept --backlog N events (default 1,000,000) while every worker
             is held, then the drain: finished runs/s from the load's end until
             the queue (and the on-disk backlog gauge, hookflow_backlog*, when
             the build has one) is 0, and RSS at the peak backlog. Workers are
             held by a second workflow whose step is an http.get() to a gate in
             this script that answers only once the load stops: one such run
             per worker (--workers, else the CPU count) is started first, so
             the backlog's own step stays `return 1` and the drain measures the
             engine, not a slow step. With `--max-backlog` in `hookflow serve
             --help` the phase passes --max-backlog N+10%; otherwise (today's
             main: the backlog is the in-memory queue) --max-queue N+10%, and
             the load stops early once the server's RSS passes
             --backlog-rss-limit (default 1024 MiB). The accepting part is
             bounded by --backlog-timeout (default 300 s). 503s are reported.
             Slow: skip it with --skip backlog or shorten it with --backlog.

Figures:
  CPU per event  utime+stime of every thread (/proc/PID/task/TID/stat, named
             by /proc/PID/task/TID/comm) from just before the load until every
             run has finished plus 1 s, divided by the accepted (202) events
             (or drained runs, or deliveries): groups "http" (hf-http, and
             MHD-* for libmicrohttpd's own threads with --http-io poll),
             "writer" (hf-writer), "workers" (hf-worker*), each other
             hf-* thread by its name when not 0 (hf-outbox, hf-sched, ...),
             "other" (the main thread, anything else); "exited" is the
             process's CPU that no live thread accounts for (threads that
             exited during the phase, and rounding). 503 answers cost CPU
             too: it is all charged to the accepted events. The baseline's figure is its CPU per
             request over the load.
  WAL bytes per event  write_bytes of /proc/PID/io over the same window,
             divided by the accepted events: bytes of file pages the server
             dirtied, i.e. sent towards the block layer -- the WAL frames and
             the checkpoint's writes into the database file (page-granular: a
             WAL page re-dirtied after an fsync counts again). Only the server
             writes into its state directory and, in the full and normal
             phases, the step writes nothing else. Checkpoint writes later
             than 1 s after the drain are not counted. Details also give
             wchar (bytes passed to write(2)-family calls, stderr lines
             included) and the stderr bytes this script read. With
             --wal-split (root, perf), `perf record` of the pwrite64/write
             tracepoints splits the bytes passed to those calls by file:
             the -wal file vs the database file (checkpoints); it costs the
             server CPU per call, so that phase's CPU figures grow a bit.
  RSS        VmRSS at idle (0.5 s after start) and its peak (VmHWM and samples
             every 0.1 s) under load and with the backlog.

Load: wrk -c64 -t2 -dDURATIONs --latency, POST of a 1 KiB JSON body with
Content-Type: application/json, keep-alive. The body is padded with "x" unless
--body ticket (a helpdesk ticket with prose: LZ4 packs it to about 0.8 where
it packs the padded one to a tenth; both bodies' WAL bytes belong in a
report). Python 3 standard library only.
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

# Targets from issue 13 (reported, never asserted).
TARGET_ACCEPT_RATIO = 0.50         # durable accepts/s (--sync full) / baseline
TARGET_NON_2XX = 0                 # ... with no 503
TARGET_FINISHED_AFTER_LOAD_S = 2.0  # ... every run finished by load end + 2 s
TARGET_P99_MS = 5.0
TARGET_CPU_US_PER_RUN = 40.0       # per accepted and finished one-step run
TARGET_DRAIN_RUNS_PER_S = 50000.0  # finished runs/s, only the backlog to drain
TARGET_WAL_BYTES_PER_EVENT = 2500.0  # WAL writes + checkpoint writes, in all
TARGET_DELIVERIES_PER_S = 20000.0  # outbox_rate.py: 500 emits per run
TARGET_IDLE_RSS_MIB = 8.0
TARGET_LOAD_RSS_MIB = 64.0
TARGET_BACKLOG_RSS_MIB = 64.0      # with a 1,000,000-event backlog

LISTEN_RE = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# request body and wrk script

# --body: "pad" (the default, the figures of issue 13) pads a small object
# with "x", which LZ4 packs to a tenth (hookflow stores bodies as LZ4 blocks
# with SQLite); "ticket" is shaped like a helpdesk's ticket webhook, with
# prose in it, and packs to about 0.8 of its size, as real JSON does.
BODY_KIND = "pad"

WORDS = ("printer the on fire is very colorful please advise next steps we "
         "tried water already and it did not help customer reports that "
         "invoice shows wrong amount after upgrade to enterprise plan").split()


def make_body(size=BODY_SIZE):
    """A JSON object of exactly `size` bytes with a numeric field `n`."""
    if BODY_KIND == "ticket":
        return make_ticket(size)
    doc = {"n": 1, "source": "hookflow-bench", "kind": "ticket.created",
           "pad": ""}
    empty = len(json.dumps(doc, separators=(",", ":")))
    doc["pad"] = "x" * (size - empty)
    text = json.dumps(doc, separators=(",", ":"))
    assert len(text) == size, len(text)
    return text


def make_ticket(size):
    """A helpdesk ticket of exactly `size` bytes (size >= 700) with `n`."""
    import random
    rnd = random.Random(13)
    doc = {"n": 1, "ticket": {
        "id": 35436, "url": "https://example.zendesk.com/api/v2/tickets/"
        "35436.json", "external_id": "ahg35h3jh", "type": "incident",
        "subject": "Help, my printer is on fire!", "description": "",
        "priority": "high", "status": "open", "requester_id": 20978392,
        "submitter_id": 76872, "assignee_id": 235323,
        "organization_id": 509974, "group_id": 98738,
        "tags": ["enterprise", "other_tag", "printer"],
        "created_at": "2026-12-06T18:15:34Z",
        "updated_at": "2026-12-06T18:16:02Z",
        "via": {"channel": "email", "source": {
            "from": {"address": "jane@example.com", "name": "Jane Doe"},
            "to": {"address": "support@example.com", "name": "Support"}}},
        "custom_fields": [{"id": 27642, "value": "745"},
                          {"id": 27648, "value": "yes"}],
        "satisfaction_rating": None, "has_incidents": False,
        "is_public": True}}
    text = ""
    while True:
        doc["ticket"]["description"] = text
        out = json.dumps(doc, separators=(",", ":"))
        if len(out) >= size:
            break
        text += rnd.choice(WORDS) + " "
    over = len(out) - size
    doc["ticket"]["description"] = text[:len(text) - over]
    out = json.dumps(doc, separators=(",", ":"))
    assert len(out) == size, len(out)
    return out


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


def start_wrk(url, script, args, duration):
    """wrk in the background for at most `duration` s; finish_wrk() ends it
    early (SIGINT: wrk stops and prints its summary) and parses it."""
    cmd = ["wrk", "-c%d" % args.connections, "-t%d" % args.threads,
           "-d%ds" % duration, "--latency", "-s", script, url]
    log("  " + " ".join(cmd))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish_wrk(p, early):
    if early and p.poll() is None:
        p.send_signal(signal.SIGINT)
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    res = parse_wrk(out)
    if res["req_per_s"] is None:
        raise RuntimeError("cannot parse wrk output (%s):\n%s"
                           % (p.returncode, out))
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


CLK_TCK = os.sysconf("SC_CLK_TCK")
THREAD_GROUPS = ("http", "writer", "workers", "other")  # always shown
GROUP_LABEL = {"http": "HTTP threads (hf-http, MHD-*)", "writer": "hf-writer",
               "workers": "hf-worker*", "other": "other threads",
               "exited": "exited threads / rounding"}


def thread_group(comm):
    """The group a thread's name belongs to (bench.py's docstring): http,
    writer, workers, each other hf-* thread by its name (hf-outbox, ...),
    or other."""
    if comm.startswith("MHD-") or comm == "hf-http":
        return "http"
    if comm == "hf-writer":
        return "writer"
    if comm.startswith("hf-worker"):
        return "workers"
    if comm.startswith("hf-"):
        return re.sub(r"[-_]?\d+$", "", comm)
    return "other"


def thread_ticks(pid):
    """{tid: (comm, utime + stime in clock ticks)} of every live thread."""
    out = {}
    base = "/proc/%d/task" % pid
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("%s/%s/stat" % (base, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open("%s/%s/comm" % (base, tid)) as f:
                comm = f.read().strip()
            out[int(tid)] = (comm, int(fields[11]) + int(fields[12]))
        except (OSError, IndexError, ValueError):
            continue  # the thread exited meanwhile
    return out


def proc_io(pid):
    """/proc/PID/io as {field: int} ({} once the process is gone)."""
    out = {}
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                k, v = line.split(":", 1)
                out[k.strip()] = int(v)
    except (OSError, ValueError):
        pass
    return out


class CpuProbe:
    """CPU (per thread group) and I/O of a process between start() and
    stop(); split(n) gives us per unit (e.g. per accepted event)."""

    def __init__(self, pid, log_bytes=None):
        self.pid = pid
        self.log_bytes = log_bytes  # callable: stderr bytes read so far

    def start(self):
        self.t0 = time.monotonic()
        self.cpu0 = proc_cpu_s(self.pid)
        self.threads0 = thread_ticks(self.pid)
        self.io0 = proc_io(self.pid)
        self.log0 = self.log_bytes() if self.log_bytes else 0
        return self

    def stop(self):
        self.seconds = time.monotonic() - self.t0
        cpu1 = proc_cpu_s(self.pid)
        threads1 = thread_ticks(self.pid)
        io1 = proc_io(self.pid)
        self.total_s = (cpu1 - self.cpu0) if None not in (cpu1, self.cpu0) \
            else None
        groups = dict.fromkeys(THREAD_GROUPS, 0.0)
        by_name = {}
        for tid, (comm, t1) in threads1.items():
            c0, t0 = self.threads0.get(tid, (comm, 0))
            d = (t1 - t0) / CLK_TCK
            g = thread_group(comm)
            groups[g] = groups.get(g, 0.0) + d
            name = re.sub(r"\d+$", "", comm)
            by_name[name] = by_name.get(name, 0.0) + d
        live = sum(groups.values())
        if self.total_s is not None and self.total_s - live > 1.5 / CLK_TCK:
            groups["exited"] = self.total_s - live
        self.groups, self.by_name = groups, by_name
        self.io = {k: io1.get(k, 0) - self.io0.get(k, 0)
                   for k in ("wchar", "write_bytes", "cancelled_write_bytes",
                             "syscw")}
        self.log = (self.log_bytes() - self.log0) if self.log_bytes else 0
        return self

    def split(self, n):
        """{"total": us, group: us, ...} per unit; None when n is 0."""
        if not n or self.total_s is None:
            return None
        out = {"total": round(self.total_s * 1e6 / n, 1)}
        for g, v in self.groups.items():
            if v or g in THREAD_GROUPS:
                out[g] = round(v * 1e6 / n, 1)
        return out

    def threads(self):
        """CPU seconds by thread name (digits stripped), for the details."""
        return {k: round(v, 2) for k, v in sorted(self.by_name.items())}

    def io_per(self, n):
        if not n:
            return {}
        written = self.io["write_bytes"] - self.io["cancelled_write_bytes"]
        return {"write_bytes_per_event": round(written / n, 1),
                "wchar_per_event": round(self.io["wchar"] / n, 1),
                "stderr_bytes_per_event": round(self.log / n, 1),
                "write_syscalls_per_event": round(self.io["syscw"] / n, 2)}


class WriteTrace:
    """--wal-split: `perf record` of the pwrite64/write tracepoints of a
    process, summed by file: the state database's -wal file (WAL frames),
    the database file itself (in WAL mode only checkpoints write it), and
    the rest. Bytes as passed to the calls (not page-granular). Costs the
    server some CPU per call while it runs."""

    EVENTS = ("syscalls:sys_enter_pwrite64", "syscalls:sys_enter_write")
    LINE = re.compile(r"(sys_enter_\w+):.*?fd: (0x[0-9a-f]+).*?"
                      r"count: (0x[0-9a-f]+)")

    def __init__(self, pid, state_db, out):
        self.pid, self.state_db, self.out = pid, state_db, out
        self.proc = None
        self.error = None

    def fds(self):
        out = {}
        base = "/proc/%d/fd" % self.pid
        try:
            for fd in os.listdir(base):
                try:
                    out[int(fd)] = os.readlink(os.path.join(base, fd))
                except OSError:
                    pass
        except OSError:
            pass
        return out

    def start(self):
        if shutil.which("perf") is None:
            self.error = "perf not found"
            return self
        cmd = ["perf", "record", "-q", "-o", self.out, "-p", str(self.pid)]
        for e in self.EVENTS:
            cmd += ["-e", e]
        self.fd0 = self.fds()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # attached
        if self.proc.poll() is not None:
            self.error = "perf record: " + self.proc.stderr.read().strip()
            self.proc = None
        return self

    def stop(self, events):
        """{"wal": B/event, "checkpoint": B/event, "other": B/event,
        "pwrite_calls": per event}, or {"error": why}."""
        if self.proc is None:
            return {"error": self.error}
        fds = dict(self.fd0)
        fds.update(self.fds())
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return {"error": "perf record did not stop"}
        p = subprocess.run(["perf", "script", "-i", self.out,
                            "-F", "event,trace"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            return {"error": "perf script: " + p.stderr.strip()[-300:]}
        sums = {"wal": 0, "checkpoint": 0, "other": 0}
        calls = 0
        db = os.path.realpath(self.state_db)
        for line in p.stdout.splitlines():
            m = self.LINE.search(line)
            if not m:
                continue
            path = fds.get(int(m.group(2), 16), "")
            n = int(m.group(3), 16)
            if path == db + "-wal":
                sums["wal"] += n
            elif path == db:
                sums["checkpoint"] += n
            else:
                sums["other"] += n
            calls += m.group(1) == "sys_enter_pwrite64"
        if not events:
            return {}
        out = {k: round(v / events, 1) for k, v in sums.items()}
        out["pwrite_calls"] = round(calls / events, 2)
        return out


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
        self.stderr_bytes = 0
        self._ready = threading.Event()

    def _reader(self):
        for line in self.proc.stderr:
            self.stderr_bytes += len(line.encode(errors="replace"))
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

def workflow_yaml(name, path, step_lua, timeout=None):
    body = "\n".join("      " + line for line in step_lua.splitlines())
    head = "timeout: %s\n" % timeout if timeout else ""
    step_to = "    timeout: %s\n" % timeout if timeout else ""
    return ("name: %s\n%son:\n  webhook:\n    path: %s\n    methods: [POST]\n"
            "steps:\n  - id: s\n%s    run: |\n%s\n"
            % (name, head, path, step_to, body))


def hookflow_server(args, root, sync, workflows, extra=()):
    """workflows: {name: (path, step_lua[, timeout])}."""
    wf, sc = os.path.join(root, "workflows"), os.path.join(root, "scripts")
    os.makedirs(wf, exist_ok=True)
    os.makedirs(sc, exist_ok=True)
    for name, spec in workflows.items():
        with open(os.path.join(wf, name + ".yml"), "w") as f:
            f.write(workflow_yaml(name, *spec))
    argv = [args.hookflow, "serve", "--listen", HOST + ":0",
            "--workflows", wf, "--scripts", sc,
            "--state", os.path.join(root, "hookflow.db"),
            "--data", os.path.join(root, "data.db"),
            "--admin-token", TOKEN, "--sync", sync]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    argv += list(extra)
    return Server("hookflow(%s)" % sync, argv, cwd=root)


def serve_help(hookflow):
    """`hookflow serve --help`, to tell which options a build has."""
    p = subprocess.run([hookflow, "serve", "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=10)
    return p.stdout


def backlog_gauge(samples):
    """The name of the on-disk backlog gauge (hookflow_backlog*, not a
    counter, not a size in bytes), or None while the build has none."""
    names = sorted({n for (n, _) in samples
                    if n.startswith("hookflow_backlog")
                    and not n.endswith(("_total", "_bytes", "_limit",
                                        "_max"))})
    return names[0] if names else None


def queue_left(samples, gauge=None):
    """Runs not finished: hookflow_queue_depth, and the backlog gauge."""
    left = metric(samples, "hookflow_queue_depth")
    if gauge:
        left = max(left, metric(samples, gauge))
    return left


def wait_drained(server, timeout, poll=0.05, gauge=None):
    """Poll /metrics until hookflow_queue_depth (and `gauge`, the on-disk
    backlog) is 0. Returns (t, samples) at the first zero, or (None, last
    samples) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    samples = {}
    while True:
        now = time.monotonic()
        try:
            samples = scrape(server)
            if queue_left(samples, gauge) == 0:
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


SETTLE_S = 1.0  # after the drain, for a late checkpoint's writes


def phase_ingest(args, script, sync, extra=()):
    """extra: more serve flags (pairs.py)."""
    log("ingest: hookflow --sync %s, async workflow, step `return 1`" % sync)
    root = os.path.join(args.tmp, "ingest-" + sync)
    srv = hookflow_server(args, root, sync, {
        "bench-ingest": ("/bench/ingest", "return 1")}, extra).start()
    with Phase(srv):
        time.sleep(0.5)
        idle = proc_status(srv.pid).get("VmRSS")
        m0 = scrape(srv)
        gauge = backlog_gauge(m0)
        probe = CpuProbe(srv.pid, lambda: srv.stderr_bytes)
        trace = None
        if args.wal_split:
            trace = WriteTrace(srv.pid, os.path.join(root, "hookflow.db"),
                               os.path.join(root, "perf.data")).start()
        with RssSampler(srv.pid) as rs:
            probe.start()
            t0 = time.monotonic()
            w = run_wrk(srv.url("/bench/ingest"), script, args)
            t_load = time.monotonic()
            at_end = scrape(srv)
            t_drain, m = wait_drained(srv, args.drain_timeout, gauge=gauge)
            if t_drain is not None:
                time.sleep(SETTLE_S)
            probe.stop()
        time.sleep(0.5)
        after = proc_status(srv.pid).get("VmRSS")
        accepted = metric(m, "hookflow_events_total", status="202")
        refused = metric(m, "hookflow_events_total", status="503")
        other = sum(v for (n, ls), v in m.items()
                    if n == "hookflow_events_total"
                    and ("status", "202") not in ls)
        ok = metric(m, "hookflow_runs_total", status="succeeded")
        split = probe.split(accepted)
        res = {
            "sync": sync, "wrk": w, "req_per_s": w["req_per_s"],
            "p99_ms": w["p99_ms"], "non_2xx": w["non_2xx_3xx"],
            "socket_errors": w["socket_errors"],
            "accepted_202": int(accepted), "answered_503": int(refused),
            "answered_other": int(other),
            "queue_depth_at_load_end": int(metric(at_end,
                                                  "hookflow_queue_depth")),
            "backlog_gauge_at_load_end": (int(metric(at_end, gauge))
                                          if gauge else None),
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
            "cpu_s": round(probe.total_s, 2),
            # All the CPU from the load's start until every run finished
            # (+ SETTLE_S), per accepted event: accept + run + commit.
            "cpu_us_per_accept": split["total"] if split else None,
            "cpu_us_per_event_by_thread": split,
            "cpu_s_by_thread_name": probe.threads(),
            "io_bytes": probe.io,
            "server_log": srv.log_tail(),
        }
        res.update(probe.io_per(accepted))
        res.update(commit_stats(m0, m, probe.seconds, accepted))
        if trace:
            res["write_calls_bytes_per_event"] = trace.stop(accepted)
    res["state_db_check"] = quick_check(os.path.join(root, "hookflow.db"))
    return res


def phase_runs(args, script):
    log("runs: hookflow --sync %s, one step db.exec(INSERT)" % args.runs_sync)
    root = os.path.join(args.tmp, "runs")
    os.makedirs(root, exist_ok=True)
    data = os.path.join(root, "data.db")
    con = sqlite3.connect(data, timeout=10)
    # Each row names its run and attempt: a step that ran twice shows.
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER, run TEXT,"
                " attempt INTEGER)")
    con.commit()
    con.close()
    srv = hookflow_server(args, root, args.runs_sync, {
        "bench-runs": ("/bench/runs",
                       'db.exec("INSERT INTO t(v, run, attempt) VALUES'
                       ' (?, ?, ?)", event.body.n, run.id, run.attempt)')
    }).start()
    with Phase(srv):
        time.sleep(0.5)
        idle = proc_status(srv.pid).get("VmRSS")
        # Drained once the disk backlog is empty too: past --max-queue the
        # window may be empty between two pages.
        gauge = backlog_gauge(scrape(srv))
        with RssSampler(srv.pid) as rs:
            t0 = time.monotonic()
            w = run_wrk(srv.url("/bench/runs"), script, args)
            t_load = time.monotonic()
            at_end = scrape(srv)
            t_drain, m = wait_drained(srv, args.drain_timeout, gauge=gauge)
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
    # Repeats not marked by run.attempt > 1 (a crash or a takeover marks
    # them): a run's step that ran twice at the same attempt.
    repeated = [r[0] for r in con.execute(
        "SELECT run FROM t GROUP BY run, attempt HAVING count(*) > 1"
        " LIMIT 5")]
    unmarked = con.execute("SELECT count(*) - count(DISTINCT run || '/' ||"
                           " attempt) FROM t").fetchone()[0]
    con.close()
    con = sqlite3.connect(os.path.join(root, "hookflow.db"), timeout=10)
    stored = con.execute("SELECT count(*) FROM events").fetchone()[0]
    con.close()
    elapsed = (t_drain - t0) if t_drain else None
    drain = (t_drain - t_load) if t_drain else None
    return {
        "sync": args.runs_sync, "wrk": w, "req_per_s": w["req_per_s"],
        "p99_ms": w["p99_ms"], "non_2xx": w["non_2xx_3xx"],
        "socket_errors": w["socket_errors"], "accepted_202": int(accepted),
        "runs_succeeded": int(ok), "runs_failed": int(failed),
        "rows_in_data_db": rows, "last_succeeded_run": last_run,
        "events_stored": stored, "steps_repeated": unmarked,
        "repeated_runs": repeated,
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


def phase_outbox(args, extra=()):
    """outbox_rate.py's measurement: args.outbox_n deliveries, 500
    webhook.emit() per run, from hookflow to a bench_baseline sink; the
    deliveries/s from the first POST until the sink has counted them all,
    and whether each arrived exactly once."""
    per = 500
    n = max(args.outbox_n // per, 1) * per
    log("outbox: %d webhook.emit() deliveries, %d per run, to a "
        "bench_baseline sink" % (n, per))
    sink = Server("sink", [args.baseline]).start()
    root = os.path.join(args.tmp, "outbox")
    srv = None
    try:
        def sink_posts():
            status, body = http("GET", sink.url("/count"))
            return json.loads(body)["posts"] if status == 200 else -1

        lua = ("for i = 1, event.body.n do\n"
               "  webhook.emit(event.body.url, {b = event.body.b, i = i})\n"
               "end")
        srv = hookflow_server(args, root, args.runs_sync, {
            "bench-outbox": ("/bench/outbox", lua)}, extra).start()
        with Phase(srv), RssSampler(srv.pid) as rs:
            time.sleep(0.5)
            base = sink_posts()
            probe = CpuProbe(srv.pid, lambda: srv.stderr_bytes).start()
            t0 = time.monotonic()
            for b in range(n // per):
                doc = {"url": sink.url("/sink"), "b": b, "n": per}
                status, body = http("POST", srv.url("/bench/outbox"),
                                    body=json.dumps(doc).encode(),
                                    headers={"Content-Type":
                                             "application/json"})
                if status != 202:
                    raise RuntimeError("POST /bench/outbox answered %d: %s"
                                       % (status, body[:200]))
            t_posted = time.monotonic()
            deadline = t0 + max(args.drain_timeout, n / 2000.0)
            got = sink_posts() - base
            t_done = None
            while time.monotonic() < deadline:
                got = sink_posts() - base
                if got >= n:
                    t_done = time.monotonic()
                    break
                time.sleep(0.02)
            probe.stop()
            time.sleep(1.0)  # any duplicate still on its way
            final = sink_posts() - base
            if srv.died():
                raise RuntimeError(srv.died())
            split = probe.split(got)
            log_tail = srv.log_tail()
        return {
            "deliveries_wanted": n, "delivered": int(got),
            "sink_posts_after_1s": int(final),
            "duplicates": max(0, int(final - n)),
            "drained": t_done is not None,
            "post_s": round(t_posted - t0, 2),
            "seconds": round((t_done or time.monotonic()) - t0, 2),
            "deliveries_per_s": (round(got / (t_done - t0), 1)
                                 if t_done else None),
            "cpu_us_per_delivery_by_thread": split,
            "cpu_s_by_thread_name": probe.threads(),
            "peak_rss_mib": mib(rs.peak_kib()),
            "server_log": log_tail,
        }
    finally:
        if srv is not None:
            srv.stop()
        sink.stop()


class Gate:
    """An HTTP server whose GETs wait until release(): the backlog phase's
    held workers sit in an http.get() to it."""

    def __init__(self, limit_s):
        import http.server

        gate = self
        self.open = threading.Event()
        self.waiting = 0
        self.served = 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with gate.lock:
                    gate.waiting += 1
                gate.open.wait(limit_s)
                with gate.lock:
                    gate.waiting -= 1
                    gate.served += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://%s:%d/gate" % (HOST, self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def release(self):
        self.open.set()

    def close(self):
        self.open.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def phase_backlog(args, script):
    """Accept args.backlog events while every worker is held, then drain."""
    n = args.backlog
    limit = n + n // 10 + 1000
    has_max_backlog = "--max-backlog" in serve_help(args.hookflow)
    extra = (["--max-backlog", str(limit)] if has_max_backlog
             else ["--max-queue", str(limit)])
    workers = args.workers or os.sysconf("SC_NPROCESSORS_ONLN")
    log("backlog: accept %d events with the %d workers held, then drain "
        "(%s)" % (n, workers, " ".join(extra)))
    hold_s = int(args.backlog_timeout + 120)
    gate = Gate(hold_s)
    root = os.path.join(args.tmp, "backlog")
    srv = hookflow_server(args, root, "full", {
        "bench-backlog": ("/bench/backlog", "return 1"),
        "bench-gate": ("/bench/gate",
                       'http.get("%s", {timeout = "%ds"})' % (gate.url,
                                                               hold_s),
                       "%ds" % (hold_s + 60))}, extra).start()
    try:
        with Phase(srv):
            time.sleep(0.5)
            idle = proc_status(srv.pid).get("VmRSS")
            gauge = backlog_gauge(scrape(srv))
            # Hold every worker: one gate run each.
            for _ in range(workers):
                status, body = http("POST", srv.url("/bench/gate"),
                                    body=b"{}",
                                    headers={"Content-Type":
                                             "application/json"})
                if status != 202:
                    raise RuntimeError("POST /bench/gate answered %d: %s"
                                       % (status, body[:200]))
            deadline = time.monotonic() + 10
            while gate.waiting < workers and time.monotonic() < deadline:
                time.sleep(0.05)
            held = gate.waiting
            if held < workers:
                log("  only %d of %d workers held" % (held, workers))
            m0 = scrape(srv)
            gate_events = metric(m0, "hookflow_events_total", status="202")
            rss_limit_kib = args.backlog_rss_limit * 1024
            accept = CpuProbe(srv.pid, lambda: srv.stderr_bytes)
            with RssSampler(srv.pid) as rs:
                accept.start()
                t0 = time.monotonic()
                p = start_wrk(srv.url("/bench/backlog"), script, args,
                              int(args.backlog_timeout))
                why, accepted = "timeout", 0
                while p.poll() is None:
                    time.sleep(0.2)
                    if srv.died():
                        why = "server died"
                        break
                    try:
                        accepted = metric(scrape(srv),
                                          "hookflow_events_total",
                                          status="202") - gate_events
                    except (OSError, RuntimeError):
                        pass
                    if accepted >= n:
                        why = "accepted %d" % n
                        break
                    if rs.max_rss > rss_limit_kib:
                        why = "RSS past --backlog-rss-limit %d MiB" % \
                            args.backlog_rss_limit
                        break
                w = finish_wrk(p, early=True)
                t_load = time.monotonic()
                accept.stop()
                if srv.died():
                    raise RuntimeError(srv.died())
                at_end = scrape(srv)
                rss_at_end = proc_status(srv.pid).get("VmRSS")
                peak_accept = rs.peak_kib()
                drain = CpuProbe(srv.pid, lambda: srv.stderr_bytes).start()
                gate.release()
                t_rel = time.monotonic()
                t_drain, m = wait_drained(
                    srv, max(args.drain_timeout, accepted / 5000.0),
                    poll=0.1, gauge=gauge)
                drain.stop()
                peak = rs.peak_kib()
            after = proc_status(srv.pid).get("VmRSS")
            log_tail = srv.log_tail()
    finally:
        gate.close()
    accepted = metric(m, "hookflow_events_total", status="202") - gate_events
    refused = metric(m, "hookflow_events_total", status="503")
    done_end = metric(at_end, "hookflow_runs_total", workflow="bench-backlog")
    done = metric(m, "hookflow_runs_total", workflow="bench-backlog")
    drained = done - done_end
    drain_s = (t_drain - t_rel) if t_drain else None
    return {
        "events_wanted": n, "serve_flags": " ".join(extra),
        "backlog_gauge": gauge, "workers_held": held, "workers": workers,
        "load_stopped_by": why, "wrk": w, "req_per_s": w["req_per_s"],
        "p99_ms": w["p99_ms"], "non_2xx": w["non_2xx_3xx"],
        "socket_errors": w["socket_errors"],
        "accepted_202": int(accepted), "answered_503": int(refused),
        "load_s": round(t_load - t0, 2),
        "accepts_per_s": round(accepted / (t_load - t0), 1),
        "runs_finished_during_load": int(done_end),
        "queue_depth_at_load_end": int(metric(at_end,
                                              "hookflow_queue_depth")),
        "backlog_gauge_at_load_end": (int(metric(at_end, gauge))
                                      if gauge else None),
        "drained": t_drain is not None,
        "drain_s": round(drain_s, 2) if drain_s else None,
        "runs_drained": int(drained),
        "runs_failed": int(metric(m, "hookflow_runs_total",
                                  workflow="bench-backlog", status="failed")),
        "drain_runs_per_s": (round(drained / drain_s, 1)
                             if drain_s else None),
        # Below 1.0 with a backlog: the drain waits (commits), not CPU.
        "drain_cpu_cores_busy": (round(drain.total_s / drain.seconds, 2)
                                 if drain.total_s is not None else None),
        **probe_io_prefixed("drain_", commit_stats(at_end, m, drain.seconds,
                                                   drained)),
        "cpu_us_per_accept_by_thread": accept.split(accepted),
        "cpu_us_per_drained_run_by_thread": drain.split(drained),
        "cpu_s_by_thread_name_drain": drain.threads(),
        "idle_rss_mib": mib(idle), "rss_at_load_end_mib": mib(rss_at_end),
        "peak_rss_accepting_mib": mib(peak_accept),
        "peak_rss_mib": mib(peak), "rss_after_drain_mib": mib(after),
        "server_log": log_tail,
        **probe_io_prefixed("accept_", accept.io_per(accepted)),
    }


def commit_stats(before, after, seconds, events):
    """Group commits of the state database between two scrapes."""
    c = (metric(after, "hookflow_store_commits_total")
         - metric(before, "hookflow_store_commits_total"))
    w = (metric(after, "hookflow_store_writes_total")
         - metric(before, "hookflow_store_writes_total"))
    if not c:
        return {}
    return {"commits_per_s": round(c / seconds, 1) if seconds else None,
            "writes_per_commit": round(w / c, 1),
            "events_per_commit": round(events / c, 1)}


def probe_io_prefixed(prefix, d):
    return {prefix + k: v for k, v in d.items()}


# --------------------------------------------------------------------------
# report

def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%%.%df" % nd) % v
    return str(v)


def build_table(r):
    """Issue 13's target rows first (target column filled), then the other
    figures (no target)."""
    b = r.get("baseline") or {}
    rows = []

    def row(name, hv, bv=None, target=None, ok=None, nd=1):
        ratio = (hv / bv) if (hv is not None and bv) else None
        rows.append({"metric": name, "hookflow": hv, "baseline": bv,
                     "ratio": round(ratio, 3) if ratio is not None else None,
                     "target": target,
                     "meets_target": ok, "_nd": nd})

    def le(v, t):
        return None if v is None else v <= t

    def ge(v, t):
        return None if v is None else v >= t

    p = r.get("ingest_full")
    if p:
        rps, bps = p["req_per_s"], b.get("req_per_s")
        row("durable accepts/s (--sync full, runs executing)", rps, bps,
            ">= %.2f of baseline" % TARGET_ACCEPT_RATIO,
            (rps / bps >= TARGET_ACCEPT_RATIO) if bps else None, nd=0)
        row("  non-2xx answers (503)", p["non_2xx"], None,
            "%d" % TARGET_NON_2XX, p["non_2xx"] <= TARGET_NON_2XX, nd=0)
        row("  s from load end until every run finished",
            p["drain_s_after_load"], None,
            "<= %.0f s" % TARGET_FINISHED_AFTER_LOAD_S,
            p["drained"] and le(p["drain_s_after_load"],
                                TARGET_FINISHED_AFTER_LOAD_S), nd=2)
        row("p99 accept latency ms (--sync full)", p["p99_ms"],
            b.get("p99_ms"), "<= %.0f ms" % TARGET_P99_MS,
            le(p["p99_ms"], TARGET_P99_MS), nd=2)
        row("CPU us per accepted+finished run (--sync full)",
            p["cpu_us_per_accept"], b.get("cpu_us_per_req"),
            "<= %.0f us" % TARGET_CPU_US_PER_RUN,
            p["drained"] and le(p["cpu_us_per_accept"],
                                TARGET_CPU_US_PER_RUN))
        for g, v in (p.get("cpu_us_per_event_by_thread") or {}).items():
            if g != "total":
                row("  %s, us/event" % GROUP_LABEL.get(g, g), v)
    p = r.get("backlog")
    if p:
        row("finished runs/s, only the backlog to drain",
            p["drain_runs_per_s"], None,
            ">= %.0f" % TARGET_DRAIN_RUNS_PER_S,
            ge(p["drain_runs_per_s"], TARGET_DRAIN_RUNS_PER_S), nd=0)
    p = r.get("ingest_full")
    if p:
        row("WAL bytes/event, WAL + checkpoint (write_bytes)",
            p.get("write_bytes_per_event"), None,
            "<= %.0f B" % TARGET_WAL_BYTES_PER_EVENT,
            le(p.get("write_bytes_per_event"), TARGET_WAL_BYTES_PER_EVENT),
            nd=0)
        split = p.get("write_calls_bytes_per_event") or {}
        if "wal" in split:
            row("  --wal-split: -wal file pwrite B/event", split["wal"],
                nd=0)
            row("  --wal-split: database file (checkpoint) B/event",
                split["checkpoint"], nd=0)
    p = r.get("outbox")
    if p:
        row("deliveries/s (outbox_rate.py: 500 emits per run)",
            p["deliveries_per_s"], None,
            ">= %.0f" % TARGET_DELIVERIES_PER_S,
            ge(p["deliveries_per_s"], TARGET_DELIVERIES_PER_S), nd=0)
    p = r.get("ingest_full")
    if p:
        row("RSS MiB idle", p["idle_rss_mib"], b.get("idle_rss_mib"),
            "<= %.0f MiB" % TARGET_IDLE_RSS_MIB,
            le(p["idle_rss_mib"], TARGET_IDLE_RSS_MIB), nd=2)
    peaks = [r[k]["peak_rss_mib"] for k in
             ("ingest_full", "ingest_normal", "runs", "deliveries", "outbox")
             if r.get(k) and r[k].get("peak_rss_mib")]
    if peaks:
        pk = max(peaks)
        row("RSS MiB under load (peak)", pk, b.get("peak_rss_mib"),
            "<= %.0f MiB" % TARGET_LOAD_RSS_MIB,
            pk <= TARGET_LOAD_RSS_MIB, nd=2)
    p = r.get("backlog")
    if p:
        full = p["accepted_202"] >= p["events_wanted"]
        row("RSS MiB with a %d-event backlog (peak)%s" % (
            p["events_wanted"], "" if full else ", backlog incomplete"),
            p["peak_rss_mib"], None,
            "<= %.0f MiB" % TARGET_BACKLOG_RSS_MIB,
            False if not full else le(p["peak_rss_mib"],
                                      TARGET_BACKLOG_RSS_MIB), nd=2)
        row("  backlog: events accepted (503 answers: %d)"
            % p["answered_503"], p["accepted_202"], None,
            ">= %d" % p["events_wanted"], full, nd=0)

    # Other figures, no target.
    p = r.get("ingest_full")
    if p:
        row("wchar bytes/event (--sync full)", p.get("wchar_per_event"),
            nd=0)
    p = r.get("backlog")
    if p:
        row("backlog: accepts/s while held", p["accepts_per_s"],
            b.get("req_per_s"), nd=0)
        cpu = p.get("cpu_us_per_drained_run_by_thread") or {}
        row("backlog: CPU us per drained run", cpu.get("total"))
        row("backlog: CPU cores busy while draining",
            p.get("drain_cpu_cores_busy"), nd=2)
    p = r.get("ingest_normal")
    if p:
        row("accepts/s (--sync normal)", p["req_per_s"], b.get("req_per_s"),
            nd=0)
        row("p99 ms (--sync normal)", p["p99_ms"], b.get("p99_ms"), nd=2)
        row("non-2xx (--sync normal)", p["non_2xx"], nd=0)
        row("CPU us/accept (--sync normal)", p["cpu_us_per_accept"],
            b.get("cpu_us_per_req"))
        row("WAL bytes/event (--sync normal)",
            p.get("write_bytes_per_event"), nd=0)
    p = r.get("runs")
    if p:
        row("finished runs/s (db.exec step%s)" % (
            ", accept-limited" if p.get("accept_limited") else ""),
            p["runs_per_s"], nd=0)
    p = r.get("deliveries")
    if p:
        row("deliveries/s, one emit per run under load" + (
            " (skipped)" if "skipped" in p else ", accept-limited"
            if p.get("accept_limited") else ""),
            p.get("deliveries_per_s"), nd=0)
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


def metric_key(name):
    """A row's name without the parts that differ between builds."""
    return re.sub(r" \(503 answers: \d+\)|, accept-limited|"
                  r", backlog incomplete", "", name)


def compare_table(rows, other_rows):
    """Pairs each metric of this build with the other build's."""
    theirs = {metric_key(x["metric"]): x["hookflow"] for x in other_rows}
    out = []
    for x in rows:
        tv = theirs.get(metric_key(x["metric"]))
        hv = x["hookflow"]
        out.append({"metric": x["metric"], "this": hv, "against": tv,
                    "ratio": round(hv / tv, 3) if hv is not None and tv
                    else None, "_nd": x["_nd"]})
    mine = {metric_key(x["metric"]) for x in rows}
    for x in other_rows:  # rows only the other build has (a new thread)
        if metric_key(x["metric"]) not in mine:
            out.append({"metric": x["metric"], "this": None,
                        "against": x["hookflow"], "ratio": None,
                        "_nd": x["_nd"]})
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
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(here, "..", "..",
                                                   "build"),
                    help="meson build directory (default: ./build)")
    ap.add_argument("--duration", type=int, default=10,
                    help="seconds of wrk load per phase (default 10)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--body", choices=("pad", "ticket"), default="pad",
                    help="the 1 KiB JSON body: padded with x (the default,"
                    " issue 13's figures) or a helpdesk ticket with prose")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0,
                    help="hookflow --workers (default: hookflow's own)")
    ap.add_argument("--runs-sync", choices=("full", "normal"), default="full",
                    help="--sync for the runs and deliveries phases")
    ap.add_argument("--drain-timeout", type=float, default=60.0,
                    help="max seconds to wait for the queue to drain")
    ap.add_argument("--skip", default="",
                    help="comma-separated phases to skip: baseline, full, "
                         "normal, runs, deliveries, outbox, backlog")
    ap.add_argument("--backlog", type=int, default=1000000, metavar="N",
                    help="events the backlog phase accepts while the "
                         "workers are held (default 1000000)")
    ap.add_argument("--backlog-timeout", type=float, default=300.0,
                    metavar="S", help="longest the backlog phase accepts "
                    "(default 300 s)")
    ap.add_argument("--backlog-rss-limit", type=int, default=1024,
                    metavar="MIB", help="stop the backlog phase's load once "
                    "the server's RSS passes this (default 1024 MiB)")
    ap.add_argument("--wal-split", action="store_true",
                    help="full and normal phases: split the bytes written "
                    "into WAL and checkpoint with perf tracepoints (root; "
                    "costs the server CPU per write)")
    ap.add_argument("--outbox-n", type=int, default=20000, metavar="N",
                    help="deliveries in the outbox phase (default 20000)")
    ap.add_argument("--out", help="write the results as JSON to this file")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    ap.add_argument("--pg", action="store_true",
                    help="instead of the phases above: the SQLite single "
                    "node and --pg-nodes nodes over one throwaway local "
                    "PostgreSQL (bench_pg.py; root)")
    ap.add_argument("--pg-nodes", default="1,2,3", metavar="N,...",
                    help="--pg: node counts to measure (default 1,2,3)")
    ap.add_argument("--pg-step", choices=("return", "db"), default="return",
                    help="--pg: the step, `return 1` or a db.exec(INSERT)")
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

    global BODY_KIND
    BODY_KIND = args.body
    args.tmp = tempfile.mkdtemp(prefix="hookflow-bench-")
    script = os.path.join(args.tmp, "post.lua")
    write_wrk_script(script, make_body())
    if args.pg:
        import bench_pg
        try:
            return bench_pg.run(args, script)
        finally:
            if not args.keep:
                shutil.rmtree(args.tmp, ignore_errors=True)
    results = {"config": {
        "duration_s": args.duration, "connections": args.connections,
        "wrk_threads": args.threads, "body_bytes": BODY_SIZE,
        "body": args.body,
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
                   lambda: phase_deliveries(args, script)),
                  ("outbox", "outbox", lambda: phase_outbox(args)),
                  ("backlog", "backlog",
                   lambda: phase_backlog(args, script))]
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
            before = len(problems)
            # The runs and deliveries phases push harder than runs can
            # finish: 503 + Retry-After from --max-queue is the designed
            # backpressure there, reported but not a problem.
            if p.get("non_2xx") and short in ("full", "normal"):
                problems.append("%s: %d non-2xx answers" % (short,
                                                           p["non_2xx"]))
            elif p.get("non_2xx"):
                log("  %s: %d answers were 503 (backpressure)"
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
            if key == "runs" and p.get("steps_repeated"):
                problems.append("runs: %d steps ran more than once at the "
                                "same run.attempt (runs %s)"
                                % (p["steps_repeated"],
                                   ", ".join(p["repeated_runs"])))
            elif key == "runs" and p["rows_in_data_db"] > p["accepted_202"]:
                problems.append("runs: %d rows in data.db for %d accepted "
                                "events (%s stored), no step repeated: "
                                "events stored but not counted"
                                % (p["rows_in_data_db"], p["accepted_202"],
                                   p.get("events_stored")))
            elif (key == "runs" and p["drained"]
                  and p["rows_in_data_db"] != p["runs_succeeded"]):
                problems.append("runs: %d rows in data.db but %d runs "
                                "succeeded" % (p["rows_in_data_db"],
                                               p["runs_succeeded"]))
            if len(problems) > before and p.get("server_log"):
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
