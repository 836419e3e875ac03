"""End-to-end tests for the Lua globals and step semantics (docs/reference.md,
"Steps" and "Lua"), run through the real server."""
import json
import textwrap

import pytest

from conftest import data_rows, wait_for


def workflow(name, steps, path=None, extra=""):
    """A workflow YAML with the given (already indented-free) steps block."""
    return (f"name: {name}\n"
            f"on:\n  webhook:\n    path: {path or '/' + name}\n{extra}"
            f"steps:\n" + textwrap.indent(textwrap.dedent(steps).strip("\n"), "  ") + "\n")


def fire(srv, path, body=None, headers=None, query=""):
    r = srv.post(path + query, body if body is not None else {}, headers)
    assert r.status == 202, r
    assert len(r.json()["runs"]) == 1, r
    rid = r.json()["runs"][0]
    try:
        return r.json()["event"], srv.wait_run(rid, timeout=20)
    except (AssertionError, OSError) as e:
        raise AssertionError(f"{e}\nserver exit code: {srv.proc.poll()}\n"
                             f"server stderr:\n{srv.stderr()}") from None


def one_step(server, code, body=None, scripts=None, env=None, headers=None, query=""):
    """Runs one inline step; returns (event id, run record, step record)."""
    steps = "- id: s\n  run: |\n" + textwrap.indent(textwrap.dedent(code).strip("\n"), "    ")
    srv = server(workflows={"w": workflow("w", steps)}, scripts=scripts, env=env)
    eid, run = fire(srv, "/w", body, headers, query)
    return srv, eid, run, run["steps"][0]


def ok_output(server, code, **kw):
    srv, eid, run, step = one_step(server, code, **kw)
    assert run["status"] == "succeeded", run
    assert step["status"] == "succeeded", step
    return step["output"]


# --- event ---------------------------------------------------------------------

def test_event_fields(server):
    srv, eid, run, step = one_step(server, """
        return { id = event.id, method = event.method, path = event.path,
                 query = event.query, ua = event.headers["x-mixed-case"],
                 upper = event.headers["X-Mixed-Case"] or "none",
                 ct = event.headers["content-type"],
                 body = event.body, raw = event.raw, received_at = event.received_at }
    """, body='{"n": 1, "list": ["a", true, null]}',
        headers={"Content-Type": "application/json", "X-Mixed-Case": "Value"},
        query="?a=1&b=two%20words")
    assert run["status"] == "succeeded", run
    out = step["output"]
    ev = srv.api("GET", f"/api/events/{eid}").json()
    assert out["id"] == eid
    assert out["method"] == "POST"
    assert out["path"] == "/w"
    assert out["query"] == {"a": "1", "b": "two words"}
    assert out["ua"] == "Value"
    assert out["upper"] == "none"          # names are lower-case
    assert out["ct"] == "application/json"
    assert out["body"] == {"n": 1, "list": ["a", True, None]}
    assert out["raw"] == '{"n": 1, "list": ["a", true, null]}'
    assert out["received_at"] == ev["received_at"]


def test_event_form_body(server):
    out = ok_output(server, "return { body = event.body, raw = event.raw }",
                    body="a=1&b=x+y", headers={
                        "Content-Type": "application/x-www-form-urlencoded"})
    assert out == {"body": {"a": "1", "b": "x y"}, "raw": "a=1&b=x+y"}


def test_event_body_nil_for_text(server):
    out = ok_output(server, "return { t = type(event.body), raw = event.raw }",
                    body="just text", headers={"Content-Type": "text/plain"})
    assert out == {"t": "nil", "raw": "just text"}


# --- steps, args, run ------------------------------------------------------------

def test_steps_outputs_and_skipped(server):
    srv = server(workflows={"w": workflow("w", """
        - id: first
          run: return { n = 1, s = "x" }
        - id: skipped_one
          if: event.body.go == true
          run: return "should not run"
        - id: third
          if: steps.first.n == 1
          run: |
            return { first = steps.first, skipped_is_nil = steps.skipped_one == nil,
                     later_is_nil = steps.fourth == nil }
        - id: fourth
          run: return steps.third.first.s .. "!"
    """)})
    _, run = fire(srv, "/w", {"go": False})
    assert run["status"] == "succeeded", run
    st = {s["id"]: s for s in run["steps"]}
    assert st["first"]["output"] == {"n": 1, "s": "x"}
    assert st["skipped_one"]["status"] == "skipped"
    assert st["skipped_one"]["output"] is None
    assert st["third"]["status"] == "succeeded"
    assert st["third"]["output"] == {"first": {"n": 1, "s": "x"},
                                     "skipped_is_nil": True, "later_is_nil": True}
    assert st["fourth"]["output"] == "x!"


def test_args_with_and_expressions(server):
    srv = server(workflows={"w": workflow("w", """
        - id: prev
          run: return { k = "v" }
        - id: s
          with:
            plain: hello
            number: 7
            list: [a, b]
            nested: { x: 1 }
            from_event: "${{ event.body.ticket }}"
            num_expr: "${{ event.body.ticket.id * 2 }}"
            bool_expr: "${{ event.body.ticket.id > 100 }}"
            from_steps: "${{ steps.prev.k }}"
            spaced: "${{event.query.q}}"
          run: |
            local t = {}
            for k, v in pairs(args) do t[k] = { type = type(v), value = v } end
            return t
    """)})
    _, run = fire(srv, "/w", {"ticket": {"id": 101, "subject": "hi"}}, query="?q=qq")
    assert run["status"] == "succeeded", run
    out = run["steps"][1]["output"]
    assert out["plain"] == {"type": "string", "value": "hello"}
    assert out["number"] == {"type": "number", "value": 7}
    assert out["list"] == {"type": "table", "value": ["a", "b"]}
    assert out["nested"] == {"type": "table", "value": {"x": 1}}
    assert out["from_event"] == {"type": "table", "value": {"id": 101, "subject": "hi"}}
    assert out["num_expr"] == {"type": "number", "value": 202}
    assert out["bool_expr"] == {"type": "boolean", "value": True}
    assert out["from_steps"] == {"type": "string", "value": "v"}
    assert out["spaced"] == {"type": "string", "value": "qq"}


def test_run_global(server):
    srv, eid, run, step = one_step(server, """
        return { id = run.id, workflow = run.workflow, attempt = run.attempt }
    """)
    assert step["output"] == {"id": run["id"], "workflow": "w", "attempt": 1}


def test_env(server):
    out = ok_output(server, """
        return { set = env("HF_TEST_VALUE"), unset = env("HF_TEST_NOT_SET_ANYWHERE") }
    """, env={"HF_TEST_VALUE": "secret value 42"})
    assert out == {"set": "secret value 42"}


# --- json / log / crypto -------------------------------------------------------------

def test_json(server):
    out = ok_output(server, r"""
        local d = json.decode('{"a":[1,2.5,null,"x"],"b":{"c":true},"e":{},"f":[]}')
        local enc = json.encode({ list = {1, 2, 3}, map = { k = "v" }, n = json.null })
        local back = json.decode(enc)
        return {
          a1 = d.a[1], a2 = d.a[2], a3_is_null = d.a[3] == json.null, a4 = d.a[4],
          len = #d.a, c = d.b.c,
          enc_is_string = type(enc) == "string",
          back_list = back.list, back_map = back.map, back_null = back.n == nil,
          enc_array = json.encode({1, 2, 3}),
          enc_string = json.encode("a\"b\n"),
          top_null = json.decode("null") == json.null or json.decode("null") == nil,
          num = json.decode("12"),
          null_out = json.null,
          bad = select(2, pcall(json.decode, "{bad")) ~= nil,
        }
    """)
    assert out["a1"] == 1 and out["a2"] == 2.5 and out["a3_is_null"] is True
    assert out["a4"] == "x" and out["len"] == 4 and out["c"] is True
    assert out["enc_is_string"] is True
    assert out["back_list"] == [1, 2, 3] and out["back_map"] == {"k": "v"}
    assert out["back_null"] is True
    assert json.loads(out["enc_array"]) == [1, 2, 3]
    assert json.loads(out["enc_string"]) == "a\"b\n"
    assert out["top_null"] is True and out["num"] == 12
    assert out.get("null_out") is None
    assert out["bad"] is True


def test_json_decode_error_fails_step(server):
    srv, eid, run, step = one_step(server, 'return json.decode("{oops")')
    assert run["status"] == "failed"
    assert step["status"] == "failed" and step["error"]


def test_log_kept_with_step(server):
    srv, eid, run, step = one_step(server, """
        log.info("first", 1, true)
        log.warn("second")
        log.error("third", { nope = 1 } and "x")
        return "done"
    """)
    assert run["status"] == "succeeded", run
    logs = step["logs"]
    assert len(logs) == 3, logs
    levels = [l["level"] for l in logs]
    assert levels == ["info", "warn", "error"]
    assert "first" in logs[0]["message"] and "1" in logs[0]["message"]
    assert "true" in logs[0]["message"]
    assert logs[1]["message"] == "second"
    assert "third" in logs[2]["message"]


def test_logs_kept_when_step_fails(server):
    srv, eid, run, step = one_step(server, """
        log.warn("before the error")
        error("then fail")
    """)
    assert step["status"] == "failed"
    assert any("before the error" in l["message"] for l in step["logs"])


def test_crypto_vectors(server):
    out = ok_output(server, r"""
        return {
          sha_abc = crypto.sha256("abc"),
          sha_empty = crypto.sha256(""),
          hmac = crypto.hmac_sha256("key", "The quick brown fox jumps over the lazy dog"),
          hmac_empty = crypto.hmac_sha256("", ""),
          b64 = crypto.base64_encode("hello world"),
          b64_pad1 = crypto.base64_encode("ab"),
          b64_empty = crypto.base64_encode(""),
          unb64 = crypto.base64_decode("aGVsbG8gd29ybGQ="),
          bin_ok = crypto.base64_decode(crypto.base64_encode("\0\1\255\254")) == "\0\1\255\254",
          bin_b64 = crypto.base64_encode("\0\1\255\254"),
        }
    """)
    assert out["sha_abc"] == ("ba7816bf8f01cfea414140de5dae2223"
                              "b00361a396177a9cb410ff61f20015ad")
    assert out["sha_empty"] == ("e3b0c44298fc1c149afbf4c8996fb924"
                                "27ae41e4649b934ca495991b7852b855")
    assert out["hmac"] == ("f7bc83f430538424b13298e6aa6fb143"
                           "ef4d59a14946175997479dbc2d1a3cd8")
    assert out["hmac_empty"] == ("b613679a0814d9ec772f95d778c35fc5"
                                 "ff1697c493715653c6c712144292c5ad")
    assert out["b64"] == "aGVsbG8gd29ybGQ="
    assert out["b64_pad1"] == "YWI="
    assert out["b64_empty"] == ""
    assert out["unb64"] == "hello world"
    assert out["bin_ok"] is True
    assert out["bin_b64"] == "AAH//g=="


# --- db -----------------------------------------------------------------------------

def test_db_exec_query_one_bound(server):
    srv, eid, run, step = one_step(server, """
        db.exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, name TEXT, score REAL, flag INTEGER)")
        local n1 = db.exec("INSERT INTO t(id, name, score, flag) VALUES (?, ?, ?, ?)", 1, "alice", 1.5, 1)
        local n2 = db.exec("INSERT INTO t(id, name, score, flag) VALUES (?, ?, ?, ?)", 2, event.body.evil, 2, 0)
        local changed = db.exec("UPDATE t SET score = score + 1")
        local rows = db.query("SELECT id, name, score FROM t ORDER BY id")
        local one = db.one("SELECT name FROM t WHERE name = ?", "alice")
        local none = db.one("SELECT name FROM t WHERE name = ?", "nobody")
        local empty = db.query("SELECT * FROM t WHERE 1 = 0")
        local null_row = db.one("SELECT NULL AS x, 3 AS y")
        return { n1 = n1, n2 = n2, changed = changed, rows = rows, one = one,
                 none_is_nil = none == nil, empty_len = #empty,
                 null_x_absent = null_row.x == nil or null_row.x == json.null,
                 y = null_row.y }
    """, body={"evil": "x'); DROP TABLE t; --"})
    assert run["status"] == "succeeded", run
    out = step["output"]
    assert out["n1"] == 1 and out["n2"] == 1 and out["changed"] == 2
    assert out["rows"] == [{"id": 1, "name": "alice", "score": 2.5},
                           {"id": 2, "name": "x'); DROP TABLE t; --", "score": 3}]
    assert out["one"] == {"name": "alice"}
    assert out["none_is_nil"] is True and out["empty_len"] == 0
    assert out["null_x_absent"] is True and out["y"] == 3
    srv.stop()
    rows = data_rows(srv.data, "SELECT id, name, score, flag FROM t ORDER BY id")
    assert rows == [(1, "alice", 2.5, 1), (2, "x'); DROP TABLE t; --", 3.0, 0)]


def test_db_tx_commit_and_rollback(server):
    srv, eid, run, step = one_step(server, """
        db.exec("CREATE TABLE IF NOT EXISTS t(v TEXT)")
        local r = db.tx(function()
          db.exec("INSERT INTO t VALUES (?)", "kept")
          return "tx result"
        end)
        local ok, err = pcall(db.tx, function()
          db.exec("INSERT INTO t VALUES (?)", "rolled back")
          error("abort the tx")
        end)
        local rows = db.query("SELECT v FROM t")
        return { r = r, ok = ok, err = tostring(err), n = #rows, v = rows[1].v }
    """)
    assert run["status"] == "succeeded", run
    out = step["output"]
    assert out["r"] == "tx result"
    assert out["ok"] is False and "abort the tx" in out["err"]
    assert out["n"] == 1 and out["v"] == "kept"
    assert data_rows(srv.data, "SELECT v FROM t") == [("kept",)]


def test_db_tx_error_fails_step_and_rolls_back(server):
    srv = server(workflows={"w": workflow("w", """
        - id: setup
          run: |
            db.exec("CREATE TABLE IF NOT EXISTS t(v TEXT)")
        - id: s
          run: |
            db.tx(function()
              db.exec("INSERT INTO t VALUES ('nope')")
              error("fail inside tx")
            end)
    """)})
    _, run = fire(srv, "/w")
    assert run["status"] == "failed"
    assert "fail inside tx" in run["steps"][1]["error"]
    assert data_rows(srv.data, "SELECT COUNT(*) FROM t")[0][0] == 0


def test_db_sql_error_fails_step(server):
    srv, eid, run, step = one_step(server, 'return db.query("SELECT * FROM no_such_table")')
    assert step["status"] == "failed"
    assert "no_such_table" in step["error"]


# --- require ---------------------------------------------------------------------------

def test_require_from_scripts_dir(server):
    srv = server(workflows={"w": workflow("w", """
        - id: s
          run: |
            local m = require("helper")
            local again = require("helper")
            local ok, err = pcall(require, "missing_module")
            return { v = m.double(21), same = m == again, missing_ok = ok }
        - id: file
          script: main.lua
          with: { n: 5 }
    """)}, scripts={
        "helper.lua": """
            local M = {}
            function M.double(x) return x * 2 end
            return M
        """,
        "main.lua": """
            local h = require("helper")
            return h.double(args.n)
        """})
    _, run = fire(srv, "/w")
    assert run["status"] == "succeeded", run
    assert run["steps"][0]["output"] == {"v": 42, "same": True, "missing_ok": False}
    assert run["steps"][1]["output"] == 10


# --- step semantics ---------------------------------------------------------------------

def test_step_if_skipped(server):
    srv = server(workflows={"w": workflow("w", """
        - id: a
          if: event.body.n > 5
          run: return "a ran"
        - id: b
          if: steps.a == nil
          run: return "b ran"
    """)})
    _, run = fire(srv, "/w", {"n": 1})
    assert run["status"] == "succeeded"
    assert [s["status"] for s in run["steps"]] == ["skipped", "succeeded"]
    assert run["steps"][1]["output"] == "b ran"
    _, run = fire(srv, "/w", {"n": 10})
    assert [s["status"] for s in run["steps"]] == ["succeeded", "skipped"]


def test_retry_until_success(server):
    srv = server(workflows={"w": workflow("w", """
        - id: flaky
          retry: { attempts: 5, backoff: 100ms }
          run: |
            db.exec("CREATE TABLE IF NOT EXISTS c(n INTEGER)")
            db.exec("INSERT INTO c VALUES (1)")
            local n = db.one("SELECT COUNT(*) AS n FROM c").n
            if n < 3 then error("not yet: " .. n) end
            return { n = n, attempt = run.attempt }
    """)})
    _, run = fire(srv, "/w")
    assert run["status"] == "succeeded", run
    step = run["steps"][0]
    assert step["status"] == "succeeded"
    assert step["attempts"] == 3
    assert step["output"]["n"] == 3
    assert step["error"] is None


def test_retry_exhausted_fails(server):
    srv = server(workflows={"w": workflow("w", """
        - id: never
          retry: { attempts: 2, backoff: 100ms }
          run: error("always")
    """)})
    _, run = fire(srv, "/w")
    assert run["status"] == "failed"
    assert run["steps"][0]["attempts"] == 2
    assert "always" in run["steps"][0]["error"]


def test_step_timeout_and_server_carries_on(server):
    srv = server(workflows={
        "w": workflow("w", """
            - id: spin
              timeout: 500ms
              run: |
                while true do end
        """),
        "other": workflow("other", """
            - id: s
              run: return "fine"
        """)})
    r = srv.post("/w", {})
    assert r.status == 202
    spin_id = r.json()["runs"][0]
    # other runs are served while (and after) the spinning step runs
    _, other = fire(srv, "/other")
    assert other["status"] == "succeeded"
    run = srv.wait_run(spin_id, timeout=20)
    assert run["status"] == "failed"
    step = run["steps"][0]
    assert step["status"] == "failed"
    assert "timeout" in step["error"].lower() or "timed out" in step["error"].lower()
    assert srv.get("/healthz").status == 200
    _, other = fire(srv, "/other")
    assert other["status"] == "succeeded"


def test_continue_on_error(server):
    srv = server(workflows={"w": workflow("w", """
        - id: bad
          continue_on_error: true
          run: error("ignored failure")
        - id: after
          run: return { bad_is_nil = steps.bad == nil }
    """)})
    _, run = fire(srv, "/w")
    assert run["status"] == "succeeded", run
    bad, after = run["steps"]
    assert bad["status"] == "failed" and "ignored failure" in bad["error"]
    assert after["status"] == "succeeded"
    assert after["output"] == {"bad_is_nil": True}


def test_failed_step_stops_run(server):
    srv = server(workflows={"w": workflow("w", """
        - id: bad
          run: error("stop here")
        - id: never
          run: return 1
    """)})
    _, run = fire(srv, "/w")
    assert run["status"] == "failed"
    assert "stop here" in run["error"]
    st = {s["id"]: s for s in run["steps"]}
    assert st["bad"]["status"] == "failed"
    assert "never" not in st or st["never"]["status"] != "succeeded"


def test_runtime_error_has_traceback(server):
    srv, eid, run, step = one_step(server, """
        local function inner(t)
          local v = t.missing.field
          return v
        end
        local r = inner({})
        return r
    """)
    assert run["status"] == "failed"
    assert step["status"] == "failed"
    err = step["error"]
    assert "attempt to index" in err
    assert "stack traceback" in err
    assert "inner" in err
    assert run["error"]


def test_runtime_error_location_names_the_yaml_file(server):
    srv, eid, run, step = one_step(server, """
        local x = 1
        error("located")
    """)
    assert step["status"] == "failed"
    # the run: block starts on line 8 of the YAML file, so error() is on line 9
    assert "w.yml:9:" in step["error"], step["error"]


def test_function_output_fails_clearly(server):
    srv, eid, run, step = one_step(server, "return { f = function() end }")
    assert run["status"] == "failed"
    assert step["status"] == "failed"
    assert "function" in step["error"]
    assert "json" in step["error"].lower() or "output" in step["error"].lower()


def test_output_in_run_record_and_later_steps(server):
    srv = server(workflows={"w": workflow("w", """
        - id: make
          run: return { list = {1, 2, 3}, map = { a = "b" }, f = 1.25, t = true, s = "str" }
        - id: use
          run: |
            local m = steps.make
            return { sum = m.list[1] + m.list[2] + m.list[3], a = m.map.a,
                     f = m.f, t = m.t, s = m.s, n = #m.list }
        - id: scalar
          run: return "just a string"
        - id: nothing
          run: local x = 1
    """)})
    _, run = fire(srv, "/w")
    assert run["status"] == "succeeded", run
    st = {s["id"]: s["output"] for s in run["steps"]}
    assert st["make"] == {"list": [1, 2, 3], "map": {"a": "b"}, "f": 1.25, "t": True,
                          "s": "str"}
    assert st["use"] == {"sum": 6, "a": "b", "f": 1.25, "t": True, "s": "str", "n": 3}
    assert st["scalar"] == "just a string"
    assert st["nothing"] is None


def test_sandbox_basics(server):
    # a missing global may read as nil or raise (strict globals): both mean "absent"
    out = ok_output(server, """
        local function kind(f)
          local ok, v = pcall(f)
          if not ok then return "absent" end
          return v == nil and "absent" or type(v)
        end
        return { io = kind(function() return io end),
                 os_exit = kind(function() return rawget(os, "exit") end),
                 os_execute = kind(function() return rawget(os, "execute") end),
                 debug = kind(function() return debug end),
                 dofile = kind(function() return dofile end),
                 loadfile = kind(function() return loadfile end),
                 loadlib = kind(function() return package.loadlib end),
                 os_time = type(os.time()), os_date = type(os.date("%Y")),
                 os_clock = type(os.clock()),
                 string_ok = string.format("%d", 3), math_ok = math.floor(2.5) }
    """)
    assert out == {"io": "absent", "os_exit": "absent", "os_execute": "absent",
                   "debug": "absent", "dofile": "absent", "loadfile": "absent",
                   "loadlib": "absent", "os_time": "number", "os_date": "string",
                   "os_clock": "number", "string_ok": "3", "math_ok": 2}
