package store

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	depth         prometheus.Gauge
	revision      prometheus.Gauge
	evicted       *prometheus.CounterVec
	full          prometheus.Counter
	commitSeconds prometheus.Histogram
	commitErrors  prometheus.Counter
	corrupt       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		depth:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "verge_edge_store_outbox_depth", Help: "Status reports in the outbox waiting for the cloud."}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{Name: "verge_edge_store_revision", Help: "Last committed local revision of the edge store."}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verge_edge_store_outbox_evicted_total",
			Help: "Outbox entries dropped, oldest first, because their kind was at its cap."}, []string{"kind"}),
		full: prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_edge_store_outbox_full_total",
			Help: "Reports refused because the outbox was at its limit."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "verge_edge_store_commit_seconds",
			Help: "Time for one durable write transaction, including the wait for the writer.", Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16)}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_edge_store_commit_errors_total",
			Help: "Write transactions that failed and were rolled back."}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_edge_store_corruption_errors_total",
			Help: "Operations that found the store file damaged."}),
	}
	if reg != nil {
		reg.MustRegister(m.depth, m.revision, m.evicted, m.full, m.commitSeconds, m.commitErrors, m.corrupt)
	}
	return m
}
