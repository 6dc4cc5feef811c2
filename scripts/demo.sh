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
# An example's service is in service/, or in app/ when it needs a network
# (kv-notebook keeps its state in TEE-DS through teex.kv).
svc_dir() { if [ -d "$1/service" ]; then echo "$1/service"; else echo "$1/app"; fi; }
for svc in examples/services/*/; do
  name="$(basename "$svc")"
  step "deploy $name"
  if "$teex" service deploy "$(svc_dir "$svc")" --account "$provider" --sm "$sm" \
    --sm-policy "$TEEX_HOME/policy/sm.conf" \
    --price 1000000000000000 --remuneration 700000000000000 \
    --out "$TEEX_HOME/deployed-$name.json" > "$TEEX_HOME/deploy-$name.txt"; then
    cat "$TEEX_HOME/deploy-$name.txt"
  else
    echo "(already deployed: $name)"
  fi
done

step "a data provider (the dev chain's account 3) publishes the example datasets"
dp_key=7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6
dp=0x90F79bf6EB2c4f870365E785982E1f101E93b906
if ! "$teex" account list | grep -qx "$dp"; then
  keyfile="$(mktemp)"
  echo "$dp_key" > "$keyfile"
  "$teex" account import --private-key-file "$keyfile"
  rm -f "$keyfile"
fi
data_price=100000000000000
for svc in examples/services/*/; do
  base="$(basename "$svc")"
  name="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$(svc_dir "$svc")/teex.toml" | head -1)"
  img="$(sed -n 's/^ *image hash *\(0x[0-9a-f]*\)/\1/p' "$TEEX_HOME/deploy-$base.txt" | head -1)"
  for d in "$svc"data*.csv; do
    [ -e "$d" ] && [ -n "$img" ] || continue
    # The listing approves exactly this service at this image hash.
    "$teex" data publish "$d" --account "$dp" --price "$data_price" \
      --allow "$name@$img" || echo "(already published: $(basename "$d"))"
  done
done
"$teex" data list

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

total=0
for svc in examples/services/*/; do
  name="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$(svc_dir "$svc")/teex.toml" | head -1)"
  input="$(ls "$svc"/input.* | head -1)"
  data=()
  price=1000000000000000
  for d in "$svc"data*.csv; do
    [ -e "$d" ] || continue
    data=(--data "$(basename "$d")")
    price=$((price + data_price))
  done
  step "invoke $name: dispatcher -> worker (RA-TLS), input $(basename "$input") ${data[*]}"
  "$teex" invoke "$name" --input "$input" --account "$user" "${data[@]}"
  total=$((total + price))
  for e in "$svc"expected_output.*; do
    [ -e "$e" ] && echo "expected: $(cat "$e")"
  done
done

step "settlement: the dispatcher settles receipts on chain in batches"
for _ in $(seq 60); do
  "$teex" withdraw "$dispatcher" --status --from "$user" > "$TEEX_HOME/settled.txt"
  grep -q "settled *${total} wei" "$TEEX_HOME/settled.txt" && break
  sleep 1
done
grep "batch settled" "$TEEX_HOME/logs/dispatcher.log"
cat "$TEEX_HOME/settled.txt"
grep -q "settled *${total} wei" "$TEEX_HOME/settled.txt" ||
  { echo "demo: expected ${total} wei settled" >&2; exit 1; }

step "what the data provider earned (uses and credits from the chain)"
"$teex" data show data0.csv

step "network health"
"$teex" status
