package modbus

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/verge-edge/verge/pkg/mapper"
	"github.com/verge-edge/verge/pkg/mapper/value"
)

// Conversions between register words and property values. Pure.

// toBytes lays registers out big-endian after applying the visitor's swaps.
func (v *visitor) toBytes(regs []uint16) []byte {
	words := append([]uint16(nil), regs...)
	if v.regSwap {
		for i, j := 0, len(words)-1; i < j; i, j = i+1, j-1 {
			words[i], words[j] = words[j], words[i]
		}
	}
	b := make([]byte, 2*len(words))
	for i, w := range words {
		if v.swap {
			w = w<<8 | w>>8
		}
		binary.BigEndian.PutUint16(b[2*i:], w)
	}
	return b
}

// fromBytes is the inverse of toBytes (both swaps are involutions).
func (v *visitor) fromBytes(b []byte) []uint16 {
	words := make([]uint16, len(b)/2)
	for i := range words {
		w := binary.BigEndian.Uint16(b[2*i:])
		if v.swap {
			w = w<<8 | w>>8
		}
		words[i] = w
	}
	if v.regSwap {
		for i, j := 0, len(words)-1; i < j; i, j = i+1, j-1 {
			words[i], words[j] = words[j], words[i]
		}
	}
	return words
}

// decodeRegisters turns register words into a property value.
func (v *visitor) decodeRegisters(regs []uint16) (any, error) {
	b := v.toBytes(regs)
	switch v.typ {
	case value.String:
		return string(bytes.TrimRight(b, "\x00")), nil
	case value.Bytes:
		return b, nil
	}
	var u uint64
	for _, x := range b {
		u = u<<8 | uint64(x)
	}
	bits := uint(8 * len(b))
	var f float64
	switch v.raw {
	case rawUint:
		f = float64(u)
	case rawInt:
		shift := 64 - bits
		f = float64(int64(u<<shift) >> shift)
	case rawFloat:
		if bits == 32 {
			f = float64(math.Float32frombits(uint32(u)))
		} else {
			f = math.Float64frombits(u)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%s holds %v, not a finite number", v, f)
		}
	}
	return v.scaled(f, v.raw != rawFloat, u), nil
}

// scaled applies the scale and shapes the result for the property type.
func (v *visitor) scaled(f float64, integral bool, u uint64) any {
	switch v.typ {
	case value.Boolean:
		return f != 0
	case value.Int:
		if v.scale == 1 && integral && v.raw == rawUint {
			return u // exact, even above 2^53
		}
		return int64(math.Round(f * v.scale))
	}
	if integral {
		// An integer times 0.1 is exactly one decimal; say so rather than
		// 21.500000000000004.
		if d := decimals(v.scale); d <= 15 {
			p := math.Pow10(d)
			return math.Round(f*v.scale*p) / p
		}
	}
	return f * v.scale
}

// decimals is the number of digits after the point in the shortest form of
// f (0.1 → 1, 0.25 → 2, 10 → 0).
func decimals(f float64) int {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

// decodeBits turns coil or discrete-input bits into a property value.
func (v *visitor) decodeBits(bits []bool) any {
	if v.typ == value.Boolean {
		return bits[0]
	}
	var u uint64
	for i, b := range bits {
		if b {
			u |= 1 << uint(i)
		}
	}
	return v.scaled(float64(u), true, u)
}

// encodeRegisters turns a property value (int64, float64, bool, string or
// []byte, already checked against the model) into register words.
func (v *visitor) encodeRegisters(x any) ([]uint16, error) {
	n := int(v.limit)
	switch t := x.(type) {
	case string:
		return v.packBytes([]byte(t))
	case []byte:
		return v.packBytes(t)
	case bool:
		if t {
			x = int64(1)
		} else {
			x = int64(0)
		}
	}
	var f float64
	switch t := x.(type) {
	case int64:
		f = float64(t)
	case float64:
		f = t
	default:
		return nil, fmt.Errorf("cannot write a %T to %s", x, v)
	}
	raw := f / v.scale
	bits := uint(16 * n)
	var u uint64
	switch v.raw {
	case rawFloat:
		if bits == 32 {
			if math.Abs(raw) > math.MaxFloat32 {
				return nil, fmt.Errorf("%v does not fit a float32 in %s: %w", f, v, mapper.ErrValueOutOfRange)
			}
			u = uint64(math.Float32bits(float32(raw)))
		} else {
			u = math.Float64bits(raw)
		}
	case rawUint:
		r := math.Round(raw)
		if r < 0 || (bits < 64 && r > float64(uint64(1)<<bits-1)) || r > math.MaxUint64 {
			return nil, fmt.Errorf("%v (raw %v) does not fit %d unsigned bits of %s: %w", f, r, bits, v, mapper.ErrValueOutOfRange)
		}
		u = uint64(r)
	case rawInt:
		r := math.Round(raw)
		lim := math.Ldexp(1, int(bits)-1)
		if r < -lim || r > lim-1 {
			return nil, fmt.Errorf("%v (raw %v) does not fit %d signed bits of %s: %w", f, r, bits, v, mapper.ErrValueOutOfRange)
		}
		u = uint64(int64(r))
	}
	b := make([]byte, 2*n)
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte(u)
		u >>= 8
	}
	return v.fromBytes(b), nil
}

func (v *visitor) packBytes(p []byte) ([]uint16, error) {
	n := 2 * int(v.limit)
	if len(p) > n {
		return nil, fmt.Errorf("%d bytes do not fit %s (%d bytes): %w", len(p), v, n, mapper.ErrValueOutOfRange)
	}
	b := make([]byte, n)
	copy(b, p)
	return v.fromBytes(b), nil
}

// encodeBits turns a value into coil states.
func (v *visitor) encodeBits(x any) ([]bool, error) {
	var u uint64
	switch t := x.(type) {
	case bool:
		if t {
			u = 1
		}
	case int64:
		r := math.Round(float64(t) / v.scale)
		if r < 0 || (v.limit < 64 && r >= math.Ldexp(1, int(v.limit))) {
			return nil, fmt.Errorf("%d does not fit %s: %w", t, v, mapper.ErrValueOutOfRange)
		}
		u = uint64(r)
	case float64:
		r := math.Round(t / v.scale)
		if r < 0 || (v.limit < 64 && r >= math.Ldexp(1, int(v.limit))) {
			return nil, fmt.Errorf("%v does not fit %s: %w", t, v, mapper.ErrValueOutOfRange)
		}
		u = uint64(r)
	default:
		return nil, fmt.Errorf("cannot write a %T to %s", x, v)
	}
	out := make([]bool, v.limit)
	for i := range out {
		out[i] = u&(1<<uint(i)) != 0
	}
	return out, nil
}
