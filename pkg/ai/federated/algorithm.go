package federated

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/verge-edge/verge/pkg/ai"
	"github.com/verge-edge/verge/pkg/ai/tensor"
)

// Aggregation algorithm names, as in the CRD's aggregation.algorithm (and
// the aggregator's WebSocket path in Sedna: ws://AGG_IP:AGG_PORT/FedAvg).
const (
	NameFedAvg  = "FedAvg"
	NameFedAvgM = "FedAvgM"
	NameFedProx = "FedProx"
)

// AlgorithmNames lists the algorithms NewAlgorithm builds.
func AlgorithmNames() []string { return []string{NameFedAvg, NameFedAvgM, NameFedProx} }

// ClientUpdate is one client's contribution to a round.
type ClientUpdate struct {
	Client     string
	NumSamples int
	Weights    tensor.Weights
}

// Algorithm combines a round's updates into the next global model. The
// updates have been checked: at least one, positive sample counts, finite
// weights of one shape (global's, when global is not nil), sorted by
// client. An Algorithm may keep state between rounds (FedAvgM's momentum);
// the Coordinator that owns it calls it from one goroutine.
type Algorithm interface {
	Name() string
	Aggregate(global tensor.Weights, updates []ClientUpdate) (tensor.Weights, error)
}

// FedAvg is federated averaging (McMahan et al.), Sedna's FedAvg: the
// sample-weighted mean w = Σ_k (n_k / Σn) · w_k, accumulated in float64.
type FedAvg struct{}

func (FedAvg) Name() string { return NameFedAvg }

func (FedAvg) Aggregate(_ tensor.Weights, updates []ClientUpdate) (tensor.Weights, error) {
	return weightedMean(updates)
}

func weightedMean(updates []ClientUpdate) (tensor.Weights, error) {
	if len(updates) == 0 {
		return nil, errors.New("no updates to aggregate")
	}
	total := 0
	for _, u := range updates {
		if u.NumSamples <= 0 {
			return nil, fmt.Errorf("client %s reported %d samples", u.Client, u.NumSamples)
		}
		total += u.NumSamples
	}
	ref := updates[0].Weights
	out := make(tensor.Weights, len(ref))
	for i, t := range ref {
		acc := make([]float64, len(t.Data))
		for _, u := range updates {
			share := float64(u.NumSamples) / float64(total)
			for j, v := range u.Weights[i].Data {
				acc[j] += float64(v) * share
			}
		}
		data := make([]float32, len(acc))
		for j, v := range acc {
			data[j] = float32(v)
		}
		out[i] = tensor.Tensor{Shape: slices.Clone(t.Shape), Data: data}
	}
	return out, nil
}

// FedAvgM is FedAvg with server momentum (Hsu et al. 2019): with
// Δ = global − FedAvg(updates), v ← β·v + Δ, global ← global − η·v.
// Momentum 0 and learning rate 1 give FedAvg. The first round, without a
// global model, is plain FedAvg and starts v at zero.
type FedAvgM struct {
	// ServerLearningRate η (CRD parameter server_learning_rate, default 1).
	ServerLearningRate float64
	// Momentum β in [0, 1) (CRD parameter momentum, default 0.9).
	Momentum float64

	velocity []([]float64)
}

func (*FedAvgM) Name() string { return NameFedAvgM }

func (f *FedAvgM) Aggregate(global tensor.Weights, updates []ClientUpdate) (tensor.Weights, error) {
	avg, err := weightedMean(updates)
	if err != nil || global == nil {
		return avg, err
	}
	if f.velocity == nil {
		f.velocity = make([][]float64, len(global))
		for i, t := range global {
			f.velocity[i] = make([]float64, len(t.Data))
		}
	}
	out := make(tensor.Weights, len(global))
	for i, g := range global {
		v := f.velocity[i]
		data := make([]float32, len(g.Data))
		for j := range g.Data {
			delta := float64(g.Data[j]) - float64(avg[i].Data[j])
			v[j] = f.Momentum*v[j] + delta
			data[j] = float32(float64(g.Data[j]) - f.ServerLearningRate*v[j])
		}
		out[i] = tensor.Tensor{Shape: slices.Clone(g.Shape), Data: data}
	}
	return out, nil
}

// FedProx (Li et al. 2020) aggregates like FedAvg; its proximal term μ
// acts on the clients (ProximalGradient), which read it with ProximalMu.
type FedProx struct {
	// Mu is μ (CRD parameter mu, default 0.01).
	Mu float64
}

func (FedProx) Name() string { return NameFedProx }

func (FedProx) Aggregate(_ tensor.Weights, updates []ClientUpdate) (tensor.Weights, error) {
	return weightedMean(updates)
}

// NewAlgorithm builds the aggregator's algorithm from the CRD form
// (aggregation.algorithm and .parameters; AGGREGATION_ALGORITHM and
// AGGREGATION_PARAMETERS in the pod). Empty name: FedAvg, as upstream.
func NewAlgorithm(name string, params []ai.Parameter) (Algorithm, error) {
	if name == "" {
		name = NameFedAvg
	}
	p := ai.NewParams(name, params)
	var a Algorithm
	switch name {
	case NameFedAvg:
		a = FedAvg{}
	case NameFedAvgM:
		a = &FedAvgM{
			ServerLearningRate: p.Float("server_learning_rate", 1, 1e-12, 1e6),
			Momentum:           p.FloatBelow("momentum", 0.9, 0, 1),
		}
	case NameFedProx:
		a = FedProx{Mu: p.Float("mu", 0.01, 0, 1e6)}
	default:
		return nil, &ai.UnknownAlgorithmError{What: "aggregation", Name: name, Known: AlgorithmNames()}
	}
	if err := p.Done(); err != nil {
		return nil, err
	}
	return a, nil
}

// ProximalMu is what a training client needs from the job's aggregation
// settings: FedProx's μ, or 0 for the other algorithms (whose parameters
// are the aggregator's and are validated here too).
func ProximalMu(name string, params []ai.Parameter) (float64, error) {
	a, err := NewAlgorithm(name, params)
	if err != nil {
		return 0, err
	}
	if fp, ok := a.(FedProx); ok {
		return fp.Mu, nil
	}
	return 0, nil
}

// ProximalGradient adds FedProx's proximal term to a gradient, in place:
// grad += μ·(w − global), the gradient of (μ/2)·‖w − global‖². Call it
// on every local step with the global weights of the round.
func ProximalGradient(grad, w, global tensor.Weights, mu float64) error {
	if math.IsNaN(mu) || mu < 0 {
		return fmt.Errorf("proximal term: mu is %v; it must be a non-negative number", mu)
	}
	if err := grad.SameShape(w); err != nil {
		return fmt.Errorf("proximal term: gradient and weights: %w", err)
	}
	if err := global.SameShape(w); err != nil {
		return fmt.Errorf("proximal term: global and local weights: %w", err)
	}
	if mu == 0 {
		return nil
	}
	for i := range grad {
		g, x, x0 := grad[i].Data, w[i].Data, global[i].Data
		for j := range g {
			g[j] += float32(mu * (float64(x[j]) - float64(x0[j])))
		}
	}
	return nil
}

// ProximalPenalty is the proximal term's value, (μ/2)·‖w − global‖², for
// adding to a reported loss.
func ProximalPenalty(w, global tensor.Weights, mu float64) (float64, error) {
	if err := global.SameShape(w); err != nil {
		return 0, fmt.Errorf("proximal term: %w", err)
	}
	sum := 0.0
	for i := range w {
		for j, x := range w[i].Data {
			d := float64(x) - float64(global[i].Data[j])
			sum += d * d
		}
	}
	return mu / 2 * sum, nil
}

// StopCondition ends training. The aggregator stops after the round that
// meets either criterion; at least one must be set.
type StopCondition struct {
	// Rounds is the number of rounds to run (Sedna's exit_round).
	Rounds int
	// Target stops once the round's aggregated metric reaches a value.
	Target *TargetMetric
}

// Validate checks the condition.
func (s StopCondition) Validate() error {
	if s.Rounds < 0 {
		return fmt.Errorf("stop condition: rounds is %d; it must be positive", s.Rounds)
	}
	if s.Rounds == 0 && s.Target == nil {
		return errors.New("stop condition: set rounds (STOP_ROUNDS or exit_round), a target metric, or both")
	}
	if s.Target != nil {
		return s.Target.Validate()
	}
	return nil
}

// TargetMetric compares a metric the clients report with a value.
type TargetMetric struct {
	Name string
	// Operator is one of >=, >, <=, <.
	Operator string
	Value    float64
}

// ParseTargetMetric reads the STOP_METRIC* variables.
func ParseTargetMetric(name, operator, value string) (*TargetMetric, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	if err != nil {
		return nil, fmt.Errorf("stop condition: target value %q must be a number", value)
	}
	t := &TargetMetric{Name: name, Operator: operator, Value: v}
	return t, t.Validate()
}

// Validate checks the metric.
func (t TargetMetric) Validate() error {
	if t.Name == "" {
		return errors.New("stop condition: the target metric needs a name")
	}
	switch t.Operator {
	case ">=", ">", "<=", "<":
	default:
		return fmt.Errorf("stop condition: operator %q must be one of >=, >, <=, <", t.Operator)
	}
	if math.IsNaN(t.Value) || math.IsInf(t.Value, 0) {
		return fmt.Errorf("stop condition: target value %v must be finite", t.Value)
	}
	return nil
}

// Met reports whether metrics satisfy the target (false when the metric
// is missing).
func (t TargetMetric) Met(metrics map[string]float64) bool {
	v, ok := metrics[t.Name]
	if !ok {
		return false
	}
	switch t.Operator {
	case ">=":
		return v >= t.Value
	case ">":
		return v > t.Value
	case "<=":
		return v <= t.Value
	case "<":
		return v < t.Value
	}
	return false
}

func (t TargetMetric) String() string { return fmt.Sprintf("%s %s %g", t.Name, t.Operator, t.Value) }
