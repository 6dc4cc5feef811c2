#!/usr/bin/env bash
# teex's CIDs and its Kubo RPC client against an independent IPFS
# implementation: a js-ipfs daemon (tools/ipfs, installed by
# scripts/install-deps.sh) run offline on loopback ports in a fresh repo.
#   1. for files of 0 bytes to 174 chunks + 1 byte, `teex ipfs cid` must equal
#      the CID the daemon returns for add?cid-version=1;
#   2. `teex ipfs add|cat|pin|unpin|has --api` against the daemon;
#   3. a hostile node (fake_kubo.py) that corrupts blocks, lies about the
#      CID, sends garbage or too much: each refused with a clear error;
#   4. the local blockstore through the CLI, default directory included.
set -euo pipefail

src="${TEEX_SOURCE_DIR:?}"
teex="${TEEX_BIN:?}"
here="$src/tests/ipfs"
jsipfs="$src/tools/ipfs/node_modules/.bin/jsipfs"
if [ ! -x "$jsipfs" ]; then
  echo "FAIL: js-ipfs is not installed ($jsipfs); run scripts/install-deps.sh" >&2
  exit 1
fi

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

free_port() {
  python3 "$src/tests/free_ports.py" 1 20000 32000
}

# ---- the js-ipfs daemon, offline, loopback only ----
export IPFS_PATH="$tmp/jsipfs"
api_port="$(free_port)"
gw_port="$(free_port)"
rpc_port="$(free_port)"
"$jsipfs" init --empty-repo >"$tmp/init.log" 2>&1
# Edit the config file directly: each `jsipfs config` call costs a Node
# start of seconds.
python3 - "$IPFS_PATH/config" "$api_port" "$gw_port" "$rpc_port" <<'PY'
import json, sys
path, api, gw, rpc = sys.argv[1:]
c = json.load(open(path))
c["Addresses"]["API"] = "/ip4/127.0.0.1/tcp/%s" % api
c["Addresses"]["Gateway"] = "/ip4/127.0.0.1/tcp/%s" % gw
c["Addresses"]["RPC"] = "/ip4/127.0.0.1/tcp/%s/ws" % rpc
c["Addresses"]["Swarm"] = []
c["Addresses"]["Delegates"] = []
c["Bootstrap"] = []
json.dump(c, open(path, "w"), indent=2)
PY
"$jsipfs" daemon --offline --enable-preload=false >"$tmp/daemon.log" 2>&1 &
pids+=($!)
api="http://127.0.0.1:$api_port"
for _ in $(seq 1 600); do
  grep -q "Daemon is ready" "$tmp/daemon.log" && break
  sleep 0.1
done
if ! grep -q "Daemon is ready" "$tmp/daemon.log"; then
  cat "$tmp/daemon.log" >&2
  echo "FAIL: js-ipfs daemon did not start" >&2
  exit 1
fi
echo "js-ipfs daemon on $api ($(grep -o 'js-ipfs version: .*' "$tmp/daemon.log"))"

# The daemon's own add, by curl: the oracle teex is compared with.
node_add() { # FILE [extra query] -> CID
  curl -sS --fail-with-body -X POST \
    -F "file=@$1;type=application/octet-stream" \
    "$api/api/v0/add?cid-version=1&cid-base=base32&pin=false&progress=false${2:-}" |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["Hash"])'
}

# Deterministic content: AES-128-CTR keystream (the same bytes the C unit
# test makes, so its known answers are checked here too).
gen() { # openssl dies of SIGPIPE when head has enough: not a failure
  { openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f \
    -iv 00000000000000000000000000000000 -nosalt -in /dev/zero 2>/dev/null ||
    true; } | head -c "$1"
}

# ---- 1. CIDs ----
chunks174=$((174 * 262144))
sizes=(0 1 6 262143 262144 262145 3145728 $chunks174 $((chunks174 + 1)))
for n in "${sizes[@]}"; do
  gen "$n" >"$tmp/f$n"
  theirs="$(node_add "$tmp/f$n")"
  mine="$("$teex" ipfs cid "$tmp/f$n")"
  if [ "$mine" = "$theirs" ]; then ok "cid of $n bytes: $mine"; else bad "cid of $n bytes: teex $mine, js-ipfs $theirs"; fi
done
printf 'hello\n' >"$tmp/hello"
mine="$("$teex" ipfs cid "$tmp/hello")"
theirs="$(node_add "$tmp/hello")"
want=bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am
if [ "$mine" = "$want" ] && [ "$theirs" = "$want" ]; then ok "hello: $mine"; else bad "hello: teex $mine, js-ipfs $theirs"; fi
# Standard input gives the same CID as the file.
if [ "$("$teex" ipfs cid - <"$tmp/f262145")" = "$("$teex" ipfs cid "$tmp/f262145")" ]; then ok "cid of stdin"; else bad "cid of stdin"; fi

# ---- 2. the Kubo RPC client against the daemon ----
for n in 6 262145 3145728 $((chunks174 + 1)); do
  f="$tmp/f$n"
  cid="$("$teex" ipfs add "$f" --api "$api")" || { bad "add $n via api"; continue; }
  if [ "$cid" = "$("$teex" ipfs cid "$f")" ]; then ok "add $n via api: $cid"; else bad "add $n via api: $cid"; fi
  if "$teex" ipfs cat "$cid" --api "$api" >"$tmp/out" && cmp -s "$tmp/out" "$f"; then
    ok "cat $n via api (every block verified)"
  else
    bad "cat $n via api"
  fi
  # Pinned by add: the node's own pin list says so.
  if curl -sS -X POST "$api/api/v0/pin/ls?arg=$cid&type=recursive&cid-base=base32" | grep -q "\"$cid\""; then
    ok "add pinned $n on the node"
  else
    bad "add did not pin $n"
  fi
done
cid="$("$teex" ipfs cid "$tmp/f262145")"
"$teex" ipfs unpin "$cid" --api "$api" && ok "unpin via api" || bad "unpin via api"
if curl -sS -X POST "$api/api/v0/pin/ls?arg=$cid&type=recursive" | grep -q "not pinned"; then ok "node says unpinned"; else bad "node still pins"; fi
"$teex" ipfs pin "$cid" --api "$api" && ok "pin via api" || bad "pin via api"
if curl -sS -X POST "$api/api/v0/pin/ls?arg=$cid&type=recursive&cid-base=base32" | grep -q "\"$cid\""; then ok "node says pinned"; else bad "node does not pin"; fi
[ "$("$teex" ipfs has "$cid" --api "$api")" = yes ] && ok "has via api" || bad "has via api"
absent="$("$teex" ipfs cid - <<<"never added $$ $RANDOM")"
if out="$("$teex" ipfs has "$absent" --api "$api")"; then bad "has absent: $out"; else [ "$out" = no ] && ok "has absent via api" || bad "has absent: $out"; fi
# A file the node chunked its own way (its defaults, not teex's add) reads
# back verified block by block too.
printf 'added by the node itself, %s\n' "$RANDOM" >"$tmp/own"
own="$(node_add "$tmp/own" "&raw-leaves=false")"
if "$teex" ipfs cat "$own" --api "$api" >"$tmp/out" 2>"$tmp/err" && cmp -s "$tmp/out" "$tmp/own"; then
  ok "cat of a dag-pb leaf file added by the node ($own)"
else
  bad "cat of node's own file: $(cat "$tmp/err")"
fi

# ---- 3. hostile nodes ----
start_fake() { # MODE -> sets fake_api
  rm -f "$tmp/port"
  python3 "$here/fake_kubo.py" "$1" "$tmp/port" "$api" &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
  fake_api="http://127.0.0.1:$(cat "$tmp/port")"
}
expect_fail() { # DESCRIPTION PATTERN CMD...
  local what="$1" pat="$2"
  shift 2
  if "$@" >"$tmp/out" 2>"$tmp/err"; then
    bad "$what: succeeded"
  elif grep -q -- "$pat" "$tmp/err"; then
    ok "$what refused: $(head -c 300 "$tmp/err")"
  else
    bad "$what: wrong error: $(cat "$tmp/err")"
  fi
}
start_fake corrupt-leaves
big="$("$teex" ipfs cid "$tmp/f3145728")"
expect_fail "corrupted leaf of a 3 MiB file" "does not match its CID" \
  "$teex" ipfs cat "$big" --api "$fake_api"
expect_fail "corrupted single-block file" "does not match its CID" \
  "$teex" ipfs cat "$want" --api "$fake_api"
if [ -s "$tmp/out" ]; then bad "corrupted single block: bytes were written"; else ok "nothing of a corrupted block written"; fi
start_fake wrong-add
expect_fail "add answered with another CID" "the node stored the file as" \
  "$teex" ipfs add "$tmp/f6" --api "$fake_api"
start_fake not-json
expect_fail "add answered with non-JSON" "not JSON" \
  "$teex" ipfs add "$tmp/f6" --api "$fake_api"
start_fake huge
expect_fail "block/get of 3 MiB" "limit" \
  "$teex" ipfs cat "$want" --api "$fake_api"
expect_fail "a node that is not there" "127.0.0.1" \
  "$teex" ipfs cat "$want" --api "http://127.0.0.1:1"
expect_fail "a CIDv0" "CIDv0" "$teex" ipfs cat QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u
expect_fail "an API URL without scheme" "http://" \
  "$teex" ipfs cat "$want" --api 127.0.0.1:5001

# ---- 4. the local blockstore through the CLI ----
export TEEX_HOME="$tmp/home"
cid="$("$teex" ipfs add "$tmp/f262145")"
if [ -f "$TEEX_HOME/ipfs/blocks/$cid" ] && [ -f "$TEEX_HOME/ipfs/pins/$cid" ]; then ok "default store under \$TEEX_HOME"; else bad "default store"; fi
if "$teex" ipfs cat "$cid" | cmp -s - "$tmp/f262145"; then ok "cat from the default store"; else bad "cat from the default store"; fi
store="$tmp/store"
cid="$("$teex" ipfs add "$tmp/hello" --store "$store")"
[ "$cid" = "$want" ] && ok "add hello to --store" || bad "add hello to --store: $cid"
printf 'hellO\n' >"$store/blocks/$cid"
expect_fail "tampered block in the store" "does not match its CID" \
  "$teex" ipfs cat "$cid" --store "$store"
"$teex" ipfs unpin "$cid" --store "$store"
if [ "$("$teex" ipfs gc --store "$store")" = "removed 1 blocks" ]; then ok "gc"; else bad "gc"; fi

# ---- 5. every command has --help; usage errors exit 2 ----
for c in add cat cid pin unpin has gc; do
  if "$teex" ipfs "$c" --help | grep -q "usage: teex ipfs $c"; then ok "ipfs $c --help"; else bad "ipfs $c --help"; fi
done
set +e
"$teex" ipfs cat >/dev/null 2>&1; st1=$?
"$teex" ipfs add a b >/dev/null 2>&1; st2=$?
"$teex" ipfs add "$tmp/f6" --api "$api" --store "$store" >/dev/null 2>&1; st3=$?
set -e
if [ "$st1$st2$st3" = 222 ]; then ok "usage errors exit 2"; else bad "usage errors exit $st1 $st2 $st3"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
