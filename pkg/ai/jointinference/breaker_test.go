package jointinference

import (
	"testing"
	"time"
)

func TestBreakerScript(t *testing.T) {
	b, err := NewBreaker(BreakerConfig{FailureThreshold: 3, OpenDuration: 10 * time.Second, HalfOpenProbes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	allow := func(now time.Time, want bool) Permit {
		t.Helper()
		p, ok := b.Allow(now)
		if ok != want {
			t.Fatalf("Allow at %v = %v, want %v (state %v)", now.Sub(t0), ok, want, b.State(now))
		}
		return p
	}
	state := func(now time.Time, want State) {
		t.Helper()
		if got := b.State(now); got != want {
			t.Fatalf("state at %v = %v, want %v", now.Sub(t0), got, want)
		}
	}

	// Two failures, a success: the count restarts.
	b.Record(at(0), allow(at(0), true), false)
	b.Record(at(1), allow(at(1), true), false)
	b.Record(at(2), allow(at(2), true), true)
	b.Record(at(3), allow(at(3), true), false)
	b.Record(at(4), allow(at(4), true), false)
	state(at(4), Closed)

	// A call permitted now but answering late...
	slow := allow(at(4), true)
	// ...the third consecutive failure opens.
	if !b.Record(at(5), allow(at(5), true), false) {
		t.Fatal("third failure did not change the state")
	}
	state(at(5), Open)
	allow(at(6), false)
	allow(at(14.9), false)
	if !b.RetryAt().Equal(at(15)) {
		t.Fatalf("RetryAt = %v", b.RetryAt().Sub(t0))
	}
	// The stale call's success does not close it.
	if b.Record(at(7), slow, true) {
		t.Fatal("a stale permit changed the state")
	}
	state(at(7), Open)

	// After the open period: one probe, the others wait.
	state(at(15), HalfOpen)
	probe := allow(at(15), true)
	allow(at(15.1), false)
	// The probe fails: open again for a full period.
	b.Record(at(16), probe, false)
	state(at(16), Open)
	allow(at(25), false)

	// A probe released without a verdict frees its slot.
	probe = allow(at(26), true)
	allow(at(26), false)
	b.Release(probe)
	probe = allow(at(26.5), true)
	// It succeeds: closed, and the failure count starts from zero.
	b.Record(at(27), probe, true)
	state(at(27), Closed)
	b.Record(at(28), allow(at(28), true), false)
	b.Record(at(29), allow(at(29), true), false)
	state(at(29), Closed)
}

func TestBreakerConfig(t *testing.T) {
	if _, err := NewBreaker(BreakerConfig{FailureThreshold: -1}); err == nil {
		t.Fatal("negative threshold accepted")
	}
	b, err := NewBreaker(BreakerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if b.cfg.FailureThreshold != 5 || b.cfg.OpenDuration != 5*time.Second || b.cfg.HalfOpenProbes != 1 {
		t.Fatalf("defaults %+v", b.cfg)
	}
}
