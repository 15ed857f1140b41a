package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/verge-edge/verge/internal/edge/podruntime"
	"github.com/verge-edge/verge/internal/edge/store"
	"github.com/verge-edge/verge/internal/protocol/kube"
	"github.com/verge-edge/verge/internal/protocol/objkey"
	"github.com/verge-edge/verge/internal/protocol/wire"
)

// Outbox priorities: the node's own status first (it keeps the node Ready),
// then pods, then events.
const (
	priorityNode = iota
	priorityPod
	priorityEvent
)

// maxQueuedEvents caps the events waiting in the outbox; beyond it the
// oldest are dropped (counted by the store), so a long outage cannot crowd
// out status reports.
const maxQueuedEvents = 1000

// reporter turns observations into outbox entries. Each call returns once
// its entry is durable; the hub client is then nudged to send it.
type reporter struct {
	store *store.Store
	node  string
	kick  func()
	now   func() time.Time
	log   *slog.Logger
}

var _ podruntime.Sink = (*reporter)(nil)

func (r *reporter) PodStatus(pod types.NamespacedName, uid types.UID, status kube.PodStatus) {
	r.enqueue(objkey.Key(objkey.Pods, pod.Namespace, pod.Name), wire.ReportPodStatus, priorityPod,
		&kube.Pod{ObjectMeta: kube.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: uid}, Status: status})
}

// PodTerminated shares the pod's key with its status: it replaces a status
// still waiting, which no longer matters once the pod is gone.
func (r *reporter) PodTerminated(pod types.NamespacedName, uid types.UID) {
	r.enqueue(objkey.Key(objkey.Pods, pod.Namespace, pod.Name), wire.ReportPodTerminated, priorityPod,
		&kube.Pod{ObjectMeta: kube.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: uid}})
}

func (r *reporter) Event(ref kube.ObjectReference, eventType, reason, message string) {
	now := r.now()
	ns := ref.Namespace
	if ns == "" {
		ns = kube.NamespaceDefault
	}
	// Named like the kubelet's events: unique per occurrence, so a resend
	// after a lost answer is recognised by the cloud as the same event.
	name := fmt.Sprintf("%s.%x", ref.Name, now.UnixNano())
	t := kube.NewTime(now)
	r.enqueue(objkey.Key("events", ns, name), wire.ReportEvent, priorityEvent, &kube.Event{
		ObjectMeta:     kube.ObjectMeta{Namespace: ns, Name: name},
		InvolvedObject: ref,
		Type:           eventType,
		Reason:         reason,
		Message:        message,
		FirstTimestamp: t,
		LastTimestamp:  t,
		Count:          1,
		Source:         kube.EventSource{Component: "verge-edge", Host: r.node},
	})
}

// NodeStatus queues the node's status.
func (r *reporter) NodeStatus(n *kube.Node) error {
	return r.put(objkey.Key("nodes", "", n.Name), wire.ReportNodeStatus, priorityNode, n)
}

func (r *reporter) enqueue(key, kind string, priority int, body any) {
	if err := r.put(key, kind, priority, body); err != nil {
		r.log.Warn("queuing a report for the cloud failed", "key", key, "kind", kind, "error", err)
	}
}

func (r *reporter) put(key, kind string, priority int, body any) error {
	_, data, err := wire.Marshal(body)
	if err != nil {
		return err
	}
	// A durable write must not be cut short by shutdown halfway through
	// the caller's work; it is short.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.store.Enqueue(ctx, key, kind, priority, data); err != nil {
		return err
	}
	r.kick()
	return nil
}
