package mapper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"k8s.io/utils/clock"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/fanout"
)

// Options are a mapper's collaborators.
type Options struct {
	Logger *slog.Logger
	// Registry receives the mapper's metrics and is served on /metrics of
	// the REST API. Default: a fresh registry.
	Registry *prometheus.Registry
	// Clock drives sampling, retries and health checks. Default: real.
	Clock clock.Clock
	// SinkFactory builds the sinks named by properties' pushMethod.
	// Without one, such properties report an error in their status (the
	// cloud twin still works).
	SinkFactory SinkFactory
}

// Mapper serves one protocol's devices on an edge node.
type Mapper struct {
	cfg    Config
	opts   Options
	rt     *runtime
	twin   *twinSink
	states *stateReporter
	reg    *prometheus.Registry

	mu      sync.Mutex
	models  map[string]*dmi.DeviceModel
	devices map[string]*deviceRunner
	// runCtx is the context device runners start under; nil until Start.
	runCtx context.Context

	edge         *edgeClient
	registered   atomic.Bool
	lastRegister atomic.Pointer[time.Time]
	restAddr     chan net.Addr
}

// New checks cfg (after defaults) and builds a mapper for driver.
func New(cfg Config, driver Driver, opts Options) (*Mapper, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mapper config: %w", err)
	}
	if driver == nil {
		return nil, errors.New("mapper: a Driver is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.SinkFactory == nil {
		opts.SinkFactory = noSinkFactory
	}
	jitter := func() float64 { return 0.8 + 0.4*rand.Float64() }
	m := &Mapper{
		cfg:      cfg,
		opts:     opts,
		reg:      opts.Registry,
		models:   map[string]*dmi.DeviceModel{},
		devices:  map[string]*deviceRunner{},
		restAddr: make(chan net.Addr, 1),
	}
	metrics := newCoreMetrics(opts.Registry)
	fo := fanout.Options{
		QueueSize: cfg.Sinks.QueueSize, MaxBatch: cfg.Sinks.MaxBatch, MaxAttempts: cfg.Sinks.MaxAttempts,
		RetryMin: cfg.Sinks.RetryMin, RetryMax: cfg.Sinks.RetryMax, Linger: max(cfg.Sinks.Linger, 0),
		Clock: opts.Clock, Metrics: fanout.NewMetrics(opts.Registry), Logger: opts.Logger, Jitter: jitter,
	}
	m.states = newStateReporter(m.sendState, opts.Clock, jitter, opts.Logger, metrics)
	m.twin = newTwinSink(edgeStatus{m}, m.twinInfo)
	m.rt = &runtime{
		cfg:     cfg,
		driver:  driver,
		clock:   opts.Clock,
		log:     opts.Logger,
		metrics: metrics,
		routes: &router{
			twin:    fanout.Start(m.twin.Name(), m.twin, fo),
			factory: opts.SinkFactory,
			opts:    fo,
			shared:  map[string]*sharedWorker{},
		},
		states: m.states.report,
		jitter: jitter,
	}
	return m, nil
}

// edgeStatus forwards twin reports to the edge connection once it exists.
type edgeStatus struct{ m *Mapper }

func (e edgeStatus) ReportDeviceStatus(ctx context.Context, req *dmi.ReportDeviceStatusRequest) error {
	edge := e.m.edgeConn()
	if edge == nil {
		return errors.New("not connected to the edge yet")
	}
	return edge.ReportDeviceStatus(ctx, req)
}

func (m *Mapper) sendState(ctx context.Context, req *dmi.ReportDeviceStatesRequest) error {
	edge := m.edgeConn()
	if edge == nil {
		return errors.New("not connected to the edge yet")
	}
	return edge.reportState(ctx, req)
}

func (m *Mapper) edgeConn() *edgeClient {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.edge
}

// Config returns the effective configuration.
func (m *Mapper) Config() Config { return m.cfg }

// Registry returns the metrics registry.
func (m *Mapper) Registry() *prometheus.Registry { return m.reg }

// RESTAddr returns the REST API's bound address once it listens.
func (m *Mapper) RESTAddr(ctx context.Context) (net.Addr, error) {
	select {
	case a := <-m.restAddr:
		m.restAddr <- a
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Start serves DMI on the mapper's socket, registers with the edge (again
// whenever the edge comes back), runs the devices and the REST API, and
// returns when ctx ends (after flushing sinks for up to 5 s) or a server
// fails.
func (m *Mapper) Start(ctx context.Context) error {
	lis, err := listenUnix(m.cfg.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(m.cfg.Socket)
	edge, err := dialEdge(m.cfg.EdgeSocket)
	if err != nil {
		_ = lis.Close()
		return err
	}
	defer func() { _ = edge.close() }()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.mu.Lock()
	m.edge = edge
	m.runCtx = ctx
	for _, r := range m.devices {
		r.start(ctx)
	}
	m.mu.Unlock()

	srv := grpc.NewServer()
	dmi.RegisterDeviceMapperServiceServer(srv, &dmiServer{m: m})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(lis); err != nil {
			return fmt.Errorf("DMI server on %s: %w", m.cfg.Socket, err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		srv.GracefulStop()
		return nil
	})
	g.Go(func() error { m.states.run(gctx); return nil })
	g.Go(func() error { m.registerLoop(gctx, edge); return nil })
	if m.cfg.REST.Address != "off" {
		g.Go(func() error { return m.serveREST(gctx) })
	}
	m.opts.Logger.Info("mapper started", "mapper", m.cfg.Name, "protocol", m.cfg.Protocol, "socket", m.cfg.Socket, "edge", m.cfg.EdgeSocket)
	err = g.Wait()

	m.mu.Lock()
	runners := make([]*deviceRunner, 0, len(m.devices))
	for _, r := range m.devices {
		runners = append(runners, r)
	}
	m.runCtx = nil
	m.mu.Unlock()
	for _, r := range runners {
		r.stop()
	}
	flush, cancelFlush := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelFlush()
	m.rt.routes.stop(flush)
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("mapper socket directory: %w", err)
	}
	// A socket left by a previous run would make Listen fail; remove it,
	// but never a regular file someone put there.
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("mapper socket %s exists and is not a socket: remove it or choose another path", path)
		}
		_ = os.Remove(path)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("mapper socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		_ = lis.Close()
		return nil, fmt.Errorf("mapper socket %s: %w", path, err)
	}
	return lis, nil
}

// registerLoop registers with the edge, retrying with jittered backoff,
// and registers again each time the connection comes back.
func (m *Mapper) registerLoop(ctx context.Context, edge *edgeClient) {
	info := &dmi.MapperInfo{
		Name: m.cfg.Name, Version: m.cfg.Version, ApiVersion: "v1beta1",
		Protocol: m.cfg.Protocol, Address: []byte(m.cfg.Socket), State: "online",
	}
	for {
		var resp *dmi.MapperRegisterResponse
		for attempt := 1; ; attempt++ {
			var err error
			resp, err = edge.register(ctx, info)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				m.rt.metrics.registrations.WithLabelValues("ok").Inc()
				break
			}
			m.rt.metrics.registrations.WithLabelValues("error").Inc()
			lvl := slog.LevelDebug
			if attempt == 3 {
				lvl = slog.LevelWarn
			}
			m.opts.Logger.Log(ctx, lvl, "mapper registration failed", "edge", m.cfg.EdgeSocket, "attempt", attempt, "err", err)
			t := m.opts.Clock.NewTimer(fanout.Backoff(time.Second, 30*time.Second, attempt, m.rt.jitter()))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
			}
		}
		m.sync(resp.GetModelList(), resp.GetDeviceList())
		// The edge may have lost what it had from us; send every value again.
		m.twin.forget()
		now := m.opts.Clock.Now()
		m.lastRegister.Store(&now)
		m.registered.Store(true)
		m.rt.metrics.registered.Set(1)
		m.opts.Logger.Info("mapper registered", "edge", m.cfg.EdgeSocket, "devices", len(resp.GetDeviceList()), "models", len(resp.GetModelList()))
		edge.waitDisconnected(ctx)
		m.registered.Store(false)
		m.rt.metrics.registered.Set(0)
		if ctx.Err() != nil {
			return
		}
		m.opts.Logger.Warn("edge connection lost; registering again", "edge", m.cfg.EdgeSocket)
	}
}

// sync makes the mapper serve exactly the given models and devices.
func (m *Mapper) sync(models []*dmi.DeviceModel, devices []*dmi.Device) {
	m.mu.Lock()
	m.models = map[string]*dmi.DeviceModel{}
	for _, md := range models {
		m.models[deviceKey(md.GetNamespace(), md.GetName())] = md
	}
	keep := map[string]bool{}
	for _, d := range devices {
		keep[deviceKey(d.GetNamespace(), d.GetName())] = true
	}
	var removed []*deviceRunner
	for k, r := range m.devices {
		if !keep[k] {
			removed = append(removed, r)
			delete(m.devices, k)
		}
	}
	m.mu.Unlock()
	for _, r := range removed {
		r.stop()
	}
	for _, d := range devices {
		m.upsertDevice(d)
	}
}

func (m *Mapper) modelFor(d *dmi.Device) *dmi.DeviceModel {
	return m.models[deviceKey(d.GetNamespace(), d.GetSpec().GetDeviceModelReference())]
}

// upsertDevice starts serving a device or updates it in place.
func (m *Mapper) upsertDevice(d *dmi.Device) {
	m.mu.Lock()
	spec := resolve(d, m.modelFor(d), m.cfg)
	r, ok := m.devices[spec.key]
	if ok {
		m.mu.Unlock()
		r.update(spec)
		return
	}
	r = newDeviceRunner(m.rt, spec)
	m.devices[spec.key] = r
	if m.runCtx != nil {
		r.start(m.runCtx)
	}
	m.mu.Unlock()
}

func (m *Mapper) removeDevice(namespace, name string) bool {
	m.mu.Lock()
	k := deviceKey(namespace, name)
	r, ok := m.devices[k]
	delete(m.devices, k)
	m.mu.Unlock()
	if ok {
		r.stop()
	}
	return ok
}

// upsertModel stores a model and re-resolves the devices using it (a
// device waiting for its model starts now).
func (m *Mapper) upsertModel(md *dmi.DeviceModel) {
	m.mu.Lock()
	m.models[deviceKey(md.GetNamespace(), md.GetName())] = md
	var users []*dmi.Device
	for _, r := range m.devices {
		spec, _ := r.current()
		if spec.raw.GetNamespace() == md.GetNamespace() && spec.raw.GetSpec().GetDeviceModelReference() == md.GetName() {
			users = append(users, spec.raw)
		}
	}
	m.mu.Unlock()
	for _, d := range users {
		m.upsertDevice(d)
	}
}

// removeModel forgets a model. Devices using it keep running as they are;
// the edge removes them separately.
func (m *Mapper) removeModel(namespace, name string) {
	m.mu.Lock()
	delete(m.models, deviceKey(namespace, name))
	m.mu.Unlock()
}

func (m *Mapper) runner(namespace, name string) *deviceRunner {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.devices[deviceKey(namespace, name)]
}

func (m *Mapper) runners() []*deviceRunner {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*deviceRunner, 0, len(m.devices))
	for _, r := range m.devices {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

func (m *Mapper) twinInfo(namespace, device, property string) (*dmi.TwinProperty, float64, *dmi.DeviceStatus, bool) {
	r := m.runner(namespace, device)
	if r == nil {
		return nil, 0, nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.spec.byName[property]
	if !ok {
		return nil, 0, nil, false
	}
	var observed *dmi.TwinProperty
	if st := r.props[property]; st != nil {
		observed = st.observed
	}
	return observed, p.deadband, r.spec.raw.GetStatus(), true
}
