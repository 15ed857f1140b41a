package aiworkload

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/verge-edge/verge/pkg/ai/dataset"
	"github.com/verge-edge/verge/pkg/ai/model"
)

// Prepare writes index files that load back, as a partition of the
// training set, from anywhere the data directory is copied to; and models
// the workers can load.
func TestPrepare(t *testing.T) {
	out := t.TempDir()
	src, train, test := miniFashion(t, 3000, 1000)
	cfg := DefaultPrepareConfig(out)
	cfg.DatasetDir = src
	cfg.EdgeTrain = model.EdgeTrainConfig()
	cfg.EdgeTrain.Epochs = 2
	cfg.CloudTrain = model.CloudTrainConfig()
	cfg.CloudTrain.Epochs = 1
	p, err := Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.DataDir != filepath.Join(out, "data") || p.EdgeModel != filepath.Join(out, "models", "fmnist-softmax.vmodel") ||
		p.CloudModel != filepath.Join(out, "models", "fmnist-mlp.vmodel") || p.FederatedDir != filepath.Join(out, "models", "fmnist-federated") {
		t.Errorf("layout %+v", p)
	}
	if st, err := os.Stat(p.FederatedDir); err != nil || !st.IsDir() {
		t.Errorf("federated model directory: %v", err)
	}

	// Move the data directory: the indexes name the IDX files relatively.
	moved := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Rename(p.DataDir, moved); err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, train.Len())
	total := 0
	if len(p.Shards) != 3 {
		t.Fatalf("%d shards", len(p.Shards))
	}
	entriesOf := func(path string) []dataset.IndexEntry {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		es, err := dataset.ParseIndex(f)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	for i := range p.Shards {
		path := filepath.Join(moved, ShardIndexName(i))
		set, err := LoadTrainingData("TRAIN_DATASET_URL", path)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(set.ClassCounts(), p.ShardClasses[i]) {
			t.Errorf("shard %d: classes %v, reported %v", i, set.ClassCounts(), p.ShardClasses[i])
		}
		for j, e := range entriesOf(path) {
			if e.Images != "train-images-idx3-ubyte" || seen[e.Item] || train.Y[e.Item] != e.Label ||
				!equalFloats(set.Sample(j), train.Sample(e.Item)) {
				t.Fatalf("shard %d line %d: %+v (seen before: %v)", i, j, e, seen[e.Item])
			}
			seen[e.Item] = true
			total++
		}
		// Class-skewed: 4 main classes hold 90 % or more of a shard.
		counts := slices.Clone(p.ShardClasses[i])
		slices.Sort(counts)
		top := counts[6] + counts[7] + counts[8] + counts[9]
		if float64(top) < 0.9*float64(set.Len()) {
			t.Errorf("shard %d is not class-skewed: %v", i, p.ShardClasses[i])
		}
	}
	if total != train.Len() {
		t.Errorf("shards hold %d samples, want the %d training images once each", total, train.Len())
	}
	if n := len(entriesOf(filepath.Join(moved, TestIndexName))); n != test.Len() {
		t.Errorf("test index: %d lines", n)
	}
	if n := len(entriesOf(filepath.Join(moved, TrainIndexName))); n != train.Len() {
		t.Errorf("train index: %d lines", n)
	}
	// The IDX files themselves are a training dataset too.
	if set, err := LoadTrainingData("TRAIN_DATASET_URL", moved); err != nil || set.Len() != train.Len() {
		t.Errorf("data directory as a dataset: %v", err)
	}
	if set, err := LoadTrainingData("TRAIN_DATASET_URL", filepath.Join(moved, "t10k-images-idx3-ubyte")); err != nil || set.Len() != test.Len() {
		t.Errorf("images file as a dataset: %v", err)
	}

	for _, c := range []struct {
		path     string
		arch     model.Arch
		reported float64
	}{{p.EdgeModel, model.EdgeArch(), p.EdgeAccuracy}, {p.CloudModel, model.CloudArch(), p.CloudAccuracy}} {
		m, err := LoadClassifier("MODEL_URL", c.path)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := m.Evaluate(test)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Arch().Equal(c.arch) || ev.Accuracy != c.reported || ev.Accuracy < 0.6 {
			t.Errorf("%s: %v, accuracy %.4f (reported %.4f), want above 0.6", c.path, m.Arch(), ev.Accuracy, c.reported)
		}
	}

	// Deterministic: a second run writes the same bytes.
	if err := os.Rename(moved, p.DataDir); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, p.Shards[1], p.EdgeModel)
	if _, err := Prepare(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if after := readAll(t, p.Shards[1], p.EdgeModel); !bytes.Equal(before, after) {
		t.Error("a second run wrote different files")
	}
}

func TestLoadTrainingDataErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("train-images-idx3-ubyte.gz 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"", filepath.Join(dir, "missing.txt"), bad, t.TempDir()} {
		_, err := LoadTrainingData("TRAIN_DATASET_URL", url)
		var de *DatasetError
		if err == nil || !errorsAs(err, &de) || de.Variable != "TRAIN_DATASET_URL" {
			t.Errorf("%q: %v, want a *DatasetError", url, err)
		}
	}
}

func readAll(t *testing.T, paths ...string) []byte {
	t.Helper()
	var b []byte
	for _, p := range paths {
		d, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, d...)
	}
	return b
}
