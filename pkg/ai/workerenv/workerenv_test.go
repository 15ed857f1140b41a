package workerenv

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	cloudfl "github.com/verge-edge/verge/internal/cloud/sedna/federated"
	cloudji "github.com/verge-edge/verge/internal/cloud/sedna/jointinference"
	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
	"github.com/verge-edge/verge/pkg/ai/federated"
	"github.com/verge-edge/verge/pkg/ai/hem"
)

// podEnv is what a container of the pod sees, with the downward-API
// WORKER_NAME resolved to podName.
func podEnv(c corev1.Container, podName string) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			m[e.Name] = podName
			continue
		}
		m[e.Name] = e.Value
	}
	return m
}

func podSpec() sednav1.PodTemplate {
	return sednav1.PodTemplate{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "w", Image: "w:v1"}}}}
}

// TestJointInferenceContract reads exactly what the Verge controller
// writes into the JointInferenceService's Deployments.
func TestJointInferenceContract(t *testing.T) {
	ji := &sednav1.JointInferenceService{
		ObjectMeta: metav1.ObjectMeta{Name: "helmet", Namespace: "site-a", UID: "u1"},
		Spec: sednav1.JointInferenceServiceSpec{
			EdgeWorker: sednav1.EdgeWorker{
				Model: sednav1.SmallModel{Name: "little"},
				HardExampleMining: sednav1.HardExampleMining{Name: "IBT", Parameters: []sednav1.ParaSpec{
					{Key: "threshold_img", Value: "0.9"}, {Key: "threshold_box", Value: "0.8"},
				}},
				Template: podSpec(),
			},
			CloudWorker: sednav1.CloudWorker{Model: sednav1.BigModel{Name: "big"}, Template: podSpec()},
		},
	}
	d, err := cloudji.Build(ji, cloudji.Resolved{
		EdgeModel:  &sednav1.Model{ObjectMeta: metav1.ObjectMeta{Name: "little"}, Spec: sednav1.ModelSpec{URL: "/data/little.json"}},
		CloudModel: &sednav1.Model{ObjectMeta: metav1.ObjectMeta{Name: "big"}, Spec: sednav1.ModelSpec{URL: "/data/big.json"}},
	}, worker.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}

	edge, err := LoadJointInferenceEdge(FromMap(podEnv(d.Edge.Spec.Template.Spec.Containers[0], "helmet-edge-abc")))
	if err != nil {
		t.Fatal(err)
	}
	if edge.WorkerName != "helmet-edge-abc" || edge.Namespace != "site-a" || edge.ServiceName != "helmet" || edge.LCServer != "http://localhost:9100" || edge.ModelURL == "" {
		t.Fatalf("edge %+v", edge)
	}
	if got := edge.CloudURL(); got != "http://helmet-cloud.site-a:5000/helmet" {
		t.Fatalf("cloud URL %s", got)
	}
	f, err := edge.Filter(hem.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ibt := f.(hem.IBTFilter); ibt.ThresholdImg != 0.9 || ibt.ThresholdBox != 0.8 {
		t.Fatalf("filter %+v", ibt)
	}

	cloud, err := LoadJointInferenceCloud(FromMap(podEnv(d.Cloud.Spec.Template.Spec.Containers[0], "helmet-cloud-xyz")))
	if err != nil {
		t.Fatal(err)
	}
	if cloud.Addr() != "0.0.0.0:5000" || cloud.ServiceName != "helmet" {
		t.Fatalf("cloud %+v", cloud)
	}
}

// TestFederatedContract reads exactly what the Verge controller writes
// into the aggregator's and the trainers' pods, Verge's fields included.
func TestFederatedContract(t *testing.T) {
	target := &sednav1.TargetMetric{Name: "accuracy", Operator: ">=", Value: "0.88"}
	job := &sednav1.FederatedLearningJob{
		ObjectMeta: metav1.ObjectMeta{Name: "fmnist", Namespace: "ml", UID: "u2", Generation: 1},
		Spec: sednav1.FLJobSpec{
			AggregationWorker:  sednav1.AggregationWorker{Model: sednav1.TrainModel{Name: "global"}, Template: podSpec()},
			TrainingWorkers:    []sednav1.TrainingWorker{{Dataset: sednav1.TrainDataset{Name: "shard-0"}, Template: podSpec()}, {Dataset: sednav1.TrainDataset{Name: "shard-1"}, Template: podSpec()}, {Dataset: sednav1.TrainDataset{Name: "shard-2"}, Template: podSpec()}},
			MinClientsPerRound: ptr.To[int32](2),
			RoundTimeout:       &metav1.Duration{Duration: 90 * time.Second},
			StopCondition:      &sednav1.StopCondition{Rounds: ptr.To[int32](20), TargetMetric: target},
			Aggregation:        &sednav1.Aggregation{Algorithm: "FedAvgM", Parameters: []sednav1.ParaSpec{{Key: "momentum", Value: "0.5"}}},
		},
	}
	ds := func(n string) *sednav1.Dataset {
		return &sednav1.Dataset{ObjectMeta: metav1.ObjectMeta{Name: n}, Spec: sednav1.DatasetSpec{URL: "/data/" + n + "/index.txt", Format: "txt"}}
	}
	d, err := cloudfl.Build(job, cloudfl.Resolved{
		Model:              &sednav1.Model{ObjectMeta: metav1.ObjectMeta{Name: "global"}, Spec: sednav1.ModelSpec{URL: "/data/models/global"}},
		Datasets:           []*sednav1.Dataset{ds("shard-0"), ds("shard-1"), ds("shard-2")},
		DatasetCredentials: make([]*worker.Credential, 3),
	}, worker.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}

	agg, err := LoadFederatedAggregator(FromMap(podEnv(d.Aggregator.Spec.Containers[0], "fmnist-aggregation")))
	if err != nil {
		t.Fatal(err)
	}
	if agg.Participants != 3 || agg.MinClients != 2 || agg.RoundTimeout != 90*time.Second || agg.Addr() != "0.0.0.0:7363" ||
		agg.Stop.Rounds != 20 || agg.Stop.Target == nil || agg.Stop.Target.String() != "accuracy >= 0.88" || agg.Aggregation != "FedAvgM" {
		t.Fatalf("aggregator %+v", agg)
	}
	rc, err := agg.RoundConfig()
	if err != nil {
		t.Fatal(err)
	}
	if m := rc.Algorithm.(*federated.FedAvgM); m.Momentum != 0.5 {
		t.Fatalf("algorithm %+v", m)
	}
	if _, err := federated.NewCoordinator(rc); err != nil {
		t.Fatal(err)
	}

	tr, err := LoadFederatedTrainer(FromMap(podEnv(d.Trainers[1].Spec.Containers[0], "fmnist-train-1")))
	if err != nil {
		t.Fatal(err)
	}
	if tr.WorkerName != "fmnist-train-1" || tr.JobName != "fmnist" || tr.DatasetName != "shard-1" || !strings.Contains(tr.TrainDatasetURL, "shard-1") ||
		tr.AggregatorURL() != "ws://fmnist-aggregation.ml:7363/FedAvgM" || tr.ProximalMu != 0 || tr.Participants != 3 {
		t.Fatalf("trainer %+v (%s)", tr, tr.AggregatorURL())
	}
}

func TestFedProxMuAndDefaults(t *testing.T) {
	env := map[string]string{
		"WORKER_NAME": "t0", "JOB_NAME": "j", "AGG_IP": "10.0.0.5", "TRAIN_DATASET_URL": "/d",
		"AGGREGATION_ALGORITHM": "FedProx", "AGGREGATION_PARAMETERS": `[{"key":"mu","value":"0.05"}]`,
	}
	tr, err := LoadFederatedTrainer(FromMap(env))
	if err != nil {
		t.Fatal(err)
	}
	if tr.ProximalMu != 0.05 || tr.AggregatorURL() != "ws://10.0.0.5:7363/FedProx" || tr.LCServer != "http://127.0.0.1:9100" {
		t.Fatalf("trainer %+v", tr)
	}
	agg, err := LoadFederatedAggregator(FromMap(map[string]string{"WORKER_NAME": "a", "JOB_NAME": "j", "exit_round": "5"}))
	if err != nil || agg.Stop.Rounds != 5 || agg.Participants != 1 || agg.MinClients != 1 || agg.RoundTimeout != time.Minute {
		t.Fatalf("Sedna's exit_round: %+v %v", agg, err)
	}
	agg, _ = LoadFederatedAggregator(FromMap(map[string]string{"WORKER_NAME": "a", "JOB_NAME": "j"}))
	if agg.Stop.Rounds != 3 {
		t.Fatalf("default rounds %d", agg.Stop.Rounds)
	}
	edge, err := LoadJointInferenceEdge(FromMap(map[string]string{"WORKER_NAME": "e", "SERVICE_NAME": "s", "BIG_MODEL_IP": "::1"}))
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := edge.Filter(hem.Options{}); f.Name() != hem.NameEdgeOnly || edge.CloudURL() != "http://[::1]:5000/s" || edge.ReportPeriod != 30*time.Second {
		t.Fatalf("edge without HEM_NAME: %v %s", f, edge.CloudURL())
	}
}

func TestErrorsNameVariables(t *testing.T) {
	_, err := LoadJointInferenceEdge(FromMap(map[string]string{
		"SERVICE_NAME": "s", "BIG_MODEL_IP": "http://cloud:5000", "BIG_MODEL_PORT": "70000",
		"HEM_PARAMETERS": `{"threshold": 0.5}`, "LC_SERVER": "localhost:9100",
	}))
	for _, want := range []string{"WORKER_NAME is not set", `BIG_MODEL_IP="http://cloud:5000"`, `BIG_MODEL_PORT="70000": want an integer from 1 to 65535`, "HEM_PARAMETERS", "LC_SERVER"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	var ee *Error
	if !errors.As(err, &ee) {
		t.Fatalf("not an *Error: %T", err)
	}

	_, err = LoadJointInferenceEdge(FromMap(map[string]string{
		"WORKER_NAME": "e", "SERVICE_NAME": "s", "BIG_MODEL_IP": "c", "HEM_NAME": "IBT", "HEM_PARAMETERS": `[{"key":"threshold_img","value":"1.5"}]`,
	}))
	if err == nil || !strings.Contains(err.Error(), "threshold_img") || !strings.Contains(err.Error(), "[0, 1]") {
		t.Fatalf("bad HEM parameter: %v", err)
	}

	_, err = LoadFederatedAggregator(FromMap(map[string]string{
		"WORKER_NAME": "a", "JOB_NAME": "j", "PARTICIPANTS_COUNT": "2", "MIN_CLIENTS_PER_ROUND": "3",
		"ROUND_TIMEOUT": "90", "STOP_METRIC": "accuracy", "TRANSMITTER": "s3", "AGGREGATION_ALGORITHM": "FedSGD",
	}))
	for _, want := range []string{"MIN_CLIENTS_PER_ROUND", "ROUND_TIMEOUT=\"90\"", "STOP_METRIC", "TRANSMITTER"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	_, err = LoadFederatedAggregator(FromMap(map[string]string{"WORKER_NAME": "a", "JOB_NAME": "j", "AGGREGATION_ALGORITHM": "FedSGD"}))
	if err == nil || !strings.Contains(err.Error(), "FedAvg, FedAvgM, FedProx") {
		t.Fatalf("unknown algorithm: %v", err)
	}
}
