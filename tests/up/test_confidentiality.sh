#!/usr/bin/env bash
# ctest-label: nosan (the workers' sandboxed executors do not run under ASan)
# Confidentiality of the whole network: unique canaries in a service's code,
# in a user's input, in the output and in a data provider's dataset
# (published: encrypted, on IPFS, key escrowed with the SM, listed and
# approved for the deployed image, then leased to the worker and read by
# the task: invoke --data); after deploy → publish → invoke → settle on a
# real `teex up` network, none of them is in any file of the network (data
# directories, sealed state, IPFS store, chain state, logs) nor in the
# loopback traffic captured during the run — in plain, hex or base64 — and
# the output canary is on the user's screen only. Positive controls: the
# same search finds a canary written in the clear into the network folder,
# and finds the output canary in the user's output.
set -euo pipefail
. "${TEEX_SOURCE_DIR:?}/tests/up/lib.sh"
find="$src/tests/up/find_canary.py"
cap_pid=""
cleanup() {
  local rc=$?
  [ -n "$cap_pid" ] && kill "$cap_pid" 2>/dev/null
  stop_net || rc=1
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
  exit "$rc"
}
fail() { echo "FAIL: $*" >&2; exit 1; }

r() { od -An -N6 -tx1 /dev/urandom | tr -d ' \n'; }
code_canary="CODECANARY$(r)"
in_canary="INCANARY$(r)"
out_tag="OUTCANARY$(r)"
data_canary="DATACANARY$(r)"
# The output canary is computed at run time, so the code does not hold it.
out_canary="${out_tag}X"

mkdir -p "$tmp/svc"
cat > "$tmp/svc/teex.toml" <<T
[service]
name = "canary"
version = "1.0.0"
entry = "main.py"
description = "confidentiality test"
style = "function"
python = "3.11"
stateless = true
T
cat > "$tmp/svc/main.py" <<P
import teex

SECRET_NOTE = "$code_canary"


def main(data):
    tag = "${out_tag:0:5}" + "${out_tag:5}"
    rows = len(teex.data(0).splitlines()) if teex.datasets() else -1
    return (tag + "X:" + str(len(data)) + ":" + str(rows)).encode()
P
echo "{\"secret\": \"$in_canary\"}" > "$tmp/input.json"

# --immediate-mode: each packet reaches the file as it is captured; without
# it libpcap hands packets over in blocks (up to 1 s old), and the block
# pending when tcpdump is stopped is lost — the last packets of the run.
tcpdump -i lo --immediate-mode -U -w "$tmp/lo.pcap" -s 0 >/dev/null 2>&1 &
cap_pid=$!
sleep 0.5
up_on_free_port "$tmp/up.out" || fail "up: $(cat "$tmp/up.out")"
echo 59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d > "$tmp/k1"
echo 5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a > "$tmp/k2"
prov="$("$teex" account import --private-key-file "$tmp/k1")"
user="$("$teex" account import --private-key-file "$tmp/k2")"
rm -f "$tmp/k1" "$tmp/k2"
sm="$(awk -F' = ' '$1 == "client" { print $2 }' "$TEEX_HOME/network.conf")"
"$teex" service deploy "$tmp/svc" --account "$prov" --sm "$sm" \
  --sm-policy "$TEEX_HOME/policy/sm.conf" --price 1000000000000000 --remuneration 700000000000000 \
  > "$tmp/deploy" || fail "deploy: $(cat "$tmp/deploy")"
svc_id="$(sed -n 's/^ *service id *\(0x[0-9a-f]*\)/\1/p' "$tmp/deploy")"
img="$(sed -n 's/^ *image hash *\(0x[0-9a-f]*\)/\1/p' "$tmp/deploy")"
printf 'patient,note\np1,%s\n' "$data_canary" > "$tmp/records.csv"
"$teex" data publish "$tmp/records.csv" --account "$prov" --price 1000 \
  --allow "$svc_id@$img" --max-output 4096 > "$tmp/pub" 2>&1 || fail "publish: $(cat "$tmp/pub")"
disp="$(awk -F' = ' '$1 == "address" { print $2 }' "$TEEX_HOME/run/dispatcher.ready")"
"$teex" deposit "$disp" 5000000000000000 --from "$user" > /dev/null || fail deposit
"$teex" invoke canary --input "$tmp/input.json" --account "$user" \
  --data records.csv > "$tmp/screen" 2>"$tmp/err" || fail "invoke: $(cat "$tmp/err")"
grep -q "$out_canary" "$tmp/screen" || fail "output: $(cat "$tmp/screen")"
# the task read the dataset (its two lines) inside the worker
grep -q ":2\$" "$tmp/screen" || fail "the task did not read the data: $(cat "$tmp/screen")"
grep -q "data key leased" "$TEEX_HOME/logs/sm.log" || fail "no lease"
for _ in $(seq 180); do
  grep -q "batch settled" "$TEEX_HOME/logs/dispatcher.log" && break
  sleep 0.5
done
grep -q "batch settled" "$TEEX_HOME/logs/dispatcher.log" || fail "not settled"
"$teex" down > /dev/null
# Positive control on the wire, sent last: a canary in the clear over
# loopback. The capture stops only once it is in the file; tcpdump reads
# the kernel's buffer in order, so all the network's traffic before it is
# in the file too (a fixed sleep can lose the tail on a loaded machine).
wire_canary="CANARY-WIRE-CLEAR-$$-$RANDOM"
python3 - "$wire_canary" <<'PY'
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
  python3 "$find" "$wire_canary" "$tmp/lo.pcap" > /dev/null || break
  sleep 0.1
done
kill "$cap_pid"; wait "$cap_pid" 2>/dev/null || true; cap_pid=""
[ -s "$tmp/lo.pcap" ] || fail "no traffic captured"

# The search finds what is there (positive controls) ...
python3 "$find" "$wire_canary" "$tmp/lo.pcap" > /dev/null && fail "control: clear canary not found in the capture"
python3 "$find" "$out_canary" "$tmp/screen" > /dev/null && fail "control: output canary not found on screen"
echo "control $code_canary" > "$TEEX_HOME/control.txt"
python3 "$find" "$code_canary" "$TEEX_HOME" > /dev/null && fail "control: clear canary not found"
rm "$TEEX_HOME/control.txt"
# ... and nothing secret is anywhere else.
python3 "$find" "$data_canary" "$tmp/records.csv" > /dev/null && fail "control: data canary not in the provider's file"
if python3 "$find" "$code_canary,$in_canary,$out_canary,$data_canary" "$TEEX_HOME" "$tmp/lo.pcap" > "$tmp/hits"; then
  echo "confidentiality: ok ($(stat -c %s "$tmp/lo.pcap") bytes of traffic and $(find "$TEEX_HOME" -type f | wc -l) files searched)"
else
  fail "canary leaked: $(cat "$tmp/hits")"
fi
