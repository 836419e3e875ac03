"""Attacks on the surfaces added after issue 9's probe (CONTRACT §6, §8):
run.resume_url tokens and run ids, wait_for signals, cancel (API and
tokens), cancel_on, debounce and throttle keys. Each attack is bounded and
asserts the right answer: a clear 4xx/5xx or an error in the run, the server
alive and serving after, nothing acknowledged lost. Expressions that loop,
allocate without bound or fail must hit the sandbox's limits on whatever
thread evaluates them (hf-signals, hf-flow, workers) and leave that thread
serving others. No timing is asserted."""
import json
import socket
import threading

from conftest import wait_for
from flowutil import APPROVER, waiting

ENDS = ("succeeded", "failed", "cancelled")


def start_waiting(srv, ticket, path="/tickets"):
    r = srv.post(path, {"ticket": ticket})
    assert r.status == 202, r
    rid = r.json()["runs"][0]
    run = waiting(srv, rid)
    url = run["steps"][0]["output"]
    return rid, url.split(f":{srv.port}", 1)[1]


def raw(srv, data, timeout=10):
    """Sends bytes as they are; returns the status code (0: closed)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    try:
        s.sendall(data)
        got = b""
        while b"\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        parts = got.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    finally:
        s.close()


def alive(srv):
    r = srv.get("/healthz")
    assert r.status == 200, r
    assert srv.proc.poll() is None


def test_forged_resume_urls(server):
    """Truncated, overlong, forged, traversing, %-encoded, NUL and huge
    resume URLs are refused with a 4xx; the real one still resumes, once."""
    srv = server(workflows={"approver": APPROVER % "1h"})
    rid, path = start_waiting(srv, 1)
    other, opath = start_waiting(srv, 2)
    head, tok = path.rsplit("/", 1)
    ohead, otok = opath.rsplit("/", 1)
    step = head.rsplit("/", 1)[1]
    bad = [
        head + "/" + tok[:-1],                     # truncated
        head + "/" + tok + "0",                    # overlong
        head + "/" + tok + "/",                    # trailing segment
        head + "/" + tok + "/x",
        head + "/" + tok.upper(),
        head + "/",                                # no token
        head,
        f"/resume/{rid}",
        "/resume/",
        "/resume",
        head + "/" + otok,                         # other run's token
        ohead.rsplit("/", 1)[0] + f"/{int(step) + 1}/" + otok,
        f"/resume/{rid}/{step}0/{tok}",            # other step number
        f"/resume/{rid}/0{step}/{tok}",
        f"/resume/{rid}/-{step}/{tok}",
        f"/resume/{rid}x/{step}/{tok}",
        f"/resume/{rid[:-1]}/{step}/{tok}",
        f"/resume/../api/runs/{rid}/{step}/{tok}",
        f"/resume/{rid}/../{step}/{tok}",
        f"/resume/%2e%2e/{rid}/{step}/{tok}",
        f"/resume/{rid}%2f{step}/{tok}",
        f"/resume/{rid}/{step}/{tok}%00",
        f"/resume/{rid}/{step}/{tok[:16]}%00{tok[16:]}",
        f"/resume/{rid}/{step}/%{tok}",
        "/resume/" + "a" * 60000 + f"/{step}/{tok}",
        f"/resume/{rid}/" + "9" * 5000 + f"/{tok}",
        f"/resume/{rid}/{step}/" + "f" * 100000,
        f"/resume/{rid}/99999999999999999999/{tok}",
    ]
    for p in bad:
        try:
            r = srv.post(p, {"evil": True})
            code = r.status
        except (ConnectionError, OSError):
            code = 0  # refused by closing: acceptable, never a resume
        assert code == 0 or 400 <= code < 500, (p[:120], code)
        assert code != 202, p[:120]
    # NUL and control bytes sent raw
    for p in (f"/resume/{rid}/{step}/{tok}\x00".encode(),
              f"/resume/{rid}\x00/{step}/{tok}".encode(),
              f"/resume/{rid}/{step}/{tok}\xff".encode("latin-1")):
        code = raw(srv, b"POST " + p + b" HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        assert code == 0 or 400 <= code < 500, (p, code)
    alive(srv)
    assert srv.run(rid)["status"] == "waiting"
    assert srv.run(other)["status"] == "waiting"
    r = srv.post(path, {"ok": 1})
    assert r.status == 202 and r.json()["resumed"] == [rid], r
    assert srv.post(path, {"ok": 2}).status == 410
    done = srv.wait_run(rid)
    assert done["status"] == "succeeded" and done["steps"][-1]["output"]["approved"] == {"ok": 1}
    assert srv.run(other)["status"] == "waiting"


def test_resume_finished_cancelled_and_bad_bodies(server):
    """A resume URL of a cancelled or finished run is 410; a body that is
    not JSON (as JSON), invalid UTF-8 or deeply nested is a 4xx and leaves
    the run waiting; a huge body is refused or resumes, never crashes."""
    srv = server(workflows={"approver": APPROVER % "1h"})
    a, pa = start_waiting(srv, 1)
    b, pb = start_waiting(srv, 2)
    c, pc = start_waiting(srv, 3)
    r = srv.api("POST", f"/api/runs/{a}/cancel")
    assert r.status == 202, r
    assert srv.post(pa, {"x": 1}).status == 410
    assert srv.run(a)["status"] == "cancelled"
    js = {"Content-Type": "application/json"}
    for body in (b"{not json", b'{"a": "\xff\xfe"}', b"\xff" * 100,
                 b"[" * 100000 + b"]" * 100000, b'{"a":' * 50000 + b"1" + b"}" * 50000):
        r = srv.post(pb, body, headers=js)
        assert 400 <= r.status < 500, (body[:20], r)
        assert srv.run(b)["status"] == "waiting"
    r = srv.post(pb, {"fine": True})
    assert r.status == 202 and r.json()["resumed"] == [b], r
    assert srv.wait_run(b)["status"] == "succeeded"
    assert srv.post(pb, {"x": 1}).status == 410
    # a huge body: refused (413) or taken; either way the server serves
    try:
        r = srv.post(pc, b'"' + b"x" * (80 << 20) + b'"', headers=js, timeout=60)
        code = r.status
    except (ConnectionError, OSError):
        code = 0
    assert code in (0, 202, 413), code
    alive(srv)
    if code != 202:
        r = srv.post(pc, {"small": 1})
        assert r.status == 202, r
    assert srv.wait_run(c)["status"] == "succeeded"


def test_resume_body_over_the_step_output_limit(server):
    """A resume body becomes the step's output: past a step's output limit
    (1 MiB as JSON, within --max-body) it is 413 and the run still waits;
    a body just under it resumes the run."""
    srv = server(workflows={"approver": APPROVER % "1h"}, args=["--max-body", "4MiB"])
    rid, path = start_waiting(srv, 5)
    js = {"Content-Type": "application/json"}
    r = srv.post(path, b'"' + b"x" * (1 << 20) + b'"', headers=js, timeout=30)
    assert r.status == 413, r
    assert "output" in r.json()["error"], r
    assert srv.run(rid)["status"] == "waiting"
    r = srv.post(path, b'"' + b"x" * ((1 << 20) - 2) + b'"', headers=js,
                 timeout=30)
    assert r.status == 202 and r.json()["resumed"] == [rid], r
    run = srv.wait_run(rid)
    # (The next step, which returns it wrapped, is then over the limit.)
    assert run["steps"][1]["status"] == "succeeded", run
    assert len(run["steps"][1]["output"]) == (1 << 20) - 2


def test_signal_bodies(server):
    """Signals whose bodies are not JSON, deeply nested, invalid UTF-8 or
    large are answered (stored, or refused with a 4xx) and resume nothing
    wrongly; the waiting run is still resumed by a proper one."""
    srv = server(workflows={"approver": APPROVER % "1h"})
    rid, _ = start_waiting(srv, 7)
    js = {"Content-Type": "application/json"}
    for body in (b"{not json", b'{"ticket": "\xff"}', b"\xc0\x80",
                 b"[" * 200000 + b"]" * 200000,
                 b'{"ticket":' * 100000 + b"7" + b"}" * 100000,
                 json.dumps({"ticket": 7, "pad": "x" * (4 << 20)}).encode()[:-3]):
        try:
            r = srv.post("/approvals", body, headers=js, timeout=30)
        except (ConnectionError, OSError):
            continue  # refused before the whole body was sent (413)
        assert 400 <= r.status < 500 or (r.status == 202 and r.json()["resumed"] == []), (body[:20], r)
    for body in (b"ticket=7", b"\x00\x01\x02"):
        r = srv.post("/approvals", body,
                     headers={"Content-Type": "application/octet-stream"})
        assert r.status in (202, 400, 415), r
        if r.status == 202:
            assert r.json()["resumed"] == [], r
    alive(srv)
    assert srv.run(rid)["status"] == "waiting"
    r = srv.post("/approvals", {"ticket": 7})
    assert r.status == 202 and r.json()["resumed"] == [rid], r
    assert srv.wait_run(rid)["status"] == "succeeded"


def evil_waiter(name, path, expr):
    return f"""
name: {name}
on:
  webhook: {{ path: /start-{name} }}
steps:
  - id: w
    wait_for:
      path: {path}
      if: "{expr}"
      timeout: 1h
  - id: after
    run: return steps.w
"""


EVIL = {
    "loop": "(function() while true do end end)()",
    "alloc": "(function() local t = {} for i = 1, 1e12 do t[i] = string.rep('x', 1e6) .. i end end)()",
    "rep": "#string.rep('x', 2^40) > 0",
    "err": "error('boom')",
    "huge": "string.rep('x', 40 * 1024 * 1024)",
    "table": "{ signal.body, event.body, 1, 2 }",
    "gc": "setmetatable({}, { __gc = function() while true do end end }) ~= nil",
}


def test_wait_for_if_attacks(server):
    """wait_for.if expressions that loop, allocate without bound, error,
    or return huge strings and tables are stopped by the sandbox on
    hf-signals: the signal is answered, the server keeps serving, and a
    sane waiter on another path is still resumed by its signal."""
    wfs = {k: evil_waiter(k, f"/sig-{k}", v) for k, v in EVIL.items()}
    wfs["good"] = evil_waiter("good", "/sig-good",
                              "signal.body.n == event.body.n")
    srv = server(workflows=wfs)
    ids = {}
    for k in list(EVIL) + ["good"]:
        r = srv.post(f"/start-{k}", {"n": 1})
        assert r.status == 202, r
        ids[k] = r.json()["runs"][0]
    for k in ids:
        waiting(srv, ids[k])
    for k in EVIL:
        r = srv.post(f"/sig-{k}", {"n": 1}, timeout=60)
        assert r.status in (202, 500, 503), (k, r)
        alive(srv)
    r = srv.post("/sig-good", {"n": 1}, timeout=60)
    assert r.status == 202 and r.json()["resumed"] == [ids["good"]], r
    assert srv.wait_run(ids["good"])["status"] == "succeeded"
    for k in EVIL:
        st = srv.run(ids[k])["status"]
        assert st in ("waiting", "failed", "succeeded"), (k, st)
    alive(srv)


def evil_cancel_on(name, expr):
    return f"""
name: {name}
on:
  webhook: {{ path: /co-{name} }}
cancel_on:
  - path: /stop-{name}
    if: "{expr}"
steps:
  - id: nap
    sleep: 1h
"""


def test_cancel_on_if_attacks(server):
    """cancel_on.if expressions that loop, allocate or fail hit the
    sandbox's limits on hf-flow: the request is answered, the run not
    cancelled by an error, and a sane cancel_on still cancels afterwards."""
    wfs = {k: evil_cancel_on(k, v) for k, v in EVIL.items()}
    wfs["good"] = evil_cancel_on("good", "signal.body.n == event.body.n")
    srv = server(workflows=wfs)
    ids = {}
    for k in list(EVIL) + ["good"]:
        r = srv.post(f"/co-{k}", {"n": 1})
        assert r.status == 202, r
        ids[k] = r.json()["runs"][0]
        waiting(srv, ids[k])
    for k in EVIL:
        r = srv.post(f"/stop-{k}", {"n": 1}, timeout=60)
        assert r.status in (202, 404), (k, r)
        alive(srv)
    r = srv.post("/stop-good", {"n": 1})
    assert r.status in (202, 404), r
    wait_for(lambda: srv.run(ids["good"])["status"] == "cancelled", 30,
             what="the sane cancel_on to cancel")
    for k in ("loop", "alloc", "rep", "err", "gc"):
        assert srv.run(ids[k])["status"] == "waiting", k
    alive(srv)


def keyed(name, kind, expr):
    flow = (f"debounce: {{ key: \"{expr}\", period: 300ms }}" if kind == "debounce"
            else f"throttle: {{ key: \"{expr}\", limit: 1, period: 300ms }}")
    return f"""
name: {name}
on:
  webhook: {{ path: /{name} }}
{flow}
steps:
  - id: s
    run: return event.body.n
"""


KEYS = {
    "loop": "(function() while true do end end)()",
    "alloc": "string.rep('x', 2^40)",
    "err": "error('boom')",
    "huge": "string.rep('k', 3 * 1024 * 1024)",
    "tbl": "{ event.body, string.rep('v', 1024 * 1024) }",
    "nil": "nil",
}


def test_debounce_and_throttle_key_attacks(server):
    """debounce.key and throttle.key expressions that loop, allocate, fail,
    or make megabytes of key: every event acknowledged makes its run end
    (run or debounced into one, never lost), the server serves after, and
    a sane workflow runs meanwhile."""
    wfs = {}
    for kind in ("debounce", "throttle"):
        for k, v in KEYS.items():
            wfs[f"{kind}-{k}"] = keyed(f"{kind}-{k}", kind, v)
    wfs["plain"] = keyed("plain", "throttle", "'p'")
    srv = server(workflows=wfs)
    ids = []
    for name in wfs:
        for n in range(2):
            r = srv.post(f"/{name}", {"n": n}, timeout=60)
            assert r.status == 202, (name, r)
            ids.append((name, r.json()["runs"][0]))
        alive(srv)
    for name, rid in ids:
        run = srv.wait_run(rid, timeout=120, statuses=ENDS)
        assert run["status"] in ENDS, (name, run)
    for name, rid in ids:
        if name == "plain" or name.startswith("throttle"):
            assert srv.run(rid)["status"] == "succeeded", name
    alive(srv)
    srv.restart()  # the store holds the keys it took: it reopens
    alive(srv)
    r = srv.post("/plain", {"n": 9})
    assert r.status == 202
    assert srv.wait_run(r.json()["runs"][0], timeout=60)["status"] == "succeeded"


def test_cancel_auth_ids_and_races(server):
    """Cancel without or with a wrong admin token is 401/403; odd run ids
    are 4xx; cancel twice is 202 then 409; cancel of a parked run being
    woken by its resume URL ends one way (cancelled: 410 for the resume;
    or resumed: 409 for the cancel); the dashboard's page is unaffected."""
    srv = server(workflows={"approver": APPROVER % "1h"})
    rid, path = start_waiting(srv, 1)
    for h in ({}, {"Authorization": "Bearer wrong"},
              {"Authorization": "Bearer "}, {"Authorization": "Basic dGVzdC10b2tlbg=="},
              {"Authorization": "Bearer test-token\x00x"[:10]},
              {"Authorization": "Bearer test-tokenX"},
              {"Authorization": "Bearer test-toke"}):
        try:
            r = srv.request("POST", f"/api/runs/{rid}/cancel", None, h)
            code = r.status
        except (ValueError, ConnectionError, OSError):
            continue
        assert code in (401, 403), (h, code)
    assert srv.run(rid)["status"] == "waiting"
    tok = {"Authorization": f"Bearer {srv.token}"}
    for bad in ("run_nope", "..%2f..%2fhealthz", "%00", "a" * 50000,
                f"{rid}%00", f"{rid}/x", "../" + rid, f"{rid}%2f"):
        try:
            r = srv.request("POST", f"/api/runs/{bad}/cancel", None, tok)
            code = r.status
        except (ConnectionError, OSError):
            code = 0
        assert code == 0 or 400 <= code < 500, (bad[:40], code)
    assert srv.run(rid)["status"] == "waiting"
    alive(srv)
    # twice
    assert srv.api("POST", f"/api/runs/{rid}/cancel").status == 202
    assert srv.api("POST", f"/api/runs/{rid}/cancel").status == 409
    assert srv.post(path, {"late": 1}).status == 410
    # races: cancel while the resume URL wakes the run, many times
    for i in range(8):
        r2, p2 = start_waiting(srv, 100 + i)
        out = {}

        def do_cancel():
            out["c"] = srv.api("POST", f"/api/runs/{r2}/cancel").status

        def do_resume():
            out["r"] = srv.post(p2, {"i": i}).status

        ts = [threading.Thread(target=do_cancel), threading.Thread(target=do_resume)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        run = srv.wait_run(r2, timeout=30, statuses=ENDS)
        assert out["c"] in (202, 409) and out["r"] in (202, 410), out
        if run["status"] == "cancelled":
            assert out["c"] == 202, (out, run)
        else:
            assert run["status"] == "succeeded" and out["r"] == 202, (out, run)
            assert out["c"] in (202, 409)
    alive(srv)


def test_signal_flood(server):
    """A flood of signals (many threads, none matching, then the matching
    one) is answered every time; the waiting run is resumed exactly once."""
    srv = server(workflows={"approver": APPROVER % "1h"})
    rid, _ = start_waiting(srv, 42)
    codes = []
    lock = threading.Lock()

    def flood(k):
        for n in range(40):
            try:
                r = srv.post("/approvals", {"ticket": 1000 + k * 100 + n}, timeout=30)
                c = r.status
                res = r.json().get("resumed") if c == 202 else None
            except (ConnectionError, OSError):
                c, res = 0, None
            with lock:
                codes.append((c, res))

    ts = [threading.Thread(target=flood, args=(k,)) for k in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert all(c in (202, 503) for c, _ in codes), \
        [x for x in codes if x[0] not in (202, 503)]
    assert all(res in (None, []) for _, res in codes)
    assert sum(1 for c, _ in codes if c == 202) > 0
    alive(srv)
    r = srv.post("/approvals", {"ticket": 42})
    assert r.status == 202 and r.json()["resumed"] == [rid], r
    r = srv.post("/approvals", {"ticket": 42})
    assert r.status == 202 and r.json()["resumed"] == [], r
    assert srv.wait_run(rid)["status"] == "succeeded"


TWO_WAITS = """
name: two
on:
  webhook: { path: /two }
steps:
  - id: ask1
    run: return run.resume_url
  - id: w1
    wait_for: { path: /two-sig, timeout: 1h }
  - id: ask2
    run: return run.resume_url
  - id: w2
    wait_for: { path: /two-sig, if: "signal.body.never == true", timeout: 1h }
  - id: done
    run: return { steps.w1, steps.w2 }
"""


def test_resume_url_of_an_earlier_wait(server):
    """A resume URL is for one wait_for step: once the run waits at a later
    one, the earlier URL is 410 (it cannot resume the later wait); the
    later one's URL resumes it, once."""
    srv = server(workflows={"two": TWO_WAITS})
    r = srv.post("/two", {})
    rid = r.json()["runs"][0]
    run = waiting(srv, rid)
    u1 = run["steps"][0]["output"].split(f":{srv.port}", 1)[1]
    assert srv.post(u1, {"first": 1}).json()["resumed"] == [rid]
    run = wait_for(lambda: (lambda x: x if x["status"] == "waiting" and
                            x["waiting"]["step"] == "w2" else None)(srv.run(rid)),
                   15, what="the second wait")
    u2 = run["steps"][2]["output"].split(f":{srv.port}", 1)[1]
    assert u1 != u2
    assert srv.post(u1, {"again": 1}).status == 410
    assert srv.run(rid)["status"] == "waiting"
    r = srv.post(u2, {"second": 2})
    assert r.status == 202 and r.json()["resumed"] == [rid], r
    done = srv.wait_run(rid)
    assert done["status"] == "succeeded"
    assert done["steps"][-1]["output"] == [{"first": 1}, {"second": 2}]
    assert srv.post(u2, {"x": 1}).status == 410


GATED = """
name: gated
on:
  webhook: { path: /gated }
steps:
  - id: a
    run: |
      local x = 0
      for i = 1, 20000 do x = x + i end
      return x
  - id: b
    run: return "b ran"
"""


def test_cancel_races_with_commits(server):
    """Cancels sent while steps run and commit, twice each: a 202 means the
    run ends cancelled and step b never ran after it; a 409 means it had
    finished; nothing else, and every run ends."""
    srv = server(workflows={"gated": GATED})
    ids = [srv.post("/gated", {}).json()["runs"][0] for _ in range(30)]
    codes = {}

    def cancel(rid):
        codes[rid] = [srv.api("POST", f"/api/runs/{rid}/cancel").status
                      for _ in range(2)]

    ts = [threading.Thread(target=cancel, args=(rid,)) for rid in ids]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    for rid in ids:
        run = srv.wait_run(rid, timeout=60, statuses=ENDS)
        c = codes[rid]
        assert all(x in (202, 409) for x in c), (rid, c)
        if 202 in c:
            assert run["status"] == "cancelled", (c, run)
            assert c[1] == 409 or c[0] == 409 or c == [202, 202], c
        else:
            assert run["status"] == "succeeded", (c, run)
        ran = [s["id"] for s in run["steps"]]
        if run["status"] == "cancelled":
            assert ran in ([], ["a"], ["a", "b"]), run
        else:
            assert ran == ["a", "b"], run
    alive(srv)


STOPPABLE = """
name: stoppable
on:
  webhook: { path: /stoppable }
cancel_on:
  - path: /stop-all
    if: signal.body.k == event.body.k
steps:
  - id: nap
    sleep: 1h
"""


def test_cancel_on_flood(server):
    """A flood of cancel_on requests, most matching nothing: each is
    answered, exactly the matching waiting runs end cancelled, the others
    keep waiting, the server serves after."""
    srv = server(workflows={"stoppable": STOPPABLE})
    ids = {k: srv.post("/stoppable", {"k": k}).json()["runs"][0] for k in range(5)}
    for rid in ids.values():
        waiting(srv, rid)
    codes = []
    lock = threading.Lock()

    def flood(t):
        for n in range(40):
            k = 1000 + t * 100 + n if n != 39 else t  # each thread ends matching
            try:
                c = srv.post("/stop-all", {"k": k}, timeout=30).status
            except (ConnectionError, OSError):
                c = 0
            with lock:
                codes.append(c)

    ts = [threading.Thread(target=flood, args=(t,)) for t in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert codes and all(c in (202, 404, 503) for c in codes), set(codes)
    for k in range(3):
        wait_for(lambda: srv.run(ids[k])["status"] == "cancelled", 30,
                 what=f"run {k} cancelled")
    for k in (3, 4):
        assert srv.run(ids[k])["status"] == "waiting"
    alive(srv)


def test_api_nodes_and_odd_ids(server):
    """GET /api/nodes needs the admin token; other methods are refused;
    odd run ids on the API (traversal, encodings, huge) are 4xx."""
    srv = server(workflows={"approver": APPROVER % "1h"})
    assert srv.get("/api/nodes").status == 401
    assert srv.request("GET", "/api/nodes", None,
                       {"Authorization": "Bearer nope"}).status == 401
    r = srv.api("GET", "/api/nodes")
    assert r.status == 200 and "nodes" in r.json(), r
    for m in ("POST", "DELETE", "PUT"):
        assert 400 <= srv.api(m, "/api/nodes").status < 500, m
    for bad in ("..%2f..%2fhealthz", "%2e%2e", "a" * 60000, "run_x%00y",
                "run_%ff", "run_" + "9" * 5000):
        try:
            code = srv.api("GET", f"/api/runs/{bad}").status
        except (ConnectionError, OSError):
            code = 0
        assert code == 0 or 400 <= code < 500, (bad[:30], code)
    alive(srv)


UNTIL_VALUES = {
    "nan": "0/0", "inf": "math.huge", "ninf": "-math.huge", "neg": "-1",
    "zero": "0", "bad": "'9999-99-99T99:99:99Z'", "iso_neg": "'-0001-01-01T00:00:00Z'",
    "huge": "string.rep('1', 5000000)", "tbl": "{1}", "big": "1e300",
    "str_num": "'1e300'", "str_nan": "'nan'", "intmax": "math.maxinteger",
    "bool": "true", "loop": "(function() while true do end end)()",
}


def test_until_values(server):
    """`until:` values that are not times (NaN, infinities, negative, huge
    numbers and strings, tables, booleans, a loop) fail the step with an
    error; a far ISO time parks; the server serves after."""
    wfs = {}
    for k, v in dict(UNTIL_VALUES, far="'9999-12-31T23:59:59Z'").items():
        timeout = "    timeout: 2s\n" if k == "loop" else ""
        wfs[k] = (f"name: {k}\non:\n  webhook: {{ path: /{k} }}\nsteps:\n"
                  f"  - id: u\n{timeout}    until: \"${{{{ {v} }}}}\"\n"
                  "  - id: after\n    run: return 1\n")
    srv = server(workflows=wfs)
    ids = {k: srv.post(f"/{k}", {}).json()["runs"][0] for k in wfs}
    for k in UNTIL_VALUES:
        run = srv.wait_run(ids[k], timeout=60)
        assert run["status"] == "failed" and run["error"], (k, run)
        assert [s["id"] for s in run["steps"]] in ([], ["u"]), (k, run)
    run = waiting(srv, ids["far"])
    assert run["waiting"]["until"].startswith("9999-12-31"), run
    alive(srv)


ON_FAILURE = """
name: {name}
on:
  webhook: {{ path: /{name} }}
steps:
  - id: a
    run: |
      {fail}
on_failure:
  - id: alert
    run: |
      return {{ n = #failure.error, step = failure.step }}
  - id: loop
    timeout: 1s
    run: |
      while true do end
  - id: after
    run: |
      return 1
"""

FAILS = {
    "big": "error(string.rep('x', 20 * 1024 * 1024))",
    "tostring": "error(setmetatable({}, { __tostring = function() while true do end end }))",
    "table": "error({ big = string.rep('y', 10 * 1024 * 1024) })",
    "oom": "local t = {} for i = 1, 1e9 do t[i] = string.rep('z', 1024) .. i end",
}


def test_on_failure_attacks(server):
    """A run failing with an error of megabytes, an error object whose
    __tostring loops, a table, or out of memory: the run ends failed with a
    bounded error, its on_failure steps run once each (one that loops fails
    on its limit and is recorded, not retried), the server serves after."""
    wfs = {k: ON_FAILURE.format(name=k, fail=v) for k, v in FAILS.items()}
    srv = server(workflows=wfs)
    ids = {k: srv.post(f"/{k}", {}).json()["runs"][0] for k in FAILS}
    for k in FAILS:
        run = srv.wait_run(ids[k], timeout=120)
        assert run["status"] == "failed", (k, run)
        assert run["error"] and len(run["error"]) < 64 * 1024, (k, len(run["error"]))
        steps = {s["id"]: s for s in run["steps"]}
        assert steps["on_failure.alert"]["status"] == "succeeded", (k, steps)
        out = steps["on_failure.alert"]["output"]
        assert out["step"] == "a" and 0 < out["n"] < 64 * 1024, (k, out)
        assert steps["on_failure.loop"]["status"] == "failed", (k, steps)
        assert [s["id"] for s in run["steps"]].count("on_failure.loop") == 1
    alive(srv)


def test_cli_cancel_odd_ids(server):
    """`hookflow cancel` with ids that are not runs (traversal, huge, NUL
    free but odd bytes, empty) exits non-zero with a message; the waiting
    run is untouched and cancelled by its own id."""
    srv = server(workflows={"approver": APPROVER % "1h"})
    rid, _ = start_waiting(srv, 1)
    for bad in ("", "../../etc/passwd", "run_%00", "a" * 100000, rid + "x",
                rid[:-1], "' OR 1=1 --", "-h-"):
        p = srv.cli("cancel", bad, "--state", str(srv.state))
        assert p.returncode != 0 and p.stderr.strip(), (bad[:30], p)
    assert srv.run(rid)["status"] == "waiting"
    p = srv.cli("cancel", rid, "--state", str(srv.state))
    assert p.returncode == 0, p.stderr
    wait_for(lambda: srv.run(rid)["status"] == "cancelled", 15,
             what="the cancel taken")
    alive(srv)


def test_signal_flood_on_costly_ifs(server):
    """Runs whose wait_for.if loops to its limit, and signals to their path
    sent in parallel: every signal is answered (each `if:` stopped by the
    sandbox), and a sane waiter's signal on another path too."""
    wfs = {"loop": evil_waiter("loop", "/sig-loop", EVIL["loop"]),
           "good": evil_waiter("good", "/sig-good", "signal.body.n == event.body.n")}
    srv = server(workflows=wfs)
    loops = [srv.post("/start-loop", {"n": i}).json()["runs"][0] for i in range(8)]
    good = srv.post("/start-good", {"n": 1}).json()["runs"][0]
    for rid in loops + [good]:
        waiting(srv, rid)
    codes = []

    def sig():
        try:
            codes.append(srv.post("/sig-loop", {"n": 1}, timeout=120).status)
        except (ConnectionError, OSError):
            codes.append(0)

    ts = [threading.Thread(target=sig) for _ in range(6)]
    for t in ts:
        t.start()
    r = srv.post("/sig-good", {"n": 1}, timeout=120)
    for t in ts:
        t.join(150)
    assert r.status == 202 and r.json()["resumed"] == [good], r
    assert codes == [202] * 6, codes
    assert all(srv.run(rid)["status"] == "waiting" for rid in loops)
    alive(srv)


def test_acknowledged_resumes_survive_sigkill(server):
    """A resume acknowledged (202 with the run in "resumed"), by its URL or
    by a signal, then a SIGKILL at once: after the restart the run goes on
    with that body, never waits again; a cancel acknowledged (202) then a
    SIGKILL leaves it cancelled."""
    srv = server(workflows={"approver": APPROVER % "1h"})
    for round_ in range(3):
        a, pa = start_waiting(srv, 10 * round_ + 1)
        b, _ = start_waiting(srv, 10 * round_ + 2)
        c, _ = start_waiting(srv, 10 * round_ + 3)
        r = srv.post(pa, {"via": "url"})
        assert r.status == 202 and r.json()["resumed"] == [a], r
        r = srv.post("/approvals", {"ticket": 10 * round_ + 2, "via": "signal"})
        assert r.status == 202 and r.json()["resumed"] == [b], r
        assert srv.api("POST", f"/api/runs/{c}/cancel").status == 202
        srv.kill()
        srv.start()
        da, db_ = srv.wait_run(a, timeout=30), srv.wait_run(b, timeout=30)
        assert da["status"] == "succeeded" and da["steps"][-1]["output"]["approved"] == {"via": "url"}, da
        assert db_["status"] == "succeeded" and db_["steps"][-1]["output"]["approved"]["via"] == "signal", db_
        assert srv.run(c)["status"] == "cancelled"
        assert srv.post(pa, {"again": 1}).status == 410
