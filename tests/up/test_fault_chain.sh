#!/usr/bin/env bash
# ctest-label: nosan (the workers' sandboxed executors do not run under ASan)
# The chain node goes away and comes back under a running `teex up`
# network. A task is running (a service that sleeps 5 s) when anvil is
# stopped (`teex chain down`; anvil writes its state as it exits): the task
# still completes for the user (running it needs no chain), the dispatcher
# records the receipt and its settlement attempts fail and are retried; a
# new invoke, which must read the chain, fails with a clear error and is
# not charged; `teex status` shows the chain down. Once the node is back on
# the same port with its state (`teex up --restart chain`), the batch
# settles — exactly one price — and the network serves again: a second task
# settles exactly one more.
set -euo pipefail
. "${TEEX_SOURCE_DIR:?}/tests/up/lib.sh"

up --settle-interval 1000
slow_service slow 5
deploy "$tmp/slow"
user_with_escrow 5000000000000000
printf 'during' > "$tmp/in"

"$teex" invoke slow --input "$tmp/in" --account "$user" \
  > "$tmp/out" 2> "$tmp/err" &
inv=$!
for _ in $(seq 1200); do
  grep -q "task started" "$net"/logs/worker-*.log && break
  sleep 0.05
done
grep -q "task started" "$net"/logs/worker-*.log || fail "no worker started the task"
"$teex" chain down > "$tmp/cd" 2>&1 || fail "chain down: $(cat "$tmp/cd")"
# The chain went away while the task ran: no receipt has reached the
# dispatcher yet, so it can have been settled only after the restart.
task="0x$(sed -n 's/.*task started.*task=\([0-9a-f]\{64\}\).*/\1/p' "$net"/logs/worker-*.log | head -1)"
"$teex" task status "$task" > "$tmp/ts" 2>&1 || fail "task status: $(cat "$tmp/ts")"
grep -q "state *assigned" "$tmp/ts" || fail "the task finished before the chain stopped: $(cat "$tmp/ts")"

wait "$inv" || fail "invoke while the chain went away: $(cat "$tmp/err")"
[ "$(cat "$tmp/out")" = "slept:during" ] || fail "output: $(cat "$tmp/out")"
# The receipt is recorded; settling it fails (the chain is away) and is
# retried.
wait_log "$net/logs/dispatcher.log" "receipt recorded" 200
wait_log "$net/logs/dispatcher.log" "will retry" 200
grep "will retry" "$net/logs/dispatcher.log" | head -1
# What needs no chain still answers: the task's state at the dispatcher.
"$teex" task status "$task" > "$tmp/ts" 2>&1 || fail "task status with the chain down: $(cat "$tmp/ts")"
grep -q "state *earned" "$tmp/ts" || fail "task status with the chain down: $(cat "$tmp/ts")"

# A new task needs the chain (listing, escrow): a clear error, no charge.
if "$teex" invoke slow --input "$tmp/in" --account "$user" \
   > "$tmp/out2" 2> "$tmp/err2"; then
  fail "invoke accepted with the chain down"
fi
grep -qi "chain\|connect" "$tmp/err2" || fail "unclear error: $(cat "$tmp/err2")"
echo "with the chain down: $(head -1 "$tmp/err2")"
if "$teex" status > "$tmp/st" 2>&1; then fail "status ok with the chain down"; fi
grep -q "^chain *DOWN" "$tmp/st" || fail "status: $(cat "$tmp/st")"

"$teex" up --restart chain > "$tmp/rc" 2>&1 || fail "restart chain: $(cat "$tmp/rc")"
"$teex" status > "$tmp/st" 2>&1 || fail "status after the chain came back: $(cat "$tmp/st")"
wait_settled "$PRICE"
for _ in $(seq 300); do
  "$teex" task status "$task" > "$tmp/ts" 2>&1 && grep -q "state *settled" "$tmp/ts" && break
  sleep 0.2
done
grep -q "state *settled" "$tmp/ts" || fail "task status: $(cat "$tmp/ts")"
"$teex" task verify "$task" > "$tmp/tv" 2>&1 || fail "verify: $(cat "$tmp/tv")"

"$teex" invoke slow --input "$tmp/in" --account "$user" \
  > "$tmp/out3" 2> "$tmp/err3" || fail "invoke after the chain came back: $(cat "$tmp/err3")"
wait_settled "$((2 * PRICE))"
sleep 2 # two more settlement intervals: nothing else is charged
[ "$(settled)" = "$((2 * PRICE))" ] || fail "charged again: $(settled)"
echo "fault chain away and back: ok"
