"""Helpers for the multi-node tests (test_cluster_pair.py,
test_cluster_netns.py): hookflow nodes over one PostgreSQL (contract §7),
each node either on 127.0.0.1 or inside a network namespace of its own (Net:
a bridge in the root namespace, one namespace and veth pair per node, every
name generated from one random tag and removed by close()), an HTTP gate
that holds a step's request until the test lets it go, and plain HTTP
helpers that take a host.
Standard library only; every wait bounded; processes stopped by PID."""
import http.client
import http.server
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import socketserver
import subprocess
import tempfile
import textwrap
import threading
import time

from conftest import BIN, wait_for

TOKEN = "cluster-test-token"


def request(host, port, method, path, body=None, headers=None, timeout=10):
    """(status, headers, body text); OSError when the node cannot be
    reached or does not answer within timeout."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return (r.status, {k.lower(): v for k, v in r.getheaders()},
                r.read().decode("utf-8", "replace"))
    finally:
        conn.close()


class Node:
    """One `hookflow serve` of a cluster: --node NAME, --lease LEASE, the
    shared --state and --data URLs, the shared workflows and scripts
    directories. With netns, started inside it (`ip netns exec` execs, so
    the PID is hookflow's) and listening on host:port there."""

    def __init__(self, name, state, data, workflows, scripts, host="127.0.0.1",
                 port=0, netns=None, lease="2s", args=(), env=None,
                 argv=None):
        self.name, self.state, self.data = name, state, data
        self.workflows, self.scripts = workflows, scripts
        self.host, self.port0, self.netns = host, port, netns
        self.lease, self.args = lease, list(args)
        self.argv = argv  # the whole command instead (the README's)
        self.env = dict(os.environ, HF_TEST_NODE=name, **(env or {}))
        self.proc = None
        self.port = None
        self.lines = []
        self.starts = 0

    def start(self, timeout=20):
        cmd = [BIN, "serve", "--listen", f"{self.host}:{self.port0}",
               "--workflows", str(self.workflows),
               "--scripts", str(self.scripts), "--state", self.state,
               "--data", self.data, "--node", self.name,
               "--lease", self.lease, "--admin-token", TOKEN,
               "--workers", "4", *self.args]
        if self.argv:
            cmd = list(self.argv)
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        self.port = None
        self.starts += 1
        self.lines.append(f"--- start {self.starts}: {' '.join(cmd)}")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     text=True)
        ready = threading.Event()
        proc = self.proc

        def pump():
            for line in proc.stderr:
                self.lines.append(line.rstrip("\n"))
                if len(self.lines) > 4000:
                    del self.lines[1:2000]
                m = re.search(r"listening on http://[\d.]+:(\d+)", line)
                if m and not ready.is_set():
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        ready.wait(timeout)
        if not self.port:
            self.kill()
            raise AssertionError(f"{self.name} did not start:\n{self.log()}")
        return self

    def log(self, n=40):
        return "\n".join(self.lines[-n:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def kill(self):
        """SIGKILL, by PID, and reap."""
        if self.alive():
            self.proc.kill()
        if self.proc:
            self.proc.wait(10)

    def stop(self, timeout=30):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def request(self, method, path, body=None, headers=None, timeout=10):
        return request(self.host, self.port, method, path, body, headers,
                       timeout)

    def api(self, method, path, body=None, timeout=10):
        """(status, decoded JSON or None) of an admin API call."""
        st, _, text = self.request(method, path, body,
                                   {"Authorization": f"Bearer {TOKEN}"},
                                   timeout)
        try:
            return st, json.loads(text)
        except ValueError:
            return st, None

    def run(self, run_id):
        st, doc = self.api("GET", f"/api/runs/{run_id}")
        assert st == 200, (st, doc)
        return doc

    def nodes(self):
        """GET /api/nodes: {name: newest entry of that name}."""
        st, doc = self.api("GET", "/api/nodes")
        assert st == 200, (st, doc)
        out = {}
        for n in doc["nodes"]:
            if n["name"] not in out or n["id"] > out[n["name"]]["id"]:
                out[n["name"]] = n
        return out


def write_tree(root, workflows, scripts):
    """The shared workflows and scripts directories under root."""
    wf, sc = pathlib.Path(root) / "workflows", pathlib.Path(root) / "scripts"
    wf.mkdir(exist_ok=True)
    sc.mkdir(exist_ok=True)
    for name, text in workflows.items():
        (wf / f"{name}.yml").write_text(textwrap.dedent(text))
    for name, text in scripts.items():
        (sc / name).write_text(textwrap.dedent(text))
    return wf, sc


def wait_node_alive(observer, name, alive, timeout):
    """Waits until observer's GET /api/nodes shows node `name` alive (or
    not); returns the entry."""
    def check():
        try:
            n = observer.nodes().get(name)
        except OSError:
            return None
        return n if n and bool(n["alive"]) == alive else None
    return wait_for(check, timeout, 0.1,
                    f"{observer.name} to see {name} alive={alive}")


# --- network namespaces -------------------------------------------------

def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True,
                       timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def netns_unavailable():
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"hfp{secrets.token_hex(3)}"
    r = ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"ip netns add: {r.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


# A run's names: TAG = hfc + 4 hex digits; namespaces TAGn<i>, the bridge
# TAGbr, veth ends TAGh<i> (TAGv<i> go with their namespace), PostgreSQL's
# directory /tmp/TAG-pg-*, and OWNERS/TAG holding the PID of the test process
# that made them (written before the first of them).
TAG_RE = re.compile(r"^(hfc[0-9a-f]{4})(?:n\d+|br|h\d+)$")
OWNERS = pathlib.Path(tempfile.gettempdir()) / "hfc-owners"
ORPHAN_AGE_S = 900  # without an owner file: older than any run


def _owner_alive(tag):
    """Whether the process that made tag's names still runs: None when no
    owner file says."""
    try:
        pid = int((OWNERS / tag).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"python" in cmd


def _kill_pg(pgdir):
    """Stops the PostgreSQL whose data directory is under pgdir (by the PID
    in its postmaster.pid, once /proc says it is that server), removes pgdir."""
    try:
        pid = int((pgdir / "data" / "postmaster.pid").read_text().split()[0])
        cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        if str(pgdir).encode() in cmd:
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown, children too
            deadline = time.monotonic() + 10
            while (pathlib.Path(f"/proc/{pid}").exists() and
                   time.monotonic() < deadline):
                time.sleep(0.1)
            if pathlib.Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass
    shutil.rmtree(pgdir, ignore_errors=True)


def sweep_leftovers():
    """Removes what earlier runs of Net left behind when killed from outside
    (a timeout): the namespaces with the processes in them, links,
    PostgreSQL, by this module's name prefix. A tag whose owner still runs is
    left alone (another test at work); one without an owner file only when
    its namespace or directory is older than ORPHAN_AGE_S. Returns the tags
    removed."""
    names = {}
    for line in ip("netns", "list", check=False).stdout.splitlines():
        ns = line.split()[0] if line.split() else ""
        m = TAG_RE.match(ns)
        if m:
            names.setdefault(m.group(1), []).append(("ns", ns))
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        link = parts[1].strip().split("@")[0] if len(parts) > 1 else ""
        m = TAG_RE.match(link)
        if m:
            names.setdefault(m.group(1), []).append(("link", link))
    tmp = pathlib.Path(tempfile.gettempdir())
    for d in tmp.glob("hfc????-pg-*"):
        names.setdefault(d.name[:7], []).append(("pg", d))
    for f in OWNERS.glob("hfc????") if OWNERS.is_dir() else ():
        names.setdefault(f.name, [])
    swept = []
    now = time.time()
    for tag, items in sorted(names.items()):
        alive = _owner_alive(tag)
        if alive:
            continue
        if alive is None:
            ages = [now - os.stat(p).st_mtime for p in
                    [pathlib.Path("/run/netns") / n for k, n in items
                     if k == "ns"] + [d for k, d in items if k == "pg"]
                    if p.exists()]
            if ages and min(ages) < ORPHAN_AGE_S:
                continue
        for kind, name in items:
            if kind == "ns":
                pids = ip("netns", "pids", name, check=False).stdout.split()
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (OSError, ValueError):
                        pass
                ip("netns", "del", name, check=False)
        for kind, name in items:
            if kind == "link" and ip("link", "show", name,
                                     check=False).returncode == 0:
                ip("link", "del", name, check=False)
            elif kind == "pg":
                _kill_pg(name)
        (OWNERS / tag).unlink(missing_ok=True)
        swept.append(tag)
    return swept


class Net:
    """A bridge in the root namespace with the address .1 of a free
    10.231.X.0/24, and per node a namespace whose veth pair joins it (the
    node's end .11, .12, …). Every name starts with hfc + a random tag, and
    close() removes exactly what up() made; sweep_leftovers() what a run
    killed from outside left."""

    def __init__(self, nodes):
        self.tag = "hfc" + secrets.token_hex(2)  # names stay under 15 bytes
        OWNERS.mkdir(exist_ok=True)
        (OWNERS / self.tag).write_text(f"{os.getpid()}\n")
        self.n = nodes
        used = ip("-4", "-o", "addr").stdout
        free = [x for x in range(1, 255) if f" 10.231.{x}." not in used]
        assert free, "no free 10.231.X.0/24"
        x = free[secrets.randbelow(len(free))]
        self.cidr = f"10.231.{x}.0/24"
        self.gw = f"10.231.{x}.1"
        self.bridge = f"{self.tag}br"
        self.ns = [f"{self.tag}n{i}" for i in range(nodes)]
        self.outer = [f"{self.tag}h{i}" for i in range(nodes)]
        self.inner = [f"{self.tag}v{i}" for i in range(nodes)]
        self.addr = [f"10.231.{x}.{11 + i}" for i in range(nodes)]
        self.made_ns, self.made_links = [], []

    def up(self):
        ip("link", "add", self.bridge, "type", "bridge")
        self.made_links.append(self.bridge)
        ip("addr", "add", f"{self.gw}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for ns, outer, inner, addr in zip(self.ns, self.outer, self.inner,
                                          self.addr):
            ip("netns", "add", ns)
            self.made_ns.append(ns)
            ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            self.made_links.append(outer)
            ip("link", "set", inner, "netns", ns)
            ip("link", "set", outer, "master", self.bridge, "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", inner)
            ip("-n", ns, "link", "set", inner, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        return self

    def link(self, i, up):
        """Node i's link (the bridge side of its veth pair) up or down."""
        ip("link", "set", self.outer[i], "up" if up else "down")

    def close(self):
        """Removes the namespaces (their veth ends and pairs go with
        them), then any pair or bridge left; by the names up() made."""
        for ns in self.made_ns:
            ip("netns", "del", ns, check=False)
        for link in reversed(self.made_links):
            if ip("link", "show", link, check=False).returncode == 0:
                ip("link", "del", link, check=False)
        self.made_ns, self.made_links = [], []
        (OWNERS / self.tag).unlink(missing_ok=True)


# --- an HTTP gate and receiver ------------------------------------------

class Gate:
    """An HTTP server on host that records every request (path, query,
    headers, JSON body) and holds those to /hold until release() (bounded:
    30 s), answering 200 `{"ok":true}`."""

    def __init__(self, host="127.0.0.1"):
        self.requests = []
        self.lock = threading.Lock()
        self.open = threading.Event()
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                path, _, query = self.path.partition("?")
                q = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                with gate.lock:
                    gate.requests.append({
                        "path": path, "query": q, "body": body,
                        "headers": {k.lower(): v
                                    for k, v in self.headers.items()},
                        "at": time.monotonic()})
                if path == "/hold":
                    gate.open.wait(30)
                out = b'{"ok":true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_any

        class Srv(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Srv((host, 0), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def seen(self, path=None):
        with self.lock:
            return [r for r in self.requests if path in (None, r["path"])]

    def release(self):
        self.open.set()

    def close(self):
        self.open.set()
        self.httpd.shutdown()
        self.httpd.server_close()
