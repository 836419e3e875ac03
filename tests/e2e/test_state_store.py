"""The state database (issue 13): the WAL stays bounded under sustained load
although the checkpoint runs off the writer thread."""
import http.client
import json
import os
import threading

from conftest import wait_for

WF = "name: one\non:\n  webhook:\n    path: /one\nsteps:\n  - id: s\n    run: return 1\n"
BODY = json.dumps({"k": "x" * 1000}).encode()


def post_many(port, n, conns=8):
    """Posts n 1 KiB events over conns keep-alive connections; the statuses."""
    out = []

    def go(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(k):
            c.request("POST", "/one", BODY, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            out.append(r.status)
        c.close()
    ts = [threading.Thread(target=go, args=(n // conns,)) for _ in range(conns)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return out


def test_wal_stays_bounded_under_sustained_load(server):
    """6,000 events write ~30 MB of WAL; checkpointed beside the writer it
    must still start again from its beginning (SQLite restarts it only when
    a checkpoint copied every frame): the -wal file stays far below what
    was written, while admin reads run beside the load."""
    srv = server(workflows={"one": WF}, args=["--max-queue", "100000"])
    wal = str(srv.state) + "-wal"
    biggest = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                biggest[0] = max(biggest[0], os.path.getsize(wal))
            except OSError:
                pass
            srv.api("GET", "/api/runs?limit=5")
            stop.wait(0.01)
    w = threading.Thread(target=watch)
    w.start()
    try:
        statuses = post_many(srv.port, 6000)
        wait_for(lambda: srv.api("GET", "/api/runs?status=queued&limit=1")
                 .json()["runs"] == [] and
                 srv.api("GET", "/api/runs?status=running&limit=1")
                 .json()["runs"] == [], timeout=60, what="the runs")
    finally:
        stop.set()
        w.join()
    assert statuses.count(202) == 6000, set(statuses)
    # HF_CKPT_MAX_PAGES (8000) frames of 4 KiB + 24 bytes is the hard bound
    # (33 MB); the checkpointer keeps it near HF_CKPT_PAGES (1000: 4 MB).
    assert biggest[0] < 12 * 1024 * 1024, biggest[0]
