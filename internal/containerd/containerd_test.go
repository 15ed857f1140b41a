package containerd_test

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/containerd"
	"github.com/verge-edge/verge/internal/containerd/containerdtest"
)

func TestConfigValidation(t *testing.T) {
	base := containerd.Config{Name: "edge-1", Dir: "/tmp/vc-x", PodCIDR: "10.88.1.0/24", SandboxImage: "127.0.0.1:5000/pause:1"}
	cases := []struct {
		name   string
		mutate func(*containerd.Config)
		want   string // substring of the error; "" means valid
	}{
		{"valid", func(*containerd.Config) {}, ""},
		{"bad name", func(c *containerd.Config) { c.Name = "Edge_1" }, "name"},
		{"relative dir", func(c *containerd.Config) { c.Dir = "data" }, "absolute"},
		{"long dir", func(c *containerd.Config) { c.Dir = "/tmp/" + strings.Repeat("d", 100) }, "unix socket"},
		{"not a CIDR", func(c *containerd.Config) { c.PodCIDR = "10.88.1.0" }, "not a CIDR"},
		{"host bits", func(c *containerd.Config) { c.PodCIDR = "10.88.1.7/24" }, "did you mean 10.88.1.0/24"},
		{"IPv6", func(c *containerd.Config) { c.PodCIDR = "fd00::/64" }, "IPv4"},
		{"no sandbox image", func(c *containerd.Config) { c.SandboxImage = "" }, "SandboxImage"},
		{"cgroup parent", func(c *containerd.Config) { c.CgroupParent = "verge/x" }, "cgroup parent"},
		{"long bridge", func(c *containerd.Config) { c.BridgeName = "a-very-long-bridge-name" }, "bridge name"},
		{"registry with path", func(c *containerd.Config) { c.Registries = []containerd.Registry{{Host: "r.example/x"}} }, "host[:port]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mutate(&c)
			_, err := containerd.New(c)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestDerivedNames(t *testing.T) {
	inst, err := containerd.New(containerd.Config{Name: "edge-1", Dir: "/tmp/vc-x", PodCIDR: "10.88.1.0/24", SandboxImage: "p"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := inst.Config()
	if cfg.BridgeName != "verge-edge-1" || inst.CgroupParent() != "/verge/edge-1" || inst.NetworkName() != "verge-edge-1" || inst.Endpoint() != "/tmp/vc-x/containerd.sock" {
		t.Fatalf("derived names: bridge %q cgroup %q network %q socket %q", cfg.BridgeName, inst.CgroupParent(), inst.NetworkName(), inst.Endpoint())
	}
	long, err := containerd.New(containerd.Config{Name: "a-rather-long-node-name", Dir: "/tmp/vc-y", PodCIDR: "10.88.2.0/24", SandboxImage: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if b := long.Config().BridgeName; len(b) > 15 || !strings.HasPrefix(b, "vg-") {
		t.Fatalf("long name's bridge %q must fit 15 characters", b)
	}
}

// Two instances on one host: each runs a pod on its own bridge with an IP
// from its own range, and tearing one down leaves the other untouched.
func TestTwoInstancesSideBySide(t *testing.T) {
	reg := containerdtest.StartRegistry(t)
	images, err := containerdtest.PushTestImages(reg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := containerdtest.StartNode(t, "ta", reg, images.Pause)
	b := containerdtest.StartNode(t, "tb", reg, images.Pause)

	ipA := runPod(t, a, images.App)
	ipB := runPod(t, b, images.App)
	for _, c := range []struct {
		node *containerdtest.Node
		ip   string
	}{{a, ipA}, {b, ipB}} {
		cidr := netip.MustParsePrefix(c.node.Instance.Config().PodCIDR)
		if !cidr.Contains(netip.MustParseAddr(c.ip)) {
			t.Errorf("pod IP %s is outside its instance's range %s", c.ip, cidr)
		}
		if _, err := os.Stat("/sys/class/net/" + c.node.Instance.Config().BridgeName); err != nil {
			t.Errorf("bridge %s missing: %v", c.node.Instance.Config().BridgeName, err)
		}
	}

	// Tear b down by hand (as `verge down` would) and check a is intact.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.Instance.RemoveAllPods(ctx); err != nil {
		t.Fatal(err)
	}
	b.Group.Stop()
	if err := b.Instance.CleanupHost(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/sys/class/net/" + b.Instance.Config().BridgeName); err == nil {
		t.Errorf("bridge %s still exists after clean-up", b.Instance.Config().BridgeName)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), b.Dir+"/") {
		t.Errorf("mounts under %s remain after clean-up", b.Dir)
	}
	conn := dial(t, a)
	sbs, err := runtimeapi.NewRuntimeServiceClient(conn).ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(sbs.Items) != 1 || sbs.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("instance a's pod after b's teardown: %v %v", sbs, err)
	}
}

func dial(t *testing.T, n *containerdtest.Node) *grpc.ClientConn {
	conn, err := n.Instance.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// runPod starts a sandbox with one web container through CRI and returns
// the pod IP.
func runPod(t *testing.T, n *containerdtest.Node, image string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn := dial(t, n)
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	img := runtimeapi.NewImageServiceClient(conn)
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "uid-" + n.Instance.Config().Name},
		LogDirectory: n.Dir + "/logs",
		Linux:        &runtimeapi.LinuxPodSandboxConfig{CgroupParent: n.Instance.CgroupParent() + "/podtest"},
	}
	sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	if _, err := img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}}); err != nil {
		t.Fatalf("PullImage: %v", err)
	}
	ctr, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, SandboxConfig: sbCfg, Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "web"},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Args:     []string{"serve"},
		LogPath:  "web.log",
	}})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.PodSandboxId})
	if err != nil {
		t.Fatal(err)
	}
	return st.Status.GetNetwork().GetIp()
}
