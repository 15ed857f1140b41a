package podruntime

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ErrContainerNotFound means the pod has no such container in CRI (never
// started, or already removed).
var ErrContainerNotFound = errors.New("container not found")

// ContainerRef locates one container of a pod for the kubelet-compatible
// endpoints (logs, exec, attach, port-forward) served through the tunnel.
type ContainerRef struct {
	// ID is the CRI container ID (for Exec, Attach).
	ID string
	// SandboxID is the pod sandbox's ID (for PortForward).
	SandboxID string
	PodUID    types.UID
	// LogPath is the CRI log file.
	LogPath string
	Running bool
}

// Container finds the newest container named container of pod
// namespace/podName; with previous, the newest one that has exited — the
// run before the current one, or, for a container waiting to restart, its
// last run (what `kubectl logs --previous` shows of a crash loop). An
// empty container name picks the pod's only container (an error if it has
// several).
func (r *Runtime) Container(ctx context.Context, namespace, podName, container string, previous bool) (ContainerRef, error) {
	sel := map[string]string{labelPodNamespace: namespace, labelPodName: podName, labelManagedBy: managedByValue, labelNode: r.cfg.NodeName}
	if container != "" {
		sel[labelContainerName] = container
	}
	ctrs, err := r.cri.listContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return ContainerRef{}, fmt.Errorf("listing containers of %s/%s: %w", namespace, podName, err)
	}
	if container == "" {
		names := map[string]bool{}
		for _, c := range ctrs {
			names[c.Labels[labelContainerName]] = true
		}
		if len(names) > 1 {
			return ContainerRef{}, fmt.Errorf("pod %s/%s has %d containers: name one", namespace, podName, len(names))
		}
	}
	var obs podObs
	for _, c := range ctrs {
		obs.Containers = append(obs.Containers, containerFromCRI(c, nil))
	}
	sortObs(&obs)
	idx := -1
	for i, c := range obs.Containers {
		if !previous || c.State == stateExited {
			idx = i
			break
		}
	}
	if idx < 0 {
		what := "container"
		if previous {
			what = "previous terminated container"
		}
		return ContainerRef{}, fmt.Errorf("%s %q of pod %s/%s: %w", what, container, namespace, podName, ErrContainerNotFound)
	}
	c := obs.Containers[idx]
	st, err := r.cri.containerStatus(ctx, c.ID)
	if err != nil {
		return ContainerRef{}, fmt.Errorf("container %s: %w", c.ID, err)
	}
	uid := types.UID("")
	for _, raw := range ctrs {
		if raw.Id == c.ID {
			uid = types.UID(raw.Labels[labelPodUID])
		}
	}
	return ContainerRef{ID: c.ID, SandboxID: c.SandboxID, PodUID: uid, LogPath: st.LogPath,
		Running: st.State == runtimeapi.ContainerState_CONTAINER_RUNNING}, nil
}

// RuntimeState is the CRI runtime's health for the node's status.
type RuntimeState struct {
	// Version is "<runtime>://<version>", e.g. "containerd://1.6.20".
	Version string
	// Ready is false when the runtime or its pod network is unusable (or
	// unreachable); Reason says why.
	Ready  bool
	Reason string
}

// RuntimeState asks the CRI runtime for its version and conditions.
func (r *Runtime) RuntimeState(ctx context.Context) RuntimeState {
	v, err := r.cri.version(ctx)
	if err != nil {
		return RuntimeState{Reason: "container runtime unreachable: " + err.Error()}
	}
	st := RuntimeState{Version: v.RuntimeName + "://" + v.RuntimeVersion}
	ctx, cancel := context.WithTimeout(ctx, criQuickTimeout)
	defer cancel()
	resp, err := r.cri.rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		st.Reason = "container runtime status: " + err.Error()
		return st
	}
	st.Ready = true
	for _, c := range resp.GetStatus().GetConditions() {
		if !c.Status {
			st.Ready = false
			st.Reason = fmt.Sprintf("%s is false: %s %s", c.Type, c.Reason, c.Message)
			break
		}
	}
	return st
}
