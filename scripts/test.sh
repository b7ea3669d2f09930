#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: TypeScript type
# check, then bun test (which also builds and runs the native tests under
# AddressSanitizer and UBSan). Ends with one "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
# docker-registry (distribution v2) is the real OCI registry test/oci.test.ts
# starts on loopback with its own config and storage (openssl makes the
# certificate its token-auth test signs with). Its package (like
# redis-server's) would start and enable a system service on a systemd host:
# while installing, a policy-rc.d (if none exists) stops services from
# starting, and the registry's unit is disabled afterwards.
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ] && ! dpkg -s docker-registry >/dev/null 2>&1; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
  trap 'rm -f "$policy"' EXIT
fi
# zsh and fish: test/cli-completion.test.ts runs thaw's completion scripts in them.
THAW_EXTRA_APT="redis-server chromium fonts-dejavu-core wrk docker-registry openssl zsh fish" bash scripts/setup.sh || exit 1
if [ -n "$own_policy" ]; then rm -f "$policy"; trap - EXIT; fi
if [ -d /run/systemd/system ] && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
bunx tsc --noEmit || { echo "0 passed, 1 failed"; exit 1; }
mkdir -p test-output
# Compiling a function takes seconds and whole-server tests tens: far over
# bun's 5 s default per test.
bun test --timeout 120000 "$@" 2>&1 | tee test-output/bun-test.log
status=${PIPESTATUS[0]}
pass=$(grep -Eo '^ *[0-9]+ pass' test-output/bun-test.log | tail -1 | grep -Eo '[0-9]+')
fail=$(grep -Eo '^ *[0-9]+ fail' test-output/bun-test.log | tail -1 | grep -Eo '[0-9]+')
echo "${pass:-0} passed, ${fail:-0} failed"
[ "$status" -eq 0 ] && [ "${pass:-0}" -gt 0 ]
