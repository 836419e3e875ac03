"""End-to-end tests for the command line (README.md, "Command line"): check,
run, runs, show, usage errors, --help and --version."""
import json
import os
import re
import sqlite3
import subprocess
import textwrap

import pytest

from conftest import BIN, ROOT, wait_for


def hf(*args, cwd=None, timeout=30, env=None):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env, stdin=subprocess.DEVNULL)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(out, fname):
    """[(line, col, message)] for every FILE:LINE:COL: message line about fname."""
    res = []
    for line in out.splitlines():
        m = re.match(r"^(.*?):(\d+):(\d+): (.+)$", line)
        if m and m.group(1).endswith(fname):
            res.append((int(m.group(2)), int(m.group(3)), m.group(4)))
    return res


VALID = """
name: valid
description: fine
on:
  webhook:
    path: /valid
    methods: [POST, PUT]
steps:
  - id: a
    run: |
      return { n = 1 }
  - id: b
    if: steps.a ~= nil
    with: { x: "${{ event.body.x }}" }
    retry: { attempts: 2, backoff: 1s }
    timeout: 5s
    run: return args.x
"""


# --- check ----------------------------------------------------------------------

def test_check_valid_dir_and_file(tmp_path):
    d = tmp_path / "wf"
    write(d / "valid.yml", VALID)
    write(d / "other.yaml", VALID.replace("name: valid", "name: other")
          .replace("/valid", "/other"))
    p = hf("check", d)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not problems(p.stdout + p.stderr, ".yml")
    p = hf("check", d / "valid.yml")
    assert p.returncode == 0, p.stdout + p.stderr


def test_check_yaml_syntax_error(tmp_path):
    f = write(tmp_path / "yaml_err.yml", """
        name: bad
        on:
          webhook:
            path: /x
        steps:
          - id: s
            run: return 1
           - id: t
    """)
    p = hf("check", f)
    assert p.returncode == 1
    probs = problems(p.stdout + p.stderr, "yaml_err.yml")
    assert probs, p.stdout + p.stderr
    assert probs[0][0] == 8, probs


def test_check_yaml_flow_error(tmp_path):
    f = write(tmp_path / "flow.yml", """
        name: bad
        on:
          webhook:
            path: /x
            methods: [POST
        steps:
          - id: s
            run: return 1
    """)
    p = hf("check", f)
    assert p.returncode == 1
    probs = problems(p.stdout + p.stderr, "flow.yml")
    assert probs, p.stdout + p.stderr
    # libyaml reports it where the sequence should have ended (line 5 or 6)
    assert probs[0][0] in (5, 6), probs


def test_check_unknown_key(tmp_path):
    f = write(tmp_path / "unknown.yml", """
        name: unknown
        on:
          webhook:
            path: /x
        steps:
          - id: s
            run: return 1
            retries: 3
    """)
    p = hf("check", f)
    assert p.returncode == 1
    probs = problems(p.stdout + p.stderr, "unknown.yml")
    assert any(l == 8 and c == 5 and "retries" in m for l, c, m in probs), probs


def test_check_unknown_top_level_key(tmp_path):
    f = write(tmp_path / "top.yml", """
        name: top
        on:
          webhook:
            path: /x
        stepz: []
        steps:
          - id: s
            run: return 1
    """)
    p = hf("check", f)
    assert p.returncode == 1
    probs = problems(p.stdout + p.stderr, "top.yml")
    assert any(l == 5 and c == 1 and "stepz" in m for l, c, m in probs), probs


def test_check_lua_syntax_error_line_in_yaml(tmp_path):
    f = write(tmp_path / "lua_err.yml", """
        name: luaerr
        on:
          webhook:
            path: /x
        steps:
          - id: ok
            run: return 1
          - id: broken
            run: |
              local a = 1
              local b = = 2
              return a + b
    """)
    p = hf("check", f)
    assert p.returncode == 1
    probs = problems(p.stdout + p.stderr, "lua_err.yml")
    assert len(probs) == 1, p.stdout + p.stderr
    line, col, msg = probs[0]
    assert line == 11, probs
    assert "broken" in msg or "=" in msg


def test_check_lua_syntax_error_in_if_and_with(tmp_path):
    f = write(tmp_path / "expr.yml", """
        name: expr
        on:
          webhook:
            path: /x
        if: event.body.x ==
        steps:
          - id: s
            with: { v: "${{ event.body. }}" }
            run: return 1
    """)
    p = hf("check", f)
    assert p.returncode == 1
    lines = {l for l, c, m in problems(p.stdout + p.stderr, "expr.yml")}
    assert {5, 8} <= lines, p.stdout + p.stderr


def test_check_schema_errors(tmp_path):
    f = write(tmp_path / "schema.yml", """
        name: Bad Name
        on:
          webhook:
            path: nopath
            respond: maybe
        steps:
          - id: a
            run: return 1
          - id: a
            run: return 2
          - id: c
            run: return 3
            script: x.lua
          - id: d
            timeout: soon
            run: return 4
    """)
    p = hf("check", f)
    assert p.returncode == 1
    probs = problems(p.stdout + p.stderr, "schema.yml")
    lines = {l for l, c, m in probs}
    # name, path, respond, duplicate id, run+script, bad duration
    assert {1, 4, 5}.issubset(lines), probs
    assert 9 in lines, probs          # the duplicate id
    assert 11 in lines or 13 in lines, probs
    assert 15 in lines, probs


def test_check_reports_every_file(tmp_path):
    d = tmp_path / "wf"
    write(d / "good.yml", VALID)
    write(d / "bad1.yml", "name: bad1\nsteps: 3\n")
    write(d / "bad2.yml", "name: [\n")
    p = hf("check", d)
    assert p.returncode == 1
    out = p.stdout + p.stderr
    assert problems(out, "bad1.yml") and problems(out, "bad2.yml"), out
    assert not problems(out, "good.yml"), out


def test_check_duplicate_names_and_paths_across_files(tmp_path):
    d = tmp_path / "wf"
    write(d / "one.yml", VALID)
    write(d / "two.yml", VALID)   # same name
    p = hf("check", d)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "valid" in p.stdout + p.stderr


def test_check_missing_path_fails(tmp_path):
    p = hf("check", tmp_path / "does-not-exist")
    assert p.returncode == 1


def test_check_bundled_workflows():
    dirs = [ROOT / "workflows"] + sorted((ROOT / "examples").glob("*/workflows"))
    dirs = [d for d in dirs if d.is_dir()]
    assert dirs
    for d in dirs:
        # `${NAME}` secrets are read at load time: give every referenced one a
        # dummy value, as a deployment would
        env = dict(os.environ)
        for f in list(d.glob("*.yml")) + list(d.glob("*.yaml")):
            for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", f.read_text()):
                env.setdefault(name, "dummy-secret-for-check")
        p = hf("check", d, env=env)
        assert p.returncode == 0, (d, p.stdout + p.stderr)


# --- run ------------------------------------------------------------------------------

RUNWF = """
name: r
on:
  webhook:
    path: /r
steps:
  - id: a
    run: |
      db.exec("CREATE TABLE IF NOT EXISTS t(v INTEGER)")
      db.exec("INSERT INTO t VALUES (?)", event.body.v)
      log.info("got", event.body.v)
      return { v = event.body.v, h = event.headers["x-thing"], m = event.method }
  - id: b
    if: false
    run: return 1
  - id: c
    run: |
      if event.body.fail then error("asked to fail") end
      return steps.a.v * 2
"""


def step_lines(out):
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def test_run_success(tmp_path):
    wf = write(tmp_path / "r.yml", RUNWF)
    ev = write(tmp_path / "ev.json", '{"v": 21}')
    data = tmp_path / "data.db"
    p = hf("run", wf, "--event", ev, "--header", "X-Thing: yes", "--data", data,
           cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    lines = step_lines(p.stdout)
    assert [l["step"] for l in lines] == ["a", "b", "c"]
    for l in lines:
        assert {"step", "status", "output", "error"} <= set(l)
    assert lines[0]["status"] == "succeeded"
    assert lines[0]["output"] == {"v": 21, "h": "yes", "m": "POST"}
    assert lines[0]["error"] is None
    assert lines[1]["status"] == "skipped" and lines[1]["output"] is None
    assert lines[2] == {**lines[2], "step": "c", "status": "succeeded", "output": 42,
                        "error": None}
    con = sqlite3.connect(data)
    try:
        assert con.execute("SELECT v FROM t").fetchall() == [(21,)]
    finally:
        con.close()


def test_run_failure_exit_1(tmp_path):
    wf = write(tmp_path / "r.yml", RUNWF)
    ev = write(tmp_path / "ev.json", '{"v": 1, "fail": true}')
    p = hf("run", wf, "--event", ev, "--data", tmp_path / "d.db", cwd=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    lines = step_lines(p.stdout)
    assert lines[-1]["step"] == "c" and lines[-1]["status"] == "failed"
    assert "asked to fail" in lines[-1]["error"]
    assert lines[-1]["output"] is None


def test_run_with_scripts_and_require(tmp_path):
    # scripts are looked up next to the workflows dir (./scripts) by default;
    # `--scripts DIR` is accepted too
    wf = write(tmp_path / "w" / "s.yml", """
        name: s
        on:
          webhook:
            path: /s
        steps:
          - id: s
            script: main.lua
            with: { n: "${{ event.body.n }}" }
    """)
    write(tmp_path / "scripts" / "main.lua", "return require('lib').inc(args.n)\n")
    write(tmp_path / "scripts" / "lib.lua", "return { inc = function(x) return x + 1 end }\n")
    ev = write(tmp_path / "ev.json", '{"n": 41}')
    p = hf("run", wf, "--event", ev, "--scripts", tmp_path / "scripts",
           "--data", tmp_path / "d.db", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert step_lines(p.stdout)[0]["output"] == 42


def test_run_invalid_workflow_exit_1(tmp_path):
    wf = write(tmp_path / "bad.yml", "name: bad\nsteps: 3\n")
    ev = write(tmp_path / "ev.json", "{}")
    p = hf("run", wf, "--event", ev, "--data", tmp_path / "d.db", cwd=tmp_path)
    assert p.returncode == 1
    assert problems(p.stdout + p.stderr, "bad.yml"), p.stderr


def test_run_missing_event_file_exit_1(tmp_path):
    wf = write(tmp_path / "r.yml", RUNWF)
    p = hf("run", wf, "--event", tmp_path / "nope.json", cwd=tmp_path)
    assert p.returncode == 1


# --- runs / show against a server's state ------------------------------------------------

def test_runs_and_show_against_server_state(server):
    srv = server(workflows={"r": RUNWF})
    ok = srv.post("/r", {"v": 2}).json()["runs"][0]
    srv.wait_run(ok)
    bad = srv.post("/r", {"v": 3, "fail": True}).json()["runs"][0]
    srv.wait_run(bad)
    st = ["--state", str(srv.state)]

    def check_cli():
        p = srv.cli("runs", *st)
        assert p.returncode == 0, p.stderr
        assert ok in p.stdout and bad in p.stdout
        assert p.stdout.index(bad) < p.stdout.index(ok)          # newest first
        p = srv.cli("runs", "--status", "failed", *st)
        assert p.returncode == 0 and bad in p.stdout and ok not in p.stdout
        p = srv.cli("runs", "--workflow", "nobody", *st)
        assert p.returncode == 0 and ok not in p.stdout and bad not in p.stdout
        p = srv.cli("runs", "--limit", "1", "--json", *st)
        assert p.returncode == 0, p.stderr
        assert [r["id"] for r in json.loads(p.stdout)["runs"]] == [bad]
        p = srv.cli("runs", "--workflow", "r", "--status", "succeeded", "--json", *st)
        assert [r["id"] for r in json.loads(p.stdout)["runs"]] == [ok]
        p = srv.cli("show", bad, *st)
        assert p.returncode == 0, p.stderr
        assert bad in p.stdout and "failed" in p.stdout and "asked to fail" in p.stdout
        p = srv.cli("show", "run_nope", *st)
        assert p.returncode == 1

    check_cli()
    # --json equals the admin API's JSON for the same run / list
    for rid in (ok, bad):
        p = srv.cli("show", rid, "--json", *st)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout) == srv.run(rid)
    p = srv.cli("runs", "--json", "--workflow", "r", *st)
    assert json.loads(p.stdout) == srv.api("GET", "/api/runs?workflow=r").json()
    p = srv.cli("runs", "--json", "--status", "failed", "--limit", "5", *st)
    assert json.loads(p.stdout) == srv.api("GET", "/api/runs?status=failed&limit=5").json()

    # and the same after the server stopped
    api_view = srv.run(bad)
    assert srv.stop() == 0
    check_cli()
    p = srv.cli("show", bad, "--json", *st)
    assert json.loads(p.stdout) == api_view


def test_runs_state_from_env(server):
    srv = server(workflows={"r": RUNWF})
    rid = srv.post("/r", {"v": 5}).json()["runs"][0]
    srv.wait_run(rid)
    env = dict(srv.env, HOOKFLOW_STATE=str(srv.state))
    p = hf("runs", "--json", env=env)
    assert p.returncode == 0, p.stderr
    assert [r["id"] for r in json.loads(p.stdout)["runs"]] == [rid]


def test_runs_missing_state_db(tmp_path):
    p = hf("runs", "--state", tmp_path / "nothing.db", cwd=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert not (tmp_path / "nothing.db").exists()


# --- usage -------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["runs", "--bogus"],
    ["serve", "--no-such-flag"],
    ["check", "--frobnicate"],
    ["show"],
    ["run"],
    ["run", "wf.yml"],                   # --event is required
    ["runs", "--limit"],                 # missing value
    ["runs", "--limit", "many"],
    ["runs", "--status", "sleeping"],
    ["show", "--state"],
    ["nosuchcommand"],
    [],
])
def test_bad_usage_exit_2(tmp_path, args):
    p = hf(*args, cwd=tmp_path, timeout=10)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), args


def test_help_and_version():
    p = hf("--help")
    assert p.returncode == 0
    out = p.stdout + p.stderr
    for cmd in ("serve", "check", "run", "runs", "show", "replay", "retry", "deliveries"):
        assert cmd in out, cmd
    p = hf("--version")
    assert p.returncode == 0
    assert re.search(r"hookflow \d+\.\d+", p.stdout), p.stdout


def test_run_shows_emits_without_sending(tmp_path):
    wf = write(tmp_path / "w" / "emit.yml", """
        name: emit
        on:
          webhook:
            path: /emit
        steps:
          - id: notify
            run: |
              return webhook.emit("http://127.0.0.1:9/never", {ticket = event.body.id})
        """)
    ev = tmp_path / "ev.json"
    ev.write_text('{"id": 7}')
    p = hf("run", wf, "--event", ev, "--data", tmp_path / "d.db")
    assert p.returncode == 0, p.stderr
    line = json.loads(p.stdout.strip())
    assert line["status"] == "succeeded"
    assert line["emits"] == [{"id": line["output"],
                              "url": "http://127.0.0.1:9/never",
                              "payload": {"ticket": 7}}]


# --- option tables: checked numbers, generated --help ------------------------------------

@pytest.mark.parametrize("flag", ["--workers", "--http-threads"])
def test_serve_refuses_a_number_with_trailing_garbage(tmp_path, flag):
    p = hf("serve", flag, "4x", "--state", tmp_path / "s.db", cwd=tmp_path, timeout=10)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert flag in p.stderr and "'4x'" in p.stderr and "integer" in p.stderr, p.stderr
    assert not (tmp_path / "s.db").exists()


def test_serve_refuses_a_bad_number_from_the_environment(tmp_path):
    env = dict(os.environ, HOOKFLOW_WORKERS="4x")
    p = hf("serve", cwd=tmp_path, env=env, timeout=10)
    assert p.returncode == 2 and "HOOKFLOW_WORKERS" in p.stderr, p.stderr


@pytest.mark.parametrize("cmd,flags", [
    ("serve", ["--listen", "--workflows", "--scripts", "--state", "--data", "--workers",
               "--max-body", "--admin-token", "--sync", "--max-queue", "--drain-timeout",
               "--retain", "--http-threads", "--data-sync", "--log-format",
               "--max-backlog"]),
    ("runs", ["--workflow", "--status", "--limit", "--json", "--state", "--follow"]),
])
def test_command_help_lists_its_options(cmd, flags):
    p = hf(cmd, "--help", timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"usage: hookflow {cmd}"), p.stdout
    for flag in flags:
        assert re.search(rf"^\s+{flag}\b", p.stdout, re.M), (flag, p.stdout)


def test_state_backend_is_chosen_by_the_state_value(tmp_path):
    db = tmp_path / "s.db"
    sqlite3.connect(db).close()  # an existing file that is no hookflow database yet
    p = hf("runs", "--state", "sqlite:%s" % db, "--json", timeout=10)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"runs": []}
    # A PostgreSQL URL reaches the PostgreSQL backend, which says it cannot
    # connect without echoing the URL (it may hold a password), rather than
    # being taken for a missing file.
    p = hf("runs", "--state", "postgres://u:pw@127.0.0.1:1/x", timeout=10)
    assert p.returncode == 1
    assert "cannot connect to the state database" in p.stderr, p.stderr
    assert "pw" not in p.stderr
    (tmp_path / "workflows").mkdir()
    p = hf("serve", "--state", "postgresql://127.0.0.1:1/x", "--listen",
           "127.0.0.1:0", cwd=tmp_path, timeout=10)
    assert p.returncode == 1, p.stderr
    assert "cannot connect to the state database" in p.stderr, p.stderr
