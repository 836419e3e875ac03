"""End-to-end tests for the HTTP surface of `hookflow serve` (README.md, "HTTP")."""
import http.client
import json
import os
import re
import signal
import socket

import pytest

from conftest import data_exec, data_tables, request, wait_for

SIMPLE = """
name: simple
on:
  webhook:
    path: /simple
steps:
  - id: one
    run: |
      return { body = event.body, method = event.method }
"""


def api_ok(srv, path):
    r = srv.api("GET", path)
    assert r.status == 200, r
    return r.json()


# --- 202, commit, admin visibility ----------------------------------------

def test_202_event_and_runs_visible_immediately(server):
    srv = server(workflows={"simple": SIMPLE})
    r = srv.post("/simple", {"hello": "world"})
    assert r.status == 202, r
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"event", "runs"}
    assert isinstance(body["event"], str) and body["event"]
    assert len(body["runs"]) == 1
    # Acknowledged means committed: both records are readable at once.
    ev = srv.api("GET", f"/api/events/{body['event']}")
    assert ev.status == 200, ev
    assert ev.json()["runs"] == body["runs"]
    run = srv.api("GET", f"/api/runs/{body['runs'][0]}")
    assert run.status == 200, run
    assert run.json()["event"] == body["event"]
    assert run.json()["status"] in ("queued", "running", "succeeded")
    done = srv.wait_run(body["runs"][0])
    assert done["status"] == "succeeded"
    assert done["steps"][0]["output"] == {"body": {"hello": "world"}, "method": "POST"}


def test_if_false_gives_no_run_and_records_skip(server):
    srv = server(workflows={"filtered": """
        name: filtered
        on:
          webhook:
            path: /f
        if: event.body.kind == "wanted"
        steps:
          - id: one
            run: return 1
    """})
    r = srv.post("/f", {"kind": "other"})
    assert r.status == 202, r
    assert r.json()["runs"] == []
    ev = api_ok(srv, f"/api/events/{r.json()['event']}")
    assert ev["runs"] == []
    assert isinstance(ev["skipped"], list) and len(ev["skipped"]) == 1
    skip = ev["skipped"][0]
    assert skip["workflow"] == "filtered"
    assert isinstance(skip["reason"], str) and skip["reason"]
    # and the true branch still runs
    r = srv.post("/f", {"kind": "wanted"})
    assert r.status == 202 and len(r.json()["runs"]) == 1


def test_shared_path_each_workflow_gets_a_run(server):
    wf = """
        name: {name}
        on:
          webhook:
            path: /shared
        steps:
          - id: s
            run: return run.workflow
    """
    srv = server(workflows={n: wf.format(name=n) for n in ("wa", "wb", "wc")})
    r = srv.post("/shared", {"x": 1})
    assert r.status == 202, r
    runs = r.json()["runs"]
    assert len(runs) == 3 and len(set(runs)) == 3
    names = sorted(srv.wait_run(rid)["workflow"] for rid in runs)
    assert names == ["wa", "wb", "wc"]
    for rid in runs:
        rec = srv.run(rid)
        assert rec["steps"][0]["output"] == rec["workflow"]


# --- 400 / 404 / 405 / 413 ----------------------------------------------------

def test_400_invalid_json(server):
    srv = server(workflows={"simple": SIMPLE})
    r = srv.post("/simple", '{"a": 1,\n "b": }',
                 headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    msg = r.json()["error"]
    assert isinstance(msg, str)
    # the message says where the problem is
    assert re.search(r"line\W*2|offset|position|byte", msg, re.I), msg
    # vendor JSON media types count as JSON too
    r = srv.post("/simple", "{nope", headers={"Content-Type": "application/vnd.api+json"})
    assert r.status == 400, r
    # no run was created
    runs = api_ok(srv, "/api/runs?workflow=simple")["runs"]
    assert runs == []


def test_non_json_content_type_is_not_validated(server):
    srv = server(workflows={"simple": SIMPLE})
    r = srv.post("/simple", "{not json", headers={"Content-Type": "text/plain"})
    assert r.status == 202, r
    run = srv.wait_run(r.json()["runs"][0])
    assert run["status"] == "succeeded"
    assert run["steps"][0]["output"]["method"] == "POST"


def test_undecodable_body_is_nil_in_lua(server):
    srv = server(workflows={"t": """
        name: t
        on:
          webhook:
            path: /t
        steps:
          - id: s
            run: return { t = type(event.body), isnil = event.body == nil }
    """})
    r = srv.post("/t", "{not json", headers={"Content-Type": "text/plain"})
    run = srv.wait_run(r.json()["runs"][0])
    assert run["steps"][0]["output"] == {"t": "nil", "isnil": True}


def test_form_body_decoded(server):
    srv = server(workflows={"simple": SIMPLE})
    r = srv.post("/simple", "name=J%C3%BCrgen+X&tag=a&empty=",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 202, r
    run = srv.wait_run(r.json()["runs"][0])
    assert run["status"] == "succeeded", run
    body = run["steps"][0]["output"]["body"]
    assert body["name"] == "J\u00fcrgen X"
    assert body["tag"] == "a"
    assert body.get("empty", "") == ""


def test_404_unknown_path(server):
    srv = server(workflows={"simple": SIMPLE})
    r = srv.post("/nope", {"a": 1})
    assert r.status == 404, r
    assert isinstance(r.json()["error"], str)


def test_errors_are_json_whatever_bytes_the_path_holds(server):
    """An error's message quotes what the sender wrote, which need not be
    UTF-8, and is cut at 1 KiB, maybe inside a character: the body is
    still {"error": ...}, with U+FFFD for each invalid sequence (it used
    to be empty, jansson refusing the message)."""
    srv = server(workflows={"simple": SIMPLE})
    r = srv.post("/%ff", {"a": 1})
    assert r.status == 404, r
    assert r.json() == {"error": "no workflow has the path '/\ufffd'"}
    r = srv.post("/x" + "%C3%A9" * 600, {"a": 1})
    assert r.status == 404, r
    msg = r.json()["error"]
    assert msg.startswith("no workflow has the path '/x\u00e9\u00e9"), msg
    r = srv.api("GET", "/api/runs?status=%ff")
    assert r.status == 400, r
    assert r.json()["error"].startswith("unknown status '\ufffd'"), r


def test_405_with_allow(server):
    srv = server(workflows={"m": """
        name: m
        on:
          webhook:
            path: /m
            methods: [POST, PUT]
        steps:
          - id: s
            run: return event.method
    """})
    r = srv.request("DELETE", "/m")
    assert r.status == 405, r
    allow = {m.strip() for m in r.headers["allow"].split(",")}
    assert allow == {"POST", "PUT"}
    assert isinstance(r.json()["error"], str)
    r = srv.request("PUT", "/m", {"a": 1})
    assert r.status == 202, r
    assert srv.wait_run(r.json()["runs"][0])["steps"][0]["output"] == "PUT"


def test_413_content_length(server):
    srv = server(workflows={"simple": SIMPLE}, args=["--max-body", "1KiB"])
    ok = srv.post("/simple", {"a": "x" * 900})
    assert ok.status == 202, ok
    r = srv.post("/simple", {"a": "x" * 2000})
    assert r.status == 413, r
    assert isinstance(r.json()["error"], str)


def _chunked_post(port, path, chunks, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", path)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        try:
            for c in chunks:
                conn.send(b"%x\r\n%s\r\n" % (len(c), c))
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer 413 and close before reading everything
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def test_413_chunked(server):
    srv = server(workflows={"simple": SIMPLE}, args=["--max-body", "1KiB"])
    status, body = _chunked_post(srv.port, "/simple", [b'{"a":"', b"y" * 300, b'"}'],
                                 {"Content-Type": "application/json"})
    assert status == 202, body
    status, body = _chunked_post(srv.port, "/simple",
                                 [b'{"a":"'] + [b"z" * 512] * 8 + [b'"}'],
                                 {"Content-Type": "application/json"})
    assert status == 413, body
    assert "error" in json.loads(body)


# --- respond: sync -----------------------------------------------------------

def test_sync_status_headers_body(server):
    srv = server(workflows={"s": """
        name: s
        on:
          webhook:
            path: /s
            methods: [GET, POST]
            respond: sync
            timeout: 10s
        steps:
          - id: first
            run: return 41
          - id: answer
            run: |
              return { status = 201, headers = { ["X-Answer"] = "yes" },
                       body = { n = steps.first + 1, who = event.query.who } }
    """})
    r = srv.get("/s?who=me")
    assert r.status == 201, r
    assert r.headers["x-answer"] == "yes"
    assert r.json() == {"n": 42, "who": "me"}


def test_sync_string_body(server):
    srv = server(workflows={"s": """
        name: s
        on:
          webhook:
            path: /s
            respond: sync
        steps:
          - id: answer
            run: |
              return { status = 200, headers = { ["Content-Type"] = "text/plain" },
                       body = "plain text" }
    """})
    r = srv.post("/s", {})
    assert r.status == 200, r
    assert r.body == "plain text"
    assert r.headers["content-type"].startswith("text/plain")


def test_sync_plain_output(server):
    srv = server(workflows={"s": """
        name: s
        on:
          webhook:
            path: /s
            respond: sync
        steps:
          - id: answer
            run: return { sum = event.body.a + event.body.b, list = {1, 2} }
    """})
    r = srv.post("/s", {"a": 2, "b": 3})
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"sum": 5, "list": [1, 2]}


def test_sync_timeout_gives_202_and_run_continues(server):
    srv = server(workflows={"slow": """
        name: slow
        on:
          webhook:
            path: /slow
            respond: sync
            timeout: 300ms
        steps:
          - id: wait
            timeout: 20s
            run: |
              local n = 0
              while db.one("SELECT COUNT(*) AS n FROM go").n == 0 do n = n + 1 end
              return "released"
    """})
    data_tables(srv.data, "CREATE TABLE go(x INTEGER)")
    r = srv.post("/slow", {})
    assert r.status == 202, r
    body = r.json()
    assert body["timeout"] is True
    assert len(body["runs"]) == 1 and body["event"]
    rid = body["runs"][0]
    assert srv.run(rid)["status"] in ("queued", "running")
    data_exec(srv.data, "INSERT INTO go VALUES (1)")
    run = srv.wait_run(rid, timeout=20)
    assert run["status"] == "succeeded", run
    assert run["steps"][0]["output"] == "released"


# --- operations ----------------------------------------------------------------

def test_healthz(server):
    srv = server(workflows={"simple": SIMPLE})
    r = srv.get("/healthz")
    assert r.status == 200
    assert r.body.strip() == "ok"


def test_metrics(server):
    srv = server(workflows={"simple": SIMPLE})
    assert srv.post("/simple", {}).status == 202
    r = srv.get("/metrics")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.body
    for name in ("hookflow_events_total", "hookflow_queue_depth"):
        assert f"# HELP {name} " in text
        assert re.search(rf"^# TYPE {name} (counter|gauge)$", text, re.M), name
        assert re.search(rf"^{name}(\{{[^}}]*\}})? \d", text, re.M), name
    # the 202 just answered is counted
    total = sum(float(m.group(1)) for m in
                re.finditer(r"^hookflow_events_total(?:\{[^}]*\})? (\S+)$", text, re.M))
    assert total >= 1


def test_admin_requires_token(server):
    srv = server(workflows={"simple": SIMPLE})
    for path in ("/api/workflows", "/api/runs", "/api/runs/x", "/api/events/x"):
        r = srv.get(path)
        assert r.status == 401, (path, r)
        assert "error" in r.json()
        r = srv.get(path, headers={"Authorization": "Bearer wrong-token"})
        assert r.status == 401, (path, r)
        r = srv.get(path, headers={"Authorization": "test-token"})
        assert r.status == 401, (path, r)
    assert srv.api("GET", "/api/workflows").status == 200


def test_api_workflows(server):
    srv = server(workflows={"simple": SIMPLE, "other": """
        name: other
        description: the other one
        on:
          webhook:
            path: /other
        steps:
          - id: s
            run: return 1
    """})
    wfs = api_ok(srv, "/api/workflows")["workflows"]
    by = {w["name"]: w for w in wfs}
    assert set(by) == {"simple", "other"}
    assert by["other"]["path"] == "/other"
    assert by["other"]["description"] == "the other one"


def test_api_runs_filters_and_order(server):
    srv = server(workflows={"simple": SIMPLE, "bad": """
        name: bad
        on:
          webhook:
            path: /bad
        steps:
          - id: s
            run: error("boom")
    """})
    ids = []
    for i in range(4):
        r = srv.post("/simple", {"i": i})
        ids.append(r.json()["runs"][0])
        srv.wait_run(ids[-1])
    bad = srv.post("/bad", {}).json()["runs"][0]
    srv.wait_run(bad)
    runs = api_ok(srv, "/api/runs")["runs"]
    assert [r["id"] for r in runs] == [bad] + ids[::-1]
    runs = api_ok(srv, "/api/runs?workflow=simple")["runs"]
    assert [r["id"] for r in runs] == ids[::-1]
    runs = api_ok(srv, "/api/runs?workflow=simple&limit=2")["runs"]
    assert [r["id"] for r in runs] == ids[::-1][:2]
    runs = api_ok(srv, "/api/runs?status=failed")["runs"]
    assert [r["id"] for r in runs] == [bad]
    runs = api_ok(srv, "/api/runs?status=succeeded&limit=1")["runs"]
    assert [r["id"] for r in runs] == [ids[-1]]
    assert api_ok(srv, "/api/runs?workflow=nobody")["runs"] == []


def test_api_run_shape(server):
    srv = server(workflows={"shape": """
        name: shape
        on:
          webhook:
            path: /shape
        steps:
          - id: a
            run: |
              log.info("in a")
              return { v = 1 }
          - id: b
            if: false
            run: return 2
          - id: c
            run: error("c failed")
    """})
    r = srv.post("/shape", {})
    rid = r.json()["runs"][0]
    run = srv.wait_run(rid)
    for k in ("id", "workflow", "event", "status", "attempt", "created_at",
              "finished_at", "error", "steps"):
        assert k in run, k
    assert run["id"] == rid and run["workflow"] == "shape"
    assert run["event"] == r.json()["event"]
    assert run["status"] == "failed" and run["attempt"] == 1
    assert isinstance(run["error"], str) and "c failed" in run["error"]
    assert isinstance(run["created_at"], str) and isinstance(run["finished_at"], str)
    assert [s["id"] for s in run["steps"]] == ["a", "b", "c"]
    for s in run["steps"]:
        for k in ("id", "status", "output", "error", "logs", "attempts",
                  "started_at", "finished_at"):
            assert k in s, (s["id"], k)
        assert isinstance(s["logs"], list)
    a, b, c = run["steps"]
    assert a["status"] == "succeeded" and a["output"] == {"v": 1} and a["error"] is None
    assert a["attempts"] == 1 and a["started_at"] and a["finished_at"]
    assert any("in a" in json.dumps(l) for l in a["logs"])
    assert b["status"] == "skipped" and b["output"] is None
    assert c["status"] == "failed" and "c failed" in c["error"]
    assert srv.api("GET", "/api/runs/run_does_not_exist").status == 404


def test_api_event_shape(server):
    srv = server(workflows={"simple": SIMPLE})
    raw = '{"k": [1, 2, 3]}'
    r = srv.post("/simple?x=1", raw, headers={"Content-Type": "application/json",
                                               "X-Custom-Thing": "Val"})
    eid = r.json()["event"]
    ev = api_ok(srv, f"/api/events/{eid}")
    for k in ("id", "path", "method", "headers", "body", "received_at", "runs"):
        assert k in ev, k
    assert ev["id"] == eid
    assert ev["path"] == "/simple"
    assert ev["method"] == "POST"
    assert ev["body"] == raw
    assert isinstance(ev["headers"], dict)
    hdrs = {k.lower(): v for k, v in ev["headers"].items()}
    assert hdrs["x-custom-thing"] == "Val"
    assert ev["runs"] == r.json()["runs"]
    assert isinstance(ev["received_at"], str)
    assert srv.api("GET", "/api/events/ev_does_not_exist").status == 404


# --- configuration -------------------------------------------------------------

def test_generated_admin_token(server):
    srv = server(workflows={"simple": SIMPLE}, token=None)
    m = wait_for(lambda: re.search(r"hookflow: admin token: (\S+)", srv.stderr()),
                 what="token line")
    token = m.group(1)
    assert len(token) >= 16
    r = srv.get("/api/workflows", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200, r
    assert srv.get("/api/workflows").status == 401


def test_env_vars_honoured(server):
    srv = server(workflows={"simple": SIMPLE}, token=None,
                 env={"HOOKFLOW_ADMIN_TOKEN": "from-env-token",
                      "HOOKFLOW_MAX_BODY": "1KiB"})
    assert "admin token:" not in srv.stderr()
    r = srv.get("/api/workflows", headers={"Authorization": "Bearer from-env-token"})
    assert r.status == 200, r
    assert srv.post("/simple", {"a": "x" * 2000}).status == 413


def test_flag_beats_env(server):
    srv = server(workflows={"simple": SIMPLE}, token="from-flag",
                 env={"HOOKFLOW_ADMIN_TOKEN": "from-env", "HOOKFLOW_MAX_BODY": "1KiB"},
                 args=["--max-body", "64KiB"])
    assert srv.get("/api/workflows",
                   headers={"Authorization": "Bearer from-flag"}).status == 200
    assert srv.get("/api/workflows",
                   headers={"Authorization": "Bearer from-env"}).status == 401
    assert srv.post("/simple", {"a": "x" * 2000}).status == 202


def signals_caught(pid, *sigs):
    """True once the process has handlers for sigs (SigCgt in /proc/PID/status).
    Used so these tests check the shutdown path, not the start-up race that
    test_sigterm_right_after_listening_line_exits_zero covers."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    mask = int(line.split()[1], 16)
                    return all(mask & (1 << (int(s) - 1)) for s in sigs)
    except OSError:
        return True   # no /proc: nothing to wait for
    return True


def test_sigterm_exits_zero(server):
    srv = server(workflows={"simple": SIMPLE})
    wait_for(lambda: signals_caught(srv.proc.pid, signal.SIGTERM), what="handlers")
    r = srv.post("/simple", {})
    srv.wait_run(r.json()["runs"][0])
    assert srv.stop(signal.SIGTERM) == 0
    # the port is closed afterwards
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()


def test_sigint_exits_zero(server):
    srv = server(workflows={"simple": SIMPLE})
    assert srv.get("/healthz").status == 200
    wait_for(lambda: signals_caught(srv.proc.pid, signal.SIGINT), what="handlers")
    assert srv.stop(signal.SIGINT) == 0


# Regression: ingest.c ingest_written() used the request after resuming it
# (use-after-free: acknowledged runs stayed queued, or SIGSEGV).
def test_burst_every_acknowledged_run_executes(server):
    import threading
    srv = server(workflows={"simple": SIMPLE})
    ids, errors, lock = [], [], threading.Lock()

    def client(n):
        for i in range(n):
            try:
                r = srv.post("/simple", {"i": i})
                assert r.status == 202, r
                with lock:
                    ids.extend(r.json()["runs"])
            except Exception as e:   # noqa: BLE001 - collected and asserted below
                with lock:
                    errors.append(repr(e))
                return

    threads = [threading.Thread(target=client, args=(50,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, (errors[:3], srv.proc.poll())
    assert len(ids) == 200

    def all_done():
        runs = srv.api("GET", "/api/runs?limit=1000").json()["runs"]
        done = {r["id"] for r in runs if r["status"] == "succeeded"}
        return set(ids) <= done

    wait_for(all_done, timeout=30, what="every acknowledged run to succeed")


def test_sigterm_right_after_listening_line_exits_zero(server):
    codes = []
    for _ in range(8):
        srv = server(workflows={"simple": SIMPLE})
        codes.append(srv.stop(signal.SIGTERM))
    assert codes == [0] * 8


def test_binary_body_shown_base64_in_the_event(server):
    import base64
    srv = server(workflows={"simple": SIMPLE})
    raw = b"\xff\xfe\x00binary\x80"
    r = srv.post("/simple", raw, {"Content-Type": "application/octet-stream"})
    assert r.status == 202, r
    ev = api_ok(srv, f"/api/events/{r.json()['event']}")
    assert ev["body_encoding"] == "base64"
    assert base64.b64decode(ev["body"]) == raw


# --- --http-io: how the HTTP threads wait (epoll by default, or poll) --------

SYNC_ECHO = """
name: echo
on:
  webhook:
    path: /echo
    respond: sync
    timeout: 10s
steps:
  - id: answer
    run: |
      return { status = 200, body = { n = event.body.n, q = event.query.q } }
"""


@pytest.mark.parametrize("io", ["poll", "epoll"])
def test_http_io_modes_answer_after_commit_on_one_connection(server, io):
    srv = server(workflows={"simple": SIMPLE, "echo": SYNC_ECHO},
                 args=["--http-io", io, "--http-threads", "2"])
    # One keep-alive connection: each request is suspended until its commit
    # (or its run) and resumed; the next one reuses the connection.
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    ids = []
    for i in range(20):
        path = "/simple?q=%d" % i if i % 2 else "/echo?q=%d" % i
        conn.request("POST", path, body=json.dumps({"n": i}),
                     headers={"Content-Type": "application/json",
                              "X-Odd": 'a"b\\c\té'.encode()})
        r = conn.getresponse()
        body = json.loads(r.read())
        if i % 2:
            assert r.status == 202, body
            assert set(body) == {"event", "runs"} and len(body["runs"]) == 1
            ids.append(body["event"])
        else:
            assert r.status == 200 and body == {"n": i, "q": str(i)}, body
    conn.close()
    # The headers and the query are stored as sent (escaped JSON text).
    ev = api_ok(srv, "/api/events/" + ids[0])
    assert ev["headers"]["x-odd"] == 'a"b\\c\té', ev
    assert ev["query"] == {"q": "1"}, ev


def test_http_io_refuses_an_unknown_mode(tmp_path):
    from test_cli import hf
    p = hf("serve", "--http-io", "select", "--state", tmp_path / "s.db",
           cwd=tmp_path, timeout=10)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "--http-io" in p.stderr, p.stderr
    assert not (tmp_path / "s.db").exists()


# --- the HTTP threads (ingest_loop.c) ----------------------------------------

def http_threads(pid):
    """How many of the server's threads are named hf-http."""
    n = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                n += f.read().strip() == "hf-http"
        except FileNotFoundError:  # a thread that just exited
            pass
    return n


@pytest.mark.parametrize("threads", [1, 3])
def test_http_threads_share_the_port_and_answer_every_connection(server,
                                                                 threads):
    # With epoll, each HTTP thread runs a daemon of its own on the one
    # listening socket; the writer wakes a thread once for all of its
    # connections resumed by a commit. Many keep-alive connections at once,
    # each with several requests: every one gets its 202 after its commit,
    # whichever thread took its connection, and every run executes.
    import threading
    srv = server(workflows={"simple": SIMPLE},
                 args=["--http-threads", str(threads)])
    assert http_threads(srv.proc.pid) == threads
    ids, errors, lock = [], [], threading.Lock()

    def client(c):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port,
                                              timeout=20)
            for i in range(8):
                conn.request("POST", "/simple", body=json.dumps({"c": c}),
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                body = json.loads(r.read())
                assert r.status == 202, (r.status, body)
                with lock:
                    ids.extend(body["runs"])
            conn.close()
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            with lock:
                errors.append(repr(e))

    clients = [threading.Thread(target=client, args=(c,)) for c in range(24)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(60)
    assert not errors, (errors[:3], srv.proc.poll())
    assert len(ids) == 24 * 8 and len(set(ids)) == len(ids)

    def all_done():
        runs = srv.api("GET", "/api/runs?limit=1000").json()["runs"]
        return set(ids) <= {r["id"] for r in runs
                            if r["status"] == "succeeded"}

    wait_for(all_done, timeout=30, what="every acknowledged run to succeed")
    # Stopped, the daemons close the shared socket once: a new server binds
    # the same port at once.
    port = srv.port
    assert srv.stop(signal.SIGTERM) == 0
    again = server(workflows={"simple": SIMPLE},
                   args=["--http-threads", str(threads),
                         "--listen", "127.0.0.1:%d" % port])
    assert again.port == port
    assert again.post("/simple", {}).status == 202


def test_http_io_poll_uses_libmicrohttpds_own_threads(server):
    srv = server(workflows={"simple": SIMPLE},
                 args=["--http-io", "poll", "--http-threads", "2"])
    assert http_threads(srv.proc.pid) == 0
    assert srv.post("/simple", {}).status == 202


def server_has_read(port, client):
    """Whether the server's end of the client socket has nothing left to
    read (its receive queue in /proc/net/tcp is empty): the server took the
    request."""
    cport = client.getsockname()[1]
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (int(local.split(":")[1], 16) == port
                    and int(remote.split(":")[1], 16) == cport):
                return int(fields[4].split(":")[1], 16) == 0
    return False


def post_read(srv, who):
    """A POST to /simple on a connection of its own, once the server has
    read it (server_has_read); the socket, its answer unread."""
    body = json.dumps({"who": who}).encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    s.sendall(b"POST /simple HTTP/1.1\r\nHost: t\r\n"
              b"Content-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    wait_for(lambda: server_has_read(srv.port, s), timeout=10,
             what="the server to read the request")
    return s


class StateWriteLock:
    """Holds the write lock of srv's state database, so that the writer's
    commits wait: SQLite's (BEGIN IMMEDIATE on the file), or on PostgreSQL
    a lock on the events table that every event's INSERT waits for (a psql
    of its own, in a transaction until release())."""

    def __init__(self, srv):
        import subprocess
        from conftest import PG_MODE, pg_cluster
        self.sqlite = self.psql = None
        if not PG_MODE:
            import sqlite3
            self.sqlite = sqlite3.connect(str(srv.state), timeout=10,
                                          isolation_level=None)
            self.sqlite.execute("BEGIN IMMEDIATE")
            return
        c = pg_cluster()
        self.psql = subprocess.Popen(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(c.dir), "-p", str(c.port), "-U", "postgres",
             "-d", str(srv.state).rsplit("/", 1)[1]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.psql.stdin.write("BEGIN;\nLOCK TABLE events IN EXCLUSIVE MODE;"
                              "\nSELECT 'locked';\n")
        self.psql.stdin.flush()
        assert self.psql.stdout.readline().strip() == "locked"

    def release(self):
        if self.sqlite is not None:
            self.sqlite.execute("ROLLBACK")
            self.sqlite.close()
            self.sqlite = None
        if self.psql is not None:
            self.psql.stdin.write("ROLLBACK;\n")
            self.psql.stdin.close()
            assert self.psql.wait(30) == 0
            self.psql = None


def answer_of(s):
    """The answer on socket s (a JSON body: read up to its closing brace,
    or until the server closes), and s closed."""
    got = b""
    while not got.endswith(b"}"):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    return got


def test_a_request_waiting_for_its_commit_outlives_its_client(server):
    # On hookflow's HTTP threads a request waiting for its commit is held in
    # its thread's loop, not suspended (ingest_sync.c). The state database
    # is locked by another connection, so the commits wait: meanwhile one
    # client resets its connection, one shuts its sending side, one waits.
    # Once the lock goes, the two still there get their 202, the reset
    # one's event is stored all the same and its run executes, and the
    # server goes on answering.
    import struct
    import threading
    srv = server(workflows={"simple": SIMPLE}, args=["--http-threads", "1"])
    assert srv.post("/simple", {"warm": 1}).status == 202

    lock = StateWriteLock(srv)
    answers = {}

    def waiting():
        answers["waiting"] = srv.post("/simple", {"who": "waiting"}).status

    try:
        reset = post_read(srv, "reset")
        reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
        reset.close()
        half = post_read(srv, "half")
        half.shutdown(socket.SHUT_WR)
        t = threading.Thread(target=waiting)
        t.start()
    finally:
        lock.release()
    t.join(30)
    assert answers == {"waiting": 202}
    got = answer_of(half)
    assert got.startswith(b"HTTP/1.1 202 "), got

    def all_ran():
        runs = srv.api("GET", "/api/runs?limit=100").json()["runs"]
        return len(runs) == 4 and all(r["status"] == "succeeded"
                                      for r in runs)

    wait_for(all_ran, timeout=30, what="four runs, the reset one's included")
    assert srv.post("/simple", {"after": 1}).status == 202
    # Answered or not, each stored event is counted as accepted.
    from flowutil import metric
    assert metric(srv, "hookflow_events_total", workflow="simple",
                  status="202") == 5
    assert srv.proc.poll() is None


def test_sigterm_answers_the_requests_waiting_for_their_commit(server):
    # SIGTERM while requests wait for their commit (held in their HTTP
    # thread's loop, ingest_sync.c): the drain waits for the commits, each
    # of them is answered 202 before the server exits, and their events and
    # runs are there at the next start.
    import time
    srv = server(workflows={"simple": SIMPLE})
    warm = srv.post("/simple", {"warm": 1})
    assert srv.wait_run(warm.json()["runs"][0])["status"] == "succeeded"
    lock = StateWriteLock(srv)
    try:
        socks = [post_read(srv, "w%d" % i) for i in range(4)]
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert srv.proc.poll() is None, "exited before its commits"
    finally:
        lock.release()
    answers = [answer_of(s) for s in socks]
    assert all(a.startswith(b"HTTP/1.1 202 ") for a in answers), answers
    assert srv.proc.wait(30) == 0
    srv.start()
    runs = srv.api("GET", "/api/runs?limit=100").json()["runs"]
    assert len(runs) == 5
    for r in runs:
        assert srv.wait_run(r["id"])["status"] == "succeeded"
