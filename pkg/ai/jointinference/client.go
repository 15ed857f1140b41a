package jointinference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/verge-edge/verge/pkg/ai/hem"
)

// DefaultBudget is the default latency budget of one Infer call: edge
// model plus cloud call. Upstream Sedna blocks for at least 12 s per hard
// sample when the cloud is down (5 attempts, 3 s apart, and no request
// timeout at all).
const DefaultBudget = 200 * time.Millisecond

// EdgeFunc runs the edge model on one sample. It returns the model's answer
// and the view of it the hard-example filter judges (class probabilities
// or boxes).
type EdgeFunc[In, Out any] func(ctx context.Context, in In) (Out, hem.Result, error)

// Config configures a Client. Edge, Filter and CloudURL are required.
type Config[In, Out any] struct {
	Edge   EdgeFunc[In, Out]
	Filter hem.Filter
	// CloudURL is the cloud worker's service endpoint without /predict:
	// http://{BIG_MODEL_IP}:{BIG_MODEL_PORT}/{SERVICE_NAME}
	// (workerenv.JointInferenceEdge.CloudURL).
	CloudURL string
	// Callback, if set, is sent as Sedna's "callback" field.
	Callback string
	// DecodeCloud turns the cloud's "result" into Out. Default:
	// json.Unmarshal into a new Out.
	DecodeCloud func(result json.RawMessage) (Out, error)
	// HTTPClient sends cloud requests. Default: a client with its own
	// keep-alive pool and no timeout of its own (every call carries a
	// deadline).
	HTTPClient *http.Client

	// Budget bounds one Infer call end to end (default DefaultBudget):
	// the cloud call gets what the edge model left of it, less a twentieth
	// of the budget kept for giving up on the cloud and answering (timers
	// fire late on a busy node).
	Budget time.Duration
	// CloudTimeout caps one cloud call below the budget's remainder
	// (default: no cap besides the budget).
	CloudTimeout time.Duration
	// MinCloudTime: with less of the budget left, no cloud call is started
	// (default 5 ms).
	MinCloudTime time.Duration
	// MaxResponseBytes bounds a cloud response (default 16 MiB).
	MaxResponseBytes int64
	// Breaker guards the cloud calls.
	Breaker BreakerConfig

	// Clock drives the budget and the breaker (default: real time).
	Clock clock.Clock
	// Logger receives breaker transitions (default: discard).
	Logger *slog.Logger
	// Registerer, if set, gets the counters as Prometheus metrics
	// (verge_ji_*).
	Registerer prometheus.Registerer
}

// Outcome is the answer for one sample. Final is what the worker should
// use: the cloud's result when the sample was hard and the cloud answered
// in time, else the edge's. The layout follows Sedna's
// [is_hard_example, final_result, edge_result, cloud_result].
type Outcome[Out any] struct {
	Hard  bool
	Final Out
	Edge  Out
	// Cloud is valid when FromCloud is true.
	Cloud     Out
	FromCloud bool
	// Fallback says why a hard example was answered by the edge.
	Fallback FallbackReason
	// CloudErr is the cloud call's error, for fallbacks that made one.
	CloudErr error
	// MiningErr is the filter's complaint about the edge result, if any
	// (the sample then stays on the edge).
	MiningErr error
	// Elapsed is the time Infer took.
	Elapsed time.Duration
}

// Client is a joint-inference edge worker's engine: edge model, filter,
// cloud call within the budget, breaker, counters. Safe for concurrent
// use.
type Client[In, Out any] struct {
	cfg      Config[In, Out]
	endpoint string
	http     *http.Client
	counters counters

	mu      sync.Mutex
	breaker *Breaker
}

// NewClient checks the configuration and fills defaults.
func NewClient[In, Out any](cfg Config[In, Out]) (*Client[In, Out], error) {
	var errs []error
	if cfg.Edge == nil {
		errs = append(errs, errors.New("the edge model is required (Edge)"))
	}
	if cfg.Filter == nil {
		errs = append(errs, errors.New("a hard-example filter is required (Filter: hem.New(HEM_NAME, HEM_PARAMETERS), or hem.EdgeOnlyFilter{} to never call the cloud)"))
	}
	u, err := url.Parse(cfg.CloudURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("the cloud URL %q (CloudURL) must be an http(s) URL such as http://ji-cloud.default:5000/ji (BIG_MODEL_IP, BIG_MODEL_PORT, SERVICE_NAME)", cfg.CloudURL))
	}
	if cfg.Budget == 0 {
		cfg.Budget = DefaultBudget
	}
	if cfg.MinCloudTime == 0 {
		cfg.MinCloudTime = 5 * time.Millisecond
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = 16 << 20
	}
	if cfg.Budget < 0 || cfg.CloudTimeout < 0 || cfg.MinCloudTime < 0 || cfg.MaxResponseBytes < 0 {
		errs = append(errs, errors.New("the budget, cloud timeout, minimum cloud time and response size limit must not be negative"))
	}
	b, err := NewBreaker(cfg.Breaker)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("joint inference client: %w", errors.Join(errs...))
	}
	if cfg.DecodeCloud == nil {
		cfg.DecodeCloud = func(raw json.RawMessage) (Out, error) {
			var out Out
			err := json.Unmarshal(raw, &out)
			return out, err
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		tr.DialContext = (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		hc = &http.Client{Transport: tr}
	}
	c := &Client[In, Out]{
		cfg:      cfg,
		endpoint: strings.TrimSuffix(cfg.CloudURL, "/") + "/predict",
		http:     hc,
		breaker:  b,
	}
	if cfg.Registerer != nil {
		if err := registerAll(cfg.Registerer, c.counters.collectors(c.BreakerState)...); err != nil {
			return nil, fmt.Errorf("joint inference client: %w", err)
		}
	}
	return c, nil
}

// Stats returns the counters.
func (c *Client[In, Out]) Stats() Stats { return c.counters.snapshot() }

// BreakerState is the cloud breaker's state now.
func (c *Client[In, Out]) BreakerState() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.breaker.State(c.cfg.Clock.Now())
}

// Infer answers one sample: the edge model first, then, for a hard example,
// the cloud within what is left of the budget. It fails only when the edge
// model does; every cloud problem ends in the edge's answer, with the
// reason in Outcome.Fallback.
func (c *Client[In, Out]) Infer(ctx context.Context, in In) (o Outcome[Out], _ error) {
	start := c.cfg.Clock.Now()
	deadline := start.Add(c.cfg.Budget)
	// Named result: the deferred assignment reaches the caller.
	defer func() { o.Elapsed = c.cfg.Clock.Since(start) }()

	edgeCtx, cancel := context.WithDeadline(ctx, deadline)
	edge, mined, err := c.cfg.Edge(edgeCtx, in)
	cancel()
	if err != nil {
		c.counters.edgeErrors.Add(1)
		return o, fmt.Errorf("edge model: %w", err)
	}
	c.counters.inferences.Add(1)
	o.Edge, o.Final = edge, edge

	hard, err := c.cfg.Filter.IsHard(mined)
	if err != nil {
		c.counters.miningErrors.Add(1)
		o.MiningErr = err
		return o, nil
	}
	if !hard {
		return o, nil
	}
	o.Hard = true
	c.counters.hard.Add(1)

	fallback := func(r FallbackReason, err error) (Outcome[Out], error) {
		o.Fallback, o.CloudErr = r, err
		c.counters.fallback(r)
		return o, nil
	}

	now := c.cfg.Clock.Now()
	left := deadline.Sub(now) - c.cfg.Budget/20
	if c.cfg.CloudTimeout > 0 && c.cfg.CloudTimeout < left {
		left = c.cfg.CloudTimeout
	}
	if left < c.cfg.MinCloudTime {
		return fallback(FallbackBudget, nil)
	}
	c.mu.Lock()
	permit, ok := c.breaker.Allow(now)
	c.mu.Unlock()
	if !ok {
		return fallback(FallbackBreakerOpen, nil)
	}

	c.counters.cloudCalls.Add(1)
	callCtx, cancel := context.WithTimeout(ctx, left)
	cloud, err := c.callCloud(callCtx, in)
	timedOut := callCtx.Err() != nil
	cancel()

	var reason FallbackReason
	verdict := true // whether the outcome says anything about the cloud
	switch {
	case err == nil:
	case ctx.Err() != nil:
		reason, verdict = FallbackCanceled, false
	case timedOut:
		reason = FallbackTimeout
	default:
		reason = FallbackCloudError
		var se *statusError
		if errors.As(err, &se) && se.clientSide() {
			// The cloud is up and refused this input: no reason to stop
			// calling it.
			verdict = false
		}
	}
	c.mu.Lock()
	var changed bool
	if verdict {
		changed = c.breaker.Record(c.cfg.Clock.Now(), permit, err == nil)
	} else {
		c.breaker.Release(permit)
	}
	state := c.breaker.State(c.cfg.Clock.Now())
	c.mu.Unlock()
	if changed {
		c.cfg.Logger.Warn("cloud circuit breaker changed state", "state", state.String(), "endpoint", c.endpoint, "error", err)
	}

	if err != nil {
		if reason != FallbackCanceled {
			c.counters.cloudFailures.Add(1)
		}
		return fallback(reason, err)
	}
	c.counters.cloudAnswers.Add(1)
	o.Cloud, o.Final, o.FromCloud = cloud, cloud, true
	return o, nil
}

// statusError is a non-200 answer from the cloud.
type statusError struct {
	code   int
	detail string
}

func (e *statusError) Error() string {
	if e.detail == "" {
		return fmt.Sprintf("cloud answered HTTP %d", e.code)
	}
	return fmt.Sprintf("cloud answered HTTP %d: %s", e.code, e.detail)
}

// clientSide: the cloud judged the request, not its own health.
func (e *statusError) clientSide() bool {
	return e.code >= 400 && e.code < 500 && e.code != http.StatusRequestTimeout && e.code != http.StatusTooManyRequests
}

func (c *Client[In, Out]) callCloud(ctx context.Context, in In) (Out, error) {
	var zero Out
	body := map[string]any{"data": in}
	if c.cfg.Callback != "" {
		body["callback"] = c.cfg.Callback
	}
	b, err := json.Marshal(body)
	if err != nil {
		return zero, fmt.Errorf("encoding the sample for the cloud: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(b))
	if err != nil {
		return zero, fmt.Errorf("building the cloud request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return zero, fmt.Errorf("calling the cloud model at %s: %w", c.endpoint, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return zero, fmt.Errorf("reading the cloud's answer: %w", err)
	}
	if int64(len(raw)) > c.cfg.MaxResponseBytes {
		return zero, fmt.Errorf("the cloud's answer exceeds %d bytes", c.cfg.MaxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		var d struct {
			Detail json.RawMessage `json:"detail"`
		}
		_ = json.Unmarshal(raw, &d)
		return zero, &statusError{code: resp.StatusCode, detail: strings.Trim(string(d.Detail), `"`)}
	}
	var envelope struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(raw, &envelope); err != nil || envelope.Result == nil {
		return zero, fmt.Errorf("the cloud's answer is not {\"result\": …}: %s", truncate(raw))
	}
	out, err := c.cfg.DecodeCloud(envelope.Result)
	if err != nil {
		return zero, fmt.Errorf("decoding the cloud's result: %w", err)
	}
	return out, nil
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
