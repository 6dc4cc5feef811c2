#!/usr/bin/env bash
# ctest-label: nosan (the workers' sandboxed executors do not run under ASan)
# A worker killed with SIGKILL in the middle of a task, on a real `teex up`
# network: a service that sleeps 3 s is invoked; as soon as the worker the
# dispatcher assigned logs that it started the task, that worker is killed.
# The user's `teex invoke` reports the failed worker to the dispatcher,
# which reassigns the same task id to the other worker: the user gets the
# right answer, and the chain debits exactly one price. The killed worker
# is then restarted (`teex up --restart worker-N`) with its sealed state; it
# re-registers by itself, and a second task settles exactly one more price:
# the failed attempt was never charged.
set -euo pipefail
. "${TEEX_SOURCE_DIR:?}/tests/up/lib.sh"

up --settle-interval 1000
slow_service slow 3
deploy "$tmp/slow"
user_with_escrow 5000000000000000
printf 'hello' > "$tmp/in"

"$teex" invoke slow --input "$tmp/in" --account "$user" \
  > "$tmp/out" 2> "$tmp/err" &
inv=$!
# The worker that started the task (each worker logs "task started").
victim=""
for _ in $(seq 1200); do
  for w in worker-1 worker-2; do
    if grep -q "task started" "$net/logs/$w.log"; then victim=$w; fi
  done
  [ -n "$victim" ] && break
  sleep 0.05
done
[ -n "$victim" ] || fail "no worker started the task"
task="0x$(sed -n 's/.*task started.*task=\([0-9a-f]\{64\}\).*/\1/p' "$net/logs/$victim.log" | head -1)"
kill -9 "$(cat "$net/run/$victim.pid")"
if "$teex" status > "$tmp/st" 2>&1; then fail "status ok with $victim dead"; fi
grep -q "^$victim *DOWN" "$tmp/st" || fail "status: $(cat "$tmp/st")"
# It died mid-task: it never finished this task.
sleep 0.2
if grep -q "task done.*task=${task#0x}" "$net/logs/$victim.log"; then
  fail "$victim finished the task before it was killed"
fi
wait "$inv" || fail "invoke after a worker died mid-task: $(cat "$tmp/err")"
[ "$(cat "$tmp/out")" = "slept:hello" ] || fail "output: $(head -c 200 "$tmp/out")"
[ "$(task_of "$tmp/err")" = "$task" ] || fail "another task id: $(cat "$tmp/err")"
other=worker-1
[ "$victim" = worker-1 ] && other=worker-2
grep -q "task done.*task=${task#0x}" "$net/logs/$other.log" ||
  fail "the task did not run on $other"
grep -q "receipt verified" "$tmp/err" || fail "invoke report: $(cat "$tmp/err")"
echo "killed $victim mid-task; $(grep "ran on worker" "$tmp/err")"

# Charged once: the chain debits one price for the task.
wait_settled "$PRICE"
"$teex" task status "$task" > "$tmp/ts" 2>&1 || fail "task status: $(cat "$tmp/ts")"
grep -q "state *settled" "$tmp/ts" || fail "task status: $(cat "$tmp/ts")"

# The killed worker comes back with its sealed state and re-registers by
# itself; the next task is charged exactly one more price.
"$teex" up --restart "$victim" > "$tmp/rs" 2>&1 || fail "restart: $(cat "$tmp/rs")"
wait_log "$net/logs/$victim.log" "registered with the dispatcher.*" 10
n_reg() { grep -c "registered with the dispatcher" "$net/logs/$victim.log" || true; }
for _ in $(seq 600); do [ "$(n_reg)" -ge 2 ] && break; sleep 0.1; done
[ "$(n_reg)" -ge 2 ] || fail "$victim did not register again"
"$teex" status > "$tmp/st" 2>&1 || fail "status after the restart: $(cat "$tmp/st")"
grep -q "^$victim *ok" "$tmp/st" || fail "status: $(cat "$tmp/st")"
"$teex" invoke slow --input "$tmp/in" --account "$user" \
  > "$tmp/out2" 2> "$tmp/err2" || fail "second invoke: $(cat "$tmp/err2")"
[ "$(cat "$tmp/out2")" = "slept:hello" ] || fail "second output"
wait_settled "$((2 * PRICE))"
sleep 2 # two more settlement intervals: nothing else is charged
[ "$(settled)" = "$((2 * PRICE))" ] || fail "charged again: $(settled)"
echo "fault worker mid-task: ok"
