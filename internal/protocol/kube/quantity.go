package kube

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Quantity is a Kubernetes resource amount ("500m", "128Mi", "2", "1e3").
// It keeps the text it was given and computes with exact fractions, which
// is all the edge needs: compare, add, and read values for cgroups.
type Quantity struct {
	s string
}

// Format is how NewQuantity writes a value.
type Format string

// The formats of Kubernetes quantities.
const (
	// BinarySI uses powers of two: Ki, Mi, Gi…
	BinarySI Format = "BinarySI"
	// DecimalSI uses powers of ten: k, M, G…, and m for thousandths.
	DecimalSI Format = "DecimalSI"
)

var (
	binarySuffixes  = []string{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
	decimalSuffixes = map[string]int{"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
)

// ParseQuantity reads a quantity written as the API accepts it.
func ParseQuantity(s string) (Quantity, error) {
	if _, err := parseQuantity(s); err != nil {
		return Quantity{}, err
	}
	return Quantity{s: s}, nil
}

// MustParse is ParseQuantity for constants; it panics on a malformed one.
func MustParse(s string) Quantity {
	q, err := ParseQuantity(s)
	if err != nil {
		panic(err)
	}
	return q
}

// NewQuantity is v written in format f.
func NewQuantity(v int64, f Format) *Quantity {
	return &Quantity{s: formatQuantity(new(big.Rat).SetInt64(v), f)}
}

// NewMilliQuantity is v/1000 written in format f.
func NewMilliQuantity(v int64, f Format) *Quantity {
	return &Quantity{s: formatQuantity(big.NewRat(v, 1000), f)}
}

// parseQuantity returns the exact value of s.
func parseQuantity(s string) (*big.Rat, error) {
	bad := func() (*big.Rat, error) {
		return nil, fmt.Errorf("quantity %q is not valid: write a number with an optional suffix, such as 500m, 2, 128Mi or 1G", s)
	}
	if s == "" {
		return bad()
	}
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.' || (end == 0 && (s[end] == '+' || s[end] == '-'))) {
		end++
	}
	num, suffix := strings.TrimPrefix(s[:end], "+"), s[end:]
	if num == "" || num == "-" || num == "." || strings.Count(num, ".") > 1 {
		return bad()
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return bad()
	}
	for i, b := range binarySuffixes {
		if suffix == b {
			return r.Mul(r, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), uint(10*(i+1))))), nil
		}
	}
	exp, ok := decimalSuffixes[suffix]
	if !ok {
		if len(suffix) < 2 || (suffix[0] != 'e' && suffix[0] != 'E') {
			return bad()
		}
		e, err := strconv.Atoi(suffix[1:])
		if err != nil || e < -30 || e > 30 {
			return bad()
		}
		exp = e
	}
	return r.Mul(r, pow10(exp)), nil
}

func pow10(e int) *big.Rat {
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(e, -e))), nil)
	if e < 0 {
		return new(big.Rat).SetFrac(big.NewInt(1), p)
	}
	return new(big.Rat).SetInt(p)
}

// formatQuantity writes r with the largest suffix of format f that keeps
// it whole; fractions use m, u or n (rounded up to a nano).
func formatQuantity(r *big.Rat, f Format) string {
	if r.Sign() == 0 {
		return "0"
	}
	if r.IsInt() {
		n := new(big.Int).Set(r.Num())
		if f == BinarySI {
			unit, i := big.NewInt(1024), -1
			for i+1 < len(binarySuffixes) && new(big.Int).Rem(n, unit).Sign() == 0 {
				n.Quo(n, unit)
				i++
			}
			if i >= 0 {
				return n.String() + binarySuffixes[i]
			}
			return n.String()
		}
		suffixes := []string{"", "k", "M", "G", "T", "P", "E"}
		thousand, i := big.NewInt(1000), 0
		for i+1 < len(suffixes) && new(big.Int).Rem(n, thousand).Sign() == 0 {
			n.Quo(n, thousand)
			i++
		}
		return n.String() + suffixes[i]
	}
	for _, u := range []struct {
		suffix string
		exp    int
	}{{"m", 3}, {"u", 6}, {"n", 9}} {
		scaled := new(big.Rat).Mul(r, pow10(u.exp))
		if scaled.IsInt() || u.suffix == "n" {
			return ceil(scaled).String() + u.suffix
		}
	}
	return "0" // not reached
}

func ceil(r *big.Rat) *big.Int {
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}

// rat is q's exact value; an empty or malformed quantity is zero (parsing
// checked it on the way in).
func (q *Quantity) rat() *big.Rat {
	if q == nil || q.s == "" {
		return new(big.Rat)
	}
	r, err := parseQuantity(q.s)
	if err != nil {
		return new(big.Rat)
	}
	return r
}

// format guesses the format q was written in, so sums keep it.
func (q *Quantity) format() Format {
	if q != nil {
		for _, b := range binarySuffixes {
			if strings.HasSuffix(q.s, b) {
				return BinarySI
			}
		}
	}
	return DecimalSI
}

// String is q as written ("0" when empty).
func (q *Quantity) String() string {
	if q == nil || q.s == "" {
		return "0"
	}
	return q.s
}

// IsZero reports whether q is zero.
func (q *Quantity) IsZero() bool { return q.rat().Sign() == 0 }

// Value is q rounded up to a whole number.
func (q *Quantity) Value() int64 { return ceil(q.rat()).Int64() }

// MilliValue is q in thousandths, rounded up.
func (q *Quantity) MilliValue() int64 {
	return ceil(new(big.Rat).Mul(q.rat(), big.NewRat(1000, 1))).Int64()
}

// Cmp returns -1, 0 or 1 as q is less than, equal to or more than y.
func (q *Quantity) Cmp(y Quantity) int { return q.rat().Cmp(y.rat()) }

// Add adds y to q.
func (q *Quantity) Add(y Quantity) {
	q.s = formatQuantity(new(big.Rat).Add(q.rat(), y.rat()), q.format())
}

// Sub subtracts y from q.
func (q *Quantity) Sub(y Quantity) {
	q.s = formatQuantity(new(big.Rat).Sub(q.rat(), y.rat()), q.format())
}

// MarshalJSON writes q as a string.
func (q Quantity) MarshalJSON() ([]byte, error) { return json.Marshal(q.String()) }

// UnmarshalJSON reads a string or a number.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		*q = Quantity{}
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := ParseQuantity(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*q = v
	return nil
}

// quantityShape is the message layout of Quantity.
type quantityShape struct {
	String string `protobuf:"bytes,1,opt,name=string"`
}

func (q *Quantity) appendProto(b []byte) []byte {
	return appendShape(b, &quantityShape{String: q.String()})
}

func (q *Quantity) readProto(b []byte) error {
	var s quantityShape
	if err := readShape(b, &s); err != nil {
		return err
	}
	if s.String == "" {
		*q = Quantity{}
		return nil
	}
	v, err := ParseQuantity(s.String)
	*q = v
	return err
}
