#!/usr/bin/env bash
# ctest-label: nosan (the workers' sandboxed executors do not run under ASan)
# The dispatcher's state (tasks, receipts, settled amounts, batches in
# flight) in TEE-DS under a running `teex up` network (group.conf maps the
# role dispatcher to namespace dispatcher):
#  - the dispatcher's sealed state dir holds only its identity: a copy taken
#    before any task, put back after a SIGKILL, loses nothing — the earned
#    but unsettled receipt is restored from TEE-DS and settles exactly once
#    (the chain's settled amount is two prices after two tasks);
#  - a canary (the task's id, in every task record) is in no replica file,
#    in raw bytes or hex;
#  - the group down (every replica stopped): Submit fails with a clear error
#    naming the group; the group back: a new task runs and settles;
#  - a crash in the middle of a batch's chunked record: recovered after a
#    restart, each task settled once.
set -euo pipefail
. "${TEEX_SOURCE_DIR:?}/tests/up/lib.sh"

up --settle-interval 3600000 --settle-receipts 2
grep -q 'msg="state in TEE-DS"' "$net/logs/dispatcher.log" ||
  fail "the dispatcher's state is not in TEE-DS"
# The bootstrap set: what the sealed store holds before any task.
cp -a "$net/dispatcher" "$tmp/dispatcher.boot"
slow_service quick 0
deploy "$tmp/quick"
user_with_escrow 10000000000000000
printf 'one' > "$tmp/in1"
"$teex" invoke quick --input "$tmp/in1" --account "$user" \
  > "$tmp/out1" 2> "$tmp/err1" || fail "invoke: $(cat "$tmp/err1")"
task1="$(task_of "$tmp/err1")"
[ -n "$task1" ] || fail "no task id: $(cat "$tmp/err1")"
for _ in $(seq 300); do
  "$teex" task status "$task1" > "$tmp/ts" 2>&1 || true
  grep -q "state *earned" "$tmp/ts" && break
  sleep 0.1
done
grep -q "state *earned" "$tmp/ts" || fail "task not earned: $(cat "$tmp/ts")"
[ "$(settled)" = 0 ] || fail "settled before the kill: $(settled)"

# The canary: the task id, raw and hex, in no replica's files.
python3 - "$task1" "$net/ds" <<'PY' || fail "the task id is readable in TEE-DS files"
import os, sys
tid = sys.argv[1][2:]
needles = [bytes.fromhex(tid), tid.encode(), tid.upper().encode()]
seen = 0
for root, _, names in os.walk(sys.argv[2]):
    for n in names:
        p = os.path.join(root, n)
        try:
            data = open(p, "rb").read()
        except OSError:
            continue
        seen += len(data)
        for x in needles:
            if x in data:
                print("canary in", p)
                sys.exit(1)
if seen == 0:
    print("no replica files")
    sys.exit(1)
PY

# Killed; its state dir wiped back to the bootstrap set; restarted.
old="$(cat "$net/run/dispatcher.pid")"
kill -9 "$old"
for _ in $(seq 100); do [ -d "/proc/$old" ] || break; sleep 0.05; done
rm -rf "$net/dispatcher"
cp -a "$tmp/dispatcher.boot" "$net/dispatcher"
"$teex" up --restart dispatcher > "$tmp/rs" 2>&1 || fail "restart: $(cat "$tmp/rs")"
[ "$(awk -F' = ' '$1 == "address" { print $2 }' "$net/run/dispatcher.ready")" = "$disp" ] ||
  fail "the dispatcher's address changed"
grep 'msg="state restored"' "$net/logs/dispatcher.log" | tail -1 > "$tmp/restored"
grep -q "tasks=1 unsettled_receipts=1 .*backend=tee-ds" "$tmp/restored" ||
  fail "restored: $(cat "$tmp/restored")"
"$teex" task status "$task1" > "$tmp/ts" 2>&1 || fail "status after restart: $(cat "$tmp/ts")"
grep -q "state *earned" "$tmp/ts" || fail "task lost: $(cat "$tmp/ts")"

printf 'two' > "$tmp/in2"
"$teex" invoke quick --input "$tmp/in2" --account "$user" \
  > "$tmp/out2" 2> "$tmp/err2" || fail "invoke after restart: $(cat "$tmp/err2")"
grep -q "cumulative $((2 * PRICE))" "$tmp/err2" || fail "cumulative: $(cat "$tmp/err2")"
task2="$(task_of "$tmp/err2")"
wait_settled "$((2 * PRICE))"
for t in "$task1" "$task2"; do
  for _ in $(seq 300); do
    "$teex" task status "$t" > "$tmp/ts" 2>&1 && grep -q "state *settled" "$tmp/ts" && break
    sleep 0.2
  done
  grep -q "state *settled" "$tmp/ts" || fail "task $t: $(cat "$tmp/ts")"
  "$teex" task verify "$t" > "$tmp/tv" 2>&1 || fail "verify $t: $(cat "$tmp/tv")"
done

# The group down: every replica stopped (SIGSTOP: its connections hang).
pids=""
for i in 1 2 3; do pids="$pids $(cat "$net/run/ds-$i.pid")"; done
# shellcheck disable=SC2086
kill -STOP $pids
printf 'three' > "$tmp/in3"
if "$teex" invoke quick --input "$tmp/in3" --account "$user" \
  > "$tmp/out3" 2> "$tmp/err3"; then
  # shellcheck disable=SC2086
  kill -CONT $pids
  fail "invoke succeeded with the group down"
fi
# shellcheck disable=SC2086
kill -CONT $pids
grep -q "group unreachable" "$tmp/err3" || fail "unclear error: $(cat "$tmp/err3")"
# Back up: a new task runs and settles with the others, each once.
printf 'four' > "$tmp/in4"
ok=0
for _ in $(seq 20); do
  if "$teex" invoke quick --input "$tmp/in4" --account "$user" \
    > "$tmp/out4" 2> "$tmp/err4"; then ok=1; break; fi
  sleep 1
done
[ "$ok" = 1 ] || fail "invoke after the group is back: $(cat "$tmp/err4")"
[ "$(cat "$tmp/out4")" = "slept:four" ] || fail "output 4: $(cat "$tmp/out4")"
printf 'five' > "$tmp/in5"
"$teex" invoke quick --input "$tmp/in5" --account "$user" \
  > "$tmp/out5" 2> "$tmp/err5" || fail "invoke 5: $(cat "$tmp/err5")"
wait_settled "$((4 * PRICE))"

# A crash in the middle of a chunked record (TEE-DS takes at most 64 writes
# in one transaction; a batch writes more): the dispatcher records in
# chunks of 3 writes (TEEX_FAULT_RECORD_CHUNK) and dies after the first —
# one receipt recorded and its task forgotten, the other not. Restarted,
# it finds the batch on chain, takes the forgotten task from its record,
# finishes; nothing is settled twice, and the next batch settles.
TEEX_FAULT_RECORD_CHUNK=3 "$teex" up --restart dispatcher > "$tmp/rs" 2>&1 ||
  fail "restart (fault): $(cat "$tmp/rs")"
dpid="$(cat "$net/run/dispatcher.pid")"
for i in 6 7; do
  printf 'n%s' "$i" > "$tmp/in$i"
  "$teex" invoke quick --input "$tmp/in$i" --account "$user" \
    > "$tmp/out$i" 2> "$tmp/err$i" || fail "invoke $i: $(cat "$tmp/err$i")"
done
task6="$(task_of "$tmp/err6")"
task7="$(task_of "$tmp/err7")"
wait_settled "$((6 * PRICE))"
for _ in $(seq 300); do
  [ -d "/proc/$dpid" ] && ! grep -q '^State:.*Z' "/proc/$dpid/status" 2>/dev/null || break
  sleep 0.1
done
if [ -d "/proc/$dpid" ] && ! grep -q '^State:.*Z' "/proc/$dpid/status"; then
  fail "the dispatcher did not stop in the record"
fi
"$teex" up --restart dispatcher > "$tmp/rs" 2>&1 || fail "restart: $(cat "$tmp/rs")"
grep 'msg="state restored"' "$net/logs/dispatcher.log" | tail -1 > "$tmp/restored2"
grep -q "tasks=1 unsettled_receipts=1 " "$tmp/restored2" ||
  fail "not a partial record: $(cat "$tmp/restored2")"
wait_log "$net/logs/dispatcher.log" "batch found on chain after a restart" 1200
for t in "$task6" "$task7"; do
  "$teex" task status "$t" > "$tmp/ts" 2>&1 || fail "status $t: $(cat "$tmp/ts")"
  grep -q "state *settled" "$tmp/ts" || fail "task $t after recovery: $(cat "$tmp/ts")"
  "$teex" task verify "$t" > "$tmp/tv" 2>&1 || fail "verify $t: $(cat "$tmp/tv")"
done
[ "$(settled)" = "$((6 * PRICE))" ] || fail "settled again: $(settled)"
for i in 8 9; do
  printf 'n%s' "$i" > "$tmp/in$i"
  "$teex" invoke quick --input "$tmp/in$i" --account "$user" \
    > "$tmp/out$i" 2> "$tmp/err$i" || fail "invoke $i: $(cat "$tmp/err$i")"
done
wait_settled "$((8 * PRICE))"
echo "restored: $(cat "$tmp/restored")"
echo "group down: $(tail -2 "$tmp/err3")"
echo "dispatcher state in TEE-DS: ok"
