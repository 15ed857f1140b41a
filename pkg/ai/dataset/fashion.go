package dataset

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultFashionMNISTDir is where the Debian package dataset-fashion-mnist
// installs the gzip-compressed IDX files.
const DefaultFashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// Fashion-MNIST geometry.
const (
	FashionMNISTRows    = 28
	FashionMNISTCols    = 28
	FashionMNISTDim     = FashionMNISTRows * FashionMNISTCols
	FashionMNISTClasses = 10
)

// Split names one of the two Fashion-MNIST parts.
type Split string

// The Fashion-MNIST splits: 60,000 training and 10,000 test images.
const (
	TrainSplit Split = "train"
	TestSplit  Split = "test"
)

// filePrefix is the prefix of the split's file names.
func (s Split) filePrefix() (string, error) {
	switch s {
	case TrainSplit:
		return "train", nil
	case TestSplit:
		return "t10k", nil
	}
	return "", fmt.Errorf("dataset: unknown Fashion-MNIST split %q, want %q or %q", string(s), TrainSplit, TestSplit)
}

// FashionMNISTClassNames returns the names of the ten classes, indexed by
// label.
func FashionMNISTClassNames() []string {
	return []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
}

// NotFoundError reports that a Fashion-MNIST file is missing. Its message
// says how to install the data; it matches errors.Is(err, fs.ErrNotExist).
type NotFoundError struct {
	// Dir is the directory searched.
	Dir string
	// File is the missing file's base name, without the optional ".gz".
	File string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("dataset: Fashion-MNIST not found: neither %[1]s nor %[1]s.gz exists; "+
		"install the Debian package with `apt-get install dataset-fashion-mnist` (it puts the files in %[2]s) "+
		"or pass the directory that holds the IDX files",
		filepath.Join(e.Dir, e.File), DefaultFashionMNISTDir)
}

// Unwrap makes the error match fs.ErrNotExist.
func (e *NotFoundError) Unwrap() error { return fs.ErrNotExist }

// FashionMNISTFiles returns the paths of a split's image and label files in
// dir (DefaultFashionMNISTDir when empty): the plain file when it exists,
// else the ".gz" one. A missing file yields a *NotFoundError.
func FashionMNISTFiles(dir string, split Split) (images, labels string, err error) {
	if dir == "" {
		dir = DefaultFashionMNISTDir
	}
	prefix, err := split.filePrefix()
	if err != nil {
		return "", "", err
	}
	images, err = findIDX(dir, prefix+"-images-idx3-ubyte")
	if err != nil {
		return "", "", err
	}
	labels, err = findIDX(dir, prefix+"-labels-idx1-ubyte")
	if err != nil {
		return "", "", err
	}
	return images, labels, nil
}

func findIDX(dir, name string) (string, error) {
	for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, name+".gz")} {
		_, err := os.Stat(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("dataset: %w", err)
		}
	}
	return "", &NotFoundError{Dir: dir, File: name}
}

// LoadFashionMNIST loads one split of Fashion-MNIST from dir
// (DefaultFashionMNISTDir when empty) as a Set of 784 features in [0, 1]
// and labels 0–9. It checks that the images are 28×28 and that there are as
// many labels as images.
func LoadFashionMNIST(dir string, split Split) (*Set, error) {
	imagesPath, labelsPath, err := FashionMNISTFiles(dir, split)
	if err != nil {
		return nil, err
	}
	images, err := ReadIDX(imagesPath)
	if err != nil {
		return nil, err
	}
	if len(images.Dims) != 3 || images.Dims[1] != FashionMNISTRows || images.Dims[2] != FashionMNISTCols {
		return nil, &FormatError{Path: imagesPath, Problem: fmt.Sprintf("dimensions %v, want [count 28 28]", images.Dims)}
	}
	labels, err := ReadIDX(labelsPath)
	if err != nil {
		return nil, err
	}
	if len(labels.Dims) != 1 {
		return nil, &FormatError{Path: labelsPath, Problem: fmt.Sprintf("dimensions %v, want [count]", labels.Dims)}
	}
	if labels.Count() != images.Count() {
		return nil, &FormatError{Path: labelsPath, Problem: fmt.Sprintf("%d labels for the %d images in %s", labels.Count(), images.Count(), imagesPath)}
	}
	for i, y := range labels.Data {
		if int(y) >= FashionMNISTClasses {
			return nil, &FormatError{Path: labelsPath, Problem: fmt.Sprintf("label %d of item %d is not a Fashion-MNIST class (0-9)", y, i)}
		}
	}
	s, err := FromIDX(images, labels, FashionMNISTClasses)
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", imagesPath, err)
	}
	return s, nil
}
