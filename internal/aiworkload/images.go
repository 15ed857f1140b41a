package aiworkload

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/verge-edge/verge/pkg/ai/dataset"
	"github.com/verge-edge/verge/pkg/ai/model"
	"github.com/verge-edge/verge/pkg/ai/tensor"
)

// DecodeImages reads the "data" of a predict request: one image, as 784
// numbers or 28 rows of 28, or a batch, as a list of either. Pixels are
// numbers in [0, 1] (a byte divided by 255), as pkg/ai/dataset makes them.
// batch says whether the request held a list of images.
func DecodeImages(raw json.RawMessage) (images [][]float32, batch bool, err error) {
	var t tensor.Tensor
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, false, fmt.Errorf("data must be an image as nested lists of numbers: %w", err)
	}
	shape := t.Shape
	switch {
	case isImageShape(shape):
		images = [][]float32{t.Data}
	case len(shape) >= 2 && shape[0] > 0 && isImageShape(shape[1:]):
		batch = true
		images = make([][]float32, shape[0])
		for i := range images {
			images[i] = t.Data[i*ImageDim : (i+1)*ImageDim : (i+1)*ImageDim]
		}
	default:
		return nil, false, fmt.Errorf("data has shape %v; send one image as [784] or [28][28] numbers, or a list of them", shape)
	}
	for i, v := range t.Data {
		if math.IsNaN(float64(v)) || v < 0 || v > 1 {
			return nil, false, fmt.Errorf("value %d is %v; pixels must be in [0, 1] (divide bytes by 255)", i, v)
		}
	}
	return images, batch, nil
}

func isImageShape(s []int) bool {
	return len(s) == 1 && s[0] == ImageDim || len(s) == 2 && s[0] == ImageSide && s[1] == ImageSide
}

// Prediction is a classifier's answer for one image.
type Prediction struct {
	Label int `json:"label"`
	// Class is the Fashion-MNIST class name of Label.
	Class         string    `json:"class"`
	Probabilities []float32 `json:"probabilities"`
}

// NewPrediction names the most probable class of probs.
func NewPrediction(probs []float32) Prediction {
	l := model.Argmax(probs)
	p := Prediction{Label: l, Probabilities: probs}
	if names := dataset.FashionMNISTClassNames(); l >= 0 && l < len(names) {
		p.Class = names[l]
	}
	return p
}
