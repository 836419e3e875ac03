"""Several nodes on one PostgreSQL state database (CONTRACT §7): two or three
`hookflow serve` on 127.0.0.1 against one throwaway cluster, each with its
own --node name and a short --lease. Both accept and every run ends once;
/api/nodes and /metrics name the nodes; a node killed with SIGKILL in the
middle of a step has its run taken over by another within the lease, the
step marked as a possible repeat (run.attempt 2); a node cut off longer
than its lease (SIGSTOP, then SIGCONT) writes nothing late: its step's
commit is refused, the run ends once, on the other node, and the delivery
its step emitted is sent once; deliveries emitted on both nodes are each
sent once. Every wait is bounded; nodes are stopped by their PID."""
import json
import signal
import time

import pytest

import pgcluster
from conftest import (Receiver, Server, pg_query, pg_state_url, request,
                      wait_for)

pytestmark = pytest.mark.skipif(pgcluster.available() is not None,
                                reason=f"PostgreSQL: {pgcluster.available()}")

LEASE = "2s"


def hello_workflow():
    return {"hello": """\
        name: hello
        on:
          webhook:
            path: /hello
        steps:
          - id: greet
            run: return {hi = event.body.n}
        """}


def slow_workflow(slow_url, sink_url):
    # The first attempt of the step waits on a slow receiver; a repeat
    # (run.attempt > 1: another node took the run over) does not. The step
    # emits one delivery either way.
    return {"slow": f"""\
        name: slow
        on:
          webhook:
            path: /slow
        steps:
          - id: work
            run: |
              if run.attempt == 1 then http.get("{slow_url}/wait") end
              webhook.emit("{sink_url}/sink", {{n = event.body.n,
                attempt = run.attempt}}, {{id = "d-" .. event.body.n}})
              return run.attempt
        """}


def start_nodes(tmp_path, workflows, names, url=None):
    url = url or pg_state_url()
    nodes = []
    for name in names:
        d = tmp_path / name
        d.mkdir()
        srv = Server(d, workflows, args=["--node", name, "--lease", LEASE])
        srv.state = url
        nodes.append(srv.start())
    return url, nodes


def stop_all(nodes):
    for n in nodes:
        if n.proc and n.proc.poll() is None:
            n.proc.send_signal(signal.SIGCONT)
        n.kill()


def nodes_of(srv):
    r = srv.api("GET", "/api/nodes")
    assert r.status == 200, r
    return {n["name"]: n for n in r.json()["nodes"]}


def test_nodes_share_the_work_and_list_each_other(tmp_path):
    url, nodes = start_nodes(tmp_path, hello_workflow(), ["a", "b"])
    try:
        runs = []
        for i in range(20):
            r = nodes[i % 2].post("/hello", {"n": i})
            assert r.status == 202, r
            runs += [(run_id, "ab"[i % 2]) for run_id in r.json()["runs"]]
        for run_id, accepted_by in runs:
            run = nodes[0].wait_run(run_id)
            assert run["status"] == "succeeded", run
            # The node that accepted an event keeps its runs.
            assert run["steps"][0]["node"] == accepted_by, run
        # Each run ended once: one step row each, none left queued.
        assert pg_query(url, "SELECT count(*) FROM steps") == [(20,)]
        assert pg_query(url, "SELECT count(*) FROM queue") == [(0,)]
        by_node = pg_query(url, "SELECT node, count(*) FROM steps"
                           " GROUP BY node ORDER BY node")
        assert by_node == [("a", 10), ("b", 10)], by_node
        for srv in nodes:
            listed = nodes_of(srv)
            assert set(listed) == {"a", "b"}, listed
            assert all(n["alive"] for n in listed.values()), listed
            assert all(n["heartbeat_at"] and n["started_at"]
                       for n in listed.values()), listed
        metrics = nodes[1].get("/metrics").body
        assert 'hookflow_node_info{node="b"} 1' in metrics
        # The admin API of either node shows the cluster's runs.
        listed = nodes[1].api("GET", "/api/runs?limit=100").json()["runs"]
        assert len(listed) == 20
    finally:
        stop_all(nodes)


def test_a_killed_node_s_run_is_taken_over_within_the_lease(tmp_path):
    slow, sink = Receiver(), Receiver()
    slow.delay = 30
    url, nodes = start_nodes(tmp_path, slow_workflow(slow.url, sink.url),
                             ["a", "b"])
    a, b = nodes
    try:
        r = a.post("/slow", {"n": 1})
        assert r.status == 202, r
        run_id = r.json()["runs"][0]
        wait_for(lambda: slow.requests, 10, what="the step to start on a")
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        # b reaps a after the lease (2s) and claims its run: bounded well
        # above that, never timed.
        run = b.wait_run(run_id, timeout=30)
        assert run["status"] == "succeeded", run
        step = run["steps"][0]
        assert step["node"] == "b", step
        assert step["output"] == 2, step  # run.attempt: a possible repeat
        listed = nodes_of(b)
        assert listed["a"]["alive"] is False and listed["b"]["alive"], listed
        assert listed["a"]["epoch"] >= 2, listed
        wait_for(lambda: len(sink.requests) >= 1, 20, what="the delivery")
        time.sleep(0.5)
        assert [json.loads(x["body"])["attempt"] for x in sink.requests] \
            == [2]
        assert pg_query(url, "SELECT count(*) FROM queue") == [(0,)]
    finally:
        stop_all(nodes)
        slow.close()
        sink.close()


def test_a_cut_off_node_writes_nothing_late(tmp_path):
    slow, sink = Receiver(), Receiver()
    # Long enough that a is stopped while the request waits, short enough
    # that its answer is waiting for a when it resumes.
    slow.delay = 3
    url, nodes = start_nodes(tmp_path, slow_workflow(slow.url, sink.url),
                             ["a", "b"])
    a, b = nodes
    try:
        r = a.post("/slow", {"n": 7})
        assert r.status == 202, r
        run_id = r.json()["runs"][0]
        wait_for(lambda: slow.requests, 10, what="the step to start on a")
        a.proc.send_signal(signal.SIGSTOP)
        # Past the lease: b takes the run over and finishes it.
        run = b.wait_run(run_id, timeout=30)
        assert run["status"] == "succeeded", run
        assert run["steps"][0]["node"] == "b", run
        assert run["steps"][0]["output"] == 2, run
        wait_for(lambda: len(sink.requests) >= 1, 20, what="the delivery")
        time.sleep(slow.delay)  # a's request has its answer by now
        a.proc.send_signal(signal.SIGCONT)
        # a finishes its step, and its commit is refused: the run is
        # dropped there, and a rejoins under a new epoch.
        wait_for(lambda: "dropped here" in a.stderr(), 20,
                 what="a to drop the run")
        wait_for(lambda: nodes_of(b)["a"]["alive"], 20,
                 what="a to rejoin")
        after = b.run(run_id)
        assert after["steps"] == run["steps"], after
        assert after["status"] == "succeeded"
        assert pg_query(url, "SELECT count(*), max(node) FROM steps") == \
            [(1, "b")]
        assert pg_query(url, "SELECT count(*) FROM deliveries") == [(1,)]
        time.sleep(1.5)  # a's outbox had its chance to send it again
        assert len(sink.requests) == 1, sink.requests
        # a works again, for new runs.
        r = a.post("/slow", {"n": 8})
        assert r.status == 202, r
    finally:
        stop_all(nodes)
        slow.close()
        sink.close()


def test_each_delivery_is_sent_once_across_nodes(tmp_path):
    sink = Receiver()
    workflows = {"emit": f"""\
        name: emit
        on:
          webhook:
            path: /emit
        steps:
          - id: send
            run: |
              return webhook.emit("{sink.url}/in", {{n = event.body.n}})
        """}
    url, nodes = start_nodes(tmp_path, workflows, ["a", "b", "c"])
    try:
        n = 30
        for i in range(n):
            r = nodes[i % 3].post("/emit", {"n": i})
            assert r.status == 202, r
        wait_for(lambda: len(sink.requests) >= n, 30, what="every delivery")
        time.sleep(1.5)  # a second send would show by now
        ids = [x["headers"]["webhook-id"] for x in sink.requests]
        assert len(ids) == n and len(set(ids)) == n, ids
        assert sorted(json.loads(x["body"])["n"] for x in sink.requests) \
            == list(range(n))
        assert pg_query(url, "SELECT count(*) FROM deliveries WHERE status"
                        " = 'delivered'") == [(n,)]
    finally:
        stop_all(nodes)
        sink.close()


def test_a_node_that_stops_cleanly_hands_its_runs_over_at_once(tmp_path):
    url, nodes = start_nodes(tmp_path, hello_workflow(), ["a", "b"])
    a, b = nodes
    try:
        assert a.stop() == 0
        listed = nodes_of(b)
        assert listed["a"]["alive"] is False, listed
        r = b.post("/hello", {"n": 1})
        assert r.status == 202, r
        assert b.wait_run(r.json()["runs"][0])["status"] == "succeeded"
        # The name comes back: a restart takes over what it left.
        a.start()
        r = a.post("/hello", {"n": 2})
        assert r.status == 202, r
        assert a.wait_run(r.json()["runs"][0])["status"] == "succeeded"
    finally:
        stop_all(nodes)


def test_a_lane_is_shared_by_the_nodes(tmp_path):
    log, slow = Receiver(), Receiver()
    slow.delay = 0.2
    workflows = {"lane": f"""\
        name: lane
        on:
          webhook:
            path: /lane
        concurrency: {{ key: event.body.k, max: 1 }}
        steps:
          - id: first
            run: |
              http.post("{log.url}/start", {{n = event.body.n}})
              http.get("{slow.url}/work")
          - id: second
            run: |
              http.post("{log.url}/end", {{n = event.body.n}})
        """}
    url, nodes = start_nodes(tmp_path, workflows, ["a", "b"])
    try:
        n = 8
        for i in range(n):
            # One lane, its events accepted by both nodes in turn.
            r = nodes[i % 2].post("/lane", {"k": "x", "n": i})
            assert r.status == 202, r
        wait_for(lambda: len(log.requests) >= 2 * n, 60,
                 what="every run of the lane")
        seen = [(x["path"], json.loads(x["body"])["n"]) for x in log.requests]
        # One run of the lane at a time, in arrival order, across nodes.
        want = [p for i in range(n) for p in (("/start", i), ("/end", i))]
        assert seen == want, seen
        nodes_ran = pg_query(url, "SELECT DISTINCT node FROM steps"
                             " ORDER BY node")
        assert nodes_ran == [("a",), ("b",)], nodes_ran
    finally:
        stop_all(nodes)
        log.close()
        slow.close()


def test_dedupe_holds_across_nodes(tmp_path):
    workflows = {"once": """\
        name: once
        on:
          webhook:
            path: /once
            dedupe: event.body.id
        steps:
          - id: s
            run: return event.body.id
        """}
    url, nodes = start_nodes(tmp_path, workflows, ["a", "b"])
    try:
        import threading
        statuses = []
        lock = threading.Lock()

        def post(srv, i):
            r = srv.post("/once", {"id": f"k{i}"})
            with lock:
                statuses.append(r.status)

        threads = [threading.Thread(target=post, args=(srv, i))
                   for i in range(10) for srv in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(statuses) == [200] * 10 + [202] * 10, statuses
        wait_for(lambda: pg_query(url, "SELECT count(*) FROM runs WHERE"
                                  " status = 'succeeded'") == [(10,)],
                 30, what="the ten runs")
        assert pg_query(url, "SELECT count(*) FROM runs") == [(10,)]
    finally:
        stop_all(nodes)


def test_the_cli_wakes_the_cluster_with_or_without_notify(tmp_path):
    url = pg_state_url()
    d = tmp_path / "quiet"
    d.mkdir()
    quiet = Server(d, hello_workflow(),
                   args=["--node", "quiet", "--lease", LEASE,
                         "--pg-notify", "off"])
    quiet.state = url
    url, nodes = start_nodes(tmp_path, hello_workflow(), ["loud"], url=url)
    nodes.append(quiet.start())
    try:
        r = nodes[0].post("/hello", {"n": 1})
        assert r.status == 202, r
        event = r.json()["event"]
        nodes[0].wait_run(r.json()["runs"][0])
        p = nodes[0].cli("replay", event, "--state", url, "--json")
        assert p.returncode == 0, p.stderr
        runs = json.loads(p.stdout)["runs"]
        assert len(runs) == 1
        run = nodes[1].wait_run(runs[0], timeout=30)
        assert run["status"] == "succeeded", run
        assert run["steps"][0]["node"] in ("loud", "quiet")
        listed = nodes_of(nodes[1])
        assert set(listed) == {"loud", "quiet"}, listed
    finally:
        stop_all(nodes)
