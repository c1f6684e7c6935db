//go:build tools

// Package tools pins Traefik (the local node's ingress controller: Kubernetes Ingress and
// the Gateway API) and the Gateway API module whose CRDs it serves, built by ../build-traefik.sh.
package tools

import (
	_ "github.com/traefik/traefik/v3/cmd/traefik"
	_ "sigs.k8s.io/gateway-api/apis/v1"
)
