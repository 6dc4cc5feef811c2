#!/usr/bin/env bash
# Runs every libFuzzer harness in BUILD_DIR for SECONDS each, starting from
# its seed corpus in fuzz/corpus/<name>/ (new inputs go to a scratch copy).
# Usage: scripts/fuzz.sh BUILD_DIR [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
build="$1"
secs="${2:-10}"
shopt -s nullglob
status=0
count=0
for src in fuzz/fuzz_*.c; do
  name="$(basename "$src" .c)"
  bin="$build/$name"
  [ -x "$bin" ] || { echo "fuzz: $bin missing" >&2; exit 1; }
  work="$(mktemp -d)"
  if [ -d "fuzz/corpus/$name" ]; then cp -r "fuzz/corpus/$name/." "$work/"; fi
  mkdir -p fuzz/artifacts
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="fuzz/artifacts/$name-" "$work" >"$work.log" 2>&1; then
    echo "fuzz: $name FAILED" >&2
    tail -40 "$work.log" >&2
    status=1
  else
    echo "fuzz: $name ok ($(grep -Eo '#[0-9]+' "$work.log" | tail -1 | tr -d '#') runs)"
  fi
  count=$((count + 1))
  rm -rf "$work" "$work.log"
done
echo "fuzz: $count harnesses"
exit "$status"
