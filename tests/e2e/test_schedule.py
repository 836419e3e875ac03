"""on.schedule against the real server, at a per-second test cadence
(HOOKFLOW_TEST_CRON_SECONDS=1 allows a leading seconds field):

- each fire time makes one run, whose event is method SCHEDULE, path the
  workflow's name, event.schedule = {cron, at}, no body;
- across a restart (SIGTERM and SIGKILL) no fire time runs twice and, with a
  large catch_up, none is lost;
- catch_up 2 and 0 after a stop spanning several fire times;
- a reload that adds a scheduled workflow starts it, one that removes it
  stops it;
- a workflow with both a webhook and a schedule;
- `hookflow check` errors at FILE:LINE:COL, `hookflow run --now`.

Waits are bounded; the assertions are on counts and fire times, never on
durations."""
import datetime
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BIN, wait_for

SECONDS = {"HOOKFLOW_TEST_CRON_SECONDS": "1"}


def tick(catch_up=100, cron="* * * * * *", extra=""):
    return {"tick": f"""
        name: tick
        on:
          {extra}
          schedule:
            - cron: "{cron}"
              catch_up: {catch_up}
        steps:
          - id: s
            run: |
              local s = event.schedule or {{}}
              return {{ at = s.at, cron = s.cron,
                        method = event.method, path = event.path,
                        body_nil = event.body == nil }}
    """}


def outputs(srv, workflow="tick"):
    """The finished runs' outputs: [(run, output)], oldest first."""
    r = srv.api("GET", f"/api/runs?workflow={workflow}&limit=1000")
    assert r.status == 200, r
    out = []
    for run in r.json()["runs"]:
        if run["status"] != "succeeded":
            continue
        out.append((run, run["steps"][0]["output"]))
    return out[::-1]


def secs(at):
    return int(datetime.datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp())


def created(run):
    return datetime.datetime.strptime(run["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ") \
        .replace(tzinfo=datetime.timezone.utc).timestamp()


def fires(srv, workflow="tick"):
    """Every stored run of a schedule's fire, whatever its status, as
    [(fire time in seconds, run)] in fire-time order. The fire time is read
    from the run's event, so a queued or running run counts too."""
    r = srv.api("GET", f"/api/runs?workflow={workflow}&limit=1000")
    assert r.status == 200, r
    out = []
    for run in r.json()["runs"]:
        ev = srv.api("GET", f"/api/events/{run['event']}").json()
        if ev["method"] == "SCHEDULE":
            out.append((secs(ev["query"]["at"]), run))
    return sorted(out, key=lambda x: x[0])


def ats(srv):
    return [t for t, _ in fires(srv)]


def wait_fires(srv, n, timeout=20):
    return wait_for(lambda: len(ats(srv)) >= n or None, timeout,
                    what=f"{n} schedule fires")


def contiguous(times):
    """Sorted, no repeat, no gap (a fire every second)."""
    return sorted(times) == list(range(min(times), min(times) + len(times)))


def test_fires_once_per_time_with_event_fields(server):
    srv = server(tick(), env=SECONDS)
    wait_fires(srv, 3)
    wait_for(lambda: len(outputs(srv)) >= 3 or None, 20, what="3 runs")
    # One run per second of the cadence: consecutive fire times, none twice.
    assert contiguous(ats(srv)), ats(srv)
    runs = outputs(srv)
    for run, o in runs:
        assert o["method"] == "SCHEDULE" and o["path"] == "tick", o
        assert o["cron"] == "* * * * * *" and o["body_nil"] is True, o
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", o["at"]), o
        ev = srv.api("GET", f"/api/events/{run['event']}").json()
        assert ev["method"] == "SCHEDULE" and ev["path"] == "tick", ev
        assert ev["query"] == {"cron": o["cron"], "at": o["at"]}, ev
    # Counted by the fire's done() call, a moment after its run shows.
    wait_for(lambda: re.search(r'hookflow_schedule_fires_total\{workflow='
                               r'"tick",outcome="run"\} [1-9]',
                               srv.get("/metrics").body), 15,
             what="the fire counted")
    wf = srv.api("GET", "/api/workflows").json()
    wf = wf.get("workflows", wf) if isinstance(wf, dict) else wf
    tickwf = [w for w in wf if w["name"] == "tick"][0]
    assert tickwf["path"] is None
    assert tickwf["schedule"] == [{"cron": "* * * * * *", "timezone": "UTC",
                                   "catch_up": 100}]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_restart_never_fires_twice(server, sig):
    srv = server(tick(catch_up=100), env=SECONDS)
    wait_fires(srv, 2)
    if sig == signal.SIGKILL:
        srv.kill()
    else:
        assert srv.stop(sig) == 0
    srv.start()
    n = len(ats(srv))
    wait_fires(srv, n + 3)
    srv.stop()
    srv.start()
    times = ats(srv)
    # Every fire time once: none twice, and (catch_up 100) none lost.
    assert contiguous(times), times
    # Every run of them finishes, those cut short by the kill too.
    for _, run in fires(srv):
        assert srv.wait_run(run["id"])["status"] == "succeeded"


@pytest.mark.parametrize("catch_up", [2, 0])
def test_catch_up_after_a_stop(server, catch_up):
    srv = server(tick(catch_up=catch_up), env=SECONDS)
    wait_fires(srv, 1)
    assert srv.stop() == 0
    stopped = time.time()
    # A stop spanning several fire times.
    wait_for(lambda: time.time() >= stopped + 4 or None, 10, what="time")
    restarted = time.time()
    srv.start()
    m = wait_for(lambda: re.search(
        r"workflow 'tick' missed (\d+) fires? of .* running (?:the latest )?"
        r"(\d+) \(catch_up: (\d+)\)", srv.stderr()), 10, what="catch-up line")
    missed, ran = int(m.group(1)), int(m.group(2))
    assert missed >= 3 and int(m.group(3)) == catch_up
    assert ran == min(catch_up, missed)
    wait_for(lambda: len([1 for _, r in fires(srv) if created(r) >= restarted])
             >= ran + 2 or None, 20, what="fires after the restart")
    all_fires = fires(srv)
    last = max(t for t, r in all_fires if created(r) < restarted)
    after = [t for t, r in all_fires if created(r) >= restarted]
    assert len(after) == len(set(after))
    caught = [t for t in after if t <= last + missed]
    live = [t for t in after if t > last + missed]
    # The latest `ran` of the missed ones, then every live fire.
    assert caught == list(range(last + missed - ran + 1, last + missed + 1))
    assert live and contiguous(live) and live[0] == last + missed + 1


def test_webhook_and_schedule(server):
    srv = server(tick(extra="webhook: {path: /both}"), env=SECONDS)
    r = srv.post("/both", {"hello": 1})
    assert r.status == 202, r
    run = srv.wait_run(r.json()["runs"][0])
    assert run["status"] == "succeeded", run
    wait_fires(srv, 2)
    wait_for(lambda: len(outputs(srv)) >= 3 or None, 20, what="3 runs")
    methods = [o.get("method") for _, o in outputs(srv)]
    assert methods.count("POST") == 1 and methods.count("SCHEDULE") >= 2


def test_check_errors_file_line_col(tmp_path):
    f = tmp_path / "bad.yml"
    f.write_text(
        "name: bad\n"
        "on:\n"
        "  schedule:\n"
        "    - cron: \"0 25 * * *\"\n"
        "      timezone: Mars/Olympus\n"
        "      catch_up: -1\n"
        "    - cron: \"*/5 * * FOO *\"\n"
        "    - cron: \"* * * * * *\"\n"
        "    - {cron: \"@reboot\"}\n"
        "steps: [{id: s, run: return 1}]\n")
    p = subprocess.run([BIN, "check", str(f)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    for where, what in [("4:16", "invalid hour field '25'"),
                        ("5:17", "unknown time zone 'Mars/Olympus'"),
                        ("6:17", "catch_up"),
                        ("7:22", "invalid month field 'FOO'"),
                        ("8:14", "needs 5 fields"),
                        ("9:15", "unknown cron macro '@reboot'")]:
        assert f"{f}:{where}: " in out and what in out, (where, out)
    # The seconds field is for tests only.
    p = subprocess.run([BIN, "check", str(f)], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, **SECONDS))
    assert "needs 5 fields" not in p.stdout + p.stderr


def test_run_now(tmp_path):
    f = tmp_path / "nightly.yml"
    f.write_text(
        "name: nightly\n"
        "on:\n"
        "  schedule:\n"
        "    - cron: \"0 2 * * MON-FRI\"\n"
        "      timezone: Europe/Berlin\n"
        "steps:\n"
        "  - id: s\n"
        "    run: return {at = event.schedule.at, cron = event.schedule.cron,"
        " method = event.method}\n")
    p = subprocess.run([BIN, "run", str(f), "--now", "2026-12-07T01:00:00Z",
                        "--data", str(tmp_path / "d.db")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    line = json.loads(p.stdout.splitlines()[0])
    assert line["output"] == {"at": "2026-12-07T01:00:00Z",
                              "cron": "0 2 * * MON-FRI", "method": "SCHEDULE"}
    p = subprocess.run([BIN, "run", str(f), "--now", "tomorrow"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--now" in p.stderr


def test_reload_adds_and_removes_schedules(server):
    srv = server({"hook": """
        name: hook
        on: {webhook: {path: /h}}
        steps: [{id: s, run: return 1}]
    """}, env=SECONDS)
    srv.write_workflow("tick", tick()["tick"])
    srv.proc.send_signal(signal.SIGHUP)  # reload
    wait_fires(srv, 2)
    (srv.workflows / "tick.yml").unlink()
    srv.proc.send_signal(signal.SIGHUP)

    def gone():
        wfs = srv.api("GET", "/api/workflows").json()
        wfs = wfs.get("workflows", wfs) if isinstance(wfs, dict) else wfs
        return all(w["name"] != "tick" for w in wfs) or None
    wait_for(gone, 10, what="the reload")
    n = len(ats(srv))
    # Removed: a few fire times pass with no new run (at most one fire was
    # on its way when the reload came).
    time.sleep(3)
    assert len(ats(srv)) <= n + 1
