#!/usr/bin/env bash
# ctest-label: nosan (the workers' sandboxed executors do not run under ASan)
# Tasks that use datasets on a real `teex up` network: a data provider
# publishes datasets approved for a deployed service's exact image; a user
# invokes the service with `--data` and gets what the service computes from
# them, in order; a second service reads data its provider assigned at
# deploy before the task's own. After settlement the user paid exactly the
# tasks that ran, the data provider's credit on chain is price x uses, and
# `teex data show` gives each dataset's uses and earnings; `teex task
# verify` proves a data task's receipt. Refusals, each a clear error and no
# charge: a dataset approved for another service, one approved for another
# image hash, a revoked one, an expired one (on the chain's clock), one
# past its --max-uses, a --max-price below the total, an unknown name. A
# worker killed while a task holds the data leaves no plaintext on disk.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
find="$src/tests/up/find_canary.py"

r() { od -An -N6 -tx1 /dev/urandom | tr -d ' \n'; }
canary="DATACANARY$(r)"

# The service: the rows of every dataset of the task, and the sum of
# their second column ("sleep" first waits, holding the data).
mkdir -p "$tmp/svc"
cat > "$tmp/svc/teex.toml" <<T
[service]
name = "datasum"
version = "1.0.0"
entry = "main.py"
description = "sums the second column of the task's datasets"
style = "function"
stateless = true

[limits]
wall_ms = 60000
T
cat > "$tmp/svc/main.py" <<'P'
import time

import teex


def main(data):
    rows = []
    for i in range(len(teex.datasets())):
        lines = teex.data(i).decode().strip().splitlines()[1:]
        rows += [line.split(",") for line in lines]
    if data.startswith(b"sleep"):
        time.sleep(50)
    total = sum(int(row[1]) for row in rows)
    names = "|".join(teex.datasets())
    return ("rows=%d sum=%d names=%s" % (len(rows), total, names)).encode()
P

up
deploy "$tmp/svc"
svc_id="$(sed -n 's/^ *service id *\(0x[0-9a-f]*\)/\1/p' "$tmp/deploy")"
img="$(sed -n 's/^ *image hash *\(0x[0-9a-f]*\)/\1/p' "$tmp/deploy")"
[ -n "$svc_id" ] && [ -n "$img" ] || fail "deploy output: $(cat "$tmp/deploy")"
user_with_escrow 10000000000000000

# The data provider: the dev chain's account 3 (not the service's provider).
echo 7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6 > "$tmp/d"
dp="$("$teex" account import --private-key-file "$tmp/d")"
publish() { # FILE PRICE [OPTIONS...]
  local f="$1" p="$2"
  shift 2
  "$teex" data publish "$f" --account "$dp" --price "$p" "$@" \
    > "$tmp/pub" 2>&1 || fail "publish $f: $(cat "$tmp/pub")"
}
printf 'k,v\ne,1\n' > "$tmp/soon.csv"
publish "$tmp/soon.csv" 7 --allow "$svc_id@$img" --expires +600
# the canary rides in a row the service parses but never returns
printf 'patient,score,note\np1,10,-\np2,32,-\np3,0,%s\n' "$canary" > "$tmp/cohort.csv"
printf 'ref,score\nr1,100\n' > "$tmp/reference.csv"
publish "$tmp/cohort.csv" 250 --allow "datasum@$img" --max-output 4096
publish "$tmp/reference.csv" 100 --allow "$svc_id@$img"
printf 'k,v\nx,5\n' > "$tmp/noallow.csv"
publish "$tmp/noallow.csv" 3 --allow "0x$(printf '2%.0s' $(seq 64))@$img"
printf 'k,v\nx,6\n' > "$tmp/other.csv"
publish "$tmp/other.csv" 3 --allow "$svc_id@0x$(printf '1%.0s' $(seq 64))"
printf 'k,v\nx,8\n' > "$tmp/once.csv"
publish "$tmp/once.csv" 10 --allow "$svc_id@$img" --max-uses 1
printf 'k,v\nx,9\n' > "$tmp/gone.csv"
publish "$tmp/gone.csv" 3 --allow "$svc_id@$img"
"$teex" data revoke gone.csv --account "$dp" > "$tmp/rev" 2>&1 || fail "revoke: $(cat "$tmp/rev")"

inv() { # OUT ERR ARGS...: invoke datasum with input "go"
  local o="$1" e="$2"
  shift 2
  echo go | "$teex" invoke datasum --input - --account "$user" "$@" > "$o" 2> "$e"
}

# The task with two datasets: the output is computed from both.
inv "$tmp/out" "$tmp/err" --data cohort.csv,reference.csv || fail "invoke --data: $(cat "$tmp/err")"
[ "$(cat "$tmp/out")" = "rows=4 sum=142 names=cohort.csv|reference.csv" ] || fail "output: $(cat "$tmp/out") $(cat "$tmp/err")"
grep -q "350 wei for 2 dataset(s)" "$tmp/err" || fail "report: $(cat "$tmp/err")"
paid=$((PRICE + 350))

# Service data: a second service whose provider assigned reference.csv at
# deploy; its tasks read it first, then their own, and pay for both.
mkdir -p "$tmp/svc2"
cp "$tmp/svc/main.py" "$tmp/svc2/"
sed 's/^name = "datasum"/name = "datasum-ref"/' "$tmp/svc/teex.toml" > "$tmp/svc2/teex.toml"
"$teex" service deploy "$tmp/svc2" --account "$provider" --sm "$sm_client" \
  --sm-policy "$net/policy/sm.conf" --price "$PRICE" --remuneration "$REMUNERATION" \
  --data reference.csv > "$tmp/deploy2" 2>&1 || fail "deploy --data: $(cat "$tmp/deploy2")"
img2="$(sed -n 's/^ *image hash *\(0x[0-9a-f]*\)/\1/p' "$tmp/deploy2")"
for ds in reference.csv cohort.csv; do
  "$teex" data approve "$ds" --allow "datasum-ref@$img2" --account "$dp" \
    > "$tmp/appr" 2>&1 || fail "approve: $(cat "$tmp/appr")"
done
echo go | "$teex" invoke datasum-ref --input - --account "$user" --data cohort.csv \
  > "$tmp/out2" 2> "$tmp/err2" || fail "invoke with service data: $(cat "$tmp/err2")"
[ "$(cat "$tmp/out2")" = "rows=4 sum=142 names=reference.csv|cohort.csv" ] ||
  fail "service data output: $(cat "$tmp/out2")"
grep -q "350 wei for 2 dataset(s)" "$tmp/err2" || fail "report: $(cat "$tmp/err2")"
paid=$((paid + PRICE + 350))

# Refusals: clear errors, before any work.
refuse() { # WHAT EXPECTED-TEXT ARGS...
  local what="$1" want="$2"
  shift 2
  if inv "$tmp/o" "$tmp/e" "$@"; then fail "$what accepted: $(cat "$tmp/o")"; fi
  grep -q -- "$want" "$tmp/e" || fail "$what: $(cat "$tmp/e")"
  [ ! -s "$tmp/o" ] || fail "$what gave output: $(cat "$tmp/o")"
  echo "refused ($what): $(tail -1 "$tmp/e")"
}
refuse "another service" "has not approved this service" --data noallow.csv
refuse "other image" "at this image hash" --data other.csv
gone="$("$teex" data list --all --json | python3 -c '
import json, sys
print([d["dataset_id"] for d in json.load(sys.stdin) if d["name"] == "gone.csv"][0])')"
refuse "revoked" "revoked" --data "$gone"
refuse "max price" "above --max-price" --data cohort.csv --max-price $((PRICE + 100))
refuse "unknown" "no live dataset" --data nosuch.csv
# One use: the first task gets it, the second is refused by the SM.
inv "$tmp/out1" "$tmp/err1" --data once.csv || fail "once: $(cat "$tmp/err1")"
[ "$(cat "$tmp/out1")" = "rows=1 sum=8 names=once.csv" ] || fail "once output: $(cat "$tmp/out1")"
paid=$((paid + PRICE + 10))
refuse "beyond max uses" "no use left" --data once.csv
# Expiry, on the chain's clock: an hour passes on the dev chain.
rpc="$(awk -F' = ' '$1 == "rpc_url" { print $2 }' "$net/chain.conf" | tr -d '"')"
for m in '"evm_increaseTime","params":[3600]' '"evm_mine","params":[]'; do
  curl -sf -H 'Content-Type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":$m}" "$rpc" > /dev/null ||
    fail "dev chain time"
done
refuse "expired" "expired" --data soon.csv

# Settlement: the user paid exactly the tasks that ran; the data provider
# is credited each dataset's price per use.
wait_settled "$paid" 120
# The user proves the data task's receipt, data shares included, is in a
# batch settled on chain.
task="$(task_of "$tmp/err")"
[ -n "$task" ] || fail "no task id: $(cat "$tmp/err")"
for _ in $(seq 120); do
  "$teex" task verify "$task" > "$tmp/tv" 2>&1 && break
  sleep 0.5
done
grep -q "^verified" "$tmp/tv" || fail "task verify: $(cat "$tmp/tv")"
# (cohort 250 + reference 100, each used twice, + once 10)
"$teex" data show cohort.csv > "$tmp/show" || fail "data show: $(cat "$tmp/show")"
grep -q "^credited *710 wei" "$tmp/show" || fail "provider credit: $(cat "$tmp/show")"
# Uses and earnings per dataset, from the settled batches' receipts.
grep -q "^used *2 settled task(s), earning 500 wei" "$tmp/show" || fail "cohort uses: $(cat "$tmp/show")"
"$teex" data show reference.csv | grep -q "^used *2 settled task(s), earning 200 wei" || fail "reference uses"
"$teex" data show once.csv | grep -q "^used *1 settled task(s), earning 10 wei" || fail "once uses"
"$teex" data show noallow.csv | grep -q "^used *0 settled task(s), earning 0 wei" || fail "unused dataset"

# A worker killed (SIGKILL) while a task holds the data in memory: no
# plaintext of the dataset on any disk of the network.
(echo sleep | "$teex" invoke datasum --input - --account "$user" \
   --data cohort.csv > "$tmp/o3" 2> "$tmp/e3" || true) &
inv_pid=$!
wait_log "$net/logs/sm.log" "data key leased.*uses=3" 400
sleep 1 # the worker decrypts and hands the data to the task
for p in "$net"/run/worker-*.pid; do kill -9 "$(cat "$p")" 2>/dev/null || true; done
wait "$inv_pid" 2>/dev/null || true
python3 "$find" "$canary" "$tmp/cohort.csv" > /dev/null && fail "control: canary not in the provider's file"
if python3 "$find" "$canary" "$net" > "$tmp/hits"; then
  echo "no plaintext on disk after the kill ($(find "$net" -type f | wc -l) files searched)"
else
  fail "dataset canary on disk: $(cat "$tmp/hits")"
fi
echo "data tasks: ok"
