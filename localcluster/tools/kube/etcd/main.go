// Command etcd is the stock etcd server (go.etcd.io/etcd/server/v3/etcdmain), in a module
// of its own (go.mod here) at versions.env's ETCD_VERSION, so that the Kubernetes binaries
// keep the dependency versions their release pins.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
