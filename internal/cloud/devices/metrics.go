package devices

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	reports   *prometheus.CounterVec
	writes    *prometheus.CounterVec
	writeTime prometheus.Histogram
	latency   prometheus.Histogram
	queue     prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, queueLen func() float64) *metrics {
	m := &metrics{
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_devices_reports_total",
			Help: "Device reports from nodes, by outcome: written (applied to the DeviceStatus), coalesced (the device was written less than the write interval ago; the node sends its newest snapshot when the interval is up), rejected, failed (API error; the node retries).",
		}, []string{"outcome"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_devices_api_writes_total",
			Help: "Writes to the API server by the device controller, by resource (devicestatuses, devices, devices/status) and result.",
		}, []string{"resource", "result"}),
		writeTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "verge_devices_write_seconds",
			Help:    "Duration of one DeviceStatus status write.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "verge_devices_reading_latency_seconds",
			Help:    "From a reading's timestamp (taken by the mapper) to the DeviceStatus write that carries it.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
	}
	m.queue = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "verge_devices_queue_depth",
		Help: "Devices waiting for the device controller to reconcile their status.",
	}, queueLen)
	if reg != nil {
		reg.MustRegister(m.reports, m.writes, m.writeTime, m.latency, m.queue)
	}
	return m
}
