#!/usr/bin/env bash
# ctest-label: nosan (the workers' sandboxed executors do not run under ASan)
# Private services and versions on a real `teex up` network, driven through
# the CLI.
# Private: a provider lists a service with `--private --allow USER`; the
# provider and USER invoke it; a stranger is refused by the dispatcher with
# a clear message and is never charged (the chain settles nothing for it);
# the app store marks it private; after `teex service access --deny USER`
# USER is refused too, and after `--public` the stranger runs it.
# Versions: the provider publishes version 2 (other code, same service
# id), private again with the user allowed back; `teex invoke NAME` runs
# version 2 for the user and not for the stranger; pinning the old image hash
# (NAME@OLD) is refused with a clear error (never runs other code), and
# pinning the new one runs it.
set -euo pipefail
. "${TEEX_SOURCE_DIR:?}/tests/up/lib.sh"

up --settle-interval 1000

# The service: answers "v1:" + its input (v2 below answers "v2:").
svc="$tmp/acc"
mkdir -p "$svc"
cat > "$svc/teex.toml" <<T
[service]
name = "acc"
version = "1.0.0"
entry = "main.py"
description = "access test service"
style = "function"
stateless = true
T
printf 'def main(data):\n    return b"v1:" + data\n' > "$svc/main.py"

# Accounts of the dev chain (their keys are public): 1 provider, 2 user,
# 3 stranger; each deposits for the dispatcher.
key() { echo "$2" > "$tmp/$1.key"; "$teex" account import --private-key-file "$tmp/$1.key"; }
provider="$(key p 59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d)"
user="$(key u 5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a)"
stranger="$(key s 7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6)"
for a in "$provider" "$user" "$stranger"; do
  "$teex" deposit "$disp" 5000000000000000 --from "$a" > "$tmp/dep" 2>&1 ||
    fail "deposit: $(cat "$tmp/dep")"
done

"$teex" service deploy "$svc" --account "$provider" --sm "$sm_client" \
  --sm-policy "$net/policy/sm.conf" --price "$PRICE" \
  --remuneration "$REMUNERATION" --private --allow "$user" \
  > "$tmp/deploy" 2>&1 || fail "deploy: $(cat "$tmp/deploy")"
grep -q "listed on chain .*, private" "$tmp/deploy" || fail "deploy: $(cat "$tmp/deploy")"
grep -qi "allowed *$user" "$tmp/deploy" || fail "deploy: $(cat "$tmp/deploy")"
img1="$(sed -n 's/^  image hash *0x\([0-9a-f]\{64\}\)$/\1/p' "$tmp/deploy")"
[ -n "$img1" ] || fail "no image hash: $(cat "$tmp/deploy")"

# The app store says it is private.
"$teex" service list > "$tmp/list" || fail "service list"
grep -q "^acc .*\[private\]" "$tmp/list" || fail "service list: $(cat "$tmp/list")"
"$teex" service list --json | grep -q '"name":"acc".*"private":true' ||
  fail "service list --json: $("$teex" service list --json)"

printf 'hi' > "$tmp/in"
# invoke NAME ACCOUNT OUT: runs the service, expecting success.
invoke() {
  "$teex" invoke "$1" --input "$tmp/in" --account "$2" > "$tmp/out" 2> "$tmp/err" ||
    fail "invoke $1 as $2: $(cat "$tmp/err")"
  [ "$(cat "$tmp/out")" = "$3" ] || fail "invoke $1 as $2: output $(head -c 100 "$tmp/out")"
}
# refused NAME ACCOUNT TEXT: the invocation fails and says TEXT.
refused() {
  if "$teex" invoke "$1" --input "$tmp/in" --account "$2" > "$tmp/out" 2> "$tmp/err"; then
    fail "invoke $1 as $2 accepted"
  fi
  grep -q -- "$3" "$tmp/err" || fail "invoke $1 as $2: $(cat "$tmp/err")"
  [ ! -s "$tmp/out" ] || fail "refused, yet printed $(head -c 100 "$tmp/out")"
}
# settled ACCOUNT: what the chain records as settled for it (wei).
settled_of() {
  "$teex" withdraw "$disp" --status --from "$1" |
    sed -n 's/^settled *\([0-9]*\) wei.*/\1/p'
}
# wait_settled_of ACCOUNT WEI
wait_settled_of() {
  local s=""
  for _ in $(seq 180); do
    s="$(settled_of "$1" || true)"
    [ "$s" = "$2" ] && return 0
    sleep 0.5
  done
  fail "settled ${s:-?} wei for $1, expected $2"
}

invoke acc "$provider" "v1:hi"
invoke acc "$user" "v1:hi"
refused acc "$stranger" "is private"
grep -q "not on its allow-list" "$tmp/err" || fail "refusal: $(cat "$tmp/err")"
grep -qi "$stranger" "$tmp/err" || fail "refusal names no caller: $(cat "$tmp/err")"
grep -q "task refused.*is private" "$net/logs/dispatcher.log" ||
  fail "the dispatcher did not log the refusal"

# The two tasks that ran are settled; the stranger was charged nothing.
wait_settled_of "$user" "$PRICE"
wait_settled_of "$provider" "$PRICE"
[ "$(settled_of "$stranger")" = 0 ] || fail "stranger charged: $(settled_of "$stranger")"
"$teex" withdraw "$disp" --status --from "$stranger" | grep -q "escrow *5000000000000000 wei" ||
  fail "stranger escrow: $("$teex" withdraw "$disp" --status --from "$stranger")"

# Taken off the allow-list: refused like the stranger.
"$teex" service access acc --account "$provider" --deny "$user" > "$tmp/acc.out" 2>&1 ||
  fail "access --deny: $(cat "$tmp/acc.out")"
grep -qi "denied *$user" "$tmp/acc.out" || fail "access --deny: $(cat "$tmp/acc.out")"
refused acc "$user" "is private"
invoke acc "$provider" "v1:hi"

# Public: anyone, the stranger included.
"$teex" service access acc --account "$provider" --public > "$tmp/acc.out" 2>&1 ||
  fail "access --public: $(cat "$tmp/acc.out")"
grep -q "now public" "$tmp/acc.out" || fail "access --public: $(cat "$tmp/acc.out")"
"$teex" service list > "$tmp/list" || fail "service list"
if grep -q "^acc .*\[private\]" "$tmp/list"; then fail "still private: $(cat "$tmp/list")"; fi
invoke acc "$stranger" "v1:hi"
# Only the provider may change access.
if "$teex" service access acc --account "$stranger" --private > "$tmp/acc.out" 2>&1; then
  fail "a stranger changed the access"
fi
grep -q "NotServiceProvider" "$tmp/acc.out" || fail "access by stranger: $(cat "$tmp/acc.out")"
if "$teex" service access acc --account "$provider" --allow 0x1234 > "$tmp/acc.out" 2>&1; then
  fail "bad address accepted"
fi
grep -q "not an address" "$tmp/acc.out" || fail "bad address: $(cat "$tmp/acc.out")"
echo "private service: provider and allowed user ran it, stranger refused and not charged"

# --allow only makes sense for a private listing.
if "$teex" service deploy "$svc" --account "$provider" --sm "$sm_client" \
  --sm-policy "$net/policy/sm.conf" --price "$PRICE" \
  --remuneration "$REMUNERATION" --allow "$user" > "$tmp/out" 2>&1; then
  fail "--allow without --private accepted"
fi
grep -q "allow needs --private" "$tmp/out" || fail "--allow alone: $(cat "$tmp/out")"

# ---- versions ----
# Version 2 goes private again, allowing the user back in.
printf 'def main(data):\n    return b"v2:" + data\n' > "$svc/main.py"
"$teex" service deploy "$svc" --account "$provider" --sm "$sm_client" \
  --sm-policy "$net/policy/sm.conf" --price "$PRICE" \
  --remuneration "$REMUNERATION" --version 2 --private --allow "$user" \
  > "$tmp/deploy2" 2>&1 || fail "deploy v2: $(cat "$tmp/deploy2")"
grep -q "^deployed acc version 2" "$tmp/deploy2" || fail "deploy v2: $(cat "$tmp/deploy2")"
img2="$(sed -n 's/^  image hash *0x\([0-9a-f]\{64\}\)$/\1/p' "$tmp/deploy2")"
[ -n "$img2" ] && [ "$img2" != "$img1" ] || fail "v2 image: $(cat "$tmp/deploy2")"
"$teex" service list > "$tmp/list" || fail "service list"
grep -q "^acc  *2 .*\[private\]" "$tmp/list" || fail "service list after v2: $(cat "$tmp/list")"
refused acc "$stranger" "is private"

invoke acc "$user" "v2:hi"
refused "acc@$img1" "$user" "not the one pinned"
invoke "acc@$img2" "$user" "v2:hi"
echo "versions: v2 runs, the old pinned image is refused"
