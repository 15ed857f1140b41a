// Package downsync holds the rules by which desired state flows from the
// cloud to one edge node, as two pure state machines: Sender (cloud side,
// one per connected node) and Receiver (edge side). Neither does I/O, starts
// goroutines or reads a clock; the hub and the edge agent are thin shells
// that feed them events and carry out what they return.
//
// # The exchange
//
//  1. On connect the edge sends its inventory: key, UID and resourceVersion
//     of every object it holds (committed in its store).
//  2. The Sender compares the inventory with the node's view (what the node
//     should hold, from the cloud's informers) and queues only the
//     differences: upserts for objects missing or older at the edge, deletes
//     for objects the view no longer has. When the queue of differences
//     present at connect time has been sent, it emits SyncDone.
//  3. Live changes to the view are queued the same way. The queue is keyed:
//     an object changing three times before it is sent is sent once, at its
//     newest version.
//  4. Each message carries the next sequence number of the session
//     (starting at 1). At most Window messages are unacknowledged at once;
//     the edge acknowledges cumulatively ("everything up to n is committed").
//
// # Ordering contract
//
//   - Receiver: apply in sequence order; a gap or repeat is a protocol error
//     that ends the session (the reconnect handshake repairs everything).
//   - Receiver: commit before ack — the edge acknowledges n only after every
//     message up to n is durable in its store.
//   - Sender: an object counts as held by the edge only once acknowledged;
//     on reconnect nothing in flight is assumed delivered.
//   - Sender: objects a pod depends on (Secrets, ConfigMaps, tokens) are sent
//     before pods queued at the same time (see Config.Rank).
//   - Sender: it never sends an older version of an object over a newer one
//     the edge holds, and never deletes an object whose version at the edge
//     is newer than what this replica's informers have seen (Horizon): a
//     lagging replica waits instead of undoing another replica's delivery.
//
// Duplicates are harmless: applying an object whose UID and resourceVersion
// the edge already holds changes nothing.
package downsync
