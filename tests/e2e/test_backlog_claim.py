"""The disk backlog's claim (hf_backlog.h): on SQLite a run taken into memory
from the backlog is claimed in memory, its row marked by its own first write.
A SIGKILL during the drain loses no run and runs none twice at the same
run.attempt; runs that become unclaimed behind the rows already read (parked
runs woken, runs stored while a page is read) are still taken."""
import http.client
import json
import subprocess
import threading
from collections import defaultdict

from conftest import BIN, data_exec, data_tables, wait_for
from test_backlog import q

WORK = """\
name: work
on:
  webhook: { path: /work }
steps:
  - id: log
    run: |
      db.exec("INSERT INTO log(run_id, attempt) VALUES (?, ?)", run.id,
              run.attempt)
      local t0 = os.clock(); while os.clock() - t0 < 0.01 do end
      return 1
"""

SLEEPER = """\
name: sleeper
on:
  webhook: { path: /sleep }
steps:
  - id: nap
    sleep: 1s
  - id: log
    run: |
      db.exec("INSERT INTO log(run_id, attempt) VALUES (?, ?)", run.id,
              run.attempt)
      return 1
"""

PICKY = """\
name: picky
on:
  webhook: { path: /picky }
steps:
  - id: log
    run: |
      if event.body.n == 100 and not db.one("SELECT 1 AS ok FROM flag") then
        error("flag missing")
      end
      db.exec("INSERT INTO log(run_id, attempt) VALUES (?, ?)", run.id,
              run.attempt)
      local t0 = os.clock(); while os.clock() - t0 < 0.01 do end
      return 1
"""


def make(server, workflows, *args):
    srv = server(workflows=workflows, start=False,
                 args=["--max-queue", "10", "--workers", "2", *args])
    data_tables(srv.data, "CREATE TABLE log(id INTEGER PRIMARY KEY,"
                " run_id TEXT, attempt INTEGER)", "CREATE TABLE flag(x INTEGER)")
    return srv.start()


def send(srv, path, n, ids=None):
    """Posts n events on one keep-alive connection; the 202s' run ids."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    ids = [] if ids is None else ids
    try:
        for i in range(n):
            conn.request("POST", path, json.dumps({"n": i}),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            body = r.read()
            assert r.status == 202, (r.status, body)
            ids.extend(json.loads(body)["runs"])
    finally:
        conn.close()
    return ids


def logged(srv):
    return q(srv.data, "SELECT count(*) FROM log")[0][0]


def wait_all_succeeded(srv, ids, timeout=90):
    def done():
        rows = q(srv.state, "SELECT status, count(*) FROM runs GROUP BY 1")
        return dict(rows) == {"succeeded": len(ids)}
    wait_for(done, timeout=timeout, what="every run to succeed")


def assert_once_per_attempt(srv, ids):
    """Every run's step ran; a run's step ran again only at a later
    run.attempt (a repeat is marked)."""
    runs = defaultdict(list)
    for run_id, attempt in q(srv.data, "SELECT run_id, attempt FROM log"
                             " ORDER BY id"):
        runs[run_id].append(attempt)
    assert set(runs) == set(ids), (len(runs), len(ids))
    for run_id, attempts in runs.items():
        assert attempts[0] >= 1, (run_id, attempts)
        assert all(b > a for a, b in zip(attempts, attempts[1:])), \
            (run_id, attempts)


def test_sigkill_during_drain_each_run_once_repeats_marked(server):
    srv = make(server, {"work": WORK})
    ids = send(srv, "/work", 400)
    # killed mid-drain: some runs done, most still on disk, a page in memory
    wait_for(lambda: logged(srv) >= 40, timeout=60, what="the drain to start")
    srv.kill()
    srv.start()
    wait_all_succeeded(srv, ids)
    assert_once_per_attempt(srv, ids)
    # the next crash-free drain marks nothing as a repeat
    more = send(srv, "/work", 100)
    wait_all_succeeded(srv, ids + more)
    fresh = q(srv.data, "SELECT attempt FROM log WHERE run_id IN (%s)" %
              ",".join("?" * len(more)), *more)
    assert sorted(a for (a,) in fresh) == [1] * len(more)


def test_woken_runs_join_a_draining_backlog(server):
    """Parked runs woken while the backlog drains are behind the rows read
    already: they are taken all the same."""
    srv = make(server, {"work": WORK, "sleeper": SLEEPER})
    sleepers = send(srv, "/sleep", 5)
    ids = send(srv, "/work", 300)
    wait_all_succeeded(srv, sleepers + ids)
    assert_once_per_attempt(srv, sleepers + ids)


def test_concurrent_senders_during_a_drain(server):
    """Several connections post while the backlog drains: a run whose id was
    made before rows the loader read, committed after them, is taken too."""
    srv = make(server, {"work": WORK})
    ids = send(srv, "/work", 100)
    lists = [[] for _ in range(6)]
    errors = []

    def sender(out):
        try:
            send(srv, "/work", 60, out)
        except Exception as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=sender, args=(lst,)) for lst in lists]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for lst in lists:
        ids += lst
    assert len(ids) == 100 + 6 * 60
    wait_all_succeeded(srv, ids)
    assert_once_per_attempt(srv, ids)


def test_retried_run_behind_the_drained_backlog(server):
    """A run of the backlog that failed, retried once the backlog is drained
    (the rows read are past it), is taken again."""
    srv = make(server, {"picky": PICKY})
    ids = send(srv, "/picky", 200)
    failed = ids[100]

    def settled():
        rows = dict(q(srv.state, "SELECT status, count(*) FROM runs GROUP BY 1"))
        return rows == {"succeeded": 199, "failed": 1}
    wait_for(settled, timeout=90, what="the backlog to drain")
    assert srv.run(failed)["status"] == "failed"
    data_exec(srv.data, "INSERT INTO flag VALUES (1)")
    p = subprocess.run([BIN, "retry", failed, "--state", str(srv.state)],
                       capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    run = srv.wait_run(failed, timeout=30, statuses=("succeeded",))
    assert run["attempt"] == 2
    wait_all_succeeded(srv, ids)
    assert_once_per_attempt(srv, ids)
