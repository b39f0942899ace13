#!/usr/bin/env bash
# `npm run bench`: builds what the benchmarks need, then runs them (prints medians and ratios).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
bash scripts/build.sh > /dev/null
cargo build --manifest-path container/Cargo.toml --bins
node bench/pipeline.mjs
node bench/terminal.mjs
node bench/agents.mjs
