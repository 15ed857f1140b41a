package dataset

import "math/bits"

// splitMix64 is the SplitMix64 generator (Steele, Lea and Flood, 2014). It
// is defined here rather than taken from math/rand so that the sequences,
// and therefore shuffles and shards, are fixed by this package's code.
type splitMix64 struct{ state uint64 }

// Stream tags keep the generators for different purposes apart even when
// callers reuse one seed.
const (
	streamPermutation uint64 = 0x7065726d75746174 // "permutat"
	streamClassOrder  uint64 = 0x636c6173736f7264 // "classord"
)

func newSplitMix64(seed, stream uint64) *splitMix64 {
	return &splitMix64{state: seed ^ stream}
}

func (r *splitMix64) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// intn returns a uniform integer in [0, n) for n > 0, by Lemire's
// multiply-and-reject method (no modulo bias).
func (r *splitMix64) intn(n int) int {
	bound := uint64(n)
	hi, lo := bits.Mul64(r.next(), bound)
	if lo < bound {
		threshold := -bound % bound
		for lo < threshold {
			hi, lo = bits.Mul64(r.next(), bound)
		}
	}
	return int(hi)
}

// Permutation returns a uniformly random permutation of 0…n-1 determined by
// seed (Fisher–Yates over SplitMix64). The same n and seed give the same
// permutation on every platform and Go release.
func Permutation(n int, seed uint64) []int {
	return permutation(n, newSplitMix64(seed, streamPermutation))
}

func permutation(n int, r *splitMix64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}
