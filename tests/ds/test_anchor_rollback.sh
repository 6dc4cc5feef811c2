#!/usr/bin/env bash
# TEE-DS freshness anchoring with real `teex ds run` replicas and a real
# anvil chain (DsAnchor deployed by `teex chain deploy`):
#  - a group without --chain-conf says it is not anchored;
#  - anchors appear on chain as the group writes (`teex ds anchor`, each at
#    a higher index; the same index again is refused by the contract);
#  - all three state directories copied at time A, more writes and an anchor
#    at time B, group stopped, directories restored to A, restart: every
#    replica refuses to serve with the rollback error (status and requests);
#  - only one replica restored to A (the others at B): it catches up from the
#    others and serves, no error, and every replica's hash chain at the
#    anchored index is the anchored one;
#  - a replica told to check freshness whose chain is unreachable does not
#    start.
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

port="$(python3 "${TEEX_SOURCE_DIR:?}/tests/free_ports.py" 1 20000 32000)"
"$teex" chain up --dir "$chain" --port "$port" >/dev/null || fail "chain up"
"$teex" chain deploy --dir "$chain" --sm 0x8626f6940E2eb28930eFb4CeF49B2d1F2C9C1199 >/dev/null ||
  fail "deploy"
grep -q "^ds_anchor = 0x" "$chain/chain.conf" || fail "no DsAnchor in chain.conf"
# anvil's account 3 signs and pays for the anchors (the group's owner).
echo 7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6 >"$tmp/owner.key"

# Six free loopback ports (raft and client per replica), below the kernel's
# ephemeral range so that no outgoing connection takes one between restarts.
read -r -a ports <<<"$(python3 "${TEEX_SOURCE_DIR:?}/tests/free_ports.py" 6)"
"$teex" tee init >/dev/null
spki="$("$teex" ds client-key --out "$tmp/cl")"
m=()
for i in 1 2 3; do m+=(--member "$i=127.0.0.1:${ports[i - 1]},127.0.0.1:${ports[i + 2]}"); done
"$teex" ds init --state "$tmp/r1" --id 1 --new-group "${m[@]}" --client "app=$spki:app" >/dev/null
for i in 2 3; do "$teex" ds init --state "$tmp/r$i" --id "$i" --group "$tmp/r1/group.conf" >/dev/null; done
C=(--state "$tmp/r1" --cert "$tmp/cl/client.pem" --key "$tmp/cl/client.key")

start() { # start [extra args...]: all three replicas
  pids=()
  for i in 1 2 3; do
    rm -f "$tmp/r$i.ready"
    "$teex" ds run --state "$tmp/r$i" --ready-file "$tmp/r$i.ready" \
      --election-timeout 150 "$@" >>"$tmp/r$i.log" 2>&1 &
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
write() { # write KEY VALUE, retried while no leader is elected yet
  for _ in $(seq 100); do
    "$teex" ds set "$1" "$2" "${C[@]}" --timeout 2000 >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "write $1"
}
anchor() {
  "$teex" ds anchor --chain-conf "$chain/chain.conf" --key-file "$tmp/owner.key" "${C[@]}" 2>&1
}
wait_healthy() { # every replica ok, same applied index
  for _ in $(seq 150); do
    st="$("$teex" ds status "${C[@]}" --timeout 1000 2>/dev/null || true)"
    if [ "$(echo "$st" | grep -c ' ok$')" = 3 ] &&
      [ "$(echo "$st" | awk '$1 ~ /^[0-9]+$/ { print $6 }' | sort -u | wc -l)" = 1 ]; then
      return 0
    fi
    sleep 0.1
  done
  fail "group not healthy: $st"
}

# Without a chain: works as before, and says it is not anchored.
start
write k0 v0
"$teex" ds status "${C[@]}" | grep -q "freshness: not anchored (no chain configured)" ||
  fail "status without a chain: $("$teex" ds status "${C[@]}")"
stop

# With the chain: anchors appear as the group writes.
start --chain-conf "$chain/chain.conf"
"$teex" ds status "${C[@]}" | grep -q "freshness: not anchored yet" || fail "status before the first anchor"
for j in 1 2 3; do write "a$j" "v$j"; done
out="$(anchor)" || fail "first anchor: $out"
first="$(echo "$out" | sed -n 's/^anchored index \([0-9]*\) .*/\1/p')"
[ -n "$first" ] || fail "anchor output: $out"
if out2="$(anchor)"; then fail "the same index was anchored twice: $out2"; fi
echo "$out2" | grep -q "IndexNotIncreasing" || fail "second anchor at the same index: $out2"
write a4 v4
out="$(anchor)" || fail "second anchor: $out"
second="$(echo "$out" | sed -n 's/^anchored index \([0-9]*\) .*/\1/p')"
[ "$second" -gt "$first" ] || fail "anchors $first then $second"
echo "anchors on chain at $first then $second"
stop

# Time A: copy every replica's state.
for i in 1 2 3; do cp -a "$tmp/r$i" "$tmp/A$i"; done
# More writes and an anchor at time B.
start --chain-conf "$chain/chain.conf"
for j in 5 6 7 8; do write "b$j" "v$j"; done
out="$(anchor)" || fail "anchor at B: $out"
echo "anchor at B: $out"
stop
for i in 1 2 3; do cp -a "$tmp/r$i" "$tmp/B$i"; done

# The whole group restored to A: every replica refuses to serve.
for i in 1 2 3; do rm -rf "$tmp/r$i"; cp -a "$tmp/A$i" "$tmp/r$i"; done
start --chain-conf "$chain/chain.conf"
sleep 2 # several election timeouts: no leader may appear
st="$("$teex" ds status "${C[@]}" 2>&1 || true)"
[ "$(echo "$st" | grep -c 'rolled-back$')" = 3 ] || fail "not every replica reports the rollback: $st"
[ "$(echo "$st" | grep -c 'freshness: rolled back')" = 3 ] || fail "status freshness: $st"
if "$teex" ds get a1 "${C[@]}" --timeout 1500 >"$tmp/get.out" 2>&1; then
  fail "a rolled-back group served a read: $(cat "$tmp/get.out")"
fi
if "$teex" ds get a1 "${C[@]}" --follower --timeout 1500 >"$tmp/get.out" 2>&1; then
  fail "a rolled-back replica served a follower read: $(cat "$tmp/get.out")"
fi
grep -qE "rolled back|rollback" "$tmp/get.out" || fail "read error does not name the rollback: $(cat "$tmp/get.out")"
for i in 1 2 3; do
  grep -q "state rolled back" "$tmp/r$i.log" || fail "replica $i log lacks the rollback error"
done
echo "whole-group rollback: refused ($(echo "$st" | grep -m1 'freshness'))"
stop

# Only replica 3 restored to A, the others at B: it catches up and serves.
for i in 1 2 3; do rm -rf "$tmp/r$i"; cp -a "$tmp/B$i" "$tmp/r$i"; done
rm -rf "$tmp/r3"
cp -a "$tmp/A3" "$tmp/r3"
: >"$tmp/r3.log"
start --chain-conf "$chain/chain.conf"
wait_healthy
"$teex" ds status "${C[@]}" | grep -q "rolled" && fail "rollback still reported after catching up"
grep -q "state rolled back" "$tmp/r3.log" || fail "replica 3 did not notice it was behind the anchor"
grep -q "caught up past the anchor" "$tmp/r3.log" || fail "replica 3 did not report catching up"
# Every replica re-applied its log from the first entry and found the
# anchored hash chain at the anchored index.
st="$("$teex" ds status "${C[@]}")"
[ "$(echo "$st" | grep -c 'hash chain matches the anchor')" = 3 ] || fail "chain check: $st"
v="$("$teex" ds get b8 "${C[@]}")" || fail "read after single rollback"
[ "$v" = v8 ] || fail "read b8 = '$v'"
echo "single-replica rollback: caught up and serving"
stop

# Freshness required but the chain unreachable: the replica does not start.
"$teex" chain down --dir "$chain" >/dev/null
if timeout 30 "$teex" ds run --state "$tmp/r1" --chain-conf "$chain/chain.conf" >"$tmp/nochain.log" 2>&1; then
  fail "started without reading the anchor"
fi
grep -q "cannot read the freshness anchor" "$tmp/nochain.log" || fail "unreachable chain: $(cat "$tmp/nochain.log")"
echo "anchor rollback: ok"
