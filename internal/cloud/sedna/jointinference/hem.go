package jointinference

import (
	"strconv"
	"strings"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
)

// Reasons of hard-example-mining problems.
const (
	ReasonUnknownHEM = "UnknownHardExampleMining"
	ReasonInvalidHEM = "InvalidHardExampleMining"
)

// ratioParameters are, per known algorithm, the parameters that are
// probabilities or ratios: the worker library parses them as floats and
// compares them with scores in [0, 1], so anything else is a mistake the
// user should hear about now rather than from a crashing edge worker.
var ratioParameters = map[string][]string{
	"Threshold":    {"threshold"},
	"CrossEntropy": {"threshold_cross_entropy"},
	"IBT":          {"threshold_img", "threshold_box"},
	"Random":       {"random_ratio"},
	"BertRouter":   {"threshold"},
}

// CheckHardExampleMining validates the edge worker's algorithm against the
// algorithms the workers implement. Parameters the controller does not
// know are passed through untouched.
func CheckHardExampleMining(h sednav1.HardExampleMining, opts worker.Options) error {
	if !opts.KnowsHardExampleMining(h.Name) {
		return worker.Problemf(ReasonUnknownHEM,
			"edgeWorker.hardExampleMining.name %q is not a known algorithm (known: %s); fix the name, or add the algorithm to the controller's hardExampleMining option if your workers implement it",
			h.Name, strings.Join(opts.HardExampleMining, ", "))
	}
	seen := map[string]bool{}
	for _, p := range h.Parameters {
		if seen[p.Key] {
			return worker.Problemf(ReasonInvalidHEM, "edgeWorker.hardExampleMining.parameters: key %q appears twice", p.Key)
		}
		seen[p.Key] = true
	}
	byKey := map[string]string{}
	for _, p := range h.Parameters {
		byKey[p.Key] = p.Value
	}
	for _, k := range ratioParameters[h.Name] {
		v, ok := byKey[k]
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || f > 1 {
			return worker.Problemf(ReasonInvalidHEM,
				"edgeWorker.hardExampleMining: %s parameter %s=%q must be a number between 0 and 1", h.Name, k, v)
		}
	}
	return nil
}
