#!/usr/bin/env python3
"""Outbox throughput: N webhook.emit() deliveries (500 per run) from one
hookflow to a bench_baseline sink on 127.0.0.1; prints deliveries/s from the
first POST to the last delivery counted by the sink, the CPU per delivery by
thread, and checks that each was delivered exactly once. A measurement, not a
test. The same measurement is bench.py's `outbox` phase (issue 13's
deliveries/s row, target >= 20,000/s); this runs it alone.

    /usr/bin/python3 tests/bench/outbox_rate.py --build build [-n 20000]
        [--against OTHER_BUILD] [serve flags...]

Serve flags (e.g. --workers 4) are passed to `hookflow serve`. Exit status 1
when not every delivery arrived exactly once.
"""
import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..",
                                                   "build"))
    ap.add_argument("-n", type=int, default=20000, help="deliveries")
    ap.add_argument("--against", metavar="OTHER_BUILD",
                    help="then the same with this build's hookflow")
    ap.add_argument("--sync", choices=("full", "normal"), default="full")
    args, serve_args = ap.parse_known_args()
    builds = [args.build] + ([args.against] if args.against else [])
    rc = 0
    for build in builds:
        build = os.path.abspath(build)
        opts = argparse.Namespace(
            hookflow=os.path.join(build, "hookflow"),
            baseline=os.path.join(os.path.abspath(args.build), "tests",
                                  "bench", "bench_baseline"),
            outbox_n=args.n, runs_sync=args.sync, workers=0,
            drain_timeout=300.0, tmp=tempfile.mkdtemp(prefix="hookflow-ob-"))
        try:
            r = bench.phase_outbox(opts, serve_args)
        finally:
            shutil.rmtree(opts.tmp, ignore_errors=True)
        secs = r["seconds"]
        print("%s: %d deliveries in %.2fs = %.0f/s (sink saw %d POSTs for %d "
              "deliveries; %d duplicates); CPU us per delivery %s"
              % (build, r["delivered"], secs, r["delivered"] / secs,
                 r["sink_posts_after_1s"], r["deliveries_wanted"],
                 r["duplicates"], r["cpu_us_per_delivery_by_thread"]))
        if r["duplicates"] or not r["drained"]:
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
