"""Real senders against the real `hookflow serve`: the general `hmac` scheme
and its presets zendesk, hubspot, intercom and helpscout, and the `token` and
`basic` schemes (contract §5, "Signature schemes").

Every signature here is made by Python's hmac module from the sender's
documented recipe (the address is beside each), never by hookflow's code.
None of these senders publishes a fixed test vector (a secret, a request and
its signature) on its verification page, so each preset is checked against
its documented recipe, plus wrong secret, stale timestamp and missing
headers. Standard library only; every wait is bounded."""
import base64
import datetime
import hashlib
import hmac
import os
import pathlib
import subprocess
import textwrap
import time

import pytest

from conftest import BIN, Server

BODY = b'{"ticket":{"id":42,"status":"new"},"customer":null}'
JSON = {"Content-Type": "application/json"}

def workflow(name, path, verify):
    """A one-step workflow on path whose `verify:` is the given YAML."""
    return (f"name: {name}\non:\n  webhook:\n    path: {path}\n    verify:\n"
            + textwrap.indent(textwrap.dedent(verify).strip(), "      ")
            + '\nsteps: [{id: s, run: "return 1"}]\n')


WORKFLOWS = {
    "zendesk": workflow("zd", "/zendesk", "{scheme: zendesk, secret: zd-secret}"),
    "hubspot": workflow("hs", "/hubspot", "{scheme: hubspot, secrets: [hs-new, hs-old]}"),
    "intercom": workflow("ic", "/intercom", "{scheme: intercom, secret: ic-secret}"),
    "helpscout": workflow("hsc", "/helpscout", "{scheme: helpscout, secret: hsc-secret}"),
    "general": workflow("general", "/general", """
        scheme: hmac
        algorithm: sha512
        encoding: hex
        header: X-Sig
        prefix: "v1="
        timestamp_header: X-Ts
        timestamp_unit: s
        signed: "{timestamp}.{method}.{path}.{query}.{header:X-Account}.{body}"
        secret: "gen-secret"
        tolerance: 2m
    """),
    "general_url": workflow("general-url", "/general-url", """
        scheme: hmac
        encoding: base64
        header: X-Sig
        signed: "{url}|{body}"
        secret: "url-secret"
    """),
    "token_bearer": workflow("tok-bearer", "/token/bearer",
                             "{scheme: token, secrets: [tok-new, tok-old]}"),
    "token_header": workflow("tok-header", "/token/header",
                             "{scheme: token, header: X-Webhook-Token, secret: tok-h}"),
    "token_query": workflow("tok-query", "/token/query",
                            "{scheme: token, query: token, secret: tok-q}"),
    "basic": workflow("basic", "/basic",
                      '{scheme: basic, user: mailchimp, password: "${BASIC_PW}"}'),
}


def start(tmp, args=()):
    s = Server(tmp, WORKFLOWS, args=args, env={"BASIC_PW": "pa:ss word"})
    return s.start()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """Behind a proxy that knows its public name: --public-url."""
    s = start(tmp_path_factory.mktemp("pub"),
              ["--public-url", "https://hooks.example.com"])
    yield s
    s.kill()


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """No --public-url: {url} comes from X-Forwarded-Proto and Host."""
    s = start(tmp_path_factory.mktemp("bare"))
    yield s
    s.kill()


def mac(secret, msg, algo=hashlib.sha256):
    return hmac.new(secret.encode(), msg, algo).digest()


def b64(raw):
    return base64.b64encode(raw).decode()


def accepted(r):
    assert r.status == 202, r
    assert len(r.json()["runs"]) == 1, r


def refused(r, words):
    assert r.status == 401, r
    assert words in r.json()["error"], r


def iso_now(delta=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- zendesk ------------------------------------------------------------------
# https://developer.zendesk.com/documentation/webhooks/verifying/
# base64(HMACSHA256(TIMESTAMP + BODY)), headers X-Zendesk-Webhook-Signature and
# X-Zendesk-Webhook-Signature-Timestamp (ISO 8601).

def zendesk_headers(secret="zd-secret", ts=None, body=BODY):
    ts = ts or iso_now()
    return {**JSON, "X-Zendesk-Webhook-Signature": b64(mac(secret, ts.encode() + body)),
            "X-Zendesk-Webhook-Signature-Timestamp": ts}


def test_zendesk(srv):
    accepted(srv.post("/zendesk", BODY, zendesk_headers()))
    # An offset form of the same instant is what was signed, as sent.
    ts = (datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=2)))
          .strftime("%Y-%m-%dT%H:%M:%S.250+02:00"))
    accepted(srv.post("/zendesk", BODY, zendesk_headers(ts=ts)))
    refused(srv.post("/zendesk", BODY, zendesk_headers("wrong")), "signature mismatch")
    refused(srv.post("/zendesk", BODY, zendesk_headers(ts=iso_now(-600))),
            "timestamp outside tolerance")
    refused(srv.post("/zendesk", BODY + b" ", zendesk_headers()), "signature mismatch")
    h = zendesk_headers()
    del h["X-Zendesk-Webhook-Signature-Timestamp"]
    refused(srv.post("/zendesk", BODY, h),
            "missing x-zendesk-webhook-signature-timestamp header")
    h = zendesk_headers()
    del h["X-Zendesk-Webhook-Signature"]
    refused(srv.post("/zendesk", BODY, h), "missing x-zendesk-webhook-signature header")
    h = zendesk_headers()
    h["X-Zendesk-Webhook-Signature-Timestamp"] = "1700000000"
    refused(srv.post("/zendesk", BODY, h), "malformed x-zendesk-webhook-signature-timestamp")


# --- hubspot ------------------------------------------------------------------
# https://developers.hubspot.com/docs/api/webhooks/validating-requests (v3):
# base64(HMAC-SHA256(method + URI + body + timestamp)) in X-HubSpot-Signature-v3,
# X-HubSpot-Request-Timestamp in milliseconds, rejected when older than 5
# minutes; the URI with the URL-encoded characters that page lists decoded.

HUBSPOT_DECODE = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!",
                  "%24": "$", "%27": "'", "%28": "(", "%29": ")", "%2A": "*",
                  "%2C": ",", "%3B": ";"}


def hubspot_uri(uri):
    for enc, dec in HUBSPOT_DECODE.items():
        uri = uri.replace(enc, dec).replace(enc.lower(), dec)
    return uri


def hubspot_headers(uri, secret="hs-new", method="POST", body=BODY, ts=None):
    ts = str(ts if ts is not None else int(time.time() * 1000))
    msg = method.encode() + hubspot_uri(uri).encode() + body + ts.encode()
    return {**JSON, "X-HubSpot-Signature-v3": b64(mac(secret, msg)),
            "X-HubSpot-Request-Timestamp": ts}


def test_hubspot_public_url(srv):
    base = "https://hooks.example.com"
    accepted(srv.post("/hubspot", BODY, hubspot_headers(base + "/hubspot")))
    # The old secret still verifies (rotation).
    accepted(srv.post("/hubspot", BODY, hubspot_headers(base + "/hubspot", "hs-old")))
    # Query string included, with the listed characters decoded (and only them).
    path = "/hubspot?email=a%40b.example&next=%2Fx%3Fy%3Dz&sp=a%20b"
    accepted(srv.post(path, BODY, hubspot_headers(base + path)))
    refused(srv.post(path, BODY, hubspot_headers(base + "/hubspot")), "signature mismatch")
    refused(srv.post("/hubspot", BODY, hubspot_headers(base + "/hubspot", "nope")),
            "signature mismatch")
    stale = int(time.time() * 1000) - 6 * 60 * 1000
    refused(srv.post("/hubspot", BODY, hubspot_headers(base + "/hubspot", ts=stale)),
            "timestamp outside tolerance")
    h = hubspot_headers(base + "/hubspot")
    del h["X-HubSpot-Request-Timestamp"]
    refused(srv.post("/hubspot", BODY, h), "missing x-hubspot-request-timestamp header")
    # The URL the proxy saw is not the one signed.
    refused(srv.post("/hubspot", BODY, hubspot_headers("http://127.0.0.1/hubspot")),
            "signature mismatch")


def test_hubspot_url_from_host(bare):
    h = hubspot_headers("https://crm.example.org/hubspot")
    h.update({"Host": "crm.example.org", "X-Forwarded-Proto": "https"})
    accepted(bare.post("/hubspot", BODY, h))
    # Without X-Forwarded-Proto the scheme is http.
    h = hubspot_headers("http://crm.example.org:8443/hubspot")
    h["Host"] = "crm.example.org:8443"
    accepted(bare.post("/hubspot", BODY, h))
    h = hubspot_headers("https://crm.example.org/hubspot")
    h["Host"] = "crm.example.org"
    refused(bare.post("/hubspot", BODY, h), "signature mismatch")


# --- intercom -----------------------------------------------------------------
# https://developers.intercom.com/docs/references/webhooks/webhook-models
# ("Signed notifications"): X-Hub-Signature: sha1=HEX of HMAC-SHA1(body) keyed
# with the app's client secret.

def test_intercom(srv):
    sig = "sha1=" + hmac.new(b"ic-secret", BODY, hashlib.sha1).hexdigest()
    accepted(srv.post("/intercom", BODY, {**JSON, "X-Hub-Signature": sig}))
    accepted(srv.post("/intercom", BODY, {**JSON, "X-Hub-Signature": sig.upper().replace("SHA1=", "sha1=")}))
    bad = "sha1=" + hmac.new(b"wrong", BODY, hashlib.sha1).hexdigest()
    refused(srv.post("/intercom", BODY, {**JSON, "X-Hub-Signature": bad}), "signature mismatch")
    refused(srv.post("/intercom", BODY, {**JSON, "X-Hub-Signature": sig[5:]}),
            "malformed x-hub-signature header")
    refused(srv.post("/intercom", BODY, JSON), "missing x-hub-signature header")


# --- help scout ---------------------------------------------------------------
# https://developer.helpscout.com/webhooks/ ("Verifying"): X-HelpScout-Signature
# is base64(HMAC-SHA1(body)) keyed with the webhook's secret key.

def test_helpscout(srv):
    sig = b64(hmac.new(b"hsc-secret", BODY, hashlib.sha1).digest())
    accepted(srv.post("/helpscout", BODY, {**JSON, "X-HelpScout-Signature": sig}))
    bad = b64(hmac.new(b"hsc-secret", BODY + b"x", hashlib.sha1).digest())
    refused(srv.post("/helpscout", BODY, {**JSON, "X-HelpScout-Signature": bad}),
            "signature mismatch")
    refused(srv.post("/helpscout", BODY, JSON), "missing x-helpscout-signature header")


# --- the general form ---------------------------------------------------------

def general_headers(path, query, account="acme", ts=None, secret="gen-secret"):
    ts = str(ts if ts is not None else int(time.time()))
    msg = f"{ts}.POST.{path}.{query}.{account}.".encode() + BODY
    h = {**JSON, "X-Sig": "v1=" + hmac.new(secret.encode(), msg, hashlib.sha512).hexdigest(),
         "X-Ts": ts}
    if account is not None:
        h["X-Account"] = account
    return h


def test_general_hmac(srv):
    accepted(srv.post("/general", BODY, general_headers("/general", "")))
    q = "a=1&b=%2F%20x"
    accepted(srv.post("/general?" + q, BODY, general_headers("/general", q)))
    refused(srv.post("/general?" + q, BODY, general_headers("/general", "a=1")),
            "signature mismatch")
    refused(srv.post("/general", BODY, general_headers("/general", "", secret="x")),
            "signature mismatch")
    refused(srv.post("/general", BODY, general_headers("/general", "", ts=int(time.time()) - 300)),
            "timestamp outside tolerance")
    r = srv.post("/general", BODY, general_headers("/general", "", account=None))
    refused(r, "missing X-Account header (named in signed:)")
    h = general_headers("/general", "")
    h["X-Sig"] = h["X-Sig"][3:]  # no "v1=" prefix
    refused(srv.post("/general", BODY, h), "malformed x-sig header")


def test_general_url_and_verify_url(srv, bare, tmp_path):
    def sig(url, secret="url-secret"):
        return {**JSON, "X-Sig": b64(mac(secret, url.encode() + b"|" + BODY))}
    accepted(srv.post("/general-url?x=%3A", BODY,
                      sig("https://hooks.example.com/general-url?x=%3A")))
    accepted(bare.post("/general-url", BODY,
                       {**sig("http://h.example/general-url"), "Host": "h.example"}))
    # A proxy's odd X-Forwarded-Proto is not taken as a scheme.
    accepted(bare.post("/general-url", BODY,
                       {**sig("http://h.example/general-url"), "Host": "h.example",
                        "X-Forwarded-Proto": "ht tp://evil"}))


def test_verify_url_key_wins(tmp_path):
    s = Server(tmp_path, {"u": workflow(
        "u", "/u", "{scheme: hubspot, secret: k, url: 'https://public.example.net/'}")},
        args=["--public-url", "https://other.example.com"]).start()
    try:
        accepted(s.post("/u", BODY, hubspot_headers("https://public.example.net/u", "k")))
        refused(s.post("/u", BODY, hubspot_headers("https://other.example.com/u", "k")),
                "signature mismatch")
    finally:
        s.kill()


# --- token and basic ----------------------------------------------------------

def test_token_bearer(srv):
    accepted(srv.post("/token/bearer", BODY, {**JSON, "Authorization": "Bearer tok-new"}))
    accepted(srv.post("/token/bearer", BODY, {**JSON, "Authorization": "bearer tok-old"}))
    refused(srv.post("/token/bearer", BODY, {**JSON, "Authorization": "Bearer tok"}),
            "wrong token")
    refused(srv.post("/token/bearer", BODY, {**JSON, "Authorization": "Basic dG9rLW5ldw=="}),
            "not a Bearer token")
    refused(srv.post("/token/bearer", BODY, JSON), "missing authorization header")


def test_token_header(srv):
    accepted(srv.post("/token/header", BODY, {**JSON, "X-Webhook-Token": "tok-h"}))
    refused(srv.post("/token/header", BODY, {**JSON, "X-Webhook-Token": "tok-hh"}),
            "wrong token")
    refused(srv.post("/token/header", BODY, {**JSON, "Authorization": "Bearer tok-h"}),
            "missing x-webhook-token header")


def test_token_query(srv):
    accepted(srv.post("/token/query?token=tok-q&x=1", BODY, JSON))
    accepted(srv.post("/token/query?token=tok%2Dq", BODY, JSON))
    refused(srv.post("/token/query?token=tok-r", BODY, JSON), "wrong token")
    refused(srv.post("/token/query?tok=tok-q", BODY, JSON), "missing query parameter 'token'")
    # A NUL in the value: not the token cut at the NUL (the query keeps it).
    refused(srv.post("/token/query?token=tok-q%00x", BODY, JSON),
            "missing query parameter 'token'")


def test_basic(srv):
    def auth(u, p):
        return {**JSON, "Authorization": "Basic " + b64(f"{u}:{p}".encode())}
    accepted(srv.post("/basic", BODY, auth("mailchimp", "pa:ss word")))
    refused(srv.post("/basic", BODY, auth("mailchimp", "pa:ss")), "wrong user or password")
    refused(srv.post("/basic", BODY, auth("other", "pa:ss word")), "wrong user or password")
    refused(srv.post("/basic", BODY, {**JSON, "Authorization": "Basic !!"}),
            "not Basic credentials")
    refused(srv.post("/basic", BODY, JSON), "missing Authorization header")


def test_nothing_stored_on_401(srv):
    r = srv.post("/zendesk", BODY, zendesk_headers("wrong"))
    assert r.status == 401
    assert "event" not in r.json()


# --- check: bad input with FILE:LINE:COL --------------------------------------

HEAD = "name: a\non:\n  webhook:\n    path: /a\n"  # a BAD file's lines 1-4
STEPS = 'steps: [{id: s, run: "return 1"}]\n'
BAD = {
    "placeholder": (HEAD + """\
    verify:
      scheme: hmac
      header: X-Sig
      signed: "{body}.{bogus}"
      secret: s
""" + STEPS, ":8:23: invalid 'signed': {bogus}: unknown placeholder"),
    "algorithm": (HEAD + """\
    verify:
      scheme: hmac
      header: X-Sig
      algorithm: md5
      signed: "{body}"
      secret: s
""" + STEPS, ":8:18: unknown algorithm 'md5' (expected sha1, sha256 or sha512)"),
    "encoding": (HEAD + """\
    verify: {scheme: hmac, header: X-Sig, encoding: base32, signed: "{body}", secret: s}
""" + STEPS, ":5:53: unknown encoding 'base32' (expected hex or base64)"),
    "no-signed": (HEAD + """\
    verify: {scheme: hmac, header: X-Sig, secret: s}
""" + STEPS, "scheme hmac needs 'signed'"),
    "timestamp-without-header": (HEAD + """\
    verify: {scheme: hmac, header: X-Sig, signed: "{timestamp}{body}", secret: s}
""" + STEPS, ":5:52: 'signed' uses {timestamp} but 'timestamp_header' is not set"),
    "unclosed": (HEAD + """\
    verify: {scheme: hmac, header: X-Sig, signed: "{body", secret: s}
""" + STEPS, ":5:52: invalid 'signed': '{' without a closing '}'"),
    "preset-algorithm": (HEAD + """\
    verify: {scheme: zendesk, secret: s, algorithm: sha1}
""" + STEPS, "'algorithm' applies only to scheme hmac"),
    "basic-secret": (HEAD + """\
    verify: {scheme: basic, user: u, password: p, secret: s}
""" + STEPS, "scheme basic takes 'user' and 'password'"),
    "basic-no-password": (HEAD + """\
    verify: {scheme: basic, user: u}
""" + STEPS, "password"),
    "token-both": (HEAD + """\
    verify: {scheme: token, secret: s, header: X-T, query: t}
""" + STEPS, "use either 'header' or 'query'"),
    "bad-url": (HEAD + """\
    verify: {scheme: hubspot, secret: s, url: hooks.example.com}
""" + STEPS, "invalid url 'hooks.example.com'"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_check_reports_bad_input(tmp_path, name):
    text, want = BAD[name]
    f = tmp_path / "w.yml"
    f.write_text(text)
    p = subprocess.run([BIN, "check", str(f)], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode != 0, p.stdout
    out = p.stdout + p.stderr
    assert want in out, out
    assert str(f) in out, out


def test_check_accepts_every_readme_header(tmp_path):
    """The README's "Connecting your tools" workflow headers all load."""
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Connecting your tools", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```yaml\n")[1:]]
    assert len(blocks) >= 8, "one header per sender"
    env = dict(os.environ)
    for i, block in enumerate(blocks):
        f = tmp_path / f"w{i}.yml"
        f.write_text(textwrap.dedent(block) + 'steps: [{id: s, run: "return 1"}]\n')
        for name in ("GITHUB_SECRET", "STRIPE_SECRET", "ZENDESK_SECRET", "HUBSPOT_SECRET",
                     "INTERCOM_SECRET", "HELPSCOUT_SECRET", "FRESHDESK_TOKEN",
                     "PIPEDRIVE_PASSWORD", "MAILCHIMP_PASSWORD", "WEBHOOK_SECRET"):
            env[name] = "x"
        p = subprocess.run([BIN, "check", str(f)], capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL, env=env)
        assert p.returncode == 0, (block, p.stdout, p.stderr)


def test_public_url_must_be_a_url(tmp_path):
    p = subprocess.run([BIN, "serve", "--public-url", "hooks.example.com",
                        "--workflows", str(tmp_path)], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 2
    assert "--public-url" in p.stderr
