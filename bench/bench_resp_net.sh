#!/usr/bin/env bash
# Runs the same redis-benchmark command against `teex ds proxy` over a real
# 3-replica TEE-DS group (three `teex ds run` processes on loopback: raft
# over mutual RA-TLS, raft_uv's log on disk) and against Debian's
# redis-server with appendonly yes / appendfsync everysec, in the same run,
# once per pipeline depth (-P): SET and GET (linearizable reads, the
# default) through one proxy, GET through a second proxy with
# --follower-reads. Prints both sides' settings, requests per second and
# the ratios to Redis.
#
# Needs redis-tools (redis-benchmark) and redis-server:
#   sudo apt-get install redis-tools redis-server
#
# Usage: bench/bench_resp_net.sh [TEEX_BIN] [REQUESTS] [CLIENTS] [PIPELINES]
#   PIPELINES: comma-separated -P values (default 1,16)
# BENCH_PERF=DIR: also `perf record -g` the leader during the first
# pipeline's linearizable SET and GET, and write its summary to DIR.
# DS_RUN_ARGS: more `teex ds run` arguments (e.g. --no-read-lease).
# ROUNDS: Redis-then-TEE-DS rounds per pipeline depth (default 3); the
# medians of the rounds are printed, and each round's ratio.
set -euo pipefail
teex="$(realpath "${1:-build/release/teex}")"
n="${2:-20000}"
clients="${3:-20}"
pipelines="${4:-1,16}"
rounds="${ROUNDS:-3}"
command -v redis-benchmark >/dev/null || { echo "bench_resp_net: install redis-tools" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "bench_resp_net: install redis-server" >&2; exit 1; }
[ -x "$teex" ] || { echo "bench_resp_net: $teex is not built" >&2; exit 1; }

dir="$(mktemp -d "${TMPDIR:-/tmp}/teex-bench-resp-net.XXXXXX")"
export TEEX_HOME="$dir/home"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
read -r -a ports < <(python3 -c '
import socket
ss=[socket.socket() for _ in range(7)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
rport="${ports[6]}"
redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
  --appendfsync everysec --save '' --daemonize no --logfile "$dir/redis.log" &
pids+=($!)

"$teex" tee init >/dev/null
spki="$("$teex" ds client-key --out "$dir/cl")"
m=()
for i in 1 2 3; do m+=(--member "$i=127.0.0.1:${ports[$((i - 1))]},127.0.0.1:${ports[$((i + 2))]}"); done
"$teex" ds init --state "$dir/r1" --id 1 --new-group "${m[@]}" --client "bench=$spki:bench" >/dev/null
for i in 2 3; do "$teex" ds init --state "$dir/r$i" --id "$i" --group "$dir/r1/group.conf" >/dev/null; done
for i in 1 2 3; do
  # shellcheck disable=SC2086
  "$teex" ds run --state "$dir/r$i" --ready-file "$dir/r$i.ready" ${DS_RUN_ARGS:-} \
    >"$dir/r$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 300); do [ -f "$dir/r$i.ready" ] && break; sleep 0.05; done
done
C=(--state "$dir/r1" --cert "$dir/cl/client.pem" --key "$dir/cl/client.key")
proxy() { # NAME [args]: sets $port
  "$teex" ds proxy --listen 127.0.0.1:0 "${C[@]}" --ready-file "$dir/$1.ready" "${@:2}" \
    >"$dir/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$dir/$1.ready" ] && break; sleep 0.1; done
  port="$(cat "$dir/$1.ready")"
}
proxy lin
lport="$port"
proxy fol --follower-reads
fport="$port"
for _ in $(seq 100); do
  [ "$(redis-cli -p "$lport" SET warm 1 2>/dev/null)" = OK ] &&
    redis-cli -p "$rport" PING >/dev/null 2>&1 && break
  sleep 0.1
done

bench() { # port tests pipeline -> "TEST rps" lines
  redis-benchmark -p "$1" -n "$n" -c "$clients" -P "$3" -t "$2" -q 2>/dev/null |
    tr '\r' '\n' | grep -E '^[A-Z]+: [0-9.]+ requests per second' |
    sed -E 's/^([A-Z]+): ([0-9.]+) requests per second.*/\1 \2/'
}
leader_pid() {
  local st id
  st="$("$teex" ds status "${C[@]}" 2>/dev/null || true)"
  id="$(awk '$3 == "leader" { print $1 }' <<<"$st")"
  [ -n "$id" ] && echo "${pids[$id]}"
}

echo "command:  redis-benchmark -n $n -c $clients -P {${pipelines}} -t set,get -q (values 3 bytes, one key), $rounds rounds"
echo "redis:    $(redis-server --version | cut -d' ' -f1-3), appendonly yes, appendfsync everysec, save off;" \
  "$clients clients"
echo "teex:     teex ds proxy over 3 'teex ds run' replicas on loopback (raft over mutual RA-TLS," \
  "raft_uv log on disk: fsync of each append batch on a majority before a write is acknowledged);" \
  "$clients clients; up to 64 commands in flight per proxy connection; linearizable reads under" \
  "the leader lease (barrier when a write is in flight or the lease lapsed); ds run args: '${DS_RUN_ARGS:-}'"
echo "machine:  $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
# Each round runs Redis and then TEE-DS back to back; a round's ratio is
# taken within it, and the median over rounds is reported, so a burst of
# other load on the machine skews one round rather than the figure.
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
first=1
IFS=, read -r -a plist <<<"$pipelines"
for p in "${plist[@]}"; do
  : >"$dir/rounds.txt"
  for round in $(seq "$rounds"); do
    bench "$rport" set,get "$p" >"$dir/redis.txt"
    if [ -n "${BENCH_PERF:-}" ] && [ "$first" = 1 ]; then
      mkdir -p "$BENCH_PERF"
      lp="$(leader_pid)"
      perf record -g -o "$BENCH_PERF/leader.data" -p "$lp" >/dev/null 2>&1 &
      perfpid=$!
      sleep 0.5
    fi
    bench "$lport" set,get "$p" >"$dir/teex.txt"
    if [ -n "${BENCH_PERF:-}" ] && [ "$first" = 1 ]; then
      kill -INT "$perfpid"
      wait "$perfpid" || true
      perf report -i "$BENCH_PERF/leader.data" --no-children --sort dso --stdio -g none \
        2>/dev/null | grep -E '^ +[0-9]' | head -12 >"$BENCH_PERF/leader-dso.txt" || true
      perf report -i "$BENCH_PERF/leader.data" --no-children --sort dso,sym --stdio -g none \
        2>/dev/null | grep -E '^ +[0-9]' | head -30 >"$BENCH_PERF/leader-sym.txt" || true
    fi
    first=0
    bench "$fport" get "$p" | sed 's/^GET/GET-FOLLOWER/' >>"$dir/teex.txt"
    grep GET "$dir/redis.txt" | sed 's/^GET/GET-FOLLOWER/' >>"$dir/redis.txt"
    sort "$dir/redis.txt" >"$dir/r.s"
    sort "$dir/teex.txt" >"$dir/t.s"
    join "$dir/r.s" "$dir/t.s" | awk -v n="$round" '{ print $1, n, $2, $3, $3 / $2 }' >>"$dir/rounds.txt"
  done
  echo "-P $p ($rounds rounds; load $(cut -d' ' -f1 /proc/loadavg))"
  printf '%-13s %12s %12s %8s   %s\n' test "redis rps" "teex rps" ratio "ratio per round"
  for t in $(cut -d' ' -f1 "$dir/rounds.txt" | sort -u); do
    r="$(awk -v t="$t" '$1 == t { print $3 }' "$dir/rounds.txt" | median)"
    x="$(awk -v t="$t" '$1 == t { print $4 }' "$dir/rounds.txt" | median)"
    q="$(awk -v t="$t" '$1 == t { print $5 }' "$dir/rounds.txt" | median)"
    all="$(awk -v t="$t" '$1 == t { printf "%.3f ", $5 }' "$dir/rounds.txt")"
    printf '%-13s %12.0f %12.0f %8.3f   %s\n' "$t" "$r" "$x" "$q" "$all"
  done
done
st="$("$teex" ds status "${C[@]}" 2>/dev/null || true)"
echo "$st"
