#!/usr/bin/env bash
# A data provider drives `teex data` against a real chain (anvil with the
# four contracts) and a real Service Manager: publish (encrypt, IPFS,
# escrow over RA-TLS, list, approve), list / show / the app store, approve
# and remove another image, a stranger's approval refused, bad --allow
# refused before anything happens, revoke; the dataset's canary is in no
# file the network wrote (positive control on the provider's own file).
set -euo pipefail
teex="${TEEX_BIN:?}"
tmp="$(mktemp -d)"
sm_pid=""
export TEEX_HOME="$tmp/home" TEEX_PASSWORD=pw
cleanup() {
  [ -n "$sm_pid" ] && kill "$sm_pid" 2>/dev/null
  "$teex" chain down --dir "$TEEX_HOME" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/sm.log" ] && tail -5 "$tmp/sm.log" >&2; exit 1; }
field() { "$teex" tee measure --role "$1" | awk -v k="$2" '$1 == k { print $2; exit }'; }

"$teex" tee init >/dev/null
root="$(cat "$TEEX_HOME/tee/root.pub")"
cat > "$tmp/enclaves.policy" <<P
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
port=$((20000 + RANDOM % 12000))
"$teex" chain up --dir "$TEEX_HOME" --port "$port" >/dev/null || fail "chain up"
sm_addr="$("$teex" sm init 2>/dev/null)"
"$teex" chain deploy --dir "$TEEX_HOME" --sm "$sm_addr" >/dev/null || fail "deploy"
conf="$TEEX_HOME/chain.conf"
get() { sed -n "s/^$1 = //p" "$conf" | tr -d '"'; }
"$teex" sm run --listen 127.0.0.1:0 --client-listen 127.0.0.1:0 \
  --policy "$tmp/enclaves.policy" \
  --service-registry "$(get service_registry)" --enclave-registry "$(get enclave_registry)" \
  --dataset-registry "$(get dataset_registry)" --chain-rpc "$(get rpc_url)" \
  --ready-file "$tmp/sm.ready" > "$tmp/sm.log" 2>&1 &
sm_pid=$!
for _ in $(seq 200); do [ -f "$tmp/sm.ready" ] && break; sleep 0.05; done
[ -f "$tmp/sm.ready" ] || fail "sm did not start"
sm="127.0.0.1:$(awk '$1 == "client_port" { print $3 }' "$tmp/sm.ready")"

# The provider (the dev chain's funded account 1) and a stranger (account 2).
echo 59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d > "$tmp/k1"
echo 5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a > "$tmp/k2"
acct="$("$teex" account import --private-key-file "$tmp/k1" --scrypt-n 1024)"
stranger="$("$teex" account import --private-key-file "$tmp/k2" --scrypt-n 1024)"
svc=0x$(printf '5e%.0s' $(seq 32)); img1=0x$(printf '1e%.0s' $(seq 32)); img2=0x$(printf '2e%.0s' $(seq 32))
canary="CANARY-DATA-CLI-$RANDOM$RANDOM"
printf 'id,value\n1,%s\n' "$canary" > "$tmp/cohort.csv"

common=(--account "$acct" --sm "$sm" --sm-policy "$tmp/sm.policy")
if "$teex" data publish "$tmp/cohort.csv" "${common[@]}" --price 250 --allow "$svc@nothex" \
   > "$tmp/out" 2>&1; then fail "bad --allow accepted"; fi
grep -q "32-byte hex" "$tmp/out" || fail "bad --allow: $(cat "$tmp/out")"
if "$teex" data publish "$tmp/cohort.csv" "${common[@]}" --price 250 --allow "no-such-service@$img1" \
   > "$tmp/out" 2>&1; then fail "unknown service name accepted"; fi
grep -q "no-such-service" "$tmp/out" || fail "unknown service: $(cat "$tmp/out")"
# A listing that fails after the escrow (expiry in the past): the retry,
# with a fresh key, replaces the unlisted escrow.
if "$teex" data publish "$tmp/cohort.csv" "${common[@]}" --price 250 --allow "$svc@$img1" \
   --expires 1 > "$tmp/out" 2>&1; then fail "expiry in the past accepted"; fi
grep -q "ExpiryInPast" "$tmp/out" || fail "past expiry: $(cat "$tmp/out")"
"$teex" data publish "$tmp/cohort.csv" "${common[@]}" --price 250 --allow "$svc@$img1" \
  --max-uses 3 --max-output 4096 --expires +3600 > "$tmp/pub" 2>&1 || fail "publish: $(cat "$tmp/pub")"
grep -q "^published cohort.csv" "$tmp/pub" || fail "publish output: $(cat "$tmp/pub")"
id="$(awk '$1 == "dataset" && $2 == "id" { print $3 }' "$tmp/pub")"
cid="$(awk '$1 == "ciphertext" { print $2 }' "$tmp/pub")"
[ -n "$id" ] && [ -n "$cid" ] || fail "publish output: $(cat "$tmp/pub")"

"$teex" data list > "$tmp/list" || fail "list"
grep -q "^cohort.csv .* 250 .* 3 " "$tmp/list" || fail "list: $(cat "$tmp/list")"
"$teex" data list --json | grep -q '"max_output_bytes":4096' || fail "list --json"
"$teex" data show cohort.csv > "$tmp/show" || fail "show"
grep -q "^approved     1 service image" "$tmp/show" || fail "show: $(cat "$tmp/show")"
grep -q "${svc}@${img1}" "$tmp/show" || fail "show pair: $(cat "$tmp/show")"
grep -q "^max uses     3" "$tmp/show" || fail "show terms: $(cat "$tmp/show")"
"$teex" service list --json | grep -q "\"kind\":\"dataset\",\"dataset_id\":\"$id\"" \
  || "$teex" service list --json | grep -q "\"dataset_id\":\"$id\"" || fail "app store json"
"$teex" service list | grep -q "^cohort.csv" || fail "app store: $("$teex" service list)"

# A new image of the service needs its own approval; removal takes it away.
"$teex" data approve "$id" --allow "$svc@$img2" --account "$acct" >/dev/null || fail "approve"
"$teex" data show "$id" | grep -q "^approved     2 service image" || fail "approve did not add"
"$teex" data approve "$id" --allow "$svc@$img2" --remove --account "$acct" >/dev/null || fail "remove"
"$teex" data show "$id" --json | grep -q "$img2" && fail "removal did not remove"
if "$teex" data approve "$id" --allow "$svc@$img2" --account "$stranger" > "$tmp/out" 2>&1; then
  fail "a stranger approved"
fi
grep -q "NotDatasetProvider" "$tmp/out" || fail "stranger: $(cat "$tmp/out")"
"$teex" data show "$id" | grep -q "^approved     1 service image" || fail "stranger changed approvals"

# The same name again, other bytes: the SM keeps the first key.
echo "other" > "$tmp/cohort.csv.2"
if "$teex" data publish "$tmp/cohort.csv.2" --name cohort.csv "${common[@]}" --price 1 \
   --allow "$svc@$img1" > "$tmp/out" 2>&1; then fail "second escrow accepted"; fi
grep -q "already escrowed" "$tmp/out" || fail "second escrow: $(cat "$tmp/out")"

"$teex" data revoke cohort.csv --account "$acct" | grep -q "^revoked $id" || fail "revoke"
"$teex" data list | grep -q "no datasets listed" || fail "revoked still listed"
"$teex" data list --all | grep -q "\[revoked\]" || fail "list --all"
"$teex" data show "$id" | grep -q "^state        revoked" || fail "show revoked"
if "$teex" data revoke "$id" --account "$acct" > "$tmp/out" 2>&1; then fail "revoked twice"; fi

# The canary: in the provider's file (control), nowhere the network wrote.
grep -q "$canary" "$tmp/cohort.csv" || fail "control"
if grep -rqF "$canary" "$TEEX_HOME" "$tmp/sm.log"; then fail "canary in clear: $(grep -rlF "$canary" "$TEEX_HOME")"; fi
"$teex" ipfs cat "$cid" --store "$TEEX_HOME/ipfs" > "$tmp/ct" || fail "ipfs cat"
grep -qF "$canary" "$tmp/ct" && fail "ciphertext holds the canary"
kill "$sm_pid"; wait "$sm_pid" || fail "sm exit status $?"; sm_pid=""
echo "data cli: ok"
