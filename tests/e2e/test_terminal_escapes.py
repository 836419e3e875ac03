"""Strings from senders and steps never reach a terminal or a text log raw
(README, Security, "Control characters on screen and in logs"): a ticket id
with an OSC title sequence, a CR and a newline, shown by `hookflow show` and
`hookflow runs`; a step error with ESC, CR, NUL, a newline, a C1 CSI and a
forged log line, in `runs`, `show` and the server's text log, and kept exact
in `--json` and in the JSON log; bidirectional controls (U+202E, ...) shown
as \u202e."""
import json
import subprocess

from conftest import BIN, ROOT, wait_for

# What a terminal or a log reader must never get raw: C0 controls but the
# newline that ends each line, DEL, and a C1 control as UTF-8 (CSI).
RAW = [bytes([c]) for c in range(0x20) if c != 0x0a] + [b"\x7f", b"\xc2\x9b"]

TICKET_ID = "\u001b]0;pwned\u0007\r\nFAKE LINE"
TICKET_ID_SHOWN = r"\x1b]0;pwned\x07\r\nFAKE LINE"

# A CR (no newline) before a forged line, as a terminal shows it; then a NUL
# (Lua's error() ends its message there) and a second line.
ERROR = ("boom\u001b[2J\rhookflow: listening on http://evil:80"
         "\u009b31m\\end<NUL>tail\nline two")
ERROR_SHOWN = (r"boom\x1b[2J\rhookflow: listening on http://evil:80"
               r"\u009b31m\\end")
RUN_ERROR = "step 's' failed: " + ERROR.split("<NUL>")[0]

FAILING = r"""
name: failing
on:
  webhook:
    path: /fail
steps:
  - id: s
    # JSON refuses \u0000 in a body: the step makes the NUL.
    run: |
      local m = string.gsub(event.body.m, "<NUL>", "\0")
      log.warn(m)
      error(m, 0)
"""


def cli(srv, *args):
    """The command's stdout and stderr as bytes (nothing decoded)."""
    p = subprocess.run([BIN, *args, "--state", str(srv.state)],
                       capture_output=True, timeout=30, env=srv.env,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    return p.stdout + p.stderr


def assert_clean(out):
    for raw in RAW:
        assert raw not in out, (raw, out)


def ticket_server(server):
    """The bundled ticket-intake workflow and its script; --data an SQLite
    file on either backend (the script's SQL is SQLite's)."""
    srv = server(
        workflows={"ticket-intake.yml":
                   (ROOT / "workflows" / "ticket-intake.yml").read_text()},
        scripts={"assign_round_robin.lua":
                 (ROOT / "scripts" / "assign_round_robin.lua").read_text()},
        start=False)
    srv.data = srv.dir / "data.db"
    return srv.start()


def test_ticket_id_with_controls_in_show_and_runs(server):
    srv = ticket_server(server)
    r = srv.post("/tickets", {"ticket": {"id": TICKET_ID}})
    assert r.status == 202, r
    run = r.json()["runs"][0]
    assert srv.wait_run(run)["status"] == "succeeded"

    out = cli(srv, "show", run)
    assert_clean(out)
    assert not any(line.startswith(b"FAKE LINE") for line in out.splitlines())
    # The step's log line, escaped on its one line.
    assert ("  log info: ticket " + TICKET_ID_SHOWN + " -> alice\n").encode() \
        in out
    # The step's output is the JSON it was, which escapes them its own way.
    assert (r'"ticket #\u001b]0;pwned\u0007\r\nfake line assigned to alice"'
            .encode()) in out.lower()

    out = cli(srv, "runs")
    assert_clean(out)
    assert run.encode() in out

    # --json is the API's JSON, exact: the id comes back as sent.
    shown = json.loads(cli(srv, "show", run, "--json"))
    assert shown == srv.run(run)
    logs = shown["steps"][1]["logs"]
    assert logs[0]["message"] == "ticket " + TICKET_ID + " -> alice"


def test_step_error_with_controls_in_cli_and_text_log(server):
    srv = server(workflows={"failing": FAILING})
    r = srv.post("/fail", {"m": ERROR})
    assert r.status == 202, r
    run = r.json()["runs"][0]
    assert srv.wait_run(run)["error"] == RUN_ERROR

    out = cli(srv, "runs")
    assert_clean(out)
    (row,) = [ln for ln in out.splitlines() if ln.startswith(run.encode())]
    assert row.endswith(b"step 's' failed: " + ERROR_SHOWN.encode())

    out = cli(srv, "show", run)
    assert_clean(out)
    lines = out.splitlines()
    assert b"error     step 's' failed: " + ERROR_SHOWN.encode() in lines
    # The step's error: the message, then Lua's traceback on the same line.
    assert any(ln.startswith(b"  error: " + ERROR_SHOWN.encode() +
                             rb"\nstack traceback:\n\t") for ln in lines)
    # The step's log keeps the NUL and the second line, escaped.
    assert b"  log warn: " + ERROR_SHOWN.encode() + rb"\x00tail\nline two" \
        in lines
    assert not any(ln.startswith(b"hookflow: listening on") for ln in lines)

    # The server's text log: one line, escaped; no forged "listening on".
    line = wait_for(lambda: next((ln for ln in srv.stderr_lines
                                  if run in ln and "failed" in ln), None),
                    what="the run's failure in the log")
    assert line == f"hookflow: run {run} (failing) failed: step 's' failed: " \
        + ERROR_SHOWN
    assert sum(ln.startswith("hookflow: listening on")
               for ln in srv.stderr_lines) == 1
    for ln in srv.stderr_lines:
        assert not any(chr(c) in ln for c in range(0x20)), ln
        assert "\x7f" not in ln and "\u009b" not in ln, ln


def test_step_error_with_controls_in_json_log(server):
    srv = server(workflows={"failing": FAILING}, args=["--log-format", "json"])
    run = srv.post("/fail", {"m": ERROR}).json()["runs"][0]
    assert srv.wait_run(run)["status"] == "failed"
    line = wait_for(lambda: next((ln for ln in srv.stderr_lines
                                  if run in ln and "run finished" in ln), None),
                    what="the run's line in the log")
    rec = json.loads(line)  # still one valid JSON object, the error exact
    assert rec["run"] == run and rec["error"] == RUN_ERROR
    assert not any(chr(c) in line for c in range(0x20))
    assert "\u009b" not in line and "\\u009b" in line


# Bidirectional controls (RLO, LRI, PDI, LRM, ALM): a terminal shows the text
# after them reordered, so that "txt.exe" reads as "exe.txt".
BIDI = "invoice\u202etxt.exe\u2066x\u2069\u200e\u061c"
BIDI_SHOWN = r"invoice\u202etxt.exe\u2066x\u2069\u200e\u061c"


def test_bidi_controls_escaped_in_cli_and_text_log(server):
    srv = server(workflows={"failing": FAILING})
    run = srv.post("/fail", {"m": BIDI}).json()["runs"][0]
    assert srv.wait_run(run)["error"] == "step 's' failed: " + BIDI
    raw = [c.encode() for c in "\u202e\u2066\u2069\u200e\u061c"]
    for args in (("runs",), ("show", run)):
        out = cli(srv, *args)
        assert not any(r in out for r in raw), (args, out)
        assert BIDI_SHOWN.encode() in out, (args, out)
    line = wait_for(lambda: next((ln for ln in srv.stderr_lines
                                  if run in ln and "failed" in ln), None),
                    what="the run's failure in the log")
    assert line.endswith("step 's' failed: " + BIDI_SHOWN), line
    # --json keeps them exact.
    assert json.loads(cli(srv, "show", run, "--json"))["error"] == \
        "step 's' failed: " + BIDI
