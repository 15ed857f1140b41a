// Package containerd runs a private containerd instance for one edge node:
// its own root, state, socket, runc root, CNI network (bridge, pod CIDR,
// IPAM store), registry hosts configuration and sandbox image, so that
// several instances (`verge up --edge-nodes N`, tests) share one host
// without touching each other or a system containerd.
//
// The package owns the files under Config.Dir and the host objects named
// after the instance (the bridge, iptables rules whose CNI comment names the
// instance's network, mounts under Dir, cgroups under CgroupParent). It
// never touches anything else: not /etc/containerd, not /etc/cni, not other
// instances' bridges or chains.
//
// Life cycle:
//
//	inst, err := containerd.New(cfg) // validates, derives names and paths
//	inst.Prepare()                    // writes config.toml, CNI and hosts.toml
//	group.Start(inst.Spec(logPath))   // a supervisor keeps containerd running
//	inst.WaitReady(ctx)               // CRI answers RuntimeReady and NetworkReady
//	...
//	inst.RemoveAllPods(ctx)           // while containerd runs: CRI stop+remove
//	group.Stop()
//	inst.CleanupHost()                // after it stopped: leftovers of a crash
//
// Containers survive a containerd restart (their shims run in their own
// process groups), which is what the edge pod runtime relies on to keep pods
// running while containerd or verge-edge restart.
package containerd
