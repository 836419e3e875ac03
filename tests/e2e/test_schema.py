"""Editor support: docs/workflow.schema.json and docs/hookflow.lua.

- Every workflow in the repository (workflows/, examples/*/workflows/) is valid
  for the schema, as YAML editors see it (`hookflow check --json` prints each
  file's YAML as JSON), and for `hookflow check`.
- On a set of good and bad files, `hookflow check` and the schema agree.
- The schema names every key that workflow.c accepts, and describes each.
- docs/hookflow.lua parses (luac5.4 -p), declares every global of the README's
  Lua section, and covers every global that the repository's scripts and inline
  steps use.

Standard library only: a small validator for the draft-07 subset the schema
uses; it refuses keywords it does not know, so the schema cannot silently
outgrow it."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import textwrap

import pytest

from conftest import BIN, ROOT

SCHEMA_PATH = ROOT / "docs" / "workflow.schema.json"
STUBS_PATH = ROOT / "docs" / "hookflow.lua"
LUAC = shutil.which("luac5.4") or shutil.which("luac")


# --- a draft-07 subset ---------------------------------------------------------

ANNOTATIONS = {"$schema", "$id", "title", "description", "default", "examples"}
KEYWORDS = ANNOTATIONS | {
    "type", "properties", "required", "additionalProperties", "enum", "const",
    "pattern", "items", "oneOf", "anyOf", "allOf", "not", "minimum", "maximum",
    "exclusiveMinimum", "minItems", "maxItems", "minLength", "maxLength",
    "$ref", "definitions"}


def is_type(v, t):
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "null":
        return v is None
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and v.is_integer())
    raise ValueError(f"unknown type {t!r}")


class Validator:
    def __init__(self, root):
        self.root = root

    def resolve(self, ref):
        assert ref.startswith("#/"), ref
        node = self.root
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def errors(self, v, schema=None, where="$"):
        """Every problem, as 'PATH: message'."""
        schema = self.root if schema is None else schema
        unknown = set(schema) - KEYWORDS
        if unknown:
            raise ValueError(f"schema keyword(s) not supported: {unknown}")
        out = []
        if "$ref" in schema:
            out += self.errors(v, self.resolve(schema["$ref"]), where)
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(is_type(v, t) for t in types):
                return out + [f"{where}: expected {'/'.join(types)}, got {type(v).__name__}"]
        if "enum" in schema and v not in schema["enum"]:
            out.append(f"{where}: {v!r} is not one of {schema['enum']}")
        if "const" in schema and v != schema["const"]:
            out.append(f"{where}: {v!r} is not {schema['const']!r}")
        if isinstance(v, str):
            if "pattern" in schema and not re.search(schema["pattern"], v):
                out.append(f"{where}: {v!r} does not match {schema['pattern']}")
            if len(v) < schema.get("minLength", 0):
                out.append(f"{where}: too short")
            if "maxLength" in schema and len(v) > schema["maxLength"]:
                out.append(f"{where}: too long")
        if is_type(v, "number"):
            if "minimum" in schema and v < schema["minimum"]:
                out.append(f"{where}: {v} < {schema['minimum']}")
            if "maximum" in schema and v > schema["maximum"]:
                out.append(f"{where}: {v} > {schema['maximum']}")
            if "exclusiveMinimum" in schema and v <= schema["exclusiveMinimum"]:
                out.append(f"{where}: {v} <= {schema['exclusiveMinimum']}")
        if isinstance(v, list):
            if len(v) < schema.get("minItems", 0):
                out.append(f"{where}: fewer than {schema['minItems']} items")
            if "maxItems" in schema and len(v) > schema["maxItems"]:
                out.append(f"{where}: more than {schema['maxItems']} items")
            if "items" in schema:
                for i, item in enumerate(v):
                    out += self.errors(item, schema["items"], f"{where}[{i}]")
        if isinstance(v, dict):
            props = schema.get("properties", {})
            for k in schema.get("required", []):
                if k not in v:
                    out.append(f"{where}: missing required key {k!r}")
            for k, item in v.items():
                if k in props:
                    out += self.errors(item, props[k], f"{where}.{k}")
                elif schema.get("additionalProperties") is False:
                    out.append(f"{where}: unknown key {k!r}")
                elif isinstance(schema.get("additionalProperties"), dict):
                    out += self.errors(item, schema["additionalProperties"], f"{where}.{k}")
        for sub in schema.get("allOf", []):
            out += self.errors(v, sub, where)
        if "anyOf" in schema and not any(not self.errors(v, s, where) for s in schema["anyOf"]):
            out.append(f"{where}: matches none of anyOf")
        if "oneOf" in schema:
            n = sum(1 for s in schema["oneOf"] if not self.errors(v, s, where))
            if n != 1:
                out.append(f"{where}: matches {n} of oneOf (expected exactly 1)")
        if "not" in schema and not self.errors(v, schema["not"], where):
            out.append(f"{where}: matches a 'not' schema")
        return out


@pytest.fixture(scope="module")
def validator():
    return Validator(json.loads(SCHEMA_PATH.read_text()))


def yaml_json(path):
    p = subprocess.run([BIN, "check", "--json", str(path)], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def check(path, scripts=None):
    """`hookflow check` with every ${NAME} secret of the file set to a dummy."""
    args = [BIN, "check", str(path)] + (["--scripts", str(scripts)] if scripts else [])
    env = dict(os.environ)
    for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", pathlib.Path(path).read_text()):
        env.setdefault(name, "dummy-secret")
    return subprocess.run(args, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, env=env)


def repo_workflows():
    dirs = [ROOT / "workflows"] + sorted((ROOT / "examples").glob("*/workflows"))
    return [f for d in dirs if d.is_dir() for f in sorted(d.iterdir())
            if f.suffix in (".yml", ".yaml")]


# --- the schema ----------------------------------------------------------------

def test_check_json_prints_yaml_as_json(tmp_path):
    f = tmp_path / "x.yml"
    f.write_text("a: &x [1, 2.5, '3', true, null, ~, 0x1f, yes]\nb: *x\n"
                 "c: {d: 'e: f'}\ns: |\n  two\n  lines\n")
    assert yaml_json(f) == {"a": [1, 2.5, "3", True, None, None, 31, "yes"],
                            "b": [1, 2.5, "3", True, None, None, 31, "yes"],
                            "c": {"d": "e: f"}, "s": "two\nlines\n"}
    bad = tmp_path / "bad.yml"
    bad.write_text("a: [1,\nb: 2\n")
    p = subprocess.run([BIN, "check", "--json", str(bad)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1 and p.stdout == ""
    assert re.match(rf"{re.escape(str(bad))}:\d+:\d+: YAML syntax error", p.stderr)
    # A billion-laughs document fails instead of exhausting memory.
    lol = tmp_path / "lol.yml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 10) + "]")
    lol.write_text("\n".join(lines) + "\n")
    p = subprocess.run([BIN, "check", "--json", str(lol)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1 and "too large" in p.stderr
    assert subprocess.run([BIN, "check", "--json"], capture_output=True,
                          timeout=30).returncode == 2


def test_every_repository_workflow_is_valid(validator):
    files = repo_workflows()
    assert files, "no workflows found"
    for f in files:
        errs = validator.errors(yaml_json(f))
        assert not errs, f"{f}: {errs}"
        scripts = f.parent.parent / "scripts"
        p = check(f, scripts if scripts.is_dir() else None)
        assert p.returncode == 0, p.stdout + p.stderr


GOOD = {
    "minimal": """
        name: a
        on: {webhook: {path: /a}}
        steps: [{id: s, run: "return 1"}]
    """,
    "everything": """
        name: every-key_1
        description: all the keys
        on:
          webhook:
            path: /hooks/every
            methods: [GET, post, Put, PATCH, DELETE]
            verify:
              scheme: hmac-sha256
              secret: s3cret
              header: X-Sig
              tolerance: 90s
            dedupe: event.headers["x-id"]
            respond: sync
            timeout: 2.5
        if: event.body ~= nil
        timeout: 1h
        concurrency: {key: event.body.id, max: 3}
        steps:
          - id: one
            run: |
              return { ok = true }
            if: true
            with: {a: 1, b: [x], c: "${{ event.body }}"}
            retry: {attempts: 100, backoff: 0s, max_backoff: 2m}
            timeout: 30
            continue_on_error: true
          - id: two
            script: lib/two.lua
    """,
    "secrets-and-method-string": """
        name: rot
        on:
          webhook:
            path: /r
            methods: get
            verify: {scheme: standard-webhooks, secrets: ["a", "b"]}
        steps: [{id: s, script: two.lua, retry: {attempts: 1}}]
    """,
    "hmac-general": """
        name: gen
        on:
          webhook:
            path: /g
            verify: {scheme: hmac, algorithm: sha512, encoding: base64, header: X-S, prefix: "v1=", timestamp_header: X-T, timestamp_unit: ms, signed: "{timestamp}.{url}.{header:X-A}.{body}", url: "https://h.example", secret: s, tolerance: 1m}
        steps: [{id: s, run: "return 1"}]
    """,
    "senders": "name: z\non: {webhook: {path: /z, verify: {scheme: hubspot, secrets: [a, b], url: 'http://h:8080'}}}\nsteps: [{id: s, run: x()}]",
    "basic": "name: b\non: {webhook: {path: /b, verify: {scheme: basic, user: u, password: p}}}\nsteps: [{id: s, run: x()}]",
    "token-query": "name: t\non: {webhook: {path: /t, verify: {scheme: token, query: k, secret: s}}}\nsteps: [{id: s, run: x()}]",
    "schedule-only": "name: c\non: {schedule: [{cron: '*/15 8-18 * * MON-FRI', timezone: Europe/Berlin, catch_up: 0}, {cron: '@daily'}]}\nsteps: [{id: s, run: x()}]",
    "webhook-and-schedule": "name: c\non: {webhook: {path: /c}, schedule: [{cron: '0 2 * JAN-DEC SUN'}]}\nsteps: [{id: s, run: x()}]",
    "dots-in-segments": "name: a\non: {webhook: {path: '/a/..b/.c/{id}'}}\ncancel_on: [{path: /x/...}]\nsteps: [{id: s, wait_for: {path: /v1.2/ok., timeout: 1h}}]",
    "until-expression-timeout": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, until: '${{ event.body.at }}', timeout: 2s}]",
    "park-steps": "name: p\non: {webhook: {path: /p}}\nsteps: [{id: a, sleep: 30m}, {id: b, if: 'event.body.x', until: '${{ event.body.at }}'}, {id: c, until: 1767225600}, {id: d, wait_for: {path: /approvals, if: 'signal.body.id == event.body.id', timeout: 48h, verify: {scheme: token, secret: s}}}]",
}

BAD = {
    "no-name": "on: {webhook: {path: /a}}\nsteps: [{id: s, run: x()}]",
    "name-upper": "name: Abc\non: {webhook: {path: /a}}\nsteps: [{id: s, run: x()}]",
    "unknown-top": "name: a\nwhen: x\non: {webhook: {path: /a}}\nsteps: [{id: s, run: x()}]",
    "unknown-on": "name: a\non: {webhook: {path: /a}, cron: x}\nsteps: [{id: s, run: x()}]",
    "no-webhook": "name: a\non: {}\nsteps: [{id: s, run: x()}]",
    "schedule-map": "name: a\non: {schedule: {cron: '@daily'}}\nsteps: [{id: s, run: x()}]",
    "schedule-empty": "name: a\non: {schedule: []}\nsteps: [{id: s, run: x()}]",
    "schedule-no-cron": "name: a\non: {schedule: [{timezone: UTC}]}\nsteps: [{id: s, run: x()}]",
    "schedule-unknown": "name: a\non: {schedule: [{cron: '@daily', every: 1h}]}\nsteps: [{id: s, run: x()}]",
    "schedule-catch-up": "name: a\non: {schedule: [{cron: '@daily', catch_up: -1}]}\nsteps: [{id: s, run: x()}]",
    "unknown-webhook": "name: a\non: {webhook: {path: /a, verb: GET}}\nsteps: [{id: s, run: x()}]",
    "no-path": "name: a\non: {webhook: {methods: [GET]}}\nsteps: [{id: s, run: x()}]",
    "relative-path": "name: a\non: {webhook: {path: a}}\nsteps: [{id: s, run: x()}]",
    "query-path": "name: a\non: {webhook: {path: '/a?b'}}\nsteps: [{id: s, run: x()}]",
    "reserved-path": "name: a\non: {webhook: {path: /api/x}}\nsteps: [{id: s, run: x()}]",
    "reserved-exact": "name: a\non: {webhook: {path: /healthz}}\nsteps: [{id: s, run: x()}]",
    "bad-method": "name: a\non: {webhook: {path: /a, methods: [TRACE]}}\nsteps: [{id: s, run: x()}]",
    "no-methods": "name: a\non: {webhook: {path: /a, methods: []}}\nsteps: [{id: s, run: x()}]",
    "bad-scheme": "name: a\non: {webhook: {path: /a, verify: {scheme: md5, secret: x}}}\nsteps: [{id: s, run: x()}]",
    "no-secret": "name: a\non: {webhook: {path: /a, verify: {scheme: github}}}\nsteps: [{id: s, run: x()}]",
    "two-secrets": "name: a\non: {webhook: {path: /a, verify: {scheme: github, secret: x, secrets: [y]}}}\nsteps: [{id: s, run: x()}]",
    "empty-secrets": "name: a\non: {webhook: {path: /a, verify: {scheme: github, secrets: []}}}\nsteps: [{id: s, run: x()}]",
    "header-github": "name: a\non: {webhook: {path: /a, verify: {scheme: github, secret: x, header: X-A}}}\nsteps: [{id: s, run: x()}]",
    "unknown-verify": "name: a\non: {webhook: {path: /a, verify: {scheme: github, secret: x, algo: y}}}\nsteps: [{id: s, run: x()}]",
    "bad-tolerance": "name: a\non: {webhook: {path: /a, verify: {scheme: stripe, secret: x, tolerance: soon}}}\nsteps: [{id: s, run: x()}]",
    "hmac-no-signed": "name: a\non: {webhook: {path: /a, verify: {scheme: hmac, header: X, secret: x}}}\nsteps: [{id: s, run: x()}]",
    "hmac-bad-algorithm": "name: a\non: {webhook: {path: /a, verify: {scheme: hmac, header: X, signed: '{body}', algorithm: md5, secret: x}}}\nsteps: [{id: s, run: x()}]",
    "preset-header": "name: a\non: {webhook: {path: /a, verify: {scheme: zendesk, header: X, secret: x}}}\nsteps: [{id: s, run: x()}]",
    "preset-signed": "name: a\non: {webhook: {path: /a, verify: {scheme: intercom, signed: '{body}', secret: x}}}\nsteps: [{id: s, run: x()}]",
    "basic-secret": "name: a\non: {webhook: {path: /a, verify: {scheme: basic, user: u, password: p, secret: x}}}\nsteps: [{id: s, run: x()}]",
    "user-not-basic": "name: a\non: {webhook: {path: /a, verify: {scheme: token, user: u, secret: x}}}\nsteps: [{id: s, run: x()}]",
    "token-header-query": "name: a\non: {webhook: {path: /a, verify: {scheme: token, header: X, query: q, secret: x}}}\nsteps: [{id: s, run: x()}]",
    "unit-alone": "name: a\non: {webhook: {path: /a, verify: {scheme: hmac, header: X, signed: '{body}', timestamp_unit: ms, secret: x}}}\nsteps: [{id: s, run: x()}]",
    "url-github": "name: a\non: {webhook: {path: /a, verify: {scheme: github, url: 'https://h', secret: x}}}\nsteps: [{id: s, run: x()}]",
    "bad-respond": "name: a\non: {webhook: {path: /a, respond: later}}\nsteps: [{id: s, run: x()}]",
    "zero-timeout": "name: a\non: {webhook: {path: /a}}\ntimeout: 0s\nsteps: [{id: s, run: x()}]",
    "bad-timeout": "name: a\non: {webhook: {path: /a}}\ntimeout: 5 minutes\nsteps: [{id: s, run: x()}]",
    "no-steps": "name: a\non: {webhook: {path: /a}}",
    "empty-steps": "name: a\non: {webhook: {path: /a}}\nsteps: []",
    "steps-map": "name: a\non: {webhook: {path: /a}}\nsteps: {id: s, run: x()}",
    "step-no-id": "name: a\non: {webhook: {path: /a}}\nsteps: [{run: x()}]",
    "step-bad-id": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: my-step, run: x()}]",
    "step-both": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, run: x(), script: two.lua}]",
    "step-neither": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s}]",
    "step-unknown": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, run: x(), uses: y}]",
    "step-empty-run": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, run: '  '}]",
    "script-escape": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, script: ../two.lua}]",
    "script-not-lua": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, script: two.py}]",
    "with-list": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, run: x(), with: [1]}]",
    "retry-no-attempts": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, run: x(), retry: {backoff: 1s}}]",
    "retry-zero": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, run: x(), retry: {attempts: 0}}]",
    "retry-too-many": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, run: x(), retry: {attempts: 101}}]",
    "retry-unknown": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, run: x(), retry: {attempts: 2, jitter: 1}}]",
    "coe-maybe": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, run: x(), continue_on_error: maybe}]",
    "concurrency-no-key": "name: a\non: {webhook: {path: /a}}\nconcurrency: {max: 2}\nsteps: [{id: s, run: x()}]",
    "concurrency-zero": "name: a\non: {webhook: {path: /a}}\nconcurrency: {key: x, max: 0}\nsteps: [{id: s, run: x()}]",
    "step-timeout-zero": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, run: x(), timeout: 0}]",
    "sleep-and-run": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, sleep: 1s, run: x()}]",
    "sleep-and-until": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, sleep: 1s, until: 1767225600}]",
    "sleep-bad": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, sleep: soon}]",
    "wait-for-no-timeout": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, wait_for: {path: /b}}]",
    "wait-for-no-path": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, wait_for: {timeout: 1h}}]",
    "wait-for-bad-path": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, wait_for: {path: 'b?x', timeout: 1h}}]",
    "wait-for-unknown": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, wait_for: {path: /b, timeout: 1h, every: 1}}]",
    "path-dot-dot": "name: a\non: {webhook: {path: /a/../b}}\nsteps: [{id: s, run: x()}]",
    "path-dot": "name: a\non: {webhook: {path: /a/.}}\nsteps: [{id: s, run: x()}]",
    "path-percent": "name: a\non: {webhook: {path: /a%20b}}\nsteps: [{id: s, run: x()}]",
    "wait-for-dot-dot": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, wait_for: {path: /../b, timeout: 1h}}]",
    "cancel-on-dot": "name: a\non: {webhook: {path: /a}}\ncancel_on: [{path: /b/./c}]\nsteps: [{id: s, run: x()}]",
    "sleep-timeout": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, sleep: 1s, timeout: 5s}]",
    "until-timeout": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, until: 1767225600, timeout: 5s}]",
    "wait-for-throttle": "name: a\non: {webhook: {path: /a}}\nsteps: [{id: s, wait_for: {path: /b, timeout: 1h}, throttle: {key: k, limit: 1, period: 1s}}]",
}


def test_check_and_schema_agree(tmp_path, validator):
    scripts = tmp_path / "scripts"
    (scripts / "lib").mkdir(parents=True)
    (scripts / "two.lua").write_text("return 2\n")
    (scripts / "lib" / "two.lua").write_text("return 2\n")
    wdir = tmp_path / "workflows"
    wdir.mkdir()
    disagree = []
    for expect_ok, cases in ((True, GOOD), (False, BAD)):
        for name, text in cases.items():
            f = wdir / f"{name}.yml"
            f.write_text(textwrap.dedent(text).strip() + "\n")
            schema_errs = validator.errors(yaml_json(f))
            p = check(f, scripts)
            check_ok = p.returncode == 0
            if check_ok != expect_ok or (not schema_errs) != expect_ok:
                disagree.append(f"{name}: check {'ok' if check_ok else p.stdout.strip()}"
                                f" / schema {schema_errs or 'ok'}")
    assert not disagree, "\n".join(disagree)


def test_schema_names_every_key_workflow_c_accepts():
    """The key tables of engine/workflow.c, each against its schema object."""
    schema = json.loads(SCHEMA_PATH.read_text())
    src = (ROOT / "engine" / "workflow.c").read_text()
    tables = {}
    for m in re.finditer(r"static const char \*const (\w+)_keys\[\] = \{(.*?)\};", src, re.S):
        tables[m.group(1)] = set(re.findall(r'"([a-z_]+)"', m.group(2)))
    props = schema["properties"]
    webhook = props["on"]["properties"]["webhook"]
    objects = {
        "top": props,
        "on": props["on"]["properties"],
        "schedule": props["on"]["properties"]["schedule"]["items"]["properties"],
        "webhook": webhook["properties"],
        "verify": webhook["properties"]["verify"]["properties"],
        "concurrency": props["concurrency"]["properties"],
        "cancel_on": props["cancel_on"]["items"]["properties"],
        "throttle": props["throttle"]["properties"],
        "debounce": props["debounce"]["properties"],
        "step": schema["definitions"]["step"]["properties"],
        "retry": schema["definitions"]["step"]["properties"]["retry"]["properties"],
    }
    assert set(tables) == set(objects), tables.keys()
    for name, keys in tables.items():
        assert set(objects[name]) == keys, name
        for k, sub in objects[name].items():
            assert sub.get("description"), f"{name}.{k} has no description"


# --- the Lua stubs -------------------------------------------------------------

# Lua's own globals that the sandbox keeps (see luart.c).
LUA_GLOBALS = {
    "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall",
    "rawequal", "rawget", "rawlen", "rawset", "select", "setmetatable",
    "tonumber", "tostring", "type", "xpcall", "collectgarbage", "load",
    "string", "table", "math", "utf8", "coroutine", "os", "_G", "_VERSION",
    "print", "require", "warn"}

CONTRACT = {
    "event": ["id", "method", "path", "query", "headers", "body", "raw", "received_at"],
    "run": ["id", "workflow", "attempt"],
    "http": ["request", "get", "post"],
    "db": ["exec", "query", "one", "tx"],
    "webhook": ["emit"],
    "json": ["encode", "decode", "null"],
    "log": ["info", "warn", "error"],
    "crypto": ["hmac_sha256", "sha256", "base64_encode", "base64_decode"],
    "retry": ["after", "never"],
}


def stub_globals():
    text = STUBS_PATH.read_text()
    names = set(re.findall(r"^(\w+) = ", text, re.M))
    names |= set(re.findall(r"^function (\w+)\(", text, re.M))
    members = {}
    for g, m in re.findall(r"^function (\w+)\.(\w+)\(", text, re.M):
        members.setdefault(g, set()).add(m)
    return text, names, members


def lua_globals_used(path):
    """Globals read or written by a Lua file, from luac's listing."""
    p = subprocess.run([LUAC, "-l", "-p", str(path)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return set(re.findall(r'[GS]ETTABUP\s.*?; _ENV "(\w+)"', p.stdout))


@pytest.fixture(scope="module")
def luac():
    if not LUAC:
        pytest.fail("luac5.4 is needed: apt-get install lua5.4 (sh .ci/deps installs it)")
    return LUAC


def test_stubs_parse_and_declare_the_contract(luac):
    p = subprocess.run([luac, "-p", str(STUBS_PATH)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    text, names, members = stub_globals()
    assert text.startswith("---@meta")
    for g in ["event", "steps", "args", "run", "env", "require", *CONTRACT]:
        assert g in names, f"global {g} is not declared"
    for g, fields in CONTRACT.items():
        for f in fields:
            declared = f in members.get(g, set()) or re.search(
                rf"---@class hookflow\.\w+\n(---.*\n)*?---@field {f}\??\s", text)
            assert declared, f"{g}.{f} is not declared"
    # Every global the sandbox itself sets that is hookflow's own.
    src = (ROOT / "engine" / "luart.c").read_text()
    engine = set(re.findall(r'lua_setfield\(L, S, "(\w+)"\)', src))
    missing = engine - LUA_GLOBALS - names
    assert not missing, f"set by luart.c but not in the stubs: {missing}"


def test_repository_lua_uses_only_declared_globals(luac, tmp_path):
    """Every script and inline step: each global it touches is Lua's or a stub's."""
    _, names, _ = stub_globals()
    known = names | LUA_GLOBALS
    sources = []
    for d in [ROOT / "scripts"] + sorted((ROOT / "examples").glob("*/scripts")):
        if d.is_dir():
            sources += sorted(d.rglob("*.lua"))
    for i, f in enumerate(repo_workflows()):
        for step in yaml_json(f).get("steps", []):
            if isinstance(step.get("run"), str):
                chunk = tmp_path / f"{i}_{step['id']}.lua"
                chunk.write_text(step["run"])
                sources.append(chunk)
    assert sources
    problems = [f"{s}: {sorted(lua_globals_used(s) - known)}" for s in sources
                if lua_globals_used(s) - known]
    assert not problems, "\n".join(problems)
