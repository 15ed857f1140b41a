package devices

import "time"

// Pacer spaces the status writes of each device at least Interval apart:
// a report arriving sooner is told to come back when the interval is up.
// The node's outbox keeps one entry per device that newer readings
// replace, so what comes back then carries every reading taken meanwhile
// in one write. Pure; not safe for concurrent use.
type Pacer struct {
	Interval time.Duration
	last     map[string]time.Time
}

// NewPacer returns a Pacer for interval.
func NewPacer(interval time.Duration) *Pacer {
	return &Pacer{Interval: interval, last: map[string]time.Time{}}
}

// Admit reports whether key may be written at now. If so it records the
// write and returns 0 and the previous write (zero if none); otherwise it
// returns how long to wait.
func (p *Pacer) Admit(key string, now time.Time) (wait time.Duration, previous time.Time) {
	last, ok := p.last[key]
	if ok {
		if next := last.Add(p.Interval); now.Before(next) {
			return next.Sub(now), last
		}
	}
	p.last[key] = now
	return 0, last
}

// Prune forgets devices not written for an interval (their next report is
// admitted anyway), bounding memory by the devices written recently.
func (p *Pacer) Prune(now time.Time) {
	for k, t := range p.last {
		if !now.Before(t.Add(p.Interval)) {
			delete(p.last, k)
		}
	}
}

// Len is the number of devices tracked.
func (p *Pacer) Len() int { return len(p.last) }
