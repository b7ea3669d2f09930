#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: TypeScript type
# check, then bun test (which also builds and runs the native tests under
# AddressSanitizer and UBSan). Ends with one "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
THAW_EXTRA_APT="redis-server chromium fonts-dejavu-core wrk" bash scripts/setup.sh || exit 1
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
