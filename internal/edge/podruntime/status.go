package podruntime

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// statusInput is everything computeStatus looks at.
type statusInput struct {
	Pod *kube.Pod
	Obs *podObs
	// Waiting explains containers that are not running, by name (back-off,
	// image pull and configuration errors).
	Waiting map[string]waiting
	// Ready and Started are probe results by container ID; a missing entry
	// means no result yet.
	Ready, Started map[string]bool
	// TermMessages are termination messages by container ID.
	TermMessages map[string]string
	NodeIP       string
	// FirstSeen is when this runtime first worked on the pod (the start
	// time when neither the pod's status nor CRI has an earlier one).
	FirstSeen time.Time
	Now       time.Time
	// RuntimeName prefixes container IDs ("containerd://…").
	RuntimeName string
	// Terminating: the pod is being deleted; once nothing runs, its phase
	// is final.
	Terminating bool
	// DeadlineExceeded: the pod ran past activeDeadlineSeconds and was
	// stopped.
	DeadlineExceeded bool
}

// computeStatus derives the pod's status from what CRI reports and what
// the probes say, as the kubelet would report it.
func computeStatus(in statusInput) kube.PodStatus {
	pod, obs := in.Pod, in.Obs
	old := &pod.Status
	st := kube.PodStatus{
		HostIP:             in.NodeIP,
		HostIPs:            []kube.HostIP{{IP: in.NodeIP}},
		QOSClass:           qosClass(pod),
		NominatedNodeName:  old.NominatedNodeName,
		ObservedGeneration: pod.Generation,
	}

	sb := obs.latestSandbox()
	switch {
	case pod.Spec.HostNetwork:
		st.PodIPs = []kube.PodIP{{IP: in.NodeIP}}
	case sb != nil && sb.Ready && len(sb.IPs) > 0:
		for _, ip := range sb.IPs {
			st.PodIPs = append(st.PodIPs, kube.PodIP{IP: ip})
		}
	default:
		// A pod keeps its reported IP while its sandbox is down.
		st.PodIPs = append(st.PodIPs, old.PodIPs...)
	}
	if len(st.PodIPs) > 0 {
		st.PodIP = st.PodIPs[0].IP
	}

	switch {
	case old.StartTime != nil:
		st.StartTime = kube.DeepCopy(old.StartTime)
	default:
		t := in.FirstSeen
		for _, s := range obs.Sandboxes {
			if !s.CreatedAt.IsZero() && (t.IsZero() || s.CreatedAt.Before(t)) {
				t = s.CreatedAt
			}
		}
		if t.IsZero() {
			t = in.Now
		}
		mt := kube.NewTime(t.Truncate(time.Second))
		st.StartTime = &mt
	}

	initPending := false
	for i := range pod.Spec.InitContainers {
		spec := &pod.Spec.InitContainers[i]
		cs := containerStatus(in, spec, true, initPending)
		if !initComplete(spec, &cs) {
			initPending = true
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	// Once regular containers have run, a sandbox restart re-running the
	// init containers does not make the pod uninitialized again.
	regularRan := false
	for i := range pod.Spec.Containers {
		if obs.newest(pod.Spec.Containers[i].Name, "", 0) != nil {
			regularRan = true
		}
	}
	initialized := !initPending || regularRan
	for i := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, containerStatus(in, &pod.Spec.Containers[i], false, !initialized))
	}

	st.Phase = podPhase(pod, st.InitContainerStatuses, st.ContainerStatuses, in.Terminating)
	if in.DeadlineExceeded {
		st.Phase = kube.PodFailed
		st.Reason = "DeadlineExceeded"
		st.Message = "Pod was active on the node longer than the specified deadline"
	}
	if isTerminalPhase(old.Phase) {
		// Terminal phases are final.
		st.Phase, st.Reason, st.Message = old.Phase, old.Reason, old.Message
	}

	st.Conditions = conditions(in, &st, sb, initialized)
	return st
}

// deadlineExceeded reports whether the pod has been active longer than its
// activeDeadlineSeconds, counted from its start time.
func deadlineExceeded(pod *kube.Pod, start, now time.Time) bool {
	d := pod.Spec.ActiveDeadlineSeconds
	return d != nil && !start.IsZero() && now.Sub(start) >= time.Duration(*d)*time.Second
}

// containerStatus reports one container: its newest CRI container (any
// sandbox) is the current state, the one before it the last state.
func containerStatus(in statusInput, spec *kube.Container, init, podInitializing bool) kube.ContainerStatus {
	cs := kube.ContainerStatus{Name: spec.Name, Image: spec.Image}
	cur := in.Obs.newest(spec.Name, "", 0)
	prev := in.Obs.newest(spec.Name, "", 1)
	w, held := in.Waiting[spec.Name]
	started := false

	if cur == nil {
		reason := "ContainerCreating"
		if podInitializing {
			reason = "PodInitializing"
		}
		if held {
			cs.State.Waiting = &kube.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}
		} else {
			cs.State.Waiting = &kube.ContainerStateWaiting{Reason: reason}
		}
		if n, ok := storedRestartCount(in.Pod, spec.Name, init); ok {
			cs.RestartCount = int32(n)
		}
		cs.Started = ptr(false)
		return cs
	}

	cs.RestartCount = int32(cur.Attempt)
	cs.ContainerID = in.RuntimeName + "://" + cur.ID
	cs.ImageID = cur.ImageRef
	if cur.Image != "" && !strings.HasPrefix(cur.Image, "sha256:") {
		cs.Image = cur.Image
	}
	switch cur.State {
	case stateRunning:
		cs.State.Running = &kube.ContainerStateRunning{StartedAt: metaTime(cur.StartedAt)}
		if prev != nil && prev.State == stateExited {
			cs.LastTerminationState.Terminated = terminated(in, prev)
		}
		started = spec.StartupProbe == nil || in.Started[cur.ID]
		switch {
		case !started:
		case spec.ReadinessProbe == nil:
			cs.Ready = true
		default:
			cs.Ready = in.Ready[cur.ID]
		}
		if init && !isSidecar(spec) {
			// An init container is never "ready"; it runs to completion.
			cs.Ready = false
		}
	case stateExited:
		if held {
			cs.State.Waiting = &kube.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}
			cs.LastTerminationState.Terminated = terminated(in, cur)
		} else {
			cs.State.Terminated = terminated(in, cur)
			if prev != nil && prev.State == stateExited {
				cs.LastTerminationState.Terminated = terminated(in, prev)
			}
		}
		if init && !isSidecar(spec) && cur.ExitCode == 0 {
			cs.Ready = true
		}
	default:
		reason := "ContainerCreating"
		if held {
			reason = w.Reason
		}
		cs.State.Waiting = &kube.ContainerStateWaiting{Reason: reason, Message: w.Message}
		if prev != nil && prev.State == stateExited {
			cs.LastTerminationState.Terminated = terminated(in, prev)
		}
	}
	cs.Started = ptr(started)
	return cs
}

// initComplete reports whether an init container no longer holds up the
// pod: a regular one succeeded, a sidecar runs and has started.
func initComplete(spec *kube.Container, cs *kube.ContainerStatus) bool {
	if isSidecar(spec) {
		return cs.State.Running != nil && cs.Started != nil && *cs.Started
	}
	t := cs.State.Terminated
	return t != nil && t.ExitCode == 0
}

func terminated(in statusInput, c *containerObs) *kube.ContainerStateTerminated {
	t := &kube.ContainerStateTerminated{
		ExitCode:    c.ExitCode,
		Reason:      c.Reason,
		Message:     c.Message,
		StartedAt:   metaTime(c.StartedAt),
		FinishedAt:  metaTime(c.FinishedAt),
		ContainerID: in.RuntimeName + "://" + c.ID,
	}
	if m := in.TermMessages[c.ID]; m != "" {
		t.Message = m
	}
	if t.Reason == "" {
		t.Reason = "Error"
		if c.ExitCode == 0 {
			t.Reason = "Completed"
		}
	}
	return t
}

func metaTime(t time.Time) kube.Time {
	if t.IsZero() {
		return kube.Time{}
	}
	return kube.NewTime(t.Truncate(time.Second))
}

func ptr[T any](v T) *T { return &v }

// podPhase follows the kubelet: Pending until the init containers succeed
// and every regular container has run; Running while any runs or will be
// restarted; Succeeded or Failed when all stopped for good. A pod being
// deleted ends Succeeded or Failed whatever its restartPolicy.
func podPhase(pod *kube.Pod, initStatuses, statuses []kube.ContainerStatus, terminating bool) kube.PodPhase {
	policy := restartPolicy(pod)
	pendingInit := false
	for i, cs := range initStatuses {
		spec := &pod.Spec.InitContainers[i]
		if initComplete(spec, &cs) {
			continue
		}
		t := cs.State.Terminated
		failed := (t != nil && t.ExitCode != 0) ||
			(cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.ExitCode != 0)
		// A failing sidecar restarts whatever the pod's policy.
		if failed && !isSidecar(spec) && (policy == kube.RestartPolicyNever || terminating) {
			return kube.PodFailed
		}
		pendingInit = true
	}
	var running, waiting, stopped, succeeded int
	for _, cs := range statuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if last := cs.LastTerminationState.Terminated; last != nil {
				stopped++
				if last.ExitCode == 0 && terminating {
					succeeded++
				}
			} else {
				waiting++
			}
		}
	}
	if terminating && running == 0 {
		if stopped > 0 && stopped == succeeded && waiting == 0 && !pendingInit {
			return kube.PodSucceeded
		}
		return kube.PodFailed
	}
	// A sandbox restart re-runs the init containers of a pod whose regular
	// containers already ran; that pod does not go back to Pending.
	if pendingInit && running == 0 && stopped == 0 {
		return kube.PodPending
	}
	switch {
	case waiting > 0:
		return kube.PodPending
	case running > 0:
		return kube.PodRunning
	case stopped > 0:
		switch policy {
		case kube.RestartPolicyAlways:
			return kube.PodRunning
		case kube.RestartPolicyOnFailure:
			if stopped == succeeded {
				return kube.PodSucceeded
			}
			return kube.PodRunning
		default:
			if stopped == succeeded {
				return kube.PodSucceeded
			}
			return kube.PodFailed
		}
	}
	return kube.PodPending
}

// conditions computes the conditions the node owns and keeps the others
// (PodScheduled, readiness gates, DisruptionTarget) from the pod.
func conditions(in statusInput, st *kube.PodStatus, sb *sandboxObs, initialized bool) []kube.PodCondition {
	pod := in.Pod
	now := kube.NewTime(in.Now.Truncate(time.Second))
	prev := map[kube.PodConditionType]kube.PodCondition{}
	for _, c := range pod.Status.Conditions {
		prev[c.Type] = c
	}
	mk := func(t kube.PodConditionType, ok bool, reason, msg string) kube.PodCondition {
		c := kube.PodCondition{Type: t, Status: kube.ConditionFalse, Reason: reason, Message: msg, ObservedGeneration: pod.Generation}
		if ok {
			c.Status = kube.ConditionTrue
			c.Reason, c.Message = "", ""
		}
		c.LastTransitionTime = now
		if p, found := prev[t]; found && p.Status == c.Status && !p.LastTransitionTime.IsZero() {
			c.LastTransitionTime = p.LastTransitionTime
		}
		return c
	}

	sandboxOK := sb != nil && sb.Ready && (pod.Spec.HostNetwork || len(sb.IPs) > 0)
	var notInit, notReady []string
	for i, cs := range st.InitContainerStatuses {
		spec := &pod.Spec.InitContainers[i]
		if !initComplete(spec, &cs) {
			notInit = append(notInit, cs.Name)
		}
		if isSidecar(spec) && !cs.Ready {
			// Sidecars count towards readiness like regular containers.
			notReady = append(notReady, cs.Name)
		}
	}
	for _, cs := range st.ContainerStatuses {
		if !cs.Ready {
			notReady = append(notReady, cs.Name)
		}
	}
	var gatesNotReady []string
	for _, g := range pod.Spec.ReadinessGates {
		if c, ok := prev[g.ConditionType]; !ok || c.Status != kube.ConditionTrue {
			gatesNotReady = append(gatesNotReady, string(g.ConditionType))
		}
	}

	var out []kube.PodCondition
	out = append(out, mk(kube.PodReadyToStartContainers, sandboxOK, "", ""))
	if st.Phase == kube.PodSucceeded {
		out = append(out, mk(kube.PodInitialized, true, "", ""))
		out = append(out, mk(kube.PodReady, false, "PodCompleted", ""))
		out = append(out, mk(kube.ContainersReady, false, "PodCompleted", ""))
	} else {
		out = append(out, mk(kube.PodInitialized, initialized, "ContainersNotInitialized", listMsg("containers with incomplete status", notInit)))
		containersReady := len(notReady) == 0 && initialized && st.Phase == kube.PodRunning
		if !initialized || st.Phase != kube.PodRunning {
			// Report every regular container as not ready until it is.
			if len(notReady) == 0 {
				for _, cs := range st.ContainerStatuses {
					notReady = append(notReady, cs.Name)
				}
			}
		}
		switch {
		case !containersReady:
			out = append(out, mk(kube.PodReady, false, "ContainersNotReady", listMsg("containers with unready status", notReady)))
		case len(gatesNotReady) > 0:
			out = append(out, mk(kube.PodReady, false, "ReadinessGatesNotReady", listMsg("corresponding condition of pod readiness gate", gatesNotReady)+" does not exist or is not True"))
		default:
			out = append(out, mk(kube.PodReady, true, "", ""))
		}
		out = append(out, mk(kube.ContainersReady, containersReady, "ContainersNotReady", listMsg("containers with unready status", notReady)))
	}
	owned := map[kube.PodConditionType]bool{}
	for _, c := range out {
		owned[c.Type] = true
	}
	var kept []kube.PodCondition
	for _, c := range pod.Status.Conditions {
		if !owned[c.Type] {
			kept = append(kept, kube.DeepCopy(c))
		}
	}
	if _, ok := prev[kube.PodScheduled]; !ok {
		kept = append(kept, kube.PodCondition{Type: kube.PodScheduled, Status: kube.ConditionTrue, LastTransitionTime: now})
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Type < kept[j].Type })
	return append(out, kept...)
}

func listMsg(prefix string, names []string) string {
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: [%s]", prefix, strings.Join(names, " "))
}

// qosClass classifies the pod as the API server documents: Guaranteed when
// every container has equal CPU and memory requests and limits, BestEffort
// when none sets any, Burstable otherwise.
func qosClass(pod *kube.Pod) kube.PodQOSClass {
	requests := kube.ResourceList{}
	limits := kube.ResourceList{}
	zero := kube.Quantity{}
	isGuaranteed := true
	all := append(append([]kube.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for name, q := range c.Resources.Requests {
			if (name == kube.ResourceCPU || name == kube.ResourceMemory) && q.Cmp(zero) == 1 {
				add(requests, name, q)
			}
		}
		got := 0
		for name, q := range c.Resources.Limits {
			if (name == kube.ResourceCPU || name == kube.ResourceMemory) && q.Cmp(zero) == 1 {
				got++
				add(limits, name, q)
			}
		}
		if got != 2 {
			isGuaranteed = false
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return kube.PodQOSBestEffort
	}
	if isGuaranteed {
		for name, req := range requests {
			if l, ok := limits[name]; !ok || l.Cmp(req) != 0 {
				isGuaranteed = false
				break
			}
		}
	}
	if isGuaranteed && len(requests) == len(limits) {
		return kube.PodQOSGuaranteed
	}
	return kube.PodQOSBurstable
}

func add(rl kube.ResourceList, name kube.ResourceName, q kube.Quantity) {
	if cur, ok := rl[name]; ok {
		cur.Add(q)
		rl[name] = cur
	} else {
		rl[name] = q
	}
}
