package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
	"github.com/verge-edge/verge/internal/cloud/devices/devclient"
)

// FieldManager names the controller's writes (Device status, DeviceStatus
// creation). Readings are written as NodeFieldManager.
const FieldManager = "verge-cloud-devices"

// NodeFieldManager names writes made on a node's behalf (its readings),
// as for pod status (nodeview.NodeFieldManager).
const NodeFieldManager = "verge-edge"

// DefaultWriteInterval is the least time between two DeviceStatus writes
// of one device.
const DefaultWriteInterval = 500 * time.Millisecond

// Options configure the controller.
type Options struct {
	Client    *devclient.Client
	Informers *devclient.Informers
	// Nodes and NodeInformer read Nodes (existence and Ready).
	Nodes        corelisters.NodeLister
	NodeInformer cache.SharedIndexInformer
	// WriteInterval spaces each device's DeviceStatus writes (default
	// DefaultWriteInterval).
	WriteInterval time.Duration
	// Workers reconcile Device status concurrently (default 2).
	Workers  int
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Clock    clock.WithTicker
}

// Controller keeps one DeviceStatus per Device and each Device's status,
// and applies nodes' device reports.
type Controller struct {
	o       Options
	queue   workqueue.TypedRateLimitingInterface[string]
	metrics *metrics

	mu    sync.Mutex
	facts map[string]*EdgeFacts // ns/name → the node's last report
	pacer *Pacer
}

// New builds the controller and registers its informer handlers; start
// the informers and then Start.
func New(o Options) (*Controller, error) {
	if o.Client == nil || o.Informers == nil || o.Nodes == nil || o.NodeInformer == nil {
		return nil, errors.New("devices: Client, Informers, Nodes and NodeInformer are required")
	}
	if o.WriteInterval <= 0 {
		o.WriteInterval = DefaultWriteInterval
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	c := &Controller{
		o:     o,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](), workqueue.TypedRateLimitingQueueConfig[string]{Name: "devices"}),
		facts: map[string]*EdgeFacts{},
		pacer: NewPacer(o.WriteInterval),
	}
	c.metrics = newMetrics(o.Registry, func() float64 { return float64(c.queue.Len()) })
	inf := o.Informers
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{inf.Devices, cache.ResourceEventHandlerFuncs{
			AddFunc: c.enqueueObject,
			UpdateFunc: func(old, new any) {
				o, n := old.(*devicesv1beta1.Device), new.(*devicesv1beta1.Device)
				// Our own status writes come back here; only what the
				// status is computed from matters.
				if o.Generation != n.Generation || o.Spec.NodeName != n.Spec.NodeName || !apiequality.Semantic.DeepEqual(o.Status.Conditions, n.Status.Conditions) {
					c.enqueueObject(new)
				}
			},
		}},
		{inf.Models, cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueModelUsers,
			UpdateFunc: func(_, new any) { c.enqueueModelUsers(new) },
			DeleteFunc: c.enqueueModelUsers,
		}},
		{inf.Statuses, cache.ResourceEventHandlerFuncs{
			// A DeviceStatus deleted by hand is created again.
			DeleteFunc: c.enqueueObject,
		}},
		{o.NodeInformer, cache.ResourceEventHandlerFuncs{
			AddFunc: c.enqueueNodeDevices,
			UpdateFunc: func(old, new any) {
				if nodeState(old.(*corev1.Node)) != nodeState(new.(*corev1.Node)) {
					c.enqueueNodeDevices(new)
				}
			},
			DeleteFunc: c.enqueueNodeDevices,
		}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Controller) enqueueObject(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if k, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(k)
	}
}

func (c *Controller) enqueueModelUsers(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, ok := obj.(*devicesv1beta1.DeviceModel)
	if !ok {
		return
	}
	for _, d := range c.o.Informers.DevicesUsingModel(m.Namespace, m.Name) {
		c.queue.Add(d.Namespace + "/" + d.Name)
	}
}

func (c *Controller) enqueueNodeDevices(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	for _, d := range c.o.Informers.DevicesOnNode(n.Name) {
		c.queue.Add(d.Namespace + "/" + d.Name)
	}
}

// nodeState reads a Node's link state from its Ready condition: True or
// False were reported by the node (it is connected, whatever its pods'
// health); Unknown (the lease expired) or none means it cannot be asked.
func nodeState(n *corev1.Node) NodeState {
	if n == nil {
		return NodeMissing
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status != corev1.ConditionUnknown {
			return NodeOnline
		}
	}
	return NodeOffline
}

// Start runs the workers until ctx ends. The informers must be started.
func (c *Controller) Start(ctx context.Context) error {
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.o.Informers.HasSynced, c.o.NodeInformer.HasSynced) {
		return nil
	}
	var wg sync.WaitGroup
	for range c.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.processNext(ctx) {
			}
		}()
	}
	prune := c.o.Clock.NewTicker(time.Minute)
	defer prune.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-prune.C():
			c.mu.Lock()
			c.pacer.Prune(c.o.Clock.Now())
			c.mu.Unlock()
		}
	}
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.reconcile(ctx, key); err != nil {
		c.o.Logger.Warn("device status not updated; retrying", "device", key, "error", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// reconcile makes sure the Device has its DeviceStatus and the status its
// inputs say.
func (c *Controller) reconcile(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil //nolint:nilerr // keys come from MetaNamespaceKeyFunc; a malformed one can never be reconciled
	}
	d, ok := c.o.Informers.Device(ns, name)
	if !ok {
		c.mu.Lock()
		delete(c.facts, key)
		c.mu.Unlock()
		return nil // its DeviceStatus goes with it (owner reference)
	}
	if err := c.ensureDeviceStatus(ctx, d); err != nil {
		return err
	}
	in := StatusInput{Device: d, Node: NodeMissing}
	if m, ok := c.o.Informers.Model(ns, d.Spec.DeviceModelRef.Name); ok {
		in.Model = m
	}
	if d.Spec.NodeName != "" {
		if n, err := c.o.Nodes.Get(d.Spec.NodeName); err == nil {
			in.Node = nodeState(n)
		}
	}
	c.mu.Lock()
	if f := c.facts[key]; f != nil {
		cp := *f
		in.Facts = &cp
	}
	c.mu.Unlock()
	if st, ok := c.o.Informers.Status(ns, name); ok {
		in.State, in.LastOnlineTime = st.Status.State, st.Status.LastOnlineTime
	}
	want := DesiredStatus(in, metav1.NewTime(c.o.Clock.Now()))
	if statusEqual(d.Status, want) {
		return nil
	}
	body, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": d.UID, "resourceVersion": d.ResourceVersion},
		"status": map[string]any{
			"conditions": want.Conditions, "observedGeneration": want.ObservedGeneration,
			"state": nullIfEmpty(want.State), "lastOnlineTime": nullIfEmpty(want.LastOnlineTime),
		},
	})
	if err != nil {
		return err
	}
	err = c.o.Client.Patch(ctx, devclient.ResourceDevices, ns, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: FieldManager}, "status")
	c.countWrite("devices/status", err)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if apierrors.IsConflict(err) {
		// The informer will bring the newer Device; reconcile that.
		c.queue.AddAfter(key, 100*time.Millisecond)
		return nil
	}
	return err
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// statusEqual compares statuses ignoring condition transition times
// (DesiredStatus keeps them for unchanged conditions).
func statusEqual(a, b devicesv1beta1.DeviceInstanceStatus) bool {
	return apiequality.Semantic.DeepEqual(a, b)
}

func (c *Controller) countWrite(resource string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	c.metrics.writes.WithLabelValues(resource, result).Inc()
}

// ensureDeviceStatus creates the Device's DeviceStatus when the cache has
// none (an existing one of an earlier Device of the same name is left to
// the garbage collector; its deletion brings the Device back here).
func (c *Controller) ensureDeviceStatus(ctx context.Context, d *devicesv1beta1.Device) error {
	if _, ok := c.o.Informers.Status(d.Namespace, d.Name); ok {
		return nil
	}
	_, err := c.o.Client.CreateDeviceStatus(ctx, NewDeviceStatus(d), FieldManager)
	c.countWrite("devicestatuses", err)
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// NewDeviceStatus builds the DeviceStatus of d: same name and namespace,
// owned by d so it is deleted with it. Pure.
func NewDeviceStatus(d *devicesv1beta1.Device) *devicesv1beta1.DeviceStatus {
	return &devicesv1beta1.DeviceStatus{
		TypeMeta: metav1.TypeMeta{APIVersion: devicesv1beta1.SchemeGroupVersion.String(), Kind: "DeviceStatus"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: d.Namespace,
			Name:      d.Name,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         devicesv1beta1.SchemeGroupVersion.String(),
				Kind:               "Device",
				Name:               d.Name,
				UID:                d.UID,
				Controller:         ptr.To(true),
				BlockOwnerDeletion: ptr.To(true),
			}},
		},
	}
}

// Facts returns what the node last reported about a device, for tests
// and debugging.
func (c *Controller) Facts(namespace, name string) (EdgeFacts, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.facts[namespace+"/"+name]
	if !ok {
		return EdgeFacts{}, false
	}
	return *f, true
}

func deviceKey(namespace, name string) string { return fmt.Sprintf("%s/%s", namespace, name) }
