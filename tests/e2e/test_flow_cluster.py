"""Issue 15's flow controls on several nodes sharing one PostgreSQL state
database (CONTRACT §6 and §7): two `hookflow serve` on 127.0.0.1 against one
throwaway cluster, each with its own --node name and a short --lease.

- a parked (sleeping) run outlives its node: node a parks it and is
  SIGKILLed, node b wakes it at its time and finishes it, each step once;
- a wait_for signal arriving at node b resumes a run parked by node a;
- a schedule fires once per fire time with both nodes running;
- a debounce burst spread over both nodes is one run, `events` in order,
  also when its events reach both nodes at once;
- a throttle's limit holds across both nodes, nothing dropped (asserted on
  the starts really made, each step's started_at, never on durations);
- cancel from node b (API) or the CLI ends runs held by node a: queued,
  parked, running (the running step commits, no later step runs).

Every wait is bounded; nodes are stopped by their PID."""
import collections
import threading
import time

import pytest

import pgcluster
from conftest import Server, pg_query, pg_state_url, wait_for
from flowutil import APPROVER, Gate, waiting
from test_throttle import Watch, assert_schedule, starts

pytestmark = pytest.mark.skipif(pgcluster.available() is not None,
                                reason=f"PostgreSQL: {pgcluster.available()}")

LEASE = "2s"


def start_nodes(tmp_path, workflows, names=("a", "b"), env=None):
    url = pg_state_url()
    nodes = []
    try:
        for name in names:
            d = tmp_path / name
            d.mkdir()
            srv = Server(d, workflows, args=["--node", name, "--lease", LEASE],
                         env=env)
            srv.state = url
            nodes.append(srv.start())
    except BaseException:
        stop_all(nodes)
        raise
    return url, nodes


def stop_all(nodes):
    for n in nodes:
        n.kill()


def post(srv, path, body):
    r = srv.post(path, body)
    assert r.status == 202, r
    return r.json()["runs"][0] if r.json()["runs"] else r.json()


def steps_of(url, run_id):
    return pg_query(url, "SELECT step_id, node FROM steps WHERE run_id = ?"
                    " ORDER BY idx", run_id)


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
    run: return { n = steps.first }
"""


def test_a_parked_run_outlives_its_node(tmp_path):
    url, (a, b) = start_nodes(tmp_path, {"sleeper": SLEEPER})
    try:
        rid = post(a, "/sleep", {"n": 7})
        run = waiting(a, rid)
        assert run["waiting"]["for"] == "sleep", run
        a.kill()  # SIGKILL while the run sleeps
        done = b.wait_run(rid, timeout=30)
        assert done["status"] == "succeeded", done
        assert done["steps"][-1]["output"] == {"n": 7}, done
        rows = steps_of(url, rid)
        # Each step once: the first on a, the one after the sleep on b.
        ids = [s for s, _ in rows]
        assert sorted(set(ids)) == sorted(ids) and "after" in ids, rows
        assert rows[0] == ("first", "a") and rows[-1] == ("after", "b"), rows
        assert done["attempt"] == 1, done
    finally:
        stop_all([a, b])


def test_a_signal_at_another_node_resumes_the_run(tmp_path):
    url, (a, b) = start_nodes(tmp_path, {"approver": APPROVER % "1h"})
    try:
        rid = post(a, "/tickets", {"ticket": 3})
        other = post(a, "/tickets", {"ticket": 4})
        assert waiting(a, rid)["waiting"]["for"] == "signal"
        waiting(a, other)
        r = b.post("/approvals", {"ticket": 3, "ok": True})
        assert r.status == 202, r
        assert r.json()["resumed"] == [rid], r.json()
        done = a.wait_run(rid, timeout=30)
        assert done["status"] == "succeeded", done
        out = {s["id"]: s["output"] for s in done["steps"]}
        assert out["after"] == {"approved": {"ticket": 3, "ok": True},
                                "nil_on_timeout": False}, out
        assert b.run(other)["status"] == "waiting"
    finally:
        stop_all([a, b])


TICK = """
name: tick
on:
  schedule:
    - cron: "* * * * * *"
      catch_up: 0
steps:
  - id: s
    run: return event.schedule.at
"""


def test_one_schedule_fire_per_cluster(tmp_path):
    url, nodes = start_nodes(tmp_path, {"tick": TICK},
                             env={"HOOKFLOW_TEST_CRON_SECONDS": "1"})
    try:
        wait_for(lambda: pg_query(
            url, "SELECT count(DISTINCT node) FROM steps")[0][0] >= 1 and
            pg_query(url, "SELECT count(*) FROM steps")[0][0] >= 4, 20,
            what="four fires")
    finally:
        for n in nodes:
            n.stop()
    rows = pg_query(url, "SELECT output FROM steps WHERE step_id = 's'")
    fires = [o for (o,) in rows]
    counts = collections.Counter(fires)
    assert len(fires) >= 4, fires
    assert all(c == 1 for c in counts.values()), counts
    runs = pg_query(url, "SELECT count(*) FROM runs WHERE workflow = 'tick'")
    assert runs[0][0] == len(fires), (runs, fires)


DEB = """
name: deb
on:
  webhook:
    path: /deb
debounce: { key: event.body.k, period: 3s }
steps:
  - id: collect
    run: |
      local ns = {}
      for i, e in ipairs(events) do ns[i] = e.body.n end
      return { last = event.body.n, ns = ns }
"""


def test_debounce_shared_across_nodes(tmp_path):
    url, (a, b) = start_nodes(tmp_path, {"deb": DEB})
    try:
        ids = []
        for n in range(1, 9):
            ids.append(post((a, b)[n % 2], "/deb", {"k": "x", "n": n}))
            time.sleep(0.05)  # pacing only: one arrival order
        other = post(b, "/deb", {"k": "y", "n": 100})
        runs = {rid: a.wait_run(rid, timeout=30, statuses=(
            "succeeded", "failed", "cancelled")) for rid in ids}
        leads = [r for r in runs.values() if r["status"] == "succeeded"]
        assert len(leads) == 1, runs
        lead = leads[0]
        assert lead["steps"][0]["output"] == {"last": 8,
                                              "ns": list(range(1, 9))}, lead
        for rid, run in runs.items():
            if run is not lead:
                assert run["status"] == "cancelled", run
                assert run["error"] == f"debounced into run {lead['id']}"
        run = a.wait_run(other, timeout=30)
        assert run["steps"][0]["output"] == {"last": 100, "ns": [100]}
    finally:
        stop_all([a, b])


def test_debounce_concurrent_events_on_two_nodes_are_one_burst(tmp_path):
    """Events of one key reaching both nodes at once: still one run, with
    every event (their arrival order is the nodes', not known here)."""
    url, (a, b) = start_nodes(tmp_path, {"deb": DEB})
    try:
        ids, lock = [], threading.Lock()

        def send(srv, n):
            rid = post(srv, "/deb", {"k": "z", "n": n})
            with lock:
                ids.append(rid)

        threads = [threading.Thread(target=send, args=((a, b)[n % 2], n))
                   for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(ids) == 12, ids
        runs = [a.wait_run(rid, timeout=30, statuses=(
            "succeeded", "failed", "cancelled")) for rid in ids]
        leads = [r for r in runs if r["status"] == "succeeded"]
        assert len(leads) == 1, [(r["status"], r.get("error")) for r in runs]
        assert sorted(leads[0]["steps"][0]["output"]["ns"]) == list(range(12))
    finally:
        stop_all([a, b])


THR = """
name: thr
on:
  webhook:
    path: /thr
throttle: { key: "'shared'", limit: 2, period: 1500ms }
steps:
  - id: call
    run: return event.body.n
"""


def test_throttle_shared_across_nodes(tmp_path):
    url, (a, b) = start_nodes(tmp_path, {"thr": THR})
    watch = Watch(a)
    try:
        # The first two starts (the limit's first window) are one on each
        # node, each finished before the next is sent; the rest race
        # (either node may win each start, and either may run the woken
        # ones: under load one node can take them all). So both nodes start
        # runs under the one limit, whatever the machine's load.
        ids = []
        for n, node in enumerate((b, a)):
            ids.append(post(node, "/thr", {"n": n}))
            assert a.wait_run(ids[-1], timeout=30)["status"] == "succeeded"
        ids += [post((a, b)[n % 2], "/thr", {"n": n}) for n in range(2, 8)]
        for rid in ids:
            run = a.wait_run(rid, timeout=30)
            assert run["status"] == "succeeded", run
        watch.stop()
        nodes = pg_query(url, "SELECT DISTINCT node FROM steps ORDER BY node")
        assert nodes == [("a",), ("b",)], nodes
        parked = [w for rid, w in watch.seen.items() if rid in ids]
        assert len(parked) >= 4, watch.seen  # 8 runs, 2 at once
        assert_schedule(starts(a, ids).values(), 2, 1500)
    finally:
        watch.stop()
        stop_all([a, b])


GATED = """
name: gated
on:
  webhook:
    path: /gated
concurrency: { key: "'one'", max: 1 }
steps:
  - id: a
    run: |
      local r = http.get(event.body.gate)
      return r.status
  - id: b
    run: return "b ran"
"""


def test_cancel_across_nodes(tmp_path):
    gate = Gate()
    url, (a, b) = start_nodes(tmp_path, {"gated": GATED, "sleeper": SLEEPER})
    try:
        running = post(a, "/gated", {"gate": gate.url + "/1"})
        queued = post(a, "/gated", {"gate": gate.url + "/2"})
        gate.wait_hit(1)
        parked = post(a, "/sleep", {"n": 1})
        waiting(a, parked)
        # The queued run by the CLI, the parked one and the running one
        # through node b's API.
        p = a.cli("cancel", queued, "--state", url)
        assert p.returncode == 0, p.stderr
        for rid in (parked, running):
            r = b.api("POST", f"/api/runs/{rid}/cancel")
            assert r.status in (200, 202), r
            assert r.json()["status"] == "cancelled", r.json()
        # Node a, which holds the queued and the running run, takes the
        # notes (node b leaves them to it).
        wait_for(lambda: pg_query(url, "SELECT count(*) FROM meta WHERE"
                                  " key LIKE 'cancel:%'") == [(0,)], 15,
                 what="node a to take the cancel notes")
        gate.open()
        # The running step commits, no later step runs, on any node.
        wait_for(lambda: [s for s, _ in steps_of(url, running)] == ["a"], 15,
                 what="the running step committed")
        # The sleep would have ended by now; nothing more happens.
        time.sleep(3.5)
        assert [s for s, _ in steps_of(url, running)] == ["a"]
        assert steps_of(url, queued) == []
        assert [s for s, _ in steps_of(url, parked)] == ["first"]
        for rid in (running, queued, parked):
            assert b.run(rid)["status"] == "cancelled", rid
        assert len(gate.hits) == 1, gate.hits
    finally:
        gate.close()
        stop_all([a, b])
