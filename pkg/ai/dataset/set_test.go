package dataset

import (
	"slices"
	"strings"
	"testing"
)

func TestSetSubsetShuffledValidate(t *testing.T) {
	s := &Set{X: []float32{0, 0.1, 1, 1.1, 2, 2.1, 3, 3.1}, Y: []uint8{0, 1, 2, 1}, Dim: 2, Classes: 3}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	sub := s.Subset([]int{3, 0})
	if !slices.Equal(sub.X, []float32{3, 3.1, 0, 0.1}) || !slices.Equal(sub.Y, []uint8{1, 0}) || sub.Dim != 2 || sub.Classes != 3 {
		t.Fatalf("Subset = %+v", sub)
	}
	sub.X[0] = 99
	if s.X[6] != 3 {
		t.Fatal("Subset shares memory with its source")
	}
	if got := s.ClassCounts(); !slices.Equal(got, []int{1, 2, 1}) {
		t.Fatalf("ClassCounts = %v", got)
	}

	sh := s.Shuffled(9)
	if !slices.Equal(sh.Y, s.Subset(Permutation(4, 9)).Y) {
		t.Fatal("Shuffled does not follow Permutation")
	}
	for i := range sh.Len() {
		// Features travel with their label: sample value v has label ⌊v⌋ mod 3 here except 3→1.
		x := sh.Sample(i)
		if want := s.Y[int(x[0])]; sh.Y[i] != want {
			t.Fatalf("sample %d: label %d, want %d", i, sh.Y[i], want)
		}
	}

	for _, tc := range []struct {
		set     *Set
		problem string
	}{
		{nil, "nil set"},
		{&Set{Dim: 0, Classes: 2}, "dimension 0"},
		{&Set{Dim: 1, Classes: 0}, "0 classes"},
		{&Set{X: []float32{1}, Y: []uint8{0, 1}, Dim: 1, Classes: 2}, "1 features for 2 samples"},
		{&Set{X: []float32{1, 2}, Y: []uint8{0, 2}, Dim: 1, Classes: 2}, "sample 1 has label 2"},
	} {
		if err := tc.set.Validate(); err == nil || !strings.Contains(err.Error(), tc.problem) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.set, err, tc.problem)
		}
	}
}

func TestFromIDX(t *testing.T) {
	images := &IDX{Dims: []int{2, 1, 3}, Data: []byte{0, 255, 51, 102, 153, 204}}
	labels := &IDX{Dims: []int{2}, Data: []byte{1, 0}}
	s, err := FromIDX(images, labels, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dim != 3 || !slices.Equal(s.X, []float32{0, 1, 0.2, 0.4, 0.6, 0.8}) || !slices.Equal(s.Y, []uint8{1, 0}) {
		t.Fatalf("FromIDX = %+v", s)
	}
	if _, err := FromIDX(images, &IDX{Dims: []int{3}, Data: []byte{0, 0, 0}}, 2); err == nil {
		t.Fatal("accepted 3 labels for 2 images")
	}
	if _, err := FromIDX(images, labels, 1); err == nil {
		t.Fatal("accepted label 1 with 1 class")
	}
	if _, err := FromIDX(labels, labels, 2); err == nil {
		t.Fatal("accepted one-dimensional images")
	}
}
