"""End-to-end tests for db.* on PostgreSQL (issue 14 item 7, contract §7):
`hookflow serve --data postgres://…` and `hookflow run --data postgres://…`
give steps the same db.exec / db.query / db.one / db.tx as on SQLite, against a
throwaway cluster (pgcluster.py) shared by the module: types both ways, `?`
placeholders (not inside strings, identifiers, comments or dollar quotes),
NULL -> nil, json/jsonb, transactions, the step's deadline, refused
statements, a step's settings gone at the next step, a wrong URI or a server
down or gone (a clear failed step, never a crash), and two servers sharing
one data database."""
import json
import re
import subprocess
import textwrap
import time

import pytest

import pgcluster
from conftest import BIN, ROOT, wait_for

pytestmark = pytest.mark.skipif(pgcluster.available() is not None,
                                reason=str(pgcluster.available()))


@pytest.fixture(scope="module")
def pg():
    cluster = pgcluster.PgCluster().start()
    yield cluster
    cluster.stop()


_dbs = iter(range(1, 10_000))


@pytest.fixture
def url(pg):
    """A new, empty database for one test."""
    return pg.url(f"data_{next(_dbs)}")


def step_wf(code, timeout=None, path="/t", name="t"):
    """A workflow of one step running code (Lua)."""
    body = textwrap.indent(textwrap.dedent(code).strip("\n"), " " * 6)
    extra = f"    timeout: {timeout}\n" if timeout else ""
    return (f"name: {name}\non:\n  webhook:\n    path: {path}\nsteps:\n"
            f"  - id: s\n{extra}    run: |\n{body}\n")


def hf_run(tmp_path, code, data, timeout=None, event=None):
    """`hookflow run` of a one-step workflow: (exit code, step line, stderr)."""
    wf = tmp_path / "wf.yml"
    wf.write_text(step_wf(code, timeout))
    ev = tmp_path / "ev.json"
    ev.write_text(json.dumps(event or {}))
    p = subprocess.run([BIN, "run", str(wf), "--event", str(ev),
                        "--data", data], capture_output=True, text=True,
                       timeout=60)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    step = next((x for x in lines if x.get("step") == "s"), None)
    return p.returncode, step, p.stderr


def ok(tmp_path, code, data, **kw):
    rc, step, err = hf_run(tmp_path, code, data, **kw)
    assert rc == 0 and step and step["status"] == "succeeded", (rc, step, err)
    return step["output"]


def failed(tmp_path, code, data, **kw):
    rc, step, err = hf_run(tmp_path, code, data, **kw)
    assert rc == 1 and step and step["status"] == "failed", (rc, step, err)
    return step["error"]


# ---- hookflow run ----

def test_types_round_trip(tmp_path, url):
    out = ok(tmp_path, r"""
        db.exec([[CREATE TABLE t(id serial PRIMARY KEY, i2 int2, i4 int4,
          i8 int8, f4 float4, f8 float8, num numeric, numi numeric, b bool,
          s text, v varchar(10), by bytea, j json, jb jsonb, jn jsonb,
          ts timestamptz, u uuid, arr int[], nul text)]])
        local n = db.exec([[INSERT INTO t(i2, i4, i8, f4, f8, num, numi, b, s,
          v, by, j, jb, jn, ts, u, arr, nul) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,
          ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
          7, 70000, math.maxinteger, 1.5, 0.1, "12.25", "42", true,
          "héllo ✓", "short", "\0\1\255", '{"a":1}',
          '{"a":[1,null],"b":null,"c":{"d":"e"}}', "null",
          "2026-01-02T03:04:05Z", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
          "{1,2,3}", nil)
        local r = db.one("SELECT * FROM t")
        local bytes = r.by == "\0\1\255"
        r.by = nil  -- not UTF-8: no step output
        return {
          n = n, r = r,
          types = {
            i2 = math.type(r.i2), i4 = math.type(r.i4), i8 = math.type(r.i8),
            f4 = math.type(r.f4), f8 = math.type(r.f8),
            num = math.type(r.num), numi = math.type(r.numi),
            b = type(r.b), s = type(r.s), jb = type(r.jb),
          },
          max = r.i8 == math.maxinteger,
          bytes = bytes,
          arr_null = r.jb.a[2] == json.null,
          has_b = r.jb.b ~= nil,
          jn_absent = r.jn == nil, nul_absent = r.nul == nil,
        }
    """, url)
    assert out["n"] == 1
    assert out["types"] == {"i2": "integer", "i4": "integer", "i8": "integer",
                            "f4": "float", "f8": "float", "num": "float",
                            "numi": "integer", "b": "boolean", "s": "string",
                            "jb": "table"}
    r = out["r"]
    assert r["i2"] == 7 and r["i4"] == 70000 and r["f4"] == 1.5
    assert r["f8"] == 0.1 and r["num"] == 12.25 and r["numi"] == 42
    assert r["b"] is True and r["s"] == "héllo ✓" and r["v"] == "short"
    assert r["j"] == {"a": 1}
    assert r["jb"] == {"a": [1, None], "c": {"d": "e"}}
    assert r["ts"].startswith("2026-01-02 03:04:05")
    assert r["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert r["arr"] == "{1,2,3}"
    assert "nul" not in r and "jn" not in r
    assert out["max"] and out["bytes"] and out["arr_null"]
    assert not out["has_b"] and out["jn_absent"] and out["nul_absent"]


def test_exec_counts_and_query_shapes(tmp_path, url):
    out = ok(tmp_path, """
        local created = db.exec("CREATE TABLE c(k text PRIMARY KEY, n int)")
        local ins = db.exec("INSERT INTO c VALUES ('a', 1), ('b', 2), ('c', 3)")
        local upd = db.exec("UPDATE c SET n = n + 1 WHERE n >= ?", 2)
        local sel = db.exec("SELECT * FROM c")
        local del = db.exec("DELETE FROM c WHERE k = ?", "a")
        local multi = db.exec("INSERT INTO c VALUES ('x', 0); UPDATE c SET n = 9")
        local ret = db.one("INSERT INTO c VALUES ('r', 5) RETURNING k, n")
        local empty = db.query("SELECT * FROM c WHERE false")
        return { created = created, ins = ins, upd = upd, sel = sel, del = del,
                 multi = multi, ret = ret, empty = empty,
                 none = db.one("SELECT 1 AS x WHERE false") == nil,
                 rows = db.query("SELECT k, n FROM c ORDER BY k") }
    """, url)
    assert out["created"] == 0 and out["ins"] == 3 and out["upd"] == 2
    assert out["sel"] == 0 and out["del"] == 1 and out["multi"] == 4
    assert out["ret"] == {"k": "r", "n": 5}
    assert out["empty"] == [] and out["none"] is True
    assert out["rows"] == [{"k": "b", "n": 9}, {"k": "c", "n": 9},
                           {"k": "r", "n": 5}, {"k": "x", "n": 9}]


def test_placeholders(tmp_path, url):
    out = ok(tmp_path, """
        db.exec('CREATE TABLE "q?"(k text, "v?" text)')
        db.exec([[INSERT INTO "q?"(k, "v?") VALUES (?, '?') -- a ? here
                  /* and ? /* nested ? */ here */]], "one")
        return {
          r = db.one([[SELECT k, "v?", '?' AS lit, E'\\' ?' AS esc,
                       $$?$$ AS dq, $t$ ? $t$ AS tag, ? AS p
                       FROM "q?" WHERE k = ?]], "P", "one"),
          numbered = db.one("SELECT ?2::text || ?1::text AS s, ?1::text AS a",
                            "x", "y"),
          dollar = db.one("SELECT $1::int + $2::int AS s", 2, 3),
          jsonb_op = db.one([[SELECT '{"k":1}'::jsonb ?? 'k' AS has,
                              '{"k":1}'::jsonb ??| array['z'] AS any]]),
        }
    """, url)
    assert out["r"] == {"k": "one", "v?": "?", "lit": "?", "esc": "' ?",
                        "dq": "?", "tag": " ? ", "p": "P"}
    assert out["numbered"] == {"s": "yx", "a": "x"}
    assert out["dollar"] == {"s": 5}
    assert out["jsonb_op"] == {"has": True, "any": False}
    err = failed(tmp_path, 'return db.one("SELECT ? AS a, ? AS b", 1)', url)
    assert "db.one: statement has 2 parameters, 1 given" in err
    err = failed(tmp_path, 'return db.query("SELECT 1; SELECT 2")', url)
    assert "db.query: takes a single statement" in err
    err = failed(tmp_path, 'return db.exec("SELECT ?; SELECT 2", 1)', url)
    assert "parameters cannot be used with several statements" in err
    err = failed(tmp_path, 'return db.exec("  -- nothing")', url)
    assert "db.exec: no SQL statement given" in err
    err = failed(tmp_path, 'return db.one("SELECT ?", {})', url)
    assert "db.one: cannot bind a table (parameter 1)" in err
    err = failed(tmp_path, 'return db.one("SELECT * FROM missing")', url)
    assert 'db.one: relation "missing" does not exist (SQLSTATE 42P01)' in err


def test_params_and_nil(tmp_path, url):
    out = ok(tmp_path, """
        db.exec("CREATE TABLE p(id int PRIMARY KEY, s text, b bool, f float8, j jsonb)")
        db.exec("INSERT INTO p VALUES (?, ?, ?, ?, ?)", 1, nil, false, 2, json.null)
        db.exec("INSERT INTO p VALUES (?, ?, ?, ?, ?)", 2, "x", true, 0.5,
                json.encode({ a = { 1, 2 } }))
        local r1 = db.one("SELECT * FROM p WHERE id = ?", 1)
        local r2 = db.one("SELECT * FROM p WHERE id = ?", 2)
        return { r1 = r1, r2 = r2, s_nil = r1.s == nil, j_nil = r1.j == nil,
                 f_type = math.type(r1.f),
                 isnull = db.one("SELECT ?::text IS NULL AS n", nil).n }
    """, url)
    assert out["r1"] == {"id": 1, "b": False, "f": 2.0}
    assert out["r2"] == {"id": 2, "s": "x", "b": True, "f": 0.5,
                         "j": {"a": [1, 2]}}
    assert out["s_nil"] and out["j_nil"] and out["isnull"] is True
    assert out["f_type"] == "float"


def test_tx(tmp_path, url):
    out = ok(tmp_path, """
        db.exec("CREATE TABLE l(k text PRIMARY KEY)")
        local ok1, err1 = pcall(db.tx, function()
          db.exec("INSERT INTO l VALUES ('rolled back')")
          error("boom")
        end)
        local got = db.tx(function()
          db.exec("INSERT INTO l VALUES ('outer')")
          local ok2 = pcall(db.tx, function()   -- a savepoint
            db.exec("INSERT INTO l VALUES ('inner')")
            db.exec("INSERT INTO l VALUES ('outer')")  -- duplicate: fails
          end)
          db.exec("INSERT INTO l VALUES ('after')")
          return ok2, "r"
        end)
        local ok3, err3 = pcall(db.tx, function()
          db.exec("INSERT INTO l VALUES ('lost')")
          pcall(db.exec, "INSERT INTO l VALUES ('outer')")  -- caught
        end)
        local rows = {}
        for _, r in ipairs(db.query("SELECT k FROM l ORDER BY k")) do
          rows[#rows + 1] = r.k
        end
        return { ok1 = ok1, err1 = tostring(err1), got = got, ok3 = ok3,
                 err3 = tostring(err3), rows = rows }
    """, url)
    assert out["ok1"] is False and "boom" in out["err1"]
    assert out["got"] is False  # the inner db.tx failed and was rolled back
    assert out["ok3"] is False
    assert "a statement in the transaction failed" in out["err3"]
    assert out["rows"] == ["after", "outer"]
    # a step that leaves its own BEGIN open fails, and its writes are gone
    err = failed(tmp_path, """
        db.exec("BEGIN")
        db.exec("INSERT INTO l VALUES ('open')")
        return 1
    """, url)
    assert "left a database transaction open; it was rolled back" in err
    out = ok(tmp_path, "return db.one(\"SELECT count(*) AS n FROM l WHERE k = 'open'\")",
             url)
    assert out == {"n": 0}


def test_refused_statements(tmp_path, url):
    cases = {
        "COPY l FROM PROGRAM 'id'": "COPY is not allowed",
        "COPY (SELECT 1) TO STDOUT": "COPY is not allowed",
        "ALTER SYSTEM SET work_mem = '1GB'": "ALTER SYSTEM is not allowed",
        "ALTER ROLE CURRENT_USER SET statement_timeout = 0":
            "ALTER ROLE is not allowed",
        "SET ROLE postgres": "SET ROLE / SESSION AUTHORIZATION is not allowed",
        "SET SESSION AUTHORIZATION postgres": "SESSION AUTHORIZATION",
        "SELECT pg_read_file('/etc/passwd')": "pg_read_file() is not allowed",
        "SELECT lo_import('/etc/passwd')": "lo_import() is not allowed",
        "SELECT pg_ls_dir('.')": "pg_ls_dir() is not allowed",
        "SELECT pg_reload_conf()": "pg_reload_conf() is not allowed",
        "SELECT set_config('role', 'postgres', false)":
            "set_config('role', …) is not allowed",
        "LOAD 'auto_explain'": "LOAD is not allowed",
        "LISTEN x": "LISTEN is not allowed",
    }
    code = "local out = {}\n"
    for sql in cases:
        code += (f"do local ok, e = pcall(db.exec, {json.dumps(sql)}); "
                 f"out[#out + 1] = tostring(e) end\n")
    code += "return out"
    out = ok(tmp_path, code, url)
    for (sql, want), got in zip(cases.items(), out):
        assert want in got and got.startswith("db.exec: "), (sql, got)
    # words in strings and comments are data, not statements
    out = ok(tmp_path, """
        return db.one([[SELECT 'COPY x FROM PROGRAM' AS a, 'pg_read_file(1)' AS b
                        -- SET ROLE postgres
                       ]])
    """, url)
    assert out == {"a": "COPY x FROM PROGRAM", "b": "pg_read_file(1)"}


def test_unprivileged_role(tmp_path, pg):
    """What hookflow cannot see (a DO block) the role's privileges stop."""
    pg.psql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
            "'hf_app') THEN CREATE ROLE hf_app LOGIN; END IF; END $$")
    pg.create_db("data_app")
    pg.psql("ALTER DATABASE data_app OWNER TO hf_app")
    url = f"postgres://hf_app@127.0.0.1:{pg.port}/data_app"
    err = failed(tmp_path, """
        db.exec("DO $$ BEGIN PERFORM pg_read_file('/etc/passwd'); END $$")
    """, url)
    assert "permission denied for function pg_read_file" in err
    out = ok(tmp_path, """
        db.exec("CREATE TABLE mine(x int)")
        db.exec("INSERT INTO mine VALUES (?)", 1)
        return db.one("SELECT current_user AS u, x FROM mine")
    """, url)
    assert out == {"u": "hf_app", "x": 1}


def test_limits(tmp_path, url):
    wf = tmp_path / "wf.yml"
    wf.write_text(step_wf("""
        db.exec("CREATE TABLE IF NOT EXISTS big2(v text)")
        local ok1, e1 = pcall(db.exec, "INSERT INTO big2 VALUES (?)", string.rep("y", 5000))
        db.exec("INSERT INTO big2 SELECT repeat('x', 5000)")
        local ok2, e2 = pcall(db.one, "SELECT v FROM big2")
        local ok3, e3 = pcall(db.one, "SELECT 1 AS a -- " .. string.rep("z", 5000))
        return { e1 = tostring(e1), e2 = tostring(e2), e3 = tostring(e3),
                 after = db.one("SELECT length(v) AS n FROM big2").n }
    """))
    ev = tmp_path / "ev.json"
    ev.write_text("{}")
    p = subprocess.run([BIN, "run", str(wf), "--event", str(ev), "--data",
                        url, "--max-value", "4KiB"], capture_output=True,
                       text=True, timeout=60)
    step = json.loads(p.stdout.splitlines()[0])
    assert step["status"] == "succeeded", (step, p.stderr)
    out = step["output"]
    assert "db.exec: value larger than --max-value (4KiB)" in out["e1"]
    assert "db.one: row larger than --max-value (4KiB)" in out["e2"]
    assert "db.one: SQL statement larger than --max-value (4KiB)" in out["e3"]
    assert out["after"] == 5000  # the connection carried on after the refusal


def test_deadline(tmp_path, url, pg):
    t0 = time.monotonic()
    err = failed(tmp_path, 'db.one("SELECT pg_sleep(30)")', url,
                 timeout="1s")
    assert time.monotonic() - t0 < 10
    assert "timed out" in err or "deadline" in err, err
    # the server stops the statement once it sees the connection closed
    db = url.rsplit("/", 1)[1]
    wait_for(lambda: pg.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
        f"'{db}' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
    ).strip() == "0", timeout=10, what="the sleeping statement to end")
    # a deadline inside db.tx: rolled back, nothing half-written
    failed(tmp_path, """
        db.exec("CREATE TABLE IF NOT EXISTS d(x int)")
        db.tx(function()
          db.exec("INSERT INTO d VALUES (1)")
          db.one("SELECT pg_sleep(30)")
        end)
    """, url, timeout="1s")
    assert ok(tmp_path, 'return db.one("SELECT count(*) AS n FROM d")',
              url) == {"n": 0}


def test_connection_errors(tmp_path, url, pg):
    # nothing listens there
    with pgcluster.refused_port() as port:
        err = failed(tmp_path, 'return db.one("SELECT 1 AS x")',
                     f"postgres://postgres@127.0.0.1:{port}/x")
    assert "db.one: cannot connect to PostgreSQL (--data)" in err
    assert "Connection refused" in err
    # no such database
    err = failed(tmp_path, 'return db.one("SELECT 1 AS x")',
                 f"postgres://postgres@127.0.0.1:{pg.port}/no_such_db")
    assert 'database "no_such_db" does not exist' in err
    # a malformed URI: refused before any step, with exit 1, not a crash
    wf = tmp_path / "wf.yml"
    wf.write_text(step_wf('return 1'))
    ev = tmp_path / "ev.json"
    ev.write_text("{}")
    p = subprocess.run([BIN, "run", str(wf), "--event", str(ev), "--data",
                        "postgres://u:s3cretpw@[bad/db"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1, p
    assert "invalid PostgreSQL URI" in p.stderr
    assert "s3cretpw" not in p.stderr  # libpq quotes the URI: left out


def test_reference_example(tmp_path, url):
    """The example of docs/reference.md, "`db` on PostgreSQL", as written."""
    text = (ROOT / "docs" / "reference.md").read_text()
    section = text[text.index("#### `db` on PostgreSQL"):]
    section = section[:section.index("\n### ")]
    yaml_block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    wf = tmp_path / "wf.yml"
    wf.write_text("name: ex\non:\n  webhook:\n    path: /ex\n" + yaml_block)
    outs = []
    for body in ({"id": "c1", "email": "a@x", "version": 5, "props": {"a": 1}},
                 {"id": "c1", "email": "b@x", "version": 3, "props": {"b": 2}}):
        ev = tmp_path / "ev.json"
        ev.write_text(json.dumps(body))
        p = subprocess.run([BIN, "run", str(wf), "--event", str(ev), "--data",
                            url], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (p.stdout, p.stderr)
        outs.append(json.loads(p.stdout.splitlines()[0])["output"])
    assert outs == [{"version": 5, "props": {"a": 1}},
                    {"version": 5, "props": {"a": 1, "b": 2}}]


# ---- hookflow serve ----

LEDGER = """\
name: ledger
on:
  webhook:
    path: /ledger
steps:
  - id: s
    run: |
      db.exec([[CREATE TABLE IF NOT EXISTS ledger(crm_id text PRIMARY KEY,
                version bigint NOT NULL, node text)]])
      db.tx(function()
        db.exec([[INSERT INTO ledger(crm_id, version, node) VALUES (?, ?, ?)
                  ON CONFLICT (crm_id) DO UPDATE
                  SET version = GREATEST(ledger.version, excluded.version),
                      node = excluded.node]],
                event.body.id, event.body.version, env("NODE"))
      end)
      return { rows = db.query("SELECT crm_id, version, node FROM ledger ORDER BY crm_id") }
"""

SESSION = """\
name: session
on:
  webhook:
    path: /session
steps:
  - id: s
    run: |
      local before = db.one("SHOW search_path").search_path
      local timeout = db.one("SHOW statement_timeout").statement_timeout
      local tmp = db.one("SELECT count(*) AS n FROM pg_tables WHERE tablename = 'scratch'").n
      db.exec("SET search_path TO nowhere")
      db.exec("SET statement_timeout = '1h'")
      db.exec("CREATE TEMP TABLE scratch(x int)")
      return { before = before, timeout = timeout, tmp = tmp, pid = db.one("SELECT pg_backend_pid() AS p").p }
  - id: no_db
    if: event.body.skip ~= true
    run: return 1
"""

SLEEP = """\
name: sleep
on:
  webhook:
    path: /sleep
steps:
  - id: s
    run: |
      return db.one("SELECT pg_sleep(?) AS x, pg_backend_pid() AS pid", event.body.s)
"""


def fire(srv, path, body):
    r = srv.post(path, body)
    assert r.status == 202, (r, srv.stderr())
    run = srv.wait_run(r.json()["runs"][0], timeout=30)
    return run, run["steps"][0]


def test_two_servers_share_the_data_database(server, url):
    a = server(workflows={"ledger": LEDGER}, args=["--data", url],
               env={"NODE": "a"})
    b = server(workflows={"ledger": LEDGER}, args=["--data", url],
               env={"NODE": "b"})
    run, step = fire(a, "/ledger", {"id": "c1", "version": 5})
    assert run["status"] == "succeeded", (run, a.stderr())
    run, step = fire(b, "/ledger", {"id": "c2", "version": 7})
    assert run["status"] == "succeeded", (run, b.stderr())
    assert step["output"]["rows"] == [
        {"crm_id": "c1", "version": 5, "node": "a"},
        {"crm_id": "c2", "version": 7, "node": "b"}]
    # an older version from the other node does not win; a newer one does
    run, step = fire(a, "/ledger", {"id": "c2", "version": 6})
    assert step["output"]["rows"][1] == {"crm_id": "c2", "version": 7,
                                         "node": "a"}
    # many at once from both nodes: every row once, the newest version kept
    ids = []
    for i in range(20):
        srv = a if i % 2 else b
        r = srv.post("/ledger", {"id": f"m{i % 5}", "version": i})
        assert r.status == 202, r
        ids.append((srv, r.json()["runs"][0]))
    for srv, rid in ids:
        assert srv.wait_run(rid, timeout=30)["status"] == "succeeded"
    run, step = fire(b, "/ledger", {"id": "c1", "version": 1})
    rows = {r["crm_id"]: r["version"] for r in step["output"]["rows"]}
    assert rows == {"c1": 5, "c2": 7, "m0": 15, "m1": 16, "m2": 17,
                    "m3": 18, "m4": 19}
    assert a.stop() == 0 and b.stop() == 0  # SIGTERM: a clean stop


def test_step_settings_do_not_leak(server, url):
    srv = server(workflows={"session": SESSION},
                 args=["--data", url, "--workers", "1"])
    outs = []
    for _ in range(3):
        run, step = fire(srv, "/session", {})
        assert run["status"] == "succeeded", (run, srv.stderr())
        outs.append(step["output"])
    assert len({o["pid"] for o in outs}) == 1  # one connection, kept
    for o in outs:
        assert o["before"] == '"$user", public' and o["tmp"] == 0, o
        assert o["timeout"] == "0", o


def test_server_down_and_back(server, url, pg):
    db = url.rsplit("/", 1)[1]
    srv = server(workflows={"sleep": SLEEP},
                 args=["--data", url, "--workers", "1"])
    run, step = fire(srv, "/sleep", {"s": 0})
    assert run["status"] == "succeeded", (run, srv.stderr())
    pid = step["output"]["pid"]
    # the server closes the connection between steps: the next step connects
    # again before it sends anything
    pg.psql(f"SELECT pg_terminate_backend({pid})")
    time.sleep(0.3)
    run, step = fire(srv, "/sleep", {"s": 0})
    assert run["status"] == "succeeded", (run, srv.stderr())
    assert step["output"]["pid"] != pid
    pid = step["output"]["pid"]
    # lost in the middle of a statement: a clear failed step, then it
    # connects again
    r = srv.post("/sleep", {"s": 5})
    rid = r.json()["runs"][0]
    wait_for(lambda: pg.psql(
        f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' "
        "AND query LIKE '%pg_sleep%' AND state = 'active' "
        "AND pid <> pg_backend_pid()").strip() == "1", timeout=10,
        what="the statement to run")
    pg.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{db}' AND pid <> pg_backend_pid()")
    run = srv.wait_run(rid, timeout=30)
    assert run["status"] == "failed"
    assert "lost the connection to PostgreSQL (--data)" in \
        run["steps"][0]["error"], run
    run, step = fire(srv, "/sleep", {"s": 0})
    assert run["status"] == "succeeded", (run, srv.stderr())
    assert srv.proc.poll() is None


def test_serve_deadline_then_next_step(server, url):
    """A step past its timeout fails; the worker's next step connects again."""
    wf = SLEEP.replace("  - id: s\n", "  - id: s\n    timeout: 1s\n")
    srv = server(workflows={"sleep": wf}, args=["--data", url, "--workers", "1"])
    t0 = time.monotonic()
    run, step = fire(srv, "/sleep", {"s": 20})
    assert run["status"] == "failed" and "timed out" in step["error"], run
    assert time.monotonic() - t0 < 10
    run, step = fire(srv, "/sleep", {"s": 0})
    assert run["status"] == "succeeded", (run, srv.stderr())


def test_serve_with_no_server_starts_and_fails_steps(server):
    with pgcluster.refused_port() as port:
        dead = f"postgres://postgres@127.0.0.1:{port}/x"
        srv = server(workflows={"sleep": SLEEP}, args=["--data", dead])
        run, step = fire(srv, "/sleep", {"s": 0})
    assert run["status"] == "failed"
    assert "db.one: cannot connect to PostgreSQL (--data)" in step["error"]
    assert srv.get("/healthz").status == 200  # the data database is not ours
    assert srv.proc.poll() is None
