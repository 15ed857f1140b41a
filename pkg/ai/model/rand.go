package model

import "math"

// splitMix64 is the SplitMix64 generator. The model defines its own rather
// than using math/rand so that a seed gives the same initial weights on
// every Go release.
type splitMix64 struct{ state uint64 }

func (r *splitMix64) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// float64 returns a uniform value in (0, 1): never 0, so its log is finite.
func (r *splitMix64) float64() float64 {
	return (float64(r.next()>>11) + 0.5) / (1 << 53)
}

// normal returns a standard normal value (Box–Muller, one value per call).
func (r *splitMix64) normal() float64 {
	u1, u2 := r.float64(), r.float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// mix derives the seed of an independent stream from a seed and a tag.
func mix(seed, tag uint64) uint64 {
	r := splitMix64{state: seed ^ tag*0x9e3779b97f4a7c15}
	return r.next()
}
