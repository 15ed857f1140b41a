package devicespec

import (
	"encoding/json"
	"testing"
	"time"
)

func cv(s string) *CustomizedValue { return &CustomizedValue{Raw: json.RawMessage(s)} }

func raw(v *CustomizedValue) string {
	if v == nil {
		return "<nil>"
	}
	return string(v.Raw)
}

func TestResolveDeviceAppliesModelDefaults(t *testing.T) {
	model := &DeviceModelSpec{
		Protocol:           "modbus",
		ProtocolConfigData: cv(`{"slaveID":1,"timeout":500}`),
		Properties: []ModelProperty{
			{Name: "temperature", Type: PropertyTypeFloat, Visitors: &VisitorConfig{ProtocolName: "modbus", ConfigData: cv(`{"register":"InputRegister","offset":0,"scale":0.1}`)}},
			{Name: "setpoint", Type: PropertyTypeInt},
			{Name: "power", Type: PropertyTypeBoolean, Visitors: &VisitorConfig{ProtocolName: "modbus", ConfigData: cv(`{"register":"CoilRegister"}`)}},
		},
	}
	device := &DeviceSpec{
		DeviceModelRef: LocalObjectReference{Name: "m"},
		Protocol:       ProtocolConfig{ConfigData: cv(`{"ip":"10.0.0.2","timeout":1000}`)},
		Properties: []DeviceProperty{
			{Name: "temperature", Visitors: &VisitorConfig{ConfigData: cv(`{"offset":4}`)}},
			{Name: "setpoint", Visitors: &VisitorConfig{ProtocolName: "modbus", ConfigData: cv(`{"register":"HoldingRegister","offset":1}`)}},
			{Name: "power"},
		},
	}
	before := device.DeepCopy()

	got, err := ResolveDevice(device, model)
	if err != nil {
		t.Fatal(err)
	}
	if got.Protocol.ProtocolName != "modbus" {
		t.Errorf("protocolName = %q, want the model's", got.Protocol.ProtocolName)
	}
	if s := raw(got.Protocol.ConfigData); s != `{"ip":"10.0.0.2","slaveID":1,"timeout":1000}` {
		t.Errorf("protocol configData = %s", s)
	}
	want := map[string]struct{ protocol, config string }{
		"temperature": {"modbus", `{"offset":4,"register":"InputRegister","scale":0.1}`},
		"setpoint":    {"modbus", `{"register":"HoldingRegister","offset":1}`}, // no model visitors: untouched
		"power":       {"modbus", `{"register":"CoilRegister"}`},
	}
	for _, p := range got.Properties {
		w := want[p.Name]
		if p.Visitors == nil || p.Visitors.ProtocolName != w.protocol || raw(p.Visitors.ConfigData) != w.config {
			t.Errorf("%s visitors = %+v %s, want %s %s", p.Name, p.Visitors, raw(p.Visitors.ConfigData), w.protocol, w.config)
		}
	}
	if b, _ := json.Marshal(before); string(b) != mustJSON(t, device) {
		t.Error("ResolveDevice changed its argument")
	}
}

func TestResolveDeviceKeepsTheDevicesProtocol(t *testing.T) {
	model := &DeviceModelSpec{Protocol: "modbus"}
	device := &DeviceSpec{Protocol: ProtocolConfig{ProtocolName: "modbus-rtu"}}
	got, err := ResolveDevice(device, model)
	if err != nil {
		t.Fatal(err)
	}
	if got.Protocol.ProtocolName != "modbus-rtu" || got.Protocol.ConfigData != nil {
		t.Errorf("protocol = %+v", got.Protocol)
	}
	got, err = ResolveDevice(device, nil)
	if err != nil || got == device || got.Protocol.ProtocolName != "modbus-rtu" {
		t.Errorf("without a model: %+v, %v; want a copy", got, err)
	}
}

func TestResolveDeviceReportsBrokenConfig(t *testing.T) {
	model := &DeviceModelSpec{Properties: []ModelProperty{
		{Name: "p", Visitors: &VisitorConfig{ConfigData: cv(`{"a":1}`)}},
	}}
	device := &DeviceSpec{Properties: []DeviceProperty{{Name: "p", Visitors: &VisitorConfig{ConfigData: cv(`{"a":`)}}}}
	if _, err := ResolveDevice(device, model); err == nil || err.Error()[:10] != "property p" {
		t.Errorf("err = %v, want one naming property p", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLastOnlineTime(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2025-06-01T12:00:00Z", at, true},
		{"2025-06-01T14:00:00+02:00", at, true},
		{"2025-06-01T12:00:00.5Z", at.Add(500 * time.Millisecond), true},
		{"2025-06-01 12:00:00", at, true}, // upstream edges
		{" 2025-06-01 12:00:00 ", at, true},
		{"", time.Time{}, false},
		{"yesterday", time.Time{}, false},
		{"1748779200", time.Time{}, false},
	} {
		got, err := ParseLastOnlineTime(tc.in)
		if (err == nil) != tc.ok || !got.Equal(tc.want) {
			t.Errorf("ParseLastOnlineTime(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
	s := FormatLastOnlineTime(at.In(time.FixedZone("CEST", 2*3600)))
	if s != "2025-06-01T12:00:00Z" {
		t.Errorf("FormatLastOnlineTime = %q", s)
	}
	if back, err := ParseLastOnlineTime(s); err != nil || !back.Equal(at) {
		t.Errorf("parsing the formatted time: %v, %v", back, err)
	}
}

func TestLookups(t *testing.T) {
	m := DeviceModelSpec{Properties: []ModelProperty{{Name: "a"}, {Name: "b"}}}
	if p := m.Property("b"); p == nil || p != &m.Properties[1] {
		t.Errorf("model Property(b) = %v", p)
	}
	if m.Property("c") != nil {
		t.Error("model Property(c) found")
	}
	d := DeviceSpec{Properties: []DeviceProperty{{Name: "a"}}, Methods: []DeviceMethod{{Name: "Heat"}}}
	if p := d.Property("a"); p == nil || p != &d.Properties[0] {
		t.Errorf("device Property(a) = %v", p)
	}
	if d.Property("b") != nil || d.Method("Cool") != nil {
		t.Error("found what is not there")
	}
	if meth := d.Method("Heat"); meth == nil || meth != &d.Methods[0] {
		t.Errorf("Method(Heat) = %v", meth)
	}
	twins := []Twin{{PropertyName: "x"}, {PropertyName: "y"}}
	if tw := FindTwin(twins, "y"); tw == nil || tw != &twins[1] {
		t.Errorf("FindTwin(y) = %v", tw)
	}
	if FindTwin(twins, "z") != nil {
		t.Error("FindTwin(z) found")
	}
}

func TestPropertyTypeNumeric(t *testing.T) {
	numeric := map[PropertyType]bool{PropertyTypeInt: true, PropertyTypeFloat: true, PropertyTypeDouble: true}
	for _, pt := range []PropertyType{PropertyTypeInt, PropertyTypeFloat, PropertyTypeDouble, PropertyTypeString, PropertyTypeBoolean, PropertyTypeBytes, PropertyTypeStream} {
		if pt.Numeric() != numeric[pt] {
			t.Errorf("%s.Numeric() = %v", pt, pt.Numeric())
		}
	}
}
