# thaw as a container: one self-contained binary (bun runtime, gateway,
# libthaw, runtime headers) plus the tools it runs to compile newly deployed
# functions. Build from the repo root:
#
#   docker build -t thaw .
#   docker run -p 127.0.0.1:8080:8080 -v thaw-data:/var/lib/thaw \
#     -e THAW_ADMIN_TOKEN="$(openssl rand -hex 32)" thaw
#
# The container listens on 0.0.0.0 (a published port reaches it only that
# way), and `thaw serve` refuses a non-loopback address without tokens: set
# THAW_ADMIN_TOKEN or THAW_TOKENS, or, knowingly, THAW_INSECURE_OPEN=1.
# Nothing is deployed at start; the examples are in the image and deploy
# only when asked: `docker run ... thaw serve --examples-dir /opt/thaw/functions`.
#
# Everything comes from Debian's packages and the npm registry. The base is
# pinned by the OCI index digest of a dated Debian snapshot tag (the dated
# tag is never re-pushed; the digest makes that checkable): both stages use
# it. The digest was taken from public references, not resolved on the
# machine this was written on (no registry access there); refresh both
# together with `docker buildx imagetools inspect debian:bookworm-YYYYMMDD-slim`.
ARG DEBIAN_IMAGE=debian:bookworm-20260824-slim@sha256:88200866dfff7ea7f5cbcb6ec7c8a701889efe6fe859fe64d6990e4b07ea4171

# ---- build: libthaw, the example functions, the single binary -------------
FROM ${DEBIAN_IMAGE} AS build

ARG BUN_VERSION=1.4.5
ENV DEBIAN_FRONTEND=noninteractive

# nodejs + npm only to install bun from the npm registry. make/gcc build
# libthaw; clang, lld, wasi-libc and the wasm32 compiler-rt build the
# examples to wasm32-wasi; wabt validates them (and assembles the .wat test
# modules); simde is the SIMD header wasm2c output includes.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates nodejs npm \
      make gcc libc6-dev \
      clang lld wasi-libc libclang-rt-14-dev-wasm32 wabt libsimde-dev \
 && rm -rf /var/lib/apt/lists/*
RUN npm install -g "bun@${BUN_VERSION}" && bun --version

WORKDIR /src
# Dependencies first, so editing sources does not reinstall them.
COPY package.json bun.lock bunfig.toml ./
RUN bun install --frozen-lockfile
COPY . .
RUN make -C native \
 && make -C functions \
 && bash scripts/build-binary.sh dist/thaw

# ---- runtime: the binary and what compiling a function needs --------------
FROM ${DEBIAN_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive
# A deploy runs wasm-validate and wasm2c (wabt), then the system C compiler
# (gcc: smaller than clang here; libc6-dev is only a Recommends of gcc, so it
# is named) on the generated C, which includes simde's headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends wabt gcc libc6-dev libsimde-dev \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /src/dist/thaw /usr/local/bin/thaw
# The examples, deployed only with `serve --examples-dir /opt/thaw/functions`.
COPY --from=build \
     /src/functions/build/hello.wasm \
     /src/functions/build/json.wasm \
     /src/functions/build/thumbnail.wasm \
     /src/functions/build/wordcount.wasm \
     /src/functions/build/primes.wasm \
     /opt/thaw/functions/

# Compiled artifacts and the registry live in the volume, so a restarted
# container loads its functions without recompiling. The server runs
# unprivileged: it compiles and loads code that users upload.
RUN useradd --system --user-group --home-dir /var/lib/thaw --shell /usr/sbin/nologin thaw \
 && mkdir -p /var/lib/thaw \
 && chown thaw:thaw /var/lib/thaw
ENV THAW_HOST=0.0.0.0 THAW_DATA_DIR=/var/lib/thaw
VOLUME /var/lib/thaw
USER thaw
EXPOSE 8080

# No curl in slim, and none needed: the thaw binary is a bun executable, and
# with BUN_BE_BUN=1 it acts as the bun CLI, so its own fetch asks /readyz
# (200 once deployed functions are loaded, 503 while starting or draining).
# Costs ~20 ms and ~30 MB for a moment, no extra package. The start period
# covers compiling the examples on a first start with an empty volume.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["env", "BUN_BE_BUN=1", "thaw", "-e", "fetch(`http://127.0.0.1:${process.env.THAW_PORT ?? 8080}/readyz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["thaw"]
CMD ["serve"]
