package mapper

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"k8s.io/utils/clock"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/fanout"
	"github.com/verge-edge/verge/pkg/mapper/sink"
)

// Device states, as upstream mappers report them.
const (
	StateOK           = "ok"
	StateUnhealthy    = "unhealthy"
	StateDisconnected = "disconnected"
	StateUnknown      = "unknown"
)

// runtime is what every device runner shares.
type runtime struct {
	cfg     Config
	driver  Driver
	clock   clock.Clock
	log     *slog.Logger
	metrics *coreMetrics
	routes  *router
	states  func(namespace, name, state, reason string)
	jitter  func() float64
}

// propState is what the runner knows about one property at run time.
type propState struct {
	last       sink.Sample
	hasLast    bool
	lastErr    string
	lastErrAt  time.Time
	configErr  error // a read failed because of configuration
	observed   *dmi.TwinProperty
	pending    string
	hasPending bool
	desiredErr string
	pushErrors []string
}

// deviceRunner serves one device: it connects through the driver, runs one
// sampler per property, applies desired values and keeps the device state.
// One goroutine (supervise) owns the connection and the samplers; update
// and the samplers talk to it through the mutex-guarded fields and the
// changed signal.
type deviceRunner struct {
	rt  *runtime
	key string

	mu            sync.Mutex
	spec          *deviceSpec
	props         map[string]*propState
	conn          Conn
	samplers      map[string]*sampler
	needReconnect bool
	needResample  bool
	// blocked is the spec whose configuration the driver refused; it is
	// not retried until a new spec arrives.
	blocked       *deviceSpec
	connErr       error
	healthErr     error
	state, reason string
	stateSince    time.Time
	lastReport    time.Time

	changed   chan struct{} // capacity 1
	checkNow  chan struct{} // capacity 1: a read failed, check health soon
	cancel    context.CancelFunc
	done      chan struct{}
	samplerWG sync.WaitGroup
	// samplerCancel stops the current sampler set.
	samplerCancel context.CancelFunc
	// acquired lists the push targets the current samplers hold.
	acquired []PushTarget
}

func newDeviceRunner(rt *runtime, spec *deviceSpec) *deviceRunner {
	r := &deviceRunner{
		rt:       rt,
		key:      spec.key,
		props:    map[string]*propState{},
		state:    StateUnknown,
		changed:  make(chan struct{}, 1),
		checkNow: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	r.update(spec)
	rt.metrics.devices.WithLabelValues(r.state).Inc()
	return r
}

func (r *deviceRunner) start(ctx context.Context) {
	ctx, r.cancel = context.WithCancel(ctx)
	go r.supervise(ctx)
}

func (r *deviceRunner) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// update installs a new spec. A desired-only change queues writes for the
// changed properties and keeps the connection; a change of protocol config,
// properties or visitors reconnects; cycle or routing changes restart the
// samplers only.
func (r *deviceRunner) update(spec *deviceSpec) {
	r.mu.Lock()
	old := r.spec
	r.spec = spec
	switch {
	case old == nil || old.err != nil || spec.err != nil || connectionChanged(old, spec):
		r.needReconnect = true
	case samplingChanged(old, spec):
		r.needResample = true
	}
	for name := range r.props {
		if _, ok := spec.byName[name]; !ok {
			delete(r.props, name)
		}
	}
	for _, name := range desiredChanges(old, spec) {
		st := r.prop(name)
		st.pending, st.hasPending, st.desiredErr = spec.byName[name].desired, true, ""
		if s, ok := r.samplers[name]; ok && !r.needReconnect && !r.needResample {
			signal(s.kick)
		}
	}
	r.mu.Unlock()
	signal(r.changed)
}

// prop returns the state of a property; r.mu must be held.
func (r *deviceRunner) prop(name string) *propState {
	st, ok := r.props[name]
	if !ok {
		st = &propState{}
		r.props[name] = st
	}
	return st
}

var errSpecChanged = errors.New("device spec changed")

func (r *deviceRunner) supervise(ctx context.Context) {
	defer close(r.done)
	defer func() {
		r.stopSamplers()
		r.mu.Lock()
		conn := r.conn
		r.conn = nil
		r.mu.Unlock()
		if conn != nil {
			_ = conn.Close()
		}
		r.mu.Lock()
		r.rt.metrics.devices.WithLabelValues(r.state).Dec()
		r.mu.Unlock()
	}()
	for {
		r.mu.Lock()
		spec := r.spec
		reconnect := r.needReconnect || (r.conn == nil && r.blocked != spec)
		resample := r.needResample
		r.needReconnect, r.needResample = false, false
		r.mu.Unlock()

		switch {
		case spec.err != nil:
			r.stopSamplers()
			r.closeConn()
			r.recomputeState()
		case reconnect:
			r.stopSamplers()
			conn, err := r.connect(ctx, spec)
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errSpecChanged) {
				continue
			}
			if err != nil { // configuration: wait for a new spec
				r.mu.Lock()
				r.blocked = spec
				r.mu.Unlock()
				r.closeConn()
				r.recomputeState()
				break
			}
			r.mu.Lock()
			old := r.conn
			r.conn, r.connErr, r.healthErr = conn, nil, nil
			r.mu.Unlock()
			if old != nil {
				_ = old.Close() // after the new one is open, so shared transports survive
			}
			r.startSamplers(ctx)
			r.recomputeState()
		case resample:
			r.stopSamplers()
			r.startSamplers(ctx)
		}

		t := r.rt.clock.NewTimer(r.rt.cfg.HealthInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.changed:
			t.Stop()
		case <-r.checkNow:
			t.Stop()
			r.checkHealth(ctx)
		case <-t.C():
			r.checkHealth(ctx)
		}
	}
}

// connect calls the driver until it connects, reports bad configuration,
// the spec changes or ctx ends.
func (r *deviceRunner) connect(ctx context.Context, spec *deviceSpec) (Conn, error) {
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 2*r.rt.cfg.ReadTimeout)
		conn, err := r.rt.driver.Connect(cctx, &spec.cfg)
		cancel()
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.mu.Lock()
		r.connErr = err
		r.mu.Unlock()
		r.recomputeState()
		if IsConfigError(err) {
			return nil, err
		}
		r.rt.log.Debug("device connect failed", "device", r.key, "attempt", attempt, "err", err)
		t := r.rt.clock.NewTimer(fanout.Backoff(time.Second, 30*time.Second, attempt, r.rt.jitter()))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-r.changed:
			t.Stop()
			return nil, errSpecChanged
		case <-t.C():
		}
	}
}

func (r *deviceRunner) closeConn() {
	r.mu.Lock()
	conn := r.conn
	r.conn = nil
	r.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
}

func (r *deviceRunner) startSamplers(ctx context.Context) {
	r.mu.Lock()
	spec, conn := r.spec, r.conn
	r.mu.Unlock()
	if spec.err != nil || conn == nil {
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	samplers := make(map[string]*sampler, len(spec.props))
	var acquired []PushTarget
	pushErrs := map[string][]string{}
	for _, p := range spec.props {
		s := &sampler{r: r, spec: spec, prop: p, conn: conn, kick: make(chan struct{}, 1)}
		if p.reportToCloud && r.rt.routes.twin != nil {
			s.routes = append(s.routes, r.rt.routes.twin)
		}
		for _, t := range p.push {
			w, err := r.rt.routes.acquire(ctx, t)
			if err != nil {
				pushErrs[p.cfg.Name] = append(pushErrs[p.cfg.Name], err.Error())
				continue
			}
			acquired = append(acquired, t)
			s.routes = append(s.routes, w)
		}
		samplers[p.cfg.Name] = s
	}
	r.mu.Lock()
	r.samplers, r.samplerCancel, r.acquired = samplers, cancel, acquired
	for name, st := range r.props {
		st.pushErrors = pushErrs[name]
	}
	for name, errs := range pushErrs {
		r.prop(name).pushErrors = errs
	}
	r.mu.Unlock()
	for _, s := range samplers {
		r.samplerWG.Add(1)
		go func() {
			defer r.samplerWG.Done()
			s.run(sctx)
		}()
	}
}

func (r *deviceRunner) stopSamplers() {
	r.mu.Lock()
	cancel, acquired := r.samplerCancel, r.acquired
	r.samplers, r.samplerCancel, r.acquired = nil, nil, nil
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	r.samplerWG.Wait()
	for _, t := range acquired {
		r.rt.routes.release(t)
	}
}

func (r *deviceRunner) checkHealth(ctx context.Context) {
	r.mu.Lock()
	conn := r.conn
	r.mu.Unlock()
	if conn == nil {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, r.rt.cfg.ReadTimeout)
	err := conn.Health(hctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	r.mu.Lock()
	r.healthErr = err
	r.mu.Unlock()
	r.recomputeState()
}

// recomputeState derives the device state and reports a change (and, with
// stateReport, a periodic repeat).
func (r *deviceRunner) recomputeState() {
	r.mu.Lock()
	state, reason := StateOK, ""
	var propErr error
	names := make([]string, 0, len(r.props))
	for n := range r.props {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if e := r.props[n].configErr; e != nil {
			propErr = e
			break
		}
	}
	switch {
	case r.spec.waiting:
		state, reason = StateUnknown, r.spec.err.Error()
	case r.spec.err != nil:
		state, reason = StateUnhealthy, r.spec.err.Error()
	case r.conn == nil && r.connErr != nil && IsConfigError(r.connErr):
		state, reason = StateUnhealthy, r.connErr.Error()
	case propErr != nil:
		state, reason = StateUnhealthy, propErr.Error()
	case r.conn == nil && r.connErr != nil:
		state, reason = StateDisconnected, r.connErr.Error()
	case r.conn == nil:
		state = StateUnknown
	case r.healthErr != nil:
		state, reason = StateDisconnected, r.healthErr.Error()
	}
	now := r.rt.clock.Now()
	changed := state != r.state || reason != r.reason
	periodic := r.spec.stateReport && !changed && now.Sub(r.lastReport) >= r.spec.stateCycle
	if changed {
		r.rt.metrics.devices.WithLabelValues(r.state).Dec()
		r.rt.metrics.devices.WithLabelValues(state).Inc()
		r.state, r.reason, r.stateSince = state, reason, now
	}
	if changed || periodic {
		r.lastReport = now
	}
	spec := r.spec
	r.mu.Unlock()
	if changed {
		r.rt.log.Info("device state", "device", r.key, "state", state, "reason", reason)
	}
	if changed || periodic {
		r.rt.states(spec.cfg.Namespace, spec.cfg.Name, state, reason)
	}
}

func (r *deviceRunner) readSucceeded(s sink.Sample) {
	r.mu.Lock()
	st := r.prop(s.Property)
	st.last, st.hasLast = s, true
	hadConfigErr := st.configErr != nil
	st.configErr = nil
	r.mu.Unlock()
	if hadConfigErr {
		r.recomputeState()
	}
}

func (r *deviceRunner) readFailed(property string, err error) {
	r.mu.Lock()
	st := r.prop(property)
	st.lastErr, st.lastErrAt = err.Error(), r.rt.clock.Now()
	isConfig := IsConfigError(err)
	if isConfig {
		st.configErr = err
	}
	r.mu.Unlock()
	if isConfig {
		r.recomputeState()
		return
	}
	signal(r.checkNow)
}

// pendingDesired returns the desired value waiting to be written.
func (r *deviceRunner) pendingDesired(property string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.props[property]
	if !ok || !st.hasPending {
		return "", false
	}
	return st.pending, true
}

func (r *deviceRunner) desiredApplied(property, v string) {
	r.mu.Lock()
	st := r.prop(property)
	if st.hasPending && st.pending == v {
		st.hasPending = false
	}
	st.desiredErr = ""
	st.observed = &dmi.TwinProperty{Value: v, Metadata: map[string]string{
		"timestamp": formatMillis(r.rt.clock.Now()),
	}}
	r.mu.Unlock()
	r.rt.log.Info("desired value written", "device", r.key, "property", property, "value", v)
}

func (r *deviceRunner) desiredFailed(property, v string, err error, retry bool) {
	r.mu.Lock()
	st := r.prop(property)
	st.desiredErr = err.Error()
	if !retry && st.hasPending && st.pending == v {
		st.hasPending = false
	}
	r.mu.Unlock()
	r.rt.log.Warn("desired value not written", "device", r.key, "property", property, "value", v, "retry", retry, "err", err)
}

// kick makes a property's sampler read now.
func (r *deviceRunner) kick(property string) {
	r.mu.Lock()
	s, ok := r.samplers[property]
	r.mu.Unlock()
	if ok {
		signal(s.kick)
	}
}

// current returns the spec and connection for the REST API.
func (r *deviceRunner) current() (*deviceSpec, Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spec, r.conn
}

func formatMillis(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
