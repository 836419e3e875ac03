"""The disk backlog: past the in-memory window (--max-queue) accepted runs wait
on disk and come into memory as room frees; webhooks get 503 only past
--max-backlog, answered after the body is read so that the keep-alive
connection survives. Lanes keep their order through the backlog and across
restarts (SIGTERM and SIGKILL)."""
import http.client
import json
import signal
import sqlite3
from collections import defaultdict

from conftest import data_tables, state_rows, wait_for
from flowutil import metric

N = 240


def wf(name, path, steps, extra=""):
    return (f"name: {name}\non:\n  webhook:\n    path: {path}\n{extra}"
            f"steps:\n{steps}")


def busy(seconds):
    return f"local t0 = os.clock(); while os.clock() - t0 < {seconds} do end"


LANE = wf("lane", "/lane", f"""\
  - id: work
    run: |
      db.exec("INSERT INTO log(k, n, attempt) VALUES (?, ?, ?)", event.body.k,
              event.body.n, run.attempt)
      {busy(0.03)}
      return event.body.n
""", extra="concurrency: { key: event.body.k, max: 1 }\n")


def q(path, sql, *args):
    """Rows of sql on a database the server uses: an SQLite file, or the
    state database on PostgreSQL (HF_TEST_STATE=postgres)."""
    if str(path).startswith(("postgres://", "postgresql://")):
        return [tuple(r) for r in state_rows(path, sql, *args)]
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def on_disk(srv, unfinished_only=False):
    """Runs waiting on disk (the backlog): SQLite's claimed = 0, or on
    PostgreSQL the queue rows no node holds."""
    if str(srv.state).startswith(("postgres://", "postgresql://")):
        return q(srv.state, "SELECT count(*) FROM queue c JOIN runs r ON"
                 " r.id = c.run_id WHERE c.node_id IS NULL" +
                 (" AND r.status IN ('queued','running')"
                  if unfinished_only else ""))[0][0]
    return q(srv.state, "SELECT count(*) FROM runs WHERE claimed = 0" +
             (" AND status IN ('queued','running')"
              if unfinished_only else ""))[0][0]


def data_db(srv):
    data_tables(srv.data, "CREATE TABLE log(id INTEGER PRIMARY KEY, k TEXT,"
                " n INTEGER, attempt INTEGER)")


def send(srv, n, first=0, conn=None):
    """Posts n events on one keep-alive connection, lanes a..d in turn.
    Returns {status: count} and the run ids of the 202s."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    statuses, ids = defaultdict(int), []
    for i in range(first, first + n):
        conn.request("POST", "/lane", json.dumps({"k": "abcd"[i % 4], "n": i}),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        body = r.read()
        statuses[r.status] += 1
        if r.status == 202:
            ids.extend(json.loads(body)["runs"])
    if own:
        conn.close()
    return dict(statuses), ids


def unfinished(srv):
    return q(srv.state, "SELECT count(*) FROM runs WHERE status IN"
             " ('queued','running')")[0][0]


def assert_lanes_in_order(srv, total):
    """Every event ran, each lane in arrival order (a step interrupted by a
    kill may run again right after itself)."""
    lanes = defaultdict(list)
    for k, n in q(srv.data, "SELECT k, n FROM log ORDER BY id"):
        if not lanes[k] or lanes[k][-1] != n:
            lanes[k].append(n)
    for k, ns in lanes.items():
        assert ns == sorted(ns), (k, ns)
        assert len(ns) == len(set(ns)), (k, ns)
    assert sum(len(ns) for ns in lanes.values()) == total


def wait_all_done(srv, total, timeout=60):
    wait_for(lambda: unfinished(srv) == 0 and q(
        srv.state, "SELECT count(*) FROM runs")[0][0] == total,
        timeout=timeout, what="every run to finish")
    assert q(srv.state, "SELECT status, count(*) FROM runs GROUP BY 1") == \
        [("succeeded", total)]


def test_backlog_accepts_everything_and_every_run_finishes(server):
    srv = server(workflows={"lane": LANE}, start=False,
                 args=["--max-queue", "10", "--workers", "2"])
    data_db(srv)
    srv.start()
    statuses, ids = send(srv, N)
    assert statuses == {202: N}, statuses
    assert len(ids) == N
    # runs wait on disk meanwhile: the window holds at most 10 (+ the page
    # being claimed)
    backlog = metric(srv, "hookflow_backlog")
    assert backlog is not None and backlog > 0, backlog
    assert metric(srv, "hookflow_queue_depth") <= 10 + 10
    wait_all_done(srv, N)
    assert_lanes_in_order(srv, N)
    assert metric(srv, "hookflow_backlog") == 0
    # no step ran twice without a crash
    assert q(srv.data, "SELECT count(*) FROM log")[0][0] == N


def restart_mid_backlog(server, sig):
    srv = server(workflows={"lane": LANE}, start=False,
                 args=["--max-queue", "10", "--workers", "2"])
    data_db(srv)
    srv.start()
    statuses, _ = send(srv, N)
    assert statuses == {202: N}, statuses
    # stopped with most runs still on disk
    assert on_disk(srv) > 0
    if sig == signal.SIGKILL:
        srv.kill()
    else:
        assert srv.stop(sig) == 0
    assert unfinished(srv) > 0
    waiting = on_disk(srv, unfinished_only=True)
    srv.start()
    if waiting:
        assert f"{waiting} run" in srv.stderr(), srv.stderr()
        assert "waiting on disk" in srv.stderr(), srv.stderr()
    # more arrive behind the backlog: they wait their turn
    statuses, _ = send(srv, 40, first=N)
    assert statuses == {202: 40}, statuses
    wait_all_done(srv, N + 40)
    assert_lanes_in_order(srv, N + 40)


def test_backlog_resumes_after_sigterm(server):
    restart_mid_backlog(server, signal.SIGTERM)


def test_backlog_resumes_after_sigkill(server):
    restart_mid_backlog(server, signal.SIGKILL)


def test_max_backlog_503_after_the_body_keeps_the_connection(server):
    srv = server(workflows={"lane": wf("lane", "/lane", f"""\
  - id: work
    run: |
      {busy(0.3)}
""")}, args=["--max-queue", "2", "--max-backlog", "5", "--workers", "1"])
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    got = []
    for i in range(12):
        conn.request("POST", "/lane", json.dumps({"n": i, "pad": "x" * 4000}),
                     {"Content-Type": "application/json"})
        sock = conn.sock
        r = conn.getresponse()
        body = r.read()
        got.append(r.status)
        if r.status == 503:
            break
    assert got[-1] == 503, got
    assert got[:-1] == [202] * (len(got) - 1)
    assert len(got) >= 2 + 5  # the window, then the backlog, then 503
    assert int(r.getheader("Retry-After")) >= 1
    assert "wait on disk" in json.loads(body)["error"]
    assert not r.will_close, r.getheaders()
    # the same connection answers the next request
    conn.request("GET", "/healthz")
    r2 = conn.getresponse()
    assert r2.read() == b"ok\n"
    assert conn.sock is sock, "the connection was closed after the 503"
    conn.close()
    assert metric(srv, "hookflow_backlog") is not None


def test_max_backlog_zero_keeps_the_window_as_the_bound(server):
    srv = server(workflows={"lane": wf("lane", "/lane", f"""\
  - id: work
    run: |
      {busy(0.3)}
""")}, args=["--max-queue", "3", "--max-backlog", "0", "--workers", "1"])
    got = [srv.post("/lane", {"n": i}).status for i in range(6)]
    assert got[:3] == [202] * 3 and 503 in got, got
    assert on_disk(srv) == 0
