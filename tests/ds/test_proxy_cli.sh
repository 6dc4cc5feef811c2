#!/usr/bin/env bash
# `teex ds proxy` as a user runs it: refuses every non-loopback listen
# address before starting, serves redis-cli from the in-process group
# (--local) on a free loopback port, says in its help that --local is not
# replicated, and stops cleanly on SIGTERM.
set -euo pipefail
teex="${TEEX_BIN:?TEEX_BIN not set}"
dir="$(mktemp -d "${TMPDIR:-/tmp}/teex-ds-proxy.XXXXXX")"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$teex" ds proxy --help | grep -q "NOT replicated" || fail "help does not say --local is not replicated"
"$teex" ds --help | grep -q proxy || fail "ds --help"

# Non-loopback addresses: refused with the reason, exit status 1.
for addr in 0.0.0.0:6390 "[::]:6390" 192.0.2.1:6390 "[::ffff:10.0.0.1]:6390"; do
  set +e
  "$teex" ds proxy --ns app --local --listen "$addr" 2>"$dir/err"
  rc=$?
  set -e
  [ "$rc" = 1 ] || fail "$addr: exit status $rc"
  grep -q "not loopback" "$dir/err" || fail "$addr: $(cat "$dir/err")"
done
set +e
"$teex" ds proxy --ns app --local --listen no-such-host.invalid:6390 2>"$dir/err"
rc=$?
"$teex" ds proxy --ns 'Bad/NS' --local --listen 127.0.0.1:0 2>/dev/null
rc2=$?
TEEX_HOME="$dir/no-network" "$teex" ds proxy --ns app --listen 127.0.0.1:0 2>"$dir/err2"
rc3=$?
set -e
[ "$rc" = 1 ] || fail "unresolvable name: exit status $rc"
grep -q "cannot resolve" "$dir/err" || fail "unresolvable: $(cat "$dir/err")"
[ "$rc2" = 1 ] || fail "bad namespace accepted"
[ "$rc3" = 1 ] && grep -q -- "--local" "$dir/err2" || fail "no backend: $(cat "$dir/err2")"

# Serve on a free port; redis-cli talks to it.
"$teex" ds proxy --ns app --local --replicas 1 --listen 127.0.0.1:0 --max-clients 1 \
  --ready-file "$dir/ready" 2>"$dir/log" &
pid=$!
for _ in $(seq 100); do [ -s "$dir/ready" ] && break; sleep 0.1; done
[ -s "$dir/ready" ] || fail "proxy did not start: $(cat "$dir/log")"
port="$(cat "$dir/ready")"
# redis-cli, retried while the proxy has not yet seen the previous client
# go (it serves one connection at a time here: --max-clients 1)
rcli() {
  local out
  for _ in $(seq 50); do
    out="$(redis-cli -p "$port" "$@" 2>&1)"
    case "$out" in *"max number of clients"*) sleep 0.1 ;; *) break ;; esac
  done
  printf '%s\n' "$out"
}
got="$(rcli SET k 'v 1')"
[ "$got" = OK ] || fail "SET: $got"
got="$(rcli GET k)"
[ "$got" = "v 1" ] || fail "GET: $got"
got="$(rcli INFO server)"
case "$got" in *"ds_replicas:1"*) ;; *) fail "INFO: $got" ;; esac
# --max-clients 1: while one connection is open, the next is told why and
# closed; once it goes, the next is served.
# (the proxy may not have seen the last redis-cli go yet: retry)
pong=""
for _ in $(seq 50); do
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'PING\r\n' >&3
  read -r -t 10 pong <&3 || fail "held connection: no reply"
  [ "${pong%$'\r'}" = "+PONG" ] && break
  exec 3>&-
  sleep 0.1
done
[ "${pong%$'\r'}" = "+PONG" ] || fail "held connection: $pong"
out="$(redis-cli -p "$port" PING 2>&1 || true)"
echo "$out" | grep -q "max number of clients reached" || fail "over the limit: $out"
exec 3>&-
ok=""
[ "$(rcli PING)" = PONG ] && ok=1
[ -n "$ok" ] || fail "not served after the held connection closed"
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
pid=""
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM: $(cat "$dir/log")"

# --follower-reads: reads come from a follower's state, which catches up
# with the leader's without further writes.
"$teex" ds proxy --ns app --local --replicas 3 --follower-reads \
  --listen 127.0.0.1:0 --ready-file "$dir/ready2" 2>"$dir/log2" &
pid=$!
for _ in $(seq 100); do [ -s "$dir/ready2" ] && break; sleep 0.1; done
[ -s "$dir/ready2" ] || fail "follower-read proxy did not start: $(cat "$dir/log2")"
port="$(cat "$dir/ready2")"
[ "$(redis-cli -p "$port" SET f 1)" = OK ] || fail "SET (follower reads)"
got=""
for _ in $(seq 50); do
  got="$(redis-cli -p "$port" GET f)"
  [ "$got" = 1 ] && break
  sleep 0.1
done
[ "$got" = 1 ] || fail "a follower never caught up: GET gave '$got'"
got="$(redis-cli -p "$port" INFO server)"
case "$got" in *"read_mode:follower"*) ;; *) fail "INFO: $got" ;; esac
kill -TERM "$pid"
wait "$pid" || fail "follower-read proxy: exit status $?"
pid=""
echo "ok"
