package hub_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/verge-edge/verge/internal/cloud/nodes"
	"github.com/verge-edge/verge/internal/cloudtest"
	"github.com/verge-edge/verge/internal/edge/hubclient"
	"github.com/verge-edge/verge/internal/fleetsim"
	"github.com/verge-edge/verge/internal/nodecert"
	"github.com/verge-edge/verge/internal/protocol/wire"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// enqueue puts an encoded report into a simulated store's outbox.
func enqueue(s *fleetsim.SimStore, kind, key string, body any) {
	_, data, _, err := wire.Encode(body)
	if err != nil {
		panic(err)
	}
	s.Enqueue(key, kind, data)
}

// edge runs a hub client for node with a certificate from the cloud's CA.
type edge struct {
	client *hubclient.Client
	store  *fleetsim.SimStore
	cancel context.CancelFunc
	done   chan struct{}
}

func startEdge(t *testing.T, c *cloudtest.Cloud, node string, store *fleetsim.SimStore) *edge {
	t.Helper()
	keyPEM, csrPEM, err := nodecert.NewKeyAndCSR(node)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := nodecert.Sign(c.CA, csrPEM, node, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	e := &edge{store: store, done: make(chan struct{})}
	e.client = hubclient.New(hubclient.Config{
		Address:      c.Addr,
		Credentials:  func() (*tls.Config, error) { return nodecert.ClientTLS(c.CA.CertPEM, cert) },
		Store:        store,
		AgentVersion: "test",
		MinBackoff:   50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { defer close(e.done); _ = e.client.Start(ctx) }()
	t.Cleanup(e.stop)
	return e
}

func (e *edge) stop() {
	e.cancel()
	<-e.done
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("timed out waiting until %s", what)
	}
}

func podOn(node, name string, mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "img"}}},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func TestDesiredStateDownAndStatusUp(t *testing.T) {
	c := cloudtest.Start(t, cloudtest.Options{})
	ns := testenv.Namespace(t)
	ctx := context.Background()
	kube := c.Kube
	nodeA, nodeB := c.UniqueNode("edge-a"), c.UniqueNode("edge-b")
	_, err := kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "conf"}, Data: map[string]string{"mode": "fast"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"pw": "s3cret"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web, err := kube.CoreV1().Pods(ns).Create(ctx, podOn(nodeA, "web", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}}}}}
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "pw"}}}}
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := kube.CoreV1().Pods(ns).Create(ctx, podOn(nodeB, "elsewhere", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	store := fleetsim.NewSimStore()
	e := startEdge(t, c, nodeA, store)
	want := func(keys ...string) func() bool {
		return func() bool {
			got := store.Keys()
			for _, k := range keys {
				if !contains(got, k) {
					return false
				}
			}
			return true
		}
	}
	eventually(t, "the pod, its ConfigMap, Secret and token reach the edge",
		want("pods/"+ns+"/web", "configmaps/"+ns+"/conf", "secrets/"+ns+"/creds", "configmaps/"+ns+"/kube-root-ca.crt"))
	eventually(t, "the service-account token is minted", func() bool {
		for _, k := range store.Keys() {
			if strings.HasPrefix(k, "serviceaccounttokens/"+ns+"/web.") {
				return true
			}
		}
		return false
	})
	if contains(store.Keys(), "pods/"+ns+"/elsewhere") {
		t.Fatal("a pod bound to another node reached " + nodeA)
	}
	eventually(t, "the client reports the resync done", e.client.Synced)

	// The Node object (with the edge role) and its Lease appear.
	eventually(t, "the Node is registered with the edge role and has a Lease", func() bool {
		node, err := kube.CoreV1().Nodes().Get(ctx, nodeA, metav1.GetOptions{})
		if err != nil {
			return false
		}
		if _, edge := node.Labels[nodes.EdgeRoleLabel]; !edge {
			return false
		}
		_, err = kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, nodeA, metav1.GetOptions{})
		return err == nil
	})

	// Status up: our pod's status is applied and the report removed.
	status := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", UID: web.UID}, Status: corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: "10.88.0.7", PodIPs: []corev1.PodIP{{IP: "10.88.0.7"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
	}}
	enqueue(store, wire.ReportPodStatus, "pods/"+ns+"/web", status)
	// …and a forged report about another node's pod is refused.
	forged := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "elsewhere", UID: other.UID}, Status: corev1.PodStatus{Phase: corev1.PodFailed}}
	enqueue(store, wire.ReportPodStatus, "pods/"+ns+"/elsewhere", forged)
	e.client.Kick()
	eventually(t, "the pod status is applied", func() bool {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP == "10.88.0.7"
	})
	eventually(t, "both reports leave the outbox", func() bool { return store.OutboxLen() == 0 })
	if p, _ := kube.CoreV1().Pods(ns).Get(ctx, "elsewhere", metav1.GetOptions{}); p.Status.Phase == corev1.PodFailed {
		t.Fatal("a node wrote the status of a pod bound to another node")
	}
	if n := c.Metric(t, "verge_hub_reports_total", "podstatus", "OUTCOME_REJECTED"); n != 1 {
		t.Errorf("rejected reports = %v, want 1", n)
	}

	// Live changes flow: a ConfigMap edit arrives.
	cm, _ := kube.CoreV1().ConfigMaps(ns).Get(ctx, "conf", metav1.GetOptions{})
	cm.Data["mode"] = "slow"
	cm, err = kube.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ConfigMap edit reaches the edge", func() bool {
		v, ok, _ := store.Version(ctx, "configmaps/"+ns+"/conf")
		return ok && v.ResourceVersion == cm.ResourceVersion
	})
	var decoded corev1.ConfigMap
	stored, _ := store.Object("configmaps/" + ns + "/conf")
	raw := stored.Data
	if err := wire.Decode(wire.EncodingFor("configmaps/x/y"), raw, false, &decoded); err != nil || decoded.Data["mode"] != "slow" {
		t.Fatalf("stored ConfigMap does not decode to the edit: %v %v", decoded.Data, err)
	}
}

// While a node is away the cloud changes; on reconnect only the
// differences cross.
func TestReconnectSendsOnlyDifferences(t *testing.T) {
	c := cloudtest.Start(t, cloudtest.Options{})
	ns := testenv.Namespace(t)
	ctx := context.Background()
	kube := c.Kube
	node := c.UniqueNode("edge-r")
	for i := range 5 {
		if _, err := kube.CoreV1().Pods(ns).Create(ctx, podOn(node, fmt.Sprintf("p%d", i), nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	store := fleetsim.NewSimStore()
	e := startEdge(t, c, node, store)
	eventually(t, "five pods and their tokens arrive", func() bool {
		return countPrefix(store.Keys(), "pods/") == 5 && countPrefix(store.Keys(), "serviceaccounttokens/") == 5
	})
	eventually(t, "synced", e.client.Synced)
	resyncBefore := c.Metric(t, "verge_hub_resync_objects_total", "upsert") + c.Metric(t, "verge_hub_resync_objects_total", "delete")
	e.stop()

	// While away: one pod deleted, one added; the rest unchanged.
	if err := kube.CoreV1().Pods(ns).Delete(ctx, "p0", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, podOn(node, "p9", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e = startEdge(t, c, node, store)
	eventually(t, "the edge converges", func() bool {
		k := store.Keys()
		return !contains(k, "pods/"+ns+"/p0") && contains(k, "pods/"+ns+"/p9") && countPrefix(k, "pods/") == 5
	})
	eventually(t, "synced again", e.client.Synced)
	resync := c.Metric(t, "verge_hub_resync_objects_total", "upsert") + c.Metric(t, "verge_hub_resync_objects_total", "delete") - resyncBefore
	// Exactly the differences: p9 arrives, p0 and its token go. Tokens the
	// node holds are kept (not deleted and re-minted), and p9's token comes
	// as a live change once minted.
	if resync != 3 {
		t.Fatalf("resync carried %v objects, want exactly the 3 differences", resync)
	}
}

// A second connection for the same node replaces the first.
func TestSecondConnectionReplacesFirst(t *testing.T) {
	c := cloudtest.Start(t, cloudtest.Options{})
	node := c.UniqueNode("edge-dup")
	first := startEdge(t, c, node, fleetsim.NewSimStore())
	eventually(t, "first connects", first.client.Connected)
	second := startEdge(t, c, node, fleetsim.NewSimStore())
	eventually(t, "second connects", second.client.Connected)
	eventually(t, "the first session was replaced", func() bool {
		return c.Metric(t, "verge_hub_sessions_total", "replaced") >= 1
	})
	if got := c.Hub.Connected(); len(got) != 1 || got[0] != node {
		t.Fatalf("sessions: %v", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func countPrefix(list []string, prefix string) int {
	n := 0
	for _, x := range list {
		if strings.HasPrefix(x, prefix) {
			n++
		}
	}
	return n
}
