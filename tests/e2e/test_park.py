"""Parked runs (CONTRACT §6, hf_park.h): `sleep:`, `until:` and `wait_for:`
steps park the run as a row with status `waiting`; it survives a SIGKILL and
goes on at the next step when its time comes or a signal resumes it. Runs on
SQLite and, with HF_TEST_STATE=postgres, on PostgreSQL (the e2e-pg suite).

Nothing here asserts a timing: only order (the run waits before, succeeds
after; a step ends no earlier than its due time) within bounded waits."""
import datetime
import json
import time

import pytest

from conftest import (PG_MODE, SQLITE_BACK_TO_4, pg_cluster, sqlite_back_to,
                      state_rows, wait_for)
from flowutil import APPROVER, metric, waiting

SLEEPER = """
name: sleeper
on:
  webhook: { path: /sleep }
steps:
  - id: first
    run: return event.body.n
  - id: nap
    sleep: 6s
  - id: after
    run: return { n = steps.first, nap = steps.nap == nil }
"""
# 6 s: long enough that the checks of the waiting run (API, three CLI
# calls, slow under ASan on a loaded machine) end before it wakes


def iso(ms):
    return datetime.datetime.fromtimestamp(
        ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def at_ms(text):
    return datetime.datetime.strptime(
        text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp() * 1000


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
    # Counted by the done() call of the commit that parked it, a moment after
    # the commit shows.
    wait_for(lambda: metric(srv, "hookflow_runs_waiting") == 1, 15,
             what="the parked run counted")
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
    # the run keeps its start through the wait
    assert done["started_at"] == run["started_at"], (done, run)
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
            sleep: 5s
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


@pytest.mark.skipif(not PG_MODE, reason="PostgreSQL's schema 1 -> 2")
def test_pg_schema_v1_migrates(server):
    """A PostgreSQL state database of schema version 1 (before parked
    runs: made here by taking version 2's columns away) migrates at start."""
    srv = server(workflows={"sleeper": SLEEPER})
    srv.stop()
    pg_cluster().psql(
        "DROP INDEX runs_wake; DROP INDEX runs_wait_path;"
        " ALTER TABLE runs DROP COLUMN wake_at, DROP COLUMN waiting,"
        " DROP COLUMN wait_path;"
        " UPDATE meta SET value = '1' WHERE key = 'schema_version'",
        db=str(srv.state).rsplit("/", 1)[1])
    srv.start()
    rid = srv.post("/sleep", {"n": 1}).json()["runs"][0]
    waiting(srv, rid)
    assert srv.wait_run(rid, timeout=30)["status"] == "succeeded"
    # 4: the throttle's and the debounce's shared rows (store_pg_shared.c)
    assert state_rows(srv.state, "SELECT value FROM meta WHERE key ="
                      " 'schema_version'") == [("4",)]


@pytest.mark.sqlite_only("a version-2 SQLite file migrates to version 6")
def test_schema_v2_file_migrates(server):
    """A file of schema version 2 (before parked runs: made here by taking
    versions 3's to 6's changes away) migrates to 6 at start; its
    queued run goes on, and a sleep parks."""
    srv = server(workflows={"sleeper": SLEEPER})
    srv.stop()
    sqlite_back_to(srv, 2, SQLITE_BACK_TO_4 + """
        DROP INDEX runs_wake; DROP INDEX runs_wait_path;
        ALTER TABLE runs DROP COLUMN wake_at;
        ALTER TABLE runs DROP COLUMN waiting;
        ALTER TABLE runs DROP COLUMN wait_path;
        ALTER TABLE events DROP COLUMN body_size;
    """)
    srv.start()
    assert "migrated from schema version 2 to 6" in srv.stderr()
    rid = srv.post("/sleep", {"n": 1}).json()["runs"][0]
    waiting(srv, rid)
    assert srv.wait_run(rid, timeout=30)["status"] == "succeeded"
    assert state_rows(srv.state, "SELECT value FROM meta"
                      " WHERE key = 'schema_version'") == [("6",)]


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


def test_a_checked_token_is_stored_redacted(server):
    """A token that verify checked is never stored: in the query (query:)
    or in a header it names (header:), under on.webhook and under
    wait_for alike; the step reads "[redacted]" (docs/reference.md)."""
    srv = server(workflows={"w": """
        name: w
        on:
          webhook:
            path: /start
            verify: { scheme: token, header: X-Tok, secret: hdrsecret1 }
        steps:
          - id: approval
            wait_for:
              path: /sig
              timeout: 1h
              verify: { scheme: token, query: key, secret: qsecret2 }
          - id: after
            run: return {h = event.headers["x-tok"]}
        """, "w2": """
        name: w2
        on:
          webhook: { path: /sig2 }
        steps:
          - id: approval
            wait_for:
              path: /sig2b
              timeout: 1h
              verify: { scheme: token, header: X-Sig-Key, secret: hsecret3 }
        """})
    r = srv.post("/start", {}, headers={"X-Tok": "hdrsecret1"})
    assert r.status == 202, r
    rid, start_ev = r.json()["runs"][0], r.json()["event"]
    waiting(srv, rid)
    r = srv.post("/sig?key=qsecret2&n=1", {"ok": 1})
    assert r.status == 202, r
    sig_ev = r.json()["event"]
    assert srv.wait_run(rid)["steps"][1]["output"] == {"h": "[redacted]"}
    rid2 = srv.post("/sig2", {}).json()["runs"][0]
    waiting(srv, rid2)
    r = srv.post("/sig2b", {"ok": 2}, headers={"X-Sig-Key": "hsecret3"})
    assert r.status == 202 and r.json()["resumed"] == [rid2], r
    sig2_ev = r.json()["event"]
    for eid, secret in ((start_ev, "hdrsecret1"), (sig_ev, "qsecret2"),
                        (sig2_ev, "hsecret3")):
        ev = srv.api("GET", f"/api/events/{eid}")
        assert ev.status == 200, ev
        assert secret not in ev.body, ev.body
    assert srv.api("GET", f"/api/events/{sig_ev}").json()["query"] == \
        {"key": "[redacted]", "n": "1"}


def test_check_reports_the_new_keys(tmp_path, server):
    """hookflow check: each mistake in sleep/until/wait_for as
    FILE:LINE:COL, exit 1."""
    srv = server(start=False)
    f = tmp_path / "bad.yml"
    f.write_text("""name: bad
on:
  webhook: { path: /b }
steps:
  - id: a
    sleep: soon
  - id: b
    sleep: 1s
    until: 1767225600
  - id: c
    wait_for:
      path: /api/x
      timeout: 1h
  - id: d
    wait_for:
      path: /ok
  - id: e
    until: "next week"
  - id: g
    sleep: 1s
    run: return 1
  - id: h
    wait_for: { path: /resume/x, timeout: 1h }
  - id: i
    wait_for: { path: "/p/{id}", timeout: 1h }
""")
    p = srv.cli("check", str(f))
    assert p.returncode == 1, p
    out = p.stdout + p.stderr
    for where, what in [
        ("6:12", "invalid duration 'soon'"),
        ("7:5", "more than one of 'sleep', 'until' and 'wait_for'"),
        ("12:13", "wait_for path '/api/x' is reserved"),
        ("16:7", "wait_for needs a 'timeout'"),
        ("18:12", "invalid until 'next week'"),
        ("21:10", "'run' does not go with 'sleep'"),
        ("23:23", "wait_for path '/resume/x' is reserved"),
        ("25:23", "invalid wait_for path '/p/{id}'"),
    ]:
        assert any(line.startswith(f"{f}:{where}: ") and what in line
                   for line in out.splitlines()), (where, what, out)
    good = tmp_path / "good.yml"
    good.write_text(APPROVER % "48h")
    p = srv.cli("check", str(good))
    assert p.returncode == 0, p.stdout + p.stderr


def test_run_skips_waits_locally(tmp_path, server):
    """hookflow run: a sleep or until is skipped with a note; a wait_for
    times out at once without --signal, takes --signal's body when its if:
    matches."""
    srv = server(start=False)
    wf = tmp_path / "approver.yml"
    wf.write_text(APPROVER % "48h")
    sl = tmp_path / "sleeper.yml"
    sl.write_text(SLEEPER)
    ev = tmp_path / "ev.json"
    ev.write_text('{"ticket": 1, "n": 4}')
    p = srv.cli("run", str(sl), "--event", str(ev), "--data",
                str(tmp_path / "d.db"))
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert [x["step"] for x in lines] == ["first", "nap", "after"]
    assert lines[1]["output"] is None
    assert lines[2]["output"] == {"n": 4, "nap": True}
    assert "step 'nap' would wait until" in p.stderr and "skipped here" in p.stderr

    p = srv.cli("run", str(wf), "--event", str(ev), "--data",
                str(tmp_path / "d.db"))
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert lines[0]["output"].startswith("http://127.0.0.1:8080/resume/")
    assert lines[1] == {"step": "approval", "status": "succeeded",
                        "output": None, "error": None, "attempt": 1}
    assert lines[2]["output"] == {"nil_on_timeout": True}
    assert "no --signal, so it times out here" in p.stderr

    for body, want in (('{"ticket": 1, "ok": 1}', {"ticket": 1, "ok": 1}),
                       ('{"ticket": 2}', None)):
        sig = tmp_path / "sig.json"
        sig.write_text(body)
        p = srv.cli("run", str(wf), "--event", str(ev), "--signal", str(sig),
                    "--data", str(tmp_path / "d.db"))
        assert p.returncode == 0, p.stderr
        lines = [json.loads(x) for x in p.stdout.splitlines()]
        assert lines[1]["output"] == want, (body, lines)


def test_sync_caller_of_a_parked_run_gets_202(server):
    """A respond: sync run that parks answers its caller at once, 202 with
    "waiting": true (as after a sync timeout); the run goes on later."""
    srv = server(workflows={"syncnap": """
        name: syncnap
        on:
          webhook: { path: /syncnap, respond: sync, timeout: 30s }
        steps:
          - id: nap
            sleep: 1s
          - id: out
            run: return { body = "late" }
        """})
    r = srv.post("/syncnap", {})
    assert r.status == 202, r
    body = r.json()
    assert body["waiting"] is True and len(body["runs"]) == 1, body
    done = srv.wait_run(body["runs"][0], timeout=30)
    assert done["status"] == "succeeded", done


def test_dashboard_shows_a_waiting_run(server):
    """The dashboard filters runs by `waiting` and shows what a run waits
    for (Chromium over WebDriver, as test_ui.py)."""
    import webdriver
    if not webdriver.available():
        pytest.fail("the dashboard tests need Chromium: apt-get install "
                    "chromium chromium-driver (sh .ci/deps installs them)")
    srv = server(workflows={"approver": APPROVER % "1h"})
    rid, _ = start_waiting(srv, 8)
    with webdriver.Browser() as b:
        b.get(f"http://127.0.0.1:{srv.port}/ui")
        b.wait_css("#token").send_keys(srv.token)
        b.find("#login-btn").click()
        b.wait_css("#workflows-table")
        b.js("location.hash = arguments[0];", "#/runs?status=waiting")
        b.wait_css(f'tr[data-run="{rid}"]')
        row = b.find(f'tr[data-run="{rid}"]')
        assert row.attr("data-status") == "waiting"
        b.js("location.hash = arguments[0];", f"#/runs/{rid}")
        b.wait_css("#run-waiting")
        text = b.find("#run-waiting").text
        assert "Waiting for a signal" in text and "approval" in text, text


def test_run_timeout_counts_from_the_wake(server):
    """A run's `timeout:` does not cover its wait: a sleep longer than the
    timeout, and a server that was down well past the due time, still let
    the steps after it run."""
    srv = server(workflows={"short": """
        name: short
        on:
          webhook: { path: /short }
        timeout: 2s
        steps:
          - id: nap
            sleep: 3s
          - id: out
            run: return "ran"
        """})
    a = srv.post("/short", {}).json()["runs"][0]
    waiting(srv, a)
    assert srv.wait_run(a, timeout=30)["steps"][1]["output"] == "ran"
    b = srv.post("/short", {}).json()["runs"][0]
    w = waiting(srv, b)["waiting"]
    srv.kill()
    # down until well past its due time and the run's timeout after it
    wait_for(lambda: time.time() * 1000 > at_ms(w["until"]) + 3000, 30)
    srv.start()
    done = srv.wait_run(b, timeout=30)
    assert done["status"] == "succeeded", done
