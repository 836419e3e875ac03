"""Event bodies in the SQLite state are stored as LZ4 blocks when that is at
least an eighth smaller (schema version 4, events.body_size): every reader
(the admin API, a step's event, the disk backlog, recovery after SIGKILL,
replay) gets the body exactly as it came. Small bodies and ones that do not
shrink are stored as they came; a version-3 file migrates and its bodies read
as before; a damaged block fails its own run and nothing else."""
import base64
import json
import random
import signal
import sqlite3

import pytest

from conftest import SQLITE_BACK_TO_4, sqlite_back_to, state_rows, wait_for


ECHO = """
name: echo
on:
  webhook:
    path: /echo
steps:
  - id: seen
    run: |
      local b = type(event.body) == "table" and event.body or {}
      return { pad = #(b.pad or ""), n = b.n, raw = #event.raw }
"""

SLOW = """
name: slow
on:
  webhook:
    path: /slow
steps:
  - id: seen
    run: |
      local t0 = os.clock(); while os.clock() - t0 < 0.02 do end
      return { pad = #event.body.pad, n = event.body.n }
"""


def big(n, size=4096):
    """A JSON body that LZ4 packs well (as real payloads' repeated keys and
    URLs do), with a field n."""
    return {"n": n, "pad": "https://example.com/api/v2/tickets/" * (size // 35)}


def stored(srv, event_id):
    """(length(body), body_size) of an event's row in the SQLite file."""
    (row,) = state_rows(srv.state, "SELECT length(body), body_size FROM"
                        " events WHERE id = ?", event_id)
    return row


def event(srv, event_id):
    r = srv.api("GET", f"/api/events/{event_id}")
    assert r.status == 200, r
    return r.json()


def test_bodies_read_back_exactly_as_they_came(server):
    """A packed JSON body, a small one, an incompressible one and a binary
    one: the admin API and the step's event see each byte for byte."""
    srv = server(workflows={"echo": ECHO})
    rnd = random.Random(7)
    noise = base64.b64encode(rnd.randbytes(3000)).decode()
    binary = b"\xff\xfe\x00" + b"\x80abc" * 2000
    cases = [
        (json.dumps(big(1)).encode(), "application/json"),
        (json.dumps({"n": 2, "pad": "x"}).encode(), "application/json"),
        (json.dumps({"n": 3, "pad": noise}).encode(), "application/json"),
        (binary, "application/octet-stream"),
    ]
    for raw, ctype in cases:
        r = srv.post("/echo", raw, {"Content-Type": ctype})
        assert r.status == 202, r
        ev = event(srv, r.json()["event"])
        if ctype == "application/json":
            assert ev["body"].encode() == raw
        else:
            assert ev["body_encoding"] == "base64"
            assert base64.b64decode(ev["body"]) == raw
        run = srv.wait_run(r.json()["runs"][0])
        assert run["status"] == "succeeded", run
        out = run["steps"][0]["output"]
        assert out["raw"] == len(raw), out
        if ctype == "application/json":
            doc = json.loads(raw)
            assert out["n"] == doc["n"] and out["pad"] == len(doc["pad"])


@pytest.mark.sqlite_only("reads the SQLite file's events rows")
def test_bodies_up_to_max_body_packed_and_read_back(server):
    """Bodies near --max-body (4 MiB here), packed and not, one after the
    other: each reads back whole (the writer's buffer grows and is given
    back between them)."""
    srv = server(workflows={"echo": ECHO}, args=["--max-body", "4MiB"])
    rnd = random.Random(9)
    size = 4 * 1024 * 1024 - 64
    pad = "https://example.com/api/v2/tickets/" * (size // 35)
    packed = json.dumps({"n": 1, "pad": pad[:size - 40]}).encode()
    noise = json.dumps({"n": 2, "pad": base64.b64encode(
        rnd.randbytes(size * 3 // 4 - 60)).decode()}).encode()
    for raw in (packed, noise, packed):
        r = srv.post("/echo", raw, {"Content-Type": "application/json"},
                     timeout=30)
        assert r.status == 202, r
        ev = r.json()["event"]
        assert event(srv, ev)["body"].encode() == raw
        length, stored_size = stored(srv, ev)
        if raw is packed:
            assert stored_size == len(raw) and length < len(raw) // 8
        else:
            assert (length, stored_size) == (len(raw), None)
        out = srv.wait_run(r.json()["runs"][0], timeout=30)
        assert out["steps"][0]["output"]["raw"] == len(raw), out


@pytest.mark.sqlite_only("reads the SQLite file's events rows")
def test_only_bodies_that_shrink_are_packed(server):
    srv = server(workflows={"echo": ECHO})
    rnd = random.Random(8)
    packed = json.dumps(big(1)).encode()
    small = json.dumps({"n": 2, "pad": "y" * 100}).encode()
    noise = json.dumps({"n": 3, "pad": base64.b64encode(
        rnd.randbytes(3000)).decode()}).encode()
    ids = {}
    for name, raw in (("packed", packed), ("small", small), ("noise", noise)):
        r = srv.post("/echo", raw, {"Content-Type": "application/json"})
        assert r.status == 202, r
        ids[name] = r.json()["event"]
    length, size = stored(srv, ids["packed"])
    assert size == len(packed) and length <= len(packed) // 4, (length, size)
    assert stored(srv, ids["small"]) == (len(small), None)
    assert stored(srv, ids["noise"]) == (len(noise), None)


def test_backlog_and_replay_read_packed_bodies(server):
    """Runs that wait on disk (past --max-queue) are loaded with their
    bodies; a replayed event's new run sees the same body."""
    srv = server(workflows={"slow": SLOW},
                 args=["--max-queue", "2", "--workers", "1"])
    want = {}
    for n in range(40):
        r = srv.post("/slow", big(n))
        assert r.status == 202, r
        want[r.json()["runs"][0]] = n
    pad = len(big(0)["pad"])
    for rid, n in want.items():
        run = srv.wait_run(rid, timeout=60)
        assert run["status"] == "succeeded", run
        assert run["steps"][0]["output"] == {"pad": pad, "n": n}, run
    ev = srv.run(next(iter(want)))["event"]
    r = srv.api("POST", f"/api/events/{ev}/replay")
    assert r.status in (200, 202), r
    again = r.json()["runs"][0]
    assert srv.wait_run(again)["steps"][0]["output"] == {"pad": pad, "n": 0}


def test_runs_resume_after_sigkill_with_their_bodies(server):
    srv = server(workflows={"slow": SLOW}, args=["--workers", "1"])
    want = {}
    for n in range(30):
        r = srv.post("/slow", big(n))
        assert r.status == 202, r
        want[r.json()["runs"][0]] = n
    srv.stop(signal.SIGKILL)
    srv.start()
    pad = len(big(0)["pad"])
    for rid, n in want.items():
        run = srv.wait_run(rid, timeout=60)
        assert run["status"] == "succeeded", run
        assert run["steps"][0]["output"] == {"pad": pad, "n": n}, run


@pytest.mark.sqlite_only("a version-3 SQLite file migrates to version 6")
def test_schema_v3_file_migrates_and_reads_old_bodies(server):
    """A version-3 file (made here by taking body_size away, its bodies
    stored as they came) migrates at start; its events read as before, and
    new ones are packed."""
    srv = server(workflows={"echo": ECHO})
    raw = json.dumps(big(5)).encode()
    old = srv.post("/echo", raw, {"Content-Type": "application/json"}).json()
    srv.wait_run(old["runs"][0])
    srv.stop()
    assert stored(srv, old["event"])[1] == len(raw)
    # Taking the column away would leave a packed block without its size:
    # the body goes back as it came first, as version 3 stored it.
    sqlite_back_to(srv, 3, SQLITE_BACK_TO_4 + f"""
        UPDATE events SET body = x'{raw.hex()}', body_size = NULL;
        ALTER TABLE events DROP COLUMN body_size;
    """)
    srv.start()
    assert "migrated from schema version 3 to 6" in srv.stderr()
    assert event(srv, old["event"])["body"].encode() == raw
    assert stored(srv, old["event"]) == (len(raw), None)
    new = srv.post("/echo", raw, {"Content-Type": "application/json"}).json()
    assert stored(srv, new["event"])[1] == len(raw)
    assert event(srv, new["event"])["body"].encode() == raw
    assert state_rows(srv.state, "SELECT value FROM meta"
                      " WHERE key = 'schema_version'") == [("6",)]


@pytest.mark.sqlite_only("damages a packed body in the SQLite file")
def test_damaged_block_fails_its_run_alone(server):
    """A block that no longer unpacks (a damaged file): after a SIGKILL,
    the unfinished run of that event fails with the reason and every other
    one resumes; the API shows the event with a null body, replay finds no
    event, the server logs it and keeps serving."""
    srv = server(workflows={"slow": SLOW}, args=["--workers", "1"])
    runs = []
    for n in range(12):
        r = srv.post("/slow", big(n))
        assert r.status == 202, r
        runs.append((r.json()["runs"][0], r.json()["event"], n))
    srv.stop(signal.SIGKILL)
    pending = [x for x in runs if state_rows(
        srv.state, "SELECT status FROM runs WHERE id = ?", x[0])[0][0]
        in ("queued", "running")]
    assert len(pending) >= 2, "the runs finished before the kill"
    bad_run, bad_event, _ = pending[-1]
    con = sqlite3.connect(srv.state)
    con.execute("UPDATE events SET body = x'ff00ff00ff' WHERE id = ?",
                (bad_event,))
    con.commit()
    con.close()
    srv.start()
    pad = len(big(0)["pad"])
    for rid, ev, n in runs:
        run = srv.wait_run(rid, timeout=60)
        if rid == bad_run:
            assert run["status"] == "failed", run
            assert run["error"] == (f"the stored body of event {bad_event}"
                                    " is damaged: the run cannot go on")
        else:
            assert run["status"] == "succeeded", run
            assert run["steps"][0]["output"] == {"pad": pad, "n": n}, run
    wait_for(lambda: "a stored body is damaged" in srv.stderr(), 15,
             what="the log line")
    ev = event(srv, bad_event)
    assert ev["body"] is None and ev["id"] == bad_event, ev
    r = srv.api("POST", f"/api/events/{bad_event}/replay")
    assert r.status == 404, r
    r = srv.post("/slow", big(99))
    assert r.status == 202, r
    assert srv.wait_run(r.json()["runs"][0])["status"] == "succeeded"
    assert srv.proc.poll() is None
