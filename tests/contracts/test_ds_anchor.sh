#!/usr/bin/env bash
# DsAnchor (the TEE-DS freshness anchor contract) against a real anvil node
# (tests/contracts/ds_anchor.test.mjs, driven by ethers from tools/node_modules
# as a test driver). Needs the contracts compiled by the build
# (TEEX_CONTRACTS_DIR, set by CTest).
set -euo pipefail
src="${TEEX_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
exec node --test --test-concurrency=1 "$src/tests/contracts/ds_anchor.test.mjs"
