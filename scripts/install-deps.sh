#!/usr/bin/env bash
# Installs every Debian and npm dependency teex needs on a fresh Debian 12
# machine. Idempotent: a second run changes nothing and takes seconds.
# Run as root (or with sudo available).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

debian_packages=(
  build-essential cmake pkg-config git ca-certificates
  clang llvm libclang-rt-14-dev clang-format
  libssl-dev openssl libsodium-dev libsecp256k1-dev nettle-dev
  libuv1-dev libprotobuf-c-dev protobuf-c-compiler
  liblmdb-dev libraft-dev
  python3.11 libpython3.11-dev libseccomp-dev
  libcurl4-openssl-dev libjansson-dev libcmocka-dev
  redis-tools xxd python3 curl tcpdump
)
# Node.js and npm: use the machine's own when present (a newer Node from
# elsewhere conflicts with Debian's npm package); otherwise Debian's.
if ! command -v node >/dev/null 2>&1; then debian_packages+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then debian_packages+=(npm); fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${debian_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: Debian packages present"
fi

# npm tools (anvil, solc) are pinned in tools/package-lock.json.
if [ -f "$here/tools/package.json" ]; then
  if [ ! -d "$here/tools/node_modules" ] || [ "$here/tools/package-lock.json" -nt "$here/tools/node_modules" ]; then
    # Versions are pinned exactly in package.json and the lock; `npm ci`
    # refuses this npm's lock (it omits other platforms' optional packages).
    echo "install-deps: npm install in tools/"
    (cd "$here/tools" && npm install --no-audit --no-fund --loglevel=error)
    touch "$here/tools/node_modules"
  else
    echo "install-deps: npm tools present"
  fi
fi

# js-ipfs, the independent IPFS node the ipfs tests compare teex with, pinned
# in tools/ipfs/package-lock.json. Kept apart from tools/ because it takes
# minutes to install (≈1000 packages). Its package.json overrides mortice to
# 3.0.6, which js-ipfs 0.66.1 needs on Node 20.
if [ -f "$here/tools/ipfs/package.json" ]; then
  if [ ! -x "$here/tools/ipfs/node_modules/.bin/jsipfs" ] || [ "$here/tools/ipfs/package-lock.json" -nt "$here/tools/ipfs/node_modules" ]; then
    echo "install-deps: npm ci in tools/ipfs/ (js-ipfs, a few minutes)"
    (cd "$here/tools/ipfs" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$here/tools/ipfs/node_modules"
  else
    echo "install-deps: js-ipfs present"
  fi
fi
