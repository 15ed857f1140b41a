package ai

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Parameter is one algorithm parameter as the CRDs hold it
// (hardExampleMining.parameters, aggregation.parameters): both halves are
// strings, and the worker parses the value.
type Parameter struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ParseParameters reads the JSON list the controllers put in HEM_PARAMETERS
// and AGGREGATION_PARAMETERS: `[{"key":"threshold","value":"0.9"}]`. An
// empty string means no parameters. Upstream Sedna silently drops a list it
// cannot parse; here it is an error, so a typo does not quietly run the
// defaults.
func ParseParameters(s string) ([]Parameter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf(`parameters must be a JSON list of {"key": "...", "value": "..."} objects: %w`, err)
	}
	out := make([]Parameter, 0, len(raw))
	for i, m := range raw {
		var p Parameter
		k, ok := m["key"]
		if !ok {
			return nil, fmt.Errorf("parameters[%d] has no \"key\"", i)
		}
		if err := json.Unmarshal(k, &p.Key); err != nil || p.Key == "" {
			return nil, fmt.Errorf("parameters[%d].key must be a non-empty string", i)
		}
		if v, ok := m["value"]; ok {
			if err := json.Unmarshal(v, &p.Value); err != nil {
				// Hand-written lists sometimes carry numbers; accept
				// them in their JSON spelling.
				var n json.Number
				if json.Unmarshal(v, &n) != nil {
					return nil, fmt.Errorf("parameters[%d] (%s): value must be a string or a number", i, p.Key)
				}
				p.Value = n.String()
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// ParameterError is a parameter a user set wrong. Its message names the
// algorithm, the parameter, the value and what is valid.
type ParameterError struct {
	Algorithm string
	Key       string
	Value     string
	// Want says what is valid, e.g. "a number in [0, 1]".
	Want string
}

func (e *ParameterError) Error() string {
	return fmt.Sprintf("%s: parameter %s=%q is invalid: want %s", e.Algorithm, e.Key, e.Value, e.Want)
}

// UnknownAlgorithmError names an algorithm that does not exist and lists
// the ones that do.
type UnknownAlgorithmError struct {
	// What is the kind of algorithm ("hard example mining").
	What  string
	Name  string
	Known []string
}

func (e *UnknownAlgorithmError) Error() string {
	return fmt.Sprintf("unknown %s algorithm %q; valid names (case-sensitive): %s", e.What, e.Name, strings.Join(e.Known, ", "))
}

// Params reads the parameters of one algorithm. Build it with NewParams,
// read every key the algorithm knows, then call Done to reject the rest.
type Params struct {
	algorithm string
	values    map[string]string
	used      map[string]bool
	errs      []error
}

// NewParams indexes ps for algorithm. A key given twice is an error
// (reported by Done).
func NewParams(algorithm string, ps []Parameter) *Params {
	p := &Params{algorithm: algorithm, values: map[string]string{}, used: map[string]bool{}}
	for _, kv := range ps {
		if _, dup := p.values[kv.Key]; dup {
			p.errs = append(p.errs, &ParameterError{Algorithm: algorithm, Key: kv.Key, Value: kv.Value, Want: "each key once (it appears twice)"})
			continue
		}
		p.values[kv.Key] = kv.Value
	}
	return p
}

// Float returns the parameter key as a number in [lo, hi], or def when it
// is absent. A value that does not parse, is not finite or is out of range
// is recorded as a *ParameterError and def is returned.
func (p *Params) Float(key string, def, lo, hi float64) float64 {
	p.used[key] = true
	s, ok := p.values[key]
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < lo || f > hi {
		p.errs = append(p.errs, &ParameterError{Algorithm: p.algorithm, Key: key, Value: s, Want: fmt.Sprintf("a number in [%g, %g]", lo, hi)})
		return def
	}
	return f
}

// FloatBelow is Float for a half-open range [lo, hi).
func (p *Params) FloatBelow(key string, def, lo, hi float64) float64 {
	f := p.Float(key, def, lo, hi)
	if s, ok := p.values[key]; ok && f == hi {
		p.errs = append(p.errs, &ParameterError{Algorithm: p.algorithm, Key: key, Value: s, Want: fmt.Sprintf("a number in [%g, %g)", lo, hi)})
		return def
	}
	return f
}

// Done returns every problem found: duplicate keys, bad values, and keys
// the algorithm does not know (upstream ignores those, so a misspelt
// "treshold" silently runs the default).
func (p *Params) Done() error {
	var unknown []string
	for k := range p.values {
		if !p.used[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	errs := p.errs
	if len(unknown) > 0 {
		known := make([]string, 0, len(p.used))
		for k := range p.used {
			known = append(known, k)
		}
		slices.Sort(known)
		want := "no parameters"
		if len(known) > 0 {
			want = "one of " + strings.Join(known, ", ")
		}
		for _, k := range unknown {
			errs = append(errs, &ParameterError{Algorithm: p.algorithm, Key: k, Value: p.values[k], Want: "a known key: " + want})
		}
	}
	return joinErrors(errs)
}

// joinErrors is errors.Join that returns a lone error unwrapped, so callers
// can errors.As it and its message reads plainly.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return multiError(errs)
}

type multiError []error

func (m multiError) Error() string {
	parts := make([]string, len(m))
	for i, e := range m {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

func (m multiError) Unwrap() []error { return m }
