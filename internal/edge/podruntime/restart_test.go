package podruntime_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/containerd/containerdtest"
	"github.com/verge-edge/verge/internal/edge/podruntime"
	"github.com/verge-edge/verge/internal/protocol/kube"
)

// webPod serves HTTP on :8080 with a readiness probe.
func webPod(n *node, e *env, name string) *kube.Pod {
	return n.pod(name, kube.Container{
		Name: "web", Image: e.images.App, Args: []string{"serve", "-addr", ":8080"},
		ReadinessProbe: &kube.Probe{ProbeHandler: kube.ProbeHandler{HTTPGet: &kube.HTTPGetAction{Path: "/healthz", Port: kube.FromInt32(8080)}},
			PeriodSeconds: 1},
		LivenessProbe: &kube.Probe{ProbeHandler: kube.ProbeHandler{TCPSocket: &kube.TCPSocketAction{Port: kube.FromInt32(8080)}},
			PeriodSeconds: 1},
	})
}

func ready(st kube.PodStatus) bool {
	return running(st) && condition(st, kube.PodReady) == kube.ConditionTrue
}

func containerIDs(st kube.PodStatus) []string {
	var ids []string
	for _, cs := range st.ContainerStatuses {
		ids = append(ids, cs.ContainerID)
	}
	return ids
}

func get(t *testing.T, ip string) string {
	t.Helper()
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + net(ip) + ":8080/")
	if err != nil {
		t.Fatalf("GET %s: %v", ip, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A restarted verge-edge adopts the running pods: same containers, no
// restarts, and no status churn.
func TestRestartAdoptsRunningPods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "adopt")
	src := newSource()
	cfg := runtimeConfig(t, e, "edge-adopt")
	a := startRuntime(t, cfg, src, newSink())
	p := webPod(a, e, "web")
	a.add(p)
	before := waitStatus(t, a.sink, p.UID, 90*time.Second, "Ready", ready)
	a.stop()

	// As the store would have it after the status reached the cloud.
	stored := src.pod(p.UID)
	stored.Status = before
	src.putPod(stored)

	b := startRuntime(t, cfg, src, newSink())
	c := dialCRI(t, e)
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if st, ok := b.sink.get(p.UID); ok && (!ready(st) || !slices.Equal(containerIDs(st), containerIDs(before))) {
			t.Fatalf("the restarted runtime reported a changed pod: %s (before: %v)", describe(st), containerIDs(before))
		}
		time.Sleep(200 * time.Millisecond)
	}
	ctrs := c.containers(t, p.UID)
	if len(ctrs) != 1 || "containerd://"+ctrs[0].Id != before.ContainerStatuses[0].ContainerID {
		t.Fatalf("containers after the restart: %v, want only %s", ctrs, before.ContainerStatuses[0].ContainerID)
	}

	// A runtime whose store has no status for the pod yet (it never
	// reached the cloud) reports it Running with the same container.
	b.stop()
	fresh := src.pod(p.UID)
	fresh.Status = kube.PodStatus{}
	src.putPod(fresh)
	d := startRuntime(t, cfg, src, newSink())
	st := waitStatus(t, d.sink, p.UID, 30*time.Second, "Ready", ready)
	if !slices.Equal(containerIDs(st), containerIDs(before)) || st.ContainerStatuses[0].RestartCount != 0 {
		t.Fatalf("after restart: %v restarts %d, want %v and 0", containerIDs(st), st.ContainerStatuses[0].RestartCount, containerIDs(before))
	}
}

// containerd dies and comes back: pods keep running. Then a simulated host
// reboot (every container and mount gone, containerd's state wiped) with
// verge-edge restarted and no cloud: the pods come back from the Source.
func TestContainerdRestartAndReboot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "reboot")
	src := newSource()
	cfg := runtimeConfig(t, e, "edge-reboot")
	n := startRuntime(t, cfg, src, newSink())
	p := webPod(n, e, "web")
	p.Spec.Containers[0].ImagePullPolicy = kube.PullAlways
	n.add(p)
	job := n.pod("job", kube.Container{Name: "once", Image: e.images.App, Args: []string{"exit", "0"}})
	job.Spec.RestartPolicy = kube.RestartPolicyOnFailure
	n.add(job)
	before := waitStatus(t, n.sink, p.UID, 90*time.Second, "Ready", ready)
	waitStatus(t, n.sink, job.UID, 60*time.Second, "job Succeeded", func(st kube.PodStatus) bool { return st.Phase == kube.PodSucceeded })

	// containerd is killed; its supervisor restarts it.
	if err := syscall.Kill(e.node.Process().PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if got := get(t, before.PodIP); !strings.Contains(got, "hello") {
		t.Fatalf("pod stopped answering while containerd was down: %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	time.Sleep(1500 * time.Millisecond)
	if err := e.node.Instance.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c := dialCRI(t, e)
	waitFor(t, 20*time.Second, "the web container to be the same one, running", func() (bool, string) {
		ctrs := c.containers(t, p.UID)
		return len(ctrs) == 1 && "containerd://"+ctrs[0].Id == before.ContainerStatuses[0].ContainerID && ctrs[0].State.String() == "CONTAINER_RUNNING",
			fmt.Sprint(ctrs)
	})
	if st, _ := n.sink.get(p.UID); !ready(st) {
		t.Fatalf("after a containerd restart: %s", describe(st))
	}

	// Reboot with no registry (no cloud): everything stops at once; /run
	// (containerd's state) is gone.
	e.reg.Close()
	n.stop()
	e.node.Group.Stop()
	if err := e.node.Instance.CleanupHost(); err != nil {
		t.Fatal(err)
	}
	if err := podruntime.UnmountVolumes(cfg.RootDir); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(e.node.Dir, "state")); err != nil {
		t.Fatal(err)
	}
	e.node.Restart(t)
	stored := src.pod(p.UID)
	stored.Status = before
	src.putPod(stored)
	m := startRuntime(t, cfg, src, newSink())
	after := waitStatus(t, m.sink, p.UID, 90*time.Second, "Ready again after the reboot", func(st kube.PodStatus) bool {
		return ready(st) && st.ContainerStatuses[0].RestartCount >= 1
	})
	if slices.Equal(containerIDs(after), containerIDs(before)) {
		t.Fatalf("the container ID did not change across a reboot")
	}
	if last := after.ContainerStatuses[0].LastTerminationState.Terminated; last == nil {
		t.Fatalf("no lastState for the container that ran before the reboot: %s", describe(after))
	}
	if got := get(t, after.PodIP); !strings.Contains(got, "hello") {
		t.Fatalf("pod answer after reboot: %q", got)
	}
	// imagePullPolicy Always with the registry gone: the copy on the node.
	if !hasEvent(m.sink.eventsFor("web"), "PullFailedUsingLocalImage") {
		t.Fatalf("no PullFailedUsingLocalImage event: %v", m.sink.eventsFor("web"))
	}
	// The completed OnFailure job is not run again.
	time.Sleep(2 * time.Second)
	for _, ctr := range c.containers(t, job.UID) {
		if ctr.State.String() == "CONTAINER_RUNNING" || ctr.Metadata.Attempt > 0 {
			t.Fatalf("the completed job ran again after the reboot: %v", ctr)
		}
	}
}

// Two nodes on one host: each with its own containerd and runtime, the same
// pod name on both; neither touches the other's pods.
func TestTwoRuntimesSideBySide(t *testing.T) {
	t.Parallel()
	e1 := newEnv(t, "side")
	e2 := &env{reg: e1.reg, images: e1.images, node: containerdtest.StartNode(t, "side", e1.reg, e1.images.Pause)}
	n1 := startRuntime(t, runtimeConfig(t, e1, "edge-1"), newSource(), newSink())
	n2 := startRuntime(t, runtimeConfig(t, e2, "edge-2"), newSource(), newSink())
	p1, p2 := webPod(n1, e1, "web"), webPod(n2, e2, "web")
	n1.add(p1)
	n2.add(p2)
	s1 := waitStatus(t, n1.sink, p1.UID, 90*time.Second, "Ready on edge-1", ready)
	s2 := waitStatus(t, n2.sink, p2.UID, 90*time.Second, "Ready on edge-2", ready)
	for _, c := range []struct {
		e  *env
		st kube.PodStatus
	}{{e1, s1}, {e2, s2}} {
		cidr := netip.MustParsePrefix(c.e.node.Instance.Config().PodCIDR)
		if !cidr.Contains(netip.MustParseAddr(c.st.PodIP)) {
			t.Errorf("pod IP %s outside its node's range %s", c.st.PodIP, cidr)
		}
		if !strings.Contains(get(t, c.st.PodIP), "hello") {
			t.Errorf("pod %s does not answer", c.st.PodIP)
		}
	}
	for _, c := range []struct {
		n   *node
		uid string
	}{{n1, string(p1.UID)}, {n2, string(p2.UID)}} {
		if _, err := os.Stat("/sys/fs/cgroup/memory" + c.n.cfg.CgroupParent + "/pod" + c.uid); err != nil {
			t.Errorf("pod cgroup under %s: %v", c.n.cfg.CgroupParent, err)
		}
	}
	// Several reconciles later nothing was recreated on either node, and
	// an idle node syncs about once per reconcile, not in a loop.
	syncsBefore := syncCount(t, n1)
	time.Sleep(2*n1.cfg.ReconcilePeriod + time.Second)
	if syncs := syncCount(t, n1) - syncsBefore; syncs > 10 {
		t.Errorf("an idle node with one pod synced it %d times in %s", syncs, 2*n1.cfg.ReconcilePeriod+time.Second)
	} else {
		t.Logf("idle: %d syncs in %s", syncs, 2*n1.cfg.ReconcilePeriod+time.Second)
	}
	if st, _ := n1.sink.get(p1.UID); !slices.Equal(containerIDs(st), containerIDs(s1)) || !ready(st) {
		t.Fatalf("edge-1's pod changed: %s", describe(st))
	}
	if st, _ := n2.sink.get(p2.UID); !slices.Equal(containerIDs(st), containerIDs(s2)) || !ready(st) {
		t.Fatalf("edge-2's pod changed: %s", describe(st))
	}
}

// syncCount reads how many pod syncs the node's runtime has run.
func syncCount(t *testing.T, n *node) uint64 {
	t.Helper()
	families, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "verge_edge_pod_sync_duration_seconds" {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("no sync duration metric")
	return 0
}
