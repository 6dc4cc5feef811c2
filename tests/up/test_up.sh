#!/usr/bin/env bash
# ctest-label: nosan (the workers' sandboxed executors do not run under ASan)
# The whole network end to end, as a user would drive it: `teex up` (chain
# with contracts, SM, dispatcher, two workers — all registered — and a
# 3-replica TEE-DS group written and read through `teex ds`), status over
# RA-TLS, a second `up` refused; a provider deploys and lists a service; a
# user without escrow is refused before any work; the user deposits and
# invokes through the dispatcher and a worker, and gets the example's
# expected output; the dispatcher settles the batch on chain (escrow debited
# exactly the price); `teex down` stops everything.
set -euo pipefail
. "${TEEX_SOURCE_DIR:?}/tests/up/lib.sh"

up_on_free_port "$tmp/up.out" || fail "up: $(cat "$tmp/up.out")"
grep -q "teex network up" "$tmp/up.out" || fail "up output"
"$teex" status > "$tmp/status" || fail "status: $(cat "$tmp/status")"
grep -q "^sm *ok" "$tmp/status" || fail "status: $(cat "$tmp/status")"
grep -q "^chain *ok" "$tmp/status" || fail "status: $(cat "$tmp/status")"
grep -q "^dispatcher *ok" "$tmp/status" || fail "status: $(cat "$tmp/status")"
for r in ds-1 ds-2 ds-3; do
  grep -q "^$r *ok .* term" "$tmp/status" || fail "status: $(cat "$tmp/status")"
done
[ "$(grep -c "^ds-[123] *ok .* leader " "$tmp/status")" = 1 ] || fail "one ds leader: $(cat "$tmp/status")"
# The TEE-DS group of `teex up`: the operator's client in namespace dev.
"$teex" ds set greeting hello > /dev/null || fail "ds set"
[ "$("$teex" ds get greeting)" = hello ] || fail "ds get"
"$teex" ds status > "$tmp/dss" || fail "ds status: $(cat "$tmp/dss")"
[ "$(grep -c " ok$" "$tmp/dss")" = 3 ] || fail "ds status: $(cat "$tmp/dss")"
# The group anchors itself on the network's chain (every 5 s here).
for _ in $(seq 150); do
  "$teex" ds status >"$tmp/dss" 2>&1 || true
  grep -q "^chain anchor: index [1-9]" "$tmp/dss" && break
  sleep 0.2
done
grep -q "^chain anchor: index [1-9][0-9]* .* signer 0x" "$tmp/dss" || fail "no anchor by the group: $(cat "$tmp/dss")"
if "$teex" up > "$tmp/out" 2>&1; then fail "second up accepted"; fi
grep -q "already up" "$tmp/out" || fail "second up: $(cat "$tmp/out")"

sm="$(awk -F' = ' '$1 == "client" { print $2 }' "$TEEX_HOME/network.conf")"
# The provider: the dev chain's funded account 1 (its key is public).
echo 59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d > "$tmp/k"
acct="$("$teex" account import --private-key-file "$tmp/k")"
"$teex" service deploy "$src/examples/services/genome-match/service" \
  --account "$acct" --sm "$sm" --sm-policy "$TEEX_HOME/policy/sm.conf" \
  --price 1000000000000000 --remuneration 700000000000000 \
  > "$tmp/deploy" || fail "deploy: $(cat "$tmp/deploy")"
grep -q "^deployed" "$tmp/deploy" || fail "deploy output"
grep -q "listed on chain" "$tmp/deploy" || fail "not listed: $(cat "$tmp/deploy")"
# The app store on chain shows it, with the SM-signed keys.
"$teex" chain services > "$tmp/services" || fail "chain services"
grep -q "genome" "$tmp/services" || grep -qi "$(sed -n 's/.*service id *0x\([0-9a-f]\{8\}\).*/\1/p' "$tmp/deploy")" "$tmp/services" \
  || fail "catalogue: $(cat "$tmp/services")"

# A user (the dev chain's account 2): no escrow yet, so a clear refusal
# before any work is done.
echo 5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a > "$tmp/u"
user="$("$teex" account import --private-key-file "$tmp/u")"
ex="$src/examples/services/genome-match"
if "$teex" invoke genome-match --input "$ex/input.json" --account "$user" \
   > "$tmp/out" 2>"$tmp/err"; then fail "invoke without escrow"; fi
grep -q "deposit" "$tmp/err" || fail "no escrow: $(cat "$tmp/err")"
disp="$(awk -F' = ' '$1 == "address" { print $2 }' "$TEEX_HOME/run/dispatcher.ready")"
"$teex" deposit "$disp" 5000000000000000 --from "$user" > "$tmp/dep" || fail "deposit: $(cat "$tmp/dep")"
"$teex" invoke genome-match --input "$ex/input.json" --account "$user" \
  > "$tmp/out" 2>"$tmp/err" || fail "invoke: $(cat "$tmp/err")"
cmp -s "$tmp/out" "$ex/expected_output.json" || \
  diff <(tr -d '\n' < "$tmp/out") <(tr -d '\n' < "$ex/expected_output.json") >/dev/null || \
  fail "output differs: $(head -c 300 "$tmp/out")"
grep -q "receipt verified" "$tmp/err" || fail "invoke report: $(cat "$tmp/err")"
# The dispatcher settles the batch on chain: exactly the price is debited.
for _ in $(seq 180); do
  "$teex" withdraw "$disp" --status --from "$user" > "$tmp/st"
  grep -q "settled *1000000000000000 wei" "$tmp/st" && break
  sleep 0.5
done
grep -q "settled *1000000000000000 wei" "$tmp/st" || fail "not settled: $(cat "$tmp/st")"
grep -q "escrow *4000000000000000 wei" "$tmp/st" || fail "escrow: $(cat "$tmp/st")"
# The user proves the task's receipt is in the batch settled on chain.
task="$(sed -n 's/^task \(0x[0-9a-f]\{64\}\) ran on .*/\1/p' "$tmp/err")"
[ -n "$task" ] || fail "no task id: $(cat "$tmp/err")"
for _ in $(seq 120); do
  "$teex" task status "$task" > "$tmp/ts" 2>&1 && grep -q "state *settled" "$tmp/ts" && break
  sleep 0.5
done
grep -q "state *settled" "$tmp/ts" || fail "task status: $(cat "$tmp/ts")"
"$teex" task verify "$task" > "$tmp/tv" 2>&1 || fail "task verify: $(cat "$tmp/tv")"
grep -q "^verified" "$tmp/tv" || fail "task verify: $(cat "$tmp/tv")"
# A worker killed (SIGKILL) under the dispatcher's feet: the next task for
# that warm image goes to it first, fails, and runs on the other worker
# under the same task id — charged once.
ran_on="$(sed -n 's/^task 0x[0-9a-f]* ran on worker \(0x[0-9a-fA-F]*\) .*/\1/p' "$tmp/err")"
victim=""
for r in "$TEEX_HOME"/run/worker-*.ready; do
  if grep -qi "address = $ran_on" "$r"; then victim="$(basename "$r" .ready)"; fi
done
[ -n "$victim" ] || fail "which worker ran the task? $ran_on"
kill -9 "$(cat "$TEEX_HOME/run/$victim.pid")"
"$teex" invoke genome-match --input "$ex/input.json" --account "$user" \
  > "$tmp/out2" 2>"$tmp/err2" || fail "invoke after a worker died: $(cat "$tmp/err2")"
diff <(tr -d '\n' < "$tmp/out2") <(tr -d '\n' < "$ex/expected_output.json") >/dev/null \
  || fail "output after failover differs"
grep -q "ran on worker" "$tmp/err2" || fail "no failover: $(cat "$tmp/err2")"
echo "after the kill: $(grep "ran on worker" "$tmp/err2")"
if grep -qi "ran on worker $ran_on" "$tmp/err2"; then fail "ran on the dead worker"; fi
for _ in $(seq 180); do
  "$teex" withdraw "$disp" --status --from "$user" > "$tmp/st"
  grep -q "settled *2000000000000000 wei" "$tmp/st" && break
  sleep 0.5
done
grep -q "settled *2000000000000000 wei" "$tmp/st" || fail "charged other than once: $(cat "$tmp/st")"

# An unknown task is not verified.
if "$teex" task verify 0x$(printf '1%.0s' $(seq 64)) > "$tmp/tv" 2>&1; then
  fail "unknown task verified"
fi

# The app store: name, prices and the description from IPFS.
"$teex" service list > "$tmp/list" || fail "service list"
grep -q "^genome-match .* 1000000000000000 *700000000000000 " "$tmp/list" \
  || fail "service list: $(cat "$tmp/list")"
desc="$(sed -n 's/^description = "\(.*\)"/\1/p' "$src/examples/services/genome-match/service/teex.toml" | head -1)"
[ -z "$desc" ] || grep -qF "${desc:0:30}" "$tmp/list" || fail "description missing: $(cat "$tmp/list")"
"$teex" service list --json | grep -q '"name":"genome-match"' || fail "service list --json"

# A data provider (account 1 again) publishes through the network's own SM
# and policy (the defaults), approving the deployed image; the SM was
# started able to lease (it reads the dataset registry on chain).
grep -q "data-key leases enabled" "$TEEX_HOME/logs/sm.log" || fail "sm without dataset registry"
svc_id="$(sed -n 's/^ *service id *\(0x[0-9a-f]*\)/\1/p' "$tmp/deploy")"
img="$(sed -n 's/^ *image hash *\(0x[0-9a-f]*\)/\1/p' "$tmp/deploy")"
printf 'sample,value\ns1,7\n' > "$tmp/reference.csv"
"$teex" data publish "$tmp/reference.csv" --account "$acct" --price 1000 \
  --allow "genome-match@$img" > "$tmp/pub" 2>&1 || fail "data publish: $(cat "$tmp/pub")"
"$teex" data show reference.csv | grep -q "$svc_id@$img" || fail "the service name did not resolve to its id"
"$teex" service list --json | grep -q '"kind":"dataset"' || fail "dataset not in the app store"
"$teex" service list --json | grep -q "\"image_hash\":\"$img\"" || fail "image hash not in the app store"
"$teex" data show reference.csv | grep -q "^approved     1 service image" || fail "data show"

# teex.kv: a notebook service keeps its notes in its own TEE-DS namespace,
# reached by the workers with the SM's grant; they outlast each task.
"$teex" service deploy "$src/examples/services/kv-notebook/app" \
  --account "$acct" --sm "$sm" --sm-policy "$TEEX_HOME/policy/sm.conf" \
  --price 1000 --remuneration 500 > "$tmp/deploy_kv" 2>&1 \
  || fail "deploy kv-notebook: $(cat "$tmp/deploy_kv")"
"$teex" invoke kv-notebook --input "$src/examples/services/kv-notebook/input.json" \
  --account "$user" > "$tmp/kv1" 2>"$tmp/kv1.err" || fail "kv invoke: $(cat "$tmp/kv1.err")"
[ "$(cat "$tmp/kv1")" = '{"count":1,"notes":["buy milk"]}' ] || fail "kv 1: $(cat "$tmp/kv1")"
echo '{"note": "call mom"}' > "$tmp/kv2.json"
"$teex" invoke kv-notebook --input "$tmp/kv2.json" --account "$user" \
  > "$tmp/kv2" 2>"$tmp/kv2.err" || fail "kv invoke 2: $(cat "$tmp/kv2.err")"
[ "$(cat "$tmp/kv2")" = '{"count":2,"notes":["buy milk","call mom"]}' ] || fail "kv 2: $(cat "$tmp/kv2")"
echo "teex.kv: $(cat "$tmp/kv2")"

"$teex" down > "$tmp/down" || fail "down"
grep -q "stopped sm" "$tmp/down" || fail "down output: $(cat "$tmp/down")"
grep -q "stopped anvil" "$tmp/down" || fail "down output: $(cat "$tmp/down")"
grep -q "stopped dispatcher" "$tmp/down" || fail "down output: $(cat "$tmp/down")"
grep -q "stopped ds-1" "$tmp/down" || fail "down output: $(cat "$tmp/down")"
if "$teex" status > "$tmp/status" 2>&1; then fail "status ok after down"; fi
grep -q "DOWN" "$tmp/status" || fail "status after down: $(cat "$tmp/status")"
echo "up/status/down: ok"
