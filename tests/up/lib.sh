# Helpers shared by the fault tests of a `teex up` network (sourced, not a
# test itself). The caller sets -euo pipefail; TEEX_BIN and TEEX_SOURCE_DIR
# come from CTest.
teex="${TEEX_BIN:?}"
src="${TEEX_SOURCE_DIR:?}"
tmp="$(mktemp -d)"
export TEEX_HOME="$tmp/net" TEEX_PASSWORD=pw
net="$TEEX_HOME"
# stop_net: `teex down`, then checks that nothing the network started is
# still running: a process whose pid file is left and whose command line
# names this network's folder is a leak of `teex down` — killed, so that
# no daemon outlives its deleted folder, and reported (returns 1).
stop_net() {
  local f pid leaked=0
  "$teex" down >/dev/null 2>&1 || true
  for f in "$net"/run/*.pid; do
    [ -f "$f" ] || continue
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    if tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "$net"; then
      echo "LEAK: $(basename "$f" .pid) (pid $pid) still running after teex down" >&2
      kill -KILL "$pid" 2>/dev/null || true
      leaked=1
    fi
  done
  return "$leaked"
}
cleanup() {
  local rc=$?
  stop_net || rc=1
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for l in "$net"/logs/*.log; do
    echo "--- $l" >&2
    tail -8 "$l" >&2 || true
  done
  exit 1
}

# Prices of the test service. The workers read the split from the listing;
# this remuneration is not the one of the examples, so a worker that used
# anything else would sign receipts the dispatcher refuses.
PRICE=1000000000000000
REMUNERATION=600000000000000

# up_on_free_port OUT [OPTIONS...]: `teex up` on a random chain port (in
# $chain_port), below the kernel's ephemeral range (32768+) so that no
# outgoing connection can hold it; another port when that one turns out to
# be taken (after stopping what the failed up started). Its output in OUT;
# returns up's status.
up_on_free_port() {
  local out="$1" try
  shift
  for try in 1 2 3; do
    chain_port=$((20000 + RANDOM % 12000))
    "$teex" up --chain-port "$chain_port" "$@" > "$out" 2>&1 && return 0
    grep -qs "Address already in use" "$net/logs/anvil.log" && [ "$try" -lt 3 ] ||
      return 1
    stop_net || return 1
    : > "$net/logs/anvil.log"
  done
}

# up [OPTIONS...]: up_on_free_port, or the test fails.
up() {
  up_on_free_port "$tmp/up.out" "$@" || fail "up: $(cat "$tmp/up.out")"
  disp="$(awk -F' = ' '$1 == "address" { print $2 }' "$net/run/dispatcher.ready")"
  sm_client="$(awk -F' = ' '$1 == "client" { print $2 }' "$net/network.conf")"
}

# slow_service NAME SECONDS: writes a service that sleeps SECONDS, then
# answers "slept:" + its input, into $tmp/NAME.
slow_service() {
  mkdir -p "$tmp/$1"
  cat > "$tmp/$1/teex.toml" <<T
[service]
name = "$1"
version = "1.0.0"
entry = "main.py"
description = "fault test service $1"
style = "function"
stateless = true

[limits]
wall_ms = 20000
T
  cat > "$tmp/$1/main.py" <<P
import time


def main(data):
    time.sleep($2)
    return b"slept:" + data
P
}

# deploy DIR: the dev chain's account 1 deploys and lists the service.
deploy() {
  echo 59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d > "$tmp/k"
  provider="$("$teex" account import --private-key-file "$tmp/k")"
  "$teex" service deploy "$1" --account "$provider" --sm "$sm_client" \
    --sm-policy "$net/policy/sm.conf" --price "$PRICE" \
    --remuneration "$REMUNERATION" > "$tmp/deploy" 2>&1 ||
    fail "deploy: $(cat "$tmp/deploy")"
  grep -q "listed on chain" "$tmp/deploy" || fail "not listed: $(cat "$tmp/deploy")"
}

# user_with_escrow WEI: the dev chain's account 2 deposits WEI for the
# dispatcher; its address in $user.
user_with_escrow() {
  echo 5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a > "$tmp/u"
  user="$("$teex" account import --private-key-file "$tmp/u")"
  "$teex" deposit "$disp" "$1" --from "$user" > "$tmp/dep" 2>&1 ||
    fail "deposit: $(cat "$tmp/dep")"
}

# settled: what the chain records as settled for the user (wei).
settled() {
  "$teex" withdraw "$disp" --status --from "$user" |
    sed -n 's/^settled *\([0-9]*\) wei.*/\1/p'
}

# wait_settled WEI [TRIES]: until the chain records WEI settled (0.5 s a
# try; the default, 90 s and more, is a deadline for a loaded machine).
wait_settled() {
  local s=""
  for _ in $(seq "${2:-180}"); do
    s="$(settled || true)"
    [ "$s" = "$1" ] && return 0
    sleep 0.5
  done
  fail "settled ${s:-?} wei, expected $1"
}

# wait_log FILE TEXT [TRIES]: until FILE has a line with TEXT (0.05 s a
# try; by default 60 s and more).
wait_log() {
  for _ in $(seq "${3:-1200}"); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "no \"$2\" in $1"
}

# task_of FILE: the task id an invoke printed.
task_of() {
  sed -n 's/^task \(0x[0-9a-f]\{64\}\) ran on .*/\1/p' "$1"
}
