#!/usr/bin/env bash
# ctest-label: nosan (the workers' sandboxed executors do not run under ASan)
# The Service Manager as the TEEs' monitor, on a real `teex up` network:
# after a task with a dataset, `teex sm status` shows the worker that ran
# it with its attestation and what it holds (the service's keys, the live
# data lease for that dataset and task); `teex sm revoke --enclave W` makes
# the SM itself submit EnclaveRegistry.revoke from its own account, so
# the registry no longer holds W as a worker, and status shows the
# revocation confirmed on chain and which keys W held that only their
# owners can rotate. The dispatcher stops giving W tasks: the next task
# runs on the other worker.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mkdir -p "$tmp/svc"
cat > "$tmp/svc/teex.toml" <<T
[service]
name = "rows"
version = "1.0.0"
entry = "main.py"
description = "counts the rows of the task's dataset"
style = "function"
stateless = true
T
cat > "$tmp/svc/main.py" <<'P'
import teex


def main(data):
    return b"rows=%d" % len(teex.data(0).decode().strip().splitlines())
P

up
deploy "$tmp/svc"
svc_id="$(sed -n 's/^ *service id *\(0x[0-9a-f]*\)/\1/p' "$tmp/deploy")"
img="$(sed -n 's/^ *image hash *\(0x[0-9a-f]*\)/\1/p' "$tmp/deploy")"
[ -n "$svc_id" ] && [ -n "$img" ] || fail "deploy output: $(cat "$tmp/deploy")"
user_with_escrow 10000000000000000

echo 7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6 > "$tmp/d"
dp="$("$teex" account import --private-key-file "$tmp/d")"
printf 'a\nb\nc\n' > "$tmp/three.csv"
"$teex" data publish "$tmp/three.csv" --account "$dp" --price 5 \
  --allow "$svc_id@$img" > "$tmp/pub" 2>&1 || fail "publish: $(cat "$tmp/pub")"
ds_id="$(sed -n 's/^ *dataset id *\(0x[0-9a-f]*\)/\1/p' "$tmp/pub")"
[ -n "$ds_id" ] || fail "publish output: $(cat "$tmp/pub")"

inv() { # OUT ERR
  echo go | "$teex" invoke rows --input - --account "$user" --data three.csv \
    > "$1" 2> "$2"
}
inv "$tmp/out" "$tmp/err" || fail "invoke: $(cat "$tmp/err")"
[ "$(cat "$tmp/out")" = "rows=3" ] || fail "output: $(cat "$tmp/out")"
w="$(sed -n 's/^task 0x[0-9a-f]* ran on worker \(0x[0-9a-fA-F]\{40\}\).*/\1/p' "$tmp/err")"
task="$(sed -n 's/^task \(0x[0-9a-f]\{64\}\) ran on .*/\1/p' "$tmp/err")"
[ -n "$w" ] && [ -n "$task" ] || fail "no worker or task in: $(cat "$tmp/err")"

sm_op() { "$teex" sm "$@" --sm "$sm_client" --sm-policy "$net/policy/sm.conf"; }
# line_of FILE ADDR: the status line of enclave ADDR, and what it holds.
line_of() { awk -v a="enclave=$2" 'index($0, a) == 1 { p = 1; print; next }
  /^enclave=/ { p = 0 } p' "$1"; }

# What the SM says it gave the worker: the service's keys and the lease
# for exactly this dataset and task, with its standing attestation.
sm_op status > "$tmp/st1" 2>&1 || fail "status: $(cat "$tmp/st1")"
line_of "$tmp/st1" "$w" > "$tmp/w1"
[ -s "$tmp/w1" ] || fail "worker $w not in status: $(cat "$tmp/st1")"
grep -q "role=worker" "$tmp/w1" || fail "role: $(cat "$tmp/w1")"
grep -q "state=trusted" "$tmp/w1" || fail "state: $(cat "$tmp/w1")"
grep -Eq "attested_at=[1-9][0-9]* attest_valid_until=[1-9]" "$tmp/w1" ||
  fail "attestation: $(cat "$tmp/w1")"
grep -q "holds service=$svc_id image=$img" "$tmp/w1" || fail "service keys: $(cat "$tmp/w1")"
grep -q "holds lease dataset=$ds_id task=$task" "$tmp/w1" || fail "lease: $(cat "$tmp/w1")"
grep -q "revocations on chain: yes" "$tmp/st1" || fail "chain: $(head -1 "$tmp/st1")"

# On chain W is an active worker; the operator revokes it at the SM, and
# the SM revokes it on chain itself.
"$teex" chain enclave "$w" | grep -q "worker=active" || fail "not registered: $("$teex" chain enclave "$w")"
sm_op revoke --enclave "$w" --reason "monitor test" > "$tmp/rev" 2>&1 ||
  fail "revoke: $(cat "$tmp/rev")"
ok=""
for _ in $(seq 600); do
  if "$teex" chain enclave "$w" | grep -q "worker=inactive"; then ok=1; break; fi
  sleep 0.1
done
[ -n "$ok" ] || fail "still a worker on chain: $("$teex" chain enclave "$w")"
wait_log "$net/logs/sm.log" "revoked on chain"
sm_op status > "$tmp/st2" 2>&1 || fail "status: $(cat "$tmp/st2")"
line_of "$tmp/st2" "$w" > "$tmp/w2"
grep -q 'state=revoked revoked_at=[0-9]* reason="monitor test" chain=confirmed' "$tmp/w2" ||
  fail "revoked state: $(cat "$tmp/w2")"
grep -q "holds service=$svc_id.*key was held by revoked enclave $w; the provider re-publishes" "$tmp/w2" ||
  fail "service key rotation hint: $(cat "$tmp/w2")"
grep -q "holds lease dataset=$ds_id.*re-publishes the dataset under a new key" "$tmp/w2" ||
  fail "data key rotation hint: $(cat "$tmp/w2")"

# The dispatcher reads the registry again (every 10 s by default, at the
# worker's heartbeats) and drops W: the next tasks run on the other
# worker, and W's later heartbeats and registrations are refused.
wait_log "$net/logs/dispatcher.log" "worker revoked on chain: dropped" 800
for i in 1 2 3; do
  inv "$tmp/out$i" "$tmp/err$i" || fail "invoke after revocation: $(cat "$tmp/err$i")"
  [ "$(cat "$tmp/out$i")" = "rows=3" ] || fail "output: $(cat "$tmp/out$i")"
  grep -q "ran on worker $w" "$tmp/err$i" && fail "a task ran on the revoked worker: $(cat "$tmp/err$i")"
done

echo "PASS"
