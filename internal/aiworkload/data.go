package aiworkload

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/verge-edge/verge/pkg/ai/dataset"
)

// DatasetError is a training dataset that cannot be used, with what to do
// about it.
type DatasetError struct {
	Variable string
	Path     string
	Err      error
}

func (e *DatasetError) Error() string {
	return fmt.Sprintf("%s: %s: %v (point it at a shard index file written by verge-ai-prepare, a directory holding Fashion-MNIST's train-images-idx3-ubyte and train-labels-idx1-ubyte files, or such an images file)", e.Variable, e.Path, e.Err)
}

func (e *DatasetError) Unwrap() error { return e.Err }

// LoadTrainingData reads a training set named by variable (whose value is
// url), one of:
//
//   - an index file, one "<idx images file>#<item> <label>" line per
//     sample (pkg/ai/dataset; relative paths are resolved against the
//     index's directory), as in a Sedna Dataset of format txt;
//   - a directory holding Fashion-MNIST's training IDX files
//     (train-images-idx3-ubyte and train-labels-idx1-ubyte, plain or .gz);
//   - an IDX images file (…images-idx3-ubyte[.gz]) whose labels file
//     (…labels-idx1-ubyte[.gz]) is beside it.
func LoadTrainingData(variable, url string) (*dataset.Set, error) {
	set, err := loadTrainingData(url)
	if err != nil {
		return nil, &DatasetError{Variable: variable, Path: url, Err: err}
	}
	if set.Dim != ImageDim {
		return nil, &DatasetError{Variable: variable, Path: url, Err: fmt.Errorf("samples have %d features; want %d (28×28 images)", set.Dim, ImageDim)}
	}
	return set, nil
}

func loadTrainingData(url string) (*dataset.Set, error) {
	if url == "" {
		return nil, errors.New("not set")
	}
	st, err := os.Stat(url)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return dataset.LoadFashionMNIST(url, dataset.TrainSplit)
	}
	base := filepath.Base(url)
	if strings.Contains(base, "images-idx3-ubyte") {
		labels := filepath.Join(filepath.Dir(url), strings.Replace(base, "images-idx3-ubyte", "labels-idx1-ubyte", 1))
		return loadIDXPair(url, labels)
	}
	return dataset.LoadIndex(url, ClassCount)
}

func loadIDXPair(imagesPath, labelsPath string) (*dataset.Set, error) {
	images, err := dataset.ReadIDX(imagesPath)
	if err != nil {
		return nil, err
	}
	labels, err := dataset.ReadIDX(labelsPath)
	if err != nil {
		return nil, fmt.Errorf("the labels beside the images: %w", err)
	}
	return dataset.FromIDX(images, labels, ClassCount)
}
