#!/usr/bin/env python3
"""Checks that the engine's layers call one way: every hf_* symbol that a
layer's static library uses must be defined in that layer or one below it.

    layers.py NM LIB0 LIB1 ... LIBn      (lowest layer first)

The unit tests already fail to link when a lower layer calls a higher one
(each links only its layer and those below); this check covers every file of
every layer, tested or not, and names the offending call. Exit 1 on any
upward reference."""
import subprocess
import sys


def symbols(nm, lib):
    """(defined, undefined) hf_ symbols of a static library, per object."""
    out = subprocess.run([nm, "-A", "-g", lib], check=True,
                         capture_output=True, text=True).stdout
    defined, used = set(), []
    for line in out.splitlines():
        # "lib.a:obj.o: 0000000000000000 T hf_name" or "...:          U hf_x"
        head, _, rest = line.rpartition(":")
        parts = rest.split()
        if len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1]
        if not name.startswith("hf_"):
            continue
        obj = head.split(":")[-1]
        if kind == "U":
            used.append((obj, name))
        else:
            defined.add(name)
    return defined, used


def main():
    nm, libs = sys.argv[1], sys.argv[2:]
    if not libs:
        sys.exit("usage: layers.py NM LIB0 [LIB1 ...]")
    seen = {}  # symbol -> layer index that defines it
    tables = [symbols(nm, lib) for lib in libs]
    for i, (defined, _) in enumerate(tables):
        for s in defined:
            seen.setdefault(s, i)
    bad = 0
    for i, (_, used) in enumerate(tables):
        for obj, s in used:
            where = seen.get(s)
            if where is None:
                print("%s: %s uses %s, defined in no layer" % (
                    libs[i].rsplit("/", 1)[-1], obj, s))
                bad += 1
            elif where > i:
                print("%s: %s calls up into %s (layer %d)" % (
                    libs[i].rsplit("/", 1)[-1], obj, s, where))
                bad += 1
    n = sum(len(u) for _, u in tables)
    print("%d layers, %d cross-object references checked, %d upward" % (
        len(libs), n, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
