#!/usr/bin/env bash
# Installs everything the project needs, at pinned versions, and skips what is already there.
# Sourced by dev.sh, test.sh, build.sh and deploy.sh; safe to run any number of times.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/"/,"",$3); print $3; exit}' Cargo.lock)
WORKER_BUILD_VERSION=0.8.7
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"

say() { printf '[setup] %s\n' "$*"; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen's CLI must match the crate version in Cargo.lock exactly.
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  # Not --locked: one locked dependency of this release is missing from the registry.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  say "installing worker-build $WORKER_BUILD_VERSION (a few minutes, once)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --force
fi

# npm packages: reinstall only when package-lock.json changed since the last install.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat node_modules/.gastown-lock 2>/dev/null)" != "$lock_sum" ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.gastown-lock
fi

# Debian's Chromium, driven by playwright-core in the dashboard's end-to-end test (playwright
# never downloads a browser of its own here). Installed once; skipped when present.
if [ ! -x /usr/bin/chromium ]; then
  say "installing chromium (Debian package, for the dashboard's browser test)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium > /dev/null
fi

# schemathesis for the API fuzz test (tests/fuzz.test.mjs), in a Python venv of its own under the
# git-ignored .cache, every package pinned in tests/fuzz/requirements.txt. Reinstalled only when
# that file changed since the last install, or the checkout moved (a venv's scripts name their
# own absolute path): both are kept in the venv.
FUZZ_VENV=.cache/fuzz-venv
fuzz_sum="$(sha256sum tests/fuzz/requirements.txt | cut -d' ' -f1) $PWD"
if [ "$(cat "$FUZZ_VENV/.gastown-requirements" 2>/dev/null)" != "$fuzz_sum" ] || [ ! -x "$FUZZ_VENV/bin/schemathesis" ]; then
  say "installing schemathesis into $FUZZ_VENV (pinned in tests/fuzz/requirements.txt)"
  mkdir -p .cache
  [ -f .cache/.gitignore ] || printf '*\n' > .cache/.gitignore
  rm -rf "$FUZZ_VENV"
  python3 -m venv "$FUZZ_VENV"
  "$FUZZ_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r tests/fuzz/requirements.txt
  echo "$fuzz_sum" > "$FUZZ_VENV/.gastown-requirements"
fi

export WRANGLER_SEND_METRICS=false
