#!/usr/bin/env bash
# `npm run deploy`: optimised build, then `wrangler deploy`. Set the secret first, once:
#   npx wrangler secret put GASTOWN_JWT_SECRET
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/build.sh --opt
npx wrangler deploy
