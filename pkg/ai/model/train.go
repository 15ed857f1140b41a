package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"

	"github.com/verge-edge/verge/pkg/ai/dataset"
)

// TrainConfig configures one Train call: mini-batch SGD with heavy-ball
// momentum on the mean cross-entropy of each batch.
//
// For every parameter w with gradient g (of the batch's mean loss), every
// batch applies
//
//	g' = g + WeightDecay·w (weights only, not biases) + ProxMu·(w − w_center)
//	v  = Momentum·v + g'
//	w  = w − LearningRate·v
//
// with v starting at zero in every Train call. ProxMu > 0 adds FedProx's
// proximal term μ/2·‖w − w_center‖² to the loss; w_center is ProxCenter, or
// the weights at the start of the call when ProxCenter is nil — which is the
// global model when a federated client calls SetWeights then Train.
type TrainConfig struct {
	// Epochs is the number of passes over the set, at least 1.
	Epochs int
	// MaxBatches, when positive, stops training after that many batches
	// in total, possibly inside an epoch (FL "local steps").
	MaxBatches int
	// BatchSize is the number of samples per batch; the last batch of an
	// epoch may be smaller.
	BatchSize int
	// LearningRate is the step size, > 0.
	LearningRate float64
	// Momentum is the heavy-ball coefficient in [0, 1); 0 is plain SGD.
	Momentum float64
	// WeightDecay is the L2 coefficient on weights, ≥ 0.
	WeightDecay float64
	// LRDecay, in (0, 1], multiplies the learning rate after each epoch
	// of the call; 0 means 1 (constant rate).
	LRDecay float64
	// ProxMu is FedProx's μ ≥ 0; 0 disables the proximal term.
	ProxMu float64
	// ProxCenter, when not nil, is the w_center of the proximal term; it
	// must hold the model's tensors (see SetWeights).
	ProxCenter []Tensor
	// Seed selects the batch order: epoch e of the call visits the samples
	// in the order of dataset.Permutation(n, s_e), where s_e is derived
	// from Seed and e. Vary it between calls (e.g. the FL round) to get
	// different orders.
	Seed uint64
	// Workers is the number of goroutines for the matrix products; 0
	// means GOMAXPROCS. The trained weights do not depend on it.
	Workers int
}

// EdgeTrainConfig returns the settings used for the edge model (softmax
// regression): 8 epochs, batches of 64, learning rate 0.03 decaying by
// 0.75 per epoch, momentum 0.9.
func EdgeTrainConfig() TrainConfig {
	return TrainConfig{Epochs: 8, BatchSize: 64, LearningRate: 0.03, Momentum: 0.9, LRDecay: 0.75}
}

// CloudTrainConfig returns the settings used for the cloud model (the
// MLP): 8 epochs, batches of 64, learning rate 0.05 decaying by 0.75 per
// epoch, momentum 0.9.
func CloudTrainConfig() TrainConfig {
	return TrainConfig{Epochs: 8, BatchSize: 64, LearningRate: 0.05, Momentum: 0.9, LRDecay: 0.75}
}

// Validate checks the ranges documented on the fields.
func (c TrainConfig) Validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("model: train config: %s is %v, want %s", field, v, want)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.Epochs < 1:
		return bad("Epochs", c.Epochs, "at least 1")
	case c.MaxBatches < 0:
		return bad("MaxBatches", c.MaxBatches, "0 (no limit) or more")
	case c.BatchSize < 1:
		return bad("BatchSize", c.BatchSize, "at least 1")
	case !finite(c.LearningRate) || c.LearningRate <= 0:
		return bad("LearningRate", c.LearningRate, "a positive number")
	case !finite(c.Momentum) || c.Momentum < 0 || c.Momentum >= 1:
		return bad("Momentum", c.Momentum, "0 to below 1")
	case !finite(c.WeightDecay) || c.WeightDecay < 0:
		return bad("WeightDecay", c.WeightDecay, "0 or more")
	case !finite(c.LRDecay) || c.LRDecay < 0 || c.LRDecay > 1:
		return bad("LRDecay", c.LRDecay, "0 (none) or in (0, 1]")
	case !finite(c.ProxMu) || c.ProxMu < 0:
		return bad("ProxMu", c.ProxMu, "0 or more")
	case c.Workers < 0:
		return bad("Workers", c.Workers, "0 (GOMAXPROCS) or more")
	}
	return nil
}

// TrainResult describes a Train call.
type TrainResult struct {
	// Epochs is the number of epochs begun (the last may be partial).
	Epochs int
	// Batches is the number of batches applied.
	Batches int
	// Samples is the number of per-sample gradients computed.
	Samples int
	// Loss is the mean training cross-entropy of each epoch begun,
	// measured on each batch before its update.
	Loss []float64
}

// Train runs mini-batch SGD on set as cfg says. Given the same starting
// weights, set, cfg (whatever cfg.Workers) and platform, the resulting
// weights are bit-identical.
//
// Cancelling ctx stops training between batches; Train then returns the
// result so far and ctx's error, and the model keeps the weights after the
// last batch applied. Other errors (a bad config, a set that does not fit)
// leave the model unchanged.
func (m *Model) Train(ctx context.Context, set *dataset.Set, cfg TrainConfig) (TrainResult, error) {
	if err := cfg.Validate(); err != nil {
		return TrainResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkSet(set); err != nil {
		return TrainResult{}, err
	}
	if set.Len() == 0 {
		return TrainResult{}, errors.New("model: train on an empty set")
	}
	t, err := m.newTrainer(cfg, min(cfg.BatchSize, set.Len()))
	if err != nil {
		return TrainResult{}, err
	}

	var res TrainResult
	lr := cfg.LearningRate
	for epoch := range cfg.Epochs {
		if cfg.MaxBatches > 0 && res.Batches >= cfg.MaxBatches {
			break
		}
		order := dataset.Permutation(set.Len(), mix(cfg.Seed, uint64(epoch)+2))
		res.Epochs++
		lossSum, seen := 0.0, 0
		for lo := 0; lo < len(order); lo += cfg.BatchSize {
			if cfg.MaxBatches > 0 && res.Batches >= cfg.MaxBatches {
				break
			}
			if err := ctx.Err(); err != nil {
				res.Loss = append(res.Loss, lossSum/float64(max(seen, 1)))
				return res, fmt.Errorf("model: training stopped after %d batches: %w", res.Batches, err)
			}
			batch := order[lo:min(lo+cfg.BatchSize, len(order))]
			lossSum += t.step(set, batch, float32(lr))
			seen += len(batch)
			res.Batches++
			res.Samples += len(batch)
		}
		res.Loss = append(res.Loss, lossSum/float64(max(seen, 1)))
		if cfg.LRDecay > 0 {
			lr *= cfg.LRDecay
		}
	}
	return res, nil
}

// trainer holds the buffers of one Train call.
type trainer struct {
	m       *Model
	cfg     TrainConfig
	workers int

	x, xT         []float32   // batch inputs, row-major and transposed
	acts          [][]float32 // layer outputs, batch×out
	delta, deltaN []float32   // gradient w.r.t. a layer's pre-activation; next one down
	deltaT, inT   []float32   // transposes for the weight gradient
	wT            []float32   // a layer's weights transposed
	gw, gb        [][]float32 // gradients per layer
	vw, vb        [][]float32 // momentum per layer
	cw, cb        [][]float32 // proximal centre per layer, nil without FedProx
}

func (m *Model) newTrainer(cfg TrainConfig, batch int) (*trainer, error) {
	workers := cfg.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	t := &trainer{m: m, cfg: cfg, workers: workers, acts: m.activations(batch)}
	widest, widestIn := 0, 0
	for _, l := range m.layers {
		widest = max(widest, l.out, l.in)
		widestIn = max(widestIn, l.in)
		t.gw = append(t.gw, make([]float32, len(l.w)))
		t.gb = append(t.gb, make([]float32, len(l.b)))
		t.vw = append(t.vw, make([]float32, len(l.w)))
		t.vb = append(t.vb, make([]float32, len(l.b)))
	}
	t.x = make([]float32, batch*m.arch.Inputs)
	t.xT = make([]float32, batch*m.arch.Inputs)
	t.delta = make([]float32, batch*widest)
	t.deltaN = make([]float32, batch*widest)
	t.deltaT = make([]float32, batch*widest)
	t.inT = make([]float32, batch*widestIn)
	t.wT = make([]float32, m.maxWeights())
	if cfg.ProxMu > 0 {
		center := cfg.ProxCenter
		if center == nil {
			center = m.weightsLocked()
		}
		byName, err := m.matchTensors(center)
		if err != nil {
			return nil, fmt.Errorf("model: FedProx centre: %w", err)
		}
		for i := range m.layers {
			t.cw = append(t.cw, slices.Clone(byName[weightName(i)].Data))
			t.cb = append(t.cb, slices.Clone(byName[biasName(i)].Data))
		}
	}
	return t, nil
}

func (m *Model) maxWeights() int {
	n := 0
	for _, l := range m.layers {
		n = max(n, len(l.w))
	}
	return n
}

// step computes the gradient of the mean cross-entropy over the samples at
// batch, applies one update and returns the summed loss before the update.
func (t *trainer) step(set *dataset.Set, batch []int, lr float32) float64 {
	m, n := t.m, len(batch)
	in := m.arch.Inputs
	labels := make([]uint8, n)
	for r, idx := range batch {
		copy(t.x[r*in:(r+1)*in], set.Sample(idx))
		labels[r] = set.Y[idx]
	}
	x := t.x[:n*in]
	logits := m.forward(x, n, t.acts, t.workers)
	loss := softmaxRows(logits, n, m.arch.Classes, labels)

	// Gradient of the mean loss w.r.t. the logits: (p − onehot)/n.
	classes := m.arch.Classes
	delta := t.delta[:n*classes]
	scale := 1 / float32(n)
	for r := range n {
		row := logits[r*classes : (r+1)*classes]
		d := delta[r*classes : (r+1)*classes]
		for j, p := range row {
			d[j] = p * scale
		}
		d[labels[r]] -= scale
	}

	for li := len(m.layers) - 1; li >= 0; li-- {
		l := m.layers[li]
		input := x
		if li > 0 {
			input = t.acts[li-1][:n*l.in]
		}
		// dW = deltaᵀ·input: element (o, i) sums over the batch in order.
		deltaT, inT := t.deltaT[:l.out*n], t.inT[:l.in*n]
		transpose(deltaT, delta, n, l.out)
		transpose(inT, input, n, l.in)
		gemmNT(t.gw[li], deltaT, inT, l.out, l.in, n, t.workers)
		gb := t.gb[li]
		for o := range gb {
			gb[o] = 0
		}
		for r := range n {
			for o, d := range delta[r*l.out : (r+1)*l.out] {
				gb[o] += d
			}
		}
		if li == 0 {
			break
		}
		// delta of the layer below = (delta·W) ⊙ [its output > 0].
		wT := t.wT[:len(l.w)]
		transpose(wT, l.w, l.out, l.in)
		below := t.deltaN[:n*l.in]
		gemmNT(below, delta, wT, n, l.in, l.out, t.workers)
		for j, a := range input {
			if a <= 0 {
				below[j] = 0
			}
		}
		delta, t.delta, t.deltaN = below, t.deltaN, t.delta
	}
	t.update(lr)
	return loss
}

// update applies the gradients held in gw and gb.
func (t *trainer) update(lr float32) {
	mom, wd, mu := float32(t.cfg.Momentum), float32(t.cfg.WeightDecay), float32(t.cfg.ProxMu)
	for li := range t.m.layers {
		l := &t.m.layers[li]
		var cw, cb []float32
		if t.cw != nil {
			cw, cb = t.cw[li], t.cb[li]
		}
		sgdStep(l.w, t.gw[li], t.vw[li], cw, lr, mom, wd, mu)
		sgdStep(l.b, t.gb[li], t.vb[li], cb, lr, mom, 0, mu)
	}
}

// sgdStep applies g' = g + wd·w + mu·(w − c); v = mom·v + g'; w −= lr·v.
// c is ignored when nil. Like the kernels, it is exempt from the race
// detector (see kernel.go); it runs on the training goroutine only.
//
//go:norace
func sgdStep(w, g, v, c []float32, lr, mom, wd, mu float32) {
	g, v = g[:len(w)], v[:len(w)]
	if c != nil {
		c = c[:len(w)]
	}
	for i, wi := range w {
		gi := g[i] + wd*wi
		if c != nil {
			gi += mu * (wi - c[i])
		}
		vi := mom*v[i] + gi
		v[i] = vi
		w[i] = wi - lr*vi
	}
}
