// Package nodestatus computes the status an edge node reports for its Node
// object: capacity and allocatable, addresses, nodeInfo, and the conditions
// the kubelet would set (Ready, MemoryPressure, DiskPressure, PIDPressure).
//
// The computation is a pure function of readings (Host, Runtime); the
// readers of /proc, /sys, statfs and CRI live at the edge of the package.
package nodestatus

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// Host is what the node knows about its machine.
type Host struct {
	Hostname      string
	InternalIP    string
	CPUs          int
	MemoryBytes   int64
	MemoryAvail   int64
	DiskBytes     int64 // of the data directory's filesystem
	DiskAvail     int64
	PIDMax        int64
	PIDsInUse     int64
	KernelVersion string
	OSImage       string
	MachineID     string
	SystemUUID    string
	BootID        string
}

// Runtime is the container runtime's state.
type Runtime struct {
	// Version is e.g. "containerd://1.6.20".
	Version string
	// Ready is false when the runtime or its network is not usable;
	// Reason says why.
	Ready  bool
	Reason string
}

// Thresholds for pressure conditions, as the kubelet's default hard
// eviction thresholds.
type Thresholds struct {
	MemoryAvailable   int64   // bytes
	DiskAvailableFrac float64 // fraction of the filesystem
	PIDAvailableFrac  float64
}

// DefaultThresholds are the kubelet's defaults.
var DefaultThresholds = Thresholds{MemoryAvailable: 100 << 20, DiskAvailableFrac: 0.10, PIDAvailableFrac: 0.05}

// Options carry what does not come from the host.
type Options struct {
	NodeName     string
	AgentVersion string
	MaxPods      int64
	Thresholds   Thresholds
	Now          time.Time
}

// Compute returns the Node (name and status) to report. previous, if set,
// keeps condition transition times stable while nothing changes.
func Compute(h Host, rt Runtime, o Options, previous *kube.NodeStatus) *kube.Node {
	if o.MaxPods <= 0 {
		o.MaxPods = 110
	}
	if o.Thresholds == (Thresholds{}) {
		o.Thresholds = DefaultThresholds
	}
	capacity := kube.ResourceList{
		kube.ResourceCPU:              *kube.NewQuantity(int64(h.CPUs), kube.DecimalSI),
		kube.ResourceMemory:           *kube.NewQuantity(h.MemoryBytes, kube.BinarySI),
		kube.ResourcePods:             *kube.NewQuantity(o.MaxPods, kube.DecimalSI),
		kube.ResourceEphemeralStorage: *kube.NewQuantity(h.DiskBytes, kube.BinarySI),
	}
	allocatable := kube.DeepCopy(capacity)
	// What the hard eviction threshold keeps back is not for pods.
	mem := allocatable[kube.ResourceMemory]
	mem.Sub(*kube.NewQuantity(min(o.Thresholds.MemoryAvailable, h.MemoryBytes), kube.BinarySI))
	allocatable[kube.ResourceMemory] = mem

	n := &kube.Node{ObjectMeta: kube.ObjectMeta{Name: o.NodeName}}
	n.Status = kube.NodeStatus{
		Capacity:    capacity,
		Allocatable: allocatable,
		Phase:       kube.NodeRunning,
		NodeInfo: kube.NodeSystemInfo{
			MachineID:               h.MachineID,
			SystemUUID:              h.SystemUUID,
			BootID:                  h.BootID,
			KernelVersion:           h.KernelVersion,
			OSImage:                 h.OSImage,
			ContainerRuntimeVersion: rt.Version,
			KubeletVersion:          o.AgentVersion,
			OperatingSystem:         runtime.GOOS,
			Architecture:            runtime.GOARCH,
		},
	}
	if h.InternalIP != "" {
		n.Status.Addresses = append(n.Status.Addresses, kube.NodeAddress{Type: kube.NodeInternalIP, Address: h.InternalIP})
	}
	if h.Hostname != "" {
		n.Status.Addresses = append(n.Status.Addresses, kube.NodeAddress{Type: kube.NodeHostName, Address: h.Hostname})
	}

	memPressure := h.MemoryAvail < o.Thresholds.MemoryAvailable
	diskPressure := h.DiskBytes > 0 && float64(h.DiskAvail) < o.Thresholds.DiskAvailableFrac*float64(h.DiskBytes)
	pidPressure := h.PIDMax > 0 && float64(h.PIDMax-h.PIDsInUse) < o.Thresholds.PIDAvailableFrac*float64(h.PIDMax)
	ready, reason, message := kube.ConditionTrue, "VergeEdgeReady", "verge-edge is posting ready status"
	if !rt.Ready {
		ready, reason, message = kube.ConditionFalse, "ContainerRuntimeNotReady", "container runtime not ready: "+rt.Reason
	}
	conds := []kube.NodeCondition{
		pressure(kube.NodeMemoryPressure, memPressure, "memory available below "+human(o.Thresholds.MemoryAvailable)),
		pressure(kube.NodeDiskPressure, diskPressure, fmt.Sprintf("less than %.0f%% of the data filesystem free", o.Thresholds.DiskAvailableFrac*100)),
		pressure(kube.NodePIDPressure, pidPressure, fmt.Sprintf("less than %.0f%% of process IDs free", o.Thresholds.PIDAvailableFrac*100)),
		{Type: kube.NodeReady, Status: ready, Reason: reason, Message: message},
	}
	now := kube.NewTime(o.Now)
	for i := range conds {
		conds[i].LastHeartbeatTime = now
		conds[i].LastTransitionTime = now
		if previous != nil {
			for _, p := range previous.Conditions {
				if p.Type == conds[i].Type && p.Status == conds[i].Status {
					conds[i].LastTransitionTime = p.LastTransitionTime
				}
			}
		}
	}
	n.Status.Conditions = conds
	return n
}

func pressure(t kube.NodeConditionType, on bool, why string) kube.NodeCondition {
	if on {
		return kube.NodeCondition{Type: t, Status: kube.ConditionTrue, Reason: "Node" + string(t)[:len(t)-len("Pressure")] + "Pressure", Message: why}
	}
	return kube.NodeCondition{Type: t, Status: kube.ConditionFalse, Reason: "NodeHasSufficient" + string(t)[:len(t)-len("Pressure")], Message: "no " + string(t)}
}

func human(b int64) string { return kube.NewQuantity(b, kube.BinarySI).String() }

// Changed reports whether b differs from a in anything but heartbeat times,
// i.e. whether it is worth reporting before the next periodic refresh.
func Changed(a, b *kube.NodeStatus) bool {
	if a == nil || b == nil {
		return a != b
	}
	ac, bc := kube.DeepCopy(a), kube.DeepCopy(b)
	for _, s := range []*kube.NodeStatus{ac, bc} {
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = kube.Time{}
		}
	}
	return !kube.Equal(ac, bc)
}

// Reader reads the host.
type Reader interface {
	Read(ctx context.Context) (Host, error)
}
