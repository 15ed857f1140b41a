package devicetwin

import (
	"reflect"
	"testing"
	"time"

	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/protocol/kube"
	"github.com/verge-edge/verge/internal/protocol/wire"
	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

func reading(prop, v, ts, observed string) *dmi.Twin {
	t := &dmi.Twin{PropertyName: prop, Reported: &dmi.TwinProperty{Value: v, Metadata: map[string]string{"timestamp": ts, "type": "float"}}}
	if observed != "" {
		t.ObservedDesired = &dmi.TwinProperty{Value: observed}
	}
	return t
}

func TestApplyReadingsLatestWinsPerProperty(t *testing.T) {
	now := time.UnixMilli(5000)
	tw := &Twin{}
	if ch := tw.ApplyReadings([]*dmi.Twin{reading("a", "1", "1000", ""), reading("b", "2", "1000", "")}, now); !reflect.DeepEqual(ch, []string{"a", "b"}) {
		t.Fatalf("first readings changed %v", ch)
	}
	// An older reading of a arrives late: ignored. b gets a newer one.
	ch := tw.ApplyReadings([]*dmi.Twin{reading("a", "0", "900", ""), reading("b", "3", "1100", "")}, now)
	if !reflect.DeepEqual(ch, []string{"b"}) || tw.Readings["a"].Value != "1" || tw.Readings["b"].Value != "3" {
		t.Fatalf("late reading: changed %v, twin %+v", ch, tw.Readings)
	}
	// Same value again: stored (newer timestamp) but not a change; the
	// observed desired value moving is one.
	if ch := tw.ApplyReadings([]*dmi.Twin{reading("b", "3", "1200", "")}, now); len(ch) != 0 || tw.Readings["b"].Timestamp != 1200 {
		t.Fatalf("same value: changed %v ts %d", ch, tw.Readings["b"].Timestamp)
	}
	if ch := tw.ApplyReadings([]*dmi.Twin{reading("b", "3", "1300", "22")}, now); !reflect.DeepEqual(ch, []string{"b"}) {
		t.Fatalf("observed desired: changed %v", ch)
	}
	// Without a timestamp the reading is stamped now.
	tw.ApplyReadings([]*dmi.Twin{{PropertyName: "c", Reported: &dmi.TwinProperty{Value: "x"}}}, now)
	if tw.Readings["c"].Timestamp != 5000 || tw.LastOnline != 5000 {
		t.Fatalf("unstamped reading %+v, lastOnline %d", tw.Readings["c"], tw.LastOnline)
	}
}

func dev(gen int64, desired map[string]string, props ...string) *wire.Device {
	d := &wire.Device{ObjectMeta: kube.ObjectMeta{Namespace: "ns", Name: "d", UID: "u", Generation: gen}}
	for _, p := range props {
		dp := devicespec.DeviceProperty{Name: p}
		if v, ok := desired[p]; ok {
			dp.Desired = &devicespec.TwinProperty{Value: v}
		}
		d.Spec.Properties = append(d.Spec.Properties, dp)
	}
	return d
}

func desiredOf(d *wire.Device, p string) string { return cloudDesired(d, p) }

// The three-way merge of desired values: the node's value holds while the
// cloud still says what it replaced; any other cloud value wins.
func TestDesiredSetOnTheNode(t *testing.T) {
	cloud := dev(1, map[string]string{"setpoint": "20"}, "setpoint", "power")
	tw := &Twin{}
	tw.SetDesired("setpoint", "23", desiredOf(cloud, "setpoint"))
	if got := desiredOf(tw.WithDesired(cloud), "setpoint"); got != "23" {
		t.Fatalf("in force: %q", got)
	}
	if desiredOf(cloud, "setpoint") != "20" {
		t.Fatal("WithDesired changed its input")
	}
	// Set twice on the node: still relative to the cloud's 20.
	tw.SetDesired("setpoint", "24", desiredOf(tw.WithDesired(cloud), "setpoint"))
	if ed := tw.Desired["setpoint"]; ed.Base != "20" || ed.Value != "24" {
		t.Fatalf("second set: %+v", ed)
	}
	// Another property changes in the cloud (new generation): the node's
	// value stands.
	other := dev(2, map[string]string{"setpoint": "20", "power": "true"}, "setpoint", "power")
	if tw.Reconcile(other) || desiredOf(tw.WithDesired(other), "setpoint") != "24" {
		t.Fatalf("unrelated cloud change dropped the node's value: %+v", tw.Desired)
	}
	// The cloud took it (the report was applied): nothing pending.
	took := dev(3, map[string]string{"setpoint": "24"}, "setpoint", "power")
	if !tw.Reconcile(took) || len(tw.Desired) != 0 {
		t.Fatalf("accepted value still pending: %+v", tw.Desired)
	}
	// A user edit in the cloud overrides an older value set on the node.
	tw.SetDesired("setpoint", "30", "24")
	edited := dev(4, map[string]string{"setpoint": "18"}, "setpoint", "power")
	tw.Reconcile(edited)
	if got := desiredOf(tw.WithDesired(edited), "setpoint"); got != "18" || len(tw.Desired) != 0 {
		t.Fatalf("cloud edit lost: in force %q, pending %+v", got, tw.Desired)
	}
	// Setting the cloud's own value clears the entry.
	tw.SetDesired("setpoint", "18", "18")
	if len(tw.Desired) != 0 {
		t.Fatalf("no-op set kept: %+v", tw.Desired)
	}
	// A property without desired in the cloud gets one.
	tw.SetDesired("power", "false", "")
	if got := tw.WithDesired(edited).Spec.Property("power").Desired; got == nil || got.Value != "false" {
		t.Fatalf("desired on a property without one: %+v", got)
	}
}

func TestReport(t *testing.T) {
	d := dev(7, map[string]string{"setpoint": "20"}, "setpoint", "temperature")
	tw := &Twin{}
	tw.ApplyReadings([]*dmi.Twin{reading("temperature", "21.5", "1700000000000", ""), reading("setpoint", "20", "1700000000001", "20"), reading("gone", "1", "1", "")}, time.Now())
	tw.ApplyState("ok", "", time.UnixMilli(1700000000002))
	tw.SetDesired("setpoint", "22", "20")
	r := tw.Report(d, wire.DeviceMapper{Name: "modbus", Available: true})
	if r.Namespace != "ns" || r.Name != "d" || r.UID != "u" || r.Generation != 7 || r.State != "ok" || r.LastOnlineTime != "2023-11-14T22:13:20Z" {
		t.Fatalf("report header %+v", r)
	}
	if len(r.Twins) != 2 || r.Twins[0].PropertyName != "setpoint" || r.Twins[1].PropertyName != "temperature" {
		t.Fatalf("twins (sorted, only the device's properties): %+v", r.Twins)
	}
	if r.Twins[0].ObservedDesired.Value != "20" || r.Twins[1].Reported.Metadata["timestamp"] != "1700000000000" || r.Twins[1].Reported.Metadata["type"] != "float" {
		t.Fatalf("twin content %+v", r.Twins)
	}
	if len(r.DesiredUpdates) != 1 || r.DesiredUpdates[0] != (wire.DesiredUpdate{Property: "setpoint", Value: "22", Base: "20"}) {
		t.Fatalf("desired updates %+v", r.DesiredUpdates)
	}
	// No mapper: state unknown, the reason travels.
	r = (&Twin{}).Report(d, wire.DeviceMapper{Reason: "NoMapperForProtocol", Message: "no mapper for protocol modbus"})
	if r.State != "unknown" || r.Mapper.Available || r.Mapper.Message == "" {
		t.Fatalf("no-mapper report %+v", r)
	}
	// Pruning drops what the device no longer has.
	if !tw.Prune(dev(8, nil, "temperature")) || len(tw.Readings) != 1 || len(tw.Desired) != 0 {
		t.Fatalf("prune: %+v", tw)
	}
}
