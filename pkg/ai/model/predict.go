package model

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/verge-edge/verge/pkg/ai/dataset"
)

// predictChunk is the number of samples one goroutine pushes through the
// network at a time when predicting.
const predictChunk = 256

// Predict returns the class probabilities (softmax outputs, summing to 1)
// of one sample of Arch().Inputs features.
func (m *Model) Predict(x []float32) ([]float32, error) {
	rows, err := m.PredictBatch(x)
	if err != nil {
		return nil, err
	}
	return rows[0], nil
}

// PredictBatch returns the class probabilities of each sample in x, which
// holds one or more samples of Arch().Inputs features back to back. Row i
// of the result belongs to sample i; the rows share one backing array.
func (m *Model) PredictBatch(x []float32) ([][]float32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	in, classes := m.arch.Inputs, m.arch.Classes
	if len(x) == 0 || len(x)%in != 0 {
		return nil, fmt.Errorf("model: %d input values are not a whole number of %d-feature samples", len(x), in)
	}
	n := len(x) / in
	probs := make([]float32, n*classes)
	m.inferLocked(x, n, probs, nil)
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = probs[i*classes : (i+1)*classes : (i+1)*classes]
	}
	return rows, nil
}

// Metrics is the result of Evaluate.
type Metrics struct {
	// Accuracy is the share of samples whose most probable class is their
	// label.
	Accuracy float64
	// Loss is the mean cross-entropy, −ln p(label).
	Loss float64
	// Samples is the number of samples evaluated.
	Samples int
}

// Evaluate returns the accuracy and mean cross-entropy of the model on set.
func (m *Model) Evaluate(set *dataset.Set) (Metrics, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.checkSet(set); err != nil {
		return Metrics{}, err
	}
	if set.Len() == 0 {
		return Metrics{}, errors.New("model: evaluate on an empty set")
	}
	n, classes := set.Len(), m.arch.Classes
	probs := make([]float32, n*classes)
	loss := m.inferLocked(set.X, n, probs, set.Y)
	correct := 0
	for i, y := range set.Y {
		if Argmax(probs[i*classes:(i+1)*classes]) == int(y) {
			correct++
		}
	}
	return Metrics{Accuracy: float64(correct) / float64(n), Loss: loss / float64(n), Samples: n}, nil
}

// checkSet reports whether set fits the model's inputs and classes.
func (m *Model) checkSet(set *dataset.Set) error {
	if err := set.Validate(); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if set.Dim != m.arch.Inputs || set.Classes > m.arch.Classes {
		return fmt.Errorf("model: a set of %d features in %d classes does not fit a %s model", set.Dim, set.Classes, m.arch)
	}
	return nil
}

// Argmax returns the index of the largest value (the first on ties), or -1
// for an empty slice.
func Argmax(p []float32) int {
	best := -1
	for i, v := range p {
		if best < 0 || v > p[best] {
			best = i
		}
	}
	return best
}

// inferLocked writes the probabilities of n samples into probs (n×Classes)
// and, when labels is not nil, returns their summed cross-entropy. Chunks
// of samples run on up to GOMAXPROCS goroutines; the loss is summed in
// chunk order, so the result does not depend on scheduling.
func (m *Model) inferLocked(x []float32, n int, probs []float32, labels []uint8) float64 {
	chunks := (n + predictChunk - 1) / predictChunk
	losses := make([]float64, chunks)
	workers := min(runtime.GOMAXPROCS(0), chunks)
	next := make(chan int, chunks)
	for c := range chunks {
		next <- c
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			acts := m.activations(min(n, predictChunk))
			for c := range next {
				lo, hi := c*predictChunk, min(n, (c+1)*predictChunk)
				var ys []uint8
				if labels != nil {
					ys = labels[lo:hi]
				}
				out := m.forward(x[lo*m.arch.Inputs:hi*m.arch.Inputs], hi-lo, acts, 1)
				losses[c] = softmaxRows(out, hi-lo, m.arch.Classes, ys)
				copy(probs[lo*m.arch.Classes:hi*m.arch.Classes], out)
			}
		})
	}
	wg.Wait()
	total := 0.0
	for _, l := range losses {
		total += l
	}
	return total
}

// activations allocates one output buffer per layer for batches of up to
// batch samples.
func (m *Model) activations(batch int) [][]float32 {
	acts := make([][]float32, len(m.layers))
	for i, l := range m.layers {
		acts[i] = make([]float32, batch*l.out)
	}
	return acts
}

// forward runs n samples x through the layers, writing layer i's output
// (after ReLU for hidden layers) into acts[i][:n*out], and returns the last
// layer's logits. It does not apply the softmax.
func (m *Model) forward(x []float32, n int, acts [][]float32, workers int) []float32 {
	in := x
	for i, l := range m.layers {
		out := acts[i][:n*l.out]
		gemmNT(out, in, l.w, n, l.out, l.in, workers)
		last := i == len(m.layers)-1
		for r := range n {
			row := out[r*l.out : (r+1)*l.out]
			for j, b := range l.b[:len(row)] {
				v := row[j] + b
				if !last && v < 0 {
					v = 0
				}
				row[j] = v
			}
		}
		in = out
	}
	return in
}

// softmaxRows turns n rows of logits into probabilities in place and
// returns Σ −ln p(label) when labels is not nil (else 0). Exponentials and
// sums are taken in float64 after subtracting the row maximum.
func softmaxRows(z []float32, n, classes int, labels []uint8) float64 {
	loss := 0.0
	for r := range n {
		row := z[r*classes : (r+1)*classes]
		peak := row[0]
		for _, v := range row[1:] {
			peak = max(peak, v)
		}
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(float64(v - peak))
		}
		logSum := math.Log(sum)
		if labels != nil {
			loss += logSum - float64(row[labels[r]]-peak)
		}
		for j, v := range row {
			row[j] = float32(math.Exp(float64(v-peak) - logSum))
		}
	}
	return loss
}
