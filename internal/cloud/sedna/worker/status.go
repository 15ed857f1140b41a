package worker

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SetExclusiveConditions sets one condition per type in types: the one
// named active is True, the others False, all with the same reason and
// observed generation. It models a phase as conditions, which keeps the
// list bounded by the number of types.
func SetExclusiveConditions(conds *[]metav1.Condition, types []string, active, reason, message string, generation int64, now metav1.Time) {
	for _, t := range types {
		status := metav1.ConditionFalse
		msg := ""
		if t == active {
			status = metav1.ConditionTrue
			msg = message
		}
		meta.SetStatusCondition(conds, metav1.Condition{
			Type:               t,
			Status:             status,
			Reason:             reason,
			Message:            msg,
			ObservedGeneration: generation,
			LastTransitionTime: now,
		})
	}
}
