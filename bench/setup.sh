#!/usr/bin/env bash
# Installs what the benchmark needs besides the venv and restate-server, all pinned:
# wrk (Debian), the TypeScript peer with Node 22 (npm, package-lock.json: the Node package npm
# chose for this machine among the peer's optional dependencies), the Go driver.
# Prints the driver's path on its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v wrk >/dev/null; then
  echo "bench: installing wrk from Debian" >&2
  { apt-get install -y -qq wrk || { apt-get update -qq && apt-get install -y -qq wrk; }; } >&2
fi

peer="$here/peer-ts"
peer_node() { node "$here/../scripts/npm-platform-bin.cjs" "$peer" . node; }
if ! peer_node >/dev/null 2>&1 || [[ "$peer/package-lock.json" -nt "$peer/node_modules/.package-lock.json" ]]; then
  echo "bench: npm ci in bench/peer-ts" >&2
  (cd "$peer" && npm ci --silent --no-audit --no-fund) >&2
fi
echo "bench: the peer runs on $("$(peer_node)" --version) ($(peer_node))" >&2
if [[ ! -f "$peer/dist/main.mjs" || "$peer/src/main.ts" -nt "$peer/dist/main.mjs" || "$peer/package-lock.json" -nt "$peer/dist/main.mjs" ]]; then
  (cd "$peer" && npm run --silent build) >&2
fi

go="$(command -v go || echo /usr/local/go/bin/go)"
driver="$here/driver/driver"
if [[ ! -x "$driver" || "$here/driver/main.go" -nt "$driver" ]]; then
  echo "bench: building the Go driver" >&2
  (cd "$here/driver" && GOFLAGS=-mod=mod "$go" build -o driver .) >&2
fi
echo "$driver"
