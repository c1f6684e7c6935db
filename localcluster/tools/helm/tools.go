//go:build tools

// Package tools pins the helm v4 CLI for ../build.sh.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
