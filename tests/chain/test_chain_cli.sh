#!/usr/bin/env bash
# teex chain up / deploy / status / down as a user runs them: a dev chain on
# a free loopback port with its state in a fresh network folder, the
# contracts deployed and recorded in chain.conf, status checking them on
# chain, and the state surviving down + up (same addresses, code still there).
set -euo pipefail
teex="${TEEX_BIN:?TEEX_BIN not set}"
dir="$(mktemp -d "${TMPDIR:-/tmp}/teex-chain-cli.XXXXXX")"
cleanup() {
  "$teex" chain down --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

port="$(python3 "${TEEX_SOURCE_DIR:?}/tests/free_ports.py" 1 20000 32000)"
sm=0x8626f6940E2eb28930eFb4CeF49B2d1F2C9C1199

"$teex" chain --help | grep -q deploy || fail "chain --help"
"$teex" chain deploy --help | grep -q -- "--sm" || fail "deploy --help"
# Nothing running yet: status names the problem, deploy needs --sm.
if "$teex" chain status --dir "$dir" --rpc "http://127.0.0.1:$port" 2>/dev/null; then fail "status without a node"; fi
if "$teex" chain deploy --dir "$dir" 2>/dev/null; then fail "deploy without --sm"; fi

"$teex" chain up --dir "$dir" --port "$port" | grep -q "chain id 31337" || fail "chain up"
[ -f "$dir/run/anvil.pid" ] || fail "no pid file"
grep -q "rpc_url = \"http://127.0.0.1:$port\"" "$dir/chain.conf" || fail "rpc_url not recorded"
if "$teex" chain up --dir "$dir" --port "$port" 2>/dev/null; then fail "second up succeeded"; fi
"$teex" chain status --dir "$dir" | grep -q "not deployed" || fail "status before deploy"

out="$("$teex" chain deploy --dir "$dir" --sm "$sm" --delay 60)"
echo "$out" | grep -q "^Settlement" || fail "deploy output: $out"
settlement="$(sed -n 's/^settlement = //p' "$dir/chain.conf")"
[ -n "$settlement" ] || fail "settlement address not recorded"
grep -q "^service_registry = 0x" "$dir/chain.conf" || fail "service registry not recorded"
echo "$out" | grep -q "^DatasetRegistry  0x" || fail "deploy output lacks the dataset registry: $out"
echo "$out" | grep -q "^DsAnchor         0x" || fail "deploy output lacks the DS anchor contract: $out"
datasets="$(sed -n 's/^dataset_registry = //p' "$dir/chain.conf")"
[ -n "$datasets" ] || fail "dataset registry not recorded"
grep -q "^ds_anchor = 0x" "$dir/chain.conf" || fail "DS anchor contract not recorded"
"$teex" chain status --dir "$dir" --json | grep -q '"contracts_ok":true' || fail "status json"
"$teex" chain status --dir "$dir" | grep -q "contracts  ok" || fail "status text"
"$teex" chain services --dir "$dir" | grep -q "no services listed" || fail "empty catalogue"
[ "$("$teex" chain services --dir "$dir" --json)" = "[]" ] || fail "empty catalogue json"

# Escrow with a keystore account (anvil's account 2, imported; cheap scrypt).
echo 5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a > "$dir/user.key"
echo "correct horse" > "$dir/pw"
user=0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC
disp=0x90F79bf6EB2c4f870365E785982E1f101E93b906
"$teex" account import --data-dir "$dir" --private-key-file "$dir/user.key" \
  --password-file "$dir/pw" --scrypt-n 1024 >/dev/null || fail "account import"
common=(--data-dir "$dir" --from "$user" --password-file "$dir/pw")
if "$teex" deposit "$disp" 1000 "${common[@]}" 2>"$dir/err"; then fail "deposit to an unregistered dispatcher"; fi
grep -q NotRegisteredDispatcher "$dir/err" || fail "deposit refusal reason: $(cat "$dir/err")"
if "$teex" deposit "$disp" 12x "${common[@]}" 2>/dev/null; then fail "bad amount accepted"; fi
if "$teex" deposit "$disp" 1000 --data-dir "$dir" --from "$user" --password-file /dev/null 2>/dev/null; then
  fail "deposit with a wrong password"
fi
"$teex" withdraw "$disp" 700 "${common[@]}" | grep -q "700 wei requested, waiting" || fail "withdraw request"
"$teex" withdraw "$disp" --status "${common[@]}" | grep -q "escrow     0 wei" || fail "withdraw status"
"$teex" withdraw "$disp" --cancel "${common[@]}" >/dev/null || fail "withdraw cancel"
if "$teex" withdraw "$disp" --complete "${common[@]}" 2>/dev/null; then fail "complete without a request"; fi

# The state comes back after down + up: the same contracts, still deployed.
"$teex" chain down --dir "$dir" | grep -q stopped || fail "chain down"
[ ! -f "$dir/run/anvil.pid" ] || fail "pid file left behind"
if "$teex" chain down --dir "$dir" 2>/dev/null; then fail "second down succeeded"; fi
[ -s "$dir/chain/state.json" ] || fail "no state dumped"
"$teex" chain up --dir "$dir" --port "$port" >/dev/null || fail "chain up again"
grep -q "^settlement = $settlement" "$dir/chain.conf" || fail "addresses lost on up"
grep -q "^dataset_registry = $datasets" "$dir/chain.conf" || fail "dataset registry lost on up"
"$teex" chain status --dir "$dir" --json | grep -q '"contracts_ok":true' || fail "contracts gone after restart"
"$teex" chain down --dir "$dir" >/dev/null
echo "chain cli: ok"
