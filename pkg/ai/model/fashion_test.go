package model

import (
	"context"
	"sync"
	"testing"

	"github.com/verge-edge/verge/pkg/ai/dataset"
)

// The Fashion-MNIST splits, read once per test binary from the Debian
// package dataset-fashion-mnist (CI installs it; the error says how).
var (
	loadTrain = sync.OnceValues(func() (*dataset.Set, error) { return dataset.LoadFashionMNIST("", dataset.TrainSplit) })
	loadTest  = sync.OnceValues(func() (*dataset.Set, error) { return dataset.LoadFashionMNIST("", dataset.TestSplit) })
)

func fashionTrain(t testing.TB) *dataset.Set {
	t.Helper()
	s, err := loadTrain()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fashionTest(t testing.TB) *dataset.Set {
	t.Helper()
	s, err := loadTest()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// trainSubset is a fixed random subset of the training split, so that the
// accuracy tests stay fast under -race on two cores.
func trainSubset(t testing.TB, n int) *dataset.Set {
	train := fashionTrain(t)
	return train.Subset(dataset.Permutation(train.Len(), 2024)[:n])
}

// The accuracy tests train on less than the reference settings (fewer
// epochs, for the cloud model two thirds of the images) to stay fast under
// -race on two cores, and evaluate on all 10,000 test images. Training is
// deterministic, so the figures do not move between runs on one platform;
// the thresholds sit under them (on linux/amd64: edge 0.83, cloud 0.8665)
// by a margin for other platforms' rounding. Full-data figures are in
// docs/ai-reference-models.md.

func TestEdgeModelAccuracy(t *testing.T) {
	m, err := New(EdgeArch(), 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := EdgeTrainConfig()
	cfg.Epochs = 2
	if _, err := m.Train(context.Background(), fashionTrain(t), cfg); err != nil {
		t.Fatal(err)
	}
	got, err := m.Evaluate(fashionTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("edge model, 60k samples × 2 epochs: test accuracy %.4f, loss %.4f", got.Accuracy, got.Loss)
	if got.Samples != 10000 || got.Accuracy < 0.80 {
		t.Fatalf("test accuracy %.4f on %d samples, want > 0.80 on 10000", got.Accuracy, got.Samples)
	}
}

func TestCloudModelAccuracy(t *testing.T) {
	m, err := New(CloudArch(), 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := CloudTrainConfig()
	cfg.Epochs, cfg.LRDecay = 3, 0.6
	if _, err := m.Train(context.Background(), trainSubset(t, 40000), cfg); err != nil {
		t.Fatal(err)
	}
	got, err := m.Evaluate(fashionTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cloud model, 40k samples × 3 epochs: test accuracy %.4f, loss %.4f", got.Accuracy, got.Loss)
	if got.Accuracy < 0.86 {
		t.Fatalf("test accuracy %.4f, want > 0.86", got.Accuracy)
	}
}
