package podruntime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// Runtime runs the node's pods through CRI. Create it with New and run it
// with Start.
type Runtime struct {
	cfg     Config
	src     Source
	sink    Sink
	log     *slog.Logger
	metrics *metrics
	cri     *criClient
	volumes *volumeManager
	probes  *probeManager
	events  *eventLimiter
	pulls   singleflight.Group
	trigger chan struct{}

	mu          sync.Mutex
	started     bool
	runtimeName string
	workers     map[types.UID]*podWorker
	ghosts      map[string]bool // CRI IDs being removed
	ghostSlots  chan struct{}
	wg          sync.WaitGroup
}

// New checks cfg and prepares a Runtime; it does not contact the CRI
// runtime yet.
func New(cfg Config, src Source, sink Sink, logger *slog.Logger) (*Runtime, error) {
	cfg = withDefaults(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil || sink == nil || logger == nil {
		return nil, errors.New("pod runtime: Source, Sink and logger are required")
	}
	cri, err := dialCRI(cfg.CRIEndpoint)
	if err != nil {
		return nil, err
	}
	r := &Runtime{
		cfg:        cfg,
		src:        src,
		sink:       sink,
		log:        logger,
		metrics:    newMetrics(cfg.Metrics),
		cri:        cri,
		volumes:    &volumeManager{root: cfg.RootDir, get: src, tokens: newTokenCache(src)},
		events:     newEventLimiter(time.Minute, 4096),
		trigger:    make(chan struct{}, 1),
		workers:    map[types.UID]*podWorker{},
		ghosts:     map[string]bool{},
		ghostSlots: make(chan struct{}, 4),
	}
	r.probes = newProbeManager(r)
	return r, nil
}

// Trigger asks for a reconcile soon; calls made while one is pending
// coalesce into it.
func (r *Runtime) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Start runs the runtime until ctx ends. Pods keep running after it
// returns. It waits for the CRI runtime to answer before doing anything.
func (r *Runtime) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("pod runtime: Start called twice")
	}
	r.started = true
	r.mu.Unlock()
	defer r.cri.close()

	for _, d := range []string{filepath.Join(r.cfg.RootDir, "pods"), r.cfg.PodLogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("pod runtime: %w", err)
		}
	}
	name, err := r.waitCRI(ctx)
	if err != nil {
		return nil //nolint:nilerr // ctx ended while waiting: a normal stop
	}
	r.mu.Lock()
	r.runtimeName = name
	r.mu.Unlock()

	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.relistLoop(ctx)
	}()

	ticker := time.NewTicker(r.cfg.ReconcilePeriod)
	defer ticker.Stop()
	r.reconcile(ctx)
	for {
		select {
		case <-ctx.Done():
			r.wg.Wait()
			return nil
		case <-ticker.C:
		case <-r.trigger:
		}
		r.reconcile(ctx)
	}
}

// waitCRI polls the runtime's Version until it answers.
func (r *Runtime) waitCRI(ctx context.Context) (string, error) {
	delay := 100 * time.Millisecond
	logged := false
	for {
		v, err := r.cri.version(ctx)
		if err == nil {
			r.log.Info("CRI runtime connected", "endpoint", r.cfg.CRIEndpoint, "runtime", v.RuntimeName, "version", v.RuntimeVersion)
			return v.RuntimeName, nil
		}
		if !logged {
			r.log.Warn("waiting for the CRI runtime", "endpoint", r.cfg.CRIEndpoint, "error", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (r *Runtime) runtimeNameOrDefault() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runtimeName == "" {
		return "containerd"
	}
	return r.runtimeName
}

// wake asks pod uid's worker to sync.
func (r *Runtime) wake(uid types.UID) {
	r.mu.Lock()
	w := r.workers[uid]
	r.mu.Unlock()
	if w != nil {
		w.poke()
	}
}

// event sends an event about a pod unless an identical one went out
// within the last minute.
func (r *Runtime) event(uid types.UID, pod types.NamespacedName, eventType, reason, message string) {
	if !r.events.allow(uid, reason, message, r.cfg.Clock.Now()) {
		r.metrics.eventsSuppressed.Inc()
		return
	}
	r.sink.Event(kube.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: uid}, eventType, reason, message)
}

// reconcile reads the desired pods, starts a worker for each new one, tells
// workers of vanished pods to stop them, wakes every worker and removes
// ghosts.
func (r *Runtime) reconcile(ctx context.Context) {
	pods, err := r.src.Pods(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.metrics.syncErrors.WithLabelValues("source").Inc()
			r.log.Warn("reading desired pods failed; leaving pods as they are", "error", err)
		}
		return
	}
	desired := make(map[types.UID]*kube.Pod, len(pods))
	for _, p := range pods {
		if p == nil || p.UID == "" || (p.Spec.NodeName != "" && p.Spec.NodeName != r.cfg.NodeName) {
			continue
		}
		desired[p.UID] = p
	}
	r.mu.Lock()
	for uid, p := range desired {
		if w := r.workers[uid]; w != nil {
			w.update(p)
			continue
		}
		w := newPodWorker(r, p)
		r.workers[uid] = w
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			w.run(ctx)
		}()
	}
	all := make([]*podWorker, 0, len(r.workers))
	for uid, w := range r.workers {
		if desired[uid] == nil {
			w.markRemoved()
		}
		all = append(all, w)
	}
	r.mu.Unlock()
	for _, w := range all {
		w.poke()
	}
	r.sweep(ctx)
}

// removeWorker forgets a worker that finished (its pod is gone and cleaned
// up), unless the pod came back meanwhile.
func (r *Runtime) removeWorker(w *podWorker) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !w.isRemoved() {
		return false
	}
	if r.workers[w.uid] == w {
		delete(r.workers, w.uid)
	}
	return true
}

// sweep removes ghosts: sandboxes and containers that are not labelled for
// a pod with a worker, and pod directories nobody owns.
func (r *Runtime) sweep(ctx context.Context) {
	sbs, err := r.cri.listSandboxes(ctx, nil)
	if err != nil {
		r.metrics.syncErrors.WithLabelValues("sweep").Inc()
		return
	}
	ctrs, err := r.cri.listContainers(ctx, nil)
	if err != nil {
		r.metrics.syncErrors.WithLabelValues("sweep").Inc()
		return
	}
	r.mu.Lock()
	known := make(map[types.UID]bool, len(r.workers))
	for uid := range r.workers {
		known[uid] = true
	}
	r.mu.Unlock()

	inCRI := map[types.UID]bool{}
	ghostSandboxes := map[string]bool{}
	for _, s := range sbs {
		own, ours := ownerOf(s.Labels, r.cfg.NodeName)
		if ours {
			inCRI[own.UID] = true
		}
		if ours && known[own.UID] {
			continue
		}
		ghostSandboxes[s.Id] = true
		r.removeGhost(ctx, "sandbox", s.Id, func(ctx context.Context) error {
			return r.removeGhostSandbox(ctx, s, ctrs, own, ours)
		})
	}
	for _, c := range ctrs {
		own, ours := ownerOf(c.Labels, r.cfg.NodeName)
		if ours {
			inCRI[own.UID] = true
		}
		if (ours && known[own.UID]) || ghostSandboxes[c.PodSandboxId] {
			continue
		}
		r.removeGhost(ctx, "container", c.Id, func(ctx context.Context) error {
			grace := time.Duration(0)
			if ours {
				grace = time.Duration(max(annotationInt(c.Annotations, annotationGracePeriod, 0), 0)) * time.Second
			}
			if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				if err := r.cri.stopContainer(ctx, c.Id, grace); err != nil {
					return err
				}
			}
			return r.cri.removeContainer(ctx, c.Id)
		})
	}
	// Directories of pods that neither the Source nor CRI knows.
	for _, uid := range r.volumes.podDirs() {
		if !known[uid] && !inCRI[uid] {
			if err := r.volumes.cleanup(uid); err != nil {
				r.log.Warn("removing an orphaned pod directory failed", "uid", uid, "error", err)
			}
			removePodCgroup(r.cfg.CgroupParent, uid)
		}
	}
	entries, _ := os.ReadDir(r.cfg.PodLogDir)
	for _, e := range entries {
		i := strings.LastIndex(e.Name(), "_")
		if i < 0 {
			continue
		}
		uid := types.UID(e.Name()[i+1:])
		if !known[uid] && !inCRI[uid] {
			os.RemoveAll(filepath.Join(r.cfg.PodLogDir, e.Name()))
		}
	}
}

// removeGhost runs remove in the background unless a removal of id is
// already under way; at most cap(ghostSlots) run at once.
func (r *Runtime) removeGhost(ctx context.Context, kind, id string, remove func(context.Context) error) {
	r.mu.Lock()
	if r.ghosts[id] {
		r.mu.Unlock()
		return
	}
	r.ghosts[id] = true
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.ghosts, id)
			r.mu.Unlock()
		}()
		select {
		case r.ghostSlots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-r.ghostSlots }()
		if err := remove(ctx); err != nil {
			if ctx.Err() == nil {
				r.metrics.syncErrors.WithLabelValues("ghost").Inc()
				r.log.Warn("removing a ghost failed; retrying on the next reconcile", "kind", kind, "id", id, "error", err)
			}
			return
		}
		r.metrics.ghostsRemoved.WithLabelValues(kind).Inc()
		r.log.Info("removed a ghost the desired state does not own", "kind", kind, "id", id)
	}()
}

// removeGhostSandbox stops a ghost sandbox's containers (with the grace
// period they recorded, if they are Verge's), then the sandbox, and cleans
// up what a Verge pod left on the host.
func (r *Runtime) removeGhostSandbox(ctx context.Context, s *runtimeapi.PodSandbox, ctrs []*runtimeapi.Container, own owner, ours bool) error {
	var wg sync.WaitGroup
	errs := make([]error, len(ctrs))
	for i, c := range ctrs {
		if c.PodSandboxId != s.Id || c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		grace := time.Duration(0)
		if ours {
			grace = time.Duration(max(annotationInt(c.Annotations, annotationGracePeriod, 0), 0)) * time.Second
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.cri.stopContainer(ctx, c.Id, grace)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := r.cri.stopSandbox(ctx, s.Id); err != nil {
		return err
	}
	if err := r.cri.removeSandbox(ctx, s.Id); err != nil {
		return err
	}
	if ours {
		if err := r.volumes.cleanup(own.UID); err != nil {
			return err
		}
		os.RemoveAll(filepath.Join(r.cfg.PodLogDir, own.Namespace+"_"+own.Name+"_"+string(own.UID)))
		removePodCgroup(r.cfg.CgroupParent, own.UID)
	}
	return nil
}

// relistLoop polls CRI for container and sandbox states and wakes the
// workers of pods whose state changed, so an exit is noticed within
// RelistPeriod. It also keeps the running gauges.
func (r *Runtime) relistLoop(ctx context.Context) {
	type entry struct {
		state string
		uid   types.UID
	}
	prev := map[string]entry{}
	down := false
	ticker := time.NewTicker(r.cfg.RelistPeriod)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		sbs, err1 := r.cri.listSandboxes(ctx, nil)
		ctrs, err2 := r.cri.listContainers(ctx, nil)
		if err := errors.Join(err1, err2); err != nil {
			if !down && ctx.Err() == nil {
				r.log.Warn("CRI runtime unreachable; pods keep running, retrying", "error", err)
				r.metrics.syncErrors.WithLabelValues("relist").Inc()
			}
			down = true
			continue
		}
		if down {
			down = false
			r.log.Info("CRI runtime reachable again")
			r.Trigger()
		}
		cur := make(map[string]entry, len(sbs)+len(ctrs))
		pods, running := 0, 0
		for _, s := range sbs {
			own, ours := ownerOf(s.Labels, r.cfg.NodeName)
			if !ours {
				continue
			}
			cur["s/"+s.Id] = entry{s.State.String(), own.UID}
			if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
				pods++
			}
		}
		for _, c := range ctrs {
			own, ours := ownerOf(c.Labels, r.cfg.NodeName)
			if !ours {
				continue
			}
			cur["c/"+c.Id] = entry{c.State.String(), own.UID}
			if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				running++
			}
		}
		r.metrics.runningPods.Set(float64(pods))
		r.metrics.runningContainers.Set(float64(running))
		changed := map[types.UID]bool{}
		for id, e := range cur {
			if p, ok := prev[id]; !ok || p.state != e.state {
				changed[e.uid] = true
			}
		}
		for id, e := range prev {
			if _, ok := cur[id]; !ok {
				changed[e.uid] = true
			}
		}
		prev = cur
		for uid := range changed {
			r.wake(uid)
		}
	}
}

// observe reads everything CRI knows about one pod.
func (r *Runtime) observe(ctx context.Context, uid types.UID) (*podObs, error) {
	sel := map[string]string{labelPodUID: string(uid), labelManagedBy: managedByValue, labelNode: r.cfg.NodeName}
	sbs, err := r.cri.listSandboxes(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing sandboxes: %w", err)
	}
	ctrs, err := r.cri.listContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	obs := &podObs{}
	for _, s := range sbs {
		var st *runtimeapi.PodSandboxStatus
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			if st, err = r.cri.sandboxStatus(ctx, s.Id); err != nil {
				return nil, fmt.Errorf("sandbox %s status: %w", s.Id, err)
			}
		}
		obs.Sandboxes = append(obs.Sandboxes, sandboxFromCRI(s, st))
	}
	for _, c := range ctrs {
		st, err := r.cri.containerStatus(ctx, c.Id)
		if err != nil {
			// Removed between the list and now; the next sync sees it.
			continue
		}
		obs.Containers = append(obs.Containers, containerFromCRI(c, st))
	}
	sortObs(obs)
	return obs, nil
}

// removePodCgroup removes the pod's (empty) cgroup directories in every
// mounted hierarchy; runc removes the containers' own cgroups.
func removePodCgroup(parent string, uid types.UID) {
	rel := strings.TrimPrefix(parent, "/") + "/pod" + string(uid)
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, root := range roots {
		os.Remove(filepath.Join(root, rel))
	}
}
