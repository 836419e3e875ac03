"""A workflow file that does not load is never silent: its webhook path answers
503 with Retry-After (the sender retries), /api/workflows lists the problem
with its line and column, /metrics counts the failed files, the dashboard shows
them and `serve --strict` refuses to start. Also `hookflow replay` against the
versions stored in the state database (no workflows directory, no secrets) and
`hookflow run` without the secrets."""
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess

import pytest

from conftest import BIN, state_rows, wait_for

SECRET = "hf-load-errors-secret"


def wf(name, path, body="return { ok = true }", extra="", verify=""):
    return (f"name: {name}\non:\n  webhook:\n    path: {path}\n{verify}{extra}"
            f"steps:\n  - id: s\n    run: {body}\n")


def github(name, path, var):
    return wf(name, path, verify=("    verify:\n      scheme: github\n"
                                  f"      secret: ${{{var}}}\n"))


def signed(body):
    raw = json.dumps(body).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"Content-Type": "application/json", "X-Hub-Signature-256": sig,
                 "X-GitHub-Event": "push"}


def env_without(*names):
    env = dict(os.environ)
    for n in names:
        env.pop(n, None)
    return env


def gauge(srv):
    m = re.search(r"^hookflow_workflow_load_errors (\d+)$", srv.get("/metrics").body, re.M)
    assert m, "no hookflow_workflow_load_errors in /metrics"
    return int(m.group(1))


def errors(srv):
    r = srv.api("GET", "/api/workflows")
    assert r.status == 200, r
    return r.json()["errors"]


def cli(*args, env=None, cwd=None, timeout=30):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env, cwd=cwd)


# --- at start-up ---------------------------------------------------------------------

def test_unset_secret_at_start_answers_503_and_is_listed(server):
    srv = server(workflows={"gh": github("gh", "/gh", "HF_LE_UNSET"),
                            "ok": wf("ok", "/ok")},
                 env={"HF_LE_UNSET": ""})
    r = srv.post("/gh", {"a": 1})
    assert r.status == 503, r
    assert int(r.headers["retry-after"]) > 0
    assert "failed to load" in r.json()["error"]
    # no file path or message reaches the sender
    assert "HF_LE_UNSET" not in r.body and ".yml" not in r.body
    assert srv.post("/gh/", {}).status == 503  # a trailing '/' as for routes
    assert srv.post("/ok", {}).status == 202
    assert srv.post("/nothing", {}).status == 404
    (e,) = errors(srv)
    assert e["file"].endswith("gh.yml") and e["path"] == "/gh"
    assert e["line"] == 7 and e["col"] > 0, e
    assert "HF_LE_UNSET" in e["message"]
    names = [w["name"] for w in srv.api("GET", "/api/workflows").json()["workflows"]]
    assert names == ["ok"]
    assert gauge(srv) == 1
    assert f"{e['file']}:7:{e['col']}:" in srv.stderr()
    assert "1 workflow file failed to load" in srv.stderr()
    assert 'hookflow_events_total{workflow="",status="503"}' in srv.get("/metrics").body


BROKEN = {
    # YAML syntax error after the path: the path is still read
    "yaml": ("name: yaml\non:\n  webhook:\n    path: /yaml\n"
             "steps:\n  - id: s\n    run: [unclosed\n", 8),
    # an unknown key (schema)
    "schema": ("name: schema\non:\n  webhook:\n    path: /schema\n    bogus: 1\n"
               "steps:\n  - id: s\n    run: return 1\n", 5),
    # Lua syntax error in inline code: the line counted in the YAML file
    "lua": ("name: lua\non:\n  webhook:\n    path: /lua\nsteps:\n  - id: s\n"
            "    run: |\n      local x = = 1\n", 8),
    # the path as a quoted scalar, the broken part before it is in another key
    "quoted": ('name: quoted\ntimeout: soon\non:\n  webhook:\n    path: "/quoted"\n'
               "steps:\n  - id: s\n    run: return 1\n", 2),
}


def test_each_kind_of_load_error_answers_503(server):
    wfs = {name: text for name, (text, _) in BROKEN.items()}
    wfs["garbage"] = "::: not [ yaml\n"
    wfs["ok"] = wf("ok", "/ok")
    srv = server(workflows=wfs)
    listed = errors(srv)
    for name, (_, line) in BROKEN.items():
        r = srv.post(f"/{name}", {})
        assert r.status == 503 and "retry-after" in r.headers, (name, r)
        mine = [e for e in listed if e["file"].endswith(f"/{name}.yml")]
        assert mine, (name, listed)
        assert mine[0]["line"] == line and mine[0]["col"] > 0, (name, mine)
        assert mine[0]["path"] == f"/{name}"
    # a file whose path cannot be read is listed too; no path turns 503
    garbage = [e for e in listed if e["file"].endswith("/garbage.yml")]
    assert garbage and garbage[0]["path"] is None and garbage[0]["line"] > 0
    assert srv.post("/garbage", {}).status == 404
    assert gauge(srv) == len(BROKEN) + 1
    assert srv.post("/ok", {}).status == 202


def test_strict_refuses_to_start_while_a_file_fails(tmp_path):
    wdir = tmp_path / "workflows"
    wdir.mkdir()
    (wdir / "bad.yml").write_text(BROKEN["schema"][0])
    (wdir / "ok.yml").write_text(wf("ok", "/ok"))
    base = ["serve", "--listen", "127.0.0.1:0", "--workflows", wdir,
            "--scripts", tmp_path / "scripts", "--state", tmp_path / "s.db",
            "--data", tmp_path / "d.db", "--admin-token", "t", "--strict"]
    p = cli(*base, timeout=20)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert re.search(r"bad\.yml:5:\d+: ", p.stderr), p.stderr
    assert "1 workflow file failed to load (--strict)" in p.stderr
    assert "listening" not in p.stderr
    # without a failing file it starts
    (wdir / "bad.yml").unlink()
    proc = subprocess.Popen([BIN, *map(str, base)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        for line in proc.stderr:
            if "listening on" in line:
                break
        assert "listening on" in line
    finally:
        proc.terminate()
        proc.wait(20)
    assert proc.returncode == 0


# --- at reload ------------------------------------------------------------------------

def test_reload_that_breaks_files_and_the_fix(server):
    srv = server(workflows={"a": wf("a", "/a")})
    assert srv.post("/a", {}).status == 202
    assert errors(srv) == [] and gauge(srv) == 0
    # a new file that does not load, and a loaded one that breaks
    srv.write_workflow("b", "name: b\non:\n  webhook:\n    path: /b\n"
                            "steps:\n  - id: s\n    run: |\n      if then\n")
    srv.write_workflow("a", wf("a", "/a", extra="retries: 3\n"))
    wait_for(lambda: len(errors(srv)) == 2, timeout=10, what="the reload")
    r = srv.post("/b", {})
    assert r.status == 503 and r.headers.get("retry-after"), r
    # the broken file's previous version stays active (contract: reload)
    assert srv.post("/a", {}).status == 202
    by_file = {os.path.basename(e["file"]): e for e in errors(srv)}
    assert by_file["b.yml"]["line"] == 8 and by_file["b.yml"]["col"] > 0
    assert by_file["a.yml"]["line"] == 5 and "retries" in by_file["a.yml"]["message"]
    assert gauge(srv) == 2
    # SIGHUP does not forget them either
    before = srv.stderr().count("2 workflow files failed to load")
    srv.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: srv.stderr().count("2 workflow files failed to load") > before,
             timeout=10, what="the SIGHUP reload")
    assert srv.post("/b", {}).status == 503
    # fixing both: 202 and no errors
    srv.write_workflow("b", wf("b", "/b"))
    srv.write_workflow("a", wf("a", "/a"))
    wait_for(lambda: errors(srv) == [], timeout=10, what="the fixed reload")
    r = srv.post("/b", {})
    assert r.status == 202, r
    assert srv.wait_run(r.json()["runs"][0])["status"] == "succeeded"
    assert gauge(srv) == 0


def test_path_parameters_of_a_failed_file(server):
    srv = server(workflows={"t": "name: t\non:\n  webhook:\n    path: /tickets/{id}\n"
                                 "    nope: 1\nsteps:\n  - id: s\n    run: return 1\n"})
    assert srv.post("/tickets/42", {}).status == 503
    assert srv.post("/tickets", {}).status == 404
    assert srv.post("/tickets/42/x", {}).status == 404


# --- the dashboard ---------------------------------------------------------------------

def test_dashboard_shows_the_failed_files(server):
    import webdriver
    if not webdriver.available():
        pytest.fail("the dashboard tests need Chromium (apt-get install chromium "
                    "chromium-driver)")
    srv = server(workflows={"ok": wf("ok", "/ok"), "bad": BROKEN["lua"][0]})
    with webdriver.Browser() as b:
        b.get(f"http://127.0.0.1:{srv.port}/ui")
        b.wait_css("#token").send_keys(srv.token)
        b.find("#login-btn").click()
        b.wait_css("#workflows-table")
        b.wait_text("#load-errors", "bad.yml:8:")
        text = b.find("#load-errors").text
        assert "503" in text and "/lua" in text
        # the page keeps its CSP: no inline script was needed
        assert b.js("return document.querySelectorAll('script:not([src])').length") == 0


# --- replay against the stored versions ------------------------------------------------

def test_cli_replay_uses_stored_versions_without_secrets(server, tmp_path):
    srv = server(workflows={"gh": github("gh", "/gh", "HF_LE_SECRET"),
                            "gate": wf("gate", "/gate", extra="if: event.body.go == true\n")},
                 env={"HF_LE_SECRET": SECRET})
    raw, headers = signed({"n": 1})
    r = srv.post("/gh", raw, headers=headers)
    assert r.status == 202, r
    ev = r.json()["event"]
    first = srv.wait_run(r.json()["runs"][0])
    # elsewhere, no workflows directory and no secret in the environment
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = cli("replay", ev, "--state", srv.state, cwd=elsewhere,
            env=env_without("HF_LE_SECRET", "HOOKFLOW_WORKFLOWS"))
    assert p.returncode == 0, p.stderr
    (rid,) = p.stdout.split()
    run = srv.wait_run(rid, timeout=15)
    assert run["status"] == "succeeded" and run["event"] == ev
    assert run["version"] == first["version"] and run["workflow"] == "gh"
    # --json prints the API's answer
    p = cli("replay", ev, "--state", srv.state, "--json", cwd=elsewhere,
            env=env_without("HF_LE_SECRET"))
    assert p.returncode == 0 and json.loads(p.stdout)["event"] == ev, p.stderr

    # an event that no stored workflow matches: exit 1, and it says so
    r = srv.post("/gate", {"go": False})
    assert r.status == 202 and r.json()["runs"] == [], r
    p = cli("replay", r.json()["event"], "--state", srv.state, cwd=elsewhere,
            env=env_without("HF_LE_SECRET"))
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "no workflow matched" in p.stderr and p.stdout == ""
    p = cli("replay", "ev_nope", "--state", srv.state, cwd=elsewhere)
    assert p.returncode == 1 and "no event 'ev_nope'" in p.stderr


def test_cli_replay_takes_the_newest_stored_version(server, tmp_path):
    srv = server(workflows={"v": wf("v", "/v", body="return 'one'")})
    r1 = srv.post("/v", {})
    srv.wait_run(r1.json()["runs"][0])
    srv.write_workflow("v", wf("v", "/v", body="return 'two'"))

    def second():
        r = srv.post("/v", {})
        run = srv.wait_run(r.json()["runs"][0])
        return run if run["steps"][0]["output"] == "two" else None
    two = wait_for(second, timeout=10, what="the new version")
    # now the server stops: the CLI works on the database alone
    assert srv.stop() == 0
    p = cli("replay", r1.json()["event"], "--state", srv.state, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (rid,) = p.stdout.split()
    if str(srv.state).startswith(("postgres://", "postgresql://")):
        ((version,),) = state_rows(srv.state, "SELECT version FROM runs WHERE id = ?",
                                   rid)
    else:
        ((version,),) = state_rows(srv.state, "SELECT v.version FROM runs r JOIN"
                                   " workflow_versions v ON v.vid = r.vid WHERE r.id = ?",
                                   rid)
    assert version == two["version"]
    srv.start()
    run = srv.wait_run(rid, timeout=15)
    assert run["status"] == "succeeded" and run["steps"][0]["output"] == "two"


def test_cli_replay_follows_the_workflows_the_server_loaded(server, tmp_path):
    """The server stores the versions it loads: a fixed `if:` matches at the
    next replay although no run of it exists yet, a removed workflow no
    longer does."""
    srv = server(workflows={"gate": wf("gate", "/gate", extra="if: event.body.go == true\n")})
    r = srv.post("/gate", {"go": "yes"})
    assert r.status == 202 and r.json()["runs"] == [], r
    ev = r.json()["event"]

    def replay():
        return cli("replay", ev, "--state", srv.state, cwd=tmp_path)
    p = replay()
    assert p.returncode == 1 and "no workflow matched" in p.stderr, p.stderr
    srv.write_workflow("gate", wf("gate", "/gate", extra="if: event.body.go ~= nil\n"))
    p = wait_for(lambda: (lambda p: p if p.returncode == 0 else None)(replay()),
                 timeout=10, what="the fixed version to be stored")
    (rid,) = p.stdout.split()
    assert srv.wait_run(rid)["status"] == "succeeded"
    (srv.workflows / "gate.yml").unlink()
    wait_for(lambda: srv.post("/gate", {}).status == 404, timeout=10, what="the removal")
    wait_for(lambda: replay().returncode == 1, timeout=10,
             what="the removed workflow to stop matching")


# --- run without secrets -----------------------------------------------------------------

def test_run_needs_no_secrets(tmp_path):
    f = tmp_path / "gh.yml"
    f.write_text(github("gh", "/gh", "HF_LE_NOT_SET"))
    ev = tmp_path / "ev.json"
    ev.write_text('{"a": 1}')
    p = cli("run", f, "--event", ev, "--data", tmp_path / "d.db", cwd=tmp_path,
            env=env_without("HF_LE_NOT_SET"))
    assert p.returncode == 0, p.stderr
    (line,) = p.stdout.splitlines()
    assert json.loads(line)["status"] == "succeeded"
    # as `check` (serve still needs the secret: its path answers 503 meanwhile)
    p = cli("check", f, env=env_without("HF_LE_NOT_SET"))
    assert p.returncode == 0, p.stderr


def test_files_that_never_end_are_refused_not_read_forever(tmp_path):
    """A workflow path that names /dev/zero (a symlink to it) is refused as
    too large after 1 MiB, as a large regular file is, rather than read
    until the memory is gone; so is `run --event /dev/zero` past the
    64 MiB that any file read whole may be (HF_MAX_READ_FILE)."""
    zero = tmp_path / "zero.yml"
    zero.symlink_to("/dev/zero")
    p = subprocess.run([BIN, "check", str(zero)], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p
    assert f"{zero}: file is too large (at most 1048576 bytes)" in \
        p.stdout + p.stderr, p
    good = tmp_path / "ok.yml"
    good.write_text(wf("ok", "/ok"))
    p = subprocess.run([BIN, "run", str(good), "--event", "/dev/zero",
                        "--data", str(tmp_path / "d.db")],
                       capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p
    assert "hookflow run: cannot read '/dev/zero': File too large" in \
        p.stderr, p


def test_deep_nesting_is_refused_before_it_is_built(tmp_path, server):
    """A file of flow collections nested about 500,000 deep (just under the
    1 MiB a workflow file may be) is refused as nested too deeply, at the
    first collection past HF_YAML_MAX_DEPTH (96 levels, the document's own
    mapping the first), by check, check --json and serve alike. libyaml's
    scanner takes time quadratic in the depth (minutes at this size), so
    without the first pass over its events these runs would not end within
    their bounds."""
    depth = 500_000
    text = wf("deep", "/deep") + "x: " + "[" * depth + "]" * depth + "\n"
    f = tmp_path / "deep.yml"
    f.write_text(text)
    line = text.count("\n", 0, text.index("x: ")) + 1
    p = cli("check", f, timeout=120)
    assert p.returncode == 1, p
    assert f"{f}:{line}:{3 + 96}: nested too deeply (at most 96 levels)" \
        in p.stdout + p.stderr, p
    p = cli("check", "--json", f, timeout=120)
    assert "document is nested too deeply" in p.stdout + p.stderr, p
    srv = server(workflows={"deep": text, "ok": wf("ok", "/ok")})
    assert srv.post("/ok", {}).status == 202
    assert srv.post("/deep", {}).status == 503
    assert any("nested too deeply" in json.dumps(e) for e in errors(srv)), \
        errors(srv)
