#!/usr/bin/env bash
# `npm run bench`: builds what the benchmarks need, then runs them (prints medians and ratios).
# `npm run bench:merge` (`bench.sh merge`): only the refinery's merge throughput, trains vs one at a time.
# `npm run bench:api` (`bench.sh api`): only control-plane latency (bench/api.mjs), side by side with
# the TypeScript reference Worker when BENCH_REFERENCE_DIR is set; it needs no container program.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
bash scripts/build.sh > /dev/null
if [ "${1:-}" = "api" ]; then
  node bench/api.mjs
  exit
fi
cargo build --manifest-path container/Cargo.toml --bins
if [ "${1:-}" = "merge" ]; then
  node bench/merge.mjs
  exit
fi
node bench/pipeline.mjs
node bench/terminal.mjs
node bench/agents.mjs
