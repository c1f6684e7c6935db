//go:build tools

// Package tools pins kube-router, whose network-policy controller (its firewall part only)
// enforces NetworkPolicies on the local real node; built by ../build.sh.
package tools

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
)
