"""Shared fixtures for the end-to-end tests: the real `hookflow serve` on
127.0.0.1 port 0 with temporary databases, a local receiver for outbound calls,
and small HTTP helpers. Standard library only; every wait is bounded."""
import http.client
import http.server
import json
import os
import pathlib
import re
import signal
import socketserver
import subprocess
import textwrap
import threading
import time

import pytest

ROOT = pathlib.Path(os.environ.get(
    "HF_SOURCE_ROOT", pathlib.Path(__file__).resolve().parents[2]))
BIN = os.environ.get("HOOKFLOW_BIN", str(ROOT / "build" / "hookflow"))

# HF_TEST_STATE=postgres runs the suite against PostgreSQL: one throwaway
# cluster for the session (pgcluster.py), two fresh databases for every
# Server (its `state` and its `data` are then the databases' URLs), and the
# tests marked `sqlite_only` (about SQLite files) skipped.
PG_MODE = os.environ.get("HF_TEST_STATE") == "postgres"
_pg = {"cluster": None, "n": 0}


def pg_cluster():
    """The session's PostgreSQL cluster, started on first use."""
    if _pg["cluster"] is None:
        from pgcluster import PgCluster
        _pg["cluster"] = PgCluster().start()
    return _pg["cluster"]


def pg_state_url():
    """A postgres:// URL of a new, empty database."""
    _pg["n"] += 1
    return pg_cluster().url(f"hf_{os.getpid()}_{_pg['n']}")


def pg_new_urls(n):
    """postgres:// URLs of n new, empty databases, made by one psql (a
    Server's two: most of its start's cost). The names are new in the
    session's own cluster, so nothing needs dropping first."""
    c = pg_cluster()
    names = []
    for _ in range(n):
        _pg["n"] += 1
        names.append(f"hf_{os.getpid()}_{_pg['n']}")
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(c.dir),
           "-p", str(c.port), "-U", "postgres", "-d", "postgres"]
    for name in names:
        cmd += ["-c", f'CREATE DATABASE "{name}"']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr}")
    return [f"postgres://postgres@{c.listen}:{c.port}/{name}" for name in names]


def _pg_lit(v):
    """v as an SQL literal for psql (the tests' own values, never users')."""
    if v is None:
        return "NULL"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def pg_query(url, sql, *args):
    """Rows of sql (SQLite's `?` placeholders) on the PostgreSQL database of
    url, as tuples of Python values: what sqlite3's fetchall() returns."""
    parts = sql.split("?")
    assert len(parts) == len(args) + 1, (sql, args)
    text = parts[0] + "".join(_pg_lit(a) + p for a, p in zip(args, parts[1:]))
    out = pg_cluster().psql(
        f"SELECT coalesce(json_agg(t), '[]') FROM ({text}) t",
        db=url.rsplit("/", 1)[1])
    # each row's columns in order, duplicate names (count(*), count(x)) kept
    rows = json.loads(out, object_pairs_hook=_Pairs)
    return [tuple(_unpair(v) for _, v in row) for row in rows]


class _Pairs(list):
    """A JSON object as the list of its (name, value) pairs."""


def _unpair(v):
    if isinstance(v, _Pairs):
        return {k: _unpair(x) for k, x in v}
    if isinstance(v, list):
        return [_unpair(x) for x in v]
    return v


def state_rows(state, sql, *args):
    """Rows of sql (with `?` placeholders) on a server's state database,
    SQLite file or PostgreSQL URL alike, as sqlite3's fetchall() gives."""
    if str(state).startswith(("postgres://", "postgresql://")):
        return pg_query(str(state), sql, *args)
    import sqlite3
    con = sqlite3.connect(str(state), timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


# Take a SQLite state file of today's schema back to version 5's shape
# (steps keyed by (run_id, idx), no chains), and to version 4's (runs_event
# for runs_late, no runs.spare), for tests that migrate a file of an older
# version: each takes its own version's changes away after these.
SQLITE_BACK_TO_5 = """
    CREATE TABLE steps_v5(
      run_id TEXT NOT NULL, idx INTEGER NOT NULL, step_id TEXT NOT NULL,
      status TEXT NOT NULL, output TEXT, error TEXT, logs TEXT,
      attempts INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,
      PRIMARY KEY(run_id, idx)) WITHOUT ROWID;
    INSERT OR REPLACE INTO steps_v5 SELECT r.id, s.idx, s.step_id, s.status,
      s.output, s.error, s.logs, s.attempts, s.started_at, s.finished_at
      FROM steps s JOIN runs r ON r.rid = s.run ORDER BY s.sid;
    DROP TABLE steps;
    ALTER TABLE steps_v5 RENAME TO steps;
    ALTER TABLE runs DROP COLUMN steps;
"""
SQLITE_BACK_TO_4 = SQLITE_BACK_TO_5 + """
    DROP INDEX runs_late;
    ALTER TABLE runs DROP COLUMN spare;
    CREATE INDEX runs_event ON runs(event);
"""


def sqlite_back_to(srv, version, script):
    """Takes the stopped server's SQLite state file back to schema
    `version` with script (SQLITE_BACK_TO_5, ...), as an older hookflow
    left it."""
    import sqlite3
    con = sqlite3.connect(str(srv.state))
    try:
        con.executescript(script + "UPDATE meta SET value = '%d' WHERE"
                          " key = 'schema_version';" % version)
        con.commit()
    finally:
        con.close()


def is_pg(db):
    """Whether db (a Server's state or data) is a PostgreSQL URL."""
    return str(db).startswith(("postgres://", "postgresql://"))


def data_rows(data, sql, *args):
    """Rows of sql (with `?` placeholders) on a server's --data database
    (srv.data: SQLite file or PostgreSQL URL), as sqlite3's fetchall()."""
    return state_rows(data, sql, *args)


def data_exec(data, sql, *args):
    """Runs one statement (with `?` placeholders) on a server's --data
    database, SQLite file or PostgreSQL URL alike, and commits it."""
    if is_pg(data):
        parts = sql.split("?")
        assert len(parts) == len(args) + 1, (sql, args)
        text = parts[0] + "".join(_pg_lit(a) + p for a, p in zip(args, parts[1:]))
        pg_cluster().psql(text, db=str(data).rsplit("/", 1)[1])
        return
    import sqlite3
    con = sqlite3.connect(str(data), timeout=10)
    try:
        con.execute(sql, args)
        con.commit()
    finally:
        con.close()


def data_tables(data, *ddl):
    """Creates tables in a server's --data database before it starts, from
    portable DDL (typed columns). `INTEGER PRIMARY KEY` (SQLite's rowid, given
    on INSERT) is BIGSERIAL PRIMARY KEY on PostgreSQL; an SQLite file is put
    in WAL mode so that the tests' readers never block the server."""
    if is_pg(data):
        for sql in ddl:
            data_exec(data, sql.replace("INTEGER PRIMARY KEY",
                                        "BIGSERIAL PRIMARY KEY"))
        return
    import sqlite3
    con = sqlite3.connect(str(data))
    con.execute("PRAGMA journal_mode=WAL")
    for sql in ddl:
        con.execute(sql)
    con.commit()
    con.close()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sqlite_only(reason): about the SQLite state file; "
        "skipped with HF_TEST_STATE=postgres")
    config.addinivalue_line(
        "markers", "sqlite_data_only(reason): about an SQLite --data file or "
        "SQLite's SQL; skipped with HF_TEST_STATE=postgres")


def pytest_collection_modifyitems(config, items):
    if not PG_MODE:
        return
    from pgcluster import available
    why = available()
    for item in items:
        if why:
            item.add_marker(pytest.mark.skip(
                reason=f"HF_TEST_STATE=postgres: {why}"))
            continue
        m = item.get_closest_marker("sqlite_only")
        if m:
            about = m.args[0] if m.args else "about the SQLite state file"
            item.add_marker(pytest.mark.skip(
                reason=f"SQLite only (HF_TEST_STATE=postgres): {about}"))
            continue
        m = item.get_closest_marker("sqlite_data_only")
        if m:
            about = m.args[0] if m.args else "about an SQLite --data file"
            item.add_marker(pytest.mark.skip(
                reason=f"SQLite data only (HF_TEST_STATE=postgres): {about}"))


def pytest_sessionfinish(session, exitstatus):
    if _pg["cluster"] is not None:
        _pg["cluster"].stop()
        _pg["cluster"] = None


# A report of AddressSanitizer, LeakSanitizer or UndefinedBehaviorSanitizer
# on a server's stderr (the sanitizer build of CI's second pass).
SANITIZER_REPORT = re.compile(
    r"ERROR: (Address|Leak)Sanitizer|runtime error: |SUMMARY: \w+Sanitizer")


def wait_for(cond, timeout=10.0, interval=0.02, what="condition"):
    """Polls cond() until it returns a truthy value or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.body[:200]!r}>"


def request(port, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        elif isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()},
                        data.decode("utf-8", "replace"))
    finally:
        conn.close()


class Server:
    """A running `hookflow serve`. Workflows and scripts live in tmp dirs."""

    def __init__(self, tmp, workflows=None, scripts=None, args=(), env=None,
                 token="test-token"):
        self.dir = pathlib.Path(tmp)
        self.workflows = self.dir / "workflows"
        self.scripts = self.dir / "scripts"
        self.workflows.mkdir(exist_ok=True)
        self.scripts.mkdir(exist_ok=True)
        for name, text in (workflows or {}).items():
            self.write_workflow(name, text)
        for name, text in (scripts or {}).items():
            (self.scripts / name).write_text(textwrap.dedent(text))
        if PG_MODE:
            self.state, self.data = pg_new_urls(2)
        else:
            self.state = self.dir / "hookflow.db"
            self.data = self.dir / "data.db"
        self.token = token
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.port = None
        self.stderr_lines = []
        # Sanitizer reports of every life of this server (a restart starts
        # stderr_lines over): the fixture fails the test on any.
        self.sanitizer_reports = []

    def write_workflow(self, name, text):
        if not name.endswith((".yml", ".yaml")):
            name += ".yml"
        (self.workflows / name).write_text(textwrap.dedent(text))

    def start(self, timeout=15):
        cmd = [BIN, "serve", "--listen", "127.0.0.1:0",
               "--workflows", str(self.workflows), "--scripts", str(self.scripts),
               "--state", str(self.state), "--data", str(self.data),
               "--workers", "2"]
        if self.token:
            cmd += ["--admin-token", self.token]
        cmd += self.args
        self.stderr_lines = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=self.env, text=True)
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.stderr_lines.append(line.rstrip("\n"))
                if SANITIZER_REPORT.search(line):
                    self.sanitizer_reports.append(line.rstrip("\n"))
                m = re.search(r"listening on http://[\d.]+:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        self.pump = threading.Thread(target=pump, daemon=True)
        self.pump.start()
        ready.wait(timeout)
        if not self.port:
            self.kill()
            raise AssertionError("server did not start:\n" + self.stderr())
        return self

    def stderr(self):
        return "\n".join(self.stderr_lines)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("server did not stop in time")
        self._drain_stderr()
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._drain_stderr()

    def _drain_stderr(self):
        """Once the server has exited, waits (bounded) for the thread that
        reads its stderr to reach the end, so that stderr() holds its last
        lines."""
        pump = getattr(self, "pump", None)
        if self.proc and self.proc.poll() is not None and pump:
            pump.join(10)

    def restart(self):
        self.stop()
        return self.start()

    # HTTP helpers
    def request(self, method, path, body=None, headers=None, timeout=10):
        return request(self.port, method, path, body, headers, timeout)

    def post(self, path, body=None, headers=None, timeout=10):
        return self.request("POST", path, body, headers, timeout)

    def get(self, path, headers=None):
        return self.request("GET", path, None, headers)

    def api(self, method, path, body=None):
        r = self.request(method, path, body,
                         {"Authorization": f"Bearer {self.token}"})
        return r

    def run(self, run_id):
        r = self.api("GET", f"/api/runs/{run_id}")
        assert r.status == 200, r
        return r.json()

    def wait_run(self, run_id, timeout=15, statuses=("succeeded", "failed")):
        return wait_for(lambda: (lambda r: r if r["status"] in statuses else None)(
            self.run(run_id)), timeout, what=f"run {run_id} to finish")

    def cli(self, *args, timeout=30, check=False):
        p = subprocess.run([BIN, *args], capture_output=True, text=True,
                           timeout=timeout, env=self.env, stdin=subprocess.DEVNULL)
        if check:
            assert p.returncode == 0, p.stderr
        return p


@pytest.fixture
def server(tmp_path):
    """Factory: server(workflows={...}, scripts={...}, args=[...]) -> started Server."""
    started = []

    def make(workflows=None, scripts=None, args=(), env=None, start=True, **kw):
        d = tmp_path / f"srv{len(started)}"
        d.mkdir()
        s = Server(d, workflows, scripts, args, env, **kw)
        started.append(s)
        return s.start() if start else s

    yield make
    # A clean stop where the test left the server running, so that the
    # sanitizer build reports leaks (a server still busy after 5 s is killed);
    # then any sanitizer report of any of its lives fails the test.
    for s in started:
        if s.proc and s.proc.poll() is None:
            s.proc.send_signal(signal.SIGTERM)
            try:
                s.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        s.kill()
        if getattr(s, "pump", None):
            s.pump.join(5)  # the last lines (a leak report) read
    reports = [r for s in started for r in s.sanitizer_reports]
    assert not reports, "sanitizer reports:\n" + "\n".join(reports)


class Receiver:
    """A local HTTP server recording every request. `responses` is a list of
    (status, headers, body) answered in order, then `default`."""

    def __init__(self):
        self.requests = []
        self.responses = []
        self.default = (200, {}, b"ok")
        self.delay = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with receiver.lock:
                    receiver.requests.append({
                        "method": self.command, "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body})
                    status, headers, out = (receiver.responses.pop(0)
                                            if receiver.responses else receiver.default)
                if receiver.delay:
                    time.sleep(receiver.delay)
                if isinstance(out, (dict, list)):
                    out = json.dumps(out).encode()
                    headers = {"Content-Type": "application/json", **headers}
                elif isinstance(out, str):
                    out = out.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        class Srv(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Srv(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
