package nodeview

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/verge-edge/verge/internal/cloud/devices/devclient"
	"github.com/verge-edge/verge/internal/protocol/objkey"
)

const byNodeName = "spec.nodeName"

// informerCache reads pods, ConfigMaps and Secrets from shared informers.
type informerCache struct {
	pods, configMaps, secrets cache.SharedIndexInformer
}

func (c *informerCache) PodsOnNode(node string) []*corev1.Pod {
	objs, err := c.pods.GetIndexer().ByIndex(byNodeName, node)
	if err != nil {
		return nil
	}
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*corev1.Pod))
	}
	return out
}

func (c *informerCache) Object(key string) (runtime.Object, bool) {
	resource, ns, name, err := objkey.Split(key)
	if err != nil {
		return nil, false
	}
	var inf cache.SharedIndexInformer
	switch resource {
	case ConfigMaps:
		inf = c.configMaps
	case Secrets:
		inf = c.secrets
	default:
		return nil, false
	}
	obj, ok, err := inf.GetIndexer().GetByKey(ns + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	return obj.(runtime.Object), true
}

// Pod returns a cached pod by namespace and name.
func (c *informerCache) Pod(namespace, name string) (*corev1.Pod, bool) {
	obj, ok, err := c.pods.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	return obj.(*corev1.Pod), true
}

// Watcher feeds a View from shared informers.
type Watcher struct {
	View    *View
	cache   *informerCache
	devices *devclient.Informers // nil until WatchDevices
}

// Watch registers the informers a View needs on factory and connects their
// events to a new View. Start the factory afterwards.
func Watch(factory informers.SharedInformerFactory, tokens Tokens) (*Watcher, error) {
	c := &informerCache{
		pods:       factory.Core().V1().Pods().Informer(),
		configMaps: factory.Core().V1().ConfigMaps().Informer(),
		secrets:    factory.Core().V1().Secrets().Informer(),
	}
	if err := c.pods.AddIndexers(cache.Indexers{byNodeName: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("indexing pods by node: %w", err)
	}
	v := New(c, tokens)
	_, err := c.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { v.OnPod(nil, asPod(obj)) },
		UpdateFunc: func(old, new any) { v.OnPod(asPod(old), asPod(new)) },
		DeleteFunc: func(obj any) { v.OnPod(asPod(obj), nil) },
	})
	if err != nil {
		return nil, err
	}
	for resource, inf := range map[string]cache.SharedIndexInformer{ConfigMaps: c.configMaps, Secrets: c.secrets} {
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { onObject(v, resource, obj, false) },
			UpdateFunc: func(_, obj any) { onObject(v, resource, obj, false) },
			DeleteFunc: func(obj any) { onObject(v, resource, obj, true) },
		})
		if err != nil {
			return nil, err
		}
	}
	return &Watcher{View: v, cache: c}, nil
}

// Pod returns a cached pod, for authorizing what nodes report about it.
func (w *Watcher) Pod(namespace, name string) (*corev1.Pod, bool) {
	return w.cache.Pod(namespace, name)
}

// HasSynced reports whether every informer has its initial list.
func (w *Watcher) HasSynced() bool {
	return w.cache.pods.HasSynced() && w.cache.configMaps.HasSynced() && w.cache.secrets.HasSynced() &&
		(w.devices == nil || w.devices.HasSynced())
}

// Start pushes each informer's progress (its last resourceVersion) to the
// View every period until ctx ends, so lagging-replica deletes can proceed.
func (w *Watcher) Start(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		classes := map[string]cache.SharedIndexInformer{Pods: w.cache.pods, ConfigMaps: w.cache.configMaps, Secrets: w.cache.secrets}
		if w.devices != nil {
			classes[Devices], classes[DeviceModels] = w.devices.Devices, w.devices.Models
		}
		for class, inf := range classes {
			if inf.HasSynced() {
				w.View.SetHorizon(class, ParseRV(inf.LastSyncResourceVersion()))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func asPod(obj any) *corev1.Pod {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, _ := obj.(*corev1.Pod)
	return p
}

func onObject(v *View, resource string, obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
		deleted = true
	}
	o, ok := obj.(runtime.Object)
	if !ok {
		return
	}
	key, err := cache.MetaNamespaceKeyFunc(o)
	if err != nil {
		return
	}
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	if deleted {
		v.OnObject(objkey.Key(resource, ns, name), nil)
		return
	}
	v.OnObject(objkey.Key(resource, ns, name), o)
}
