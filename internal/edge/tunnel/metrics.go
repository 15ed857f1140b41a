package tunnel

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connected  prometheus.Gauge
	reconnects prometheus.Counter
	open       prometheus.Gauge
	tunnels    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "verge_edge_tunnel_connected",
			Help: "1 while the tunnel control stream to the cloud is open.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verge_edge_tunnel_reconnects_total",
			Help: "Times the tunnel control stream was lost and reopened.",
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "verge_edge_tunnels_open",
			Help: "Tunnelled connections being served (logs, exec, attach, port-forward).",
		}),
		tunnels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_edge_tunnels_total",
			Help: "Tunnels the cloud asked for, by result (opened, refused, failed).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.reconnects, m.open, m.tunnels)
	}
	return m
}
