#!/usr/bin/env bash
# Builds the suite's images without Docker and without a registry, with podman:
#   - the targets of the unchanged Dockerfile (each example's stage, FROM service, and the
#     operator's), tagged exactly as the chart renders them;
#   - restate-server (and restatectl) 1.7.12 from their npm packages, tagged as the chart's
#     default Restate image, so the cluster runs the same server the tests use.
# Where a registry is reachable the Dockerfile's official Python base is used; otherwise a base
# is made locally: mmdebstrap of Debian bookworm with Python (Debian's own packages), imported
# into podman. The build host's CA bundle is mounted for pip during the build only; nothing of
# the host is baked into an image.
#
# Usage: images.sh                build (cached layers make a warm run take seconds)
#        images.sh --save FILE    also write every image into one docker-archive FILE
#                                 (what `ctr images import` loads into containerd)
#        images.sh --print-refs   print the image references and exit
# Environment: BASE_IMAGE=auto|local|<image ref> (default auto: the official base if it can be
#              pulled within 20 s, else the local one); TAG (default: the chart's appVersion).
# State (podman storage, the base image tarball) lives in
# ${RESTATE_EXAMPLES_CACHE:-~/.cache/restate-examples}/images, never in the repository; the
# podman configuration is the project's own (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF), so
# no global container setting changes.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${RESTATE_EXAMPLES_CACHE:-$HOME/.cache/restate-examples}/images"
chart="$repo/deploy/helm/restate-examples"
log() { printf 'images: %s\n' "$*" >&2; }

# The references the chart renders by default (values.yaml), so `helm install` needs no --set.
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$chart/Chart.yaml")"
tag="${TAG:-$app_version}"
restate_version="$(sed -n '/^restate:/,/^[a-z]/s/^    tag: *"\(.*\)"$/\1/p' "$chart/values.yaml")"
restate_repo="$(sed -n '/^restate:/,/^[a-z]/s/^    repository: *\(.*\)$/\1/p' "$chart/values.yaml")"
# The Dockerfile's targets: every example's stage (FROM service) and the operator's.
mapfile -t targets < <(sed -n 's/^FROM service AS \([a-z0-9-]*\)$/\1/p' "$repo/Dockerfile")
targets+=(operator)
refs=()
for t in "${targets[@]}"; do refs+=("docker.io/library/restate-examples-$t:$tag"); done
restate_ref="$restate_repo:$restate_version"
refs+=("$restate_ref")
# A tiny static init from Debian, the sandbox ("pause") image of the local node's containerd.
pause_ref="localhost/restate-examples-pause:3.0"
# The base image (with a shell): the local node's volume provisioner runs its helper pods on it.
local_base="localhost/restate-examples-base:bookworm"
refs+=("$pause_ref" "$local_base")
# Prometheus (built from its Go module by localcluster/tools/build.sh, when built) on that base:
# the monitoring tests run it as a pod of the cluster.
prometheus_bin="$("$repo/localcluster/tools/build.sh" --print-bin-dir 2>/dev/null)/prometheus" || true
prometheus_ref="localhost/restate-examples-prometheus:test"
[[ -x "$prometheus_bin" ]] && refs+=("$prometheus_ref")

mode="build"; save=""
case "${1:-}" in
  --print-refs) printf '%s\n' "${refs[@]}"; exit 0 ;;
  --save) save="${2:?--save needs a file}"; ;;
  "") ;;
  *) echo "usage: $0 [--save FILE | --print-refs]" >&2; exit 2 ;;
esac

# One build at a time: make images, make kind-node and the e2e fixtures share this cache (two
# at once removed each other's build context). flock -o: podman, started below, does not
# inherit the lock.
if [[ -z "${RESTATE_EXAMPLES_IMAGES_LOCKED:-}" ]]; then
  mkdir -p "$cache"
  RESTATE_EXAMPLES_IMAGES_LOCKED=1 exec flock -o "$cache/.lock" "$0" "$@"
fi

need() { command -v "$1" >/dev/null || { log "$1 is missing: run localcluster/node-packages.sh"; exit 1; }; }
need podman; need mmdebstrap; need npm

# ------------------------------------------------------------------ podman, project-owned config
mkdir -p "$cache/storage" "$cache/run" "$cache/tmp"
cat > "$cache/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$cache/storage"
runroot = "$cache/run"
EOF
# runc (crun refuses this machine's hybrid cgroups); ulimits within the hard limits here.
cat > "$cache/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$cache/tmp"
EOF
export CONTAINERS_STORAGE_CONF="$cache/storage.conf" CONTAINERS_CONF="$cache/containers.conf"
export TMPDIR="$cache/tmp"

# ------------------------------------------------------------------ the base image
base="${BASE_IMAGE:-auto}"
official="$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$repo/Dockerfile")"
if [[ "$base" == auto ]]; then
  if podman image exists "$official" || timeout 20 podman pull --quiet "$official" >/dev/null 2>&1; then
    base="$official"
  else
    base=local
  fi
fi
if [[ "$base" == local ]]; then
  base="$local_base"
  if ! podman image exists "$base"; then
    log "no registry: making a Debian bookworm + Python base with mmdebstrap (about a minute)"
    t0=$SECONDS
    # The machine's own apt sources (a mirror it can reach); python-is-python3 gives the
    # Dockerfile the `python` command the official image has; passwd for useradd.
    mmdebstrap --quiet --variant=minbase --mode=root \
      --include=python3,python3-venv,python-is-python3,ca-certificates,passwd \
      --aptopt='Acquire::Languages "none"' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
      bookworm "$cache/base.tar" /etc/apt/sources.list.d/debian.sources >&2
    podman import --quiet --change 'CMD ["python3"]' "$cache/base.tar" "$base" >/dev/null
    rm -f "$cache/base.tar"
    log "base image $base made in $((SECONDS - t0))s"
  fi
fi
[[ "$base" == "$local_base" ]] || podman tag "$base" "$local_base"
log "base image: $base"

# pip in the build trusts the host's CA bundle (a TLS-intercepting proxy may sit between this
# machine and PyPI). Both are mounted read-only for the RUN steps only, over directories every
# base image already has (so not even an empty mount point is left in a layer): the host's
# /etc/ssl/certs, and a build-only HOME (/root) whose pip.conf points pip at that bundle.
build_mounts=()
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  mkdir -p "$cache/build-home/.config/pip"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' \
    > "$cache/build-home/.config/pip/pip.conf"
  build_mounts+=(--volume /etc/ssl/certs:/etc/ssl/certs:ro
                 --volume "$cache/build-home:/root:ro")
fi

# ------------------------------------------------------------------ the five Dockerfile targets
for t in "${targets[@]}"; do
  t0=$SECONDS
  podman build --quiet --format docker --network host --layers "${build_mounts[@]}" \
    --build-arg "PYTHON_IMAGE=$base" --target "$t" \
    --tag "docker.io/library/restate-examples-$t:$tag" \
    --file "$repo/Dockerfile" "$repo" >/dev/null
  log "built restate-examples-$t:$tag in $((SECONDS - t0))s"
done

# ------------------------------------------------------------------ restate-server from npm
t0=$SECONDS
restate_bin="$(RESTATE_VERSION="$restate_version" "$repo/scripts/install-restate.sh")"
ctx="$cache/restate-context"
rm -rf "$ctx"; mkdir -p "$ctx"
cp -L "$restate_bin/restate-server" "$restate_bin/restatectl" "$ctx/"
podman build --quiet --layers --build-arg "BASE=$base" --tag "$restate_ref" \
  --file "$repo/localcluster/images/restate-server.Containerfile" "$ctx" >/dev/null
rm -rf "$ctx"
log "built $restate_ref in $((SECONDS - t0))s"

# ------------------------------------------------------------------ the pause image
if ! podman image exists "$pause_ref"; then
  ctx="$cache/pause-context"
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp /usr/bin/catatonit "$ctx/catatonit"
  printf 'FROM scratch\nCOPY catatonit /pause\nENTRYPOINT ["/pause", "-P"]\n' > "$ctx/Containerfile"
  podman build --quiet --tag "$pause_ref" "$ctx" >/dev/null
  rm -rf "$ctx"
fi

# ------------------------------------------------------------------ Prometheus (tests only)
if [[ -x "$prometheus_bin" ]]; then
  ctx="$cache/prometheus-context"
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp "$prometheus_bin" "$ctx/prometheus"
  printf 'FROM %s\nCOPY prometheus /usr/bin/prometheus\nUSER 65534:65534\nENTRYPOINT ["/usr/bin/prometheus"]\n' \
    "$local_base" > "$ctx/Containerfile"
  podman build --quiet --layers --tag "$prometheus_ref" "$ctx" >/dev/null
  rm -rf "$ctx"
fi

if [[ -n "$save" ]]; then
  t0=$SECONDS
  rm -f "$save"
  podman save --quiet --multi-image-archive --output "$save" "${refs[@]}"
  log "saved ${#refs[@]} images to $save in $((SECONDS - t0))s"
fi
printf '%s\n' "${refs[@]}"
