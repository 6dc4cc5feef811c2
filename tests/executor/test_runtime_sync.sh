#!/usr/bin/env bash
# The runtime compiled into teex (runtime_py.inc) is generated from
# src/executor/runtime.py: this test fails when someone edits one only.
set -euo pipefail
dir="${TEEX_SOURCE_DIR:?}/src/executor"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
python3 "$dir/gen_runtime.py" "$dir/runtime.py" >"$tmp"
if ! cmp -s "$tmp" "$dir/runtime_py.inc"; then
  echo "runtime_py.inc is stale: run python3 src/executor/gen_runtime.py src/executor/runtime.py > src/executor/runtime_py.inc" >&2
  exit 1
fi
/usr/bin/python3.11 -c "import ast,sys; ast.parse(open(sys.argv[1]).read())" "$dir/runtime.py"
echo ok
