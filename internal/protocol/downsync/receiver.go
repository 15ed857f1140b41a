package downsync

import "fmt"

// Receiver is the edge side of a session: it checks that messages arrive
// in sequence and decides what to acknowledge once they are committed.
type Receiver struct {
	next      uint64 // sequence number expected next
	committed uint64 // highest sequence number durable in the store
	acked     uint64 // highest sequence number acknowledged
	synced    bool
}

// NewReceiver starts a session; the first message must be sequence 1.
func NewReceiver() *Receiver { return &Receiver{next: 1} }

// Accept checks that m is the next message of the session. An error ends
// the session.
func (r *Receiver) Accept(m Message) error {
	if m.Seq != r.next {
		return fmt.Errorf("message out of sequence: got %d, want %d", m.Seq, r.next)
	}
	switch m.Op {
	case OpUpsert, OpDelete, OpSyncDone:
	default:
		return fmt.Errorf("message %d has unknown operation %s", m.Seq, m.Op)
	}
	r.next++
	return nil
}

// Committed records that every accepted message up to seq is durable; it
// returns the cumulative ack to send, if there is a new one. SyncDone
// messages count as committed once accepted, since they change nothing.
func (r *Receiver) Committed(seq uint64) (ack uint64, send bool) {
	if seq >= r.next {
		seq = r.next - 1
	}
	if seq > r.committed {
		r.committed = seq
	}
	if r.committed > r.acked {
		r.acked = r.committed
		return r.acked, true
	}
	return 0, false
}

// SyncDone records that the connect-time resync has been applied.
func (r *Receiver) SyncDone() { r.synced = true }

// Synced reports whether the edge's view is complete for this session.
func (r *Receiver) Synced() bool { return r.synced }

// ShouldApply decides whether an upsert of incoming replaces what the store
// holds (have, if held): it does unless the store already holds the same
// object at the same or a newer resourceVersion.
func ShouldApply(have Version, held bool, incoming Version) bool {
	return !held || !Holds(have, incoming)
}
