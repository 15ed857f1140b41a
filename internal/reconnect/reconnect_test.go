package reconnect

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelayGrowsAndIsCapped(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for attempt := range 40 {
		ceiling := min(hi, lo<<min(attempt, 30))
		for range 200 {
			d := Delay(attempt, lo, hi)
			if d < lo/2 || d >= lo/2+ceiling {
				t.Fatalf("attempt %d: delay %v outside [%v, %v)", attempt, d, lo/2, lo/2+ceiling)
			}
		}
	}
}

func TestRunRetriesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var delays []time.Duration
	sessions := 0
	Run(ctx, Policy{Min: time.Millisecond, Max: 4 * time.Millisecond}, func(context.Context) error {
		sessions++
		if sessions == 5 {
			cancel()
		}
		return errors.New("link down")
	}, func(err error, d time.Duration) {
		if err == nil || err.Error() != "link down" {
			t.Errorf("lost got %v", err)
		}
		delays = append(delays, d)
	})
	if sessions != 5 || len(delays) != 4 {
		t.Fatalf("sessions %d, retries %d; want 5 sessions and a retry after each of the first 4", sessions, len(delays))
	}
	for _, d := range delays {
		if d > 4*time.Millisecond+time.Millisecond/2 {
			t.Errorf("delay %v beyond the cap", d)
		}
	}
}
