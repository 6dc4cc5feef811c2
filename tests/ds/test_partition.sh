#!/usr/bin/env bash
# TEE-DS under a network partition, with real `teex ds run` processes, each
# in its own network namespace joined by a bridge (a further namespace), and
# two clients, one on each side. The partition cuts the leader and client 2
# off from the other two replicas and client 1: the minority stops
# accepting writes (client 2's write fails), the majority elects a leader
# and accepts writes (client 1's succeeds); after healing, the old leader
# follows, the group agrees, and the minority's write never appears.
# Needs root for `ip netns`; reported as skipped (exit 77) otherwise.
set -euo pipefail
teex="${TEEX_BIN:?}"
p="tdp$$"
if [ "$(id -u)" != 0 ] || ! ip netns add "$p-probe" 2>/dev/null; then
  echo "SKIP: network namespaces need root (ip netns)"
  exit 77
fi
ip netns del "$p-probe"
tmp="$(mktemp -d)"
export TEEX_HOME="$tmp/home"
pids=()
nss=(hub c1 c2 1 2 3)
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for n in "${nss[@]}"; do ip netns del "$p-$n" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for i in 1 2 3; do echo "--- replica $i" >&2; grep -v comp=net "$tmp/r$i.log" | tail -8 >&2 || true; done
  exit 1
}

# The network: hub namespace with bridges br0 (everyone) and br1 (the
# minority side during the partition); 10.77.0.1-3 replicas, .101/.102
# clients.
ip netns add "$p-hub"
ip -n "$p-hub" link add br0 type bridge
ip -n "$p-hub" link add br1 type bridge
ip -n "$p-hub" link set br0 up
ip -n "$p-hub" link set br1 up
addr_of() { case "$1" in c1) echo 10.77.0.101 ;; c2) echo 10.77.0.102 ;; *) echo "10.77.0.$1" ;; esac; }
for n in c1 c2 1 2 3; do
  ip netns add "$p-$n"
  ip -n "$p-hub" link add "v$n" type veth peer name e0 netns "$p-$n"
  ip -n "$p-hub" link set "v$n" master br0 up
  ip -n "$p-$n" addr add "$(addr_of "$n")/24" dev e0
  ip -n "$p-$n" link set e0 up
  ip -n "$p-$n" link set lo up
done
side() { # side NODE BRIDGE
  ip -n "$p-hub" link set "v$1" master "$2"
}

"$teex" tee init >/dev/null
spki="$("$teex" ds client-key --out "$tmp/cl")"
m=()
for i in 1 2 3; do m+=(--member "$i=$(addr_of $i):7301,$(addr_of $i):7401"); done
"$teex" ds init --state "$tmp/r1" --id 1 --new-group "${m[@]}" --client "app=$spki:app" >/dev/null
for i in 2 3; do "$teex" ds init --state "$tmp/r$i" --id "$i" --group "$tmp/r1/group.conf" >/dev/null; done
for i in 1 2 3; do
  ip netns exec "$p-$i" "$teex" ds run --state "$tmp/r$i" --ready-file "$tmp/r$i.ready" \
    --election-timeout 150 >"$tmp/r$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 1200); do [ -f "$tmp/r$i.ready" ] && break; sleep 0.05; done
  [ -f "$tmp/r$i.ready" ] || fail "replica $i did not start"
done
C=(--state "$tmp/r1" --cert "$tmp/cl/client.pem" --key "$tmp/cl/client.key")
cli() { local c="$1"; shift; ip netns exec "$p-$c" "$teex" ds "$@" "${C[@]}"; }

leader_of() { # prints the leader's id as seen from client $1, or nothing
  cli "$1" status --timeout 1000 2>/dev/null | awk '$3 == "leader" { print $1; exit }'
}
leader=""
for _ in $(seq 300); do leader="$(leader_of c1)"; [ -n "$leader" ] && break; sleep 0.1; done
[ -n "$leader" ] || fail "no leader"
cli c1 set k before --timeout 30000 >/dev/null || fail "write before the partition"

# Partition: the leader and client 2 on br1, the rest on br0.
side "$leader" br1
side c2 br1
echo "partitioned: leader $leader with client 2"
# The minority cannot commit: client 2's write fails (no acknowledgement).
if cli c2 set k minority --timeout 3000 >/dev/null 2>"$tmp/minority.err"; then
  fail "the minority acknowledged a write"
fi
echo "minority write refused: $(tail -1 "$tmp/minority.err")"
# The majority elects a leader and accepts writes. The deadline is
# generous for a loaded machine; the client skips the unreachable old
# leader after its per-replica connect limit, not at this deadline.
cli c1 set k majority --timeout 30000 >/dev/null || fail "the majority refused a write"
new=""
for _ in $(seq 300); do new="$(leader_of c1)"; [ -n "$new" ] && break; sleep 0.1; done
[ -n "$new" ] && [ "$new" != "$leader" ] || fail "no new leader on the majority side ($new)"
echo "majority leader: $new"

# Heal: everyone back on br0. The old leader follows and catches up.
side "$leader" br0
side c2 br0
ok=""
for _ in $(seq 300); do
  st="$(cli c1 status --timeout 1000 2>/dev/null || true)"
  if [ "$(echo "$st" | grep -c ' ok$')" = 3 ] && [ "$(echo "$st" | awk '$3 == "leader"' | wc -l)" = 1 ] \
     && [ "$(echo "$st" | awk '$1 ~ /^[0-9]+$/ { print $4 }' | sort -u | wc -l)" = 1 ] \
     && [ "$(echo "$st" | awk '$1 ~ /^[0-9]+$/ { print $6 }' | sort -u | wc -l)" = 1 ]; then
    ok=1; break
  fi
  sleep 0.1
done
[ -n "$ok" ] || fail "the group did not converge after healing: $st"
for c in c1 c2; do
  v="$(cli "$c" get k --timeout 30000)" || fail "read after healing from $c"
  [ "$v" = majority ] || fail "read '$v' from $c after healing (want majority)"
done
echo "partition: ok"
