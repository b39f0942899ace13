#!/usr/bin/env bash
# Builds the Worker into build/ without downloading anything: worker-build is pointed at the
# cargo-installed wasm-bindgen and the npm-installed esbuild. `--opt` runs wasm-opt (deploys).
# Builds the browser dashboard (dashboard/ → dashboard/dist) first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

# The dashboard first: wrangler serves dashboard/dist as the Worker's static assets. It is
# rebuilt only when its sources (or the lockfile) changed since the last build.
node dashboard/build.mjs

export WASM_BINDGEN_BIN="$CARGO_BIN/wasm-bindgen"
export ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
if [ "${1:-}" = "--opt" ]; then
  export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
  worker-build --release
else
  worker-build --release --no-opt
fi
# The entry module (src/entry.mjs: Durable Object classes reachable by RPC) sits beside the
# output it imports; wrangler.toml's `main` is this copy.
cp src/entry.mjs build/entry.mjs
