package dataset

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The Fashion-MNIST tests read the files of the Debian package
// dataset-fashion-mnist, which CI installs (.ci/apt-packages). They fail,
// rather than skip, when it is missing, with the install hint.

func TestLoadFashionMNISTFromDebianPackage(t *testing.T) {
	for _, tc := range []struct {
		split    Split
		n        int
		perClass int
		firstTen []uint8
	}{
		{TrainSplit, 60000, 6000, []uint8{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}},
		{TestSplit, 10000, 1000, []uint8{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}},
	} {
		t.Run(string(tc.split), func(t *testing.T) {
			s, err := LoadFashionMNIST("", tc.split)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			if s.Len() != tc.n || s.Dim != FashionMNISTDim || s.Classes != 10 {
				t.Fatalf("got %d samples of %d features in %d classes, want %d of 784 in 10", s.Len(), s.Dim, s.Classes, tc.n)
			}
			if !slices.Equal(s.Y[:10], tc.firstTen) {
				t.Fatalf("first labels %v, want %v", s.Y[:10], tc.firstTen)
			}
			for c, n := range s.ClassCounts() {
				if n != tc.perClass {
					t.Fatalf("class %d has %d samples, want %d", c, n, tc.perClass)
				}
			}
			lo, hi := slices.Min(s.X), slices.Max(s.X)
			if lo != 0 || hi != 1 {
				t.Fatalf("features span [%v, %v], want [0, 1]", lo, hi)
			}
		})
	}
}

func TestLoadFashionMNISTMissingSaysHowToInstall(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadFashionMNIST(dir, TrainSplit)
	var nf *NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want a *NotFoundError matching fs.ErrNotExist", err)
	}
	for _, want := range []string{"apt-get install dataset-fashion-mnist", filepath.Join(dir, "train-images-idx3-ubyte")} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("message %q does not contain %q", err, want)
		}
	}
	if _, err := LoadFashionMNIST(dir, Split("validation")); err == nil || !strings.Contains(err.Error(), "unknown Fashion-MNIST split") {
		t.Fatalf("unknown split: err = %v", err)
	}
}

// writeFashionFixture writes a tiny plain-IDX Fashion-MNIST split into dir.
func writeFashionFixture(t *testing.T, dir, prefix string, images *IDX, labels *IDX) {
	t.Helper()
	for name, x := range map[string]*IDX{prefix + "-images-idx3-ubyte": images, prefix + "-labels-idx1-ubyte": labels} {
		if err := os.WriteFile(filepath.Join(dir, name), encodeIDX(t, x), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadFashionMNISTOverriddenDirPlainFiles(t *testing.T) {
	dir := t.TempDir()
	pixels := make([]byte, 2*784)
	pixels[0], pixels[784+783] = 255, 51
	writeFashionFixture(t, dir, "t10k", &IDX{Dims: []int{2, 28, 28}, Data: pixels}, &IDX{Dims: []int{2}, Data: []byte{3, 8}})
	s, err := LoadFashionMNIST(dir, TestSplit)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || s.X[0] != 1 || s.Sample(1)[783] != 0.2 || !slices.Equal(s.Y, []uint8{3, 8}) {
		t.Fatalf("loaded %d samples, X[0]=%v, last=%v, Y=%v", s.Len(), s.X[0], s.Sample(1)[783], s.Y)
	}
}

func TestLoadFashionMNISTRejectsInconsistentFiles(t *testing.T) {
	for _, tc := range []struct {
		name           string
		images, labels *IDX
		problem        string
	}{
		{"wrong geometry", &IDX{Dims: []int{1, 27, 29}, Data: make([]byte, 27*29)}, &IDX{Dims: []int{1}, Data: []byte{0}}, "want [count 28 28]"},
		{"count mismatch", &IDX{Dims: []int{2, 28, 28}, Data: make([]byte, 2*784)}, &IDX{Dims: []int{1}, Data: []byte{0}}, "1 labels for the 2 images"},
		{"label out of range", &IDX{Dims: []int{1, 28, 28}, Data: make([]byte, 784)}, &IDX{Dims: []int{1}, Data: []byte{10}}, "label 10 of item 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFashionFixture(t, dir, "train", tc.images, tc.labels)
			_, err := LoadFashionMNIST(dir, TrainSplit)
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(fe.Problem, tc.problem) || !strings.HasPrefix(fe.Path, dir) {
				t.Fatalf("err = %v, want a *FormatError in %s about %q", err, dir, tc.problem)
			}
		})
	}
}

func TestFashionMNISTClassNames(t *testing.T) {
	names := FashionMNISTClassNames()
	if len(names) != FashionMNISTClasses || names[0] != "T-shirt/top" || names[9] != "Ankle boot" {
		t.Fatalf("class names %v", names)
	}
	names[0] = "changed"
	if FashionMNISTClassNames()[0] != "T-shirt/top" {
		t.Fatal("class names are shared mutable state")
	}
}
