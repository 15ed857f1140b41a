package jointinference

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/verge-edge/verge/pkg/ai/hem"
)

// Samples are class-probability vectors; the edge model answers "edge" and
// lets CrossEntropy(0.5) judge the vector: [0.5 0.5] is hard, [1 0] easy.
var (
	hardSample = []float64{0.5, 0.5}
	easySample = []float64{1, 0}
)

func edgeModel(_ context.Context, in []float64) (string, hem.Result, error) {
	return "edge", hem.Result{Probabilities: in}, nil
}

// cloud is a real loopback cloud worker whose behaviour a test switches.
type cloud struct {
	url   string
	calls atomic.Int64
	mode  atomic.Value // "ok", "fail", "slow", "reject"
}

func startCloud(t *testing.T) *cloud {
	t.Helper()
	c := &cloud{}
	c.mode.Store("ok")
	s, err := NewServer(ServerConfig{ServiceName: "ji", Predict: func(ctx context.Context, r PredictRequest) (any, error) {
		c.calls.Add(1)
		switch c.mode.Load().(string) {
		case "fail":
			return nil, errors.New("model crashed")
		case "reject":
			return nil, ErrBadInput
		case "slow":
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
			return nil, ctx.Err()
		}
		return "cloud", nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	c.url = ts.URL + "/ji"
	return c
}

func newClient(t *testing.T, url string, mod func(*Config[[]float64, string])) *Client[[]float64, string] {
	t.Helper()
	f, err := hem.NewCrossEntropy(0.5)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config[[]float64, string]{Edge: edgeModel, Filter: f, CloudURL: url}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func infer(t *testing.T, c *Client[[]float64, string], in []float64) Outcome[string] {
	t.Helper()
	o, err := c.Infer(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestEasyAndHardExamples(t *testing.T) {
	cl := startCloud(t)
	reg := prometheus.NewRegistry()
	c := newClient(t, cl.url, func(cfg *Config[[]float64, string]) { cfg.Registerer = reg })

	o := infer(t, c, easySample)
	if o.Hard || o.Final != "edge" || cl.calls.Load() != 0 {
		t.Fatalf("easy sample: %+v, cloud calls %d", o, cl.calls.Load())
	}
	o = infer(t, c, hardSample)
	if !o.Hard || !o.FromCloud || o.Final != "cloud" || o.Edge != "edge" || o.Cloud != "cloud" || o.Fallback != FallbackNone {
		t.Fatalf("hard sample: %+v", o)
	}
	// A vector the filter cannot judge stays on the edge, counted.
	o = infer(t, c, []float64{0.2, 0.2})
	if o.Hard || o.MiningErr == nil || o.Final != "edge" {
		t.Fatalf("invalid probabilities: %+v", o)
	}

	s := c.Stats()
	if s.Inferences != 3 || s.HardExamples != 1 || s.CloudCalls != 1 || s.CloudAnswers != 1 || s.MiningErrors != 1 || s.FallbackTotal() != 0 {
		t.Fatalf("stats %+v", s)
	}
	if r := s.UploadCloudRatio(); r != 1.0/3 {
		t.Fatalf("upload cloud ratio %v", r)
	}
	if got := gather(t, reg, "verge_ji_hard_examples_total", ""); got != 1 {
		t.Fatalf("verge_ji_hard_examples_total = %v", got)
	}
}

func TestCloudDownFallsBackWithinBudget(t *testing.T) {
	// A port nothing listens on: connections are refused at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/ji"
	ln.Close()

	reg := prometheus.NewRegistry()
	c := newClient(t, url, func(cfg *Config[[]float64, string]) {
		cfg.Breaker = BreakerConfig{FailureThreshold: 3, OpenDuration: time.Hour}
		cfg.Registerer = reg
	})
	for i := range 10 {
		start := time.Now()
		o := infer(t, c, hardSample)
		// The budget plus scheduling slack on a loaded machine.
		if took := time.Since(start); took > DefaultBudget+100*time.Millisecond {
			t.Fatalf("sample %d took %v with the cloud down; budget %v", i, took, DefaultBudget)
		}
		if !o.Hard || o.FromCloud || o.Final != "edge" {
			t.Fatalf("sample %d: %+v", i, o)
		}
		want := FallbackCloudError
		if i >= 3 {
			want = FallbackBreakerOpen
		}
		if o.Fallback != want {
			t.Fatalf("sample %d: fallback %q, want %q (err %v)", i, o.Fallback, want, o.CloudErr)
		}
	}
	s := c.Stats()
	if s.CloudCalls != 3 || s.CloudFailures != 3 || s.Fallbacks[FallbackCloudError] != 3 || s.Fallbacks[FallbackBreakerOpen] != 7 {
		t.Fatalf("stats %+v", s)
	}
	if c.BreakerState() != Open || gather(t, reg, "verge_ji_cloud_breaker_state", "") != 2 {
		t.Fatalf("breaker %v", c.BreakerState())
	}
	if got := gather(t, reg, "verge_ji_fallbacks_total", "breaker_open"); got != 7 {
		t.Fatalf("verge_ji_fallbacks_total{reason=breaker_open} = %v", got)
	}
}

func TestSlowCloudTimesOutWithinBudget(t *testing.T) {
	cl := startCloud(t)
	cl.mode.Store("slow")
	c := newClient(t, cl.url, func(cfg *Config[[]float64, string]) { cfg.Budget = 150 * time.Millisecond })
	start := time.Now()
	o := infer(t, c, hardSample)
	took := time.Since(start)
	if o.Fallback != FallbackTimeout || o.Final != "edge" || o.CloudErr == nil {
		t.Fatalf("slow cloud: %+v", o)
	}
	if took < 140*time.Millisecond || took > time.Second {
		t.Fatalf("took %v; want about the 150ms budget (the cloud would take 5s)", took)
	}
	if o.Elapsed < 140*time.Millisecond || o.Elapsed > took {
		t.Errorf("Outcome.Elapsed = %v; Infer took %v", o.Elapsed, took)
	}
	if s := c.Stats(); s.CloudFailures != 1 || s.Fallbacks[FallbackTimeout] != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSlowEdgeLeavesNoBudget(t *testing.T) {
	cl := startCloud(t)
	c := newClient(t, cl.url, func(cfg *Config[[]float64, string]) {
		cfg.Budget = 50 * time.Millisecond
		cfg.Edge = func(ctx context.Context, in []float64) (string, hem.Result, error) {
			time.Sleep(48 * time.Millisecond)
			return "edge", hem.Result{Probabilities: in}, nil
		}
	})
	o := infer(t, c, hardSample)
	if o.Fallback != FallbackBudget || cl.calls.Load() != 0 {
		t.Fatalf("outcome %+v, cloud calls %d", o, cl.calls.Load())
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	cl := startCloud(t)
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	c := newClient(t, cl.url, func(cfg *Config[[]float64, string]) {
		cfg.Clock = clk
		cfg.Breaker = BreakerConfig{FailureThreshold: 2, OpenDuration: 30 * time.Second}
	})

	cl.mode.Store("fail")
	for range 2 {
		if o := infer(t, c, hardSample); o.Fallback != FallbackCloudError || !strings.Contains(o.CloudErr.Error(), "HTTP 500") {
			t.Fatalf("failing cloud: %+v", o)
		}
	}
	if c.BreakerState() != Open {
		t.Fatalf("breaker %v after two failures", c.BreakerState())
	}
	// The cloud recovers, but the breaker is open: no calls for 30 s.
	cl.mode.Store("ok")
	calls := cl.calls.Load()
	clk.Step(29 * time.Second)
	if o := infer(t, c, hardSample); o.Fallback != FallbackBreakerOpen || cl.calls.Load() != calls {
		t.Fatalf("open breaker: %+v", o)
	}
	// Then one probe goes through, succeeds and closes it.
	clk.Step(time.Second)
	if c.BreakerState() != HalfOpen {
		t.Fatalf("breaker %v after the open period", c.BreakerState())
	}
	if o := infer(t, c, hardSample); !o.FromCloud {
		t.Fatalf("probe: %+v", o)
	}
	if c.BreakerState() != Closed {
		t.Fatalf("breaker %v after a good probe", c.BreakerState())
	}
	if o := infer(t, c, hardSample); !o.FromCloud {
		t.Fatalf("after recovery: %+v", o)
	}
}

func TestCloudRejectionDoesNotOpenBreaker(t *testing.T) {
	cl := startCloud(t)
	cl.mode.Store("reject")
	c := newClient(t, cl.url, func(cfg *Config[[]float64, string]) {
		cfg.Breaker = BreakerConfig{FailureThreshold: 1}
	})
	for range 3 {
		o := infer(t, c, hardSample)
		if o.Fallback != FallbackCloudError || !strings.Contains(o.CloudErr.Error(), "HTTP 422") {
			t.Fatalf("rejected input: %+v", o)
		}
	}
	if c.BreakerState() != Closed || cl.calls.Load() != 3 {
		t.Fatalf("breaker %v, calls %d", c.BreakerState(), cl.calls.Load())
	}
}

func TestCallerCancelDuringCloudCall(t *testing.T) {
	cl := startCloud(t)
	cl.mode.Store("slow")
	c := newClient(t, cl.url, func(cfg *Config[[]float64, string]) {
		cfg.Budget = 5 * time.Second
		cfg.Breaker = BreakerConfig{FailureThreshold: 1}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	o, err := c.Infer(ctx, hardSample)
	if err != nil || o.Fallback != FallbackCanceled || o.Final != "edge" {
		t.Fatalf("canceled: %+v, %v", o, err)
	}
	if c.BreakerState() != Closed || c.Stats().CloudFailures != 0 {
		t.Fatal("the caller's cancellation counted against the cloud")
	}
}

func TestEdgeErrorAndConfig(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1/ji", func(cfg *Config[[]float64, string]) {
		cfg.Edge = func(context.Context, []float64) (string, hem.Result, error) {
			return "", hem.Result{}, errors.New("no camera")
		}
	})
	if _, err := c.Infer(context.Background(), hardSample); err == nil || !strings.Contains(err.Error(), "no camera") {
		t.Fatalf("edge error: %v", err)
	}
	if s := c.Stats(); s.EdgeErrors != 1 || s.Inferences != 0 {
		t.Fatalf("stats %+v", s)
	}
	_, err := NewClient(Config[[]float64, string]{CloudURL: "ji-cloud:5000"})
	if err == nil || !strings.Contains(err.Error(), "Edge") || !strings.Contains(err.Error(), "Filter") || !strings.Contains(err.Error(), "CloudURL") {
		t.Fatalf("config errors: %v", err)
	}
}

func TestNoGoroutineLeakAcrossCalls(t *testing.T) {
	cl := startCloud(t)
	cl.mode.Store("slow")
	before := runtime.NumGoroutine()
	c := newClient(t, cl.url, func(cfg *Config[[]float64, string]) { cfg.Budget = 20 * time.Millisecond })
	for range 20 {
		infer(t, c, hardSample) // each times out and abandons its connection
	}
	cl.mode.Store("ok")
	for range 20 {
		infer(t, c, hardSample)
	}
	c.http.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before the calls", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func gather(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason != "" {
				match := false
				for _, l := range m.GetLabel() {
					match = match || (l.GetName() == "reason" && l.GetValue() == reason)
				}
				if !match {
					continue
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s{reason=%q} not found", name, reason)
	return 0
}
