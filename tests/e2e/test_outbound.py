"""End-to-end tests for the outbound half: `http.*` from Lua and `webhook.emit`
through the durable outbox, against a real local receiver (docs/reference.md,
"http" and "webhook.emit"; README.md, "Webhooks out").

Every wait is bounded; no test asserts a timing."""
import base64
import hashlib
import hmac
import json
import textwrap
import time

from conftest import wait_for


def workflow(name, lua, step_extra=""):
    """A one-step workflow on /NAME whose step runs `lua` (event.body holds the
    test's parameters)."""
    body = textwrap.indent(textwrap.dedent(lua).strip(), " " * 6)
    return (f"name: {name}\non:\n  webhook:\n    path: /{name}\n"
            f"steps:\n  - id: main\n{step_extra}    run: |\n{body}\n")


def start_run(srv, path, body):
    r = srv.post(path, body)
    assert r.status == 202, r
    return srv.wait_run(r.json()["runs"][0], timeout=30)


def delivery(srv, did):
    r = srv.api("GET", f"/api/deliveries/{did}")
    assert r.status == 200, r
    return r.json()


def wait_delivery(srv, did, statuses=("delivered", "failed"), timeout=20):
    return wait_for(lambda: (lambda d: d if d["status"] in statuses else None)(
        delivery(srv, did)), timeout, what=f"delivery {did} in {statuses}")


EMIT = workflow("emit", """
    local b = event.body
    return webhook.emit(b.url, b.payload, b.opts)
""")


def emit(srv, url, payload, opts=None):
    """Runs the emit workflow; returns the delivery id (the step's output)."""
    run = start_run(srv, "/emit", {"url": url, "payload": payload,
                                   "opts": opts or {}})
    assert run["status"] == "succeeded", run
    return run["steps"][0]["output"]


def hooks(receiver, path):
    with receiver.lock:
        return [r for r in receiver.requests if r["path"] == path]


# --- webhook.emit: signing, outcomes, schedule ---------------------------

def test_signature_verifies_with_the_spec_algorithm(server, receiver):
    key = b"a-very-secret-key-of-32-bytes!!!"
    secret = "whsec_" + base64.b64encode(key).decode()
    srv = server(workflows={"emit": EMIT})
    did = emit(srv, receiver.url + "/signed", {"hello": "world", "n": 1},
               {"secret": secret, "headers": {"X-Custom": "yes"}})
    d = wait_delivery(srv, did)
    assert d["status"] == "delivered" and d["attempts"] == 1, d
    (req,) = hooks(receiver, "/signed")
    h = req["headers"]
    assert req["method"] == "POST"
    assert h["content-type"] == "application/json"
    assert h["x-custom"] == "yes"
    assert h["webhook-id"] == did
    assert json.loads(req["body"]) == {"hello": "world", "n": 1}
    ts = h["webhook-timestamp"]
    assert abs(int(ts) - time.time()) < 300
    signed = f"{h['webhook-id']}.{ts}.".encode() + req["body"]
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    sigs = [s.split(",", 1) for s in h["webhook-signature"].split(" ")]
    assert ["v1", want.decode()] in sigs, (h["webhook-signature"], want)
    # Unsigned emits carry the id (for dedupe) but no signature.
    did2 = emit(srv, receiver.url + "/plain", "raw text payload")
    wait_delivery(srv, did2)
    (req,) = hooks(receiver, "/plain")
    assert req["headers"]["webhook-id"] == did2
    assert "webhook-signature" not in req["headers"]
    assert req["body"] == b"raw text payload"


def test_raw_secret_signs_with_its_bytes(server, receiver):
    srv = server(workflows={"emit": EMIT})
    did = emit(srv, receiver.url + "/raw", {"a": 1}, {"secret": "plain-secret"})
    wait_delivery(srv, did)
    (req,) = hooks(receiver, "/raw")
    h = req["headers"]
    signed = f"{did}.{h['webhook-timestamp']}.".encode() + req["body"]
    want = base64.b64encode(hmac.new(b"plain-secret", signed,
                                     hashlib.sha256).digest()).decode()
    assert h["webhook-signature"] == "v1," + want


def test_500_500_200_delivered_after_three_attempts(server, receiver):
    receiver.responses = [(500, {}, "no"), (500, {}, "still no")]
    srv = server(workflows={"emit": EMIT})
    did = emit(srv, receiver.url + "/flaky", {"x": 1}, {"backoff": "100ms"})
    d = wait_delivery(srv, did)
    assert d["status"] == "delivered", d
    assert d["attempts"] == 3 and d["last_status"] == 200, d
    log = d["attempts_log"]
    assert [a["status"] for a in log] == [500, 500, 200]
    assert [a["n"] for a in log] == [1, 2, 3]
    for a in log:
        assert isinstance(a["duration_ms"], int) and a["duration_ms"] >= 0
        assert isinstance(a["at"], str) and a["at"]
    reqs = hooks(receiver, "/flaky")
    assert len(reqs) == 3
    assert {r["headers"]["webhook-id"] for r in reqs} == {did}


def test_always_failing_is_failed_after_attempts(server, receiver):
    receiver.default = (500, {}, "broken")
    srv = server(workflows={"emit": EMIT})
    did = emit(srv, receiver.url + "/down", {"x": 1},
               {"attempts": 3, "backoff": "100ms"})
    d = wait_delivery(srv, did)
    assert d["status"] == "failed" and d["attempts"] == 3, d
    assert len(hooks(receiver, "/down")) == 3
    r = srv.api("GET", "/api/deliveries?status=failed")
    assert did in [x["id"] for x in r.json()["deliveries"]]


def test_410_fails_at_once(server, receiver):
    receiver.default = (410, {}, "gone")
    srv = server(workflows={"emit": EMIT})
    did = emit(srv, receiver.url + "/gone", {"x": 1},
               {"attempts": 5, "backoff": "100ms"})
    d = wait_delivery(srv, did)
    assert d["status"] == "failed" and d["attempts"] == 1, d
    assert d["last_status"] == 410
    time.sleep(0.5)
    assert len(hooks(receiver, "/gone")) == 1


def test_redirect_is_a_failure_not_followed(server, receiver):
    receiver.default = (302, {"Location": receiver.url + "/elsewhere"}, "")
    srv = server(workflows={"emit": EMIT})
    did = emit(srv, receiver.url + "/moved", {"x": 1},
               {"attempts": 2, "backoff": "100ms"})
    d = wait_delivery(srv, did)
    assert d["status"] == "failed" and d["attempts"] == 2, d
    assert d["attempts_log"][0]["status"] == 302
    assert "redirect" in d["attempts_log"][0]["error"]
    assert hooks(receiver, "/elsewhere") == []


def test_step_that_emits_then_fails_sends_nothing(server, receiver):
    srv = server(workflows={"boom": workflow("boom", """
        webhook.emit(event.body.url, {never = true})
        error("boom after emit")
    """)})
    run = start_run(srv, "/boom", {"url": receiver.url + "/never"})
    assert run["status"] == "failed", run
    assert "boom after emit" in run["steps"][0]["error"]
    time.sleep(1.5)  # the outbox scans at least once a second
    assert hooks(receiver, "/never") == []
    assert srv.api("GET", "/api/deliveries").json()["deliveries"] == []


def test_emit_id_is_an_idempotency_key(server, receiver):
    srv = server(workflows={"twice": workflow("twice", """
        webhook.emit(event.body.url, {n = 1}, {id = "order-42"})
        return webhook.emit(event.body.url, {n = 2}, {id = "order-42"})
    """)})
    run = start_run(srv, "/twice", {"url": receiver.url + "/idem"})
    assert run["status"] == "succeeded", run
    assert run["steps"][0]["output"] == "order-42"
    wait_delivery(srv, "order-42")
    time.sleep(0.5)
    reqs = hooks(receiver, "/idem")
    assert len(reqs) == 1 and reqs[0]["headers"]["webhook-id"] == "order-42"


def test_emit_validates_its_arguments(server, receiver):
    srv = server(workflows={"bad": workflow("bad", """
        local ok, err = pcall(webhook.emit, event.body.url, {}, event.body.opts)
        return err
    """)})
    cases = [
        ({"url": "ftp://x/"}, "http:// or"),
        ({"url": receiver.url, "opts": {"attempts": 0}}, "attempts"),
        ({"url": receiver.url, "opts": {"attempts": 101}}, "attempts"),
        ({"url": receiver.url, "opts": {"backoff": "soon"}}, "backoff"),
        ({"url": receiver.url, "opts": {"secret": "whsec_***"}}, "base64"),
        ({"url": receiver.url, "opts": {"headers": {"webhook-id": "x"}}},
         "set by hookflow"),
    ]
    for body, want in cases:
        run = start_run(srv, "/bad", body)
        assert run["status"] == "succeeded", run
        assert want in (run["steps"][0]["output"] or ""), (body, run)


def test_retry_after_a_crash_resumes_the_schedule(server, receiver):
    # 503 with Retry-After: the next attempt is at least 3 s away, time
    # enough to kill the server while it waits.
    receiver.responses = [(503, {"Retry-After": "3"}, "busy")]
    srv = server(workflows={"emit": EMIT})
    did = emit(srv, receiver.url + "/later", {"x": 1}, {"backoff": "100ms"})
    wait_for(lambda: delivery(srv, did)["attempts"] == 1, 15,
             what="first attempt recorded")
    d = delivery(srv, did)
    assert d["status"] == "pending" and d["last_status"] == 503, d
    srv.kill()  # SIGKILL
    srv.start()
    d = wait_delivery(srv, did, timeout=30)
    assert d["status"] == "delivered" and d["attempts"] == 2, d
    reqs = hooks(receiver, "/later")
    assert len(reqs) == 2
    assert {r["headers"]["webhook-id"] for r in reqs} == {did}


def test_slow_receiver_times_out_as_a_failed_attempt(server, receiver):
    receiver.delay = 2.0
    srv = server(workflows={"emit": EMIT})
    try:
        did = emit(srv, receiver.url + "/slow", {"x": 1},
                   {"timeout": "300ms", "attempts": 2, "backoff": "100ms"})
        d = wait_delivery(srv, did, timeout=30)
    finally:
        receiver.delay = 0
    assert d["status"] == "failed" and d["attempts"] == 2, d
    for a in d["attempts_log"]:
        assert a["status"] is None
        assert "timed out" in a["error"].lower() or "timeout" in a["error"].lower()


def test_thousand_emits_each_delivered_exactly_once(server, receiver):
    srv = server(workflows={"many": workflow("many", """
        local ids = {}
        for i = 1, 100 do
          ids[#ids + 1] = webhook.emit(event.body.url, {batch = event.body.batch, i = i})
        end
        return #ids
    """)})
    runs = []
    for batch in range(10):
        r = srv.post("/many", {"url": receiver.url + "/bulk", "batch": batch})
        assert r.status == 202, r
        runs += r.json()["runs"]
    for run_id in runs:
        assert srv.wait_run(run_id, timeout=60)["status"] == "succeeded"
    wait_for(lambda: len(hooks(receiver, "/bulk")) >= 1000, 120,
             what="1000 deliveries")
    wait_for(lambda: len(srv.api("GET", "/api/deliveries?status=delivered"
                                 "&limit=1000").json()["deliveries"]) == 1000,
             60, what="1000 deliveries recorded as delivered")
    time.sleep(1.0)  # anything sent twice would show up by now
    reqs = hooks(receiver, "/bulk")
    ids = [r["headers"]["webhook-id"] for r in reqs]
    assert len(ids) == 1000 and len(set(ids)) == 1000
    seen = {(json.loads(r["body"])["batch"], json.loads(r["body"])["i"])
            for r in reqs}
    assert len(seen) == 1000


def test_emits_sharing_a_due_time_past_a_page_each_delivered(server, receiver):
    """The emits of one step share their due time; the outbox reads them a
    page at a time, from where its last read stopped within them. 700 of
    them (more than a page, more than in flight), the first 40 answered 500
    (retried 50ms on, a later due time), and a second run's emits arriving
    while the first ones are in flight: each is delivered once, and sent
    exactly as often as its attempts say."""
    receiver.responses = [(500, {}, "no")] * 40
    receiver.delay = 0.002
    srv = server(workflows={"same": workflow("same", """
        for i = 1, event.body.n do
          webhook.emit(event.body.url, {run = event.body.run, i = i},
                       {backoff = "50ms"})
        end
        return event.body.n
    """)})
    url = receiver.url + "/same"
    first = start_run(srv, "/same", {"url": url, "run": 1, "n": 700})
    assert first["status"] == "succeeded", first
    second = start_run(srv, "/same", {"url": url, "run": 2, "n": 60})
    assert second["status"] == "succeeded", second

    def delivered():
        r = srv.api("GET", "/api/deliveries?status=delivered&limit=1000")
        return len(r.json()["deliveries"]) == 760
    wait_for(delivered, 120, what="760 deliveries recorded as delivered")
    time.sleep(1.0)  # anything sent once more would show up by now
    reqs = hooks(receiver, "/same")
    by_id = {}
    for r in reqs:
        by_id.setdefault(r["headers"]["webhook-id"], []).append(r)
    assert len(by_id) == 760
    seen = {(json.loads(r["body"])["run"], json.loads(r["body"])["i"])
            for r in reqs}
    assert len(seen) == 760
    retried = [did for did, rs in by_id.items() if len(rs) > 1]
    assert 0 < len(retried) <= 40
    for did in retried:
        d = delivery(srv, did)
        assert d["status"] == "delivered", d
        assert d["attempts"] == len(by_id[did]), d
        assert [a["status"] for a in d["attempts_log"]][-1] == 200, d


# --- http.* ------------------------------------------------------------------

HTTP = workflow("call", """
    local b = event.body
    local r = http.request(b.req)
    return { status = r.status, headers = r.headers, body = r.body, json = r.json }
""")


def call(srv, req):
    return start_run(srv, "/call", {"req": req})


def test_http_methods_headers_and_bodies(server, receiver):
    srv = server(workflows={"call": HTTP})
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        body = None if method in ("GET", "DELETE") else f"body-{method}"
        run = call(srv, {"method": method, "url": receiver.url + f"/m/{method}",
                         "headers": {"X-Test": method.lower()},
                         **({"body": body} if body else {})})
        assert run["status"] == "succeeded", run
        assert run["steps"][0]["output"]["status"] == 200
        (req,) = hooks(receiver, f"/m/{method}")
        assert req["method"] == method
        assert req["headers"]["x-test"] == method.lower()
        assert req["body"] == (body.encode() if body else b"")


def test_http_json_both_ways(server, receiver):
    receiver.default = (201, {"X-Reply": "Yes"}, {"created": True, "id": 7})
    srv = server(workflows={"call": HTTP, "post": workflow("post", """
        local r = http.post(event.body.url, { name = "ada", tags = json.array{} })
        return { status = r.status, json = r.json, reply = r.headers["x-reply"],
                 ctype = r.headers["content-type"] }
    """)})
    run = start_run(srv, "/post", {"url": receiver.url + "/json"})
    assert run["status"] == "succeeded", run
    out = run["steps"][0]["output"]
    assert out == {"status": 201, "json": {"created": True, "id": 7},
                   "reply": "Yes", "ctype": "application/json"}
    (req,) = hooks(receiver, "/json")
    assert req["headers"]["content-type"] == "application/json"
    assert json.loads(req["body"]) == {"name": "ada", "tags": []}
    # request{json=} and http.get with options
    run = call(srv, {"method": "PUT", "url": receiver.url + "/json2",
                     "json": {"k": [1, 2]}})
    assert run["steps"][0]["output"]["json"] == {"created": True, "id": 7}
    (req,) = hooks(receiver, "/json2")
    assert req["method"] == "PUT" and json.loads(req["body"]) == {"k": [1, 2]}


def test_http_status_returns_and_redirects_not_followed(server, receiver):
    receiver.responses = [(404, {}, "nope"),
                          (302, {"Location": "/target"}, "")]
    srv = server(workflows={"call": HTTP})
    out = call(srv, {"url": receiver.url + "/missing"})["steps"][0]["output"]
    assert out["status"] == 404 and out["body"] == "nope"
    out = call(srv, {"url": receiver.url + "/redir"})["steps"][0]["output"]
    assert out["status"] == 302 and out["headers"]["location"] == "/target"
    assert hooks(receiver, "/target") == []
    receiver.responses = [(302, {"Location": "/target"}, "")]
    out = call(srv, {"url": receiver.url + "/redir",
                     "follow_redirects": True})["steps"][0]["output"]
    assert out["status"] == 200 and len(hooks(receiver, "/target")) == 1


def test_http_refused_port_fails_the_step_with_curls_message(server):
    srv = server(workflows={"call": HTTP})
    run = call(srv, {"url": "http://127.0.0.1:1/"})
    assert run["status"] == "failed", run
    err = run["steps"][0]["error"]
    assert "http.request: Couldn't connect to server" in err, err
    assert "127.0.0.1:1" in err


def test_http_timeout(server, receiver):
    receiver.delay = 2.0
    srv = server(workflows={"call": HTTP})
    try:
        run = call(srv, {"url": receiver.url + "/slow", "timeout": "300ms"})
    finally:
        receiver.delay = 0
    assert run["status"] == "failed", run
    assert "Timeout was reached" in run["steps"][0]["error"], run


def test_http_timeout_capped_by_the_step(server, receiver):
    receiver.delay = 3.0
    # The step has 1s; the call asks for 60s: the step's deadline wins.
    srv = server(workflows={"capped": workflow("capped", """
        return http.get(event.body.url, { timeout = 60 }).status
    """, step_extra="    timeout: 1s\n")})
    try:
        run = start_run(srv, "/capped", {"url": receiver.url + "/slow"})
    finally:
        receiver.delay = 0
    assert run["status"] == "failed", run
    err = run["steps"][0]["error"]
    assert "timed out" in err.lower() or "timeout" in err.lower(), err


def test_http_oversized_response(server, receiver):
    receiver.default = (200, {}, "x" * 5000)
    srv = server(workflows={"call": HTTP})
    run = call(srv, {"url": receiver.url + "/big", "max_response": 1000})
    assert run["status"] == "failed", run
    assert "response larger than 1000 bytes" in run["steps"][0]["error"], run
    run = call(srv, {"url": receiver.url + "/big", "max_response": "4KiB"})
    assert "response larger than 4 KiB" in run["steps"][0]["error"], run
    run = call(srv, {"url": receiver.url + "/big"})
    assert run["status"] == "succeeded"
    assert len(run["steps"][0]["output"]["body"]) == 5000


def test_http_rejects_other_schemes_and_header_injection(server):
    srv = server(workflows={"call": HTTP})
    run = call(srv, {"url": "file:///etc/passwd"})
    assert run["status"] == "failed"
    assert "http:// or https://" in run["steps"][0]["error"]
    run = call(srv, {"url": "http://127.0.0.1:1/",
                     "headers": {"X-A": "b\r\nX-Injected: 1"}})
    assert "line break" in run["steps"][0]["error"]


# --- delivery API and CLI ----------------------------------------------------

def test_delivery_api_retry_and_cli(server, receiver):
    receiver.default = (410, {}, "gone")
    srv = server(workflows={"emit": EMIT})
    did = emit(srv, receiver.url + "/api", {"x": 1}, {"backoff": "100ms"})
    d = wait_delivery(srv, did)
    assert d["status"] == "failed" and d["attempts"] == 1
    assert d["url"] == receiver.url + "/api"
    lst = srv.api("GET", "/api/deliveries").json()["deliveries"]
    item = next(x for x in lst if x["id"] == did)
    assert item["status"] == "failed" and item["attempts"] == 1
    assert item["last_status"] == 410

    # POST /api/deliveries/ID/retry: sent again, now accepted.
    receiver.default = (200, {}, "ok")
    r = srv.api("POST", f"/api/deliveries/{did}/retry")
    assert r.status == 202, r
    d = wait_delivery(srv, did, statuses=("delivered",))
    assert d["attempts"] == 2
    assert [a["status"] for a in d["attempts_log"]] == [410, 200]
    assert srv.api("POST", f"/api/deliveries/{did}/retry").status == 409
    assert srv.api("POST", "/api/deliveries/dl_nope/retry").status == 404
    assert srv.api("GET", "/api/deliveries/dl_nope").status == 404
    r = srv.request("POST", f"/api/deliveries/{did}/retry")
    assert r.status == 401

    # CLI: list, filter, show, retry (picked up by the running server).
    receiver.default = (410, {}, "gone")
    did2 = emit(srv, receiver.url + "/cli", {"y": 2})
    wait_delivery(srv, did2)
    st = str(srv.state)
    p = srv.cli("deliveries", "--state", st, "--json", check=True)
    ids = {x["id"]: x for x in json.loads(p.stdout)["deliveries"]}
    assert ids[did]["status"] == "delivered" and ids[did2]["status"] == "failed"
    p = srv.cli("deliveries", "--status", "failed", "--state", st, check=True)
    assert did2 in p.stdout and did not in p.stdout
    p = srv.cli("deliveries", "show", did, "--state", st, check=True)
    assert "delivered" in p.stdout and "410" in p.stdout
    receiver.default = (200, {}, "ok")
    p = srv.cli("deliveries", "retry", did2, "--state", st, check=True)
    assert p.stdout.strip() == did2
    d = wait_delivery(srv, did2, statuses=("delivered",))
    assert d["attempts"] == 2
    p = srv.cli("deliveries", "retry", did2, "--state", st)
    assert p.returncode == 1 and "already delivered" in p.stderr
    p = srv.cli("deliveries", "retry", "dl_nope", "--state", st)
    assert p.returncode == 1 and "no delivery" in p.stderr


def test_metrics_count_delivery_outcomes(server, receiver):
    receiver.responses = [(500, {}, "")]
    srv = server(workflows={"emit": EMIT})
    did = emit(srv, receiver.url + "/m", {"x": 1}, {"backoff": "100ms"})
    wait_delivery(srv, did)
    # Counted when the attempt's commit is done, a moment after it shows.
    m = wait_for(lambda: (lambda b: b if 'hookflow_delivery_attempts_total'
                          '{outcome="delivered"} 1' in b else None)(
        srv.get("/metrics").body), 15, what="the delivery counted")
    assert 'hookflow_delivery_attempts_total{outcome="retry"} 1' in m


def test_retry_asked_during_an_attempt_is_not_lost(server, receiver):
    # The only attempt is in flight (the receiver holds it) when a retry is
    # asked for; the attempt then fails. The retry must still happen.
    receiver.responses = [(500, {}, "slow failure"), (200, {}, "ok")]
    receiver.delay = 1.5
    srv = server(workflows={"emit": EMIT})
    did = emit(srv, receiver.url + "/held", {"x": 1}, {"attempts": 1})
    wait_for(lambda: hooks(receiver, "/held"), 15, what="the first attempt")
    receiver.delay = 0
    r = srv.api("POST", f"/api/deliveries/{did}/retry")
    assert r.status == 202, r
    d = wait_delivery(srv, did, statuses=("delivered",), timeout=20)
    assert d["attempts"] == 2, d
    assert len(hooks(receiver, "/held")) == 2


def test_a_slow_receiver_does_not_hold_up_the_others(server, receiver):
    """The outbox reads due deliveries a page ahead; one host at its cap
    (8 in flight) with many more waiting must not keep another host's
    deliveries, emitted after them, from going out."""
    from conftest import Receiver
    slow = Receiver()
    slow.delay = 1.0
    try:
        wf = workflow("many", """
            for i = 1, 40 do webhook.emit(event.body.slow, {i = i}) end
            for i = 1, 40 do webhook.emit(event.body.fast, {i = i}) end
        """)
        srv = server(workflows={"many": wf})
        run = start_run(srv, "/many", {"slow": slow.url + "/s",
                                       "fast": receiver.url + "/f"})
        assert run["status"] == "succeeded", run
        wait_for(lambda: len(hooks(receiver, "/f")) == 40, 30,
                 what="40 deliveries to the fast receiver")
        with slow.lock:
            assert len(slow.requests) < 40
        wait_for(lambda: len(slow.requests) == 40, 60,
                 what="40 deliveries to the slow receiver")
        bodies = sorted(json.loads(r["body"])["i"] for r in hooks(receiver, "/f"))
        assert bodies == list(range(1, 41))
    finally:
        slow.close()
