#!/bin/sh
# Fails when a C file is not formatted by the repository's .clang-format.
# Fix with: clang-format -i engine/*.c engine/*.h include/*.h tests/unit/*.[ch] tests/fuzz/*.c
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 1
command -v clang-format >/dev/null || { echo "clang-format not installed"; exit 1; }
# One clang-format process for every file: --dry-run --Werror names each
# unformatted file and fails.
if clang-format --dry-run --Werror engine/*.c engine/*.h include/*.h \
     tests/unit/*.c tests/unit/*.h tests/fuzz/*.c tests/bench/*.c 2>&1 |
   grep -o '^[^:]*\.[ch]:' | sort -u | sed 's/:$//; s/^/not formatted: /' |
   grep .; then
  exit 1
fi
echo "all C files formatted"
