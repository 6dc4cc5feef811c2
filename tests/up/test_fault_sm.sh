#!/usr/bin/env bash
# ctest-label: nosan (the workers' sandboxed executors do not run under ASan)
# The Service Manager killed (SIGKILL) under a running `teex up` network
# right after a service was deployed, and started again with the same
# command line and sealed state (`teex up --restart sm`): the deployed
# service survives. No worker held its keys before the kill, so the
# invoke's worker must fetch them from the restarted SM. Then a fresh
# worker (worker-2 with its state wiped: a new enclave key) registers with
# the restarted SM, on chain and with the dispatcher, and — the other
# worker gone — runs the next task with keys the restarted SM released to
# it.
set -euo pipefail
. "${TEEX_SOURCE_DIR:?}/tests/up/lib.sh"

up --settle-interval 1000
slow_service quick 0
deploy "$tmp/quick"
user_with_escrow 5000000000000000
printf 'abc' > "$tmp/in"

# A component that does not exist is a clear error.
if "$teex" up --restart nonsense > "$tmp/rs" 2>&1; then fail "restart nonsense accepted"; fi
grep -q "unknown component" "$tmp/rs" || fail "restart nonsense: $(cat "$tmp/rs")"
old="$(cat "$net/run/sm.pid")"
kill -9 "$old"
if "$teex" status > "$tmp/st" 2>&1; then fail "status ok with the SM dead"; fi
grep -q "^sm *DOWN" "$tmp/st" || fail "status: $(cat "$tmp/st")"
"$teex" up --restart sm > "$tmp/rs" 2>&1 || fail "restart sm: $(cat "$tmp/rs")"
"$teex" status > "$tmp/st" 2>&1 || fail "status after restart: $(cat "$tmp/st")"
[ "$(grep -c 'msg="serving"' "$net/logs/sm.log")" = 2 ] || fail "the SM did not start again"
grep -q "keys released" "$net/logs/sm.log" && fail "keys released before any invoke"

"$teex" invoke quick --input "$tmp/in" --account "$user" \
  > "$tmp/out" 2> "$tmp/err" || fail "invoke after the SM restart: $(cat "$tmp/err")"
[ "$(cat "$tmp/out")" = "slept:abc" ] || fail "output: $(cat "$tmp/out")"
# The keys came from the restarted SM (its log after the second "serving").
sed -n '/msg="serving"/h; /msg="serving"/!H; ${x;p}' "$net/logs/sm.log" |
  grep -q "keys released" || fail "keys not released by the restarted SM"

# A fresh worker: worker-2 with no state has a new enclave key.
kill -9 "$(cat "$net/run/worker-2.pid")"
old_w2="$(awk -F' = ' '$1 == "address" { print $2 }' "$net/run/worker-2.ready")"
rm -rf "$net/worker-2"
"$teex" up --restart worker-2 > "$tmp/rw" 2>&1 || fail "restart worker-2: $(cat "$tmp/rw")"
new_w2="$(awk -F' = ' '$1 == "address" { print $2 }' "$net/run/worker-2.ready")"
[ -n "$new_w2" ] && [ "$new_w2" != "$old_w2" ] || fail "worker-2 kept its key: $new_w2"
grep -q "registered with the SM.*address=$new_w2" "$net/logs/worker-2.log" ||
  fail "the fresh worker was not registered by the restarted SM"
wait_log "$net/logs/worker-2.log" "registered with the dispatcher" 300
# Only the fresh worker is left once the dispatcher forgets the silent ones
# (worker-1 killed, worker-2's old key).
kill -9 "$(cat "$net/run/worker-1.pid")"
for _ in $(seq 600); do
  [ "$(grep -c "worker dropped" "$net/logs/dispatcher.log")" -ge 2 ] && break
  sleep 0.1
done
[ "$(grep -c "worker dropped" "$net/logs/dispatcher.log")" -ge 2 ] ||
  fail "the dispatcher did not drop the silent workers"
"$teex" invoke quick --input "$tmp/in" --account "$user" \
  > "$tmp/out2" 2> "$tmp/err2" || fail "invoke on the fresh worker: $(cat "$tmp/err2")"
[ "$(cat "$tmp/out2")" = "slept:abc" ] || fail "output 2: $(cat "$tmp/out2")"
grep -qi "ran on worker $new_w2" "$tmp/err2" || fail "not on the fresh worker: $(cat "$tmp/err2")"
grep -qi "keys released.*worker=$new_w2" "$net/logs/sm.log" ||
  fail "the restarted SM did not release keys to the fresh worker"
wait_settled "$((2 * PRICE))"
echo "fault sm restart: ok"
