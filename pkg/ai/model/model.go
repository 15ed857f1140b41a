package model

import (
	"fmt"
	"math"
	"slices"
	"sync"
)

// Tensor is a named array of float32 values in row-major order. The
// federated-learning layer averages models tensor by tensor.
type Tensor struct {
	// Name identifies the tensor within a model: "dense<i>/weight" (shape
	// [out, in]) or "dense<i>/bias" (shape [out]) for layer i from 0.
	Name  string
	Shape []int
	Data  []float32
}

// Len is the number of values the shape holds.
func (t Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Clone returns a deep copy.
func (t Tensor) Clone() Tensor {
	return Tensor{Name: t.Name, Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
}

// dense is one fully connected layer: out = W·in + b, W stored [out][in].
type dense struct {
	in, out int
	w, b    []float32
}

// Model is a classifier: a stack of dense layers with ReLU between them and
// a softmax at the end (see Arch).
//
// A Model is safe for concurrent use: Predict, PredictBatch, Evaluate,
// Weights and MarshalBinary take a read lock, Train and SetWeights a write
// lock, so a long Train call holds up prediction on the same Model until it
// returns. Serve from one Model and train a Clone to avoid that.
type Model struct {
	mu     sync.RWMutex
	arch   Arch
	layers []dense
}

// New returns a model of the given shape with initial weights drawn from
// seed: hidden layers He-normal (N(0, 2/in)), the output layer N(0, 1/in),
// biases zero. The same arch and seed give bit-identical weights.
func New(arch Arch, seed uint64) (*Model, error) {
	if err := arch.Validate(); err != nil {
		return nil, err
	}
	m := newZero(arch)
	r := &splitMix64{state: mix(seed, 1)}
	for i, l := range m.layers {
		variance := 2.0
		if i == len(m.layers)-1 {
			variance = 1.0
		}
		std := math.Sqrt(variance / float64(l.in))
		for j := range l.w {
			l.w[j] = float32(std * r.normal())
		}
	}
	return m, nil
}

// newZero returns a model of a validated arch with all parameters zero.
func newZero(arch Arch) *Model {
	m := &Model{arch: arch.clone()}
	for _, s := range arch.layers() {
		m.layers = append(m.layers, dense{in: s.in, out: s.out, w: make([]float32, s.out*s.in), b: make([]float32, s.out)})
	}
	return m
}

// Arch returns the model's shape.
func (m *Model) Arch() Arch { return m.arch.clone() }

// Clone returns an independent copy of the model.
func (m *Model) Clone() *Model {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c := newZero(m.arch)
	for i, l := range m.layers {
		copy(c.layers[i].w, l.w)
		copy(c.layers[i].b, l.b)
	}
	return c
}

// Weights returns a copy of the parameters as tensors, layer by layer,
// weight before bias: dense0/weight, dense0/bias, dense1/weight, …
func (m *Model) Weights() []Tensor {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.weightsLocked()
}

func (m *Model) weightsLocked() []Tensor {
	out := make([]Tensor, 0, 2*len(m.layers))
	for i, l := range m.layers {
		out = append(out,
			Tensor{Name: weightName(i), Shape: []int{l.out, l.in}, Data: slices.Clone(l.w)},
			Tensor{Name: biasName(i), Shape: []int{l.out}, Data: slices.Clone(l.b)},
		)
	}
	return out
}

// SetWeights replaces the parameters with a copy of ts, which must hold
// exactly the model's tensors (any order) with their shapes and finite
// values. On error the model is unchanged.
func (m *Model) SetWeights(ts []Tensor) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	byName, err := m.matchTensors(ts)
	if err != nil {
		return err
	}
	for i := range m.layers {
		copy(m.layers[i].w, byName[weightName(i)].Data)
		copy(m.layers[i].b, byName[biasName(i)].Data)
	}
	return nil
}

// matchTensors checks that ts are exactly the model's tensors and indexes
// them by name.
func (m *Model) matchTensors(ts []Tensor) (map[string]Tensor, error) {
	if len(ts) != 2*len(m.layers) {
		return nil, fmt.Errorf("model: %d tensors for a %s model, want %d", len(ts), m.arch, 2*len(m.layers))
	}
	byName := make(map[string]Tensor, len(ts))
	for _, t := range ts {
		if _, dup := byName[t.Name]; dup {
			return nil, fmt.Errorf("model: tensor %q given twice", t.Name)
		}
		byName[t.Name] = t
	}
	for i, l := range m.layers {
		for _, want := range []struct {
			name  string
			shape []int
		}{{weightName(i), []int{l.out, l.in}}, {biasName(i), []int{l.out}}} {
			t, ok := byName[want.name]
			if !ok {
				return nil, fmt.Errorf("model: tensor %q missing for a %s model", want.name, m.arch)
			}
			if !slices.Equal(t.Shape, want.shape) || len(t.Data) != t.Len() {
				return nil, fmt.Errorf("model: tensor %q has shape %v and %d values, want shape %v", t.Name, t.Shape, len(t.Data), want.shape)
			}
			for j, v := range t.Data {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return nil, fmt.Errorf("model: tensor %q value %d is %v", t.Name, j, v)
				}
			}
		}
	}
	return byName, nil
}

func weightName(layer int) string { return fmt.Sprintf("dense%d/weight", layer) }
func biasName(layer int) string   { return fmt.Sprintf("dense%d/bias", layer) }
