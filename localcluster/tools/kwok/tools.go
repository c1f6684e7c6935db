//go:build tools

// Package tools pins sigs.k8s.io/kwok (fake nodes and pods) for ../build.sh.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
