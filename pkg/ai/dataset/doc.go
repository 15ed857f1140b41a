// Package dataset reads the reference workloads' data: IDX files (the
// MNIST family's format), Fashion-MNIST as installed by the Debian package
// dataset-fashion-mnist, and Sedna-style txt index files whose lines name
// samples inside IDX files. It turns them into a Set of float32 features in
// [0, 1] with uint8 labels, and cuts a Set into deterministic shards for
// federated learning (IID, or skewed towards a few classes per client).
//
// The package owns parsing and validation only: it opens the files it is
// given and nothing else, keeps no package-level state, reads no
// environment variables and starts no goroutines. Callers choose paths
// (DefaultFashionMNISTDir is only a default) and seeds.
//
// Determinism: every random choice (Permutation, Set.Shuffled, SplitIID,
// SplitClassSkew) comes from a generator defined in this package
// (SplitMix64 with Lemire's bounded integers), not from math/rand, so a
// seed yields the same order and the same shards on every platform and Go
// release. Shards are returned as sorted index lists that partition the
// set: every sample lands in exactly one shard.
//
// Errors name the file and the problem. A malformed file yields a
// *FormatError; missing Fashion-MNIST files yield a *NotFoundError whose
// message says to run `apt-get install dataset-fashion-mnist`, and which
// matches errors.Is(err, fs.ErrNotExist). I/O errors are wrapped with %w.
package dataset
