package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/verge-edge/verge/internal/cloud/bootstraptoken"
	"github.com/verge-edge/verge/internal/cloudtest"
	"github.com/verge-edge/verge/internal/containerd/containerdtest"
	"github.com/verge-edge/verge/internal/edge/agent"
	"github.com/verge-edge/verge/internal/edge/config"
	"github.com/verge-edge/verge/internal/edge/identity"
	"github.com/verge-edge/verge/internal/pki"
	edgekube "github.com/verge-edge/verge/internal/protocol/kube"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// edgeNode is a joined node: its configuration, its containerd, and the
// agent while it runs.
type edgeNode struct {
	cfg    config.Edge
	cancel context.CancelFunc
	done   chan error
}

// joinNode joins a fresh node to c and prepares its configuration.
func joinNode(t *testing.T, c *cloudtest.Cloud, ctrd *containerdtest.Node) *edgeNode {
	t.Helper()
	ctx := context.Background()
	name := c.UniqueNode("edge")
	tok, err := bootstraptoken.Create(ctx, c.Kube.CoreV1().Secrets(bootstraptoken.SecretNamespace), pki.Hash(c.CA.Cert), bootstraptoken.Options{TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := identity.Join(ctx, c.Addr, tok, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.NodeName = name
	cfg.Labels = map[string]string{"site": "test"}
	cfg.Cloud.Address = c.Addr
	cfg.DataDir = t.TempDir()
	cfg.OpsAddress = "127.0.0.1:0"
	cfg.Runtime.CRIEndpoint = ctrd.Endpoint()
	cfg.Runtime.CgroupParent = ctrd.Instance.CgroupParent()
	cfg.Runtime.NodeIP = "127.0.0.1"
	cfg.Runtime.ReconcilePeriod = edgekube.Duration{Duration: 2 * time.Second}
	if err := creds.Save(cfg.PKIDir()); err != nil {
		t.Fatal(err)
	}
	n := &edgeNode{cfg: cfg}
	t.Cleanup(n.stop)
	return n
}

func (n *edgeNode) start(t *testing.T) {
	t.Helper()
	a, err := agent.New(n.cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", n.cfg.NodeName))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- a.Start(ctx) }()
}

// stop ends the agent as SIGTERM would; its pods keep running.
func (n *edgeNode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	if err := <-n.done; err != nil {
		panic(fmt.Sprintf("verge-edge stopped with an error: %v", err))
	}
	n.cancel = nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
}

func nodeReady(kube kubernetes.Interface, name string) (bool, string) {
	n, err := kube.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, fmt.Sprintf("Ready=%s (%s)", c.Status, c.Reason)
		}
	}
	return false, "no Ready condition"
}

// tunnelGet asks node's kubelet API for path over its tunnel, as the
// cloud's proxy does for the API server.
func tunnelGet(t *testing.T, c *cloudtest.Cloud, node, path string) string {
	t.Helper()
	var body string
	waitFor(t, 30*time.Second, "an answer through the tunnel", func() (bool, string) {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return c.Tunnels.Dial(ctx, node) },
			DisableKeepAlives: true,
		}}
		resp, err := client.Get("http://" + node + path)
		if err != nil {
			return false, err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, b)
	})
	return body
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// A pod bound to the node runs with its ConfigMap, its status reaches the
// API server, it keeps running through an agent restart while the cloud is
// down, and the node is Ready again, the pod untouched, when the cloud
// comes back.
func TestPodLifecycleAcrossCloudOutage(t *testing.T) {
	reg := containerdtest.StartRegistry(t)
	imgs, err := containerdtest.PushTestImages(reg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctrd := containerdtest.StartNode(t, "agent", reg, imgs.Pause)
	c := cloudtest.Start(t, cloudtest.Options{})
	n := joinNode(t, c, ctrd)
	n.start(t)
	kube := c.Kube
	ctx := context.Background()

	waitFor(t, 30*time.Second, "the node to be Ready", func() (bool, string) { return nodeReady(kube, n.cfg.NodeName) })
	node, err := kube.CoreV1().Nodes().Get(ctx, n.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Labels["site"] != "test" || node.Labels["node-role.kubernetes.io/edge"] != "" {
		t.Errorf("node labels = %v, want the join label and the edge role", node.Labels)
	}
	if node.Status.NodeInfo.ContainerRuntimeVersion == "" || node.Status.Capacity.Cpu().IsZero() {
		t.Errorf("node status lacks runtime version or capacity: %+v", node.Status.NodeInfo)
	}

	ns := c.Namespace
	if _, err := kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data:       map[string]string{"greeting": "hello from the cloud"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.PodSpec{
			NodeName: n.cfg.NodeName,
			Containers: []corev1.Container{{
				Name: "web", Image: imgs.App, Args: []string{"serve", "-addr", ":8080"},
				Env: []corev1.EnvVar{{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "greeting"}}}},
				VolumeMounts: []corev1.VolumeMount{{Name: "settings", MountPath: "/etc/settings"}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
			}},
			Volumes: []corev1.Volume{{Name: "settings", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}},
		},
	}
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var running *corev1.Pod
	waitFor(t, 90*time.Second, "the pod to be Running and Ready with an IP", func() (bool, string) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		running = p
		return p.Status.Phase == corev1.PodRunning && podReady(p) && p.Status.PodIP != "", fmt.Sprintf("phase %s ready %v ip %q %v", p.Status.Phase, podReady(p), p.Status.PodIP, p.Status.ContainerStatuses)
	})
	containerID := running.Status.ContainerStatuses[0].ContainerID

	// kubectl logs reaches the container through the node's tunnel.
	logs := tunnelGet(t, c, n.cfg.NodeName, "/containerLogs/"+ns+"/web/web")
	if !strings.Contains(logs, "serving on :8080") {
		t.Errorf("the container's log through the tunnel = %q", logs)
	}

	// The cloud goes away; the agent restarts while it is gone.
	c.Stop()
	n.stop()
	n.start(t)
	time.Sleep(5 * time.Second) // a few reconcile periods with no cloud
	c = c.Restart(t)
	waitFor(t, 30*time.Second, "the node to be Ready again", func() (bool, string) { return nodeReady(kube, n.cfg.NodeName) })
	p, err := kube.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Status.ContainerStatuses[0]; got.ContainerID != containerID || got.RestartCount != 0 || !podReady(p) {
		t.Errorf("after the outage the pod was disturbed: container %s (was %s), restarts %d, ready %v", got.ContainerID, containerID, got.RestartCount, podReady(p))
	}
	// Nothing changed in the cloud: the resync sends nothing.
	if sent := c.Metric(t, "verge_hub_resync_objects_total", "upsert"); sent != 0 {
		t.Errorf("the reconnect resent %v objects the node already held", sent)
	}

	// Deleting the pod in the cloud removes it at the edge, and the API
	// object goes once the edge confirms.
	if err := kube.CoreV1().Pods(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the pod to be gone from the API server", func() (bool, string) {
		_, err := kube.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		return err != nil, fmt.Sprint(err)
	})
	waitFor(t, 30*time.Second, "the pod's directory removed at the edge", func() (bool, string) {
		_, err := os.Stat(filepath.Join(n.cfg.DataDir, "pods", string(running.UID)))
		return os.IsNotExist(err), fmt.Sprint(err)
	})
}
