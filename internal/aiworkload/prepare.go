package aiworkload

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/verge-edge/verge/pkg/ai/dataset"
	"github.com/verge-edge/verge/pkg/ai/model"
)

// The layout Prepare writes under its output directory, which the
// examples in examples/sedna name (with the output directory
// /var/lib/verge).
const (
	DataDirName       = "data"
	ModelsDirName     = "models"
	TrainIndexName    = "fmnist-train.txt"
	TestIndexName     = "fmnist-test.txt"
	EdgeModelName     = "fmnist-softmax.vmodel"
	CloudModelName    = "fmnist-mlp.vmodel"
	FederatedModelDir = "fmnist-federated"
)

// ShardIndexName is the index file of training shard i.
func ShardIndexName(i int) string { return fmt.Sprintf("fmnist-shard-%d.txt", i) }

// PrepareConfig says what Prepare writes.
type PrepareConfig struct {
	// DatasetDir holds the Fashion-MNIST IDX files (default
	// /usr/share/datasets/fashion-mnist, from the Debian package
	// dataset-fashion-mnist).
	DatasetDir string
	// Out is the output directory.
	Out string
	// Shards is the number of federated-learning shards (default 3).
	Shards int
	// Skew makes the shards class-skewed (dataset.SplitClassSkew); zero
	// ClassesPerClient gives IID shards (dataset.SplitIID).
	Skew dataset.ClassSkew
	// Seed draws the shards and the model subset.
	Seed uint64
	// Models trains and writes the reference edge and cloud models.
	Models bool
	// EdgeTrain and CloudTrain are their settings (zero: the reference
	// settings, model.EdgeTrainConfig and model.CloudTrainConfig).
	EdgeTrain, CloudTrain model.TrainConfig
	// TrainSamples trains the models on a fixed random subset of that
	// many training images (0: all 60,000).
	TrainSamples int
	Logger       *slog.Logger
}

// DefaultPrepareConfig is what verge-ai-prepare does by default: three
// shards, each with 4 main classes and 10 % of every class spread over
// all, seed 7, and both reference models.
func DefaultPrepareConfig(out string) PrepareConfig {
	return PrepareConfig{
		Out: out, Shards: 3, Seed: 7, Models: true,
		Skew: dataset.ClassSkew{ClassesPerClient: 4, IIDFraction: 0.1},
	}
}

// Prepared is what Prepare wrote.
type Prepared struct {
	DataDir    string
	TrainIndex string
	TestIndex  string
	Shards     []string
	// ShardClasses counts each shard's samples per class.
	ShardClasses [][]int
	ModelsDir    string
	// FederatedDir is the (empty) directory for the federated model.
	FederatedDir string
	// EdgeModel and CloudModel are the model files ("" without Models).
	EdgeModel, CloudModel       string
	EdgeAccuracy, CloudAccuracy float64
	EdgeTraining, CloudTraining time.Duration
	// ModelSamples is the number of training images the models saw.
	ModelSamples int
}

// Prepare writes, under cfg.Out:
//
//	data/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]  copies of the dataset's files
//	data/fmnist-train.txt, data/fmnist-test.txt            index files of the two splits
//	data/fmnist-shard-<i>.txt                              the training shards' index files
//	models/fmnist-softmax.vmodel, models/fmnist-mlp.vmodel the reference edge and cloud models
//	models/fmnist-federated/                               where the federated job writes its model
//
// Index lines name samples in the copied IDX files by relative path
// ("train-images-idx3-ubyte.gz#41 7"), so the data directory can be
// copied to a node, or mounted into a pod, as it is. Everything is
// deterministic for a configuration; files are replaced atomically.
func Prepare(ctx context.Context, cfg PrepareConfig) (Prepared, error) {
	log := orDiscard(cfg.Logger)
	if cfg.Out == "" {
		return Prepared{}, fmt.Errorf("prepare: no output directory")
	}
	if cfg.Shards < 1 {
		return Prepared{}, fmt.Errorf("prepare: %d shards; want at least 1", cfg.Shards)
	}
	p := Prepared{
		DataDir:   filepath.Join(cfg.Out, DataDirName),
		ModelsDir: filepath.Join(cfg.Out, ModelsDirName),
	}
	p.FederatedDir = filepath.Join(p.ModelsDir, FederatedModelDir)
	for _, d := range []string{p.DataDir, p.FederatedDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return Prepared{}, fmt.Errorf("prepare: %w", err)
		}
	}

	trainImages, trainLabels, err := copySplit(cfg.DatasetDir, dataset.TrainSplit, p.DataDir)
	if err != nil {
		return Prepared{}, err
	}
	testImages, testLabels, err := copySplit(cfg.DatasetDir, dataset.TestSplit, p.DataDir)
	if err != nil {
		return Prepared{}, err
	}
	train, err := loadIDXPair(filepath.Join(p.DataDir, trainImages), filepath.Join(p.DataDir, trainLabels))
	if err != nil {
		return Prepared{}, fmt.Errorf("prepare: %w", err)
	}
	test, err := loadIDXPair(filepath.Join(p.DataDir, testImages), filepath.Join(p.DataDir, testLabels))
	if err != nil {
		return Prepared{}, fmt.Errorf("prepare: %w", err)
	}

	all := func(n int) []int {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	p.TrainIndex = filepath.Join(p.DataDir, TrainIndexName)
	p.TestIndex = filepath.Join(p.DataDir, TestIndexName)
	if err := writeIndex(p.TrainIndex, dataset.IndexEntries(trainImages, train.Y, all(train.Len()))); err != nil {
		return Prepared{}, err
	}
	if err := writeIndex(p.TestIndex, dataset.IndexEntries(testImages, test.Y, all(test.Len()))); err != nil {
		return Prepared{}, err
	}

	var shards [][]int
	if cfg.Skew.ClassesPerClient == 0 {
		shards, err = dataset.SplitIID(train.Len(), cfg.Shards, cfg.Seed)
	} else {
		shards, err = dataset.SplitClassSkew(train.Y, ClassCount, cfg.Shards, cfg.Skew, cfg.Seed)
	}
	if err != nil {
		return Prepared{}, fmt.Errorf("prepare: %w", err)
	}
	for i, s := range shards {
		path := filepath.Join(p.DataDir, ShardIndexName(i))
		if err := writeIndex(path, dataset.IndexEntries(trainImages, train.Y, s)); err != nil {
			return Prepared{}, err
		}
		p.Shards = append(p.Shards, path)
		p.ShardClasses = append(p.ShardClasses, train.Subset(s).ClassCounts())
		log.Info("wrote a shard", "path", path, "samples", len(s))
	}

	if !cfg.Models {
		return p, nil
	}
	trainOn := train
	if cfg.TrainSamples > 0 && cfg.TrainSamples < train.Len() {
		trainOn = train.Subset(dataset.Permutation(train.Len(), cfg.Seed)[:cfg.TrainSamples])
	}
	p.ModelSamples = trainOn.Len()
	for _, spec := range []struct {
		arch     model.Arch
		cfg      model.TrainConfig
		def      model.TrainConfig
		name     string
		path     *string
		accuracy *float64
		took     *time.Duration
	}{
		{model.EdgeArch(), cfg.EdgeTrain, model.EdgeTrainConfig(), EdgeModelName, &p.EdgeModel, &p.EdgeAccuracy, &p.EdgeTraining},
		{model.CloudArch(), cfg.CloudTrain, model.CloudTrainConfig(), CloudModelName, &p.CloudModel, &p.CloudAccuracy, &p.CloudTraining},
	} {
		tc := spec.cfg
		if tc.Epochs == 0 {
			tc = spec.def
		}
		start := time.Now()
		m, err := TrainReference(ctx, spec.arch, tc, trainOn)
		if err != nil {
			return Prepared{}, fmt.Errorf("prepare: training %s: %w", spec.name, err)
		}
		*spec.took = time.Since(start)
		ev, err := m.Evaluate(test)
		if err != nil {
			return Prepared{}, err
		}
		path := filepath.Join(p.ModelsDir, spec.name)
		if err := m.Save(path); err != nil {
			return Prepared{}, fmt.Errorf("prepare: %w", err)
		}
		*spec.path, *spec.accuracy = path, ev.Accuracy
		log.Info("wrote a model", "path", path, "arch", spec.arch.String(), "samples", trainOn.Len(),
			"testAccuracy", ev.Accuracy, "training", spec.took.Round(time.Millisecond))
	}
	return p, nil
}

// TrainReference trains a new model of arch (initial weights from seed 1,
// as the reference models) on set.
func TrainReference(ctx context.Context, arch model.Arch, cfg model.TrainConfig, set *dataset.Set) (*model.Model, error) {
	m, err := model.New(arch, 1)
	if err != nil {
		return nil, err
	}
	if _, err := m.Train(ctx, set, cfg); err != nil {
		return nil, err
	}
	return m, nil
}

// copySplit copies a split's two IDX files into dir and returns their base
// names.
func copySplit(from string, split dataset.Split, dir string) (images, labels string, err error) {
	imagesPath, labelsPath, err := dataset.FashionMNISTFiles(from, split)
	if err != nil {
		return "", "", err
	}
	for _, src := range []string{imagesPath, labelsPath} {
		if err := copyFile(src, filepath.Join(dir, filepath.Base(src))); err != nil {
			return "", "", fmt.Errorf("prepare: %w", err)
		}
	}
	return filepath.Base(imagesPath), filepath.Base(labelsPath), nil
}

func copyFile(src, dst string) error {
	if same, err := samePath(src, dst); err != nil || same {
		return err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return writeFile(dst, data)
}

func samePath(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, nil //nolint:nilerr // b does not exist yet
	}
	return os.SameFile(sa, sb), nil
}

func writeIndex(path string, entries []dataset.IndexEntry) error {
	var buf bytes.Buffer
	if err := dataset.WriteIndex(&buf, entries); err != nil {
		return err
	}
	if err := writeFile(path, buf.Bytes()); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}
