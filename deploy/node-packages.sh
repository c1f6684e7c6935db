#!/usr/bin/env bash
# Installs, from Debian's packages, what the local real node and the image builds need:
# podman (and buildah) with runc, the CNI plugins, iptables and ipset (kube-router's policy
# enforcement), mmdebstrap (the base image where no registry is reachable), catatonit (the
# pause image). containerd is not among them: Kubernetes 1.36+ needs containerd 2.x, built from
# its Go module by tests/controlplane/build.sh (Debian bookworm has 1.6).
# Versions are those of the machine's Debian release (bookworm: runc 1.1, podman 4.3).
# Idempotent: installs only what is missing.
set -euo pipefail
packages=(podman buildah runc containernetworking-plugins iptables ipset mmdebstrap
  catatonit uidmap conntrack iproute2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "node packages: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # No daemon of these packages may start at install: the node runs its own. policy-rc.d says so to Debian's maintainer scripts; ours goes again afterwards.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
