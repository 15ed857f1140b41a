package podruntime

import (
	"testing"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

func TestNodeOwnedDiffers(t *testing.T) {
	ours := &kube.PodStatus{Phase: kube.PodRunning, Conditions: []kube.PodCondition{
		{Type: kube.PodReady, Status: kube.ConditionTrue},
		{Type: kube.ContainersReady, Status: kube.ConditionTrue},
	}}
	withConds := func(phase kube.PodPhase, conds ...kube.PodCondition) *kube.PodStatus {
		return &kube.PodStatus{Phase: phase, Conditions: conds}
	}
	ready := kube.PodCondition{Type: kube.PodReady, Status: kube.ConditionTrue}
	cready := kube.PodCondition{Type: kube.ContainersReady, Status: kube.ConditionTrue}
	for _, tc := range []struct {
		name string
		api  *kube.PodStatus
		want bool
	}{
		{"same", withConds(kube.PodRunning, cready, ready), false},
		{"another controller's condition only", withConds(kube.PodRunning, ready, cready, kube.PodCondition{Type: kube.DisruptionTarget, Status: kube.ConditionTrue}), false},
		{"marked not ready by the node lifecycle controller", withConds(kube.PodRunning, kube.PodCondition{Type: kube.PodReady, Status: kube.ConditionFalse}, cready), true},
		{"phase changed", withConds(kube.PodFailed, ready, cready), true},
		{"condition missing", withConds(kube.PodRunning, ready), true},
	} {
		if got := nodeOwnedDiffers(tc.api, ours); got != tc.want {
			t.Errorf("%s: nodeOwnedDiffers = %v, want %v", tc.name, got, tc.want)
		}
	}
}
