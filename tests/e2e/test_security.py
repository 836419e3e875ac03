"""End-to-end tests for issue 4, "Security and hostile input": inbound
signatures, dedupe, the Lua sandbox and HTTP hostility, against the real
`hookflow serve`. Standard library only; every wait and socket is bounded, and
the tests assert outcomes, never timings."""
import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import random
import re
import socket
import subprocess
import textwrap
import threading
import time
import uuid

from conftest import BIN, request, wait_for
from flowutil import metric

TOKEN = "test-token"

# Secrets come from the environment (${NAME}); each value is unique so that a
# leak anywhere can be found by searching for it.
SECRET = "hfsec-" + uuid.uuid4().hex
SECRET_OLD = "hfold-" + uuid.uuid4().hex
SW_KEY = os.urandom(24)
SW_SECRET = "whsec_" + base64.b64encode(SW_KEY).decode()
SW_KEY_OLD = os.urandom(24)
SW_SECRET_OLD = "whsec_" + base64.b64encode(SW_KEY_OLD).decode()
ENV = {"HF_T_SECRET": SECRET, "HF_T_OLD": SECRET_OLD,
       "HF_T_SW": SW_SECRET, "HF_T_SW_OLD": SW_SECRET_OLD}
ALL_SECRETS = [SECRET, SECRET_OLD, SW_SECRET, SW_SECRET_OLD,
               base64.b64encode(SW_KEY).decode(),
               base64.b64encode(SW_KEY_OLD).decode()]


def verified(name, scheme, secret="secret: ${HF_T_SECRET}", extra=""):
    """A workflow on /NAME verified by scheme; secret is one or more lines of
    the verify block (without indentation)."""
    verify = "".join(f"      {line}\n" for line in secret.split("\n"))
    return (f"name: {name}\non:\n  webhook:\n    path: /{name}\n"
            f"    verify:\n      scheme: {scheme}\n{verify}{extra}"
            f"steps:\n  - id: s\n    run: return {{ ok = true }}\n")


def hexmac(key, msg):
    if isinstance(key, str):
        key = key.encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def b64mac(key, msg):
    if isinstance(key, str):
        key = key.encode()
    return base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()


def sign(scheme, body, key=None, ts=None, msg_id=None):
    """Headers that sign body under scheme (key defaults to the scheme's
    current secret; ts to now)."""
    ts = int(time.time()) if ts is None else ts
    if scheme == "hmac-sha256":
        return {"X-Custom-Sig": "sha256=" + hexmac(key or SECRET, body)}
    if scheme == "github":
        return {"X-Hub-Signature-256": "sha256=" + hexmac(key or SECRET, body),
                "X-GitHub-Delivery": msg_id or str(uuid.uuid4())}
    if scheme == "stripe":
        good = hexmac(key or SECRET, f"{ts}.".encode() + body)
        return {"Stripe-Signature": f"t={ts},v1={'0' * 64},v1={good},v0=abc"}
    if scheme == "slack":
        return {"X-Slack-Signature": "v0=" + hexmac(key or SECRET,
                                                    f"v0:{ts}:".encode() + body),
                "X-Slack-Request-Timestamp": str(ts)}
    if scheme == "shopify":
        return {"X-Shopify-Hmac-Sha256": b64mac(key or SECRET, body),
                "X-Shopify-Webhook-Id": msg_id or str(uuid.uuid4())}
    if scheme == "standard-webhooks":
        msg_id = msg_id or "msg_" + uuid.uuid4().hex
        sig = b64mac(key or SW_KEY, f"{msg_id}.{ts}.".encode() + body)
        return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
                "webhook-signature": f"v1,{base64.b64encode(b'x' * 32).decode()} v1,{sig}"}
    raise ValueError(scheme)


SCHEMES = {
    "hmac": ("hmac-sha256", "secret: ${HF_T_SECRET}\nheader: X-Custom-Sig"),
    "gh": ("github", "secret: ${HF_T_SECRET}"),
    "stripe": ("stripe", "secret: ${HF_T_SECRET}"),
    "slack": ("slack", "secret: ${HF_T_SECRET}"),
    "shopify": ("shopify", "secret: ${HF_T_SECRET}"),
    "sw": ("standard-webhooks", "secret: ${HF_T_SW}"),
}
SIG_HEADER = {"hmac-sha256": "X-Custom-Sig", "github": "X-Hub-Signature-256",
              "stripe": "Stripe-Signature", "slack": "X-Slack-Signature",
              "shopify": "X-Shopify-Hmac-Sha256",
              "standard-webhooks": "webhook-signature"}


def json_headers(h):
    return {"Content-Type": "application/json", **h}


def runs_of(srv, workflow):
    r = srv.api("GET", f"/api/runs?workflow={workflow}&limit=1000")
    assert r.status == 200, r
    return r.json()["runs"]


def assert_no_secret(text, where):
    for s in ALL_SECRETS:
        assert s not in text, f"a secret appears in {where}"


# --- inbound verification -------------------------------------------------------

def test_each_scheme_valid_invalid_missing(server):
    srv = server(workflows={n: verified(n, s, sec) for n, (s, sec) in SCHEMES.items()},
                 env=ENV)
    texts = []
    for name, (scheme, _) in SCHEMES.items():
        body = json.dumps({"scheme": scheme, "n": random.random()}).encode()
        # valid: 202 and a run that succeeds
        r = srv.post(f"/{name}", body, json_headers(sign(scheme, body)))
        assert r.status == 202, (name, r)
        assert len(r.json()["runs"]) == 1, (name, r)
        done = srv.wait_run(r.json()["runs"][0])
        assert done["status"] == "succeeded", (name, done)
        # "sha256=" prefix is optional for hmac-sha256
        if scheme == "hmac-sha256":
            h = {"X-Custom-Sig": hexmac(SECRET, body)}
            assert srv.post(f"/{name}", body, json_headers(h)).status == 202
        failures = 0
        # wrong secret, tampered body, missing signature header, nothing at all
        bad = [
            sign(scheme, body, key=b"not-the-secret"),
            sign(scheme, body + b" "),
            {k: v for k, v in sign(scheme, body).items() if k != SIG_HEADER[scheme]},
            {},
        ]
        for h in bad:
            r = srv.post(f"/{name}", body, json_headers(h))
            assert r.status == 401, (name, h, r)
            assert r.json()["error"], (name, r)
            texts.append(r.body)
            failures += 1
        # garbage in the signature header
        for junk in ("", "sha256=", "v1,", "t=,v1=", "x" * 5000, "sha256=" + "zz" * 32):
            h = dict(sign(scheme, body))
            h[SIG_HEADER[scheme]] = junk
            r = srv.post(f"/{name}", body, json_headers(h))
            assert r.status == 401, (name, junk[:20], r)
            failures += 1
        # exactly one run was created: the valid delivery (two for hmac)
        want = 2 if scheme == "hmac-sha256" else 1
        assert len(runs_of(srv, name)) == want, name
        assert (metric(srv, "hookflow_signature_failures_total",
                       workflow=name) or 0) == failures, name
    for t in texts:
        assert_no_secret(t, "a 401 body")
        assert "signature" in json.loads(t)["error"]


def test_stale_and_future_timestamps(server):
    names = {"stripe": "stripe", "slack": "slack", "sw": "standard-webhooks"}
    srv = server(workflows={n: verified(n, s, SCHEMES[n][1]) for n, s in names.items()},
                 env=ENV)
    now = int(time.time())
    for name, scheme in names.items():
        body = b'{"stale":true}'
        for ts in (now - 3600, now - 301, now + 3600):
            r = srv.post(f"/{name}", body, json_headers(sign(scheme, body, ts=ts)))
            assert r.status == 401, (name, ts, r)
            assert "timestamp" in r.json()["error"], r
        # inside the default 5m tolerance
        r = srv.post(f"/{name}", body, json_headers(sign(scheme, body, ts=now - 120)))
        assert r.status == 202, (name, r)
        assert len(runs_of(srv, name)) == 1


def test_tolerance_setting(server):
    srv = server(workflows={"slack": verified(
        "slack", "slack", "secret: ${HF_T_SECRET}\ntolerance: 10s")}, env=ENV)
    body = b"{}"
    now = int(time.time())
    assert srv.post("/slack", body, json_headers(sign("slack", body, ts=now - 120))).status == 401
    assert srv.post("/slack", body, json_headers(sign("slack", body, ts=now))).status == 202


def test_rotation_accepts_every_listed_secret(server):
    rot = 'secrets: ["${HF_T_SECRET}", "${HF_T_OLD}"]'
    rot_sw = 'secrets: ["${HF_T_SW}", "${HF_T_SW_OLD}"]'
    srv = server(workflows={"gh": verified("gh", "github", rot),
                            "sw": verified("sw", "standard-webhooks", rot_sw),
                            "stripe": verified("stripe", "stripe", rot)}, env=ENV)
    body = b'{"rotate":1}'
    for name, scheme, keys in (("gh", "github", (SECRET, SECRET_OLD)),
                               ("stripe", "stripe", (SECRET, SECRET_OLD)),
                               ("sw", "standard-webhooks", (SW_KEY, SW_KEY_OLD))):
        for k in keys:
            r = srv.post(f"/{name}", body, json_headers(sign(scheme, body, key=k)))
            assert r.status == 202, (name, r)
        r = srv.post(f"/{name}", body, json_headers(sign(scheme, body, key=b"third")))
        assert r.status == 401, (name, r)
        assert len(runs_of(srv, name)) == 2


def test_secrets_never_leave_the_process(server):
    wfs = {n: verified(n, s, sec) for n, (s, sec) in SCHEMES.items()}
    wfs["rot"] = verified("rot", "github", 'secrets: ["${HF_T_SECRET}", "${HF_T_OLD}"]')
    srv = server(workflows=wfs, env=ENV)
    seen = []
    for name, (scheme, _) in SCHEMES.items():
        body = b'{"leak":"check"}'
        ok = srv.post(f"/{name}", body, json_headers(sign(scheme, body)))
        assert ok.status == 202
        srv.wait_run(ok.json()["runs"][0])
        bad = srv.post(f"/{name}", body, json_headers(sign(scheme, body, key=b"nope")))
        assert bad.status == 401
        seen.append(bad.body)
        seen.append(srv.api("GET", f"/api/events/{ok.json()['event']}").body)
        for run in runs_of(srv, name):
            seen.append(srv.api("GET", f"/api/runs/{run['id']}").body)
    wf = srv.api("GET", "/api/workflows")
    assert wf.status == 200
    by = {w["name"]: w for w in wf.json()["workflows"]}
    assert by["gh"]["verify"] == "github"
    seen.append(wf.body)
    seen.append(srv.get("/metrics").body)
    # a reload (SIGHUP) logs nothing secret either
    srv.proc.send_signal(1)
    assert srv.get("/healthz").status == 200
    for text in seen:
        assert_no_secret(text, "an API answer")
    wait_for(lambda: "signature rejected" in srv.stderr(), 15,
             what="the log line")
    stderr = srv.stderr()
    assert_no_secret(stderr, "the server's stderr")
    # nor the signature values that were refused
    assert hexmac(b"nope", b'{"leak":"check"}') not in stderr


def test_missing_secret_env_leaves_the_workflow_out(server):
    srv = server(workflows={"gh": verified("gh", "github", "secret: ${HF_T_UNSET_VAR}")},
                 env={**ENV, "HF_T_UNSET_VAR": ""})
    # not silently: the path answers 503 so that the sender retries (see
    # test_load_errors.py)
    assert srv.post("/gh", {}).status == 503
    wait_for(lambda: "HF_T_UNSET_VAR" in srv.stderr(), what="the load error")


# --- dedupe ---------------------------------------------------------------------

def test_github_delivery_dedupe(server):
    srv = server(workflows={"gh": verified("gh", "github")}, env=ENV)
    body = b'{"action":"opened"}'
    h = json_headers(sign("github", body, msg_id="d-1"))
    first = srv.post("/gh", body, h)
    assert first.status == 202, first
    again = srv.post("/gh", body, h)
    assert again.status == 200, again
    assert again.json() == {"event": first.json()["event"], "duplicate": True}
    # a different delivery id is a new event
    other = srv.post("/gh", body, json_headers(sign("github", body, msg_id="d-2")))
    assert other.status == 202
    assert len(runs_of(srv, "gh")) == 2


def test_default_dedupe_per_scheme(server):
    srv = server(workflows={"sw": verified("sw", "standard-webhooks", "secret: ${HF_T_SW}"),
                            "shopify": verified("shopify", "shopify"),
                            "stripe": verified("stripe", "stripe")}, env=ENV)
    body = b'{"type":"x"}'
    # standard-webhooks: webhook-id, with a fresh timestamp and signature
    a = srv.post("/sw", body, json_headers(sign("standard-webhooks", body, msg_id="msg_1")))
    assert a.status == 202, a
    b = srv.post("/sw", body, json_headers(
        sign("standard-webhooks", body, msg_id="msg_1", ts=int(time.time()) - 5)))
    assert b.status == 200 and b.json() == {"event": a.json()["event"], "duplicate": True}
    # shopify: x-shopify-webhook-id
    a = srv.post("/shopify", body, json_headers(sign("shopify", body, msg_id="s1")))
    b = srv.post("/shopify", body, json_headers(sign("shopify", body, msg_id="s1")))
    assert (a.status, b.status) == (202, 200)
    assert b.json()["event"] == a.json()["event"]
    # stripe: the event id in the body
    sb = b'{"id":"evt_123","type":"charge.succeeded"}'
    a = srv.post("/stripe", sb, json_headers(sign("stripe", sb)))
    b = srv.post("/stripe", sb, json_headers(sign("stripe", sb, ts=int(time.time()) - 1)))
    assert (a.status, b.status) == (202, 200)
    assert b.json()["event"] == a.json()["event"]
    for name in ("sw", "shopify", "stripe"):
        assert len(runs_of(srv, name)) == 1, name


def test_custom_dedupe_expression(server):
    srv = server(workflows={"orders": """
        name: orders
        on:
          webhook:
            path: /orders
            dedupe: event.body.order and event.body.order.id
        steps:
          - id: s
            run: return event.body.order and event.body.order.id
    """})
    a = srv.post("/orders", {"order": {"id": 7}, "n": 1})
    b = srv.post("/orders", {"order": {"id": 7}, "n": 2})
    c = srv.post("/orders", {"order": {"id": 8}})
    d = srv.post("/orders", {"no_order": True})  # nil key: no dedupe
    e = srv.post("/orders", {"no_order": True})
    assert a.status == 202 and c.status == 202
    assert b.status == 200 and b.json() == {"event": a.json()["event"], "duplicate": True}
    assert d.status == 202 and e.status == 202
    assert len(runs_of(srv, "orders")) == 4


def test_identical_deliveries_at_the_same_instant_make_one_run(server):
    srv = server(workflows={"gh": verified("gh", "github")}, env=ENV)
    body = b'{"burst":true}'
    h = json_headers(sign("github", body, msg_id="burst-1"))
    n = 20
    barrier = threading.Barrier(n, timeout=20)

    def send(_):
        barrier.wait()
        return srv.post("/gh", body, h, timeout=20)

    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        answers = list(ex.map(send, range(n), timeout=60))
    statuses = sorted(a.status for a in answers)
    assert statuses == [200] * (n - 1) + [202], statuses
    events = {a.json()["event"] for a in answers}
    assert len(events) == 1, events
    assert all(a.json().get("duplicate") is True for a in answers if a.status == 200)
    assert len(runs_of(srv, "gh")) == 1


# --- the Lua sandbox -------------------------------------------------------------

def step_workflow(name, code, timeout=None, extra_step=""):
    t = f"    timeout: {timeout}\n" if timeout else ""
    return (f"name: {name}\non:\n  webhook:\n    path: /{name}\nsteps:\n"
            f"  - id: s\n{t}{extra_step}    run: |\n"
            + textwrap.indent(textwrap.dedent(code).strip("\n"), "      ") + "\n")


def fire(srv, name, body=None):
    r = srv.post(f"/{name}", body if body is not None else {})
    assert r.status == 202, r
    assert len(r.json()["runs"]) == 1, r
    return r.json()["runs"][0]


def test_sandbox_escapes_fail_and_touch_nothing(server, tmp_path):
    marker = tmp_path / "escaped"
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    outside = tmp_path / "x.lua"  # beside the scripts directory's parent
    m, v = str(marker), str(victim)
    cases = {
        "io_open": (f'local f = io.open("{m}", "w") f:write("x") f:close()', "'io'"),
        "os_execute": (f'os.execute("touch {m}")', "execute"),
        "os_remove": (f'os.remove("{v}")', "remove"),
        "os_exit": ("os.exit(1)", "exit"),
        "os_getenv": ('return os.getenv("HOME")', "getenv"),
        "debug": ("return debug.getinfo(1)", "'debug'"),
        "package": ('return package.loadlib("libc.so.6", "system")', "'package'"),
        "string_dump": ("return load(string.dump(function() return 1 end))()", "dump"),
        "binary_chunk": ('return assert(load("\\27Lua\\84\\0\\25\\147\\r\\n\\26\\n"))()',
                         "binary"),
        "binary_mode": ('return assert(load("\\27Lua", "x", "b"))()', "binary"),
        "binary_reader": ('local s = {"\\27Lua\\84\\0"}\n'
                          'return assert(load(function() return table.remove(s) end))()',
                          "binary"),
        "dofile": ('return dofile("/etc/passwd")', "'dofile'"),
        "loadfile": ('return loadfile("/etc/passwd")', "'loadfile'"),
        "require_up": ("return require('../x')", "invalid module name"),
        "require_up_dots": ("return require('..x')", "invalid module name"),
        "require_abs": ("return require('/etc/passwd')", "invalid module name"),
        "require_missing": ("return require('etc.passwd')", "cannot open"),
        # _G is the step's own environment, whose metatable is protected
        "setmetatable_g": ('setmetatable(_G, {__index = function() return 1 end})',
                           "protected metatable"),
        "rawset_g_io": ('rawset(_G, "io", {})\nreturn io.open("/etc/passwd"):read("a")',
                        "open"),
        "setmetatable_env": ('setmetatable(_ENV, {__index = function() return io end})',
                             "protected metatable"),
        "string_mt": ('getmetatable("").__index = {}', "index"),
        "string_rep_assign": ("string.rep = nil", "read-only"),
        "rawset_string": ('rawset(string, "rep", nil)', "read-only"),
        "gc_metamethod": ('setmetatable({}, {__gc = function() end})', "__gc"),
        "unknown_global": ("return no_such_thing.x", "no_such_thing"),
    }
    outside.write_text(f'local f = io.open("{m}", "w")\nreturn "escaped"\n')
    srv = server(workflows={n: step_workflow(n, code) for n, (code, _) in cases.items()},
                 args=["--workers", "4"])
    ids = {n: fire(srv, n) for n in cases}
    for name, (code, words) in cases.items():
        run = srv.wait_run(ids[name], timeout=30)
        step = run["steps"][0]
        assert run["status"] == "failed", (name, run)
        assert step["status"] == "failed", (name, step)
        assert words in step["error"], (name, step["error"])
        assert "output" not in step or step["output"] is None, (name, step)
    assert not marker.exists()
    assert victim.read_text() == "keep me"
    assert srv.get("/healthz").status == 200
    assert srv.proc.poll() is None


def test_tampering_does_not_reach_the_next_run(server):
    tamper = """
        pcall(function() string.rep = nil end)
        pcall(function() table.insert = nil end)
        pcall(function() getmetatable("").__index = {} end)
        pcall(function() rawset(string, "upper", nil) end)
        pcall(function() math.floor = function() return 42 end end)
        pcall(function() setmetatable(_ENV, nil) end)
        pcall(function() setmetatable(_G, {__index = function() return "x" end}) end)
        pcall(rawset, _G, "string", { rep = function() return "hijacked" end })
        pcall(rawset, _G, "json", {})
        leaked = "from run 1"
        collectgarbage("stop")
        collectgarbage("generational")
        collectgarbage("setpause", 1000)
        return { stopped = collectgarbage("isrunning") }
    """
    check = """
        local t = {}
        table.insert(t, 1)
        -- the collector still runs: 200 MB of garbage in a 64 MiB step
        for i = 1, 200000 do local s = string.rep("x", 1000) .. i end
        return { rep = string.rep("ab", 3), upper = ("x"):upper(),
                 floor = math.floor(2.5), n = #t,
                 leaked = rawget(_ENV, "leaked") == nil,
                 leaked_read = pcall(function() return leaked end),
                 json = json.encode({1}) }
    """
    srv = server(workflows={"tamper": step_workflow("tamper", tamper),
                            "check": step_workflow("check", check)},
                 args=["--workers", "1"])
    for _ in range(2):
        t = srv.wait_run(fire(srv, "tamper"))
        assert t["status"] == "succeeded", t
        c = srv.wait_run(fire(srv, "check"), timeout=30)
        assert c["status"] == "succeeded", c
        assert c["steps"][0]["output"] == {"rep": "ababab", "upper": "X", "floor": 2, "n": 1,
                                           "leaked": True, "leaked_read": False,
                                           "json": "[1]"}


def test_limits_fail_the_step_while_others_run(server):
    hostile = {
        "loop": ("while true do end", "1s", "timed out"),
        "pcall_loop": ("while true do pcall(function() while true do end end) end",
                       "1s", "timed out"),
        "coroutine_loop": ("coroutine.wrap(function() while true do end end)()",
                           "1s", "timed out"),
        "tostring_loop": ("error(setmetatable({}, {__tostring = function() "
                          "while true do end end}))", "1s", None),
        "bomb": ('local t = {}\nwhile true do t[#t + 1] = string.rep("x", 1 << 20) .. #t end',
                 "20s", "memory limit exceeded (64 MiB)"),
        "rep_bomb": ('return #string.rep("x", 1 << 40)', "20s", "memory limit"),
        # 1 KiB pieces: the limit is reached in ~64k iterations, well
        # inside the step's time even under a sanitizer on a loaded machine
        "concat_bomb": ('local t, p = {}, string.rep("abcdefgh", 128)\n'
                        'for i = 1, 1e8 do t[i] = p .. i end\n'
                        'return #table.concat(t)', "20s", "memory limit"),
        "pattern": ('return string.find(string.rep("a", 40000), string.rep("a*", 30) .. "b")',
                    "1s", "timed out"),
        "gsub_pattern": ('return (string.rep("a", 40000)):gsub(".-.-.-.-.-.-b", "")',
                         "1s", "timed out"),
    }
    wfs = {n: step_workflow(n, code, timeout=t) for n, (code, t, _) in hostile.items()}
    wfs["normal"] = step_workflow("normal", 'return "fine"')
    srv = server(workflows=wfs, args=["--workers", "4"])
    ids = {n: fire(srv, n) for n in hostile}
    normal = [fire(srv, "normal") for _ in range(3)]
    for rid in normal:
        run = srv.wait_run(rid, timeout=60)
        assert run["status"] == "succeeded", run
        assert run["steps"][0]["output"] == "fine"
    for name, (_, _, words) in hostile.items():
        run = srv.wait_run(ids[name], timeout=60)
        assert run["status"] == "failed", (name, run)
        err = run["steps"][0]["error"]
        if words:
            assert words in err, (name, err)
    # the workers that ran them are usable
    for _ in range(6):
        run = srv.wait_run(fire(srv, "normal"), timeout=30)
        assert run["status"] == "succeeded", run
    assert srv.proc.poll() is None


def test_hostile_expressions_at_ingest(server):
    """`if:` runs on the HTTP thread over sender-controlled input: a
    pathological pattern or a loop is cut off and the event is still stored."""
    srv = server(workflows={
        "pat": """
            name: pat
            on:
              webhook:
                path: /pat
            if: string.find(event.body.s, ".-.-.-.-.-.-.-b") == nil
            steps:
              - id: s
                run: return 1
        """,
        "loop": """
            name: loop
            on:
              webhook:
                path: /loop
            if: (function() while true do end end)()
            steps:
              - id: s
                run: return 1
        """})
    r = srv.post("/pat", {"s": "a" * 60000})
    assert r.status == 202, r
    assert r.json()["runs"] == []
    ev = srv.api("GET", f"/api/events/{r.json()['event']}").json()
    assert ev["skipped"] and "if:" in ev["skipped"][0]["reason"]
    r = srv.post("/loop", {})
    assert r.status == 202 and r.json()["runs"] == []
    ev = srv.api("GET", f"/api/events/{r.json()['event']}").json()
    assert "budget" in ev["skipped"][0]["reason"] or "timed out" in ev["skipped"][0]["reason"]
    r = srv.post("/pat", {"s": "ab"})
    assert r.status == 202 and r.json()["runs"] == []  # found: if is false
    r = srv.post("/pat", {"s": "zzz"})
    assert r.status == 202 and len(r.json()["runs"]) == 1


# --- HTTP hostility --------------------------------------------------------------

SIMPLE = step_workflow("simple", "return { body = event.body }")


def raw_exchange(port, data, timeout=10, shut=True):
    """Sends data on a new connection; returns what came back before the
    server closed (b"" when it closed without answering)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    return out


def status_of(raw):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return int(m.group(1)) if m else None


def healthy(srv):
    r = srv.get("/healthz")
    assert r.status == 200 and r.body.strip() == "ok"
    r = srv.post("/simple", {"still": "alive"})
    assert r.status == 202, r
    assert srv.proc.poll() is None


def test_slowloris_does_not_starve_webhooks(server):
    srv = server(workflows={"simple": SIMPLE})
    socks = []
    try:
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            if i % 2:
                s.sendall(b"POST /simple HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
            else:
                s.sendall(b"POST /simp")
            socks.append(s)
        for round_ in range(3):
            for s in socks:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
            for _ in range(3):
                r = srv.post("/simple", {"round": round_}, timeout=10)
                assert r.status == 202, r
            assert srv.get("/healthz").status == 200
        # half-sent bodies: headers complete, body never finished
        for s in socks[:50]:
            try:
                s.sendall(b": v\r\n\r\n{\"a\":")
            except OSError:
                pass
        healthy(srv)
    finally:
        for s in socks:
            s.close()
    healthy(srv)


GARBAGE = [
    b"\x00\xff\xfe\x80garbage\r\n\r\n",
    bytes(random.Random(4).getrandbits(8) for _ in range(4096)),
    b"GET\r\n\r\n",
    b"GET / HTTP/1.1 extra\r\n\r\n",
    b"GET /\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b" / HTTP/1.1\r\n\r\n",
    b"POST /simple HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /simple HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"POST /simple HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcde",
    b"POST /simple HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    b"POST /simple HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"ffffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    b"POST /simple HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabcdef\r\n0\r\n\r\n",
    b"POST /simple HTTP/1.1\r\nHost: x\r\nNoColonHeader\r\n\r\n",
    b"POST /%zz%00%ff/../../etc HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/events/%ff%fe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token\r\n\r\n",
    b"\r\n" * 5000,
]


def test_obsolete_line_folding_is_harmless(server):
    srv = server(workflows={"simple": SIMPLE})
    out = raw_exchange(srv.port, b"POST /simple HTTP/1.1\r\nHost: x\r\n folded: header\r\n"
                                 b"Content-Length: 0\r\n\r\n")
    assert out == b"" or status_of(out) in (202, 400), out[:200]
    healthy(srv)


def test_garbage_bytes_leave_the_server_healthy(server):
    srv = server(workflows={"simple": SIMPLE})
    for data in GARBAGE:
        out = raw_exchange(srv.port, data)
        st = status_of(out)
        # closed, or a 4xx/505 answer; never a 2xx or a 5xx other than 505
        assert out == b"" or st is not None, (data[:40], out[:80])
        if st is not None:
            assert 400 <= st < 500 or st == 505, (data[:40], out[:200])
        healthy(srv)
    assert len(runs_of(srv, "simple")) <= 3 + len(GARBAGE)


def test_oversized_and_many_headers(server):
    srv = server(workflows={"simple": SIMPLE})
    big = (b"POST /simple HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (100 * 1024)
           + b"\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
    out = raw_exchange(srv.port, big)
    assert out == b"" or status_of(out) in (400, 413, 431), out[:200]
    healthy(srv)
    many = (b"POST /simple HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(2000))
            + b"Content-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
    out = raw_exchange(srv.port, many)
    assert out == b"" or status_of(out) in (400, 413, 431), out[:200]
    healthy(srv)
    # an ordinary number of headers is fine
    h = {f"X-Ok-{i}": "v" for i in range(50)}
    assert srv.post("/simple", {"a": 1}, h).status == 202


def test_body_limit_exact(server):
    srv = server(workflows={"simple": SIMPLE}, args=["--max-body", "4KiB"])
    limit = 4096
    for size, want in ((limit, 202), (limit + 1, 413)):
        body = b"x" * size
        r = srv.post("/simple", body, {"Content-Type": "text/plain"})
        assert r.status == want, (size, r)
        # the same body chunked (no Content-Length): refused while reading
        conn_data = (b"POST /simple HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                     + b"%x\r\n" % size + body + b"\r\n0\r\n\r\n")
        out = raw_exchange(srv.port, conn_data)
        assert status_of(out) == want, (size, out[:200])
    big = srv.post("/simple", b"y" * (10 * limit), {"Content-Type": "text/plain"})
    assert big.status == 413 and "error" in big.json()
    assert len(runs_of(srv, "simple")) == 2
    healthy(srv)


def test_deep_nesting_and_invalid_utf8_json(server):
    srv = server(workflows={"simple": SIMPLE})
    for body in (b"[" * 100000, b"{\"a\":" * 50000, b"[" * 100000 + b"]" * 100000):
        r = srv.post("/simple", body, {"Content-Type": "application/json"})
        assert r.status == 400, r
        assert "nested" in r.json()["error"]
    for body in (b'{"a":"\xff\xfe"}', b'{"\xc0\xaf":1}', b'["\xed\xa0\x80"]',
                 b'{"a": x\xff}', b'\xff'):
        r = srv.post("/simple", body, {"Content-Type": "application/json"})
        assert r.status == 400, (body, r)
        err = r.json()["error"]
        assert "JSON" in err, err
    r = srv.post("/simple", b'{"a":"\xff"}', {"Content-Type": "application/json"})
    assert "UTF-8" in r.json()["error"]
    assert runs_of(srv, "simple") == []
    healthy(srv)


def test_invalid_utf8_form_and_header(server):
    srv = server(workflows={"simple": SIMPLE})
    conn = __import__("http.client").client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        body = b"name=caf\xe9&raw=%FF%FEok&k\xff=v"
        conn.putrequest("POST", "/simple")
        conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("X-Weird", b"\xff\xfe latin \xe9")
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
    finally:
        conn.close()
    assert r.status == 202, data
    ans = json.loads(data)
    run = srv.wait_run(ans["runs"][0])
    assert run["status"] == "succeeded", run
    out = run["steps"][0]["output"]["body"]
    assert out["name"] == "caf\ufffd"
    assert out["raw"] == "\ufffd\ufffdok"
    assert out["k\ufffd"] == "v"
    ev = srv.api("GET", f"/api/events/{ans['event']}")
    assert ev.status == 200, ev
    ev = ev.json()
    assert ev["id"] == ans["event"]
    assert "x-weird" in ev["headers"]
    assert isinstance(ev["headers"]["x-weird"], str)
    assert isinstance(ev["body"], str)
    healthy(srv)


def test_admin_token_checks(server):
    srv = server(workflows={"simple": SIMPLE})
    wrong_same_len = "x" * len(TOKEN)
    for auth in (None, "", "Bearer", "Bearer ", f"Bearer {wrong_same_len}",
                 f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"bearer {TOKEN}x",
                 f"Basic {TOKEN}", TOKEN, f"Bearer  {TOKEN}x",
                 "Bearer " + "a" * 10000):
        h = {} if auth is None else {"Authorization": auth}
        for path in ("/api/workflows", "/api/runs", "/api/events/x", "/api/deliveries"):
            r = srv.get(path, headers=h)
            assert r.status == 401, (auth, path, r)
    assert srv.api("GET", "/api/workflows").status == 200
    # the token never appears in an answer
    assert TOKEN not in srv.api("GET", "/api/workflows").body


def test_a_second_server_cannot_share_the_port(server, tmp_path):
    """No SO_REUSEPORT: a second process on the same port fails instead of
    silently taking a share of the webhooks."""
    srv = server(workflows={"simple": SIMPLE})
    p = subprocess.run([BIN, "serve", "--listen", f"127.0.0.1:{srv.port}",
                        "--workflows", str(srv.workflows), "--scripts", str(srv.scripts),
                        "--state", str(tmp_path / "b.db"), "--data", str(tmp_path / "bd.db"),
                        "--admin-token", "other"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert "cannot listen" in p.stderr
    healthy(srv)


def test_duplicate_content_length_is_refused(server):
    srv = server(workflows={"simple": SIMPLE})
    out = raw_exchange(srv.port, b"POST /simple HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                 b"Content-Length: 9\r\nContent-Type: application/json\r\n\r\n"
                                 b"{}POST /simple HTTP/1.1\r\n\r\n")
    assert out == b"" or status_of(out) == 400, out[:300]
    assert runs_of(srv, "simple") == []
    healthy(srv)
