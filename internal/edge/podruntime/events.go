package podruntime

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// eventLimiter drops an event identical (same pod, reason and message) to
// one sent within the window, so a crash loop or a failing probe does not
// flood the Sink; the first occurrence and any change get through.
type eventLimiter struct {
	window time.Duration
	max    int

	mu   sync.Mutex
	seen map[eventKey]time.Time
}

type eventKey struct {
	uid             types.UID
	reason, message string
}

func newEventLimiter(window time.Duration, max int) *eventLimiter {
	return &eventLimiter{window: window, max: max, seen: map[eventKey]time.Time{}}
}

// allow reports whether the event should be sent at now.
func (l *eventLimiter) allow(uid types.UID, reason, message string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := eventKey{uid, reason, message}
	if t, ok := l.seen[k]; ok && now.Sub(t) < l.window {
		return false
	}
	if len(l.seen) >= l.max {
		for key, t := range l.seen {
			if now.Sub(t) >= l.window {
				delete(l.seen, key)
			}
		}
		if len(l.seen) >= l.max {
			// Still full of recent events: drop this one rather than grow.
			return false
		}
	}
	l.seen[k] = now
	return true
}

// forget drops a pod's entries.
func (l *eventLimiter) forget(uid types.UID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.seen {
		if k.uid == uid {
			delete(l.seen, k)
		}
	}
}
