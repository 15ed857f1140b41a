package fleetsim

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/verge-edge/verge/internal/edge/hubclient"
	"github.com/verge-edge/verge/internal/protocol/downsync"
)

// SimStore is an in-memory, non-durable stand-in for the edge store, for
// simulated nodes and tests of the link. It keeps the semantics the link
// relies on (atomic batches, UID-conditional deletes, an outbox coalesced
// by key with generations) but none of the durability.
type SimStore struct {
	mu      sync.Mutex
	objects map[string]hubclient.Object
	outbox  []hubclient.Report
	byKey   map[string]int64 // outbox key → id
	nextID  int64
	// OnApply, if set, is called (outside the lock) with each committed
	// batch and the time it was committed.
	OnApply func(ops []hubclient.Op, at time.Time)
}

// NewSimStore returns an empty store.
func NewSimStore() *SimStore {
	return &SimStore{objects: map[string]hubclient.Object{}, byKey: map[string]int64{}}
}

func (s *SimStore) Inventory(context.Context) ([]downsync.Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]downsync.Meta, 0, len(s.objects))
	for k, o := range s.objects {
		out = append(out, downsync.Meta{Key: k, Version: downsync.Version{UID: o.UID, ResourceVersion: o.ResourceVersion}})
	}
	return out, nil
}

func (s *SimStore) Version(_ context.Context, key string) (downsync.Version, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[key]
	return downsync.Version{UID: o.UID, ResourceVersion: o.ResourceVersion}, ok, nil
}

func (s *SimStore) Apply(_ context.Context, ops []hubclient.Op) error {
	s.mu.Lock()
	for _, op := range ops {
		if op.Delete {
			if cur, ok := s.objects[op.Object.Key]; ok && (op.Object.UID == "" || cur.UID == op.Object.UID) {
				delete(s.objects, op.Object.Key)
			}
			continue
		}
		s.objects[op.Object.Key] = op.Object
	}
	s.mu.Unlock()
	if s.OnApply != nil {
		s.OnApply(ops, time.Now())
	}
	return nil
}

// Enqueue adds a report, replacing the payload of a queued one with the
// same key (and bumping its generation).
func (s *SimStore) Enqueue(key, kind string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.byKey[key]; ok {
		for i := range s.outbox {
			if s.outbox[i].ID == id {
				s.outbox[i].Data = data
				s.outbox[i].Gen++
				return
			}
		}
	}
	s.nextID++
	s.byKey[key] = s.nextID
	s.outbox = append(s.outbox, hubclient.Report{ID: s.nextID, Gen: 1, Key: key, Kind: kind, Data: data})
}

func (s *SimStore) Pending(_ context.Context, n int, skip func(int64) bool) ([]hubclient.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []hubclient.Report
	for _, r := range s.outbox {
		if len(out) < n && !skip(r.ID) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *SimStore) Ack(_ context.Context, id, gen int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.outbox {
		if r.ID == id && r.Gen == gen {
			s.outbox = append(s.outbox[:i], s.outbox[i+1:]...)
			delete(s.byKey, r.Key)
			break
		}
	}
	return nil
}

// Keys lists the stored keys, sorted.
func (s *SimStore) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.objects))
	for k := range s.objects {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Object returns a stored object.
func (s *SimStore) Object(key string) (hubclient.Object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[key]
	return o, ok
}

// OutboxLen is the number of queued reports.
func (s *SimStore) OutboxLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.outbox)
}

// CountPrefix counts stored keys with a prefix.
func (s *SimStore) CountPrefix(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.objects {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}
