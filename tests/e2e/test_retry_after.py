"""End-to-end tests for a step that sets its own retry (docs/reference.md,
"Steps", `retry`, and "Lua", `retry`): `retry.after(delay[, message])` with
a receiver's 429 + Retry-After passed as it is, `retry.max_delay` capping a
huge delay, `retry.never`, bad delays, and the stored due time surviving a
restart.

The due time is read from the state database (runs.due_at, wall ms); every
bound checked is one the engine must keep by construction (the next attempt
never starts before its due time, the due time is never past now + the cap),
never a measured duration. Every wait is bounded."""
import subprocess
import textwrap
import time

from conftest import BIN, PG_MODE, state_rows, wait_for


def workflow(name, lua, retry="{ attempts: 3 }", top=""):
    """A one-step workflow on /NAME; the step `call` runs `lua`."""
    body = textwrap.indent(textwrap.dedent(lua).strip(), " " * 6)
    return (f"name: {name}\n{top}on:\n  webhook:\n    path: /{name}\n"
            f"steps:\n  - id: call\n    retry: {retry}\n"
            f"    run: |\n{body}\n")


# Calls the receiver; a 429 hands its Retry-After header to retry.after as
# it is.
CALL = """
    local res = http.get(event.body.url)
    if res.status == 429 then
      retry.after(res.headers["retry-after"], "rate limited: " .. res.body)
    end
    return { status = res.status, attempt = run.attempt }
"""


def start(srv, path, body):
    r = srv.post(path, body)
    assert r.status == 202, r
    return r.json()["runs"][0]


def db_run(srv, run_id):
    """(status, step_attempt, due_at) of the run as stored."""
    rows = state_rows(srv.state, "SELECT status, step_attempt, due_at FROM"
                      " runs WHERE id = ?", run_id)
    return rows[0] if rows else None


def db_step(srv, run_id):
    """(status, attempts, started_at, finished_at, error) of step 0: in the
    SQLite state the newest of the run's rows of idx 0 (its chain's rows are
    appended: schema version 6)."""
    sql = ("SELECT status, attempts, started_at, finished_at, error FROM"
           " steps WHERE run_id = ? AND idx = 0" if PG_MODE else
           "SELECT status, attempts, started_at, finished_at, error FROM"
           " steps WHERE run = (SELECT rid FROM runs WHERE id = ?) AND"
           " idx = 0 ORDER BY sid DESC LIMIT 1")
    rows = state_rows(srv.state, sql, run_id)
    return rows[0] if rows else None


def wait_retry(srv, run_id, attempt=2):
    """Waits until the run is stored waiting for attempt `attempt`."""
    return wait_for(lambda: (lambda r: r if r and r[1] == attempt and r[2] > 0
                             else None)(db_run(srv, run_id)),
                    15, what=f"run {run_id} to wait for attempt {attempt}")


def expect_failed(srv, path, body, attempts, *wants, timeout=30):
    """Runs path; the run must fail after `attempts` attempts of its step,
    every one of wants in its error."""
    run = srv.wait_run(start(srv, path, body), timeout=timeout)
    assert run["status"] == "failed", run
    assert run["steps"][0]["attempts"] == attempts, run
    for want in wants:
        assert want in run["error"], (want, run["error"])
    return run


def hits(receiver):
    with receiver.lock:
        return len(receiver.requests)


# --- a receiver's 429 + Retry-After ---------------------------------------


def test_429_retry_after_header_then_success(server, receiver):
    receiver.responses = [(429, {"Retry-After": "2"}, "slow down")]
    srv = server(workflows={"sync": workflow("sync", CALL)})
    run_id = start(srv, "/sync", {"url": receiver.url + "/api"})
    status, _, due = wait_retry(srv, run_id)
    assert status == "running"
    step = db_step(srv, run_id)
    assert step[0] == "failed" and step[1] == 1, step
    assert "rate limited: slow down" in step[4], step
    # The next attempt is due no sooner than 2 s after the first one ended.
    assert due >= step[3] + 2000, (due, step)
    run = srv.wait_run(run_id, timeout=30)
    assert run["status"] == "succeeded", run
    st = run["steps"][0]
    assert st["status"] == "succeeded" and st["attempts"] == 2, st
    assert st["output"] == {"status": 200, "attempt": 2}, st
    assert hits(receiver) == 2
    # ... and it did not start before its due time.
    assert db_step(srv, run_id)[2] >= due


def test_http_date_and_duration_forms(server, receiver):
    """An HTTP date already past retries at once; a duration string works
    like seconds."""
    receiver.responses = [
        (429, {"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT"}, "old date"),
        (429, {"Retry-After": "1s"}, "duration"),
    ]
    srv = server(workflows={"sync": workflow("sync", CALL)})
    run = srv.wait_run(start(srv, "/sync", {"url": receiver.url}), timeout=30)
    assert run["status"] == "succeeded", run
    assert run["steps"][0]["attempts"] == 3, run
    assert run["steps"][0]["output"]["attempt"] == 3
    assert hits(receiver) == 3


def test_no_attempt_left_fails_with_the_message(server, receiver):
    receiver.default = (429, {"Retry-After": "1"}, "still busy")
    srv = server(workflows={"sync": workflow("sync", CALL,
                                             retry="{ attempts: 2 }")})
    run = expect_failed(srv, "/sync", {"url": receiver.url}, 2,
                        "rate limited: still busy")
    assert run["error"].startswith("step 'call' failed:"), run
    assert hits(receiver) == 2


def test_without_retry_key_it_is_one_attempt(server):
    """A step with no `retry:` has one attempt: retry.after fails it."""
    wf = ("name: once\non:\n  webhook:\n    path: /once\nsteps:\n"
          "  - id: call\n    run: retry.after(1, 'come back later')\n")
    srv = server(workflows={"once": wf})
    expect_failed(srv, "/once", {}, 1, "come back later")


# --- retry.max_delay --------------------------------------------------------


def capped(srv, path, cap_ms):
    """Starts the run of path and checks that its next attempt is stored as
    due exactly cap_ms after the failed one (within the time it took to
    store); returns the failed step's row."""
    run_id = start(srv, path, {})
    _, _, due = wait_retry(srv, run_id)
    now = int(time.time() * 1000)
    step = db_step(srv, run_id)
    assert step[3] + cap_ms <= due <= now + cap_ms, (due, step, now)
    assert srv.run(run_id)["status"] == "running"
    return step


def test_max_delay_caps_a_huge_delay(server):
    wf = workflow("cap", "retry.after(86400 * 365, 'next year')",
                  retry="{ attempts: 3, max_delay: 10m }")
    step = capped(server(workflows={"cap": wf}), "/cap", 600_000)
    assert step[0] == "failed" and "next year" in step[4], step


def test_default_max_delay_is_one_hour(server):
    wf = workflow("cap1h", "retry.after('Fri, 31 Dec 9999 23:59:59 GMT')",
                  top="timeout: 2h\n")
    capped(server(workflows={"cap1h": wf}), "/cap1h", 3_600_000)


def test_delay_past_the_run_timeout_fails_at_once(server):
    wf = workflow("late", "retry.after('5m', 'maintenance')",
                  top="timeout: 1m\n")
    srv = server(workflows={"late": wf})
    expect_failed(srv, "/late", {}, 1, "maintenance",
                  "would pass the run's timeout")


# --- retry.never --------------------------------------------------------------


def test_never_stops_at_once_with_attempts_left(server, receiver):
    receiver.default = (400, {}, "bad request")
    lua = """
        local res = http.post(event.body.url, { x = 1 })
        if res.status >= 400 and res.status < 500 and res.status ~= 429 then
          retry.never("rejected: " .. res.status)
        end
        return res.status
    """
    srv = server(workflows={"never": workflow("never", lua,
                                              retry="{ attempts: 5 }")})
    expect_failed(srv, "/never", {"url": receiver.url}, 1, "rejected: 400")
    assert hits(receiver) == 1


def test_never_caught_by_pcall_still_fails(server):
    lua = """
        local ok = pcall(retry.never, "no point")
        return "went on"
    """
    srv = server(workflows={"caught": workflow("caught", lua,
                                               retry="{ attempts: 4 }")})
    expect_failed(srv, "/caught", {}, 1, "no point")


def test_never_under_continue_on_error_goes_on(server):
    wf = ("name: goon\non:\n  webhook:\n    path: /goon\nsteps:\n"
          "  - id: call\n    retry: { attempts: 3 }\n"
          "    continue_on_error: true\n    run: retry.never('skip it')\n"
          "  - id: after\n    run: return steps.call == nil\n")
    srv = server(workflows={"goon": wf})
    run = srv.wait_run(start(srv, "/goon", {}), timeout=15)
    assert run["status"] == "succeeded", run
    assert run["steps"][0]["status"] == "failed"
    assert run["steps"][0]["attempts"] == 1
    assert run["steps"][1]["output"] is True


# --- bad delays ---------------------------------------------------------------


def test_bad_delays_fail_the_step_with_a_message(server):
    cases = {
        "neg": ("retry.after(-5)", "retry.after: negative delay"),
        "negstr": ("retry.after('-5')", "retry.after: negative delay '-5'"),
        "junk": ("retry.after('whenever')",
                 "retry.after: invalid delay 'whenever' (expected seconds,"
                 " a duration such as 30s or 2m, or an HTTP date)"),
        "nan": ("retry.after(0/0)", "not a number"),
        "table": ("retry.after({})", "must be a number of seconds or a"
                  " string (got table)"),
        "none": ("retry.after()", "(got nil)"),
    }
    srv = server(workflows={n: workflow(n, lua, retry="{ attempts: 1 }")
                            for n, (lua, _) in cases.items()})
    for name, (_, want) in cases.items():
        expect_failed(srv, f"/{name}", {}, 1, want)
    assert srv.get("/healthz").status == 200


def test_check_rejects_a_bad_max_delay(tmp_path):
    wf = tmp_path / "bad.yml"
    wf.write_text("name: bad\non:\n  webhook:\n    path: /bad\nsteps:\n"
                  "  - id: call\n    run: return 1\n"
                  "    retry: { attempts: 2, max_delay: soon }\n")
    p = subprocess.run([BIN, "check", str(wf)], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stdout + p.stderr
    out = p.stdout + p.stderr
    assert f"{wf}:8:" in out, out
    assert "invalid duration 'soon'" in out, out
    wf.write_text(wf.read_text().replace("max_delay: soon", "max_delay: 90s"))
    p = subprocess.run([BIN, "check", str(wf)], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr


# --- durability -----------------------------------------------------------------


def test_due_time_survives_a_restart(server, receiver):
    receiver.responses = [(429, {"Retry-After": "5"}, "later")]
    srv = server(workflows={"sync": workflow("sync", CALL)})
    run_id = start(srv, "/sync", {"url": receiver.url})
    _, _, due = wait_retry(srv, run_id)
    assert srv.stop() == 0
    assert db_run(srv, run_id) == ("running", 2, due)
    srv.start()
    run = srv.wait_run(run_id, timeout=30)
    assert run["status"] == "succeeded", run
    assert run["steps"][0]["attempts"] == 2, run
    assert db_step(srv, run_id)[2] >= due
    assert hits(receiver) == 2
