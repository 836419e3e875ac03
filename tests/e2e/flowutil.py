"""Helpers shared by the flow-control end-to-end tests (test_cancel.py,
test_cancel_on.py, test_on_failure.py, test_park.py, test_attack_flow.py,
...): a gate that holds a step's HTTP call until the test opens it, the
approver workflow and its waiting runs, and a /metrics reader."""
import http.server
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


def metric(srv, name, **labels):
    """The sum of name's samples in /metrics whose labels include labels
    (name="value"); None when there is no such sample."""
    total, seen = 0.0, False
    for line in srv.get("/metrics").body.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return total if seen else None


def runs_counted(srv, workflow, status):
    """hookflow_runs_total{workflow, status} from /metrics (0 when absent)."""
    return int(metric(srv, "hookflow_runs_total", workflow=workflow,
                      status=status) or 0)


def waiting(srv, run_id, timeout=15):
    """The run once it is parked (status waiting)."""
    return wait_for(lambda: (lambda r: r if r["status"] == "waiting" else None)(
        srv.run(run_id)), timeout, what=f"run {run_id} to wait")


# A run that hands out its resume URL, then waits for a request to
# /approvals with its ticket (% the wait_for timeout).
APPROVER = """
name: approver
on:
  webhook: { path: /tickets }
steps:
  - id: ask
    run: return run.resume_url
  - id: approval
    wait_for:
      path: /approvals
      if: signal.body.ticket == event.body.ticket
      timeout: %s
  - id: after
    run: return { approved = steps.approval, nil_on_timeout = steps.approval == nil }
"""
