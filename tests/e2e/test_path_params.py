"""End-to-end tests for path parameters (docs/reference.md, `on.webhook.path`
and `event.params`): `/tickets/{id}` matches one segment, the values are in
`event.params` (strings; `{}` without parameters) for steps, `with:`, `if:` and
the API; a literal path wins over a pattern; 404/405 as for literal paths;
`hookflow check` reports a bad pattern at FILE:LINE:COL."""
import re
import subprocess
import textwrap

from conftest import BIN, data_exec

TICKET = """
name: ticket
on:
  webhook:
    path: /tickets/{id}
    methods: [POST]
if: event.params.id ~= "skip"
steps:
  - id: p
    with: { from_with: "${{ event.params.id }}" }
    run: |
      return { params = event.params, id_type = type(event.params.id),
               from_with = args.from_with, path = event.path }
"""

TICKET_NOTE = """
name: ticket-note
on:
  webhook:
    path: "/tickets/{ticket}/notes/{note}/"
    methods: [POST, PUT]
steps:
  - id: p
    run: return event.params
"""

NEW_TICKET = """
name: new-ticket
on:
  webhook:
    path: /tickets/new
steps:
  - id: p
    run: return { empty = next(event.params) == nil }
"""

# Same shape as TICKET with another name: both get a run, each its own name.
TICKET_AUDIT = """
name: ticket-audit
on:
  webhook:
    path: /tickets/{tid}
steps:
  - id: p
    run: return { tid = event.params.tid }
"""


def output(srv, run_id):
    run = srv.wait_run(run_id)
    assert run["status"] == "succeeded", run
    return run["steps"][0]["output"]


def test_params_in_steps_with_and_event_api(server):
    srv = server(workflows={"ticket": TICKET, "note": TICKET_NOTE})
    r = srv.post("/tickets/42", {"x": 1})
    assert r.status == 202, r
    out = output(srv, r.json()["runs"][0])
    assert out == {"params": {"id": "42"}, "id_type": "string",
                   "from_with": "42", "path": "/tickets/42"}
    ev = srv.api("GET", f"/api/events/{r.json()['event']}")
    assert ev.status == 200, ev
    assert ev.json()["params"] == {"id": "42"}

    # percent-decoded, trailing '/' ignored, several parameters
    r = srv.post("/tickets/a%20b/notes/n-7", {})
    assert r.status == 202, r
    assert output(srv, r.json()["runs"][0]) == {"ticket": "a b", "note": "n-7"}
    r = srv.request("PUT", "/tickets/9/notes/1/", {})
    assert r.status == 202, r
    assert output(srv, r.json()["runs"][0]) == {"ticket": "9", "note": "1"}


def test_if_sees_params(server):
    srv = server(workflows={"ticket": TICKET})
    r = srv.post("/tickets/skip", {})
    assert r.status == 202, r
    assert r.json()["runs"] == []


def test_literal_wins_and_shared_patterns(server):
    srv = server(workflows={"ticket": TICKET, "new": NEW_TICKET,
                            "audit": TICKET_AUDIT})
    r = srv.post("/tickets/new", {})
    assert r.status == 202, r
    runs = r.json()["runs"]
    assert len(runs) == 1
    run = srv.wait_run(runs[0])
    assert run["workflow"] == "new-ticket"
    assert run["steps"][0]["output"] == {"empty": True}
    ev = srv.api("GET", f"/api/events/{r.json()['event']}").json()
    assert ev["params"] == {}

    r = srv.post("/tickets/77", {})
    assert r.status == 202, r
    runs = r.json()["runs"]
    assert len(runs) == 2
    got = {srv.wait_run(i)["workflow"]: output(srv, i) for i in runs}
    assert got["ticket"]["params"] == {"id": "77"}
    assert got["ticket-audit"] == {"tid": "77"}
    ev = srv.api("GET", f"/api/events/{r.json()['event']}").json()
    assert ev["params"] == {"id": "77", "tid": "77"}


def test_404_and_405(server):
    srv = server(workflows={"ticket": TICKET, "new": NEW_TICKET})
    for path in ("/tickets", "/tickets/", "/tickets/1/2", "/tickets//",
                 "/other/1"):
        r = srv.post(path, {})
        assert r.status == 404, (path, r)
        assert "error" in r.json()
    r = srv.request("PUT", "/tickets/1", {})
    assert r.status == 405, r
    assert r.headers["allow"] == "POST"
    # the literal path wins even for a method only the pattern has
    r = srv.request("GET", "/tickets/new")
    assert r.status == 405, r
    assert r.headers["allow"] == "POST"


def test_replay_keeps_params(server):
    srv = server(workflows={"ticket": TICKET})
    r = srv.post("/tickets/5", {})
    assert r.status == 202, r
    output(srv, r.json()["runs"][0])
    rp = srv.api("POST", f"/api/events/{r.json()['event']}/replay")
    assert rp.status == 202, rp
    assert output(srv, rp.json()["runs"][0])["params"] == {"id": "5"}


GATED = """
name: gated
on:
  webhook:
    path: /gated/{id}
steps:
  - id: p
    run: |
      if not db.one("SELECT 1 AS ok FROM gate") then error("closed") end
      return event.params
"""


def test_params_after_restart_and_retry(server):
    """The run's event comes back from the state database: the parameters are
    read from its path again."""
    srv = server(workflows={"gated": GATED})
    r = srv.post("/gated/g-1", {})
    assert r.status == 202, r
    run_id = r.json()["runs"][0]
    assert srv.wait_run(run_id)["status"] == "failed"
    srv.restart()
    data_exec(srv.data, "CREATE TABLE IF NOT EXISTS gate(x INTEGER)")
    data_exec(srv.data, "INSERT INTO gate VALUES (1)")
    rr = srv.api("POST", f"/api/runs/{run_id}/retry")
    assert rr.status in (200, 202), rr
    run = srv.wait_run(run_id, statuses=("succeeded",))
    assert run["steps"][-1]["output"] == {"id": "g-1"}


BAD = [
    # (path as written in YAML, column of the problem, message part)
    ("/t/{}", 14, "empty parameter '{}'"),
    ("/t/{id}/{id}", 19, "parameter '{id}' appears twice"),
    ("/t/{id", 14, "'{' not closed"),
    ("/t/{2x}", 15, "invalid parameter name '2x'"),
    ("/t/x{id}", 15, "a parameter must be a whole segment"),
    ("/t/{id}x", 18, "a parameter must be a whole segment"),
    ("/t/id}", 16, "'}' without '{'"),
    ('"/t/{a-b}"', 16, "invalid parameter name 'a-b'"),
]


def test_check_reports_bad_patterns(tmp_path):
    for i, (path, col, msg) in enumerate(BAD):
        f = tmp_path / f"bad{i}.yml"
        f.write_text(textwrap.dedent(f"""\
            name: bad{i}
            on:
              webhook:
                path: {path}
            steps:
              - id: s
                run: return 1
            """))
        p = subprocess.run([BIN, "check", str(f)], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert p.returncode == 1, (path, p.stdout, p.stderr)
        out = p.stdout + p.stderr
        m = re.search(re.escape(str(f)) + r":(\d+):(\d+): (.+)", out)
        assert m, (path, out)
        assert (int(m.group(1)), int(m.group(2))) == (4, col), (path, out)
        assert msg in m.group(3), (path, out)
    good = tmp_path / "good.yml"
    good.write_text(TICKET.lstrip("\n"))
    p = subprocess.run([BIN, "check", str(good)], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
