"""End-to-end tests for a state database that cannot write, and for /healthz
(CONTRACT.md section 8: "When the state database cannot write", "/healthz";
issue 11, findings 3 and 8).

The state database lives on a small tmpfs that each test mounts itself (CI runs
as root; elsewhere the tests are skipped, saying why) and fills with a filler
file at the moment it chooses: while a delivery's attempt is at the receiver,
and while a step's http call is. The receivers count what they get: a delivery
is never sent more often than its attempts, a step whose result could not be
stored runs again only once the database writes, as a later attempt.

The stuck-worker test stops the only worker thread with ptrace (only that
thread: the HTTP threads go on answering) while its step waits on a receiver,
past the step's deadline; it is skipped where ptrace is not permitted.

Every wait is bounded; no test asserts a timing."""
import contextlib
import ctypes
import errno
import http.server
import os
import pathlib
import socketserver
import subprocess
import textwrap
import threading
import time

import pytest

from conftest import wait_for

# Each test puts the SQLite state file on a small tmpfs and fills it.
pytestmark = pytest.mark.sqlite_only("a full disk under the SQLite state file")

FULL = "state database cannot write: database or disk is full"


# --- a tmpfs for the state database ----------------------------------------

@pytest.fixture
def tmpfs(tmp_path):
    """Mounts a 4 MiB tmpfs on a fresh directory; unmounts it afterwards."""
    d = tmp_path / "tmpfs"
    d.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs these as root)")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs",
                        str(d)], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        pytest.skip("mount is not permitted here: " + p.stderr.strip())
    try:
        yield d
    finally:
        # The server is killed by its own fixture, which was set up later
        # and so is torn down first; a lazy unmount covers the rest.
        subprocess.run(["umount", "-l", str(d)], capture_output=True,
                       timeout=30)


def fill(d):
    """Fills the file system of d with a filler file (to ENOSPC)."""
    fd = os.open(d / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 16, 4096, 1):
            for _ in range(100000):  # bounded: 4 MiB at most
                try:
                    os.write(fd, b"\0" * size)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def free(d):
    (d / "filler").unlink(missing_ok=True)


# --- a receiver that runs a callback ---------------------------------------

class Receiver:
    """A local HTTP server: `on(req)` (req: method, path, headers, body) runs
    before each answer and returns (status, body); every request is kept."""

    def __init__(self, on):
        self.requests = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                req = {"method": self.command, "path": self.path,
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": self.rfile.read(n) if n else b""}
                with receiver.lock:
                    receiver.requests.append(req)
                status, out = on(req)
                out = out.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the caller gave up (a timeout)

            do_GET = do_POST

        class Srv(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Srv(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def got(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def receiving(on):
    r = Receiver(on)
    try:
        yield r
    finally:
        r.close()


# --- helpers -----------------------------------------------------------------

def workflow(name, lua, step_extra=""):
    body = textwrap.indent(textwrap.dedent(lua).strip(), " " * 6)
    return (f"name: {name}\non:\n  webhook:\n    path: /{name}\n"
            f"steps:\n  - id: main\n{step_extra}    run: |\n{body}\n")


EMIT = workflow("emit", """
    return webhook.emit(event.body.url, {n = 1},
                        {attempts = 3, backoff = "200ms"})
""")

CALL = workflow("call", """
    local r = http.request{method = "POST", timeout = "10s",
                           url = event.body.url .. "?attempt=" .. run.attempt}
    return r.status
""")


def start_server(server, tmpfs, workflows, args=()):
    srv = server(workflows=workflows, args=args, start=False)
    srv.state = tmpfs / "state.db"
    return srv.start()


def health(srv):
    r = srv.get("/healthz")
    return r.status, r.body


def wait_health(srv, status, text):
    return wait_for(lambda: (lambda h: h if h[0] == status and text in h[1]
                             else None)(health(srv)), 20,
                    what=f"/healthz {status} {text!r}")


def check_while_full(srv, tmpfs):
    """/healthz and webhooks while the database cannot write."""
    status, body = wait_health(srv, 503, FULL)
    assert body.strip() == FULL, body  # one line, with the reason
    r = srv.post("/emit", {"url": "http://127.0.0.1:9/none"})
    assert r.status == 503, r
    assert int(r.headers["retry-after"]) >= 1, r.headers
    assert "database or disk is full" in r.json()["error"], r


def settle(count, want, seconds=3.0):
    """Watches count() stay at want for a while (the server has time to
    misbehave)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        n = count()
        assert n == want, f"{n} requests at the receiver, expected {want}"
        time.sleep(0.1)


# --- a full disk during a delivery -------------------------------------------

def test_full_disk_during_a_delivery_sends_no_more_than_attempts(
        tmpfs, server):
    full = threading.Event()

    def on(req):
        if not full.is_set():
            fill(tmpfs)  # the attempt's record cannot be stored
            full.set()
            return 500, "try again"
        return 200, "ok"

    with receiving(on) as rcv:
        srv = start_server(server, tmpfs, {"emit": EMIT})
        r = srv.post("/emit", {"url": rcv.url + "/d"})
        assert r.status == 202, r
        run = srv.wait_run(r.json()["runs"][0])
        assert run["status"] == "succeeded", run
        did = run["steps"][0]["output"]
        wait_for(full.is_set, 20, what="the first attempt")
        # Paused: the attempt is not sent again while its record cannot be
        # stored (the old outbox sent it thousands of times a second).
        settle(lambda: len(rcv.got()), 1)
        check_while_full(srv, tmpfs)
        free(tmpfs)
        wait_health(srv, 200, "ok")
        d = wait_for(lambda: (lambda d: d if d["status"] == "delivered"
                              else None)(srv.api(
                                  "GET", f"/api/deliveries/{did}").json()),
                     20, what="the delivery")
        posts = rcv.got()
        assert len(posts) <= 3, len(posts)
        assert d["attempts"] == len(posts) == 2, (d, len(posts))
    # A full disk is logged, not once per write or attempt.
    assert srv.stderr().count("state database cannot write") <= 2, srv.stderr()
    wait_for(lambda: "state database writes again" in srv.stderr(), 15,
             what="the log line")


# --- a full disk during a step --------------------------------------------

def test_full_disk_during_a_step_pauses_and_repeats_as_a_later_attempt(
        tmpfs, server):
    full = threading.Event()

    def on(req):
        if not full.is_set():
            fill(tmpfs)  # the step's result cannot be stored
            full.set()
        return 200, "ok"

    with receiving(on) as rcv:
        srv = start_server(server, tmpfs, {"call": CALL, "emit": EMIT})
        r = srv.post("/call", {"url": rcv.url + "/s"})
        assert r.status == 202, r
        run_id = r.json()["runs"][0]
        wait_for(full.is_set, 20, what="the step's call")
        # Paused: the step is not run again while its result cannot be
        # stored (it was, every second, as attempt 1 again).
        settle(lambda: len(rcv.got()), 1)
        check_while_full(srv, tmpfs)
        free(tmpfs)
        wait_health(srv, 200, "ok")
        run = srv.wait_run(run_id, timeout=20)
        assert run["status"] == "succeeded", run
        calls = [c["path"] for c in rcv.got()]
        assert calls[0] == "/s?attempt=1", calls
        # Any call made again says it may be a repeat.
        assert len(calls) >= 2, calls
        assert all(int(c.rsplit("=", 1)[1]) > 1 for c in calls[1:]), calls
        # Webhooks are taken again, and nothing acknowledged was lost.
        r = srv.post("/call", {"url": rcv.url + "/t"})
        assert r.status == 202, r
        assert srv.wait_run(r.json()["runs"][0])["status"] == "succeeded"
    srv.stop()
    srv.start()
    assert srv.run(run_id)["status"] == "succeeded"


# --- a worker stuck past its step's deadline ------------------------------

PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207
WALL = 0x40000000


class ThreadStop:
    """Stops one thread of another process with ptrace (the rest go on)."""

    def __init__(self, tid):
        self.tid = tid
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long,
                                     ctypes.c_void_p, ctypes.c_void_p]
        if self.libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
            pytest.skip("ptrace is not permitted here: "
                        + os.strerror(ctypes.get_errno()))
        self.libc.ptrace(PTRACE_INTERRUPT, tid, None, None)
        os.waitpid(tid, WALL)

    def resume(self):
        self.libc.ptrace(PTRACE_DETACH, self.tid, None, None)


def worker_tid(pid):
    for t in pathlib.Path(f"/proc/{pid}/task").iterdir():
        if (t / "comm").read_text().strip() == "hf-worker":
            return int(t.name)
    raise AssertionError("no hf-worker thread")


def test_healthz_is_503_while_the_only_worker_is_stuck(server):
    release = threading.Event()
    arrived = threading.Event()

    def on(req):
        arrived.set()
        release.wait(30)
        return 200, "late"

    slow = workflow("slow", """
        return http.request{method = "POST", url = event.body.url}.status
    """, "    timeout: 1s\n")
    with receiving(on) as rcv:
        srv = server(workflows={"slow": slow}, args=["--workers", "1"])
        assert health(srv) == (200, "ok\n")
        r = srv.post("/slow", {"url": rcv.url + "/hang"})
        assert r.status == 202, r
        wait_for(arrived.is_set, 20, what="the step's call")
        stop = ThreadStop(worker_tid(srv.proc.pid))
        try:
            status, body = wait_health(srv, 503, "stuck")
            assert body.count("\n") == 1 and "'main'" in body, body
            assert r.json()["runs"][0] in body, body
        finally:
            stop.resume()
            release.set()
        wait_health(srv, 200, "ok")
        run = srv.wait_run(r.json()["runs"][0])
        assert run["status"] == "failed", run
