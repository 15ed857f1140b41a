package hem

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/verge-edge/verge/pkg/ai"
)

func boxes(scores ...float64) Result {
	r := Result{}
	for _, s := range scores {
		r.Boxes = append(r.Boxes, Box{X2: 1, Y2: 1, Score: s})
	}
	return r
}

func probs(p ...float64) Result { return Result{Probabilities: p} }

func TestFilters(t *testing.T) {
	thr := ThresholdFilter{Threshold: 0.5}
	ce5 := CrossEntropyFilter{Threshold: 0.5}
	ce6 := CrossEntropyFilter{Threshold: 0.6}
	ibt := IBTFilter{ThresholdImg: 0.5, ThresholdBox: 0.5}
	ibt4 := IBTFilter{ThresholdImg: 0.4, ThresholdBox: 0.5}
	helmet := IBTFilter{ThresholdImg: 0.9, ThresholdBox: 0.9}
	for _, tc := range []struct {
		name    string
		f       Filter
		in      Result
		hard    bool
		invalid bool
	}{
		// Threshold: mean score 0.45 < 0.5; mean exactly 0.5 is not below.
		{"threshold low mean", thr, boxes(0.6, 0.3), true, false},
		{"threshold mean equal", thr, boxes(0.6, 0.4), false, false},
		{"threshold confident", thr, boxes(0.9), false, false},
		{"threshold no boxes", thr, boxes(), false, false},
		{"threshold score above 1", thr, boxes(0.9, 1.5), false, true},
		{"threshold NaN score", thr, boxes(math.NaN()), false, true},

		// CrossEntropy: [0.5,0.5] has confidence 0; [1,0] has 1;
		// [0.9,0.1] has 1 + (0.9 ln .9 + 0.1 ln .1)/ln 2 = 0.531004;
		// [0.7,0.2,0.1] has 1 − 0.8018186/ln 3 = 0.270153.
		{"ce uniform", ce5, probs(0.5, 0.5), true, false},
		{"ce certain (0·ln 0 = 0)", ce5, probs(1, 0), false, false},
		{"ce 0.9/0.1 at 0.5", ce5, probs(0.9, 0.1), false, false},
		{"ce 0.9/0.1 at 0.6", ce6, probs(0.9, 0.1), true, false},
		{"ce three classes", ce5, probs(0.7, 0.2, 0.1), true, false},
		{"ce one class", ce5, probs(1), false, false},
		{"ce float32 softmax rounding", ce5, probs(0.9000001, 0.1), false, false},
		{"ce empty", ce5, probs(), false, true},
		{"ce negative", ce5, probs(1.2, -0.2), false, true},
		{"ce NaN", ce5, probs(math.NaN(), 0.5), false, true},
		{"ce sum 0.8", ce5, probs(0.4, 0.4), false, true},
		{"ce logits", ce5, probs(2.3, -1.1), false, true},

		// IBT: 2 of 4 boxes ≤ 0.5 → 0.5 ≥ 1 − 0.5 → hard; ≥ 0.6 → not.
		{"ibt half low", ibt, boxes(0.9, 0.3, 0.2, 0.8), true, false},
		{"ibt half low, img 0.4", ibt4, boxes(0.9, 0.3, 0.2, 0.8), false, false},
		{"ibt score equal to box threshold counts as low", ibt, boxes(0.5, 0.9), true, false},
		{"ibt helmet confident", helmet, boxes(0.95, 0.92), false, false},
		{"ibt helmet one unsure", helmet, boxes(0.95, 0.5), true, false},
		{"ibt no boxes", ibt, boxes(), false, false},
		{"ibt negative score", ibt, boxes(0.9, -0.1), false, true},

		{"cloud only", CloudOnlyFilter{}, Result{}, true, false},
		{"edge only", EdgeOnlyFilter{}, boxes(0.01), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hard, err := tc.f.IsHard(tc.in)
			var ie *InputError
			if tc.invalid != errors.As(err, &ie) {
				t.Fatalf("err = %v, want input error: %v", err, tc.invalid)
			}
			if hard != tc.hard {
				t.Fatalf("IsHard = %v, want %v", hard, tc.hard)
			}
		})
	}
}

func TestConfidenceValues(t *testing.T) {
	for _, tc := range []struct {
		p    []float64
		want float64
	}{
		{[]float64{0.5, 0.5}, 0},
		{[]float64{0.9, 0.1}, 0.5310044},
		{[]float64{0.7, 0.2, 0.1}, 0.2701533},
		{[]float64{0.25, 0.25, 0.25, 0.25}, 0},
	} {
		got, err := Confidence(tc.p)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("Confidence(%v) = %.7f, want %.7f", tc.p, got, tc.want)
		}
	}
}

func TestRandom(t *testing.T) {
	f, err := NewRandom(0.3, rand.NewPCG(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Decide(0.29) || f.Decide(0.3) || f.Decide(0.99) {
		t.Fatal("Decide must be u < ratio")
	}
	hard := 0
	const n = 20000
	for range n {
		if h, _ := f.IsHard(Result{}); h {
			hard++
		}
	}
	if share := float64(hard) / n; math.Abs(share-0.3) > 0.02 {
		t.Fatalf("share of hard samples %.3f, want about 0.3", share)
	}
	// The same seed gives the same decisions.
	a, _ := NewRandom(0.5, rand.NewPCG(7, 7))
	b, _ := NewRandom(0.5, rand.NewPCG(7, 7))
	for range 100 {
		x, _ := a.IsHard(Result{})
		y, _ := b.IsHard(Result{})
		if x != y {
			t.Fatal("same seed, different decisions")
		}
	}
	if _, err := NewRandom(0.3, nil); err == nil {
		t.Fatal("nil source accepted")
	}
}

func TestNewFromCRD(t *testing.T) {
	f, err := New("IBT", []ai.Parameter{{Key: "threshold_img", Value: "0.9"}, {Key: "threshold_box", Value: " 0.9 "}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.(IBTFilter); got.ThresholdImg != 0.9 || got.ThresholdBox != 0.9 {
		t.Fatalf("got %+v", got)
	}
	// Defaults are Sedna's.
	f, _ = New("Threshold", nil, Options{})
	if f.(ThresholdFilter).Threshold != 0.5 {
		t.Fatalf("default threshold %v", f)
	}
	f, _ = New("Random", nil, Options{Rand: rand.NewPCG(1, 1)})
	if f.(*RandomFilter).Ratio != 0.3 {
		t.Fatalf("default random_ratio %v", f)
	}
	// A string ratio works (upstream compares the string with a float and
	// fails).
	f, err = New("Random", []ai.Parameter{{Key: "random_ratio", Value: "0.1"}}, Options{})
	if err != nil || f.(*RandomFilter).Ratio != 0.1 {
		t.Fatalf("random_ratio from string: %v, %v", f, err)
	}
	for _, name := range Names() {
		if f, err := New(name, nil, Options{}); err != nil || f.Name() != name {
			t.Errorf("New(%q) = %v, %v", name, f, err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	_, err := New("threshold", nil, Options{})
	var unknown *ai.UnknownAlgorithmError
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), "Threshold, CrossEntropy, IBT, Random, CloudOnly, EdgeOnly") {
		t.Fatalf("unknown name: %v", err)
	}
	if _, err := New("BertRouter", nil, Options{}); !errors.As(err, &unknown) || !strings.Contains(err.Error(), "implement hem.Filter") {
		t.Fatalf("BertRouter: %v", err)
	}

	for _, tc := range []struct {
		name   string
		params []ai.Parameter
		key    string
		msg    string
	}{
		{"Threshold", []ai.Parameter{{Key: "threshold", Value: "1.5"}}, "threshold", "[0, 1]"},
		{"Threshold", []ai.Parameter{{Key: "threshold", Value: "-0.1"}}, "threshold", "[0, 1]"},
		{"Threshold", []ai.Parameter{{Key: "threshold", Value: "NaN"}}, "threshold", "[0, 1]"},
		{"CrossEntropy", []ai.Parameter{{Key: "threshold_cross_entropy", Value: "high"}}, "threshold_cross_entropy", "[0, 1]"},
		{"IBT", []ai.Parameter{{Key: "threshold_img", Value: "0.9"}, {Key: "threshold_box", Value: "2"}}, "threshold_box", "[0, 1]"},
		{"Random", []ai.Parameter{{Key: "random_ratio", Value: "1.01"}}, "random_ratio", "[0, 1]"},
		{"Threshold", []ai.Parameter{{Key: "treshold", Value: "0.9"}}, "treshold", "a known key: one of threshold"},
		{"CloudOnly", []ai.Parameter{{Key: "threshold", Value: "0.9"}}, "threshold", "no parameters"},
		{"Threshold", []ai.Parameter{{Key: "threshold", Value: "0.9"}, {Key: "threshold", Value: "0.8"}}, "threshold", "appears twice"},
	} {
		_, err := New(tc.name, tc.params, Options{})
		var pe *ai.ParameterError
		if !errors.As(err, &pe) || pe.Key != tc.key || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("New(%s, %v) = %v; want a ParameterError for %s mentioning %q", tc.name, tc.params, err, tc.key, tc.msg)
		}
	}

	if _, err := NewThreshold(1.2); err == nil {
		t.Error("NewThreshold(1.2) accepted")
	}
	if _, err := NewIBT(0.5, math.Inf(1)); err == nil {
		t.Error("NewIBT(+Inf) accepted")
	}
	if _, err := NewCrossEntropy(0.7); err != nil {
		t.Error(err)
	}
}

func TestBoxesFromRows(t *testing.T) {
	b, err := BoxesFromRows([][]float64{{0, 0, 10, 10, 0.8, 3}, {1, 1, 2, 2, 0.4}})
	if err != nil {
		t.Fatal(err)
	}
	if b[0].Score != 0.8 || b[0].Label != 3 || b[1].Score != 0.4 {
		t.Fatalf("got %+v", b)
	}
	var ie *InputError
	if _, err := BoxesFromRows([][]float64{{0, 0, 1, 1}}); !errors.As(err, &ie) {
		t.Fatalf("four-value row: %v", err)
	}
}
