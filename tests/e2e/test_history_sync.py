"""History across retries (a retried run keeps its failed attempts, oldest first,
in RUN's "history", shown by `hookflow show`) and what a `respond: sync` caller
sees: 500 {"error":"run failed","event","run"} without the run's error, and 404
{"error":"no matching workflow"} when every sync workflow's `if:` declines and
no run is made (the event is still stored, as for an async path)."""
import json
import sqlite3
import subprocess

import pytest

from conftest import BIN, data_exec, data_tables, state_rows, wait_for


def wf(name, path, steps, extra=""):
    """A workflow file's text; steps is YAML already indented by 2."""
    return (f"name: {name}\non:\n  webhook:\n    path: {path}\n{extra}"
            f"steps:\n{steps}")


def data_db(srv, *ddl):
    data_tables(srv.data, *ddl)


def set_flag(srv):
    data_exec(srv.data, "INSERT INTO flag VALUES (1)")


def q(path, sql, *args):
    """Rows of sql on a database the server uses: an SQLite file, or the
    state database on PostgreSQL (HF_TEST_STATE=postgres)."""
    if str(path).startswith(("postgres://", "postgresql://")):
        return [tuple(r) for r in state_rows(path, sql, *args)]
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def cli(*args, timeout=30):
    return subprocess.run([BIN, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


FLAKY = wf("flaky", "/flaky", """\
  - id: first
    run: return 41
  - id: second
    run: |
      if not db.one("SELECT 1 AS ok FROM flag") then error("boom /secret/path") end
      return steps.first + 1
""")


# --- history survives a retry ------------------------------------------------------

def test_history_across_cli_and_api_retries(server):
    srv = server(workflows={"flaky": FLAKY}, start=False)
    data_db(srv, "CREATE TABLE flag(x INTEGER)")
    srv.start()
    rid = srv.post("/flaky", {}).json()["runs"][0]
    run = srv.wait_run(rid)
    assert run["status"] == "failed" and "boom /secret/path" in run["error"]
    assert run["history"] == []

    # retried by the CLI: fails again, the first attempt is kept
    p = cli("retry", rid, "--state", srv.state)
    assert p.returncode == 0, p.stderr
    run = wait_for(lambda: (lambda r: r if r["attempt"] == 2 and r["status"]
                            == "failed" else None)(srv.run(rid)), timeout=15,
                   what="the second attempt to fail")
    assert [h["attempt"] for h in run["history"]] == [1]

    # retried by the API, now with the flag: succeeds
    set_flag(srv)
    r = srv.api("POST", f"/api/runs/{rid}/retry")
    assert r.status in (200, 202), r
    run = srv.wait_run(rid, statuses=("succeeded",))
    assert run["attempt"] == 3 and run["error"] is None
    assert run["steps"][1]["output"] == 42
    hist = run["history"]
    assert [h["attempt"] for h in hist] == [1, 2]
    for h in hist:
        assert set(h) == {"attempt", "status", "error", "steps", "finished_at"}
        assert h["status"] == "failed"
        assert "boom /secret/path" in h["error"]
        assert h["finished_at"]
        assert [s["id"] for s in h["steps"]] == ["first", "second"]
        assert [s["status"] for s in h["steps"]] == ["succeeded", "failed"]
        assert h["steps"][0]["output"] == 41
        assert "boom /secret/path" in h["steps"][1]["error"]
        # the same shape as the run's own steps
        assert set(h["steps"][1]) == set(run["steps"][1])
    assert hist[0]["finished_at"] <= hist[1]["finished_at"]

    # the list shows it too
    (listed,) = [x for x in srv.api("GET", "/api/runs").json()["runs"]
                 if x["id"] == rid]
    assert [h["attempt"] for h in listed["history"]] == [1, 2]

    # `hookflow show`: JSON and text
    p = cli("show", rid, "--json", "--state", srv.state)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["history"] == hist
    p = cli("show", rid, "--state", srv.state)
    assert p.returncode == 0, p.stderr
    text = p.stdout
    assert "earlier attempts" in text
    assert text.index("attempt 1: failed") < text.index("attempt 2: failed")
    assert text.count("boom /secret/path") >= 2
    assert "step second: failed" in text


@pytest.mark.sqlite_only("drops run_history from an SQLite state file")
def test_never_retried_run_and_old_database(server):
    srv = server(workflows={"ok": wf("ok", "/ok", "  - id: a\n    run: return 1\n")},
                 start=False)
    srv.start()
    rid = srv.post("/ok", {}).json()["runs"][0]
    assert srv.wait_run(rid)["history"] == []
    srv.stop()
    # a state database from before the table existed
    con = sqlite3.connect(srv.state)
    con.execute("DROP TABLE run_history")
    con.commit()
    con.close()
    p = cli("show", rid, "--json", "--state", srv.state)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["history"] == []
    srv.start()
    assert srv.run(rid)["history"] == []


def test_retention_deletes_history_with_its_run(server):
    srv = server(workflows={"flaky": FLAKY}, start=False, args=["--retain", "3s"])
    data_db(srv, "CREATE TABLE flag(x INTEGER)")
    srv.start()
    rid = srv.post("/flaky", {}).json()["runs"][0]
    assert srv.wait_run(rid)["status"] == "failed"
    set_flag(srv)
    assert srv.api("POST", f"/api/runs/{rid}/retry").status in (200, 202)
    run = srv.wait_run(rid, statuses=("succeeded",))
    assert len(run["history"]) == 1
    assert q(srv.state, "SELECT count(*) FROM run_history WHERE run_id = ?",
             rid) == [(1,)]
    wait_for(lambda: srv.api("GET", f"/api/runs/{rid}").status == 404,
             timeout=30, what="the run to be pruned")
    assert q(srv.state, "SELECT count(*) FROM run_history WHERE run_id = ?",
             rid) == [(0,)]


# --- what a sync caller sees -------------------------------------------------------

SYNC_FAIL = wf("sf", "/sf", """\
  - id: boom
    run: |
      error("boom /secret/path " .. db.one("SELECT 'select from t' AS s").s)
""", extra="    respond: sync\n    timeout: 10s\n")

SYNC_IF = wf("sif", "/sif", """\
  - id: answer
    run: return { status = 200, body = { ok = true } }
""", extra="    respond: sync\nif: event.body.go == true\n")


def test_failed_sync_run_answers_only_run_failed(server):
    srv = server(workflows={"sf": SYNC_FAIL})
    r = srv.post("/sf", {})
    assert r.status == 500, r
    body = r.json()
    assert set(body) == {"error", "event", "run"}
    assert body["error"] == "run failed"
    assert "boom" not in r.body and "/secret" not in r.body
    assert "select" not in r.body.lower()
    # the admin API keeps the error
    run = srv.run(body["run"])
    assert run["status"] == "failed" and run["event"] == body["event"]
    assert "boom /secret/path" in run["error"]


def test_declining_sync_workflow_answers_404(server):
    srv = server(workflows={"sif": SYNC_IF})
    r = srv.post("/sif", {"go": False})
    assert r.status == 404, r
    assert r.json() == {"error": "no matching workflow"}
    # no run; the event is stored with why the workflow declined it
    assert srv.api("GET", "/api/runs").json()["runs"] == []
    ((ev_id,),) = q(srv.state, "SELECT id FROM events")
    ev = srv.api("GET", f"/api/events/{ev_id}").json()
    assert ev["runs"] == []
    assert ev["skipped"] == [{"workflow": "sif", "reason": "if: condition is false"}]
    r = srv.post("/sif", {"go": True})
    assert r.status == 200 and r.json() == {"ok": True}, r


def test_sync_declines_but_async_matches_stores_and_answers_202(server):
    srv = server(workflows={
        "sif": SYNC_IF,
        "logit": wf("logit", "/sif", "  - id: a\n    run: return 'logged'\n"),
    })
    assert srv.api("GET", "/api/workflows").json().get("errors", []) == []
    r = srv.post("/sif", {"go": False})
    assert r.status == 202, r
    body = r.json()
    (rid,) = body["runs"]
    run = srv.wait_run(rid)
    assert run["workflow"] == "logit" and run["status"] == "succeeded"


def test_sync_answered_then_stop_frees_its_waiter(server):
    """A sync request answered by its run leaves its timer pending until its
    timeout; a stop before then frees the waiter the timer holds
    (under the sanitizer build a leak makes the exit status non-zero)."""
    srv = server(workflows={"sif": SYNC_IF})
    r = srv.post("/sif", {"go": True})
    assert r.status == 200, r
    assert r.json() == {"ok": True}
    assert srv.stop() == 0, srv.stderr()
