package aiworkload

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verge-edge/verge/pkg/ai/model"
	"github.com/verge-edge/verge/pkg/ai/tensor"
)

func TestLoadClassifier(t *testing.T) {
	dir := t.TempDir()
	m, err := model.New(model.EdgeArch(), 3)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "edge.vmodel")
	if err := m.Save(file); err != nil {
		t.Fatal(err)
	}
	modelDir := filepath.Join(dir, "fmnist-federated")
	if _, err := SaveModel(modelDir+"/", m); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{file, modelDir} {
		got, err := LoadClassifier("MODEL_URL", url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if !got.Arch().Equal(model.EdgeArch()) {
			t.Errorf("%s: arch %v", url, got.Arch())
		}
	}

	notModel := filepath.Join(dir, "notes.txt")
	corrupt := filepath.Join(dir, "corrupt.vmodel")
	wrongShape := filepath.Join(dir, "five-classes.vmodel")
	if err := os.WriteFile(notModel, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := m.MarshalBinary()
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(corrupt, b, 0o644); err != nil {
		t.Fatal(err)
	}
	five, _ := model.New(model.Arch{Inputs: ImageDim, Classes: 5}, 1)
	if err := five.Save(wrongShape); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		url  string
		want error
		path string
	}{
		{"", ErrNoModel, ""},
		{filepath.Join(dir, "missing.vmodel"), ErrNoModel, "missing.vmodel"},
		{t.TempDir(), ErrNoModel, ModelFileName},
		{notModel, model.ErrNotModel, "notes.txt"},
		{corrupt, model.ErrCorrupt, "corrupt.vmodel"},
		{wrongShape, ErrWrongShape, "five-classes.vmodel"},
	} {
		_, err := LoadClassifier("MODEL_URL", c.url)
		var me *ModelError
		if !errors.Is(err, c.want) || !errors.As(err, &me) || me.Variable != "MODEL_URL" {
			t.Errorf("%q: error %v, want a *ModelError matching %v", c.url, err, c.want)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "MODEL_URL: ") || !strings.Contains(msg, c.path) || !strings.Contains(msg, "verge-ai-prepare") {
			t.Errorf("%q: message %q does not name the variable, the file and the fix", c.url, msg)
		}
	}
}

func TestOutputModelPath(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ url, want string }{
		{dir, filepath.Join(dir, ModelFileName)},                            // an existing directory
		{dir + "/new/", filepath.Join(dir, "new", ModelFileName)},           // a directory to create
		{dir + "/out/final.vmodel", filepath.Join(dir, "out/final.vmodel")}, // a file
	} {
		got, err := OutputModelPath(c.url)
		if err != nil || got != c.want {
			t.Errorf("%q: %q %v, want %q", c.url, got, err, c.want)
		}
		if _, err := os.Stat(filepath.Dir(got)); err != nil {
			t.Errorf("%q: directory not created: %v", c.url, err)
		}
	}
	if _, err := OutputModelPath(""); err == nil {
		t.Error("empty MODEL_URL accepted")
	}
	if _, err := ModelPath(filepath.Join(dir, "nothing")); !errors.Is(err, ErrNoModel) || errors.Is(err, fs.ErrPermission) {
		t.Errorf("missing: %v", err)
	}
}

func TestWeightsRoundTrip(t *testing.T) {
	for _, arch := range []model.Arch{model.EdgeArch(), model.CloudArch()} {
		m, err := model.New(arch, 4)
		if err != nil {
			t.Fatal(err)
		}
		w := Weights(m)
		got, err := ArchOf(w)
		if err != nil || !got.Equal(arch) {
			t.Fatalf("ArchOf: %v %v, want %v", got, err, arch)
		}
		back, err := ModelFromWeights(w)
		if err != nil {
			t.Fatal(err)
		}
		a, b := m.Weights(), back.Weights()
		for i := range a {
			if a[i].Name != b[i].Name || !equalFloats(a[i].Data, b[i].Data) {
				t.Fatalf("%v: tensor %s differs after the round trip", arch, a[i].Name)
			}
		}
	}
	bad := []tensor.Weights{
		nil,
		{tensor.New(10, 784)},                // no bias
		{tensor.New(10, 784), tensor.New(9)}, // bias does not match
		{tensor.New(32, 784), tensor.New(32), tensor.New(10, 31), tensor.New(10)}, // layers do not chain
	}
	for i, w := range bad {
		if _, err := ArchOf(w); !errors.Is(err, tensor.ErrShapeMismatch) {
			t.Errorf("case %d: %v", i, err)
		}
	}
	m, _ := model.New(model.EdgeArch(), 1)
	if err := SetWeights(m, Weights(mustNew(t, model.CloudArch()))); !errors.Is(err, tensor.ErrShapeMismatch) {
		t.Errorf("MLP weights into a softmax: %v", err)
	}
}

func mustNew(t *testing.T, a model.Arch) *model.Model {
	t.Helper()
	m, err := model.New(a, 1)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
