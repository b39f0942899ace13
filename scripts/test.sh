#!/usr/bin/env bash
# `npm test`: installs what is missing, checks formatting and lints, runs the native tests of
# both workspaces, builds the Worker and the container program once, and runs the end-to-end
# suites against real workerd processes, the real container program and real git.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
CONTAINER=(--manifest-path container/Cargo.toml)

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt "${CONTAINER[@]}" -- --check
echo "== cargo clippy (Worker native and wasm, container)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p gastown-worker --target wasm32-unknown-unknown -- -D warnings
cargo clippy "${CONTAINER[@]}" --all-targets -- -D warnings
echo "== dashboard type-check (tsc --noEmit)"
node_modules/.bin/tsc -p dashboard/tsconfig.json
echo "== native tests"
cargo test --workspace
cargo test "${CONTAINER[@]}"
echo "== build"
bash scripts/build.sh
cargo build "${CONTAINER[@]}" --bins
echo "== end-to-end tests (workerd + container program + git)"
# A test that hangs fails after 10 minutes instead of holding the run (and its processes) forever.
node --test --test-concurrency=1 --test-timeout=600000 tests/
