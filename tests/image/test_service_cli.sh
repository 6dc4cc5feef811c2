#!/usr/bin/env bash
# teex service pack/inspect/keygen/encrypt/decrypt on the examples, and each
# example's expected output checked by running its code with plain CPython
# 3.11 outside any sandbox (examples/services/run_plain.py).
set -euo pipefail
: "${TEEX_BIN:?}" "${TEEX_SOURCE_DIR:?}"
teex="$TEEX_BIN"
ex="$TEEX_SOURCE_DIR/examples/services"
py=/usr/bin/python3.11
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

examples=(risk-score genome-match logistic-regression testnet-script)
for name in "${examples[@]}"; do
  svc="$ex/$name/service"
  input="$(ls "$ex/$name"/input.*)"
  expected="$(ls "$ex/$name"/expected_output.*)"

  # The example's code gives its expected output under plain python3.11.
  "$py" -B "$ex/run_plain.py" "$svc" "$input" >"$work/$name.out" \
    || fail "$name: run_plain failed"
  cmp -s "$work/$name.out" "$expected" \
    || { diff <(cat "$expected") <(cat "$work/$name.out") | head; fail "$name: output differs from $expected"; }

  # Packing prints the image hash, which is the SHA-256 of the file.
  hash="$("$teex" service pack "$svc" -o "$work/$name.img" 2>"$work/$name.log")" \
    || { cat "$work/$name.log"; fail "$name: pack failed"; }
  [ "$hash" = "$(sha256sum "$work/$name.img" | cut -d' ' -f1)" ] \
    || fail "$name: printed hash is not the SHA-256 of the image"
  [ -z "$(find "$svc" -name __pycache__)" ] || fail "$name: pack wrote bytecode"

  # Reproducible: a copy elsewhere with fresh timestamps packs identically.
  cp -r "$svc" "$work/copy-$name"
  find "$work/copy-$name" -exec touch -d '2001-02-03 04:05:06' {} +
  "$teex" service pack "$work/copy-$name" -o "$work/$name.2.img" >/dev/null 2>&1
  cmp -s "$work/$name.img" "$work/$name.2.img" || fail "$name: not reproducible"

  "$teex" service inspect "$work/$name.img" >"$work/$name.inspect"
  grep -q "^image_hash: $hash\$" "$work/$name.inspect" || fail "$name: inspect hash"
  entry="$(sed -n 's/^entry = "\(.*\)"/\1/p' "$svc/teex.toml")"
  grep -q "^entry: $entry\$" "$work/$name.inspect" || fail "$name: inspect entry"
  grep -Eq "^ +[0-9]+  $entry\$" "$work/$name.inspect" || fail "$name: inspect files"
  # Exactly the folder's files (minus the manifest) are in the image.
  want="$(cd "$svc" && find . -type f ! -name teex.toml | sed 's|^\./||' | LC_ALL=C sort)"
  got="$(sed -n 's/^ *[0-9][0-9]*  //p' "$work/$name.inspect")"
  [ "$want" = "$got" ] || fail "$name: file list: $got"
done
grep -q '^style: script$' "$work/testnet-script.inspect" || fail "script style not shown"
grep -q '^stateless: true$' "$work/risk-score.inspect" || fail "stateless not shown"

# Symmetric encryption round trip through the CLI; the key file is private.
"$teex" service keygen -o "$work/image.key"
[ "$(stat -c %a "$work/image.key")" = 600 ] || fail "key file mode"
"$teex" service encrypt "$work/risk-score.img" -o "$work/rs.enc" --key-file "$work/image.key"
"$teex" service decrypt "$work/rs.enc" -o "$work/rs.dec" --key-file "$work/image.key"
cmp -s "$work/risk-score.img" "$work/rs.dec" || fail "decrypt round trip"
"$teex" service inspect "$work/rs.enc" --key-file "$work/image.key" | grep -q "^name: risk-score$" \
  || fail "inspect of an encrypted image"
if "$teex" service inspect "$work/rs.enc" 2>"$work/err"; then fail "inspect without key"; fi
grep -q "a key is needed" "$work/err" || fail "message without key"

# A flipped byte in the ciphertext is refused and nothing is written.
cp "$work/rs.enc" "$work/bad.enc"
printf '\x01' | dd of="$work/bad.enc" bs=1 seek=300 conv=notrunc status=none
if "$teex" service decrypt "$work/bad.enc" -o "$work/bad.dec" --key-file "$work/image.key" 2>"$work/err"; then
  fail "tampered image decrypted"
fi
grep -q "failed authentication" "$work/err" || fail "tamper message: $(cat "$work/err")"
[ ! -e "$work/bad.dec" ] || fail "output written for a tampered image"
# Truncated.
head -c -1 "$work/rs.enc" >"$work/short.enc"
if "$teex" service decrypt "$work/short.enc" -o "$work/short.dec" --key-file "$work/image.key" 2>/dev/null; then
  fail "truncated image decrypted"
fi

# Recipient mode.
pub="$("$teex" service keygen --x25519 -o "$work/sm.sk")"
"$teex" service encrypt "$work/genome-match.img" -o "$work/gm.enc" --to "$pub"
"$teex" service decrypt "$work/gm.enc" -o "$work/gm.dec" --secret-key-file "$work/sm.sk"
cmp -s "$work/genome-match.img" "$work/gm.dec" || fail "recipient round trip"
if "$teex" service decrypt "$work/gm.enc" -o "$work/x" --key-file "$work/image.key" 2>/dev/null; then
  fail "recipient image opened with an image key"
fi

# Pack errors reach the user with the file and line, and exit 1.
mkdir -p "$work/broken/pkg"
printf '[service]\nname = "b"\nversion = "1"\nentry = "main.py"\n' >"$work/broken/teex.toml"
printf 'import pkg.m\ndef main(x):\n    return x\n' >"$work/broken/main.py"
printf 'def f():\n    return (1,\n' >"$work/broken/pkg/m.py"
set +e
"$teex" service pack "$work/broken" -o "$work/broken.img" 2>"$work/err"
rc=$?
set -e
[ "$rc" = 1 ] || fail "pack of a broken service exited $rc"
grep -q "pkg/m.py:2:" "$work/err" || fail "syntax error message: $(cat "$work/err")"
[ ! -e "$work/broken.img" ] || fail "image written for a broken service"

# Usage errors exit 2; --help works for every command.
set +e
"$teex" service pack >/dev/null 2>&1; [ $? = 2 ] || fail "pack without args"
set -e
for c in pack inspect keygen encrypt decrypt; do
  "$teex" service "$c" --help | grep -q "^usage: teex service $c" || fail "$c --help"
done
echo "ok: ${#examples[@]} examples"
