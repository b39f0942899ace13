#!/usr/bin/env bash
# Installs real agent CLIs (claude, codex, opencode, gemini, kilo) at the exact versions pinned in
# container/agent-clis.json into a git-ignored cache keyed by the manifest's content:
#   .cache/agent-clis/<first 12 hex of sha256(manifest)>/node_modules/.bin
# Usage: bash scripts/agent-clis.sh [name ...]     (no names: all CLIs in the manifest)
# Idempotent: a CLI already installed at that key is not installed again, so a second run is fast.
# The cache is made world-readable/executable, since agents run as other (unprivileged) uids.
# Progress goes to stderr; the LAST line on stdout is the absolute bin directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
manifest="$repo/container/agent-clis.json"
[ -f "$manifest" ] || { echo "agent-clis: no manifest at $manifest" >&2; exit 1; }
command -v node > /dev/null || { echo "agent-clis: node (>= 20) is required" >&2; exit 1; }
command -v npm > /dev/null || { echo "agent-clis: npm is required" >&2; exit 1; }

key=$(sha256sum "$manifest" | cut -c1-12)
cache_root="${GASTOWN_AGENT_CLI_CACHE:-$repo/.cache}"
dir="$cache_root/agent-clis/$key"
bin="$dir/node_modules/.bin"

# Resolve the requested names against the manifest: one "name<TAB>package<TAB>version<TAB>bin"
# line per CLI; unknown names fail here, before anything is installed.
specs=$(node -e '
  const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).clis;
  const names = process.argv.slice(2);
  const want = names.length ? names : Object.keys(m);
  for (const n of want) {
    const c = m[n];
    if (!c) { console.error(`agent-clis: unknown CLI "${n}" (known: ${Object.keys(m).join(", ")})`); process.exit(2); }
    console.log([n, c.package, c.version, c.bin].join("\t"));
  }' "$manifest" "$@")

mkdir -p "$dir"
# The whole .cache tree stays out of git without touching the repository's .gitignore.
[ -f "$cache_root/.gitignore" ] || printf '*\n' > "$cache_root/.gitignore"

installed() { # package version bin → true when that exact version and its binary are in place
  local pj="$dir/node_modules/$1/package.json"
  [ -f "$pj" ] && [ -x "$bin/$3" ] \
    && [ "$(node -p 'require(process.argv[1]).version' "$pj" 2> /dev/null)" = "$2" ]
}

install_missing() {
  local missing=() name pkg ver b
  while IFS=$'\t' read -r name pkg ver b; do
    [ -n "$name" ] || continue
    if installed "$pkg" "$ver" "$b"; then
      echo "agent-clis: $name $ver already installed" >&2
    else
      missing+=("$pkg@$ver")
    fi
  done <<< "$specs"
  if [ ${#missing[@]} -gt 0 ]; then
    echo "agent-clis: installing ${missing[*]} into $dir" >&2
    [ -f "$dir/package.json" ] || printf '{ "name": "gastown-agent-clis", "private": true }\n' > "$dir/package.json"
    npm install --prefix "$dir" --save-exact --no-audit --no-fund --loglevel=error "${missing[@]}" >&2
    while IFS=$'\t' read -r name pkg ver b; do
      [ -n "$name" ] || continue
      installed "$pkg" "$ver" "$b" || { echo "agent-clis: $name did not install ($pkg@$ver, bin $b)" >&2; exit 1; }
    done <<< "$specs"
  fi
  # Agents run as other uids: everything readable, directories and executables traversable.
  chmod -R a+rX "$dir"
  chmod a+rx "$cache_root" "$cache_root/agent-clis"
}

# Concurrent runs (parallel tests) must not interleave two npm installs into one prefix.
if command -v flock > /dev/null; then
  exec 9> "$dir/.lock"
  flock 9
  install_missing
  flock -u 9
else
  install_missing
fi
echo "$bin"
