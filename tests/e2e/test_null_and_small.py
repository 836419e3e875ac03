"""End-to-end tests for JSON null in Lua, long webhook.emit ids, the order of
the deliveries list and GitHub's form-encoded deliveries (docs/reference.md,
"event", "json" and "webhook.emit"; README.md, "Inbound verification"), run
through the real server. Every wait is bounded; no test asserts a timing."""
import hashlib
import hmac
import json
import subprocess
import textwrap
import urllib.parse
import uuid

from conftest import BIN, wait_for

SECRET = "gh-secret-for-the-null-tests"
ENV = {"HF_T_GH": SECRET}


def workflow(name, steps, extra=""):
    return (f"name: {name}\non:\n  webhook:\n    path: /{name}\n{extra}"
            "steps:\n" + textwrap.indent(textwrap.dedent(steps).strip("\n"), "  ")
            + "\n")


def one_step(name, code):
    return workflow(name, "- id: s\n  run: |\n"
                    + textwrap.indent(textwrap.dedent(code).strip("\n"), "    "))


def fire(srv, path, body, headers=None):
    r = srv.post(path, body, headers)
    assert r.status == 202, r
    assert len(r.json()["runs"]) == 1, r
    return r.json()["event"], srv.wait_run(r.json()["runs"][0], timeout=20)


def output(srv, path, body, headers=None):
    _, run = fire(srv, path, body, headers)
    assert run["status"] == "succeeded", (run, srv.stderr())
    return run["steps"][-1]["output"]


# --- JSON null ---------------------------------------------------------------------

BODY = ('{"id":"cs_1","customer":null,"items":[1,null,3],'
        '"nested":{"a":null,"b":1},"objs":[{"x":null,"y":2}],"flag":false}')


def test_null_members_of_the_body_are_nil(server):
    srv = server(workflows={"w": one_step("w", """
        local b = event.body
        local keys = 0
        for _ in pairs(b.nested) do keys = keys + 1 end
        local seen = {}
        for k in pairs(b) do seen[#seen + 1] = k end
        table.sort(seen)
        local customer = "absent"
        if b.customer then customer = "present" end
        return {
          customer = customer,
          customer_is_nil = b.customer == nil,
          n_items = #b.items,
          item2_is_null = b.items[2] == json.null,
          item3 = b.items[3],
          nested_keys = keys,
          obj_x_nil = b.objs[1].x == nil, obj_y = b.objs[1].y,
          keys = seen,
          flag_is_false = b.flag == false,
          reencoded = json.encode(b),
          raw_has_null = event.raw:find('"customer":null', 1, true) ~= nil,
        }
    """)})
    out = output(srv, "/w", BODY, {"Content-Type": "application/json"})
    assert out["customer"] == "absent"
    assert out["customer_is_nil"] is True
    assert out["n_items"] == 3 and out["item2_is_null"] is True
    assert out["item3"] == 3
    assert out["nested_keys"] == 1
    assert out["obj_x_nil"] is True and out["obj_y"] == 2
    assert out["keys"] == ["flag", "id", "items", "nested", "objs"]
    assert out["flag_is_false"] is True
    assert json.loads(out["reencoded"]) == {
        "id": "cs_1", "items": [1, None, 3], "nested": {"b": 1},
        "objs": [{"y": 2}], "flag": False}
    assert out["raw_has_null"] is True


def test_if_on_a_null_member_is_false(server):
    srv = server(workflows={"w": workflow("w", """
        - id: has_customer
          if: event.body.customer
          run: return "ran"
        - id: no_customer
          if: not event.body.customer
          run: return "ran"
        - id: args
          with:
            customer: ${{ event.body.customer }}
            items: ${{ event.body.items }}
          run: |
            return { customer_nil = args.customer == nil,
                     second_is_null = args.items[2] == json.null }
    """)})
    _, run = fire(srv, "/w", BODY, {"Content-Type": "application/json"})
    assert run["status"] == "succeeded", run
    st = {s["id"]: s for s in run["steps"]}
    assert st["has_customer"]["status"] == "skipped"
    assert st["no_customer"]["status"] == "succeeded"
    assert st["args"]["output"] == {"customer_nil": True, "second_is_null": True}


def test_workflow_if_on_a_null_member(server):
    srv = server(workflows={"w": workflow("w", "- id: s\n  run: return 1\n",
                                          extra="if: event.body.customer ~= nil\n")})
    r = srv.post("/w", '{"customer":null}', {"Content-Type": "application/json"})
    assert r.status in (200, 202), r
    assert r.json().get("runs", []) == [], r
    r = srv.post("/w", '{"customer":{"id":1}}', {"Content-Type": "application/json"})
    assert r.status == 202 and len(r.json()["runs"]) == 1, r


def test_indexing_json_null_names_it(server):
    srv = server(workflows={
        "w": one_step("w", "return event.body.items[1].email"),
        "set": one_step("set", "event.body.items[1].email = 'x'"),
        "probe": one_step("probe", """
            local ok, err = pcall(function() return json.null.x end)
            local ok2, err2 = pcall(function() return json.null[1] end)
            return { ok = ok, err = err, ok2 = ok2, err2 = err2,
                     str = tostring(json.null), ty = type(json.null),
                     mt = getmetatable(json.null),
                     eq = json.decode('[null]')[1] == json.null,
                     falsy_in_if = event.body.items[1] and "truthy" or "falsy" }
        """)})
    _, run = fire(srv, "/w", '{"items":[null]}', {"Content-Type": "application/json"})
    assert run["status"] == "failed", run
    err = run["steps"][0]["error"]
    assert "attempt to index json.null (a JSON null) with key 'email'" in err, err
    assert "w.yml:" in err, err  # where in the workflow
    _, run = fire(srv, "/set", '{"items":[null]}', {"Content-Type": "application/json"})
    assert run["status"] == "failed", run
    assert "attempt to index json.null (a JSON null) with key 'email'" in \
        run["steps"][0]["error"]
    out = output(srv, "/probe", '{"items":[null]}', {"Content-Type": "application/json"})
    assert out["ok"] is False and \
        "attempt to index json.null (a JSON null) with key 'x'" in out["err"]
    assert out["ok2"] is False and "attempt to index json.null (a JSON null)" in out["err2"]
    assert out["str"] == "json.null" and out["ty"] == "userdata"
    assert out["mt"] == "json.null"
    # json.null is a value, so Lua's `and`/`or` take it as true (`if:`
    # expressions count it as false).
    assert out["eq"] is True and out["falsy_in_if"] == "truthy"


def test_json_decode_nulls_option(server):
    srv = server(workflows={"w": one_step("w", """
        local s = '{"a":null,"b":[null,1],"c":{"d":null}}'
        local plain = json.decode(s)
        local kept = json.decode(s, {nulls = true})
        local ok, err = pcall(json.decode, s, {nulls = "yes"})
        local ok2, err2 = pcall(json.decode, s, 5)
        return {
          plain_a_nil = plain.a == nil, plain_b1 = plain.b[1] == json.null,
          plain_d_nil = plain.c.d == nil,
          plain_enc = json.encode(plain),
          kept_a = kept.a == json.null, kept_d = kept.c.d == json.null,
          kept_enc = json.encode(kept),
          off = json.decode(s, {nulls = false}).a == nil,
          top = json.decode("null") == nil,
          err = err, ok = ok, err2 = err2, ok2 = ok2,
        }
    """)})
    out = output(srv, "/w", {})
    assert out["plain_a_nil"] and out["plain_b1"] and out["plain_d_nil"]
    assert json.loads(out["plain_enc"]) == {"b": [None, 1], "c": {}}
    assert out["kept_a"] and out["kept_d"]
    assert json.loads(out["kept_enc"]) == {"a": None, "b": [None, 1], "c": {"d": None}}
    assert out["off"] and out["top"]
    assert out["ok"] is False and "option nulls must be a boolean" in out["err"]
    assert out["ok2"] is False and "table expected" in out["err2"]


def test_step_outputs_http_json_and_db_with_null(server, receiver):
    receiver.default = (200, {}, {"a": None, "b": [None], "c": 1})
    srv = server(workflows={"w": workflow("w", """
        - id: first
          run: return { x = json.null, y = 1, arr = { json.null, 2 } }
        - id: second
          run: |
            local r = http.get(event.body.url)
            local row = db.one(
              "SELECT CASE WHEN CAST(? AS TEXT) IS NULL THEN 1 ELSE 0 END AS was_null",
              json.null)
            return { x_nil = steps.first.x == nil, y = steps.first.y,
                     arr1_null = steps.first.arr[1] == json.null,
                     http_a_nil = r.json.a == nil,
                     http_b1_null = r.json.b[1] == json.null,
                     bound_null = row.was_null }
    """)})
    _, run = fire(srv, "/w", {"url": receiver.url + "/j"})
    assert run["status"] == "succeeded", run
    st = {s["id"]: s for s in run["steps"]}
    # The stored output keeps the null; the next step reads it as nil.
    assert st["first"]["output"] == {"x": None, "y": 1, "arr": [None, 2]}
    assert st["second"]["output"] == {"x_nil": True, "y": 1, "arr1_null": True,
                                      "http_a_nil": True, "http_b1_null": True,
                                      "bound_null": 1}


# --- webhook.emit ids up to 255 bytes ------------------------------------------------

EMIT = one_step("emit", """
    local b = event.body
    local ids = {}
    for i, id in ipairs(b.ids) do
      ids[i] = webhook.emit(b.url, { n = i }, { id = id })
    end
    return ids
""")


def test_long_emit_ids(server, receiver):
    srv = server(workflows={"emit": EMIT, "bad": one_step("bad", """
        local ok, err = pcall(webhook.emit, event.body.url, {}, { id = event.body.id })
        return { ok = ok, err = err }
    """)})
    stripe = "stripe:cs_test_a1" + "B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4y5Z6a7b8C9d0E1"
    assert len(stripe) > 66
    longest = "k" * 200 + ":" + "x" * 54
    assert len(longest) == 255
    out = output(srv, "/emit", {"url": receiver.url + "/long",
                                "ids": [stripe, longest, stripe]})
    assert out == [stripe, longest, stripe]
    for did in (stripe, longest):
        d = wait_for(lambda: (lambda r: r.json() if r.status == 200 and
                              r.json()["status"] == "delivered" else None)(
            srv.api("GET", f"/api/deliveries/{did}")), 20, what=f"delivery {did}")
        assert d["id"] == did
    with receiver.lock:
        got = sorted(r["headers"]["webhook-id"] for r in receiver.requests
                     if r["path"] == "/long")
    # The repeated id was queued once (idempotency holds for long ids).
    assert got == sorted([stripe, longest])
    # The admin API finds it by its full id (409: it was delivered, not 404).
    r = srv.api("POST", f"/api/deliveries/{longest}/retry")
    assert r.status == 409 and "already delivered" in r.body, r
    p = srv.cli("deliveries", "show", longest, "--json", "--state", str(srv.state))
    assert p.returncode == 0 and longest in p.stdout, p.stderr
    # Too long, and bad characters: a clear error at the call.
    out = output(srv, "/bad", {"url": receiver.url, "id": "k" * 256})
    assert out["ok"] is False and "id must be 1 to 255" in out["err"], out
    out = output(srv, "/bad", {"url": receiver.url, "id": "a b"})
    assert out["ok"] is False and "id must be 1 to 255" in out["err"], out


# --- deliveries newest first -----------------------------------------------------------

def test_deliveries_list_newest_first(server, receiver):
    srv = server(workflows={"emit": EMIT})
    # Ids whose order is neither the order they were made in nor its reverse.
    output(srv, "/emit", {"url": receiver.url + "/o", "ids": ["b-1", "c-2", "a-3"]})
    output(srv, "/emit", {"url": receiver.url + "/o", "ids": ["0-late"]})
    output(srv, "/emit", {"url": receiver.url + "/o", "ids": ["m-last"]})
    r = srv.api("GET", "/api/deliveries")
    assert r.status == 200, r
    ids = [d["id"] for d in r.json()["deliveries"]]
    assert ids == ["m-last", "0-late", "a-3", "c-2", "b-1"], ids
    created = [d["created_at"] for d in r.json()["deliveries"]]
    assert created == sorted(created, reverse=True)
    r = srv.api("GET", "/api/deliveries?limit=2")
    assert [d["id"] for d in r.json()["deliveries"]][:2] == ["m-last", "0-late"]
    # The CLI lists the same order.
    p = srv.cli("deliveries", "--json", "--state", str(srv.state))
    assert p.returncode == 0, p.stderr
    text = p.stdout
    pos = [text.find(f'"{i}"') for i in ("m-last", "0-late", "a-3", "c-2", "b-1")]
    assert all(x >= 0 for x in pos) and pos == sorted(pos), text


# --- GitHub form deliveries ----------------------------------------------------------------

GH = workflow("gh", """
    - id: s
      run: |
        return { action = event.body.action, number = event.body.issue.number,
                 assignee_nil = event.body.issue.assignee == nil,
                 labels = #event.body.issue.labels,
                 form = event.raw:sub(1, 8) == "payload=",
                 event_header = event.headers["x-github-event"] }
""", extra="    verify:\n      scheme: github\n      secret: ${HF_T_GH}\n")

PAYLOAD = {"action": "opened", "issue": {"number": 7, "assignee": None,
                                         "labels": [{"name": "bug"}],
                                         "title": "Crash on save & exit"}}


def gh_headers(body, ctype, key=SECRET, event="issues"):
    sig = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    h = {"Content-Type": ctype, "X-Hub-Signature-256": "sha256=" + sig,
         "X-GitHub-Delivery": str(uuid.uuid4())}
    if event:
        h["X-GitHub-Event"] = event
    return h


def form_body(payload):
    return ("payload=" + urllib.parse.quote_plus(json.dumps(payload))).encode()


WANT = {"action": "opened", "number": 7, "assignee_nil": True, "labels": 1,
        "event_header": "issues"}


def test_github_form_payload_is_the_json_body(server):
    srv = server(workflows={"gh": GH}, env=ENV)
    body = form_body(PAYLOAD)
    out = output(srv, "/gh", body, gh_headers(body, "application/x-www-form-urlencoded"))
    assert out == {**WANT, "form": True}
    # The same delivery as JSON gives the same event.body.
    jbody = json.dumps(PAYLOAD).encode()
    out = output(srv, "/gh", jbody, gh_headers(jbody, "application/json"))
    assert out == {**WANT, "form": False}


def test_github_form_is_verified_over_the_raw_body(server):
    srv = server(workflows={"gh": GH}, env=ENV)
    body = form_body(PAYLOAD)
    # Signed over the decoded JSON instead of the form: refused.
    wrong = gh_headers(json.dumps(PAYLOAD).encode(), "application/x-www-form-urlencoded")
    r = srv.post("/gh", body, wrong)
    assert r.status == 401, r
    r = srv.post("/gh", body, gh_headers(body, "application/x-www-form-urlencoded",
                                          key="not-the-secret"))
    assert r.status == 401, r


def test_github_form_with_bad_payload_is_400(server):
    srv = server(workflows={"gh": GH}, env=ENV)
    body = b"payload=%7Bnot+json"
    r = srv.post("/gh", body, gh_headers(body, "application/x-www-form-urlencoded"))
    assert r.status == 400, r
    assert "invalid JSON in the form's payload field" in r.json()["error"], r
    assert srv.api("GET", "/api/runs").json()["runs"] == []


def test_github_form_replay_and_plain_forms(server):
    srv = server(workflows={"gh": GH, "plain": one_step("plain", """
        return event.body
    """)}, env=ENV)
    body = form_body(PAYLOAD)
    ev, run = fire(srv, "/gh", body, gh_headers(body, "application/x-www-form-urlencoded"))
    assert run["status"] == "succeeded", run
    # A replay decodes the stored event the same way.
    r = srv.api("POST", f"/api/events/{ev}/replay")
    assert r.status == 202, r
    again = srv.wait_run(r.json()["runs"][0], timeout=20)
    assert again["status"] == "succeeded", again
    assert again["steps"][0]["output"] == {**WANT, "form": True}
    # A form without X-GitHub-Event stays a form, payload field and all.
    out = output(srv, "/plain", b"payload=%7B%7D&a=1",
                 {"Content-Type": "application/x-www-form-urlencoded"})
    assert out == {"payload": "{}", "a": "1"}


def test_github_form_with_hookflow_run(tmp_path):
    wf = tmp_path / "gh.yml"
    wf.write_text(one_step("ghrun", "return event.body.issue.number"))
    ev = tmp_path / "ev.txt"
    ev.write_bytes(form_body(PAYLOAD))
    p = subprocess.run([BIN, "run", str(wf), "--event", str(ev),
                        "--data", str(tmp_path / "data.db"),
                        "--header", "Content-Type: application/x-www-form-urlencoded",
                        "--header", "X-GitHub-Event: issues"],
                       capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    line = json.loads(p.stdout.strip().splitlines()[-1])
    assert line["status"] == "succeeded" and line["output"] == 7, line
