#!/usr/bin/env bash
# `teex tee serve` / `teex tee connect` end to end, and interop: the standard
# `openssl s_client -tls1_3` completes a handshake with a teex RA-TLS server
# and the certificate it is shown carries the teex evidence extension.
set -euo pipefail
teex="${TEEX_BIN:?}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

OID="2.25.215580673084095695838012285188679947161.1"
"$teex" tee init --data-dir "$work/d" >/dev/null

# Starts `teex tee serve ARGS...` and sets $port.
start_server() {
  local out="$work/serve.$RANDOM"
  "$teex" tee serve --listen 127.0.0.1:0 --data-dir "$work/d" "$@" >"$out" 2>"$out.err" &
  pids+=($!)
  server_pid=$!
  for _ in $(seq 100); do
    grep -q 'listening on' "$out" 2>/dev/null && break
    sleep 0.05
  done
  port="$(grep -o 'listening on 127.0.0.1:[0-9]*' "$out" | cut -d: -f2)"
  [ -n "$port" ] || fail "server did not start: $(cat "$out.err")"
}

start_server --role worker

# 1. connect: verified identity and round-trip times.
out="$("$teex" tee connect "127.0.0.1:$port" --data-dir "$work/d" --count 5)" \
  || fail "connect failed"
grep -q 'peer evidence verified' <<<"$out" || fail "no verification line"
grep -qE '^role +worker$' <<<"$out" || fail "peer role not shown: $out"
grep -qE '^rtt +5 echo calls' <<<"$out" || fail "no rtt: $out"
grep -qE '^health +ok' <<<"$out" || fail "no health: $out"
mr="$(grep -E '^mr_enclave' <<<"$out" | awk '{print $2}')"
[ "${#mr}" -eq 64 ] || fail "no measurement"

# The Python client of docs/protocol.md §8 (standard library only) talks to
# the server: the document is enough to write a client.
src="${TEEX_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
sed -n '/^```python$/,/^```$/p' "$src/docs/protocol.md" | sed '1d;$d' \
  | sed "s/(\"127.0.0.1\", 7000)/(\"127.0.0.1\", $port)/" >"$work/client.py"
grep -q "$port" "$work/client.py" || fail "could not extract the documented client"
py="$(python3 "$work/client.py")" || fail "documented Python client failed"
[ "$py" = "08011a041a026869" ] || fail "documented Python client got $py"

# 2. A policy that wants another measurement: refused in the handshake.
root="$(cat "$work/d/tee/root.pub")"
cat >"$work/wrong.policy" <<POL
[roots]
net = $root
[measurements]
other = $(printf '%064d' 1)
[policy]
allow_simulated = true
POL
if "$teex" tee connect "127.0.0.1:$port" --policy "$work/wrong.policy" \
    >"$work/c2.out" 2>"$work/c2.err"; then
  fail "connect succeeded against a policy the evidence fails"
fi
grep -qi 'measurement' "$work/c2.err" || fail "reason: $(cat "$work/c2.err")"
[ "$(wc -l <"$work/c2.err")" -ge 1 ] || fail "no reason printed"
grep -q 'rtt' "$work/c2.out" && fail "application data after a refused handshake"

# The right measurement passes the same policy shape.
sed "s/^other = .*/this = $mr/" "$work/wrong.policy" >"$work/right.policy"
"$teex" tee connect "127.0.0.1:$port" --policy "$work/right.policy" --count 1 \
  >/dev/null || fail "connect with the right policy failed"

# Simulated evidence is refused unless the policy allows it.
grep -v allow_simulated "$work/right.policy" >"$work/nosim.policy"
if "$teex" tee connect "127.0.0.1:$port" --policy "$work/nosim.policy" \
    >/dev/null 2>&1; then
  fail "simulated evidence accepted without allow_simulated"
fi

# 3. openssl s_client: TLS 1.3, and the evidence extension in the cert.
echo | openssl s_client -connect "127.0.0.1:$port" -tls1_3 -showcerts \
  >"$work/s_client.out" 2>&1 || true
grep -q 'TLSv1.3' "$work/s_client.out" || fail "s_client: no TLS 1.3: $(head -20 "$work/s_client.out")"
sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' \
  "$work/s_client.out" >"$work/peer.pem"
openssl x509 -in "$work/peer.pem" -noout -text >"$work/peer.txt"
grep -q "$OID" "$work/peer.txt" || fail "certificate lacks the evidence extension"
# Plain TLS 1.2 is refused.
if echo | openssl s_client -connect "127.0.0.1:$port" -tls1_2 \
    >"$work/s12.out" 2>&1; then
  grep -q 'TLSv1.2' "$work/s12.out" && fail "server accepted TLS 1.2"
fi

# The server survived all of that and still answers.
"$teex" tee connect "127.0.0.1:$port" --data-dir "$work/d" --count 1 >/dev/null \
  || fail "server stopped serving"
kill -TERM "$server_pid"
wait "$server_pid" || fail "serve did not exit cleanly on SIGTERM"

# 4. Mutual mode: a client without evidence is refused, an enclave accepted.
start_server --role sm --mutual
if "$teex" tee connect "127.0.0.1:$port" --data-dir "$work/d" >/dev/null 2>"$work/m.err"; then
  fail "mutual server accepted a client without evidence"
fi
out="$("$teex" tee connect "127.0.0.1:$port" --data-dir "$work/d" --mutual \
  --role worker --count 2)" || fail "mutual connect failed"
grep -qE '^role +sm$' <<<"$out" || fail "mutual: peer role"
kill -TERM "$server_pid"
wait "$server_pid" || true

echo "tee serve/connect: all checks passed"
