package aiworkload

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/ai/jointinference"
	"github.com/verge-edge/verge/pkg/ai/model"
	"github.com/verge-edge/verge/pkg/ai/workerenv"
)

// The edge worker's environment as the joint-inference controller builds
// it, plus Verge's variables.
func TestLoadEdgeConfig(t *testing.T) {
	base := []string{
		"WORKER_NAME", "fmnist-edge-abc", "NAMESPACE", "default", "SERVICE_NAME", "fmnist",
		"BIG_MODEL_IP", "fmnist-cloud.default", "BIG_MODEL_PORT", "5000",
		"HEM_NAME", "CrossEntropy", "HEM_PARAMETERS", `[{"key":"threshold_cross_entropy","value":"0.7"}]`,
		"MODEL_URL", "/home/data/var/lib/verge/models/fmnist-softmax.vmodel", "DATA_PATH_PREFIX", "/home/data",
	}
	c, err := LoadEdgeConfig(env(base...))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != "0.0.0.0:8000" || c.Budget != jointinference.DefaultBudget || c.Report {
		t.Errorf("defaults: addr %s budget %v report %v", c.Addr(), c.Budget, c.Report)
	}
	if c.Env.CloudURL() != "http://fmnist-cloud.default:5000/fmnist" || c.Env.HEMName != "CrossEntropy" {
		t.Errorf("sedna env: %+v", c.Env)
	}

	c, err = LoadEdgeConfig(env(append(base, "INFERENCE_BIND_IP", "127.0.0.1", "INFERENCE_BIND_PORT", "9001",
		"INFERENCE_BUDGET", "50ms", "LC_SERVER", "http://127.0.0.1:9100")...))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != "127.0.0.1:9001" || c.Budget != 50*time.Millisecond || !c.Report {
		t.Errorf("set: addr %s budget %v report %v", c.Addr(), c.Budget, c.Report)
	}

	// Every problem is reported at once, by variable.
	_, err = LoadEdgeConfig(env("WORKER_NAME", "w", "SERVICE_NAME", "s", "BIG_MODEL_IP", "cloud",
		"INFERENCE_BUDGET", "-1s", "INFERENCE_BIND_PORT", "70000", "HEM_NAME", "CrossEntropy",
		"HEM_PARAMETERS", `[{"key":"threshold_cross_entropy","value":"2"}]`))
	wantVars(t, err, "MODEL_URL", "INFERENCE_BUDGET", "INFERENCE_BIND_PORT", "HEM_NAME")
}

func TestLoadCloudConfig(t *testing.T) {
	c, err := LoadCloudConfig(env("WORKER_NAME", "w", "SERVICE_NAME", "fmnist", "BIG_MODEL_BIND_PORT", "5000",
		"MODEL_URL", "/m", "MAX_IN_FLIGHT", "3"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Env.Addr() != "0.0.0.0:5000" || c.MaxInFlight != 3 || c.Env.ModelURL != "/m" {
		t.Errorf("config %+v", c)
	}
	_, err = LoadCloudConfig(env("WORKER_NAME", "w", "MAX_IN_FLIGHT", "x"))
	wantVars(t, err, "SERVICE_NAME", "MODEL_URL", "MAX_IN_FLIGHT")
}

func TestLoadTrainerConfig(t *testing.T) {
	base := []string{
		"WORKER_NAME", "fmnist-3-way-train-0", "JOB_NAME", "fmnist-3-way", "AGG_IP", "fmnist-3-way-aggregation.default",
		"AGG_PORT", "7363", "TRAIN_DATASET_URL", "/home/data/var/lib/verge/data/fmnist-shard-0.txt",
		"PARTICIPANTS_COUNT", "3", "TRANSMITTER", "ws", "MODEL_URL", "/home/data/var/lib/verge/models/fmnist-federated",
	}
	c, err := LoadTrainerConfig(env(base...))
	if err != nil {
		t.Fatal(err)
	}
	want := model.EdgeTrainConfig()
	if !c.Arch.Equal(model.EdgeArch()) || c.Train.Epochs != 1 || c.Train.BatchSize != want.BatchSize ||
		c.Train.LearningRate != want.LearningRate || c.Train.LRDecay != 1 || c.RoundLRDecay != 0.9 ||
		c.Seed != 1 || c.Encoding != EncodingBinary || c.EvalSamples != 2000 || c.Report {
		t.Errorf("defaults: %+v", c)
	}
	if c.Env.AggregatorURL() != "ws://fmnist-3-way-aggregation.default:7363/FedAvg" {
		t.Errorf("aggregator URL %s", c.Env.AggregatorURL())
	}

	// Sedna's example hyperparameter names, the MLP, FedProx.
	c, err = LoadTrainerConfig(env(append(base, "epochs", "2", "batch_size", "32", "learning_rate", "0.01",
		"MODEL_ARCH", "mlp", "AGGREGATION_ALGORITHM", "FedProx", "AGGREGATION_PARAMETERS", `[{"key":"mu","value":"0.1"}]`,
		"WEIGHT_ENCODING", "json", "SEED", "9", "LR_DECAY", "1")...))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Arch.Equal(model.CloudArch()) || c.Train.Epochs != 2 || c.Train.BatchSize != 32 || c.Train.LearningRate != 0.01 ||
		c.Train.ProxMu != 0.1 || c.Encoding != EncodingJSON || c.Seed != 9 || c.RoundLRDecay != 1 {
		t.Errorf("set: %+v", c)
	}
	// Upper case wins over Sedna's lower-case name.
	c, err = LoadTrainerConfig(env(append(base, "EPOCHS", "3", "epochs", "2")...))
	if err != nil || c.Train.Epochs != 3 {
		t.Errorf("EPOCHS over epochs: %d %v", c.Train.Epochs, err)
	}

	_, err = LoadTrainerConfig(env(append(base, "MODEL_ARCH", "resnet", "learning_rate", "0", "LR_DECAY", "1.5",
		"MOMENTUM", "1", "WEIGHT_ENCODING", "msgpack")...))
	wantVars(t, err, "MODEL_ARCH", "learning_rate", "LR_DECAY", "MOMENTUM", "WEIGHT_ENCODING")
}

func TestLoadAggregatorConfig(t *testing.T) {
	c, err := LoadAggregatorConfig(env("WORKER_NAME", "agg", "JOB_NAME", "fmnist-3-way", "PARTICIPANTS_COUNT", "3",
		"MIN_CLIENTS_PER_ROUND", "2", "ROUND_TIMEOUT", "1m30s", "STOP_ROUNDS", "20", "AGGREGATION_ALGORITHM", "FedAvgM",
		"AGGREGATION_PARAMETERS", `[{"key":"momentum","value":"0.9"}]`, "MODEL_URL", "/home/data/m", "FINISH_GRACE", "3s"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Env.Addr() != "0.0.0.0:7363" || c.Env.MinClients != 2 || c.Env.Stop.Rounds != 20 || c.FinishGrace != 3*time.Second {
		t.Errorf("config %+v", c)
	}
	_, err = LoadAggregatorConfig(env("WORKER_NAME", "agg", "JOB_NAME", "j", "FINISH_GRACE", "soon"))
	wantVars(t, err, "MODEL_URL", "FINISH_GRACE")
}

// wantVars checks that err names exactly these variables, each as a
// *workerenv.Error.
func wantVars(t *testing.T, err error, vars ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want complaints about %v", vars)
	}
	var got []string
	for _, e := range flatten(err) {
		var we *workerenv.Error
		if errors.As(e, &we) {
			got = append(got, we.Variable)
		}
	}
	for _, v := range vars {
		found := false
		for _, g := range got {
			found = found || g == v
		}
		if !found {
			t.Errorf("no complaint about %s in %q", v, err)
		}
	}
	if len(got) != len(vars) {
		t.Errorf("complaints about %v, want %v:\n%s", got, vars, strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
