#!/usr/bin/env python3
"""Two builds' durable accept path in alternating pairs of fresh servers: the
measurement that tells a change of a few percent from this machine's drift.
A benchmark, not a test: nothing is asserted.

    /usr/bin/python3 tests/bench/pairs.py --build build --against OTHER_BUILD
        [-n 5] [--duration 5] [--body pad|ticket]
        [--args "SERVE FLAGS"] [--against-args "SERVE FLAGS"]

bench.py --against runs each phase once per build, one after the other; on a
shared 2-core machine the speed moves by a quarter within minutes, and the
second of a pair often does better. Here each build serves bench.py's `full`
phase (`hookflow serve --sync full`, a one-step `return 1` workflow, wrk
-c64 -t2 on the 1 KiB body) -n times, on a fresh state each time, in the
order A B, B A, A B, ... so that drift and order fall on both alike. Each run
prints req/s, p99 and the CPU per accepted and finished run split by thread
(bench.phase_ingest itself, run once per server); the end prints each
figure's median per build and the median and range of the
per-pair ratios (this build / the other), with how many pairs went each
way. --args and --against-args add serve flags to one side, to compare two
settings of one build (e.g. --against build --against-args "--http-io poll").
Python 3 standard library and wrk only (bench.py's helpers).
"""
import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

FIGURES = (("req_per_s", "accepts/s", 0), ("p99_ms", "p99 ms", 2),
           ("total", "CPU us/run", 1), ("http", "  HTTP threads", 1),
           ("writer", "  hf-writer", 1), ("workers", "  hf-worker*", 1))


def one_run(hookflow, extra, args, script):
    """One fresh server under bench.py's `full` phase: its figures, or
    raises."""
    tmp = tempfile.mkdtemp(prefix="hookflow-pairs-")
    try:
        opts = argparse.Namespace(
            hookflow=hookflow, workers=0, tmp=tmp, wal_split=False,
            drain_timeout=60.0, connections=args.connections,
            threads=args.threads, duration=args.duration)
        res = bench.phase_ingest(opts, script, "full", extra)
        if not res["drained"]:
            raise RuntimeError("the runs did not finish within 60 s")
        if res["non_2xx"]:
            raise RuntimeError("%d answers were not 2xx" % res["non_2xx"])
        split = res["cpu_us_per_event_by_thread"] or {}
        out = {"req_per_s": res["req_per_s"], "p99_ms": res["p99_ms"]}
        for k in ("total", "http", "writer", "workers"):
            out[k] = split.get(k)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def line(tag, r):
    return "%-8s %9.0f req/s  p99 %6.2f ms  CPU %5.1f us (HTTP %.1f, " \
        "writer %.1f, workers %.1f)" % (tag, r["req_per_s"], r["p99_ms"],
                                        r["total"], r["http"], r["writer"],
                                        r["workers"])


def summary(a, b):
    print("\n%-16s %10s %10s %10s %16s %8s" % (
        "figure", "this", "other", "ratio", "ratio range", "lower"))
    for key, name, nd in FIGURES:
        va = [r[key] for r in a if r[key] is not None]
        vb = [r[key] for r in b if r[key] is not None]
        ratios = [x[key] / y[key] for x, y in zip(a, b)
                  if x[key] is not None and y[key]]
        if not va or not vb or not ratios:
            continue
        lower = sum(1 for q in ratios if q < 1.0)
        print("%-16s %10.*f %10.*f %10.3f %7.3f-%-8.3f %3d of %d" % (
            name, nd, statistics.median(va), nd, statistics.median(vb),
            statistics.median(ratios), min(ratios), max(ratios), lower,
            len(ratios)))
    print("(medians; ratio: this build / the other, pair by pair; lower: "
          "pairs where this build's figure was the lower)")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..",
                                                   "build"))
    ap.add_argument("--against", required=True, metavar="OTHER_BUILD")
    ap.add_argument("-n", type=int, default=5, help="pairs (default 5)")
    ap.add_argument("--duration", type=int, default=5,
                    help="seconds of load per run (default 5)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--body", choices=("pad", "ticket"), default="pad")
    ap.add_argument("--args", default="", help="serve flags, this build")
    ap.add_argument("--against-args", default="",
                    help="serve flags, the other build")
    args = ap.parse_args()
    sides = []
    for build, extra in ((args.build, args.args),
                         (args.against, args.against_args)):
        exe = os.path.join(os.path.abspath(build), "hookflow")
        if not os.access(exe, os.X_OK):
            sys.exit("pairs: %s not found; run `ninja -C %s`" % (exe, build))
        sides.append((exe, shlex.split(extra)))
    if shutil.which("wrk") is None:
        sys.exit("pairs: wrk not found in PATH")
    tmp = tempfile.mkdtemp(prefix="hookflow-pairs-")
    try:
        bench.BODY_KIND = args.body
        script = os.path.join(tmp, "post.lua")
        bench.write_wrk_script(script, bench.make_body())
        res = ([], [])
        for i in range(args.n):
            for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                exe, extra = sides[side]
                r = one_run(exe, extra, args, script)
                res[side].append(r)
                print(line("this" if side == 0 else "other", r), flush=True)
        summary(*res)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
