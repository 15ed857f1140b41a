package model

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/verge-edge/verge/pkg/ai/dataset"
)

// randomSet returns n samples of dim features in [0, 1) with labels below
// classes, drawn from seed.
func randomSet(n, dim, classes int, seed uint64) *dataset.Set {
	r := &splitMix64{state: seed}
	s := &dataset.Set{X: make([]float32, n*dim), Y: make([]uint8, n), Dim: dim, Classes: classes}
	for i := range s.X {
		s.X[i] = float32(r.float64())
	}
	for i := range s.Y {
		s.Y[i] = uint8(r.next() % uint64(classes))
	}
	return s
}

// refLoss is an independent float64 implementation of the network's mean
// cross-entropy, for the gradient check.
func refLoss(arch Arch, w map[string][]float64, set *dataset.Set) float64 {
	total := 0.0
	widths := append(append([]int{arch.Inputs}, arch.Hidden...), arch.Classes)
	for s := range set.Len() {
		act := make([]float64, arch.Inputs)
		for i, v := range set.Sample(s) {
			act[i] = float64(v)
		}
		for l := 0; l+1 < len(widths); l++ {
			in, out := widths[l], widths[l+1]
			next := make([]float64, out)
			for o := range out {
				z := w[biasName(l)][o]
				for i := range in {
					z += w[weightName(l)][o*in+i] * act[i]
				}
				if l+2 < len(widths) {
					z = math.Max(z, 0)
				}
				next[o] = z
			}
			act = next
		}
		peak := slices.Max(act)
		sum := 0.0
		for _, z := range act {
			sum += math.Exp(z - peak)
		}
		total += math.Log(sum) - (act[set.Y[s]] - peak)
	}
	return total / float64(set.Len())
}

func TestGradientMatchesNumericalGradient(t *testing.T) {
	for _, arch := range []Arch{
		{Inputs: 6, Classes: 3},
		{Inputs: 5, Hidden: []int{7, 4}, Classes: 3},
	} {
		t.Run(arch.String(), func(t *testing.T) {
			m, err := New(arch, 7)
			if err != nil {
				t.Fatal(err)
			}
			// Non-zero biases, so that their gradients are exercised too.
			ts := m.Weights()
			r := &splitMix64{state: 11}
			for _, tensor := range ts {
				if strings.HasSuffix(tensor.Name, "/bias") {
					for i := range tensor.Data {
						tensor.Data[i] = float32(0.3 * r.normal())
					}
				}
			}
			if err := m.SetWeights(ts); err != nil {
				t.Fatal(err)
			}
			set := randomSet(9, arch.Inputs, arch.Classes, 5)
			batch := make([]int, set.Len())
			for i := range batch {
				batch[i] = i
			}
			tr, err := m.newTrainer(TrainConfig{BatchSize: len(batch)}, len(batch))
			if err != nil {
				t.Fatal(err)
			}
			loss := tr.step(set, batch, 0) // a zero step keeps the weights

			w := map[string][]float64{}
			for _, tensor := range m.Weights() {
				for _, v := range tensor.Data {
					w[tensor.Name] = append(w[tensor.Name], float64(v))
				}
			}
			if ref := refLoss(arch, w, set); math.Abs(loss/float64(len(batch))-ref) > 1e-5 {
				t.Fatalf("mean loss %v, reference %v", loss/float64(len(batch)), ref)
			}
			const eps = 1e-5
			checked := 0
			for li := range m.layers {
				for _, g := range []struct {
					name     string
					analytic []float32
				}{{weightName(li), tr.gw[li]}, {biasName(li), tr.gb[li]}} {
					for i := range w[g.name] {
						orig := w[g.name][i]
						w[g.name][i] = orig + eps
						up := refLoss(arch, w, set)
						w[g.name][i] = orig - eps
						down := refLoss(arch, w, set)
						w[g.name][i] = orig
						numeric := (up - down) / (2 * eps)
						if diff := math.Abs(float64(g.analytic[i]) - numeric); diff > 1e-4+1e-3*math.Abs(numeric) {
							t.Fatalf("%s[%d]: analytic gradient %v, numerical %v", g.name, i, g.analytic[i], numeric)
						}
						checked++
					}
				}
			}
			if checked != arch.NumParams() {
				t.Fatalf("checked %d gradients, want %d", checked, arch.NumParams())
			}
		})
	}
}

func TestSGDStepWithWeightDecayMomentumAndProx(t *testing.T) {
	w := []float32{1, -2}
	v := []float32{0, 0}
	center := []float32{0.5, -2}
	g := []float32{0.5, 1}
	// g' = g + 0.1·w + 2·(w − c) = {0.5+0.1+1, 1−0.2+0} = {1.6, 0.8}; v = g'.
	sgdStep(w, g, v, center, 0.25, 0.5, 0.1, 2)
	if want := []float32{1 - 0.25*1.6, -2 - 0.25*0.8}; !closeAll(w, want, 1e-6) || !closeAll(v, []float32{1.6, 0.8}, 1e-6) {
		t.Fatalf("after step 1: w=%v v=%v, want w=%v v=[1.6 0.8]", w, v, want)
	}
	// Second step without decay or prox: v = 0.5·v + g.
	sgdStep(w, g, v, nil, 0.25, 0.5, 0, 0)
	if wantV := []float32{0.8 + 0.5, 0.4 + 1}; !closeAll(v, wantV, 1e-6) {
		t.Fatalf("after step 2: v=%v, want %v", v, wantV)
	}
}

func closeAll(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > tol {
			return false
		}
	}
	return true
}

func weightsEqual(a, b []Tensor) bool {
	return slices.EqualFunc(a, b, func(x, y Tensor) bool {
		return x.Name == y.Name && slices.Equal(x.Shape, y.Shape) && slices.Equal(x.Data, y.Data)
	})
}

func TestNewIsDeterministic(t *testing.T) {
	a, _ := New(CloudArch(), 1)
	b, _ := New(CloudArch(), 1)
	c, _ := New(CloudArch(), 2)
	if !weightsEqual(a.Weights(), b.Weights()) {
		t.Fatal("same seed, different initial weights")
	}
	if weightsEqual(a.Weights(), c.Weights()) {
		t.Fatal("different seeds, same initial weights")
	}
	w := a.Weights()[0].Data
	mean, sq := 0.0, 0.0
	for _, v := range w {
		mean += float64(v)
		sq += float64(v) * float64(v)
	}
	mean /= float64(len(w))
	std := math.Sqrt(sq/float64(len(w)) - mean*mean)
	if want := math.Sqrt(2.0 / 784); math.Abs(mean) > 0.001 || math.Abs(std-want)/want > 0.02 {
		t.Fatalf("first layer: mean %v std %v, want He-normal std %v", mean, std, want)
	}
}

func TestTrainIsDeterministicWhateverTheWorkers(t *testing.T) {
	train := trainSubset(t, 1000)
	arch := CloudArch()
	run := func(workers int, seed uint64) []Tensor {
		m, err := New(arch, 3)
		if err != nil {
			t.Fatal(err)
		}
		cfg := TrainConfig{Epochs: 2, BatchSize: 64, LearningRate: 0.05, Momentum: 0.9, WeightDecay: 1e-4, ProxMu: 0.01, Seed: seed, Workers: workers}
		if _, err := m.Train(context.Background(), train, cfg); err != nil {
			t.Fatal(err)
		}
		return m.Weights()
	}
	want := run(1, 9)
	for _, workers := range []int{2, 3} {
		if !weightsEqual(run(workers, 9), want) {
			t.Fatalf("%d workers give different weights than 1", workers)
		}
	}
	if weightsEqual(run(2, 10), want) {
		t.Fatal("a different batch-order seed gives the same weights")
	}
}

func TestTrainStopsAtMaxBatchesAndOnCancel(t *testing.T) {
	set := randomSet(100, 8, 3, 1)
	m, _ := New(Arch{Inputs: 8, Classes: 3}, 1)
	cfg := TrainConfig{Epochs: 5, MaxBatches: 7, BatchSize: 30, LearningRate: 0.1}
	res, err := m.Train(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Epoch 1: batches of 30, 30, 30, 10; epoch 2: 30, 30, 30.
	if res.Batches != 7 || res.Epochs != 2 || res.Samples != 190 || len(res.Loss) != 2 {
		t.Fatalf("result %+v, want 7 batches over 2 epochs, 190 samples", res)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := m.Weights()
	res, err = m.Train(ctx, set, cfg)
	if !errors.Is(err, context.Canceled) || res.Batches != 0 {
		t.Fatalf("cancelled: result %+v, err %v", res, err)
	}
	if !weightsEqual(m.Weights(), before) {
		t.Fatal("a cancelled call before the first batch changed the weights")
	}
}

func TestFedProxPullsTowardsTheCentre(t *testing.T) {
	set := randomSet(400, 20, 4, 2)
	distance := func(mu float64) float64 {
		m, _ := New(Arch{Inputs: 20, Hidden: []int{8}, Classes: 4}, 1)
		start := m.Weights()
		if _, err := m.Train(context.Background(), set, TrainConfig{Epochs: 3, BatchSize: 20, LearningRate: 0.1, ProxMu: mu, Seed: 1}); err != nil {
			t.Fatal(err)
		}
		d := 0.0
		for i, tensor := range m.Weights() {
			for j, v := range tensor.Data {
				d += math.Pow(float64(v-start[i].Data[j]), 2)
			}
		}
		return math.Sqrt(d)
	}
	free, prox := distance(0), distance(1)
	if !(prox < 0.7*free) {
		t.Fatalf("distance from the start: %v with μ=1, %v without; the proximal term should keep it closer", prox, free)
	}

	// An explicit centre: training pulls towards it instead.
	m, _ := New(Arch{Inputs: 20, Classes: 4}, 1)
	centre := m.Weights()
	for _, tensor := range centre {
		for i := range tensor.Data {
			tensor.Data[i] = 1
		}
	}
	if _, err := m.Train(context.Background(), set, TrainConfig{Epochs: 30, BatchSize: 400, LearningRate: 0.05, ProxMu: 10, ProxCenter: centre}); err != nil {
		t.Fatal(err)
	}
	for _, tensor := range m.Weights() {
		for _, v := range tensor.Data {
			if math.Abs(float64(v)-1) > 0.05 {
				t.Fatalf("%s holds %v; a strong proximal term should pin it near the centre 1", tensor.Name, v)
			}
		}
	}
	bad := centre[:1]
	if _, err := m.Train(context.Background(), set, TrainConfig{Epochs: 1, BatchSize: 10, LearningRate: 0.1, ProxMu: 1, ProxCenter: bad}); err == nil || !strings.Contains(err.Error(), "FedProx") {
		t.Fatalf("a centre with missing tensors: err = %v", err)
	}
}

func TestTrainConfigValidate(t *testing.T) {
	ok := TrainConfig{Epochs: 1, BatchSize: 1, LearningRate: 0.1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		field string
		mod   func(*TrainConfig)
	}{
		{"Epochs", func(c *TrainConfig) { c.Epochs = 0 }},
		{"MaxBatches", func(c *TrainConfig) { c.MaxBatches = -1 }},
		{"BatchSize", func(c *TrainConfig) { c.BatchSize = 0 }},
		{"LearningRate", func(c *TrainConfig) { c.LearningRate = 0 }},
		{"LearningRate", func(c *TrainConfig) { c.LearningRate = math.NaN() }},
		{"Momentum", func(c *TrainConfig) { c.Momentum = 1 }},
		{"WeightDecay", func(c *TrainConfig) { c.WeightDecay = -1 }},
		{"LRDecay", func(c *TrainConfig) { c.LRDecay = 1.5 }},
		{"ProxMu", func(c *TrainConfig) { c.ProxMu = math.Inf(1) }},
		{"Workers", func(c *TrainConfig) { c.Workers = -2 }},
	} {
		cfg := ok
		c.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: err = %v", c.field, err)
		}
	}
	for _, cfg := range []TrainConfig{EdgeTrainConfig(), CloudTrainConfig()} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

func TestTrainRejectsSetsThatDoNotFit(t *testing.T) {
	m, _ := New(Arch{Inputs: 4, Classes: 3}, 1)
	cfg := TrainConfig{Epochs: 1, BatchSize: 2, LearningRate: 0.1}
	for _, set := range []*dataset.Set{
		randomSet(5, 5, 3, 1),                 // wrong dimension
		randomSet(5, 4, 4, 1),                 // too many classes
		{Dim: 4, Classes: 3},                  // empty
		{X: []float32{1}, Dim: 4, Classes: 3}, // inconsistent
	} {
		if _, err := m.Train(context.Background(), set, cfg); err == nil {
			t.Errorf("trained on %+v", set)
		}
	}
}

func TestWeightsAndSetWeights(t *testing.T) {
	m, _ := New(CloudArch(), 1)
	ts := m.Weights()
	var names []string
	for _, tensor := range ts {
		names = append(names, tensor.Name)
		if len(tensor.Data) != tensor.Len() {
			t.Fatalf("%s: %d values for shape %v", tensor.Name, len(tensor.Data), tensor.Shape)
		}
	}
	if want := []string{"dense0/weight", "dense0/bias", "dense1/weight", "dense1/bias", "dense2/weight", "dense2/bias"}; !slices.Equal(names, want) {
		t.Fatalf("names %v, want %v", names, want)
	}
	if !slices.Equal(ts[0].Shape, []int{256, 784}) || !slices.Equal(ts[5].Shape, []int{10}) {
		t.Fatalf("shapes %v, %v", ts[0].Shape, ts[5].Shape)
	}
	if n := CloudArch().NumParams(); n != 235146 {
		t.Fatalf("NumParams = %d", n)
	}

	// Weights returns copies.
	ts[0].Data[0] = 42
	if m.Weights()[0].Data[0] == 42 {
		t.Fatal("Weights shares memory with the model")
	}
	// SetWeights takes any order and copies.
	slices.Reverse(ts)
	if err := m.SetWeights(ts); err != nil {
		t.Fatal(err)
	}
	ts[len(ts)-1].Data[0] = 7
	if got := m.Weights()[0].Data[0]; got != 42 {
		t.Fatalf("weight = %v, want 42 (set, then not aliased)", got)
	}

	before := m.Weights()
	for _, tc := range []struct {
		name    string
		mod     func([]Tensor) []Tensor
		problem string
	}{
		{"missing", func(ts []Tensor) []Tensor { return ts[1:] }, "5 tensors"},
		{"renamed", func(ts []Tensor) []Tensor { ts[1].Name = "x"; return ts }, "missing"},
		{"duplicate", func(ts []Tensor) []Tensor { ts[1] = ts[0]; return ts }, "given twice"},
		{"shape", func(ts []Tensor) []Tensor { ts[0].Shape = []int{784, 256}; return ts }, "shape"},
		{"short data", func(ts []Tensor) []Tensor { ts[0].Data = ts[0].Data[:10]; return ts }, "10 values"},
		{"NaN", func(ts []Tensor) []Tensor { ts[2].Data[3] = float32(math.NaN()); return ts }, "NaN"},
	} {
		err := m.SetWeights(tc.mod(m.Weights()))
		if err == nil || !strings.Contains(err.Error(), tc.problem) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.problem)
		}
		if !weightsEqual(m.Weights(), before) {
			t.Fatalf("%s: a failed SetWeights changed the model", tc.name)
		}
	}
}

func TestArchValidate(t *testing.T) {
	for _, a := range []Arch{EdgeArch(), CloudArch(), {Inputs: 1, Classes: 2}} {
		if err := a.Validate(); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, a := range []Arch{
		{Inputs: 0, Classes: 2},
		{Inputs: 3, Classes: 1},
		{Inputs: 3, Hidden: []int{0}, Classes: 2},
		{Inputs: 1 << 15, Classes: 2},
		{Inputs: 16384, Hidden: []int{16384, 16384}, Classes: 2},
		{Inputs: 2, Hidden: make([]int, 17), Classes: 2},
	} {
		if err := a.Validate(); err == nil {
			t.Errorf("%s accepted", a)
		}
	}
	if got := CloudArch().String(); got != "784-256-128-10" {
		t.Fatalf("String = %q", got)
	}
	a := CloudArch()
	m, _ := New(a, 1)
	a.Hidden[0] = 1
	if m.Arch().Hidden[0] != 256 || !m.Arch().Equal(CloudArch()) {
		t.Fatal("the model's arch aliases the caller's")
	}
}

func TestPredictGivesProbabilities(t *testing.T) {
	m, _ := New(Arch{Inputs: 6, Hidden: []int{5}, Classes: 4}, 2)
	set := randomSet(300, 6, 4, 3) // more than one prediction chunk
	rows, err := m.PredictBatch(set.X)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 300 {
		t.Fatalf("%d rows", len(rows))
	}
	for i, p := range rows {
		sum := 0.0
		for _, v := range p {
			if v < 0 || v > 1 {
				t.Fatalf("row %d: probability %v", i, v)
			}
			sum += float64(v)
		}
		if len(p) != 4 || math.Abs(sum-1) > 1e-5 {
			t.Fatalf("row %d: %v sums to %v", i, p, sum)
		}
	}
	one, err := m.Predict(set.Sample(299))
	if err != nil || !slices.Equal(one, rows[299]) {
		t.Fatalf("Predict = %v, %v; PredictBatch row %v", one, err, rows[299])
	}
	for _, bad := range [][]float32{nil, make([]float32, 7)} {
		if _, err := m.PredictBatch(bad); err == nil {
			t.Errorf("PredictBatch accepted %d values", len(bad))
		}
	}
	if Argmax([]float32{0.1, 0.5, 0.5, 0.2}) != 1 || Argmax(nil) != -1 {
		t.Fatal("Argmax")
	}
}

func TestSoftmaxIsStableForLargeLogits(t *testing.T) {
	z := []float32{1000, 0, -1000, 1e30, 1e30, -1e30}
	loss := softmaxRows(z, 2, 3, []uint8{1, 2})
	for i, v := range z {
		if math.IsNaN(float64(v)) {
			t.Fatalf("probability %d is NaN", i)
		}
	}
	if z[0] != 1 || z[1] != 0 || z[3] != 0.5 || z[4] != 0.5 {
		t.Fatalf("probabilities %v", z)
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) || loss < 1000 {
		t.Fatalf("loss %v, want about 1000 + 2e30", loss)
	}
}

func TestPredictWhileTraining(t *testing.T) {
	// Under -race this checks the locking: predictions and weight reads
	// run while another goroutine trains the same model.
	set := randomSet(200, 10, 3, 4)
	m, _ := New(Arch{Inputs: 10, Hidden: []int{6}, Classes: 3}, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := m.Train(context.Background(), set, TrainConfig{Epochs: 100, BatchSize: 10, LearningRate: 0.1, Workers: 2}); err != nil {
			t.Error(err)
		}
	})
	for range 20 {
		if _, err := m.PredictBatch(set.X[:100]); err != nil {
			t.Fatal(err)
		}
		_ = m.Weights()
		_ = m.Clone()
	}
	wg.Wait()
}
