#!/usr/bin/env bash
# Installs the real Restate server, CLI and cluster tool (restatectl) from the npm registry,
# pinned, into a cache outside the repository, and prints the directory holding the binaries.
# The binaries are those of the platform package npm chose for this machine (Linux or macOS,
# x86-64 or arm64), found through the packages themselves (scripts/npm-platform-bin.cjs).
# RESTATE_PLATFORM=OS-CPU (npm's names, e.g. linux-arm64) installs another platform's instead,
# as `npm install --os=OS --cpu=CPU` does (e.g. for an image), into its own cache directory; those
# binaries are not run here.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RESTATE_VERSION="${RESTATE_VERSION:-1.7.12}"
platform="${RESTATE_PLATFORM:-}"
npm_platform=()
if [[ -n "$platform" ]]; then
  [[ "$platform" =~ ^([a-z0-9]+)-([a-z0-9]+)$ ]] || {
    echo "install-restate: RESTATE_PLATFORM must be OS-CPU as npm names them (e.g. darwin-arm64), got '$platform'" >&2
    exit 2
  }
  npm_platform=("--os=${BASH_REMATCH[1]}" "--cpu=${BASH_REMATCH[2]}")
fi
cache="${RESTATE_EXAMPLES_CACHE:-$HOME/.cache/restate-examples}/restate/$RESTATE_VERSION${platform:+-$platform}"
bin="$cache/bin"
if [[ -x "$bin/restate-server" && -x "$bin/restate" && -x "$bin/restatectl" ]]; then
  echo "restate $RESTATE_VERSION${platform:+ ($platform)}: cached in $bin" >&2
  echo "$bin"
  exit 0
fi
echo "restate $RESTATE_VERSION${platform:+ ($platform)}: installing from the npm registry into $cache (about 430 MB)..." >&2
mkdir -p "${cache%/*}"
tmp="$(mktemp -d "${cache%/*}/.install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
tmp="$(cd "$tmp" && pwd -P)" # Node resolves symlinks (macOS: /var is /private/var)
npm install --silent --no-audit --no-fund --prefix "$tmp" ${npm_platform[@]+"${npm_platform[@]}"} \
  "@restatedev/restate-server@$RESTATE_VERSION" "@restatedev/restate@$RESTATE_VERSION" \
  "@restatedev/restatectl@$RESTATE_VERSION" >&2
mkdir -p "$tmp/bin"
# node_modules/.bin holds Node shims; link the native binaries of the chosen platform package
# (relative links, so the directory can move into the cache).
for name in restate-server restate restatectl; do
  target="$(node "$here/npm-platform-bin.cjs" "$tmp" "@restatedev/$name" "$name")"
  ln -s "../${target#"$tmp"/}" "$tmp/bin/$name"
done
if [[ -z "$platform" ]]; then
  "$tmp/bin/restate-server" --version >&2
fi
rm -rf "$cache"
mv "$tmp" "$cache"
trap - EXIT
echo "$bin"
