// Package devclient reads and writes devices.kubeedge.io/v1beta1 objects with
// the Go types of api/devices/v1beta1 — a REST client over client-go and
// shared informers, no generated clientset — for verge-cloud's node views
// (nodeview) and device controller (devices).
package devclient

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
)

// Resource names of the devices.kubeedge.io/v1beta1 kinds.
const (
	ResourceDevices        = "devices"
	ResourceDeviceModels   = "devicemodels"
	ResourceDeviceStatuses = "devicestatuses"
)

// Client reads and writes devices.kubeedge.io/v1beta1 objects through the
// API server with the Go types of api/devices/v1beta1 (a REST client over
// client-go; no generated clientset).
type Client struct {
	rc rest.Interface
}

// Scheme knows the devices.kubeedge.io/v1beta1 kinds.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := devicesv1beta1.AddToScheme(s); err != nil {
		panic(err) // static registration; cannot fail
	}
	metav1.AddToGroupVersion(s, metav1.SchemeGroupVersion)
	return s
}

// NewClient builds a Client from a rest.Config (its QPS and user agent
// apply).
func NewClient(cfg *rest.Config) (*Client, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &devicesv1beta1.SchemeGroupVersion
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = serializer.NewCodecFactory(Scheme()).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("devices.kubeedge.io client: %w", err)
	}
	return &Client{rc: rc}, nil
}

// GetDevice reads a Device from the API server.
func (c *Client) GetDevice(ctx context.Context, namespace, name string) (*devicesv1beta1.Device, error) {
	out := &devicesv1beta1.Device{}
	err := c.rc.Get().Namespace(namespace).Resource(ResourceDevices).Name(name).Do(ctx).Into(out)
	return out, err
}

// CreateDeviceStatus creates a DeviceStatus (its status is ignored: it is a
// subresource).
func (c *Client) CreateDeviceStatus(ctx context.Context, ds *devicesv1beta1.DeviceStatus, fieldManager string) (*devicesv1beta1.DeviceStatus, error) {
	out := &devicesv1beta1.DeviceStatus{}
	err := c.rc.Post().Namespace(ds.Namespace).Resource(ResourceDeviceStatuses).
		VersionedParams(&metav1.CreateOptions{FieldManager: fieldManager}, metav1.ParameterCodec).
		Body(ds).Do(ctx).Into(out)
	return out, err
}

// Patch patches an object of resource (ResourceDevices, …), or its
// subresource when one is given.
func (c *Client) Patch(ctx context.Context, resource, namespace, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresource ...string) error {
	return c.rc.Patch(pt).Namespace(namespace).Resource(resource).Name(name).SubResource(subresource...).
		VersionedParams(&opts, metav1.ParameterCodec).Body(data).Do(ctx).Error()
}

// ListWatch lists and watches resource in every namespace, decoding into
// the list type of the resource.
func (c *Client) ListWatch(resource string) *cache.ListWatch {
	newList := map[string]func() runtime.Object{
		ResourceDevices:        func() runtime.Object { return &devicesv1beta1.DeviceList{} },
		ResourceDeviceModels:   func() runtime.Object { return &devicesv1beta1.DeviceModelList{} },
		ResourceDeviceStatuses: func() runtime.Object { return &devicesv1beta1.DeviceStatusList{} },
	}[resource]
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			out := newList()
			err := c.rc.Get().Resource(resource).VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(out)
			return out, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			return c.rc.Get().Resource(resource).VersionedParams(&opts, metav1.ParameterCodec).Watch(ctx)
		},
	}
}

// Informers are shared informers for Devices (indexed by spec.nodeName),
// DeviceModels and DeviceStatuses. Build them once per process; nodeview
// and the device controller share them.
type Informers struct {
	Devices, Models, Statuses cache.SharedIndexInformer
}

// ByNodeName indexes Devices by spec.nodeName.
const ByNodeName = "spec.nodeName"

// NewInformers builds the informers (not started).
func NewInformers(c *Client, resync time.Duration) (*Informers, error) {
	nsIndex := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
	inf := &Informers{
		Devices:  cache.NewSharedIndexInformer(c.ListWatch(ResourceDevices), &devicesv1beta1.Device{}, resync, nsIndex),
		Models:   cache.NewSharedIndexInformer(c.ListWatch(ResourceDeviceModels), &devicesv1beta1.DeviceModel{}, resync, nsIndex),
		Statuses: cache.NewSharedIndexInformer(c.ListWatch(ResourceDeviceStatuses), &devicesv1beta1.DeviceStatus{}, resync, nsIndex),
	}
	err := inf.Devices.AddIndexers(cache.Indexers{ByNodeName: func(obj any) ([]string, error) {
		if d, ok := obj.(*devicesv1beta1.Device); ok && d.Spec.NodeName != "" {
			return []string{d.Spec.NodeName}, nil
		}
		return nil, nil
	}})
	if err != nil {
		return nil, fmt.Errorf("indexing devices by node: %w", err)
	}
	return inf, nil
}

// Start runs the informers until ctx ends.
func (i *Informers) Start(ctx context.Context) {
	go i.Devices.RunWithContext(ctx)
	go i.Models.RunWithContext(ctx)
	go i.Statuses.RunWithContext(ctx)
}

// HasSynced reports whether every informer has its initial list (false
// until the devices.kubeedge.io CRDs are installed).
func (i *Informers) HasSynced() bool {
	return i.Devices.HasSynced() && i.Models.HasSynced() && i.Statuses.HasSynced()
}

// Device returns a cached Device.
func (i *Informers) Device(namespace, name string) (*devicesv1beta1.Device, bool) {
	return get[*devicesv1beta1.Device](i.Devices, namespace, name)
}

// Model returns a cached DeviceModel.
func (i *Informers) Model(namespace, name string) (*devicesv1beta1.DeviceModel, bool) {
	return get[*devicesv1beta1.DeviceModel](i.Models, namespace, name)
}

// Status returns a cached DeviceStatus.
func (i *Informers) Status(namespace, name string) (*devicesv1beta1.DeviceStatus, bool) {
	return get[*devicesv1beta1.DeviceStatus](i.Statuses, namespace, name)
}

// DevicesOnNode returns the cached Devices bound to node.
func (i *Informers) DevicesOnNode(node string) []*devicesv1beta1.Device {
	objs, err := i.Devices.GetIndexer().ByIndex(ByNodeName, node)
	if err != nil {
		return nil
	}
	out := make([]*devicesv1beta1.Device, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*devicesv1beta1.Device))
	}
	return out
}

// DevicesUsingModel returns the cached Devices in namespace that name the
// model.
func (i *Informers) DevicesUsingModel(namespace, model string) []*devicesv1beta1.Device {
	objs, err := i.Devices.GetIndexer().ByIndex(cache.NamespaceIndex, namespace)
	if err != nil {
		return nil
	}
	var out []*devicesv1beta1.Device
	for _, o := range objs {
		if d := o.(*devicesv1beta1.Device); d.Spec.DeviceModelRef.Name == model {
			out = append(out, d)
		}
	}
	return out
}

func get[T any](inf cache.SharedIndexInformer, namespace, name string) (T, bool) {
	var zero T
	obj, ok, err := inf.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return zero, false
	}
	t, ok := obj.(T)
	return t, ok
}
