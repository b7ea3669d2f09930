#!/usr/bin/env bash
# Installs what thaw needs on a Debian/Ubuntu machine (as root) and builds
# the native library and the example functions. Safe to run again: it only
# installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

BUN_VERSION=1.4.5
APT_PACKAGES=(wabt clang lld wasi-libc libclang-rt-14-dev-wasm32 libclang-rt-14-dev libsimde-dev make gcc binaryen)
# The toolchains `thaw new` templates build with (docs/languages/): Rust's
# WASI std for Debian's rustc, and libc++ for C++. AssemblyScript comes from
# npm (package.json's devDependencies fill bun's cache for the templates).
APT_PACKAGES+=(rustc libstd-rust-dev-wasm32 libc++-dev-wasm32 libc++abi-14-dev-wasm32)
# shellcheck disable=SC2206 # space-separated list by design
APT_PACKAGES+=(${THAW_EXTRA_APT:-})

missing=()
for p in "${APT_PACKAGES[@]}"; do
  [ -n "$p" ] || continue
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v bun >/dev/null 2>&1 || [ "$(bun --version)" != "$BUN_VERSION" ]; then
  echo "setup: installing bun $BUN_VERSION from the npm registry"
  npm install -g --silent "bun@$BUN_VERSION"
fi

bun install --frozen-lockfile --silent
make -s -C native
make -s -C functions
