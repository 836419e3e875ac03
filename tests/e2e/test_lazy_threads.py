"""Threads started when first needed (park.c, flow.c): a server whose
workflows never wait nor cancel runs no hf-park, hf-signals or hf-flow
thread; a workflow added by a hot reload that parks, signals or cancels gets
them; a run parked by an earlier process is woken by the next one, which
starts hf-park at once. (On PostgreSQL hf-park always runs: another node's
parked runs are to be woken too.)

Nothing here asserts a timing: only which threads exist and that the runs
finish, within bounded waits."""
import os

from conftest import PG_MODE, state_rows, wait_for

PLAIN = """
name: plain
on:
  webhook: { path: /plain }
steps:
  - id: a
    run: return 1
"""

SLEEPER = """
name: sleeper
on:
  webhook: { path: /sleep }
steps:
  - id: nap
    sleep: %s
  - id: after
    run: return "woke"
"""

APPROVER = """
name: approver
on:
  webhook: { path: /start }
steps:
  - id: approval
    wait_for:
      path: /approvals
      timeout: 1h
  - id: after
    run: return steps.approval
"""

CANCELLER = """
name: canceller
on:
  webhook: { path: /work }
concurrency: { key: event.body.k, max: 1, cancel_in_progress: true }
steps:
  - id: nap
    sleep: 1h
"""

LAZY = ("hf-park", "hf-signals", "hf-flow")


def threads(srv):
    """The names of the server's threads (/proc/PID/task/*/comm)."""
    names = []
    base = "/proc/%d/task" % srv.proc.pid
    for tid in os.listdir(base):
        try:
            with open(os.path.join(base, tid, "comm")) as f:
                names.append(f.read().strip())
        except FileNotFoundError:  # a thread that just exited
            pass
    return names


def lazy_threads(srv):
    return sorted(n for n in threads(srv) if n in LAZY)


def test_idle_server_runs_no_park_signals_or_flow_thread(server):
    srv = server(workflows={"plain": PLAIN})
    assert srv.wait_run(srv.post("/plain", {}).json()["runs"][0])[
        "status"] == "succeeded"
    assert "hf-writer" in threads(srv)  # the listing itself works
    assert lazy_threads(srv) == (["hf-park"] if PG_MODE else [])


def test_hot_reload_adds_waits_and_cancels(server):
    """Workflows added while the server runs: the first run that parks
    starts hf-park (and is woken), the first signal hf-signals, the first
    cancel_in_progress hf-flow."""
    srv = server(workflows={"plain": PLAIN})
    assert lazy_threads(srv) == (["hf-park"] if PG_MODE else [])
    srv.write_workflow("sleeper", SLEEPER % "1s")
    wait_for(lambda: srv.post("/sleep", {}).status == 202, timeout=10,
             what="the sleeping workflow")
    wait_for(lambda: "hf-park" in threads(srv), timeout=10, what="hf-park")
    # every run it started is woken (the first probe's included)
    runs = srv.api("GET", "/api/runs?workflow=sleeper").json()["runs"]
    assert runs
    for r in runs:
        done = srv.wait_run(r["id"], timeout=30)
        assert done["status"] == "succeeded", done
        assert done["steps"][-1]["output"] == "woke", done

    srv.write_workflow("approver", APPROVER)
    wait_for(lambda: srv.post("/start", {}).status == 202, timeout=10,
             what="the waiting workflow")
    rid = srv.api("GET", "/api/runs?workflow=approver").json()["runs"][0]["id"]
    wait_for(lambda: srv.run(rid)["status"] == "waiting", timeout=15)
    assert "hf-signals" not in threads(srv)
    r = srv.post("/approvals", {"ok": True})
    assert r.status == 202 and r.json()["resumed"] == [rid], r
    assert "hf-signals" in threads(srv)
    assert srv.wait_run(rid)["steps"][-1]["output"] == {"ok": True}

    assert "hf-flow" not in threads(srv)
    srv.write_workflow("canceller", CANCELLER)
    wait_for(lambda: srv.post("/work", {"k": "x"}).status == 202, timeout=10,
             what="the cancelling workflow")
    newest = srv.post("/work", {"k": "x"}).json()["runs"][0]
    wait_for(lambda: "hf-flow" in threads(srv), timeout=10, what="hf-flow")
    older = [r["id"] for r in
             srv.api("GET", "/api/runs?workflow=canceller").json()["runs"]
             if r["id"] != newest]
    assert older
    for o in older:
        assert srv.wait_run(o, statuses=("cancelled",))["status"] == \
            "cancelled"


def test_run_parked_by_an_earlier_process_is_woken(server):
    """Parked, then the server stops (cleanly here; test_park covers
    SIGKILL): the next server, whose own runs never park, starts hf-park at
    once and wakes the run."""
    srv = server(workflows={"sleeper": SLEEPER % "8s"})
    rid = srv.post("/sleep", {}).json()["runs"][0]
    wait_for(lambda: srv.run(rid)["status"] == "waiting", timeout=15)
    srv.stop()
    # Still parked in the store (a slow stop may have let it wake first:
    # then no parked run is left for the next server to find).
    parked = state_rows(srv.state, "SELECT status FROM runs WHERE id = ?",
                        rid) == [("waiting",)]
    srv.start()
    if parked:
        assert "hf-park" in threads(srv)
    done = srv.wait_run(rid, timeout=30)
    assert done["status"] == "succeeded", done
    assert done["steps"][-1]["output"] == "woke", done
