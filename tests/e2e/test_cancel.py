"""End-to-end tests for cancelling a run (CONTRACT §6, docs/reference.md,
"Cancelling runs"): `POST /api/runs/ID/cancel` and `hookflow cancel` on a
queued run (ends at once), a running run (its step finishes and commits, no
later step runs), with and without a server, 404/409 and exit 1 for unknown
or finished runs, and /metrics counting cancelled runs.

A step that must stay running calls a gate (flowutil.Gate) that answers only
when the test opens it; "no later step runs" is observed after the server
logged that it let go of the run (flowutil.dropped). Every wait is bounded."""
import json

import pytest

from conftest import state_rows, wait_for
from flowutil import Gate, dropped, runs_counted

TWO_STEPS = """
name: {name}
on:
  webhook:
    path: /{name}
concurrency: {{ key: "'one'", max: 1 }}
steps:
  - id: a
    timeout: 120s # a loaded machine may take long to start the browser
    run: |
      local r = http.get(event.body.gate, {{ timeout = "110s" }})
      return r.status
  - id: b
    run: return "b ran"
"""


@pytest.fixture
def gate():
    g = Gate()
    yield g
    g.close()


def start(srv, name, gate):
    r = srv.post(f"/{name}", {"gate": gate.url + "/" + name})
    assert r.status == 202, r
    return r.json()["runs"][0]


def step_ids(srv, run_id):
    return [s["id"] for s in srv.run(run_id)["steps"]]


def test_cancel_running_then_queued_by_api(server, gate):
    srv = server(workflows={"w": TWO_STEPS.format(name="w")})
    first = start(srv, "w", gate)
    gate.wait_hit()
    second = start(srv, "w", gate)  # waits for the lane: queued
    assert srv.run(second)["status"] == "queued"

    r = srv.api("POST", f"/api/runs/{second}/cancel")
    assert r.status == 202, r
    run = r.json()
    assert run["id"] == second and run["status"] == "cancelled"
    assert run["finished_at"] and "cancelled by" in run["error"]
    assert run["steps"] == []

    r = srv.api("POST", f"/api/runs/{first}/cancel")
    assert r.status == 202, r
    assert r.json()["status"] == "cancelled"
    # The running step finishes and commits; b never runs.
    gate.open()
    wait_for(lambda: dropped(srv, first), 15, what="the run let go")
    assert runs_counted(srv, "w", "cancelled") == 2
    assert step_ids(srv, first) == ["a"]
    assert srv.run(first)["steps"][0]["status"] == "succeeded"
    assert srv.run(first)["status"] == "cancelled"
    assert srv.run(second)["steps"] == []
    assert srv.run(second)["status"] == "cancelled"
    # A new run of the lane is not held back by the cancelled ones.
    third = srv.post("/w", {"gate": gate.url + "/3"}).json()["runs"][0]
    assert srv.wait_run(third)["status"] == "succeeded"
    assert step_ids(srv, third) == ["a", "b"]


def test_cancel_answers(server, gate):
    srv = server(workflows={"w": TWO_STEPS.format(name="w")})
    gate.open()
    run_id = start(srv, "w", gate)
    srv.wait_run(run_id)
    r = srv.api("POST", f"/api/runs/{run_id}/cancel")
    assert r.status == 409 and "already finished" in r.json()["error"]
    r = srv.api("POST", "/api/runs/run_nope/cancel")
    assert r.status == 404
    r = srv.post(f"/api/runs/{run_id}/cancel")  # no token
    assert r.status == 401
    assert srv.run(run_id)["status"] == "succeeded"


def test_cli_cancel_seen_by_running_server(server, gate):
    srv = server(workflows={"w": TWO_STEPS.format(name="w")})
    run_id = start(srv, "w", gate)
    gate.wait_hit()
    p = srv.cli("cancel", run_id, "--state", str(srv.state))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == run_id
    assert srv.run(run_id)["status"] == "cancelled"
    # The server takes the note (within a second), then the step ends.
    wait_for(lambda: not state_rows(
        srv.state, "SELECT key FROM meta WHERE key LIKE 'cancel:%'"), 15,
        what="the cancel note taken")
    gate.open()
    wait_for(lambda: dropped(srv, run_id), 15, what="the run let go")
    assert runs_counted(srv, "w", "cancelled") == 1
    assert step_ids(srv, run_id) == ["a"]
    run = srv.run(run_id)
    assert run["status"] == "cancelled"
    assert run["error"] == "cancelled by hookflow cancel"
    p = srv.cli("cancel", run_id, "--state", str(srv.state))
    assert p.returncode == 1 and "already finished (cancelled)" in p.stderr


def test_cli_cancel_without_server(server, gate):
    srv = server(workflows={"w": TWO_STEPS.format(name="w")})
    first = start(srv, "w", gate)
    gate.wait_hit()
    queued = start(srv, "w", gate)
    srv.kill()
    gate.open()
    p = srv.cli("cancel", queued, "--state", str(srv.state))
    assert p.returncode == 0, p.stderr
    p = srv.cli("cancel", queued, "--state", str(srv.state))
    assert p.returncode == 1 and "already finished" in p.stderr
    p = srv.cli("cancel", "run_unknown", "--state", str(srv.state))
    assert p.returncode == 1 and "no run 'run_unknown'" in p.stderr
    # The next server resumes the first run, never the cancelled one.
    srv.start()
    assert srv.wait_run(first)["status"] == "succeeded"
    run = srv.run(queued)
    assert run["status"] == "cancelled" and run["steps"] == []
    assert srv.api("GET", "/api/runs?status=cancelled").json()["runs"][0][
        "id"] == queued
    p = srv.cli("runs", "--status", "cancelled", "--json", "--state",
                str(srv.state))
    assert p.returncode == 0, p.stderr
    assert [r["id"] for r in json.loads(p.stdout)["runs"]] == [queued]


def test_dashboard_cancel_button(server, gate):
    import webdriver
    if not webdriver.available():
        pytest.skip("needs Chromium and chromedriver")
    srv = server(workflows={"w": TWO_STEPS.format(name="w")})
    run_id = start(srv, "w", gate)
    gate.wait_hit()
    with webdriver.Browser() as b:
        b.get(f"http://127.0.0.1:{srv.port}/ui")
        b.wait_css("#token").send_keys(srv.token)
        b.find("#login-btn").click()
        b.wait_css("#workflows-table")
        b.js("location.hash = arguments[0];", "#/runs/" + run_id)
        b.wait_css("#cancel-run").click()
        b.wait(lambda: b.js("var e = document.querySelector('[data-status]');"
                            "return e && e.getAttribute('data-status');")
               == "cancelled", what="the run shown cancelled")
        assert not b.find_all("#cancel-run")
    gate.open()
    assert srv.run(run_id)["status"] == "cancelled"


SLEEPER = """
name: sleeper
on:
  webhook:
    path: /sleeper
steps:
  - id: first
    run: return 1
  - id: nap
    sleep: 1h
  - id: after
    run: return "woke"
"""


def test_cancel_parked_runs(server):
    srv = server(workflows={"sleeper": SLEEPER})
    api_run = srv.post("/sleeper", {}).json()["runs"][0]
    cli_run = srv.post("/sleeper", {}).json()["runs"][0]
    for rid in (api_run, cli_run):
        wait_for(lambda: srv.run(rid)["status"] == "waiting", 15,
                 what="the run parked")
    r = srv.api("POST", f"/api/runs/{api_run}/cancel")
    assert r.status == 202, r
    assert r.json()["status"] == "cancelled"
    assert "waiting" not in r.json() or not r.json()["waiting"]
    p = srv.cli("cancel", cli_run, "--state", str(srv.state))
    assert p.returncode == 0, p.stderr
    wait_for(lambda: runs_counted(srv, "sleeper", "cancelled") == 2, 15,
             what="both parked runs counted cancelled")
    assert "\nhookflow_runs_waiting 0\n" in srv.get("/metrics").body
    for rid in (api_run, cli_run):
        run = srv.run(rid)
        assert run["status"] == "cancelled" and run["finished_at"]
        assert [s["id"] for s in run["steps"]] == ["first"]
    assert srv.api("GET", "/api/runs?status=waiting").json()["runs"] == []
    # A restart does not wake them.
    srv.restart()
    assert srv.run(api_run)["status"] == "cancelled"
    assert srv.run(cli_run)["status"] == "cancelled"
