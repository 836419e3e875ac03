"""A webhook's headers and query as its event keeps them (engine/ingest_event.c:
collected without a jansson tree on the HTTP thread): names lowercased, a
repeated field's values joined with ", ", a value that is not UTF-8 kept as "",
no query parameters an empty object; the same in a step's `event` and in the
admin API's stored event. And what still reads them as a tree: a signature's
default dedupe header (GitHub's X-GitHub-Delivery), a form body's decoding."""
import hashlib
import hmac
import json
import socket

from conftest import wait_for

ECHO = """
name: echo
on:
  webhook:
    path: /echo
steps:
  - id: s
    run: |
      return { headers = event.headers, query = event.query, n = event.body.n }
"""

GH = """
name: gh
on:
  webhook:
    path: /gh
    verify:
      scheme: github
      secret: s3cret
steps:
  - id: s
    run: |
      return { action = event.body.action }
"""


def raw_post(port, target, headers, body):
    """One request with the header lines exactly as given (bytes)."""
    head = b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    for line in headers:
        head += line + b"\r\n"
    head += b"Content-Length: %d\r\n\r\n" % len(body)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        head_part, _, rest = data.partition(b"\r\n\r\n")
        status = int(head_part.split(b" ")[1])
        length = 0
        for line in head_part.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(rest) < length:
            chunk = s.recv(4096)
            assert chunk
            rest += chunk
        return status, json.loads(rest[:length])


def run_output(srv, answer):
    run = srv.wait_run(answer["runs"][0])
    assert run["status"] == "succeeded", run
    return run["steps"][0]["output"] if "steps" in run else run


def stored_event(srv, eid):
    r = srv.api("GET", f"/api/events/{eid}")
    assert r.status == 200, r
    return r.json()


def test_headers_lowercased_joined_and_invalid_utf8_empty(server):
    srv = server(workflows={"echo": ECHO})
    status, ans = raw_post(srv.port, b"/echo", [
        b"Content-Type: application/json",
        b"X-Multi: one",
        b"X-Trace-ID: Abc",
        b"x-multi: two",
        b"X-Latin: caf\xe9",
        b"X-Quote: a\"b\\c",
        b"X-Utf8: caf\xc3\xa9",
    ], b'{"n": 5}')
    assert status == 202, ans
    want = {"content-type": "application/json", "x-multi": "one, two",
            "x-trace-id": "Abc", "x-latin": "", "x-quote": 'a"b\\c',
            "x-utf8": "caf\u00e9"}
    ev = stored_event(srv, ans["event"])
    for k, v in want.items():
        assert ev["headers"][k] == v, (k, ev["headers"])
    assert not any(k != k.lower() for k in ev["headers"])
    assert ev["query"] == {}
    run = srv.wait_run(ans["runs"][0])
    assert run["status"] == "succeeded", run
    out = json.dumps(run)
    for k, v in want.items():
        assert json.dumps(k) in out and json.dumps(v) in out, (k, out)


def test_query_present_and_absent(server):
    srv = server(workflows={"echo": ECHO})
    got = {}
    for target in (b"/echo", b"/echo?a=1&b=x%20y"):
        status, ans = raw_post(srv.port, target,
                               [b"Content-Type: application/json"], b'{"n": 1}')
        assert status == 202, ans
        run = srv.wait_run(ans["runs"][0])
        assert run["status"] == "succeeded", run
        got[target] = (run, stored_event(srv, ans["event"]))
    run, ev = got[b"/echo"]
    assert ev["query"] == {}
    run, ev = got[b"/echo?a=1&b=x%20y"]
    assert ev["query"] == {"a": "1", "b": "x y"}
    assert '"b": "x y"' in json.dumps(run) or '"b":"x y"' in json.dumps(run)


def test_long_and_repeated_header_fields(server):
    """A name is kept whole, however long (it used to be cut at 255 bytes,
    which lost a "-token" at its end and so its redaction); a repeated
    field's long values are joined exactly (the join appends a value that
    lives in the buffer it grows: the ASan build checks the copy)."""
    srv = server(workflows={"echo": ECHO})
    long_name = "x-" + "n" * 300 + "-token"
    # Each join appends the values so far, the largest part: with a dozen,
    # some of those appends grow the buffer.
    values = [chr(ord("a") + i) * 100 for i in range(12)]
    status, ans = raw_post(srv.port, b"/echo", [
        b"Content-Type: application/json",
        long_name.encode() + b": secret1"] +
        [b"X-Rep: " + v.encode() for v in values], b'{"n": 1}')
    assert status == 202, ans
    run = srv.wait_run(ans["runs"][0])
    assert run["status"] == "succeeded", run
    out = run["steps"][0]["output"]
    out = json.loads(out) if isinstance(out, str) else out
    assert out["headers"]["x-rep"] == ", ".join(values)
    assert out["headers"][long_name] == "secret1"  # the step sees it
    ev = stored_event(srv, ans["event"])
    assert ev["headers"]["x-rep"] == ", ".join(values)
    assert ev["headers"][long_name] == "[redacted]", ev["headers"]


def test_query_is_decoded_as_the_readme_says(server):
    """The README (HTTP limits): a query string that is not UTF-8 is stored
    as received and decoded with U+FFFD for each invalid sequence; a NUL
    stays in a value, as Lua strings hold it; '+' is a space; a name
    without '=' has the value "". libmicrohttpd's own parse dropped the
    values that were not UTF-8 and cut the one with a NUL."""
    srv = server(workflows={"echo": ECHO})
    target = b"/echo?a=x+y&b=%41&c&d=%ff&e=a%00b&f=%e2%82&g=%C3%A9&d2=%ff%fe"
    status, ans = raw_post(srv.port, target,
                           [b"Content-Type: application/json"], b'{"n": 1}')
    assert status == 202, ans
    run = srv.wait_run(ans["runs"][0])
    assert run["status"] == "succeeded", run
    want = {"a": "x y", "b": "A", "c": "", "d": "\ufffd", "e": "a\x00b",
            "f": "\ufffd", "g": "\u00e9", "d2": "\ufffd\ufffd"}
    out = run["steps"][0]["output"]
    out = json.loads(out) if isinstance(out, str) else out
    assert out["query"] == want, run
    assert stored_event(srv, ans["event"])["query"] == want


def test_default_dedupe_header_and_form_body(server):
    """GitHub's delivery id (a header read as a tree at dispatch) still
    dedupes; a form body (decoded with the headers' content-type) still
    decodes."""
    srv = server(workflows={"gh": GH})
    body = b"payload=" + json.dumps({"action": "opened"}).encode().replace(
        b"{", b"%7B").replace(b"}", b"%7D").replace(b'"', b"%22").replace(
        b":", b"%3A").replace(b" ", b"+")
    sig = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    headers = [b"Content-Type: application/x-www-form-urlencoded",
               b"X-Hub-Signature-256: sha256=" + sig.encode(),
               b"X-GitHub-Event: issues",
               b"X-GitHub-Delivery: 1234-abcd"]
    status, first = raw_post(srv.port, b"/gh", headers, body)
    assert status == 202, first
    run = srv.wait_run(first["runs"][0])
    assert run["status"] == "succeeded", run
    assert '"action": "opened"' in json.dumps(run) or \
        '"action":"opened"' in json.dumps(run)
    status, again = raw_post(srv.port, b"/gh", headers, body)
    assert status == 200, again
    assert again == {"event": first["event"], "duplicate": True}


def test_bodies_large_and_small_on_one_connection(server):
    """A body past the kept buffer's size (16 KiB) goes to its event as it
    is, a small one is copied and its buffer kept for the next request on
    the same connection: each event and run sees its own body."""
    import http.client
    srv = server(workflows={"echo": ECHO})
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    sent = []
    try:
        for size in (40000, 10, 17000, 3, 16 * 1024 - 20, 0):
            doc = {"n": size, "pad": "x" * size}
            raw = json.dumps(doc)
            conn.request("POST", "/echo", body=raw.encode(),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            ans = json.loads(r.read())
            assert r.status == 202, ans
            sent.append((raw, ans))
    finally:
        conn.close()
    for raw, ans in sent:
        ev = stored_event(srv, ans["event"])
        assert ev["body"] == raw
        run = srv.wait_run(ans["runs"][0])
        assert run["status"] == "succeeded", run
        assert '"n": %d' % json.loads(raw)["n"] in json.dumps(run)
