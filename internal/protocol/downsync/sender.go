package downsync

import (
	"container/heap"
	"fmt"
	"sort"
	"strconv"
)

// Version identifies one state of an object.
type Version struct {
	UID             string
	ResourceVersion string
}

// Meta is an inventory entry: an object the edge holds.
type Meta struct {
	Key string
	Version
}

// Object is an entry of the node's view. Body is opaque here (the shell
// stores the informer's object and encodes it when sending).
type Object struct {
	Key     string
	Version Version
	Body    any
	// Pending marks an object that belongs in the view but whose content
	// is not known yet (e.g. a token still being minted): whatever the edge
	// holds under the key is kept, and nothing is sent until it is Set
	// with content.
	Pending bool
}

// Op is what a message does at the edge.
type Op uint8

// Message operations.
const (
	// OpUpsert stores Body under Key.
	OpUpsert Op = iota + 1
	// OpDelete removes Key if the edge holds it with Version.UID (any UID
	// when empty).
	OpDelete
	// OpSyncDone marks that every difference found at connect has been
	// sent; the edge's view is complete once it has applied up to here.
	OpSyncDone
)

func (o Op) String() string {
	switch o {
	case OpUpsert:
		return "upsert"
	case OpDelete:
		return "delete"
	case OpSyncDone:
		return "syncdone"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Message is one thing for the shell to send, in Seq order.
type Message struct {
	Seq     uint64
	Op      Op
	Key     string
	Version Version
	Body    any
	// Resync is set when the message repairs a difference found at
	// connect time (as opposed to a live change).
	Resync bool
}

// Config tunes a Sender.
type Config struct {
	// Window is the most messages unacknowledged at once (default 256).
	Window int
	// Rank orders queued keys, lower first; keys of equal rank go in the
	// order they were queued. deleting says whether the key is leaving the
	// view. Use it to send what pods depend on before the pods, and to
	// delete it after them.
	Rank func(key string, deleting bool) int
	// Class names the informer a key comes from (e.g. "pods"), for the
	// horizon rule. Keys of a class without a horizon are exempt from it.
	Class func(key string) string
}

// Stats counts what a Sender did since it was created.
type Stats struct {
	Sent, Acked                  uint64
	ResyncUpserts, ResyncDeletes uint64 // sent because of a connect-time difference
	Sessions                     uint64
}

// Sender computes what to send to one node.
type Sender struct {
	cfg Config

	view     map[string]Object
	horizons map[string]uint64

	connected bool
	acked     map[string]Version // committed at the edge (inventory + acks)
	inflight  []Message          // sent, unacknowledged, in Seq order
	// latest in-flight state per key (nil Version pointer = deleted), and
	// the seq that carried it, so acks know when the key settles.
	inflightState map[string]*Version
	inflightSeq   map[string]uint64
	nextSeq       uint64
	lastAcked     uint64

	queue    keyQueue
	queued   map[string]bool
	order    uint64
	deferred map[string]bool // deletes waiting for the horizon

	initial     map[string]bool // differences found at connect, not yet sent
	syncPending bool

	stats Stats
}

// NewSender returns a disconnected Sender with an empty view.
func NewSender(cfg Config) *Sender {
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	if cfg.Rank == nil {
		cfg.Rank = func(string, bool) int { return 0 }
	}
	if cfg.Class == nil {
		cfg.Class = func(string) string { return "" }
	}
	return &Sender{
		cfg:      cfg,
		view:     map[string]Object{},
		horizons: map[string]uint64{},
		queued:   map[string]bool{},
		deferred: map[string]bool{},
	}
}

// Set puts an object into the view (add or update).
func (s *Sender) Set(obj Object) {
	s.view[obj.Key] = obj
	s.mark(obj.Key)
}

// Remove takes an object out of the view.
func (s *Sender) Remove(key string) {
	if _, ok := s.view[key]; !ok {
		return
	}
	delete(s.view, key)
	s.mark(key)
}

// ViewLen is the number of objects in the view.
func (s *Sender) ViewLen() int { return len(s.view) }

// SetHorizon records that this replica's informer for class has seen
// everything up to resourceVersion rv; deletes waiting for it are retried.
func (s *Sender) SetHorizon(class string, rv uint64) {
	if cur, ok := s.horizons[class]; ok && rv <= cur {
		return
	}
	s.horizons[class] = rv
	for key := range s.deferred {
		if s.cfg.Class(key) == class {
			delete(s.deferred, key)
			s.mark(key)
		}
	}
}

// Connect starts a session with a node whose store holds inventory.
// Anything in flight in a previous session is forgotten: the inventory says
// what actually arrived.
func (s *Sender) Connect(inventory []Meta) {
	s.connected = true
	s.stats.Sessions++
	s.acked = make(map[string]Version, len(inventory))
	for _, m := range inventory {
		s.acked[m.Key] = m.Version
	}
	s.inflight = nil
	s.inflightState = map[string]*Version{}
	s.inflightSeq = map[string]uint64{}
	s.nextSeq = 1
	s.lastAcked = 0
	s.queue = nil
	s.queued = map[string]bool{}
	s.deferred = map[string]bool{}
	s.initial = map[string]bool{}
	// Sorted, so that a session's order is deterministic within a rank.
	keys := make([]string, 0, len(s.view)+len(s.acked))
	for key := range s.view {
		keys = append(keys, key)
	}
	for key := range s.acked {
		if _, inView := s.view[key]; !inView {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	for _, key := range keys {
		s.markInitial(key)
	}
	s.syncPending = true
}

func (s *Sender) markInitial(key string) {
	if _, needed := s.needed(key); needed && !s.initial[key] {
		s.initial[key] = true
		s.mark(key)
	}
}

// Disconnect ends the session; nothing is sent until the next Connect.
func (s *Sender) Disconnect() {
	s.connected = false
	s.inflight = nil
}

// Connected reports whether a session is open.
func (s *Sender) Connected() bool { return s.connected }

// Ack records that the edge committed every message up to seq. Acks for
// messages already acknowledged are ignored; an ack for a message never
// sent is a protocol error.
func (s *Sender) Ack(seq uint64) error {
	if !s.connected {
		return nil
	}
	if seq >= s.nextSeq {
		return fmt.Errorf("ack for sequence %d, but only %d sent", seq, s.nextSeq-1)
	}
	for len(s.inflight) > 0 && s.inflight[0].Seq <= seq {
		m := s.inflight[0]
		s.inflight = s.inflight[1:]
		switch m.Op {
		case OpUpsert:
			s.acked[m.Key] = m.Version
		case OpDelete:
			delete(s.acked, m.Key)
		}
		if m.Op != OpSyncDone && s.inflightSeq[m.Key] == m.Seq {
			delete(s.inflightSeq, m.Key)
			delete(s.inflightState, m.Key)
		}
		s.stats.Acked++
	}
	if seq > s.lastAcked {
		s.lastAcked = seq
	}
	return nil
}

// InFlight is the number of unacknowledged messages.
func (s *Sender) InFlight() int { return len(s.inflight) }

// Pending is the number of keys queued for sending.
func (s *Sender) Pending() int { return len(s.queue) }

// Stats returns counters for metrics.
func (s *Sender) Stats() Stats { return s.stats }

// Next returns up to max messages to send now (fewer if the window is
// full or nothing is queued). The caller must send them in order.
func (s *Sender) Next(max int) []Message {
	if !s.connected {
		return nil
	}
	var out []Message
	for len(out) < max && len(s.inflight) < s.cfg.Window {
		if s.syncPending && len(s.initial) == 0 {
			s.syncPending = false
			out = append(out, s.emit(Message{Op: OpSyncDone}))
			continue
		}
		if len(s.queue) == 0 {
			break
		}
		key := heap.Pop(&s.queue).(queued).key
		delete(s.queued, key)
		initial := s.initial[key]
		delete(s.initial, key)
		m, ok := s.needed(key)
		if !ok {
			continue
		}
		if s.beyondHorizon(key) {
			// The edge holds a version newer than this replica has seen;
			// replacing or deleting it could undo another replica's
			// delivery. Wait for the informer to catch up (SetHorizon or
			// the object's own event re-queues the key). It does not hold
			// up SyncDone: the edge's copy is not stale.
			s.deferred[key] = true
			continue
		}
		if initial {
			m.Resync = true
			if m.Op == OpUpsert {
				s.stats.ResyncUpserts++
			} else {
				s.stats.ResyncDeletes++
			}
		}
		out = append(out, s.emit(m))
	}
	return out
}

func (s *Sender) emit(m Message) Message {
	m.Seq = s.nextSeq
	s.nextSeq++
	s.inflight = append(s.inflight, m)
	switch m.Op {
	case OpUpsert:
		v := m.Version
		s.inflightState[m.Key] = &v
		s.inflightSeq[m.Key] = m.Seq
	case OpDelete:
		s.inflightState[m.Key] = nil
		s.inflightSeq[m.Key] = m.Seq
	}
	s.stats.Sent++
	return m
}

// mark queues key for re-evaluation when a session is open.
func (s *Sender) mark(key string) {
	if !s.connected || s.queued[key] {
		return
	}
	delete(s.deferred, key)
	s.queued[key] = true
	s.order++
	_, inView := s.view[key]
	heap.Push(&s.queue, queued{key: key, rank: s.cfg.Rank(key, !inView), order: s.order})
}

// edgeState is what the edge will hold once everything in flight lands.
func (s *Sender) edgeState(key string) (Version, bool) {
	if st, ok := s.inflightState[key]; ok {
		if st == nil {
			return Version{}, false
		}
		return *st, true
	}
	v, ok := s.acked[key]
	return v, ok
}

// needed returns the message that would bring the edge's copy of key to
// the view, if any.
func (s *Sender) needed(key string) (Message, bool) {
	want, inView := s.view[key]
	have, atEdge := s.edgeState(key)
	switch {
	case inView && want.Pending:
		return Message{}, false
	case inView && (!atEdge || !Holds(have, want.Version)):
		return Message{Op: OpUpsert, Key: key, Version: want.Version, Body: want.Body}, true
	case !inView && atEdge:
		return Message{Op: OpDelete, Key: key, Version: Version{UID: have.UID, ResourceVersion: have.ResourceVersion}}, true
	}
	return Message{}, false
}

// beyondHorizon reports whether the edge holds key at a resourceVersion
// this replica's informer has not reached.
func (s *Sender) beyondHorizon(key string) bool {
	class := s.cfg.Class(key)
	horizon, ok := s.horizons[class]
	if !ok || class == "" {
		return false
	}
	have, atEdge := s.edgeState(key)
	if !atEdge {
		return false
	}
	rv, err := strconv.ParseUint(have.ResourceVersion, 10, 64)
	return err == nil && rv > horizon
}

// Holds reports whether an edge holding have needs nothing to reach want:
// same object (UID) at the same or a newer resourceVersion. Kubernetes
// resourceVersions are compared numerically when both are numbers (etcd
// revisions); otherwise only equality counts.
func Holds(have, want Version) bool {
	if have.UID != want.UID {
		return false
	}
	if have.ResourceVersion == want.ResourceVersion {
		return true
	}
	h, err1 := strconv.ParseUint(have.ResourceVersion, 10, 64)
	w, err2 := strconv.ParseUint(want.ResourceVersion, 10, 64)
	return err1 == nil && err2 == nil && h >= w
}

// keyQueue is a min-heap by (rank, order).
type queued struct {
	key   string
	rank  int
	order uint64
}

type keyQueue []queued

func (q keyQueue) Len() int { return len(q) }
func (q keyQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].order < q[j].order
}
func (q keyQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *keyQueue) Push(x any)   { *q = append(*q, x.(queued)) }
func (q *keyQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
