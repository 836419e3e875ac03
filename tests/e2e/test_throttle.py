"""End-to-end tests for `throttle: {key, limit, period}` (CONTRACT §6,
docs/reference.md, "throttle"): at most `limit` starts per `period` per key,
the key shared by two workflows, the rest parked (status waiting, for
throttle) and none dropped; at step level; across a SIGKILL.

What is checked is each start's reserved time: a run that started at once
started at its reservation (runs.started_at), a parked one shows it as its
waiting.until while it waits (the test watches the waiting runs).
Any `limit` + 1 consecutive reservations span at least `period`: a property
of the schedule, not a measured duration. Every wait is bounded."""
import datetime
import threading

from conftest import state_rows, wait_for


class Watch:
    """Records the waiting runs' "waiting" (GET /api/runs?status=waiting)
    until stopped."""

    def __init__(self, srv):
        self.srv, self.seen, self.stop_ = srv, {}, threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop_.is_set():
            try:
                r = self.srv.api("GET", "/api/runs?status=waiting&limit=500")
                if r.status == 200:
                    for run in r.json()["runs"]:
                        self.seen[run["id"]] = run["waiting"]
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


def reservations(srv, ids, watch):
    """{run_id: reserved start (ms)}: a parked run's until, else its
    started_at."""
    out = {}
    for rid in ids:
        w = watch.seen.get(rid)
        if w and w["for"] == "throttle":
            out[rid] = iso_ms(w["until"])
        else:
            out[rid] = state_rows(
                srv.state, "SELECT started_at FROM runs WHERE id = ?", rid)[0][0]
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
    assert_schedule(reservations(srv, ids, watch).values(), 2, 1500)


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
            parked.append(iso_ms(w["until"]))
    assert len(parked) >= 2, watch.seen
    assert_schedule(parked, 1, 1000)


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
    assert_schedule(reservations(srv, ids, watch).values(), 1, 1000)


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
