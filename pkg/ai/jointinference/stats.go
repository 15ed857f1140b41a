package jointinference

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// FallbackReason says why a hard example was answered by the edge model.
type FallbackReason string

// Reasons for answering a hard example from the edge.
const (
	// FallbackNone: not a fallback (not hard, or the cloud answered).
	FallbackNone FallbackReason = ""
	// FallbackBreakerOpen: recent cloud calls failed; none was attempted.
	FallbackBreakerOpen FallbackReason = "breaker_open"
	// FallbackBudget: the edge model used up the latency budget.
	FallbackBudget FallbackReason = "budget_exhausted"
	// FallbackTimeout: the cloud did not answer within the deadline.
	FallbackTimeout FallbackReason = "timeout"
	// FallbackCloudError: the cloud answered with an error, or could not
	// be reached.
	FallbackCloudError FallbackReason = "cloud_error"
	// FallbackCanceled: the caller's context ended during the cloud call.
	FallbackCanceled FallbackReason = "canceled"
)

var fallbackReasons = [...]FallbackReason{FallbackBreakerOpen, FallbackBudget, FallbackTimeout, FallbackCloudError, FallbackCanceled}

// Stats are a client's counters since it was created.
type Stats struct {
	// Inferences is the number of samples the edge model answered.
	Inferences uint64
	// HardExamples is how many of them the filter flagged.
	HardExamples uint64
	// CloudCalls is the number of requests sent to the cloud.
	CloudCalls uint64
	// CloudAnswers is how many of them returned a result in time.
	CloudAnswers uint64
	// CloudFailures is CloudCalls − CloudAnswers, less calls the caller
	// canceled.
	CloudFailures uint64
	// Fallbacks counts hard examples answered by the edge, by reason.
	Fallbacks map[FallbackReason]uint64
	// MiningErrors counts edge results the filter could not judge (kept
	// on the edge, as Sedna does).
	MiningErrors uint64
	// EdgeErrors counts samples the edge model failed on.
	EdgeErrors uint64
}

// UploadCloudRatio is Sedna's uploadCloudRatio: hard examples over
// inferences (0 before the first inference).
func (s Stats) UploadCloudRatio() float64 {
	if s.Inferences == 0 {
		return 0
	}
	return float64(s.HardExamples) / float64(s.Inferences)
}

// FallbackTotal sums Fallbacks.
func (s Stats) FallbackTotal() uint64 {
	var n uint64
	for _, v := range s.Fallbacks {
		n += v
	}
	return n
}

type counters struct {
	inferences, hard, cloudCalls, cloudAnswers, cloudFailures, miningErrors, edgeErrors atomic.Uint64
	fallbacks                                                                           [len(fallbackReasons)]atomic.Uint64
}

func (c *counters) fallback(r FallbackReason) {
	for i, x := range fallbackReasons {
		if x == r {
			c.fallbacks[i].Add(1)
		}
	}
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Inferences:    c.inferences.Load(),
		HardExamples:  c.hard.Load(),
		CloudCalls:    c.cloudCalls.Load(),
		CloudAnswers:  c.cloudAnswers.Load(),
		CloudFailures: c.cloudFailures.Load(),
		MiningErrors:  c.miningErrors.Load(),
		EdgeErrors:    c.edgeErrors.Load(),
		Fallbacks:     make(map[FallbackReason]uint64, len(fallbackReasons)),
	}
	for i, r := range fallbackReasons {
		s.Fallbacks[r] = c.fallbacks[i].Load()
	}
	return s
}

// collectors exposes the counters to Prometheus; they read the same atomics
// Stats does, so the two never disagree.
func (c *counters) collectors(state func() State) []prometheus.Collector {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	cs := []prometheus.Collector{
		counter("verge_ji_inferences_total", "Samples the edge model answered.", &c.inferences),
		counter("verge_ji_hard_examples_total", "Samples the hard-example filter sent towards the cloud.", &c.hard),
		counter("verge_ji_cloud_calls_total", "Requests sent to the cloud model.", &c.cloudCalls),
		counter("verge_ji_cloud_answers_total", "Cloud requests answered in time.", &c.cloudAnswers),
		counter("verge_ji_cloud_failures_total", "Cloud requests that failed or timed out.", &c.cloudFailures),
		counter("verge_ji_mining_errors_total", "Edge results the hard-example filter could not judge.", &c.miningErrors),
		counter("verge_ji_edge_errors_total", "Samples the edge model failed on.", &c.edgeErrors),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "verge_ji_upload_cloud_ratio", Help: "Hard examples over inferences (Sedna's uploadCloudRatio).",
		}, func() float64 { return c.snapshot().UploadCloudRatio() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "verge_ji_cloud_breaker_state", Help: "Circuit breaker towards the cloud: 0 closed, 1 half-open, 2 open.",
		}, func() float64 { return float64(state()) }),
	}
	for i, r := range fallbackReasons {
		v := &c.fallbacks[i]
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "verge_ji_fallbacks_total", Help: "Hard examples answered by the edge model, by reason.",
			ConstLabels: prometheus.Labels{"reason": string(r)},
		}, func() float64 { return float64(v.Load()) }))
	}
	return cs
}
