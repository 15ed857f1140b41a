package hubclient

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connected      prometheus.Gauge
	reconnects     prometheus.Counter
	objectsApplied prometheus.Counter
	commitSeconds  prometheus.Histogram
	reportsSent    prometheus.Counter
	reportResults  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "verge_edge_cloud_connected", Help: "1 while connected to the cloud."}),
		reconnects:     prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_edge_cloud_reconnects_total", Help: "Times the link to the cloud was lost."}),
		objectsApplied: prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_edge_objects_applied_total", Help: "Objects from the cloud committed to the store."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "verge_edge_commit_seconds", Help: "Time to commit one batch from the cloud.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		reportsSent:   prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_edge_reports_sent_total", Help: "Status reports sent to the cloud (including resends)."}),
		reportResults: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verge_edge_report_results_total", Help: "The cloud's answers to status reports, by outcome."}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.reconnects, m.objectsApplied, m.commitSeconds, m.reportsSent, m.reportResults)
	}
	return m
}
