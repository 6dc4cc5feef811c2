#!/usr/bin/env bash
# ctest-label: nosan (the workers' sandboxed executors do not run under ASan)
# The dispatcher killed (SIGKILL) under a running `teex up` network with a
# receipt not yet settled, and started again with the same command line and
# sealed state (`teex up --restart dispatcher`): the unsettled receipt and
# the user's cumulative authorisation survive, the workers find it again by
# themselves, a new task is accepted, and both tasks settle on chain —
# exactly two prices. The dispatcher settles at 2 receipts (and not on a
# timer), so the first receipt cannot settle before the kill.
# Then the crash gap: the dispatcher dies right after the chain confirms a
# batch and before it records it (TEEX_FAULT_EXIT_AFTER_SETTLE, a fault
# injection point: a kill at that instant cannot be timed from outside).
# Restarted, it finds the batch on chain by its id, records it (the tasks
# are settled and verifiable) and does not settle it again; the next batch
# settles normally.
set -euo pipefail
. "${TEEX_SOURCE_DIR:?}/tests/up/lib.sh"

up --settle-interval 3600000 --settle-receipts 2
slow_service quick 0
deploy "$tmp/quick"
user_with_escrow 10000000000000000
printf 'one' > "$tmp/in1"
printf 'two' > "$tmp/in2"

"$teex" invoke quick --input "$tmp/in1" --account "$user" \
  > "$tmp/out1" 2> "$tmp/err1" || fail "invoke: $(cat "$tmp/err1")"
[ "$(cat "$tmp/out1")" = "slept:one" ] || fail "output: $(cat "$tmp/out1")"
task1="$(task_of "$tmp/err1")"
# The worker reports the receipt; the dispatcher records it (earned).
for _ in $(seq 300); do
  "$teex" task status "$task1" > "$tmp/ts" 2>&1 || true
  grep -q "state *earned" "$tmp/ts" && break
  sleep 0.1
done
grep -q "state *earned" "$tmp/ts" || fail "task not earned: $(cat "$tmp/ts")"
[ "$(settled)" = 0 ] || fail "settled before the kill: $(settled)"

old="$(cat "$net/run/dispatcher.pid")"
kill -9 "$old"
if "$teex" status > "$tmp/st" 2>&1; then fail "status ok with the dispatcher dead"; fi
grep -q "^dispatcher *DOWN" "$tmp/st" || fail "status: $(cat "$tmp/st")"
"$teex" up --restart dispatcher > "$tmp/rs" 2>&1 || fail "restart: $(cat "$tmp/rs")"
grep -q "restarted dispatcher" "$tmp/rs" || fail "restart: $(cat "$tmp/rs")"
[ "$(cat "$net/run/dispatcher.pid")" != "$old" ] || fail "same pid"
# Same sealed key, so the same address, and the task is known again.
[ "$(awk -F' = ' '$1 == "address" { print $2 }' "$net/run/dispatcher.ready")" = "$disp" ] ||
  fail "the dispatcher's address changed"
grep -q "state restored" "$net/logs/dispatcher.log" || fail "no state restored"
"$teex" task status "$task1" > "$tmp/ts" 2>&1 || fail "task status after restart: $(cat "$tmp/ts")"
grep -q "state *earned" "$tmp/ts" || fail "task lost in the restart: $(cat "$tmp/ts")"
"$teex" status > "$tmp/st" 2>&1 || fail "status after restart: $(cat "$tmp/st")"

# A new task: accepted (its authorisation builds on the restored base),
# run, and with the first one settled in one batch.
"$teex" invoke quick --input "$tmp/in2" --account "$user" \
  > "$tmp/out2" 2> "$tmp/err2" || fail "invoke after restart: $(cat "$tmp/err2")"
[ "$(cat "$tmp/out2")" = "slept:two" ] || fail "output 2: $(cat "$tmp/out2")"
grep -q "cumulative $((2 * PRICE))" "$tmp/err2" || fail "cumulative: $(cat "$tmp/err2")"
task2="$(task_of "$tmp/err2")"
# Both workers registered again with the new process by themselves.
for w in worker-1 worker-2; do
  for _ in $(seq 600); do
    [ "$(grep -c "registered with the dispatcher" "$net/logs/$w.log")" -ge 2 ] && break
    sleep 0.1
  done
  [ "$(grep -c "registered with the dispatcher" "$net/logs/$w.log")" -ge 2 ] ||
    fail "$w did not register again"
done
wait_settled "$((2 * PRICE))"
for t in "$task1" "$task2"; do
  for _ in $(seq 300); do
    "$teex" task status "$t" > "$tmp/ts" 2>&1 && grep -q "state *settled" "$tmp/ts" && break
    sleep 0.2
  done
  grep -q "state *settled" "$tmp/ts" || fail "task $t: $(cat "$tmp/ts")"
  "$teex" task verify "$t" > "$tmp/tv" 2>&1 || fail "verify $t: $(cat "$tmp/tv")"
done

# The crash gap between the chain confirming a batch and the record.
TEEX_FAULT_EXIT_AFTER_SETTLE=1 "$teex" up --restart dispatcher > "$tmp/rs" 2>&1 ||
  fail "restart (fault): $(cat "$tmp/rs")"
dpid="$(cat "$net/run/dispatcher.pid")"
for i in 3 4; do
  printf 'n%s' "$i" > "$tmp/in$i"
  "$teex" invoke quick --input "$tmp/in$i" --account "$user" \
    > "$tmp/out$i" 2> "$tmp/err$i" || fail "invoke $i: $(cat "$tmp/err$i")"
done
task3="$(task_of "$tmp/err3")"
task4="$(task_of "$tmp/err4")"
wait_settled "$((4 * PRICE))"
for _ in $(seq 300); do
  [ -d "/proc/$dpid" ] && ! grep -q '^State:.*Z' "/proc/$dpid/status" 2>/dev/null || break
  sleep 0.1
done
if [ -d "/proc/$dpid" ] && ! grep -q '^State:.*Z' "/proc/$dpid/status"; then
  fail "the dispatcher did not stop after the settlement"
fi
grep -q "batch settled" <(sed -n '/msg="serving"/h; /msg="serving"/!H; ${x;p}' "$net/logs/dispatcher.log") &&
  fail "the batch was recorded before the fault"
"$teex" up --restart dispatcher > "$tmp/rs" 2>&1 || fail "restart: $(cat "$tmp/rs")"
wait_log "$net/logs/dispatcher.log" "batch found on chain after a restart" 1200
for t in "$task3" "$task4"; do
  "$teex" task status "$t" > "$tmp/ts" 2>&1 || fail "status $t: $(cat "$tmp/ts")"
  grep -q "state *settled" "$tmp/ts" || fail "task $t after recovery: $(cat "$tmp/ts")"
  "$teex" task verify "$t" > "$tmp/tv" 2>&1 || fail "verify $t: $(cat "$tmp/tv")"
done
[ "$(settled)" = "$((4 * PRICE))" ] || fail "settled again: $(settled)"
# The worker whose report of the last receipt lost its answer in the crash
# reports it again; the dispatcher acknowledges it (settled), so it stops.
for _ in $(seq 300); do
  grep -q "receipt refused" <(sed -n '/msg="serving"/h; /msg="serving"/!H; ${x;p}' "$net/logs/dispatcher.log") &&
    fail "a settled receipt reported again was refused"
  n=0
  for w in worker-1 worker-2; do
    grep -q "receipt report failed" "$net/logs/$w.log" || continue
    last_fail="$(grep -n "receipt report failed" "$net/logs/$w.log" | tail -1 | cut -d: -f1)"
    last_ok="$(grep -n "receipt reported" "$net/logs/$w.log" | tail -1 | cut -d: -f1)"
    [ "${last_ok:-0}" -gt "$last_fail" ] || n=$((n + 1))
  done
  [ "$n" = 0 ] && break
  sleep 0.1
done
[ "$n" = 0 ] || fail "a worker still holds an unacknowledged receipt"
for i in 5 6; do
  printf 'n%s' "$i" > "$tmp/in$i"
  "$teex" invoke quick --input "$tmp/in$i" --account "$user" \
    > "$tmp/out$i" 2> "$tmp/err$i" || fail "invoke $i: $(cat "$tmp/err$i")"
done
wait_settled "$((6 * PRICE))"
echo "fault dispatcher restart: ok"
