package nodestatus

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

func healthyHost() Host {
	return Host{Hostname: "box", InternalIP: "10.0.0.5", CPUs: 4, MemoryBytes: 1 << 30, MemoryAvail: 600 << 20,
		DiskBytes: 100 << 30, DiskAvail: 50 << 30, PIDMax: 32768, PIDsInUse: 300, KernelVersion: "6.1.0", OSImage: "Debian GNU/Linux 12"}
}

func condition(n *kube.Node, t kube.NodeConditionType) kube.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return kube.NodeCondition{}
}

func TestCompute(t *testing.T) {
	now := time.Unix(1000, 0)
	opts := Options{NodeName: "edge-1", AgentVersion: "v0.1.0", Now: now}
	for _, tc := range []struct {
		name   string
		host   func(*Host)
		rt     Runtime
		status map[kube.NodeConditionType]kube.ConditionStatus
	}{
		{"healthy", nil, Runtime{Version: "containerd://1.6.20", Ready: true},
			map[kube.NodeConditionType]kube.ConditionStatus{kube.NodeReady: kube.ConditionTrue, kube.NodeMemoryPressure: kube.ConditionFalse, kube.NodeDiskPressure: kube.ConditionFalse, kube.NodePIDPressure: kube.ConditionFalse}},
		{"runtime down", nil, Runtime{Ready: false, Reason: "CRI socket unreachable"},
			map[kube.NodeConditionType]kube.ConditionStatus{kube.NodeReady: kube.ConditionFalse}},
		{"low memory", func(h *Host) { h.MemoryAvail = 50 << 20 }, Runtime{Ready: true},
			map[kube.NodeConditionType]kube.ConditionStatus{kube.NodeMemoryPressure: kube.ConditionTrue, kube.NodeReady: kube.ConditionTrue}},
		{"full disk", func(h *Host) { h.DiskAvail = 5 << 30 }, Runtime{Ready: true},
			map[kube.NodeConditionType]kube.ConditionStatus{kube.NodeDiskPressure: kube.ConditionTrue}},
		{"pids exhausted", func(h *Host) { h.PIDsInUse = 32000 }, Runtime{Ready: true},
			map[kube.NodeConditionType]kube.ConditionStatus{kube.NodePIDPressure: kube.ConditionTrue}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := healthyHost()
			if tc.host != nil {
				tc.host(&h)
			}
			n := Compute(h, tc.rt, opts, nil)
			for ct, want := range tc.status {
				if got := condition(n, ct); got.Status != want || got.Reason == "" {
					t.Errorf("%s = %s (%s), want %s", ct, got.Status, got.Reason, want)
				}
			}
			if n.Name != "edge-1" || n.Status.NodeInfo.KubeletVersion != "v0.1.0" || n.Status.NodeInfo.ContainerRuntimeVersion != tc.rt.Version {
				t.Errorf("identity fields: %+v", n.Status.NodeInfo)
			}
		})
	}
	n := Compute(healthyHost(), Runtime{Ready: true}, opts, nil)
	if q := n.Status.Capacity[kube.ResourceCPU]; q.Value() != 4 {
		t.Errorf("cpu capacity %v", q.String())
	}
	alloc, capacity := n.Status.Allocatable[kube.ResourceMemory], n.Status.Capacity[kube.ResourceMemory]
	if capacity.Value()-alloc.Value() != 100<<20 {
		t.Errorf("allocatable memory should keep back the eviction threshold: %s of %s", alloc.String(), capacity.String())
	}
	if len(n.Status.Addresses) != 2 || n.Status.Addresses[0].Address != "10.0.0.5" {
		t.Errorf("addresses %v", n.Status.Addresses)
	}
}

func TestTransitionTimesAndChanged(t *testing.T) {
	t1, t2 := time.Unix(1000, 0), time.Unix(2000, 0)
	a := Compute(healthyHost(), Runtime{Ready: true}, Options{NodeName: "n", Now: t1}, nil)
	b := Compute(healthyHost(), Runtime{Ready: true}, Options{NodeName: "n", Now: t2}, &a.Status)
	if !condition(b, kube.NodeReady).LastTransitionTime.Time.Equal(t1) || !condition(b, kube.NodeReady).LastHeartbeatTime.Time.Equal(t2) {
		t.Error("an unchanged condition keeps its transition time and gets a new heartbeat")
	}
	if Changed(&a.Status, &b.Status) {
		t.Error("only heartbeats differ: not a change")
	}
	c := Compute(healthyHost(), Runtime{Ready: false, Reason: "x"}, Options{NodeName: "n", Now: t2}, &b.Status)
	if !Changed(&b.Status, &c.Status) || !condition(c, kube.NodeReady).LastTransitionTime.Time.Equal(t2) {
		t.Error("Ready going False is a change with a new transition time")
	}
}

func TestLinuxHostReadsThisMachine(t *testing.T) {
	h, err := LinuxHost{DataDir: t.TempDir()}.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.MemoryBytes <= 0 || h.MemoryAvail <= 0 || h.CPUs <= 0 || h.DiskBytes <= 0 || h.PIDMax <= 0 || h.PIDsInUse <= 0 || h.KernelVersion == "" || h.BootID == "" {
		t.Fatalf("incomplete host reading: %+v", h)
	}
}

func TestMeminfoAndOSRelease(t *testing.T) {
	total, avail := parseMeminfo([]byte("MemTotal:       2048 kB\nMemFree:         100 kB\nMemAvailable:    1024 kB\n"))
	if total != 2048*1024 || avail != 1024*1024 {
		t.Fatalf("meminfo: %d %d", total, avail)
	}
	p := filepath.Join(t.TempDir(), "os-release")
	if err := os.WriteFile(p, []byte("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := osImage(p); got != "Debian GNU/Linux 12 (bookworm)" {
		t.Fatalf("os image %q", got)
	}
	if got := osImage("/nonexistent"); got != "Linux" {
		t.Fatalf("fallback %q", got)
	}
}
