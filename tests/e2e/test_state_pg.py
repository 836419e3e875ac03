"""The state store on PostgreSQL (--state postgres://…), beyond what the rest
of the suite checks when it runs against PostgreSQL (HF_TEST_STATE=postgres,
the e2e-pg suite): the schema created by two processes at once (the advisory
lock), connections the server drops (reconnected without a failed webhook),
a PostgreSQL server that stops (webhooks get 503, then 202 again by
themselves once it is back, nothing answered lost), group commit (one
transaction for many webhooks), and two servers on one database. Each test uses its own database; the test
that stops PostgreSQL its own cluster."""
import json
import subprocess
import threading
import time

import pytest

import pgcluster
from conftest import (BIN, Server, data_tables, pg_cluster, pg_query,
                      pg_state_url, wait_for)

pytestmark = pytest.mark.skipif(pgcluster.available() is not None,
                                reason=f"PostgreSQL: {pgcluster.available()}")

WORKFLOWS = {"hello": """\
    name: hello
    on:
      webhook:
        path: /hello
    steps:
      - id: greet
        run: return {hi = event.body.name}
    """}


def start(tmp_path, url, args=()):
    srv = Server(tmp_path, WORKFLOWS, args=list(args))
    srv.state = url
    return srv.start()


def test_schema_created_once_by_two_processes_at_once(tmp_path):
    url = pg_state_url()
    procs = [subprocess.Popen([BIN, "runs", "--state", url, "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert json.loads(out) == {"runs": []}


def test_dropped_connections_are_reconnected(tmp_path):
    url = pg_state_url()
    srv = start(tmp_path, url)
    try:
        r = srv.post("/hello", {"name": "a"})
        assert r.status == 202, r
        srv.wait_run(r.json()["runs"][0])
        db = url.rsplit("/", 1)[1]
        killed = pg_cluster().psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            f" WHERE datname = '{db}' AND application_name = 'hookflow'")
        assert int(killed) >= 1
        # The writer finds its connection gone at BEGIN and connects again;
        # readers take a new connection: nobody sees the drop.
        for name in "bcd":
            r = srv.post("/hello", {"name": name})
            assert r.status == 202, r
            assert srv.wait_run(r.json()["runs"][0])["status"] == "succeeded"
        runs = srv.api("GET", "/api/runs").json()["runs"]
        assert sorted(x["steps"][0]["output"]["hi"] for x in runs) == \
            ["a", "b", "c", "d"]
    finally:
        srv.kill()


def restart_postgres(pg):
    """Starts the stopped cluster's server again, same data and port."""
    pw = pg._as_postgres()
    pg.proc = subprocess.Popen(
        [str(pgcluster.PG_BIN / "postgres"), "-D", str(pg.data),
         "-p", str(pg.port), "-c", f"listen_addresses={pg.listen}",
         "-c", f"unix_socket_directories={pg.dir}", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=pg.dir,
        **pw)

    def ready():
        return subprocess.run(
            [str(pgcluster.PG_BIN / "pg_isready"), "-h", str(pg.dir), "-p",
             str(pg.port)], capture_output=True).returncode == 0
    wait_for(ready, 30, 0.1, "PostgreSQL to start again")


def test_postgres_down_means_503_then_back_by_itself(tmp_path):
    pg = pgcluster.PgCluster().start()
    srv = None
    try:
        srv = start(tmp_path, pg.url("down"))
        accepted = []
        r = srv.post("/hello", {"name": "before"})
        assert r.status == 202, r
        accepted.append(r.json()["runs"][0])
        srv.wait_run(accepted[0])
        pg.proc.send_signal(2)  # fast shutdown
        pg.proc.wait(30)
        # The first write finds the server gone; from then on webhooks get
        # 503 with Retry-After (the store is not writable), never a 202.
        codes = [srv.post("/hello", {"name": "x"}).status for _ in range(3)]
        assert set(codes) == {503}, codes
        r = srv.post("/hello", {"name": "x"})
        assert r.status == 503 and "retry-after" in r.headers, r
        assert "state database cannot write" in r.body, r.body
        wait_for(lambda: "state database cannot write" in srv.stderr(), 10,
                 what="the fault's log line")
        restart_postgres(pg)

        def back():
            r = srv.post("/hello", {"name": "after"})
            return r if r.status == 202 else None
        r = wait_for(back, 15, 0.2, "webhooks to be accepted again")
        accepted.append(r.json()["runs"][0])
        for rid in accepted:
            assert srv.wait_run(rid)["status"] == "succeeded"
        wait_for(lambda: "state database writes again" in srv.stderr(), 10,
                 what="the recovery's log line")
        srv.stop()
        rows = pg_query_on(pg, "down", "SELECT count(*) FROM events")
        assert rows == [(2,)], rows
    finally:
        if srv:
            srv.kill()
        pg.stop()


def pg_query_on(pg, db, sql):
    out = pg.psql(f"SELECT coalesce(json_agg(t), '[]') FROM ({sql}) t", db=db)
    return [tuple(r.values()) for r in json.loads(out)]


def test_group_commit_many_webhooks_few_transactions(tmp_path):
    url = pg_state_url()
    # --sync normal: synchronous_commit off (the same answers, sooner)
    srv = start(tmp_path, url, ["--sync", "normal"])
    try:
        def metric(name):
            text = srv.get("/metrics").body
            for line in text.splitlines():
                if line.startswith(name + " "):
                    return int(float(line.split()[1]))
            raise AssertionError(name)
        before = metric("hookflow_store_commits_total")
        results = []

        def client(n):
            for i in range(n):
                results.append(srv.post("/hello", {"name": str(i)}).status)
        threads = [threading.Thread(target=client, args=(25,))
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results.count(202) == 200, results
        wait_for(lambda: pg_query(url, "SELECT count(*) FROM runs WHERE"
                                  " status = 'succeeded'") == [(200,)],
                 30, 0.2, "every run to finish")
        assert pg_query(url, "SELECT count(*) FROM events") == [(200,)]
        # 200 ingests and 400 run writes (start, step) in far fewer
        # transactions than writes, and the queue is empty once they end.
        assert metric("hookflow_store_commits_total") - before < 600
        assert pg_query(url, "SELECT count(*) FROM queue") == [(0,)]
    finally:
        srv.kill()


def test_two_servers_share_the_database(tmp_path):
    url = pg_state_url()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start(tmp_path / "a", url, ["--node", "a"])
    second = start(tmp_path / "b", url, ["--node", "b"])
    try:
        # No lock keeps the second out any more (test_cluster_pg.py has
        # the rest): both accept, and each run ends once.
        runs = []
        for srv, name in ((first, "one"), (second, "two")):
            r = srv.post("/hello", {"name": name})
            assert r.status == 202, r
            runs.append(r.json()["runs"][0])
        for run_id in runs:
            assert first.wait_run(run_id)["status"] == "succeeded"
        assert pg_query(url, "SELECT count(*) FROM queue") == [(0,)]
    finally:
        first.kill()
        second.kill()


def test_retry_keeps_the_failed_attempt_in_history(tmp_path):
    url = pg_state_url()
    srv = Server(tmp_path, {"flaky": """\
        name: flaky
        on:
          webhook:
            path: /flaky
        steps:
          - id: once
            run: |
              local n = db.query("SELECT count(*) AS n FROM seen")[1].n
              db.exec("INSERT INTO seen VALUES (1)")
              if n == 0 then error("first try fails") end
              return {n = n}
        """})
    srv.state = url
    data_tables(srv.data, "CREATE TABLE seen(x INTEGER)")
    srv.start()
    try:
        rid = srv.post("/flaky", {}).json()["runs"][0]
        run = srv.wait_run(rid)
        assert run["status"] == "failed" and run["history"] == [], run
        p = srv.cli("retry", rid, "--state", url)
        assert p.returncode == 0, p.stderr
        run = wait_for(lambda: (lambda r: r if r["attempt"] == 2 and
                                r["status"] == "succeeded" else None)(
            srv.run(rid)), 15, what="the retried run")
        (old,) = run["history"]
        assert old["attempt"] == 1 and old["status"] == "failed"
        assert "first try fails" in old["error"]
        assert old["steps"][0]["id"] == "once"
        assert old["steps"][0]["status"] == "failed"
        assert old["finished_at"]
    finally:
        srv.kill()
