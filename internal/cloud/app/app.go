// Package app assembles verge-cloud from its parts and runs them under one
// supervisor that owns shutdown: the first part to fail stops the others,
// and a cancelled context (SIGTERM) stops them all gracefully.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	kubescheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"

	"golang.org/x/sync/errgroup"

	"github.com/verge-edge/verge/internal/cloud/config"
	"github.com/verge-edge/verge/internal/cloud/crdinstall"
	"github.com/verge-edge/verge/internal/cloud/hub"
	"github.com/verge-edge/verge/internal/cloud/nodeca"
	"github.com/verge-edge/verge/internal/cloud/nodes"
	"github.com/verge-edge/verge/internal/cloud/nodeview"
	"github.com/verge-edge/verge/internal/cloud/reports"
	"github.com/verge-edge/verge/internal/cloud/sedna"
	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
	"github.com/verge-edge/verge/internal/cloud/tunnel"
	"github.com/verge-edge/verge/internal/nodecert"
	"github.com/verge-edge/verge/internal/opsserver"
	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/version"
)

// FieldManager is verge-cloud's name in server-side apply.
const FieldManager = "verge-cloud"

// App is a configured verge-cloud.
type App struct {
	cfg    config.Cloud
	crds   []*apiextv1.CustomResourceDefinition
	logger *slog.Logger
	rest   *rest.Config
	ops    *opsserver.Server
	reg    *prometheus.Registry

	// crdsReady is closed once the CRDs are installed (at once when
	// verge-cloud is told not to install them).
	crdsReady chan struct{}
}

// New connects the parts; it does no I/O beyond reading the kubeconfig.
func New(cfg config.Cloud, crds []*apiextv1.CustomResourceDefinition, logger *slog.Logger) (*App, error) {
	rc, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = cfg.KubeAPIQPS, cfg.KubeAPIBurst
	rc.UserAgent = "verge-cloud/" + version.Version

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "verge_cloud_info",
		Help:        "Always 1; the version label says which Verge release is running.",
		ConstLabels: prometheus.Labels{"version": version.Version},
	})
	info.Set(1)
	reg.MustRegister(info)

	a := &App{cfg: cfg, crds: crds, logger: logger, rest: rc, reg: reg, crdsReady: make(chan struct{})}
	if !cfg.InstallCRDs {
		close(a.crdsReady)
	}
	a.ops = opsserver.New(opsserver.Options{
		Address:     cfg.OpsAddress,
		EnablePprof: cfg.EnablePprof,
		// controller-runtime registers its controllers' metrics globally.
		Gatherer:        firstOfEachName{reg, ctrlmetrics.Registry},
		Logger:          logger,
		ShutdownTimeout: cfg.ShutdownTimeout.Duration,
	})
	return a, nil
}

// restConfig loads the kubeconfig at path, or $KUBECONFIG, or the in-cluster
// service account, in that order.
func restConfig(path string) (*rest.Config, error) {
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %s: %w", path, err)
		}
		return rc, nil
	}
	rc, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no kubeconfig given and not running in a cluster: pass --kubeconfig or set KUBECONFIG: %w", err)
	}
	return rc, nil
}

// Ops exposes the ops server, e.g. to learn its bound address.
func (a *App) Ops() *opsserver.Server { return a.ops }

// Run runs verge-cloud until ctx is cancelled or a part fails.
func (a *App) Run(ctx context.Context) error {
	kube, err := kubernetes.NewForConfig(a.rest)
	if err != nil {
		return err
	}
	ext, err := apiextclient.NewForConfig(a.rest)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(kube, 0)
	minter := nodeview.NewMinter(kube, a.logger)
	watcher, err := nodeview.Watch(factory, minter)
	if err != nil {
		return err
	}
	devs, err := a.devices(factory, watcher)
	if err != nil {
		return err
	}
	guard, err := nodes.NewEvictionGuard(kube, factory, a.logger)
	if err != nil {
		return err
	}
	nodeLister := factory.Core().V1().Nodes().Lister()
	events := record.NewBroadcaster(record.WithContext(ctx))
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	defer events.Shutdown()
	recorder := events.NewRecorder(kubescheme.Scheme, corev1.EventSource{Component: "verge-cloud"})
	lifecycle := nodes.NewManager(kube, nodeLister, recorder, a.logger)
	hubReady := make(chan *hub.Server, 1)
	var tunnels *tunnel.Service
	var peerCA atomic.Pointer[pki.CA] // set once the Verge CA is loaded
	if a.cfg.Tunnel.Listen != "" {
		tcfg := tunnel.Config{MaxTunnelsPerNode: a.cfg.Tunnel.MaxPerNode, Logger: a.logger, Registry: a.reg}
		if a.cfg.Tunnel.PeerAddress != "" {
			tcfg.Relay = tunnel.RelayConfig{
				Address:   a.cfg.Tunnel.PeerAddress,
				Directory: &tunnel.NodeDirectory{Kube: kube, Nodes: nodeLister, Address: a.cfg.Tunnel.PeerAddress},
				Credentials: func() (*tls.Config, error) {
					ca := peerCA.Load()
					if ca == nil {
						return nil, errors.New("the Verge CA is not loaded yet")
					}
					replica, _ := os.Hostname()
					return nodecert.PeerTLS(ca, replica, 365*24*time.Hour)
				},
			}
		}
		tunnels = tunnel.New(tcfg)
		defer tunnels.Close()
	}
	proxyReady := make(chan *tunnel.Proxy, 1)

	a.ops.AddHealthCheck("ping", func(context.Context) error { return nil })
	a.ops.AddReadyCheck("kube-apiserver", func(ctx context.Context) error {
		_, err := kube.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
		return err
	})
	a.ops.AddReadyCheck("crds", func(context.Context) error {
		select {
		case <-a.crdsReady:
			return nil
		default:
			return errors.New("CRDs not installed yet")
		}
	})
	a.ops.AddReadyCheck("informers", func(context.Context) error {
		if !watcher.HasSynced() {
			return errors.New("informer caches not synced yet")
		}
		return nil
	})
	a.ops.AddReadyCheck("hub", func(context.Context) error {
		select {
		case h := <-hubReady:
			hubReady <- h
			return nil
		default:
			return errors.New("hub not serving yet (waiting for the Verge CA)")
		}
	})
	a.ops.AddReadyCheck("tunnel", func(context.Context) error {
		if tunnels == nil {
			return nil // turned off
		}
		select {
		case p := <-proxyReady:
			proxyReady <- p
			return p.Ready()
		default:
			return errors.New("tunnel proxy not started yet (waiting for the Verge CA)")
		}
	})

	a.logger.Info("verge-cloud starting", "version", version.Version, "apiserver", a.rest.Host, "ops", a.cfg.OpsAddress, "hub", a.cfg.Hub.Listen)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.ops.Start(gctx) })
	if a.cfg.InstallCRDs {
		g.Go(func() error { return a.installCRDs(gctx, ext) })
	}
	factory.Start(gctx.Done())
	g.Go(func() error { factory.WaitForCacheSync(gctx.Done()); return nil })
	g.Go(func() error { return minter.Start(gctx) })
	g.Go(func() error { return watcher.Start(gctx) })
	g.Go(func() error { return devs.run(gctx) })
	g.Go(func() error {
		// Setting up the controllers looks up their kinds, which exist
		// once the CRDs are installed.
		select {
		case <-a.crdsReady:
		case <-gctx.Done():
			return nil
		}
		controllers, err := a.controllers()
		if err != nil {
			return err
		}
		return controllers.Start(gctx)
	})
	g.Go(func() error { return guard.Start(gctx) })
	g.Go(func() error { return lifecycle.Start(gctx) })
	g.Go(func() error {
		ca, err := a.loadCA(gctx, kube)
		if err != nil || gctx.Err() != nil {
			return err
		}
		peerCA.Store(ca)
		var services []func(*grpc.Server)
		if tunnels != nil {
			proxy, err := a.tunnelProxy(ca, kube, watcher, tunnels)
			if err != nil {
				return err
			}
			services = append(services, tunnels.Register)
			proxyReady <- proxy
			g.Go(func() error { return proxy.Start(gctx) })
		}
		h, err := hub.New(hub.Config{
			Listen:           a.cfg.Hub.Listen,
			AdvertiseNames:   a.cfg.Hub.AdvertiseNames,
			CA:               ca,
			NodeCertValidity: a.cfg.Hub.NodeCertValidity.Duration,
			Heartbeat:        a.cfg.Hub.Heartbeat.Duration,
			Kube:             kube,
			View:             watcher.View,
			Reports:          &reports.Applier{Devices: devs.controller, Kube: kube, Pods: watcher, Logger: a.logger, KubeletPort: a.cfg.Tunnel.Port()},
			Nodes:            lifecycle,
			Services:         services,
			Logger:           a.logger,
			Registry:         a.reg,
		})
		if err != nil {
			return err
		}
		// Nodes are served only from synced caches: a view computed from a
		// half-filled cache would tell nodes to delete what they should run.
		if !cache.WaitForCacheSync(gctx.Done(), watcher.HasSynced) {
			return nil
		}
		hubReady <- h
		return h.Start(gctx)
	})
	err = g.Wait()
	factory.Shutdown()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		a.logger.Info("verge-cloud stopped")
		return nil
	}
	return err
}

// controllers builds the controller-runtime manager that runs the edge AI
// (Sedna) controllers. Only the replica holding the leader lease in
// verge-cloud's namespace runs them; its metrics join verge-cloud's.
func (a *App) controllers() (ctrl.Manager, error) {
	scheme := runtime.NewScheme()
	if err := kubescheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(a.rest, ctrl.Options{
		Scheme:                        scheme,
		Logger:                        logr.FromSlogHandler(a.logger.Handler()),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              "verge-cloud-controllers",
		LeaderElectionNamespace:       a.cfg.Namespace,
		LeaderElectionResourceLock:    "leases",
		LeaderElectionReleaseOnCancel: true,
		// Names are checked process-wide; tests run several verge-clouds
		// in one process.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	if err := sedna.Setup(mgr, worker.Options{}); err != nil {
		return nil, err
	}
	return mgr, nil
}

// firstOfEachName gathers from several registries, keeping the first
// family of each name: controller-runtime's global registry repeats some
// client-go families verge-cloud's own registry has.
type firstOfEachName []prometheus.Gatherer

func (g firstOfEachName) Gather() ([]*dto.MetricFamily, error) {
	seen := map[string]bool{}
	var out []*dto.MetricFamily
	var errs []error
	for _, one := range g {
		mfs, err := one.Gather()
		if err != nil {
			errs = append(errs, err)
		}
		for _, mf := range mfs {
			if !seen[mf.GetName()] {
				seen[mf.GetName()] = true
				out = append(out, mf)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, errors.Join(errs...)
}

// tunnelProxy builds the HTTPS server the API server calls for edge nodes'
// kubelet API, serving a certificate from the Verge CA.
func (a *App) tunnelProxy(ca *pki.CA, kube kubernetes.Interface, pods tunnel.PodLookup, tunnels *tunnel.Service) (*tunnel.Proxy, error) {
	serving, err := nodecert.ServerTLS(ca, a.cfg.Hub.AdvertiseNames, 365*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("tunnel proxy certificate: %w", err)
	}
	return tunnel.NewProxy(tunnel.ProxyConfig{
		Listen:      a.cfg.Tunnel.Listen,
		Dial:        tunnels.Dial,
		Pods:        pods,
		Kube:        kube,
		Certificate: serving.Certificates[0],
		Logger:      a.logger,
		Registry:    a.reg,
	})
}

// loadCA reads or creates the Verge CA, retrying while the API server is
// unreachable; a damaged CA Secret is fatal (see nodeca).
func (a *App) loadCA(ctx context.Context, kube kubernetes.Interface) (*pki.CA, error) {
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.2, Steps: 100, Cap: 30 * time.Second}
	for {
		ca, err := nodeca.LoadOrCreate(ctx, kube, a.cfg.Namespace)
		if err == nil {
			return ca, nil
		}
		if ctx.Err() != nil {
			return nil, nil //nolint:nilerr // shutting down
		}
		if errors.Is(err, nodeca.ErrDamaged) || errors.Is(err, nodeca.ErrNoNamespace) {
			return nil, err
		}
		delay := backoff.Step()
		a.logger.Error("loading the Verge CA failed; retrying", "error", err, "retryIn", delay.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(delay):
		}
	}
}

// installCRDs applies the CRDs, retrying with back-off while the API server
// is unreachable or refuses (e.g. RBAC not yet granted); it never gives up,
// and readiness says whether it has succeeded.
func (a *App) installCRDs(ctx context.Context, ext apiextclient.Interface) error {
	inst := &crdinstall.Installer{Client: ext, FieldManager: FieldManager, Version: version.Version, Logger: a.logger}
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.2, Steps: 100, Cap: time.Minute}
	for {
		err := inst.Install(ctx, a.crds)
		if err == nil {
			close(a.crdsReady)
			a.logger.Info("CRDs installed", "count", len(a.crds))
			return nil
		}
		if ctx.Err() != nil {
			return nil //nolint:nilerr // shutting down: the failure was caused by the cancellation
		}
		delay := backoff.Step()
		a.logger.Error("installing CRDs failed; retrying", "error", err, "retryIn", delay.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}
