#!/usr/bin/env bash
# A provider deploys services through a real Service Manager: `teex sm run`,
# `teex account new`, `teex service deploy` (pack, encrypt, IPFS, RA-TLS to
# the SM, signed registration); only ciphertext reaches the IPFS store (with
# a positive control); a second version keeps the service keys; an
# unchanged image cannot be registered twice; an SM whose measurement the
# provider's policy does not pin is refused before any key is sent.
set -euo pipefail
teex="${TEEX_BIN:?}"
src="${TEEX_SOURCE_DIR:?}"
tmp="$(mktemp -d)"
sm_pid=""
cleanup() { [ -n "$sm_pid" ] && kill "$sm_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/sm.log" ] && tail -5 "$tmp/sm.log" >&2; exit 1; }
field() { "$teex" tee measure --role "$1" | awk -v k="$2" '$1 == k { print $2; exit }'; }

export TEEX_HOME="$tmp/home" TEEX_PASSWORD=provider-pw
"$teex" tee init >/dev/null
root="$(cat "$TEEX_HOME/tee/root.pub")"
cat > "$tmp/sm-enclaves.policy" <<P
[policy]
allow_simulated = true
roles = worker, dispatcher
[roots]
net = $root
[measurements]
worker = $(field worker mr_enclave)
P
cat > "$tmp/sm.policy" <<P
[policy]
allow_simulated = true
roles = sm
[roots]
net = $root
[measurements]
sm = $(field sm mr_enclave)
P
sm_addr="$("$teex" sm init 2>/dev/null)"
[ "$("$teex" sm init 2>/dev/null)" = "$sm_addr" ] || fail "sm init not stable"
"$teex" sm run --listen 127.0.0.1:0 --client-listen 127.0.0.1:0 \
  --policy "$tmp/sm-enclaves.policy" \
  --service-registry 0x1111111111111111111111111111111111111111 \
  --enclave-registry 0x2222222222222222222222222222222222222222 \
  --ready-file "$tmp/sm.ready" > "$tmp/sm.log" 2>&1 &
sm_pid=$!
for _ in $(seq 100); do [ -f "$tmp/sm.ready" ] && break; sleep 0.05; done
[ -f "$tmp/sm.ready" ] || fail "sm did not start"
port="$(awk '$1 == "client_port" { print $3 }' "$tmp/sm.ready")"
grep -q "address = $sm_addr" "$tmp/sm.ready" || fail "sm init address differs from the running SM's"

acct="$("$teex" account new --scrypt-n 1024)"
svc="$tmp/svc"
cp -r "$src/examples/services/risk-score/service" "$svc"
"$teex" service deploy "$svc" --account "$acct" --sm "127.0.0.1:$port" \
  --sm-policy "$tmp/sm.policy" --out "$tmp/d1.json" > "$tmp/out1" \
  || fail "deploy: $(cat "$tmp/out1")"
grep -q "^deployed .* version 1" "$tmp/out1" || fail "output: $(cat "$tmp/out1")"
cid="$(sed -n 's/.*"image_cid":"\([^"]*\)".*/\1/p' "$tmp/d1.json")"
key1="$(sed -n 's/.*"signing_key":"\([^"]*\)".*/\1/p' "$tmp/d1.json")"
[ -n "$cid" ] && [ -n "$key1" ] || fail "record: $(cat "$tmp/d1.json")"
"$teex" ipfs cat "$cid" --store "$TEEX_HOME/ipfs" > "$tmp/ct" || fail "ipfs cat"

# Only ciphertext reached IPFS: a line of the service's code is not in the
# store; the same search finds it in the packed image (positive control).
needle="$(grep -m1 -o 'def [a-z_]*' "$svc"/*.py | head -1 | cut -d: -f2)"
[ -n "$needle" ] || fail "no needle"
"$teex" service pack "$svc" -o "$tmp/plain.img" >/dev/null
grep -qF "$needle" "$tmp/plain.img" || fail "positive control"
if grep -rqF "$needle" "$TEEX_HOME/ipfs" "$tmp/ct"; then fail "service code in clear on IPFS"; fi
if grep -rqF "$needle" "$TEEX_HOME/sm"; then fail "service code in clear in the SM's state"; fi

# The same image again: refused (it is version 1 already).
if "$teex" service deploy "$svc" --account "$acct" --sm "127.0.0.1:$port" \
   --sm-policy "$tmp/sm.policy" > "$tmp/out" 2>&1; then fail "duplicate accepted"; fi
grep -q "already registered" "$tmp/out" || fail "duplicate: $(cat "$tmp/out")"

# A new version keeps the service's keys.
echo "# v2" >> "$svc/$(ls "$svc" | grep '\.py$' | head -1)"
"$teex" service deploy "$svc" --account "$acct" --sm "127.0.0.1:$port" \
  --sm-policy "$tmp/sm.policy" --version 2 --out "$tmp/d2.json" > "$tmp/out2" \
  || fail "deploy v2: $(cat "$tmp/out2")"
grep -q "version 2" "$tmp/out2" || fail "v2 output"
grep -q "\"signing_key\":\"$key1\"" "$tmp/d2.json" || fail "v2 changed the service key"

# An SM running other code than the policy pins: refused, no key sent.
sed "s/^sm = .*/sm = $(printf '0%.0s' $(seq 64))/" "$tmp/sm.policy" > "$tmp/bad.policy"
if "$teex" service deploy "$svc" --account "$acct" --sm "127.0.0.1:$port" \
   --sm-policy "$tmp/bad.policy" --version 3 > "$tmp/out" 2>&1; then fail "bad SM accepted"; fi
grep -q "connect SM" "$tmp/out" || fail "bad SM: $(cat "$tmp/out")"
grep -q "measurement" "$tmp/out" || fail "bad SM reason: $(cat "$tmp/out")"
kill "$sm_pid"; wait "$sm_pid" || fail "sm exit status $?"; sm_pid=""
echo "deploy cli: ok"
