package nodeview

import (
	"fmt"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/cache"

	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
	"github.com/verge-edge/verge/internal/cloud/devices/devclient"
	"github.com/verge-edge/verge/internal/protocol/objkey"
)

// Resource names of the device kinds in keys.
const (
	Devices      = objkey.Devices
	DeviceModels = objkey.DeviceModels
)

// DeviceCache reads Devices and DeviceModels from the informer caches.
type DeviceCache interface {
	// DevicesOnNode returns the Devices whose spec.nodeName is node.
	DevicesOnNode(node string) []*devicesv1beta1.Device
	// Model returns a cached DeviceModel.
	Model(namespace, name string) (*devicesv1beta1.DeviceModel, bool)
}

// SetDevices makes the View include, in each node's view, the Devices
// bound to the node and the DeviceModels they name. Call it before the
// first Subscribe.
func (v *View) SetDevices(c DeviceCache) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.devices = c
}

func deviceKey(d *devicesv1beta1.Device) string { return objkey.Key(Devices, d.Namespace, d.Name) }

func modelKey(d *devicesv1beta1.Device) string {
	return objkey.Key(DeviceModels, d.Namespace, d.Spec.DeviceModelRef.Name)
}

// OnDevice applies a Device informer event; old or new is nil for
// add/delete. Status-only changes are not sent: nodes never read a
// Device's status (the device controller and the node's own reports write
// it), and sending them back would echo every report.
func (v *View) OnDevice(old, new *devicesv1beta1.Device) {
	if old != nil && new != nil && DeviceStatusOnly(old, new) {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if old != nil && (new == nil || old.Spec.NodeName != new.Spec.NodeName) {
		if s := v.subs[old.Spec.NodeName]; s != nil {
			v.removeDeviceLocked(old.Spec.NodeName, s, deviceKey(old))
		}
	}
	if new != nil && new.Spec.NodeName != "" {
		if s := v.subs[new.Spec.NodeName]; s != nil {
			v.addDeviceLocked(new.Spec.NodeName, s, new)
		}
	}
}

// DeviceStatusOnly reports whether a Device update changed nothing a node
// uses: neither spec nor metadata (besides bookkeeping).
func DeviceStatusOnly(old, new *devicesv1beta1.Device) bool {
	if old.UID != new.UID || !apiequality.Semantic.DeepEqual(old.Spec, new.Spec) {
		return false
	}
	om, nm := old.ObjectMeta, new.ObjectMeta
	om.ResourceVersion, nm.ResourceVersion = "", ""
	om.ManagedFields, nm.ManagedFields = nil, nil
	return apiequality.Semantic.DeepEqual(om, nm)
}

func (v *View) addDeviceLocked(node string, s *subscription, d *devicesv1beta1.Device) {
	key := deviceKey(d)
	model := modelKey(d)
	old, had := s.devices[key]
	s.devices[key] = model
	// The model first (it ranks first too), and referenced before the old
	// one is released so a model both use is never removed and re-added.
	v.refLocked(node, s, model)
	s.sink.Set(toObject(key, forNode(d)))
	if had {
		v.unrefAllLocked(node, s, podRefs{objects: []string{old}})
	}
}

func (v *View) removeDeviceLocked(node string, s *subscription, key string) {
	model, ok := s.devices[key]
	if !ok {
		return
	}
	delete(s.devices, key)
	s.sink.Remove(key)
	v.unrefAllLocked(node, s, podRefs{objects: []string{model}})
}

// forNode is what a node is sent of a Device: no status (the node does not
// use it; toObject drops managedFields).
func forNode(d *devicesv1beta1.Device) *devicesv1beta1.Device {
	c := *d
	c.Status = devicesv1beta1.DeviceInstanceStatus{}
	return &c
}

// WatchDevices connects the device informers to the View (and their
// progress to Start's horizons). Call it before starting the informers
// and before the first node connects.
func (w *Watcher) WatchDevices(inf *devclient.Informers) error {
	w.devices = inf
	w.View.SetDevices(inf)
	_, err := inf.Devices.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.View.OnDevice(nil, asDevice(obj)) },
		UpdateFunc: func(old, new any) { w.View.OnDevice(asDevice(old), asDevice(new)) },
		DeleteFunc: func(obj any) { w.View.OnDevice(asDevice(obj), nil) },
	})
	if err != nil {
		return fmt.Errorf("watching devices: %w", err)
	}
	_, err = inf.Models.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { onObject(w.View, DeviceModels, obj, false) },
		UpdateFunc: func(_, obj any) { onObject(w.View, DeviceModels, obj, false) },
		DeleteFunc: func(obj any) { onObject(w.View, DeviceModels, obj, true) },
	})
	if err != nil {
		return fmt.Errorf("watching device models: %w", err)
	}
	return nil
}

func asDevice(obj any) *devicesv1beta1.Device {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	d, _ := obj.(*devicesv1beta1.Device)
	return d
}
