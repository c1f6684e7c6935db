#!/usr/bin/env bash
# Builds kind and a kind node image on this machine, with no container registry and no Docker:
#   - kind (sigs.k8s.io/kind, KIND_VERSION below), kubeadm (the pinned Kubernetes, KUBE_VERSION
#     of localcluster/tools/versions.env) and a CoreDNS with the plugins of kubeadm's Corefile,
#     from the Go modules in localcluster/kind/go (NOT under localcluster/tools: build.sh's key
#     and clean-up never see them);
#   - the node image: a Debian bookworm rootfs (mmdebstrap: systemd, iptables, Debian's runc
#     and CNI plugins), kind's own node files (images/base/files of its module: entrypoint,
#     containerd config, units), containerd, kubelet, kubectl from the warm control-plane build
#     (localcluster/tools/build.sh --print-bin-dir), kubeadm; and, imported into the node's
#     containerd, the images kubeadm and kind need, built here from those same binaries:
#     kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, etcd, CoreDNS, the
#     pause image (catatonit, as the local node), local-path-provisioner (kind's default
#     StorageClass) and kube-router (NetworkPolicies; the default CNI here is Debian's bridge
#     plugin, single node), each under the reference kubeadm asks for (`kubeadm config images
#     list`) or a localhost/ one of the manifests written here.
#   Adapted to what this machine lacks: containerd's unit without OOMScoreAdjust=-999 and
#   resource limits, restrict_oom_score_adj = true (no CAP_SYS_RESOURCE); cgroup v1 and the
#   kubelet's oomScoreAdj are in cluster.yaml (the kubelet configuration kind writes).
# Cached under ${RESTATE_EXAMPLES_CACHE:-~/.cache/restate-examples}/kind/<key>/ (bin/, IMAGE);
# the image lives in images.sh's podman storage (its CONTAINERS_CONF/CONTAINERS_STORAGE_CONF).
# The key hashes this directory, versions.env and the control-plane key: a changed input makes
# a new build; earlier ones (and their images) are removed.
#
# Usage: build.sh                 build if needed; prints the kind bin dir and the image ref
#        build.sh --print-bin-dir the kind bin dir if built, else exit 3
#        build.sh --print-image   the node image reference if built, else exit 3
# Needs root (mmdebstrap, chroot), podman and mmdebstrap (localcluster/node-packages.sh), the
# control-plane build (make controlplane) and images.sh's podman configuration (make images).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../tools/versions.env
source "$repo/localcluster/tools/versions.env"
KIND_VERSION=v0.33.0
cache="${RESTATE_EXAMPLES_CACHE:-$HOME/.cache/restate-examples}"
mode="${1:-build}"
log() { printf 'kind-node: %s\n' "$*" >&2; }

cp_key="$("$repo/localcluster/tools/build.sh" --print-key)"
hash="$(cd "$here" && { echo "$cp_key"; cat "$repo/localcluster/tools/versions.env" \
  $(find . -type f ! -name '*.pyc' | LC_ALL=C sort); } | sha256sum | cut -c1-12)"
key="${KUBE_VERSION}-${hash}"
dest="$cache/kind/$key"
image="localhost/restate-examples-kind-node:$key"

is_built() { [[ -x "$dest/bin/kind" && -f "$dest/IMAGE" ]]; }
case "$mode" in
  --print-bin-dir) is_built && { echo "$dest/bin"; exit 0; }; log "not built: $0"; exit 3 ;;
  --print-image) is_built && { cat "$dest/IMAGE"; exit 0; }; log "not built: $0"; exit 3 ;;
  build) ;;
  *) echo "usage: $0 [--print-bin-dir|--print-image]" >&2; exit 2 ;;
esac

export CONTAINERS_STORAGE_CONF="$cache/images/storage.conf" CONTAINERS_CONF="$cache/images/containers.conf"
export TMPDIR="$cache/images/tmp"
[[ -f "$CONTAINERS_CONF" ]] || { log "no podman configuration: run make images first"; exit 1; }
if is_built && podman image exists "$(cat "$dest/IMAGE")"; then
  log "cached: $image"
  echo "$dest/bin"; cat "$dest/IMAGE"; exit 0
fi
[[ "$(id -u)" == 0 ]] || { log "needs root (mmdebstrap, chroot)"; exit 1; }
cp_bin="$("$repo/localcluster/tools/build.sh" --print-bin-dir)"
mkdir -p "$cache/kind"
exec 9>"$cache/kind/.lock"
flock 9
rm -rf "$cache/kind"/.tmp-*
tmp="$(mktemp -d "$cache/kind/.tmp-$key-XXXXXX")"
cleanup() {
  [[ -n "${ctrd_pid:-}" ]] && kill "$ctrd_pid" 2>/dev/null && wait "$ctrd_pid" 2>/dev/null
  [[ -n "${base_ref:-}" ]] && podman rmi --force "$base_ref" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
start=$SECONDS

# ------------------------------------------------------------------ Go builds (own module dirs)
export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build"
export GOFLAGS="-mod=readonly -trimpath" GOTOOLCHAIN=local CGO_ENABLED=0
mkdir -p "$tmp/bin"
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
kube_ldflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
t0=$SECONDS
(cd "$here/go/kind" && go build -ldflags="-s -w" -o "$tmp/bin/kind" sigs.k8s.io/kind)
(cd "$here/go/kubeadm" && go build -ldflags="-s -w $kube_ldflags" -o "$tmp/bin/kubeadm" k8s.io/kubernetes/cmd/kubeadm)
(cd "$here/go/coredns" && go build -ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" -o "$tmp/bin/coredns" .)
log "kind $KIND_VERSION, kubeadm $KUBE_VERSION, CoreDNS $COREDNS_VERSION built in $((SECONDS - t0))s"
kind_src="$(cd "$here/go/kind" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)"
files="$kind_src/images/base/files"

# ------------------------------------------------------------------ the rootfs (Debian bookworm)
t0=$SECONDS
root="$tmp/rootfs"
# The machine's own apt sources where it is Debian (a mirror it can reach), else Debian's.
mirror=/etc/apt/sources.list.d/debian.sources
[[ -f "$mirror" ]] || mirror="deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main"
mmdebstrap --quiet --variant=minbase --mode=root \
  --include=systemd,dbus,jq,conntrack,iptables,nftables,ipset,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,procps,runc,containernetworking-plugins \
  --aptopt='Acquire::Languages "none"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "$root" "$mirror" >&2
log "rootfs made in $((SECONDS - t0))s"

# The base of the images that need iptables and a shell (kube-proxy, kube-router): the rootfs
# as Debian made it.
base_ref="localhost/restate-examples-kind-base:$key"
tar -C "$root" -c . | podman import --quiet - "$base_ref" >/dev/null

# ------------------------------------------------------------------ the images in the node
t0=$SECONDS
mapfile -t kubeadm_refs < <("$tmp/bin/kubeadm" config images list --kubernetes-version "$KUBE_VERSION")
ref_of() { printf '%s\n' "${kubeadm_refs[@]}" | grep -m1 "/$1:"; }
pause_ref="localhost/restate-examples-pause:3.0"
helper_ref="localhost/restate-examples-base:bookworm"
local_path_ref="localhost/restate-examples-kind-local-path:$LOCAL_PATH_VERSION"
kube_router_ref="localhost/restate-examples-kind-kube-router:$KUBE_ROUTER_VERSION"
ctx="$tmp/ctx"
image() { # image <ref> <base> <entrypoint or ""> <binary>...
  local ref="$1" from="$2" entry="$3" b; shift 3
  rm -rf "$ctx"; mkdir -p "$ctx"
  {
    echo "FROM $from"
    echo "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for b in "$@"; do cp "$b" "$ctx/"; echo "COPY $(basename "$b") /usr/local/bin/"; done
    [[ -n "$entry" ]] && echo "ENTRYPOINT [\"$entry\"]"
  } > "$ctx/Containerfile"
  podman build --quiet --format docker --tag "$ref" "$ctx" >/dev/null
  refs+=("$ref")
}
refs=()
image "$(ref_of kube-apiserver)" scratch "" "$cp_bin/kube-apiserver"
image "$(ref_of kube-controller-manager)" scratch "" "$cp_bin/kube-controller-manager"
image "$(ref_of kube-scheduler)" scratch "" "$cp_bin/kube-scheduler"
image "$(ref_of kube-proxy)" "$base_ref" "" "$cp_bin/kube-proxy"
image "$(ref_of etcd)" scratch "" "$cp_bin/etcd"
image "$(ref_of coredns)" scratch /usr/local/bin/coredns "$tmp/bin/coredns"
image "$local_path_ref" scratch /usr/local/bin/local-path-provisioner "$cp_bin/local-path-provisioner"
image "$kube_router_ref" "$base_ref" /usr/local/bin/kube-router "$cp_bin/kube-router"
podman image exists "$pause_ref" && podman image exists "$helper_ref" \
  || { log "$pause_ref or $helper_ref missing: run make images first"; exit 1; }
refs+=("$pause_ref" "$helper_ref")
podman save --quiet --multi-image-archive --output "$tmp/images.tar" "${refs[@]}"
log "${#refs[@]} images built in $((SECONDS - t0))s"

# Imported into the rootfs' containerd store by the same containerd, run only for this (no CRI,
# its own socket and state), as kind's own node-image build does (pinned, not unpacked).
mkdir -p "$tmp/ctrd"
cat > "$tmp/ctrd/config.toml" <<EOF
version = 3
root = "$root/var/lib/containerd"
state = "$tmp/ctrd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.nri.v1.nri"]
[grpc]
  address = "$tmp/ctrd/sock"
[ttrpc]
  address = "$tmp/ctrd/sock.ttrpc"
EOF
"$cp_bin/containerd" --config "$tmp/ctrd/config.toml" >"$tmp/ctrd/log" 2>&1 &
ctrd_pid=$!
for _ in $(seq 100); do [[ -S "$tmp/ctrd/sock" ]] && break; sleep 0.1; done
"$cp_bin/ctr" --address "$tmp/ctrd/sock" --namespace k8s.io images import \
  --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests "$tmp/images.tar" >/dev/null
"$cp_bin/ctr" --address "$tmp/ctrd/sock" --namespace k8s.io images list --quiet > "$tmp/node-images"
kill "$ctrd_pid"; wait "$ctrd_pid" 2>/dev/null || true; ctrd_pid=""
rm -rf "$tmp/ctrd" "$tmp/images.tar"
podman rmi --force "${refs[@]:0:8}" >/dev/null  # they live in the node's store now

# ------------------------------------------------------------------ kind's node files, adapted
cp -a "$files/usr/local/bin/." "$root/usr/local/bin/"
mkdir -p "$root/kind/bin" "$root/kind/manifests" "$root/LICENSES" "$root/etc/kubernetes/manifests"
cp -a "$files/kind/." "$root/kind/"
cp -a "$files/LICENSES/." "$root/LICENSES/"
cp -a "$files/etc/." "$root/etc/"
chmod 0755 "$root/usr/local/bin/"* "$root/kind/bin/"*
# No CAP_SYS_RESOURCE here: no negative OOM score and no resource limits above the hard ones.
sed -i -e '/^OOMScoreAdjust=/d' -e '/^Limit[A-Z]*=/d' "$root/etc/systemd/system/containerd.service"
sed -i -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' \
  -e "s#sandbox_image = .*#sandbox_image = \"$pause_ref\"#" "$root/etc/containerd/config.toml"
grep -q 'restrict_oom_score_adj = true' "$root/etc/containerd/config.toml"
grep -q "sandbox_image = \"$pause_ref\"" "$root/etc/containerd/config.toml"
# The CNI plugins where containerd looks (Debian installs them in /usr/lib/cni).
mkdir -p "$root/opt/cni"; ln -s /usr/lib/cni "$root/opt/cni/bin"
install -m 0755 "$cp_bin/containerd" "$cp_bin/containerd-shim-runc-v2" "$cp_bin/ctr" "$root/usr/local/bin/"
install -m 0755 "$cp_bin/kubelet" "$cp_bin/kubectl" "$tmp/bin/kubeadm" "$root/usr/bin/"
"$cp_bin/ctr" oci spec \
  | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
  | jq 'del(.process.rlimits)' > "$root/etc/containerd/cri-base.json"
echo "$KUBE_VERSION" > "$root/kind/version"
# The default CNI (templated by kind: .PodSubnet) and StorageClass manifests kind applies.
sed -e "s#@KUBE_ROUTER_IMAGE@#$kube_router_ref#" "$here/manifests/default-cni.yaml" \
  > "$root/kind/manifests/default-cni.yaml"
awk '/^const defaultStorageManifest = `/{on=1; next} on && /^`/{exit} on' "$kind_src/pkg/build/nodeimage/const_storage.go" \
  | sed -e "s#\` + storageProvisionerImage + \`#$local_path_ref#" \
        -e "s#\` + storageHelperImage + \`#$helper_ref#" > "$root/kind/manifests/default-storage.yaml"
grep -q "$local_path_ref" "$root/kind/manifests/default-storage.yaml"
grep -q "$helper_ref" "$root/kind/manifests/default-storage.yaml"
if grep -qF '` +' "$root/kind/manifests/default-storage.yaml"; then log "kind's storage manifest changed"; exit 1; fi
{ echo "# images in this node's containerd (k8s.io), built by localcluster/kind/build.sh:"
  echo "# the Kubernetes ones from $KUBE_VERSION, etcd $ETCD_VERSION, CoreDNS $COREDNS_VERSION,"
  echo "# local-path-provisioner $LOCAL_PATH_VERSION, kube-router $KUBE_ROUTER_VERSION, pause = catatonit"
  cat "$tmp/node-images"; } > "$root/kind/images.txt"
# systemd as kind's base image sets it up.
find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
  "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
  "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >> "$root/etc/systemd/journald.conf"
# kube-router's policy chain ACCEPTs pod traffic in FORWARD before kube-proxy's REJECT of a
# Service without endpoints (cloudnativelabs/kube-router#1453): such a ClusterIP, left
# untranslated, went out of the node by its default route (seen: an HTTP 404 from outside
# for Restate's admin API while Restate was scaled to 0). A routing rule for what pods send
# (in on the CNI bridge, cni0) to the Service range makes it unreachable: the pod gets "no
# route to host" at once. Translated traffic no longer has a Service address when it is
# routed (DNAT comes first), and the node's own processes (not from cni0) are not concerned.
service_subnet="$(sed -n 's/^  serviceSubnet: *//p' "$here/cluster.yaml")"
[[ -n "$service_subnet" ]] || { log "no networking.serviceSubnet in $here/cluster.yaml"; exit 1; }
cat > "$root/etc/systemd/system/service-range-unreachable.service" <<UNIT
[Unit]
Description=Service IPs kube-proxy did not translate do not leave the node
Before=kubelet.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStartPre=-/bin/ip rule del priority 90
ExecStart=/bin/ip rule add priority 90 iif cni0 to $service_subnet unreachable
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service \
  service-range-unreachable.service >/dev/null 2>&1
chroot "$root" systemctl mask systemd-binfmt.service >/dev/null 2>&1
tar -C "$root" -c . | podman import --quiet \
  --change 'ENV container=docker' --change 'STOPSIGNAL SIGRTMIN+3' \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' - "$image" >/dev/null
podman rmi --force "$base_ref" >/dev/null
rm -rf "$root"

echo "$image" > "$tmp/IMAGE"
{ grep -E '^[A-Z_]+=' "$repo/localcluster/tools/versions.env"; echo "KIND_VERSION=$KIND_VERSION"; echo "KEY=$key"; } > "$tmp/VERSIONS"
rm -rf "$dest"; mv "$tmp" "$dest"; trap - EXIT
log "node image $image built in $((SECONDS - start))s"
for old in "$cache/kind"/v*/; do
  old="${old%/}"
  [[ "$old" == "$dest" ]] && continue
  # Not --force: an image a kind node still runs on stays (with its container).
  [[ -f "$old/IMAGE" ]] && podman rmi "$(cat "$old/IMAGE")" >/dev/null 2>&1 || true
  log "removing the earlier build $old"; rm -rf "$old"
done
echo "$dest/bin"
echo "$image"
