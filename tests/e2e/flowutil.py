"""Helpers shared by the flow-control end-to-end tests (test_cancel.py,
test_cancel_on.py, test_on_failure.py): a gate that holds a step's HTTP call
until the test opens it, and the metrics' run counters."""
import http.server
import re
import socketserver
import threading

from conftest import wait_for


class Gate:
    """A local HTTP server whose answers wait until open() (bounded by 30 s):
    a step calling it stays running as long as the test wants."""

    def __init__(self):
        self.opened = threading.Event()
        self.hits = []
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                gate.hits.append(self.path)
                gate.opened.wait(30)
                out = b'{"ok":true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        class Srv(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Srv(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def open(self):
        self.opened.set()

    def wait_hit(self, n=1, timeout=15):
        wait_for(lambda: len(self.hits) >= n, timeout, what=f"{n} gate hit(s)")

    def close(self):
        self.opened.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def dropped(srv, run_id):
    """Whether the server logged that it let go of cancelled run run_id in
    memory (its running step committed, no later step will run)."""
    return f"run {run_id} (" in srv.stderr() and any(
        f"run {run_id} (" in line and line.endswith("cancelled")
        for line in srv.stderr_lines)


def runs_counted(srv, workflow, status):
    """hookflow_runs_total{workflow, status} from /metrics (0 when absent)."""
    text = srv.get("/metrics").body
    m = re.search(r'^hookflow_runs_total\{workflow="%s",status="%s"\} (\d+)'
                  % (re.escape(workflow), re.escape(status)), text, re.M)
    return int(m.group(1)) if m else 0
