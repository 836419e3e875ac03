#!/usr/bin/env python3
"""Checks the README's drawing of the layers (Development, "Every file is
named once"): every engine/*.c is named there once, and every name there is
a file of engine/ (a .c, or one of the files embed.c embeds).

    readme_files.py SOURCE_ROOT

Exit 1, naming each file missing, named twice or unknown."""
import os
import re
import sys


def main():
    root = sys.argv[1]
    text = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    start = text.index("Every file is named once")
    block = text[start:].split("```")[1]
    names = []
    for line in block.splitlines():
        line = re.sub(r"^L\d \w+", "", line)   # the layer's label
        line = line.replace("(embedded by ", "").replace(")", "")
        names += [n[:-2] if n.endswith(".c") else n for n in line.split()]
    engine = os.path.join(root, "engine")
    files = {f[:-2] for f in os.listdir(engine) if f.endswith(".c")}
    others = set(os.listdir(engine))
    bad = 0
    for n in sorted(set(names)):
        if names.count(n) > 1:
            print("README names %s %d times" % (n, names.count(n)))
            bad += 1
        if n not in files and n not in others:
            print("README names %s, which engine/ does not have" % n)
            bad += 1
    for f in sorted(files - set(names)):
        print("engine/%s.c is not in the README's layers" % f)
        bad += 1
    print("%d files of engine/, %d names in the README, %d problems" % (
        len(files), len(names), bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
