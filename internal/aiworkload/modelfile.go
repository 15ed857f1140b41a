package aiworkload

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/verge-edge/verge/internal/atomicfile"
	"github.com/verge-edge/verge/pkg/ai/model"
	"github.com/verge-edge/verge/pkg/ai/tensor"
)

// ModelFileName is the model's file name inside a model directory.
const ModelFileName = "model.vmodel"

// Fashion-MNIST's shape: the classifiers the workers load take 28×28
// images and answer one of 10 classes.
const (
	ImageSide  = 28
	ImageDim   = ImageSide * ImageSide
	ClassCount = 10
)

// ErrNoModel is returned (wrapped in a *ModelError) when MODEL_URL names
// nothing, or a directory without ModelFileName.
var ErrNoModel = errors.New("no model file")

// ModelError is a model that cannot be used, with what to do about it.
type ModelError struct {
	// Variable is the environment variable that named it (MODEL_URL,
	// PRETRAINED_MODEL_URL).
	Variable string
	// Path is the file tried.
	Path string
	Err  error
}

func (e *ModelError) Error() string {
	hint := "point it at a model file written by verge-ai-prepare or verge-fl-aggregator, or at a directory holding " + ModelFileName
	return fmt.Sprintf("%s: %s: %v (%s)", e.Variable, e.Path, e.Err, hint)
}

func (e *ModelError) Unwrap() error { return e.Err }

// ModelPath resolves a model location for reading: a directory means the
// ModelFileName inside it.
func ModelPath(url string) (string, error) {
	if url == "" {
		return "", ErrNoModel
	}
	st, err := os.Stat(url)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return url, fmt.Errorf("%w: %s does not exist", ErrNoModel, url)
		}
		return url, err
	}
	if !st.IsDir() {
		return url, nil
	}
	p := filepath.Join(url, ModelFileName)
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return p, fmt.Errorf("%w: the directory %s has no %s", ErrNoModel, url, ModelFileName)
		}
		return p, err
	}
	return p, nil
}

// OutputModelPath resolves a model location for writing: an existing
// directory, or a path ending in "/", gets ModelFileName inside it (the
// directory is created if needed); anything else is the file itself.
func OutputModelPath(url string) (string, error) {
	if url == "" {
		return "", errors.New("no output location: set MODEL_URL")
	}
	if st, err := os.Stat(url); err == nil && st.IsDir() || strings.HasSuffix(url, "/") {
		if err := os.MkdirAll(url, 0o755); err != nil {
			return "", fmt.Errorf("creating the model directory: %w", err)
		}
		return filepath.Join(url, ModelFileName), nil
	}
	if err := os.MkdirAll(filepath.Dir(url), 0o755); err != nil {
		return "", fmt.Errorf("creating the model directory: %w", err)
	}
	return url, nil
}

// LoadClassifier loads the model named by variable (whose value is url)
// and checks that it classifies Fashion-MNIST images: 784 inputs, 10
// classes.
func LoadClassifier(variable, url string) (*model.Model, error) {
	p, err := ModelPath(url)
	if err != nil {
		return nil, &ModelError{Variable: variable, Path: url, Err: err}
	}
	m, err := model.Load(p)
	if err != nil {
		return nil, &ModelError{Variable: variable, Path: p, Err: err}
	}
	if err := checkArch(m.Arch()); err != nil {
		return nil, &ModelError{Variable: variable, Path: p, Err: err}
	}
	return m, nil
}

// givenOrLoaded returns m when a model is given (checking its shape), or
// the model MODEL_URL (url) names.
func givenOrLoaded(m *model.Model, url string) (*model.Model, error) {
	if m == nil {
		return LoadClassifier("MODEL_URL", url)
	}
	return m, checkArch(m.Arch())
}

// ErrWrongShape: the model does not take 28×28 images or answer 10
// classes.
var ErrWrongShape = errors.New("not a Fashion-MNIST classifier")

func checkArch(a model.Arch) error {
	if a.Inputs != ImageDim || a.Classes != ClassCount {
		return fmt.Errorf("%w: the model is %v; want %d inputs and %d classes", ErrWrongShape, a, ImageDim, ClassCount)
	}
	return nil
}

// SaveModel writes m atomically to the output location url (see
// OutputModelPath) and returns the file written.
func SaveModel(url string, m *model.Model) (string, error) {
	p, err := OutputModelPath(url)
	if err != nil {
		return "", err
	}
	if err := m.Save(p); err != nil {
		return "", err
	}
	return p, nil
}

// writeFile writes data atomically.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o644)
}

// Weights returns m's parameters as the federated SDK moves them, in the
// model's tensor order (dense0/weight, dense0/bias, dense1/weight, …).
func Weights(m *model.Model) tensor.Weights {
	ts := m.Weights() // copies
	out := make(tensor.Weights, len(ts))
	for i, t := range ts {
		out[i] = tensor.Tensor{Shape: t.Shape, Data: t.Data}
	}
	return out
}

// SetWeights loads w, in the model's tensor order, into m.
func SetWeights(m *model.Model, w tensor.Weights) error {
	names := tensorNames(m.Arch())
	if len(w) != len(names) {
		return fmt.Errorf("%w: %d tensors for a %v model, which has %d", tensor.ErrShapeMismatch, len(w), m.Arch(), len(names))
	}
	ts := make([]model.Tensor, len(w))
	for i, t := range w {
		ts[i] = model.Tensor{Name: names[i], Shape: t.Shape, Data: t.Data}
	}
	return m.SetWeights(ts)
}

func tensorNames(a model.Arch) []string {
	layers := len(a.Hidden) + 1
	names := make([]string, 0, 2*layers)
	for i := range layers {
		names = append(names, fmt.Sprintf("dense%d/weight", i), fmt.Sprintf("dense%d/bias", i))
	}
	return names
}

// ArchOf infers the architecture from weights in the model's tensor
// order: per layer a [out, in] weight and an [out] bias.
func ArchOf(w tensor.Weights) (model.Arch, error) {
	if len(w) == 0 || len(w)%2 != 0 {
		return model.Arch{}, fmt.Errorf("%w: %d tensors; a model has a weight and a bias per layer", tensor.ErrShapeMismatch, len(w))
	}
	var a model.Arch
	in := 0
	for l := 0; l < len(w); l += 2 {
		ws, bs := w[l].Shape, w[l+1].Shape
		if len(ws) != 2 || len(bs) != 1 || bs[0] != ws[0] || (l > 0 && ws[1] != in) {
			return model.Arch{}, fmt.Errorf("%w: layer %d has weight %v and bias %v", tensor.ErrShapeMismatch, l/2, ws, bs)
		}
		if l == 0 {
			a.Inputs = ws[1]
		}
		in = ws[0]
		if l+2 < len(w) {
			a.Hidden = append(a.Hidden, ws[0])
		}
	}
	a.Classes = in
	if err := a.Validate(); err != nil {
		return model.Arch{}, err
	}
	return a, nil
}

// ModelFromWeights builds a model holding w.
func ModelFromWeights(w tensor.Weights) (*model.Model, error) {
	a, err := ArchOf(w)
	if err != nil {
		return nil, err
	}
	m, err := model.New(a, 0)
	if err != nil {
		return nil, err
	}
	if err := SetWeights(m, w); err != nil {
		return nil, err
	}
	return m, nil
}
