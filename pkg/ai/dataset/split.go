package dataset

import (
	"fmt"
	"math"
	"slices"
)

// SplitIID partitions the sample indices 0…n-1 into k shards of nearly equal
// size (the first n mod k shards hold one more) drawn uniformly at random:
// shard i is the i-th contiguous run of Permutation(n, seed). Each shard is
// returned sorted. It needs 1 ≤ k ≤ n.
func SplitIID(n, k int, seed uint64) ([][]int, error) {
	if k < 1 || k > n {
		return nil, fmt.Errorf("dataset: cannot split %d samples into %d shards, want 1 to %d shards", n, k, n)
	}
	return deal(Permutation(n, seed), k), nil
}

// deal cuts order into k contiguous runs of nearly equal size (the first
// len mod k one longer) and sorts each.
func deal(order []int, k int) [][]int {
	shards := make([][]int, k)
	base, extra := len(order)/k, len(order)%k
	lo := 0
	for i := range shards {
		hi := lo + base
		if i < extra {
			hi++
		}
		shards[i] = slices.Clone(order[lo:hi])
		slices.Sort(shards[i])
		lo = hi
	}
	return shards
}

// ClassSkew configures SplitClassSkew.
type ClassSkew struct {
	// ClassesPerClient is the number of main classes each client gets, c,
	// between 1 and the number of classes. Clients × c must be at least
	// the number of classes, so that every class has an owner.
	ClassesPerClient int
	// IIDFraction, f in [0, 1], is the share of every class that is
	// spread over all clients instead of going to the class's owners:
	// 0 gives each client exactly its c classes, 1 is an IID split.
	IIDFraction float64
}

// SplitClassSkew partitions the samples with the given labels (classes
// distinct labels) into k non-IID shards in which each client holds mostly
// skew.ClassesPerClient classes. With c = ClassesPerClient, f = IIDFraction
// and L = classes, the scheme is exactly:
//
//  1. p = Permutation(n, seed); o = a second permutation of the L classes
//     drawn from seed on its own stream.
//  2. Client i owns the c main classes o[(i·c + j) mod L] for j = 0…c-1;
//     since k·c ≥ L, every class has at least one owner, and the slots
//     are spread evenly (each class has ⌊k·c/L⌋ or ⌈k·c/L⌉ owners).
//  3. For each class y with n_y samples, taken in the order of p: the first
//     ⌊f·n_y⌋ go to a common pool; the rest are cut into as many
//     contiguous, nearly equal runs as y has owners (the earlier runs one
//     longer), and the r-th run goes to the r-th owner in client order.
//  4. The pool, in the order of p, is cut into k contiguous, nearly equal
//     runs (the first ones one longer); run i goes to client i.
//
// Every sample goes to exactly one client, and each shard is returned
// sorted. With L = 10 balanced classes, k = 10, c = 2 and f = 0.1, every
// client gets 6,000 of the 60,000 Fashion-MNIST training samples, 92 % of
// them from its two main classes. Shard sizes differ when k·c is not a
// multiple of L (classes with more owners give each a smaller part) or
// when classes are unbalanced.
func SplitClassSkew(labels []uint8, classes, k int, skew ClassSkew, seed uint64) ([][]int, error) {
	n, c, f := len(labels), skew.ClassesPerClient, skew.IIDFraction
	switch {
	case classes < 1 || classes > MaxClasses:
		return nil, fmt.Errorf("dataset: class-skewed split: %d classes, want 1 to %d", classes, MaxClasses)
	case k < 1 || k > n:
		return nil, fmt.Errorf("dataset: class-skewed split: cannot split %d samples into %d shards", n, k)
	case c < 1 || c > classes:
		return nil, fmt.Errorf("dataset: class-skewed split: %d classes per client, want 1 to %d", c, classes)
	case k*c < classes:
		return nil, fmt.Errorf("dataset: class-skewed split: %d clients × %d classes per client leave some of the %d classes without an owner", k, c, classes)
	case math.IsNaN(f) || f < 0 || f > 1:
		return nil, fmt.Errorf("dataset: class-skewed split: IID fraction %v, want 0 to 1", f)
	}
	for i, y := range labels {
		if int(y) >= classes {
			return nil, fmt.Errorf("dataset: class-skewed split: sample %d has label %d, want below %d", i, y, classes)
		}
	}

	p := Permutation(n, seed)
	order := permutation(classes, newSplitMix64(seed, streamClassOrder))
	owners := make([][]int, classes)
	for i := range k {
		for j := range c {
			y := order[(i*c+j)%classes]
			owners[y] = append(owners[y], i)
		}
	}

	byClass := make([][]int, classes)
	for _, idx := range p {
		byClass[labels[idx]] = append(byClass[labels[idx]], idx)
	}
	shards := make([][]int, k)
	inPool := make([]bool, n)
	for y, members := range byClass {
		pooled := int(math.Floor(f * float64(len(members))))
		for _, idx := range members[:pooled] {
			inPool[idx] = true
		}
		for r, run := range deal(members[pooled:], len(owners[y])) {
			shards[owners[y][r]] = append(shards[owners[y][r]], run...)
		}
	}
	pool := make([]int, 0, n)
	for _, idx := range p {
		if inPool[idx] {
			pool = append(pool, idx)
		}
	}
	for i, run := range deal(pool, k) {
		shards[i] = append(shards[i], run...)
		slices.Sort(shards[i])
	}
	return shards, nil
}
