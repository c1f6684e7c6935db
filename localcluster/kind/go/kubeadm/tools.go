//go:build tools

// Package tools pins kubeadm (the kind node image) for `go mod tidy`.
package tools

import _ "k8s.io/kubernetes/cmd/kubeadm"
