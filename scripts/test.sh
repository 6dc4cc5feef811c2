#!/usr/bin/env bash
# The test command: installs dependencies, then
#   1. a release build with warnings as errors, and the whole CTest suite;
#   2. an ASan+UBSan build, and the suite again (tests that need the release
#      build, such as process hardening against ptrace, carry the label
#      "nosan" and are skipped there — they ran in pass 1);
#   3. a clang libFuzzer build, each harness run briefly on its corpus.
# Usage: scripts/test.sh [--quick]   (--quick: pass 1 only)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
jobs="$(nproc)"

bash scripts/install-deps.sh
bash scripts/lint.sh

echo "== pass 1: release build, -Werror"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTEEX_WERROR=ON >/dev/null
cmake --build build/release -j"$jobs"
(cd build/release && ctest --output-on-failure -j"$jobs")

if [ "${1:-}" = "--quick" ]; then exit 0; fi

echo "== pass 2: ASan + UBSan"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DTEEX_WERROR=ON -DTEEX_SANITIZE=ON >/dev/null
cmake --build build/asan -j"$jobs"
(cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j"$jobs" -LE nosan)

echo "== pass 3: libFuzzer harnesses (short runs)"
CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DTEEX_FUZZ=ON >/dev/null
cmake --build build/fuzz -j"$jobs"
bash scripts/fuzz.sh build/fuzz "${TEEX_FUZZ_SECONDS:-10}"
