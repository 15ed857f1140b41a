package nodes

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/utils/ptr"

	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestTolerateDisconnect(t *testing.T) {
	s300 := ptr.To[int64](300)
	for _, tc := range []struct {
		name    string
		in      []corev1.Toleration
		changed bool
		want    int // tolerations after
	}{
		{"defaults from admission are made indefinite", []corev1.Toleration{
			{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: s300},
			{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: s300},
		}, true, 2},
		{"missing ones are added", nil, true, 2},
		{"already indefinite", []corev1.Toleration{
			{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
			{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		}, false, 2},
		{"a tolerate-everything toleration covers both", []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, false, 1},
		{"unrelated tolerations are kept", []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, changed := TolerateDisconnect(&corev1.Pod{Spec: corev1.PodSpec{Tolerations: tc.in}})
			if changed != tc.changed || len(out) != tc.want {
				t.Fatalf("changed=%v len=%d, want %v %d: %+v", changed, len(out), tc.changed, tc.want, out)
			}
			for _, tol := range out {
				if (tol.Key == corev1.TaintNodeNotReady || tol.Key == corev1.TaintNodeUnreachable) && tol.TolerationSeconds != nil {
					t.Errorf("%s still limited to %ds", tol.Key, *tol.TolerationSeconds)
				}
			}
		})
	}
}

// On the real API server: pods on edge nodes become immune to link-loss
// eviction; nodes that opt in, and ordinary nodes, are left alone.
func TestEvictionGuard(t *testing.T) {
	cs := testenv.Client(t)
	ns := testenv.Namespace(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory := informers.NewSharedInformerFactory(cs, 0)
	g, err := NewEvictionGuard(cs, factory, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	go func() { _ = g.Start(ctx) }()

	suffix := ns[len(ns)-5:]
	mkNode := func(name string, labels, annotations map[string]string) {
		if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	edge, optIn, plain := "edge-g-"+suffix, "edge-e-"+suffix, "cloud-"+suffix
	mkNode(edge, map[string]string{EdgeRoleLabel: ""}, nil)
	mkNode(optIn, map[string]string{EdgeRoleLabel: ""}, map[string]string{EvictOnDisconnectAnnotation: "true"})
	mkNode(plain, nil, nil)
	for _, n := range []string{edge, optIn, plain} {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: n}, Spec: corev1.PodSpec{NodeName: n, Containers: []corev1.Container{{Name: "c", Image: "x"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	limited := func(name string) bool {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tol := range p.Spec.Tolerations {
			if tol.Key == corev1.TaintNodeUnreachable && tol.TolerationSeconds == nil {
				return false
			}
		}
		return true
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) { return !limited(edge), nil })
	if err != nil {
		t.Fatal("the pod on the edge node still has a limited toleration for link loss")
	}
	time.Sleep(time.Second) // give the guard time to (wrongly) touch the others
	if !limited(optIn) || !limited(plain) {
		t.Fatal("the guard changed a pod on a node that opted in to eviction, or on a non-edge node")
	}
}
