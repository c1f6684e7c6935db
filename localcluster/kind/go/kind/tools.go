//go:build tools

// Package tools pins kind (the e2e-kind cluster tool) for `go mod tidy`.
package tools

import _ "sigs.k8s.io/kind"
