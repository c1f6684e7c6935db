//go:build tools

// Package tools pins local-path-provisioner (the dynamic provisioner kind ships as its
// default StorageClass), built by ../build.sh for the local node.
package tools

import (
	_ "github.com/rancher/local-path-provisioner"
)
