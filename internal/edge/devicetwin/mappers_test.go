package devicetwin

import (
	"strings"
	"testing"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

func TestBind(t *testing.T) {
	mappers := map[string]*Mapper{
		"modbus-b": {Name: "modbus-b", Protocol: "modbus"},
		"modbus-a": {Name: "modbus-a", Protocol: "modbus"},
		"opcua":    {Name: "opcua", Protocol: "opcua"},
	}
	for _, tc := range []struct {
		ann      map[string]string
		protocol string
		want     string // mapper name, or "!" + a substring of the message
	}{
		{nil, "modbus", "modbus-a"},
		{map[string]string{MapperAnnotation: "modbus-b"}, "modbus", "modbus-b"},
		{map[string]string{MapperAnnotation: "opcua"}, "modbus", "!serves protocol opcua, not modbus"},
		{map[string]string{MapperAnnotation: "modbus-c"}, "modbus", "!mapper modbus-c (annotation"},
		{nil, "opcua", "opcua"},
		{nil, "bacnet", "!no mapper for protocol bacnet is registered on node edge-1 (registered: modbus-a (modbus), modbus-b (modbus), opcua (opcua))"},
		{nil, "", "!names a protocol"},
	} {
		b := Bind(tc.ann, tc.protocol, "edge-1", mappers)
		if msg, ok := strings.CutPrefix(tc.want, "!"); ok {
			if b.Available || !strings.Contains(b.Message, msg) {
				t.Errorf("Bind(%v, %q) = %+v, want unavailable saying %q", tc.ann, tc.protocol, b, msg)
			}
			continue
		}
		if !b.Available || b.Name != tc.want {
			t.Errorf("Bind(%v, %q) = %+v, want %s", tc.ann, tc.protocol, b, tc.want)
		}
	}
	// A mapper named like the protocol is preferred.
	mappers["modbus"] = &Mapper{Name: "modbus", Protocol: "modbus"}
	if b := Bind(nil, "modbus", "edge-1", mappers); b.Name != "modbus" {
		t.Errorf("mapper named like the protocol not chosen: %+v", b)
	}
}

func model(name string, props ...string) *dmi.DeviceModel {
	m := &dmi.DeviceModel{Name: name, Namespace: "ns", Spec: &dmi.DeviceModelSpec{}}
	for _, p := range props {
		m.Spec.Properties = append(m.Spec.Properties, &dmi.ModelProperty{Name: p, Type: "float"})
	}
	return m
}

func dmiDevice(name, desired string) *dmi.Device {
	return &dmi.Device{Name: name, Namespace: "ns", Spec: &dmi.DeviceSpec{DeviceModelReference: "m", Properties: []*dmi.DeviceProperty{
		{Name: "setpoint", Desired: &dmi.TwinProperty{Value: desired}},
	}}}
}

func ops(calls []Call) string {
	var s []string
	for _, c := range calls {
		s = append(s, c.Op.String()+" "+c.Key)
	}
	return strings.Join(s, "; ")
}

func TestPlan(t *testing.T) {
	pushed := NewPushed()
	want := Want{Models: map[string]*dmi.DeviceModel{"ns/m": model("m", "setpoint")}, Devices: map[string]*dmi.Device{"ns/b": dmiDevice("b", "1"), "ns/a": dmiDevice("a", "1")}}
	calls := Plan(pushed, want)
	if got := ops(calls); got != "CreateDeviceModel ns/m; RegisterDevice ns/a; RegisterDevice ns/b" {
		t.Fatalf("first plan: %s", got)
	}
	for _, c := range calls {
		pushed.Record(c)
	}
	if got := Plan(pushed, want); len(got) != 0 {
		t.Fatalf("nothing changed, plan %s", ops(got))
	}
	// A desired value changes: one UpdateDevice carrying it.
	want.Devices["ns/a"] = dmiDevice("a", "2")
	calls = Plan(pushed, want)
	if ops(calls) != "UpdateDevice ns/a" || calls[0].Device.GetSpec().GetProperties()[0].GetDesired().GetValue() != "2" {
		t.Fatalf("desired change: %s", ops(calls))
	}
	pushed.Record(calls[0])
	// The model changes and b goes: model update first, removals last.
	want.Models["ns/m"] = model("m", "setpoint", "power")
	delete(want.Devices, "ns/b")
	want.Models["ns/n"] = model("n")
	if got := ops(Plan(pushed, want)); got != "UpdateDeviceModel ns/m; CreateDeviceModel ns/n; RemoveDevice ns/b" {
		t.Fatalf("mixed plan: %s", got)
	}
	for _, c := range Plan(pushed, want) {
		pushed.Record(c)
	}
	if got := ops(Plan(pushed, Want{})); got != "RemoveDevice ns/a; RemoveDeviceModel ns/m; RemoveDeviceModel ns/n" {
		t.Fatalf("everything removed: %s", got)
	}
}
