// Package nodes keeps the Kubernetes side of edge nodes: it creates a
// node's Node object when the node first connects (with the edge role label
// and its join labels), renews the node's Lease on every heartbeat, and
// records Events when nodes connect and disconnect.
//
// Liveness follows Kubernetes' own rules: while a node is connected its
// Lease stays fresh; when the link goes silent the Lease expires and the
// controller-manager marks the node Ready=Unknown after its grace period.
// The node's own conditions arrive as status reports (see reports).
package nodes

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/verge-edge/verge/internal/protocol/syncpb"
)

// EdgeRoleLabel marks Nodes that are Verge edge nodes.
const EdgeRoleLabel = "node-role.kubernetes.io/edge"

// LeaseDuration matches the kubelet's default node lease.
const LeaseDuration = 40 * time.Second

// NodeLister reads Nodes from an informer cache.
type NodeLister interface {
	Get(name string) (*corev1.Node, error)
}

// Manager implements hub.Nodes.
type Manager struct {
	Kube   kubernetes.Interface
	Nodes  NodeLister
	Logger *slog.Logger
	Now    func() time.Time
	// Events records node Events asynchronously, aggregating repeats, so a
	// reconnect storm does not turn into a storm of Event writes.
	Events record.EventRecorder

	mu     sync.Mutex
	leases map[string]*coordinationv1.Lease // last written, to update without a read
	renew  map[string]time.Time             // last renewal, to bound writes
}

// NewManager returns a Manager reading Nodes from nodes and recording
// events with events.
func NewManager(kube kubernetes.Interface, nodes NodeLister, events record.EventRecorder, logger *slog.Logger) *Manager {
	return &Manager{Kube: kube, Nodes: nodes, Events: events, Logger: logger, Now: time.Now, leases: map[string]*coordinationv1.Lease{}, renew: map[string]time.Time{}}
}

// Connected ensures the Node exists and renews its Lease.
func (m *Manager) Connected(ctx context.Context, node string, hello *syncpb.Hello) {
	if err := m.ensureNode(ctx, node, hello.NodeLabels); err != nil {
		m.Logger.Error("creating the Node object failed", "node", node, "error", err)
	}
	m.renewLease(ctx, node, true)
	m.event(ctx, node, corev1.EventTypeNormal, "EdgeConnected", "Edge node connected to verge-cloud (agent "+hello.AgentVersion+")")
}

// Heartbeat renews the node's Lease (at most every LeaseDuration/4).
func (m *Manager) Heartbeat(node string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.renewLease(ctx, node, false)
}

// Disconnected records an Event; the Lease then expires on its own.
func (m *Manager) Disconnected(node string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.mu.Lock()
	delete(m.renew, node)
	m.mu.Unlock()
	m.event(ctx, node, corev1.EventTypeWarning, "EdgeDisconnected", "Edge node disconnected from verge-cloud; its pods keep running on the node")
}

func (m *Manager) ensureNode(ctx context.Context, node string, joinLabels map[string]string) error {
	if _, err := m.Nodes.Get(node); err == nil {
		return nil
	}
	// Not in the cache: check the API (the cache may lag a node another
	// replica just created) before creating it.
	_, err := m.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err == nil || !apierrors.IsNotFound(err) {
		return err
	}
	labels := map[string]string{}
	maps.Copy(labels, joinLabels)
	labels[EdgeRoleLabel] = ""
	labels[corev1.LabelHostname] = node
	_, err = m.Kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: labels}}, metav1.CreateOptions{FieldManager: "verge-cloud"})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err == nil {
		m.Logger.Info("node registered", "node", node)
	}
	return err
}

func (m *Manager) renewLease(ctx context.Context, node string, force bool) {
	now := m.Now()
	m.mu.Lock()
	if last, ok := m.renew[node]; ok && !force && now.Sub(last) < LeaseDuration/4 {
		m.mu.Unlock()
		return
	}
	m.renew[node] = now
	lease := m.leases[node]
	m.mu.Unlock()

	leases := m.Kube.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	renewTime := metav1.NewMicroTime(now)
	var err error
	if lease != nil {
		l := lease.DeepCopy()
		l.Spec.RenewTime = &renewTime
		lease, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	if lease == nil || err != nil {
		// First renewal here, or our copy is stale (another replica renewed
		// it): read, then write.
		lease, err = leases.Get(ctx, node, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			lease, err = leases.Create(ctx, m.newLease(node, renewTime), metav1.CreateOptions{})
		case err == nil:
			l := lease.DeepCopy()
			l.Spec.RenewTime = &renewTime
			l.Spec.HolderIdentity = ptr.To(node)
			l.Spec.LeaseDurationSeconds = ptr.To(int32(LeaseDuration / time.Second))
			lease, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
	}
	m.mu.Lock()
	if err != nil {
		delete(m.leases, node)
		m.mu.Unlock()
		m.Logger.Warn("renewing the node lease failed", "node", node, "error", err)
		return
	}
	m.leases[node] = lease
	m.mu.Unlock()
}

func (m *Manager) newLease(node string, renew metav1.MicroTime) *coordinationv1.Lease {
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: corev1.NamespaceNodeLease},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(node),
			LeaseDurationSeconds: ptr.To(int32(LeaseDuration / time.Second)),
			RenewTime:            &renew,
		},
	}
	// Owned by the Node, like the kubelet's, so it goes with it.
	if n, err := m.Nodes.Get(node); err == nil {
		l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node, UID: n.UID}}
	}
	return l
}

func (m *Manager) event(_ context.Context, node, eventType, reason, message string) {
	ref := &corev1.ObjectReference{Kind: "Node", Name: node, UID: types.UID(node), APIVersion: "v1"}
	m.Events.Event(ref, eventType, reason, message)
}
