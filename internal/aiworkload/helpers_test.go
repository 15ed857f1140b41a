package aiworkload

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/verge-edge/verge/pkg/ai/dataset"
	"github.com/verge-edge/verge/pkg/ai/model"
	"github.com/verge-edge/verge/pkg/ai/workerenv"
)

// The tests use Fashion-MNIST's 10,000 test images from the Debian package
// dataset-fashion-mnist (CI installs it; the error says how), split once
// into 7,000 to train on and 3,000 held out: decompressing the 60,000
// training images takes seconds under -race. The full data is for
// cmd/verge-ai-eval.
var (
	loadSplit = sync.OnceValues(func() ([2]*dataset.Set, error) {
		s, err := dataset.LoadFashionMNIST("", dataset.TestSplit)
		if err != nil {
			return [2]*dataset.Set{}, err
		}
		p := dataset.Permutation(s.Len(), 2026)
		return [2]*dataset.Set{s.Subset(p[:7000]), s.Subset(p[7000:])}, nil
	})
	// Tiny trained models: an edge softmax and a small MLP standing in for
	// the cloud model.
	tinyModels = sync.OnceValues(func() ([2]*model.Model, error) {
		split, err := loadSplit()
		if err != nil {
			return [2]*model.Model{}, err
		}
		sub := split[0].Subset(dataset.Permutation(split[0].Len(), 5)[:4000])
		cfg := model.EdgeTrainConfig()
		cfg.Epochs = 2
		edge, err := TrainReference(context.Background(), model.EdgeArch(), cfg, sub)
		if err != nil {
			return [2]*model.Model{}, err
		}
		cfg = model.CloudTrainConfig()
		cfg.Epochs = 3
		cloud, err := TrainReference(context.Background(), model.Arch{Inputs: ImageDim, Hidden: []int{32}, Classes: ClassCount}, cfg, sub)
		return [2]*model.Model{edge, cloud}, err
	})
)

// trainPart is the 7,000 images the tests train on.
func trainPart(t testing.TB) *dataset.Set {
	t.Helper()
	s, err := loadSplit()
	if err != nil {
		t.Fatal(err)
	}
	return s[0]
}

// heldOut is the 3,000 images the tests evaluate on.
func heldOut(t testing.TB) *dataset.Set {
	t.Helper()
	s, err := loadSplit()
	if err != nil {
		t.Fatal(err)
	}
	return s[1]
}

// tiny returns the tiny edge and cloud models.
func tiny(t testing.TB) (edge, cloud *model.Model) {
	t.Helper()
	ms, err := tinyModels()
	if err != nil {
		t.Fatal(err)
	}
	return ms[0], ms[1]
}

// toIDX turns a set back into IDX images (n×28×28 bytes) and labels.
func toIDX(s *dataset.Set) (images, labels *dataset.IDX) {
	images = &dataset.IDX{Dims: []int{s.Len(), ImageSide, ImageSide}, Data: make([]byte, len(s.X))}
	for i, v := range s.X {
		images.Data[i] = byte(math.Round(float64(v) * 255))
	}
	return images, &dataset.IDX{Dims: []int{s.Len()}, Data: append([]byte(nil), s.Y...)}
}

// writeIDX writes a set as plain IDX files at imagesPath and labelsPath.
func writeIDX(t testing.TB, s *dataset.Set, imagesPath, labelsPath string) {
	t.Helper()
	images, labels := toIDX(s)
	for path, x := range map[string]*dataset.IDX{imagesPath: images, labelsPath: labels} {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := dataset.EncodeIDX(f, x); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// miniFashion writes a small Fashion-MNIST directory (plain IDX files):
// nTrain training images from trainPart and nTest test images from
// heldOut.
func miniFashion(t testing.TB, nTrain, nTest int) (dir string, train, test *dataset.Set) {
	t.Helper()
	dir = t.TempDir()
	train = trainPart(t).Subset(dataset.Permutation(trainPart(t).Len(), 8)[:nTrain])
	test = heldOut(t).Subset(dataset.Permutation(heldOut(t).Len(), 8)[:nTest])
	writeIDX(t, train, filepath.Join(dir, "train-images-idx3-ubyte"), filepath.Join(dir, "train-labels-idx1-ubyte"))
	writeIDX(t, test, filepath.Join(dir, "t10k-images-idx3-ubyte"), filepath.Join(dir, "t10k-labels-idx1-ubyte"))
	return dir, train, test
}

// env is a Lookup over pairs.
func env(kv ...string) workerenv.Lookup {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return workerenv.FromMap(m)
}

func ln(x float64) float64 { return math.Log(x) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }
