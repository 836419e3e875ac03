"""What a request that may resume a parked run is answered (CONTRACT §6,
README's HTTP table, docs/reference.md "Signals" and "run.resume_url"):

- a request to a path that is both a `wait_for` path and the path of a
  `respond: sync` workflow: the signal's 202 with "resumed" when the sync
  workflow's `if:` declines (not its 404: the signal did resume runs), the
  sync run's own answer when it runs.

Runs on SQLite and, with HF_TEST_STATE=postgres, on PostgreSQL. Nothing here
asserts a timing: every wait is bounded."""
from flowutil import APPROVER, waiting

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
