package podruntime

import (
	"sort"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// Labels on sandboxes and containers. The io.kubernetes.* keys are the
// kubelet's, so crictl and other tools show Verge pods the familiar way.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	labelManagedBy     = "verge.dev/managed-by"
	labelNode          = "verge.dev/node"
	managedByValue     = "verge-edge"
)

// Annotations on containers and sandboxes.
const (
	annotationHash          = "verge.dev/container-hash"
	annotationBackoffStep   = "verge.dev/backoff-step"
	annotationRestartCount  = "io.kubernetes.container.restartCount"
	annotationGracePeriod   = "io.kubernetes.pod.terminationGracePeriod"
	annotationTermMsgPath   = "verge.dev/termination-message-host-path"
	annotationInitContainer = "verge.dev/init-container"
)

// containerState is a container's CRI state.
type containerState int

const (
	stateCreated containerState = iota
	stateRunning
	stateExited
	stateUnknown
)

func (s containerState) String() string {
	return [...]string{"created", "running", "exited", "unknown"}[s]
}

// sandboxObs is what CRI reports about one pod sandbox.
type sandboxObs struct {
	ID        string
	Attempt   uint32
	Ready     bool
	CreatedAt time.Time
	// IPs are the pod IPs from the sandbox's network status, primary first.
	IPs []string
	// GracePeriod is the pod's termination grace period recorded at
	// creation (-1 if unknown).
	GracePeriod int64
}

// containerObs is what CRI reports about one container.
type containerObs struct {
	ID, SandboxID string
	Name          string
	// Attempt is the restart count this container was created with.
	Attempt     uint32
	State       containerState
	CreatedAt   time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	ExitCode    int32
	Reason      string
	Message     string
	Image       string // as requested
	ImageRef    string // resolved digest reference
	Hash        string
	BackoffStep int
	// TermMsgPath is the host file mounted at terminationMessagePath.
	TermMsgPath string
	// GracePeriod recorded at creation (-1 if unknown).
	GracePeriod int64
}

// podObs is everything CRI reports for one pod UID.
type podObs struct {
	// Sandboxes newest first.
	Sandboxes []sandboxObs
	// Containers newest first (by attempt, then creation).
	Containers []containerObs
}

// latestSandbox returns the newest sandbox, or nil.
func (o *podObs) latestSandbox() *sandboxObs {
	if len(o.Sandboxes) == 0 {
		return nil
	}
	return &o.Sandboxes[0]
}

// newest returns the newest container named name, optionally only in
// sandbox sandboxID ("" for any), skipping skip entries.
func (o *podObs) newest(name, sandboxID string, skip int) *containerObs {
	for i := range o.Containers {
		c := &o.Containers[i]
		if c.Name != name || (sandboxID != "" && c.SandboxID != sandboxID) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		return c
	}
	return nil
}

// sortObs orders sandboxes and containers newest first.
func sortObs(o *podObs) {
	sort.SliceStable(o.Sandboxes, func(i, j int) bool {
		a, b := o.Sandboxes[i], o.Sandboxes[j]
		if a.Attempt != b.Attempt {
			return a.Attempt > b.Attempt
		}
		return a.CreatedAt.After(b.CreatedAt)
	})
	sort.SliceStable(o.Containers, func(i, j int) bool {
		a, b := o.Containers[i], o.Containers[j]
		if a.Attempt != b.Attempt {
			return a.Attempt > b.Attempt
		}
		return a.CreatedAt.After(b.CreatedAt)
	})
}

// owner identifies the pod a CRI object belongs to, from its labels.
type owner struct {
	UID       types.UID
	Namespace string
	Name      string
	Container string
}

// ownerOf returns the owner recorded in labels and whether the object is
// managed by this node's verge-edge at all.
func ownerOf(labels map[string]string, node string) (owner, bool) {
	if labels[labelManagedBy] != managedByValue || labels[labelNode] != node || labels[labelPodUID] == "" {
		return owner{}, false
	}
	return owner{
		UID:       types.UID(labels[labelPodUID]),
		Namespace: labels[labelPodNamespace],
		Name:      labels[labelPodName],
		Container: labels[labelContainerName],
	}, true
}

func sandboxLabels(pod *kube.Pod, node string) map[string]string {
	l := make(map[string]string, len(pod.Labels)+5)
	for k, v := range pod.Labels {
		l[k] = v
	}
	l[labelPodName] = pod.Name
	l[labelPodNamespace] = pod.Namespace
	l[labelPodUID] = string(pod.UID)
	l[labelManagedBy] = managedByValue
	l[labelNode] = node
	return l
}

func containerLabels(pod *kube.Pod, node, container string) map[string]string {
	return map[string]string{
		labelPodName:       pod.Name,
		labelPodNamespace:  pod.Namespace,
		labelPodUID:        string(pod.UID),
		labelContainerName: container,
		labelManagedBy:     managedByValue,
		labelNode:          node,
	}
}

func sandboxFromCRI(s *runtimeapi.PodSandbox, st *runtimeapi.PodSandboxStatus) sandboxObs {
	o := sandboxObs{
		ID:          s.Id,
		Attempt:     s.GetMetadata().GetAttempt(),
		Ready:       s.State == runtimeapi.PodSandboxState_SANDBOX_READY,
		CreatedAt:   time.Unix(0, s.CreatedAt),
		GracePeriod: annotationInt(s.Annotations, annotationGracePeriod, -1),
	}
	if st != nil {
		if ip := st.GetNetwork().GetIp(); ip != "" {
			o.IPs = append(o.IPs, ip)
		}
		for _, a := range st.GetNetwork().GetAdditionalIps() {
			if a.GetIp() != "" {
				o.IPs = append(o.IPs, a.GetIp())
			}
		}
	}
	return o
}

func containerFromCRI(c *runtimeapi.Container, st *runtimeapi.ContainerStatus) containerObs {
	o := containerObs{
		ID:          c.Id,
		SandboxID:   c.PodSandboxId,
		Name:        c.GetMetadata().GetName(),
		Attempt:     c.GetMetadata().GetAttempt(),
		State:       stateFromCRI(c.State),
		CreatedAt:   time.Unix(0, c.CreatedAt),
		Image:       c.GetImage().GetImage(),
		ImageRef:    c.ImageRef,
		Hash:        c.Annotations[annotationHash],
		BackoffStep: int(annotationInt(c.Annotations, annotationBackoffStep, 0)),
		TermMsgPath: c.Annotations[annotationTermMsgPath],
		GracePeriod: annotationInt(c.Annotations, annotationGracePeriod, -1),
	}
	if n := c.Labels[labelContainerName]; n != "" {
		o.Name = n
	}
	if st != nil {
		o.State = stateFromCRI(st.State)
		if st.StartedAt > 0 {
			o.StartedAt = time.Unix(0, st.StartedAt)
		}
		if st.FinishedAt > 0 {
			o.FinishedAt = time.Unix(0, st.FinishedAt)
		}
		o.ExitCode = st.ExitCode
		o.Reason = st.Reason
		o.Message = st.Message
		if st.ImageRef != "" {
			o.ImageRef = st.ImageRef
		}
		if st.GetImage().GetImage() != "" && o.Image == "" {
			o.Image = st.GetImage().GetImage()
		}
	}
	return o
}

func stateFromCRI(s runtimeapi.ContainerState) containerState {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return stateCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return stateRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return stateExited
	}
	return stateUnknown
}

func annotationInt(a map[string]string, key string, def int64) int64 {
	v, ok := a[key]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return def
	}
	return n
}
