"""End-to-end tests for issue 11 finding 4, "HTTP framing is strict" (RFC 9112):
request smuggling and framing shapes sent as raw bytes to the real
`hookflow serve`. Each refused shape gets a JSON 400 (or 414/431) saying why,
the connection is closed right after (what follows is never served as a
request), and no run is made for the smuggled path. Standard library only;
every socket and wait is bounded, and no timing is asserted."""
import json
import re
import socket
import time

import pytest

from conftest import Server

TOKEN = "test-token"
WF = ("name: {n}\non:\n  webhook:\n    path: /{n}\nsteps:\n"
      "  - id: s\n    run: return {{ path = event.path, query = event.query }}\n")
WORKFLOWS = {"h": WF.format(n="h"), "x": WF.format(n="x")}

# A second request hidden in the first one's body, on another path.
SMUGGLED = (b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 2\r\n\r\nhi")


def raw(port, data, timeout=5):
    """Sends data without half-closing; reads until the server closes or
    timeout passes. Returns (bytes received, whether the server closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    closed = False
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            except socket.timeout:
                break
            if not chunk:
                closed = True
                break
            out += chunk
    finally:
        s.close()
    return out, closed


def responses(data):
    """Splits raw bytes into [(status, headers, body)] (Content-Length
    framed, as the server answers)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data[:200]
        lines = head.split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0])
        assert m, lines[0]
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        n = int(headers.get("content-length", "0"))
        out.append((int(m.group(1)), headers, rest[:n]))
        data = rest[n:]
    return out


def runs_of(srv, workflow):
    r = srv.api("GET", f"/api/runs?workflow={workflow}&limit=1000")
    assert r.status == 200, r
    return r.json()["runs"]


def post(path, headers, body=b"", version=b"HTTP/1.1"):
    """A request as raw bytes: headers is a list of raw header lines."""
    return (b"POST " + path + b" " + version + b"\r\n"
            + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("framing"), WORKFLOWS).start()
    yield s
    s.kill()


def refused(srv, data, status, words):
    """data gets exactly one answer, `status` with a JSON error containing
    words, then the connection is closed; nothing reaches /h or /x."""
    before_h, before_x = len(runs_of(srv, "h")), len(runs_of(srv, "x"))
    out, closed = raw(srv.port, data)
    got = responses(out)
    assert len(got) == 1, out[:600]
    st, headers, body = got[0]
    assert st == status, out[:600]
    assert headers.get("connection", "").lower() == "close", headers
    assert words in json.loads(body)["error"], body
    assert closed, "the server kept the connection open"
    assert len(runs_of(srv, "x")) == before_x, "the smuggled request ran"
    assert len(runs_of(srv, "h")) == before_h


CT = b"Content-Type: text/plain"

# (name, raw request, status, words of the error)
SHAPES = [
    ("cl_and_te", post(b"/h", [b"Host: a", CT, b"Content-Length: %d" % (5 + len(SMUGGLED)),
                               b"Transfer-Encoding: chunked"], b"0\r\n\r\n" + SMUGGLED),
     400, "both Content-Length and Transfer-Encoding"),
    ("te_twice", post(b"/h", [b"Host: a", CT, b"Transfer-Encoding: chunked",
                              b"Transfer-Encoding: identity"], b"0\r\n\r\n" + SMUGGLED),
     400, "more than one Transfer-Encoding"),
    ("te_list", post(b"/h", [b"Host: a", CT, b"Transfer-Encoding: chunked, identity"],
                     b"0\r\n\r\n" + SMUGGLED),
     400, "other than 'chunked'"),
    ("te_gzip", post(b"/h", [b"Host: a", CT, b"Transfer-Encoding: gzip, chunked"],
                     b"0\r\n\r\n" + SMUGGLED),
     400, "other than 'chunked'"),
    ("te_space_before_colon",
     post(b"/h", [b"Host: a", CT, b"Transfer-Encoding : chunked",
                  b"Content-Length: %d" % (5 + len(SMUGGLED))], b"0\r\n\r\n" + SMUGGLED),
     400, "invalid header name 'Transfer-Encoding '"),
    ("te_http10", post(b"/h", [b"Host: a", CT, b"Transfer-Encoding: chunked"],
                       b"0\r\n\r\n" + SMUGGLED, b"HTTP/1.0"),
     400, "HTTP/1.0"),
    ("bare_cr", post(b"/h", [b"Host: a", CT, b"X-A: a\rTransfer-Encoding: chunked",
                             b"Content-Length: %d" % (5 + len(SMUGGLED))],
                     b"0\r\n\r\n" + SMUGGLED),
     400, "a bare CR in header 'X-A'"),
    ("space_in_name", post(b"/h", [b"Host: a", CT, b"X Foo: bar", b"Content-Length: 2"],
                           b"hi" + SMUGGLED),
     400, "invalid header name 'X Foo'"),
    ("no_host", post(b"/h", [CT, b"Content-Length: 2"], b"hi" + SMUGGLED),
     400, "no Host header"),
    ("two_hosts", post(b"/h", [b"Host: a", b"Host: b", CT, b"Content-Length: 2"],
                       b"hi" + SMUGGLED),
     400, "more than one Host"),
    ("two_lengths", post(b"/h", [b"Host: a", CT, b"Content-Length: 2",
                                 b"Content-Length: %d" % (2 + len(SMUGGLED))],
                         b"hi" + SMUGGLED),
     400, "more than one Content-Length"),
    ("nul_dotdot", post(b"/h%00/../x", [b"Host: a", CT, b"Content-Length: 2"], b"hi"),
     400, "%00 in the path"),
    ("raw_nul", post(b"/h\x00/../x", [b"Host: a", CT, b"Content-Length: 2"], b"hi"),
     400, "invalid character in the request target"),
    ("dotdot", post(b"/x/../h", [b"Host: a", CT, b"Content-Length: 2"], b"hi"),
     400, "'..' segment"),
    ("encoded_dotdot", post(b"/x/%2e%2E/h", [b"Host: a", CT, b"Content-Length: 2"], b"hi"),
     400, "'..' segment"),
    ("encoded_slash", post(b"/x%2Fh", [b"Host: a", CT, b"Content-Length: 2"], b"hi"),
     400, "encoded '/'"),
    ("encoded_lf", post(b"/h%0a", [b"Host: a", CT, b"Content-Length: 2"], b"hi"),
     400, "encoded control character"),
    ("bad_percent", post(b"/h%zz", [b"Host: a", CT, b"Content-Length: 2"], b"hi"),
     400, "invalid percent-encoding"),
    ("space_in_target", post(b"/h /x", [b"Host: a", CT, b"Content-Length: 2"], b"hi"),
     400, "invalid character in the request target"),
    ("many_params", post(b"/h?" + b"&".join(b"p%d=1" % i for i in range(600)),
                         [b"Host: a", CT, b"Content-Length: 2"], b"hi" + SMUGGLED),
     431, "more than 100 query parameters"),
    ("many_headers", post(b"/h", [b"Host: a", CT, b"Content-Length: 2"]
                          + [b"X-H%d: v" % i for i in range(150)], b"hi" + SMUGGLED),
     431, "more than 100 header fields"),
    ("long_target", post(b"/h?a=" + b"b" * 9000, [b"Host: a", CT, b"Content-Length: 2"],
                         b"hi"),
     414, "longer than 8192 bytes"),
]


@pytest.mark.parametrize("name,data,status,words", SHAPES, ids=[s[0] for s in SHAPES])
def test_refused_and_closed(srv, name, data, status, words):
    refused(srv, data, status, words)


def test_refused_after_a_good_pipelined_request(srv):
    """A keep-alive connection: the good request is answered, the bad one
    after it gets 400 and the connection closes; nothing after it runs."""
    good = post(b"/h", [b"Host: a", CT, b"Content-Length: 2"], b"ok")
    bad = post(b"/h", [b"Host: a", CT, b"Content-Length: 2",
                       b"Transfer-Encoding: chunked"], b"0\r\n\r\n" + SMUGGLED)
    before = len(runs_of(srv, "h"))
    out, closed = raw(srv.port, good + bad)
    got = responses(out)
    assert [g[0] for g in got] == [202, 400], out[:600]
    assert closed
    assert len(runs_of(srv, "h")) == before + 1
    assert runs_of(srv, "x") == []


def test_ordinary_framing_still_works(srv):
    before = len(runs_of(srv, "h"))
    # Content-Length alone, then chunked alone, pipelined on one connection,
    # then a closing request so that the read ends.
    cl = post(b"/h", [b"Host: a", CT, b"Content-Length: 5"], b"hello")
    ch = post(b"/h", [b"Host: a", CT, b"Transfer-Encoding: chunked"],
              b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    last = post(b"/%68?a=1&b=%2F", [b"Host: a", CT, b"Content-Length: 0",
                                    b"Connection: close"])
    out, closed = raw(srv.port, cl + ch + last)
    got = responses(out)
    assert [g[0] for g in got] == [202, 202, 202], out[:800]
    assert closed
    ids = [json.loads(g[2])["runs"][0] for g in got]
    assert len(runs_of(srv, "h")) == before + 3
    # /%68 is /h decoded once; the query's %2F is a value, decoded as such
    run = srv.wait_run(ids[2])
    out = run["steps"][0]["output"]
    assert out["path"] == "/h" and out["query"] == {"a": "1", "b": "/"}, out
    # HTTP/1.0 without Host, and 100 parameters (the limit) with 100 headers
    out, closed = raw(srv.port, post(b"/h", [CT, b"Content-Length: 2"], b"hi", b"HTTP/1.0"))
    assert [g[0] for g in responses(out)] == [202], out[:300]
    q = b"&".join(b"p%d=%d" % (i, i) for i in range(100))
    hs = [b"Host: a", CT, b"Content-Length: 2", b"Connection: close"]
    hs += [b"X-H%d: v" % i for i in range(100 - len(hs))]
    out, closed = raw(srv.port, post(b"/h?" + q, hs, b"hi"))
    got = responses(out)
    assert [g[0] for g in got] == [202], out[:300]
    run = srv.wait_run(json.loads(got[0][2])["runs"][0])
    assert len(run["steps"][0]["output"]["query"]) == 100
    # decoded once only: /%2568 is the path /%68, which no workflow has
    out, closed = raw(srv.port, post(b"/%2568", [b"Host: a", CT, b"Content-Length: 2",
                                                  b"Connection: close"], b"hi"))
    got = responses(out)
    assert [g[0] for g in got] == [404] and b"/%68" in got[0][2], out[:300]
    assert runs_of(srv, "x") == []
    assert srv.get("/healthz").status == 200


def one_answer(srv, data):
    """data's answer: (status, its header block, closed); the test fails on
    silence. Only the first answer is read: libmicrohttpd 0.9.75's own 431
    for cookies past its pool repeats its status line and headers."""
    out, closed = raw(srv.port, data)
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", out)
    assert m, (len(data), out[:300])
    head = out.partition(b"\r\n\r\n")[0].lower()
    return int(m.group(1)), head, closed


def test_head_size_limit_answers_every_request(srv):
    """The request line and headers share libmicrohttpd's 16 KiB connection
    pool with a 64-byte record per header field, query parameter and cookie,
    and the answer's header is built in what they leave: a head past 15360
    bytes (HF_HEAD_MAX) is answered 431 and closed, and no head size, up to
    and past the pool's end, gets silence or an event without its 202."""
    def req(headers, path=b"/h"):
        return post(path, [b"Host: a", CT, b"Content-Length: 2", b"Connection: close"]
                    + headers, b"hi")
    before = len(runs_of(srv, "h"))
    accepted = 0
    # a 14,000-byte header is a webhook like any other
    st, head, _ = one_answer(srv, req([b"X-Big: " + b"a" * 14000]))
    assert st == 202, head
    accepted += 1
    # past the limit: 431 with the reason, and the connection closed
    refused(srv, req([b"X-Big: " + b"a" * 15500]), 431,
            "request line and headers larger than 15360 bytes")
    # a sweep through the limit up to past the pool's end, where
    # libmicrohttpd itself answers 431: one header, many headers, cookies,
    # and a long query with headers
    shapes = [[b"X-Big: " + b"a" * n] for n in range(14800, 16600, 24)]
    shapes += [[b"X-H%02d: %s" % (i, b"w" * n) for i in range(90)]
               for n in range(60, 120, 2)]
    shapes += [[b"Cookie: " + b"; ".join(b"c%d=v" % i for i in range(n))]
               + [b"X-H%02d: %s" % (i, b"w" * 60) for i in range(60)]
               for n in range(20, 160, 5)]
    target = b"/h?" + b"&".join(b"p%d=1" % i for i in range(99)) + b"&z="
    target += b"q" * (8000 - len(target))
    shapes += [([b"X-H%02d: %s" % (i, b"w" * n) for i in range(40)], target)
               for n in range(10, 120, 5)]
    statuses = {}
    for shape in shapes:
        headers, path = shape if isinstance(shape, tuple) else (shape, b"/h")
        st, head, closed = one_answer(srv, req(headers, path))
        assert st in (202, 431), (st, head[:200])
        statuses[st] = statuses.get(st, 0) + 1
        if st == 202:
            accepted += 1
        else:
            assert b"\r\nconnection: close" in head and closed, head
    # every shape family reached both sides of the limit
    assert statuses.get(202, 0) > 20 and statuses.get(431, 0) > 20, statuses
    # an event was stored for each 202 and for nothing else
    assert len(runs_of(srv, "h")) == before + accepted
    assert srv.get("/healthz").status == 200


def hostile(path=b"/h", headers=(), body=b'{"a":1}', method=b"POST",
            version=b"HTTP/1.1", length=True, close=True):
    hs = [b"Host: a", b"Content-Type: application/json"] + list(headers)
    if length:
        hs.append(b"Content-Length: %d" % len(body))
    if close:
        hs.append(b"Connection: close")
    return post(path, hs, body, version).replace(b"POST ", method + b" ", 1)


TE = b"Transfer-Encoding: chunked"
# (name, raw request, the statuses of its answers in order)
HOSTILE = [
    ("lower_case_method", hostile(method=b"post"), [405]),
    ("long_method", hostile(method=b"P" * 5000), [405]),
    ("asterisk_form", hostile(path=b"*"), [404]),
    ("absolute_form", hostile(path=b"http://a/h"), [202]),
    ("absolute_form_upper_https", hostile(path=b"HTTPS://x.y:8080/h?q=1"), [202]),
    ("absolute_form_other_path", hostile(path=b"http://a/x/../h"), [400]),
    ("http_0_9", b"GET /h\r\n\r\n", [400]),
    ("http_2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [505]),
    ("http_2_0", hostile(version=b"HTTP/2.0"), [505]),
    ("bad_version", hostile(version=b"HTXP/1.1"), [400]),
    ("nul_in_name", hostile(headers=[b"X-\x00A: a"]), [400]),
    ("lf_line_ends", hostile().replace(b"\r\n", b"\n"), [202]),
    ("expect_100", hostile(headers=[b"Expect: 100-continue"]), [100, 202]),
    ("chunk_size_overflow", hostile(headers=[TE], length=False,
                                    body=b"FFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n"), [413]),
    ("chunk_size_negative", hostile(headers=[TE], length=False,
                                    body=b"-5\r\nabc\r\n0\r\n\r\n"), [400]),
    ("chunk_trailers_past_pool", hostile(
        headers=[TE], length=False,
        body=b"7\r\n{\"a\":1}\r\n0\r\n" + b"".join(b"T%d: v\r\n" % i for i in range(500))
        + b"\r\n"), [431]),
    ("length_signed", hostile(length=False, headers=[b"Content-Length: +7"]), [400]),
    ("length_list", hostile(length=False, headers=[b"Content-Length: 7, 7"]), [400]),
    ("length_huge", hostile(length=False,
                            headers=[b"Content-Length: 99999999999999999999999"]), [413]),
    ("json_deep", hostile(body=b"[" * 100000 + b"]" * 100000), [400]),
    ("json_bad_utf8", hostile(body=b'{"a":"\xff\xfe"}'), [400]),
    ("json_lone_surrogate", hostile(body=b'{"a":"\\ud800"}'), [400]),
    ("json_nul_in_key", hostile(body=b'{"a\\u0000b":1}'), [400]),
    ("json_number_overflow", hostile(body=b'{"a":1e999999}'), [400]),
    ("json_trailing_bytes", hostile(body=b'{"a":1} x'), [400]),
    ("json_bom", hostile(body=b'\xef\xbb\xbf{"a":1}'), [400]),
    ("path_dot_segment", hostile(path=b"/x/./h"), [404]),
    ("path_double_slash", hostile(path=b"//h"), [404]),
    ("path_percent_u", hostile(path=b"/%u0068"), [400]),
    ("query_nul_and_bad_escapes", hostile(path=b"/h?a=%00&b=%zz&b=2"), [202]),
    ("pipelined_100", b"".join(hostile(close=False) for _ in range(100)) + hostile(),
     [202] * 101),
]


def test_hostile_requests_get_their_answer_and_nothing_else(srv):
    """Shapes an attacker tries: each gets exactly its answers (libmicrohttpd's
    own for what it refuses while parsing), the connection ends, and events
    are stored for the 202s and for nothing else."""
    before = len(runs_of(srv, "h"))
    accepted = 0
    for name, data, want in HOSTILE:
        out, closed = raw(srv.port, data)
        got = [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)]
        if want[0] >= 400:
            # libmicrohttpd 0.9.75 repeats the status line and headers of
            # some of its own refusals (a malformed Content-Length)
            got = got[:1]
        assert got == want, (name, out[:300])
        assert closed, name
        accepted += want.count(202)
    assert len(runs_of(srv, "h")) == before + accepted
    assert runs_of(srv, "x") == []
    assert srv.get("/healthz").status == 200


def test_absolute_form_is_routed_on_its_path(srv):
    """RFC 9112 section 3.2.2: an origin server accepts the absolute form
    ("http://host/path?query") and routes it like the origin form; the event
    has the path and the query, not the scheme and host."""
    out, closed = raw(srv.port, hostile(path=b"http://example.com/h?a=1&b=%2F"))
    got = responses(out)
    assert [g[0] for g in got] == [202], out[:300]
    run = srv.wait_run(json.loads(got[0][2])["runs"][0])
    assert run["steps"][0]["output"] == {"path": "/h", "query": {"a": "1", "b": "/"}}
    # no path at all is the path /, answered as "/" is (a POST there: 405,
    # since "/" serves GET and HEAD, a redirect to the dashboard)
    for path in (b"http://example.com?a=1", b"/"):
        out, closed = raw(srv.port, hostile(path=path))
        assert [g[0] for g in responses(out)] == [405], (path, out[:300])
        assert b"\r\nAllow: GET, HEAD\r\n" in out, (path, out[:300])
