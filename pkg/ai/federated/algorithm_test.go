package federated

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/verge-edge/verge/pkg/ai"
	"github.com/verge-edge/verge/pkg/ai/tensor"
)

func vec(v ...float32) tensor.Weights {
	return tensor.Weights{{Shape: []int{len(v)}, Data: v}}
}

func near(t *testing.T, what string, got tensor.Weights, want ...float64) {
	t.Helper()
	if len(got) != 1 || len(got[0].Data) != len(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	for i, w := range want {
		if math.Abs(float64(got[0].Data[i])-w) > 1e-6 {
			t.Fatalf("%s: got %v, want %v", what, got[0].Data, want)
		}
	}
}

func TestFedAvgArithmetic(t *testing.T) {
	// A: 1 sample of [0, 2, 4]; B: 3 samples of [4, 2, 0].
	// (1·0 + 3·4)/4 = 3, (1·2 + 3·2)/4 = 2, (1·4 + 3·0)/4 = 1.
	got, err := FedAvg{}.Aggregate(nil, []ClientUpdate{
		{Client: "a", NumSamples: 1, Weights: vec(0, 2, 4)},
		{Client: "b", NumSamples: 3, Weights: vec(4, 2, 0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "FedAvg", got, 3, 2, 1)

	// Three clients, 600/300/100 samples, two tensors (matrix and bias).
	w := func(m00, m01, m10, m11, b float32) tensor.Weights {
		return tensor.Weights{{Shape: []int{2, 2}, Data: []float32{m00, m01, m10, m11}}, {Shape: []int{}, Data: []float32{b}}}
	}
	got, err = FedAvg{}.Aggregate(nil, []ClientUpdate{
		{Client: "a", NumSamples: 600, Weights: w(1, 0, 0, 1, 10)},
		{Client: "b", NumSamples: 300, Weights: w(0, 1, 1, 0, 20)},
		{Client: "c", NumSamples: 100, Weights: w(1, 1, 1, 1, 30)},
	})
	if err != nil {
		t.Fatal(err)
	}
	// m00 = .6+.1 = .7, m01 = .3+.1 = .4, bias = 6+6+3 = 15.
	want := []float32{0.7, 0.4, 0.4, 0.7}
	for i, v := range want {
		if math.Abs(float64(got[0].Data[i]-v)) > 1e-6 {
			t.Fatalf("matrix %v, want %v", got[0].Data, want)
		}
	}
	if got[1].Data[0] != 15 || len(got[1].Shape) != 0 {
		t.Fatalf("bias %v", got[1])
	}
}

func TestFedAvgMArithmetic(t *testing.T) {
	a, err := NewAlgorithm("FedAvgM", []ai.Parameter{{Key: "momentum", Value: "0.5"}, {Key: "server_learning_rate", Value: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	// Round 1 from global [1, 1]: FedAvg of (1 × [0,2], 3 × [2,2]) is
	// [1.5, 2]; Δ = global − avg = [−0.5, −1]; v = Δ; w = global − v = [1.5, 2].
	g1, err := a.Aggregate(vec(1, 1), []ClientUpdate{
		{Client: "a", NumSamples: 1, Weights: vec(0, 2)},
		{Client: "b", NumSamples: 3, Weights: vec(2, 2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "round 1", g1, 1.5, 2)
	// Round 2 from [1.5, 2]: avg [2, 2]; Δ = [−0.5, 0];
	// v = 0.5·[−0.5, −1] + [−0.5, 0] = [−0.75, −0.5]; w = [2.25, 2.5].
	g2, err := a.Aggregate(g1, []ClientUpdate{{Client: "a", NumSamples: 5, Weights: vec(2, 2)}})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "round 2 (momentum carries over)", g2, 2.25, 2.5)

	// η = 0.5, β = 0: global − 0.5·(global − avg) = halfway.
	half, _ := NewAlgorithm("FedAvgM", []ai.Parameter{{Key: "momentum", Value: "0"}, {Key: "server_learning_rate", Value: "0.5"}})
	g, _ := half.Aggregate(vec(0, 4), []ClientUpdate{{Client: "a", NumSamples: 1, Weights: vec(2, 0)}})
	near(t, "η=0.5", g, 1, 2)

	// Without a global model the first round is FedAvg.
	first, _ := NewAlgorithm("FedAvgM", nil)
	g, _ = first.Aggregate(nil, []ClientUpdate{{Client: "a", NumSamples: 1, Weights: vec(2, 0)}, {Client: "b", NumSamples: 1, Weights: vec(0, 2)}})
	near(t, "first round", g, 1, 1)
	if m := first.(*FedAvgM); m.Momentum != 0.9 || m.ServerLearningRate != 1 {
		t.Fatalf("defaults %+v", m)
	}
}

func TestNewAlgorithmErrors(t *testing.T) {
	var unknown *ai.UnknownAlgorithmError
	if _, err := NewAlgorithm("fedavg", nil); !errors.As(err, &unknown) || !strings.Contains(err.Error(), "FedAvg, FedAvgM, FedProx") {
		t.Fatalf("unknown: %v", err)
	}
	for _, ps := range [][]ai.Parameter{
		{{Key: "momentum", Value: "1"}},
		{{Key: "momentum", Value: "-0.1"}},
		{{Key: "server_learning_rate", Value: "0"}},
		{{Key: "beta", Value: "0.9"}},
	} {
		var pe *ai.ParameterError
		if _, err := NewAlgorithm("FedAvgM", ps); !errors.As(err, &pe) {
			t.Errorf("FedAvgM %v: %v", ps, err)
		}
	}
	if a, err := NewAlgorithm("", nil); err != nil || a.Name() != NameFedAvg {
		t.Fatalf("empty name: %v %v", a, err)
	}
	mu, err := ProximalMu("FedProx", []ai.Parameter{{Key: "mu", Value: "0.1"}})
	if err != nil || mu != 0.1 {
		t.Fatalf("mu %v %v", mu, err)
	}
	if mu, _ := ProximalMu("FedAvg", nil); mu != 0 {
		t.Fatalf("FedAvg mu %v", mu)
	}
	if _, err := ProximalMu("FedProx", []ai.Parameter{{Key: "mu", Value: "-1"}}); err == nil {
		t.Fatal("negative mu accepted")
	}
}

func TestProximalTerm(t *testing.T) {
	grad := vec(1, 1, 1)
	w := vec(3, 2, 0)
	global := vec(1, 2, 4)
	// grad + 0.5·(w − global) = [1+1, 1+0, 1−2].
	if err := ProximalGradient(grad, w, global, 0.5); err != nil {
		t.Fatal(err)
	}
	near(t, "gradient", grad, 2, 1, -1)
	// (μ/2)·‖w − global‖² = 0.25·(4 + 0 + 16) = 5.
	p, err := ProximalPenalty(w, global, 0.5)
	if err != nil || p != 5 {
		t.Fatalf("penalty %v %v", p, err)
	}
	if err := ProximalGradient(grad, w, vec(1, 2), 0.5); !errors.Is(err, tensor.ErrShapeMismatch) {
		t.Fatalf("shape mismatch: %v", err)
	}
	if err := ProximalGradient(grad, w, global, math.NaN()); err == nil {
		t.Fatal("NaN mu accepted")
	}
}

func TestTargetMetric(t *testing.T) {
	tm, err := ParseTargetMetric("accuracy", ">=", "0.88")
	if err != nil {
		t.Fatal(err)
	}
	if tm.Met(map[string]float64{"accuracy": 0.87}) || !tm.Met(map[string]float64{"accuracy": 0.88}) || tm.Met(map[string]float64{"loss": 1}) {
		t.Fatal("comparison")
	}
	lt, _ := ParseTargetMetric("loss", "<", "0.3")
	if !lt.Met(map[string]float64{"loss": 0.29}) || lt.Met(map[string]float64{"loss": 0.3}) {
		t.Fatal("less than")
	}
	for _, bad := range [][3]string{{"", ">=", "1"}, {"a", "=>", "1"}, {"a", ">", "0.9x"}, {"a", ">", "NaN"}} {
		if _, err := ParseTargetMetric(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if err := (StopCondition{}).Validate(); err == nil {
		t.Fatal("empty stop condition accepted")
	}
}
