package worker

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

// ParentAlive reads obj afresh from the API server (not from a cache) and
// reports whether it still exists with the same UID and is not being
// deleted. Controllers call it before creating any child, so that a child
// deleted by the garbage collector is never created again for a parent
// that is already gone (upstream Sedna issue #466).
func ParentAlive(ctx context.Context, live client.Reader, obj client.Object) (bool, error) {
	cur, ok := obj.DeepCopyObject().(client.Object)
	if !ok {
		return false, nil
	}
	err := live.Get(ctx, client.ObjectKeyFromObject(obj), cur)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return cur.GetUID() == obj.GetUID() && cur.GetDeletionTimestamp() == nil, nil
}

// IsControlledBy reports whether obj's controller reference names owner.
func IsControlledBy(obj, owner metav1.Object) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == owner.GetUID()
}
