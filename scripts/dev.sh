#!/usr/bin/env bash
# `npm run dev`: installs what is missing, builds, and serves the town on http://127.0.0.1:8787
# with local auth (GASTOWN_AUTH=dev) and persistent local storage in .wrangler/state.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/build.sh

# Local secrets live in .dev.vars (git-ignored); made once with a random JWT secret.
if [ ! -f .dev.vars ]; then
  secret=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')
  printf 'ENVIRONMENT=development\nGASTOWN_AUTH=dev\nGASTOWN_JWT_SECRET=%s\n' "$secret" > .dev.vars
  chmod 600 .dev.vars
  echo "[dev] wrote .dev.vars with a fresh GASTOWN_JWT_SECRET"
fi

PORT="${PORT:-8787}"
echo "[dev] Gastown on http://127.0.0.1:$PORT  (Ctrl-C to stop)"
exec npx wrangler dev --ip 127.0.0.1 --port "$PORT" --persist-to .wrangler/state --env-file .dev.vars
