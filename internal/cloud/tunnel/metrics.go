package tunnel

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	nodes prometheus.Gauge
	open  prometheus.Gauge
	dials *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, _ *Service) *metrics {
	m := &metrics{
		nodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "verge_tunnel_connected_nodes",
			Help: "Nodes with a tunnel control stream to this replica.",
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "verge_tunnel_open",
			Help: "Tunnelled connections open to nodes.",
		}),
		dials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_tunnel_dials_total",
			Help: "Tunnels asked of nodes, by result (ok, not_connected, limit, refused, disconnected, timeout; relayed and relay_failed for nodes connected to another replica, counted after their not_connected).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.nodes, m.open, m.dials)
	}
	return m
}
