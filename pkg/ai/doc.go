// Package ai is Verge's worker SDK for Sedna-style edge AI: what a user's
// edge worker, cloud worker, aggregator or training worker links to speak
// the same HTTP and WebSocket protocols as Sedna's Python library, plus the
// fixes Sedna lacks (a latency budget with edge fallback, a circuit
// breaker, partial participation in federated learning).
//
// The subpackages, each with its own contract:
//
//   - hem: hard-example-mining filters (Threshold, CrossEntropy, IBT,
//     Random, CloudOnly, EdgeOnly) with Sedna's names, parameters and
//     formulas; pure functions.
//   - jointinference: the cloud worker's inference server and the edge
//     worker's client (edge model, filter, cloud call within a deadline,
//     circuit breaker, edge fallback, counters).
//   - federated: the aggregator and the training client on Sedna's
//     WebSocket protocol; aggregation (FedAvg, FedAvgM), the FedProx
//     proximal term, partial participation and stop conditions, with the
//     round bookkeeping as a pure state machine.
//   - tensor: the Tensor and Weights types models adapt to, and their JSON
//     (Sedna's nested lists) and compact binary encodings.
//   - report: worker reports to the local controller (LC_SERVER) in
//     Sedna's format.
//   - workerenv: the environment contract the Verge controllers (and
//     Sedna's) give worker pods, read into typed, validated configs.
//
// This package itself holds what the subpackages share: the {key, value}
// algorithm parameters of the CRDs (HEM_PARAMETERS,
// AGGREGATION_PARAMETERS) and their typed errors.
//
// Nothing here has package-level mutable state, reads the environment on
// its own, or logs outside the *slog.Logger it is given. Model code (the
// model and dataset packages) is not imported: workers adapt their models
// to tensor.Weights and to the functions the clients call.
package ai
