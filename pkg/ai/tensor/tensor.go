package tensor

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Tensor is a dense float32 array in row-major order. Shape nil or empty
// is a scalar (one value).
type Tensor struct {
	Shape []int
	Data  []float32
}

// New returns a zero tensor of the given shape.
func New(shape ...int) Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return Tensor{Shape: slices.Clone(shape), Data: make([]float32, n)}
}

// Size is the number of values the shape holds.
func Size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Validate checks that the shape has no negative dimension and that Data
// holds exactly as many values as the shape.
func (t Tensor) Validate() error {
	for i, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("dimension %d is %d; dimensions must not be negative", i, d)
		}
	}
	if n := Size(t.Shape); n != len(t.Data) {
		return fmt.Errorf("shape %v holds %d values but the tensor has %d", t.Shape, n, len(t.Data))
	}
	return nil
}

// Clone returns a deep copy.
func (t Tensor) Clone() Tensor {
	return Tensor{Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
}

// Weights is a model's parameters: one tensor per variable, in a fixed
// order both sides agree on.
type Weights []Tensor

// Clone returns a deep copy.
func (w Weights) Clone() Weights {
	if w == nil {
		return nil
	}
	out := make(Weights, len(w))
	for i, t := range w {
		out[i] = t.Clone()
	}
	return out
}

// Len is the total number of values.
func (w Weights) Len() int {
	n := 0
	for _, t := range w {
		n += len(t.Data)
	}
	return n
}

// Validate checks every tensor.
func (w Weights) Validate() error {
	for i, t := range w {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("tensor %d: %w", i, err)
		}
	}
	return nil
}

// ErrShapeMismatch is returned (wrapped) when two Weights do not have the
// same tensor count and shapes.
var ErrShapeMismatch = errors.New("weights do not have the same shapes")

// SameShape reports whether o has the same number of tensors with the same
// shapes as w, and if not, the first difference.
func (w Weights) SameShape(o Weights) error {
	if len(w) != len(o) {
		return fmt.Errorf("%w: %d tensors against %d", ErrShapeMismatch, len(o), len(w))
	}
	for i := range w {
		if !slices.Equal(w[i].Shape, o[i].Shape) && (len(w[i].Shape) != 0 || len(o[i].Shape) != 0) {
			return fmt.Errorf("%w: tensor %d has shape %v, want %v", ErrShapeMismatch, i, o[i].Shape, w[i].Shape)
		}
		if len(w[i].Data) != len(o[i].Data) {
			return fmt.Errorf("%w: tensor %d has %d values, want %d", ErrShapeMismatch, i, len(o[i].Data), len(w[i].Data))
		}
	}
	return nil
}

// ErrNotFinite is returned (wrapped) by CheckFinite.
var ErrNotFinite = errors.New("weights contain NaN or infinity")

// CheckFinite reports the first NaN or infinite value.
func (w Weights) CheckFinite() error {
	for i, t := range w {
		for j, v := range t.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%w: tensor %d value %d is %v", ErrNotFinite, i, j, v)
			}
		}
	}
	return nil
}
