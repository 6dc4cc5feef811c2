#!/usr/bin/env bash
# teex up / status / down: the network comes up, reports healthy over
# RA-TLS, refuses a second `up`, serves a provider's deployment through the
# endpoints it wrote in network.conf, and goes down cleanly.
set -euo pipefail
teex="${TEEX_BIN:?}"
src="${TEEX_SOURCE_DIR:?}"
tmp="$(mktemp -d)"
export TEEX_HOME="$tmp/net" TEEX_PASSWORD=pw
cleanup() { "$teex" down >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -5 "$TEEX_HOME"/logs/*.log >&2 2>/dev/null || true; exit 1; }

"$teex" up > "$tmp/up.out" || fail "up: $(cat "$tmp/up.out")"
grep -q "teex network up" "$tmp/up.out" || fail "up output"
"$teex" status > "$tmp/status" || fail "status: $(cat "$tmp/status")"
grep -q "^sm *ok" "$tmp/status" || fail "status: $(cat "$tmp/status")"
if "$teex" up > "$tmp/out" 2>&1; then fail "second up accepted"; fi
grep -q "already up" "$tmp/out" || fail "second up: $(cat "$tmp/out")"

sm="$(awk -F' = ' '$1 == "client" { print $2 }' "$TEEX_HOME/network.conf")"
acct="$("$teex" account new --scrypt-n 1024)"
"$teex" service deploy "$src/examples/services/genome-match/service" \
  --account "$acct" --sm "$sm" --sm-policy "$TEEX_HOME/policy/sm.conf" \
  > "$tmp/deploy" || fail "deploy: $(cat "$tmp/deploy")"
grep -q "^deployed" "$tmp/deploy" || fail "deploy output"

"$teex" down > "$tmp/down" || fail "down"
grep -q "stopped sm" "$tmp/down" || fail "down output: $(cat "$tmp/down")"
if "$teex" status > "$tmp/status" 2>&1; then fail "status ok after down"; fi
grep -q "DOWN" "$tmp/status" || fail "status after down: $(cat "$tmp/status")"
echo "up/status/down: ok"
