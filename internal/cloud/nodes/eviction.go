package nodes

import (
	"context"
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// EvictOnDisconnectAnnotation, set to "true" on an edge Node, lets
// Kubernetes evict that node's pods when the node stays disconnected (the
// default for ordinary nodes: after 300 s). Without it, pods on edge nodes
// are not evicted merely because the link is down: they keep running at
// the edge, and the cloud keeps their objects.
const EvictOnDisconnectAnnotation = "verge.dev/evict-pods-on-disconnect"

// linkTaints are the taints the controller-manager puts on a node whose
// status stops arriving; pods tolerate them for 300 s by default.
var linkTaints = []string{corev1.TaintNodeUnreachable, corev1.TaintNodeNotReady}

// TolerateDisconnect returns pod's tolerations changed so the link taints
// (NoExecute) are tolerated indefinitely, and whether anything changed.
// Existing tolerations are only relaxed (tolerationSeconds removed) or
// added to: the API allows no other change on a running pod.
func TolerateDisconnect(pod *corev1.Pod) ([]corev1.Toleration, bool) {
	out := append([]corev1.Toleration(nil), pod.Spec.Tolerations...)
	changed := false
	for _, key := range linkTaints {
		found := false
		for i := range out {
			t := &out[i]
			covers := (t.Key == key || (t.Key == "" && t.Operator == corev1.TolerationOpExists)) &&
				(t.Effect == corev1.TaintEffectNoExecute || t.Effect == "")
			if !covers {
				continue
			}
			found = true
			if t.TolerationSeconds != nil {
				t.TolerationSeconds = nil
				changed = true
			}
		}
		if !found {
			out = append(out, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
			changed = true
		}
	}
	return out, changed
}

// EvictionGuard keeps pods on edge nodes from eviction while their node is
// disconnected, unless the node opts in with EvictOnDisconnectAnnotation.
type EvictionGuard struct {
	kube   kubernetes.Interface
	logger *slog.Logger
	pods   cache.SharedIndexInformer
	nodes  cache.SharedIndexInformer
	queue  workqueue.TypedRateLimitingInterface[string]
}

// NewEvictionGuard registers its informers on factory; start the factory
// afterwards.
func NewEvictionGuard(kube kubernetes.Interface, factory informers.SharedInformerFactory, logger *slog.Logger) (*EvictionGuard, error) {
	g := &EvictionGuard{
		kube:   kube,
		logger: logger,
		pods:   factory.Core().V1().Pods().Informer(),
		nodes:  factory.Core().V1().Nodes().Informer(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "verge_eviction_guard"}),
	}
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			g.queue.Add(key)
		}
	}
	if _, err := g.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, n any) { enqueue(n) }}); err != nil {
		return nil, err
	}
	// A node becoming an edge node (or changing its annotation) re-checks
	// its pods.
	if _, err := g.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    g.nodeChanged,
		UpdateFunc: func(_, n any) { g.nodeChanged(n) },
	}); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *EvictionGuard) nodeChanged(obj any) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	for _, o := range g.pods.GetStore().List() {
		if p := o.(*corev1.Pod); p.Spec.NodeName == n.Name {
			if key, err := cache.MetaNamespaceKeyFunc(p); err == nil {
				g.queue.Add(key)
			}
		}
	}
}

// Start runs the guard until ctx ends.
func (g *EvictionGuard) Start(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		g.queue.ShutDown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), g.pods.HasSynced, g.nodes.HasSynced) {
		return nil
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g.next(ctx) {
			}
		}()
	}
	wg.Wait()
	return nil
}

func (g *EvictionGuard) next(ctx context.Context) bool {
	key, quit := g.queue.Get()
	if quit {
		return false
	}
	defer g.queue.Done(key)
	if err := g.sync(ctx, key); err != nil {
		g.logger.Warn("keeping an edge pod from eviction failed; retrying", "pod", key, "error", err)
		g.queue.AddRateLimited(key)
		return true
	}
	g.queue.Forget(key)
	return true
}

func (g *EvictionGuard) sync(ctx context.Context, key string) error {
	obj, ok, err := g.pods.GetStore().GetByKey(key)
	if err != nil || !ok {
		return err
	}
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil {
		return nil
	}
	nobj, ok, err := g.nodes.GetStore().GetByKey(pod.Spec.NodeName)
	if err != nil || !ok {
		return err
	}
	node := nobj.(*corev1.Node)
	if _, edge := node.Labels[EdgeRoleLabel]; !edge || node.Annotations[EvictOnDisconnectAnnotation] == "true" {
		return nil
	}
	tolerations, changed := TolerateDisconnect(pod)
	if !changed {
		return nil
	}
	p := pod.DeepCopy()
	p.Spec.Tolerations = tolerations
	_, err = g.kube.CoreV1().Pods(p.Namespace).Update(ctx, p, metav1.UpdateOptions{FieldManager: "verge-cloud"})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err // a conflict is retried with the informer's newer pod
}
