package dataset

import (
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestSplitMix64MatchesReference(t *testing.T) {
	// Reference outputs of SplitMix64 from state 0 (Vigna's splitmix64.c).
	r := &splitMix64{}
	for i, want := range []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f} {
		if got := r.next(); got != want {
			t.Fatalf("output %d = %#x, want %#x", i, got, want)
		}
	}
}

func TestPermutationIsDeterministicAndPinned(t *testing.T) {
	// Pinned: shards written by one release must be reproducible by the next.
	if got, want := Permutation(10, 1), []int{6, 3, 7, 1, 8, 4, 9, 5, 0, 2}; !slices.Equal(got, want) {
		t.Fatalf("Permutation(10, 1) = %v, want %v", got, want)
	}
	for _, n := range []int{0, 1, 2, 1000} {
		p := Permutation(n, 42)
		if !slices.Equal(p, Permutation(n, 42)) {
			t.Fatalf("n=%d: two calls with one seed differ", n)
		}
		sorted := slices.Clone(p)
		slices.Sort(sorted)
		for i, v := range sorted {
			if v != i {
				t.Fatalf("n=%d: not a permutation: %v", n, p)
			}
		}
	}
	if slices.Equal(Permutation(1000, 1), Permutation(1000, 2)) {
		t.Fatal("seeds 1 and 2 give the same permutation")
	}
}

func TestPermutationIsUniform(t *testing.T) {
	// Each of the 6 orders of 3 elements should appear about 1/6 of the time.
	const trials = 60000
	counts := map[[3]int]int{}
	for seed := range uint64(trials) {
		p := Permutation(3, seed)
		counts[[3]int{p[0], p[1], p[2]}]++
	}
	if len(counts) != 6 {
		t.Fatalf("saw %d distinct orders, want 6", len(counts))
	}
	for order, n := range counts {
		if n < trials/6*9/10 || n > trials/6*11/10 {
			t.Fatalf("order %v appeared %d times in %d, want about %d", order, n, trials, trials/6)
		}
	}
}

func checkPartition(t *testing.T, shards [][]int, n int) {
	t.Helper()
	seen := make([]bool, n)
	for s, shard := range shards {
		if !sort.IntsAreSorted(shard) {
			t.Fatalf("shard %d is not sorted", s)
		}
		for _, i := range shard {
			if seen[i] {
				t.Fatalf("sample %d is in two shards", i)
			}
			seen[i] = true
		}
	}
	for i, ok := range seen {
		if !ok {
			t.Fatalf("sample %d is in no shard", i)
		}
	}
}

func TestSplitIID(t *testing.T) {
	shards, err := SplitIID(103, 10, 7)
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, shards, 103)
	for i, s := range shards {
		want := 10
		if i < 3 {
			want = 11
		}
		if len(s) != want {
			t.Fatalf("shard %d has %d samples, want %d", i, len(s), want)
		}
	}
	again, _ := SplitIID(103, 10, 7)
	other, _ := SplitIID(103, 10, 8)
	if !slices.EqualFunc(shards, again, slices.Equal) {
		t.Fatal("same seed, different shards")
	}
	if slices.EqualFunc(shards, other, slices.Equal) {
		t.Fatal("different seeds, same shards")
	}
	for _, k := range []int{0, 104} {
		if _, err := SplitIID(103, k, 1); err == nil {
			t.Fatalf("k=%d accepted for 103 samples", k)
		}
	}
}

func TestSplitIIDIsBalancedOnFashionMNIST(t *testing.T) {
	labels := trainLabels(t)
	shards, err := SplitIID(len(labels), 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, idx := range shards {
		for c, n := range countsOf(labels, idx) {
			if n < 1100 || n > 1300 { // 1200 expected, sd ≈ 31
				t.Fatalf("shard %d has %d samples of class %d, want about 1200", i, n, c)
			}
		}
	}
}

// trainLabels reads only the Fashion-MNIST training labels (the split
// tests need no images).
func trainLabels(t *testing.T) []uint8 {
	t.Helper()
	_, path, err := FashionMNISTFiles("", TrainSplit)
	if err != nil {
		t.Fatal(err)
	}
	x, err := ReadIDX(path)
	if err != nil {
		t.Fatal(err)
	}
	return x.Data
}

func countsOf(labels []uint8, idx []int) []int {
	counts := make([]int, 10)
	for _, i := range idx {
		counts[labels[i]]++
	}
	return counts
}

func TestSplitClassSkewOnFashionMNIST(t *testing.T) {
	labels := trainLabels(t)
	// The bounds follow from the scheme in SplitClassSkew's doc with 6,000
	// samples per class: minMain is the least share of a client's samples
	// in its c main classes, before counting pooled samples of those
	// classes; the sizes are exact up to rounding.
	for _, tc := range []struct {
		k, c       int
		f          float64
		minMain    float64
		sizeLo, hi int
	}{
		{10, 2, 0, 1, 6000, 6000},        // 2 owners per class
		{10, 2, 0.1, 0.9, 6000, 6000},    // 5400 owned + 600 pooled
		{10, 3, 0.2, 0.8, 6000, 6000},    // 3 × 1600 owned + 1200 pooled
		{4, 3, 0.1, 0.878, 12300, 17700}, // two classes have two owners
		{7, 4, 0.05, 0.946, 8028, 9929},  // eight classes have three owners, two have two
	} {
		shards, err := SplitClassSkew(labels, 10, tc.k, ClassSkew{ClassesPerClient: tc.c, IIDFraction: tc.f}, 11)
		if err != nil {
			t.Fatal(err)
		}
		if len(shards) != tc.k {
			t.Fatalf("k=%d: %d shards", tc.k, len(shards))
		}
		checkPartition(t, shards, len(labels))
		for i, idx := range shards {
			counts := countsOf(labels, idx)
			slices.Sort(counts)
			slices.Reverse(counts)
			main := 0
			for _, n := range counts[:tc.c] {
				main += n
			}
			share := float64(main) / float64(len(idx))
			if share < tc.minMain || len(idx) < tc.sizeLo || len(idx) > tc.hi {
				t.Fatalf("k=%d c=%d f=%v: client %d has %d samples, %.3f in its top %d classes (want ≥ %.3f, size %d–%d)",
					tc.k, tc.c, tc.f, i, len(idx), share, tc.c, tc.minMain, tc.sizeLo, tc.hi)
			}
			if tc.f == 0 && counts[tc.c] != 0 {
				t.Fatalf("f=0: client %d has samples outside its %d classes: %v", i, tc.c, counts)
			}
		}
	}
}

func TestSplitClassSkewIsDeterministic(t *testing.T) {
	labels := make([]uint8, 5000)
	for i := range labels {
		labels[i] = uint8(i * 7 % 10)
	}
	skew := ClassSkew{ClassesPerClient: 2, IIDFraction: 0.1}
	a, err := SplitClassSkew(labels, 10, 6, skew, 5)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SplitClassSkew(labels, 10, 6, skew, 5)
	c, _ := SplitClassSkew(labels, 10, 6, skew, 6)
	if !slices.EqualFunc(a, b, slices.Equal) {
		t.Fatal("same seed, different shards")
	}
	if slices.EqualFunc(a, c, slices.Equal) {
		t.Fatal("different seeds, same shards")
	}
	checkPartition(t, a, len(labels))
}

func TestSplitClassSkewRejectsBadParameters(t *testing.T) {
	labels := []uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1}
	for _, tc := range []struct {
		classes, k int
		skew       ClassSkew
		problem    string
	}{
		{10, 4, ClassSkew{ClassesPerClient: 2}, "without an owner"},
		{10, 5, ClassSkew{ClassesPerClient: 0}, "classes per client"},
		{10, 5, ClassSkew{ClassesPerClient: 11}, "classes per client"},
		{10, 5, ClassSkew{ClassesPerClient: 2, IIDFraction: 1.5}, "IID fraction"},
		{10, 13, ClassSkew{ClassesPerClient: 2}, "into 13 shards"},
		{9, 5, ClassSkew{ClassesPerClient: 2}, "label 9"},
		{0, 5, ClassSkew{ClassesPerClient: 2}, "0 classes"},
	} {
		_, err := SplitClassSkew(labels, tc.classes, tc.k, tc.skew, 1)
		if err == nil || !strings.Contains(err.Error(), tc.problem) {
			t.Errorf("classes=%d k=%d %+v: err = %v, want %q", tc.classes, tc.k, tc.skew, err, tc.problem)
		}
	}
}
