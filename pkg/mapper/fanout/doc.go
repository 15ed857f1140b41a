// Package fanout delivers samples to sinks, one worker per sink, each with
// its own bounded buffer, batching and retries, so a slow or broken sink
// never delays the others or the samplers that feed it.
//
// Contract:
//   - Enqueue never blocks. When a sink's buffer is full the oldest queued
//     sample is dropped (the newest reading matters most) and counted.
//   - A worker waits Linger after a sample arrives (unless MaxBatch are
//     already queued), then takes up to MaxBatch samples in queue order and calls the
//     sink's Write. On error it waits with jittered exponential backoff and
//     retries the same batch, up to MaxAttempts; then the batch is counted
//     as failed and dropped. Samples of one sink are delivered in order;
//     across sinks there is no ordering.
//   - Drops, failures and write errors are Prometheus metrics and part of
//     each worker's Status.
//   - Stop flushes what is queued within the caller's deadline, then closes
//     the sink.
//
// Time comes from an injected clock; the package starts no goroutine except
// one per worker.
package fanout
