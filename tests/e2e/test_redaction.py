"""Secrets at rest and on screen (issue 11, findings 7 and 8's headers): emit
signing secrets stored sealed (AES-256-GCM) in deliveries.secret, with the key
from HOOKFLOW_SECRET_KEY or STATE.key (0600); credentials of delivery URLs and
the Authorization, Cookie and signature headers of events shown redacted by
the API, the CLI, the JSON log and the dashboard; database files created 0600;
the dashboard's CSP without 'unsafe-inline', nosniff and Referrer-Policy; and
nosniff on every JSON answer. All against the real `hookflow serve`."""
import base64
import hashlib
import hmac
import json
import os
import re
import sqlite3
import stat

import pytest

import webdriver
from conftest import wait_for

KEY = base64.b64encode(b"k" * 32).decode()
SECRET = "whsec_" + KEY  # Standard Webhooks form: the key is base64 inside
PASSWORD = "pa55w0rd-zq"
TOKEN = "t0ken-zq"

EMIT = """
name: emit
on:
  webhook:
    path: /emit
steps:
  - id: send
    run: |
      return webhook.emit(event.body.url, { order = 42 },
                          { attempts = 1, secret = env("PARTNER_SECRET") })
"""

ECHO = """
name: echo
on:
  webhook:
    path: /echo
steps:
  - id: seen
    run: |
      db.exec("CREATE TABLE IF NOT EXISTS t(x INTEGER)")
      return { auth_kept = event.headers.authorization == "Bearer in-secret-zq",
               cookie_kept = event.headers.cookie == "session=cookie-zq" }
"""

SECRETS = (PASSWORD, TOKEN, SECRET, KEY)


def secret_url(receiver):
    return (f"http://user:{PASSWORD}@127.0.0.1:{receiver.port}/hook"
            f"?token={TOKEN}&x=1")


def shown_url(receiver):
    return (f"http://[redacted]@127.0.0.1:{receiver.port}/hook"
            f"?token=[redacted]&x=[redacted]")


def assert_clean(text, where):
    for s in SECRETS:
        assert s not in text, f"{s!r} shown in {where}"


def emit_one(srv, receiver):
    run = srv.post("/emit", {"url": secret_url(receiver)}).json()["runs"][0]
    out = srv.wait_run(run)
    assert out["status"] == "succeeded", out
    did = out["steps"][0]["output"]
    wait_for(lambda: srv.api("GET", f"/api/deliveries/{did}").json()["status"]
             == "delivered", what="the delivery")
    return did


def check_signature(req):
    """Standard Webhooks: v1,base64(HMAC-SHA256(key, id.ts.body))."""
    h = req["headers"]
    msg = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + req["body"]
    want = base64.b64encode(hmac.new(base64.b64decode(KEY), msg,
                                     hashlib.sha256).digest()).decode()
    assert f"v1,{want}" in h["webhook-signature"].split(" ")


def sql(srv, query, *args):
    """Runs one statement on the state database and closes it again."""
    db = sqlite3.connect(srv.state)
    try:
        with db:
            return db.execute(query, args).fetchall()
    finally:
        db.close()


def stored_secret(srv, did):
    return sql(srv, "SELECT secret FROM deliveries WHERE id = ?", did)[0][0]


def files_bytes(srv):
    out = b""
    for p in srv.dir.iterdir():
        if p.name.startswith("hookflow.db"):
            out += p.read_bytes()
    return out


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.sqlite_only("reads the bytes of the hookflow.db files")
def test_secret_sealed_at_rest_and_signature_verifies(server, receiver):
    srv = server(workflows={"emit": EMIT}, env={"PARTNER_SECRET": SECRET})
    did = emit_one(srv, receiver)
    req = receiver.requests[-1]
    check_signature(req)
    # The URL's credentials still reach the receiver (Basic auth, query).
    assert req["headers"]["authorization"] == "Basic " + base64.b64encode(
        f"user:{PASSWORD}".encode()).decode()
    assert TOKEN in req["path"]

    sealed = stored_secret(srv, did)
    assert sealed.startswith("v1:") and SECRET not in sealed
    for s in (SECRET.encode(), base64.b64decode(KEY)):
        assert s not in files_bytes(srv), "the secret is in a database file"

    # After a restart the key file opens the sealed secret; a secret an older
    # version stored in plain text is sealed at start. Both still sign.
    for stored in (sealed, SECRET):
        srv.stop()
        sql(srv, "UPDATE deliveries SET secret = ?, status = 'pending',"
            " next_at = 0 WHERE id = ?", stored, did)
        n = len(receiver.requests)
        srv.start()
        wait_for(lambda: len(receiver.requests) > n, what="the delivery again")
        check_signature(receiver.requests[-1])
        assert stored_secret(srv, did).startswith("v1:")

    # With another key a pending sealed secret stops the start, and says so.
    srv.stop()
    sql(srv, "UPDATE deliveries SET status = 'pending' WHERE id = ?", did)
    srv.env["HOOKFLOW_SECRET_KEY"] = "ab" * 32
    srv.port = None  # start() waits for a new one
    with pytest.raises(AssertionError):
        srv.start(timeout=30)
    assert f"delivery {did}: its signing secret does not open" in srv.stderr()


@pytest.mark.sqlite_only("file modes of hookflow.db, its -wal and .key")
def test_database_files_private(server, receiver, umask022):
    srv = server(workflows={"emit": EMIT, "echo": ECHO},
                 env={"PARTNER_SECRET": SECRET})
    emit_one(srv, receiver)
    assert srv.post("/echo", {}).status == 202  # opens the data database
    wait_for(lambda: srv.data.exists(), what="the data database")
    for p in [srv.state, srv.data] + [
            srv.dir / f"{n}{s}" for n in ("hookflow.db", "data.db")
            for s in ("-wal", "-shm") if (srv.dir / f"{n}{s}").exists()]:
        assert mode(p) == 0o600, f"{p.name} has mode {oct(mode(p))}"
    key = srv.dir / "hookflow.db.key"
    assert re.fullmatch(r"[0-9a-f]{64}\n", key.read_text())
    assert mode(key) == 0o600


@pytest.mark.sqlite_only("no hookflow.db.key file beside the state file")
def test_secret_key_from_environment(server, receiver):
    srv = server(workflows={"emit": EMIT}, env={
        "PARTNER_SECRET": SECRET,
        "HOOKFLOW_SECRET_KEY": base64.b64encode(b"e" * 32).decode()})
    did = emit_one(srv, receiver)
    check_signature(receiver.requests[-1])
    assert stored_secret(srv, did).startswith("v1:")
    assert not (srv.dir / "hookflow.db.key").exists()

    bad = server(workflows={"emit": EMIT}, start=False,
                 env={"HOOKFLOW_SECRET_KEY": "not-a-key"})
    with pytest.raises(AssertionError):
        bad.start(timeout=30)
    assert ("HOOKFLOW_SECRET_KEY must be 64 hex digits or the base64 of 32 "
            "bytes") in bad.stderr()


def test_delivery_urls_redacted_everywhere(server, receiver):
    srv = server(workflows={"emit": EMIT}, env={"PARTNER_SECRET": SECRET},
                 args=["--log-format", "json"])
    did = emit_one(srv, receiver)
    shown = shown_url(receiver)

    lst = srv.api("GET", "/api/deliveries")
    assert lst.json()["deliveries"][0]["url"] == shown
    assert_clean(lst.body, "GET /api/deliveries")
    one = srv.api("GET", f"/api/deliveries/{did}")
    assert one.json()["url"] == shown
    assert_clean(one.body, f"GET /api/deliveries/{did}")

    for args in (["deliveries"], ["deliveries", "--json"],
                 ["deliveries", "show", did], ["deliveries", "show", did,
                                                "--json"]):
        p = srv.cli(*args, "--state", str(srv.state), check=True)
        assert "[redacted]" in p.stdout, (args, p.stdout)
        assert_clean(p.stdout + p.stderr, "hookflow " + " ".join(args))

    # `hookflow run` shows what would be delivered: redacted too.
    event = srv.dir / "event.json"
    event.write_text(json.dumps({"url": secret_url(receiver)}))
    p = srv.cli("run", str(srv.workflows / "emit.yml"), "--event", str(event),
                check=True)
    assert json.loads(p.stdout.splitlines()[-1])["emits"][0]["url"] == shown
    assert_clean(p.stdout + p.stderr, "hookflow run")

    lines = [json.loads(l) for l in srv.stderr_lines if l.startswith("{")]
    attempts = [l for l in lines if l.get("msg") == "delivery attempt"]
    assert attempts and attempts[-1]["url"] == shown
    assert_clean(srv.stderr(), "the JSON log")


HEADERS = {"Authorization": "Bearer in-secret-zq", "Cookie": "session=cookie-zq",
           "Proxy-Authorization": "Basic cHJveHk6enE=",
           "X-Hub-Signature-256": "sha256=" + "ab" * 32,
           "Stripe-Signature": "t=1,v1=" + "cd" * 32,
           "X-Api-Key": "key-zq", "X-Tenant": "acme"}


def test_event_headers_redacted_and_kept_for_replay(server):
    srv = server(workflows={"echo": ECHO})
    r = srv.post("/echo", {"a": 1}, headers=HEADERS)
    assert r.status == 202, r
    run = srv.wait_run(r.json()["runs"][0])
    assert run["steps"][0]["output"] == {"auth_kept": True, "cookie_kept": True}
    ev = srv.api("GET", f"/api/events/{r.json()['event']}")
    h = ev.json()["headers"]
    for name in ("authorization", "cookie", "proxy-authorization",
                 "x-hub-signature-256", "stripe-signature", "x-api-key"):
        assert h[name] == "[redacted]", (name, h)
    assert h["x-tenant"] == "acme" and h["content-type"] == "application/json"
    for v in HEADERS.values():
        if v != "acme":
            assert v not in ev.body
    # The stored event keeps them: a replay's step sees the originals.
    rep = srv.api("POST", f"/api/events/{r.json()['event']}/replay")
    assert rep.status == 202, rep
    again = srv.wait_run(rep.json()["runs"][0])
    assert again["steps"][0]["output"] == {"auth_kept": True,
                                           "cookie_kept": True}


def test_a_long_name_is_redacted_whole(server):
    """A header or query parameter whose secret word comes past its 127th
    byte is redacted too (the check used to look at the first 127 only)."""
    srv = server(workflows={"echo": ECHO})
    header = "X-" + "a" * 130 + "-Token"
    param = "a" * 130 + "_token"
    r = srv.post(f"/echo?{param}=qleak1&page=2", {"a": 1},
                 headers={header: "hleak1"})
    assert r.status == 202, r
    srv.wait_run(r.json()["runs"][0])
    ev = srv.api("GET", f"/api/events/{r.json()['event']}")
    assert ev.status == 200, ev
    assert ev.json()["headers"][header.lower()] == "[redacted]", ev.body
    assert ev.json()["query"] == {param: "[redacted]", "page": "2"}, ev.body
    assert "hleak1" not in ev.body and "qleak1" not in ev.body


def test_dashboard_shows_redacted(server, receiver):
    if not webdriver.available():
        pytest.fail("the dashboard tests need Chromium: apt-get install "
                    "chromium chromium-driver")
    srv = server(workflows={"emit": EMIT, "echo": ECHO},
                 env={"PARTNER_SECRET": SECRET})
    did = emit_one(srv, receiver)
    ev = srv.post("/echo", {}, headers=HEADERS).json()["event"]
    with webdriver.Browser() as b:
        b.get(f"http://127.0.0.1:{srv.port}/ui")
        b.wait_css("#token").send_keys(srv.token)
        b.find("#login-btn").click()
        b.wait_css("#workflows-table")
        for hash_, css in ((f"#/deliveries/{did}", "#main .mono"),
                           ("#/deliveries", "#main table"),
                           (f"#/events/{ev}", "#event-headers")):
            b.js("location.hash = arguments[0];", hash_)
            b.wait_css(css)
            b.wait(lambda: "[redacted]" in b.find("#main").text,
                   what=f"redacted values on {hash_}")
            text = b.js("return document.documentElement.outerHTML;")
            assert_clean(text, f"the dashboard's {hash_}")
            for v in ("in-secret-zq", "cookie-zq", "key-zq"):
                assert v not in text


def test_dashboard_and_json_headers(server):
    srv = server(workflows={"echo": ECHO})
    page = srv.get("/ui")
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert "unsafe-inline" not in directives["script-src"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.body and "<style>" not in page.body
    for path, ctype in (("/ui/app.js", "text/javascript"),
                        ("/ui/app.css", "text/css")):
        r = srv.get(path)
        assert r.status == 200 and r.headers["content-type"].startswith(ctype)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-security-policy"] == csp
        assert f'"{path}"' in page.body


def test_json_answers_nosniff(server):
    srv = server(workflows={"echo": ECHO})
    # Every JSON answer says nosniff: 404s that echo the path, 401, 202.
    for r in (srv.api("GET", "/api/nope<svg>"),
              srv.post("/no/<b>such</b>", {}),
              srv.get("/api/runs"),
              srv.post("/echo", {})):
        assert r.headers["content-type"].startswith("application/json"), r
        assert r.headers["x-content-type-options"] == "nosniff", r
