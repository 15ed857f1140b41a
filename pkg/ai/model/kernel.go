package model

import "sync"

// The numeric kernels. Determinism rests on one rule: every output element
// is a sum over p = 0, 1, …, k-1 in that order, accumulated in one float32,
// whatever blocking or goroutine computes it. Work is split only between
// output elements, never within a sum, so results do not depend on the
// number of workers or on scheduling.
//
// The loops marked //go:norace are exempt from the race detector, which
// slows them more than tenfold and would make the accuracy tests too slow
// for CI under -race. They touch only the slices they are given; which
// goroutine writes which elements is decided by parallelRanges, whose
// ranges are checked to be disjoint under -race (kernel_test.go), and the
// hand-off between goroutines (sync.WaitGroup) stays instrumented.

// minParallelWork is the number of multiply-adds below which a product is
// computed on the calling goroutine: starting goroutines costs more.
const minParallelWork = 1 << 16

// gemmNT sets c[i*n+j] = Σ_p a[i*k+p]·b[j*k+p] for i < m, j < n: c = a·bᵀ
// with a m×k and b n×k, both row-major. It uses up to workers goroutines.
func gemmNT(c, a, b []float32, m, n, k, workers int) {
	_ = c[m*n-1]
	_ = a[m*k-1]
	_ = b[n*k-1]
	if workers <= 1 || m*n*k < minParallelWork {
		gemmNTBlock(c, a, b, n, k, 0, m, 0, n)
		return
	}
	// Split the longer side into blocks whose sizes keep the register
	// tiles (2 rows of a, 4 rows of b) whole except at the end.
	if n >= m {
		parallelRanges(n, 4, workers, func(j0, j1 int) { gemmNTBlock(c, a, b, n, k, 0, m, j0, j1) })
	} else {
		parallelRanges(m, 2, workers, func(i0, i1 int) { gemmNTBlock(c, a, b, n, k, i0, i1, 0, n) })
	}
}

// gemmNTBlock computes the elements of gemmNT with i in [i0, i1) and j in
// [j0, j1), in tiles of 2×4 elements (eight independent sums).
//
//go:norace
func gemmNTBlock(c, a, b []float32, n, k, i0, i1, j0, j1 int) {
	j := j0
	for ; j+4 <= j1; j += 4 {
		b0 := b[j*k : j*k+k]
		b1 := b[(j+1)*k : (j+1)*k+k]
		b2 := b[(j+2)*k : (j+2)*k+k]
		b3 := b[(j+3)*k : (j+3)*k+k]
		i := i0
		for ; i+2 <= i1; i += 2 {
			a0 := a[i*k : i*k+k]
			a1 := a[(i+1)*k : (i+1)*k+k][:len(a0)]
			b0, b1, b2, b3 := b0[:len(a0)], b1[:len(a0)], b2[:len(a0)], b3[:len(a0)]
			var s00, s01, s02, s03, s10, s11, s12, s13 float32
			for p, x0 := range a0 {
				x1 := a1[p]
				w0, w1, w2, w3 := b0[p], b1[p], b2[p], b3[p]
				s00 += x0 * w0
				s01 += x0 * w1
				s02 += x0 * w2
				s03 += x0 * w3
				s10 += x1 * w0
				s11 += x1 * w1
				s12 += x1 * w2
				s13 += x1 * w3
			}
			r0 := c[i*n+j : i*n+j+4]
			r0[0], r0[1], r0[2], r0[3] = s00, s01, s02, s03
			r1 := c[(i+1)*n+j : (i+1)*n+j+4]
			r1[0], r1[1], r1[2], r1[3] = s10, s11, s12, s13
		}
		for ; i < i1; i++ {
			a0 := a[i*k : i*k+k]
			b0, b1, b2, b3 := b0[:len(a0)], b1[:len(a0)], b2[:len(a0)], b3[:len(a0)]
			var s0, s1, s2, s3 float32
			for p, x := range a0 {
				s0 += x * b0[p]
				s1 += x * b1[p]
				s2 += x * b2[p]
				s3 += x * b3[p]
			}
			r := c[i*n+j : i*n+j+4]
			r[0], r[1], r[2], r[3] = s0, s1, s2, s3
		}
	}
	for ; j < j1; j++ {
		bj := b[j*k : j*k+k]
		for i := i0; i < i1; i++ {
			c[i*n+j] = dot(a[i*k:i*k+k], bj)
		}
	}
}

// dot is Σ_p x[p]·y[p] summed in order; len(y) ≥ len(x).
//
//go:norace
func dot(x, y []float32) float32 {
	var s float32
	y = y[:len(x)]
	for p, v := range x {
		s += v * y[p]
	}
	return s
}

// transpose sets dst (cols×rows) to the transpose of src (rows×cols).
//
//go:norace
func transpose(dst, src []float32, rows, cols int) {
	const tile = 32
	for r0 := 0; r0 < rows; r0 += tile {
		r1 := min(r0+tile, rows)
		for c0 := 0; c0 < cols; c0 += tile {
			c1 := min(c0+tile, cols)
			for r := r0; r < r1; r++ {
				row := src[r*cols : r*cols+cols]
				for c := c0; c < c1; c++ {
					dst[c*rows+r] = row[c]
				}
			}
		}
	}
}

// parallelRanges splits [0, n) into at most workers contiguous ranges whose
// starts are multiples of grain and runs fn on each, the first on the
// calling goroutine. It returns when all are done.
func parallelRanges(n, grain, workers int, fn func(lo, hi int)) {
	units := (n + grain - 1) / grain
	parts := min(workers, units)
	if parts <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	bounds := func(p int) int { return min(n, units*p/parts*grain) }
	for p := 1; p < parts; p++ {
		lo, hi := bounds(p), bounds(p+1)
		wg.Go(func() { fn(lo, hi) })
	}
	fn(0, bounds(1))
	wg.Wait()
}
