#!/usr/bin/env bash
# Builds thaw as one executable: bun's runtime, the gateway, libthaw, the
# runtime headers that compiled functions are built against (src/engine and
# src/compiler import them as embedded files; libthaw is written out once
# per content hash at start, because dlopen needs a real file), and the
# example functions for `serve --examples` (src/server/examples.ts).
#
#   bash scripts/build-binary.sh [OUTPUT]     (default dist/thaw in the repo)
#
# Prints the output path and its size. The binary still needs, at run time,
# a C compiler and wabt to compile new functions (see the Dockerfile).
set -euo pipefail
# OUTPUT is relative to where the script was called from.
out="$(realpath -m "${1:-$(dirname "$0")/../dist/thaw}")"
cd "$(dirname "$0")/.."
mkdir -p "$(dirname "$out")"

# libthaw must exist before bun bundles it; make is a no-op when it is fresh.
make -s -C native
[ -f native/build/libthaw.so ] || { echo "build-binary: native/build/libthaw.so was not built" >&2; exit 1; }
# The examples the binary embeds (needs clang's wasm32 target and wasi-libc, see scripts/setup.sh).
examples="hello json thumbnail wordcount primes"
make -s -C functions $(printf 'build/%s.wasm ' $examples)

# --splitting keeps each command's code in its own chunk, parsed only when
# that command runs: without it `thaw --help` parses the whole server bundle
# (~200 ms; ~20 ms with it).
bun build --compile --splitting src/cli.ts --outfile "$out" >/dev/null

size=$(stat -c %s "$out")
echo "$out $size bytes ($(( (size + 524288) / 1048576 )) MiB)"
