"""`hookflow check` and loading at `serve` agree with what the server does
(docs/reference.md):

- check's text never prints a control character from the file raw (it
  prints them escaped, as the server's text log does)."""
import re
import subprocess
import textwrap

from conftest import BIN


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
