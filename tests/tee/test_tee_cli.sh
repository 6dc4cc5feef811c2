#!/usr/bin/env bash
# CLI round trip of the sim TEE: init, measure, quote, verify; a flipped
# byte, another network's root, a wrong measurement, expired evidence and a
# forbidden debug identity each fail verify with a one-line reason; cert
# writes a PEM certificate carrying the evidence extension.
set -euo pipefail
teex="${TEEX_BIN:?TEEX_BIN not set}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_fail REASON CMD...: CMD exits 1 and says REASON on one line.
expect_fail() {
  local reason="$1"; shift
  local rc=0
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" -eq 1 ] || fail "'$*' exited $rc, expected 1: $(cat "$tmp/err")"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "'$*': not one line: $(cat "$tmp/err")"
  grep -q -- "$reason" "$tmp/err" || fail "'$*': wanted '$reason', got: $(cat "$tmp/err")"
}

export TEEX_HOME="$tmp/home"
"$teex" tee init >"$tmp/init.out"
grep -q '^root ' "$tmp/init.out" || fail "init printed no root"
[ "$(stat -c %a "$TEEX_HOME/tee/platform.key")" = 600 ] || fail "platform.key mode"
[ "$(stat -c %a "$TEEX_HOME/tee/root.key")" = 600 ] || fail "root.key mode"
expect_fail "already exists" "$teex" tee init

mr="$("$teex" tee measure --role worker | awk '$1 == "mr_enclave" {print $2}')"
[ "${#mr}" -eq 64 ] || fail "measure printed no mr_enclave"
mr_sm="$("$teex" tee measure --role sm | awk '$1 == "mr_enclave" {print $2}')"
[ "$mr" != "$mr_sm" ] || fail "roles share a measurement"
mr_g="$("$teex" tee --data-dir "$TEEX_HOME" --role worker measure | awk '$1 == "mr_enclave" {print $2}')"
[ "$mr_g" = "$mr" ] || fail "options before the command ignored"

rd=0011223344556677889900112233445566778899001122334455667788990011
"$teex" tee quote --role worker --report-data "$rd" --out "$tmp/ev"
"$teex" tee verify "$tmp/ev" >"$tmp/v.out"
grep -q '^evidence OK' "$tmp/v.out" || fail "verify did not say OK"
grep -q "^mr_enclave *$mr\$" "$tmp/v.out" || fail "verify printed another mr_enclave"
grep -q "^report_data *${rd}" "$tmp/v.out" || fail "report data not printed"
grep -q "^role *worker" "$tmp/v.out" || fail "role not printed"

# A flipped byte anywhere fails (a few positions: header, identity, report
# data, signatures).
size="$(stat -c %s "$tmp/ev")"
for off in 0 6 20 100 150 300 $((size - 1)); do
  cp "$tmp/ev" "$tmp/bad"
  byte="$(od -An -tu1 -j "$off" -N1 "$tmp/ev" | tr -d ' ')"
  printf "$(printf '\\%03o' $(( (byte ^ 1) & 255 )))" |
    dd of="$tmp/bad" bs=1 seek="$off" conv=notrunc status=none
  cmp -s "$tmp/ev" "$tmp/bad" && fail "byte $off not flipped"
  rc=0; "$teex" tee verify "$tmp/bad" >/dev/null 2>"$tmp/err" || rc=$?
  [ "$rc" -eq 1 ] || fail "flipped byte $off accepted (rc $rc)"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "flip $off: not one line"
done

# Policies.
root="$(cat "$TEEX_HOME/tee/root.pub")"
cat >"$tmp/ok.policy" <<P
[policy]
roles = worker
allow_simulated = true
max_age = 3600
[roots]
dev = $root
[measurements]
worker = $mr
P
"$teex" tee verify "$tmp/ev" --policy "$tmp/ok.policy" | grep -q '^evidence OK' ||
  fail "policy verify"
now="$(date +%s)"
expect_fail "expired" "$teex" tee verify "$tmp/ev" --policy "$tmp/ok.policy" --at $((now + 7200))
sed "s/^worker = .*/worker = $mr_sm/" "$tmp/ok.policy" >"$tmp/wrong.policy"
expect_fail "wrong measurement" "$teex" tee verify "$tmp/ev" --policy "$tmp/wrong.policy"
sed "s/^allow_simulated = true/allow_simulated = false/" "$tmp/ok.policy" >"$tmp/nosim.policy"
expect_fail "simulated evidence not allowed" "$teex" tee verify "$tmp/ev" --policy "$tmp/nosim.policy"
echo "allow_debg = true" >>"$tmp/bad.policy"
expect_fail "unknown key" "$teex" tee verify "$tmp/ev" --policy "$tmp/bad.policy"

# Debug identity against a policy that forbids debug.
"$teex" tee quote --role worker --debug --report-data 00 --out "$tmp/dbg"
mr_dbg="$("$teex" tee measure --role worker --debug | awk '$1 == "mr_enclave" {print $2}')"
sed "s/^worker = .*/worker = $mr_dbg/" "$tmp/ok.policy" >"$tmp/dbg.policy"
expect_fail "debug enclave forbidden" "$teex" tee verify "$tmp/dbg" --policy "$tmp/dbg.policy"

# Another network's root.
TEEX_HOME="$tmp/other" "$teex" tee init >/dev/null
TEEX_HOME="$tmp/other" "$teex" tee quote --role worker --report-data 00 --out "$tmp/ev2"
expect_fail "untrusted root" "$teex" tee verify "$tmp/ev2"

# Bad input: garbage and a missing file.
head -c 500 /dev/urandom >"$tmp/junk"
expect_fail "malformed evidence" "$teex" tee verify "$tmp/junk"
expect_fail "No such file" "$teex" tee verify "$tmp/missing"
rc=0; "$teex" tee quote --report-data "$(printf '%0130d' 0)" --out "$tmp/x" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "64 bytes" "$tmp/err" || fail "oversized report data (rc $rc)"

# The RA-TLS certificate carries the evidence extension.
"$teex" tee cert --role worker --out "$tmp/cert.pem"
openssl x509 -in "$tmp/cert.pem" -noout -text >"$tmp/cert.txt"
grep -q '2.25.215580673084095695838012285188679947161.1' "$tmp/cert.txt" ||
  fail "certificate lacks the evidence extension"
grep -q 'CN = teex worker' "$tmp/cert.txt" || fail "certificate subject"
"$teex" tee --help | grep -q quote || fail "tee --help"
for c in init measure quote verify cert; do
  "$teex" tee "$c" --help | grep -q "usage: teex tee $c" || fail "$c --help"
done
echo "tee cli: ok"
