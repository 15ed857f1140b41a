package mqttbus

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	dto "github.com/prometheus/client_model/go"

	"github.com/verge-edge/verge/internal/edge/devicetwin"
)

type fakeTwin struct {
	mu      sync.Mutex
	updates []string
	states  []string
}

func strp(s string) *string { return &s }

func (f *fakeTwin) Devices() []devicetwin.DeviceInfo {
	return []devicetwin.DeviceInfo{{Namespace: "default", Name: "thermo", State: "ok", LastOnline: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}}
}

func (f *fakeTwin) DeviceTwin(ns, name string) (map[string]devicetwin.TwinView, error) {
	if name != "thermo" {
		return nil, fmt.Errorf("device %s/%s: %w", ns, name, devicetwin.ErrNoDevice)
	}
	return map[string]devicetwin.TwinView{"setpoint": {Expected: strp("22"), Actual: strp("21.5"), ActualAt: 1700000000000, Type: "float"}}, nil
}

func (f *fakeTwin) UpdateTwin(ns, name, eventID string, upd map[string]devicetwin.TwinUpdate) (map[string]devicetwin.TwinView, error) {
	if name != "thermo" {
		return nil, fmt.Errorf("device %s/%s: %w", ns, name, devicetwin.ErrNoDevice)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]devicetwin.TwinView{}
	for p, u := range upd {
		if u.Expected != nil && *u.Expected == "99" {
			return nil, &devicetwin.UserError{Msg: "property setpoint: expected value \"99\": above the maximum 35"}
		}
		s := p
		if u.Expected != nil {
			s += " expected=" + *u.Expected
			out[p] = devicetwin.TwinView{Expected: u.Expected}
		}
		if u.Actual != nil {
			s += fmt.Sprintf(" actual=%s@%d type=%s", *u.Actual, u.Timestamp, u.Type)
		}
		f.updates = append(f.updates, s)
	}
	return out, nil
}

func (f *fakeTwin) UpdateState(ns, name, state string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states = append(f.states, ns+"/"+name+" "+state)
	return nil
}

// startBus runs a Bus on an embedded broker on a free loopback port and
// returns a connected paho client.
func startBus(t *testing.T, twin Twin) (*Bus, paho.Client) {
	t.Helper()
	broker := &Embedded{Listen: "127.0.0.1:0"}
	b, err := New(Config{NodeName: "edge-1", Broker: broker})
	if err != nil {
		t.Fatal(err)
	}
	b.SetTwin(twin)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bus stopped with an error: %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for broker.Addr() == nil || b.metrics == nil || !subscribed(b) {
		if time.Now().After(deadline) {
			t.Fatal("bus did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + broker.Addr().String()).SetClientID("app-" + t.Name()))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return b, c
}

// subscribed reports whether the bus serves its topics (verge_edge_mqtt_up).
func subscribed(b *Bus) bool {
	var m dto.Metric
	return b.metrics.up.Write(&m) == nil && m.GetGauge().GetValue() == 1
}

// listen subscribes to filter and returns a channel of messages.
func listen(t *testing.T, c paho.Client, filter string) <-chan paho.Message {
	t.Helper()
	ch := make(chan paho.Message, 16)
	if tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { ch <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return ch
}

func next(t *testing.T, ch <-chan paho.Message, into any) string {
	t.Helper()
	select {
	case m := <-ch:
		if err := json.Unmarshal(m.Payload(), into); err != nil {
			t.Fatalf("payload on %s: %v: %s", m.Topic(), err, m.Payload())
		}
		return m.Topic()
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
	}
	return ""
}

func publish(t *testing.T, c paho.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

func TestTwinUpdateFromAnApp(t *testing.T) {
	twin := &fakeTwin{}
	_, c := startBus(t, twin)
	results := listen(t, c, "$hw/events/device/default/+/twin/update/result")

	publish(t, c, "$hw/events/device/default/thermo/twin/update",
		`{"event_id":"e-1","timestamp":1700000000000,"twin":{"setpoint":{"expected":{"value":"23"},"metadata":{"type":"float"}}}}`)
	var res DeviceTwinUpdate
	topic := next(t, results, &res)
	if topic != "$hw/events/device/default/thermo/twin/update/result" || res.EventID != "e-1" || res.Twin["setpoint"] == nil || *res.Twin["setpoint"].Expected.Value != "23" {
		t.Fatalf("result on %s: %+v", topic, res)
	}

	// A mapper speaking MQTT reports an actual value.
	publish(t, c, "$hw/events/device/default/thermo/twin/update",
		`{"event_id":"e-2","timestamp":1,"twin":{"temperature":{"actual":{"value":"20.1","metadata":{"timestamp":1700000000123}},"metadata":{"type":"float"}}}}`)
	next(t, results, &res)
	twin.mu.Lock()
	got := strings.Join(twin.updates, "; ")
	twin.mu.Unlock()
	if got != "setpoint expected=23; temperature actual=20.1@1700000000123 type=float" {
		t.Fatalf("twin updates: %s", got)
	}

	// Refusals come back with a code and the reason.
	var errRes Result
	publish(t, c, "$hw/events/device/default/thermo/twin/update", `{"event_id":"e-3","twin":{"setpoint":{"expected":{"value":"99"}}}}`)
	next(t, results, &errRes)
	if errRes.EventID != "e-3" || errRes.Code != 400 || !strings.Contains(errRes.Reason, "above the maximum") {
		t.Fatalf("refused update: %+v", errRes)
	}
	publish(t, c, "$hw/events/device/default/nothere/twin/update", `{"event_id":"e-4","twin":{"x":{"expected":{"value":"1"}}}}`)
	next(t, results, &errRes)
	if errRes.EventID != "e-4" || errRes.Code != 404 {
		t.Fatalf("unknown device: %+v", errRes)
	}
	publish(t, c, "$hw/events/device/default/thermo/twin/update", `not json`)
	next(t, results, &errRes)
	if errRes.Code != 400 {
		t.Fatalf("bad JSON: %+v", errRes)
	}
}

func TestTwinGetStateAndMembership(t *testing.T) {
	twin := &fakeTwin{}
	_, c := startBus(t, twin)
	got := listen(t, c, "$hw/events/device/default/thermo/twin/get/result")
	publish(t, c, "$hw/events/device/default/thermo/twin/get", `{"event_id":"g-1","timestamp":1}`)
	var res DeviceTwinUpdate
	next(t, got, &res)
	sp := res.Twin["setpoint"]
	if res.EventID != "g-1" || sp == nil || *sp.Expected.Value != "22" || *sp.Actual.Value != "21.5" || sp.Actual.Metadata.Timestamp != 1700000000000 || sp.Metadata.Type != "float" {
		t.Fatalf("twin/get/result: %s", mustJSON(res))
	}

	members := listen(t, c, "$hw/events/node/edge-1/membership/get/result")
	publish(t, c, "$hw/events/node/edge-1/membership/get", `{"event_id":"m-1"}`)
	var md MembershipDetail
	next(t, members, &md)
	if md.EventID != "m-1" || len(md.Devices) != 1 || md.Devices[0].ID != "default/thermo" || md.Devices[0].Name != "thermo" || md.Devices[0].LastOnline != "2025-01-02 03:04:05" {
		t.Fatalf("membership: %s", mustJSON(md))
	}

	publish(t, c, "$hw/events/device/default/thermo/state/update", `{"event_id":"s-1","state":"online"}`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		twin.mu.Lock()
		n := len(twin.states)
		twin.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("state update not handled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEventsArePublished(t *testing.T) {
	b, c := startBus(t, &fakeTwin{})
	results := listen(t, c, "$hw/events/device/default/thermo/twin/update/result")
	docs := listen(t, c, "$hw/events/device/default/thermo/twin/update/document")
	deltas := listen(t, c, "$hw/events/device/default/thermo/twin/update/delta")
	states := listen(t, c, "$hw/events/device/default/thermo/state/update/result")
	members := listen(t, c, "$hw/events/node/edge-1/membership/updated")

	b.TwinChanged(devicetwin.TwinChange{Namespace: "default", Name: "thermo",
		Before: map[string]devicetwin.TwinView{"setpoint": {Expected: strp("22"), Actual: strp("20")}},
		After:  map[string]devicetwin.TwinView{"setpoint": {Expected: strp("22"), Actual: strp("21"), ActualAt: 5}},
		All:    map[string]devicetwin.TwinView{"setpoint": {Expected: strp("22"), Actual: strp("21")}, "temperature": {Actual: strp("19")}},
	})
	var res DeviceTwinUpdate
	next(t, results, &res)
	if *res.Twin["setpoint"].Actual.Value != "21" || res.EventID == "" {
		t.Fatalf("result: %s", mustJSON(res))
	}
	var doc DeviceTwinDocument
	next(t, docs, &doc)
	if d := doc.Twin["setpoint"]; d == nil || *d.Last.Actual.Value != "20" || *d.Current.Actual.Value != "21" {
		t.Fatalf("document: %s", mustJSON(doc))
	}
	var dl DeviceTwinDelta
	next(t, deltas, &dl)
	if len(dl.Delta) != 1 || dl.Delta["setpoint"] != "22" || len(dl.Twin) != 2 {
		t.Fatalf("delta: %s", mustJSON(dl))
	}

	b.StateChanged("default", "thermo", "ok", time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	var st DeviceMsg
	next(t, states, &st)
	if st.Device.Name != "thermo" || st.Device.State != "ok" || st.Device.LastOnline != "2025-01-02 03:04:05" {
		t.Fatalf("state result: %s", mustJSON(st))
	}

	b.MembershipChanged([]devicetwin.DeviceInfo{{Namespace: "default", Name: "new", Twin: map[string]devicetwin.TwinView{"p": {Expected: strp("1")}}}}, []devicetwin.DeviceInfo{{Namespace: "default", Name: "old"}})
	var mu MembershipUpdate
	next(t, members, &mu)
	if len(mu.AddDevices) != 1 || mu.AddDevices[0].ID != "default/new" || *mu.AddDevices[0].Twin["p"].Expected.Value != "1" || len(mu.RemoveDevices) != 1 || mu.RemoveDevices[0].ID != "default/old" {
		t.Fatalf("membership updated: %s", mustJSON(mu))
	}

	// No delta when everything matches.
	b.TwinChanged(devicetwin.TwinChange{Namespace: "default", Name: "thermo", After: map[string]devicetwin.TwinView{"setpoint": {Expected: strp("22"), Actual: strp("22")}},
		All: map[string]devicetwin.TwinView{"setpoint": {Expected: strp("22"), Actual: strp("22")}}})
	next(t, docs, &doc)
	select {
	case m := <-deltas:
		t.Fatalf("delta without a difference: %s", m.Payload())
	case <-time.After(300 * time.Millisecond):
	}
}

func TestBusyPortIsRetriedNotFatal(t *testing.T) {
	first := &Embedded{Listen: "127.0.0.1:0"}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Close() }()
	second := &Embedded{Listen: first.Addr().String()}
	err := second.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "devices.mqtt.listen") {
		t.Fatalf("busy port: %v", err)
	}
	b, _ := New(Config{NodeName: "n", Broker: second, RetryInterval: 50 * time.Millisecond})
	b.SetTwin(&fakeTwin{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatalf("a busy port must not stop verge-edge: %v", err)
	}
}

func TestTopics(t *testing.T) {
	if ns, name, ok := parseDeviceTopic("$hw/events/device/default/thermo/twin/update", suffixTwinUpdate); !ok || ns != "default" || name != "thermo" {
		t.Fatal("parse")
	}
	for _, bad := range []string{"$hw/events/device/thermo/twin/update", "$hw/events/device/a/b/c/twin/update", "x/events/device/a/b/twin/update"} {
		if _, _, ok := parseDeviceTopic(bad, suffixTwinUpdate); ok {
			t.Errorf("accepted %s", bad)
		}
	}
	if DeviceTopic("ns", "d", suffixTwinDelta) != "$hw/events/device/ns/d/twin/update/delta" || NodeTopic("edge-1", suffixMembershipUpdtd) != "$hw/events/node/edge-1/membership/updated" {
		t.Fatal("topic builders")
	}
}
