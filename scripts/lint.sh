#!/usr/bin/env bash
# Lint: banned C functions, and clang-format conformance.
# Banned (as curl bans them): unbounded or locale/overflow-unsafe calls.
set -euo pipefail
cd "$(dirname "$0")/.."

dirs=(src include tests fuzz bench)
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|atof|strtok|strncpy|strncat|tmpnam|mktemp|rand|srand)[[:space:]]*\('
fail=0
if grep -rnE --include='*.c' --include='*.h' "$banned" "${dirs[@]}" 2>/dev/null \
    | grep -v '/\* lint:allow' ; then
  echo "lint: banned function used (see scripts/lint.sh for the list)" >&2
  fail=1
fi

files=()
while IFS= read -r f; do
  [ -f "$f" ] && files+=("$f")
done < <(git ls-files -co --exclude-standard -- 'src/*.c' 'src/*.h' 'include/*.h' 'tests/*.c' 'tests/*.h' 'fuzz/*.c' 'bench/*.c' | sort -u)
if [ "${#files[@]}" -gt 0 ]; then
  if ! clang-format --dry-run -Werror "${files[@]}" 2>/tmp/teex-format.log; then
    head -40 /tmp/teex-format.log >&2
    echo "lint: files not clang-formatted; run: clang-format -i \$(git ls-files '*.c' '*.h')" >&2
    fail=1
  fi
fi
if [ "$fail" -ne 0 ]; then exit 1; fi
echo "lint: ok (${#files[@]} files)"
