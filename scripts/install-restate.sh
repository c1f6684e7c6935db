#!/usr/bin/env bash
# Installs the real Restate server, CLI and cluster tool (restatectl) from the npm registry,
# pinned, into a cache outside the repository, and prints the directory holding the binaries.
set -euo pipefail
RESTATE_VERSION="${RESTATE_VERSION:-1.7.12}"
cache="${RESTATE_EXAMPLES_CACHE:-$HOME/.cache/restate-examples}/restate/$RESTATE_VERSION"
bin="$cache/bin"
if [[ -x "$bin/restate-server" && -x "$bin/restate" && -x "$bin/restatectl" ]]; then
  echo "restate $RESTATE_VERSION: cached in $bin" >&2
  echo "$bin"
  exit 0
fi
echo "restate $RESTATE_VERSION: installing from the npm registry into $cache (about 430 MB)..." >&2
tmp="$(mktemp -d "${cache%/*}/.install.XXXXXX" 2>/dev/null || { mkdir -p "${cache%/*}"; mktemp -d "${cache%/*}/.install.XXXXXX"; })"
trap 'rm -rf "$tmp"' EXIT
npm install --silent --no-audit --no-fund --prefix "$tmp" \
  "@restatedev/restate-server@$RESTATE_VERSION" "@restatedev/restate@$RESTATE_VERSION" \
  "@restatedev/restatectl@$RESTATE_VERSION" >&2
mkdir -p "$tmp/bin"
# node_modules/.bin holds Node shims; link the native binaries directly.
ln -s ../node_modules/@restatedev/restate-server-linux-x64/bin/restate-server "$tmp/bin/restate-server"
ln -s ../node_modules/@restatedev/restate-linux-x64/bin/restate "$tmp/bin/restate"
ln -s ../node_modules/@restatedev/restatectl-linux-x64/bin/restatectl "$tmp/bin/restatectl"
"$tmp/bin/restate-server" --version >&2
rm -rf "$cache"
mv "$tmp" "$cache"
trap - EXIT
echo "$bin"
