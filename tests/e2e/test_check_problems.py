"""`hookflow check` and loading at `serve` agree with what the server does
(docs/reference.md):

- check's text never prints a control character from the file raw (it
  prints them escaped, as the server's text log does).
- a path no request can reach is a problem at its FILE:LINE:COL (a `..`
  segment, which the framing answers 400; a `.` segment, which clients
  remove; a `%`, since paths are matched percent-decoded).
- `timeout:` and `throttle:` on a step that waits are problems.
- a `wait_for` whose `verify:` also checks the requests of a workflow that
  verifies the same path another way is a warning."""
import re
import subprocess
import textwrap

from conftest import BIN
from test_attack_flow import raw


def hf(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_check_escapes_what_it_prints_from_the_file(tmp_path):
    f = write(tmp_path / "esc.yml", r'''
        name: esc
        on:
          webhook:
            path: /esc
        steps:
          - id: s
            run: return 1
            "k\e]0;pwned\a\r\nFAKE\u009b\u202egnp.exe": 1
        ''')
    p = hf("check", f)
    assert p.returncode == 1, p
    for ctl in [bytes([c]) for c in range(0x20) if c != 0x0a] + [
            b"\x7f", "\u009b".encode(), "\u202e".encode()]:
        assert ctl not in p.stdout, (ctl, p.stdout)
    (line,) = p.stdout.decode().splitlines()
    assert re.match(re.escape(f"{f}:8:5: unknown key 'k") +
                    r"\\x1b\]0;pwned\\x07\\r\\nFAKE\\u009b\\u202egnp\.exe' "
                    r"\(expected one of: ", line), line


def raw_status(srv, target):
    """The status of a POST to target sent as is (no client normalizes it)."""
    return raw(srv, f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0"
               "\r\nConnection: close\r\n\r\n".encode())


DOTS = """
    name: dots
    on:
      webhook:
        path: /in/../hooks
    steps:
      - id: s
        run: return 1
    """

PATHS = {
    "dots.yml": (DOTS, "4:15: invalid path '/in/../hooks': a '..' segment "
                 "is answered 400 by the server"),
    "dot.yml": ("""
        name: dot
        on:
          webhook:
            path: "/in/./hooks"
        steps:
          - id: s
            run: return 1
        """, "4:16: invalid path '/in/./hooks': a '.' segment is removed by "
         "HTTP clients before sending (RFC 3986)"),
    "pct.yml": ("""
        name: pct
        on:
          webhook:
            path: /in/%2e%2e/x
        steps:
          - id: s
            run: return 1
        """, "4:15: invalid path '/in/%2e%2e/x': a '%': requests are matched "
         "percent-decoded (a sender's %41 is A), so write the characters "
         "themselves"),
    "wait.yml": ("""
        name: wait
        on:
          webhook:
            path: /wait
        steps:
          - id: w
            wait_for:
              path: /signals/..
              timeout: 1h
        """, "8:22: invalid wait_for path '/signals/..': a '..' segment is "
         "answered 400 by the server"),
    "cancel.yml": ("""
        name: cancel
        on:
          webhook:
            path: /cancel
        cancel_on:
          - path: /stop/.
        steps:
          - id: s
            run: return 1
        """, "6:17: invalid cancel_on path '/stop/.': a '.' segment is "
         "removed by HTTP clients before sending (RFC 3986)"),
}


def test_check_reports_paths_no_request_reaches(tmp_path):
    files = {name: write(tmp_path / "wf" / name, text)
             for name, (text, _) in PATHS.items()}
    p = hf("check", tmp_path / "wf")
    assert p.returncode == 1, p
    out = p.stdout.decode().splitlines()
    for name, (_, msg) in PATHS.items():
        assert f"{files[name]}:{msg}" in out, (name, out)
    assert len(out) == len(PATHS), out
    # A path without them passes.
    ok = write(tmp_path / "ok" / "ok.yml",
               DOTS.replace("/in/../hooks", "/in/..x/.hooks/{id}"))
    assert hf("check", ok).returncode == 0


def test_serve_refuses_to_load_what_the_framing_refuses(server):
    dots = textwrap.dedent(DOTS).lstrip()
    srv = server(workflows={"dots.yml": dots, "ok.yml": dots.replace(
        "name: dots", "name: ok").replace("/in/../hooks", "/hooks")})
    r = srv.api("GET", "/api/workflows")
    assert r.status == 200, r
    (err,) = [e for e in r.json()["errors"] if e["file"].endswith("dots.yml")]
    assert (err["line"], err["col"]) == (4, 15), err
    assert "a '..' segment is answered 400" in err["message"], err
    # what the framing does with every request to it, as sent or encoded
    assert raw_status(srv, "/in/../hooks") == 400
    assert raw_status(srv, "/in/%2e%2E/hooks") == 400
    assert raw_status(srv, "/hooks") == 202


PARK = """
    name: park
    on:
      webhook:
        path: /park
    steps:
      - id: nap
        sleep: 1s
        timeout: 5s
        throttle: { key: "'k'", limit: 1, period: 1s }
      - id: later
        until: "${{ event.body.at }}"
        throttle: { key: "'k'", limit: 1, period: 1s }
      - id: approval
        wait_for:
          path: /approvals
          timeout: 1h
        timeout: 1h
      - id: after
        throttle: { key: "'k'", limit: 1, period: 1s }
        timeout: 5s
        run: return 1
      - id: due
        until: "${{ event.body.due }}"
        timeout: 2s
      - id: fixed
        until: 1767225600
        timeout: 2s
    """


def test_timeout_and_throttle_on_a_waiting_step(tmp_path):
    f = write(tmp_path / "park.yml", PARK)
    p = hf("check", f)
    assert p.returncode == 1, p
    timeout = ("it bounds a step's code, which a step that waits has none of "
               "but an until: expression; a wait_for's timeout goes under "
               "wait_for:")
    throttle = ("it does not apply to a step that waits, which starts "
                "nothing; throttle the step after it")
    assert p.stdout.decode().splitlines() == [
        f"{f}:8:14: step 'nap': 'timeout' does not go with 'sleep' "
        f"({timeout})",
        f"{f}:9:15: step 'nap': 'throttle' does not go with 'sleep' "
        f"({throttle})",
        f"{f}:12:15: step 'later': 'throttle' does not go with 'until' "
        f"({throttle})",
        f"{f}:17:14: step 'approval': 'timeout' does not go with 'wait_for' "
        f"({timeout})",
        # an until: expression's timeout bounds it (not a literal's)
        f"{f}:27:14: step 'fixed': 'timeout' does not go with 'until' "
        f"({timeout})",
    ]


GITHUB = """
    name: gh
    on:
      webhook:
        path: /hooks/{source}
        verify: { scheme: github, secret: "${HF_CP_GH}" }
    steps:
      - id: s
        run: return 1
    """

WAITER = """
    name: waiter
    on:
      webhook:
        path: /start
    steps:
      - id: approval
        wait_for:
          path: /hooks/github
          timeout: 1h
          verify: { scheme: token, secret: "${HF_CP_TOKEN}" }
      - id: comment
        wait_for:
          path: /hooks/github/
          timeout: 1h
          verify: { scheme: github, secret: "${HF_CP_GH}" }
      - id: free
        wait_for:
          path: /elsewhere
          timeout: 1h
          verify: { scheme: token, secret: "${HF_CP_TOKEN}" }
    """

WARN = ("warning: step 'approval': this verify also checks the requests of "
        "workflow 'gh' ({gh}) to '/hooks/github', which verifies them another "
        "way: its sender must pass both, this one first")
WARN_NONE = ("warning: step '{step}': this verify also checks the requests "
             "of workflow 'gh' ({gh}) to '{path}', which does not "
             "verify them: its sender must pass this one")


def test_signal_verify_on_a_verified_workflow_path_warns(tmp_path):
    d = tmp_path / "wf"
    gh = write(d / "gh.yml", GITHUB)
    waiter = write(d / "waiter.yml", WAITER)
    # the directory, and the same files named one by one
    for args in ([d], [gh, waiter]):
        p = hf("check", *args)
        assert p.returncode == 0, p
        assert p.stdout.decode().splitlines() == [
            f"{waiter}:10:15: " + WARN.format(gh=gh)]
        assert "2 workflows valid, 1 warning" in p.stderr.decode()
    # alone: no workflow of that path
    assert hf("check", waiter).stdout == b""
    # beside a workflow of that path that does not verify: its sender then
    # needs the signal's credential (both wait_for verifies reach it)
    write(d / "gh.yml", "\n".join(ln for ln in GITHUB.splitlines()
                                   if "verify:" not in ln))
    p = hf("check", d)
    assert p.returncode == 0, p
    assert p.stdout.decode().splitlines() == [
        f"{waiter}:{line}:15: " + WARN_NONE.format(gh=gh, step=step, path=path)
        for line, step, path in ((10, "approval", "/hooks/github"),
                                 (15, "comment", "/hooks/github/"))], p
