#!/usr/bin/env bash
# `npm run soak [-- --quick | --load-only | --faults-only | --cases=a,b]`: builds what the suite
# needs, then runs the reliability suite (bench/soak.mjs; options in README "Reliability suite").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
bash scripts/build.sh > /dev/null
cargo build --manifest-path container/Cargo.toml --bins
exec node bench/soak.mjs "$@"
