package podruntime

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestNodeOwnedDiffers(t *testing.T) {
	ours := &corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
	}}
	withConds := func(phase corev1.PodPhase, conds ...corev1.PodCondition) *corev1.PodStatus {
		return &corev1.PodStatus{Phase: phase, Conditions: conds}
	}
	ready := corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}
	cready := corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}
	for _, tc := range []struct {
		name string
		api  *corev1.PodStatus
		want bool
	}{
		{"same", withConds(corev1.PodRunning, cready, ready), false},
		{"another controller's condition only", withConds(corev1.PodRunning, ready, cready, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}), false},
		{"marked not ready by the node lifecycle controller", withConds(corev1.PodRunning, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse}, cready), true},
		{"phase changed", withConds(corev1.PodFailed, ready, cready), true},
		{"condition missing", withConds(corev1.PodRunning, ready), true},
	} {
		if got := nodeOwnedDiffers(tc.api, ours); got != tc.want {
			t.Errorf("%s: nodeOwnedDiffers = %v, want %v", tc.name, got, tc.want)
		}
	}
}
