package hub

import "github.com/prometheus/client_golang/prometheus"

// metrics are what an operator watches on the hub.
type metrics struct {
	connected        prometheus.Gauge
	sessions         *prometheus.CounterVec // by outcome of the session's end
	objectsSent      *prometheus.CounterVec // by op
	objectsAcked     prometheus.Counter
	bytesSent        prometheus.Counter
	resyncObjects    *prometheus.CounterVec // by op: objects sent because of a connect-time difference
	resyncBytes      prometheus.Counter
	deliveryLatency  prometheus.Histogram
	reports          *prometheus.CounterVec // by kind and outcome
	joins            *prometheus.CounterVec // by result
	reportQueueDepth prometheus.Gauge
}

// sessionTotals sums a number over the open sessions, at scrape time.
func (s *Server) sessionTotals(f func(*session) int) float64 {
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	total := 0
	for _, sess := range sessions {
		sess.mu.Lock()
		total += f(sess)
		sess.mu.Unlock()
	}
	return float64(total)
}

func newMetrics(reg prometheus.Registerer, s *Server) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "verge_hub_connected_nodes", Help: "Edge nodes connected to this verge-cloud replica."}),
		sessions:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verge_hub_sessions_total", Help: "Node sessions ended, by reason."}, []string{"reason"}),
		objectsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verge_hub_objects_sent_total",
			Help: "Objects sent to edge nodes, by operation."}, []string{"op"}),
		objectsAcked: prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_hub_objects_acked_total", Help: "Objects edge nodes acknowledged as committed."}),
		bytesSent:    prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_hub_object_bytes_sent_total", Help: "Encoded object bytes sent to edge nodes."}),
		resyncObjects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verge_hub_resync_objects_total",
			Help: "Objects sent because they differed at connect time (the reconnect resync), by operation."}, []string{"op"}),
		resyncBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_hub_resync_bytes_total", Help: "Encoded bytes of resync objects."}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "verge_hub_delivery_seconds",
			Help:    "Time from an object change reaching this replica's informer to the edge acknowledging it committed (connected nodes).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verge_hub_reports_total",
			Help: "Status reports from edge nodes, by kind and outcome."}, []string{"kind", "outcome"}),
		joins:            prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verge_hub_joins_total", Help: "Join and renew requests, by call and result."}, []string{"call", "result"}),
		reportQueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "verge_hub_report_queue_depth", Help: "Reports waiting for a worker to apply them."}),
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.sessions, m.objectsSent, m.objectsAcked, m.bytesSent, m.resyncObjects, m.resyncBytes,
			m.deliveryLatency, m.reports, m.joins, m.reportQueueDepth,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "verge_hub_objects_inflight", Help: "Objects sent and not yet acknowledged, over all sessions."},
				func() float64 { return s.sessionTotals(func(x *session) int { return x.sender.InFlight() }) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "verge_hub_objects_pending", Help: "Objects queued for sending, over all sessions."},
				func() float64 { return s.sessionTotals(func(x *session) int { return x.sender.Pending() }) }),
		)
	}
	return m
}
