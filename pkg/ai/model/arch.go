package model

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Limits on an Arch, so that a corrupt or hostile model file cannot make a
// reader allocate without bound.
const (
	maxLayerWidth = 1 << 14
	maxHidden     = 16
	maxParams     = 1 << 28
)

// Arch is a network shape: Inputs features, fully connected hidden layers
// of the given widths with ReLU, and a softmax over Classes outputs. No
// hidden layers makes it multinomial logistic (softmax) regression.
type Arch struct {
	Inputs  int
	Hidden  []int
	Classes int
}

// EdgeArch is the small edge model: softmax regression on 28×28 images,
// 784→10 (7,850 parameters).
func EdgeArch() Arch { return Arch{Inputs: 784, Classes: 10} }

// CloudArch is the larger cloud model: an MLP 784→256→128→10 with ReLU
// (235,146 parameters).
func CloudArch() Arch { return Arch{Inputs: 784, Hidden: []int{256, 128}, Classes: 10} }

// String writes the layer widths joined by "-", e.g. "784-256-128-10".
func (a Arch) String() string {
	parts := []string{strconv.Itoa(a.Inputs)}
	for _, h := range a.Hidden {
		parts = append(parts, strconv.Itoa(h))
	}
	return strings.Join(append(parts, strconv.Itoa(a.Classes)), "-")
}

// Validate checks that every width is positive and that the network is not
// absurdly large (at most 16 hidden layers, 16,384 units per layer and 2^28
// parameters).
func (a Arch) Validate() error {
	if a.Inputs < 1 || a.Inputs > maxLayerWidth {
		return fmt.Errorf("model: arch %s: %d inputs, want 1 to %d", a, a.Inputs, maxLayerWidth)
	}
	if a.Classes < 2 || a.Classes > maxLayerWidth {
		return fmt.Errorf("model: arch %s: %d classes, want 2 to %d", a, a.Classes, maxLayerWidth)
	}
	if len(a.Hidden) > maxHidden {
		return fmt.Errorf("model: arch %s: %d hidden layers, want at most %d", a, len(a.Hidden), maxHidden)
	}
	for i, h := range a.Hidden {
		if h < 1 || h > maxLayerWidth {
			return fmt.Errorf("model: arch %s: hidden layer %d has width %d, want 1 to %d", a, i, h, maxLayerWidth)
		}
	}
	// Count in int64: on 32-bit platforms the sum could overflow an int.
	var n int64
	for _, l := range a.layers() {
		n += int64(l.out)*int64(l.in) + int64(l.out)
	}
	if n > maxParams {
		return fmt.Errorf("model: arch %s: %d parameters, want at most %d", a, n, maxParams)
	}
	return nil
}

// NumParams is the number of weights and biases of a valid Arch.
func (a Arch) NumParams() int {
	n := 0
	for _, l := range a.layers() {
		n += l.out*l.in + l.out
	}
	return n
}

// Equal reports whether a and b describe the same network.
func (a Arch) Equal(b Arch) bool {
	return a.Inputs == b.Inputs && a.Classes == b.Classes && slices.Equal(a.Hidden, b.Hidden)
}

func (a Arch) clone() Arch {
	a.Hidden = slices.Clone(a.Hidden)
	return a
}

type layerShape struct{ in, out int }

func (a Arch) layers() []layerShape {
	widths := append(append([]int{a.Inputs}, a.Hidden...), a.Classes)
	out := make([]layerShape, len(widths)-1)
	for i := range out {
		out[i] = layerShape{in: widths[i], out: widths[i+1]}
	}
	return out
}
