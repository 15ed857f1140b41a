// Package cloudtest runs verge-cloud's hub in-process against the testenv
// cluster, for tests of the cloud–edge link from either side. It wires the
// real parts as verge-cloud's app does (hub, node views with devices, token
// minter, report applier, node lifecycle, device controller); nothing is
// faked.
package cloudtest

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/verge-edge/verge/api/crds"
	"github.com/verge-edge/verge/internal/cloud/devices"
	"github.com/verge-edge/verge/internal/cloud/devices/devclient"
	"github.com/verge-edge/verge/internal/cloud/hub"
	"github.com/verge-edge/verge/internal/cloud/nodeca"
	"github.com/verge-edge/verge/internal/cloud/nodes"
	"github.com/verge-edge/verge/internal/cloud/nodeview"
	"github.com/verge-edge/verge/internal/cloud/reports"
	"github.com/verge-edge/verge/internal/cloud/tunnel"
	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/testenv"
)

// Cloud is a running hub.
type Cloud struct {
	Hub       *hub.Server
	CA        *pki.CA
	Addr      string
	Registry  *prometheus.Registry
	Kube      kubernetes.Interface
	Namespace string
	// Devices is the device controller (its informers watch every
	// namespace; the devices.kubeedge.io CRDs are installed).
	Devices *devices.Controller
	// Tunnels reaches connected nodes' kubelet API (logs, exec).
	Tunnels *tunnel.Service

	opts Options
	stop func()
}

// Options tune the hub for a test.
type Options struct {
	NodeCertValidity time.Duration
}

// Start runs a hub until the test ends. Its CA lives in a fresh namespace.
func Start(t testing.TB, o Options) *Cloud {
	t.Helper()
	return start(t, o, testenv.Namespace(t), "127.0.0.1:0")
}

// Stop stops the hub (the cloud goes away: nodes lose their link).
func (c *Cloud) Stop() { c.stop() }

// Restart starts a stopped hub again, with the same CA and address (a
// verge-cloud restart, or the cloud coming back after an outage). It
// returns the new Cloud; its metrics start from zero.
func (c *Cloud) Restart(t testing.TB) *Cloud {
	t.Helper()
	return start(t, c.opts, c.Namespace, c.Addr)
}

// Replica starts a second hub with the same CA in the same namespace, on
// its own address: another verge-cloud replica.
func (c *Cloud) Replica(t testing.TB) *Cloud {
	t.Helper()
	return start(t, c.opts, c.Namespace, "127.0.0.1:0")
}

func start(t testing.TB, o Options, ns, listen string) *Cloud {
	t.Helper()
	kube := testenv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	ca, err := nodeca.LoadOrCreate(ctx, kube, ns)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := prometheus.NewRegistry()
	factory := informers.NewSharedInformerFactory(kube, 0)
	minter := nodeview.NewMinter(kube, logger)
	watcher, err := nodeview.Watch(factory, minter)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	devInformers, devController := startDevices(t, factory, watcher, logger, reg)
	events := record.NewBroadcaster(record.WithContext(ctx))
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	recorder := events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "verge-cloud"})
	lifecycle := nodes.NewManager(kube, factory.Core().V1().Nodes().Lister(), recorder, logger)
	tunnels := tunnel.New(tunnel.Config{Logger: logger, Registry: reg})
	h, err := hub.New(hub.Config{
		Services: []func(*grpc.Server){tunnels.Register},
		Listen:   listen, CA: ca, Kube: kube, View: watcher.View,
		Reports:          &reports.Applier{Devices: devController, Kube: kube, Pods: watcher, Logger: logger},
		Nodes:            lifecycle,
		NodeCertValidity: o.NodeCertValidity,
		Heartbeat:        time.Second, Window: 8, BatchSize: 4,
		Logger: logger, Registry: reg,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	devInformers.Start(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), devInformers.HasSynced) {
		cancel()
		t.Fatal("device informers did not sync")
	}
	done := make(chan struct{})
	go func() { _ = minter.Start(ctx) }()
	go func() { _ = watcher.Start(ctx) }()
	go func() { _ = lifecycle.Start(ctx) }()
	go func() { _ = devController.Start(ctx) }()
	go func() { defer close(done); _ = h.Start(ctx) }()
	addr, err := h.Addr(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done; events.Shutdown() }) }
	t.Cleanup(stop)
	return &Cloud{Hub: h, CA: ca, Addr: addr.String(), Registry: reg, Kube: kube, Namespace: ns, Devices: devController, Tunnels: tunnels, opts: o, stop: stop}
}

// UniqueNode names a node after the test's namespace, so tests (and
// repeated runs on the shared cluster) never see each other's pods.
func (c *Cloud) UniqueNode(prefix string) string {
	return prefix + "-" + c.Namespace[strings.LastIndex(c.Namespace, "-")+1:]
}

// Metric returns the value of a counter or gauge with exactly these label
// values (0 if absent).
func (c *Cloud) Metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := c.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			var vals []string
			for _, l := range m.Label {
				vals = append(vals, l.GetValue())
			}
			if strings.Join(vals, ",") == strings.Join(labels, ",") {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

// startDevices builds the device informers and controller as verge-cloud
// does, connected to the node views, with the devices.kubeedge.io CRDs
// installed in the shared cluster.
func startDevices(t testing.TB, factory informers.SharedInformerFactory, watcher *nodeview.Watcher, logger *slog.Logger, reg prometheus.Registerer) (*devclient.Informers, *devices.Controller) {
	t.Helper()
	all, err := crds.All()
	if err != nil {
		t.Fatal(err)
	}
	testenv.InstallCRDs(t, all)
	client, err := devclient.NewClient(testenv.Start(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	inf, err := devclient.NewInformers(client, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.WatchDevices(inf); err != nil {
		t.Fatal(err)
	}
	ctrl, err := devices.New(devices.Options{
		Client: client, Informers: inf,
		Nodes: factory.Core().V1().Nodes().Lister(), NodeInformer: factory.Core().V1().Nodes().Informer(),
		Logger: logger, Registry: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return inf, ctrl
}
