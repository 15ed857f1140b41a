package federated_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/cloud/sedna/federated"
	"github.com/verge-edge/verge/internal/cloud/sedna/sednatest"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) {
	logf.SetLogger(logr.Discard())
	testenv.Main(m)
}

const (
	upstreamFL = "examples/sedna/upstream/federated-surface-defect.yaml"
	vergeFL    = "examples/sedna/federated-fmnist.yaml"
	sdd        = "surface-defect-detection"
	waitFor    = 30 * time.Second
)

func start(t *testing.T) *sednatest.Env {
	return sednatest.Start(t, func(mgr ctrl.Manager) error {
		return (&federated.Reconciler{}).SetupWithManager(mgr)
	})
}

// nodes creates the Node objects the upstream example binds pods to, so
// that the pod garbage collector does not remove the pods as orphans. No
// kubelet runs for them: a pod bound to one stays Terminating after
// deletion until the test force-deletes it, as if its kubelet were slow.
var nodes sync.Once

func createNodes(t *testing.T, e *sednatest.Env) {
	nodes.Do(func() {
		for _, n := range []string{"cloud-node", "edge1", "edge2", "edge-0", "edge-1", "edge-2"} {
			err := e.Client.Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
	})
}

// jobPods lists the job's pods by name: live ones and terminating ones.
func jobPods(e *sednatest.Env, job string) (live, terminating map[string]corev1.Pod, err error) {
	var list corev1.PodList
	err = e.Client.List(context.Background(), &list, client.InNamespace(e.NS), client.MatchingLabels{"federatedlearningjob.sedna.io/name": job})
	live, terminating = map[string]corev1.Pod{}, map[string]corev1.Pod{}
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			terminating[p.Name] = p
		} else {
			live[p.Name] = p
		}
	}
	return live, terminating, err
}

func names(m map[string]corev1.Pod) string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func env(p corev1.Pod) map[string]string {
	m := map[string]string{}
	for _, e := range p.Spec.Containers[0].Env {
		m[e.Name] = e.Value
	}
	return m
}

func forceDelete(t *testing.T, e *sednatest.Env, p corev1.Pod) {
	t.Helper()
	err := e.Client.Delete(context.Background(), &p, client.GracePeriodSeconds(0))
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

// The upstream example gets its aggregator, Service and trainers; a pod
// deleted by accident comes back; deleting the job while its pods are
// still terminating creates no new pod, then or later (upstream #466).
func TestUpstreamJobLifecycle(t *testing.T) {
	t.Parallel()
	e := start(t)
	createNodes(t, e)
	ctx := context.Background()
	e.CreateManifest(t, sednatest.RepoFile(t, upstreamFL))

	var job sednav1.FederatedLearningJob
	var live map[string]corev1.Pod
	want := sdd + "-aggregation," + sdd + "-train-0," + sdd + "-train-1"
	sednatest.Eventually(t, waitFor, "aggregator and trainers", func() error {
		var err error
		if live, _, err = jobPods(e, sdd); err != nil {
			return err
		}
		if names(live) != want {
			return fmt.Errorf("pods %s", names(live))
		}
		return nil
	})
	if err := e.Get(sdd, &job); err != nil {
		t.Fatal(err)
	}
	var svc corev1.Service
	if err := e.Get(sdd+"-aggregation", &svc); err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Ports[0].Port != 7363 || metav1.GetControllerOf(&svc).UID != job.UID {
		t.Errorf("service %+v", svc)
	}
	for _, p := range live {
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != job.UID || ref.Kind != "FederatedLearningJob" {
			t.Errorf("%s owner %+v", p.Name, ref)
		}
	}
	trainer := live[sdd+"-train-1"]
	for k, v := range map[string]string{
		"AGG_IP":             sdd + "-aggregation." + e.NS,
		"AGG_PORT":           "7363",
		"PARTICIPANTS_COUNT": "2",
		"TRAIN_DATASET_URL":  "/home/data/data/2.txt",
		"MODEL_URL":          "/home/data/model",
		"DATASET_NAME":       "edge2-surface-defect-detection-dataset",
		"batch_size":         "32",
	} {
		if env(trainer)[k] != v {
			t.Errorf("trainer %s=%q, want %q", k, env(trainer)[k], v)
		}
	}
	if trainer.Spec.NodeName != "edge2" || live[sdd+"-aggregation"].Spec.NodeName != "cloud-node" {
		t.Errorf("placement: trainer on %q", trainer.Spec.NodeName)
	}
	if env(live[sdd+"-aggregation"])["exit_round"] != "3" {
		t.Error("the aggregator lost the user's environment")
	}
	sednatest.Eventually(t, waitFor, "Pending status", func() error {
		if err := e.Get(sdd, &job); err != nil {
			return err
		}
		if job.Status.Phase != sednav1.FLJobPending || job.Status.Active != 3 || job.Status.ObservedGeneration != job.Generation || job.Status.StartTime == nil {
			return fmt.Errorf("status %+v", job.Status)
		}
		return nil
	})

	// A trainer deleted by accident: once its kubelet (here, the test)
	// lets it go, it is replaced under the same name.
	old := live[sdd+"-train-0"]
	if err := e.Client.Delete(ctx, &old); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if l, term, err := jobPods(e, sdd); err != nil || len(l) != 2 || len(term) != 1 {
		t.Fatalf("while the deleted trainer terminates, no replacement may run next to it: live %s, terminating %s (%v)", names(l), names(term), err)
	}
	forceDelete(t, e, old)
	sednatest.Eventually(t, waitFor, "trainer recreated", func() error {
		l, _, err := jobPods(e, sdd)
		if err != nil {
			return err
		}
		p, ok := l[sdd+"-train-0"]
		if !ok || p.UID == old.UID {
			return fmt.Errorf("pods %s", names(l))
		}
		return nil
	})
	sednatest.Eventually(t, waitFor, "Recreated event", func() error { return hasEvent(e, "Recreated", sdd+"-train-0") })

	// Delete the job. The garbage collector deletes the pods, which stay
	// Terminating (no kubelet). Nothing may replace them.
	if err := e.Client.Delete(ctx, &job); err != nil {
		t.Fatal(err)
	}
	var terminating map[string]corev1.Pod
	sednatest.Eventually(t, waitFor, "pods terminating", func() error {
		var err error
		live, terminating, err = jobPods(e, sdd)
		if err != nil {
			return err
		}
		if len(live) != 0 || len(terminating) != 3 {
			return fmt.Errorf("live %s, terminating %s", names(live), names(terminating))
		}
		return nil
	})
	noNewPods(t, e, 5*time.Second)
	for _, p := range terminating {
		forceDelete(t, e, p)
	}
	sednatest.Eventually(t, waitFor, "Service garbage-collected", func() error { return e.Gone(sdd+"-aggregation", &corev1.Service{}) })
	noNewPods(t, e, time.Minute)
}

// noNewPods fails if a pod of the job that is not being deleted appears
// during d.
func noNewPods(t *testing.T, e *sednatest.Env, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		live, _, err := jobPods(e, sdd)
		if err != nil {
			t.Fatal(err)
		}
		if len(live) > 0 {
			t.Fatalf("pods created for a deleted job: %s", names(live))
		}
	}
}

func hasEvent(e *sednatest.Env, reason, mentions string) error {
	var evs eventsv1.EventList
	if err := e.Client.List(context.Background(), &evs, client.InNamespace(e.NS)); err != nil {
		return err
	}
	var seen []string
	for _, ev := range evs.Items {
		if ev.Reason == reason && strings.Contains(ev.Note, mentions) {
			return nil
		}
		seen = append(seen, ev.Reason+": "+ev.Note)
	}
	return fmt.Errorf("no %s event mentioning %s; have %v", reason, mentions, seen)
}

// newJob is a job whose pods no node matches: they stay unscheduled, so
// deleting them is immediate.
func newJob(e *sednatest.Env, name string, trainers int) *sednav1.FederatedLearningJob {
	tpl := func(img string) sednav1.PodTemplate {
		return sednav1.PodTemplate{Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"verge.dev/pool": "nowhere"},
			Containers:   []corev1.Container{{Name: "w", Image: img}},
		}}
	}
	job := &sednav1.FederatedLearningJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.NS, Name: name},
		Spec: sednav1.FLJobSpec{
			AggregationWorker: sednav1.AggregationWorker{Model: sednav1.TrainModel{Name: "model"}, Template: tpl("agg:v1")},
		},
	}
	for i := range trainers {
		job.Spec.TrainingWorkers = append(job.Spec.TrainingWorkers, sednav1.TrainingWorker{
			Dataset: sednav1.TrainDataset{Name: fmt.Sprintf("shard-%d", i)}, Template: tpl("train:v1"),
		})
	}
	return job
}

func createRefs(t *testing.T, e *sednatest.Env, datasets int) {
	t.Helper()
	ctx := context.Background()
	if err := e.Client.Create(ctx, &sednav1.Model{ObjectMeta: metav1.ObjectMeta{Namespace: e.NS, Name: "model"}, Spec: sednav1.ModelSpec{URL: "/models/fmnist/", Format: "json"}}); err != nil {
		t.Fatal(err)
	}
	for i := range datasets {
		createDataset(t, e, fmt.Sprintf("shard-%d", i))
	}
}

func createDataset(t *testing.T, e *sednatest.Env, name string) {
	t.Helper()
	ds := &sednav1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: e.NS, Name: name}, Spec: sednav1.DatasetSpec{URL: "/data/" + name + ".txt", Format: "txt"}}
	if err := e.Client.Create(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
}

func uids(t *testing.T, e *sednatest.Env, job string) map[string]types.UID {
	t.Helper()
	live, _, err := jobPods(e, job)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]types.UID{}
	for n, p := range live {
		out[n] = p.UID
	}
	return out
}

func editJob(t *testing.T, e *sednatest.Env, name string, fn func(*sednav1.FederatedLearningJob)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var job sednav1.FederatedLearningJob
		if err := e.Get(name, &job); err != nil {
			return err
		}
		fn(&job)
		return e.Client.Update(context.Background(), &job)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An edit restarts the job once, and only that job: two jobs share
// nothing.
func TestEditRestartsOnceAndOnlyThatJob(t *testing.T) {
	t.Parallel()
	e := start(t)
	createRefs(t, e, 2)
	ctx := context.Background()
	for _, n := range []string{"job-a", "job-b"} {
		if err := e.Client.Create(ctx, newJob(e, n, 2)); err != nil {
			t.Fatal(err)
		}
	}
	var before, otherBefore map[string]types.UID
	sednatest.Eventually(t, waitFor, "both jobs running their pods", func() error {
		before, otherBefore = uids(t, e, "job-a"), uids(t, e, "job-b")
		if len(before) != 3 || len(otherBefore) != 3 {
			return fmt.Errorf("job-a %d pods, job-b %d", len(before), len(otherBefore))
		}
		return nil
	})

	editJob(t, e, "job-a", func(j *sednav1.FederatedLearningJob) {
		j.Spec.TrainingWorkers[1].Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "learning_rate", Value: "0.01"}}
	})
	var job sednav1.FederatedLearningJob
	if err := e.Get("job-a", &job); err != nil {
		t.Fatal(err)
	}
	gen := fmt.Sprint(job.Generation)
	var after map[string]types.UID
	sednatest.Eventually(t, waitFor, "job-a restarted", func() error {
		live, _, err := jobPods(e, "job-a")
		if err != nil {
			return err
		}
		if len(live) != 3 {
			return fmt.Errorf("pods %s", names(live))
		}
		after = map[string]types.UID{}
		for n, p := range live {
			if p.Labels[federated.GenerationLabel] != gen || p.UID == before[n] {
				return fmt.Errorf("%s not restarted for generation %s", n, gen)
			}
			after[n] = p.UID
		}
		if env(live["job-a-train-1"])["learning_rate"] != "0.01" {
			return errors.New("the new run does not have the new spec")
		}
		return nil
	})
	sednatest.Eventually(t, waitFor, "status of the new run", func() error {
		if err := e.Get("job-a", &job); err != nil {
			return err
		}
		if job.Status.ObservedGeneration != job.Generation {
			return fmt.Errorf("observedGeneration %d", job.Status.ObservedGeneration)
		}
		return hasEvent(e, "Restarting", "job-a-train-1")
	})
	// Once: the new pods stay.
	time.Sleep(5 * time.Second)
	if now := uids(t, e, "job-a"); fmt.Sprint(now) != fmt.Sprint(after) {
		t.Errorf("restarted more than once: %v then %v", after, now)
	}
	if now := uids(t, e, "job-b"); fmt.Sprint(now) != fmt.Sprint(otherBefore) {
		t.Errorf("editing job-a touched job-b: %v then %v", otherBefore, now)
	}
}

// setPhase writes a pod's phase as a kubelet would.
func setPhase(t *testing.T, e *sednatest.Env, name string, phase corev1.PodPhase) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p corev1.Pod
		if err := e.Get(name, &p); err != nil {
			return err
		}
		p.Status.Phase = phase
		if phase == corev1.PodFailed {
			p.Status.Reason, p.Status.Message = "Evicted", "The node was low on memory."
		}
		return e.Client.Status().Update(context.Background(), &p)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func waitPhase(t *testing.T, e *sednatest.Env, name string, phase sednav1.FLJobPhase, reason string) *sednav1.FederatedLearningJob {
	t.Helper()
	var job sednav1.FederatedLearningJob
	sednatest.Eventually(t, waitFor, fmt.Sprintf("%s %s (%s)", name, phase, reason), func() error {
		if err := e.Get(name, &job); err != nil {
			return err
		}
		c := federated.PhaseCondition(job.Status)
		if job.Status.Phase != phase || c.Reason != reason {
			return fmt.Errorf("phase %s (%s: %s)", job.Status.Phase, c.Reason, c.Message)
		}
		return nil
	})
	return &job
}

// Phases follow the pods; a finished job gets no new pods.
func TestPhases(t *testing.T) {
	t.Parallel()
	e := start(t)
	createRefs(t, e, 3)
	ctx := context.Background()

	// With minClientsPerRound 2 of 3, one failed trainer is tolerated.
	tolerant := newJob(e, "tolerant", 3)
	tolerant.Spec.MinClientsPerRound = ptr.To[int32](2)
	strict := newJob(e, "strict", 2)
	for _, j := range []*sednav1.FederatedLearningJob{tolerant, strict} {
		if err := e.Client.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	sednatest.Eventually(t, waitFor, "pods", func() error {
		if a, b := len(uids(t, e, "tolerant")), len(uids(t, e, "strict")); a != 4 || b != 3 {
			return fmt.Errorf("%d and %d pods", a, b)
		}
		return nil
	})
	waitPhase(t, e, "tolerant", sednav1.FLJobPending, federated.ReasonWorkersPending)

	for _, n := range []string{"tolerant-aggregation", "tolerant-train-0", "tolerant-train-1", "tolerant-train-2"} {
		setPhase(t, e, n, corev1.PodRunning)
	}
	job := waitPhase(t, e, "tolerant", sednav1.FLJobRunning, federated.ReasonWorkersRunning)
	if c := meta.FindStatusCondition(job.Status.Conditions, sednav1.FLJobCondTraining); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Training condition %+v", c)
	}
	setPhase(t, e, "tolerant-train-2", corev1.PodFailed)
	sednatest.Eventually(t, waitFor, "degraded run", func() error {
		job = waitPhase(t, e, "tolerant", sednav1.FLJobRunning, federated.ReasonWorkersRunning)
		if msg := federated.PhaseCondition(job.Status).Message; job.Status.Failed != 1 || !strings.Contains(msg, "2 of 3") {
			return fmt.Errorf("failed %d, %q", job.Status.Failed, msg)
		}
		return nil
	})
	setPhase(t, e, "tolerant-aggregation", corev1.PodSucceeded)
	job = waitPhase(t, e, "tolerant", sednav1.FLJobSucceeded, federated.ReasonAggregatorSucceeded)
	if job.Status.CompletionTime == nil {
		t.Error("no completion time")
	}
	if c := meta.FindStatusCondition(job.Status.Conditions, sednav1.FLJobCondComplete); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Complete condition %+v", c)
	}

	// Without a tolerance, one failed trainer fails the job.
	for _, n := range []string{"strict-aggregation", "strict-train-0", "strict-train-1"} {
		setPhase(t, e, n, corev1.PodRunning)
	}
	waitPhase(t, e, "strict", sednav1.FLJobRunning, federated.ReasonWorkersRunning)
	setPhase(t, e, "strict-train-0", corev1.PodFailed)
	job = waitPhase(t, e, "strict", sednav1.FLJobFailed, federated.ReasonTooFewTrainers)
	if msg := federated.PhaseCondition(job.Status).Message; !strings.Contains(msg, "strict-train-0") || !strings.Contains(msg, "Evicted") {
		t.Errorf("failure message %q does not say which worker failed and why", msg)
	}

	// Finished jobs are left alone: deleted pods are not replaced.
	for _, n := range []string{"tolerant-train-0", "strict-train-1"} {
		if err := e.Client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: e.NS, Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Second)
	if got := uids(t, e, "tolerant"); len(got) != 3 {
		t.Errorf("succeeded job got new pods: %v", got)
	}
	if got := uids(t, e, "strict"); len(got) != 2 {
		t.Errorf("failed job got new pods: %v", got)
	}

	// An edit runs a failed job again.
	editJob(t, e, "strict", func(j *sednav1.FederatedLearningJob) { j.Spec.MinClientsPerRound = ptr.To[int32](1) })
	waitPhase(t, e, "strict", sednav1.FLJobPending, federated.ReasonWorkersPending)
	sednatest.Eventually(t, waitFor, "new run", func() error {
		if n := len(uids(t, e, "strict")); n != 3 {
			return fmt.Errorf("%d pods", n)
		}
		return nil
	})
}

// A missing Dataset or an unknown algorithm is a condition naming it, with
// no pods; fixing it starts the job.
func TestProblemsAreConditionsThatRecover(t *testing.T) {
	t.Parallel()
	e := start(t)
	createRefs(t, e, 1)
	ctx := context.Background()
	job := newJob(e, "fix-me", 2)
	job.Spec.Aggregation = &sednav1.Aggregation{Algorithm: "FedMagic"}
	if err := e.Client.Create(ctx, job); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, e, "fix-me", sednav1.FLJobFailed, "DatasetNotFound")
	if msg := federated.PhaseCondition(got.Status).Message; !strings.Contains(msg, `"shard-1"`) {
		t.Errorf("message %q does not name the dataset", msg)
	}
	if n := len(uids(t, e, "fix-me")); n != 0 {
		t.Fatalf("%d pods despite the missing dataset", n)
	}
	createDataset(t, e, "shard-1")
	got = waitPhase(t, e, "fix-me", sednav1.FLJobFailed, federated.ReasonUnknownAggregation)
	if msg := federated.PhaseCondition(got.Status).Message; !strings.Contains(msg, `"FedMagic"`) {
		t.Errorf("message %q", msg)
	}
	editJob(t, e, "fix-me", func(j *sednav1.FederatedLearningJob) { j.Spec.Aggregation.Algorithm = "FedAvgM" })
	waitPhase(t, e, "fix-me", sednav1.FLJobPending, federated.ReasonWorkersPending)
	sednatest.Eventually(t, waitFor, "pods after the fix", func() error {
		if n := len(uids(t, e, "fix-me")); n != 3 {
			return fmt.Errorf("%d pods", n)
		}
		return nil
	})
}

func TestAPIValidation(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		edit func(*sednav1.FederatedLearningJob)
		says string
	}{
		{"more clients per round than trainers", func(j *sednav1.FederatedLearningJob) { j.Spec.MinClientsPerRound = ptr.To[int32](3) }, "minClientsPerRound must not exceed the number of trainingWorkers"},
		{"zero round timeout", func(j *sednav1.FederatedLearningJob) { j.Spec.RoundTimeout = &metav1.Duration{} }, "roundTimeout must be positive"},
		{"empty stop condition", func(j *sednav1.FederatedLearningJob) { j.Spec.StopCondition = &sednav1.StopCondition{} }, "stopCondition needs rounds, targetMetric or both"},
		{"bad target value", func(j *sednav1.FederatedLearningJob) {
			j.Spec.StopCondition = &sednav1.StopCondition{TargetMetric: &sednav1.TargetMetric{Name: "accuracy", Operator: ">=", Value: "ninety"}}
		}, "value"},
		{"bad operator", func(j *sednav1.FederatedLearningJob) {
			j.Spec.StopCondition = &sednav1.StopCondition{TargetMetric: &sednav1.TargetMetric{Name: "accuracy", Operator: "~", Value: "0.9"}}
		}, "operator"},
		{"two transmitters", func(j *sednav1.FederatedLearningJob) {
			j.Spec.Transmitter = sednav1.Transmitter{WS: &sednav1.WSTransmitter{}, S3: &sednav1.S3Transmitter{AggregationDataPath: "s3://b/p"}}
		}, "set either s3 or ws"},
		{"no training workers", func(j *sednav1.FederatedLearningJob) { j.Spec.TrainingWorkers = nil }, "trainingWorkers"},
		{"name too long for its Service", func(j *sednav1.FederatedLearningJob) { j.Name = strings.Repeat("f", 52) }, "at most 51 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := newJob(e, "valid", 2)
			tc.edit(job)
			err := e.Client.Create(ctx, job)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("want Invalid mentioning %q, got %v", tc.says, err)
			}
		})
	}
	ok := newJob(e, strings.Repeat("f", 51), 2)
	ok.Spec.MinClientsPerRound = ptr.To[int32](2)
	ok.Spec.RoundTimeout = &metav1.Duration{Duration: time.Minute}
	ok.Spec.StopCondition = &sednav1.StopCondition{Rounds: ptr.To[int32](20), TargetMetric: &sednav1.TargetMetric{Name: "accuracy", Operator: ">=", Value: "0.88"}}
	ok.Spec.Aggregation = &sednav1.Aggregation{Algorithm: "FedProx", Parameters: []sednav1.ParaSpec{{Key: "mu", Value: "0.01"}}}
	if err := e.Client.Create(ctx, ok); err != nil {
		t.Fatalf("valid job rejected: %v", err)
	}
}

// Verge's own example: the additive fields reach the workers.
func TestVergeExample(t *testing.T) {
	t.Parallel()
	e := start(t)
	createNodes(t, e)
	e.CreateManifest(t, sednatest.RepoFile(t, vergeFL))
	var live map[string]corev1.Pod
	sednatest.Eventually(t, waitFor, "aggregator and three trainers", func() error {
		var err error
		if live, _, err = jobPods(e, "fmnist-3-way"); err != nil {
			return err
		}
		if len(live) != 4 {
			return fmt.Errorf("pods %s", names(live))
		}
		return nil
	})
	agg := env(live["fmnist-3-way-aggregation"])
	for k, v := range map[string]string{
		"PARTICIPANTS_COUNT":     "3",
		"MIN_CLIENTS_PER_ROUND":  "2",
		"ROUND_TIMEOUT":          "1m30s",
		"STOP_ROUNDS":            "20",
		"STOP_METRIC":            "accuracy",
		"STOP_METRIC_OPERATOR":   ">=",
		"STOP_METRIC_VALUE":      "0.88",
		"AGGREGATION_ALGORITHM":  "FedAvgM",
		"AGGREGATION_PARAMETERS": `[{"key":"momentum","value":"0.9"}]`,
		"MODEL_URL":              "/home/data/var/lib/verge/models/fmnist-federated",
	} {
		if agg[k] != v {
			t.Errorf("aggregator %s=%q, want %q", k, agg[k], v)
		}
	}
	if tr := env(live["fmnist-3-way-train-2"]); tr["TRAIN_DATASET_URL"] != "/home/data/var/lib/verge/data/fmnist-shard-2.txt" || tr["AGGREGATION_ALGORITHM"] != "FedAvgM" {
		t.Errorf("trainer env %v", tr)
	}
}
