//go:build tools

// Package tools pins the local node's container runtime built by ../build.sh: containerd 2.x
// (with its CRI plugin), its runc shim and the ctr client.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
