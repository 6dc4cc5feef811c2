#!/usr/bin/env bash
# The added latency of a task that uses a 1 MiB dataset, end to end on a
# real `teex up` network (anvil, the SM, a dispatcher, two workers, IPFS),
# against the same service given the same 1 MiB inline as the task's input.
#
# Each round runs, alternately, `teex invoke` with --input FILE (1 MiB, the
# baseline) and `teex invoke --data DATASET` (the worker asks the SM for a
# lease over fresh mutual RA-TLS, the SM reads the listing and approval on
# chain, the worker fetches the ciphertext from IPFS and decrypts it into
# the task's memory). Both are whole `teex invoke` processes (wallet
# unlock, dispatcher assignment, RA-TLS to the worker, output check), so
# the difference is what the dataset path adds to what a user sees.
# Prints the median, p90 and the ratio to the baseline.
#
# Usage: bench/bench_data_net.sh [TEEX_BIN] [ROUNDS]
#   (from the source tree, after `cmake --build build/release`)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
export TEEX_BIN="$(realpath "${1:-build/release/teex}")"
export TEEX_SOURCE_DIR="$here"
rounds="${2:-21}"
[ -x "$TEEX_BIN" ] || { echo "bench_data_net: $TEEX_BIN is not built" >&2; exit 1; }
. "$here/tests/up/lib.sh"

# The service: the byte count and a digest of whatever it was given, the
# dataset if the task has one, else the input.
mkdir -p "$tmp/svc"
cat > "$tmp/svc/teex.toml" <<T
[service]
name = "digest"
version = "1.0.0"
entry = "main.py"
description = "length and sha256 of the task's dataset or input"
style = "function"
stateless = true

[limits]
wall_ms = 60000
T
cat > "$tmp/svc/main.py" <<'P'
import hashlib

import teex


def main(data):
    if teex.datasets():
        data = teex.data(0)
    return ("%d %s" % (len(data), hashlib.sha256(data).hexdigest())).encode()
P

up
deploy "$tmp/svc"
img="$(sed -n 's/^ *image hash *\(0x[0-9a-f]*\)/\1/p' "$tmp/deploy")"
user_with_escrow 1000000000000000000
echo 7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6 > "$tmp/d"
dp="$("$teex" account import --private-key-file "$tmp/d")"
head -c $((1024 * 1024)) /dev/urandom > "$tmp/blob.bin"
"$teex" data publish "$tmp/blob.bin" --account "$dp" --price 1 \
  --allow "digest@$img" > "$tmp/pub" 2>&1 || fail "publish: $(cat "$tmp/pub")"
want="$((1024 * 1024)) $(sha256sum "$tmp/blob.bin" | cut -d' ' -f1)"

ms_now() { date +%s%N; }
one() { # OUT ARGS...: one invoke, its wall time in ms appended to OUT
  local out="$1" t0 t1 got
  shift
  t0="$(ms_now)"
  got="$("$teex" invoke digest --account "$user" "$@" 2> "$tmp/err")" ||
    fail "invoke $*: $(cat "$tmp/err")"
  t1="$(ms_now)"
  [ "$got" = "$want" ] || fail "output of $*: $got"
  echo $(((t1 - t0) / 1000)) >> "$out"
}
echo d > "$tmp/small"
# one warm-up of each (image fetch, first lease connection)
one "$tmp/warm" --input "$tmp/blob.bin"
one "$tmp/warm" --input "$tmp/small" --data blob.bin
for _ in $(seq "$rounds"); do
  one "$tmp/inline" --input "$tmp/blob.bin"
  one "$tmp/data" --input "$tmp/small" --data blob.bin
done

python3 - "$tmp/inline" "$tmp/data" "$rounds" <<'PY'
import statistics, sys
def load(p):
    return sorted(int(x) / 1000 for x in open(p))
a, b, n = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
def p90(v):
    return v[min(len(v) - 1, int(0.9 * len(v)))]
ma, mb = statistics.median(a), statistics.median(b)
print("rounds %s, load average %s" % (n, open("/proc/loadavg").read().split()[0]))
print("%-44s %9s %9s %7s" % ("teex invoke (whole process)", "median ms", "p90 ms", "ratio"))
print("%-44s %9.1f %9.1f %7.2f" % ("1 MiB inline as input (baseline)", ma, p90(a), 1.0))
print("%-44s %9.1f %9.1f %7.2f" % ("1 MiB dataset (lease, IPFS, decrypt)", mb, p90(b), mb / ma))
print("added by the dataset path: %+.1f ms (median)" % (mb - ma))
PY
