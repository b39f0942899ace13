#!/usr/bin/env bash
# `npm run dev`: installs what is missing, builds, starts the container program as a local
# process and serves the town on http://127.0.0.1:8787 with local auth (GASTOWN_AUTH=dev) and
# persistent local storage in .wrangler/state. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/build.sh
cargo build --manifest-path container/Cargo.toml --bins

PORT="${PORT:-8787}"
CONTAINER_PORT="${CONTAINER_PORT:-8788}"
# Local secrets live in .dev.vars (git-ignored); made once with random secrets.
if [ ! -f .dev.vars ]; then
  rand() { head -c 48 /dev/urandom | base64 | tr -d '/+=\n'; }
  {
    echo "ENVIRONMENT=development"
    echo "GASTOWN_AUTH=dev"
    echo "GASTOWN_JWT_SECRET=$(rand)"
    echo "GASTOWN_CONTAINER_SECRET=$(rand)"
  } > .dev.vars
  chmod 600 .dev.vars
  echo "[dev] wrote .dev.vars with fresh secrets"
fi
container_secret=$(sed -n 's/^GASTOWN_CONTAINER_SECRET=//p' .dev.vars)
mkdir -p .gastown-dev .wrangler
# Agents run under uids of their own: the town's storage (with its secrets) is for this user only.
chmod 700 .wrangler
GASTOWN_CONTAINER_SECRET="$container_secret" container/target/debug/gastown-container \
  --port "$CONTAINER_PORT" --workspace .gastown-dev/workspace >> .gastown-dev/container.log 2>&1 &
container_pid=$!
trap 'kill $container_pid 2>/dev/null; wait $container_pid 2>/dev/null' EXIT INT TERM
echo "[dev] container program on 127.0.0.1:$CONTAINER_PORT (log: .gastown-dev/container.log)"
echo "[dev] Gastown on http://127.0.0.1:$PORT  (Ctrl-C to stop)"
# The URLs depend on the ports, so the env file wrangler reads is .dev.vars plus them.
{ cat .dev.vars; echo "GASTOWN_CONTAINER_URL=http://127.0.0.1:$CONTAINER_PORT"; echo "GASTOWN_API_URL=http://127.0.0.1:$PORT"; } > .gastown-dev/dev.env
npx wrangler dev --ip 127.0.0.1 --port "$PORT" --persist-to .wrangler/state --env-file .gastown-dev/dev.env
