"""serve's --node, --lease and --pg-notify with one server, on either state
backend (HF_TEST_STATE=postgres runs it on PostgreSQL): GET /api/nodes lists
the server by its name, /metrics names it, a step's "node" is its name on
PostgreSQL (null with SQLite, where one server owns the file), and a bad
name or lease is refused at start. Several nodes: test_cluster_pg.py."""
import subprocess

from conftest import BIN, PG_MODE

WORKFLOWS = {"hello": """\
    name: hello
    on:
      webhook:
        path: /hello
    steps:
      - id: greet
        run: return 1
    """}


def test_one_node_lists_itself(server):
    srv = server(workflows=WORKFLOWS,
                 args=["--node", "solo-1", "--lease", "3s",
                       "--pg-notify", "off"])
    r = srv.api("GET", "/api/nodes")
    assert r.status == 200, r
    nodes = r.json()["nodes"]
    assert [n["name"] for n in nodes] == ["solo-1"], nodes
    n = nodes[0]
    assert n["alive"] is True and n["epoch"] >= 1
    assert n["heartbeat_at"] and n["started_at"]
    assert srv.request("GET", "/api/nodes").status == 401
    assert 'hookflow_node_info{node="solo-1"} 1' in srv.get("/metrics").body
    r = srv.post("/hello", {})
    assert r.status == 202, r
    run = srv.wait_run(r.json()["runs"][0])
    assert run["steps"][0]["node"] == ("solo-1" if PG_MODE else None), run


def test_the_host_name_by_default(server):
    srv = server(workflows=WORKFLOWS)
    name = srv.api("GET", "/api/nodes").json()["nodes"][0]["name"]
    assert name and "hookflow_node_info{node=\"%s\"} 1" % name in \
        srv.get("/metrics").body


def test_bad_values_are_refused(tmp_path):
    for args in (["--node", "no spaces"], ["--lease", "10ms"],
                 ["--pg-notify", "maybe"]):
        p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0",
                            "--state", str(tmp_path / "s.db"), *args],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (args, p.stderr)
