package value

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Limits are a numeric property's inclusive bounds from the model's minimum
// and maximum; a nil bound is open.
type Limits struct {
	Min, Max *float64
}

// ParseLimits reads the model's minimum and maximum strings. Empty strings
// are open bounds. Bounds apply to numeric types only; for other types they
// are ignored. A bound that is not a number, or min > max, is an error that
// names the field.
func ParseLimits(t Type, minimum, maximum string) (Limits, error) {
	var l Limits
	if !t.Numeric() {
		return l, nil
	}
	parse := func(field, s string) (*float64, error) {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) {
			return nil, fmt.Errorf("model %s %q is not a number", field, s)
		}
		return &f, nil
	}
	var err error
	if l.Min, err = parse("minimum", minimum); err != nil {
		return l, err
	}
	if l.Max, err = parse("maximum", maximum); err != nil {
		return l, err
	}
	if l.Min != nil && l.Max != nil && *l.Min > *l.Max {
		return l, fmt.Errorf("model minimum %s is greater than maximum %s", minimum, maximum)
	}
	return l, nil
}

// Check reports whether v (a canonical value from Parse or Coerce) lies
// within the limits; the error says which bound it broke.
func (l Limits) Check(v any) error {
	var f float64
	switch n := v.(type) {
	case int64:
		f = float64(n)
	case float64:
		f = n
	default:
		return nil
	}
	if l.Min != nil && f < *l.Min {
		return errorf("%v is below the minimum %v", v, fmtBound(*l.Min))
	}
	if l.Max != nil && f > *l.Max {
		return errorf("%v is above the maximum %v", v, fmtBound(*l.Max))
	}
	return nil
}

func fmtBound(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// Changed reports whether a new reading differs enough from the last one
// reported to be worth reporting. For numeric types with deadband > 0 the
// absolute difference must exceed the deadband; otherwise any difference in
// the canonical string counts. A value that does not parse as a number is
// compared as a string.
func Changed(t Type, last, cur string, deadband float64) bool {
	if last == cur {
		return false
	}
	if deadband <= 0 || !t.Numeric() {
		return true
	}
	a, err1 := strconv.ParseFloat(last, 64)
	b, err2 := strconv.ParseFloat(cur, 64)
	if err1 != nil || err2 != nil {
		return true
	}
	return math.Abs(b-a) > deadband
}
