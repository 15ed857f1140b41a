package reports_test

import (
	"context"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/verge-edge/verge/internal/cloud/reports"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
	"github.com/verge-edge/verge/internal/protocol/wire"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// noCache makes the applier look pods up live.
type noCache struct{}

func (noCache) Pod(string, string) (*corev1.Pod, bool) { return nil, false }

func report(t *testing.T, kind string, body any) *syncpb.Report {
	t.Helper()
	enc, data, compressed, err := wire.Encode(body)
	if err != nil {
		t.Fatal(err)
	}
	return &syncpb.Report{Kind: kind, Encoding: enc, Data: data, Compressed: compressed}
}

// A pod whose sandbox was recreated reports a new address: the API shows
// that one only (a merge by IP would keep both, which the API refuses), and
// conditions another controller set survive the node's report.
func TestPodStatusReplacesAddresses(t *testing.T) {
	kube := testenv.Client(t)
	ns := testenv.Namespace(t)
	ctx := context.Background()
	pod, err := kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       corev1.PodSpec{NodeName: "edge-a", Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: "example.com/gate", Status: corev1.ConditionTrue}}
	if _, err := kube.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := &reports.Applier{Kube: kube, Pods: noCache{}, Logger: slog.New(slog.DiscardHandler)}
	send := func(node, ip string) (syncpb.Outcome, string) {
		st := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p", UID: pod.UID}, Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, HostIP: "127.0.0.1", HostIPs: []corev1.HostIP{{IP: "127.0.0.1"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		}}
		outcome, msg, _ := a.Apply(ctx, node, report(t, wire.ReportPodStatus, st))
		return outcome, msg
	}
	for _, ip := range []string{"10.1.0.2", "10.1.0.7"} {
		if outcome, msg := send("edge-a", ip); outcome != syncpb.Outcome_OUTCOME_ACCEPTED {
			t.Fatalf("report with IP %s: %v %s", ip, outcome, msg)
		}
	}
	got, err := kube.CoreV1().Pods(ns).Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Status.PodIPs) != 1 || got.Status.PodIPs[0].IP != "10.1.0.7" || got.Status.PodIP != "10.1.0.7" {
		t.Errorf("pod IPs = %v (podIP %s), want just the new one", got.Status.PodIPs, got.Status.PodIP)
	}
	conds := map[corev1.PodConditionType]corev1.ConditionStatus{}
	for _, c := range got.Status.Conditions {
		conds[c.Type] = c.Status
	}
	if conds["example.com/gate"] != corev1.ConditionTrue || conds[corev1.PodReady] != corev1.ConditionTrue {
		t.Errorf("conditions = %v, want the node's Ready and the other controller's gate", got.Status.Conditions)
	}
	// Another node may not write it.
	if outcome, msg := send("edge-b", "10.1.0.9"); outcome != syncpb.Outcome_OUTCOME_REJECTED {
		t.Errorf("a report from another node: %v %s, want it rejected", outcome, msg)
	}
}
