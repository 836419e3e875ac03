#!/usr/bin/env python3
"""Which b-trees a group commit rewrites: the WAL's frames per commit, each
attributed to the table or index its page belongs to. A measurement, not a
test: it explains bench.py's "WAL bytes per event" row.

    /usr/bin/python3 tests/bench/wal_pages.py --build build [--duration 3]
        [--body padded|ticket] [--against OTHER_BUILD]

It starts `hookflow serve --sync full` on bench.py's one-step workflow, loads
it with wrk (64 connections) for --duration seconds, kills it (SIGKILL, so
that no checkpoint runs at exit), then reads the WAL file: every frame of its
last cycle (those whose salts match the header: the frames since the last
checkpoint restarted it), grouped by commit (a frame with a non-zero "size
after commit" ends one). A copy of the database and WAL is then opened with
Python's sqlite3, which reads the WAL back, and `dbstat` maps each page
number to its b-tree ("events", "runs", "events/internal" for an interior
page, "page 1" for the file's header page). Prints frames per commit by
b-tree and the database's bytes per event by b-tree.
Python 3 standard library and wrk only; the sqlite3 module must have dbstat
(Debian's has).
"""
import argparse
import collections
import os
import shutil
import signal
import sqlite3
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402


def wal_commits(path):
    """The page numbers of each commit of the WAL's last cycle."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 32:
        return []
    _, _, psz, _, s1, s2, _, _ = struct.unpack(">8I", data[:32])
    commits, cur, off = [], [], 32
    while off + 24 + psz <= len(data):
        pgno, size, f1, f2 = struct.unpack(">4I", data[off:off + 16])
        if (f1, f2) != (s1, s2):
            break
        cur.append(pgno)
        if size:
            commits.append(cur)
            cur = []
        off += 24 + psz
    return commits


def page_names(db):
    names = {1: "page 1"}
    for name, pgno, kind in db.execute(
            "SELECT name, pageno, pagetype FROM dbstat"):
        if pgno != 1:
            names[pgno] = name + ("" if kind == "leaf" else "/" + kind)
    return names


def measure(hookflow, args):
    root = tempfile.mkdtemp(prefix="hookflow-walpages-")
    try:
        opts = argparse.Namespace(hookflow=hookflow, workers=0)
        srv = bench.hookflow_server(opts, root, "full", {
            "bench-ingest": ("/bench/ingest", "return 1")}).start()
        try:
            body = (bench.make_ticket(bench.BODY_SIZE) if args.body == "ticket"
                    else bench.make_body())
            script = os.path.join(root, "post.lua")
            bench.write_wrk_script(script, body)
            wrk = argparse.Namespace(connections=64, threads=2,
                                     duration=args.duration)
            w = bench.run_wrk(srv.url("/bench/ingest"), script, wrk)
            time.sleep(0.3)
        finally:
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait(10)
        state = os.path.join(root, "hookflow.db")
        commits = wal_commits(state + "-wal")
        copy = os.path.join(root, "copy.db")
        shutil.copyfile(state, copy)
        shutil.copyfile(state + "-wal", copy + "-wal")
        db = sqlite3.connect(copy)
        names = page_names(db)
        events = db.execute("SELECT count(*) FROM events").fetchone()[0]
        per_tree = dict(db.execute(
            "SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
        db.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return w, commits, names, events, per_tree


def report(label, w, commits, names, events, per_tree):
    print("%s: %.0f accepts/s; %d commits in the WAL's last cycle"
          % (label, w["req_per_s"], len(commits)))
    if not commits:
        return
    count = collections.Counter()
    for c in commits:
        for pgno in c:
            count[names.get(pgno, "free or new")] += 1
    n = len(commits)
    print("  frames per commit: %.2f (4 KiB pages)"
          % (sum(map(len, commits)) / n))
    for name, k in count.most_common():
        print("    %-28s %6.2f" % (name, k / n))
    print("  database bytes per event (%d events), by b-tree:" % events)
    for name, size in sorted(per_tree.items(), key=lambda x: -x[1]):
        if size and events and size / events >= 1:
            print("    %-28s %6.0f" % (name, size / events))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..",
                                                   "build"))
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--body", choices=("padded", "ticket"), default="padded")
    ap.add_argument("--against", metavar="OTHER_BUILD",
                    help="then the same with this build's hookflow")
    args = ap.parse_args()
    for build in [args.build] + ([args.against] if args.against else []):
        hookflow = os.path.join(os.path.abspath(build), "hookflow")
        report(build, *measure(hookflow, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
