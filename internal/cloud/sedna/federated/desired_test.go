package federated

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
)

func testJob() *sednav1.FederatedLearningJob {
	tpl := func(img string) sednav1.PodTemplate {
		return sednav1.PodTemplate{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "w", Image: img}}}}
	}
	return &sednav1.FederatedLearningJob{
		ObjectMeta: metav1.ObjectMeta{Name: "sdd", Namespace: "ns", UID: "job-uid", Generation: 2},
		Spec: sednav1.FLJobSpec{
			AggregationWorker: sednav1.AggregationWorker{Model: sednav1.TrainModel{Name: "m"}, Template: tpl("agg:v1")},
			TrainingWorkers: []sednav1.TrainingWorker{
				{Dataset: sednav1.TrainDataset{Name: "d1"}, Template: tpl("train:v1")},
				{Dataset: sednav1.TrainDataset{Name: "d2"}, Template: tpl("train:v1")},
			},
		},
	}
}

func testResolved() Resolved {
	ds := func(name, url string) *sednav1.Dataset {
		return &sednav1.Dataset{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: sednav1.DatasetSpec{URL: url, Format: "txt"}}
	}
	return Resolved{
		Model:              &sednav1.Model{ObjectMeta: metav1.ObjectMeta{Name: "m"}, Spec: sednav1.ModelSpec{URL: "/model", Format: "pb"}},
		Datasets:           []*sednav1.Dataset{ds("d1", "/data/1.txt"), ds("d2", "/data/2.txt")},
		DatasetCredentials: []*worker.Credential{nil, nil},
	}
}

func podEnv(p *corev1.Pod) map[string]string {
	m := map[string]string{}
	for _, e := range p.Spec.Containers[0].Env {
		if e.ValueFrom != nil {
			m[e.Name] = "ref"
			continue
		}
		m[e.Name] = e.Value
	}
	return m
}

func TestBuildUpstreamContract(t *testing.T) {
	job := testJob()
	d, err := Build(job, testResolved(), worker.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if d.Aggregator.Name != "sdd-aggregation" || len(d.Trainers) != 2 || d.Trainers[1].Name != "sdd-train-1" || d.Service.Name != "sdd-aggregation" {
		t.Fatalf("names: %s %d %s", d.Aggregator.Name, len(d.Trainers), d.Service.Name)
	}
	agg := podEnv(d.Aggregator)
	for k, v := range map[string]string{
		"AGG_BIND_PORT":      "7363",
		"PARTICIPANTS_COUNT": "2",
		"TRANSMITTER":        "ws",
		"MODEL_URL":          "/home/data/model",
		"JOB_NAME":           "sdd",
		"NAMESPACE":          "ns",
		"WORKER_NAME":        "ref",
	} {
		if agg[k] != v {
			t.Errorf("aggregator %s=%q, want %q", k, agg[k], v)
		}
	}
	for _, k := range []string{"AGG_IP", "TRAIN_DATASET_URL", "PRETRAINED_MODEL_URL", "MIN_CLIENTS_PER_ROUND", "AGGREGATION_ALGORITHM"} {
		if _, ok := agg[k]; ok {
			t.Errorf("aggregator has %s", k)
		}
	}
	tr := podEnv(d.Trainers[1])
	for k, v := range map[string]string{
		"AGG_IP":             "sdd-aggregation.ns",
		"AGG_PORT":           "7363",
		"PARTICIPANTS_COUNT": "2",
		"TRAIN_DATASET_URL":  "/home/data/data/2.txt",
		"MODEL_URL":          "/home/data/model",
		"MODEL_NAME":         "m",
		"DATASET_NAME":       "d2",
		"LC_SERVER":          "http://localhost:9100",
		"TRANSMITTER":        "ws",
	} {
		if tr[k] != v {
			t.Errorf("trainer %s=%q, want %q", k, tr[k], v)
		}
	}
	for _, p := range d.Pods() {
		if p.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
			t.Errorf("%s restart policy %q", p.Name, p.Spec.RestartPolicy)
		}
		if p.Labels[GenerationLabel] != "2" || p.Labels["federatedlearningjob.sedna.io/uid"] != "job-uid" {
			t.Errorf("%s labels %v", p.Name, p.Labels)
		}
		if ref := metav1.GetControllerOf(p); ref == nil || ref.Kind != Kind || ref.UID != "job-uid" {
			t.Errorf("%s owner %+v", p.Name, ref)
		}
		if p.Spec.HostNetwork {
			t.Errorf("%s forced onto the host network", p.Name)
		}
	}
	if d.Aggregator.Labels["federatedlearningjob.sedna.io/worker-type"] != "aggregation" || d.Trainers[0].Labels["federatedlearningjob.sedna.io/worker-type"] != "train" {
		t.Error("worker-type labels")
	}
	sel := d.Service.Spec.Selector
	if sel["federatedlearningjob.sedna.io/worker-type"] != "aggregation" || sel[GenerationLabel] != "" || d.Service.Spec.Ports[0].Port != 7363 {
		t.Errorf("service %+v", d.Service.Spec)
	}
}

func TestBuildAdditiveFields(t *testing.T) {
	job := testJob()
	job.Spec.MinClientsPerRound = ptr.To[int32](1)
	job.Spec.RoundTimeout = &metav1.Duration{Duration: 90 * time.Second}
	job.Spec.StopCondition = &sednav1.StopCondition{Rounds: ptr.To[int32](20), TargetMetric: &sednav1.TargetMetric{Name: "accuracy", Operator: ">=", Value: "0.88"}}
	job.Spec.Aggregation = &sednav1.Aggregation{Algorithm: "FedAvgM", Parameters: []sednav1.ParaSpec{{Key: "momentum", Value: "0.9"}}}
	job.Spec.PretrainedModel.Name = "pre"
	job.Spec.Transmitter.S3 = &sednav1.S3Transmitter{AggregationDataPath: "s3://fl/agg", CredentialName: "s3"}
	in := testResolved()
	in.Pretrained = &sednav1.Model{ObjectMeta: metav1.ObjectMeta{Name: "pre"}, Spec: sednav1.ModelSpec{URL: "https://models.example/pre.pb"}}
	in.TransmitterCred = &worker.Credential{SecretName: "s3", EndpointURL: "http://minio:9000"}
	d, err := Build(job, in, worker.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	agg := podEnv(d.Aggregator)
	for k, v := range map[string]string{
		"MIN_CLIENTS_PER_ROUND":  "1",
		"ROUND_TIMEOUT":          "1m30s",
		"STOP_ROUNDS":            "20",
		"STOP_METRIC":            "accuracy",
		"STOP_METRIC_OPERATOR":   ">=",
		"STOP_METRIC_VALUE":      "0.88",
		"AGGREGATION_ALGORITHM":  "FedAvgM",
		"AGGREGATION_PARAMETERS": `[{"key":"momentum","value":"0.9"}]`,
		"TRANSMITTER":            "s3",
		"AGG_DATA_PATH":          "s3://fl/agg",
		"S3_ENDPOINT_URL":        "http://minio:9000",
		"ACCESS_KEY_ID":          "ref",
		"PRETRAINED_MODEL_URL":   "/downloads/models.example/pre.pb",
	} {
		if agg[k] != v {
			t.Errorf("aggregator %s=%q, want %q", k, agg[k], v)
		}
	}
	tr := podEnv(d.Trainers[0])
	if tr["AGGREGATION_ALGORITHM"] != "FedAvgM" || tr["PRETRAINED_MODEL_URL"] == "" || tr["TRANSMITTER"] != "s3" {
		t.Errorf("trainer env %v", tr)
	}
	if _, ok := tr["STOP_ROUNDS"]; ok {
		t.Error("trainers decide nothing about stopping; the aggregator does")
	}
}

func TestBuildProblems(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*sednav1.FederatedLearningJob, *Resolved)
		reason string
		says   string
	}{
		{"unknown aggregation", func(j *sednav1.FederatedLearningJob, _ *Resolved) {
			j.Spec.Aggregation = &sednav1.Aggregation{Algorithm: "FedMagic"}
		}, ReasonUnknownAggregation, `"FedMagic"`},
		{"momentum out of range", func(j *sednav1.FederatedLearningJob, _ *Resolved) {
			j.Spec.Aggregation = &sednav1.Aggregation{Algorithm: "FedAvgM", Parameters: []sednav1.ParaSpec{{Key: "momentum", Value: "1.5"}}}
		}, ReasonInvalidAggregation, "momentum"},
		{"negative mu", func(j *sednav1.FederatedLearningJob, _ *Resolved) {
			j.Spec.Aggregation = &sednav1.Aggregation{Algorithm: "FedProx", Parameters: []sednav1.ParaSpec{{Key: "mu", Value: "-1"}}}
		}, ReasonInvalidAggregation, "mu"},
		{"trainer template without containers", func(j *sednav1.FederatedLearningJob, _ *Resolved) {
			j.Spec.TrainingWorkers[1].Template.Spec.Containers = nil
		}, worker.ReasonInvalidTemplate, "trainingWorkers[1].template"},
		{"relative dataset URL", func(_ *sednav1.FederatedLearningJob, r *Resolved) {
			r.Datasets[0].Spec.URL = "data/1.txt"
		}, worker.ReasonInvalidURL, `trainingWorkers[0].dataset "d1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job, in := testJob(), testResolved()
			tc.edit(job, &in)
			_, err := Build(job, in, worker.DefaultOptions())
			var p *worker.Problem
			if !errors.As(err, &p) || p.Reason != tc.reason || !strings.Contains(p.Message, tc.says) {
				t.Fatalf("want %s mentioning %s, got %v", tc.reason, tc.says, err)
			}
		})
	}
}

func fakePod(name string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Phase: phase}}
}

func pods(ps ...*corev1.Pod) map[string]*corev1.Pod {
	m := map[string]*corev1.Pod{}
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}

func TestComputeStatus(t *testing.T) {
	now := metav1.Now()
	deleting := fakePod("sdd-train-1", corev1.PodRunning)
	deleting.DeletionTimestamp = &now
	for _, tc := range []struct {
		name       string
		minClients *int32
		problem    *worker.Problem
		obs        Observed
		phase      sednav1.FLJobPhase
		reason     string
		active     int32
		finished   bool
	}{
		{"no pods yet", nil, nil, Observed{}, sednav1.FLJobPending, ReasonWorkersPending, 0, false},
		{"pending pods", nil, nil, Observed{Pods: pods(fakePod("sdd-aggregation", corev1.PodPending), fakePod("sdd-train-0", corev1.PodPending), fakePod("sdd-train-1", corev1.PodPending))}, sednav1.FLJobPending, ReasonWorkersPending, 3, false},
		{"all running", nil, nil, Observed{Pods: pods(fakePod("sdd-aggregation", corev1.PodRunning), fakePod("sdd-train-0", corev1.PodRunning), fakePod("sdd-train-1", corev1.PodRunning))}, sednav1.FLJobRunning, ReasonWorkersRunning, 3, false},
		{"trainer being replaced", nil, nil, Observed{Pods: pods(fakePod("sdd-aggregation", corev1.PodRunning), fakePod("sdd-train-0", corev1.PodRunning), deleting)}, sednav1.FLJobPending, ReasonWorkersPending, 2, false},
		{"trainer failed, all needed", nil, nil, Observed{Pods: pods(fakePod("sdd-aggregation", corev1.PodRunning), fakePod("sdd-train-0", corev1.PodRunning), fakePod("sdd-train-1", corev1.PodFailed))}, sednav1.FLJobFailed, ReasonTooFewTrainers, 2, true},
		{"trainer failed, one is enough", ptr.To[int32](1), nil, Observed{Pods: pods(fakePod("sdd-aggregation", corev1.PodRunning), fakePod("sdd-train-0", corev1.PodRunning), fakePod("sdd-train-1", corev1.PodFailed))}, sednav1.FLJobRunning, ReasonWorkersRunning, 2, false},
		{"aggregator succeeded", nil, nil, Observed{Pods: pods(fakePod("sdd-aggregation", corev1.PodSucceeded), fakePod("sdd-train-0", corev1.PodSucceeded), fakePod("sdd-train-1", corev1.PodRunning))}, sednav1.FLJobSucceeded, ReasonAggregatorSucceeded, 1, true},
		{"aggregator failed", nil, nil, Observed{Pods: pods(fakePod("sdd-aggregation", corev1.PodFailed))}, sednav1.FLJobFailed, ReasonAggregatorFailed, 0, true},
		{"restarting", nil, nil, Observed{Stale: 3}, sednav1.FLJobPending, ReasonRestarting, 0, false},
		{"spec problem", nil, &worker.Problem{Reason: worker.ReasonDatasetNotFound, Message: `Dataset "d2" not found`}, Observed{}, sednav1.FLJobFailed, worker.ReasonDatasetNotFound, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := testJob()
			job.Spec.MinClientsPerRound = tc.minClients
			job.Status = ComputeStatus(job, tc.problem, tc.obs, now)
			st := job.Status
			if st.Phase != tc.phase || st.Active != tc.active {
				t.Fatalf("phase %s active %d, want %s %d", st.Phase, st.Active, tc.phase, tc.active)
			}
			c := PhaseCondition(st)
			if c.Reason != tc.reason || c.ObservedGeneration != 2 || c.Message == "" {
				t.Errorf("phase condition %+v, want reason %s", c, tc.reason)
			}
			wantTrue := map[sednav1.FLJobPhase]string{sednav1.FLJobRunning: "Training", sednav1.FLJobSucceeded: "Complete", sednav1.FLJobFailed: "Failed"}[tc.phase]
			for _, cond := range st.Conditions {
				if (cond.Status == metav1.ConditionTrue) != (cond.Type == wantTrue) {
					t.Errorf("condition %s=%s in phase %s", cond.Type, cond.Status, tc.phase)
				}
			}
			if len(st.Conditions) != 3 {
				t.Errorf("%d conditions", len(st.Conditions))
			}
			if got := Finished(job); got != tc.finished {
				t.Errorf("Finished=%v, want %v", got, tc.finished)
			}
			if tc.phase == sednav1.FLJobSucceeded && st.CompletionTime == nil {
				t.Error("no completion time")
			}
		})
	}
}

// A finished job's verdict stands when its pods disappear, and a new
// generation starts afresh.
func TestComputeStatusFinishedAndRestart(t *testing.T) {
	now := metav1.Now()
	job := testJob()
	job.Status = ComputeStatus(job, nil, Observed{Pods: pods(fakePod("sdd-aggregation", corev1.PodSucceeded))}, now)
	job.Status.Round, job.Status.Metrics = 20, []sednav1.Metric{{Key: "accuracy", Value: "0.9"}}

	job.Status = ComputeStatus(job, nil, Observed{}, now)
	if job.Status.Phase != sednav1.FLJobSucceeded || !Finished(job) || job.Status.Round != 20 {
		t.Fatalf("verdict lost when pods went: %+v", job.Status)
	}
	if !Done(job, Observed{}) {
		t.Error("finished job would get new pods")
	}

	job.Generation = 3
	job.Status = ComputeStatus(job, nil, Observed{Stale: 1}, now)
	if job.Status.Phase != sednav1.FLJobPending || PhaseCondition(job.Status).Reason != ReasonRestarting || job.Status.ObservedGeneration != 2 {
		t.Fatalf("restart: %+v", job.Status)
	}
	job.Status = ComputeStatus(job, nil, Observed{}, now)
	if job.Status.ObservedGeneration != 3 || job.Status.Round != 0 || job.Status.Metrics != nil || job.Status.CompletionTime != nil || Finished(job) {
		t.Fatalf("new run kept the old one's results: %+v", job.Status)
	}
}

// The controller notices a finish from the pods before the cached status
// says so.
func TestDoneFromPods(t *testing.T) {
	job := testJob()
	if Done(job, Observed{Pods: pods(fakePod("sdd-aggregation", corev1.PodRunning))}) {
		t.Error("running job is done")
	}
	if !Done(job, Observed{Pods: pods(fakePod("sdd-aggregation", corev1.PodSucceeded))}) {
		t.Error("aggregator succeeded, job not done")
	}
	if Done(job, Observed{Pods: pods(fakePod("sdd-aggregation", corev1.PodSucceeded)), Stale: 1}) {
		t.Error("stale pods decide nothing")
	}
}

// BenchmarkBuild measures building the pods of a 100-client job.
func BenchmarkBuild(b *testing.B) {
	job, in := testJob(), testResolved()
	tw := job.Spec.TrainingWorkers[0]
	job.Spec.TrainingWorkers, in.Datasets, in.DatasetCredentials = nil, nil, nil
	for i := range 100 {
		job.Spec.TrainingWorkers = append(job.Spec.TrainingWorkers, tw)
		in.Datasets = append(in.Datasets, &sednav1.Dataset{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("d%d", i)}, Spec: sednav1.DatasetSpec{URL: fmt.Sprintf("/data/%d.txt", i)}})
		in.DatasetCredentials = append(in.DatasetCredentials, nil)
	}
	opts := worker.DefaultOptions()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(job, in, opts); err != nil {
			b.Fatal(err)
		}
	}
}
