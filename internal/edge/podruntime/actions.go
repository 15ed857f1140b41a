package podruntime

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// startAction creates and starts one container.
type startAction struct {
	Name  string
	Init  bool
	Index int // position in the pod spec's list
	// Attempt is the container's restart count.
	Attempt uint32
	// Step is the crash-loop back-off step the container records.
	Step int
}

// killAction stops one running container.
type killAction struct {
	ContainerID string
	Name        string
	// Reason is an event reason explaining the kill (empty: no event).
	Reason, Message string
}

// waiting is why a container is not running yet.
type waiting struct{ Reason, Message string }

// podActions is what one sync of a pod must do, in this order: stop
// sandboxes (killing their containers gracefully), kill containers, remove
// containers, create the sandbox, start containers, remove sandboxes.
type podActions struct {
	StopSandboxes    []string
	Kill             []killAction
	RemoveContainers []string
	CreateSandbox    bool
	SandboxAttempt   uint32
	Start            []startAction
	RemoveSandboxes  []string
	// Waiting holds containers back (crash-loop back-off), by name.
	Waiting map[string]waiting
	// RequeueAt is when a held container may start (zero: nothing held).
	RequeueAt time.Time
	// Terminal: the pod has finished and nothing will run again.
	Terminal bool
}

// actionInput is everything computeActions looks at.
type actionInput struct {
	Pod *kube.Pod
	Obs *podObs
	// LivenessFailed and StartupFailed are keyed by container ID, as is
	// Started (startup probe passed).
	LivenessFailed, StartupFailed, Started map[string]bool
	Now                                    time.Time
	Backoff                                BackoffPolicy
}

// containerHash is recorded on each container; a running container whose
// hash no longer matches the spec is replaced. Of a pod's container fields,
// only the image may change while the pod exists.
func containerHash(c *kube.Container) string {
	h := fnv.New64a()
	h.Write([]byte(c.Image))
	return strconv.FormatUint(h.Sum64(), 16)
}

func restartPolicy(pod *kube.Pod) kube.RestartPolicy {
	if pod.Spec.RestartPolicy == "" {
		return kube.RestartPolicyAlways
	}
	return pod.Spec.RestartPolicy
}

// shouldRestart applies the restart policy to an exited container.
func shouldRestart(policy kube.RestartPolicy, exitCode int32) bool {
	switch policy {
	case kube.RestartPolicyNever:
		return false
	case kube.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

func isTerminalPhase(p kube.PodPhase) bool {
	return p == kube.PodSucceeded || p == kube.PodFailed
}

// computeActions decides what one sync of a running (not terminating) pod
// does, in the manner of the kubelet: one ready sandbox per pod; init
// containers one at a time, in order, each to success; then every regular
// container, restarted per restartPolicy with crash-loop back-off.
func computeActions(in actionInput) (a podActions) {
	pod, obs := in.Pod, in.Obs
	a = podActions{Waiting: map[string]waiting{}}
	policy := restartPolicy(pod)
	sb := obs.latestSandbox()

	// Only the newest sandbox may run; older ready ones are stopped, and
	// containers running outside it are killed.
	stopping := map[string]bool{}
	for i := 1; i < len(obs.Sandboxes); i++ {
		if s := obs.Sandboxes[i]; s.Ready {
			a.StopSandboxes = append(a.StopSandboxes, s.ID)
			stopping[s.ID] = true
		}
	}
	for _, c := range obs.Containers {
		if c.State == stateRunning && !stopping[c.SandboxID] && (sb == nil || !sb.Ready || c.SandboxID != sb.ID) {
			a.Kill = append(a.Kill, killAction{ContainerID: c.ID, Name: c.Name})
		}
	}

	defer func() { gc(&a, pod, obs) }()

	if isTerminalPhase(pod.Status.Phase) {
		a.Terminal = true
		if sb != nil && sb.Ready {
			a.StopSandboxes = append(a.StopSandboxes, sb.ID)
		}
		return a
	}

	if sb == nil || !sb.Ready {
		planNewSandbox(&a, in, policy, sb)
		return a
	}

	// Init containers, in order. Once a regular container has run in this
	// sandbox the pod is initialized: only sidecars still need care.
	initialized := false
	for i := range pod.Spec.Containers {
		if obs.newest(pod.Spec.Containers[i].Name, sb.ID, 0) != nil {
			initialized = true
		}
	}
	for i := range pod.Spec.InitContainers {
		ic := &pod.Spec.InitContainers[i]
		c := obs.newest(ic.Name, sb.ID, 0)
		if isSidecar(ic) {
			// A sidecar keeps running for the pod's life; the next init
			// container waits only until it has started.
			if !a.sidecar(in, ic, i, c) && !initialized {
				return a
			}
			continue
		}
		if initialized {
			continue
		}
		if c == nil {
			a.start(in, ic.Name, true, i, false)
			return a
		}
		switch c.State {
		case stateRunning:
			return a
		case stateExited:
			if c.ExitCode == 0 {
				continue
			}
			if policy == kube.RestartPolicyNever {
				a.Terminal = true
				a.StopSandboxes = append(a.StopSandboxes, sb.ID)
				return a
			}
			a.start(in, ic.Name, true, i, false)
			return a
		default: // created but never started, or lost
			if c.State == stateUnknown {
				a.Kill = append(a.Kill, killAction{ContainerID: c.ID, Name: c.Name})
			}
			a.start(in, ic.Name, true, i, false)
			return a
		}
	}

	keep := 0
	sidecarStarts, sidecarWaits := len(a.Start), len(a.Waiting)
	for i := range pod.Spec.Containers {
		ct := &pod.Spec.Containers[i]
		c := obs.newest(ct.Name, sb.ID, 0)
		if c == nil {
			a.start(in, ct.Name, false, i, false)
			continue
		}
		switch c.State {
		case stateRunning:
			// A container killed here is restarted (or not) by the next
			// sync, once CRI reports it exited; until then it counts as
			// running.
			keep++
			switch {
			case c.Hash != containerHash(ct):
				a.Kill = append(a.Kill, killAction{ContainerID: c.ID, Name: c.Name, Reason: "Killing",
					Message: fmt.Sprintf("Container %s definition changed, will be restarted", ct.Name)})
			case in.LivenessFailed[c.ID]:
				a.Kill = append(a.Kill, killAction{ContainerID: c.ID, Name: c.Name, Reason: "Killing",
					Message: fmt.Sprintf("Container %s failed liveness probe, will be restarted", ct.Name)})
			case in.StartupFailed[c.ID]:
				a.Kill = append(a.Kill, killAction{ContainerID: c.ID, Name: c.Name, Reason: "Killing",
					Message: fmt.Sprintf("Container %s failed startup probe, will be restarted", ct.Name)})
			}
		case stateExited:
			switch {
			case c.Hash != containerHash(ct):
				a.start(in, ct.Name, false, i, true)
			case shouldRestart(policy, c.ExitCode):
				a.start(in, ct.Name, false, i, false)
			}
		default:
			if c.State == stateUnknown {
				a.Kill = append(a.Kill, killAction{ContainerID: c.ID, Name: c.Name})
			}
			a.start(in, ct.Name, false, i, false)
		}
	}
	if keep == 0 && len(a.Start) == sidecarStarts && len(a.Waiting) == sidecarWaits {
		// Every regular container finished and none restarts: release
		// the sandbox (and its IP); sidecars stop with it.
		a.Start = nil
		a.Waiting = map[string]waiting{}
		a.Terminal = true
		a.StopSandboxes = append(a.StopSandboxes, sb.ID)
	}
	return a
}

// isSidecar reports whether an init container is a sidecar (restartPolicy
// Always): started in init order, then kept running for the pod's life.
func isSidecar(c *kube.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == kube.ContainerRestartPolicyAlways
}

// sidecar handles one sidecar (its newest container in the current
// sandbox is c) and reports whether it has started: running and past its
// startup probe. An exited sidecar restarts, with back-off, whatever the
// pod's restartPolicy.
func (a *podActions) sidecar(in actionInput, spec *kube.Container, index int, c *containerObs) bool {
	switch {
	case c == nil:
		a.start(in, spec.Name, true, index, false)
		return false
	case c.State == stateRunning:
		switch {
		case c.Hash != containerHash(spec):
			a.Kill = append(a.Kill, killAction{ContainerID: c.ID, Name: c.Name, Reason: "Killing",
				Message: fmt.Sprintf("Container %s definition changed, will be restarted", spec.Name)})
			return false
		case in.LivenessFailed[c.ID]:
			a.Kill = append(a.Kill, killAction{ContainerID: c.ID, Name: c.Name, Reason: "Killing",
				Message: fmt.Sprintf("Container %s failed liveness probe, will be restarted", spec.Name)})
			return false
		case in.StartupFailed[c.ID]:
			a.Kill = append(a.Kill, killAction{ContainerID: c.ID, Name: c.Name, Reason: "Killing",
				Message: fmt.Sprintf("Container %s failed startup probe, will be restarted", spec.Name)})
			return false
		}
		return spec.StartupProbe == nil || in.Started[c.ID]
	case c.State == stateUnknown:
		a.Kill = append(a.Kill, killAction{ContainerID: c.ID, Name: c.Name})
	}
	a.start(in, spec.Name, true, index, c.State == stateExited && c.Hash != containerHash(spec))
	return false
}

// planNewSandbox handles a pod with no ready sandbox: a first start, a
// sandbox that died (host reboot, containerd lost it), or a finished pod
// whose sandbox was stopped.
func planNewSandbox(a *podActions, in actionInput, policy kube.RestartPolicy, old *sandboxObs) {
	pod, obs := in.Pod, in.Obs
	if old != nil && old.Ready {
		a.StopSandboxes = append(a.StopSandboxes, old.ID)
	}
	if old != nil && policy == kube.RestartPolicyNever && len(obs.Containers) > 0 {
		// It ran before and must not run again.
		a.Terminal = true
		return
	}
	var regular []int
	for i := range pod.Spec.Containers {
		ct := &pod.Spec.Containers[i]
		if policy == kube.RestartPolicyOnFailure {
			if c := obs.newest(ct.Name, "", 0); c != nil && c.State == stateExited && c.ExitCode == 0 {
				continue
			}
		}
		regular = append(regular, i)
	}
	if len(regular) == 0 && initDone(pod, obs) {
		a.Terminal = true
		return
	}
	a.CreateSandbox = true
	if old != nil {
		a.SandboxAttempt = old.Attempt + 1
	}
	// A new sandbox runs the init containers again from the first.
	if len(pod.Spec.InitContainers) > 0 {
		a.start(in, pod.Spec.InitContainers[0].Name, true, 0, false)
		return
	}
	for _, i := range regular {
		a.start(in, pod.Spec.Containers[i].Name, false, i, false)
	}
}

// initDone reports whether every init container's newest run succeeded.
func initDone(pod *kube.Pod, obs *podObs) bool {
	for i := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			continue
		}
		c := obs.newest(pod.Spec.InitContainers[i].Name, "", 0)
		if c == nil || c.State != stateExited || c.ExitCode != 0 {
			return false
		}
	}
	return true
}

// start schedules container name to start now, or holds it in crash-loop
// back-off. specChanged restarts at once (the old container did not crash).
func (a *podActions) start(in actionInput, name string, init bool, index int, specChanged bool) {
	prev := in.Obs.newest(name, "", 0)
	if prev != nil && prev.State == stateRunning {
		// It is being killed (old sandbox); start after it exited.
		prev = nil
	}
	var attempt uint32
	if p := in.Obs.newest(name, "", 0); p != nil {
		attempt = p.Attempt + 1
	} else if n, ok := storedRestartCount(in.Pod, name, init); ok {
		// CRI lost the history (e.g. the image store was wiped): continue
		// the count the cloud last saw.
		attempt = n + 1
	}
	plan := in.Backoff.planRestart(prev)
	if specChanged {
		plan = restartPlan{}
	}
	if plan.NotBefore.After(in.Now) {
		a.Waiting[name] = waiting{Reason: "CrashLoopBackOff", Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
			plan.Delay, name, in.Pod.Name, in.Pod.Namespace, in.Pod.UID)}
		if a.RequeueAt.IsZero() || plan.NotBefore.Before(a.RequeueAt) {
			a.RequeueAt = plan.NotBefore
		}
		return
	}
	a.Start = append(a.Start, startAction{Name: name, Init: init, Index: index, Attempt: attempt, Step: plan.Step})
}

// storedRestartCount returns the restart count of a container the Source's
// pod status reports as having run.
func storedRestartCount(pod *kube.Pod, name string, init bool) (uint32, bool) {
	list := pod.Status.ContainerStatuses
	if init {
		list = pod.Status.InitContainerStatuses
	}
	for _, cs := range list {
		if cs.Name == name && cs.ContainerID != "" && cs.RestartCount >= 0 {
			return uint32(cs.RestartCount), true
		}
	}
	return 0, false
}

// gc removes what the pod no longer needs: of each container name, every
// container but the newest and the newest exited one (which gives lastState
// and `kubectl logs --previous`); containers of names the spec does not
// have; and old sandboxes that are down and empty.
func gc(a *podActions, pod *kube.Pod, obs *podObs) {
	known := map[string]bool{}
	for _, c := range pod.Spec.InitContainers {
		known[c.Name] = true
	}
	for _, c := range pod.Spec.Containers {
		known[c.Name] = true
	}
	killing := map[string]bool{}
	for _, k := range a.Kill {
		killing[k.ContainerID] = true
	}
	// Per name: the newest container (whatever its state) and the newest
	// exited one stay.
	newest := map[string]bool{}
	newestExited := map[string]bool{}
	removed := map[string]bool{}
	for _, c := range obs.Containers {
		keepNewest := !newest[c.Name]
		newest[c.Name] = true
		if c.State == stateRunning {
			if !known[c.Name] && !killing[c.ID] {
				a.Kill = append(a.Kill, killAction{ContainerID: c.ID, Name: c.Name})
			}
			continue
		}
		keepExited := c.State == stateExited && !newestExited[c.Name]
		if c.State == stateExited {
			newestExited[c.Name] = true
		}
		if (known[c.Name] && (keepNewest || keepExited)) || c.State == stateUnknown {
			continue
		}
		a.RemoveContainers = append(a.RemoveContainers, c.ID)
		removed[c.ID] = true
	}
	stopping := map[string]bool{}
	for _, id := range a.StopSandboxes {
		stopping[id] = true
	}
	for i := 1; i < len(obs.Sandboxes); i++ {
		s := obs.Sandboxes[i]
		if s.Ready || stopping[s.ID] {
			continue
		}
		empty := true
		for _, c := range obs.Containers {
			if c.SandboxID == s.ID && !removed[c.ID] {
				empty = false
				break
			}
		}
		if empty {
			a.RemoveSandboxes = append(a.RemoveSandboxes, s.ID)
		}
	}
}

// terminationActions stops everything of a pod that is being deleted:
// every running container (gracefully) and every ready sandbox. done is true
// once nothing runs.
func terminationActions(obs *podObs) (a podActions, done bool) {
	for _, s := range obs.Sandboxes {
		if s.Ready {
			a.StopSandboxes = append(a.StopSandboxes, s.ID)
		}
	}
	for _, c := range obs.Containers {
		if c.State == stateRunning || c.State == stateUnknown {
			a.Kill = append(a.Kill, killAction{ContainerID: c.ID, Name: c.Name})
		}
	}
	return a, len(a.StopSandboxes) == 0 && len(a.Kill) == 0
}
