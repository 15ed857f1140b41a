package mapper

import "github.com/prometheus/client_golang/prometheus"

// coreMetrics are the SDK's own series (the sinks' are in package fanout).
// Labels stay low-cardinality: no property names.
type coreMetrics struct {
	reads         *prometheus.CounterVec
	readSeconds   prometheus.Histogram
	writes        *prometheus.CounterVec
	skippedTicks  prometheus.Counter
	devices       *prometheus.GaugeVec
	registrations *prometheus.CounterVec
	registered    prometheus.Gauge
	stateReports  *prometheus.CounterVec
}

func newCoreMetrics(reg prometheus.Registerer) *coreMetrics {
	m := &coreMetrics{
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_mapper_reads_total", Help: "Property reads, by result (ok or error).",
		}, []string{"result"}),
		readSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "verge_mapper_read_duration_seconds", Help: "Time one property read takes.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_mapper_writes_total", Help: "Property writes, by source (desired or rest) and result.",
		}, []string{"source", "result"}),
		skippedTicks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verge_mapper_skipped_samples_total", Help: "Sampling ticks skipped because the previous read overran its cycle.",
		}),
		devices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "verge_mapper_devices", Help: "Devices served, by state.",
		}, []string{"state"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_mapper_dmi_registrations_total", Help: "MapperRegister calls to the edge, by result.",
		}, []string{"result"}),
		registered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "verge_mapper_dmi_registered", Help: "1 while the mapper is registered with a reachable edge.",
		}),
		stateReports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_mapper_state_reports_total", Help: "ReportDeviceStates calls to the edge, by result.",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.reads, m.readSeconds, m.writes, m.skippedTicks, m.devices, m.registrations, m.registered, m.stateReports)
	}
	return m
}
