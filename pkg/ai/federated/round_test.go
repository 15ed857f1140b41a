package federated

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/ai/tensor"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func upd(n int, v ...float32) UpdateData { return UpdateData{NumSamples: n, Weights: vec(v...)} }

func newCoord(t *testing.T, cfg RoundConfig) *Coordinator {
	t.Helper()
	c, err := NewCoordinator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kinds renders actions compactly for comparison.
func kinds(acts []Action) string {
	var parts []string
	for _, a := range acts {
		switch a := a.(type) {
		case SendAck:
			parts = append(parts, fmt.Sprintf("ack(%s,%d)", a.To, a.Round))
		case Send:
			parts = append(parts, fmt.Sprintf("send(%s,%d)", a.To, a.Result.Round))
		case RoundClosed:
			parts = append(parts, fmt.Sprintf("closed(%d,%v,dropped=%v)", a.Result.Round, a.Result.Participants, a.Dropped))
		case RoundWaiting:
			parts = append(parts, fmt.Sprintf("waiting(%d,%d/%d)", a.Round, a.Have, a.Need))
		case Rejected:
			parts = append(parts, fmt.Sprintf("rejected(%s)", a.Client))
		case Finished:
			parts = append(parts, fmt.Sprintf("finished(%d)", a.Result.Round))
		}
	}
	return strings.Join(parts, " ")
}

func expect(t *testing.T, what string, acts []Action, want string) {
	t.Helper()
	if got := kinds(acts); got != want {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

func TestBarrierWithAllParticipants(t *testing.T) {
	c := newCoord(t, RoundConfig{Participants: 3, Stop: StopCondition{Rounds: 5}})
	for _, id := range []string{"a", "b", "c"} {
		expect(t, "join "+id, c.Join(at(0), id, true), "ack("+id+",0)")
	}
	expect(t, "a", c.Update(at(1), "a", upd(1, 0, 2)), "")
	expect(t, "b", c.Update(at(2), "b", upd(1, 2, 2)), "")
	// Without a round timeout reached and min = all, time alone does nothing.
	if d, ok := c.NextDeadline(); !ok || !d.Equal(at(60)) {
		t.Fatalf("next deadline %v %v (waiting report)", d, ok)
	}
	acts := c.Update(at(3), "c", upd(2, 4, 2))
	expect(t, "c completes the round", acts, "closed(1,[a b c],dropped=[])")
	res := acts[0].(RoundClosed).Result
	// (1·0 + 1·2 + 2·4)/4 = 2.5; second value 2.
	if res.TotalSamples != 4 || !reflect.DeepEqual(res.Weights[0].Data, []float32{2.5, 2}) || res.Exit {
		t.Fatalf("result %+v", res)
	}
	m := res.Message()
	if m.Type != TypeRecvWeight || *m.RoundNumber != 1 || m.Result.ExitFlag != ExitContinue || m.Result.TotalSample != 4 {
		t.Fatalf("message %+v", m)
	}
}

func TestStragglerDroppedAtDeadlineAndRejoins(t *testing.T) {
	c := newCoord(t, RoundConfig{Participants: 3, MinClients: 2, RoundTimeout: 10 * time.Second, Stop: StopCondition{Rounds: 5}})
	for _, id := range []string{"a", "b", "c"} {
		c.Join(at(0), id, true)
	}
	expect(t, "a", c.Update(at(1), "a", upd(1, 1)), "")
	expect(t, "b reaches the minimum", c.Update(at(2), "b", upd(1, 3)), "")
	if d, _ := c.NextDeadline(); !d.Equal(at(12)) {
		t.Fatalf("deadline %v, want 10 s after the minimum was reached", d.Sub(t0))
	}
	expect(t, "before the deadline", c.Tick(at(11)), "")
	acts := c.Tick(at(12))
	expect(t, "deadline", acts, "closed(1,[a b],dropped=[c])")
	if w := acts[0].(RoundClosed).Result.Weights[0].Data[0]; w != 2 {
		t.Fatalf("aggregate %v", w)
	}
	// c finally answers round 1: stale, answered with round 1's result.
	expect(t, "stale", c.Update(at(13), "c", UpdateData{NumSamples: 1, Weights: vec(9), RoundNumber: 1}), "rejected(c) send(c,1)")
	// Trained on round 1's weights, its update for round 2 counts.
	expect(t, "c in round 2", c.Update(at(14), "c", UpdateData{NumSamples: 1, Weights: vec(5), RoundNumber: 2}), "")
	expect(t, "a", c.Update(at(15), "a", upd(1, 5)), "")
	expect(t, "b completes round 2", c.Update(at(16), "b", upd(1, 5)), "closed(2,[a b c],dropped=[])")
}

func TestMinimumNotMetRoundWaits(t *testing.T) {
	c := newCoord(t, RoundConfig{Participants: 3, MinClients: 2, RoundTimeout: 10 * time.Second, Stop: StopCondition{Rounds: 5}})
	for _, id := range []string{"a", "b", "c"} {
		c.Join(at(0), id, true)
	}
	c.Update(at(1), "a", upd(1, 1))
	c.Leave(at(2), "b")
	expect(t, "first timeout", c.Tick(at(10)), "waiting(1,1/2)")
	expect(t, "in between", c.Tick(at(15)), "")
	if d, _ := c.NextDeadline(); !d.Equal(at(20)) {
		t.Fatalf("next waiting report at %v", d.Sub(t0))
	}
	expect(t, "second timeout", c.Tick(at(20)), "waiting(1,1/2)")
	expect(t, "much later", c.Tick(at(500)), "waiting(1,1/2)")
	// b comes back and reports: the minimum is met, the grace period starts.
	c.Join(at(501), "b", true)
	expect(t, "b", c.Update(at(502), "b", upd(1, 3)), "")
	if d, _ := c.NextDeadline(); !d.Equal(at(512)) {
		t.Fatalf("deadline %v", d.Sub(t0))
	}
	expect(t, "grace over", c.Tick(at(512)), "closed(1,[a b],dropped=[c])")
}

func TestUpdateOfDisconnectedClientCounts(t *testing.T) {
	c := newCoord(t, RoundConfig{Participants: 2, Stop: StopCondition{Rounds: 3}})
	c.Join(at(0), "a", false)
	c.Join(at(0), "b", false)
	c.Update(at(1), "a", upd(1, 1))
	c.Leave(at(2), "a")
	expect(t, "b", c.Update(at(3), "b", upd(1, 3)), "closed(1,[a b],dropped=[])")
	// A second update from the same client in a round replaces the first.
	c.Update(at(4), "b", upd(1, 100))
	expect(t, "b again", c.Update(at(5), "b", upd(1, 7)), "")
	acts := c.Update(at(6), "a", upd(1, 1))
	expect(t, "a", acts, "closed(2,[a b],dropped=[])")
	if got := acts[0].(RoundClosed).Result.Weights[0].Data[0]; got != 4 {
		t.Fatalf("aggregate %v, want (1+7)/2", got)
	}
}

func TestStopAfterRoundsAndLateArrivals(t *testing.T) {
	c := newCoord(t, RoundConfig{Participants: 1, Stop: StopCondition{Rounds: 2}})
	c.Join(at(0), "a", false)
	expect(t, "round 1", c.Update(at(1), "a", upd(1, 1)), "closed(1,[a],dropped=[])")
	acts := c.Update(at(2), "a", upd(1, 2))
	expect(t, "round 2", acts, "closed(2,[a],dropped=[]) finished(2)")
	if !acts[0].(RoundClosed).Result.Exit || acts[0].(RoundClosed).Result.Message().Result.ExitFlag != ExitOK || !c.Finished() {
		t.Fatal("the last round must carry exit_flag ok")
	}
	if _, ok := c.NextDeadline(); ok {
		t.Fatal("a finished coordinator has no deadline")
	}
	expect(t, "update after the end", c.Update(at(3), "a", upd(1, 3)), "send(a,2)")
	expect(t, "Sedna client joining after the end", c.Join(at(4), "z", false), "ack(z,2) send(z,2)")
}

func TestStopOnTargetMetric(t *testing.T) {
	target, _ := ParseTargetMetric("accuracy", ">=", "0.87")
	c := newCoord(t, RoundConfig{Participants: 2, Stop: StopCondition{Target: target}})
	c.Update(at(1), "a", UpdateData{NumSamples: 100, Weights: vec(1), Metrics: map[string]float64{"accuracy": 0.8, "loss": 1}})
	acts := c.Update(at(2), "b", UpdateData{NumSamples: 100, Weights: vec(1), Metrics: map[string]float64{"accuracy": 0.9}})
	// (0.8 + 0.9)/2 = 0.85: not yet. loss only from a.
	expect(t, "round 1", acts, "closed(1,[a b],dropped=[])")
	m := acts[0].(RoundClosed).Result.Metrics
	if math.Abs(m["accuracy"]-0.85) > 1e-9 || m["loss"] != 1 {
		t.Fatalf("metrics %v", m)
	}
	c.Update(at(3), "a", UpdateData{NumSamples: 100, Weights: vec(1), Metrics: map[string]float64{"accuracy": 0.8}})
	acts = c.Update(at(4), "b", UpdateData{NumSamples: 300, Weights: vec(1), Metrics: map[string]float64{"accuracy": 0.9}})
	// (100·0.8 + 300·0.9)/400 = 0.875.
	expect(t, "round 2", acts, "closed(2,[a b],dropped=[]) finished(2)")
	if r := acts[1].(Finished).Reason; !strings.Contains(r, "accuracy >= 0.87") {
		t.Fatalf("reason %q", r)
	}
}

func TestRejectedUpdates(t *testing.T) {
	c := newCoord(t, RoundConfig{Participants: 2, Stop: StopCondition{Rounds: 1}})
	c.Update(at(0), "a", upd(1, 1, 2))
	nan := float32(math.NaN())
	for name, u := range map[string]UpdateData{
		"no samples":     upd(0, 1, 2),
		"negative":       upd(-5, 1, 2),
		"no weights":     {NumSamples: 1},
		"NaN weight":     upd(1, 1, nan),
		"other shape":    upd(1, 1, 2, 3),
		"bad tensor":     {NumSamples: 1, Weights: tensor.Weights{{Shape: []int{3}, Data: []float32{1}}}},
		"infinite stats": {NumSamples: 1, Weights: vec(1, 2), Metrics: map[string]float64{"loss": math.Inf(1)}},
	} {
		expect(t, name, c.Update(at(1), "b", u), "rejected(b)")
	}
	if c.Round() != 0 {
		t.Fatal("a rejected update closed the round")
	}
}

func TestJoinCatchUp(t *testing.T) {
	c := newCoord(t, RoundConfig{Participants: 1, Stop: StopCondition{Rounds: 9}, Initial: vec(0)})
	c.Update(at(1), "a", upd(1, 1))
	expect(t, "Verge client", c.Join(at(2), "v", true), "ack(v,1) send(v,1)")
	expect(t, "Sedna client", c.Join(at(2), "s", false), "ack(s,1)")
}

func TestCoordinatorConfig(t *testing.T) {
	for _, cfg := range []RoundConfig{
		{Participants: 0, Stop: StopCondition{Rounds: 1}},
		{Participants: 2, MinClients: 3, Stop: StopCondition{Rounds: 1}},
		{Participants: 2},
		{Participants: 2, RoundTimeout: -time.Second, Stop: StopCondition{Rounds: 1}},
		{Participants: 2, Stop: StopCondition{Rounds: 1}, Initial: vec(float32(math.Inf(1)))},
	} {
		if _, err := NewCoordinator(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	c := newCoord(t, RoundConfig{Participants: 4, Stop: StopCondition{Rounds: 1}})
	if got := c.Config(); got.MinClients != 4 || got.RoundTimeout != time.Minute || got.Algorithm.Name() != NameFedAvg {
		t.Fatalf("defaults %+v", got)
	}
}
