#!/usr/bin/env bash
# TEE-DS freshness anchoring across snapshots, with real `teex ds run`
# replicas taking a snapshot every 16 entries and a real anvil chain:
#  - the group anchors an index, writes on until every replica's snapshot
#    is past it, and restarts: each replica restores its snapshot, whose
#    hash chain points cover the anchored index, and finds the anchored
#    chain there (honest state accepted, and it serves);
#  - the whole group rolled back to a copy from before the anchor and then
#    forked (other writes, unanchored, past the anchored index and past
#    snapshots): at restart every replica refuses its snapshot as forked
#    and does not serve.
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
echo 7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6 >"$tmp/owner.key"

read -r -a ports <<<"$(python3 "${TEEX_SOURCE_DIR:?}/tests/free_ports.py" 6)"
"$teex" tee init >/dev/null
spki="$("$teex" ds client-key --out "$tmp/cl")"
m=()
for i in 1 2 3; do m+=(--member "$i=127.0.0.1:${ports[i - 1]},127.0.0.1:${ports[i + 2]}"); done
"$teex" ds init --state "$tmp/r1" --id 1 --new-group "${m[@]}" --client "app=$spki:app" >/dev/null
for i in 2 3; do "$teex" ds init --state "$tmp/r$i" --id "$i" --group "$tmp/r1/group.conf" >/dev/null; done
C=(--state "$tmp/r1" --cert "$tmp/cl/client.pem" --key "$tmp/cl/client.key")

launch() { # launch [extra args...]: all three replicas, not waiting
  pids=()
  for i in 1 2 3; do
    rm -f "$tmp/r$i.ready"
    "$teex" ds run --state "$tmp/r$i" --ready-file "$tmp/r$i.ready" \
      --election-timeout 150 --snapshot-threshold 16 "$@" >>"$tmp/r$i.log" 2>&1 &
    pids+=($!)
  done
}
start() {
  launch "$@"
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
snap_index() { # snap_index DIR: the highest index of raft_uv's snapshots there
  ls "$1/raft" | sed -n 's/^snapshot-[0-9]*-\([0-9]*\)-[0-9]*$/\1/p' | sort -n | tail -1
}

# Time A, before anything is anchored.
start
for j in $(seq 1 10); do write "a$j" "v$j"; done
stop
for i in 1 2 3; do cp -a "$tmp/r$i" "$tmp/A$i"; done

# Anchor an index, then write on until every snapshot is past it.
start --chain-conf "$chain/chain.conf"
for j in $(seq 1 20); do write "b$j" "v$j"; done
out="$("$teex" ds anchor --chain-conf "$chain/chain.conf" --key-file "$tmp/owner.key" "${C[@]}" 2>&1)" ||
  fail "anchor: $out"
x="$(echo "$out" | sed -n 's/^anchored index \([0-9]*\) .*/\1/p')"
[ -n "$x" ] || fail "anchor output: $out"
for j in $(seq 21 60); do write "b$j" "v$j"; done
stop
for i in 1 2 3; do
  s="$(snap_index "$tmp/r$i")"
  [ -n "$s" ] && [ "$s" -gt "$x" ] || fail "replica $i: no snapshot past the anchored index $x (${s:-none})"
done
echo "anchored index $x; snapshots past it: $(for i in 1 2 3; do snap_index "$tmp/r$i"; done | tr '\n' ' ')"

# Honest restart from the snapshots: the anchored chain is found there.
start --chain-conf "$chain/chain.conf"
wait_healthy
st="$("$teex" ds status "${C[@]}")"
[ "$(echo "$st" | grep -c 'hash chain matches the anchor')" = 3 ] || fail "honest restart: $st"
echo "$st" | grep -q "not comparable" && fail "chain not compared after a snapshot: $st"
v="$("$teex" ds get b60 "${C[@]}")" || fail "read after the honest restart"
[ "$v" = v60 ] || fail "read b60 = '$v'"
echo "honest restart from snapshots: chain matches the anchor at $x"
stop

# The whole group rolled back to A, then forked: other writes, unanchored,
# past the anchored index and into new snapshots.
for i in 1 2 3; do rm -rf "$tmp/r$i"; cp -a "$tmp/A$i" "$tmp/r$i"; done
start
for j in $(seq 1 80); do write "f$j" "fork$j"; done
stop
for i in 1 2 3; do
  s="$(snap_index "$tmp/r$i")"
  [ -n "$s" ] && [ "$s" -gt "$x" ] || fail "fork: replica $i has no snapshot past $x"
done
for i in 1 2 3; do : >"$tmp/r$i.log"; done
launch --chain-conf "$chain/chain.conf"
for i in 0 1 2; do
  rc=0
  timeout 30 tail --pid="${pids[i]}" -f /dev/null || true
  wait "${pids[i]}" || rc=$?
  [ "$rc" -ne 0 ] || fail "replica $((i + 1)) started on a forked state"
  grep -q "forked: the applied hash chain differs" "$tmp/r$((i + 1)).log" ||
    fail "replica $((i + 1)) does not say it is forked"
done
pids=()
for i in 1 2 3; do [ ! -f "$tmp/r$i.ready" ] || fail "replica $i served a forked state"; done
echo "forked group: every replica refused its snapshot ($(grep -m1 -o 'raft start: .*' "$tmp/r1.log" | cut -c1-120))"
echo "anchor across snapshots: ok"
