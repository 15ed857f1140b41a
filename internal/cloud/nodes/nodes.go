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
	"fmt"
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
	"k8s.io/client-go/util/workqueue"
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

// Manager implements hub.Nodes. Sessions only record what they need
// (non-blocking); workers do the API calls, at most one at a time per
// node, retried with back-off, so a slow or throttling API server delays
// Node registration and lease renewal but never a node's session.
type Manager struct {
	Kube   kubernetes.Interface
	Nodes  NodeLister
	Logger *slog.Logger
	Now    func() time.Time
	// Events records node Events asynchronously, aggregating repeats, so a
	// reconnect storm does not turn into a storm of Event writes.
	Events record.EventRecorder

	queue workqueue.TypedRateLimitingInterface[string]
	mu    sync.Mutex
	nodes map[string]*nodeState // connected nodes only
}

type nodeState struct {
	labels     map[string]string
	registered bool
	renewDue   bool
	lastRenew  time.Time
	lease      *coordinationv1.Lease // last written, to update without a read
}

// NewManager returns a Manager reading Nodes from nodes and recording
// events with events. Start runs its workers.
func NewManager(kube kubernetes.Interface, nodes NodeLister, events record.EventRecorder, logger *slog.Logger) *Manager {
	return &Manager{
		Kube: kube, Nodes: nodes, Events: events, Logger: logger, Now: time.Now,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "verge_node_lifecycle"}),
		nodes: map[string]*nodeState{},
	}
}

// Connected queues the node's registration (Node object) and a lease
// renewal.
func (m *Manager) Connected(_ context.Context, node string, hello *syncpb.Hello) {
	m.mu.Lock()
	m.nodes[node] = &nodeState{labels: hello.NodeLabels, renewDue: true}
	m.mu.Unlock()
	m.queue.Add(node)
	m.event(node, corev1.EventTypeNormal, "EdgeConnected", "Edge node connected to verge-cloud (agent "+hello.AgentVersion+")")
}

// Heartbeat queues a lease renewal when one is due (every LeaseDuration/4).
func (m *Manager) Heartbeat(node string) {
	m.mu.Lock()
	st := m.nodes[node]
	due := st != nil && m.Now().Sub(st.lastRenew) >= LeaseDuration/4
	if due {
		st.renewDue = true
	}
	m.mu.Unlock()
	if due {
		m.queue.Add(node)
	}
}

// Disconnected records an Event; the Lease then expires on its own.
func (m *Manager) Disconnected(node string) {
	m.mu.Lock()
	delete(m.nodes, node)
	m.mu.Unlock()
	m.event(node, corev1.EventTypeWarning, "EdgeDisconnected", "Edge node disconnected from verge-cloud; its pods keep running on the node")
}

// Start runs the workers until ctx ends.
func (m *Manager) Start(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		m.queue.ShutDown()
	}()
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m.next(ctx) {
			}
		}()
	}
	wg.Wait()
	return nil
}

func (m *Manager) next(ctx context.Context) bool {
	node, quit := m.queue.Get()
	if quit {
		return false
	}
	defer m.queue.Done(node)
	if err := m.sync(ctx, node); err != nil {
		if ctx.Err() == nil {
			m.Logger.Warn("node registration or lease renewal failed; retrying", "node", node, "error", err)
			m.queue.AddRateLimited(node)
		}
		return true
	}
	m.queue.Forget(node)
	return true
}

// sync registers the node if needed and renews its lease if due.
func (m *Manager) sync(ctx context.Context, node string) error {
	m.mu.Lock()
	st := m.nodes[node]
	if st == nil {
		m.mu.Unlock()
		return nil // disconnected meanwhile
	}
	registered, renew, labels, lease := st.registered, st.renewDue, st.labels, st.lease
	m.mu.Unlock()
	if !registered {
		if err := m.ensureNode(ctx, node, labels); err != nil {
			return fmt.Errorf("registering the Node: %w", err)
		}
	}
	var err error
	if renew {
		if lease, err = m.renewLease(ctx, node, lease); err != nil {
			return fmt.Errorf("renewing the Lease: %w", err)
		}
	}
	m.mu.Lock()
	if cur := m.nodes[node]; cur == st {
		st.registered = true
		if renew {
			st.renewDue = false
			st.lastRenew = m.Now()
			st.lease = lease
		}
	}
	m.mu.Unlock()
	return nil
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

// renewLease writes a fresh renewTime, starting from our last copy of the
// Lease when we have one (one write, no read).
func (m *Manager) renewLease(ctx context.Context, node string, lease *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	leases := m.Kube.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	renewTime := metav1.NewMicroTime(m.Now())
	if lease != nil {
		l := lease.DeepCopy()
		l.Spec.RenewTime = &renewTime
		if updated, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err == nil {
			return updated, nil
		}
		// Our copy is stale (another replica renewed it): read, then write.
	}
	current, err := leases.Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return leases.Create(ctx, m.newLease(node, renewTime), metav1.CreateOptions{})
	}
	if err != nil {
		return nil, err
	}
	l := current.DeepCopy()
	l.Spec.RenewTime = &renewTime
	l.Spec.HolderIdentity = ptr.To(node)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(LeaseDuration / time.Second))
	return leases.Update(ctx, l, metav1.UpdateOptions{})
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

func (m *Manager) event(node, eventType, reason, message string) {
	ref := &corev1.ObjectReference{Kind: "Node", Name: node, UID: types.UID(node), APIVersion: "v1"}
	m.Events.Event(ref, eventType, reason, message)
}
