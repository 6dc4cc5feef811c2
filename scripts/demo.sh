#!/usr/bin/env bash
# The main job: installs what is needed, builds teex, brings a local teex
# network up on loopback, and has it do real work with the example services
# — a provider deploys each (encrypted image on IPFS, keys with the Service
# Manager after checking its attestation, listed on the local chain with the
# SM's signature); a user deposits escrow and invokes each through the
# dispatcher and a worker's sandbox (inputs and outputs only inside the
# user's RA-TLS session with the worker, outputs verified against the
# service key on chain); the dispatcher settles the receipts on chain in one
# batch; then it shows the network's health and stops it.
#
# Usage: scripts/demo.sh [--keep]   (--keep: leave the network running)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
keep=0
[ "${1:-}" = "--keep" ] && keep=1

bash scripts/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
teex="$root/build/release/teex"

export TEEX_HOME="${TEEX_HOME:-$root/.teex-demo}"
export TEEX_PASSWORD="${TEEX_PASSWORD:-demo-password}"
mkdir -p "$TEEX_HOME"
"$teex" down >/dev/null 2>&1 || true
stop() { [ "$keep" = 1 ] || "$teex" down; }
trap stop EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "bring the network up ($TEEX_HOME)"
"$teex" up
"$teex" status

step "a provider account (the dev chain's funded account 1; its key is public)"
dev_key=59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
provider=0x70997970C51812dc3A010C7d01b50e0d17dc79C8
if ! "$teex" account list | grep -qx "$provider"; then
  keyfile="$(mktemp)"
  echo "$dev_key" > "$keyfile"
  "$teex" account import --private-key-file "$keyfile"
  rm -f "$keyfile"
fi
"$teex" account balance "$provider" \
  --rpc "$(awk -F' = ' '$1 == "rpc" { print $2 }' "$TEEX_HOME/network.conf")"

sm="$(awk -F' = ' '$1 == "client" { print $2 }' "$TEEX_HOME/network.conf")"
for svc in examples/services/*/; do
  name="$(basename "$svc")"
  step "deploy $name"
  "$teex" service deploy "$svc/service" --account "$provider" --sm "$sm" \
    --sm-policy "$TEEX_HOME/policy/sm.conf" \
    --price 1000000000000000 --remuneration 700000000000000 \
    --out "$TEEX_HOME/deployed-$name.json" ||
    echo "(already deployed: $name)"
done

step "the app store on chain"
"$teex" service list

step "a user (the dev chain's account 2) deposits escrow for the dispatcher"
user_key=5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a
user=0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC
if ! "$teex" account list | grep -qx "$user"; then
  keyfile="$(mktemp)"
  echo "$user_key" > "$keyfile"
  "$teex" account import --private-key-file "$keyfile"
  rm -f "$keyfile"
fi
dispatcher="$(awk -F' = ' '$1 == "address" { print $2 }' "$TEEX_HOME/run/dispatcher.ready")"
"$teex" deposit "$dispatcher" 10000000000000000 --from "$user"

for svc in examples/services/*/; do
  name="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$svc/service/teex.toml" | head -1)"
  input="$(ls "$svc"/input.* | head -1)"
  step "invoke $name: dispatcher -> worker (RA-TLS), input $(basename "$input")"
  "$teex" invoke "$name" --input "$input" --account "$user"
  echo "expected: $(cat "$svc"/expected_output.*)"
done

step "settlement: the dispatcher settles receipts on chain in batches"
n="$(ls -d examples/services/*/ | wc -l)"
for _ in $(seq 60); do
  "$teex" withdraw "$dispatcher" --status --from "$user" > "$TEEX_HOME/settled.txt"
  grep -q "settled *${n}000000000000000 wei" "$TEEX_HOME/settled.txt" && break
  sleep 1
done
grep "batch settled" "$TEEX_HOME/logs/dispatcher.log"
cat "$TEEX_HOME/settled.txt"

step "network health"
"$teex" status
