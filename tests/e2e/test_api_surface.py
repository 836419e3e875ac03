"""End-to-end tests of the reserved paths' edges (README.md, "HTTP"): the
methods each path serves, the admin API's query arguments and its token."""
import os

import pytest

from test_http import SIMPLE


def allow_of(r):
    return {m.strip() for m in r.headers["allow"].split(",")}


# --- wrong methods: 405 with Allow -------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("DELETE", "/metrics"), ("POST", "/metrics"), ("POST", "/healthz"),
    ("TRACE", "/ui"), ("DELETE", "/ui/app.js"), ("PUT", "/ui/app.css"),
    ("POST", "/"),
])
def test_public_reserved_paths_refuse_other_methods(server, method, path):
    srv = server(workflows={"simple": SIMPLE})
    r = srv.request(method, path)
    assert r.status == 405, r
    assert allow_of(r) == {"GET", "HEAD"}
    assert isinstance(r.json()["error"], str)
    assert "not allowed" in r.json()["error"]
    r = srv.request("HEAD", path)
    assert r.status in (200, 302), r


@pytest.mark.parametrize("method,path,allow", [
    ("DELETE", "/api/runs", {"GET", "HEAD"}),
    ("OPTIONS", "/api/runs", {"GET", "HEAD"}),
    ("POST", "/api/runs", {"GET", "HEAD"}),
    ("PUT", "/api/workflows", {"GET", "HEAD"}),
    ("GET", "/api/runs/x/retry", {"POST"}),
    ("DELETE", "/api/runs/x/cancel", {"POST"}),
    ("GET", "/api/events/x/replay", {"POST"}),
    ("POST", "/api/deliveries/x", {"GET", "HEAD"}),
    ("HEAD", "/api/deliveries/x/retry", {"POST"}),
])
def test_api_wrong_method_is_405_with_allow(server, method, path, allow):
    srv = server(workflows={"simple": SIMPLE})
    r = srv.api(method, path)
    assert r.status == 405, r
    assert allow_of(r) == allow
    if method != "HEAD":
        assert "not allowed" in r.json()["error"]
    # Without the token: 401 first, the routes are not revealed.
    r = srv.request(method, path)
    assert r.status == 401, r
    assert "allow" not in r.headers


def test_api_unknown_path_stays_404(server):
    srv = server(workflows={"simple": SIMPLE})
    for method in ("GET", "DELETE"):
        r = srv.api(method, "/api/nothing")
        assert r.status == 404, r
        assert "allow" not in r.headers
    assert srv.api("HEAD", "/api/runs").status == 200


# --- limit: a whole number from 1 to 1000 (HF_LIST_MAX) ----------------------

@pytest.mark.parametrize("path", ["/api/runs", "/api/deliveries"])
def test_limit_not_a_whole_number_in_range_is_400(server, path):
    srv = server(workflows={"simple": SIMPLE})
    for bad in ("5abc", "-1", "0", "99999999999999999999", "1001", "+5",
                "%205", "1.0", "0x10"):
        r = srv.api("GET", f"{path}?limit={bad}")
        assert r.status == 400, (bad, r)
        err = r.json()["error"]
        assert "limit" in err and "1 to 1000" in err, (bad, err)
    for ok in ("1", "1000", "007", ""):
        r = srv.api("GET", f"{path}?limit={ok}")
        assert r.status == 200, (ok, r)


def test_limit_is_honoured(server):
    srv = server(workflows={"simple": SIMPLE})
    for _ in range(3):
        assert srv.post("/simple", {}).status == 202
    assert len(srv.api("GET", "/api/runs?limit=2").json()["runs"]) == 2
    assert len(srv.api("GET", "/api/runs?limit=1000").json()["runs"]) == 3


# --- status: one of those the list accepts, each named when refused ----------

def test_status_filter_names_exactly_what_it_accepts(server):
    srv = server(workflows={"simple": SIMPLE})
    lists = {
        "/api/runs": ["queued", "running", "succeeded", "failed", "waiting",
                      "cancelled"],
        "/api/deliveries": ["pending", "delivered", "failed"],
    }
    for path, accepted in lists.items():
        r = srv.api("GET", f"{path}?status=bogus")
        assert r.status == 400, (path, r)
        err = r.json()["error"]
        assert "'bogus'" in err, err
        named = err[err.index("(expected ") + 10:err.rindex(")")]
        assert named.replace(" or ", ", ").split(", ") == accepted, err
        for status in accepted:
            r = srv.api("GET", f"{path}?status={status}")
            assert r.status == 200, (path, status, r)


# --- the admin token ---------------------------------------------------------

def test_bearer_scheme_is_case_insensitive(server):
    srv = server(workflows={"simple": SIMPLE})
    for auth in ("bearer test-token", "BEARER test-token", "bEaReR test-token",
                 "Bearer  test-token"):
        r = srv.get("/api/workflows", headers={"Authorization": auth})
        assert r.status == 200, (auth, r)
    for auth in ("bearer", "bearer ", "Bearertest-token", "Basic test-token",
                 "bearer test-token2", "bearer test-toke", "Bearer  "):
        r = srv.get("/api/workflows", headers={"Authorization": auth})
        assert r.status == 401, (auth, r)


@pytest.mark.parametrize("token", [" ", "   ", "\t", " secret", "secret ",
                                   "\tsecret"])
@pytest.mark.parametrize("how", ["flag", "env"])
def test_blank_or_padded_admin_token_is_refused_at_start(tmp_path, token, how):
    from test_cli import hf
    (tmp_path / "wf").mkdir()
    args = ["serve", "--listen", "127.0.0.1:0", "--workflows", tmp_path / "wf",
            "--state", tmp_path / "s.db"]
    env = None
    if how == "flag":
        args += ["--admin-token", token]
    else:
        env = dict(os.environ, HOOKFLOW_ADMIN_TOKEN=token)
    p = hf(*args, cwd=tmp_path, timeout=10, env=env)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "--admin-token" in p.stderr and "whitespace" in p.stderr, p.stderr
    assert "listening" not in p.stderr


# --- summary=1: the runs list without steps (the dashboard's Workflows page) --

BIG = """
name: big
on:
  webhook:
    path: /big
steps:
  - id: one
    run: |
      log.info(string.rep("l", 50000))
      return { blob = string.rep("x", 200000) }
"""


def test_runs_summary_leaves_steps_and_history_out(server):
    srv = server(workflows={"big": BIG})
    ids = [srv.post("/big", {}).json()["runs"][0] for _ in range(3)]
    for run_id in ids:
        srv.wait_run(run_id)
    full = srv.api("GET", "/api/runs?limit=1000")
    summary = srv.api("GET", "/api/runs?limit=1000&summary=1")
    assert full.status == 200 and summary.status == 200
    assert len(full.body) > 600000
    assert len(summary.body) < 3000, len(summary.body)
    runs = summary.json()["runs"]
    assert [r["id"] for r in runs] == [r["id"] for r in full.json()["runs"]]
    for r, f in zip(runs, full.json()["runs"]):
        assert "steps" not in r and "history" not in r
        assert f["steps"] and "history" in f
        assert {k: v for k, v in f.items() if k not in ("steps", "history")} == r
    assert srv.api("GET", "/api/runs?summary=0").body == \
        srv.api("GET", "/api/runs").body
    r = srv.api("GET", "/api/runs?summary=yes")
    assert r.status == 400 and "0 or 1" in r.json()["error"], r


def test_dashboard_counts_runs_from_the_summary_list(server):
    srv = server(workflows={"simple": SIMPLE})
    js = srv.get("/ui/app.js").body
    asks = [m for m in js.split('"/api/runs')[1:] if m.startswith("?limit=1000")]
    assert asks, "the Workflows page's runs list"
    assert all(m.startswith("?limit=1000&summary=1") for m in asks), asks
