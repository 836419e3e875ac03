"""A run's steps as stored. In the SQLite state (schema version 6) step rows
are appended and a run's rows are a chain from runs.steps through each row's
prev; a step written again (a retry of the step, a retried run, a woken
wait) appends a row that hides the older one of its idx. The API shows each
step once, in order, as last written, on both backends; a version-5 file
(steps keyed by run and idx) migrates with every run reading as before and a
parked run resuming with its earlier steps' outputs."""
import pytest

from conftest import (PG_MODE, SQLITE_BACK_TO_5, data_exec, data_tables,
                      sqlite_back_to, state_rows, wait_for)
from test_park import SLEEPER

N_MANY = 40

# Forty steps, each adding one to the one before.
MANY = ("name: many\non:\n  webhook: { path: /many }\nsteps:\n"
        "  - id: s0\n    run: return 0\n" +
        "".join(f"  - id: s{i}\n    run: return steps.s{i - 1} + 1\n"
                for i in range(1, N_MANY)))

# Fails twice, then succeeds: three rows of one idx.
FLAKY = """
name: flaky
on:
  webhook: { path: /flaky }
steps:
  - id: first
    run: return "one"
  - id: shaky
    retry: { attempts: 3, backoff: 10ms }
    run: |
      db.exec("INSERT INTO tries(x) VALUES (1)")
      local n = db.one("SELECT count(*) AS n FROM tries").n
      if n < 3 then error("not yet " .. n) end
      return { tries = n, first = steps.first }
"""

# Fails until the flag is set: retried as a whole run, from the step that
# failed.
TWOSTEP = """
name: twostep
on:
  webhook: { path: /twostep }
steps:
  - id: first
    run: return { x = 41 }
  - id: second
    run: |
      if not db.one("SELECT 1 AS ok FROM flag") then error("flag missing") end
      return steps.first.x + 1
"""

SLOW = """
name: slow
on:
  webhook: { path: /slow }
steps:
  - id: a
    run: |
      local t = os.clock() while os.clock() - t < 1 do end
      return 7
  - id: b
    run: return 8
"""

ALL = {"many": MANY, "flaky": FLAKY, "twostep": TWOSTEP, "sleeper": SLEEPER,
       "slow": SLOW}


def post(srv, path, body=None):
    r = srv.post(path, body or {})
    assert r.status == 202, r
    return r.json()["runs"][0]


def steps(run):
    return [(s["id"], s["status"], s["output"], s["attempts"])
            for s in run["steps"]]


def make_runs(srv):
    """Runs of every kind, finished but for a parked one: their ids."""
    many = post(srv, "/many")
    flaky = post(srv, "/flaky")
    two = post(srv, "/twostep")
    assert srv.wait_run(two)["status"] == "failed"
    data_exec(srv.data, "INSERT INTO flag VALUES (1)")
    r = srv.api("POST", f"/api/runs/{two}/retry")
    assert r.status == 202, r
    assert srv.wait_run(two, statuses=("succeeded",))["attempt"] == 2
    for rid in (many, flaky):
        assert srv.wait_run(rid, timeout=30)["status"] == "succeeded"
    return many, flaky, two


def check_runs(srv, many, flaky, two):
    assert steps(srv.run(many)) == [
        (f"s{i}", "succeeded", i, 1) for i in range(N_MANY)]
    assert steps(srv.run(flaky)) == [
        ("first", "succeeded", "one", 1),
        ("shaky", "succeeded", {"tries": 3, "first": "one"}, 3)]
    run = srv.run(two)
    assert steps(run) == [("first", "succeeded", {"x": 41}, 1),
                          ("second", "succeeded", 42, 1)]
    (old,) = run["history"]
    assert [(s["id"], s["status"]) for s in old["steps"]] == [
        ("first", "succeeded"), ("second", "failed")]


def server_with_data(server):
    srv = server(workflows=ALL, start=False)
    data_tables(srv.data, "CREATE TABLE tries(x INTEGER)",
                "CREATE TABLE flag(x INTEGER)")
    return srv.start()


def test_each_step_once_in_order_as_last_written(server):
    srv = server_with_data(server)
    many, flaky, two = make_runs(srv)
    check_runs(srv, many, flaky, two)
    # the list shows the same steps as each run's page
    listed = {r["id"]: r for r in srv.api(
        "GET", "/api/runs?limit=10").json()["runs"]}
    for rid in (many, flaky, two):
        assert listed[rid]["steps"] == srv.run(rid)["steps"]
    # a step that ends after its run was cancelled is shown all the same
    slow = post(srv, "/slow")
    wait_for(lambda: srv.run(slow)["status"] == "running",
             what="the slow step running")
    assert srv.api("POST", f"/api/runs/{slow}/cancel").status == 202
    wait_for(lambda: srv.run(slow)["steps"], timeout=15,
             what="the slow step's row")
    run = srv.run(slow)
    assert run["status"] == "cancelled"
    assert steps(run) == [("a", "succeeded", 7, 1)]
    # a parked run resumes with its earlier step's output
    nap = post(srv, "/sleep", {"n": 5})
    wait_for(lambda: srv.run(nap)["status"] == "waiting",
             what="the run parked")
    srv.restart()
    run = srv.wait_run(nap, timeout=30)
    assert run["status"] == "succeeded", run
    assert run["steps"][2]["output"] == {"n": 5, "nap": True}
    if not PG_MODE:
        # one row per attempt of the flaky step, the API showing the last
        assert state_rows(srv.state, "SELECT count(*) FROM steps WHERE"
                          " run = (SELECT rid FROM runs WHERE id = ?) AND"
                          " idx = 1", flaky) == [(3,)]


@pytest.mark.sqlite_only("a version-5 SQLite file migrates to version 6")
def test_schema_v5_file_migrates(server):
    """A version-5 file (made here by putting the steps back as version 5
    kept them: one row per run and idx) migrates at start: every run reads
    as before, a parked run resumes with its earlier output, new runs
    finish."""
    srv = server_with_data(server)
    many, flaky, two = make_runs(srv)
    nap = post(srv, "/sleep", {"n": 9})
    wait_for(lambda: srv.run(nap)["status"] == "waiting",
             what="the run parked")
    before = {rid: srv.run(rid) for rid in (many, flaky, two, nap)}
    srv.stop()
    sqlite_back_to(srv, 5, SQLITE_BACK_TO_5)
    srv.start()
    assert "migrated from schema version 5 to 6" in srv.stderr()
    for rid in (many, flaky, two):
        assert srv.run(rid) == before[rid], rid
    check_runs(srv, many, flaky, two)
    run = srv.wait_run(nap, timeout=30)
    assert run["status"] == "succeeded", run
    assert [s["id"] for s in before[nap]["steps"]] == ["first"]
    assert run["steps"][:1] == before[nap]["steps"]
    assert run["steps"][2]["output"] == {"n": 9, "nap": True}
    again = post(srv, "/many")
    assert steps(srv.wait_run(again, timeout=30)) == [
        (f"s{i}", "succeeded", i, 1) for i in range(N_MANY)]
    assert state_rows(srv.state, "SELECT value FROM meta"
                      " WHERE key = 'schema_version'") == [("6",)]
