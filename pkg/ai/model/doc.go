// Package model holds the reference workloads' classifiers, in pure Go: a
// small edge model (multinomial softmax regression, EdgeArch, 784→10) and a
// larger cloud model (an MLP with ReLU, CloudArch, 784→256→128→10), both a
// Model of some Arch. A Model predicts class probabilities (softmax
// outputs, which hard-example mining consumes), trains with mini-batch SGD
// and momentum on the cross-entropy, optionally with FedProx's proximal
// term, exposes its parameters as named tensors for federated averaging,
// and saves to and loads from a versioned, checksummed file.
//
// The package owns the numeric code and the model file format. It does not
// talk to the network, read environment variables or log; data comes in as
// a *dataset.Set, files only through Save and Load.
//
// Determinism contract: New with the same Arch and seed gives bit-identical
// weights; Train with the same starting weights, data and TrainConfig gives
// bit-identical weights on the same platform (GOARCH, and GOAMD64 or GOARM
// level, since the compiler may fuse multiply-adds), whatever
// TrainConfig.Workers or GOMAXPROCS. It holds because matrix products are
// split between goroutines only by output element and each element is summed
// in a fixed order (kernel.go), reductions over a batch run in sample order,
// and all randomness (initial weights, batch order) comes from seeded
// generators defined in this package and in package dataset.
//
// Concurrency: a Model guards itself with a read/write lock. Prediction,
// evaluation, Weights and saving share it; Train and SetWeights hold it
// exclusively for their whole run.
//
// Ordering for a federated client, each round:
//
//	m.SetWeights(global)                  // the aggregated model
//	m.Train(ctx, shard, cfg)              // cfg.ProxMu > 0 pulls towards global
//	send(m.Weights(), shard.Len())        // FedAvg weights by sample count
package model
