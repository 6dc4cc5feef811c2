#!/usr/bin/env bash
# Runs the same redis-benchmark command against `teex ds proxy --local`
# (TEE-DS's Redis proxy over its in-process 3-replica group: every command
# sealed, replicated through raft on libraft's in-memory fixture and
# applied on each replica) and against Debian's redis-server with
# appendonly yes / appendfsync everysec, in the same run, and prints both
# sides' settings, requests per second and the ratio.
#
# Needs redis-tools (redis-benchmark) and redis-server:
#   sudo apt-get install redis-tools redis-server
# (the test suite needs neither redis-server nor this script).
#
# Usage: bench/bench_resp.sh [TEEX_BIN] [REQUESTS] [CLIENTS] [PIPELINE]
set -euo pipefail
teex="${1:-build/release/teex}"
n="${2:-20000}"
clients="${3:-20}"
pipeline="${4:-1}"
tests="set,get,incr"
command -v redis-benchmark >/dev/null || { echo "bench_resp: install redis-tools" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "bench_resp: install redis-server (sudo apt-get install redis-server)" >&2; exit 1; }
[ -x "$teex" ] || { echo "bench_resp: $teex is not built" >&2; exit 1; }

dir="$(mktemp -d "${TMPDIR:-/tmp}/teex-bench-resp.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

rport="$(free_port)"
redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
  --appendfsync everysec --save '' --daemonize no --logfile "$dir/redis.log" &
pids+=($!)
"$teex" ds proxy --ns bench --local --replicas 3 --listen 127.0.0.1:0 \
  --ready-file "$dir/ready" 2>"$dir/proxy.log" &
pids+=($!)
for _ in $(seq 100); do
  [ -s "$dir/ready" ] && redis-cli -p "$rport" PING >/dev/null 2>&1 && break
  sleep 0.1
done
tport="$(cat "$dir/ready")"

bench() { # port -> "TEST rps" lines
  redis-benchmark -p "$1" -n "$n" -c "$clients" -P "$pipeline" -t "$tests" -q 2>/dev/null |
    tr '\r' '\n' | grep -E '^[A-Z]+: [0-9.]+ requests per second' |
    sed -E 's/^([A-Z]+): ([0-9.]+) requests per second.*/\1 \2/'
}

echo "command:  redis-benchmark -n $n -c $clients -P $pipeline -t $tests -q"
echo "redis:    $(redis-server --version | cut -d' ' -f1-3), appendonly yes, appendfsync everysec, save off"
echo "teex:     teex ds proxy --local --replicas 3 (in-process raft fixture, sealed log, reads through the log)"
echo "machine:  $(nproc) cores, $(uname -sr)"
bench "$rport" >"$dir/redis.txt"
bench "$tport" >"$dir/teex.txt"
printf '%-6s %14s %14s %8s\n' test "redis rps" "teex rps" ratio
join "$dir/redis.txt" "$dir/teex.txt" | while read -r t r x; do
  awk -v t="$t" -v r="$r" -v x="$x" 'BEGIN { printf "%-6s %14.0f %14.0f %8.3f\n", t, r, x, x / r }'
done
