"""End-to-end tests for `throttle: {key, limit, period}` (CONTRACT §6,
docs/reference.md, "throttle"): at most `limit` starts per `period` per key,
the key shared by two workflows, the rest parked (status waiting, for
throttle) and none dropped; at step level; across a SIGKILL.

What is checked is the starts really made: each throttled step's started_at
in RUN (the time the throttle let it through, woken runs included, however
late they woke). Any `limit` + 1 consecutive starts span at least `period`:
an upper bound on the starts, not a measured duration. The parked runs are
seen through the API while they wait (their "waiting"). Every wait is
bounded."""
import datetime
import threading

from conftest import state_rows, wait_for


class Watch:
    """Records the waiting runs' "waiting" (GET /api/runs?status=waiting)
    until stopped: the last seen of each run, and each (run, step) seen."""

    def __init__(self, srv):
        self.srv, self.seen, self.stop_ = srv, {}, threading.Event()
        self.gates, self.sleeps = set(), {}
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop_.is_set():
            try:
                r = self.srv.api("GET", "/api/runs?status=waiting&limit=500")
                if r.status == 200:
                    for run in r.json()["runs"]:
                        self.seen[run["id"]] = run["waiting"]
                        w = run["waiting"]
                        self.gates.add((run["id"], w["step"]))
                        if w["for"] == "sleep":
                            self.sleeps[run["id"]] = iso_ms(w["until"])
            except OSError:
                pass  # restarting
            self.stop_.wait(0.01)

    def stop(self):
        self.stop_.set()
        self.t.join(10)


def wf(name, top="", step=""):
    return (f"name: {name}\non:\n  webhook:\n    path: /{name}\n{top}"
            f"steps:\n  - id: prep\n    run: return 1\n"
            f"  - id: call\n{step}    run: return event.body.n\n")


SHARED = "throttle: { key: \"'hubspot'\", limit: 2, period: 1500ms }\n"


def iso_ms(s):
    d = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(d.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000 + 0.5)


def starts(srv, ids, step=0):
    """{run_id: the throttled step's start (ms)}: its started_at in RUN, the
    time the throttle let it through."""
    out = {}
    for rid in ids:
        run = srv.api("GET", f"/api/runs/{rid}").json()
        out[rid] = iso_ms(run["steps"][step]["started_at"])
    return out


def assert_schedule(times, limit, period):
    times = sorted(times)
    for i in range(len(times) - limit):
        assert times[i + limit] - times[i] >= period, (i, times)


def post_all(srv, paths, n):
    ids = []
    for i in range(n):
        for p in paths:
            r = srv.post(p, {"n": i})
            assert r.status == 202, r
            ids.append(r.json()["runs"][0])
    return ids


def test_throttle_shared_by_two_workflows(server):
    srv = server(workflows={"a": wf("a", top=SHARED), "b": wf("b", top=SHARED)})
    watch = Watch(srv)
    ids = post_all(srv, ["/a", "/b"], 3)
    for rid in ids:
        run = srv.wait_run(rid, timeout=30)
        assert run["status"] == "succeeded", run
        assert [s["id"] for s in run["steps"]] == ["prep", "call"]
    watch.stop()
    parked = [w for rid, w in watch.seen.items() if rid in ids]
    assert len(parked) >= 4, watch.seen  # 6 runs, 2 at once, none dropped
    for w in parked:
        assert w["for"] == "throttle" and w["step"] is None and w["until"]
    assert_schedule(starts(srv, ids).values(), 2, 1500)


def test_throttle_on_a_step(server):
    step = "    throttle: { key: \"'api'\", limit: 1, period: 1s }\n"
    srv = server(workflows={"s": wf("s", step=step)})
    watch = Watch(srv)
    ids = post_all(srv, ["/s"], 3)
    for rid in ids:
        run = srv.wait_run(rid, timeout=30)
        assert run["status"] == "succeeded", run
        assert run["steps"][1]["output"] in (0, 1, 2)
    watch.stop()
    parked = []
    for rid in ids:
        w = watch.seen.get(rid)
        if w:
            assert w["for"] == "throttle" and w["step"] == "call"
            parked.append(rid)
    assert len(parked) >= 2, watch.seen
    assert_schedule(starts(srv, ids, step=1).values(), 1, 1000)


def test_throttle_survives_sigkill(server):
    top = "throttle: { key: \"'k'\", limit: 1, period: 1s }\n"
    srv = server(workflows={"k": wf("k", top=top)})
    watch = Watch(srv)
    ids = post_all(srv, ["/k"], 4)
    wait_for(lambda: len([i for i in ids if i in watch.seen]) >= 3, 15,
             what="three runs parked")
    srv.kill()
    srv.start()
    ids.append(srv.post("/k", {"n": 9}).json()["runs"][0])
    for rid in ids:
        assert srv.wait_run(rid, timeout=30)["status"] == "succeeded"
    watch.stop()
    assert ids[-1] in watch.seen  # parked behind the restored starts
    assert_schedule(starts(srv, ids).values(), 1, 1000)


def test_check_throttle(server, tmp_path):
    srv = server(start=False)
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: { webhook: { path: /bad } }\n"
                   "throttle: { key: \"'x'\", limit: 0, period: 1s }\n"
                   "steps:\n  - id: a\n"
                   "    throttle: { limit: 1, period: 1s, burst: 2 }\n"
                   "    run: return 1\n")
    p = srv.cli("check", str(bad))
    assert p.returncode == 1
    out = p.stdout
    assert f"{bad}:3:" in out and "throttle.limit" in out, out
    assert f"{bad}:6:15: missing required key 'key'" in out, out
    assert f"{bad}:6:39: unknown key 'burst'" in out, out


BUSY = ("name: busy\non:\n  webhook:\n    path: /busy\nsteps:\n"
        "  - id: spin\n    run: |\n      local x = 0\n"
        "      for i = 1, 2000000 do x = x + i end\n      return x\n")


def test_throttle_holds_on_real_starts(server):
    """The limit holds on the starts really made (each throttled step's
    recorded started_at), not only on the times given: woken runs lag their
    time by a varying delay (here the worker is kept busy), and a start is
    only let through when the last `period` holds fewer than `limit` starts
    made. 12 runs, limit 3 per second: none dropped, arrival order kept from
    one window to the next. One worker: with two, two runs reaching the
    throttle at the same moment take their times in either order (CI saw
    the 9th run take the 3rd window's last time, the 8th the 4th's first)."""
    top = "throttle: { key: \"'real'\", limit: 3, period: 1s }\n"
    srv = server(workflows={"t": wf("t", top=top), "busy": BUSY},
                 args=["--workers", "1"])
    stop = threading.Event()

    def load():  # unthrottled runs competing for the workers
        while not stop.is_set():
            try:
                srv.post("/busy", {})
            except OSError:
                pass
            stop.wait(0.02)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        ids = post_all(srv, ["/t"], 12)
        runs = [srv.wait_run(rid, timeout=60) for rid in ids]
    finally:
        stop.set()
        loader.join(10)
    made = []
    for i, run in enumerate(runs):
        assert run["status"] == "succeeded", run
        assert [s["id"] for s in run["steps"]] == ["prep", "call"]
        assert run["steps"][1]["output"] == i  # none dropped or mixed up
        made.append(iso_ms(run["steps"][0]["started_at"]))
    # No window of 1 s holds more than 3 real starts.
    assert_schedule(made, 3, 1000)
    # Arrival order: a run starts no sooner than those `limit` before it.
    for i in range(3, len(made)):
        assert made[i] >= max(made[:i - 2]), (i, made)


def watched_runs(srv, path, n):
    """Posts n events to path under a Watch; returns (ids, watch) once
    every run succeeded and the watch stopped."""
    watch = Watch(srv)
    ids = post_all(srv, [path], n)
    for rid in ids:
        run = srv.wait_run(rid, timeout=30)
        assert run["status"] == "succeeded", run
    watch.stop()
    return ids, watch


def first_step_throttled(name, top, throttle):
    """A one-step workflow throttled at the top (top) and on its step."""
    return (f"name: {name}\non:\n  webhook:\n    path: /{name}\n{top}"
            f"steps:\n  - id: call\n    throttle: {throttle}\n"
            f"    run: return event.body.n\n")


def test_first_step_throttle_under_a_workflow_throttle(server):
    """A first step's own throttle holds when the workflow throttles too:
    the workflow's gate comes first, then the step's. The workflow's key
    differs per event (never binding here), the step's is shared: its
    starts are one per second, and a run parked at the step's gate names
    it. Run on both backends (a woken run's gate is read from the store)."""
    top = "throttle: { key: event.body.n, limit: 100, period: 2s }\n"
    srv = server(workflows={"t": first_step_throttled(
        "t", top, "{ key: \"'mailchimp'\", limit: 1, period: 1s }")})
    ids, watch = watched_runs(srv, "/t", 3)
    parked = [w for rid, w in watch.seen.items() if rid in ids]
    assert len(parked) >= 2, watch.seen
    for w in parked:
        assert w["for"] == "throttle" and w["step"] == "call", w
    assert_schedule(starts(srv, ids).values(), 1, 1000)


def test_both_throttles_bind_before_the_first_step(server):
    """Both gates binding: the workflow's lets two runs a second through,
    the first step's own one run per 1.5 s; the step's starts hold the
    tighter, and the runs parked at either gate all finish."""
    top = "throttle: { key: \"'w'\", limit: 2, period: 1s }\n"
    srv = server(workflows={"b": first_step_throttled(
        "b", top, "{ key: \"'x'\", limit: 1, period: 1500ms }")})
    ids, watch = watched_runs(srv, "/b", 4)
    gates = {step for rid, step in watch.gates if rid in ids}
    assert gates == {None, "call"}, watch.gates
    assert_schedule(starts(srv, ids).values(), 1, 1500)


def test_workflow_throttle_before_a_waiting_first_step(server):
    """A workflow's throttle holds when its first step waits (a sleep): the
    run's start is that step's, gated before it parks for its own wait and
    not again when the wait is over. The throttle was skipped for such a
    step: every run started at once. A gated sleep counts from the start
    the throttle let through: its "until" less the sleep is that start."""
    top = "throttle: { key: \"'nap'\", limit: 1, period: 1s }\n"
    srv = server(workflows={"n": (
        "name: n\non:\n  webhook:\n    path: /n\n" + top +
        "steps:\n  - id: nap\n    sleep: 500ms\n"
        "  - id: go\n    run: return event.body.n\n")})
    ids, watch = watched_runs(srv, "/n", 3)
    for rid in ids:
        run = srv.run(rid)
        assert [s["id"] for s in run["steps"]] == ["nap", "go"], run
    kinds = {(rid, step) for rid, step in watch.gates if rid in ids}
    assert len({rid for rid, step in kinds if step is None}) >= 2, watch.gates
    naps = [watch.sleeps[rid] - 500 for rid in ids if rid in watch.sleeps]
    assert len(naps) == 3, watch.sleeps
    assert_schedule(naps, 1, 1000)
