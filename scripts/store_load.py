#!/usr/bin/python3
"""Measures the state store per event: writer-thread CPU (µs/event, from
/proc/PID/task/*/stat) and bytes written (WAL and checkpoint, from strace's
pwrite64 calls per file, with --strace). Starts `hookflow serve --sync full`
on a one-step workflow, posts N events with a 1 KiB JSON body over keep-alive
connections, waits until every run finished.

    scripts/store_load.py BIN [BIN2 ...] [-n 4000] [--strace]

--wrk S: load with wrk (64 connections with -c 64) for S seconds instead;
the events are the runs stored. Several binaries are measured one after another, in the order given, repeated
--rounds times (A/B in the same minute)."""
import argparse, http.client, json, os, re, sqlite3, subprocess, sys
import tempfile, threading, time

WF = "name: one\non:\n  webhook:\n    path: /one\nsteps:\n  - id: s\n    run: return 1\n"
BODY = json.dumps({"k": "x" * 1000}).encode()


def threads_cpu(pid):
    out = {}
    tck = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            s = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        name = s[s.index("(") + 1:s.rindex(")")]
        f = s[s.rindex(")") + 2:].split()
        out[name] = out.get(name, 0) + (int(f[11]) + int(f[12])) / tck
    return out


def post_all(port, n, conns):
    per = [n // conns + (1 if i < n % conns else 0) for i in range(conns)]
    bad = []

    def go(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(k):
            c.request("POST", "/one", BODY, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status != 202:
                bad.append(r.status)
        c.close()
    ts = [threading.Thread(target=go, args=(k,)) for k in per]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return bad


def one(binary, n, conns, use_strace, wrk=0):
    d = tempfile.mkdtemp(prefix="hfload")
    os.mkdir(f"{d}/wf")
    open(f"{d}/wf/one.yml", "w").write(WF)
    state = f"{d}/state.db"
    cmd = [binary, "serve", "--listen", "127.0.0.1:0", "--workflows",
           f"{d}/wf", "--state", state, "--data", f"{d}/data.db",
           "--workers", "2", "--sync", "full", "--admin-token", "t",
           "--max-queue", "1000000"]
    if use_strace:
        cmd = ["strace", "-f", "-qq", "-e", "trace=pwrite64,pwritev",
               "-e", "signal=none", "-o", f"{d}/strace"] + cmd
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port = None
    for line in p.stderr:
        m = re.search(r"listening on http://[\d.]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    pid = p.pid
    if use_strace:
        time.sleep(0.3)
        kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
        pid = int(kids[0])
    c0 = threads_cpu(pid)
    t0 = time.time()
    if wrk:
        open(f"{d}/post.lua", "w").write(
            'wrk.method = "POST"\nwrk.body = [[' + BODY.decode() +
            ']]\nwrk.headers["Content-Type"] = "application/json"\n')
        subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{int(wrk)}s", "-s",
                        f"{d}/post.lua", f"http://127.0.0.1:{port}/one"],
                       capture_output=True, check=True)
        bad = []
    else:
        bad = post_all(port, n, conns)
    con = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10)
    while con.execute("SELECT count(*) FROM runs WHERE status IN"
                      " ('queued','running')").fetchone()[0]:
        time.sleep(0.05)
    wall = time.time() - t0
    runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    if wrk:
        n = runs
    con.close()
    fds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    c1 = threads_cpu(pid)
    os.kill(pid, 15)
    p.wait(60)
    size = os.path.getsize(state)
    cpu = {k: (c1.get(k, 0) - c0.get(k, 0)) * 1e6 / n for k in c1}
    line = (f"{binary}: {n} events, {runs} runs, {len(bad)} not 202, "
            f"{n / wall:.0f} ev/s; µs/event: writer {cpu.get('hf-writer', 0):.1f}"
            f", checkpointer {cpu.get('hf-ckpt', 0):.1f}, all "
            f"{sum(cpu.values()):.1f}; database file {size / n:.0f} B/event")
    if use_strace:
        by = {}
        for l in open(f"{d}/strace"):
            m = re.search(r"pwrite(?:64|v)\((\d+),.*\) = (\d+)$", l)
            if m:
                path = fds.get(m.group(1), "?")
                kind = ("wal" if path.endswith("-wal") else "db" if
                        path == state else "other")
                by[kind] = by.get(kind, 0) + int(m.group(2))
        line += "; bytes/event: " + ", ".join(
            f"{k} {v / n:.0f}" for k, v in sorted(by.items()))
    print(line, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bins", nargs="+")
    ap.add_argument("-n", type=int, default=4000)
    ap.add_argument("-c", "--conns", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--wrk", type=float, default=0,
                    help="load with wrk for this many seconds instead")
    a = ap.parse_args()
    for _ in range(a.rounds):
        for b in a.bins:
            one(b, a.n, a.conns, a.strace, a.wrk)


if __name__ == "__main__":
    main()
