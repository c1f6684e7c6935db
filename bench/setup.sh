#!/usr/bin/env bash
# Installs what the benchmark needs besides the venv and restate-server, all pinned:
# wrk (Debian), the TypeScript peer with Node 22 (npm, package-lock.json: the Node package npm
# chose for this machine among the peer's optional dependencies), the Go driver.
# Prints the driver's path on its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# wrk from Debian where it is missing, never replacing or removing anything (not root: no).
if ! command -v wrk >/dev/null && ! "$here/../scripts/apt-install-missing.sh" --label bench wrk; then
  echo "bench: needs wrk: install it (Debian: apt-get install wrk as root; macOS: brew install wrk)" >&2
  exit 1
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
