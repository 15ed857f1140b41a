// Package mapper is Verge's device mapper SDK. A protocol author writes a
// Driver (connect, read a property, write a property, health, close); the
// SDK does the rest:
//
//   - DMI: it serves DeviceMapperService on its own Unix socket and keeps one
//     long-lived connection to the edge's DeviceManagerService, registering
//     (name, protocol, version, socket) with jittered backoff and again
//     whenever the edge comes back. The edge's calls keep the device and
//     model registry; a device whose model has not arrived yet waits for it.
//   - Sampling: one sampler per property per collectCycle (milliseconds;
//     phases spread over the cycle), reading the device once and fanning
//     the sample out to every sink the property names. Each sink has its
//     own bounded buffer, batching and retries (package fanout), so a broken
//     sink never blocks the others; drops and failures are metrics and are
//     visible in GET /api/v1/health.
//   - Cloud twin: readings go to the edge with ReportDeviceStatus,
//     change-only, with an optional per-property deadband (visitor key
//     "deadband", or Config.TwinDeadband).
//   - Desired values: a Device update whose only change is a desired value
//     writes that property and nothing else: no reconnect, no restart. The
//     value is converted to the model type and checked against its
//     minimum/maximum first; the twin then echoes it as observedDesired.
//   - State: ok, unhealthy (bad configuration, with the reason),
//     disconnected or unknown, reported to the edge on change.
//   - REST (loopback, or mTLS): read a property, write through device
//     methods with POST/PUT, list methods, health, metrics.
//
// Ordering: a Conn is replaced (new Connect, then Close of the old one)
// only after every sampler using it has stopped; a property's desired write
// and reads happen on its sampler's goroutine, so a write is never
// interleaved with a read of the same property.
//
// Credentials never come from the Device: sinks read them from the
// environment (filled from Secrets in the mapper's Deployment).
package mapper
