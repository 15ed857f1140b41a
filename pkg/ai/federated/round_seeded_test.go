package federated

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestCoordinatorRandomized drives the Coordinator with seeded random
// joins, leaves, updates (fresh, stale, duplicate, invalid) and ticks, and
// checks what must always hold.
func TestCoordinatorRandomized(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runRandomized(t, seed) })
	}
}

func runRandomized(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	participants := 1 + rng.IntN(5)
	cfg := RoundConfig{
		Participants: participants,
		MinClients:   1 + rng.IntN(participants),
		RoundTimeout: time.Duration(1+rng.IntN(10)) * time.Second,
		Stop:         StopCondition{Rounds: 1 + rng.IntN(6)},
	}
	c := newCoord(t, cfg)
	clients := []string{"a", "b", "c", "d", "e", "f"}[:participants+rng.IntN(2)]
	now := t0
	round := 0
	finished := false
	minReached := time.Time{} // when the open round reached MinClients
	reported := map[string]bool{}

	check := func(acts []Action) {
		for _, a := range acts {
			switch a := a.(type) {
			case RoundClosed:
				if finished {
					t.Fatalf("seed %d: round closed after the end", seed)
				}
				round++
				r := a.Result
				if r.Round != round {
					t.Fatalf("seed %d: round %d closed, want %d", seed, r.Round, round)
				}
				n := len(r.Participants)
				if n < cfg.MinClients || n > len(clients) {
					t.Fatalf("seed %d: round %d closed with %d clients (min %d)", seed, r.Round, n, cfg.MinClients)
				}
				if n < cfg.Participants && (minReached.IsZero() || now.Before(minReached.Add(cfg.RoundTimeout))) {
					t.Fatalf("seed %d: round %d closed early with %d of %d at %v", seed, r.Round, n, cfg.Participants, now.Sub(t0))
				}
				if r.TotalSamples != n { // every update has one sample
					t.Fatalf("seed %d: total samples %d for %d clients", seed, r.TotalSamples, n)
				}
				// Each client sends its own index as weight: the mean lies
				// within the participants' range.
				v := r.Weights[0].Data[0]
				if v < 0 || v > float32(len(clients)) {
					t.Fatalf("seed %d: aggregate %v out of range", seed, v)
				}
				minReached, reported = time.Time{}, map[string]bool{}
			case Finished:
				finished = true
				if a.Result.Round != cfg.Stop.Rounds || !a.Result.Exit {
					t.Fatalf("seed %d: finished at round %d, stop at %d", seed, a.Result.Round, cfg.Stop.Rounds)
				}
			}
		}
	}

	for step := 0; step < 400 && !finished; step++ {
		id := clients[rng.IntN(len(clients))]
		switch k := rng.IntN(10); {
		case k == 0:
			check(c.Join(now, id, rng.IntN(2) == 0))
		case k == 1:
			check(c.Leave(now, id))
		case k <= 6:
			u := UpdateData{NumSamples: 1, Weights: vec(float32(indexOf(clients, id)))}
			switch rng.IntN(6) {
			case 0:
				u.RoundNumber = round // stale, or 0 (untagged) in round 1
			case 1:
				u.NumSamples = 0 // invalid
			default:
				u.RoundNumber = round + 1
			}
			acts := c.Update(now, id, u)
			if u.NumSamples > 0 && (u.RoundNumber == 0 || u.RoundNumber > round) && !containsRejected(acts) {
				reported[id] = true
				if len(reported) >= cfg.MinClients && minReached.IsZero() {
					minReached = now
				}
			}
			check(acts)
		default:
			now = now.Add(time.Duration(rng.IntN(4000)) * time.Millisecond)
			check(c.Tick(now))
		}
		if c.Round() != round {
			t.Fatalf("seed %d: Round() = %d, closed %d", seed, c.Round(), round)
		}
	}
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

func containsRejected(acts []Action) bool {
	for _, a := range acts {
		if isRejected(a) {
			return true
		}
	}
	return false
}
