package podruntime

import (
	"time"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// probeKind is liveness, readiness or startup.
type probeKind int

const (
	liveness probeKind = iota
	readiness
	startup
)

func (k probeKind) String() string { return [...]string{"Liveness", "Readiness", "Startup"}[k] }

// probeResult is a probe's current verdict.
type probeResult int

const (
	resultUnknown probeResult = iota
	resultSuccess
	resultFailure
)

// probeTiming is a probe's schedule and thresholds with API defaults.
type probeTiming struct {
	InitialDelay, Period, Timeout      time.Duration
	SuccessThreshold, FailureThreshold int
}

func timingOf(p *kube.Probe) probeTiming {
	t := probeTiming{
		InitialDelay:     time.Duration(p.InitialDelaySeconds) * time.Second,
		Period:           time.Duration(p.PeriodSeconds) * time.Second,
		Timeout:          time.Duration(p.TimeoutSeconds) * time.Second,
		SuccessThreshold: int(p.SuccessThreshold),
		FailureThreshold: int(p.FailureThreshold),
	}
	if t.Period <= 0 {
		t.Period = 10 * time.Second
	}
	if t.Timeout <= 0 {
		t.Timeout = time.Second
	}
	if t.SuccessThreshold <= 0 {
		t.SuccessThreshold = 1
	}
	if t.FailureThreshold <= 0 {
		t.FailureThreshold = 3
	}
	if t.InitialDelay < 0 {
		t.InitialDelay = 0
	}
	return t
}

// probeMachine turns individual probe outcomes into a result that changes
// only after SuccessThreshold consecutive successes or FailureThreshold
// consecutive failures.
type probeMachine struct {
	kind   probeKind
	timing probeTiming
	result probeResult
	// run counts consecutive outcomes equal to last.
	run  int
	last probeResult
}

// newProbeMachine starts at the kind's initial result: a container is
// alive until proven dead, not ready until proven ready, and not started
// until its startup probe succeeds. seed, if not unknown, replaces it (a
// restarted verge-edge resumes the result it last reported).
func newProbeMachine(kind probeKind, p *kube.Probe, seed probeResult) probeMachine {
	m := probeMachine{kind: kind, timing: timingOf(p)}
	switch kind {
	case liveness:
		m.result = resultSuccess
	case readiness:
		m.result = resultFailure
	case startup:
		m.result = resultUnknown
	}
	if seed != resultUnknown {
		m.result = seed
	}
	return m
}

// observe records one probe outcome and reports whether the result changed.
func (m *probeMachine) observe(ok bool) bool {
	outcome := resultFailure
	if ok {
		outcome = resultSuccess
	}
	if outcome == m.last {
		m.run++
	} else {
		m.last, m.run = outcome, 1
	}
	if outcome == m.result {
		return false
	}
	threshold := m.timing.FailureThreshold
	if outcome == resultSuccess {
		threshold = m.timing.SuccessThreshold
	}
	if m.run < threshold {
		return false
	}
	m.result = outcome
	return true
}

// done reports whether probing should stop: a startup probe that succeeded
// never runs again for this container, and a failed liveness or startup
// probe waits for the container to be replaced.
func (m *probeMachine) done() bool {
	switch m.kind {
	case startup:
		return m.result != resultUnknown
	case liveness:
		return m.result == resultFailure
	}
	return false
}

// firstProbe is when the first probe of a container started at startedAt
// runs.
func (t probeTiming) firstProbe(startedAt, now time.Time) time.Time {
	at := startedAt.Add(t.InitialDelay)
	if at.Before(now) {
		return now
	}
	return at
}
