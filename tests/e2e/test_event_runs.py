"""An event's runs: those made with it when it was accepted and those made
later (a replay). The admin API lists them all, in the order they were made,
and retention keeps an event while any of its runs is kept. In the SQLite
state (schema version 5) the runs made with their event are found by their
rid, with no index, and only the later ones are in the partial index
runs_late (store_sqlite.h, HF_RUNS_LATE); a version-4 file (with the index
runs_event on every run) migrates at start."""
import time

import pytest

from conftest import (PG_MODE, SQLITE_BACK_TO_4, sqlite_back_to, state_rows,
                      wait_for)

def returns(name, path, value):
    return (f"name: {name}\non:\n  webhook: {{ path: {path} }}\nsteps:\n"
            f"  - id: s\n    run: return {value}\n")


TWO = {"one": returns("one", "/e", 1), "two": returns("two", "/e", 2)}
QUICK = returns("p", "/p", 1)

NAPPING = """
name: p
on:
  webhook: { path: /p }
steps:
  - id: nap
    sleep: 6s
"""

# The runs a replay made more than HF_RUN_NEAR_MS (100 ms) after their
# event: the partial index's rows (store_sqlite.h, HF_RUNS_LATE).
LATE = ("SELECT id FROM runs WHERE (rid >> 15) - (event >> 15)"
        " NOT BETWEEN 0 AND 100 ORDER BY rid")


def event(srv, ev):
    r = srv.api("GET", f"/api/events/{ev}")
    assert r.status == 200, r
    return r.json()


def replay(srv, ev):
    r = srv.api("POST", f"/api/events/{ev}/replay")
    assert r.status == 202, r
    return r.json()["runs"]


def later_than_near(t0):
    """Waits until 0.2 s have passed since t0 (taken once the event was
    answered), so that a replay made now is a late run (more than 100 ms
    after its event's id) whatever the machine."""
    wait_for(lambda: time.monotonic() - t0 > 0.2, what="0.2 s to pass")


def indexes(srv):
    return sorted(n for (n,) in state_rows(
        srv.state, "SELECT name FROM sqlite_master WHERE type = 'index'"
        " AND tbl_name = 'runs'"))


def accept_and_replay(srv):
    """Posts to /e (two runs), then replays the event twice: the event's id
    and its runs, in the order they were made."""
    r = srv.post("/e", {"n": 1})
    t0 = time.monotonic()  # the event's id was made before its answer
    assert r.status == 202, r
    ev, made = r.json()["event"], r.json()["runs"]
    assert len(made) == 2
    for rid in made:
        assert srv.wait_run(rid)["status"] == "succeeded"
    later_than_near(t0)
    first = replay(srv, ev)
    second = replay(srv, ev)
    for rid in first + second:
        assert srv.wait_run(rid)["status"] == "succeeded"
    return ev, made, first, second


def test_an_event_lists_the_runs_made_with_it_and_later(server):
    srv = server(workflows=TWO)
    ev, made, first, second = accept_and_replay(srv)
    runs = event(srv, ev)["runs"]
    assert sorted(runs[:2]) == sorted(made)
    assert sorted(runs[2:4]) == sorted(first)
    assert sorted(runs[4:]) == sorted(second)
    for rid in runs:
        assert srv.run(rid)["event"] == ev
    # another event's runs are its own
    other = srv.post("/e", {"n": 2}).json()
    assert sorted(event(srv, other["event"])["runs"]) == sorted(other["runs"])
    assert event(srv, ev)["runs"] == runs
    if not PG_MODE:
        assert indexes(srv) == ["runs_late", "runs_pending",
                                "runs_unclaimed", "runs_wait_path",
                                "runs_wake"]
        assert [i for (i,) in state_rows(srv.state, LATE)] == runs[2:]


def test_retention_keeps_an_event_while_a_later_run_needs_it(server):
    """--retain prunes an event's finished runs, and the event only once
    none is left: a replay's run still napping keeps it, and once that run
    is pruned too the event goes."""
    srv = server(workflows={"p": QUICK})
    r = srv.post("/p", {"n": 1}).json()
    t0 = time.monotonic()  # the event's id was made before its answer
    ev, (rid,) = r["event"], r["runs"]
    assert srv.wait_run(rid)["status"] == "succeeded"
    # the replay naps: the workflow changed while the server was stopped
    srv.stop()
    srv.write_workflow("p", NAPPING)
    srv.start()
    later_than_near(t0)
    (late,) = replay(srv, ev)
    wait_for(lambda: srv.run(late)["status"] == "waiting",
             what="the replay's run parked")
    srv.stop()
    srv.args = ["--retain", "3s"]
    srv.start()
    wait_for(lambda: srv.api("GET", f"/api/runs/{rid}").status == 404,
             timeout=30, what="the first run pruned")
    # without the later run, the event would have gone in the same pass
    assert event(srv, ev)["runs"] == [late]
    assert srv.wait_run(late, timeout=30)["status"] == "succeeded"
    wait_for(lambda: srv.api("GET", f"/api/events/{ev}").status == 404,
             timeout=30, what="the event pruned after its last run")
    assert srv.api("GET", f"/api/runs/{late}").status == 404


@pytest.mark.sqlite_only("a version-4 SQLite file migrates to version 6")
def test_schema_v4_file_migrates(server):
    """A version-4 file (made here by putting back runs_event and taking
    runs.spare and runs_late away) migrates at start; the events' runs read
    as before, and new runs finish."""
    srv = server(workflows=TWO)
    ev, made, first, second = accept_and_replay(srv)
    runs = event(srv, ev)["runs"]
    srv.stop()
    sqlite_back_to(srv, 4, SQLITE_BACK_TO_4)
    srv.start()
    assert "migrated from schema version 4 to 6" in srv.stderr()
    assert event(srv, ev)["runs"] == runs
    assert "runs_event" not in indexes(srv) and "runs_late" in indexes(srv)
    assert [i for (i,) in state_rows(srv.state, LATE)] == runs[2:]
    new = srv.post("/e", {"n": 3}).json()
    for rid in new["runs"]:
        assert srv.wait_run(rid)["status"] == "succeeded"
    assert sorted(event(srv, new["event"])["runs"]) == sorted(new["runs"])
    assert state_rows(srv.state, "SELECT count(*) FROM runs WHERE spare"
                      " IS NOT NULL") == [(0,)]
    assert state_rows(srv.state, "SELECT value FROM meta"
                      " WHERE key = 'schema_version'") == [("6",)]
