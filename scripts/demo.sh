#!/usr/bin/env bash
# The main job: installs what is needed, builds teex, brings a local teex
# network up on loopback, and has it do real work with the example services
# — a provider deploys each (encrypted image on IPFS, keys with the Service
# Manager after checking its attestation, listed on the local chain with the
# SM's signature), each runs in the sandboxed executor a worker uses — then
# shows the app store and the network's health and stops it.
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
  input="$(ls "$svc"/input.* | head -1)"
  step "run $name in the sandbox (input $(basename "$input"))"
  "$teex" service run "$svc/service" --input "$input"
  echo
  echo "expected: $(cat "$svc"/expected_output.*)"
done

step "the app store on chain"
"$teex" service list

step "network health"
"$teex" status
