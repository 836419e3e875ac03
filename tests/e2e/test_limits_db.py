"""End-to-end tests for contract section 8, "db.* cannot change the server"
(issue 11, finding 2 and the randomblob case of finding 6): PRAGMA limited to
read-only introspection, no ATTACH, settings that cannot leak to the next step,
and --max-value bounding one value (and SQLite's memory)."""
import json
import os
import subprocess

import pytest

from conftest import BIN

# A step that runs the SQL it is sent with db.one and returns the first row.
RUN_SQL = """\
name: sql
on:
  webhook:
    path: /sql
steps:
  - id: s
    run: |
      local row = db.one(event.body.sql)
      return { row = row }
"""

# Another workflow, writing and reading its own table, with a synchronous
# step that answers the webhook: it must keep working whatever `sql` did.
OTHER = """\
name: other
on:
  webhook:
    path: /other
steps:
  - id: w
    run: |
      db.exec("CREATE TABLE IF NOT EXISTS other(v TEXT)")
      db.exec("INSERT INTO other(v) VALUES (?)", event.id)
      return { n = db.one("SELECT count(*) AS n FROM other").n }
"""

INTROSPECTION_MSG = "is not allowed (read-only introspection pragmas only)"


def start(server, args=()):
    # Under AddressSanitizer freed blocks wait in a quarantine (256 MB by
    # default) before they are reused, which would count freed 60 MB values
    # in the peak RSS that the tests below bound. Set whether or not
    # ASAN_OPTIONS was (`meson test` run by hand on the ASan build); a
    # build without ASan ignores it.
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = dict(os.environ, ASAN_OPTIONS=(asan + ":" if asan else "")
               + "quarantine_size_mb=0")
    return server(workflows={"sql": RUN_SQL, "other": OTHER},
                  args=["--workers", "1", *args], env=env)


def fire(srv, path, body):
    r = srv.post(path, body)
    assert r.status == 202, (r, srv.stderr())
    rid = r.json()["runs"][0]
    run = srv.wait_run(rid, timeout=20)
    return run, run["steps"][0]


def run_sql(srv, sql):
    return fire(srv, "/sql", {"sql": sql})


def assert_server_fine(srv):
    """Webhooks are accepted, other workflows' steps work, the API lists runs."""
    run, step = fire(srv, "/other", {})
    assert run["status"] == "succeeded", (run, srv.stderr())
    assert step["output"]["n"] >= 1
    r = srv.api("GET", "/api/runs?limit=5")
    assert r.status == 200, r
    assert len(r.json()["runs"]) >= 1, r


def assert_refused(srv, sql, message):
    run, step = run_sql(srv, sql)
    assert run["status"] == "failed", run
    assert message in step["error"], step
    return step


# Every writable setting a step could reach: process-wide ones (heap limits,
# threads), connection ones (query_only, synchronous, journal/locking modes,
# caches, temp store) and file ones (user_version, page_size...).
DANGEROUS = [
    ("hard_heap_limit", "PRAGMA hard_heap_limit=100000"),
    ("soft_heap_limit", "PRAGMA soft_heap_limit=1"),
    ("threads", "PRAGMA threads=8"),
    ("mmap_size", "PRAGMA mmap_size=1000000000"),
    ("journal_mode", "PRAGMA journal_mode=DELETE"),
    ("locking_mode", "PRAGMA locking_mode=EXCLUSIVE"),
    ("wal_autocheckpoint", "PRAGMA wal_autocheckpoint=0"),
    ("cache_size", "PRAGMA cache_size=-1000000"),
    ("query_only", "PRAGMA query_only=1"),
    ("synchronous", "PRAGMA synchronous=OFF"),
    ("temp_store", "PRAGMA temp_store=MEMORY"),
    ("writable_schema", "PRAGMA writable_schema=ON"),
    ("foreign_keys", "PRAGMA foreign_keys=ON"),
    ("recursive_triggers", "PRAGMA main.recursive_triggers=1"),
    ("user_version", "PRAGMA user_version=7"),
    ("shrink_memory", "PRAGMA shrink_memory"),
    ("wal_checkpoint", "PRAGMA wal_checkpoint(TRUNCATE)"),
    ("optimize", "PRAGMA optimize"),
    # through a table-valued pragma function (these take no value)
    ("hard_heap_limit", "SELECT * FROM pragma_hard_heap_limit"),
    ("query_only", "SELECT * FROM main.pragma_query_only"),
]


@pytest.mark.sqlite_data_only("SQLite's PRAGMAs on the --data file (test_data_pg.py has PostgreSQL's SET and friends)")
def test_dangerous_pragmas_refused_and_server_keeps_working(server):
    srv = start(server)
    for name, sql in DANGEROUS:
        assert_refused(srv, sql, f"PRAGMA {name} {INTROSPECTION_MSG}")
        assert_server_fine(srv)
    # reading a setting is refused alike: only introspection is allowed
    assert_refused(srv, "PRAGMA hard_heap_limit",
                   f"db.one: PRAGMA hard_heap_limit {INTROSPECTION_MSG}")
    assert_server_fine(srv)
    # and after a restart nothing re-runs a refused step into trouble
    srv.restart()
    assert_server_fine(srv)
    assert len(srv.api("GET", "/api/runs?limit=100").json()["runs"]) >= 2 * len(DANGEROUS)


@pytest.mark.sqlite_data_only("SQLite's PRAGMAs, TEMP objects and WAL mode of the --data file (test_data_pg.py: DISCARD ALL between steps)")
def test_settings_do_not_leak_to_another_workflow(server, tmp_path):
    # one worker: every step shares one data connection
    srv = start(server, ["--data-sync", "full"])
    assert_server_fine(srv)
    for sql in ("PRAGMA query_only=1", "PRAGMA synchronous=OFF",
                "PRAGMA locking_mode=EXCLUSIVE"):
        assert_refused(srv, sql, INTROSPECTION_MSG)
        assert_server_fine(srv)
    # temporary objects live on the connection, not in the file: refused
    for sql in ("CREATE TEMP TABLE t(x)",
                "CREATE TEMP TRIGGER tr BEFORE INSERT ON other "
                "BEGIN SELECT RAISE(ABORT, 'hijacked'); END",
                "CREATE TEMP VIEW v AS SELECT 1"):
        assert_refused(srv, sql, "db.one: temporary tables, views and "
                       "triggers are not allowed")
        assert_server_fine(srv)
    # a transaction left open by a step is rolled back, not inherited
    assert_refused(srv, "BEGIN EXCLUSIVE", "left a database transaction open")
    assert_server_fine(srv)
    # the data database is still where the server put it: WAL mode
    import sqlite3
    con = sqlite3.connect(srv.data)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT count(*) FROM other").fetchone()[0] >= 7
    finally:
        con.close()


@pytest.mark.sqlite_data_only("SQLite's ATTACH, VACUUM INTO and load_extension")
def test_attach_and_extensions_refused(server, tmp_path):
    srv = start(server)
    other = tmp_path / "elsewhere.db"
    assert_refused(srv, f"ATTACH '{other}' AS x",
                   "db.one: ATTACH (or VACUUM) is not allowed (db.* reaches "
                   "the --data database only)")
    assert_refused(srv, "DETACH x", "db.one: DETACH is not allowed")
    assert_refused(srv, f"VACUUM INTO '{other}'",
                   "db.one: ATTACH (or VACUUM) is not allowed")
    assert not other.exists()
    assert_refused(srv, "SELECT load_extension('/nonexistent/lib')",
                   "db.one: load_extension is not allowed")
    assert_server_fine(srv)


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.mark.sqlite_data_only("SQLite's randomblob/zeroblob and its memory per call")
def test_randomblob_capped_by_max_value(server):
    srv = start(server)
    step = assert_refused(
        srv, "SELECT length(randomblob(400000000)) AS n",
        "db.one: value larger than --max-value (64MiB)")
    # the same through zeroblob, and a value grown past the cap by SQL
    assert_refused(srv, "SELECT length(zeroblob(400000000)) AS n",
                   "value larger than --max-value (64MiB)")
    assert_refused(srv, "SELECT length(hex(randomblob(40000000))) AS n",
                   "value larger than --max-value (64MiB)")
    assert_server_fine(srv)
    # VmHWM is the peak resident size: the 400 MB never existed
    peak = vm_kib(srv.proc.pid, "VmHWM")
    assert peak < 200 * 1024, f"peak RSS {peak} KiB: {step}"
    # several values under the cap in one row, or one call: SQLite's memory
    # for one call is bounded too (2 x --max-value + 16 MiB)
    six = ", ".join(f"randomblob(60000000) AS c{i}" for i in range(6))
    for sql in (f"SELECT {six}",
                "SELECT max(" + ", ".join(["randomblob(60000000)"] * 6) + ") AS m"):
        assert_refused(srv, sql, "db.one: more than 144MiB of SQLite memory "
                       "in one call (2 x --max-value + 16 MiB)")
    assert_server_fine(srv)
    # one large value at a time is fine: each is freed before the next
    run, step = run_sql(srv, "SELECT " + ", ".join(
        f"length(randomblob(60000000)) AS c{i}" for i in range(6)))
    assert run["status"] == "succeeded", run
    assert step["output"]["row"]["c5"] == 60000000
    peak = vm_kib(srv.proc.pid, "VmHWM")
    assert peak < 200 * 1024, f"peak RSS {peak} KiB"
    # values under the cap still work
    run, step = run_sql(srv, "SELECT length(randomblob(60000000)) AS n")
    assert run["status"] == "succeeded", run
    assert step["output"]["row"]["n"] == 60000000
    run, step = run_sql(srv, "SELECT length(randomblob(1000000)) AS n")
    assert run["status"] == "succeeded", run
    assert step["output"]["row"]["n"] == 1000000


BIG = """\
name: big
on:
  webhook:
    path: /big
steps:
  - id: s
    run: |
      db.exec("CREATE TABLE IF NOT EXISTS big(a, b)")
      local ok, err = pcall(db.exec, "INSERT INTO big VALUES (?, 1)",
                            string.rep("x", 2000000))
      local ok2, err2 = pcall(db.exec,
        "INSERT INTO big VALUES (randomblob(700000), randomblob(700000))")
      return { bind = err, row = err2 }
"""


@pytest.mark.sqlite_data_only("SQLite's randomblob; test_data_pg.py checks --max-value on PostgreSQL")
def test_max_value_option(server):
    srv = server(workflows={"sql": RUN_SQL, "other": OTHER, "big": BIG},
                 args=["--workers", "1", "--max-value", "1MiB"])
    assert_refused(srv, "SELECT length(randomblob(2000000)) AS n",
                   "db.one: value larger than --max-value (1MiB)")
    run, step = run_sql(srv, "SELECT length(randomblob(500000)) AS n")
    assert run["status"] == "succeeded", run
    # a bound value over the cap, and a stored row over it
    run, step = fire(srv, "/big", {})
    assert run["status"] == "succeeded", run
    out = step["output"]
    assert "db.exec: value larger than --max-value (1MiB)" in out["bind"], out
    assert "db.exec: value larger than --max-value (1MiB)" in out["row"], out
    assert_server_fine(srv)


def test_bad_max_value_refused(tmp_path):
    p = subprocess.run([BIN, "serve", "--max-value", "10", "--listen",
                        "127.0.0.1:0", "--state", str(tmp_path / "s.db"),
                        "--data", str(tmp_path / "d.db"),
                        "--workflows", str(tmp_path)],
                       capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 2, p
    assert "--max-value" in p.stderr


@pytest.mark.sqlite_data_only("SQLite's introspection PRAGMAs")
def test_introspection_pragmas_work(server):
    srv = server(workflows={"i": """\
        name: i
        on:
          webhook:
            path: /i
        steps:
          - id: s
            run: |
              db.exec([[CREATE TABLE IF NOT EXISTS parent(id INTEGER PRIMARY KEY);
                        CREATE TABLE IF NOT EXISTS child(a INTEGER, b TEXT NOT NULL,
                          p INTEGER REFERENCES parent(id));
                        CREATE INDEX IF NOT EXISTS child_b ON child(b)]])
              local cols = {}
              for _, r in ipairs(db.query("PRAGMA table_info(child)")) do
                cols[#cols + 1] = r.name
              end
              local fn = {}
              for _, r in ipairs(db.query(
                  "SELECT name FROM pragma_table_info(?) ORDER BY cid", "child")) do
                fn[#fn + 1] = r.name
              end
              return {
                cols = cols, fn = fn,
                xcols = #db.query("PRAGMA table_xinfo(child)"),
                indexes = db.one("PRAGMA index_list(child)").name,
                index_cols = db.one("PRAGMA index_info(child_b)").name,
                index_x = #db.query("PRAGMA main.index_xinfo('child_b')"),
                fks = db.one("PRAGMA foreign_key_list(child)").table,
                fk_check = #db.query("PRAGMA foreign_key_check"),
                tables = #db.query("PRAGMA table_list"),
              }
        """})
    r = srv.post("/i", {})
    assert r.status == 202, r
    run = srv.wait_run(r.json()["runs"][0])
    assert run["status"] == "succeeded", run
    out = run["steps"][0]["output"]
    assert out["cols"] == ["a", "b", "p"], out
    assert out["fn"] == ["a", "b", "p"], out
    assert out["xcols"] == 3
    assert out["indexes"] == "child_b"
    assert out["index_cols"] == "b"
    assert out["index_x"] == 2  # the column and the rowid
    assert out["fks"] == "parent"
    assert out["fk_check"] == 0
    assert out["tables"] >= 2


def test_hookflow_run_applies_the_same_limits(tmp_path):
    wf = tmp_path / "w.yml"
    wf.write_text(RUN_SQL)
    data = tmp_path / "data.db"

    def run(sql, *args):
        ev = tmp_path / "ev.json"
        ev.write_text(json.dumps({"sql": sql}))
        p = subprocess.run([BIN, "run", str(wf), "--event", str(ev),
                            "--data", str(data), *args],
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
        return p, lines

    p, lines = run("PRAGMA hard_heap_limit=100000")
    assert p.returncode != 0, p
    assert f"PRAGMA hard_heap_limit {INTROSPECTION_MSG}" in json.dumps(lines), p
    p, lines = run("SELECT length(randomblob(400000000)) AS n")
    assert p.returncode != 0, p
    assert "value larger than --max-value (64MiB)" in json.dumps(lines), p
    p, lines = run("SELECT length(randomblob(2000000)) AS n", "--max-value", "1MiB")
    assert p.returncode != 0, p
    assert "value larger than --max-value (1MiB)" in json.dumps(lines), p
    p, lines = run("SELECT length(randomblob(2000000)) AS n")
    assert p.returncode == 0, p
    assert "2000000" in p.stdout
