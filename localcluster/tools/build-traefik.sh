#!/usr/bin/env bash
# Builds Traefik (the local node's ingress controller: Kubernetes Ingress and the Gateway API)
# from its Go module, once, and unpacks the Gateway API CRDs (standard channel) from the
# sigs.k8s.io/gateway-api module zip. Both versions are pinned in traefik/go.mod, and only there.
# Its own cache key and directory, apart from build.sh's (whose key leaves traefik/ out, and
# whose clean-up of earlier builds never touches this one); the same GOMODCACHE and GOCACHE:
#   ${RESTATE_EXAMPLES_CACHE:-$HOME/.cache/restate-examples}/
#     traefik/<traefik version>-<hash of traefik/>/bin/traefik
#     traefik/<key>/crds/standard/*.yaml       the Gateway API CRDs
# Progress goes to stderr; the directory (<key>) is printed on stdout at the end.
#
# Usage: build-traefik.sh                build if needed, print the directory
#        build-traefik.sh --print-dir    print the directory if it is built, else exit 3
#        build-traefik.sh --print-key    print the cache key
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod="$here/traefik"
cache="${RESTATE_EXAMPLES_CACHE:-$HOME/.cache/restate-examples}"
mode="${1:-build}"
log() { printf 'traefik: %s\n' "$*" >&2; }

# Bump when the build below changes, to invalidate existing caches.
build_format=1
version() { sed -n "s|^[[:space:]]*$1 \(v[^ ]*\)$|\1|p" "$mod/go.mod"; }
traefik_version="$(version github.com/traefik/traefik/v3)"
gateway_api_version="$(version sigs.k8s.io/gateway-api)"
hash="$(cd "$mod" && { echo "$build_format"; cat $(find . -type f | LC_ALL=C sort); } \
  | sha256sum | cut -c1-12)"
key="$traefik_version-$hash"
dest="$cache/traefik/$key"

is_built() { [[ -x "$dest/bin/traefik" && -f "$dest/crds/standard/gateway.networking.k8s.io_httproutes.yaml" ]]; }

case "$mode" in
  --print-key) echo "$key"; exit 0 ;;
  --print-dir)
    if is_built; then echo "$dest"; exit 0; fi
    log "not built yet: run localcluster/tools/build-traefik.sh"; exit 3 ;;
  build) ;;
  *) echo "usage: $0 [--print-dir|--print-key]" >&2; exit 2 ;;
esac
if is_built; then log "cached: $dest"; echo "$dest"; exit 0; fi

"$here/build.sh" --check-go
mkdir -p "$cache/traefik" "$cache/go/mod" "$cache/go/build"
exec 9>"$cache/traefik/.lock"
flock 9
if is_built; then log "cached (built concurrently): $dest"; echo "$dest"; exit 0; fi
rm -rf "$cache/traefik"/.tmp-*

export GOMODCACHE="${TRAEFIK_GOMODCACHE:-$cache/go/mod}" GOCACHE="${TRAEFIK_GOCACHE:-$cache/go/build}"
export GOFLAGS="-trimpath" GOTOOLCHAIN=local CGO_ENABLED=0
tmp="$(mktemp -d "$cache/traefik/.tmp-$key-XXXXXX")"
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
start=$SECONDS
log "building Traefik $traefik_version into $dest (GOCACHE $GOCACHE)"
(cd "$mod" && go mod download github.com/traefik/traefik/v3 github.com/go-acme/lego/v5 \
  github.com/gorilla/mux github.com/abbot/go-http-auth sigs.k8s.io/gateway-api)
# Three modules are built from patched copies (outside the repo, under $tmp), because the Go
# module proxy does not serve what Traefik's own build uses (go build -overlay cannot replace
# files in GOMODCACHE, hence copies):
# - lego: its DNS-provider factory imports the SDK of every DNS provider, several of whose
#   versions the proxy does not serve; the copy's factory has no provider
#   (patches/lego_dns_providers.go.txt): Traefik here never solves an ACME DNS challenge.
# - gorilla/mux: Traefik uses its fork (containous/mux, not served), which matches routes on a
#   routing path Traefik keeps in the request's context; patches/mux-routing-path.patch adds
#   that (Router.UseRoutingPath, RoutingPathKey) to upstream mux.
# - go-http-auth: likewise its fork (containous/go-http-auth) answers a stale digest nonce with
#   stale=true; patches/go-http-auth-stale.patch adds that (DigestAuth.RequireAuthStale).
copy() { # copy <module> <dir>: a writable copy of the module's files
  cp -r "$(cd "$mod" && go list -m -f '{{.Dir}}' "$1")" "$2"
  chmod -R u+w "$2"
}
copy github.com/go-acme/lego/v5 "$tmp/lego"
cp "$mod/patches/lego_dns_providers.go.txt" "$tmp/lego/providers/dns/zz_gen_dns_providers.go"
copy github.com/gorilla/mux "$tmp/mux"
patch --quiet -p1 -d "$tmp/mux" < "$mod/patches/mux-routing-path.patch"
copy github.com/abbot/go-http-auth "$tmp/go-http-auth"
patch --quiet -p1 -d "$tmp/go-http-auth" < "$mod/patches/go-http-auth-stale.patch"
cp "$mod/go.mod" "$tmp/go.mod"
cp "$mod/go.sum" "$tmp/go.sum"
(cd "$mod" && go mod edit -modfile="$tmp/go.mod" -replace "github.com/go-acme/lego/v5=$tmp/lego" \
  -replace "github.com/gorilla/mux=$tmp/mux" -replace "github.com/abbot/go-http-auth=$tmp/go-http-auth")
mkdir -p "$tmp/out/bin" "$tmp/out/crds/standard"
(cd "$mod" && go build -mod=readonly -modfile="$tmp/go.mod" \
  -ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$traefik_version" \
  -o "$tmp/out/bin/traefik" github.com/traefik/traefik/v3/cmd/traefik)
log "traefik built in $((SECONDS - start))s"
# The Gateway API CRDs of the standard channel, as its release ships them (config/crd/standard;
# the ValidatingAdmissionPolicy file is not a CRD).
gw_dir="$(cd "$mod" && go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)"
cp "$gw_dir"/config/crd/standard/gateway.networking.k8s.io_*.yaml "$tmp/out/crds/standard/"
rm -f "$tmp/out/crds/standard/gateway.networking.k8s.io_vap_"*
chmod -R u+w "$tmp/out"
printf 'TRAEFIK_VERSION=%s\nGATEWAY_API_VERSION=%s\nKEY=%s\nBUILD_SECONDS=%s\n' \
  "$traefik_version" "$gateway_api_version" "$key" "$((SECONDS - start))" > "$tmp/out/VERSIONS"
rm -rf "$dest"
mv "$tmp/out" "$dest"
# Earlier Traefik builds (other keys) go, unless a running process uses their binary.
for old in "$cache/traefik"/v*/; do
  old="${old%/}"
  [[ "$old" == "$dest" ]] && continue
  ls -l /proc/[0-9]*/exe 2>/dev/null | grep -qF "$old/" || rm -rf "$old"
done
log "built in $((SECONDS - start))s: $dest"
echo "$dest"
