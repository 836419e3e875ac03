"""End-to-end tests for the cancels a workflow asks for itself (CONTRACT §6,
docs/reference.md, "Cancelling runs"): `concurrency.cancel_in_progress`
(a newer run of a key cancels the older ones: queued, waiting or running;
other keys untouched). Every wait is bounded."""
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
