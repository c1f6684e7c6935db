#!/usr/bin/env bash
# Installs, from Debian's packages, what the local real node and the image builds need:
# podman (and buildah) with runc, containerd with its CRI plugin, the CNI plugins, iptables
# and ipset (kube-router's policy enforcement), mmdebstrap (the base image where no registry is
# reachable), catatonit (the pause image).
# Versions are those of the machine's Debian release (bookworm: containerd 1.6, podman 4.3).
# Idempotent: installs only what is missing.
set -euo pipefail
packages=(podman buildah runc containerd containernetworking-plugins iptables ipset mmdebstrap
  catatonit uidmap conntrack iproute2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "node packages: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # No daemon of these packages (containerd) may start at install: the node runs its own. policy-rc.d says so to Debian's maintainer scripts; ours goes again afterwards.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
