#!/bin/sh
# Builds every fuzz target with libFuzzer (clang, address + undefined sanitizers)
# and runs each for SECONDS (default 60) on a copy of its committed corpus.
# A crash fails the run and leaves the input as tests/fuzz/crash-*: add it to
# tests/fuzz/corpus/TARGET/ once fixed, so the replay test keeps it fixed.
# Fuzz for longer with: sh tests/fuzz/run.sh 3600
set -u
seconds=${1:-60}
cd "$(dirname "$0")/../.."
dir=build-fuzz
if [ ! -f $dir/build.ninja ]; then
  CC=clang meson setup $dir -Dfuzzing=true -Db_sanitize=address,undefined \
    -Db_lundef=false >/dev/null || exit 1
fi
ninja -C $dir >/dev/null || { ninja -C $dir; exit 1; }
status=0
for exe in $dir/tests/fuzz/fuzz_*; do
  # meson's object directories (fuzz_X.p) match the glob too
  [ -f "$exe" ] && [ -x "$exe" ] || continue
  name=$(basename "$exe" | sed 's/^fuzz_//')
  work=$(mktemp -d)
  cp tests/fuzz/corpus/"$name"/* "$work"/ 2>/dev/null
  if "$exe" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
       -rss_limit_mb=2048 -artifact_prefix=tests/fuzz/crash-"$name"- \
       "$work" >"$work.log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs' "$work.log" | tail -n 1)
    echo "fuzz $name: ${seconds}s, ${runs:-done}, no finding"
  else
    echo "fuzz $name: FAILED"
    tail -n 40 "$work.log"
    status=1
  fi
  rm -rf "$work" "$work.log"
done
exit $status
