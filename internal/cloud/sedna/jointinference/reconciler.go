package jointinference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/cloud/sedna/owned"
	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
)

// ControllerName names the controller (metrics, logs, Events).
const ControllerName = "sedna-jointinference"

// modelIndex indexes services by the Models they load.
const modelIndex = "sedna.verge.dev/models"

// retryUnwatched is how soon a problem that depends on objects this
// controller does not watch (Secrets, foreign objects holding our names)
// is looked at again.
const retryUnwatched = 15 * time.Second

// Reconciler keeps each JointInferenceService's Deployments, Service and
// HPAs in line with its spec, and its status in line with them.
type Reconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads the API server directly: Secrets (not cached, to keep
	// them out of memory) and the parent before any child is created.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Options; the zero value means worker.DefaultOptions().
	Options worker.Options
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// SetupWithManager registers the API types, an index of services by
// model, and the controller with mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := sednav1.AddToScheme(mgr.GetScheme()); err != nil {
		return err
	}
	if reflect.ValueOf(r.Options).IsZero() {
		r.Options = worker.DefaultOptions()
	}
	if err := r.Options.Validate(); err != nil {
		return fmt.Errorf("joint inference controller: %w", err)
	}
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(ControllerName)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &sednav1.JointInferenceService{}, modelIndex, func(o client.Object) []string {
		ji := o.(*sednav1.JointInferenceService)
		return []string{ji.Spec.EdgeWorker.Model.Name, ji.Spec.CloudWorker.Model.Name}
	})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		// Status writes (ours, and the workers' metrics) need no reconcile.
		For(&sednav1.JointInferenceService{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Watches(&sednav1.Model{}, handler.EnqueueRequestsFromMapFunc(r.servicesUsing),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.Workers}).
		Complete(r)
}

// servicesUsing maps a Model to the services that load it, so a Model that
// appears (or changes URL) is acted on at once.
func (r *Reconciler) servicesUsing(ctx context.Context, m client.Object) []reconcile.Request {
	var list sednav1.JointInferenceServiceList
	if err := r.Client.List(ctx, &list, client.InNamespace(m.GetNamespace()), client.MatchingFields{modelIndex: m.GetName()}); err != nil {
		logger(ctx).Error("listing services by model", "model", m.GetName(), "err", err)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, ji := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ji.Namespace, Name: ji.Name}})
	}
	return reqs
}

// children are the owned objects as found in the cache.
type children struct {
	edge, cloud       *appsv1.Deployment
	service           *corev1.Service
	edgeHPA, cloudHPA *autoscalingv2.HorizontalPodAutoscaler
}

// Reconcile converges one JointInferenceService.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logger(ctx)
	var ji sednav1.JointInferenceService
	if err := r.Client.Get(ctx, req.NamespacedName, &ji); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ji.DeletionTimestamp != nil {
		// The garbage collector removes the children; creating or
		// updating anything now would race it.
		return ctrl.Result{}, nil
	}
	// The cached object may lack its type; owner references need it.
	ji.SetGroupVersionKind(gvk)

	have, err := r.observe(ctx, &ji)
	if err != nil {
		return ctrl.Result{}, err
	}
	set := &owned.Set{
		Client: r.Client,
		Live:   r.APIReader,
		Parent: &ji,
		Event: func(typ, reason, format string, args ...any) {
			r.Recorder.Eventf(&ji, nil, typ, reason, "Reconcile", format, args...)
		},
	}
	var problem *worker.Problem
	var applyErr error
	desired, err := r.desired(ctx, &ji)
	switch {
	case errors.As(err, &problem):
		// Workers already running keep their last good configuration.
	case err != nil:
		return ctrl.Result{}, err
	default:
		applyErr = apply(ctx, set, &ji, &have, desired)
		if set.Gone() {
			return ctrl.Result{}, nil
		}
		switch {
		case errors.As(applyErr, &problem):
			applyErr = nil
		case applyErr != nil && !apierrors.IsConflict(applyErr) && !apierrors.IsAlreadyExists(applyErr):
			// Persistent API refusals (quota, admission) must be
			// visible; they are retried with backoff.
			problem = worker.Problemf("ApplyFailed", "%v", applyErr)
		}
	}

	if err := r.writeStatus(ctx, &ji, problem, have); err != nil {
		return ctrl.Result{}, errors.Join(applyErr, err)
	}
	if applyErr != nil {
		log.Debug("apply failed; retrying", "err", applyErr)
		return ctrl.Result{}, applyErr
	}
	if problem != nil && (problem.Reason == worker.ReasonCredentialNotFound || problem.Reason == worker.ReasonNameConflict) {
		return ctrl.Result{RequeueAfter: retryUnwatched}, nil
	}
	return ctrl.Result{}, nil
}

// observe reads the owned objects from the cache, by name: an object
// holding one of our names without being ours is found, then reported by
// apply rather than adopted.
func (r *Reconciler) observe(ctx context.Context, ji *sednav1.JointInferenceService) (children, error) {
	var c children
	get := func(name string, obj client.Object) (bool, error) {
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: ji.Namespace, Name: name}, obj)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}
	for _, x := range []struct {
		name string
		obj  client.Object
		dst  func(client.Object)
	}{
		{DeploymentName(ji, Edge), &appsv1.Deployment{}, func(o client.Object) { c.edge = o.(*appsv1.Deployment) }},
		{DeploymentName(ji, Cloud), &appsv1.Deployment{}, func(o client.Object) { c.cloud = o.(*appsv1.Deployment) }},
		{ServiceName(ji), &corev1.Service{}, func(o client.Object) { c.service = o.(*corev1.Service) }},
		{HPAName(ji, Edge), &autoscalingv2.HorizontalPodAutoscaler{}, func(o client.Object) { c.edgeHPA = o.(*autoscalingv2.HorizontalPodAutoscaler) }},
		{HPAName(ji, Cloud), &autoscalingv2.HorizontalPodAutoscaler{}, func(o client.Object) { c.cloudHPA = o.(*autoscalingv2.HorizontalPodAutoscaler) }},
	} {
		ok, err := get(x.name, x.obj)
		if err != nil {
			return c, err
		}
		if ok {
			x.dst(x.obj)
		}
	}
	return c, nil
}

// desired resolves the referenced Models and credentials and builds the
// children.
func (r *Reconciler) desired(ctx context.Context, ji *sednav1.JointInferenceService) (*Desired, error) {
	var in Resolved
	var err error
	if in.EdgeModel, in.EdgeCredential, err = r.model(ctx, ji, "edgeWorker", ji.Spec.EdgeWorker.Model.Name); err != nil {
		return nil, err
	}
	if in.CloudModel, in.CloudCredential, err = r.model(ctx, ji, "cloudWorker", ji.Spec.CloudWorker.Model.Name); err != nil {
		return nil, err
	}
	return Build(ji, in, r.Options)
}

func (r *Reconciler) model(ctx context.Context, ji *sednav1.JointInferenceService, field, name string) (*sednav1.Model, *worker.Credential, error) {
	var m sednav1.Model
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ji.Namespace, Name: name}, &m)
	if apierrors.IsNotFound(err) {
		return nil, nil, worker.Problemf(worker.ReasonModelNotFound, "%s.model: Model %q not found in namespace %s; create it or fix the name", field, name, ji.Namespace)
	}
	if err != nil {
		return nil, nil, err
	}
	if m.Spec.CredentialName == "" {
		return &m, nil, nil
	}
	var s corev1.Secret
	err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: ji.Namespace, Name: m.Spec.CredentialName}, &s)
	if apierrors.IsNotFound(err) {
		return nil, nil, worker.Problemf(worker.ReasonCredentialNotFound, "Model %q: credential Secret %q not found in namespace %s", name, m.Spec.CredentialName, ji.Namespace)
	}
	if err != nil {
		return nil, nil, err
	}
	c := worker.CredentialFromSecret(&s)
	return &m, &c, nil
}

func (r *Reconciler) writeStatus(ctx context.Context, ji *sednav1.JointInferenceService, problem *worker.Problem, have children) error {
	orig := ji.DeepCopy()
	next := ComputeStatus(ji, problem, have.edge, have.cloud, metav1.NewTime(r.Now()))
	if reflect.DeepEqual(next, ji.Status) {
		return nil
	}
	ji.Status = next
	if err := r.Client.Status().Patch(ctx, ji, client.MergeFrom(orig)); err != nil {
		return client.IgnoreNotFound(err)
	}
	if orig.Status.Phase != next.Phase || phaseReason(orig.Status) != phaseReason(next) {
		typ, reason, msg := corev1.EventTypeNormal, phaseReason(next), phaseMessage(next)
		if next.Phase == sednav1.JointInferenceServiceFailed {
			typ = corev1.EventTypeWarning
		}
		if msg == "" {
			msg = "service is " + string(next.Phase)
		}
		r.Recorder.Eventf(ji, nil, typ, reason, "Reconcile", "%s", msg)
	}
	return nil
}

// logger returns the request-scoped logger as slog.
func logger(ctx context.Context) *slog.Logger {
	return slog.New(logr.ToSlogHandler(logf.FromContext(ctx)))
}
