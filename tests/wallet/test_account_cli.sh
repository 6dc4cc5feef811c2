#!/usr/bin/env bash
# teex account: create, list, export/import round trip, private-key import
# (the development chain's first account), wrong password, duplicates, the
# key never in clear on disk (with a positive control), and the balance read
# from a real anvil node.
set -euo pipefail
teex="${TEEX_BIN:?}"
src="${TEEX_SOURCE_DIR:?}"
tmp="$(mktemp -d)"
anvil_pid=""
cleanup() { [ -n "$anvil_pid" ] && kill "$anvil_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

export TEEX_HOME="$tmp/a" TEEX_PASSWORD="correct horse"
addr="$("$teex" account new --scrypt-n 1024)"
[[ "$addr" =~ ^0x[0-9a-fA-F]{40}$ ]] || fail "new printed '$addr'"
"$teex" account list | grep -qx "$addr" || fail "list lacks $addr"
[ "$("$teex" account list --json)" = "[\"$addr\"]" ] || fail "list --json"
"$teex" account export "$addr" > "$tmp/ks.json"
grep -q '"crypto"\|"Crypto"' "$tmp/ks.json" || fail "export is not a keystore"
stat -c %a "$TEEX_HOME"/keystore/UTC--* | grep -qx 600 || fail "keystore mode"

# Round trip into another home; a wrong password is refused.
TEEX_HOME="$tmp/b" "$teex" account import --keystore "$tmp/ks.json" > "$tmp/out" \
  || fail "import of exported keystore"
[ "$(cat "$tmp/out")" = "$addr" ] || fail "imported address differs"
if TEEX_HOME="$tmp/c" TEEX_PASSWORD=wrong "$teex" account import --keystore "$tmp/ks.json" 2>"$tmp/err"; then
  fail "wrong password accepted"
fi
grep -qi "password\|authentication\|tampered" "$tmp/err" || fail "no clear error: $(cat "$tmp/err")"

# The development chain's first account, from its private key.
dev_key=ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
echo "$dev_key" > "$tmp/key.hex"
printf 'pw-from-file\n' > "$tmp/pw"
dev="$(TEEX_HOME="$tmp/d" "$teex" account import --private-key-file "$tmp/key.hex" --password-file "$tmp/pw")"
[ "$dev" = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266" ] || fail "dev address $dev"
if TEEX_HOME="$tmp/d" "$teex" account import --private-key-file "$tmp/key.hex" --password-file "$tmp/pw" 2>"$tmp/err"; then
  fail "duplicate import accepted"
fi
grep -q "already" "$tmp/err" || fail "duplicate: $(cat "$tmp/err")"
# The key is not on disk in clear, hex (either case) or base64; the same
# search finds it in the key file (positive control).
b64="$(printf '%s' "$dev_key" | xxd -r -p | base64 | cut -c1-40)"
for needle in "$dev_key" "${dev_key^^}" "$b64"; do
  if grep -rqF "$needle" "$tmp/d/keystore"; then fail "key found on disk"; fi
done
grep -qF "$dev_key" "$tmp/key.hex" || fail "positive control"
# A password must never be accepted as an argument.
if "$teex" account new --password x 2>/dev/null; then fail "--password accepted"; fi

# Balance from a real node.
anvil="$src/tools/node_modules/.bin/anvil"
port=$((20000 + RANDOM % 12000))
"$anvil" --port "$port" --silent >/dev/null 2>&1 &
anvil_pid=$!
for _ in $(seq 100); do
  "$teex" account balance "$dev" --rpc "http://127.0.0.1:$port" >"$tmp/bal" 2>/dev/null && break
  sleep 0.1
done
grep -q "10000000000000000000000 wei" "$tmp/bal" || fail "balance: $(cat "$tmp/bal")"
kill "$anvil_pid"; wait "$anvil_pid" 2>/dev/null || true; anvil_pid=""
if "$teex" account balance "$dev" --rpc "http://127.0.0.1:$port" 2>"$tmp/err"; then
  fail "balance without a node"
fi
grep -qi "rpc\|connect" "$tmp/err" || fail "no clear error: $(cat "$tmp/err")"
echo "account cli: ok"
