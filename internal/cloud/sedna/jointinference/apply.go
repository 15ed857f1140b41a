package jointinference

import (
	"context"
	"errors"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/cloud/sedna/owned"
)

// apply creates, updates and deletes children until they match desired,
// in the upstream order: cloud worker, its Service, edge worker, HPAs. It
// updates have as it goes, so the status describes what now exists.
func apply(ctx context.Context, s *owned.Set, ji *sednav1.JointInferenceService, have *children, d *Desired) error {
	steps := []func() error{
		func() (err error) {
			have.cloud, err = owned.Ensure(ctx, s, have.cloud, d.Cloud, updateDeployment, ji.Status.CloudWorker != nil)
			return
		},
		func() (err error) {
			have.service, err = owned.Ensure(ctx, s, have.service, d.Service, updateService, ji.Status.CloudWorker != nil)
			return
		},
		func() (err error) {
			have.edge, err = owned.Ensure(ctx, s, have.edge, d.Edge, updateDeployment, ji.Status.EdgeWorker != nil)
			return
		},
		func() (err error) { have.edgeHPA, err = ensureHPA(ctx, s, have.edgeHPA, d.EdgeHPA); return },
		func() (err error) { have.cloudHPA, err = ensureHPA(ctx, s, have.cloudHPA, d.CloudHPA); return },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			if errors.Is(err, owned.ErrParentGone) {
				return nil
			}
			return err
		}
	}
	return nil
}

// ensureHPA is Ensure plus deletion: an HPA removed from the spec goes.
func ensureHPA(ctx context.Context, s *owned.Set, have, want *autoscalingv2.HorizontalPodAutoscaler) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	if want != nil {
		return owned.Ensure(ctx, s, have, want, updateHPA, false)
	}
	if have == nil || !owned.IsControlledBy(have, s.Parent) {
		return have, nil
	}
	deleted, err := s.Delete(ctx, have)
	if err != nil {
		return have, err
	}
	if deleted {
		s.Event(corev1.EventTypeNormal, "Deleted", "deleted HorizontalPodAutoscaler %s: hpa was removed from the spec", have.Name)
	}
	return nil, nil
}

// updateDeployment replaces what the controller owns and keeps the rest:
// the replica count belongs to the HPA or to whoever scaled the worker.
func updateDeployment(live, want *appsv1.Deployment) {
	live.Spec.Template = want.Spec.Template
}

func updateService(live, want *corev1.Service) {
	live.Spec.Selector = want.Spec.Selector
	live.Spec.Ports = want.Spec.Ports
}

func updateHPA(live, want *autoscalingv2.HorizontalPodAutoscaler) {
	live.Spec = want.Spec
}
