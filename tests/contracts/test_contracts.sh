#!/usr/bin/env bash
# Contract behaviour against a real anvil node (tests/contracts/contracts.test.mjs,
# driven by ethers from tools/node_modules as a test driver). Needs the
# contracts compiled by the build (TEEX_CONTRACTS_DIR, set by CTest).
set -euo pipefail
src="${TEEX_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
exec node --test --test-concurrency=1 "$src/tests/contracts/contracts.test.mjs"
