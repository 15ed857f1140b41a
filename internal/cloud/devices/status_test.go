package devices

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/protocol/wire"
)

func thermostatModel() *devicesv1beta1.DeviceModel {
	return &devicesv1beta1.DeviceModel{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "thermostat"},
		Spec: devicespec.DeviceModelSpec{Protocol: "modbus", Properties: []devicespec.ModelProperty{
			{Name: "temperature", Type: devicespec.PropertyType("FLOAT"), AccessMode: devicespec.ReadOnly},
			{Name: "setpoint", Type: devicespec.PropertyType("FLOAT"), AccessMode: devicespec.ReadWrite, Minimum: "5", Maximum: "35"},
		}},
	}
}

func thermostat(mutate ...func(*devicesv1beta1.Device)) *devicesv1beta1.Device {
	d := &devicesv1beta1.Device{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "t1", UID: "u1", Generation: 3},
		Spec: devicespec.DeviceSpec{
			DeviceModelRef: devicespec.LocalObjectReference{Name: "thermostat"},
			NodeName:       "edge-1",
			Protocol:       devicespec.ProtocolConfig{ProtocolName: "modbus"},
			Properties: []devicespec.DeviceProperty{
				{Name: "temperature"},
				{Name: "setpoint", Desired: &devicespec.TwinProperty{Value: "21.5"}},
			},
		},
	}
	for _, m := range mutate {
		m(d)
	}
	return d
}

func okFacts() *EdgeFacts {
	return &EdgeFacts{Node: "edge-1", Generation: 3, Mapper: wire.DeviceMapper{Name: "modbus", Available: true}, State: "ok"}
}

func TestDesiredStatus(t *testing.T) {
	now := metav1.NewTime(time.Unix(1700000000, 0))
	type want struct{ model, mapper, synced, ready string } // "Status/Reason"
	for _, tc := range []struct {
		name string
		in   StatusInput
		want want
		msg  string // a substring of the Ready message
	}{
		{"all good", StatusInput{Device: thermostat(), Model: thermostatModel(), Node: NodeOnline, Facts: okFacts()},
			want{"True/ModelFound", "True/MapperRegistered", "True/Synced", "True/Ready"}, ""},
		{"unknown model", StatusInput{Device: thermostat(), Node: NodeOnline, Facts: okFacts()},
			want{"False/ModelNotFound", "True/MapperRegistered", "True/Synced", "False/ModelNotFound"}, "DeviceModel thermostat not found in namespace ns"},
		{"no mapper for the protocol", StatusInput{Device: thermostat(), Model: thermostatModel(), Node: NodeOnline, Facts: &EdgeFacts{
			Node: "edge-1", Generation: 3, State: "unknown",
			Mapper: wire.DeviceMapper{Reason: devicespec.ReasonNoMapperForProtocol, Message: "no mapper for protocol modbus is registered on node edge-1"}}},
			want{"True/ModelFound", "False/NoMapperForProtocol", "True/Synced", "False/NoMapperForProtocol"}, "no mapper for protocol modbus is registered on node edge-1"},
		{"node serves an older generation", StatusInput{Device: thermostat(), Model: thermostatModel(), Node: NodeOnline, Facts: func() *EdgeFacts { f := okFacts(); f.Generation = 2; return f }()},
			want{"True/ModelFound", "True/MapperRegistered", "False/SyncPending", "False/SyncPending"}, "generation 3 not applied yet"},
		{"node offline", StatusInput{Device: thermostat(), Model: thermostatModel(), Node: NodeOffline, Facts: okFacts()},
			want{"True/ModelFound", "Unknown/NodeOffline", "False/NodeOffline", "False/NodeOffline"}, "not connected"},
		{"node missing", StatusInput{Device: thermostat(), Model: thermostatModel(), Node: NodeMissing},
			want{"True/ModelFound", "False/NodeNotFound", "False/NodeNotFound", "False/NodeNotFound"}, "node edge-1 does not exist"},
		{"no node name", StatusInput{Device: thermostat(func(d *devicesv1beta1.Device) { d.Spec.NodeName = "" }), Model: thermostatModel()},
			want{"True/ModelFound", "False/NoNodeName", "False/NoNodeName", "False/NoNodeName"}, "spec.nodeName is empty"},
		{"no report yet", StatusInput{Device: thermostat(), Model: thermostatModel(), Node: NodeOnline},
			want{"True/ModelFound", "Unknown/SyncPending", "False/SyncPending", "False/SyncPending"}, "waiting for node edge-1"},
		{"device not ok", StatusInput{Device: thermostat(), Model: thermostatModel(), Node: NodeOnline, Facts: func() *EdgeFacts {
			f := okFacts()
			f.State, f.Reason = "unhealthy", "property temperature: InputRegister 5000+1: illegal data address"
			return f
		}()}, want{"True/ModelFound", "True/MapperRegistered", "True/Synced", "False/DeviceNotOK"}, "unhealthy: property temperature"},
		{"protocol mismatch", StatusInput{Device: thermostat(func(d *devicesv1beta1.Device) { d.Spec.Protocol.ProtocolName = "opcua" }), Model: thermostatModel(), Node: NodeOnline, Facts: okFacts()},
			want{"False/ProtocolMismatch", "True/MapperRegistered", "True/Synced", "False/ProtocolMismatch"}, `"opcua"`},
		{"property not in model", StatusInput{Device: thermostat(func(d *devicesv1beta1.Device) {
			d.Spec.Properties = append(d.Spec.Properties, devicespec.DeviceProperty{Name: "humidity"})
		}), Model: thermostatModel(), Node: NodeOnline, Facts: okFacts()},
			want{"False/PropertyNotInModel", "True/MapperRegistered", "True/Synced", "False/PropertyNotInModel"}, "does not define humidity"},
		{"desired out of range", StatusInput{Device: thermostat(func(d *devicesv1beta1.Device) { d.Spec.Properties[1].Desired.Value = "90" }), Model: thermostatModel(), Node: NodeOnline, Facts: okFacts()},
			want{"False/InvalidDesiredValue", "True/MapperRegistered", "True/Synced", "False/InvalidDesiredValue"}, "property setpoint"},
		{"desired on a ReadOnly property", StatusInput{Device: thermostat(func(d *devicesv1beta1.Device) {
			d.Spec.Properties[0].Desired = &devicespec.TwinProperty{Value: "20"}
		}), Model: thermostatModel(), Node: NodeOnline, Facts: okFacts()},
			want{"False/InvalidDesiredValue", "True/MapperRegistered", "True/Synced", "False/InvalidDesiredValue"}, "ReadOnly"},
		{"no protocol anywhere", StatusInput{Device: thermostat(func(d *devicesv1beta1.Device) { d.Spec.Protocol.ProtocolName = "" }), Model: func() *devicesv1beta1.DeviceModel {
			m := thermostatModel()
			m.Spec.Protocol = ""
			return m
		}(), Node: NodeOnline, Facts: okFacts()},
			want{"True/ModelFound", "False/NoProtocol", "True/Synced", "False/NoProtocol"}, "names a protocol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := DesiredStatus(tc.in, now)
			got := want{cond(st, "ModelResolved"), cond(st, "MapperAvailable"), cond(st, "Synced"), cond(st, "Ready")}
			if got != tc.want {
				t.Fatalf("conditions %+v, want %+v\n%s", got, tc.want, dump(st))
			}
			ready := meta.FindStatusCondition(st.Conditions, "Ready")
			if !strings.Contains(ready.Message, tc.msg) {
				t.Errorf("Ready message %q does not say %q", ready.Message, tc.msg)
			}
			for _, c := range st.Conditions {
				if c.ObservedGeneration != 3 {
					t.Errorf("condition %s observedGeneration %d, want 3", c.Type, c.ObservedGeneration)
				}
			}
			if st.ObservedGeneration != 3 {
				t.Errorf("observedGeneration %d", st.ObservedGeneration)
			}
		})
	}
}

func cond(st devicesv1beta1.DeviceInstanceStatus, typ string) string {
	c := meta.FindStatusCondition(st.Conditions, typ)
	if c == nil {
		return "missing"
	}
	return string(c.Status) + "/" + c.Reason
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func TestDesiredStatusKeepsWhatTheNodeSaidAcrossRestarts(t *testing.T) {
	t0 := metav1.NewTime(time.Unix(1700000000, 0))
	d := thermostat()
	d.Status = DesiredStatus(StatusInput{Device: d, Model: thermostatModel(), Node: NodeOnline, Facts: okFacts()}, t0)
	// verge-cloud restarted: no facts; the conditions stand, transition
	// times unchanged.
	later := metav1.NewTime(t0.Add(time.Hour))
	st := DesiredStatus(StatusInput{Device: d, Model: thermostatModel(), Node: NodeOnline, State: "ok"}, later)
	if !statusEqual(d.Status, st) {
		t.Fatalf("status changed without news:\nbefore %s\nafter %s", dump(d.Status), dump(st))
	}
	// A new generation is not synced until the node says so.
	d.Generation = 4
	st = DesiredStatus(StatusInput{Device: d, Model: thermostatModel(), Node: NodeOnline, State: "ok"}, later)
	if got := cond(st, "Synced"); got != "False/SyncPending" {
		t.Fatalf("Synced after a spec change: %s", got)
	}
	if c := meta.FindStatusCondition(st.Conditions, "MapperAvailable"); c.Status != metav1.ConditionTrue || !c.LastTransitionTime.Equal(&t0) {
		t.Fatalf("MapperAvailable should stand as the node said: %+v", c)
	}
}

func TestLastOnlineTimeIsRefreshedSparingly(t *testing.T) {
	for _, tc := range []struct {
		stored, reported string
		changed          bool
		want             string
	}{
		{"", "2025-01-01T00:00:10Z", false, "2025-01-01T00:00:10Z"},
		{"2025-01-01T00:00:00Z", "2025-01-01T00:00:30Z", false, "2025-01-01T00:00:00Z"},
		{"2025-01-01T00:00:00Z", "2025-01-01T00:00:30Z", true, "2025-01-01T00:00:30Z"},
		{"2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z", false, "2025-01-01T00:01:00Z"},
		{"2025-01-01T00:00:00Z", "", false, "2025-01-01T00:00:00Z"},
		{"2025-01-01 00:00:00", "2025-01-01T00:00:05Z", false, "2025-01-01 00:00:00"},
	} {
		if got := lastOnlineForDevice(tc.stored, tc.reported, tc.changed); got != tc.want {
			t.Errorf("lastOnlineForDevice(%q, %q, %v) = %q, want %q", tc.stored, tc.reported, tc.changed, got, tc.want)
		}
	}
}

func TestPacer(t *testing.T) {
	p := NewPacer(500 * time.Millisecond)
	t0 := time.Unix(100, 0)
	if w, prev := p.Admit("a", t0); w != 0 || !prev.IsZero() {
		t.Fatalf("first write: wait %v prev %v", w, prev)
	}
	if w, _ := p.Admit("a", t0.Add(200*time.Millisecond)); w != 300*time.Millisecond {
		t.Fatalf("second write 200ms later: wait %v, want 300ms", w)
	}
	if w, _ := p.Admit("b", t0.Add(200*time.Millisecond)); w != 0 {
		t.Fatalf("other device waits %v", w)
	}
	if w, prev := p.Admit("a", t0.Add(500*time.Millisecond)); w != 0 || !prev.Equal(t0) {
		t.Fatalf("after the interval: wait %v prev %v", w, prev)
	}
	p.Prune(t0.Add(2 * time.Second))
	if p.Len() != 0 {
		t.Fatalf("prune kept %d", p.Len())
	}
	// Writes per device over a second of reports every 10 ms: at most
	// 1 + 1s/interval.
	writes := 0
	for i := 0; i < 100; i++ {
		if w, _ := p.Admit("c", t0.Add(time.Duration(i)*10*time.Millisecond)); w == 0 {
			writes++
		}
	}
	if writes != 2 {
		t.Fatalf("%d writes for 100 reports in 1 s at a 500 ms interval, want 2", writes)
	}
}

func TestDeviceStatusPatch(t *testing.T) {
	d := thermostat()
	r := &wire.DeviceReport{Namespace: "ns", Name: "t1", State: "ok", LastOnlineTime: "2025-01-01T00:00:00Z", Twins: []devicespec.Twin{
		{PropertyName: "temperature", Reported: devicespec.TwinProperty{Value: "20.5", Metadata: map[string]string{"timestamp": "1", "type": "float"}}},
		{PropertyName: "removed-from-spec", Reported: devicespec.TwinProperty{Value: "1"}},
		{PropertyName: "temperature", Reported: devicespec.TwinProperty{Value: "dup"}},
	}}
	b, err := DeviceStatusPatch("edge-1", d, r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"status":{"lastOnlineTime":"2025-01-01T00:00:00Z","nodeName":"edge-1","state":"ok","twins":[{"propertyName":"temperature","reported":{"value":"20.5","metadata":{"timestamp":"1","type":"float"}},"observedDesired":{"value":""}}]}}`
	if string(b) != want {
		t.Fatalf("patch\n%s\nwant\n%s", b, want)
	}
	b, _ = DeviceStatusPatch("edge-1", d, &wire.DeviceReport{})
	if !strings.Contains(string(b), `"twins":null`) || !strings.Contains(string(b), `"state":null`) {
		t.Fatalf("an empty snapshot must clear twins and state: %s", b)
	}
}

func TestDesiredToApply(t *testing.T) {
	d := thermostat()
	got := DesiredToApply(d, []wire.DesiredUpdate{
		{Property: "setpoint", Value: "23", Base: "21.5"}, // applies
		{Property: "setpoint", Value: "24", Base: "20"},   // the cloud changed it since: cloud wins
		{Property: "setpoint", Value: "21.5", Base: "19"}, // already there
		{Property: "temperature", Value: "1", Base: ""},   // applies (no desired yet)
		{Property: "not-in-spec", Value: "1", Base: ""},   // ignored
	})
	if len(got) != 2 || got[0].Value != "23" || got[1].Property != "temperature" {
		t.Fatalf("DesiredToApply = %+v", got)
	}
}

func TestNewDeviceStatusIsOwnedByTheDevice(t *testing.T) {
	ds := NewDeviceStatus(thermostat())
	if ds.Name != "t1" || ds.Namespace != "ns" || len(ds.OwnerReferences) != 1 {
		t.Fatalf("%+v", ds.ObjectMeta)
	}
	o := ds.OwnerReferences[0]
	if o.Kind != "Device" || o.UID != "u1" || o.Controller == nil || !*o.Controller || o.APIVersion != "devices.kubeedge.io/v1beta1" {
		t.Fatalf("owner %+v", o)
	}
}
