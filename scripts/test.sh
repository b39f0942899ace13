#!/usr/bin/env bash
# `npm test`: installs what is missing, checks formatting and lints, runs the native tests,
# builds the Worker once, and runs the end-to-end suites against real workerd processes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (native and wasm)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p gastown-worker --target wasm32-unknown-unknown -- -D warnings
echo "== native tests"
cargo test --workspace
echo "== build"
bash scripts/build.sh
echo "== end-to-end tests (workerd)"
node --test --test-concurrency=1 tests/
