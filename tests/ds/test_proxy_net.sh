#!/usr/bin/env bash
# `teex ds proxy` over a real 3-replica TEE-DS group (three `teex ds run`
# processes on loopback, mutual RA-TLS), driven by real redis-cli: the
# Redis commands the proxy supports; the leader SIGKILLed while redis-cli
# writes through the proxy (the proxy serves on via the new leader and every
# acknowledged write survives); a namespace the proxy's certificate is not
# granted (a clear RESP error); the whole group down (a clear RESP error)
# and back (served again).
set -euo pipefail
teex="${TEEX_BIN:?TEEX_BIN not set}"
command -v redis-cli >/dev/null || { echo "SKIP: no redis-cli"; exit 77; }
tmp="$(mktemp -d "${TMPDIR:-/tmp}/teex-ds-pnet.XXXXXX")"
export TEEX_HOME="$tmp/home"
declare -A rpid=()
ppids=()
cleanup() {
  for p in "${rpid[@]}" "${ppids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*.log; do echo "--- $f" >&2; tail -5 "$f" >&2 || true; done
  exit 1
}

read -r -a ports < <(python3 "${TEEX_SOURCE_DIR:?}/tests/free_ports.py" 6)
"$teex" tee init >/dev/null
spki="$("$teex" ds client-key --out "$tmp/cl")"
m=()
for i in 1 2 3; do m+=(--member "$i=127.0.0.1:${ports[$((i - 1))]},127.0.0.1:${ports[$((i + 2))]}"); done
"$teex" ds init --state "$tmp/r1" --id 1 --new-group "${m[@]}" --client "app=$spki:app" >/dev/null
for i in 2 3; do "$teex" ds init --state "$tmp/r$i" --id "$i" --group "$tmp/r1/group.conf" >/dev/null; done
start_replica() {
  rm -f "$tmp/r$1.ready"
  "$teex" ds run --state "$tmp/r$1" --ready-file "$tmp/r$1.ready" >>"$tmp/r$1.log" 2>&1 &
  rpid[$1]=$!
}
wait_replica() {
  for _ in $(seq 300); do [ -f "$tmp/r$1.ready" ] && return 0; sleep 0.05; done
  fail "replica $1 did not start"
}
for i in 1 2 3; do start_replica "$i"; done
for i in 1 2 3; do wait_replica "$i"; done
C=(--state "$tmp/r1" --cert "$tmp/cl/client.pem" --key "$tmp/cl/client.key")

# proxy NAME [args]: starts a proxy on a free port; sets $port
proxy() {
  local name="$1"
  shift
  rm -f "$tmp/$name.ready"
  "$teex" ds proxy --listen 127.0.0.1:0 "${C[@]}" --ready-file "$tmp/$name.ready" "$@" \
    >"$tmp/$name.log" 2>&1 &
  ppids+=($!)
  for _ in $(seq 100); do [ -s "$tmp/$name.ready" ] && break; sleep 0.1; done
  [ -s "$tmp/$name.ready" ] || fail "proxy $name did not start"
  port="$(cat "$tmp/$name.ready")"
}
proxy main --timeout 3000
P="$port"
r() { redis-cli -p "$P" "$@" 2>&1; }
expect() { # expect WANT CMD...
  local want="$1"
  shift
  local got
  got="$(r "$@")"
  [ "$got" = "$want" ] || fail "$*: got '$got', want '$want'"
}

# The first command waits for the group's first leader.
ok=""
for _ in $(seq 50); do [ "$(r PING)" = PONG ] && [ "$(r SET k v1)" = OK ] && ok=1 && break; sleep 0.2; done
[ -n "$ok" ] || fail "no write through the proxy: $(r SET k v1)"
expect v1 GET k
expect "" SET k v2 NX
expect v1 GET k
expect OK SET k v2 XX
expect v2 GET k
expect "" SET absent v XX
expect 0 EXISTS absent
expect OK SET t v EX 100
ttl="$(r TTL t)"
[ "$ttl" -ge 98 ] && [ "$ttl" -le 100 ] || fail "TTL after SET EX 100: $ttl"
expect -1 TTL k
expect 1 EXPIRE k 50
ttl="$(r TTL k)"
[ "$ttl" -ge 48 ] && [ "$ttl" -le 50 ] || fail "TTL after EXPIRE 50: $ttl"
expect -2 TTL absent
expect 1 INCR n
expect 2 INCR n
expect OK MSET a 1 b 2 c 3
expect "$(printf '1\n2\n\n3')" MGET a b nope c
expect 2 EXISTS a b nope
expect 2 DEL a b
expect 0 EXISTS a
expect 4 DBSIZE # k t n c
keys="$(redis-cli -p "$P" --scan | sort | tr '\n' ' ')"
[ "$keys" = "c k n t " ] || fail "SCAN: $keys"
info="$(r INFO server)"
for want in "namespace:app" "backend:TEE-DS replica group over RA-TLS" "read_mode:linearizable" \
  "ds_role:leader" "ds_replicas:3" "ds_replicas_up:3"; do
  case "$info" in *"$want"*) ;; *) fail "INFO lacks '$want': $info" ;; esac
done
echo "commands: ok"

# A pipeline in one write: the commands take effect in order and the
# replies come back in order.
exec 3<>"/dev/tcp/127.0.0.1/$P"
printf 'SET o 1\r\nINCR o\r\nGET o\r\nSET o x\r\nGET o\r\nDEL o\r\nEXISTS o\r\nINCR o\r\n' >&3
replies=""
for _ in $(seq 10); do
  read -r -t 20 line <&3 || fail "pipeline: reply missing after '$replies'"
  replies="$replies${line%$'\r'} "
done
exec 3>&-
[ "$replies" = '+OK :2 $1 2 +OK $1 x :1 :0 :1 ' ] || fail "pipeline: $replies"

# Follower reads through a second proxy: the value written is read back
# (bounded staleness: retried briefly).
proxy follower --follower-reads
ok=""
for _ in $(seq 20); do [ "$(redis-cli -p "$port" GET c)" = 3 ] && ok=1 && break; sleep 0.1; done
[ -n "$ok" ] || fail "follower read"
redis-cli -p "$port" INFO server | grep -q "read_mode:follower" || fail "follower INFO"

# A group named by flags alone (another deployment: no state directory).
rm -f "$tmp/flags.ready"
"$teex" ds proxy --listen 127.0.0.1:0 --ready-file "$tmp/flags.ready" --ns app \
  --replica "127.0.0.1:${ports[3]}" --replica "127.0.0.1:${ports[4]}" --replica "127.0.0.1:${ports[5]}" \
  --policy "$tmp/r1/policy.conf" --cert "$tmp/cl/client.pem" --key "$tmp/cl/client.key" \
  --state "$tmp/nonexistent" >"$tmp/flags.log" 2>&1 &
ppids+=($!)
for _ in $(seq 100); do [ -s "$tmp/flags.ready" ] && break; sleep 0.1; done
[ -s "$tmp/flags.ready" ] || fail "proxy by flags did not start"
got="$(redis-cli -p "$(cat "$tmp/flags.ready")" GET c 2>&1)"
[ "$got" = 3 ] || fail "proxy by flags: GET c: $got"

# A namespace this certificate is not granted: a clear error, nothing else.
proxy other --ns other
got="$(redis-cli -p "$port" SET x 1 2>&1)"
case "$got" in *NOPERM*"not granted"*) ;; *) fail "ungranted namespace: $got" ;; esac
got="$(redis-cli -p "$port" GET x 2>&1)"
case "$got" in *NOPERM*) ;; *) fail "ungranted namespace read: $got" ;; esac
echo "ungranted namespace: $got"

# The leader SIGKILLed while redis-cli writes through the proxy.
leader_id() {
  "$teex" ds status "${C[@]}" --timeout 1000 2>/dev/null | awk '$3 == "leader" { print $1; exit }'
}
leader=""
for _ in $(seq 50); do leader="$(leader_id)"; [ -n "$leader" ] && break; sleep 0.1; done
[ -n "$leader" ] || fail "no leader in status"
: >"$tmp/acked"
(
  for i in $(seq 1 300); do
    if [ "$(redis-cli -p "$P" SET "w:$i" "val-$i" 2>&1)" = OK ]; then echo "$i" >>"$tmp/acked"; fi
  done
) &
writer=$!
for _ in $(seq 200); do [ "$(wc -l <"$tmp/acked")" -ge 50 ] && break; sleep 0.05; done
[ "$(wc -l <"$tmp/acked")" -ge 50 ] || fail "writes before the kill: $(wc -l <"$tmp/acked")"
kill -9 "${rpid[$leader]}"
wait "${rpid[$leader]}" 2>/dev/null || true
unset "rpid[$leader]"
before="$(wc -l <"$tmp/acked")"
wait "$writer"
acked="$(wc -l <"$tmp/acked")"
echo "leader $leader killed after $before acknowledged writes; $acked of 300 acknowledged"
# Served on via the new leader: the last 100 writes were all acknowledged.
[ "$(awk '$1 > 200' "$tmp/acked" | wc -l)" = 100 ] || fail "writes after the kill not served"
new="$(leader_id)"
[ -n "$new" ] && [ "$new" != "$leader" ] || fail "no new leader ($new)"
check_acked() {
  local bad
  bad="$(while read -r i; do echo "GET w:$i"; done <"$tmp/acked" | redis-cli -p "$P" |
    paste -d' ' "$tmp/acked" - | awk '$2 != "val-" $1' | head -3)"
  [ -z "$bad" ] || fail "acknowledged writes lost ($1): $bad"
}
check_acked "after the leader's death"
info="$(r INFO server)"
case "$info" in *"ds_replicas_up:2"*) ;; *) fail "INFO after the kill: $info" ;; esac

# The whole group down: a clear error; back: served again.
for i in "${!rpid[@]}"; do kill -9 "${rpid[$i]}"; wait "${rpid[$i]}" 2>/dev/null || true; done
rpid=()
got="$(r GET k)"
case "$got" in *"TEE-DS unavailable"*"replica group up"*) ;; *) fail "group down, GET: $got" ;; esac
got="$(r SET k v3)"
case "$got" in *"TEE-DS unavailable"*"may or may not"*) ;; *) fail "group down, SET: $got" ;; esac
echo "group down: $got"
for i in 1 2 3; do start_replica "$i"; done
for i in 1 2 3; do wait_replica "$i"; done
ok=""
for _ in $(seq 50); do [ "$(r SET k v4)" = OK ] && ok=1 && break; sleep 0.2; done
[ -n "$ok" ] || fail "not served after the group came back: $(r SET k v4)"
expect v4 GET k
check_acked "after the group's restart"
echo "group back: served"
