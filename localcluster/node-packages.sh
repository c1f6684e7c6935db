#!/usr/bin/env bash
# Installs, from Debian's packages, what the local real node and the image builds need:
# podman (and buildah) with runc, the CNI plugins, iptables and ipset (kube-router's policy
# enforcement), mmdebstrap (the base image where no registry is reachable), catatonit (the
# pause image). containerd is not among them: Kubernetes 1.36+ needs containerd 2.x, built from
# its Go module by localcluster/tools/build.sh (Debian bookworm has 1.6).
# Versions are those of the machine's Debian release (bookworm: runc 1.1, podman 4.3).
# Only what is missing, and nothing the machine has is replaced or removed: a need met by a
# package that provides it (Docker's containerd.io provides runc) is used as it is
# (scripts/apt-install-missing.sh). Where the node's packages cannot be installed here (not
# root, not Debian, or only by removing something), it prints "node packages: skipped: REASON"
# and exits 0: the local node tier is skipped, the rest of `make test` goes on.
#
# Usage: localcluster/node-packages.sh [--plan [--root DIR]]   (--plan: print what it would do)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rc=0
"$here/../scripts/apt-install-missing.sh" --label "node packages" "$@" \
  podman buildah runc containernetworking-plugins iptables ipset mmdebstrap \
  catatonit uidmap conntrack iproute2 || rc=$?
((rc == 3)) && exit 0
exit "$rc"
