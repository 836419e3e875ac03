"""End-to-end tests for the cancels a workflow asks for itself (CONTRACT §6,
docs/reference.md, "Cancelling runs"): `cancel_on` (a request to a path,
its `if:` with `event` the run's event and `signal` the request, cancels the
workflow's waiting and queued runs, not its running ones; the path needs no
workflow of its own) and `concurrency.cancel_in_progress` (a newer run of a
key cancels the older ones: queued, waiting or running; other keys
untouched). Every wait is bounded."""
import pytest

from conftest import wait_for
from flowutil import Gate, dropped, runs_counted

LATEST = """
name: latest
on:
  webhook:
    path: /latest
concurrency: { key: event.body.k, max: 1, cancel_in_progress: true }
steps:
  - id: a
    run: |
      local r = http.get(event.body.gate)
      return r.status
  - id: b
    run: return "b ran"
"""


@pytest.fixture
def gate():
    g = Gate()
    yield g
    g.close()


def post(srv, path, body):
    r = srv.post(path, body)
    assert r.status == 202, r
    return r.json()["runs"][0]


def status(srv, run_id):
    return srv.run(run_id)["status"]


def test_cancel_in_progress(server, gate):
    srv = server(workflows={"latest": LATEST})
    first = post(srv, "/latest", {"k": "1", "gate": gate.url + "/1"})
    gate.wait_hit()  # first is running, its step waits at the gate
    second = post(srv, "/latest", {"k": "1", "gate": gate.url + "/2"})
    wait_for(lambda: status(srv, first) == "cancelled", 15,
             what="the running run cancelled by the newer one")
    other = post(srv, "/latest", {"k": "2", "gate": gate.url + "/o"})
    third = post(srv, "/latest", {"k": "1", "gate": gate.url + "/3"})
    wait_for(lambda: status(srv, second) == "cancelled", 15,
             what="the queued run cancelled by the newer one")
    run = srv.run(first)
    assert run["error"] == (f"cancelled by a newer run {second}"
                            " (concurrency.cancel_in_progress)")
    assert srv.run(second)["error"].startswith(f"cancelled by a newer run {third}")
    gate.open()
    assert srv.wait_run(third)["status"] == "succeeded"
    assert srv.wait_run(other)["status"] == "succeeded"
    wait_for(lambda: dropped(srv, first), 15, what="the first run let go")
    assert runs_counted(srv, "latest", "cancelled") == 2
    assert [s["id"] for s in srv.run(first)["steps"]] == ["a"]
    assert srv.run(second)["steps"] == []
    assert [s["id"] for s in srv.run(third)["steps"]] == ["a", "b"]
    assert status(srv, first) == "cancelled"


def test_check_cancel_in_progress(server, tmp_path):
    srv = server(start=False)
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: { webhook: { path: /bad } }\n"
                   "concurrency:\n  key: event.body.k\n"
                   "  cancel_in_progress: sometimes\n"
                   "steps:\n  - id: a\n    run: return 1\n")
    p = srv.cli("check", str(bad))
    assert p.returncode == 1
    assert f"{bad}:5:23: " in p.stdout and "cancel_in_progress" in p.stdout, p.stdout


SLA = """
name: sla
on:
  webhook:
    path: /tickets
if: event.body.type == "created"
cancel_on:
  - path: /tickets
    if: signal.body.type == "solved" and signal.body.id == event.body.id
  - path: /replies
    if: signal.body.ticket == event.body.id
steps:
  - id: nap
    sleep: 1h
  - id: escalate
    run: return "escalated"
"""

QUEUE = """
name: queue
on:
  webhook:
    path: /queue
concurrency: { key: "'one'", max: 1 }
cancel_on:
  - path: /stop
steps:
  - id: a
    run: |
      local r = http.get(event.body.gate)
      return r.status
"""


def waiting(srv, run_id):
    wait_for(lambda: status(srv, run_id) == "waiting", 15,
             what=f"run {run_id} parked")


def test_cancel_on_waiting_runs(server):
    srv = server(workflows={"sla": SLA})
    one = post(srv, "/tickets", {"type": "created", "id": 1})
    two = post(srv, "/tickets", {"type": "created", "id": 2})
    three = post(srv, "/tickets", {"type": "created", "id": 3})
    for rid in (one, two, three):
        waiting(srv, rid)
    # The workflow's own path: its if: declines the request, cancel_on
    # still matches (only ticket 1).
    r = srv.post("/tickets", {"type": "solved", "id": 1})
    assert r.status == 202 and r.json()["runs"] == [], r
    wait_for(lambda: status(srv, one) == "cancelled", 15,
             what="ticket 1's run cancelled")
    run = srv.run(one)
    assert run["error"] == ("cancelled by cancel_on (event "
                            f"{r.json()['event']} to /tickets)")
    assert [s["id"] for s in run["steps"]] == []
    # A path no workflow declares: stored, answered 202, cancels ticket 2.
    r = srv.post("/replies", {"ticket": 2})
    assert r.status == 202 and r.json()["runs"] == [], r
    assert srv.api("GET", f"/api/events/{r.json()['event']}").status == 200
    wait_for(lambda: status(srv, two) == "cancelled", 15,
             what="ticket 2's run cancelled")
    # A signal that matches nothing leaves the rest waiting; a later one
    # that does ends it: the runs are handled in request order.
    srv.post("/replies", {"ticket": 99})
    srv.post("/tickets", {"type": "solved", "id": 3})
    wait_for(lambda: status(srv, three) == "cancelled", 15,
             what="ticket 3's run cancelled")
    # Counted by the cancel's done() call, a moment after its commit shows.
    wait_for(lambda: runs_counted(srv, "sla", "cancelled") == 3, 15,
             what="three runs counted cancelled")
    # Still 404 for a path nobody names, 405 never for a cancel_on path.
    assert srv.post("/nobody", {}).status == 404
    assert srv.request("PUT", "/replies", {"ticket": 5}).status == 202


def test_cancel_on_queued_not_running(server, gate):
    srv = server(workflows={"queue": QUEUE})
    running = post(srv, "/queue", {"gate": gate.url + "/1"})
    gate.wait_hit()
    queued = post(srv, "/queue", {"gate": gate.url + "/2"})
    assert status(srv, queued) == "queued"
    r = srv.post("/stop", {})
    assert r.status == 202, r
    wait_for(lambda: status(srv, queued) == "cancelled", 15,
             what="the queued run cancelled")
    assert status(srv, running) == "running"
    gate.open()
    assert srv.wait_run(running)["status"] == "succeeded"
    later = post(srv, "/queue", {"gate": gate.url + "/3"})
    assert srv.wait_run(later)["status"] == "succeeded"


def test_check_cancel_on(server, tmp_path):
    srv = server(start=False)
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: { webhook: { path: /bad } }\n"
                   "cancel_on:\n"
                   "  - path: /x/{id}\n"
                   "  - path: /api/stop\n"
                   "  - if: signal.body.ok\n"
                   "  - path: /ok\n    when: 1\n"
                   "  - path: /ok\n    if: 'signal.body.ok =='\n"
                   "steps:\n  - id: a\n    run: return 1\n")
    p = srv.cli("check", str(bad))
    assert p.returncode == 1
    out = p.stdout
    assert f"{bad}:4:11: invalid cancel_on path '/x/{{id}}'" in out, out
    assert f"{bad}:5:11: cancel_on path '/api/stop' is reserved" in out, out
    assert f"{bad}:6:5: missing required key 'path'" in out, out
    assert f"{bad}:8:5: unknown key 'when'" in out, out
    assert f"{bad}:10:10: lua syntax error in 'cancel_on.if'" in out, out


def test_cancel_in_progress_by_a_replay(server, gate):
    srv = server(workflows={"latest": LATEST})
    r = srv.post("/latest", {"k": "1", "gate": gate.url + "/1"})
    first, event = r.json()["runs"][0], r.json()["event"]
    gate.wait_hit()
    r = srv.api("POST", f"/api/events/{event}/replay")
    assert r.status == 202, r
    second = r.json()["runs"][0]
    wait_for(lambda: status(srv, first) == "cancelled", 15,
             what="the running run cancelled by the replay's run")
    gate.open()
    assert srv.wait_run(second)["status"] == "succeeded"
