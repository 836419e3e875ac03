"""End-to-end tests for issue 6, "Real jobs, end to end": the two examples in
examples/ (support-tickets, crm-sync), each run by a real `hookflow serve`
against its mock third-party APIs, themselves a second `hookflow serve` with
the example's mock/workflows. Success paths and failure paths: API down then
back, 429 with Retry-After, out-of-order CRM updates, simultaneous tickets,
solved tickets, escalation, bad signatures and duplicate deliveries. Issue
15's flow control in the examples: the first-reply SLA (a parked run,
escalated when the SLA is over, cancelled by cancel_on when the agent
replies), the on_failure chat alert, a CRM burst debounced into one push, and
the marketing API's shared throttle.

Standard library only; only 127.0.0.1; every wait is bounded; no test asserts
how long something took (two assert what the design guarantees: no call
before a 429's Retry-After has passed, which the examples ask for with
retry.after; and no second of the mock's record holding more calls than the
throttle's limit, a count per window of the mock's own times)."""
import base64
import concurrent.futures
import glob
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import uuid

from conftest import BIN, ROOT, wait_for
from pgcluster import free_port

EXAMPLES = ROOT / "examples"
HELPDESK_SECRET = "hd-" + uuid.uuid4().hex
CHAT_SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
CRM_SECRET = "crm-" + uuid.uuid4().hex
SYNC_SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


# --- helpers -------------------------------------------------------------

def files(directory, pattern):
    return {p.name: p.read_text() for p in sorted(directory.glob(pattern))}


def example_server(server, name, sub="", env=None, args=(), start=True):
    """A Server running examples/NAME[/SUB]'s workflows and scripts. Its
    --data is an SQLite file even with HF_TEST_STATE=postgres (--state is
    then PostgreSQL): the examples' SQL is SQLite's (MAX(a, b) of two
    values, millisecond times in INTEGER columns, seed.sql for sqlite3)."""
    base = EXAMPLES / name / sub if sub else EXAMPLES / name
    srv = server(workflows=files(base / "workflows", "*.y*ml"),
                 scripts=files(base / "scripts", "*.lua"),
                 env=env, args=args, start=False)
    srv.data = srv.dir / "data.db"
    return srv.start() if start else srv


def query(path, sql, *params):
    """Rows of sql on the SQLite file at path, as dicts ([] if no table yet)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, params)]
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return []
        raise
    finally:
        con.close()


def mock_requests(mock, service):
    r = mock.get(f"/mock/requests?service={service}")
    assert r.status == 200, r
    return r.json()["requests"]


def mock_control(mock, **settings):
    r = mock.post("/mock/control", settings)
    assert r.status == 200, r
    return r.json()


def runs(srv, workflow):
    r = srv.api("GET", f"/api/runs?workflow={workflow}&limit=500")
    assert r.status == 200, r
    return r.json()["runs"]


def wait_runs(srv, workflow, n, timeout=60):
    """Waits until `workflow` has at least n runs, all finished."""
    def done():
        rs = runs(srv, workflow)
        if len(rs) >= n and all(r["status"] in ("succeeded", "failed") for r in rs):
            return rs
        return None
    return wait_for(done, timeout, what=f"{n} finished runs of {workflow}")


def step(run, sid):
    (s,) = [s for s in run["steps"] if s["id"] == sid]
    return s


def check_standard_webhook(req, secret):
    """The Standard Webhooks signature of a request the mock recorded."""
    key = base64.b64decode(secret[len("whsec_"):])
    h = req["headers"]
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.{req['body']}".encode()
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert f"v1,{want}" in h["webhook-signature"].split(" "), req


# --- support-tickets -----------------------------------------------------

def load_payload(example, name):
    return json.loads((EXAMPLES / example / "payloads" / name).read_text())


def ticket(tid, *, tags=(), locale="en", priority="normal", kind="ticket.created",
           assignee=None):
    return {"type": kind, "id": uuid.uuid4().hex, "time": "2026-11-27T09:00:00Z",
            "ticket": {"id": tid, "subject": f"Ticket {tid}", "status": "new",
                       "priority": priority, "tags": list(tags),
                       "requester": {"id": 1, "name": "R", "email": "r@example.com",
                                     "locale": locale},
                       "assignee_id": assignee}}


WORKFLOW_OF = {"ticket.created": "ticket-created", "ticket.updated": "ticket-updated",
               "ticket.solved": "ticket-solved"}


class Support:
    def __init__(self, server, app_args=(), mock_args=(), sla=None):
        self.mock = example_server(server, "support-tickets", "mock",
                                   env={"CHAT_SECRET": CHAT_SECRET}, args=mock_args)
        m = f"http://127.0.0.1:{self.mock.port}"
        env = {"HELPDESK_SECRET": HELPDESK_SECRET,
               "HELPDESK_URL": f"{m}/helpdesk",
               "CHAT_URL": f"{m}/chat", "ESCALATION_URL": f"{m}/escalation",
               "CHAT_SECRET": CHAT_SECRET}
        if sla:
            env["FIRST_REPLY_SLA"] = sla    # ticket-sla.yml; 30m when unset
        self.app = example_server(server, "support-tickets", start=False, args=app_args,
                                  env=env)
        con = sqlite3.connect(self.app.data)
        con.executescript((EXAMPLES / "support-tickets" / "seed.sql").read_text())
        con.commit()
        con.close()
        self.app.start()

    def send(self, body, delivery=None, secret=HELPDESK_SECRET, signature=None):
        raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
        sig = signature or hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        return self.app.post("/helpdesk/events", raw, {
            "Content-Type": "application/json",
            "X-Helpdesk-Signature": "sha256=" + sig,
            "X-Helpdesk-Delivery": delivery or uuid.uuid4().hex})

    def run_id(self, answer, workflow):
        """The id of `workflow`'s run among those a delivery's answer lists
        (a ticket.created starts ticket-created and ticket-sla)."""
        ids = [i for i in answer.json()["runs"] if self.app.run(i)["workflow"] == workflow]
        assert len(ids) == 1, (answer, workflow)
        return ids[0]

    def run_of(self, body, workflow=None, **kw):
        r = self.send(body, **kw)
        assert r.status == 202, r
        rid = self.run_id(r, workflow or WORKFLOW_OF[body["type"]])
        run = self.app.wait_run(rid, timeout=60)
        return run

    def data(self, sql, *params):
        return query(self.app.data, sql, *params)

    def loads(self):
        return {r["id"]: r["load"] for r in self.data("SELECT id, load FROM agents")}


def test_new_ticket_assigned_notified_then_reassigned_and_solved(server):
    s = Support(server)
    run = s.run_of(load_payload("support-tickets", "ticket-created.json"))
    assert run["status"] == "succeeded", run
    pick = step(run, "pick")["output"]
    # billing + refunds, German: only Alice (101) has both skills and speaks it.
    assert pick["agent"]["id"] == 101 and pick["skills"] == ["billing", "refunds"]
    assert pick["language"] == "de" and pick["status"] == "assigned"
    assert step(run, "escalate")["status"] == "skipped"

    (put,) = mock_requests(s.mock, "helpdesk")
    assert put["method"] == "PUT" and put["path"] == "/api/v2/tickets/1001"
    assert json.loads(put["body"]) == {"ticket": {"assignee_id": 101}}
    assert put["status"] == 200
    (row,) = s.data("SELECT * FROM tickets WHERE id = '1001'")
    assert row["status"] == "assigned" and row["agent_id"] == 101
    assert row["helpdesk_synced_at"]
    assert s.loads()[101] == 1

    # The chat message goes through the outbox: signed, delivered once.
    chat = wait_for(lambda: mock_requests(s.mock, "chat"), 30, what="chat message")
    assert len(chat) == 1 and chat[0]["status"] == 200
    check_standard_webhook(chat[0], CHAT_SECRET)
    msg = json.loads(chat[0]["body"])
    assert msg["ticket"] == "1001" and msg["agent"]["name"] == "Alice"
    assert "assigned to Alice" in msg["text"]

    # Reassigned by hand in the helpdesk (to Carol, 103): the load follows.
    run = s.run_of(load_payload("support-tickets", "ticket-updated.json"))
    assert run["status"] == "succeeded", run
    assert step(run, "sync")["output"]["reassigned"] == {"from": 101, "to": 103}
    loads = s.loads()
    assert loads[101] == 0 and loads[103] == 1

    # Solved: Carol's load is released, once.
    solved = load_payload("support-tickets", "ticket-solved.json")
    run = s.run_of(solved)
    assert run["status"] == "succeeded", run
    out = step(run, "release")["output"]
    assert out["released"] is True and out["agent"]["id"] == 103 and out["load"] == 0
    assert s.loads()[103] == 0
    (row,) = s.data("SELECT status, solved_at FROM tickets WHERE id = '1001'")
    assert row["status"] == "solved" and row["solved_at"]
    msgs = wait_for(lambda: (lambda m: m if len(m) == 2 else None)(
        mock_requests(s.mock, "chat")), 30, what="solved message")
    assert "solved" in json.loads(msgs[1]["body"])["text"]

    # The same ticket.solved again (a new delivery id): nothing released twice.
    solved["id"] = "again"
    run = s.run_of(solved)
    assert step(run, "release")["output"]["released"] is False
    assert step(run, "notify")["status"] == "skipped"
    assert all(v >= 0 for v in s.loads().values()) and s.loads()[103] == 0
    assert len(mock_requests(s.mock, "helpdesk")) == 1


def test_helpdesk_down_then_back_step_retries(server):
    s = Support(server)
    mock_control(s.mock, service="helpdesk", fail_next=2, fail_status=503)
    run = s.run_of(ticket(2001, tags=["technical"]))
    assert run["status"] == "succeeded", run
    assign = step(run, "assign")
    assert assign["status"] == "succeeded" and assign["attempts"] == 3, assign
    reqs = mock_requests(s.mock, "helpdesk")
    assert [r["status"] for r in reqs] == [503, 503, 200]
    assert {r["path"] for r in reqs} == {"/api/v2/tickets/2001"}
    # Booked once, however many tries the API call took.
    assert sum(s.loads().values()) == 1
    assert len(s.data("SELECT * FROM assignments WHERE ticket_id = '2001'")) == 1


def test_helpdesk_429_honours_retry_after(server):
    s = Support(server)
    mock_control(s.mock, service="helpdesk", throttle_next=1, retry_after=1)
    run = s.run_of(ticket(2002))
    assert run["status"] == "succeeded", run
    assert step(run, "assign")["attempts"] >= 2
    reqs = mock_requests(s.mock, "helpdesk")
    assert [r["status"] for r in reqs] == [429, 200]
    # retry.after, not a gate table in the data database.
    assert s.data("SELECT name FROM sqlite_master WHERE name = 'api_throttle'") == []


def test_simultaneous_tickets_balanced_and_assigned_once(server):
    s = Support(server, app_args=["--workers", "8"], mock_args=["--workers", "8"])
    ids = list(range(3001, 3011))
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda i: s.send(ticket(i, locale="en")), ids))
    assert all(a.status == 202 for a in answers), answers
    for a in answers:
        rid = s.run_id(a, "ticket-created")
        assert s.app.wait_run(rid, timeout=60)["status"] == "succeeded"

    # Eve (105) is away; the four others share ten tickets 3/3/2/2.
    loads = s.loads()
    assert loads[105] == 0
    active = sorted(loads[a] for a in (101, 102, 103, 104))
    assert active == [2, 2, 3, 3], loads
    tickets = s.data("SELECT id, agent_id, status FROM tickets")
    assert sorted(int(t["id"]) for t in tickets) == ids
    assert all(t["status"] == "assigned" for t in tickets)
    for agent, load in loads.items():
        assert load == sum(1 for t in tickets if t["agent_id"] == agent)
        assert load <= 5
    assigned = s.data("SELECT ticket_id, COUNT(*) AS n FROM assignments GROUP BY ticket_id")
    assert len(assigned) == 10 and all(a["n"] == 1 for a in assigned)
    puts = mock_requests(s.mock, "helpdesk")
    assert sorted(r["path"] for r in puts) == sorted(f"/api/v2/tickets/{i}" for i in ids)
    for r in puts:
        tid = r["path"].rsplit("/", 1)[1]
        (t,) = [t for t in tickets if t["id"] == tid]
        assert json.loads(r["body"])["ticket"]["assignee_id"] == t["agent_id"]
    chat = wait_for(lambda: (lambda m: m if len(m) == 10 else None)(
        mock_requests(s.mock, "chat")), 30, what="ten chat messages")
    assert len({json.loads(m["body"])["ticket"] for m in chat}) == 10


def test_urgent_ticket_without_agent_is_escalated(server):
    s = Support(server)
    run = s.run_of(load_payload("support-tickets", "ticket-created-urgent.json"))
    assert run["status"] == "succeeded", run
    pick = step(run, "pick")["output"]
    assert "agent" not in pick and pick["status"] == "escalated"
    assert step(run, "assign")["status"] == "skipped"
    assert step(run, "notify")["status"] == "skipped"
    assert step(run, "escalate")["status"] == "succeeded"
    esc = wait_for(lambda: mock_requests(s.mock, "escalation"), 30, what="escalation")
    assert len(esc) == 1 and esc[0]["status"] == 202
    check_standard_webhook(esc[0], CHAT_SECRET)
    body = json.loads(esc[0]["body"])
    assert body["ticket"] == "1002" and body["language"] == "ja"
    assert "URGENT" in body["text"]
    assert mock_requests(s.mock, "helpdesk") == []
    assert sum(s.loads().values()) == 0
    (row,) = s.data("SELECT status, agent_id FROM tickets WHERE id = '1002'")
    assert row == {"status": "escalated", "agent_id": None}

    # A non-urgent ticket nobody can take waits, and escalates nothing.
    run = s.run_of(ticket(2003, locale="ja"))
    assert step(run, "pick")["output"]["status"] == "waiting"
    assert step(run, "escalate")["status"] == "skipped"


def test_helpdesk_signature_and_duplicates(server):
    s = Support(server)
    body = ticket(2004)
    r = s.send(body, secret="not-the-secret")
    assert r.status == 401, r
    r = s.send(body, signature="0" * 64)
    assert r.status == 401, r
    raw = json.dumps(body).encode()
    r = s.app.post("/helpdesk/events", raw, {"Content-Type": "application/json"})
    assert r.status == 401, r

    first = s.send(body, delivery="delivery-1")
    assert first.status == 202, first
    again = s.send(body, delivery="delivery-1")
    assert again.status == 200, again
    assert again.json() == {"event": first.json()["event"], "duplicate": True}
    s.app.wait_run(s.run_id(first, "ticket-created"), timeout=60)
    assert len(runs(s.app, "ticket-created")) == 1
    assert len(mock_requests(s.mock, "helpdesk")) == 1
    assert sum(s.loads().values()) == 1


# --- support-tickets: first-reply SLA (ticket-sla) and on_failure --------

def comment(tid, role, public=True):
    """A helpdesk ticket.comment_added delivery (shaped like
    payloads/ticket-replied.json)."""
    return {"type": "ticket.comment_added", "id": uuid.uuid4().hex,
            "time": "2026-11-27T09:22:47Z",
            "ticket": {"id": tid, "subject": f"Ticket {tid}", "status": "open"},
            "comment": {"id": 1, "public": public, "body": "Hello",
                        "author": {"id": 101 if role == "agent" else 9001, "role": role}}}


def test_ticket_without_first_reply_is_escalated_after_sla(server):
    s = Support(server, sla="2s")
    r = s.send(load_payload("support-tickets", "ticket-created.json"))
    assert r.status == 202, r
    assert len(r.json()["runs"]) == 2, r    # ticket-created and ticket-sla
    created = s.app.wait_run(s.run_id(r, "ticket-created"), timeout=60)
    assert created["status"] == "succeeded", created
    run = s.app.wait_run(s.run_id(r, "ticket-sla"), timeout=60)
    assert run["status"] == "succeeded", run
    assert step(run, "sla")["output"]["sla"] == "2s"
    assert step(run, "sla")["output"]["seconds"] == 2
    assert step(run, "wait")["status"] == "succeeded"
    assert step(run, "escalate")["output"]["escalated"] is True

    (esc,) = wait_for(lambda: mock_requests(s.mock, "escalation"), 30, what="escalation")
    assert esc["status"] == 202
    check_standard_webhook(esc, CHAT_SECRET)
    assert esc["headers"]["webhook-id"] == "ticket-1001-sla"
    body = json.loads(esc["body"])
    assert body["ticket"] == "1001" and body["reason"] == "first-reply-sla"
    assert body["sla"] == "2s" and body["agent"] == {"id": 101, "name": "Alice"}
    assert "no first reply after 2s (assigned to Alice)" in body["text"]


def test_first_reply_cancels_the_sla(server):
    s = Support(server, sla="5s")
    r = s.send(load_payload("support-tickets", "ticket-created.json"))
    assert r.status == 202, r
    sla = s.run_id(r, "ticket-sla")
    run = wait_for(lambda: (lambda x: x if x["status"] == "waiting" else None)(
        s.app.run(sla)), 30, what="the SLA run parked")
    assert run["waiting"]["for"] == "until" and run["waiting"]["step"] == "wait", run

    # The requester's own comment, and an agent's internal note, do not stop it.
    for body in (comment(1001, "end-user"), comment(1001, "agent", public=False),
                 comment(1002, "agent")):
        a = s.send(body)
        assert a.status == 202 and a.json()["runs"] == [], a
    # The agent's first public reply does (payloads/ticket-replied.json).
    reply = s.send(load_payload("support-tickets", "ticket-replied.json"))
    assert reply.status == 202 and reply.json()["runs"] == [], reply
    run = s.app.wait_run(sla, timeout=30, statuses=("cancelled",))
    # Signals are handled in the order stored: the reply is the one that did it.
    assert "cancel_on" in run["error"] and reply.json()["event"] in run["error"], run
    assert [x["id"] for x in run["steps"]] == ["sla"], run

    # A ticket solved before its SLA is not escalated either.
    r = s.send(ticket(2101, tags=["technical"]))
    solved_sla = s.run_id(r, "ticket-sla")
    s.app.wait_run(s.run_id(r, "ticket-created"), timeout=60)
    wait_for(lambda: s.app.run(solved_sla)["status"] == "waiting", 30, what="parked")
    s.run_of(ticket(2101, kind="ticket.solved"))
    run = s.app.wait_run(solved_sla, timeout=30, statuses=("cancelled",))
    assert "cancel_on" in run["error"], run

    # A later ticket nobody answers escalates after the same SLA: by then
    # both cancelled runs' due times have passed, and neither escalated.
    r = s.send(ticket(2102, tags=["technical"]))
    last = s.app.wait_run(s.run_id(r, "ticket-sla"), timeout=60)
    assert step(last, "escalate")["output"]["escalated"] is True, last
    (esc,) = wait_for(lambda: mock_requests(s.mock, "escalation"), 30, what="escalation")
    assert json.loads(esc["body"])["ticket"] == "2102"
    for rid in (sla, solved_sla):
        assert s.app.run(rid)["status"] == "cancelled"
    ids = {d["id"] for d in s.app.api("GET", "/api/deliveries").json()["deliveries"]}
    assert "ticket-1001-sla" not in ids and "ticket-2101-sla" not in ids, ids


def test_assignment_failing_for_good_alerts_chat(server):
    s = Support(server)
    # The helpdesk refuses the assignment (404): retrying cannot help, so
    # api.lua ends the step with retry.never and the run fails.
    mock_control(s.mock, service="helpdesk", fail_next=1, fail_status=404)
    run = s.run_of(ticket(2201, tags=["technical"]))
    assert run["status"] == "failed", run
    assign = step(run, "assign")
    assert assign["status"] == "failed" and assign["attempts"] == 1, assign
    assert "answered 404" in assign["error"], assign
    assert "notify" not in [x["id"] for x in run["steps"]], run
    alert = step(run, "on_failure.alert")
    assert alert["status"] == "succeeded", run

    (msg,) = wait_for(lambda: mock_requests(s.mock, "chat"), 30, what="failure alert")
    assert msg["status"] == 200
    check_standard_webhook(msg, CHAT_SECRET)
    body = json.loads(msg["body"])
    assert body["ticket"] == "2201" and body["workflow"] == "ticket-created"
    assert body["run"] == run["id"] and body["step"] == "assign" and body["attempt"] == 1
    assert "answered 404" in body["error"], body
    assert "at step assign (attempt 1)" in body["text"] and "404" in body["text"], body
    assert [r["status"] for r in mock_requests(s.mock, "helpdesk")] == [404]


# --- crm-sync ------------------------------------------------------------

class Crm:
    LIST = "a1b2c3d4e5"

    def __init__(self, server, app_args=()):
        self.mock = example_server(server, "crm-sync", "mock", args=["--workers", "4"])
        m = f"http://127.0.0.1:{self.mock.port}"
        # crm-batch emits to this server's own /crm/contact: it must know its
        # URL before it starts, so the port is chosen here.
        for attempt in range(5):
            port = free_port()
            try:
                self.app = example_server(server, "crm-sync", args=[
                    "--listen", f"127.0.0.1:{port}", "--workers", "4", *app_args], env={
                    "CRM_SECRET": CRM_SECRET, "SYNC_SECRET": SYNC_SECRET,
                    "SELF_URL": f"http://127.0.0.1:{port}",
                    "MARKETING_URL": f"{m}/marketing",
                    "MARKETING_LIST": self.LIST})
                break
            except AssertionError:
                if attempt == 4:
                    raise
        self.contact_runs = 0

    def send(self, events, secret=CRM_SECRET, raw=None):
        raw = raw or json.dumps(events).encode()
        sig = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        return self.app.post("/crm/webhooks", raw, {
            "Content-Type": "application/json", "X-CRM-Signature": sig})

    def sync(self, events, contacts):
        """Sends a batch; waits for its split run and the `contacts`
        per-contact runs it causes. Returns the new crm-contact runs."""
        r = self.send(events)
        assert r.status == 202, r
        (rid,) = r.json()["runs"]
        split = self.app.wait_run(rid, timeout=60)
        assert split["status"] == "succeeded", split
        assert step(split, "split")["output"]["contacts"] == contacts
        self.contact_runs += contacts
        rs = wait_runs(self.app, "crm-contact", self.contact_runs)
        assert len(rs) == self.contact_runs, rs
        return rs[:contacts]

    def data(self, sql, *params):
        return query(self.app.data, sql, *params)

    def member(self, email):
        h = hashlib.md5(email.lower().encode()).hexdigest()
        rows = query(self.mock.data, "SELECT * FROM members WHERE id = ?", h)
        return rows[0] if rows else None


def payload(name):
    return load_payload("crm-sync", name)


def test_crm_batch_upserts_members(server):
    c = Crm(server)
    new = c.sync(payload("batch-create.json"), 2)
    assert all(r["status"] == "succeeded" for r in new), new
    puts = mock_requests(c.mock, "marketing")
    assert len(puts) == 2 and all(p["method"] == "PUT" and p["status"] == 200 for p in puts)
    ada = c.member("Ada.Lovelace@Example.com")
    # subscriber_hash: md5 of the lower-cased email, computed in Lua (md5.lua).
    assert ada["id"] == hashlib.md5(b"ada.lovelace@example.com").hexdigest()
    assert f"/3.0/lists/{c.LIST}/members/{ada['id']}" in {p["path"] for p in puts}
    assert ada["status"] == "subscribed"
    assert json.loads(ada["merge_fields"])["FNAME"] == "Ada"
    assert json.loads(ada["merge_fields"])["LNAME"] == "Lovelace"
    assert json.loads(ada["tags"]) == ["crm", "lifecycle:lead"]
    grace = c.member("grace@example.org")
    assert json.loads(grace["merge_fields"])["FNAME"] == "Grace"
    ledger = {r["crm_id"]: r for r in c.data("SELECT * FROM sync_ledger")}
    assert ledger["501"]["member_id"] == ada["id"]
    assert ledger["501"]["synced_version"] == ledger["501"]["version"] == 1795770000000
    assert ledger["502"]["member_id"] == grace["id"]

    # The CRM delivers the same batch again: a duplicate, nothing re-synced.
    r = c.send(payload("batch-create.json"))
    assert r.status == 200 and r.json()["duplicate"] is True, r
    assert len(mock_requests(c.mock, "marketing")) == 2


def test_crm_out_of_order_update_is_not_applied(server):
    c = Crm(server)
    c.sync(payload("batch-create.json"), 2)
    c.sync(payload("batch-update.json"), 2)
    assert json.loads(c.member("Ada.Lovelace@Example.com")["merge_fields"])["FNAME"] \
        == "Augusta Ada"
    assert json.loads(c.member("grace@example.org")["tags"]) == ["crm", "lifecycle:customer"]
    ledger_before = c.data("SELECT * FROM sync_ledger ORDER BY crm_id")
    props_before = c.data("SELECT * FROM crm_properties ORDER BY crm_id, name")
    puts_before = len(mock_requests(c.mock, "marketing"))

    # firstname "Ada (stale)" happened before "Augusta Ada" but arrives after.
    (run,) = c.sync(payload("batch-late.json"), 1)
    assert run["status"] == "succeeded", run
    plan = step(run, "plan")["output"]
    assert plan["stale"] == ["3012"] and not plan["applied"] and plan["action"] == "none"
    assert step(run, "push")["status"] == "skipped"
    assert c.data("SELECT * FROM sync_ledger ORDER BY crm_id") == ledger_before
    assert c.data("SELECT * FROM crm_properties ORDER BY crm_id, name") == props_before
    (ev,) = c.data("SELECT outcome FROM crm_events WHERE event_id = '3012'")
    assert ev["outcome"] == "stale"
    assert len(mock_requests(c.mock, "marketing")) == puts_before
    assert json.loads(c.member("Ada.Lovelace@Example.com")["merge_fields"])["FNAME"] \
        == "Augusta Ada"


def test_crm_deletion_unsubscribes(server):
    c = Crm(server)
    c.sync(payload("batch-create.json"), 2)
    (run,) = c.sync(payload("batch-delete.json"), 1)
    assert run["status"] == "succeeded", run
    assert step(run, "push")["output"]["member_status"] == "unsubscribed"
    assert c.member("grace@example.org")["status"] == "unsubscribed"
    assert c.member("Ada.Lovelace@Example.com")["status"] == "subscribed"
    (row,) = c.data("SELECT * FROM sync_ledger WHERE crm_id = '502'")
    assert row["deleted_at"] == 1795770120000 and row["status"] == "unsubscribed"

    # A change older than the deletion, arriving late, does not resurrect it.
    late = [dict(payload("batch-update.json")[1], eventId=3999,
                 occurredAt=1795770090000, propertyValue="evangelist")]
    (run,) = c.sync(late, 1)
    assert step(run, "plan")["output"]["stale"] == ["3999"]
    assert c.member("grace@example.org")["status"] == "unsubscribed"


def test_crm_marketing_down_then_back(server):
    c = Crm(server)
    mock_control(c.mock, service="marketing", fail_next=2, fail_status=503)
    new = c.sync(payload("batch-create.json"), 2)
    assert all(r["status"] == "succeeded" for r in new), new
    attempts = sum(step(r, "push")["attempts"] for r in new)
    assert attempts == 4, new
    statuses = sorted(p["status"] for p in mock_requests(c.mock, "marketing"))
    assert statuses == [200, 200, 503, 503]
    assert c.member("grace@example.org") and c.member("Ada.Lovelace@Example.com")
    for row in c.data("SELECT * FROM sync_ledger"):
        assert row["synced_version"] == row["version"]


def test_crm_429_honours_retry_after(server):
    c = Crm(server)
    mock_control(c.mock, service="marketing", throttle_next=1, retry_after=1)
    new = c.sync(payload("batch-create.json"), 2)
    assert all(r["status"] == "succeeded" for r in new), new
    reqs = mock_requests(c.mock, "marketing")
    assert sorted(p["status"] for p in reqs) == [200, 200, 429]
    # The 429 went through retry.after (scripts/api.lua): the throttled
    # contact's push took a second attempt, the other one a single one, and
    # no gate table was written.
    pushes = sorted(step(r, "push")["attempts"] for r in new)
    assert pushes == [1, 2], new
    (slow,) = [r for r in new if step(r, "push")["attempts"] == 2]
    assert slow["attempt"] == 1, slow
    assert step(slow, "push")["status"] == "succeeded", slow
    assert c.data("SELECT name FROM sqlite_master WHERE name = 'api_throttle'") == []
    # Not a timing assertion but the guarantee itself: the throttled call was
    # not tried again before its Retry-After (1 s) had passed.
    import datetime
    def at(p):
        return datetime.datetime.fromisoformat(p["at"].replace("Z", "+00:00"))
    (t429,) = [p for p in reqs if p["status"] == 429]
    (retry,) = [p for p in reqs if p["path"] == t429["path"] and p["status"] == 200]
    assert (at(retry) - at(t429)).total_seconds() >= 1.0, reqs


def test_crm_signature(server):
    c = Crm(server)
    r = c.send(payload("batch-create.json"), secret="wrong")
    assert r.status == 401, r
    r = c.app.post("/crm/webhooks", payload("batch-create.json"))
    assert r.status == 401, r
    # The per-contact path accepts only what this server signed itself.
    r = c.app.post("/crm/contact", {"objectId": 1, "events": []})
    assert r.status == 401, r
    assert runs(c.app, "crm-contact") == []


def standard_webhook_headers(wid, body, secret):
    key = base64.b64decode(secret[len("whsec_"):])
    ts = str(int(__import__("time").time()))
    sig = base64.b64encode(hmac.new(key, f"{wid}.{ts}.".encode() + body,
                                    hashlib.sha256).digest()).decode()
    return {"Content-Type": "application/json", "webhook-id": wid,
            "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}"}


def test_crm_nightly_reconcile_pushes_contacts_behind(server):
    """crm-reconcile (on.schedule, 02:00 Berlin) finds the contacts whose
    newest CRM version the marketing tool lacks and sends each one, through
    the outbox, to /crm/contact, which pushes its whole current state."""
    c = Crm(server)
    c.sync(payload("batch-create.json"), 2)
    # A change merged whose push gave up for good: Ada's ledger is ahead.
    data = c.app.data
    with sqlite3.connect(data) as db:
        db.execute("UPDATE crm_properties SET value = 'Ada R', version = version + 5"
                   " WHERE crm_id = '501' AND name = 'firstname'")
        db.execute("UPDATE sync_ledger SET version = version + 5 WHERE crm_id = '501'")
    wf = EXAMPLES / "crm-sync" / "workflows" / "crm-reconcile.yml"
    out = subprocess.run(
        [BIN, "run", str(wf), "--now", "2026-12-07T01:00:00Z", "--data", str(data),
         "--scripts", str(EXAMPLES / "crm-sync" / "scripts")],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "SELF_URL": f"http://127.0.0.1:{c.app.port}", "SYNC_SECRET": SYNC_SECRET})
    assert out.returncode == 0, out.stderr
    (line,) = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    assert line["output"]["behind"] == 1, line
    (emit,) = line["emits"]
    assert emit["url"] == f"http://127.0.0.1:{c.app.port}/crm/contact"
    assert emit["payload"]["objectId"] == "501", emit
    # What the outbox would deliver, signed as it signs: crm-contact pushes.
    body = json.dumps(emit["payload"]).encode()
    r = c.app.post("/crm/contact", body, standard_webhook_headers(emit["id"], body, SYNC_SECRET))
    assert r.status == 202, r
    (rid,) = r.json()["runs"]
    run = c.app.wait_run(rid, timeout=60)
    assert run["status"] == "succeeded" and step(run, "push")["status"] == "succeeded", run
    assert json.loads(c.member("Ada.Lovelace@Example.com")["merge_fields"])["FNAME"] == "Ada R"
    (row,) = c.data("SELECT version, synced_version FROM sync_ledger WHERE crm_id = '501'")
    assert row["synced_version"] == row["version"], row


# --- crm-sync: debounce and throttle -------------------------------------

def crm_change(contact, event_id, at, prop, value):
    return {"eventId": event_id, "subscriptionId": 2345, "portalId": 62515,
            "appId": 1160452, "attemptNumber": 0, "changeSource": "CRM",
            "occurredAt": at, "subscriptionType": "contact.propertyChange",
            "objectId": contact, "propertyName": prop, "propertyValue": value}


def settled_runs(srv, workflow, n, timeout=60):
    """Waits until `workflow` has n runs, all ended (cancelled included)."""
    def done():
        rs = runs(srv, workflow)
        if len(rs) == n and all(r["status"] in ("succeeded", "failed", "cancelled")
                                for r in rs):
            return rs
        return None
    return wait_for(done, timeout, what=f"{n} ended runs of {workflow}")


def test_crm_burst_of_batches_is_one_push(server):
    """crm-contact is debounced per contact: three batches touching Ada in a
    burst make three webhooks to /crm/contact and one run, whose `events`
    carry all three; plan_contact.lua merges them, push makes one PUT."""
    c = Crm(server)
    c.sync(payload("batch-create.json"), 2)
    before = {r["id"] for r in runs(c.app, "crm-contact")}
    puts = len(mock_requests(c.mock, "marketing"))
    t0 = 1795770200000
    burst = [[crm_change(501, 4001, t0 + 1000, "firstname", "Ada B1")],
             [crm_change(501, 4002, t0 + 2000, "lastname", "King")],
             [crm_change(501, 4003, t0 + 3000, "firstname", "Ada B3")]]
    answers = [c.send(b) for b in burst]
    for a in answers:
        assert a.status == 202, a
        (rid,) = a.json()["runs"]
        assert c.app.wait_run(rid, timeout=60)["status"] == "succeeded"

    new = [r for r in settled_runs(c.app, "crm-contact", 5) if r["id"] not in before]
    (leader,) = [r for r in new if r["status"] == "succeeded"]
    followers = [r for r in new if r["status"] == "cancelled"]
    assert len(followers) == 2, new
    for r in followers:
        assert r["error"] == f"debounced into run {leader['id']}", r
        assert r["steps"] == [], r
    plan = step(leader, "plan")["output"]
    assert plan["webhooks"] == 3, plan
    # Whatever order the three arrived in, each event was merged once; an
    # older firstname arriving after the newer one is stale.
    assert sorted(list(plan["applied"]) + list(plan["stale"])) == ["4001", "4002", "4003"]
    assert step(leader, "push")["status"] == "succeeded", leader

    assert len(mock_requests(c.mock, "marketing")) == puts + 1
    ada = json.loads(c.member("Ada.Lovelace@Example.com")["merge_fields"])
    assert ada["FNAME"] == "Ada B3" and ada["LNAME"] == "King", ada
    (row,) = c.data("SELECT version, synced_version FROM sync_ledger WHERE crm_id = '501'")
    assert row == {"version": t0 + 3000, "synced_version": t0 + 3000}, row
    evs = c.data("SELECT event_id, run_id FROM crm_events WHERE event_id IN ('4001','4002','4003')")
    assert len(evs) == 3 and {e["run_id"] for e in evs} == {leader["id"]}, evs


def test_crm_marketing_calls_share_one_throttle(server):
    """push is throttled with the key 'marketing', 10 calls a second: 25
    contacts, whose runs all reach push together, make 25 PUTs, none lost,
    and no second of the mock's record holds more than 10 of them (the
    mock's times, a count per window, not a timing of hookflow's code)."""
    c = Crm(server)
    n, limit = 25, 10
    batch = []
    for i in range(n):
        cid = 601 + i
        batch.append({"eventId": 5000 + 2 * i, "portalId": 62515, "occurredAt": 1795770300000,
                      "subscriptionType": "contact.creation", "objectId": cid})
        batch.append(crm_change(cid, 5001 + 2 * i, 1795770300000, "email",
                                f"contact{cid}@example.com"))
    new = c.sync(batch, n)
    assert all(r["status"] == "succeeded" for r in new), new
    assert all(step(r, "push")["status"] == "succeeded" for r in new)

    puts = mock_requests(c.mock, "marketing")
    assert len(puts) == n and all(p["status"] == 200 for p in puts), puts
    assert len({p["path"] for p in puts}) == n
    import datetime
    at = sorted(datetime.datetime.fromisoformat(p["at"].replace("Z", "+00:00"))
                for p in puts)
    # A window of 1 s holding limit + 1 requests would have two of them,
    # `limit` apart in time order, less than 1 s apart.
    # No window of 1 s holds more than 10 calls, to within the few ms a
    # throttled start parks past its time: the throttle gives each start a
    # time at least 1 s after the one 10 starts before it, and a parked run
    # wakes shortly after that time, the one before it perhaps a little
    # later still. (Measured: up to 5 ms; 100 ms allowed. README: leave
    # the API some headroom.) `limit` calls apart in time order, two calls
    # closer than that would put limit + 1 calls in one such window.
    slack = 0.1
    gaps = [(at[i + limit] - at[i]).total_seconds() for i in range(len(at) - limit)]
    assert min(gaps) >= 1.0 - slack, gaps
    ledger = c.data("SELECT crm_id, version, synced_version FROM sync_ledger")
    assert len(ledger) == n
    assert all(r["synced_version"] == r["version"] == 1795770300000 for r in ledger), ledger


# --- every example's workflows pass `hookflow check` --------------------------

def test_examples_pass_check():
    paths = sorted(glob.glob(str(EXAMPLES / "*" / "workflows")) +
                   glob.glob(str(EXAMPLES / "*" / "mock" / "workflows")))
    assert len(paths) >= 4, paths
    # As CI runs it: a linter needs no production secrets.
    env = {k: v for k, v in os.environ.items()
           if k not in ("HELPDESK_SECRET", "CHAT_SECRET", "CRM_SECRET", "SYNC_SECRET")}
    p = subprocess.run([BIN, "check", *paths], capture_output=True, text=True,
                       timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
