#!/usr/bin/env bash
# ctest-label: nosan (the sandboxed executor does not run under ASan)
# Every example service produces, through `teex service run` (the worker's
# sandbox), exactly what plain python3.11 computes outside any sandbox, and
# what the example's expected_output file says. Also: --bench prints
# percentiles, a bad input path is a clear error.
set -euo pipefail
if [ "${TEEX_SANITIZE:-0}" = "1" ]; then
  echo "skipped: the sandboxed executor does not run under ASan"
  exit 0
fi
teex="${TEEX_BIN:?}"
ex="${TEEX_SOURCE_DIR:?}/examples/services"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
n=0
for d in "$ex"/*/; do
  name="$(basename "$d")"
  [ -d "$d/service" ] || continue
  input="$(ls "$d"/input.* | head -1)"
  expected="$(ls "$d"/expected_output.* | head -1)"
  data=()
  for f in "$d"/data*; do [ -e "$f" ] && data+=(--data "$f"); done
  /usr/bin/python3.11 "$ex/run_plain.py" "$d/service" "$input" "${data[@]}" >"$tmp/$name.plain"
  "$teex" service run "$d/service" --input "$input" "${data[@]}" >"$tmp/$name.out" 2>"$tmp/$name.err" || {
    echo "FAIL $name: teex service run failed:" >&2
    cat "$tmp/$name.err" >&2
    exit 1
  }
  cmp "$tmp/$name.out" "$tmp/$name.plain" || { echo "FAIL $name: sandbox != plain python" >&2; exit 1; }
  cmp "$tmp/$name.out" "$expected" || { echo "FAIL $name: != $expected" >&2; exit 1; }
  # The same service from stdin.
  "$teex" service run "$d/service" --input - "${data[@]}" <"$input" >"$tmp/$name.stdin" 2>/dev/null
  cmp "$tmp/$name.stdin" "$expected"
  echo "ok $name"
  n=$((n + 1))
done
[ "$n" -ge 3 ] || { echo "FAIL: only $n examples found" >&2; exit 1; }

# The dataset example without its data: a clear error, not a crash.
if "$teex" service run "$ex/testnet-data/service" --input "$ex/testnet-data/input.txt" \
   >/dev/null 2>"$tmp/nodata.err"; then
  echo "FAIL: the data example ran without its dataset" >&2; exit 1
fi
grep -q "IndexError: teex.data(0): this task has 0 dataset" "$tmp/nodata.err" \
  || { echo "FAIL: no-data error: $(cat "$tmp/nodata.err")" >&2; exit 1; }

first="$(ls -d "$ex"/*/service | head -1)"
firstin="$(ls "$(dirname "$first")"/input.* | head -1)"
"$teex" service run "$first" --input "$firstin" --bench 20 >/dev/null 2>"$tmp/bench.err"
grep -q "bench: 20 tasks, latency p50 .* ms, p90 .* p99 .* ms" "$tmp/bench.err"

if "$teex" service run "$first" --input "$tmp/missing" >/dev/null 2>"$tmp/missing.err"; then
  echo "FAIL: a missing input file was accepted" >&2; exit 1
fi
grep -q "No such file" "$tmp/missing.err"
if "$teex" service run "$first" >/dev/null 2>&1; then
  echo "FAIL: no --input accepted" >&2; exit 1
fi
echo "ok: $n examples"
