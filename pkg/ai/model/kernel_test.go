package model

import (
	"math"
	"slices"
	"testing"
)

// naiveGemmNT is the definition of gemmNT: each element summed in order in
// one float32. The kernel must match it bit for bit.
func naiveGemmNT(a, b []float32, m, n, k int) []float32 {
	c := make([]float32, m*n)
	for i := range m {
		for j := range n {
			var s float32
			for p := range k {
				s += a[i*k+p] * b[j*k+p]
			}
			c[i*n+j] = s
		}
	}
	return c
}

func TestGemmNTMatchesDefinitionBitForBit(t *testing.T) {
	r := &splitMix64{state: 3}
	fill := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.normal())
		}
		return x
	}
	for _, sh := range []struct{ m, n, k int }{
		{1, 1, 1}, {2, 4, 3}, {3, 5, 7}, {5, 9, 1}, {7, 3, 13}, {64, 10, 784}, {64, 256, 100}, {33, 130, 64}, {10, 4, 600},
	} {
		a, b := fill(sh.m*sh.k), fill(sh.n*sh.k)
		want := naiveGemmNT(a, b, sh.m, sh.n, sh.k)
		for _, workers := range []int{1, 2, 3, 8} {
			c := make([]float32, sh.m*sh.n)
			for i := range c {
				c[i] = float32(math.NaN()) // every element must be written
			}
			gemmNT(c, a, b, sh.m, sh.n, sh.k, workers)
			if !slices.Equal(c, want) {
				t.Fatalf("%dx%dx%d with %d workers differs from the definition", sh.m, sh.n, sh.k, workers)
			}
		}
	}
}

func TestTranspose(t *testing.T) {
	const rows, cols = 37, 70
	src := make([]float32, rows*cols)
	for i := range src {
		src[i] = float32(i)
	}
	dst := make([]float32, rows*cols)
	transpose(dst, src, rows, cols)
	for r := range rows {
		for c := range cols {
			if dst[c*rows+r] != src[r*cols+c] {
				t.Fatalf("dst[%d][%d] = %v, want %v", c, r, dst[c*rows+r], src[r*cols+c])
			}
		}
	}
}

func TestParallelRangesCoversEachIndexOnce(t *testing.T) {
	for _, tc := range []struct{ n, grain, workers int }{{10, 4, 3}, {1, 2, 4}, {100, 4, 7}, {9, 2, 1}, {256, 4, 2}} {
		hits := make([]int, tc.n)
		starts := make(chan int, tc.n)
		parallelRanges(tc.n, tc.grain, tc.workers, func(lo, hi int) {
			starts <- lo
			for i := lo; i < hi; i++ {
				hits[i]++ // ranges are disjoint, so no two goroutines write one index
			}
		})
		close(starts)
		for lo := range starts {
			if lo%tc.grain != 0 {
				t.Fatalf("%+v: range starts at %d, not a multiple of %d", tc, lo, tc.grain)
			}
		}
		for i, h := range hits {
			if h != 1 {
				t.Fatalf("%+v: index %d visited %d times", tc, i, h)
			}
		}
	}
}
