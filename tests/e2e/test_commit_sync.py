"""A 2xx follows its commit's fsync (CONTRACT.md: "A 2xx means the event is on
disk"; README, "What survives what"): with --sync full SQLite fdatasyncs the
WAL inside the writer's COMMIT (engine/store_writer.c, store_sqlite.c), and
only then is a request answered. A power cut cannot be made in a test, so
this one watches the system calls instead: the server runs under strace, and
for every request, between reading it and writing its 202 there must be an
fdatasync of the state database's WAL that began after the request was read
and returned 0 before the answer was written. The same holds for the
transactional outbox (README, "Exactly once, at least once": an emit is
committed with its step's result): a delivery is sent only after an fsync
that began once the step had done its last call out. And for the data
database that `db.*` writes (README, "--data-sync"): with `full` each
`db.exec` is fsynced before the step goes on, with `normal` (the default)
none is.

The requests go one at a time to a workflow whose `if:` is false (the event
is stored, no run is made), so that no other commit's sync can stand in for
the request's own. With --sync normal there is no fdatasync on that path at
all (the same trace shows none), which is what tells this test's parsing
from one that would pass anything.

strace attaches to the running server (ptrace; CI runs as root) and is
stopped by its PID; every wait is bounded, no timing asserted."""
import re
import shutil
import signal
import subprocess

import pytest

from conftest import wait_for

# On PostgreSQL the fsync is the server's, in another process.
pytestmark = pytest.mark.sqlite_only("the SQLite state file's WAL and its fsync")

WF = """\
name: c
on:
  webhook:
    path: /c
if: event.body.run == true
steps:
  - id: s
    run: |
      return 1
"""

LINE = re.compile(r"^(\d+)\s+[\d.]+\s+(.*)$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>")
START = re.compile(r"^(\w+)\((\d+)<([^>]*)>")


def parse(text):
    """The trace's syscalls in the order strace saw them, as dicts: name,
    fd, path (strace -y), the line's text, the index where it began and
    where it returned (strace splits a call that another thread's call
    interrupts into '<unfinished ...>' and '<... NAME resumed>')."""
    calls, pending = [], {}
    for i, raw in enumerate(text.splitlines()):
        m = LINE.match(raw)
        if not m:
            continue
        pid, rest = m.group(1), m.group(2)
        r = RESUMED.match(rest)
        if r:
            c = pending.pop(pid, None)
            if c:
                c["end"], c["text"] = i, c["text"] + rest
            continue
        s = START.match(rest)
        if not s:
            continue
        c = {"name": s.group(1), "fd": int(s.group(2)), "path": s.group(3),
             "text": rest, "begin": i, "end": i}
        calls.append(c)
        if rest.endswith("<unfinished ...>"):
            pending[pid] = c
    return calls


def wal_syncs(calls, wal="hookflow.db-wal"):
    """The fsyncs of the state database's WAL (or another file's) that
    returned 0."""
    return [c for c in calls if c["name"] in ("fdatasync", "fsync")
            and c["path"].endswith(wal) and re.search(r"= 0\s*$", c["text"])]


def answered_requests(calls, marker):
    """[(index where request `marker=N` was read, index where its 202 began
    to be written)] for each request, matched on its socket."""
    read_at, out = {}, []
    for c in calls:
        if c["name"] in ("recvfrom", "read") and f"POST /c?{marker}=" in c["text"]:
            read_at[c["fd"]] = c["end"]
        elif (c["name"] in ("sendmsg", "sendto", "writev", "write")
              and "HTTP/1.1 202" in c["text"] and c["fd"] in read_at):
            out.append((read_at.pop(c["fd"]), c["begin"]))
    return out


def traced(srv, tmp_path, n, marker, send=None):
    """Sends n requests one at a time to srv under strace (send(i) instead
    when given); returns the parsed trace and the events' ids. Skips where
    ptrace is not permitted."""
    if not shutil.which("strace"):
        pytest.fail("strace is not installed (.ci/deps --test installs it)")
    log = tmp_path / f"strace-{marker}.txt"
    st = subprocess.Popen(
        ["strace", "-f", "-qq", "-ttt", "-y", "-s", "64", "-o", str(log),
         "-e", "trace=recvfrom,read,sendmsg,sendto,writev,write,pwrite64,"
         "fdatasync,fsync",
         "-p", str(srv.proc.pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Attached once a probe's answer shows in the trace.
        def attached():
            if st.poll() is not None:
                err = st.stderr.read()
                if "Operation not permitted" in err:
                    pytest.skip("ptrace is not permitted here: " + err.strip())
                raise AssertionError("strace exited: " + err)
            srv.get("/healthz")
            return log.exists() and "HTTP/1.1 200" in log.read_text()
        wait_for(attached, 30, what="strace to attach")
        ids = []
        for i in range(n):
            if send:
                send(i)
                continue
            r = srv.post(f"/c?{marker}={i}", {"run": False, "i": i})
            assert r.status == 202, r
            assert r.json()["runs"] == []
            ids.append(r.json()["event"])
    finally:
        st.send_signal(signal.SIGINT)  # detaches; the server goes on
        try:
            st.wait(30)
        except subprocess.TimeoutExpired:
            st.kill()
            st.wait(10)
    assert srv.proc.poll() is None, "the server did not survive strace"
    return parse(log.read_text()), ids


def test_each_answer_follows_an_fsync_of_the_wal_begun_after_its_request(
        server, tmp_path):
    srv = server(workflows={"c": WF}, args=["--sync", "full"])
    calls, ids = traced(srv, tmp_path, 20, "full")
    pairs = answered_requests(calls, "full")
    assert len(pairs) == 20, pairs
    syncs = wal_syncs(calls)
    for read, answer in pairs:
        assert any(read < s["begin"] and s["end"] < answer for s in syncs), (
            "a 202 was written with no fsync of the WAL since its request "
            f"was read (trace lines {read}..{answer})")
    # Each event is stored, its workflow skipped.
    for ev in ids:
        r = srv.api("GET", f"/api/events/{ev}")
        assert r.status == 200, r
        assert r.json()["runs"] == [] and r.json()["skipped"], r.json()


def test_with_sync_normal_no_fsync_stands_between(server, tmp_path):
    srv = server(workflows={"c": WF}, args=["--sync", "normal"])
    calls, _ = traced(srv, tmp_path, 5, "normal")
    pairs = answered_requests(calls, "normal")
    assert len(pairs) == 5, pairs
    syncs = wal_syncs(calls)
    assert not any(read < s["begin"] and s["end"] < answer
                   for read, answer in pairs for s in syncs)


EMIT = """\
name: e
on:
  webhook:
    path: /e
steps:
  - id: s
    run: |
      local b = event.body
      local r = http.get(b.probe, { timeout = 30 })
      return webhook.emit(b.hook, { status = r.status })
"""


def test_a_delivery_is_sent_only_after_its_steps_commit_is_on_disk(
        server, receiver, tmp_path):
    # The receiver answers after 0.2 s: the run's own earlier commits (its
    # "started" write) are on disk by the time the step's call returns, so
    # only the step's result can be synced between that and the delivery.
    receiver.delay = 0.2
    srv = server(workflows={"e": EMIT}, args=["--sync", "full"])

    def send(i):
        r = srv.post("/e", {"probe": f"{receiver.url}/probe/{i}",
                            "hook": f"{receiver.url}/hook/{i}"})
        assert r.status == 202, r
        run = srv.wait_run(r.json()["runs"][0], timeout=30)
        assert run["status"] == "succeeded", run
        did = run["steps"][0]["output"]
        wait_for(lambda: srv.api("GET", f"/api/deliveries/{did}").json()
                 ["status"] == "delivered", 30, what=f"delivery {did}")

    calls, _ = traced(srv, tmp_path, 4, "e", send)
    syncs = wal_syncs(calls)
    for i in range(4):
        probe = next(c for c in calls if c["name"] in ("sendto", "write")
                     and f"GET /probe/{i} " in c["text"])
        # The step's call returned: its answer read on the same socket.
        back = next(c for c in calls if c["begin"] > probe["end"]
                    and c["fd"] == probe["fd"]
                    and c["name"] in ("recvfrom", "read")
                    and "HTTP/1.1 200" in c["text"])
        hook = next(c for c in calls if c["name"] in ("sendto", "write")
                    and f"POST /hook/{i} " in c["text"])
        assert any(back["end"] < s["begin"] and s["end"] < hook["begin"]
                   for s in syncs), (
            f"delivery {i} was sent with no fsync of the WAL since its "
            f"step's call returned (trace lines {back['end']}..{hook['begin']})")


DATA = """\
name: d
on:
  webhook:
    path: /d
steps:
  - id: s
    run: |
      db.exec("CREATE TABLE IF NOT EXISTS t(x INTEGER)")
      db.exec("INSERT INTO t(x) VALUES (?)", event.body.i)
      return http.get(event.body.probe, { timeout = 30 }).status
"""


@pytest.mark.sqlite_data_only("the SQLite --data file's WAL and its fsync")
@pytest.mark.parametrize("data_sync", ["full", "normal"])
def test_data_sync_full_syncs_each_db_exec_before_the_step_goes_on(
        server, receiver, tmp_path, data_sync):
    srv = server(workflows={"d": DATA}, args=["--data-sync", data_sync])

    def send(i):
        r = srv.post("/d", {"i": i, "probe": f"{receiver.url}/probe/{i}"})
        assert r.status == 202, r
        run = srv.wait_run(r.json()["runs"][0], timeout=30)
        assert run["status"] == "succeeded", run

    calls, _ = traced(srv, tmp_path, 4, "d" + data_sync, send)
    syncs = wal_syncs(calls, "data.db-wal")
    synced = 0
    for i in range(4):
        probe = next(c for c in calls if c["name"] in ("sendto", "write")
                     and f"GET /probe/{i} " in c["text"])
        # The INSERT's frames: the last write to the data WAL before it.
        insert = [c for c in calls if c["name"] == "pwrite64"
                  and c["path"].endswith("data.db-wal")
                  and c["end"] < probe["begin"]][-1]
        synced += any(insert["end"] < s["begin"] and s["end"] < probe["begin"]
                      for s in syncs)
    assert synced == (4 if data_sync == "full" else 0), synced
