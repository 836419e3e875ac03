"""Service integration: `serve --log-format text|logfmt|json` (one line per
event, run and delivery outcome, with ids), `hookflow runs --follow`, and the
systemd unit in docs/hookflow.service."""
import configparser
import json
import queue
import re
import shutil
import signal
import subprocess
import threading

from conftest import BIN, ROOT, wait_for

HELLO = """
name: hello
on:
  webhook:
    path: /hello
    dedupe: event.headers["x-id"]
steps:
  - id: greet
    run: |
      return { hi = event.body.name }
"""

FAILS = """
name: fails
on:
  webhook:
    path: /fails
steps:
  - id: boom
    run: |
      error("it broke")
"""

EMIT = """
name: emit
on:
  webhook:
    path: /emit
steps:
  - id: send
    run: |
      return webhook.emit(event.body.url, { n = 1 }, { attempts = 1 })
"""


def learn_token(srv):
    """The generated admin token, from the server's first lines."""
    m = wait_for(lambda: re.search(r"admin token: ([0-9a-f]{48})", srv.stderr()),
                 what="the generated token")
    srv.token = m.group(1)


def exercise(srv, receiver):
    """An event with a run, a duplicate, a failed run, a delivery. Returns ids."""
    r = srv.post("/hello", {"name": "ada"}, headers={"X-Id": "one"})
    ev, run = r.json()["event"], r.json()["runs"][0]
    assert srv.post("/hello", {"name": "ada"}, headers={"X-Id": "one"}).json()["duplicate"]
    failed = srv.post("/fails", {}).json()["runs"][0]
    emit_run = srv.post("/emit", {"url": receiver.url + "/in"}).json()["runs"][0]
    srv.wait_run(run)
    srv.wait_run(failed)
    did = srv.wait_run(emit_run)["steps"][0]["output"]
    wait_for(lambda: srv.api("GET", f"/api/deliveries/{did}").json()["status"] == "delivered",
             timeout=20, what="the delivery")
    return ev, run, failed, did


def test_log_format_json(server, receiver):
    srv = server(workflows={"hello": HELLO, "fails": FAILS, "emit": EMIT},
                 args=["--log-format", "json"], token=None)
    learn_token(srv)
    ev, run, failed, did = exercise(srv, receiver)
    wait_for(lambda: any(f'"delivery":"{did}"' in l for l in srv.stderr_lines),
             what="the delivery's log line")
    assert srv.stop() == 0
    lines = [json.loads(l) for l in srv.stderr_lines]  # every line is JSON
    for l in lines:
        assert {"time", "level", "msg"} <= set(l)
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", l["time"])
        assert l["level"] in ("debug", "info", "warn", "error")
    assert any(l["msg"].startswith("admin token: ") for l in lines)
    assert any(l["msg"].startswith("listening on http://127.0.0.1:") for l in lines)
    stored = [l for l in lines if l["msg"] == "event stored" and l.get("event") == ev]
    assert stored and stored[0]["status"] == 202 and stored[0]["runs"] == run
    assert stored[0]["path"] == "/hello" and stored[0]["method"] == "POST"
    dup = [l for l in lines if l["msg"] == "event is a duplicate"]
    assert dup and dup[0]["duplicate_of"] == ev and dup[0]["status"] == 200
    done = {l["run"]: l for l in lines if l["msg"] == "run finished"}
    assert done[run]["status"] == "succeeded" and done[run]["workflow"] == "hello"
    assert done[run]["event"] == ev and done[run]["attempt"] == 1
    assert done[failed]["status"] == "failed" and done[failed]["level"] == "warn"
    assert "it broke" in done[failed]["error"]
    sent = [l for l in lines if l["msg"] == "delivery attempt" and l["delivery"] == did]
    assert sent[-1]["status"] == "delivered" and sent[-1]["http_status"] == 200
    assert sent[-1]["url"] == receiver.url + "/in"


def logfmt(line):
    """key=value and key="quoted value" pairs of one logfmt line."""
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        v = m.group(2)
        out[m.group(1)] = json.loads(v) if v.startswith('"') else v
    return out


def test_log_format_logfmt(server, receiver):
    srv = server(workflows={"hello": HELLO, "fails": FAILS, "emit": EMIT},
                 args=["--log-format", "logfmt"])
    ev, run, failed, did = exercise(srv, receiver)
    assert srv.stop() == 0
    for line in srv.stderr_lines:
        assert re.match(r"time=\S+ level=(debug|info|warn|error) msg=", line), line
    recs = [logfmt(l) for l in srv.stderr_lines]
    done = {r["run"]: r for r in recs if r["msg"] == "run finished"}
    assert done[run]["status"] == "succeeded" and done[run]["event"] == ev
    assert done[failed]["status"] == "failed" and "it broke" in done[failed]["error"]
    assert any(r["msg"] == "event stored" and r.get("event") == ev for r in recs)
    assert any(r["msg"] == "delivery attempt" and r.get("delivery") == did for r in recs)


def test_log_format_text_is_the_default(server):
    srv = server(workflows={"hello": HELLO, "fails": FAILS}, token=None)
    learn_token(srv)
    failed = srv.post("/fails", {}).json()["runs"][0]
    srv.wait_run(failed)
    assert srv.stop() == 0
    text = srv.stderr()
    assert re.search(r"^hookflow: admin token: [0-9a-f]{48}$", text, re.M)
    assert re.search(r"^hookflow: listening on http://127\.0\.0\.1:\d+$", text, re.M)
    assert f"run {failed} (fails) failed" in text
    assert "time=" not in text and '{"time"' not in text


def test_log_format_rejects_unknown(server):
    srv = server(workflows={"hello": HELLO}, start=False)
    p = srv.cli("serve", "--listen", "127.0.0.1:0", "--workflows", str(srv.workflows),
                "--state", str(srv.state), "--log-format", "xml")
    assert p.returncode == 2 and "--log-format" in p.stderr


class Follow:
    """`hookflow runs --follow` with its stdout read line by line, bounded."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([BIN, "runs", "--follow", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        self.lines = queue.Queue()
        self.seen = []
        self.ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        # It prints this once it has looked at the runs that were there.
        assert self.ready.wait(15), "runs --follow did not start"

    def _pump(self):
        for line in self.proc.stdout:
            self.seen.append(line)
            self.lines.put(line.rstrip("\n"))

    def _pump_err(self):
        for line in self.proc.stderr:
            if "following runs" in line:
                self.ready.set()
        self.ready.set()

    def next(self, timeout=15):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from runs --follow within {timeout}s") from None

    def none_within(self, seconds):
        try:
            line = self.lines.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected line: {line}")

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)


def test_runs_follow(server):
    srv = server(workflows={"hello": HELLO, "fails": FAILS})
    before = srv.post("/hello", {"name": "old"}).json()["runs"][0]
    srv.wait_run(before)

    f = Follow("--state", str(srv.state), "--json")
    try:
        # Runs from before it started are not printed.
        run = srv.post("/hello", {"name": "ada"}).json()["runs"][0]
        got = json.loads(f.next())
        assert got["id"] == run and got["status"] == "succeeded"
        assert got["workflow"] == "hello" and got["steps"][0]["output"] == {"hi": "ada"}
        failed = srv.post("/fails", {}).json()["runs"][0]
        got = json.loads(f.next())
        assert got["id"] == failed and got["status"] == "failed"
        # A run that finishes again after a retry is printed again.
        def version():
            return [w["version"] for w in srv.api("GET", "/api/workflows").json()["workflows"]
                    if w["name"] == "fails"][0]
        old = version()
        srv.write_workflow("fails", FAILS.replace('error("it broke")', "return 1"))
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: version() != old, what="the reload")
        p = srv.cli("retry", failed, "--state", str(srv.state))
        assert p.returncode == 0, p.stderr
        while True:
            got = json.loads(f.next(timeout=20))
            if got["id"] == failed:
                break
        assert got["attempt"] == 2
        f.none_within(1.0)
    finally:
        rc = f.stop()
    assert rc == 0
    assert before not in "".join(f.seen)

    # Text: one line a run, with id, workflow, status.
    f = Follow("--state", str(srv.state), "--workflow", "hello")
    try:
        run = srv.post("/hello", {"name": "bob"}).json()["runs"][0]
        line = f.next()
        assert line.split()[:3] == [run, "hello", "succeeded"]
    finally:
        assert f.stop() == 0


def test_systemd_unit(tmp_path):
    path = ROOT / "docs" / "hookflow.service"
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(path)
    svc = unit["Service"]
    assert svc["DynamicUser"] == "yes" and svc["StateDirectory"] == "hookflow"
    assert svc["WorkingDirectory"] == "/var/lib/hookflow"
    assert svc["ExecReload"] == "/bin/kill -HUP $MAINPID"
    start = svc["ExecStart"].replace("\\\n", " ")
    assert "serve" in start and "--state /var/lib/hookflow/" in start
    assert "--data /var/lib/hookflow/" in start and "--log-format json" in start
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "NoNewPrivileges": "yes"}.items():
        assert svc[key] == value, key
    assert "AF_INET" in svc["RestrictAddressFamilies"] and svc["MemoryMax"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    # The flags in ExecStart are ones `serve` knows.
    for flag in re.findall(r"--([a-z-]+)", start):
        p = subprocess.run([BIN, "serve", f"--{flag}"], capture_output=True,
                           text=True, timeout=10, stdin=subprocess.DEVNULL)
        assert "unknown flag" not in p.stderr, flag
    analyze = shutil.which("systemd-analyze")
    if analyze:
        text = path.read_text().replace("/usr/local/bin/hookflow", BIN)
        (tmp_path / "hookflow.service").write_text(text)
        p = subprocess.run([analyze, "verify", str(tmp_path / "hookflow.service")],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
