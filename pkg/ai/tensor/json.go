package tensor

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// MarshalJSON encodes the tensor as nested lists (a bare number for a
// scalar). NaN and infinities are refused: JSON has no spelling for them.
func (t Tensor) MarshalJSON() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t.appendJSON(make([]byte, 0, 2+len(t.Data)*10))
}

func (t Tensor) appendJSON(b []byte) ([]byte, error) {
	if len(t.Shape) == 0 {
		return appendNumber(b, t.Data[0])
	}
	var err error
	b, _, err = appendNested(b, t.Shape, t.Data)
	return b, err
}

func appendNested(b []byte, shape []int, data []float32) ([]byte, []float32, error) {
	b = append(b, '[')
	var err error
	for i := 0; i < shape[0]; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		if len(shape) == 1 {
			if b, err = appendNumber(b, data[0]); err != nil {
				return nil, nil, err
			}
			data = data[1:]
			continue
		}
		if b, data, err = appendNested(b, shape[1:], data); err != nil {
			return nil, nil, err
		}
	}
	return append(b, ']'), data, nil
}

func appendNumber(b []byte, v float32) ([]byte, error) {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: cannot encode %v as JSON", ErrNotFinite, v)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 32), nil
}

// UnmarshalJSON decodes nested lists (or a bare number), inferring the
// shape. Ragged lists are an error.
func (t *Tensor) UnmarshalJSON(b []byte) error {
	p := parser{b: b}
	v, err := p.tensor()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	*t = v
	return nil
}

// MarshalJSON encodes the weights as Sedna does: a list of nested lists.
func (w Weights) MarshalJSON() ([]byte, error) {
	if w == nil {
		return []byte("null"), nil
	}
	b := make([]byte, 0, 2+w.Len()*10)
	b = append(b, '[')
	for i, t := range w {
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("tensor %d: %w", i, err)
		}
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = t.appendJSON(b); err != nil {
			return nil, fmt.Errorf("tensor %d: %w", i, err)
		}
	}
	return append(b, ']'), nil
}

// UnmarshalJSON decodes a list of nested lists. JSON null decodes to nil
// weights.
func (w *Weights) UnmarshalJSON(b []byte) error {
	p := parser{b: b}
	p.ws()
	if p.literal("null") {
		if err := p.end(); err != nil {
			return err
		}
		*w = nil
		return nil
	}
	if !p.consume('[') {
		return p.errorf("weights must be a JSON list of tensors")
	}
	out := Weights{}
	p.ws()
	if !p.consume(']') {
		for {
			t, err := p.tensor()
			if err != nil {
				return fmt.Errorf("tensor %d: %w", len(out), err)
			}
			out = append(out, t)
			p.ws()
			if p.consume(',') {
				continue
			}
			if p.consume(']') {
				break
			}
			return p.errorf("expected ',' or ']' after tensor %d", len(out)-1)
		}
	}
	if err := p.end(); err != nil {
		return err
	}
	*w = out
	return nil
}

// ErrSyntax is returned (wrapped) for JSON the decoder cannot read.
var ErrSyntax = errors.New("invalid tensor JSON")

// parser reads nested number lists straight from the bytes: weights are
// large and reflection-based decoding into []any costs several times the
// memory.
type parser struct {
	b []byte
	i int

	// Per tensor.
	counts    []int // element count of the lists at each depth, -1 until the first closes
	leafDepth int   // depth of the numbers, -1 until the first one
	data      []float32
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", ErrSyntax, p.i, fmt.Sprintf(format, args...))
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) consume(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

func (p *parser) end() error {
	p.ws()
	if p.i != len(p.b) {
		return p.errorf("unexpected data after the value")
	}
	return nil
}

func (p *parser) tensor() (Tensor, error) {
	p.counts = p.counts[:0]
	p.leafDepth = -1
	p.data = nil
	if err := p.value(0); err != nil {
		return Tensor{}, err
	}
	shape := make([]int, 0, len(p.counts))
	shape = append(shape, p.counts...)
	if p.leafDepth >= 0 && p.leafDepth != len(shape) {
		return Tensor{}, p.errorf("ragged nested lists")
	}
	data := p.data
	if data == nil {
		data = []float32{}
	}
	return Tensor{Shape: shape, Data: data}, nil
}

const maxRank = 32

func (p *parser) value(depth int) error {
	p.ws()
	if p.i >= len(p.b) {
		return p.errorf("unexpected end of input")
	}
	if p.b[p.i] != '[' {
		if p.leafDepth < 0 {
			p.leafDepth = depth
		} else if p.leafDepth != depth {
			return p.errorf("ragged nested lists: a number at depth %d, earlier ones at depth %d", depth, p.leafDepth)
		}
		if depth < len(p.counts) {
			return p.errorf("ragged nested lists: a number where a list was expected")
		}
		f, err := p.number()
		if err != nil {
			return err
		}
		p.data = append(p.data, float32(f))
		return nil
	}
	if p.leafDepth >= 0 && depth >= p.leafDepth {
		return p.errorf("ragged nested lists: a list where a number was expected")
	}
	if depth >= maxRank {
		return p.errorf("lists nested deeper than %d", maxRank)
	}
	p.i++ // '['
	for len(p.counts) <= depth {
		p.counts = append(p.counts, -1)
	}
	n := 0
	p.ws()
	if !p.consume(']') {
		for {
			if err := p.value(depth + 1); err != nil {
				return err
			}
			n++
			p.ws()
			if p.consume(',') {
				continue
			}
			if p.consume(']') {
				break
			}
			return p.errorf("expected ',' or ']'")
		}
	}
	switch c := p.counts[depth]; {
	case c < 0:
		p.counts[depth] = n
	case c != n:
		return p.errorf("ragged nested lists: %d elements at depth %d where earlier lists had %d", n, depth, c)
	}
	return nil
}

func (p *parser) number() (float64, error) {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == ',' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			break
		}
		p.i++
	}
	tok := string(p.b[start:p.i])
	switch tok {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	if !jsonNumber(tok) {
		p.i = start
		return 0, p.errorf("%q is not a number", truncate(tok))
	}
	f, err := strconv.ParseFloat(tok, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		p.i = start
		return 0, p.errorf("%q is not a number", truncate(tok))
	}
	return f, nil // out-of-range values become ±Inf, caught by CheckFinite
}

// jsonNumber reports whether s follows JSON's number grammar.
func jsonNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}
