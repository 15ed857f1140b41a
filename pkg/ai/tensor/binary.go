package tensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrBinary is returned (wrapped) for a binary encoding that cannot be
// decoded.
var ErrBinary = errors.New("invalid binary weights")

// AppendBinary appends the binary encoding of w to dst.
func AppendBinary(dst []byte, w Weights) ([]byte, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	size := 4
	for _, t := range w {
		size += 4 + 4*len(t.Shape) + 4*len(t.Data)
	}
	if cap(dst)-len(dst) < size {
		grown := make([]byte, len(dst), len(dst)+size)
		copy(grown, dst)
		dst = grown
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(w)))
	for _, t := range w {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(t.Shape)))
		for _, d := range t.Shape {
			if d > math.MaxUint32 {
				return nil, fmt.Errorf("dimension %d does not fit the binary encoding", d)
			}
			dst = binary.LittleEndian.AppendUint32(dst, uint32(d))
		}
		for _, v := range t.Data {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	}
	return dst, nil
}

// DecodeBinary decodes weights encoded by AppendBinary; b must hold exactly
// one encoding.
func DecodeBinary(b []byte) (Weights, error) {
	r := reader{b: b}
	n, err := r.u32("tensor count")
	if err != nil {
		return nil, err
	}
	// Each tensor takes at least 4 bytes: bound the count by what is left.
	if uint64(n) > uint64(len(r.b)-r.off)/4 {
		return nil, fmt.Errorf("%w: %d tensors cannot fit in %d bytes", ErrBinary, n, len(b))
	}
	w := make(Weights, 0, n)
	for i := range int(n) {
		rank, err := r.u32("rank")
		if err != nil {
			return nil, fmt.Errorf("tensor %d: %w", i, err)
		}
		if rank > maxRank {
			return nil, fmt.Errorf("%w: tensor %d has rank %d (at most %d)", ErrBinary, i, rank, maxRank)
		}
		shape := make([]int, rank)
		size := uint64(1)
		for j := range shape {
			d, err := r.u32("dimension")
			if err != nil {
				return nil, fmt.Errorf("tensor %d: %w", i, err)
			}
			shape[j] = int(d)
			size *= uint64(d)
			if size > uint64(len(r.b)) {
				return nil, fmt.Errorf("%w: tensor %d of shape %v does not fit in %d bytes", ErrBinary, i, shape[:j+1], len(b))
			}
		}
		if size*4 > uint64(len(r.b)-r.off) {
			return nil, fmt.Errorf("%w: tensor %d of shape %v needs %d bytes, %d left", ErrBinary, i, shape, size*4, len(r.b)-r.off)
		}
		data := make([]float32, size)
		for k := range data {
			data[k] = math.Float32frombits(binary.LittleEndian.Uint32(r.b[r.off:]))
			r.off += 4
		}
		w = append(w, Tensor{Shape: shape, Data: data})
	}
	if r.off != len(r.b) {
		return nil, fmt.Errorf("%w: %d bytes after the last tensor", ErrBinary, len(r.b)-r.off)
	}
	return w, nil
}

type reader struct {
	b   []byte
	off int
}

func (r *reader) u32(what string) (uint32, error) {
	if len(r.b)-r.off < 4 {
		return 0, fmt.Errorf("%w: truncated before the %s", ErrBinary, what)
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v, nil
}
