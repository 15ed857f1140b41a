package federated

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/verge-edge/verge/pkg/ai/tensor"
)

// RoundConfig configures a Coordinator.
type RoundConfig struct {
	// Participants is the number of training workers
	// (PARTICIPANTS_COUNT): a round closes at once when this many clients
	// have reported.
	Participants int
	// MinClients (MIN_CLIENTS_PER_ROUND, default Participants) is the
	// fewest updates a round may close with.
	MinClients int
	// RoundTimeout (ROUND_TIMEOUT, default 60 s) is how long a round waits
	// for the remaining clients once MinClients have reported. While
	// fewer have, the round waits without limit and reports RoundWaiting
	// every RoundTimeout.
	RoundTimeout time.Duration
	Stop         StopCondition
	// Algorithm aggregates (default FedAvg).
	Algorithm Algorithm
	// Initial is the global model before the first round (e.g. the
	// pretrained model), or nil.
	Initial tensor.Weights
}

// Validate checks the configuration (after defaults).
func (c RoundConfig) Validate() error {
	var errs []error
	if c.Participants < 1 {
		errs = append(errs, fmt.Errorf("participants is %d; it must be at least 1 (PARTICIPANTS_COUNT)", c.Participants))
	}
	if c.MinClients < 1 || c.MinClients > c.Participants {
		errs = append(errs, fmt.Errorf("minimum clients per round is %d; it must be between 1 and the %d participants", c.MinClients, c.Participants))
	}
	if c.RoundTimeout <= 0 {
		errs = append(errs, fmt.Errorf("round timeout is %v; it must be positive", c.RoundTimeout))
	}
	if err := c.Stop.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Initial != nil {
		if err := c.Initial.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("initial weights: %w", err))
		} else if err := c.Initial.CheckFinite(); err != nil {
			errs = append(errs, fmt.Errorf("initial weights: %w", err))
		}
	}
	return errors.Join(errs...)
}

// RoundResult is what a closed round sends to the clients (recv_weight).
type RoundResult struct {
	Round        int
	TotalSamples int
	Weights      tensor.Weights
	// Exit is true for the last round (exit_flag "ok").
	Exit         bool
	Metrics      map[string]float64
	Participants []string
}

// Message returns the recv_weight message for r.
func (r *RoundResult) Message() *Message {
	round := r.Round
	flag := ExitContinue
	if r.Exit {
		flag = ExitOK
	}
	return &Message{Type: TypeRecvWeight, RoundNumber: &round, Result: &ResultData{
		TotalSample: r.TotalSamples, RoundNumber: r.Round, Weights: r.Weights, ExitFlag: flag,
		Metrics: r.Metrics, Participants: r.Participants,
	}}
}

// Action is something the Coordinator asks its caller to do or to know.
type Action interface{ action() }

// SendAck: answer client's subscribe, telling it how many rounds have
// completed.
type SendAck struct {
	To    string
	Round int
}

// Send: send Result to one client (catching up a client that joined or
// reported late).
type Send struct {
	To     string
	Result *RoundResult
}

// RoundClosed: a round was aggregated; send Result to every connected
// client.
type RoundClosed struct {
	Result *RoundResult
	// Dropped are clients connected at the close that did not report:
	// stragglers, welcome in the next round.
	Dropped  []string
	Duration time.Duration
}

// RoundWaiting: fewer than MinClients have reported and the round has
// been open another RoundTimeout; it keeps waiting.
type RoundWaiting struct {
	Round, Have, Need, Connected int
	Open                         time.Duration
}

// Rejected: an update was not used.
type Rejected struct {
	Client string
	Reason string
}

// Finished: training is over (after the RoundClosed carrying the final
// weights).
type Finished struct {
	Result *RoundResult
	Reason string
}

func (SendAck) action()      {}
func (Send) action()         {}
func (RoundClosed) action()  {}
func (RoundWaiting) action() {}
func (Rejected) action()     {}
func (Finished) action()     {}

type pending struct {
	numSamples int
	weights    tensor.Weights
	metrics    map[string]float64
}

// Coordinator is the aggregator's round bookkeeping as a pure state
// machine: events go in with the time they happened, actions come out, and
// the caller does the I/O and calls Tick at NextDeadline. It reads no
// clock, starts no goroutine and is not safe for concurrent use.
//
// Rules:
//   - Round n+1 is open once n rounds have closed. Any client may report
//     into it, connected or not any more; a second update from a client
//     replaces its first.
//   - The round closes at once when Participants clients have reported;
//     otherwise RoundTimeout after the MinClients-th update. With fewer
//     than MinClients it stays open (RoundWaiting every RoundTimeout).
//   - Updates are checked: positive samples, finite weights, the global
//     model's shapes (or the first update's, before there is one); an
//     update tagged with a closed round is stale and answered with the
//     latest result instead.
//   - After the round that meets the stop condition the Coordinator is
//     finished: joins and updates are answered with the final result.
type Coordinator struct {
	cfg RoundConfig

	round     int // rounds closed
	global    tensor.Weights
	latest    *RoundResult
	finished  bool
	connected map[string]bool

	opened       time.Time // zero until the first join
	minReachedAt time.Time // zero while below MinClients
	nextWait     time.Time // next RoundWaiting
	updates      map[string]pending
	ref          tensor.Weights // shape reference for this round
}

// NewCoordinator fills defaults and checks cfg.
func NewCoordinator(cfg RoundConfig) (*Coordinator, error) {
	if cfg.MinClients == 0 {
		cfg.MinClients = cfg.Participants
	}
	if cfg.RoundTimeout == 0 {
		cfg.RoundTimeout = time.Minute
	}
	if cfg.Algorithm == nil {
		cfg.Algorithm = FedAvg{}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("federated rounds: %w", err)
	}
	return &Coordinator{
		cfg:       cfg,
		global:    cfg.Initial.Clone(),
		connected: map[string]bool{},
		updates:   map[string]pending{},
	}, nil
}

// Round is the number of rounds closed.
func (c *Coordinator) Round() int { return c.round }

// Finished reports whether training is over.
func (c *Coordinator) Finished() bool { return c.finished }

// Latest is the last round's result (nil before the first).
func (c *Coordinator) Latest() *RoundResult { return c.latest }

// Config is the effective configuration.
func (c *Coordinator) Config() RoundConfig { return c.cfg }

// Join: client subscribed (or re-subscribed). With catchUp (clients that
// speak Verge's protocol) the latest result follows the acknowledgement,
// so a client that missed rounds trains on the current model. Sedna
// clients read one message after subscribing and would take a result for
// the acknowledgement, so they get the final result only once training is
// over (they may still be training its last round).
func (c *Coordinator) Join(now time.Time, client string, catchUp bool) []Action {
	c.connected[client] = true
	if c.opened.IsZero() && !c.finished {
		c.openRound(now)
	}
	acts := []Action{SendAck{To: client, Round: c.round}}
	if c.latest != nil && (catchUp || c.finished) {
		acts = append(acts, Send{To: client, Result: c.latest})
	}
	return acts
}

// Leave: client's connection ended. Its update, if any, still counts.
func (c *Coordinator) Leave(_ time.Time, client string) []Action {
	delete(c.connected, client)
	return nil
}

func (c *Coordinator) openRound(now time.Time) {
	c.opened = now
	c.nextWait = now.Add(c.cfg.RoundTimeout)
	c.minReachedAt = time.Time{}
	c.updates = map[string]pending{}
	c.ref = c.global
}

// Update: client sent update_weight.
func (c *Coordinator) Update(now time.Time, client string, u UpdateData) []Action {
	if c.finished {
		return []Action{Send{To: client, Result: c.latest}}
	}
	if c.opened.IsZero() {
		c.openRound(now)
	}
	open := c.round + 1
	if u.RoundNumber != 0 && u.RoundNumber < open {
		acts := []Action{Rejected{Client: client, Reason: fmt.Sprintf("stale update for round %d; round %d is open", u.RoundNumber, open)}}
		if c.latest != nil {
			acts = append(acts, Send{To: client, Result: c.latest})
		}
		return acts
	}
	if reason := c.check(u); reason != "" {
		return []Action{Rejected{Client: client, Reason: reason}}
	}
	if c.ref == nil {
		c.ref = u.Weights
	}
	c.updates[client] = pending{numSamples: u.NumSamples, weights: u.Weights, metrics: maps.Clone(u.Metrics)}
	if len(c.updates) >= c.cfg.Participants {
		return c.close(now)
	}
	if len(c.updates) >= c.cfg.MinClients && c.minReachedAt.IsZero() {
		c.minReachedAt = now
	}
	return nil
}

func (c *Coordinator) check(u UpdateData) string {
	switch {
	case u.NumSamples <= 0:
		return fmt.Sprintf("num_samples is %d; it must be positive", u.NumSamples)
	case len(u.Weights) == 0:
		return "the update has no weights"
	}
	if err := u.Weights.Validate(); err != nil {
		return err.Error()
	}
	if err := u.Weights.CheckFinite(); err != nil {
		return err.Error()
	}
	for k, v := range u.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprintf("metric %q is %v; metrics must be finite", k, v)
		}
	}
	if c.ref != nil {
		if err := c.ref.SameShape(u.Weights); err != nil {
			return err.Error()
		}
	}
	return ""
}

// Tick: time passed; call at NextDeadline (earlier or later is harmless).
func (c *Coordinator) Tick(now time.Time) []Action {
	if c.finished || c.opened.IsZero() {
		return nil
	}
	if !c.minReachedAt.IsZero() {
		if !now.Before(c.minReachedAt.Add(c.cfg.RoundTimeout)) {
			return c.close(now)
		}
		return nil
	}
	if !now.Before(c.nextWait) {
		c.nextWait = now.Add(c.cfg.RoundTimeout)
		return []Action{RoundWaiting{
			Round: c.round + 1, Have: len(c.updates), Need: c.cfg.MinClients,
			Connected: len(c.connected), Open: now.Sub(c.opened),
		}}
	}
	return nil
}

// NextDeadline is when Tick has something to do (false: nothing pending).
func (c *Coordinator) NextDeadline() (time.Time, bool) {
	switch {
	case c.finished || c.opened.IsZero():
		return time.Time{}, false
	case !c.minReachedAt.IsZero():
		return c.minReachedAt.Add(c.cfg.RoundTimeout), true
	}
	return c.nextWait, true
}

func (c *Coordinator) close(now time.Time) []Action {
	clients := slices.Sorted(maps.Keys(c.updates))
	updates := make([]ClientUpdate, 0, len(clients))
	total := 0
	for _, id := range clients {
		p := c.updates[id]
		updates = append(updates, ClientUpdate{Client: id, NumSamples: p.numSamples, Weights: p.weights})
		total += p.numSamples
	}
	weights, err := c.cfg.Algorithm.Aggregate(c.global, updates)
	if err == nil {
		err = weights.CheckFinite()
	}
	if err != nil {
		// Nothing a client sent can cause this once checked; keep the
		// round open rather than publish garbage.
		acts := make([]Action, 0, len(clients))
		for _, id := range clients {
			acts = append(acts, Rejected{Client: id, Reason: "aggregation failed: " + err.Error()})
		}
		c.openRound(now)
		return acts
	}
	metrics := weightedMetrics(clients, c.updates)
	c.round++
	c.global = weights
	res := &RoundResult{Round: c.round, TotalSamples: total, Weights: weights, Metrics: metrics, Participants: clients}
	var reason string
	switch {
	case c.cfg.Stop.Rounds > 0 && c.round >= c.cfg.Stop.Rounds:
		reason = fmt.Sprintf("reached %d rounds", c.cfg.Stop.Rounds)
	case c.cfg.Stop.Target != nil && c.cfg.Stop.Target.Met(metrics):
		reason = fmt.Sprintf("target %s met (%s = %g)", c.cfg.Stop.Target, c.cfg.Stop.Target.Name, metrics[c.cfg.Stop.Target.Name])
	}
	res.Exit = reason != ""
	c.latest = res

	var dropped []string
	for id := range c.connected {
		if _, ok := c.updates[id]; !ok {
			dropped = append(dropped, id)
		}
	}
	slices.Sort(dropped)
	acts := []Action{RoundClosed{Result: res, Dropped: dropped, Duration: now.Sub(c.opened)}}
	if res.Exit {
		c.finished = true
		c.updates = nil
		return append(acts, Finished{Result: res, Reason: reason})
	}
	c.openRound(now)
	return acts
}

// weightedMetrics averages each metric over the updates that report it,
// weighted by their samples.
func weightedMetrics(clients []string, updates map[string]pending) map[string]float64 {
	sums := map[string]float64{}
	weights := map[string]float64{}
	for _, id := range clients {
		p := updates[id]
		for k, v := range p.metrics {
			sums[k] += v * float64(p.numSamples)
			weights[k] += float64(p.numSamples)
		}
	}
	if len(sums) == 0 {
		return nil
	}
	out := make(map[string]float64, len(sums))
	for k, s := range sums {
		out[k] = s / weights[k]
	}
	return out
}
