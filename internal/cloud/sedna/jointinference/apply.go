package jointinference

import (
	"context"
	"errors"
	"maps"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
)

// applier converges the children of one service during one reconcile.
type applier struct {
	r    *Reconciler
	ji   *sednav1.JointInferenceService
	have children

	// aliveChecked and parentGone memoise the live parent check.
	aliveChecked bool
	parentGone   bool
}

// errParentGone stops a reconcile whose parent vanished under it.
var errParentGone = errors.New("parent deleted")

// apply creates, updates and deletes children until they match desired,
// in the upstream order: cloud worker, its Service, edge worker, HPAs.
func (a *applier) apply(ctx context.Context, d *Desired) error {
	steps := []func() error{
		func() (err error) {
			a.have.cloud, err = ensure(ctx, a, a.have.cloud, d.Cloud, updateDeployment, a.ji.Status.CloudWorker != nil)
			return
		},
		func() (err error) {
			a.have.service, err = ensure(ctx, a, a.have.service, d.Service, updateService, a.ji.Status.CloudWorker != nil)
			return
		},
		func() (err error) {
			a.have.edge, err = ensure(ctx, a, a.have.edge, d.Edge, updateDeployment, a.ji.Status.EdgeWorker != nil)
			return
		},
		func() (err error) { a.have.edgeHPA, err = ensureHPA(ctx, a, a.have.edgeHPA, d.EdgeHPA); return },
		func() (err error) { a.have.cloudHPA, err = ensureHPA(ctx, a, a.have.cloudHPA, d.CloudHPA); return },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			if errors.Is(err, errParentGone) {
				return nil
			}
			return err
		}
	}
	return nil
}

// mayCreate confirms, once per reconcile and against the API server rather
// than the cache, that the parent still exists and is not being deleted.
func (a *applier) mayCreate(ctx context.Context) error {
	if !a.aliveChecked {
		alive, err := worker.ParentAlive(ctx, a.r.APIReader, a.ji)
		if err != nil {
			return err
		}
		a.aliveChecked, a.parentGone = true, !alive
	}
	if a.parentGone {
		return errParentGone
	}
	return nil
}

// ensure creates want when nothing holds its name, and rewrites the live
// object when its recorded hash differs from want's. Objects holding the
// name without being ours are left alone and reported. existed says the
// object had been seen before, so creating it again is a repair.
func ensure[T client.Object](ctx context.Context, a *applier, have, want T, update func(live, want T), existed bool) (T, error) {
	kind := want.GetObjectKind().GroupVersionKind().Kind
	if isNil(have) {
		if err := a.mayCreate(ctx); err != nil {
			return have, err
		}
		if err := a.r.Client.Create(ctx, want); err != nil {
			return have, classify(err, kind, want.GetName())
		}
		if existed {
			a.event(corev1.EventTypeWarning, "Recreated", "%s %s was missing and has been recreated", kind, want.GetName())
		} else {
			a.event(corev1.EventTypeNormal, "Created", "created %s %s", kind, want.GetName())
		}
		return want, nil
	}
	if !worker.IsControlledBy(have, a.ji) {
		return have, worker.Problemf(worker.ReasonNameConflict, "%s %s exists and is not owned by this JointInferenceService; delete or rename it", kind, want.GetName())
	}
	if have.GetAnnotations()[worker.SpecHashAnnotation] == want.GetAnnotations()[worker.SpecHashAnnotation] {
		return have, nil
	}
	live := have.DeepCopyObject().(T)
	update(live, want)
	if err := a.r.Client.Update(ctx, live); err != nil {
		return have, classify(err, kind, want.GetName())
	}
	a.event(corev1.EventTypeNormal, "Updated", "updated %s %s to the current spec", kind, want.GetName())
	return live, nil
}

// ensureHPA is ensure plus deletion: an HPA removed from the spec goes.
func ensureHPA(ctx context.Context, a *applier, have, want *autoscalingv2.HorizontalPodAutoscaler) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	if want != nil {
		return ensure(ctx, a, have, want, updateHPA, false)
	}
	if have == nil || !worker.IsControlledBy(have, a.ji) {
		return have, nil
	}
	uid := have.UID
	err := a.r.Client.Delete(ctx, have, client.Preconditions{UID: &uid}, client.PropagationPolicy("Background"))
	if err != nil && !apierrors.IsNotFound(err) {
		return have, err
	}
	a.event(corev1.EventTypeNormal, "Deleted", "deleted HorizontalPodAutoscaler %s: hpa was removed from the spec", have.Name)
	return nil, nil
}

// updateDeployment replaces what the controller owns and keeps the rest:
// the replica count belongs to the HPA or to whoever scaled the worker.
func updateDeployment(live, want *appsv1.Deployment) {
	mergeMeta(live, want)
	live.Spec.Template = want.Spec.Template
}

func updateService(live, want *corev1.Service) {
	mergeMeta(live, want)
	live.Spec.Selector = want.Spec.Selector
	live.Spec.Ports = want.Spec.Ports
}

func updateHPA(live, want *autoscalingv2.HorizontalPodAutoscaler) {
	mergeMeta(live, want)
	live.Spec = want.Spec
}

func mergeMeta(live, want client.Object) {
	labels := live.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, want.GetLabels())
	live.SetLabels(labels)
	ann := live.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	maps.Copy(ann, want.GetAnnotations())
	live.SetAnnotations(ann)
}

// classify turns an API refusal of the object itself into a Problem for
// the user; other errors stay errors and are retried.
func classify(err error, kind, name string) error {
	if apierrors.IsInvalid(err) {
		return worker.Problemf(worker.ReasonInvalidTemplate, "the API server rejected %s %s: %v", kind, name, err)
	}
	return err
}

func (a *applier) event(typ, reason, format string, args ...any) {
	a.r.Recorder.Eventf(a.ji, nil, typ, reason, "Reconcile", format, args...)
}

func isNil[T client.Object](o T) bool {
	v := reflect.ValueOf(o)
	return !v.IsValid() || v.Kind() == reflect.Pointer && v.IsNil()
}
