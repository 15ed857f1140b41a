package hem

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/verge-edge/verge/pkg/ai"
)

// The filter names, as in the CRD's hardExampleMining.name (case-sensitive).
const (
	NameThreshold    = "Threshold"
	NameCrossEntropy = "CrossEntropy"
	NameIBT          = "IBT"
	NameRandom       = "Random"
	NameCloudOnly    = "CloudOnly"
	NameEdgeOnly     = "EdgeOnly"
)

// Names lists the filters New builds.
func Names() []string {
	return []string{NameThreshold, NameCrossEntropy, NameIBT, NameRandom, NameCloudOnly, NameEdgeOnly}
}

// Box is one detection: corners, confidence score in [0, 1] and class
// label, Sedna's [x1, y1, x2, y2, score, label].
type Box struct {
	X1, Y1, X2, Y2 float64
	Score          float64
	Label          float64
}

// BoxesFromRows converts Sedna's bounding-box rows. A row needs at least
// five values (the fifth is the score); the sixth, if present, is the label.
func BoxesFromRows(rows [][]float64) ([]Box, error) {
	out := make([]Box, len(rows))
	for i, r := range rows {
		if len(r) < 5 {
			return nil, &InputError{Reason: fmt.Sprintf("box %d has %d values; a box is [x1, y1, x2, y2, score, label]", i, len(r))}
		}
		out[i] = Box{X1: r[0], Y1: r[1], X2: r[2], Y2: r[3], Score: r[4]}
		if len(r) > 5 {
			out[i].Label = r[5]
		}
	}
	return out, nil
}

// Result is the part of the edge model's output a filter judges. Set
// Probabilities for classifiers (CrossEntropy) and Boxes for detectors
// (Threshold, IBT); Random, CloudOnly and EdgeOnly look at neither.
type Result struct {
	Probabilities []float64
	Boxes         []Box
}

// Filter decides whether a sample is hard.
type Filter interface {
	// Name is the CRD name of the algorithm.
	Name() string
	// IsHard judges one result. On an *InputError it returns false: the
	// sample stays on the edge.
	IsHard(Result) (bool, error)
}

// InputError is a model output a filter cannot judge.
type InputError struct {
	Filter string
	Reason string
}

func (e *InputError) Error() string {
	if e.Filter == "" {
		return "hard example mining: " + e.Reason
	}
	return e.Filter + ": " + e.Reason
}

// SumTolerance is how far from 1 the probabilities CrossEntropy judges may
// sum: softmax in float32 over thousands of classes stays well within it.
const SumTolerance = 1e-3

func checkScore(filter string, i int, s float64) error {
	if math.IsNaN(s) || s < 0 || s > 1 {
		return &InputError{Filter: filter, Reason: fmt.Sprintf("box %d has score %v; scores must be in [0, 1]", i, s)}
	}
	return nil
}

// ThresholdFilter flags a detection result whose mean box score is below
// Threshold.
type ThresholdFilter struct{ Threshold float64 }

// NewThreshold checks threshold ∈ [0, 1].
func NewThreshold(threshold float64) (ThresholdFilter, error) {
	p := ai.NewParams(NameThreshold, []ai.Parameter{{Key: "threshold", Value: fmtFloat(threshold)}})
	t := p.Float("threshold", 0.5, 0, 1)
	return ThresholdFilter{Threshold: t}, p.Done()
}

func (ThresholdFilter) Name() string { return NameThreshold }

func (f ThresholdFilter) IsHard(r Result) (bool, error) {
	if len(r.Boxes) == 0 {
		return false, nil
	}
	sum := 0.0
	for i, b := range r.Boxes {
		if err := checkScore(NameThreshold, i, b.Score); err != nil {
			return false, err
		}
		sum += b.Score
	}
	return sum/float64(len(r.Boxes)) < f.Threshold, nil
}

// CrossEntropyFilter flags a classification whose confidence, one minus
// the normalised entropy of the class probabilities, is below Threshold.
type CrossEntropyFilter struct{ Threshold float64 }

// NewCrossEntropy checks threshold ∈ [0, 1].
func NewCrossEntropy(threshold float64) (CrossEntropyFilter, error) {
	p := ai.NewParams(NameCrossEntropy, []ai.Parameter{{Key: "threshold_cross_entropy", Value: fmtFloat(threshold)}})
	t := p.Float("threshold_cross_entropy", 0.5, 0, 1)
	return CrossEntropyFilter{Threshold: t}, p.Done()
}

func (CrossEntropyFilter) Name() string { return NameCrossEntropy }

// Confidence is 1 + Σ p_i·ln p_i / ln K, checking that p is a probability
// vector: non-empty, each p_i in [0, 1], summing to 1 within SumTolerance.
func Confidence(p []float64) (float64, error) {
	if len(p) == 0 {
		return 0, &InputError{Filter: NameCrossEntropy, Reason: "no class probabilities"}
	}
	sum, logSum := 0.0, 0.0
	for i, v := range p {
		if math.IsNaN(v) || v < 0 || v > 1 {
			return 0, &InputError{Filter: NameCrossEntropy, Reason: fmt.Sprintf("probability %d is %v; probabilities must be in [0, 1] (apply softmax to logits)", i, v)}
		}
		sum += v
		if v > 0 {
			logSum += v * math.Log(v)
		}
	}
	if math.Abs(sum-1) > SumTolerance {
		return 0, &InputError{Filter: NameCrossEntropy, Reason: fmt.Sprintf("probabilities sum to %v; they must sum to 1 (±%g)", sum, SumTolerance)}
	}
	if len(p) == 1 {
		return 1, nil
	}
	return 1 + 1.0*logSum/math.Log(float64(len(p))), nil
}

func (f CrossEntropyFilter) IsHard(r Result) (bool, error) {
	c, err := Confidence(r.Probabilities)
	if err != nil {
		return false, err
	}
	return c < f.Threshold, nil
}

// IBTFilter (image-box threshold) flags a detection result in which the
// share of boxes scoring at most ThresholdBox is at least 1 − ThresholdImg.
type IBTFilter struct{ ThresholdImg, ThresholdBox float64 }

// NewIBT checks both thresholds ∈ [0, 1].
func NewIBT(thresholdImg, thresholdBox float64) (IBTFilter, error) {
	p := ai.NewParams(NameIBT, []ai.Parameter{
		{Key: "threshold_img", Value: fmtFloat(thresholdImg)},
		{Key: "threshold_box", Value: fmtFloat(thresholdBox)},
	})
	img := p.Float("threshold_img", 0.5, 0, 1)
	box := p.Float("threshold_box", 0.5, 0, 1)
	return IBTFilter{ThresholdImg: img, ThresholdBox: box}, p.Done()
}

func (IBTFilter) Name() string { return NameIBT }

func (f IBTFilter) IsHard(r Result) (bool, error) {
	if len(r.Boxes) == 0 {
		return false, nil
	}
	low := 0
	for i, b := range r.Boxes {
		if err := checkScore(NameIBT, i, b.Score); err != nil {
			return false, err
		}
		if b.Score <= f.ThresholdBox {
			low++
		}
	}
	return float64(low)/float64(len(r.Boxes)) >= 1-f.ThresholdImg, nil
}

// RandomFilter flags a share Ratio of samples at random.
type RandomFilter struct {
	Ratio float64

	mu  sync.Mutex
	rng *rand.Rand
}

// NewRandom checks ratio ∈ [0, 1]; src must not be nil (use
// rand.NewPCG(seed1, seed2), or a fixed seed in tests).
func NewRandom(ratio float64, src rand.Source) (*RandomFilter, error) {
	if src == nil {
		return nil, fmt.Errorf("%s: a random source is required", NameRandom)
	}
	p := ai.NewParams(NameRandom, []ai.Parameter{{Key: "random_ratio", Value: fmtFloat(ratio)}})
	r := p.Float("random_ratio", 0.3, 0, 1)
	if err := p.Done(); err != nil {
		return nil, err
	}
	return &RandomFilter{Ratio: r, rng: rand.New(src)}, nil
}

func (*RandomFilter) Name() string { return NameRandom }

// Decide is the rule: a uniform draw u ∈ [0, 1) is hard when u < Ratio.
func (f *RandomFilter) Decide(u float64) bool { return u < f.Ratio }

func (f *RandomFilter) IsHard(Result) (bool, error) {
	f.mu.Lock()
	u := f.rng.Float64()
	f.mu.Unlock()
	return f.Decide(u), nil
}

// CloudOnlyFilter sends every sample to the cloud.
type CloudOnlyFilter struct{}

func (CloudOnlyFilter) Name() string                { return NameCloudOnly }
func (CloudOnlyFilter) IsHard(Result) (bool, error) { return true, nil }

// EdgeOnlyFilter keeps every sample on the edge.
type EdgeOnlyFilter struct{}

func (EdgeOnlyFilter) Name() string                { return NameEdgeOnly }
func (EdgeOnlyFilter) IsHard(Result) (bool, error) { return false, nil }

// Options are what New needs besides the CRD fields.
type Options struct {
	// Rand feeds Random. Nil: a source seeded from the runtime's
	// cryptographically random seed.
	Rand rand.Source
}

// New builds the filter the CRD names (hardExampleMining.name and
// .parameters; in a worker, HEM_NAME and HEM_PARAMETERS). Missing
// parameters take Sedna's defaults. An unknown name is an
// *ai.UnknownAlgorithmError listing the valid ones; bad or unknown
// parameters are *ai.ParameterError values (joined when several).
func New(name string, params []ai.Parameter, opts Options) (Filter, error) {
	p := ai.NewParams(name, params)
	var f Filter
	switch name {
	case NameThreshold:
		f = ThresholdFilter{Threshold: p.Float("threshold", 0.5, 0, 1)}
	case NameCrossEntropy:
		f = CrossEntropyFilter{Threshold: p.Float("threshold_cross_entropy", 0.5, 0, 1)}
	case NameIBT:
		f = IBTFilter{ThresholdImg: p.Float("threshold_img", 0.5, 0, 1), ThresholdBox: p.Float("threshold_box", 0.5, 0, 1)}
	case NameRandom:
		src := opts.Rand
		if src == nil {
			src = rand.NewPCG(rand.Uint64(), rand.Uint64())
		}
		f = &RandomFilter{Ratio: p.Float("random_ratio", 0.3, 0, 1), rng: rand.New(src)}
	case NameCloudOnly:
		f = CloudOnlyFilter{}
	case NameEdgeOnly:
		f = EdgeOnlyFilter{}
	default:
		known := Names()
		if name == "BertRouter" {
			return nil, fmt.Errorf("%w (BertRouter needs a text-classification model that this SDK does not ship: implement hem.Filter in the worker and pass it to the joint-inference client)",
				&ai.UnknownAlgorithmError{What: "hard example mining", Name: name, Known: known})
		}
		return nil, &ai.UnknownAlgorithmError{What: "hard example mining", Name: name, Known: slices.Clone(known)}
	}
	if err := p.Done(); err != nil {
		return nil, err
	}
	return f, nil
}

func fmtFloat(f float64) string { return fmt.Sprintf("%v", f) }
