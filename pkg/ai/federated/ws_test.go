package federated

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/verge-edge/verge/pkg/ai/tensor"
)

// startAggregator serves an aggregator on loopback; the returned function
// waits for Serve and returns its result.
func startAggregator(t *testing.T, cfg AggregatorConfig) (string, *Aggregator, func() (*RoundResult, error)) {
	t.Helper()
	if cfg.FinishGrace == 0 {
		cfg.FinishGrace = 2 * time.Second
	}
	a, err := NewAggregator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	type out struct {
		r   *RoundResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := a.Serve(ctx, ln)
		done <- out{r, err}
	}()
	var once sync.Once
	var res out
	wait := func() (*RoundResult, error) {
		once.Do(func() { res = <-done; cancel() })
		return res.r, res.err
	}
	t.Cleanup(func() { cancel(); _, _ = wait() })
	return "ws://" + ln.Addr().String() + "/FedAvg", a, wait
}

// trainer is a client whose local "training" moves every weight towards
// its target value; it records the aggregates it received.
type trainer struct {
	id      string
	target  float32
	samples int
	binary  bool
	failAt  int // Train fails at this round (0: never)

	mu      sync.Mutex
	rounds  []int
	globals []tensor.Weights
}

func (tr *trainer) run(ctx context.Context, url string) (*RoundResult, error) {
	c, err := NewClient(ClientConfig{
		URL: url, ClientID: tr.id, JobName: "job", Binary: tr.binary,
		ReconnectMin: 20 * time.Millisecond, GiveUpAfter: 2 * time.Second,
		Train: func(ctx context.Context, r TrainRound) (Update, error) {
			if tr.failAt != 0 && r.Round >= tr.failAt {
				return Update{}, errors.New("disk full")
			}
			tr.mu.Lock()
			tr.rounds = append(tr.rounds, r.Round)
			tr.globals = append(tr.globals, r.Global)
			tr.mu.Unlock()
			return Update{NumSamples: tr.samples, Weights: tensor.Weights{
				{Shape: []int{2}, Data: []float32{tr.target, tr.target}},
				{Shape: []int{}, Data: []float32{float32(r.Round)}},
			}, Metrics: map[string]float64{"accuracy": float64(r.Round) / 10}}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	return c.Run(ctx)
}

func runTrainers(ctx context.Context, url string, trs ...*trainer) []error {
	errs := make([]error, len(trs))
	var wg sync.WaitGroup
	for i, tr := range trs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = tr.run(ctx, url)
		}()
	}
	wg.Wait()
	return errs
}

func TestFederatedJobOverWebSocket(t *testing.T) {
	reg := prometheus.NewRegistry()
	var rounds []RoundClosed
	url, agg, wait := startAggregator(t, AggregatorConfig{
		Rounds:     RoundConfig{Participants: 3, Stop: StopCondition{Rounds: 3}},
		Registerer: reg,
		OnRound:    func(rc RoundClosed) { rounds = append(rounds, rc) },
	})
	// 100 samples at 1, 100 at 2 (binary frames), 200 at 4:
	// (100 + 200 + 800)/400 = 2.75.
	trs := []*trainer{{id: "a", target: 1, samples: 100}, {id: "b", target: 2, samples: 100, binary: true}, {id: "c", target: 4, samples: 200}}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i, err := range runTrainers(ctx, url, trs...) {
		if err != nil {
			t.Fatalf("trainer %s: %v", trs[i].id, err)
		}
	}
	final, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if final.Round != 3 || !final.Exit || final.TotalSamples != 400 {
		t.Fatalf("final %+v", final)
	}
	if got := final.Weights[0].Data; got[0] != 2.75 || got[1] != 2.75 || final.Weights[1].Data[0] != 3 {
		t.Fatalf("final weights %v", final.Weights)
	}
	if len(rounds) != 3 || rounds[2].Result != final {
		t.Fatalf("OnRound saw %d rounds", len(rounds))
	}
	for _, tr := range trs {
		if fmt.Sprint(tr.rounds) != "[1 2 3]" {
			t.Fatalf("trainer %s trained rounds %v", tr.id, tr.rounds)
		}
		if tr.globals[0] != nil || tr.globals[1][0].Data[0] != 2.75 {
			t.Fatalf("trainer %s started from %v", tr.id, tr.globals)
		}
	}
	if s := agg.Status(); s.Round != 3 || !s.Finished {
		t.Fatalf("status %+v", s)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "verge_fl_rounds_total" && mf.GetMetric()[0].GetCounter().GetValue() != 3 {
			t.Fatalf("rounds metric %v", mf)
		}
	}
}

func TestSlowestClientNeverAnswers(t *testing.T) {
	var rounds []RoundClosed
	url, _, wait := startAggregator(t, AggregatorConfig{
		Rounds:      RoundConfig{Participants: 3, MinClients: 2, RoundTimeout: 200 * time.Millisecond, Stop: StopCondition{Rounds: 2}},
		OnRound:     func(rc RoundClosed) { rounds = append(rounds, rc) },
		FinishGrace: 300 * time.Millisecond,
	})
	// The slow client subscribes like Sedna's and then never reports.
	silent, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = silent.Close() }()
	if err := silent.WriteJSON(map[string]string{"type": "subscribe", "client_id": "slow"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	for _, err := range runTrainers(ctx, url, &trainer{id: "a", target: 1, samples: 1}, &trainer{id: "b", target: 3, samples: 1}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	final, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("two rounds took %v with a 200ms round timeout", took)
	}
	if final.Round != 2 || final.Weights[0].Data[0] != 2 || fmt.Sprint(final.Participants) != "[a b]" {
		t.Fatalf("final %+v", final)
	}
	for _, rc := range rounds {
		if fmt.Sprint(rc.Dropped) != "[slow]" {
			t.Fatalf("round %d dropped %v, want the silent client", rc.Result.Round, rc.Dropped)
		}
	}
	// The silent client, connected throughout, got every aggregate too
	// (after its subscribe acknowledgement), the last one with exit "ok".
	var flags []string
	for len(flags) < 2 {
		_ = silent.SetReadDeadline(time.Now().Add(2 * time.Second))
		var m map[string]any
		if err := silent.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if m["type"] == TypeRecvWeight {
			flags = append(flags, m["data"].(map[string]any)["exit_flag"].(string))
		}
	}
	if fmt.Sprint(flags) != "[continue ok]" {
		t.Fatalf("exit flags %v", flags)
	}
}

func TestClientLeavingMidJobDoesNotStopIt(t *testing.T) {
	url, _, wait := startAggregator(t, AggregatorConfig{
		Rounds:      RoundConfig{Participants: 3, MinClients: 2, RoundTimeout: 200 * time.Millisecond, Stop: StopCondition{Rounds: 4}},
		FinishGrace: 300 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	quitter := &trainer{id: "q", target: 9, samples: 1, failAt: 2}
	errs := runTrainers(ctx, url, &trainer{id: "a", target: 1, samples: 1}, &trainer{id: "b", target: 3, samples: 1}, quitter)
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if errs[2] == nil || !strings.Contains(errs[2].Error(), "disk full") {
		t.Fatalf("the quitting trainer: %v", errs[2])
	}
	final, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if final.Round != 4 || final.Weights[0].Data[0] != 2 {
		t.Fatalf("final %+v", final)
	}
}

func TestRoundWaitsForMinimumClients(t *testing.T) {
	url, agg, wait := startAggregator(t, AggregatorConfig{
		Rounds: RoundConfig{Participants: 3, MinClients: 2, RoundTimeout: 100 * time.Millisecond, Stop: StopCondition{Rounds: 1}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := (&trainer{id: "a", target: 1, samples: 1}).run(ctx, url)
		first <- err
	}()
	// Several round timeouts pass with one update: the round stays open.
	time.Sleep(600 * time.Millisecond)
	if s := agg.Status(); s.Round != 0 || s.Finished || fmt.Sprint(s.Clients) != "[a]" {
		t.Fatalf("status with one client: %+v", s)
	}
	if _, err := (&trainer{id: "b", target: 3, samples: 1}).run(ctx, url); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	final, err := wait()
	if err != nil || final.Round != 1 || final.Weights[0].Data[0] != 2 {
		t.Fatalf("final %+v %v", final, err)
	}
}

// TestSednaClientWire speaks exactly what Sedna's Python client sends and
// checks what it reads.
func TestSednaClientWire(t *testing.T) {
	url, _, wait := startAggregator(t, AggregatorConfig{Rounds: RoundConfig{Participants: 1, Stop: StopCondition{Rounds: 1}}})
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type": "subscribe", "client_id": "edge-0"}`)); err != nil {
		t.Fatal(err)
	}
	var ack map[string]any
	if err := ws.ReadJSON(&ack); err != nil || ack["type"] != "subscribe" || ack["client_id"] != "edge-0" || ack["verge"] != nil {
		t.Fatalf("ack %v %v", ack, err)
	}
	update := `{"type": "update_weight", "client": "edge-0", "data": {"num_samples": 12, "weights": [[[0.5, 1.5], [2.0, 3.0]], [0.25]]}, "job_name": "fl-job"}`
	if err := ws.WriteMessage(websocket.TextMessage, []byte(update)); err != nil {
		t.Fatal(err)
	}
	kind, raw, err := ws.ReadMessage()
	if err != nil || kind != websocket.TextMessage {
		t.Fatalf("reading the aggregate: %v (frame kind %d)", err, kind)
	}
	var res struct {
		Type        string `json:"type"`
		RoundNumber int    `json:"round_number"`
		Data        struct {
			TotalSample int               `json:"total_sample"`
			RoundNumber int               `json:"round_number"`
			Weights     []json.RawMessage `json:"weights"`
			ExitFlag    string            `json:"exit_flag"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.Type != "recv_weight" || res.RoundNumber != 1 || res.Data.RoundNumber != 1 || res.Data.TotalSample != 12 || res.Data.ExitFlag != "ok" {
		t.Fatalf("aggregate %s", raw)
	}
	if len(res.Data.Weights) != 2 || string(res.Data.Weights[0]) != "[[0.5,1.5],[2,3]]" || string(res.Data.Weights[1]) != "[0.25]" {
		t.Fatalf("weights %s", raw)
	}
	if _, err := wait(); err != nil {
		t.Fatal(err)
	}
}

func TestAggregatorRefusesClientWithoutSubscribe(t *testing.T) {
	url, agg, _ := startAggregator(t, AggregatorConfig{Rounds: RoundConfig{Participants: 1, Stop: StopCondition{Rounds: 1}}})
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type": "update_weight", "data": {"num_samples": 1, "weights": [[1]]}}`))
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "subscribe") {
		t.Fatalf("read after an update without subscribe: %v", err)
	}
	if s := agg.Status(); s.Round != 0 || len(s.Clients) != 0 {
		t.Fatalf("status %+v", s)
	}
}
