"""End-to-end tests for `on_failure:` (CONTRACT §6, docs/reference.md,
"on_failure"): the steps run once after the run failed (after its
retries) with `failure = {step, error, attempt}`; their own failure is
recorded (steps "on_failure.ID" in the RUN) and not retried; the run ends
failed with its own error; a run that succeeds never runs them; they survive
a SIGKILL (run after the restart, with `failure` read back); `hookflow
check` reports bad on_failure keys with FILE:LINE:COL. Every wait is
bounded."""
import signal

import pytest

from conftest import wait_for
from flowutil import Gate

FAILS = """
name: fails
on:
  webhook:
    path: /fails
steps:
  - id: a
    run: return "a ok"
  - id: b
    retry: { attempts: 2, backoff: 10ms, max_backoff: 10ms }
    run: |
      if event.body.ok then return "fine" end
      error("boom " .. run.attempt)
on_failure:
  - id: alert
    run: |
      return { step = failure.step, error = failure.error,
               attempt = failure.attempt, a = steps.a }
  - id: broken
    run: error("the alert is down")
  - id: last
    run: return "last ran"
"""

GATED = """
name: gated
on:
  webhook:
    path: /gated
steps:
  - id: only
    run: error("nope")
on_failure:
  - id: notify
    run: |
      local r = http.get(event.body.gate)
      return { status = r.status, step = failure.step, error = failure.error,
               attempt = failure.attempt }
"""


def steps_by_id(run):
    return {s["id"]: s for s in run["steps"]}


def test_on_failure_runs_once_with_failure(server):
    srv = server(workflows={"fails": FAILS})
    run_id = srv.post("/fails", {}).json()["runs"][0]
    run = srv.wait_run(run_id)
    assert run["status"] == "failed"
    assert run["error"].startswith("step 'b' failed:") and "boom 2" in run["error"]
    s = steps_by_id(run)
    assert [x["id"] for x in run["steps"]] == [
        "a", "b", "on_failure.alert", "on_failure.broken", "on_failure.last"]
    assert s["b"]["status"] == "failed" and s["b"]["attempts"] == 2
    out = s["on_failure.alert"]["output"]
    assert out["step"] == "b" and out["attempt"] == 2 and out["a"] == "a ok"
    assert "boom 2" in out["error"] and "\n" not in out["error"]
    # Its own failure is recorded, not retried; the next one still runs.
    assert s["on_failure.broken"]["status"] == "failed"
    assert s["on_failure.broken"]["attempts"] == 1
    assert "the alert is down" in s["on_failure.broken"]["error"]
    assert s["on_failure.last"]["output"] == "last ran"
    assert run["finished_at"]


def test_no_on_failure_when_the_run_succeeds(server):
    srv = server(workflows={"fails": FAILS})
    run_id = srv.post("/fails", {"ok": True}).json()["runs"][0]
    run = srv.wait_run(run_id)
    assert run["status"] == "succeeded"
    assert [x["id"] for x in run["steps"]] == ["a", "b"]


def test_on_failure_survives_sigkill(server):
    gate = Gate()
    try:
        srv = server(workflows={"gated": GATED})
        run_id = srv.post("/gated", {"gate": gate.url + "/x"}).json()["runs"][0]
        gate.wait_hit()  # the run failed; its on_failure step is running
        assert srv.run(run_id)["status"] == "running"
        srv.kill()
        gate.open()
        srv.start()
        run = srv.wait_run(run_id)
        assert run["status"] == "failed"
        assert run["error"].startswith("step 'only' failed:")
        notify = steps_by_id(run)["on_failure.notify"]
        assert notify["status"] == "succeeded"
        out = notify["output"]
        # `failure` read back from the run's record after the restart.
        assert out["step"] == "only" and "nope" in out["error"]
        assert out["attempt"] == 1
        assert [x["id"] for x in run["steps"]] == ["only", "on_failure.notify"]
    finally:
        gate.close()


def test_check_on_failure_keys(server, tmp_path):
    srv = server(start=False)
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "name: bad\n"
        "on: { webhook: { path: /bad } }\n"
        "steps:\n"
        "  - id: a\n"
        "    run: return 1\n"
        "on_failure:\n"
        "  - id: alert\n"
        "    retry: { attempts: 3 }\n"
        "    run: return failure.step\n"
        "  - id: alert\n"
        "    run: return 2\n")
    p = srv.cli("check", str(bad))
    assert p.returncode == 1
    assert f"{bad}:8:12: 'retry' is not allowed in on_failure" in p.stdout, p.stdout + p.stderr
    assert f"{bad}:10:9: duplicate step id 'alert'" in p.stdout, p.stdout + p.stderr
    bad.write_text("name: bad\non: { webhook: { path: /bad } }\n"
                   "steps:\n  - id: a\n    run: return 1\n"
                   "on_failure: { id: x }\n")
    p = srv.cli("check", str(bad))
    assert p.returncode == 1
    assert f"{bad}:6:13: 'on_failure' must be a list of steps" in p.stdout, p.stdout + p.stderr


def test_hookflow_run_runs_on_failure(server, tmp_path):
    srv = server(start=False)
    wf = tmp_path / "fails.yml"
    wf.write_text(FAILS)
    ev = tmp_path / "ev.json"
    ev.write_text("{}")
    p = srv.cli("run", str(wf), "--event", str(ev), "--data",
                str(tmp_path / "d.db"))
    assert p.returncode == 1
    import json
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert [x["step"] for x in lines] == [
        "a", "b", "b", "on_failure.alert", "on_failure.broken",
        "on_failure.last"]
    assert lines[3]["output"]["step"] == "b"


TIMES_OUT = """
name: slow
on:
  webhook:
    path: /slow
timeout: 1s
steps:
  - id: a
    retry: { attempts: 3, backoff: 2s, max_backoff: 2s }
    run: error("not yet")
on_failure:
  - id: alert
    run: return failure
"""


def test_on_failure_after_the_run_timeout(server):
    # The retry's backoff (1-2 s) passes the run's 1 s: the run times out
    # before the second attempt, and on_failure runs on its own time.
    srv = server(workflows={"slow": TIMES_OUT})
    run_id = srv.post("/slow", {}).json()["runs"][0]
    run = srv.wait_run(run_id)
    assert run["status"] == "failed"
    assert run["error"] == "run timed out after 1000ms"
    out = steps_by_id(run)["on_failure.alert"]["output"]
    assert out == {"step": "a", "error": "run timed out after 1000ms",
                   "attempt": 2}
