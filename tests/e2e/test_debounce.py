"""End-to-end tests for `debounce: {key, period, max_wait}` (CONTRACT §6,
docs/reference.md, "debounce"): a burst of events with one key makes one run
(the first's, its leader) with `event` the last and `events` all of them in
arrival order; the others end cancelled, "debounced into run LEADER"; other
keys are bursts of their own; `max_wait` closes a burst that keeps going
(nothing lost: the next events make the next run); a burst survives a
SIGKILL. Every wait is bounded; no duration is asserted."""
import time

from conftest import wait_for
from test_throttle import iso_ms

DEB = """
name: deb
on:
  webhook:
    path: /deb
debounce: {{ key: event.body.k, period: {period}{max_wait} }}
steps:
  - id: collect
    run: |
      local ns = {{}}
      for i, e in ipairs(events) do ns[i] = e.body.n end
      return {{ last = event.body.n, ns = ns }}
"""


def deb(period="1s", max_wait=""):
    return DEB.format(period=period,
                      max_wait=f", max_wait: {max_wait}" if max_wait else "")


def post(srv, body):
    r = srv.post("/deb", body)
    assert r.status == 202, r
    return r.json()["runs"][0]


def finished(srv, rid):
    return srv.wait_run(rid, timeout=30,
                        statuses=("succeeded", "failed", "cancelled"))


def test_burst_makes_one_run(server):
    srv = server(workflows={"deb": deb("1500ms")})
    ids = [post(srv, {"k": "a", "n": n}) for n in (1, 2, 3)]
    other = post(srv, {"k": "b", "n": 4})
    runs = {rid: finished(srv, rid) for rid in ids}
    # The leader is whichever run a worker took first (two workers).
    leads = [r for r in runs.values() if r["status"] == "succeeded"]
    assert len(leads) == 1, runs
    lead = leads[0]
    assert lead["steps"][0]["output"] == {"last": 3, "ns": [1, 2, 3]}
    for rid, run in runs.items():
        if run is lead:
            continue
        assert run["status"] == "cancelled", run
        assert run["error"] == f"debounced into run {lead['id']}"
        assert run["steps"] == []
    run = finished(srv, other)
    assert run["steps"][0]["output"] == {"last": 4, "ns": [4]}


def test_max_wait_closes_a_burst(server):
    srv = server(workflows={"deb": deb("1s", "2s")})
    ids = []
    for n in range(10):
        ids.append(post(srv, {"k": "a", "n": n}))
        time.sleep(0.4)  # pacing only: each arrives within the period
    runs = [finished(srv, rid) for rid in ids]
    leaders = [r for r in runs if r["status"] == "succeeded"]
    assert len(leaders) >= 2, runs
    got = [n for r in leaders for n in r["steps"][0]["output"]["ns"]]
    assert got == list(range(10))  # none lost, in arrival order
    for r in leaders:
        out = r["steps"][0]["output"]
        assert out["last"] == out["ns"][-1]
    for r in runs:
        assert r["status"] in ("succeeded", "cancelled")


def test_burst_survives_sigkill(server):
    srv = server(workflows={"deb": deb("4s")})
    first = post(srv, {"k": "a", "n": 1})
    second = post(srv, {"k": "a", "n": 2})
    wait_for(lambda: "cancelled" in (srv.run(first)["status"],
                                     srv.run(second)["status"]), 15,
             what="one event joined the other's burst")
    lead_id = first if srv.run(second)["status"] == "cancelled" else second
    srv.kill()
    srv.start()
    third = post(srv, {"k": "a", "n": 3})
    lead = finished(srv, lead_id)
    assert lead["status"] == "succeeded"
    assert lead["steps"][0]["output"] == {"last": 3, "ns": [1, 2, 3]}
    assert finished(srv, third)["status"] == "cancelled"


def test_check_debounce(server, tmp_path):
    srv = server(start=False)
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: { webhook: { path: /bad } }\n"
                   "debounce: { period: 10s, max_wait: 5s, every: 1 }\n"
                   "steps:\n  - id: a\n    run: return 1\n")
    p = srv.cli("check", str(bad))
    assert p.returncode == 1
    out = p.stdout
    assert f"{bad}:3:11: missing required key 'key'" in out, out
    assert f"{bad}:3:36: 'max_wait' must not be less than 'period'" in out, out
    assert f"{bad}:3:40: unknown key 'every'" in out, out


def test_hookflow_run_is_a_burst_of_one(server, tmp_path):
    import json
    srv = server(start=False)
    f = tmp_path / "deb.yml"
    f.write_text(deb("1h"))
    ev = tmp_path / "ev.json"
    ev.write_text('{"k": "a", "n": 7}')
    p = srv.cli("run", str(f), "--event", str(ev), "--data", str(tmp_path / "d.db"))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.splitlines()[0])["output"] == {"last": 7, "ns": [7]}


def test_first_step_sleep_after_the_burst(server):
    """A debounced workflow whose first step sleeps: the leader (of a burst
    of one), woken when its burst closes, then sleeps its step's own time
    (it went straight on, as if woken from the sleep), and `events` is
    still the burst after it. Recorded times: its next step started no
    sooner than the burst's period and the sleep after the run was made."""
    srv = server(workflows={"nap": (
        "name: nap\non:\n  webhook:\n    path: /deb\n"
        "debounce: { key: \"'k'\", period: 300ms }\n"
        "steps:\n  - id: nap\n    sleep: 1s\n"
        "  - id: go\n    run: \"return #events\"\n")})
    run = finished(srv, post(srv, {"n": 1}))
    assert run["status"] == "succeeded", run
    nap, go = run["steps"]
    assert go["output"] == 1, run["steps"]
    waited = iso_ms(go["started_at"]) - iso_ms(run["created_at"])
    assert waited >= 300 + 1000, (waited, run)


def test_events_outlive_a_wait(server):
    """`events` is the burst's in every step, also after a wait (a sleep
    between steps): the burst rides in the run's "waiting" from wait to
    wait. It was lost after any wait: "undefined global 'events'"."""
    srv = server(workflows={"later": (
        "name: later\non:\n  webhook:\n    path: /deb\n"
        "debounce: { key: \"'k'\", period: 300ms }\n"
        "steps:\n  - id: first\n    run: \"return #events\"\n"
        "  - id: nap\n    sleep: 300ms\n"
        "  - id: go\n    run: \"return { n = #events, last = event.body.n }\"\n")})
    ids = [post(srv, {"n": n}) for n in (1, 2, 3)]
    runs = [finished(srv, rid) for rid in ids]
    lead = [r for r in runs if r["status"] == "succeeded"]
    assert len(lead) == 1, runs
    first, nap, go = lead[0]["steps"]
    assert first["output"] == 3, lead[0]["steps"]
    assert go["output"] == {"n": 3, "last": 3}, lead[0]["steps"]
