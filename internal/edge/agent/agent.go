package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/verge-edge/verge/internal/edge/cloudconn"
	"github.com/verge-edge/verge/internal/edge/config"
	"github.com/verge-edge/verge/internal/edge/hubclient"
	"github.com/verge-edge/verge/internal/edge/kubeletapi"
	"github.com/verge-edge/verge/internal/edge/nodestatus"
	"github.com/verge-edge/verge/internal/edge/podruntime"
	"github.com/verge-edge/verge/internal/edge/store"
	"github.com/verge-edge/verge/internal/edge/tunnel"
	"github.com/verge-edge/verge/internal/opsserver"
	"github.com/verge-edge/verge/internal/protocol/objkey"
	"github.com/verge-edge/verge/internal/protocol/wire"
	"github.com/verge-edge/verge/internal/version"
)

// Timings of the node status reporter.
const (
	nodeStatusPeriod  = 10 * time.Second
	nodeStatusRefresh = 5 * time.Minute // as the kubelet's nodeStatusReportFrequency
)

// Agent is a running verge-edge.
type Agent struct {
	cfg     config.Edge
	log     *slog.Logger
	reg     *prometheus.Registry
	store   *store.Store
	creds   *credentials
	cloud   *grpc.ClientConn
	link    *hubclient.Client
	runtime *podruntime.Runtime
	nodes   *nodeReporter
	kubelet *kubeletapi.Handler
	tunnel  *tunnel.Client
	ops     *opsserver.Server
	devices *deviceParts
}

// New opens the store and builds the parts. It fails with a message saying
// what to do when the store is damaged or locked by another verge-edge; it
// does not need the cloud or the container runtime to be reachable.
func New(cfg config.Edge, logger *slog.Logger) (_ *Agent, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "verge_edge_info",
		Help:        "Always 1; the labels say which node and Verge release this is.",
		ConstLabels: prometheus.Labels{"version": version.Version, "node": cfg.NodeName},
	})
	info.Set(1)
	reg.MustRegister(info)

	st, err := store.Open(cfg.StorePath(), store.Options{
		OutboxKindLimits: map[string]int{wire.ReportEvent: maxQueuedEvents},
		Logger:           logger,
		Metrics:          reg,
	})
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: logger, reg: reg, store: st}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	nodeIP := cfg.Runtime.NodeIP
	if nodeIP == "" {
		nodeIP = detectNodeIP(cfg.Cloud.Address)
	}
	rep := &reporter{store: st, node: cfg.NodeName, now: time.Now, log: logger, kick: func() { a.link.Kick() }}
	a.runtime, err = podruntime.New(podruntime.Config{
		NodeName:        cfg.NodeName,
		NodeIP:          nodeIP,
		CRIEndpoint:     cfg.Runtime.CRIEndpoint,
		RootDir:         cfg.DataDir,
		PodLogDir:       cfg.PodLogDir(),
		CgroupParent:    cfg.Runtime.CgroupParent,
		ReconcilePeriod: cfg.Runtime.ReconcilePeriod.Duration,
		Metrics:         reg,
	}, desiredState{store: st, now: time.Now}, rep, logger)
	if err != nil {
		return nil, err
	}
	a.nodes = newNodeReporter(nodeReporter{
		name: cfg.NodeName, version: version.Version,
		host:    nodestatus.LinuxHost{DataDir: cfg.DataDir, InternalIP: nodeIP},
		runtime: a.runtime, out: rep.NodeStatus,
		period: nodeStatusPeriod, refresh: nodeStatusRefresh, now: time.Now, log: logger,
	})
	a.creds = &credentials{dir: cfg.PKIDir(), address: cfg.Cloud.Address, node: cfg.NodeName, log: logger, now: time.Now}
	// One connection to the cloud carries the sync stream and the tunnels.
	a.cloud, err = cloudconn.Dial(cfg.Cloud.Address, a.creds.TLS)
	if err != nil {
		return nil, err
	}
	a.link = hubclient.New(hubclient.Config{
		Conn:         a.cloud,
		Store:        linkStore{st},
		AgentVersion: version.Version,
		Labels:       cfg.Labels,
		// A new session may follow an outage during which the node's
		// status went stale in the API (Ready=Unknown): send it at once.
		OnConnect: a.nodes.Force,
		Applied:   a.applied,
		Logger:    logger,
		Registry:  reg,
	})
	// kubectl logs/exec/attach/port-forward arrive through the cloud over
	// the tunnel and are served here from CRI.
	a.kubelet, err = kubeletapi.New(kubeletapi.Config{Containers: a.runtime, CRIEndpoint: cfg.Runtime.CRIEndpoint, Logger: logger})
	if err != nil {
		return nil, err
	}
	a.tunnel = tunnel.NewClient(tunnel.ClientConfig{
		Conn:     a.cloud,
		Handler:  a.kubelet,
		Logger:   logger,
		Registry: reg,
	})
	a.ops = opsserver.New(opsserver.Options{Address: cfg.OpsAddress, EnablePprof: cfg.EnablePprof, Gatherer: reg, Logger: logger})
	a.ops.AddHealthCheck("store", func(ctx context.Context) error {
		_, err := st.OutboxDepth(ctx)
		return err
	})
	if a.devices, err = newDeviceParts(cfg, st, logger, reg, func() { a.link.Kick() }); err != nil {
		return nil, err
	}
	return a, nil
}

// Ops exposes the ops server (e.g. for its bound address).
func (a *Agent) Ops() *opsserver.Server { return a.ops }

// applied wakes the pod runtime when something it reads changed.
func (a *Agent) applied(keys []string, synced bool) {
	if synced || slices.ContainsFunc(keys, podInput) {
		a.runtime.Trigger()
	}
}

// podInput reports whether the object under key is one pods are made from.
func podInput(key string) bool {
	resource, _, _ := strings.Cut(key, "/")
	switch resource {
	case objkey.Pods, objkey.ConfigMaps, objkey.Secrets, objkey.ServiceAccountTokens:
		return true
	}
	return false
}

// Start runs the agent until ctx ends or a part fails, then closes the
// store. Pods keep running after it returns.
func (a *Agent) Start(ctx context.Context) error {
	defer a.close()
	a.log.Info("verge-edge starting", "version", version.Version, "node", a.cfg.NodeName, "cloud", a.cfg.Cloud.Address,
		"dataDir", a.cfg.DataDir, "cri", a.cfg.Runtime.CRIEndpoint, "ops", a.cfg.OpsAddress)
	a.creds.renewed = func() { a.log.Info("node certificate renewed; the next connection uses it") }
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.ops.Start(gctx) })
	g.Go(func() error { return a.creds.Start(gctx) })
	g.Go(func() error { return a.runtime.Start(gctx) })
	g.Go(func() error { return a.nodes.Start(gctx) })
	g.Go(func() error { return a.link.Start(gctx) })
	g.Go(func() error { return a.devices.Start(gctx) })
	g.Go(func() error { return a.tunnel.Start(gctx) })
	err := g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		a.log.Info("verge-edge stopped; pods keep running")
		return nil
	}
	return err
}

// close releases what New opened: the cloud connection, the kubelet API's
// CRI connection and the store.
func (a *Agent) close() {
	if a.cloud != nil {
		_ = a.cloud.Close()
	}
	if a.kubelet != nil {
		if err := a.kubelet.Close(); err != nil {
			a.log.Warn("closing the CRI connection of the kubelet API failed", "error", err)
		}
	}
	if err := a.store.Close(); err != nil {
		a.log.Error("closing the store failed", "error", err)
	}
}

// detectNodeIP returns the local address this host uses to reach the
// cloud (no packet is sent), or, when the cloud's name cannot be resolved
// (offline at start), the first global unicast address of an interface.
func detectNodeIP(cloud string) string {
	if c, err := net.DialTimeout("udp", cloud, 2*time.Second); err == nil {
		defer func() { _ = c.Close() }()
		if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
			return a.IP.String()
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return fmt.Sprint(net.IPv4(127, 0, 0, 1))
}
