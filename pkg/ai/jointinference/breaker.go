package jointinference

import (
	"errors"
	"fmt"
	"time"
)

// State is a circuit breaker's state.
type State int

// The breaker's states.
const (
	// Closed: calls go through; consecutive failures are counted.
	Closed State = iota
	// HalfOpen: the open period is over; a few probe calls go through and
	// decide between Closed and Open.
	HalfOpen
	// Open: calls are refused until the open period ends.
	Open
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// BreakerConfig tunes a Breaker. Zero fields take the defaults.
type BreakerConfig struct {
	// FailureThreshold is the number of consecutive failures that opens
	// the breaker (default 5).
	FailureThreshold int
	// OpenDuration is how long it stays open before probing (default 5 s).
	OpenDuration time.Duration
	// HalfOpenProbes is how many calls may probe at once (default 1).
	HalfOpenProbes int
}

func (c *BreakerConfig) setDefaults() {
	if c.FailureThreshold == 0 {
		c.FailureThreshold = 5
	}
	if c.OpenDuration == 0 {
		c.OpenDuration = 5 * time.Second
	}
	if c.HalfOpenProbes == 0 {
		c.HalfOpenProbes = 1
	}
}

// Validate reports settings that cannot work.
func (c BreakerConfig) Validate() error {
	var errs []error
	if c.FailureThreshold < 1 {
		errs = append(errs, fmt.Errorf("breaker failureThreshold is %d; it must be at least 1", c.FailureThreshold))
	}
	if c.OpenDuration <= 0 {
		errs = append(errs, fmt.Errorf("breaker openDuration is %v; it must be positive", c.OpenDuration))
	}
	if c.HalfOpenProbes < 1 {
		errs = append(errs, fmt.Errorf("breaker halfOpenProbes is %d; it must be at least 1", c.HalfOpenProbes))
	}
	return errors.Join(errs...)
}

// Breaker is a circuit breaker as a pure state machine: every method takes
// the current time, nothing reads a clock or starts a goroutine, and it is
// not safe for concurrent use (the caller locks).
//
// A call asks Allow; if permitted, it reports its outcome with Record (a
// verdict on the remote side) or Release (no verdict, e.g. the caller gave
// up first). Outcomes of calls permitted before the last state change are
// ignored, so a slow call that started while closed cannot reopen a
// breaker that has since recovered.
type Breaker struct {
	cfg      BreakerConfig
	state    State
	failures int       // consecutive, while closed
	openedAt time.Time // while open
	gen      uint64    // bumped on every state change
	probes   int       // probes in flight, while half-open
}

// Permit is the breaker's leave for one call.
type Permit struct {
	gen   uint64
	probe bool
}

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) (*Breaker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Breaker{cfg: cfg}, nil
}

// State is the state at now: an open breaker whose period has passed
// reports HalfOpen (it moves there on the next Allow).
func (b *Breaker) State(now time.Time) State {
	if b.state == Open && !now.Before(b.openedAt.Add(b.cfg.OpenDuration)) {
		return HalfOpen
	}
	return b.state
}

// RetryAt is when an open breaker lets the next probe through (zero when
// not open).
func (b *Breaker) RetryAt() time.Time {
	if b.state != Open {
		return time.Time{}
	}
	return b.openedAt.Add(b.cfg.OpenDuration)
}

func (b *Breaker) moveTo(s State, now time.Time) {
	b.state = s
	b.gen++
	b.failures = 0
	b.probes = 0
	if s == Open {
		b.openedAt = now
	}
}

// Allow says whether a call may go out now.
func (b *Breaker) Allow(now time.Time) (Permit, bool) {
	if b.state == Open {
		if now.Before(b.openedAt.Add(b.cfg.OpenDuration)) {
			return Permit{}, false
		}
		b.moveTo(HalfOpen, now)
	}
	if b.state == HalfOpen {
		if b.probes >= b.cfg.HalfOpenProbes {
			return Permit{}, false
		}
		b.probes++
		return Permit{gen: b.gen, probe: true}, true
	}
	return Permit{gen: b.gen}, true
}

// Record reports a permitted call's outcome and returns whether the state
// changed.
func (b *Breaker) Record(now time.Time, p Permit, ok bool) (changed bool) {
	if p.gen != b.gen {
		return false
	}
	switch b.state {
	case Closed:
		if ok {
			b.failures = 0
			return false
		}
		b.failures++
		if b.failures >= b.cfg.FailureThreshold {
			b.moveTo(Open, now)
			return true
		}
	case HalfOpen:
		if ok {
			b.moveTo(Closed, now)
		} else {
			b.moveTo(Open, now)
		}
		return true
	}
	return false
}

// Release returns a permit without a verdict.
func (b *Breaker) Release(p Permit) {
	if p.gen == b.gen && p.probe && b.probes > 0 {
		b.probes--
	}
}
