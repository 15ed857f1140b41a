// Package upsync holds the rules by which status reports flow from an edge
// node to the cloud: node status, pod status, events and (later) device
// twins and AI worker reports.
//
// Reports wait in a durable outbox in the edge store, coalesced by key (a
// newer pod status replaces an unsent older one and gets a new generation).
// The edge sends them in priority order with at most Window in flight. The
// cloud answers each (id, generation) with one of three outcomes:
//
//   - Accepted: the API server took it. The edge deletes the entry if its
//     generation is unchanged (a newer payload enqueued meanwhile stays).
//   - Rejected: it can never be applied (e.g. the pod no longer exists). The
//     edge deletes it too; retrying would never succeed.
//   - Retry: a transient failure (API server unreachable, throttled). The
//     edge keeps it and sends it again after the given delay.
//
// On reconnect everything in flight is unknown and is sent again; the cloud
// applies reports idempotently, so a duplicate is harmless.
//
// Sender is a pure state machine: the edge agent supplies time and does the
// I/O.
package upsync

import "time"

// Outcome is the cloud's answer to one report.
type Outcome int

// Outcomes.
const (
	Accepted Outcome = iota + 1
	Rejected
	Retry
)

// Sender tracks which outbox entries are in flight or backing off.
type Sender struct {
	window   int
	inflight map[int64]int64     // id → generation sent
	notUntil map[int64]time.Time // id → earliest resend after Retry
}

// NewSender returns a Sender allowing window reports in flight.
func NewSender(window int) *Sender {
	if window <= 0 {
		window = 64
	}
	return &Sender{window: window, inflight: map[int64]int64{}, notUntil: map[int64]time.Time{}}
}

// Connect starts a session: nothing is in flight any more.
func (s *Sender) Connect() {
	s.inflight = map[int64]int64{}
	s.notUntil = map[int64]time.Time{}
}

// Room is how many more reports may be sent now.
func (s *Sender) Room() int { return max(0, s.window-len(s.inflight)) }

// InFlight is the number of reports awaiting an answer.
func (s *Sender) InFlight() int { return len(s.inflight) }

// Skip tells the outbox query which entries not to return at now: those in
// flight and those told to wait.
func (s *Sender) Skip(now time.Time) func(id int64) bool {
	return func(id int64) bool {
		if _, ok := s.inflight[id]; ok {
			return true
		}
		t, ok := s.notUntil[id]
		return ok && now.Before(t)
	}
}

// Sent records that report id at generation gen went out.
func (s *Sender) Sent(id, gen int64) {
	s.inflight[id] = gen
	delete(s.notUntil, id)
}

// Answer records the cloud's outcome for (id, gen). It returns true when
// the outbox entry should be deleted (if still at gen).
func (s *Sender) Answer(id, gen int64, outcome Outcome, retryAfter time.Duration, now time.Time) (remove bool) {
	if sent, ok := s.inflight[id]; !ok || sent != gen {
		return false // an answer for something not in flight in this session
	}
	delete(s.inflight, id)
	switch outcome {
	case Accepted, Rejected:
		return true
	default:
		if retryAfter <= 0 {
			retryAfter = time.Second
		}
		s.notUntil[id] = now.Add(retryAfter)
		return false
	}
}

// NextRetry returns the earliest time a backed-off report may go again.
func (s *Sender) NextRetry() (time.Time, bool) {
	var first time.Time
	for _, t := range s.notUntil {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first, !first.IsZero()
}
