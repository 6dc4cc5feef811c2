#!/usr/bin/env bash
# Confidentiality of TEE-DS at rest and on the wire: three real `teex ds run`
# replicas on loopback, a client writing unique canary keys and values (set,
# an overwrite, a multi-entry scan, a read of each, a delete), while tcpdump
# captures the loopback interface. After a clean stop, no canary is in any
# file of the replicas (state directories: raft log, snapshots, sealed
# records, logs) nor in any captured packet — in plain, hex or base64
# (tests/up/find_canary.py). Positive controls: a canary sent in the clear
# over loopback during the capture is found in the capture, a canary written
# in the clear into a state directory is found there, and the values read
# back are the canaries (the client saw them, so they did cross the wire).
# Needs root for tcpdump; reported as skipped (exit 77) otherwise.
set -euo pipefail
teex="${TEEX_BIN:?}"
src="${TEEX_SOURCE_DIR:?}"
find="$src/tests/up/find_canary.py"
if [ "$(id -u)" != 0 ] || ! command -v tcpdump >/dev/null; then
  echo "SKIP: capturing loopback traffic needs root and tcpdump"
  exit 77
fi
tmp="$(mktemp -d)"
export TEEX_HOME="$tmp/home"
pids=()
cap_pid=""
cleanup() {
  [ -n "$cap_pid" ] && kill "$cap_pid" 2>/dev/null
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for i in 1 2 3; do echo "--- replica $i" >&2; tail -8 "$tmp/r$i.log" >&2 || true; done
  exit 1
}

r() { od -An -N6 -tx1 /dev/urandom | tr -d ' \n'; }
key_canary="KEYCANARY$(r)"
val_canary="VALCANARY$(r)"
new_canary="NEWCANARY$(r)"
scan_canary="SCANCANARY$(r)"
clear_canary="CLEARCANARY$(r)"

# Six free loopback ports (raft and client per replica), below the kernel's
# ephemeral range so that no outgoing connection takes one between restarts.
read -r -a ports <<<"$(python3 "$src/tests/free_ports.py" 6)"
"$teex" tee init >/dev/null
spki="$("$teex" ds client-key --out "$tmp/cl")"
m=()
for i in 1 2 3; do m+=(--member "$i=127.0.0.1:${ports[i - 1]},127.0.0.1:${ports[i + 2]}"); done
"$teex" ds init --state "$tmp/r1" --id 1 --new-group "${m[@]}" --client "app=$spki:app" >/dev/null
for i in 2 3; do "$teex" ds init --state "$tmp/r$i" --id "$i" --group "$tmp/r1/group.conf" >/dev/null; done

# The capture starts before any replica does, so the group-key hand-over,
# the raft traffic and the client RPCs are all in it.
# --immediate-mode: each packet reaches the file as it is captured; without
# it libpcap hands packets over in blocks (up to 1 s old), and the block
# pending when tcpdump is stopped is lost — the last packets of the run.
tcpdump -i lo --immediate-mode -U -w "$tmp/lo.pcap" -s 0 >/dev/null 2>&1 &
cap_pid=$!
for _ in $(seq 50); do [ -s "$tmp/lo.pcap" ] && break; sleep 0.1; done
sleep 0.3

for i in 1 2 3; do
  "$teex" ds run --state "$tmp/r$i" --ready-file "$tmp/r$i.ready" \
    --election-timeout 150 >"$tmp/r$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 600); do [ -f "$tmp/r$i.ready" ] && break; sleep 0.05; done
  [ -f "$tmp/r$i.ready" ] || fail "replica $i did not start"
done
C=(--state "$tmp/r1" --cert "$tmp/cl/client.pem" --key "$tmp/cl/client.key")
ok=""
for _ in $(seq 100); do
  if "$teex" ds set "$key_canary" "$val_canary" "${C[@]}" --timeout 2000 >/dev/null 2>&1; then
    ok=1; break
  fi
  sleep 0.1
done
[ -n "$ok" ] || fail "no write accepted"
for j in 1 2 3; do
  "$teex" ds set "$scan_canary/$j" "$scan_canary-value-$j" "${C[@]}" >/dev/null || fail "set $j"
done
v="$("$teex" ds get "$key_canary" "${C[@]}")" || fail "get"
[ "$v" = "$val_canary" ] || fail "read '$v' (want $val_canary)"
"$teex" ds set "$key_canary" "$new_canary" "${C[@]}" >/dev/null || fail "overwrite"
v="$("$teex" ds get "$key_canary" "${C[@]}")" || fail "get after overwrite"
[ "$v" = "$new_canary" ] || fail "read '$v' after overwrite (want $new_canary)"
"$teex" ds scan "$scan_canary/" "${C[@]}" >"$tmp/scan" || fail "scan"
[ "$(grep -c "$scan_canary-value-" "$tmp/scan")" = 3 ] || fail "scan: $(cat "$tmp/scan")"
"$teex" ds del "$scan_canary/1" "${C[@]}" >/dev/null || fail "del"

# Clean stop (SIGTERM): every replica writes its final state to disk.
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()
# Positive control on the wire: the same canary search must find a canary
# that crossed loopback in the clear during this capture. It is sent last
# and the capture stops only once it is in the file: tcpdump reads the
# kernel's buffer in order, so everything sent before it is in the file too
# (stopping after a fixed sleep lost the tail under load).
python3 - "$clear_canary" <<'PY'
import socket, sys
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
cli = socket.create_connection(srv.getsockname())
conn, _ = srv.accept()
cli.sendall(sys.argv[1].encode())
assert conn.recv(100) == sys.argv[1].encode()
cli.close(); conn.close(); srv.close()
PY

for _ in $(seq 200); do
  python3 "$find" "$clear_canary" "$tmp/lo.pcap" >/dev/null || break
  sleep 0.1
done
kill "$cap_pid"; wait "$cap_pid" 2>/dev/null || true; cap_pid=""
[ -s "$tmp/lo.pcap" ] || fail "no traffic captured"
for i in 1 2 3; do
  ls "$tmp/r$i" | grep -q . || fail "replica $i wrote no state"
done

# Controls: the search finds what is there ...
python3 "$find" "$clear_canary" "$tmp/lo.pcap" >/dev/null && fail "control: clear canary not found in the capture"
echo "control $key_canary" >"$tmp/r2/control.txt"
python3 "$find" "$key_canary" "$tmp/r2" >/dev/null && fail "control: clear canary not found in a state directory"
rm "$tmp/r2/control.txt"
# ... and no canary is anywhere else: replica state, replica logs, traffic.
all="$key_canary,$val_canary,$new_canary,$scan_canary"
if python3 "$find" "$all" "$tmp/r1" "$tmp/r2" "$tmp/r3" "$tmp/r1.log" "$tmp/r2.log" "$tmp/r3.log" \
  "$TEEX_HOME" "$tmp/lo.pcap" >"$tmp/hits"; then
  echo "ds canary: ok ($(stat -c %s "$tmp/lo.pcap") bytes of traffic and" \
    "$(find "$tmp/r1" "$tmp/r2" "$tmp/r3" -type f | wc -l) replica files searched)"
else
  fail "canary leaked: $(cat "$tmp/hits")"
fi
