package tunnel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"

	"github.com/verge-edge/verge/internal/cloud/tunnel"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The directory lives in an annotation on the Node, written by the replica
// the node connects to and read from the informer by the others.
func TestNodeDirectoryOnTheAPIServer(t *testing.T) {
	kube := testenv.Client(t)
	ctx, cancel := context.WithCancel(t.Context())
	if _, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "relay-dir-node"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kube.CoreV1().Nodes().Delete(context.Background(), "relay-dir-node", metav1.DeleteOptions{})
	})
	factory := informers.NewSharedInformerFactory(kube, 0)
	nodes := factory.Core().V1().Nodes()
	lister := nodes.Lister()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	defer factory.Shutdown()
	defer cancel() // before Shutdown, which waits for the informers

	a := &tunnel.NodeDirectory{Kube: kube, Nodes: lister, Address: "10.1.0.7:10000"}
	b := &tunnel.NodeDirectory{Kube: kube, Nodes: lister, Address: "10.1.0.8:10000"}
	if _, ok := b.Lookup("relay-dir-node"); ok {
		t.Fatal("a node nobody announced has an address")
	}
	for _, d := range []*tunnel.NodeDirectory{a, b, a} {
		if err := d.Announce(ctx, "relay-dir-node"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if addr, ok := b.Lookup("relay-dir-node"); ok && addr == d.Address {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the informer never showed %s", d.Address)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	n, err := kube.CoreV1().Nodes().Get(ctx, "relay-dir-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Annotations[tunnel.PeerAnnotation] != a.Address {
		t.Errorf("annotation %q, want %q", n.Annotations[tunnel.PeerAnnotation], a.Address)
	}
	if err := a.Announce(ctx, "no-such-node"); err == nil || !strings.Contains(err.Error(), "no-such-node") {
		t.Errorf("announcing a node that does not exist: %v", err)
	}
}
