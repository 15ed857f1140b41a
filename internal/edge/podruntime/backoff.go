package podruntime

import "time"

// BackoffPolicy bounds an exponential back-off.
type BackoffPolicy struct {
	// Initial is the first non-zero delay; it doubles up to Max.
	Initial, Max time.Duration
	// ResetAfter: a container that ran at least this long restarts at once
	// and starts the sequence over.
	ResetAfter time.Duration
}

func (p BackoffPolicy) withDefaults() BackoffPolicy {
	if p.Initial <= 0 {
		p.Initial = 10 * time.Second
	}
	if p.Max <= 0 {
		p.Max = 5 * time.Minute
	}
	if p.Max < p.Initial {
		p.Max = p.Initial
	}
	if p.ResetAfter <= 0 {
		p.ResetAfter = 10 * time.Minute
	}
	return p
}

// delay is the wait before a container at back-off step may start. Step 0
// is a first start or a restart after a long run; step 1 is the first
// restart after a short run and, as with the kubelet, is immediate; each
// further step doubles from Initial up to Max.
func (p BackoffPolicy) delay(step int) time.Duration {
	if step <= 1 {
		return 0
	}
	d := p.Initial
	for i := 2; i < step; i++ {
		d *= 2
		if d >= p.Max {
			return p.Max
		}
	}
	return min(d, p.Max)
}

// restartPlan says when a container replacing prev may start and which
// back-off step it records.
type restartPlan struct {
	Step      int
	NotBefore time.Time
	Delay     time.Duration
}

// planRestart derives the back-off for the successor of prev (the newest
// earlier container of the same name; nil if there is none) from facts CRI
// keeps, so the sequence survives a verge-edge restart.
func (p BackoffPolicy) planRestart(prev *containerObs) restartPlan {
	if prev == nil {
		return restartPlan{}
	}
	end := prev.FinishedAt
	if end.IsZero() {
		end = latest(prev.StartedAt, prev.CreatedAt)
	}
	step := prev.BackoffStep + 1
	if !prev.StartedAt.IsZero() && !prev.FinishedAt.IsZero() && prev.FinishedAt.Sub(prev.StartedAt) >= p.ResetAfter {
		step = 0
	}
	d := p.delay(step)
	return restartPlan{Step: step, NotBefore: end.Add(d), Delay: d}
}

func latest(ts ...time.Time) time.Time {
	var t time.Time
	for _, x := range ts {
		if x.After(t) {
			t = x
		}
	}
	return t
}

// pullBackoff tracks failed pulls of one image for one pod.
type pullBackoff struct {
	failures  int
	lastError string
	notBefore time.Time
}

// fail records a failed pull at now and returns the next retry time.
func (p BackoffPolicy) fail(b pullBackoff, now time.Time, msg string) pullBackoff {
	b.failures++
	b.lastError = msg
	// The first retry waits Initial (unlike container restarts: a pull that
	// failed will usually fail again at once).
	b.notBefore = now.Add(p.delay(b.failures + 1))
	return b
}
