"""The limits of a wait_for signal (CONTRACT §6; docs/reference.md,
"Signals"): a body larger than a step's output may be is 413 before anything
is stored; a signal that finds more runs on its path than a signal is matched
against, or that runs past its time budget, resumes nothing and is answered
503 with Retry-After (never 202); past the queue of signals waiting to be
matched, 503 with Retry-After before anything is stored. The limits are set
low with HOOKFLOW_TEST_SIGNAL_LIMITS=MAX,BUDGET_MS,QUEUE (tests only). No
timing is asserted: a budget of 0 gives up before the first run, a queue of
0 refuses every signal."""
import threading

from conftest import wait_for

WAITER = """
name: waiter
on:
  webhook: { path: /tickets }
steps:
  - id: ask
    run: return run.resume_url
  - id: approval
    wait_for:
      path: /approvals
      if: signal.body.ticket == event.body.ticket
      timeout: 1h
  - id: after
    run: return steps.approval
"""

# A workflow of its own on the signal path: its runs show what was stored.
AUDIT = """
name: audit
on:
  webhook: { path: /approvals }
steps:
  - id: note
    run: return 1
"""

JS = {"Content-Type": "application/json"}


def limits(mx=100000, budget=10000, queue=64):
    return {"HOOKFLOW_TEST_SIGNAL_LIMITS": f"{mx},{budget},{queue}"}


def start_waiting(srv, ticket):
    r = srv.post("/tickets", {"ticket": ticket})
    assert r.status == 202, r
    rid = r.json()["runs"][0]
    run = wait_for(lambda: (lambda x: x if x["status"] == "waiting" else None)(
        srv.run(rid)), 15, what=f"run {rid} to wait")
    url = run["steps"][0]["output"]
    return rid, url.split(f":{srv.port}", 1)[1]


def audit_runs(srv):
    r = srv.api("GET", "/api/runs?workflow=audit")
    assert r.status == 200, r
    return len(r.json()["runs"])


def test_signal_body_over_the_step_output_limit(server):
    """A signal's body becomes the resumed step's output: past a step's
    output limit (1 MiB as JSON, within --max-body) the whole request is 413
    before anything is stored (no event, no run of the path's workflow) and
    the run still waits; a body just under it resumes the run."""
    srv = server(workflows={"waiter": WAITER, "audit": AUDIT},
                 args=["--max-body", "4MiB"])
    rid, _ = start_waiting(srv, 5)
    head = b'{"ticket":5,"pad":"'
    size = (1 << 20) - len(head) - 2  # the JSON text is exactly 1 MiB
    r = srv.post("/approvals", head + b"x" * (size + 1) + b'"}', headers=JS,
                 timeout=30)
    assert r.status == 413, r
    assert "output" in r.json()["error"], r
    assert srv.run(rid)["status"] == "waiting"
    assert audit_runs(srv) == 0
    # A form body is checked as the JSON it becomes.
    r = srv.post("/approvals", b"ticket=5&pad=" + b"x" * (1 << 20),
                 headers={"Content-Type":
                          "application/x-www-form-urlencoded"}, timeout=30)
    assert r.status == 413, r
    assert srv.run(rid)["status"] == "waiting"
    assert audit_runs(srv) == 0
    r = srv.post("/approvals", head + b"x" * size + b'"}', headers=JS,
                 timeout=30)
    assert r.status == 202 and r.json()["resumed"] == [rid], r
    assert len(r.json()["runs"]) == 1
    run = srv.wait_run(rid)
    assert run["status"] == "succeeded", run
    assert len(run["steps"][2]["output"]["pad"]) == size


def test_more_runs_waiting_than_a_signal_is_matched_against(server):
    """Past the runs one signal is matched against (here 2), a signal
    resumes nothing and is answered 503 with Retry-After, even for a run it
    would match; the event is stored (its path's workflow ran). Once few
    enough wait, the same signal resumes its run."""
    srv = server(workflows={"waiter": WAITER, "audit": AUDIT},
                 env=limits(mx=2))
    a, _ = start_waiting(srv, 1)
    b, burl = start_waiting(srv, 2)
    c, _ = start_waiting(srv, 3)
    r = srv.post("/approvals", {"ticket": 1})
    assert r.status == 503, r
    assert int(r.headers["retry-after"]) > 0, r
    assert "resumed nothing" in r.json()["error"], r
    assert "more runs wait" in r.json()["error"], r
    for rid in (a, b, c):
        assert srv.run(rid)["status"] == "waiting"
    wait_for(lambda: audit_runs(srv) == 1, 15, what="the audit run")
    # stderr is read by a thread of the test: the line may come a moment
    # after the answer it was written before
    wait_for(lambda: "resumes nothing" in srv.stderr(), 15, what="the log line")
    # Two left waiting: every one is matched again.
    r = srv.post(burl, {"ok": True})
    assert r.status == 202 and r.json()["resumed"] == [b], r
    r = srv.post("/approvals", {"ticket": 1})
    assert r.status == 202 and r.json()["resumed"] == [a], r
    assert srv.wait_run(a)["status"] == "succeeded"
    assert srv.run(c)["status"] == "waiting"


def test_signal_past_its_time_budget(server):
    """A signal still matching past its time budget (here 0: it gives up
    before its first run) resumes nothing and is answered 503 with
    Retry-After; with no run waiting on the path there is nothing to match
    and it is 202. Its place in the queue (here 1) is given back each time."""
    srv = server(workflows={"waiter": WAITER},
                 env=limits(budget=0, queue=1))
    r = srv.post("/approvals", {"ticket": 1})
    assert r.status == 202 and r.json()["resumed"] == [], r
    rid, url = start_waiting(srv, 1)
    for _ in range(3):
        r = srv.post("/approvals", {"ticket": 1})
        assert r.status == 503, r
        assert int(r.headers["retry-after"]) > 0, r
        assert "took longer" in r.json()["error"], r
        assert srv.run(rid)["status"] == "waiting"
    # The resume URL is not a signal: no budget, no queue.
    r = srv.post(url, {"ok": True})
    assert r.status == 202 and r.json()["resumed"] == [rid], r
    assert srv.wait_run(rid)["status"] == "succeeded"


def test_signal_queue_full(server):
    """Past the signals waiting to be matched (a queue of 0 here: every one
    is past it) a signal is 503 with Retry-After before anything is stored:
    no event, no run of the path's workflow, the waiting run still waits."""
    srv = server(workflows={"waiter": WAITER, "audit": AUDIT},
                 env=limits(queue=0))
    rid, url = start_waiting(srv, 1)
    for _ in range(3):
        r = srv.post("/approvals", {"ticket": 1})
        assert r.status == 503, r
        assert int(r.headers["retry-after"]) > 0, r
        assert "too many signals" in r.json()["error"], r
    assert srv.run(rid)["status"] == "waiting"
    assert audit_runs(srv) == 0
    r = srv.post(url, {"ok": True})
    assert r.status == 202 and r.json()["resumed"] == [rid], r


def test_signal_burst_with_a_queue_of_one(server):
    """Signals sent at once with a queue of one: each is answered 202 (and
    then matched against every waiting run) or 503 'too many signals' with
    nothing stored; afterwards the place is free again and every run a 202
    named is resumed, the others still wait."""
    srv = server(workflows={"waiter": WAITER, "audit": AUDIT},
                 env=limits(queue=1))
    rids = [start_waiting(srv, t)[0] for t in range(8)]
    answers = [None] * 8
    go = threading.Barrier(8)

    def send(t):
        go.wait(10)
        answers[t] = srv.post("/approvals", {"ticket": t}, timeout=30)

    threads = [threading.Thread(target=send, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    accepted = 0
    for t, r in enumerate(answers):
        assert r is not None and r.status in (202, 503), (t, r)
        if r.status == 202:
            accepted += 1
            assert r.json()["resumed"] == [rids[t]], (t, r)
            assert srv.wait_run(rids[t])["status"] == "succeeded"
        else:
            assert "too many signals" in r.json()["error"], (t, r)
            assert int(r.headers["retry-after"]) > 0, r
            assert srv.run(rids[t])["status"] == "waiting"
    wait_for(lambda: audit_runs(srv) == accepted, 15, what="the audit runs")
    # Every place was given back: the refused ones are accepted now.
    for t, r in enumerate(answers):
        if r.status == 503:
            r = srv.post("/approvals", {"ticket": t})
            assert r.status == 202 and r.json()["resumed"] == [rids[t]], r
    assert audit_runs(srv) == 8


MUTATOR = """
name: mutator
on:
  webhook: { path: /m }
steps:
  - id: w
    wait_for:
      path: /m-signal
      if: "(function() local t, h = signal.body.ticket, signal.headers['x-k']; signal.body.ticket = -1; signal.headers['x-k'] = 'changed'; return t == event.body.ticket and h == 'sent' end)()"
      timeout: 1h
  - id: after
    run: return steps.w
"""


def test_each_run_sees_the_signal_as_sent(server):
    """The `signal` of a wait_for's `if:` is built once per signal and each
    run's evaluation gets its own copy: what one `if:` does to it never
    reaches the next run's (here every `if:` overwrites it, and all three
    runs still match)."""
    srv = server(workflows={"mutator": MUTATOR})
    rids = []
    for _ in range(3):
        r = srv.post("/m", {"ticket": 4})
        assert r.status == 202, r
        rids.append(r.json()["runs"][0])
    for rid in rids:
        wait_for(lambda: srv.run(rid)["status"] == "waiting", 15,
                 what=f"run {rid} to wait")
    r = srv.post("/m-signal", {"ticket": 4}, headers={"X-K": "sent"})
    assert r.status == 202, r
    assert sorted(r.json()["resumed"]) == sorted(rids), r
    for rid in rids:
        run = srv.wait_run(rid)
        assert run["status"] == "succeeded", run
        assert run["steps"][1]["output"] == {"ticket": 4}, run
