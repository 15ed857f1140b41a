package hub_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/verge-edge/verge/internal/cloudtest"
	"github.com/verge-edge/verge/internal/fleetsim"
	"github.com/verge-edge/verge/internal/protocol/wire"
	"github.com/verge-edge/verge/internal/testenv"
)

// balancer is a TCP load balancer with one backend at a time: switching
// drops the open connections, as a failed-over address does.
type balancer struct {
	l       net.Listener
	mu      sync.Mutex
	backend string
	conns   []net.Conn
}

func startBalancer(t *testing.T, backend string) *balancer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{l: l, backend: backend}
	t.Cleanup(func() { _ = l.Close(); b.switchTo("") })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			target := b.backend
			b.mu.Unlock()
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			b.mu.Lock()
			b.conns = append(b.conns, in, out)
			b.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
			go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
	return b
}

func (b *balancer) switchTo(backend string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backend = backend
	for _, c := range b.conns {
		_ = c.Close()
	}
	b.conns = nil
}

// Two verge-cloud replicas behind one address: a node served by one and
// then the other gets every change, loses nothing it holds, and its
// reports are applied by whichever replica it reaches.
func TestTwoReplicasBehindOneAddress(t *testing.T) {
	r1 := cloudtest.Start(t, cloudtest.Options{})
	r2 := r1.Replica(t)
	lb := startBalancer(t, r1.Addr)
	ns := testenv.Namespace(t)
	ctx := context.Background()
	kube := r1.Kube
	node := r1.UniqueNode("edge-r")

	a, err := kube.CoreV1().Pods(ns).Create(ctx, podOn(node, "a", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := fleetsim.NewSimStore()
	through := *r1
	through.Addr = lb.l.Addr().String()
	startEdge(t, &through, node, store)
	eventually(t, "pod a arrives through replica 1", func() bool { _, ok := store.Object("pods/" + ns + "/a"); return ok })
	eventually(t, "replica 1 serves the node", func() bool { return contains(r1.Hub.Connected(), node) })

	// Fail over to replica 2; meanwhile pod a changes and pod b appears.
	lb.switchTo(r2.Addr)
	a.Labels = map[string]string{"tier": "web"}
	a, err = kube.CoreV1().Pods(ns).Update(ctx, a, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := kube.CoreV1().Pods(ns).Create(ctx, podOn(node, "b", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica 2 serves the node", func() bool { return contains(r2.Hub.Connected(), node) })
	eventually(t, "the node holds pod a's new version and pod b", func() bool {
		oa, okA := store.Object("pods/" + ns + "/a")
		_, okB := store.Object("pods/" + ns + "/b")
		return okA && okB && oa.ResourceVersion == a.ResourceVersion
	})

	// A report sent to replica 2 reaches the API server.
	enqueue(store, wire.ReportPodStatus, "pods/"+ns+"/b", &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b", UID: b.UID},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	})
	eventually(t, "pod b's status applied through replica 2", func() bool {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "b", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning
	})

	// And back: replica 1 resumes with nothing lost or undone.
	if err := kube.CoreV1().Pods(ns).Delete(ctx, "a", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	lb.switchTo(r1.Addr)
	eventually(t, "pod a removed and pod b kept after failing back", func() bool {
		_, okA := store.Object("pods/" + ns + "/a")
		_, okB := store.Object("pods/" + ns + "/b")
		return !okA && okB
	})
}
