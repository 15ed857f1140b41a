// Package reconnect keeps a long-lived session up: it runs the session,
// and when it ends waits a "full jitter" exponential back-off before the
// next attempt, so thousands of edge nodes that lose the cloud together
// come back spread out instead of all at once. The hub link and the tunnel
// control stream of verge-edge use it.
package reconnect

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy bounds the delays between attempts.
type Policy struct {
	// Min and Max bound the delay ceiling, which doubles per failed
	// attempt from Min up to Max (defaults 1 s and 1 min).
	Min, Max time.Duration
	// Stable is how long a session must have lasted for the next failure
	// to start again from Min (default 1 min).
	Stable time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.Min <= 0 {
		p.Min = time.Second
	}
	if p.Max <= 0 {
		p.Max = time.Minute
	}
	if p.Stable <= 0 {
		p.Stable = time.Minute
	}
	return p
}

// Run calls session until ctx ends. After each return of session it calls
// lost (if set) with the session's error and the delay before the next
// attempt, then waits it out.
func Run(ctx context.Context, p Policy, session func(context.Context) error, lost func(err error, retryIn time.Duration)) {
	p = p.withDefaults()
	attempt := 0
	for {
		started := time.Now()
		err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > p.Stable {
			attempt = 0
		}
		delay := Delay(attempt, p.Min, p.Max)
		attempt++
		if lost != nil {
			lost(err, delay)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// Delay is the wait before attempt (0-based): uniformly random below a
// ceiling of lo·2^attempt capped at hi, plus lo/2 so that it is never zero.
func Delay(attempt int, lo, hi time.Duration) time.Duration {
	ceiling := hi
	if attempt < 30 {
		ceiling = min(hi, lo<<attempt)
	}
	return lo/2 + time.Duration(rand.Int64N(int64(ceiling)))
}
