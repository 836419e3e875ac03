"""Attacks on what runs on PostgreSQL only (CONTRACT §6, §7, §8): the
shared flow keys of debounce and throttle (a key of megabytes must not blow
up the store), and db.* over `--data postgres://` (`?` translated to `$n`
past strings, comments and identifiers; too many or too few arguments;
NaN, infinities, huge integers and binary values). Each attack asserts a
clear error in the run or a correct answer, the server alive after, nothing
acknowledged lost. Runs in the e2e-pg suite (HF_TEST_STATE=postgres); the
db.* tests need only a PostgreSQL server. No timing is asserted."""
import json
import os
import subprocess
import textwrap

import pytest

import pgcluster
from conftest import BIN, PG_MODE, pg_cluster, wait_for

pytestmark = pytest.mark.skipif(pgcluster.available() is not None,
                                reason=str(pgcluster.available()))

ENDS = ("succeeded", "failed", "cancelled")


def keyed(name, kind):
    flow = ("debounce: { key: event.body.k, period: 1h }" if kind == "debounce"
            else "throttle: { key: event.body.k, limit: 1, period: 1h }")
    return f"""
name: {name}
on:
  webhook: {{ path: /{name} }}
{flow}
steps:
  - id: s
    run: return event.body.n
"""


def settled(srv, rid):
    """The run once it succeeded, ended or waits for its flow control."""
    def get():
        run = srv.run(rid)
        if run["status"] in ENDS or (run["status"] == "waiting" and
                                     run["waiting"]["for"] in ("debounce", "throttle")):
            return run
        return None
    return wait_for(get, 60, what=f"run {rid} to settle")


@pytest.mark.skipif(not PG_MODE, reason="the flow keys are shared on PostgreSQL")
def test_huge_flow_keys(server):
    """debounce.key and throttle.key of hundreds of KiB (not compressible)
    on a PostgreSQL state still debounce and throttle (they were refused by
    the key's index, every run started at once): a burst of one key makes
    one waiting leader, the others debounced into it; of three throttled
    starts one runs, two wait; the server serves after."""
    srv = server(workflows={"deb": keyed("deb", "debounce"),
                            "thr": keyed("thr", "throttle")})
    runs = {}
    for name in ("deb", "thr"):
        key = os.urandom(300 * 1024).hex()
        runs[name] = []
        for n in range(3):
            r = srv.post(f"/{name}", {"k": key, "n": n}, timeout=60)
            assert r.status == 202, (name, r)
            runs[name].append(r.json()["runs"][0])
    deb = [settled(srv, rid) for rid in runs["deb"]]
    assert sorted(r["status"] for r in deb) == ["cancelled", "cancelled",
                                                 "waiting"], deb
    leader = next(r["id"] for r in deb if r["status"] == "waiting")
    assert all(r["error"] == f"debounced into run {leader}"
               for r in deb if r["status"] == "cancelled"), deb
    thr = [settled(srv, rid) for rid in runs["thr"]]
    assert sorted(r["status"] for r in thr) == ["succeeded", "waiting",
                                                 "waiting"], thr
    assert srv.get("/healthz").status == 200
    assert not [l for l in srv.stderr_lines if "index row" in l]
    for rid in [leader] + [r["id"] for r in thr if r["status"] == "waiting"]:
        assert srv.api("POST", f"/api/runs/{rid}/cancel").status == 202
    r = srv.post("/thr", {"k": "small", "n": 9})
    assert r.status == 202, r
    assert srv.wait_run(r.json()["runs"][0], timeout=60)["status"] == "succeeded"


@pytest.mark.skipif(not PG_MODE, reason="the keys are indexed on PostgreSQL")
def test_huge_dedupe_and_concurrency_keys(server):
    """A dedupe or concurrency key of hundreds of KiB (from the sender's
    body) on a PostgreSQL state: the event is stored (it was 503 forever:
    the key's index refused the row), a repeat is a duplicate, and a lane
    of such a key runs its runs one at a time to the end."""
    srv = server(workflows={
        "dd": "name: dd\non:\n  webhook:\n    path: /dd\n"
              "    dedupe: event.body.k\nsteps:\n  - id: s\n"
              "    run: return event.body.n\n",
        "cc": "name: cc\non:\n  webhook: { path: /cc }\n"
              "concurrency: { key: event.body.k, max: 1 }\nsteps:\n"
              "  - id: s\n    run: return event.body.n\n"})
    key = os.urandom(200 * 1024).hex()
    r = srv.post("/dd", {"k": key, "n": 1}, timeout=60)
    assert r.status == 202, r
    first = r.json()
    r = srv.post("/dd", {"k": key, "n": 2}, timeout=60)
    assert r.status == 200 and r.json() == {"event": first["event"],
                                            "duplicate": True}, r
    assert srv.wait_run(first["runs"][0])["status"] == "succeeded"
    ids = []
    for n in range(3):
        r = srv.post("/cc", {"k": key, "n": n}, timeout=60)
        assert r.status == 202, r
        ids.append(r.json()["runs"][0])
    for rid in ids:
        assert srv.wait_run(rid, timeout=60)["status"] == "succeeded"
    assert srv.get("/healthz").status == 200


# ---- db.* over --data postgres:// ----

_dbs = iter(range(1, 10_000))


def data_url():
    return pg_cluster().url(f"attack_{os.getpid()}_{next(_dbs)}")


def hf_run(tmp_path, code, data):
    """`hookflow run` of a one-step workflow: the step's line."""
    wf = tmp_path / "wf.yml"
    body = textwrap.indent(textwrap.dedent(code).strip("\n"), " " * 6)
    wf.write_text("name: t\non:\n  webhook:\n    path: /t\nsteps:\n"
                  f"  - id: s\n    run: |\n{body}\n")
    ev = tmp_path / "ev.json"
    ev.write_text("{}")
    p = subprocess.run([BIN, "run", str(wf), "--event", str(ev), "--data", data],
                       capture_output=True, text=True, timeout=120)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    step = next((x for x in lines if x.get("step") == "s"), None)
    assert step, (p.returncode, p.stdout, p.stderr)
    return step


PLACEHOLDERS = {
    # standard strings keep a backslash: the ? after one is a parameter
    "bs": (r"""return db.one([[SELECT '\' AS a, ? AS b]], "x")""",
           {"a": "\\", "b": "x"}),
    "uescape": (r"""return db.one([[SELECT U&'d\0061t?' AS a, ? AS b, 1 AS "?x"]], "y")""",
                {"a": "dat?", "b": "y", "?x": 1}),
    "adjacent": ("""return db.one("SELECT 1 AS a WHERE 1=?", 1)""", {"a": 1}),
    "ident_dollar": ("""return db.one("SELECT 1 AS a$b$, ? AS c", "q")""",
                     {"a$b$": 1, "c": "q"}),
    "comment_end": ("""return db.one("SELECT ? AS a -- ?", "c")""", {"a": "c"}),
    "unterminated": ("""return db.one("SELECT ? AS a, '?", "c")""", None),
}

ERRORS = {
    "too_many": ("""return db.one("SELECT ? AS a", 1, 2)""",
                 "statement has 1 parameter, 2 given"),
    "too_few": ("""return db.one("SELECT ?3 AS a", 1)""",
                "statement has 3 parameters, 1 given"),
    "huge_number": ("""return db.one("SELECT ?99999999999999999999 AS a", 1)""",
                    "out of range (1 to 65535)"),
    "huge_dollar": ("""return db.one("SELECT $99999999999999999999 AS a", 1)""",
                    "out of range (1 to 65535)"),
    "zero": ("""return db.one("SELECT ?0 AS a", 1)""", "out of range"),
    "too_many_params": ("""
        local t = {}
        for i = 1, 70000 do t[i] = i end
        return db.one("SELECT " .. string.rep("?::int+", 69999) .. "?::int AS s",
                      table.unpack(t))""", "out of range (1 to 65535)"),
    "int8_overflow": ("""return db.one("SELECT ?::int8 + 1 AS a", math.maxinteger)""",
                      "bigint out of range"),
    "in_tx": ("""return db.tx(function() db.exec("SELECT ?", 1, 2) end)""",
              "statement has 1 parameter, 2 given"),
    "nan_output": ("""return db.one("SELECT 'NaN'::float8 AS a")""",
                   "cannot convert NaN to JSON"),
}


def test_placeholder_translation_attacks(tmp_path):
    """`?` inside strings, comments and identifiers, after a backslash in a
    standard string, with too many or too few arguments or out-of-range
    numbers: a right answer, or a clear error in the step."""
    url = data_url()
    for name, (code, want) in PLACEHOLDERS.items():
        step = hf_run(tmp_path, code, url)
        if want is None:
            assert step["status"] == "failed" and "db.one" in step["error"], (name, step)
        else:
            assert step["status"] == "succeeded" and step["output"] == want, (name, step)
    for name, (code, want) in ERRORS.items():
        step = hf_run(tmp_path, code, url)
        assert step["status"] == "failed" and want in step["error"], (name, step)


def test_odd_values(tmp_path):
    """NaN and infinities both ways, the integers at 64 bits' ends and
    numerics past them, NUL bytes and invalid UTF-8 (bound as bytea),
    every byte value and megabytes of binary through bytea."""
    url = data_url()
    step = hf_run(tmp_path, r"""
        db.exec("CREATE TABLE v(f float8, n numeric, i int8, b bytea, s text)")
        db.exec("INSERT INTO v VALUES (?, ?, ?, ?, ?)", 0/0, "NaN", math.mininteger,
                "\0\1\255", "ok")
        db.exec("INSERT INTO v VALUES (?, ?::numeric, ?, ?, ?)", math.huge,
                "123456789012345678901234567890", math.maxinteger, "", "x")
        db.exec("INSERT INTO v(f) VALUES (?)", -math.huge)
        local rows = db.query("SELECT * FROM v ORDER BY i NULLS LAST")
        local all = {}
        for i = 0, 255 do all[#all + 1] = string.char(i) end
        all = table.concat(all)
        local big = string.rep("\0\255", 3 * 1024 * 1024)
        return {
          f = { tostring(rows[1].f), tostring(rows[2].f), tostring(rows[3].f) },
          n = { tostring(rows[1].n), math.type(rows[2].n) },
          i = { rows[1].i == math.mininteger, rows[2].i == math.maxinteger },
          b = { rows[1].b == "\0\1\255", rows[2].b == "" },
          nul = db.one("SELECT length(?) AS n", "a\0b").n,
          bad = db.one("SELECT length(?) AS n", "\255\254").n,
          every = db.one("SELECT ?::bytea = ?::bytea AS same, length(?) AS n",
                         all, all, all),
          big = db.one("SELECT length(?) AS n", big).n,
          back = #db.one("SELECT ?::bytea AS b", big).b,
        }
    """, url)
    assert step["status"] == "succeeded", step
    out = step["output"]
    assert out["f"] == ["nan", "inf", "-inf"] or sorted(out["f"]) == sorted(
        ["nan", "inf", "-inf"]) or "-nan" in out["f"][0], out
    assert out["n"] == ["nan", "float"] or out["n"][1] == "float", out
    assert out["i"] == [True, True] and out["b"] == [True, True], out
    assert out["nul"] == 3 and out["bad"] == 2, out
    assert out["every"] == {"same": True, "n": 256}, out
    assert out["big"] == 6 * 1024 * 1024 and out["back"] == 6 * 1024 * 1024, out


def test_db_attacks_on_a_server(server):
    """The same odd values and errors in steps of a running server (its
    workers): each run ends with the right status and the server serves."""
    url = data_url()
    wf = """
name: d
on:
  webhook: { path: /d }
steps:
  - id: s
    run: |
      local k = event.body.k
      if k == "nan" then return db.one("SELECT 'NaN'::float8 AS a") end
      if k == "many" then return db.one("SELECT ?", 1, 2) end
      if k == "deep" then
        return type(db.one("SELECT (repeat('[', 1500) || repeat(']', 1500))::jsonb AS j").j)
      end
      if k == "deeper" then
        return type(db.one("SELECT (repeat('[', 3000) || repeat(']', 3000))::json AS j").j)
      end
      if k == "blob" then return #db.one("SELECT ?::bytea AS b", string.rep("\\0", 1e6)).b end
      return db.one("SELECT ? AS a", k).a
"""
    srv = server(workflows={"d": wf}, args=["--data", url])
    want = {"nan": "failed", "many": "failed", "deep": "failed", "deeper": "failed",
            "blob": "succeeded", "plain": "succeeded"}
    ids = {}
    for k in want:
        r = srv.post("/d", {"k": k})
        assert r.status == 202, r
        ids[k] = r.json()["runs"][0]
    for k, st in want.items():
        run = srv.wait_run(ids[k], timeout=60)
        assert run["status"] == st, (k, run)
    for k in ("deep", "deeper"):  # an error, never the text as a string
        assert "JSON nested too deeply" in srv.run(ids[k])["error"], k
    assert srv.run(ids["blob"])["steps"][0]["output"] == 1000000
    assert srv.run(ids["plain"])["steps"][0]["output"] == "plain"
    assert srv.get("/healthz").status == 200
