package devicetwin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/edge/store"
	"github.com/verge-edge/verge/internal/protocol/objkey"
	"github.com/verge-edge/verge/internal/protocol/wire"
	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

// Store is what the twin needs of the edge store.
type Store interface {
	List(ctx context.Context, keyPrefix string) ([]store.Object, error)
	Revision() int64
	Changed() <-chan struct{}
	Changes(ctx context.Context, since int64) ([]store.Change, int64, error)
	GetState(ctx context.Context, key string) ([]byte, bool, error)
	PutState(ctx context.Context, key string, value []byte) error
	DeleteState(ctx context.Context, key string) error
	Enqueue(ctx context.Context, key, kind string, priority int, payload []byte) error
}

// Store keys of the twin's own state.
const (
	stateMappers    = "devicetwin/mappers"
	stateTwinPrefix = "devicetwin/twin/"
)

// ReportPriority is the outbox priority of device reports: after node and
// pod status (0, 1), with events (2).
const ReportPriority = 2

// Config configures the Service.
type Config struct {
	// NodeName is this node.
	NodeName string
	// SocketDir is the DMI directory: the edge's socket is SocketDir/dmi.sock.
	SocketDir string
	// AllowedUIDs and AllowedGIDs may connect to the DMI socket (default:
	// root and verge-edge's own user).
	AllowedUIDs, AllowedGIDs []uint32
	// FlushInterval bounds how long a reading waits before it is durable
	// and queued for the cloud; readings arriving within it share one
	// store write per device (default 100ms).
	FlushInterval time.Duration
	// Kick nudges the hub client to send what was queued.
	Kick func()
	// Events receives twin, state and membership changes (the MQTT bus);
	// may be nil.
	Events   Events
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// device is one Device the node holds.
type device struct {
	obj     *wire.Device
	twin    *Twin
	binding wire.DeviceMapper
	// dirty: the twin changed (persist it) or the report changed (queue
	// it); both happen at the next flush.
	dirty bool
}

// Service is the node's device twin: it keeps every Device's twin in the
// store, serves DMI to mappers, keeps each mapper's devices in step, and
// queues device reports for the cloud.
type Service struct {
	cfg     Config
	store   Store
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	loaded  bool
	devices map[string]*device // namespace/name
	models  map[string]*wire.DeviceModel
	mappers map[string]*Mapper
	runners map[string]*mapperRunner
	// waiters are told when the next flush committed (group commit of
	// mapper reports).
	waiters []chan error
	events  []func(Events)
	// persistMu orders writes of the mapper registry.
	persistMu sync.Mutex
	// pendingOps are store writes to make at the next flush.
	pendingOps []func(context.Context) error
	wake       chan struct{}
	runCtx     context.Context
}

// New builds the Service; Start runs it.
func New(cfg Config, st Store) (*Service, error) {
	if cfg.NodeName == "" || cfg.SocketDir == "" || st == nil {
		return nil, errors.New("devicetwin: NodeName, SocketDir and a Store are required")
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Kick == nil {
		cfg.Kick = func() {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{
		cfg: cfg, store: st, log: cfg.Logger,
		devices: map[string]*device{}, models: map[string]*wire.DeviceModel{},
		mappers: map[string]*Mapper{}, runners: map[string]*mapperRunner{},
		wake: make(chan struct{}, 1),
	}
	s.metrics = newMetrics(cfg.Registry, s)
	return s, nil
}

func nsName(namespace, name string) string { return namespace + "/" + name }

// Start loads the twins and mappers from the store, serves DMI on
// SocketDir/dmi.sock, follows the store for Device and DeviceModel
// changes, pushes them to the mappers and flushes twins, until ctx ends.
func (s *Service) Start(ctx context.Context) error {
	rev, err := s.load(ctx)
	if err != nil {
		return err
	}
	srv, lis, err := s.listen()
	if err != nil {
		return err
	}
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(lis) }()
	go func() { errc <- s.follow(ctx, rev) }()
	s.mu.Lock()
	s.runCtx = ctx
	for name := range s.mappers {
		s.startRunnerLocked(name)
	}
	nDevices, nMappers := len(s.devices), len(s.mappers)
	s.mu.Unlock()
	s.log.Info("device twin started", "socket", s.socketPath(), "devices", nDevices, "mappers", nMappers)
	tick := time.NewTicker(s.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			srv.Stop()
			s.flush()
			s.stopRunners()
			return nil
		case err := <-errc:
			srv.Stop()
			s.stopRunners()
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-tick.C:
			s.flush()
		}
	}
}

// load reads devices, models, twins and mappers from the store and
// returns the revision to follow changes from.
func (s *Service) load(ctx context.Context) (int64, error) {
	rev, models, devs, err := s.listStored(ctx)
	if err != nil {
		return 0, err
	}
	raw, ok, err := s.store.GetState(ctx, stateMappers)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		if err := json.Unmarshal(raw, &s.mappers); err != nil {
			s.log.Warn("the stored mapper registry cannot be read; mappers register again", "error", err)
			s.mappers = map[string]*Mapper{}
		}
	}
	for _, o := range models {
		s.applyModelLocked(o, false)
	}
	for _, o := range devs {
		d, err := decodeDevice(o)
		if err != nil {
			s.log.Warn("stored device cannot be decoded; skipped", "key", o.Key, "error", err)
			continue
		}
		tw := &Twin{}
		if b, ok, err := s.store.GetState(ctx, stateTwinPrefix+nsName(d.Namespace, d.Name)); err != nil {
			return 0, err
		} else if ok {
			if err := json.Unmarshal(b, tw); err != nil {
				s.log.Warn("stored twin cannot be read; starting empty", "device", nsName(d.Namespace, d.Name), "error", err)
				tw = &Twin{}
			}
		}
		// Report every device once after a start: a crash between a twin
		// write and its outbox entry loses nothing.
		s.devices[nsName(d.Namespace, d.Name)] = &device{obj: d, twin: tw, dirty: true}
	}
	s.rebindLocked()
	s.loaded = true
	return rev, nil
}

func decodeDevice(o store.Object) (*wire.Device, error) {
	d := &wire.Device{}
	if err := wire.Decode(wire.EncodingFor(o.Key), o.Data, false, d); err != nil {
		return nil, err
	}
	return d, nil
}

// follow applies the store's Device and DeviceModel changes after rev.
func (s *Service) follow(ctx context.Context, rev int64) error {
	for {
		ch := s.store.Changed()
		changes, next, err := s.store.Changes(ctx, rev)
		if errors.Is(err, store.ErrCompacted) {
			// Fell behind the log: read everything again.
			if next, err = s.reload(ctx); err != nil {
				return err
			}
			rev = next
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil //nolint:nilerr // shutting down, not a failure
			}
			return fmt.Errorf("following the store: %w", err)
		}
		if len(changes) > 0 {
			s.mu.Lock()
			for _, c := range changes {
				switch {
				case strings.HasPrefix(c.Object.Key, objkey.Devices+"/"):
					s.applyDeviceLocked(c.Object, c.Type == store.Deleted)
				case strings.HasPrefix(c.Object.Key, objkey.DeviceModels+"/"):
					s.applyModelLocked(c.Object, c.Type == store.Deleted)
				}
			}
			s.rebindLocked()
			s.wakeRunnersLocked()
			s.mu.Unlock()
		}
		rev = next
		if len(changes) > 0 {
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		}
	}
}

// listStored reads the stored models and devices, and the revision to
// follow changes from.
func (s *Service) listStored(ctx context.Context) (rev int64, models, devs []store.Object, err error) {
	rev = s.store.Revision()
	if models, err = s.store.List(ctx, objkey.DeviceModels+"/"); err != nil {
		return 0, nil, nil, err
	}
	if devs, err = s.store.List(ctx, objkey.Devices+"/"); err != nil {
		return 0, nil, nil, err
	}
	return rev, models, devs, nil
}

// reload re-reads devices and models after the change log was compacted.
func (s *Service) reload(ctx context.Context) (int64, error) {
	rev, models, devs, err := s.listStored(ctx)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seenModels, seenDevs := map[string]bool{}, map[string]bool{}
	for _, o := range models {
		s.applyModelLocked(o, false)
		seenModels[o.Key] = true
	}
	for k, m := range s.models {
		if key := objkey.Key(objkey.DeviceModels, m.Namespace, m.Name); !seenModels[key] {
			delete(s.models, k)
		}
	}
	for _, o := range devs {
		s.applyDeviceLocked(o, false)
		seenDevs[o.Key] = true
	}
	for _, d := range s.devices {
		if key := objkey.Key(objkey.Devices, d.obj.Namespace, d.obj.Name); !seenDevs[key] {
			s.applyDeviceLocked(store.Object{Meta: store.Meta{Key: key}}, true)
		}
	}
	s.rebindLocked()
	s.wakeRunnersLocked()
	return rev, nil
}

func (s *Service) applyModelLocked(o store.Object, deleted bool) {
	_, ns, name, err := objkey.Split(o.Key)
	if err != nil {
		return
	}
	if deleted {
		delete(s.models, nsName(ns, name))
		return
	}
	m := &wire.DeviceModel{}
	if err := wire.Decode(wire.EncodingFor(o.Key), o.Data, false, m); err != nil {
		s.log.Warn("device model cannot be decoded; skipped", "key", o.Key, "error", err)
		return
	}
	s.models[nsName(ns, name)] = m
	for _, d := range s.devices {
		if d.obj.Namespace == ns && d.obj.Spec.DeviceModelRef.Name == name {
			d.dirty = true
		}
	}
}

func (s *Service) applyDeviceLocked(o store.Object, deleted bool) {
	_, ns, name, err := objkey.Split(o.Key)
	if err != nil {
		return
	}
	key := nsName(ns, name)
	cur := s.devices[key]
	if deleted {
		if cur == nil {
			return
		}
		delete(s.devices, key)
		k := stateTwinPrefix + key
		s.events = append(s.events, func(e Events) { e.MembershipChanged(nil, []DeviceInfo{info(cur.obj, cur.twin)}) })
		s.afterFlush(func(ctx context.Context) error { return s.store.DeleteState(ctx, k) })
		return
	}
	d, err := decodeDevice(o)
	if err != nil {
		s.log.Warn("device cannot be decoded; skipped", "key", o.Key, "error", err)
		return
	}
	var before map[string]TwinView
	if cur == nil || cur.obj.UID != d.UID {
		cur = &device{twin: &Twin{}}
		s.devices[key] = cur
		added := d
		s.events = append(s.events, func(e Events) { e.MembershipChanged([]DeviceInfo{info(added, &Twin{})}, nil) })
	} else {
		before = views(cur.obj, cur.twin)
	}
	cur.obj = d
	cur.twin.Prune(d)
	cur.twin.Reconcile(d)
	cur.dirty = true
	if before != nil {
		// The desired values in force changed: apps see a new expected.
		var changed []string
		for p, v := range views(d, cur.twin) {
			if b, ok := before[p]; !ok || !sameString(b.Expected, v.Expected) {
				changed = append(changed, p)
			}
		}
		sort.Strings(changed)
		s.queueTwinEventLocked(cur, "", before, changed)
	}
}

func sameString(a, b *string) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// rebindLocked binds every device to its mapper (or none).
func (s *Service) rebindLocked() {
	for _, d := range s.devices {
		b := Bind(d.obj.Annotations, s.protocolLocked(d.obj), s.cfg.NodeName, s.mappers)
		if b != d.binding {
			d.binding = b
			d.dirty = true
		}
	}
}

func (s *Service) protocolLocked(d *wire.Device) string {
	if d.Spec.Protocol.ProtocolName != "" {
		return d.Spec.Protocol.ProtocolName
	}
	if m := s.models[nsName(d.Namespace, d.Spec.DeviceModelRef.Name)]; m != nil {
		return m.Spec.Protocol
	}
	return ""
}

// wantLocked is what mapper name should hold: its devices, merged with
// their models and with the desired values in force, and those models.
func (s *Service) wantLocked(name string) Want {
	w := Want{Models: map[string]*dmi.DeviceModel{}, Devices: map[string]*dmi.Device{}}
	for key, d := range s.devices {
		if !d.binding.Available || d.binding.Name != name {
			continue
		}
		mk := nsName(d.obj.Namespace, d.obj.Spec.DeviceModelRef.Name)
		model := s.models[mk]
		resolved := *d.twin.WithDesired(d.obj)
		var modelSpec *devicespec.DeviceModelSpec
		if model != nil {
			modelSpec = &model.Spec
		}
		spec, err := devicespec.ResolveDevice(&resolved.Spec, modelSpec)
		if err != nil {
			s.log.Warn("device cannot be merged with its model; not sent to the mapper", "device", key, "error", err)
			continue
		}
		resolved.Spec = *spec
		msg, err := ToDMIDevice(&resolved)
		if err != nil {
			s.log.Warn("device cannot be converted for its mapper; not sent", "device", key, "error", err)
			continue
		}
		w.Devices[key] = msg
		if model != nil {
			w.Models[mk] = ToDMIModel(model)
		}
	}
	return w
}

// afterFlush runs fn at the next flush, before the flush's waiters are
// answered (used for store writes that must follow the twin's order).
func (s *Service) afterFlush(fn func(ctx context.Context) error) {
	s.pendingOps = append(s.pendingOps, fn)
}

// flush persists dirty twins, queues their reports, and answers the
// mapper calls waiting for it. Its store writes are short and are not cut
// short by shutdown.
func (s *Service) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type item struct {
		key    string
		twin   []byte
		report []byte
	}
	s.mu.Lock()
	if !s.loaded {
		s.mu.Unlock()
		return
	}
	var items []item
	var errs []error
	for key, d := range s.devices {
		if !d.dirty {
			continue
		}
		d.dirty = false
		tw, err := json.Marshal(d.twin)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, rep, err := wire.Marshal(d.twin.Report(d.obj, d.binding))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		items = append(items, item{key: key, twin: tw, report: rep})
	}
	ops := s.pendingOps
	s.pendingOps = nil
	waiters := s.waiters
	s.waiters = nil
	events := s.events
	s.events = nil
	s.mu.Unlock()
	if len(items) == 0 && len(ops) == 0 && len(waiters) == 0 && len(events) == 0 {
		return
	}
	start := time.Now()
	sort.Slice(items, func(i, j int) bool { return items[i].key < items[j].key })
	for _, fn := range ops {
		if err := fn(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	// Twin first, then its report: after a crash between the two, the
	// restart reports every device from its twin (load marks them dirty).
	for _, it := range items {
		if err := s.store.PutState(ctx, stateTwinPrefix+it.key, it.twin); err != nil {
			errs = append(errs, err)
			s.markDirty(it.key)
			continue
		}
		if err := s.store.Enqueue(ctx, objkey.Devices+"/"+it.key, wire.ReportDevice, ReportPriority, it.report); err != nil {
			errs = append(errs, err)
			s.markDirty(it.key)
			continue
		}
		s.metrics.reportsQueued.Inc()
	}
	if len(items) > 0 {
		s.cfg.Kick()
	}
	err := errors.Join(errs...)
	if err != nil {
		s.metrics.flushErrors.Inc()
		s.log.Warn("device twins not persisted; retrying", "error", err)
	}
	s.metrics.flushSeconds.Observe(time.Since(start).Seconds())
	for _, w := range waiters {
		w <- err
	}
	if s.cfg.Events != nil {
		for _, ev := range events {
			ev(s.cfg.Events)
		}
	}
}

func (s *Service) markDirty(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.devices[key]; d != nil {
		d.dirty = true
	}
}

// waitFlush registers for the next flush's result; call with s.mu held.
func (s *Service) waitFlushLocked() chan error {
	ch := make(chan error, 1)
	s.waiters = append(s.waiters, ch)
	return ch
}

// jitter returns d ±20 %.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
