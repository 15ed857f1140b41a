// Command etcd is the upstream etcd server, built from the version of
// go.etcd.io/etcd/server/v3 pinned in this module's go.mod so that the control
// plane's storage matches what the pinned Kubernetes release was tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
