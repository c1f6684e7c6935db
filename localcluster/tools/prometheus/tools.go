//go:build tools

// Package tools pins Prometheus (Debian's package is built without Kubernetes service
// discovery), run by the monitoring tests in the local cluster; built by ../build.sh.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)
