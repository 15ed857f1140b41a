// Package aieval reproduces the figures of docs/ai-benchmarks.md from
// scratch: it prepares the Fashion-MNIST data and trains the reference
// models (package aiworkload's Prepare), then measures, through the real
// worker code over loopback HTTP and WebSocket connections,
//
//   - joint inference: edge-only, cloud-only and joint accuracy and the
//     share of samples sent to the cloud, for several thresholds of the
//     CrossEntropy and Threshold hard-example filters, checked end to end
//     over HTTP at the chosen threshold;
//   - joint inference with the cloud unreachable (connection refused, or a
//     black hole that accepts and never answers): every request's latency
//     against the budget;
//   - federated learning with class-skewed shards against centralized
//     training of the same model: rounds to come within a target gap,
//     final accuracy, bytes on the wire with JSON and binary weights, and
//     a run in which one trainer is killed mid-job.
//
// Accuracies, cloud ratios, rounds and byte counts are deterministic for a
// configuration on one platform; latencies and times are measurements.
//
// The package is a harness for cmd/verge-ai-eval: it starts workers on
// loopback listeners and stops them before returning; it writes only under
// Config.WorkDir.
package aieval
