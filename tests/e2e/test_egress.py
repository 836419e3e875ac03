"""End-to-end tests for the policy on outbound destinations (docs/security.md,
"Outbound destinations"): http.* and webhook.emit
are checked on the address actually connected to, after DNS and on every
redirect, and a refused destination fails with an error naming the rule.

Only loopback addresses are used. A refused destination is a listener that
never accepts: connections the kernel completed wait in its backlog, so
draining the backlog after the step has failed shows whether anything
connected, without asserting a timing. Nothing is ever sent to a link-local
address (the link-local default is covered by tests/unit/test_egress.c)."""
import errno
import json
import os
import socket
import subprocess
import textwrap

import pytest

from conftest import BIN, wait_for

CALL = textwrap.dedent("""\
    name: call
    on:
      webhook:
        path: /call
    steps:
      - id: main
        run: |
          local b = event.body
          local ok, res = pcall(http.request, {url = b.url, timeout = 2,
            follow_redirects = b.follow})
          if ok then return {ok = true, status = res.status} end
          return {ok = false, err = tostring(res)}
    """)

EMIT = textwrap.dedent("""\
    name: emit
    on:
      webhook:
        path: /emit
    steps:
      - id: main
        run: |
          return webhook.emit(event.body.url, {x = 1},
            {attempts = 3, backoff = "100ms", timeout = "2s"})
    """)


class Listener:
    """A TCP listener that never accepts by itself: connected() drains the
    kernel's backlog and counts every connection made to it so far."""

    def __init__(self, host="127.0.0.2", family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.count = 0

    def connected(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError as e:
                assert e.errno in (errno.EAGAIN, errno.EWOULDBLOCK), e
                return self.count
            conn.close()
            self.count += 1

    def close(self):
        self.sock.close()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def call(srv, url, follow=False):
    r = srv.post("/call", {"url": url, "follow": follow})
    assert r.status == 202, r
    run = srv.wait_run(r.json()["runs"][0], timeout=30)
    assert run["status"] == "succeeded", run
    return run["steps"][0]["output"]


def refused(out, address, rule):
    assert out["ok"] is False, out
    want = f"http.request: destination {address} refused ({rule}) for "
    assert want in out["err"], out
    return out["err"]


def test_default_refuses_unspecified(server, receiver):
    """0.0.0.0 reaches this machine's services on Linux: refused by
    default, before any connection to the receiver behind it."""
    srv = server(workflows={"call": CALL})
    url = f"http://0.0.0.0:{receiver.port}/zero"
    err = refused(call(srv, url), "0.0.0.0", "unspecified")
    assert url in err
    assert receiver.requests == []
    # Loopback itself is not refused by default.
    assert call(srv, receiver.url + "/ok") == {"ok": True, "status": 200}


def test_private_refuses_every_spelling_of_loopback(server, listener):
    srv = server(workflows={"call": CALL}, args=["--egress-deny", "private"])
    own = socket.socket()
    own.bind(("127.0.0.1", 0))
    own.listen(16)
    own.setblocking(False)
    p = own.getsockname()[1]
    try:
        for host in ("127.1", "2130706433", "0x7f000001", "127.0.0.1",
                     "[::ffff:127.0.0.1]"):
            refused(call(srv, f"http://{host}:{p}/x"), "127.0.0.1", "private")
        with pytest.raises(BlockingIOError):
            own.accept()  # nothing connected to 127.0.0.1:p
    finally:
        own.close()
    refused(call(srv, f"http://127.0.0.2:{listener.port}/x"), "127.0.0.2",
            "private")
    assert listener.connected() == 0
    # The server's own /metrics.
    err = refused(call(srv, f"http://127.0.0.1:{srv.port}/metrics"),
                  "127.0.0.1", "private")
    assert f":{srv.port}/metrics" in err


def test_private_refuses_ipv6_loopback(server):
    try:
        lst = Listener("::1", socket.AF_INET6)
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    try:
        srv = server(workflows={"call": CALL},
                     args=["--egress-deny", "private"])
        refused(call(srv, f"http://[::1]:{lst.port}/x"), "::1", "private")
        assert lst.connected() == 0
    finally:
        lst.close()


def test_a_range_is_named_by_itself(server, listener):
    srv = server(workflows={"call": CALL},
                 args=["--egress-deny", "127.0.0.2/32, 10.0.0.0/8"])
    refused(call(srv, f"http://127.0.0.2:{listener.port}/x"), "127.0.0.2",
            "127.0.0.2/32")
    assert listener.connected() == 0


def test_allowed_range_wins_over_the_deny_range_holding_it(server, receiver,
                                                           listener):
    srv = server(workflows={"call": CALL},
                 args=["--egress-deny", "private",
                       "--egress-allow", "127.0.0.1/32"])
    assert call(srv, receiver.url + "/in") == {"ok": True, "status": 200}
    assert [r["path"] for r in receiver.requests] == ["/in"]
    refused(call(srv, f"http://127.0.0.2:{listener.port}/x"), "127.0.0.2",
            "private")
    assert listener.connected() == 0


def test_redirect_to_a_refused_address_is_refused(server, receiver, listener):
    target = f"http://127.0.0.2:{listener.port}/internal"
    receiver.default = (302, {"Location": target}, "")
    srv = server(workflows={"call": CALL},
                 args=["--egress-deny", "private",
                       "--egress-allow", "127.0.0.1/32"])
    # Not followed: the 302 is the answer.
    assert call(srv, receiver.url + "/r1") == {"ok": True, "status": 302}
    # Followed: the next hop is checked like the first.
    refused(call(srv, receiver.url + "/r2", follow=True), "127.0.0.2",
            "private")
    assert [r["path"] for r in receiver.requests] == ["/r1", "/r2"]
    assert listener.connected() == 0


def delivery(srv, did):
    r = srv.api("GET", f"/api/deliveries/{did}")
    assert r.status == 200, r
    return r.json()


def emit(srv, url):
    r = srv.post("/emit", {"url": url})
    assert r.status == 202, r
    run = srv.wait_run(r.json()["runs"][0], timeout=30)
    assert run["status"] == "succeeded", run
    did = run["steps"][0]["output"]
    return wait_for(lambda: (lambda d: d if d["status"] != "pending" else None)(
        delivery(srv, did)), 20, what=f"delivery {did} to end")


def test_emit_to_a_refused_address_fails_at_once(server, receiver, listener):
    srv = server(workflows={"emit": EMIT}, args=["--egress-deny", "private",
                                                 "--egress-allow",
                                                 "127.0.0.1/32"])
    d = emit(srv, f"http://127.0.0.2:{listener.port}/hook")
    # Not retried: the policy would refuse every attempt.
    assert d["status"] == "failed" and d["attempts"] == 1, d
    (att,) = d["attempts_log"]
    assert att["error"] == "destination 127.0.0.2 refused (private)", att
    assert not att.get("status"), att
    assert listener.connected() == 0
    # The allowed receiver still gets its deliveries.
    assert emit(srv, receiver.url + "/ok")["status"] == "delivered"
    # The default policy holds for deliveries too.
    d = emit(srv, f"http://0.0.0.0:{receiver.port}/zero")
    assert d["status"] == "failed" and d["attempts"] == 1, d
    assert d["attempts_log"][0]["error"] == \
        "destination 0.0.0.0 refused (unspecified)"
    assert [r["path"] for r in receiver.requests] == ["/ok"]


def test_bad_lists_are_refused_at_start(tmp_path):
    for args, msg in (
            (["--egress-deny", "10.0.0.1/8"],
             "--egress-deny: '10.0.0.1/8' has bits set past its prefix "
             "(did you mean 10.0.0.0/8?)"),
            (["--egress-allow", "localhost"],
             "--egress-allow: 'localhost' is not an address range")):
        p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0",
                            "--state", str(tmp_path / "s.db"), *args],
                           capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 2, p
        assert msg in p.stderr, p.stderr


def test_run_command_honours_the_policy(tmp_path, listener):
    wf = tmp_path / "call.yml"
    wf.write_text(CALL)
    ev = tmp_path / "ev.json"
    ev.write_text(json.dumps({"url": f"http://127.0.0.2:{listener.port}/"}))
    p = subprocess.run([BIN, "run", str(wf), "--event", str(ev),
                        "--data", str(tmp_path / "d.db"),
                        "--egress-deny", "private"],
                       capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p
    out = json.loads(p.stdout.splitlines()[-1])["output"]
    refused(out, "127.0.0.2", "private")
    assert listener.connected() == 0



PROXY_VARS = ("http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY")
PROXY_WARNING = ("https_proxy is set: the http.* calls and webhook.emit "
                 "deliveries it covers connect through that proxy, so "
                 "--egress-deny and --egress-allow judge the proxy's "
                 "address, not the destinations behind it")


def test_a_proxy_from_the_environment_is_named_at_start(server, receiver,
                                                        listener, tmp_path):
    """Behind a proxy the address connected to is the proxy's, so the
    policy cannot see the destinations (docs/security.md): serve and run
    say so when curl would use one. https_proxy covers https:// URLs only,
    so the http:// calls here still connect directly and are judged."""
    quiet = {v: "" for v in PROXY_VARS}  # empty counts as unset
    srv = server(workflows={"call": CALL}, env=quiet)
    assert "_proxy is set" not in srv.stderr(), srv.stderr()
    env = dict(quiet, https_proxy="http://127.0.0.1:9")
    srv = server(workflows={"call": CALL},
                 args=["--egress-deny", "private",
                       "--egress-allow", "127.0.0.1/32"], env=env)
    # Written before "listening on", which start() has read.
    assert "hookflow: warning: " + PROXY_WARNING in srv.stderr(), \
        srv.stderr()
    assert call(srv, receiver.url + "/in") == {"ok": True, "status": 200}
    refused(call(srv, f"http://127.0.0.2:{listener.port}/x"), "127.0.0.2",
            "private")
    assert listener.connected() == 0
    wf = tmp_path / "call.yml"
    wf.write_text(CALL)
    ev = tmp_path / "ev.json"
    ev.write_text(json.dumps({"url": receiver.url + "/run"}))
    p = subprocess.run([BIN, "run", str(wf), "--event", str(ev),
                        "--data", str(tmp_path / "d.db")],
                       capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL, env=dict(os.environ, **env))
    assert p.returncode == 0, p
    assert "hookflow run: " + PROXY_WARNING in p.stderr, p.stderr
    out = json.loads(p.stdout.splitlines()[-1])["output"]
    assert out == {"ok": True, "status": 200}, out
    assert [r["path"] for r in receiver.requests] == ["/in", "/run"]
