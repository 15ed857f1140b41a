// Package agent assembles verge-edge: the edge store, the link to the cloud
// (hubclient), the pod runtime over CRI, the node status reporter, the
// node's credentials and the ops endpoint, run together under one errgroup
// by Agent.Start.
//
// The parts meet only through the store:
//
//   - Down: the hub client commits what the cloud sends to the store, then
//     tells the agent which keys changed; the agent wakes the pod runtime,
//     which reads its desired pods (and their ConfigMaps, Secrets and
//     service-account tokens) from the store.
//   - Up: the pod runtime's observations (pod status, terminated pods,
//     events) and the node status are written to the store's outbox — each
//     durable before the call returns — and the hub client drains the
//     outbox, deleting an entry only when the cloud confirms the API server
//     took it.
//
// So nothing depends on the link being up: with the cloud unreachable the
// pod runtime keeps running from the store, observations pile up
// (coalesced per key) in the outbox, and a restart of verge-edge rebuilds
// everything from the store alone.
//
// The agent owns nothing on disk itself; the store, the pod runtime and the
// identity manager own their files under the data directory (see
// config.Edge for the layout).
package agent
