"""The writer's WAL writes gathered per commit (engine/store_sqlite_vfs.c):
with --sync normal no fsync writes them out, so the gathered bytes must reach
the file before a commit is visible. Every acknowledged event is readable at
once through the API (another connection), survives SIGKILL, and the file
passes SQLite's integrity check; commits bigger than the gathering bound
(large bodies sent together) too.

Behaviour only: every wait bounded, no timing asserted."""
import json
import signal
import sqlite3
import threading

import pytest

from conftest import PG_MODE, wait_for

pytestmark = pytest.mark.skipif(PG_MODE, reason="SQLite's WAL only")

WF = """\
name: g
on:
  webhook:
    path: /g
steps:
  - id: s
    run: |
      return #event.body.pad
"""


def integrity(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()


def load(srv, threads, per, pad):
    """threads x per POSTs of a body padded to pad bytes; returns the
    acknowledged {event id: (run id, pad)} and the reads that failed."""
    acked, missing = {}, []
    lock = threading.Lock()

    def sender(t):
        for i in range(per):
            body = {"k": f"{t}-{i}", "pad": "x" * pad}
            r = srv.post("/g", body, timeout=30)
            assert r.status == 202, r
            j = r.json()
            # Acknowledged means committed: another connection reads it.
            ev = srv.api("GET", f"/api/events/{j['event']}")
            with lock:
                acked[j["event"]] = (j["runs"][0], pad)
                if ev.status != 200:
                    missing.append((j["event"], ev.status))

    ts = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return acked, missing


@pytest.mark.parametrize("sync", ["normal", "full"])
def test_acknowledged_events_are_read_back_and_survive_sigkill(server, sync):
    srv = server(workflows={"g": WF},
                 args=["--sync", sync, "--max-body", "2MiB"])
    acked, missing = load(srv, 4, 60, 900)
    # Commits past the gathering bound (4 MiB): 1.5 MiB bodies sent together.
    big, missing_big = load(srv, 6, 2, 1536 * 1024)
    acked.update(big)
    assert not missing and not missing_big, (missing + missing_big)[:5]
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    assert integrity(srv.state) == [("ok",)]
    srv.start()
    for ev, (run, pad) in acked.items():
        r = srv.wait_run(run, timeout=60)
        assert r["status"] == "succeeded", r
        assert r["steps"][0]["output"] == pad, r
    e = srv.api("GET", f"/api/events/{next(iter(big))}").json()
    assert len(json.loads(e["body"])["pad"]) == 1536 * 1024
    srv.stop()
    assert integrity(srv.state) == [("ok",)]
