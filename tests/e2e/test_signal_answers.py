"""What a request that may resume a parked run is answered (CONTRACT §6,
README's HTTP table, docs/reference.md "Signals" and "run.resume_url"):

- a request to a path that is both a `wait_for` path and the path of a
  `respond: sync` workflow: the signal's 202 with "resumed" when the sync
  workflow's `if:` declines (not its 404: the signal did resume runs), the
  sync run's own answer when it runs;
- a POST to run.resume_url that comes before its run has parked at the
  wait_for: 503 with Retry-After (the sender tries again), not 410 (which
  says never again), answered after the body was read so that the
  keep-alive connection stays; the same URL resumes the run once it waits.

Runs on SQLite and, with HF_TEST_STATE=postgres, on PostgreSQL. Nothing here
asserts a timing: every wait is bounded, and the "too early" cases are made
certain by a step that is still running (it calls the resume URL itself, or
waits on a gate the test opens)."""
import http.client
import json

from conftest import wait_for
from flowutil import APPROVER, Gate, waiting

# A respond: sync workflow on the approver's wait_for path (/approvals):
# it runs only for a body with "sync": true.
SYNC_ON_SIGNAL_PATH = """
name: syncer
on:
  webhook: { path: /approvals, respond: sync, timeout: 30s }
if: event.body.sync == true
steps:
  - id: answer
    run: return { status = 201, body = { synced = event.body.ticket } }
"""


def start_waiting(srv, ticket):
    r = srv.post("/tickets", {"ticket": ticket})
    assert r.status == 202, r
    rid = r.json()["runs"][0]
    assert waiting(srv, rid)["waiting"]["step"] == "approval"
    return rid


def test_signal_on_a_declining_sync_path_answers_resumed(server):
    """The sync workflow's `if:` declines, no run of it starts: the request
    is a signal still, and answers 202 with the runs it resumed (it got 404
    "no matching workflow" although it had resumed a run). The event lists
    the declined workflow under "skipped", as any declined event."""
    srv = server(workflows={"approver": APPROVER % "1h",
                            "syncer": SYNC_ON_SIGNAL_PATH})
    rid = start_waiting(srv, 1)
    r = srv.post("/approvals", {"ticket": 1})
    assert r.status == 202, r
    body = r.json()
    assert body["resumed"] == [rid] and body["runs"] == [], body
    done = srv.wait_run(rid)
    assert done["status"] == "succeeded", done
    assert done["steps"][1]["output"] == {"ticket": 1}
    ev = srv.api("GET", f"/api/events/{body['event']}").json()
    assert [s["workflow"] for s in ev["skipped"]] == ["syncer"], ev
    # nothing waits any more: still the signal's answer, resuming none
    r = srv.post("/approvals", {"ticket": 1})
    assert r.status == 202 and r.json()["resumed"] == [], r


def test_signal_on_a_sync_path_that_runs_answers_with_its_run(server):
    """The sync workflow's `if:` matches: its run answers the caller, as a
    sync workflow's run does (here 201 and its body, no "resumed"); the
    signal resumes the waiting run all the same."""
    srv = server(workflows={"approver": APPROVER % "1h",
                            "syncer": SYNC_ON_SIGNAL_PATH})
    rid = start_waiting(srv, 2)
    r = srv.post("/approvals", {"ticket": 2, "sync": True}, timeout=30)
    assert r.status == 201, r
    assert r.json() == {"synced": 2}, r
    done = srv.wait_run(rid)
    assert done["status"] == "succeeded", done
    assert done["steps"][1]["output"] == {"ticket": 2, "sync": True}


# The step before the wait_for POSTs to its own run.resume_url: the run is
# running that step, so it has certainly not parked at the wait_for yet.
SELF_RESUMER = """
name: early
on:
  webhook: { path: /early }
steps:
  - id: ask
    run: |
      local r = http.post(run.resume_url, { from = "ask" })
      return { status = r.status, retry_after = r.headers["retry-after"],
               error = r.json and r.json.error, url = run.resume_url }
  - id: approval
    wait_for: { path: /early-approvals, timeout: 1h }
  - id: after
    run: return steps.approval
"""


def path_of(srv, url):
    assert url.startswith(f"http://127.0.0.1:{srv.port}/resume/"), url
    return url.split(f":{srv.port}", 1)[1]


def test_resume_url_before_its_wait_for_is_503_then_resumes(server):
    """A resume URL POSTed while its run still runs the step before the
    wait_for: 503, Retry-After: 1, an error saying the run has not reached
    the step (it was 410, which tells a sender never to retry). The run
    parks all the same, and the same URL then resumes it (202), once (410)."""
    srv = server(workflows={"early": SELF_RESUMER})
    r = srv.post("/early", {})
    assert r.status == 202, r
    rid = r.json()["runs"][0]
    run = waiting(srv, rid)
    assert run["waiting"]["step"] == "approval", run
    ask = run["steps"][0]["output"]
    assert ask["status"] == 503, ask
    assert ask["retry_after"] == "1", ask
    assert "not reached" in ask["error"], ask
    path = path_of(srv, ask["url"])
    r = srv.post(path, {"from": "test"})
    assert r.status == 202 and r.json()["resumed"] == [rid], r
    done = srv.wait_run(rid)
    assert done["status"] == "succeeded", done
    assert done["steps"][2]["output"] == {"from": "test"}
    r = srv.post(path, {"from": "test"})
    assert r.status == 410 and "error" in r.json(), r


def test_early_resume_url_keeps_the_connection(server):
    """The 503 of an early resume URL comes after its body was read: the
    keep-alive connection carries the next requests, and the one after the
    run parked resumes it."""
    gate = Gate()
    try:
        srv = server(workflows={"held": f"""
            name: held
            on:
              webhook: {{ path: /held }}
            steps:
              - id: ask
                run: return run.resume_url
              - id: hold
                run: return http.get("{gate.url}/hold").status
              - id: approval
                wait_for: {{ path: /held-approvals, timeout: 1h }}
              - id: after
                run: return steps.approval
            """})
        r = srv.post("/held", {})
        assert r.status == 202, r
        rid = r.json()["runs"][0]
        gate.wait_hit()
        run = wait_for(lambda: (lambda x: x if x["steps"] else None)(
            srv.run(rid)), 15, what="the ask step's output")
        path = path_of(srv, run["steps"][0]["output"])
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=15)
        try:
            body = json.dumps({"from": "early"}).encode()
            hdrs = {"Content-Type": "application/json"}
            conn.request("POST", path, body=body, headers=hdrs)
            sock = conn.sock
            resp = conn.getresponse()
            got = json.loads(resp.read())
            assert resp.status == 503, (resp.status, got)
            assert resp.getheader("Retry-After") == "1"
            assert "not reached" in got["error"], got
            assert not resp.will_close
            # the same connection answers again, still early
            conn.request("POST", path, body=body, headers=hdrs)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 503 and conn.sock is sock
            assert srv.run(rid)["status"] in ("queued", "running"), rid
            gate.open()
            waiting(srv, rid)
            conn.request("POST", path, body=json.dumps({"from": "late"}),
                         headers=hdrs)
            resp = conn.getresponse()
            got = json.loads(resp.read())
            assert resp.status == 202 and got["resumed"] == [rid], got
            assert conn.sock is sock
        finally:
            conn.close()
        done = srv.wait_run(rid)
        assert done["status"] == "succeeded", done
        assert done["steps"][3]["output"] == {"from": "late"}
    finally:
        gate.close()
