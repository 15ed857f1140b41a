package nodeview

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/protocol/downsync"
)

type fakeDevices struct {
	devices []*devicesv1beta1.Device
	models  map[string]*devicesv1beta1.DeviceModel
}

func (f *fakeDevices) DevicesOnNode(node string) []*devicesv1beta1.Device {
	var out []*devicesv1beta1.Device
	for _, d := range f.devices {
		if d.Spec.NodeName == node {
			out = append(out, d)
		}
	}
	return out
}

func (f *fakeDevices) Model(ns, name string) (*devicesv1beta1.DeviceModel, bool) {
	m, ok := f.models[ns+"/"+name]
	return m, ok
}

func device(name, node, model, rv string) *devicesv1beta1.Device {
	return &devicesv1beta1.Device{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("u-" + name), ResourceVersion: rv, Generation: 1},
		Spec:       devicespec.DeviceSpec{NodeName: node, DeviceModelRef: devicespec.LocalObjectReference{Name: model}},
	}
}

func model(name, rv string) *devicesv1beta1.DeviceModel {
	return &devicesv1beta1.DeviceModel{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("u-" + name), ResourceVersion: rv,
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
}

// sinkObjects records what a Sink receives, bodies included.
type sinkObjects struct {
	recorder
	bodies map[string]any
}

func (s *sinkObjects) Set(o downsync.Object) {
	s.recorder.Set(o)
	if s.bodies == nil {
		s.bodies = map[string]any{}
	}
	s.bodies[o.Key] = o.Body
}

func TestViewDevices(t *testing.T) {
	thermo := device("t1", "edge-1", "thermostat", "10")
	thermo.Status.State = "ok"
	thermo.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	devs := &fakeDevices{devices: []*devicesv1beta1.Device{thermo, device("elsewhere", "edge-2", "thermostat", "11")}, models: map[string]*devicesv1beta1.DeviceModel{}}
	v := New(&fakeCache{objects: map[string]runtime.Object{}}, &fakeTokens{})
	v.SetDevices(devs)
	r := &sinkObjects{}
	unsubscribe := v.Subscribe("edge-1", r, nil)

	// The model is not there yet: the device goes alone.
	if got := r.take(); got != "set devices/ns/t1@10" {
		t.Fatalf("initial view:\n%s", got)
	}
	sent := r.bodies["devices/ns/t1"].(*devicesv1beta1.Device)
	if sent.Status.State != "" || len(sent.ManagedFields) != 0 || thermo.Status.State != "ok" {
		t.Fatalf("a node gets no status and no managedFields, and the informer's object stays as it was: sent %+v", sent)
	}

	// The model arrives after its device.
	devs.models["ns/thermostat"] = model("thermostat", "12")
	v.OnObject("devicemodels/ns/thermostat", model("thermostat", "12"))
	v.OnObject("devicemodels/ns/unused", model("unused", "13"))
	if got := r.take(); got != "set devicemodels/ns/thermostat@12" {
		t.Fatalf("late model:\n%s", got)
	}
	if m := r.bodies["devicemodels/ns/thermostat"].(*devicesv1beta1.DeviceModel); len(m.ManagedFields) != 0 {
		t.Fatalf("model sent with managedFields")
	}

	// Status-only updates (the controller's or the node's own reports) are
	// not echoed; spec changes are.
	st := thermo.DeepCopy()
	st.ResourceVersion, st.Status.State = "14", "disconnected"
	st.ManagedFields = append(st.ManagedFields, metav1.ManagedFieldsEntry{Manager: "verge-cloud", Subresource: "status"})
	v.OnDevice(thermo, st)
	if got := r.take(); got != "" {
		t.Fatalf("status-only update sent:\n%s", got)
	}
	spec := st.DeepCopy()
	spec.ResourceVersion, spec.Generation = "15", 2
	spec.Spec.Properties = []devicespec.DeviceProperty{{Name: "setpoint", Desired: &devicespec.TwinProperty{Value: "22"}}}
	v.OnDevice(st, spec)
	if got := r.take(); got != "set devices/ns/t1@15" {
		t.Fatalf("spec change:\n%s", got)
	}

	// A second device on the same model; moving the first to another node
	// keeps the model for the second.
	t2 := device("t2", "edge-1", "thermostat", "16")
	v.OnDevice(nil, t2)
	r.take()
	moved := spec.DeepCopy()
	moved.ResourceVersion, moved.Spec.NodeName = "17", "edge-2"
	v.OnDevice(spec, moved)
	if got := r.take(); got != "remove devices/ns/t1" {
		t.Fatalf("device moved away:\n%s", got)
	}
	v.OnDevice(t2, nil)
	if got := r.take(); got != "remove devices/ns/t2\nremove devicemodels/ns/thermostat" {
		t.Fatalf("last user deleted:\n%s", got)
	}
	unsubscribe()
	if len(v.users) != 0 {
		t.Fatalf("state left: %v", v.users)
	}
}

func TestRankPutsModelsBeforeDevices(t *testing.T) {
	if Rank("devicemodels/ns/m", false) >= Rank("devices/ns/d", false) || Rank("devices/ns/d", true) >= Rank("devicemodels/ns/m", true) {
		t.Fatal("models must be sent before the devices naming them and deleted after them")
	}
	if Rank("configmaps/ns/c", false) != Rank("devicemodels/ns/m", false) || Rank("pods/ns/p", false) != Rank("devices/ns/d", false) {
		t.Fatal("ranks of device kinds should match their pod counterparts")
	}
}
