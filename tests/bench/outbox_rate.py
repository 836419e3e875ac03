#!/usr/bin/env python3
"""Outbox throughput: N webhook.emit() deliveries (500 per run) from one
hookflow to a bench_baseline sink on 127.0.0.1; prints deliveries/s from the
first POST to the last delivery counted by the sink, and checks that each was
delivered exactly once. A measurement, not a test.

    /usr/bin/python3 tests/bench/outbox_rate.py --build build [-n 20000] [serve flags...]
"""
import argparse, json, os, re, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

ap = argparse.ArgumentParser()
ap.add_argument("--build", default="build")
ap.add_argument("-n", type=int, default=20000)
args, serve_args = ap.parse_known_args()
build = os.path.join(ROOT, args.build)
os.environ["HOOKFLOW_BIN"] = os.path.join(build, "hookflow")
import conftest  # noqa: E402  (reads HOOKFLOW_BIN)

sink = subprocess.Popen([os.path.join(build, "tests/bench/bench_baseline"),
                         "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
port = int(re.search(r"http://[\d.]+:(\d+)", sink.stderr.readline()).group(1))


def posts():
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/count").read())["posts"]


wf = """name: many
on:
  webhook:
    path: /many
steps:
  - id: emit
    run: |
      for i = 1, event.body.n do webhook.emit(event.body.url, {b = event.body.b, i = i}) end
"""
srv = conftest.Server(tempfile.mkdtemp(), {"many": wf}, args=serve_args).start()
try:
    per = 500
    t0 = time.monotonic()
    for b in range(args.n // per):
        r = srv.post("/many", {"url": f"http://127.0.0.1:{port}/sink", "b": b, "n": per})
        assert r.status == 202, r
    want = args.n // per * per
    while posts() < want and time.monotonic() - t0 < 300:
        time.sleep(0.02)
    t = time.monotonic() - t0
    got = posts()
    time.sleep(1)
    print(f"{got} deliveries in {t:.2f}s = {got / t:.0f}/s"
          f" (sink saw {posts()} POSTs for {want} deliveries)")
finally:
    srv.kill()
    sink.kill()
