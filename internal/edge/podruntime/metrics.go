package podruntime

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	syncSeconds       prometheus.Histogram
	syncErrors        *prometheus.CounterVec
	runningPods       prometheus.Gauge
	runningContainers prometheus.Gauge
	restarts          prometheus.Counter
	ghostsRemoved     *prometheus.CounterVec
	imagePulls        *prometheus.CounterVec
	probeFailures     *prometheus.CounterVec
	eventsSuppressed  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		syncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "verge_edge_pod_sync_duration_seconds",
			Help: "Time one pod sync took (CRI calls, pulls, starts and kills included).", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		syncErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verge_edge_pod_sync_errors_total",
			Help: "Pod sync steps that failed, by step."}, []string{"step"}),
		runningPods: prometheus.NewGauge(prometheus.GaugeOpts{Name: "verge_edge_running_pods",
			Help: "Pod sandboxes this node runs (ready)."}),
		runningContainers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "verge_edge_running_containers",
			Help: "Containers this node runs."}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_edge_container_restarts_total",
			Help: "Containers started again after an earlier run of the same container."}),
		ghostsRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verge_edge_ghosts_removed_total",
			Help: "Sandboxes and containers in the CRI runtime that no desired pod owned, removed."}, []string{"kind"}),
		imagePulls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verge_edge_image_pulls_total",
			Help: "Image pulls by result (pulled, failed, present)."}, []string{"result"}),
		probeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verge_edge_probe_failures_total",
			Help: "Failed probe runs by probe kind."}, []string{"probe"}),
		eventsSuppressed: prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_edge_pod_events_suppressed_total",
			Help: "Pod events not sent because an identical one was sent within the last minute (or too many distinct ones were)."}),
	}
	if reg != nil {
		reg.MustRegister(m.syncSeconds, m.syncErrors, m.runningPods, m.runningContainers, m.restarts, m.ghostsRemoved, m.imagePulls, m.probeFailures, m.eventsSuppressed)
	}
	return m
}
