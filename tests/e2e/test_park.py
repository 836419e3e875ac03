"""Parked runs (CONTRACT §6, hf_park.h): `sleep:`, `until:` and `wait_for:`
steps park the run as a row with status `waiting`; it survives a SIGKILL and
goes on at the next step when its time comes or a signal resumes it. Runs on
SQLite and, with HF_TEST_STATE=postgres, on PostgreSQL (the e2e-pg suite).

Nothing here asserts a timing: only order (the run waits before, succeeds
after; a step ends no earlier than its due time) within bounded waits."""
import datetime
import json
import re
import sqlite3
import time

import pytest

from conftest import PG_MODE, wait_for

SLEEPER = """
name: sleeper
on:
  webhook: { path: /sleep }
steps:
  - id: first
    run: return event.body.n
  - id: nap
    sleep: 3s
  - id: after
    run: return { n = steps.first, nap = steps.nap == nil }
"""


def iso(ms):
    return datetime.datetime.fromtimestamp(
        ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def at_ms(text):
    return datetime.datetime.strptime(
        text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp() * 1000


def waiting(srv, run_id, timeout=15):
    return wait_for(lambda: (lambda r: r if r["status"] == "waiting" else None)(
        srv.run(run_id)), timeout, what=f"run {run_id} to wait")


def metric(srv, name):
    text = srv.get("/metrics").body
    m = re.search(r"^%s (\d+)$" % name, text, re.M)
    return int(m.group(1)) if m else None


def test_sleep_outlives_sigkill_and_resumes(server):
    """A sleeping run is a row: it shows as waiting (API, CLI, metrics),
    survives a SIGKILL of its server, and once its time has come the next
    server finishes it from the step after the sleep, earlier outputs kept."""
    srv = server(workflows={"sleeper": SLEEPER})
    r = srv.post("/sleep", {"n": 7})
    assert r.status == 202, r
    rid = r.json()["runs"][0]
    run = waiting(srv, rid)
    w = run["waiting"]
    assert w["for"] == "sleep" and w["step"] == "nap", run
    assert [s["id"] for s in run["steps"]] == ["first"]
    assert metric(srv, "hookflow_runs_waiting") == 1
    listed = srv.api("GET", "/api/runs?status=waiting").json()["runs"]
    assert [x["id"] for x in listed] == [rid]
    p = srv.cli("runs", "--status", "waiting", "--state", str(srv.state))
    assert p.returncode == 0 and rid in p.stdout and "waiting" in p.stdout, p
    p = srv.cli("show", rid, "--state", str(srv.state))
    assert p.returncode == 0 and "waiting   for sleep until" in p.stdout, p
    p = srv.cli("show", rid, "--json", "--state", str(srv.state))
    assert json.loads(p.stdout)["waiting"] == w

    srv.kill()  # SIGKILL: nothing of the run is in memory to lose
    srv.start()
    done = srv.wait_run(rid, timeout=30)
    assert done["status"] == "succeeded", done
    assert "waiting" not in done
    steps = {s["id"]: s for s in done["steps"]}
    assert list(steps) == ["first", "nap", "after"]
    assert steps["nap"]["status"] == "succeeded"
    assert steps["nap"]["output"] is None
    assert steps["after"]["output"] == {"n": 7, "nap": True}
    # on time: not before its due time
    assert at_ms(steps["nap"]["finished_at"]) >= at_ms(w["until"])
    assert wait_for(lambda: metric(srv, "hookflow_runs_waiting") == 0, 10)


def test_until_expression_literal_and_past(server):
    """`until:` takes an expression (ISO 8601 or Unix seconds) or a literal;
    a time already past goes on at once, and the step's output is nil."""
    srv = server(workflows={"until": """
        name: until
        on:
          webhook: { path: /until }
        steps:
          - id: hold
            until: "${{ event.body.at }}"
          - id: past
            until: "2001-01-01T00:00:00Z"
          - id: done
            run: return { hold = steps.hold, past = steps.past }
        """})
    soon = int(time.time() * 1000) + 2000
    ids = []
    for at in (iso(soon), soon // 1000 + 1, str(soon // 1000 + 1)):
        r = srv.post("/until", {"at": at})
        assert r.status == 202, r
        ids.append(r.json()["runs"][0])
    for rid in ids:
        run = waiting(srv, rid)
        assert run["waiting"]["for"] == "until", run
        assert run["waiting"]["step"] == "hold"
    for rid in ids:
        done = srv.wait_run(rid, timeout=30)
        assert done["status"] == "succeeded", done
        assert done["steps"][-1]["output"] == {}
        assert at_ms(done["steps"][0]["finished_at"]) >= soon
    r = srv.post("/until", {"at": "tomorrow"})
    bad = srv.wait_run(r.json()["runs"][0])
    assert bad["status"] == "failed" and "is not a time" in bad["error"], bad


def test_sleep_keeps_the_step_if_and_lane(server):
    """A sleep step's `if:` skips it like any step; a run under
    `concurrency:` lets the next run of its lane go while it sleeps."""
    srv = server(workflows={"lane": """
        name: lane
        on:
          webhook: { path: /lane }
        concurrency: { key: "'one'", max: 1 }
        steps:
          - id: nap
            if: event.body.nap
            sleep: 2s
          - id: out
            run: return event.body.n
        """})
    a = srv.post("/lane", {"nap": True, "n": 1}).json()["runs"][0]
    waiting(srv, a)
    b = srv.post("/lane", {"nap": False, "n": 2}).json()["runs"][0]
    rb = srv.wait_run(b)
    assert rb["status"] == "succeeded"
    assert rb["steps"][0]["status"] == "skipped"
    assert srv.run(a)["status"] == "waiting"
    assert srv.wait_run(a, timeout=30)["steps"][1]["output"] == 1


@pytest.mark.sqlite_only("a version-2 SQLite file migrates to version 3")
def test_schema_v2_file_migrates(server):
    """A file of schema version 2 (before parked runs: made here by taking
    version 3's columns away) migrates to 3 at start; its queued run goes
    on, and a sleep parks."""
    srv = server(workflows={"sleeper": SLEEPER})
    srv.stop()
    con = sqlite3.connect(srv.state)
    con.executescript("""
        DROP INDEX runs_wake; DROP INDEX runs_wait_path;
        ALTER TABLE runs DROP COLUMN wake_at;
        ALTER TABLE runs DROP COLUMN waiting;
        ALTER TABLE runs DROP COLUMN wait_path;
        UPDATE meta SET value = '2' WHERE key = 'schema_version';
    """)
    con.commit()
    con.close()
    srv.start()
    assert "migrated from schema version 2 to 3" in srv.stderr()
    rid = srv.post("/sleep", {"n": 1}).json()["runs"][0]
    waiting(srv, rid)
    assert srv.wait_run(rid, timeout=30)["status"] == "succeeded"
    con = sqlite3.connect(srv.state)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                       ).fetchone() == ("3",)
    con.close()


APPROVER = """
name: approver
on:
  webhook: { path: /tickets }
steps:
  - id: ask
    run: return run.resume_url
  - id: approval
    wait_for:
      path: /approvals
      if: signal.body.ticket == event.body.ticket
      timeout: %s
  - id: after
    run: return { approved = steps.approval, nil_on_timeout = steps.approval == nil }
"""


def start_waiting(srv, ticket):
    r = srv.post("/tickets", {"ticket": ticket})
    assert r.status == 202, r
    rid = r.json()["runs"][0]
    run = waiting(srv, rid)
    assert run["waiting"]["for"] == "signal", run
    assert run["waiting"]["step"] == "approval"
    return rid, run


def test_wait_for_resumed_by_a_matching_signal(server):
    """A request to the wait_for path (no workflow of its own) is stored
    like any event and answers 202 with "resumed": exactly the runs whose
    `if:` matched; the others keep waiting. The step's output is the
    signal's body. A parked run outlives a SIGKILL meanwhile."""
    srv = server(workflows={"approver": APPROVER % "1h"})
    a, _ = start_waiting(srv, 1)
    b, _ = start_waiting(srv, 2)
    c, _ = start_waiting(srv, 1)
    srv.kill()
    srv.start()
    r = srv.post("/approvals", {"ticket": 1, "ok": True})
    assert r.status == 202, r
    body = r.json()
    assert body["runs"] == [] and body["event"].startswith("ev_"), body
    assert sorted(body["resumed"]) == sorted([a, c])
    for rid in (a, c):
        done = srv.wait_run(rid)
        assert done["status"] == "succeeded", done
        out = {s["id"]: s["output"] for s in done["steps"]}
        assert out["approval"] == {"ticket": 1, "ok": True}
        assert out["after"] == {"approved": {"ticket": 1, "ok": True},
                                "nil_on_timeout": False}
    assert srv.run(b)["status"] == "waiting"
    # the signal is an event like any other
    ev = srv.api("GET", f"/api/events/{body['event']}").json()
    assert ev["path"] == "/approvals" and ev["runs"] == []
    # a signal nobody waits for resumes nothing
    r = srv.post("/approvals", {"ticket": 99})
    assert r.status == 202 and r.json()["resumed"] == [], r
    assert srv.get("/approvals").status in (202, 405)
    assert srv.post("/nowhere", {}).status == 404


def test_wait_for_resume_url_once(server):
    """run.resume_url resumes the run's wait_for step with the POSTed body,
    once: a second POST is refused (410), a forged token is unknown (404),
    a GET is not allowed (405)."""
    srv = server(workflows={"approver": APPROVER % "1h"})
    rid, run = start_waiting(srv, 5)
    url = run["steps"][0]["output"]
    assert url.startswith(f"http://127.0.0.1:{srv.port}/resume/{rid}/"), url
    path = url.split(f":{srv.port}", 1)[1]
    assert srv.get(path).status == 405
    forged = path[:-4] + ("0000" if not path.endswith("0000") else "1111")
    r = srv.post(forged, {"x": 1})
    assert r.status == 404 and "error" in r.json(), r
    r = srv.post(path, {"via": "button"})
    assert r.status == 202 and r.json()["resumed"] == [rid], r
    r = srv.post(path, {"via": "button"})
    assert r.status == 410 and "error" in r.json(), r
    done = srv.wait_run(rid)
    assert done["steps"][1]["output"] == {"via": "button"}
    # the signal path no longer resumes it either
    assert srv.post("/approvals", {"ticket": 5}).json()["resumed"] == []


def test_wait_for_timeout_leaves_nil(server):
    """Past its timeout the wait ends: steps.ID is nil and the run goes on;
    a signal after that resumes nothing."""
    srv = server(workflows={"approver": APPROVER % "2s"})
    rid, run = start_waiting(srv, 3)
    done = srv.wait_run(rid, timeout=30)
    assert done["status"] == "succeeded", done
    out = {s["id"]: s["output"] for s in done["steps"]}
    assert out["approval"] is None
    assert out["after"] == {"nil_on_timeout": True}
    assert at_ms(done["steps"][1]["finished_at"]) >= at_ms(
        run["waiting"]["until"])
    assert srv.post("/approvals", {"ticket": 3}).json()["resumed"] == []


def test_wait_for_verify_and_shared_path(server):
    """The signal path takes the verify: written under wait_for (401
    without it); a workflow of its own on that path gets its run too."""
    srv = server(workflows={"approver": """
        name: approver
        on:
          webhook: { path: /tickets }
        steps:
          - id: approval
            wait_for:
              path: /approvals
              timeout: 1h
              verify: { scheme: token, secret: s3cret }
          - id: after
            run: return steps.approval
        """, "audit": """
        name: audit
        on:
          webhook: { path: /approvals }
        steps:
          - id: log
            run: return event.body
        """})
    rid = srv.post("/tickets", {}).json()["runs"][0]
    waiting(srv, rid)
    r = srv.post("/approvals", {"ok": 1})
    assert r.status == 401, r
    assert srv.run(rid)["status"] == "waiting"
    r = srv.post("/approvals", {"ok": 1},
                 headers={"Authorization": "Bearer s3cret"})
    assert r.status == 202, r
    body = r.json()
    assert body["resumed"] == [rid] and len(body["runs"]) == 1, body
    assert srv.wait_run(body["runs"][0])["status"] == "succeeded"
    assert srv.wait_run(rid)["steps"][1]["output"] == {"ok": 1}
