//go:build tools

// Package tools pins the command built by ../build.sh from the oldest Kubernetes release the
// chart supports: only its API server, for the chart's render tests (server-side dry-run).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
