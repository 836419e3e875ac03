#!/bin/sh
# Fails when a C file is not formatted by the repository's .clang-format.
# Fix with: clang-format -i engine/*.c include/*.h tests/unit/*.[ch] tests/fuzz/*.c
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 1
command -v clang-format >/dev/null || { echo "clang-format not installed"; exit 1; }
bad=0
for f in engine/*.c include/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c \
         tests/bench/*.c; do
  if ! clang-format "$f" | cmp -s - "$f"; then
    echo "not formatted: $f"
    bad=1
  fi
done
[ $bad = 0 ] && echo "all C files formatted"
exit $bad
