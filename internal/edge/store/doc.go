// Package store is the edge node's durable memory: one SQLite file holding
// every object the cloud sent to the node, the outbox of status reports
// still to be delivered, a revision log for local watchers, and small
// node-local state. A verge-edge restart with no cloud rebuilds everything
// from it.
//
// It owns the file and its -wal and -shm companions, and nothing else: it
// knows keys, UIDs, resourceVersions and opaque bytes, not Kubernetes
// types, and it neither talks to the cloud nor decides what to send (see
// the downsync and upsync packages for those rules).
//
// # Ordering contract
//
//   - Commit before acknowledge: Apply, Enqueue, Ack, PutState and
//     DeleteState return only after their transaction is committed with
//     synchronous=FULL, so a power cut after the call returns loses
//     nothing. A call that returns an error changed nothing.
//   - All or nothing: the ops of one Apply commit in one transaction; a
//     crash leaves either all of them or none.
//   - One writer: writes are serialized in the store (one SQLite writer
//     connection, taken in call order as far as Go's scheduler allows), so
//     concurrent callers wait instead of failing with "database is
//     locked". Readers use their own connections and see the last
//     committed state; they never wait for a writer.
//   - Revisions: every change to an object (added, modified, deleted) gets
//     the next local revision, in the order the ops were given. Revisions
//     are never reused within one store file, also across restarts and
//     after failed writes. A replaced file (after recovery from corruption)
//     has a different ID and starts again; a watcher holding a revision of
//     another file gets ErrCompacted and must relist.
//   - Duplicates are harmless: upserting an object whose UID and
//     resourceVersion equal the stored ones changes nothing and produces
//     no revision. An upsert under a new UID is reported to watchers as the
//     deletion of the old object followed by the addition of the new one.
//   - Changes returns every change after a revision, in revision order,
//     with the object's state at that change (for a deletion: its last
//     state). The log keeps Options.ChangeRetention changes; asking for an
//     older revision returns ErrCompacted.
//   - Outbox: one entry per key. Enqueueing a key already queued replaces
//     its payload and priority and increments its generation, keeping its
//     place in line. Pending orders by priority (lower first), then by
//     first enqueue. Ack removes an entry only if its generation is
//     unchanged; entry IDs are never reused, so a late Ack can never remove
//     a newer entry.
//
// # Failure
//
// A file that is damaged or not an edge store at all is detected at Open
// (and on any later read that hits damage) and reported as an error
// wrapping ErrCorrupt, naming the file and the recovery: stop verge-edge,
// move the file and its -wal and -shm companions aside, start again; the
// node re-syncs everything from the cloud. The store never deletes or
// rewrites a damaged file by itself.
package store
