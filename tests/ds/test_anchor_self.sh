#!/usr/bin/env bash
# TEE-DS anchors published by the group itself, with real `teex ds run`
# replicas, a real anvil chain (DsAnchor from `teex chain deploy`) and the
# local IPFS block store:
#  - replicas run with --anchor-payer before their enclave addresses are
#    enrolled: anchoring fails, is logged, and the group serves;
#  - `teex ds anchor --enroll` lists the addresses bound in the replicas'
#    RA-TLS evidence; from then on anchors appear on chain as the group
#    writes, with no CLI call, signed by one of those addresses;
#  - the CID on chain names a document in IPFS whose keccak256 is the
#    commitment hash on chain and whose index and state digest are the ones
#    on chain (the digest not zero);
#  - the chain goes down: the group keeps serving; it comes back: anchoring
#    resumes past the writes made meanwhile;
#  - a clean stop anchors the last applied entry;
#  - the whole group restored to older disks refuses to serve, caught by an
#    anchor the group published itself.
set -euo pipefail
teex="${TEEX_BIN:?}"
tmp="$(mktemp -d)"
export TEEX_HOME="$tmp/home"
chain="$tmp/chain"
mkdir -p "$chain"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  "$teex" chain down --dir "$chain" >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for i in 1 2 3; do echo "--- replica $i" >&2; grep -v comp=net "$tmp/r$i.log" | tail -8 >&2 || true; done
  exit 1
}

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$teex" chain up --dir "$chain" --port "$port" >/dev/null || fail "chain up"
"$teex" chain deploy --dir "$chain" --sm 0x8626f6940E2eb28930eFb4CeF49B2d1F2C9C1199 >/dev/null ||
  fail "deploy"
# anvil's account 3 owns the group on chain; account 4 pays the replicas' gas.
echo 7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6 >"$tmp/owner.key"
echo 47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a >"$tmp/payer.key"

read -r -a ports <<<"$(python3 -c '
import random, socket
got = []
while len(got) < 6:
    p = random.randrange(15000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    if p not in got:
        got.append(p)
print(" ".join(map(str, got)))')"
"$teex" tee init >/dev/null
spki="$("$teex" ds client-key --out "$tmp/cl")"
m=()
for i in 1 2 3; do m+=(--member "$i=127.0.0.1:${ports[i - 1]},127.0.0.1:${ports[i + 2]}"); done
"$teex" ds init --state "$tmp/r1" --id 1 --new-group "${m[@]}" --client "app=$spki:app" >/dev/null
for i in 2 3; do "$teex" ds init --state "$tmp/r$i" --id "$i" --group "$tmp/r1/group.conf" >/dev/null; done
C=(--state "$tmp/r1" --cert "$tmp/cl/client.pem" --key "$tmp/cl/client.key")

start() {
  pids=()
  for i in 1 2 3; do
    rm -f "$tmp/r$i.ready"
    "$teex" ds run --state "$tmp/r$i" --ready-file "$tmp/r$i.ready" \
      --election-timeout 150 --chain-conf "$chain/chain.conf" \
      --anchor-payer "$tmp/payer.key" --anchor-every 3 --anchor-interval 1000 \
      --ipfs-store "$tmp/ipfs" >>"$tmp/r$i.log" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3; do
    for _ in $(seq 600); do [ -f "$tmp/r$i.ready" ] && break; sleep 0.05; done
    [ -f "$tmp/r$i.ready" ] || fail "replica $i did not start"
  done
}
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
write() {
  for _ in $(seq 100); do
    "$teex" ds set "$1" "$2" "${C[@]}" --timeout 2000 >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "write $1"
}
chain_index() { # the latest anchor's index on chain (0: none)
  local v # (status exits non-zero while no replica runs: its text still counts)
  v="$("$teex" ds status "${C[@]}" --chain-conf "$chain/chain.conf" 2>/dev/null || true)"
  v="$(echo "$v" | sed -n 's/^chain anchor: index \([0-9]*\) .*/\1/p')"
  echo "${v:-0}"
}
leader_applied() {
  "$teex" ds status "${C[@]}" | awk '$1 ~ /^[0-9]+$/ && $3 == "leader" { print $6 }'
}
replica_anchored() { # the highest index a replica says it anchored (0: none)
  local v
  v="$("$teex" ds status "${C[@]}" 2>/dev/null || true)"
  v="$(echo "$v" | sed -n 's/.*anchored by this replica at index \([0-9]*\) .*/\1/p' | sort -n | tail -1)"
  echo "${v:-0}"
}
wait_anchor_at_least() { # wait_anchor_at_least N WHAT: on chain, and the
  # replica's job finished (so that none is in flight afterwards)
  for _ in $(seq 200); do
    [ "$(chain_index)" -ge "$1" ] && [ "$(replica_anchored)" -ge "$1" ] && return 0
    sleep 0.1
  done
  fail "$2: chain anchor $(chain_index), wanted >= $1"
}

# Not enrolled yet: anchoring fails, is logged, and the group serves.
start
for j in 1 2 3 4; do write "p$j" "v$j"; done
for _ in $(seq 100); do
  grep -q "anchoring failed" "$tmp"/r?.log && break
  sleep 0.1
done
grep -q "anchoring failed" "$tmp"/r?.log || fail "no anchoring failure logged before enrolment"
[ "$(chain_index)" = 0 ] || fail "an anchor before enrolment"
[ "$("$teex" ds get p4 "${C[@]}")" = v4 ] || fail "read before enrolment"

# Enrol the attested enclave addresses; anchors follow the writes by themselves.
out="$("$teex" ds anchor --enroll --chain-conf "$chain/chain.conf" --key-file "$tmp/owner.key" "${C[@]}")" ||
  fail "enroll: $out"
[ "$(echo "$out" | grep -c '^anchorer 0x[0-9a-f]\{40\} ')" = 3 ] || fail "enroll output: $out"
anchorers="$(echo "$out" | awk '{ print $2 }')"
[ "$(echo "$anchorers" | sort -u | wc -l)" = 3 ] || fail "replicas share an address: $anchorers"
for j in 5 6 7; do write "e$j" "v$j"; done
target="$(leader_applied)"
wait_anchor_at_least "$target" "first self-published anchor"
st="$("$teex" ds status "${C[@]}" --chain-conf "$chain/chain.conf")"
signer="$(echo "$st" | sed -n 's/^chain anchor: .* signer \(0x[0-9a-f]*\) .*/\1/p')"
echo "$anchorers" | grep -qx "$signer" || fail "signer $signer is not an enrolled replica: $anchorers"
echo "$st" | grep -q "anchored by this replica at index" || fail "status does not show the replica's anchor: $st"

# The document in IPFS is the one the chain commits to.
read -r idx cid <<<"$(echo "$st" | sed -n 's/^chain anchor: index \([0-9]*\) .* cid \([a-z0-9]*\)$/\1 \2/p')"
[ -n "$cid" ] || fail "no CID in: $st"
"$teex" ipfs cat "$cid" --store "$tmp/ipfs" >"$tmp/doc" || fail "ipfs cat $cid"
digest="$(echo "$st" | sed -n 's/.* state_digest \([0-9a-f]*\) .*/\1/p')"
hash="$(echo "$st" | sed -n 's/.* commitment_hash \([0-9a-f]*\) .*/\1/p')"
achain="$(echo "$st" | sed -n 's/.* applied_chain \([0-9a-f]*\)$/\1/p')"
head -1 "$tmp/doc" | grep -qx "teex/ds-anchor/v1" || fail "document: $(cat "$tmp/doc")"
grep -qx "index $idx" "$tmp/doc" || fail "document index, chain $idx: $(cat "$tmp/doc")"
grep -qx "state_digest $digest" "$tmp/doc" || fail "document digest, chain $digest: $(cat "$tmp/doc")"
grep -qx "applied_chain $achain" "$tmp/doc" || fail "document chain: $(cat "$tmp/doc")"
[ "$digest" != "$(printf '0%.0s' $(seq 64))" ] || fail "state digest is zero"
dochash="$(NODE_PATH="$(dirname "$0")/../../tools/node_modules" node -e '
const fs = require("fs"); const { keccak256 } = require("ethers");
process.stdout.write(keccak256(fs.readFileSync(process.argv[1])).slice(2));' "$tmp/doc")"
[ "$dochash" = "$hash" ] || fail "keccak256(document) $dochash, chain $hash"
[ "$("$teex" ipfs cid "$tmp/doc")" = "$cid" ] || fail "the document's CID is not the chain's"
echo "self-published anchor at $idx, cid $cid, signer $signer"

# More writes: a higher anchor, still without any CLI call.
for j in 8 9 10; do write "e$j" "v$j"; done
target="$(leader_applied)"
wait_anchor_at_least "$target" "second self-published anchor"

# The chain goes away: the group keeps serving; anchoring resumes after.
before="$(chain_index)"
"$teex" chain down --dir "$chain" >/dev/null || fail "chain down"
fails="$(cat "$tmp"/r?.log | grep -c "anchoring failed")"
for j in 11 12 13 14 15; do write "d$j" "v$j"; done
[ "$("$teex" ds get d15 "${C[@]}")" = v15 ] || fail "read with the chain down"
for _ in $(seq 300); do
  [ "$(cat "$tmp"/r?.log | grep -c "anchoring failed")" -gt "$fails" ] && break
  sleep 0.1
done
[ "$(cat "$tmp"/r?.log | grep -c "anchoring failed")" -gt "$fails" ] ||
  fail "no anchoring failure logged while the chain was down"
"$teex" chain up --dir "$chain" --port "$port" >/dev/null || fail "chain up again"
[ "$(chain_index)" = "$before" ] || fail "chain state not kept across down/up"
target="$(leader_applied)"
wait_anchor_at_least "$target" "anchoring after the chain came back"
echo "chain down and up: served meanwhile, anchored $(chain_index) after"

# A clean stop anchors what was applied.
write s1 v1
last="$(leader_applied)"
stop
[ "$(chain_index)" -ge "$last" ] || fail "stop anchored $(chain_index), applied $last"
for i in 1 2 3; do cp -a "$tmp/r$i" "$tmp/A$i"; done

# Time B: more writes, anchored by the group.
start
for j in 1 2 3 4 5 6; do write "b$j" "v$j"; done
target="$(leader_applied)"
wait_anchor_at_least "$target" "anchor at B"
stop

# Restored to A: the group's own anchor refuses the old disks.
for i in 1 2 3; do rm -rf "$tmp/r$i"; cp -a "$tmp/A$i" "$tmp/r$i"; done
start
sleep 2
st="$("$teex" ds status "${C[@]}" 2>&1 || true)"
[ "$(echo "$st" | grep -c 'freshness: rolled back')" = 3 ] || fail "rollback not reported: $st"
if "$teex" ds get b1 "${C[@]}" --timeout 1500 >/dev/null 2>&1; then
  fail "a rolled-back group served a read"
fi
stop
echo "anchor self: ok"
