#!/usr/bin/env bash
# ctest-label: nosan (the workers' sandboxed executors do not run under ASan)
# The user's C library (teex_invoke, include/teex/user.h) end to end on a
# real `teex up` network: a provider lists a service, publishes version 2,
# and lists a private service; tests/up/client_lib.c (built as
# up_client_lib) then, over one dispatcher connection, invokes version 2
# three times and checks each output and charge, and checks that a price
# limit below the listing, an unknown service, the old image pinned, an
# authorisation for the old image sent straight to the dispatcher, and the
# private service are refused with their error codes, and that the
# connection still serves afterwards. The chain then settles exactly the
# four tasks that ran.
set -euo pipefail
. "${TEEX_SOURCE_DIR:?}/tests/up/lib.sh"
prog="${TEEX_BUILD_DIR:?}/up_client_lib"
[ -x "$prog" ] || fail "no $prog (build the up_client_lib target)"

up --settle-interval 1000

# svc DIR NAME VERSION: a service answering "vVERSION:" + its input.
svc() {
  mkdir -p "$1"
  cat > "$1/teex.toml" <<T
[service]
name = "$2"
version = "1.0.0"
entry = "main.py"
description = "client library test service $2"
style = "function"
stateless = true
T
  printf 'def main(data):\n    return b"v%s:" + data\n' "$3" > "$1/main.py"
}
# deploy_v DIR OUT [OPTIONS...]: deploy and list (or publish) from account 1.
deploy_v() {
  local dir="$1" out="$2"
  shift 2
  "$teex" service deploy "$dir" --account "$provider" --sm "$sm_client" \
    --sm-policy "$net/policy/sm.conf" --price "$PRICE" \
    --remuneration "$REMUNERATION" "$@" > "$out" 2>&1 || fail "deploy: $(cat "$out")"
}
field() { sed -n "s/^  $1 *0x\([0-9a-f]\{64\}\)\$/\1/p" "$2"; }

echo 59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d > "$tmp/k"
provider="$("$teex" account import --private-key-file "$tmp/k")"
svc "$tmp/lib" lib 1
deploy_v "$tmp/lib" "$tmp/d1"
svc "$tmp/lib" lib 2
deploy_v "$tmp/lib" "$tmp/d2" --version 2
svc "$tmp/priv" priv 1
deploy_v "$tmp/priv" "$tmp/dp" --private
id="$(field "service id" "$tmp/d2")"
old="$(field "image hash" "$tmp/d1")"
priv="$(field "service id" "$tmp/dp")"
[ -n "$id" ] && [ -n "$old" ] && [ -n "$priv" ] || fail "deploy output"
[ "$(field "service id" "$tmp/d1")" = "$id" ] || fail "v2 has another service id"

user_with_escrow 5000000000000000
"$prog" "$net" 5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a \
  "$id" "$old" "$PRICE" "$priv" > "$tmp/out" 2>&1 || fail "client library: $(cat "$tmp/out")"
cat "$tmp/out"
# Exactly the four tasks that ran are charged.
wait_settled $((4 * PRICE))
sleep 1.5
[ "$(settled)" = $((4 * PRICE)) ] || fail "settled $(settled), expected $((4 * PRICE))"
echo "client library: ok"
