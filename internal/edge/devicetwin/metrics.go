package devicetwin

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

type metrics struct {
	requests      *prometheus.CounterVec
	pushCalls     *prometheus.CounterVec
	readings      prometheus.Counter
	reportsQueued prometheus.Counter
	flushErrors   prometheus.Counter
	flushSeconds  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, s *Service) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_edge_dmi_requests_total",
			Help: "DMI calls from mappers, by method and gRPC code.",
		}, []string{"method", "code"}),
		pushCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_edge_dmi_push_calls_total",
			Help: "DMI calls to mappers keeping their devices and models in step, by call and result.",
		}, []string{"call", "result"}),
		readings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verge_edge_device_readings_total",
			Help: "Property readings received from mappers.",
		}),
		reportsQueued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verge_edge_device_reports_queued_total",
			Help: "Device reports written to the outbox (each replaces the device's unsent one).",
		}),
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verge_edge_device_flush_errors_total",
			Help: "Twin flushes that failed to write the store (retried).",
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "verge_edge_device_flush_seconds",
			Help:    "Duration of one twin flush (store writes of every changed device).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.requests, m.pushCalls, m.readings, m.reportsQueued, m.flushErrors, m.flushSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "verge_edge_dmi_mappers", Help: "Mappers registered on this node."}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.mappers))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "verge_edge_devices", Help: "Devices bound to this node."}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.devices))
		}),
	)
	return m
}

func (m *metrics) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	m.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}
