"""End-to-end tests for `hookflow check`'s unknown-global warning
(docs/reference.md, "Unknown globals"): a read of a global the sandbox does not
define, in inline `run:`, `if:`, workflow-level expressions, script files and
the modules they require, is a warning at its FILE:LINE:COL with the nearest
global as a suggestion; warnings leave the exit code alone; correct code,
every bundled workflow and every bundled script among them, gives none."""
import re
import shutil
import subprocess
import textwrap

from conftest import BIN, ROOT

WARN = re.compile(r"^(.*?):(\d+):(\d+): warning: (.+)$")


def hf(*args, cwd=None):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True,
                          timeout=60, cwd=cwd, stdin=subprocess.DEVNULL)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def warnings(out):
    """[(file, line, col, message)] of every warning line."""
    res = []
    for line in out.splitlines():
        m = WARN.match(line)
        if m:
            res.append((m.group(1), int(m.group(2)), int(m.group(3)),
                        m.group(4)))
    return res


def test_typo_in_inline_run(tmp_path):
    f = write(tmp_path / "wf" / "a.yml", """
        name: a
        on:
          webhook:
            path: /a
        steps:
          - id: one
            run: return evnt.body.x
        """)
    p = hf("check", f)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines() == [
        f"{f}:7:17: warning: unknown global 'evnt' (did you mean 'event'?)"]
    assert "1 workflow valid, 1 warning" in p.stderr


def test_block_if_and_workflow_expressions(tmp_path):
    f = write(tmp_path / "wf" / "b.yml", """
        name: b
        on:
          webhook:
            path: /b
            dedupe: "evnt.id"
        if: event.body.x and jsn
        concurrency: { key: tostrin(event.body.id) }
        steps:
          - id: one
            if: stepz.x ~= nil
            run: |
              local t = { evnt = 1 }   -- evnt as a key, in a comment
              local s = "evnt" .. [[evnt]]
              if t.evnt then
                return jsno.encode(t) .. s
              end
          - id: two
            if: args ~= nil
            run: "return db.query('x'), steps.one, \\"\\\\\\"\\", evnt"
        """)
    p = hf("check", f)
    assert p.returncode == 0, p.stdout + p.stderr
    got = [(line, col, msg) for _, line, col, msg in warnings(p.stdout)]
    assert got == [
        (5, 14, "unknown global 'evnt' (did you mean 'event'?)"),
        (6, 22, "unknown global 'jsn' (did you mean 'json'?)"),
        (7, 21, "unknown global 'tostrin' (did you mean 'tostring'?)"),
        (10, 9, "unknown global 'stepz' (did you mean 'steps'?)"),
        (15, 16, "unknown global 'jsno' (did you mean 'json'?)"),
        (18, 9, "unknown global 'args' in a step's if: (defined in a "
                "step's code only)"),
        (19, 54, "unknown global 'evnt' (did you mean 'event'?)"),
    ], p.stdout
    lines = f.read_text().splitlines()
    for _, line, col, msg in warnings(p.stdout):
        name = re.search(r"'(\w+)'", msg).group(1)
        assert lines[line - 1][col - 1:].startswith(name), (line, col, name)


def test_with_expressions(tmp_path):
    f = write(tmp_path / "w.yml", """
        name: w
        on: { webhook: { path: /w } }
        steps:
          - id: one
            with:
              a: "${{ evnt.body }}"
              evnt: "x ${{ event.id }} and ${{ stepz }}"
              nested: { k: [1, "${{ json.encode(jsn) }}"], args: "${{ args }}" }
            run: return args
        """)
    p = hf("check", f)
    assert p.returncode == 0, p.stdout + p.stderr
    assert [w[1:] for w in warnings(p.stdout)] == [
        (6, 15, "unknown global 'evnt' (did you mean 'event'?)"),
        (7, 40, "unknown global 'stepz' (did you mean 'steps'?)"),
        (8, 41, "unknown global 'jsn' (did you mean 'json'?)"),
        (8, 63, "unknown global 'args' in a step's with: (defined in a "
                "step's code only)"),
    ], p.stdout


def test_db_in_workflow_expression(tmp_path):
    f = write(tmp_path / "c.yml", """
        name: c
        on: { webhook: { path: /c } }
        if: db ~= nil
        steps:
          - { id: one, run: return db ~= nil }
        """)
    p = hf("check", f)
    assert p.returncode == 0
    assert [w[1:] for w in warnings(p.stdout)] == [
        (3, 5, "unknown global 'db' in a workflow-level expression "
               "(defined in steps only)")]


def test_script_files_and_required_modules(tmp_path):
    write(tmp_path / "wf" / "s.yml", """
        name: s
        on: { webhook: { path: /s } }
        steps:
          - { id: one, script: main.lua }
          - { id: two, script: main.lua }
          - { id: three, run: "return require('lib.helper').f()" }
        """)
    write(tmp_path / "scripts" / "main.lua", """
        -- a step in a file
        local util = require("util")
        local function f(x) return x end
        return { ok = f(evnt), n = util.n }
        """)
    write(tmp_path / "scripts" / "util.lua", "return { n = math.floor(1.5) }\n")
    write(tmp_path / "scripts" / "lib" / "helper.lua", """
        local M = {}
        function M.f() return stirng.upper("a") end
        return M
        """)
    p = hf("check", tmp_path / "wf", "--scripts", tmp_path / "scripts")
    assert p.returncode == 0, p.stdout + p.stderr
    got = [(pathname.rsplit("/", 1)[-1], line, col, msg)
           for pathname, line, col, msg in warnings(p.stdout)]
    # main.lua once although two steps run it; modules by literal name
    assert got == [
        ("main.lua", 4, 17, "unknown global 'evnt' (did you mean 'event'?)"),
        ("helper.lua", 2, 23,
         "unknown global 'stirng' (did you mean 'string'?)"),
    ], p.stdout
    # the scripts directory beside the workflows, by default
    p = hf("check", tmp_path / "wf")
    assert len(warnings(p.stdout)) == 2


def test_warnings_do_not_change_the_exit_code_of_errors(tmp_path):
    d = tmp_path / "wf"
    write(d / "good.yml", """
        name: good
        on: { webhook: { path: /good } }
        steps:
          - { id: one, run: return evnt }
        """)
    write(d / "bad.yml", """
        name: bad
        on: { webhook: { path: /bad } }
        steps:
          - { id: one, run: "return (" }
        """)
    p = hf("check", d)
    assert p.returncode == 1
    assert len(warnings(p.stdout)) == 1
    assert "lua syntax error" in p.stdout
    assert "1 problem found, 1 warning" in p.stderr


def test_correct_code_gives_no_warning(tmp_path):
    f = write(tmp_path / "ok.yml", """
        name: ok
        on: { webhook: { path: /ok } }
        if: event.body ~= nil and crypto ~= nil and env ~= nil
        steps:
          - id: one
            if: steps and run and event and log and retry
            run: |
              local a, b <const> = 1, 2
              local function add(x, ...) return x + select('#', ...) end
              function helper(p) return p end
              counter = 0
              for k, v in pairs(event) do counter = counter + 1 end
              for i = 1, 3 do counter = counter + i end
              local M = {}
              function M:m() return self end
              ::again::
              local t = { name = 1, value = { nested = true } }
              local s = [==[ evnt ]] ]==] .. 'evnt' .. "evnt"
              --[[ evnt
              stirng ]]
              return {
                t.name, M:m(), add(a, b), helper(counter), s,
                json.encode(args), db, http, webhook, require, print,
                string.upper("x"), table.concat({}), math.max(1, 2),
                utf8.char(72), coroutine.running(), os.time(), _G, _ENV,
                tostring(1), tonumber("1"), type(1), pcall(error),
                next({}), ipairs({}), rawget({}, 1), rawlen({}), rawequal(1, 1),
                rawset({}, 1, 1), setmetatable({}, {}), getmetatable(""),
                load("return 1"), xpcall(print, print), assert(true),
                collectgarbage("count"), _VERSION, retry.never, log.info,
                run.attempt, steps.x, event.params,
              }
        """)
    p = hf("check", f)
    assert p.returncode == 0, p.stdout + p.stderr
    assert warnings(p.stdout) == [], p.stdout
    assert "warning" not in p.stderr


def test_bundled_workflows_give_no_warnings():
    dirs = [ROOT / "workflows"] + sorted(ROOT.glob("examples/*/workflows")) + \
        sorted(ROOT.glob("examples/*/mock/workflows"))
    assert len(dirs) >= 3
    for d in dirs:
        p = hf("check", d)
        assert p.returncode == 0, (d, p.stdout + p.stderr)
        assert warnings(p.stdout) == [], (d, p.stdout)
        assert "warning" not in p.stderr, (d, p.stderr)


def test_every_bundled_script_gives_no_warnings(tmp_path):
    """Each Lua file of scripts/ and examples/ as a step's script (modules
    included: they run in a step's environment too)."""
    files = sorted(ROOT.glob("scripts/*.lua")) + \
        sorted(ROOT.glob("examples/**/scripts/*.lua"))
    assert len(files) >= 5
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    steps = []
    for i, src in enumerate(files):
        name = f"s{i}.lua"
        shutil.copyfile(src, scripts / name)
        steps.append(f"  - {{ id: s{i}, script: {name} }}\n")
    wf = tmp_path / "wf" / "all.yml"
    wf.parent.mkdir()
    wf.write_text("name: all\non: { webhook: { path: /all } }\nsteps:\n" +
                  "".join(steps))
    p = hf("check", wf, "--scripts", scripts)
    assert p.returncode == 0, p.stdout + p.stderr
    assert warnings(p.stdout) == [], p.stdout


def test_json_mode_is_unchanged(tmp_path):
    """check --json prints the YAML document only (no validation, so no
    warnings): editors' schema tools read that line."""
    f = write(tmp_path / "j.yml", """
        name: j
        on: { webhook: { path: /j } }
        steps:
          - { id: one, run: return evnt }
        """)
    p = hf("check", "--json", f)
    assert p.returncode == 0
    assert p.stdout.startswith('{"name":"j"')
    assert "warning" not in p.stdout + p.stderr


def test_flow_control_expressions(tmp_path):
    """throttle.key, debounce.key (workflow and step level), cancel_on's and
    wait_for's if: are linted too; `signal` is known only in the last two."""
    f = write(tmp_path / "wf" / "f.yml", """
        name: f
        on:
          webhook:
            path: /f
        throttle: { key: evnt.body.x, limit: 2, period: 10s }
        debounce: { key: event.body.y .. signal, period: 2s }
        cancel_on:
          - path: /stop
            if: signal.body.id == event.body.id and stps
        steps:
          - id: w
            wait_for:
              path: /go
              if: signal.body.ok and sign
              timeout: 1h
          - id: s
            throttle: { key: evnt2, limit: 1, period: 1s }
            run: return signal
        """)
    p = hf("check", f)
    assert p.returncode == 0, p.stdout + p.stderr
    assert warnings(p.stdout) == [
        (str(f), 5, 18, "unknown global 'evnt' (did you mean 'event'?)"),
        (str(f), 6, 34, "unknown global 'signal' in a workflow-level "
         "expression (defined in wait_for's and cancel_on's if: only)"),
        (str(f), 9, 45, "unknown global 'stps'"),
        (str(f), 14, 30, "unknown global 'sign' (did you mean 'signal'?)"),
        (str(f), 17, 22, "unknown global 'evnt2' (did you mean 'event'?)"),
        (str(f), 18, 17, "unknown global 'signal' in a step's code "
         "(defined in wait_for's and cancel_on's if: only)"),
    ]
    assert "1 workflow valid, 6 warnings" in p.stderr
