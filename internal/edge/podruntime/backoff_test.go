package podruntime

import (
	"testing"
	"time"
)

func TestBackoffDelays(t *testing.T) {
	p := BackoffPolicy{}.withDefaults()
	want := []time.Duration{0, 0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second}
	for step, w := range want {
		if got := p.delay(step); got != w {
			t.Errorf("delay(step %d) = %s, want %s", step, got, w)
		}
	}
	if got := p.delay(1000); got != 5*time.Minute {
		t.Errorf("a huge step must stay at the cap, got %s", got)
	}
}

func TestPlanRestart(t *testing.T) {
	p := BackoffPolicy{}.withDefaults()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ran := func(d time.Duration, step int) *containerObs {
		return &containerObs{StartedAt: t0, FinishedAt: t0.Add(d), BackoffStep: step, State: stateExited}
	}
	cases := []struct {
		name      string
		prev      *containerObs
		wantStep  int
		wantAfter time.Duration // NotBefore - prev.FinishedAt
	}{
		{"first start", nil, 0, 0},
		{"first crash restarts at once", ran(time.Second, 0), 1, 0},
		{"second crash waits 10s", ran(time.Second, 1), 2, 10 * time.Second},
		{"third crash waits 20s", ran(time.Second, 2), 3, 20 * time.Second},
		{"deep in the loop waits the cap", ran(time.Second, 12), 13, 5 * time.Minute},
		{"ten minutes of running resets", ran(10*time.Minute, 7), 0, 0},
		{"nine minutes does not", ran(9*time.Minute, 2), 3, 20 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := p.planRestart(tc.prev)
			if got.Step != tc.wantStep {
				t.Fatalf("step %d, want %d", got.Step, tc.wantStep)
			}
			if tc.prev != nil && got.NotBefore.Sub(tc.prev.FinishedAt) != tc.wantAfter {
				t.Fatalf("not before finish+%s, want +%s", got.NotBefore.Sub(tc.prev.FinishedAt), tc.wantAfter)
			}
		})
	}
	// Without a finish time (e.g. after a reboot) the start time counts.
	got := p.planRestart(&containerObs{StartedAt: t0, BackoffStep: 2})
	if !got.NotBefore.Equal(t0.Add(20 * time.Second)) {
		t.Fatalf("not before %s, want start+20s", got.NotBefore)
	}
}

func TestPullBackoff(t *testing.T) {
	p := BackoffPolicy{}.withDefaults()
	now := time.Unix(1000, 0)
	var b pullBackoff
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
		b = p.fail(b, now, "boom")
		if got := b.notBefore.Sub(now); got != want {
			t.Fatalf("failure %d: retry after %s, want %s", i+1, got, want)
		}
	}
	if b.lastError != "boom" || b.failures != 3 {
		t.Fatalf("%+v", b)
	}
}

func TestRotatedToDelete(t *testing.T) {
	files := []string{"0.log.20260101-120003.000000000", "0.log.20260101-120001.000000000", "0.log.20260101-120002.000000000"}
	got := rotatedToDelete(files, 2)
	if len(got) != 1 || got[0] != "0.log.20260101-120001.000000000" {
		t.Fatalf("deletes %v, want the oldest only", got)
	}
	if got := rotatedToDelete(files, 3); got != nil {
		t.Fatalf("deletes %v with room for all", got)
	}
}
