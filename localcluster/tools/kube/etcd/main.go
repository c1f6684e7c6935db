// Command etcd is the stock etcd server (go.etcd.io/etcd/server/v3/etcdmain),
// built at the version the pinned Kubernetes release itself requires.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
