// Package fleetsim simulates a fleet of edge nodes in one process, for
// benchmarks: each simulated node runs the real hub client and speaks the
// real protocol to a real verge-cloud, but keeps its objects in a SimStore
// (memory) and "runs" pods by reporting them Running at once (SimRuntime).
// It is a load generator and measuring tool, not a test double for the
// end-to-end suite, which runs real verge-edge on real containerd.
package fleetsim
