package federated

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
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
const ControllerName = "sedna-federatedlearning"

const (
	modelIndex   = "sedna.verge.dev/models"
	datasetIndex = "sedna.verge.dev/datasets"
)

// retryUnwatched is how soon a problem that depends on objects this
// controller does not watch (Secrets, foreign objects holding our names)
// is looked at again.
const retryUnwatched = 15 * time.Second

// Reconciler keeps each FederatedLearningJob's aggregator, Service and
// training workers running until the job finishes, and its status in line
// with them. It keeps no state of its own between reconciles: everything
// it needs is in the job and its pods.
type Reconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads the API server directly: Secrets (not cached) and
	// the job before any pod is created.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Options; the zero value means worker.DefaultOptions().
	Options worker.Options
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// SetupWithManager registers the API types, indexes of jobs by model and
// dataset, and the controller with mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := sednav1.AddToScheme(mgr.GetScheme()); err != nil {
		return err
	}
	if reflect.ValueOf(r.Options).IsZero() {
		r.Options = worker.DefaultOptions()
	}
	if err := r.Options.Validate(); err != nil {
		return fmt.Errorf("federated learning controller: %w", err)
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
	idx := mgr.GetFieldIndexer()
	err := idx.IndexField(context.Background(), &sednav1.FederatedLearningJob{}, modelIndex, func(o client.Object) []string {
		job := o.(*sednav1.FederatedLearningJob)
		names := []string{job.Spec.AggregationWorker.Model.Name}
		if n := job.Spec.PretrainedModel.Name; n != "" {
			names = append(names, n)
		}
		return names
	})
	if err != nil {
		return err
	}
	err = idx.IndexField(context.Background(), &sednav1.FederatedLearningJob{}, datasetIndex, func(o client.Object) []string {
		job := o.(*sednav1.FederatedLearningJob)
		names := make([]string, 0, len(job.Spec.TrainingWorkers))
		for _, tw := range job.Spec.TrainingWorkers {
			names = append(names, tw.Dataset.Name)
		}
		return names
	})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&sednav1.FederatedLearningJob{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.Pod{}).
		Owns(&corev1.Service{}).
		Watches(&sednav1.Model{}, handler.EnqueueRequestsFromMapFunc(r.jobsUsing(modelIndex)),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&sednav1.Dataset{}, handler.EnqueueRequestsFromMapFunc(r.jobsUsing(datasetIndex)),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.Workers}).
		Complete(r)
}

func (r *Reconciler) jobsUsing(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list sednav1.FederatedLearningJobList
		if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}); err != nil {
			logger(ctx).Error("listing jobs by reference", "index", index, "name", o.GetName(), "err", err)
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, j := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: j.Namespace, Name: j.Name}})
		}
		return reqs
	}
}

// Reconcile converges one FederatedLearningJob.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var job sednav1.FederatedLearningJob
	if err := r.Client.Get(ctx, req.NamespacedName, &job); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if job.DeletionTimestamp != nil {
		// The garbage collector removes the pods; replacing them now
		// would create the upstream "ghost instances".
		return ctrl.Result{}, nil
	}
	job.SetGroupVersionKind(gvk)
	set := &owned.Set{
		Client: r.Client,
		Live:   r.APIReader,
		Parent: &job,
		Event: func(typ, reason, format string, args ...any) {
			r.Recorder.Eventf(&job, nil, typ, reason, "Reconcile", format, args...)
		},
	}

	current, stale, err := r.pods(ctx, &job)
	if err != nil {
		return ctrl.Result{}, err
	}
	var problem *worker.Problem
	var applyErr error
	desired, err := r.desired(ctx, &job)
	switch {
	case errors.As(err, &problem):
		// Pods already running keep running; new ones wait for a fix.
	case err != nil:
		return ctrl.Result{}, err
	case len(stale) > 0:
		// An edit restarts the job: the previous run stops completely
		// before the new one starts, so no worker of the old spec ever
		// talks to one of the new.
		applyErr = r.stop(ctx, set, &job, stale)
	case !Done(&job, Observed{Pods: current}):
		applyErr = r.run(ctx, set, &job, desired, current)
	}
	if set.Gone() {
		return ctrl.Result{}, nil
	}
	switch {
	case errors.As(applyErr, &problem):
		applyErr = nil
	case applyErr != nil && !apierrors.IsConflict(applyErr) && !apierrors.IsAlreadyExists(applyErr):
		problem = worker.Problemf("ApplyFailed", "%v", applyErr)
	}

	obs := Observed{Pods: current, Stale: len(stale)}
	if err := r.writeStatus(ctx, &job, problem, obs); err != nil {
		return ctrl.Result{}, errors.Join(applyErr, err)
	}
	if applyErr != nil {
		return ctrl.Result{}, applyErr
	}
	if problem != nil && (problem.Reason == worker.ReasonCredentialNotFound || problem.Reason == worker.ReasonNameConflict) {
		return ctrl.Result{RequeueAfter: retryUnwatched}, nil
	}
	return ctrl.Result{}, nil
}

// pods lists the job's pods from the cache, split into those of the
// current generation (by name) and those of older ones.
func (r *Reconciler) pods(ctx context.Context, job *sednav1.FederatedLearningJob) (map[string]*corev1.Pod, []*corev1.Pod, error) {
	var list corev1.PodList
	sel := worker.Labels(Kind, job.Name, string(job.UID), "")
	if err := r.Client.List(ctx, &list, client.InNamespace(job.Namespace), client.MatchingLabels(sel)); err != nil {
		return nil, nil, err
	}
	gen := strconv.FormatInt(job.Generation, 10)
	current := map[string]*corev1.Pod{}
	var stale []*corev1.Pod
	for i := range list.Items {
		p := &list.Items[i]
		if !owned.IsControlledBy(p, job) {
			continue
		}
		if p.Labels[GenerationLabel] == gen {
			current[p.Name] = p
		} else {
			stale = append(stale, p)
		}
	}
	return current, stale, nil
}

// stop deletes the pods of a previous generation.
func (r *Reconciler) stop(ctx context.Context, set *owned.Set, job *sednav1.FederatedLearningJob, stale []*corev1.Pod) error {
	var names []string
	for _, p := range stale {
		if p.DeletionTimestamp != nil {
			continue
		}
		deleted, err := set.Delete(ctx, p)
		if err != nil {
			return err
		}
		if deleted {
			names = append(names, p.Name)
		}
	}
	if len(names) > 0 {
		sort.Strings(names)
		set.Event(corev1.EventTypeNormal, "Restarting", "the spec changed (generation %d): stopping %s", job.Generation, strings.Join(names, ", "))
	}
	return nil
}

// run makes sure the Service and every pod of the current generation
// exist. Pods are never updated in place: a changed spec is a new
// generation, handled by stop.
func (r *Reconciler) run(ctx context.Context, set *owned.Set, job *sednav1.FederatedLearningJob, d *Desired, current map[string]*corev1.Pod) error {
	var svc corev1.Service
	var have *corev1.Service
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: d.Service.Name}, &svc)
	switch {
	case err == nil:
		have = &svc
	case !apierrors.IsNotFound(err):
		return err
	}
	existed := job.Status.StartTime != nil && job.Status.ObservedGeneration == job.Generation
	if _, err := owned.Ensure(ctx, set, have, d.Service, func(live, want *corev1.Service) {
		live.Spec.Selector, live.Spec.Ports = want.Spec.Selector, want.Spec.Ports
	}, existed); err != nil {
		return err
	}

	var created, recreated []string
	for _, want := range d.Pods() {
		if _, ok := current[want.Name]; ok {
			// Present, possibly still terminating after an accidental
			// deletion: a replacement waits for the name to be free,
			// so a worker never runs twice.
			continue
		}
		if err := set.Create(ctx, want); err != nil {
			if errors.Is(err, owned.ErrParentGone) {
				return nil
			}
			return err
		}
		current[want.Name] = want
		if existed {
			recreated = append(recreated, want.Name)
		} else {
			created = append(created, want.Name)
		}
	}
	if len(created) > 0 {
		set.Event(corev1.EventTypeNormal, "Created", "created pods %s", strings.Join(created, ", "))
	}
	if len(recreated) > 0 {
		set.Event(corev1.EventTypeWarning, "Recreated", "pods %s were missing and have been recreated", strings.Join(recreated, ", "))
	}
	return nil
}

// desired resolves the referenced Models, Datasets and credentials and
// builds the job's objects.
func (r *Reconciler) desired(ctx context.Context, job *sednav1.FederatedLearningJob) (*Desired, error) {
	var in Resolved
	var err error
	if in.Model, in.ModelCredential, err = r.model(ctx, job, "aggregationWorker.model", job.Spec.AggregationWorker.Model.Name); err != nil {
		return nil, err
	}
	if n := job.Spec.PretrainedModel.Name; n != "" {
		if in.Pretrained, in.PretrainedCredential, err = r.model(ctx, job, "pretrainedModel", n); err != nil {
			return nil, err
		}
	}
	for i, tw := range job.Spec.TrainingWorkers {
		var ds sednav1.Dataset
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: tw.Dataset.Name}, &ds)
		if apierrors.IsNotFound(err) {
			return nil, worker.Problemf(worker.ReasonDatasetNotFound, "trainingWorkers[%d].dataset: Dataset %q not found in namespace %s; create it or fix the name", i, tw.Dataset.Name, job.Namespace)
		}
		if err != nil {
			return nil, err
		}
		cred, err := r.credential(ctx, job, fmt.Sprintf("Dataset %q", ds.Name), ds.Spec.CredentialName)
		if err != nil {
			return nil, err
		}
		in.Datasets = append(in.Datasets, &ds)
		in.DatasetCredentials = append(in.DatasetCredentials, cred)
	}
	if t := job.Spec.Transmitter.S3; t != nil {
		if in.TransmitterCred, err = r.credential(ctx, job, "transmitter.s3", t.CredentialName); err != nil {
			return nil, err
		}
	}
	return Build(job, in, r.Options)
}

func (r *Reconciler) model(ctx context.Context, job *sednav1.FederatedLearningJob, field, name string) (*sednav1.Model, *worker.Credential, error) {
	var m sednav1.Model
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: name}, &m)
	if apierrors.IsNotFound(err) {
		return nil, nil, worker.Problemf(worker.ReasonModelNotFound, "%s: Model %q not found in namespace %s; create it or fix the name", field, name, job.Namespace)
	}
	if err != nil {
		return nil, nil, err
	}
	cred, err := r.credential(ctx, job, fmt.Sprintf("Model %q", name), m.Spec.CredentialName)
	return &m, cred, err
}

// credential reads a credential Secret directly from the API server, so
// that Secrets never sit in this process's cache.
func (r *Reconciler) credential(ctx context.Context, job *sednav1.FederatedLearningJob, what, name string) (*worker.Credential, error) {
	if name == "" {
		return nil, nil
	}
	var s corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		return nil, worker.Problemf(worker.ReasonCredentialNotFound, "%s: credential Secret %q not found in namespace %s", what, name, job.Namespace)
	}
	if err != nil {
		return nil, err
	}
	c := worker.CredentialFromSecret(&s)
	return &c, nil
}

func (r *Reconciler) writeStatus(ctx context.Context, job *sednav1.FederatedLearningJob, problem *worker.Problem, obs Observed) error {
	orig := job.DeepCopy()
	next := ComputeStatus(job, problem, obs, metav1.NewTime(r.Now()))
	if reflect.DeepEqual(next, job.Status) {
		return nil
	}
	job.Status = next
	if err := r.Client.Status().Patch(ctx, job, client.MergeFrom(orig)); err != nil {
		return client.IgnoreNotFound(err)
	}
	before, after := PhaseCondition(orig.Status), PhaseCondition(next)
	if orig.Status.Phase != next.Phase || before.Reason != after.Reason {
		typ := corev1.EventTypeNormal
		if next.Phase == sednav1.FLJobFailed {
			typ = corev1.EventTypeWarning
		}
		msg := after.Message
		if msg == "" {
			msg = "job is " + string(next.Phase)
		}
		r.Recorder.Eventf(job, nil, typ, after.Reason, "Reconcile", "%s", msg)
	}
	return nil
}

func logger(ctx context.Context) *slog.Logger {
	return slog.New(logr.ToSlogHandler(logf.FromContext(ctx)))
}
