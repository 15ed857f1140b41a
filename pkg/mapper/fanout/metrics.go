package fanout

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the fan-out's Prometheus series, labelled by sink name.
type Metrics struct {
	samples     *prometheus.CounterVec
	writeErrors *prometheus.CounterVec
	queued      *prometheus.GaugeVec
	latency     *prometheus.HistogramVec
}

// NewMetrics registers the series with reg (a nil reg registers nowhere,
// which tests use).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_mapper_sink_samples_total",
			Help: "Samples handed to a sink, by outcome: written, dropped (buffer overflow or shutdown) or failed (retries exhausted).",
		}, []string{"sink", "result"}),
		writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_mapper_sink_write_errors_total",
			Help: "Failed Write calls (each retry counts).",
		}, []string{"sink"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "verge_mapper_sink_queued_samples",
			Help: "Samples waiting in a sink's buffer.",
		}, []string{"sink"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "verge_mapper_sink_latency_seconds",
			Help:    "Time from a sample's timestamp to its successful delivery to a sink.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"sink"}),
	}
	if reg != nil {
		reg.MustRegister(m.samples, m.writeErrors, m.queued, m.latency)
	}
	return m
}

func (m *Metrics) forget(name string) {
	for _, r := range []string{"written", "dropped", "failed"} {
		m.samples.DeleteLabelValues(name, r)
	}
	m.writeErrors.DeleteLabelValues(name)
	m.queued.DeleteLabelValues(name)
	m.latency.DeleteLabelValues(name)
}
