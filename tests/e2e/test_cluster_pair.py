"""Two nodes over one PostgreSQL on 127.0.0.1 (contract §7), the cheap
companion of test_cluster_netns.py (no namespaces; the session's throwaway
cluster), for what test_cluster_pg.py does not already cover: GET /api/nodes
from both sides and without a token, dedupe shared; a node frozen (SIGSTOP)
past its lease whose step emits without an idempotency id, so that only the
fencing keeps its late delivery from being sent (the run keeps the other's
output and its one delivery); a concurrency lane held across nodes, and
going on after the node running its head is killed; and the README's
three-node example, command by command. Steps report where they ran through
HF_TEST_NODE and hold on a local gate (clusterlib.Gate) while the test
acts."""
import json
import shlex
import signal
import subprocess
import time

import pytest

import pgcluster
from clusterlib import Gate, Node, wait_node_alive, write_tree
from conftest import BIN, ROOT, pg_cluster, pg_state_url, wait_for

pytestmark = pytest.mark.skipif(pgcluster.available() is not None,
                                reason=str(pgcluster.available()))

LEASE = "2s"


def held(gate_url, extra=""):
    """A workflow whose one step waits on the gate, then returns where and
    with which run.attempt it ran."""
    return f"""\
        name: held
        on:
          webhook:
            path: /held
        {extra}
        steps:
          - id: s
            run: |
              local me = env("HF_TEST_NODE")
              http.get("{gate_url}/hold?node=" .. me .. "&attempt="
                .. run.attempt .. "&key=" .. tostring(event.body.key))
              webhook.emit("{gate_url}/hook", {{node = me,
                attempt = run.attempt, key = event.body.key}})
              return {{node = me, attempt = run.attempt}}
        """


HELLO = """\
    name: hello
    on:
      webhook:
        path: /hello
        dedupe: event.body.id
    steps:
      - id: s
        run: return {node = env("HF_TEST_NODE")}
    """


@pytest.fixture
def pair(tmp_path):
    """(gate, make): make(workflows) starts nodes a and b over fresh state
    and data databases; everything stopped afterwards."""
    gate = Gate()
    nodes = []

    def make(workflows):
        wf, sc = write_tree(tmp_path, workflows, {})
        state, data = pg_state_url(), pg_state_url()
        for name in ("a", "b"):
            nodes.append(Node(name, state, data, wf, sc,
                              lease=LEASE).start())
        wait_node_alive(nodes[0], "b", True, 10)
        return nodes

    yield gate, make
    for n in nodes:
        n.signal(signal.SIGCONT)
        n.kill()
    gate.close()


def post(node, path, body):
    st, _, text = node.request("POST", path, body)
    assert st in (200, 202), (st, text)
    return json.loads(text)


def wait_run(node, run_id, timeout=20):
    return wait_for(lambda: (lambda r: r if r["status"] in
                             ("succeeded", "failed") else None)(
        node.run(run_id)), timeout, 0.05, f"run {run_id} to finish")


def test_nodes_listed_steps_named_dedupe_shared(pair):
    gate, make = pair
    a, b = make({"hello": HELLO})
    for observer in (a, b):
        nodes = observer.nodes()
        assert set(nodes) == {"a", "b"}
        for n in nodes.values():
            assert {"id", "name", "epoch", "heartbeat_at", "started_at",
                    "alive"} <= set(n)
            assert n["alive"] is True
    for node in (a, b):
        run_id = post(node, "/hello", {"id": node.name})["runs"][0]
        run = wait_run(a, run_id)
        assert run["status"] == "succeeded"
        assert run["steps"][0]["output"] == {"node": node.name}
        assert run["steps"][0]["node"] == node.name
    # One dedupe key for both nodes.
    first = post(a, "/hello", {"id": "once"})
    again = post(b, "/hello", {"id": "once"})
    assert again == {"event": first["event"], "duplicate": True}
    st, _, text = b.request("GET", "/metrics")
    assert st == 200 and 'node="b"' in text, text[:2000]
    st, _ = a.api("GET", "/api/nodes", None)
    assert st == 200
    st, _, _ = a.request("GET", "/api/nodes")
    assert st == 401


def test_frozen_node_late_result_refused(pair):
    gate, make = pair
    a, b = make({"held": held(gate.url)})
    run_id = post(a, "/held", {"key": 1})["runs"][0]
    wait_for(lambda: gate.seen("/hold"), 15, what="the step on a")
    a.signal(signal.SIGSTOP)  # a pause longer than the lease
    wait_node_alive(b, "a", False, 15)
    again = wait_for(lambda: [r for r in gate.seen("/hold")
                              if r["query"]["node"] == "b"], 20,
                     what="b to run the step again")
    assert again[0]["query"]["attempt"] == "2"
    gate.release()  # answers b, and a's request (a reads it when it runs)
    run = wait_run(b, run_id)
    assert run["status"] == "succeeded"
    assert run["steps"][0]["output"] == {"node": "b", "attempt": 2}
    # a runs again: its step ends, its result and delivery are refused,
    # and it joins again as a live node that takes work.
    a.signal(signal.SIGCONT)
    wait_node_alive(b, "a", True, 20)
    wait_for(lambda: a.nodes().get("a", {}).get("alive"), 20,
             what="a to see itself alive")
    later = None
    for _ in range(100):  # a may answer 503 until its lease is fresh again
        st, _, text = a.request("POST", "/held", {"key": 2})
        if st == 202:
            later = json.loads(text)["runs"][0]
            break
        time.sleep(0.1)
    assert later, "a took no webhook after it came back"
    assert wait_run(b, later)["status"] == "succeeded"
    run = b.run(run_id)
    assert run["status"] == "succeeded"
    assert [(s["id"], s["output"], s["node"]) for s in run["steps"]] == \
        [("s", {"node": "b", "attempt": 2}, "b")]
    wait_for(lambda: [r for r in gate.seen("/hook")
                      if r["body"]["key"] == 2], 15, what="a's delivery")
    hooks = [r["body"] for r in gate.seen("/hook")]
    assert [h for h in hooks if h["key"] == 1] == \
        [{"node": "b", "attempt": 2, "key": 1}], hooks


def test_lane_held_across_nodes(pair):
    gate, make = pair
    a, b = make({"held": held(
        gate.url, "concurrency: { key: event.body.lane, max: 1 }")})
    first = post(a, "/held", {"lane": "x", "key": "x1"})["runs"][0]
    wait_for(lambda: gate.seen("/hold"), 15, what="x1 on a")
    second = post(b, "/held", {"lane": "x", "key": "x2"})["runs"][0]
    other = post(b, "/held", {"lane": "y", "key": "y1"})["runs"][0]
    # y1 runs while x1 holds lane x; x2 does not.
    wait_for(lambda: [r for r in gate.seen("/hold")
                      if r["query"]["key"] == "y1"], 15, what="y1 to run")
    assert [r["query"]["key"] for r in gate.seen("/hold")] == ["x1", "y1"]
    gate.release()
    for run_id in (first, second, other):
        assert wait_run(b, run_id)["status"] == "succeeded"
    keys = [r["query"]["key"] for r in gate.seen("/hold")]
    assert keys.index("x1") < keys.index("x2"), keys


def readme_block():
    """The first sh block of the README's "Running on several machines",
    as commands (comments dropped, continued lines joined)."""
    text = (ROOT / "README.md").read_text()
    part = text.split("\n## Running on several machines\n", 1)[1]
    block = part.split("```sh\n", 1)[1].split("```", 1)[0]
    cmds, cur = [], ""
    for line in block.splitlines():
        line = line.split(" #", 1)[0] if not line.startswith("#") else ""
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip():
            cmds.append(shlex.split(cur))
        cur = ""
    return cmds


def test_readme_three_nodes_example(tmp_path):
    """The README's commands, on this machine: db.internal is the session's
    PostgreSQL, `sudo -u postgres` its superuser over its socket, each
    node on 127.0.0.1 port 0 with a workflows directory of its own."""
    pg = pg_cluster()
    env = {}
    nodes = []
    wf, sc = write_tree(tmp_path, {"hello": HELLO}, {})
    try:
        for cmd in readme_block():
            if cmd[:3] == ["sudo", "-u", "postgres"]:
                prog, *rest = cmd[3:]
                subprocess.run([prog, "-h", str(pg.dir), "-p", str(pg.port),
                                "-U", "postgres", *rest], check=True,
                               capture_output=True, timeout=60)
            elif cmd[0] == "export":
                k, v = cmd[1].split("=", 1)
                env[k] = v
            elif cmd[:2] == ["hookflow", "serve"]:
                argv = [BIN] + [a.replace("db.internal",
                                          f"127.0.0.1:{pg.port}")
                                for a in cmd[1:]]
                argv[argv.index("--listen") + 1] = "127.0.0.1:0"
                argv += ["--workflows", str(wf), "--scripts", str(sc)]
                name = argv[argv.index("--node") + 1]
                nodes.append(Node(name, "", "", wf, sc, argv=argv,
                                  env=env).start())
            elif cmd[0] == "curl":
                assert cmd[-1] == "http://web1:8080/api/nodes"
                st, _, text = nodes[0].request(
                    "GET", "/api/nodes", headers={
                        "Authorization":
                        f"Bearer {env['HOOKFLOW_ADMIN_TOKEN']}"})
                assert st == 200, text
                got = {n["name"]: n["alive"]
                       for n in json.loads(text)["nodes"]}
                assert got == {"web1": True, "web2": True, "web3": True}
            else:
                raise AssertionError(f"a README command not run: {cmd}")
        assert len(nodes) == 3
        for n in nodes:
            st, _, text = n.request("POST", "/hello", {"id": n.name})
            assert st == 202, text
    finally:
        for n in nodes:
            n.kill()


def test_lane_goes_on_after_its_node_is_killed(pair):
    """A lane whose running run's node dies: the other node takes the run
    over (a repeat) and then runs the lane's next run, in order."""
    gate, make = pair
    a, b = make({"held": held(
        gate.url, "concurrency: { key: event.body.lane, max: 1 }")})
    first = post(a, "/held", {"lane": "x", "key": "x1"})["runs"][0]
    wait_for(lambda: gate.seen("/hold"), 15, what="x1 on a")
    second = post(b, "/held", {"lane": "x", "key": "x2"})["runs"][0]
    a.kill()
    gate.release()

    def seen():
        return [(r["query"]["key"], r["query"]["node"],
                 r["query"]["attempt"]) for r in gate.seen("/hold")]
    for run_id in (first, second):
        try:
            run = wait_run(b, run_id, 30)
        except AssertionError as e:
            states = [b.run(x)["status"] for x in (first, second)]
            raise AssertionError(f"{e}; steps run: {seen()}; x1, x2:"
                                 f" {states}") from None
        assert run["status"] == "succeeded"
    seen = seen()
    assert seen == [("x1", "a", "1"), ("x1", "b", "2"), ("x2", "b", "1")]
