package podruntime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// podWorker owns one pod: a goroutine that syncs it whenever poked, at
// back-off deadlines, and on every reconcile, until the pod is gone and
// cleaned up. Nothing it does waits on another pod.
type podWorker struct {
	rt     *Runtime
	uid    types.UID
	wakeCh chan struct{}

	mu      sync.Mutex
	pod     *kube.Pod // latest desired; the last known one once removed
	removed bool
	cancel  context.CancelFunc // aborts the current sync (pulls) on deletion

	// The fields below belong to the worker goroutine.
	name        types.NamespacedName
	firstSeen   time.Time
	deadline    bool            // activeDeadlineSeconds passed: stopped for good
	last        *kube.PodStatus // last reported status (or the stored one)
	seenVersion string          // resourceVersion of the desired pod last compared with last
	waiting     map[string]waiting
	pulls       map[string]pullBackoff // by image
	sandbox     pullBackoff            // failed sandbox creations
	killStarted time.Time
	terminated  bool // PodTerminated sent
	failures    int  // consecutive failed syncs
}

func newPodWorker(r *Runtime, p *kube.Pod) *podWorker {
	w := &podWorker{
		rt:        r,
		uid:       p.UID,
		wakeCh:    make(chan struct{}, 1),
		pod:       p,
		name:      types.NamespacedName{Namespace: p.Namespace, Name: p.Name},
		firstSeen: r.cfg.Clock.Now(),
		waiting:   map[string]waiting{},
		pulls:     map[string]pullBackoff{},
	}
	st := kube.DeepCopy(&p.Status)
	w.last = st
	w.seenVersion = p.ResourceVersion
	return w
}

func (w *podWorker) poke() {
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
}

// update records the newest desired pod; a new deletion aborts a sync in
// progress (an image pull need not finish for a pod being deleted).
func (w *podWorker) update(p *kube.Pod) {
	w.mu.Lock()
	defer w.mu.Unlock()
	deleting := p.DeletionTimestamp != nil && (w.pod == nil || w.pod.DeletionTimestamp == nil)
	w.pod = p
	w.removed = false
	if deleting && w.cancel != nil {
		w.cancel()
	}
}

func (w *podWorker) markRemoved() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.removed && w.cancel != nil {
		w.cancel()
	}
	w.removed = true
}

func (w *podWorker) isRemoved() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.removed
}

func (w *podWorker) snapshot() (*kube.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.removed
}

func (w *podWorker) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		sctx, cancel := context.WithCancel(ctx)
		w.mu.Lock()
		w.cancel = cancel
		w.mu.Unlock()
		next, finished := w.sync(ctx, sctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if finished && w.rt.removeWorker(w) {
			w.rt.probes.forget(w.uid)
			w.rt.events.forget(w.uid)
			return
		}
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 10*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wakeCh:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// sync brings the pod one step closer to its desired state and reports its
// status. ctx lives as long as the runtime; sctx is cancelled when the pod
// starts terminating. It returns when to sync again (zero: only when
// poked) and whether the worker is done.
func (w *podWorker) sync(ctx, sctx context.Context) (next time.Time, finished bool) {
	start := time.Now()
	defer func() { w.rt.metrics.syncSeconds.Observe(time.Since(start).Seconds()) }()
	pod, removed := w.snapshot()
	obs, err := w.rt.observe(ctx, w.uid)
	if err != nil {
		return w.failed("observe", err), false
	}
	if removed || pod.DeletionTimestamp != nil {
		return w.terminate(ctx, pod, removed, obs)
	}
	w.killStarted = time.Time{}

	r := w.rt
	now := r.cfg.Clock.Now()
	if !w.deadline && !isTerminalPhase(w.last.Phase) {
		start := w.firstSeen
		if w.last.StartTime != nil {
			start = w.last.StartTime.Time
		}
		w.deadline = deadlineExceeded(pod, start, now)
		if w.deadline {
			w.event(kube.EventTypeNormal, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
		}
	}
	if w.deadline {
		// Stopped for good, like a deleted pod, but it stays.
		if acts, done := terminationActions(obs); !done {
			w.killAll(ctx, pod, obs, acts.Kill, gracePeriod(pod))
			for _, id := range acts.StopSandboxes {
				if err := r.cri.stopSandbox(ctx, id); err != nil {
					r.metrics.syncErrors.WithLabelValues("stop_sandbox").Inc()
				}
			}
			if obs, err = r.observe(ctx, w.uid); err != nil {
				return w.failed("observe", err), false
			}
		}
		r.probes.forget(w.uid)
		w.report(pod, obs, nil, false)
		return time.Time{}, false
	}
	// A pod this worker reported finished does not run again, even before
	// the report has reached the cloud and come back in the Source.
	decide := pod
	if isTerminalPhase(w.last.Phase) && !isTerminalPhase(pod.Status.Phase) {
		decide = kube.DeepCopy(pod)
		decide.Status.Phase = w.last.Phase
	}
	acts := computeActions(actionInput{
		Pod: decide, Obs: obs, Now: now, Backoff: r.cfg.CrashLoopBackOff,
		LivenessFailed: w.probeFailed(obs, liveness), StartupFailed: w.probeFailed(obs, startup),
		Started: w.probeStarted(obs),
	})
	if pod.Spec.ActiveDeadlineSeconds != nil && !acts.Terminal {
		start := w.firstSeen
		if w.last.StartTime != nil {
			start = w.last.StartTime.Time
		}
		at := start.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second)
		if at.After(now) && (acts.RequeueAt.IsZero() || at.Before(acts.RequeueAt)) {
			acts.RequeueAt = at
		}
	}

	var vols map[string]volumeMountSource
	var volErr error
	if !acts.Terminal {
		vols, volErr = r.volumes.setup(sctx, pod, w.facts(pod, obs.latestSandbox()), now)
		if volErr != nil {
			r.metrics.syncErrors.WithLabelValues("volumes").Inc()
			w.event(kube.EventTypeWarning, "FailedMount", volErr.Error())
			// Containers cannot start without their volumes; stops and
			// removals still happen.
			acts.CreateSandbox = false
			acts.Start = nil
		}
	}

	if acts.CreateSandbox || len(acts.Start) > 0 {
		// Pulls and sandbox set-up can take long: report the pod as it is
		// now (e.g. Pending, ContainerCreating) before starting them.
		w.report(pod, obs, w.waitingNow(acts.Waiting, volErr, pod), false)
	}
	changed := w.execute(ctx, sctx, pod, obs, &acts, vols)
	if changed {
		if obs, err = r.observe(ctx, w.uid); err != nil {
			return w.failed("observe", err), false
		}
	}

	w.report(pod, obs, w.waitingNow(acts.Waiting, volErr, pod), false)
	w.ensureProbes(ctx, pod, obs)
	w.rotateLogs(ctx, pod, obs)

	next = acts.RequeueAt
	// Only future deadlines: a past one (a back-off that already ran out
	// for a container that no longer needs it) would spin.
	soonest := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	soonest(acts.RequeueAt)
	for _, b := range w.pulls {
		soonest(b.notBefore)
	}
	if w.sandbox.failures > 0 {
		soonest(w.sandbox.notBefore)
	}
	if volErr != nil {
		soonest(now.Add(5 * time.Second))
	}
	if changed {
		// Init containers, postStart hooks and kills settle within moments;
		// look again soon rather than wait for the relist.
		soonest(now.Add(time.Second))
	}
	w.failures = 0
	return next, false
}

// waitingNow merges the reasons containers are held: errors from earlier
// start attempts, back-off, and a volume failure.
func (w *podWorker) waitingNow(held map[string]waiting, volErr error, pod *kube.Pod) map[string]waiting {
	out := map[string]waiting{}
	for k, v := range w.waiting {
		out[k] = v
	}
	for k, v := range held {
		out[k] = v
	}
	if volErr != nil {
		for _, c := range append(append([]kube.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
			if _, ok := out[c.Name]; !ok {
				out[c.Name] = waiting{Reason: "ContainerCreating", Message: volErr.Error()}
			}
		}
	}
	return out
}

// failed counts a failed sync and returns when to retry (1 s doubling to
// 30 s).
func (w *podWorker) failed(step string, err error) time.Time {
	w.rt.metrics.syncErrors.WithLabelValues(step).Inc()
	w.failures++
	if w.failures == 1 || w.failures%10 == 0 {
		w.rt.log.Warn("pod sync failed", "pod", w.name.String(), "uid", w.uid, "step", step, "error", err)
	}
	d := time.Second << min(w.failures-1, 5)
	return time.Now().Add(min(d, 30*time.Second))
}

func (w *podWorker) event(eventType, reason, message string) {
	w.rt.event(w.uid, w.name, eventType, reason, message)
}

// facts are the downward-API values of the pod's current sandbox.
func (w *podWorker) facts(pod *kube.Pod, sb *sandboxObs) podFacts {
	f := podFacts{NodeIP: w.rt.cfg.NodeIP, Allocatable: w.rt.cfg.Allocatable}
	switch {
	case pod.Spec.HostNetwork:
		f.PodIPs = []string{w.rt.cfg.NodeIP}
	case sb != nil && sb.Ready:
		f.PodIPs = sb.IPs
	}
	return f
}

// probeFailed returns the containers whose liveness or startup probe has
// failed.
func (w *podWorker) probeFailed(obs *podObs, kind probeKind) map[string]bool {
	out := map[string]bool{}
	for _, c := range obs.Containers {
		if c.State != stateRunning {
			continue
		}
		if r, ok := w.rt.probes.result(c.ID, kind); ok && r == resultFailure {
			out[c.ID] = true
		}
	}
	return out
}

// probeStarted returns the running containers whose startup probe passed.
func (w *podWorker) probeStarted(obs *podObs) map[string]bool {
	out := map[string]bool{}
	for _, c := range obs.Containers {
		if r, ok := w.rt.probes.result(c.ID, startup); ok && r == resultSuccess && c.State == stateRunning {
			out[c.ID] = true
		}
	}
	return out
}

// execute carries out acts in order; it reports whether it changed
// anything in CRI.
func (w *podWorker) execute(ctx, sctx context.Context, pod *kube.Pod, obs *podObs, acts *podActions, vols map[string]volumeMountSource) bool {
	r := w.rt
	changed := false
	byID := map[string]*containerObs{}
	for i := range obs.Containers {
		byID[obs.Containers[i].ID] = &obs.Containers[i]
	}

	// Stop superseded sandboxes, killing their containers gracefully first.
	for _, sbID := range acts.StopSandboxes {
		var kills []killAction
		for _, c := range obs.Containers {
			if c.SandboxID == sbID && c.State == stateRunning {
				kills = append(kills, killAction{ContainerID: c.ID, Name: c.Name})
			}
		}
		w.killAll(ctx, pod, obs, kills, gracePeriod(pod))
		if err := r.cri.stopSandbox(ctx, sbID); err != nil {
			r.metrics.syncErrors.WithLabelValues("stop_sandbox").Inc()
			w.rt.log.Warn("stopping a sandbox failed", "pod", w.name.String(), "sandbox", sbID, "error", err)
		}
		changed = true
	}
	if len(acts.Kill) > 0 {
		w.killAll(ctx, pod, obs, acts.Kill, gracePeriod(pod))
		changed = true
	}
	for _, id := range acts.RemoveContainers {
		if err := r.cri.removeContainer(ctx, id); err != nil {
			r.metrics.syncErrors.WithLabelValues("remove_container").Inc()
			continue
		}
		if c := byID[id]; c != nil {
			removeContainerLogs(containerLogPath(r.cfg.PodLogDir, pod, c.Name, c.Attempt))
			if c.TermMsgPath != "" && strings.HasPrefix(c.TermMsgPath, r.volumes.podDir(pod.UID)+"/") {
				os.Remove(c.TermMsgPath)
			}
		}
		changed = true
	}

	sb := obs.latestSandbox()
	sbID := ""
	if sb != nil && sb.Ready {
		sbID = sb.ID
	}
	sbCfg, dnsWarning := buildSandboxConfig(pod, acts.SandboxAttempt, w.sandboxOpts())
	if sb != nil && !acts.CreateSandbox {
		sbCfg.Metadata.Attempt = sb.Attempt
	}
	var podIPs []string
	if sb != nil && sb.Ready {
		podIPs = sb.IPs
	}
	if acts.CreateSandbox {
		now := r.cfg.Clock.Now()
		if w.sandbox.failures > 0 && now.Before(w.sandbox.notBefore) {
			return changed
		}
		if dnsWarning != "" {
			w.event(kube.EventTypeWarning, "MissingClusterDNS", dnsWarning)
		}
		if sb != nil {
			w.event(kube.EventTypeNormal, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
		}
		if err := os.MkdirAll(sbCfg.LogDirectory, 0o755); err != nil {
			w.sandboxFailed(err)
			return changed
		}
		id, err := r.cri.runSandbox(sctx, sbCfg)
		if err != nil {
			w.sandboxFailed(err)
			return changed
		}
		changed = true
		w.sandbox = pullBackoff{}
		sbID = id
		st, err := r.cri.sandboxStatus(ctx, id)
		if err != nil {
			r.metrics.syncErrors.WithLabelValues("sandbox_status").Inc()
			return changed
		}
		podIPs = sandboxFromCRI(&runtimeapi.PodSandbox{Id: id}, st).IPs
	}

	if sbID != "" {
		facts := w.facts(pod, &sandboxObs{Ready: true, IPs: podIPs})
		for _, s := range acts.Start {
			if sctx.Err() != nil {
				break
			}
			if w.startContainer(ctx, sctx, pod, sbID, sbCfg, s, vols, facts) {
				changed = true
			}
		}
	}
	for _, id := range acts.RemoveSandboxes {
		if err := r.cri.removeSandbox(ctx, id); err != nil {
			r.metrics.syncErrors.WithLabelValues("remove_sandbox").Inc()
			continue
		}
		changed = true
	}
	return changed
}

func (w *podWorker) sandboxOpts() sandboxOpts {
	c := w.rt.cfg
	return sandboxOpts{NodeName: c.NodeName, CgroupParent: c.CgroupParent, PodLogDir: c.PodLogDir, ClusterDNS: c.ClusterDNS, ClusterDomain: c.ClusterDomain}
}

func (w *podWorker) sandboxFailed(err error) {
	r := w.rt
	r.metrics.syncErrors.WithLabelValues("create_sandbox").Inc()
	w.sandbox = r.cfg.ImagePullBackOff.fail(w.sandbox, r.cfg.Clock.Now(), err.Error())
	w.event(kube.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: "+err.Error())
}

// specOf finds a container of the pod by name.
func specOf(pod *kube.Pod, name string) (*kube.Container, bool) {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i], true
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i], false
		}
	}
	return nil, false
}

// startContainer pulls, configures, creates and starts one container and
// runs its postStart hook. Failures become the container's waiting reason.
func (w *podWorker) startContainer(ctx, sctx context.Context, pod *kube.Pod, sbID string, sbCfg *runtimeapi.PodSandboxConfig, s startAction, vols map[string]volumeMountSource, facts podFacts) bool {
	r := w.rt
	spec, _ := specOf(pod, s.Name)
	if spec == nil {
		return false
	}
	image, err := w.ensureImage(sctx, pod, spec, sbCfg)
	if err != nil {
		return false
	}
	env, warnings, err := makeEnv(sctx, r.src, pod, spec, facts)
	if err != nil {
		w.configFailed(s.Name, err)
		return false
	}
	for _, msg := range warnings {
		w.event(kube.EventTypeWarning, "InvalidEnvironmentVariableNames", msg)
	}
	termPath := ""
	if spec.TerminationMessagePath != "" {
		termPath = filepath.Join(r.volumes.podDir(pod.UID), "containers", s.Name, fmt.Sprintf("%d-termination-log", s.Attempt))
		if err := os.MkdirAll(filepath.Dir(termPath), 0o755); err != nil {
			w.configFailed(s.Name, err)
			return false
		}
		if err := os.WriteFile(termPath, nil, 0o666); err != nil {
			w.configFailed(s.Name, err)
			return false
		}
		_ = os.Chmod(termPath, 0o666) // writable by non-root containers, as the kubelet makes it
	}
	mounts, err := containerMounts(spec, vols, env, termPath)
	if err != nil {
		w.configFailed(s.Name, err)
		return false
	}
	cfg := buildContainerConfig(containerBuild{
		Pod: pod, C: spec, Init: s.Init, Attempt: s.Attempt, Step: s.Step, Image: image, Env: env,
		Mounts: mounts, TermMsgPath: termPath, NodeName: r.cfg.NodeName, MemCapacity: memCapacity(r.cfg.Allocatable),
	})
	id, err := r.cri.createContainer(sctx, sbID, cfg, sbCfg)
	if err != nil {
		r.metrics.syncErrors.WithLabelValues("create_container").Inc()
		w.waiting[s.Name] = waiting{Reason: "CreateContainerError", Message: err.Error()}
		w.event(kube.EventTypeWarning, "Failed", "Error: "+err.Error())
		return false
	}
	w.event(kube.EventTypeNormal, "Created", "Created container "+s.Name)
	if err := r.cri.startContainer(sctx, id); err != nil {
		r.metrics.syncErrors.WithLabelValues("start_container").Inc()
		w.waiting[s.Name] = waiting{Reason: "RunContainerError", Message: err.Error()}
		w.event(kube.EventTypeWarning, "Failed", "Error: "+err.Error())
		return true
	}
	delete(w.waiting, s.Name)
	w.event(kube.EventTypeNormal, "Started", "Started container "+s.Name)
	if s.Attempt > 0 {
		r.metrics.restarts.Inc()
	}
	if h := spec.Lifecycle; h != nil && h.PostStart != nil {
		ip := ""
		if len(facts.PodIPs) > 0 {
			ip = facts.PodIPs[0]
		}
		if err := r.runHook(sctx, h.PostStart, spec, id, ip, time.Duration(gracePeriod(pod))*time.Second+time.Minute); err != nil {
			w.event(kube.EventTypeWarning, "FailedPostStartHook", err.Error())
			c := containerObs{ID: id, Name: s.Name, State: stateRunning}
			w.killAll(ctx, pod, &podObs{Containers: []containerObs{c}}, []killAction{{ContainerID: id, Name: s.Name,
				Reason: "FailedPostStartHook", Message: "PostStart hook failed"}}, gracePeriod(pod))
		}
	}
	return true
}

func (w *podWorker) configFailed(name string, err error) {
	w.rt.metrics.syncErrors.WithLabelValues("container_config").Inc()
	w.waiting[name] = waiting{Reason: "CreateContainerConfigError", Message: err.Error()}
	w.event(kube.EventTypeWarning, "Failed", "Error: "+err.Error())
}

func memCapacity(rl kube.ResourceList) int64 {
	if q, ok := rl[kube.ResourceMemory]; ok {
		return q.Value()
	}
	return 0
}

// ensureImage makes the container's image available per its pull policy
// and returns the reference to create the container from.
func (w *podWorker) ensureImage(ctx context.Context, pod *kube.Pod, c *kube.Container, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	r := w.rt
	if c.Image == "" {
		w.waiting[c.Name] = waiting{Reason: "InvalidImageName", Message: "container has no image"}
		return "", errors.New("no image")
	}
	policy := pullPolicy(c)
	present, err := r.cri.imageStatus(ctx, c.Image)
	if err != nil {
		r.metrics.syncErrors.WithLabelValues("image_status").Inc()
		w.waiting[c.Name] = waiting{Reason: "ErrImagePull", Message: err.Error()}
		return "", err
	}
	if policy == kube.PullNever {
		if present == nil {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
			w.waiting[c.Name] = waiting{Reason: "ErrImageNeverPull", Message: msg}
			w.event(kube.EventTypeWarning, "ErrImageNeverPull", msg)
			return "", errors.New(msg)
		}
		return present.Id, nil
	}
	if policy == kube.PullIfNotPresent && present != nil {
		r.metrics.imagePulls.WithLabelValues("present").Inc()
		w.event(kube.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
		return present.Id, nil
	}
	now := r.cfg.Clock.Now()
	if b, ok := w.pulls[c.Image]; ok && now.Before(b.notBefore) {
		if present != nil {
			return present.Id, nil
		}
		w.waiting[c.Name] = waiting{Reason: "ImagePullBackOff", Message: fmt.Sprintf("Back-off pulling image %q: %s", c.Image, b.lastError)}
		w.event(kube.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", c.Image))
		return "", errors.New("image pull back-off")
	}
	creds, problems := pullCredentials(ctx, r.src, pod, c.Image)
	for _, p := range problems {
		w.event(kube.EventTypeWarning, "FailedToRetrieveImagePullSecret", p)
	}
	w.event(kube.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", c.Image))
	start := time.Now()
	ref, err := w.pull(ctx, c.Image, creds, sbCfg)
	if err != nil {
		r.metrics.imagePulls.WithLabelValues("failed").Inc()
		if ctx.Err() != nil {
			return "", err
		}
		if present != nil {
			// Offline autonomy: with the registry unreachable, a pod with
			// pull policy Always still restarts from the image it has.
			w.event(kube.EventTypeWarning, "PullFailedUsingLocalImage",
				fmt.Sprintf("Failed to pull image %q (%v); using the copy already on the node", c.Image, err))
			w.pulls[c.Image] = r.cfg.ImagePullBackOff.fail(w.pulls[c.Image], now, err.Error())
			return present.Id, nil
		}
		w.pulls[c.Image] = r.cfg.ImagePullBackOff.fail(w.pulls[c.Image], now, err.Error())
		msg := fmt.Sprintf("Failed to pull image %q: %v", c.Image, err)
		w.waiting[c.Name] = waiting{Reason: "ErrImagePull", Message: msg}
		w.event(kube.EventTypeWarning, "Failed", msg)
		return "", err
	}
	delete(w.pulls, c.Image)
	r.metrics.imagePulls.WithLabelValues("pulled").Inc()
	w.event(kube.EventTypeNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q in %s", c.Image, time.Since(start).Round(time.Millisecond)))
	return ref, nil
}

// pull tries each matching credential (then none, if there were none);
// concurrent pulls of the same image by several pods share one.
func (w *podWorker) pull(ctx context.Context, image string, creds []*runtimeapi.AuthConfig, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	r := w.rt
	key := image
	if len(creds) > 0 {
		key += "\x00" + creds[0].Username
	}
	ch := r.pulls.DoChan(key, func() (any, error) {
		if len(creds) == 0 {
			return r.cri.pullImage(ctx, image, nil, sbCfg)
		}
		var errs []error
		for _, a := range creds {
			ref, err := r.cri.pullImage(ctx, image, a, sbCfg)
			if err == nil {
				return ref, nil
			}
			errs = append(errs, err)
		}
		return "", errors.Join(errs...)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// killAll stops containers: the regular ones concurrently, then the
// sidecars one by one in reverse order (so a proxy or log shipper outlives
// what it serves). Each runs its preStop hook within the grace period, then
// gets SIGTERM and, after the rest of the period, SIGKILL. The grace period
// counts from the start of the pod's termination when it is being deleted.
func (w *podWorker) killAll(ctx context.Context, pod *kube.Pod, obs *podObs, kills []killAction, graceSeconds int64) {
	sidecarOrder := map[string]int{}
	for i := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			sidecarOrder[pod.Spec.InitContainers[i].Name] = i
		}
	}
	var regular, sidecars []killAction
	for _, k := range kills {
		if _, ok := sidecarOrder[k.Name]; ok {
			sidecars = append(sidecars, k)
		} else {
			regular = append(regular, k)
		}
	}
	var wg sync.WaitGroup
	for _, k := range regular {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.kill(ctx, pod, obs, k, graceSeconds)
		}()
	}
	wg.Wait()
	sort.SliceStable(sidecars, func(i, j int) bool { return sidecarOrder[sidecars[i].Name] > sidecarOrder[sidecars[j].Name] })
	for _, k := range sidecars {
		w.kill(ctx, pod, obs, k, graceSeconds)
	}
}

// minGrace is the least time a container gets after SIGTERM (the
// kubelet's minimum too).
const minGrace = 2 * time.Second

func (w *podWorker) kill(ctx context.Context, pod *kube.Pod, obs *podObs, k killAction, graceSeconds int64) {
	r := w.rt
	grace := time.Duration(graceSeconds) * time.Second
	if spec, _ := specOf(pod, k.Name); spec != nil {
		if p := probeFor(spec, r.probes, k.ContainerID); p != nil && p.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
		}
	}
	deadline := time.Now().Add(grace)
	if !w.killStarted.IsZero() {
		deadline = w.killStarted.Add(grace)
	}
	if k.Reason != "" {
		w.event(kube.EventTypeNormal, k.Reason, k.Message)
	} else {
		w.event(kube.EventTypeNormal, "Killing", "Stopping container "+k.Name)
	}
	spec, _ := specOf(pod, k.Name)
	if spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil {
		if left := time.Until(deadline); left > 0 {
			ip := ""
			if pod.Spec.HostNetwork {
				ip = r.cfg.NodeIP
			} else if sb := obs.latestSandbox(); sb != nil && len(sb.IPs) > 0 {
				ip = sb.IPs[0]
			}
			if err := r.runHook(ctx, spec.Lifecycle.PreStop, spec, k.ContainerID, ip, left); err != nil {
				w.event(kube.EventTypeWarning, "FailedPreStopHook", fmt.Sprintf("PreStopHook failed: %v", err))
			}
		}
	}
	left := max(time.Until(deadline), minGrace)
	if err := r.cri.stopContainer(ctx, k.ContainerID, left); err != nil {
		r.metrics.syncErrors.WithLabelValues("kill").Inc()
		r.log.Warn("stopping a container failed", "pod", w.name.String(), "container", k.Name, "id", k.ContainerID, "error", err)
	}
}

// probeFor returns the liveness or startup probe that failed for a
// container (whose terminationGracePeriodSeconds overrides the pod's).
func probeFor(spec *kube.Container, pm *probeManager, id string) *kube.Probe {
	if r, ok := pm.result(id, liveness); ok && r == resultFailure {
		return spec.LivenessProbe
	}
	if r, ok := pm.result(id, startup); ok && r == resultFailure {
		return spec.StartupProbe
	}
	return nil
}

// terminate stops a pod that is being deleted (or vanished from the
// Source) and, once nothing runs, reports it terminated or, if it is gone
// from the Source, removes everything it left.
func (w *podWorker) terminate(ctx context.Context, pod *kube.Pod, removed bool, obs *podObs) (time.Time, bool) {
	r := w.rt
	if w.killStarted.IsZero() {
		w.killStarted = time.Now()
	}
	r.probes.forget(w.uid)
	acts, done := terminationActions(obs)
	if !done {
		var kills []killAction
		kills = append(kills, acts.Kill...)
		w.killAll(ctx, pod, obs, kills, gracePeriod(pod))
		for _, id := range acts.StopSandboxes {
			if err := r.cri.stopSandbox(ctx, id); err != nil {
				r.metrics.syncErrors.WithLabelValues("stop_sandbox").Inc()
			}
		}
		var err error
		if obs, err = r.observe(ctx, w.uid); err != nil {
			return w.failed("observe", err), false
		}
		_, done = terminationActions(obs)
	}
	if !removed {
		w.report(pod, obs, nil, true)
	}
	if !done {
		return time.Now().Add(time.Second), false
	}
	if !removed {
		if !w.terminated {
			w.terminated = true
			r.log.Info("pod terminated", "pod", w.name.String(), "uid", w.uid)
			r.sink.PodTerminated(w.name, w.uid)
		}
		return time.Time{}, false
	}
	// Gone from the Source: remove what is left.
	var errs []error
	for _, c := range obs.Containers {
		errs = append(errs, r.cri.removeContainer(ctx, c.ID))
	}
	for _, s := range obs.Sandboxes {
		errs = append(errs, r.cri.removeSandbox(ctx, s.ID))
	}
	errs = append(errs, r.volumes.cleanup(w.uid))
	if err := errors.Join(errs...); err != nil {
		return w.failed("cleanup", err), false
	}
	os.RemoveAll(podLogDir(r.cfg.PodLogDir, pod))
	removePodCgroup(r.cfg.CgroupParent, w.uid)
	r.log.Info("pod removed", "pod", w.name.String(), "uid", w.uid)
	return time.Time{}, true
}

// report computes the pod's status and sends it if it changed.
func (w *podWorker) report(pod *kube.Pod, obs *podObs, waitingNow map[string]waiting, terminating bool) {
	r := w.rt
	msgs := map[string]string{}
	for _, c := range obs.Containers {
		if c.State == stateExited {
			if m := w.terminationMessage(pod, &c); m != "" {
				msgs[c.ID] = m
			}
		}
	}
	ready, started := map[string]bool{}, map[string]bool{}
	for _, c := range obs.Containers {
		if c.State != stateRunning {
			continue
		}
		if res, ok := r.probes.result(c.ID, readiness); ok {
			ready[c.ID] = res == resultSuccess
		}
		if res, ok := r.probes.result(c.ID, startup); ok {
			started[c.ID] = res == resultSuccess
		}
	}
	// Conditions the cloud owns come from the Source's pod; times, IPs and
	// terminal phases from what this worker reported last.
	basis := kube.DeepCopy(pod)
	prevOwned := w.last
	basis.Status = *kube.DeepCopy(prevOwned)
	basis.Status.Conditions = mergeConditions(prevOwned.Conditions, pod.Status.Conditions)
	st := computeStatus(statusInput{
		Pod: basis, Obs: obs, Waiting: waitingNow, Ready: ready, Started: started, TermMessages: msgs,
		NodeIP: r.cfg.NodeIP, FirstSeen: w.firstSeen, Now: r.cfg.Clock.Now(), RuntimeName: r.runtimeNameOrDefault(),
		Terminating: terminating, DeadlineExceeded: w.deadline,
	})
	// The cloud sends a pod whose status someone else changed (the node
	// lifecycle controller marks pods not ready while the link is down):
	// when the API's view of what this node owns differs from what it
	// reported, report again even if nothing changed here.
	stale := false
	if pod.ResourceVersion != w.seenVersion {
		w.seenVersion = pod.ResourceVersion
		stale = nodeOwnedDiffers(&pod.Status, w.last)
	}
	if !stale && kube.Equal(&st, w.last) {
		return
	}
	w.last = kube.DeepCopy(&st)
	r.sink.PodStatus(w.name, w.uid, st)
}

// nodeOwnedConditions are the pod conditions the node sets; others belong
// to other controllers.
var nodeOwnedConditions = []kube.PodConditionType{kube.PodReadyToStartContainers, kube.PodInitialized, kube.PodReady, kube.ContainersReady}

// nodeOwnedDiffers reports whether the phase or a node-owned condition of
// api (the status the API server holds) differs from ours.
func nodeOwnedDiffers(api, ours *kube.PodStatus) bool {
	if api.Phase != ours.Phase {
		return true
	}
	status := func(s *kube.PodStatus, t kube.PodConditionType) kube.ConditionStatus {
		for _, c := range s.Conditions {
			if c.Type == t {
				return c.Status
			}
		}
		return ""
	}
	for _, t := range nodeOwnedConditions {
		if status(api, t) != status(ours, t) {
			return true
		}
	}
	return false
}

// mergeConditions takes the node-owned conditions from ours and every other
// condition from theirs (the Source's pod).
func mergeConditions(ours, theirs []kube.PodCondition) []kube.PodCondition {
	var out []kube.PodCondition
	for _, c := range ours {
		if slices.Contains(nodeOwnedConditions, c.Type) {
			out = append(out, c)
		}
	}
	for _, c := range theirs {
		if !slices.Contains(nodeOwnedConditions, c.Type) {
			out = append(out, c)
		}
	}
	return out
}

// terminationMessage reads what the container wrote to its termination
// message file, or, with FallbackToLogsOnError and a failure, its log tail.
func (w *podWorker) terminationMessage(pod *kube.Pod, c *containerObs) string {
	const limit = 4096
	if c.TermMsgPath != "" {
		if f, err := os.Open(c.TermMsgPath); err == nil {
			data, _ := io.ReadAll(io.LimitReader(f, limit))
			f.Close()
			if len(data) > 0 {
				return string(data)
			}
		}
	}
	spec, _ := specOf(pod, c.Name)
	if spec == nil || spec.TerminationMessagePolicy != kube.TerminationMessageFallbackToLogsOnError || c.ExitCode == 0 {
		return ""
	}
	return logTail(containerLogPath(w.rt.cfg.PodLogDir, pod, c.Name, c.Attempt), 80, 2048)
}

// logTail returns the message part of the last lines of a CRI log file
// ("<time> <stream> <tag> <message>").
func logTail(path string, lines, maxBytes int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return ""
	}
	const window = 64 << 10
	off := max(info.Size()-window, 0)
	buf := make([]byte, info.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	var b strings.Builder
	for _, l := range all {
		parts := strings.SplitN(l, " ", 4)
		if len(parts) == 4 {
			b.WriteString(parts[3])
			if parts[2] == "F" {
				b.WriteByte('\n')
			}
		}
	}
	s := b.String()
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
	}
	return s
}

// ensureProbes keeps probe workers for the running containers of the
// pod's current sandbox. A restarted verge-edge resumes the readiness and
// startup results it last reported for the same container.
func (w *podWorker) ensureProbes(ctx context.Context, pod *kube.Pod, obs *podObs) {
	sb := obs.latestSandbox()
	var targets []probeTarget
	if sb != nil && sb.Ready {
		ip := w.rt.cfg.NodeIP
		if !pod.Spec.HostNetwork && len(sb.IPs) > 0 {
			ip = sb.IPs[0]
		}
		for _, c := range obs.Containers {
			if c.SandboxID != sb.ID || c.State != stateRunning {
				continue
			}
			spec, init := specOf(pod, c.Name)
			if spec == nil || (init && !isSidecar(spec)) {
				continue
			}
			targets = append(targets, probeTarget{PodUID: w.uid, Pod: w.name, Container: spec, ContainerID: c.ID, StartedAt: c.StartedAt, PodIP: ip})
		}
	}
	last := w.last
	runtimeName := w.rt.runtimeNameOrDefault()
	w.rt.probes.ensure(ctx, w.uid, targets, func(id string, kind probeKind) probeResult {
		for _, cs := range last.ContainerStatuses {
			if cs.ContainerID != runtimeName+"://"+id {
				continue
			}
			switch kind {
			case readiness:
				if cs.Ready {
					return resultSuccess
				}
			case startup:
				if cs.Started != nil && *cs.Started {
					return resultSuccess
				}
			}
		}
		return resultUnknown
	})
}
