package dataset

import (
	"errors"
	"fmt"
)

// MaxClasses is the largest number of classes a Set can label: labels are
// bytes.
const MaxClasses = 256

// Set is a labelled data set held in memory: Len() samples of Dim float32
// features each, stored row-major in X, with labels Y in [0, Classes).
//
// A Set is a plain value: methods never modify it, and Subset and Shuffled
// return copies, so shards can be handed to concurrent trainers.
type Set struct {
	// X holds sample i in X[i*Dim : (i+1)*Dim].
	X []float32
	// Y holds the label of sample i.
	Y []uint8
	// Dim is the number of features per sample (784 for 28×28 images).
	Dim int
	// Classes is the number of classes; every label is below it.
	Classes int
}

// Len is the number of samples.
func (s *Set) Len() int { return len(s.Y) }

// Sample returns the features of sample i, sharing memory with s.X.
func (s *Set) Sample(i int) []float32 { return s.X[i*s.Dim : (i+1)*s.Dim : (i+1)*s.Dim] }

// Validate checks that the fields are consistent: a positive Dim, Classes in
// [1, MaxClasses], Dim features per label and every label below Classes.
func (s *Set) Validate() error {
	switch {
	case s == nil:
		return errors.New("dataset: nil set")
	case s.Dim <= 0:
		return fmt.Errorf("dataset: set has feature dimension %d, want > 0", s.Dim)
	case s.Classes < 1 || s.Classes > MaxClasses:
		return fmt.Errorf("dataset: set has %d classes, want 1 to %d", s.Classes, MaxClasses)
	case len(s.X) != len(s.Y)*s.Dim:
		return fmt.Errorf("dataset: set has %d features for %d samples of dimension %d", len(s.X), len(s.Y), s.Dim)
	}
	for i, y := range s.Y {
		if int(y) >= s.Classes {
			return fmt.Errorf("dataset: sample %d has label %d, want below %d", i, y, s.Classes)
		}
	}
	return nil
}

// Subset returns a copy of the samples at the given indices, in that order.
// It panics if an index is out of range, like a slice expression.
func (s *Set) Subset(indices []int) *Set {
	out := &Set{
		X:       make([]float32, 0, len(indices)*s.Dim),
		Y:       make([]uint8, 0, len(indices)),
		Dim:     s.Dim,
		Classes: s.Classes,
	}
	for _, i := range indices {
		out.X = append(out.X, s.Sample(i)...)
		out.Y = append(out.Y, s.Y[i])
	}
	return out
}

// Shuffled returns a copy of s with its samples in the order of
// Permutation(s.Len(), seed).
func (s *Set) Shuffled(seed uint64) *Set {
	return s.Subset(Permutation(s.Len(), seed))
}

// ClassCounts returns the number of samples of each class.
func (s *Set) ClassCounts() []int {
	return classCounts(s.Y, s.Classes)
}

func classCounts(labels []uint8, classes int) []int {
	counts := make([]int, classes)
	for _, y := range labels {
		if int(y) < classes {
			counts[y]++
		}
	}
	return counts
}

// FromIDX builds a Set from an IDX file of images (n items of any shape)
// and an IDX file of n labels, scaling each byte b to float32(b)/255, so
// features lie in [0, 1]. Every label must be below classes.
func FromIDX(images, labels *IDX, classes int) (*Set, error) {
	switch {
	case len(images.Dims) < 2:
		return nil, fmt.Errorf("dataset: images have dimensions %v, want at least two (count, features…)", images.Dims)
	case len(labels.Dims) != 1:
		return nil, fmt.Errorf("dataset: labels have dimensions %v, want one (count)", labels.Dims)
	case images.Count() != labels.Count():
		return nil, fmt.Errorf("dataset: %d images but %d labels", images.Count(), labels.Count())
	}
	s := &Set{
		X:       Normalize(images.Data),
		Y:       append([]uint8(nil), labels.Data...),
		Dim:     images.ItemSize(),
		Classes: classes,
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Normalize maps bytes to float32 features in [0, 1]: b ↦ float32(b)/255.
func Normalize(b []byte) []float32 {
	out := make([]float32, len(b))
	for i, v := range b {
		out[i] = float32(v) / 255
	}
	return out
}
