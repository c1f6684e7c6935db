#!/usr/bin/env bash
# Builds the test control plane and the local real node from Go modules, once, into a cache
# outside the repo:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy
#   (all from one pinned Kubernetes release), etcd, kube-apiserver-oldest (the API server of
#   the oldest release the chart supports, for its render tests), containerd 2.x with its runc
#   shim and ctr (the local node's runtime),
#   kwok (fake nodes/pods), helm v4, CoreDNS (cluster DNS), local-path-provisioner
#   (the node's default StorageClass), kube-router (its NetworkPolicy enforcement) and
#   Prometheus (the monitoring tests; Debian's is built without Kubernetes discovery).
# Layout: ${RESTATE_EXAMPLES_CACHE:-$HOME/.cache/restate-examples}/
#           controlplane/<kube-version>-<hash of modules>/bin/   the binaries
#           go/mod, go/build                                     GOMODCACHE, GOCACHE
#         controlplane/<key>/etc/kwok-stages.yaml                  kwok's default stages
# Progress goes to stderr; the bin dir is printed on stdout at the end.
# The control plane (the chart, operator and kube tests need nothing else) is built first and
# published under <key>/bin on its own; the node's binaries, Prometheus and the oldest
# kube-apiserver follow into the same bin dir. `make test` starts those tests on the first
# (tests/plugins/builds.py) while the rest builds.
#
# Usage: build.sh                  build if needed, print the bin dir
#        build.sh --print-bin-dir  print the bin dir if it is built, else exit 3
#        build.sh --print-bin-dir control-plane
#                                  print it once the control plane is built, else exit 3
#        build.sh --print-key      print the cache key
#        build.sh --print-tools [control-plane]
#                                  print the binaries it builds (or the control plane's)
#        build.sh --check-go       check that go is GO_VERSION (versions.env) or newer
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${RESTATE_EXAMPLES_CACHE:-$HOME/.cache/restate-examples}"
mode="${1:-build}"

log() { printf 'controlplane: %s\n' "$*" >&2; }

# Bump when the build flags below change, to invalidate existing caches.
build_format=5
# The key changes whenever a pinned version, a module file, a Go source file or
# build_format changes. It does not call `go` so that a warm run stays fast. traefik/ is left
# out: the ingress controller has its own key and cache (build-traefik.sh).
hash="$(cd "$here" && { echo "$build_format"; cat versions.env \
  $(find . -path ./traefik -prune -o \( -name go.mod -o -name go.sum -o -name '*.go' \) -print \
    | LC_ALL=C sort); } \
  | sha256sum | cut -c1-12)"
key="${KUBE_VERSION}-${hash}"
dest="$cache/controlplane/$key"
bin="$dest/bin"
# In build order: the control plane, then the rest.
controlplane_tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet
  kube-proxy kwok helm)
rest_tools=(containerd ctr containerd-shim-runc-v2 coredns local-path-provisioner kube-router
  prometheus kube-apiserver-oldest)
tools=("${controlplane_tools[@]}" "${rest_tools[@]}")

has() { # has <tool>...: built, with kwok's stages
  local t
  for t in "$@"; do [[ -x "$bin/$t" ]] || return 1; done
  [[ -f "$dest/etc/kwok-stages.yaml" ]]
}
is_built() { has "${tools[@]}"; }

# go on PATH is GO_VERSION or newer? (1.26.7, go1.27rc1, go1.26.8 X:nocoverageredesign...)
check_go() {
  local found need have i
  found="$(command -v go >/dev/null && go env GOVERSION 2>/dev/null || true)"
  if [[ -z "$found" ]]; then
    log "needs Go $GO_VERSION or newer (GO_VERSION in $here/versions.env); found no go on PATH"
    return 1
  fi
  IFS=. read -ra need <<<"$GO_VERSION"
  IFS=. read -ra have <<<"$(sed 's/^go\([0-9.]*\).*/\1/' <<<"$found")"
  for i in 0 1 2; do
    if ((${have[i]:-0} != ${need[i]:-0})); then
      ((${have[i]:-0} > ${need[i]:-0})) && return 0
      log "needs Go $GO_VERSION or newer (GO_VERSION in $here/versions.env); found $found ($(command -v go))"
      return 1
    fi
  done
}

case "$mode" in
  --check-go) check_go && log "go: $(go env GOVERSION), needs $GO_VERSION or newer"; exit ;;
  --print-key) echo "$key"; exit 0 ;;
  --print-bin-dir | --print-tools)
    case "${2:-}" in
      "") want=("${tools[@]}") ;;
      control-plane) want=("${controlplane_tools[@]}") ;;
      *) echo "usage: $0 $mode [control-plane]" >&2; exit 2 ;;
    esac
    if [[ "$mode" == --print-tools ]]; then echo "${want[*]}"; exit 0; fi
    if has "${want[@]}"; then echo "$bin"; exit 0; fi
    log "not built yet: run 'make controlplane' (localcluster/tools/build.sh)"; exit 3 ;;
  build) ;;
  *) echo "usage: $0 [--print-bin-dir|--print-key|--print-tools|--check-go]" >&2; exit 2 ;;
esac

if is_built; then
  log "cached: $bin"
  echo "$bin"
  exit 0
fi

check_go || exit 1
mkdir -p "$cache/controlplane" "$cache/go/mod" "$cache/go/build"

# One build at a time (make and a pytest run may race); re-check after taking the lock.
exec 9>"$cache/controlplane/.lock"
if command -v flock >/dev/null; then
  flock 9
  if is_built; then log "cached (built concurrently): $bin"; echo "$bin"; exit 0; fi
  rm -rf "$cache/controlplane"/.tmp-*  # left by killed builds; none can be running now
fi

export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build"
# No DWARF: the binaries are stripped (-s -w below), so the compiler need not write it.
export GOFLAGS="-mod=readonly -trimpath -gcflags=all=-dwarf=false" GOTOOLCHAIN=local CGO_ENABLED=0

log "building Kubernetes $KUBE_VERSION (control plane and node), etcd $ETCD_VERSION,"
log "kube-apiserver $KUBE_OLDEST_VERSION (oldest supported), containerd $CONTAINERD_VERSION,"
log "kwok $KWOK_VERSION, helm $HELM_VERSION, CoreDNS $COREDNS_VERSION,"
log "local-path-provisioner $LOCAL_PATH_VERSION, kube-router $KUBE_ROUTER_VERSION, Prometheus $PROMETHEUS_VERSION"
log "into $bin"
log "a cold build downloads modules and compiles Kubernetes: it takes many minutes"
log "(10-30 on 2 cores, several GB of RAM); later runs reuse the cache"

start=$SECONDS
step=0
new_tmp() { # a fresh temporary build directory in $tmp, removed if the build stops
  tmp="$(mktemp -d "$cache/controlplane/.tmp-$key-XXXXXX")"
  mkdir -p "$tmp/bin"
  trap 'rm -rf "$tmp"' EXIT
}
build() { # build <module dir> <output name> <package> [extra ldflags] [build tags]
  local dir="$1" name="$2" pkg="$3" ldflags="-s -w ${4:-}" tags="${5:-}" t0=$SECONDS
  step=$((step + 1))
  log "[$step/${#tools[@]}] building $name ($pkg)..."
  (cd "$here/$dir" && go build -tags="$tags" -ldflags="$ldflags" -o "$tmp/bin/$name" "$pkg")
  log "[$step/${#tools[@]}] $name done in $((SECONDS - t0))s"
}
# Several binaries of one module with the same flags in one `go build`, each named after its
# package's last element: go links one while it compiles the next (a link is single-threaded).
build_all() { # build_all <module dir> <extra ldflags> <build tags> <package>...
  local dir="$1" ldflags="-s -w $2" tags="$3" t0=$SECONDS
  shift 3
  step=$((step + $#))
  log "[$step/${#tools[@]}] building ${*##*/}..."
  (cd "$here/$dir" && go build -tags="$tags" -ldflags="$ldflags" -o "$tmp/bin/" "$@")
  log "[$step/${#tools[@]}] ${*##*/} done in $((SECONDS - t0))s"
}

# Version stamps, as Kubernetes' hack/lib/version.sh and helm's Makefile set them: without
# them /version says v0.0.0-master, which kubectl version and chart kubeVersion checks reject.
kube_ldflags() { # kube_ldflags <release>
  local minor="${1#v1.}" p flags=""
  minor="${minor%%.*}"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $p.gitVersion=$1 -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  echo "$flags"
}
kube_ldflags="$(kube_ldflags "$KUBE_VERSION")"
helm_ldflags="-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
containerd_ldflags="-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
# As containerd's Makefile, less what this node does not use (btrfs needs cgo; no devmapper,
# ZFS or OpenTelemetry tracing); the shim without gRPC.
containerd_tags="urfave_cli_no_docs no_devmapper no_zfs no_tracing"

# 1. The control plane, published whole (a rename) as soon as it is built. Already there (a
# build stopped after it), it is kept: same key, same binaries, maybe in use.
if has "${controlplane_tools[@]}"; then
  log "the control plane is built already: $bin"
  step=${#controlplane_tools[@]}
else
  new_tmp
  build kube/etcd etcd .
  build_all kube "$kube_ldflags" "" k8s.io/kubernetes/cmd/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl,kubelet,kube-proxy}
  build kwok kwok sigs.k8s.io/kwok/cmd/kwok
  build helm helm helm.sh/helm/v4/cmd/helm "$helm_ldflags"
  # The standalone kwok binary has no built-in stages (kwokctl injects them): write the
  # default ones of this kwok release (fast node init, heartbeat with lease, pod ready/
  # complete/delete) for the fixture's kwok --config.
  log "writing kwok default stages"
  mkdir -p "$tmp/etc"
  kwok_dir="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    echo "---"
    cat "$kwok_dir/kustomize/stage/$f.yaml"
  done > "$tmp/etc/kwok-stages.yaml"
  # What was built (the pinned versions, as versions.env names them) and the cache key.
  { grep -E '^[A-Z_]+=' "$here/versions.env"; echo "KEY=$key"; } > "$tmp/VERSIONS"
  rm -rf "$dest"  # an incomplete earlier build without the control plane
  mv "$tmp" "$dest"
  trap - EXIT
  log "the control plane is built, in $((SECONDS - start))s: $bin"
fi

# 2. The rest: each binary moved into the bin dir (a rename) after all are built, so the
# whole build is there (is_built) only once it is complete.
new_tmp
build_all containerd "$containerd_ldflags" "$containerd_tags" github.com/containerd/containerd/v2/cmd/{containerd,ctr}
build containerd containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
  "$containerd_ldflags" "$containerd_tags no_grpc"
build coredns coredns . \
  "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
build localpath local-path-provisioner github.com/rancher/local-path-provisioner
build kuberouter kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
build prometheus prometheus github.com/prometheus/prometheus/cmd/prometheus
# Only for the chart's render tests (the oldest release it supports): last.
build kube-oldest kube-apiserver-oldest k8s.io/kubernetes/cmd/kube-apiserver \
  "$(kube_ldflags "$KUBE_OLDEST_VERSION")"
mv "$tmp/bin/"* "$bin/"
rm -rf "$tmp"
trap - EXIT
log "built in $((SECONDS - start))s: $bin"
# Earlier builds (other keys) go, unless a running process still uses their binaries.
for old in "$cache/controlplane"/v*/; do
  old="${old%/}"
  [[ "$old" == "$dest" ]] && continue
  if ! ls -l /proc/[0-9]*/exe 2>/dev/null | grep -qF "$old/"; then
    log "removing the earlier build $old"
    rm -rf "$old"
  fi
done
echo "$bin"
