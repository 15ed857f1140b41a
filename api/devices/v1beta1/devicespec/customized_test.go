package devicespec

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/serializer/cbor/direct"
)

func TestCustomizedValueKeepsTheObjectAsWritten(t *testing.T) {
	in := `{"protocolName":"modbus","configData":{"ip":"10.0.0.2","port":502,"serial":9007199254740993,"nested":{"list":[1,"a",true]}}}`
	var pc ProtocolConfig
	if err := json.Unmarshal([]byte(in), &pc); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(pc)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("round trip changed the object:\n got %s\nwant %s", out, in)
	}
	m, err := pc.ConfigData.Map()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"ip":     "10.0.0.2",
		"port":   int64(502),
		"serial": int64(9007199254740993), // beyond float64's exact integers
		"nested": map[string]any{"list": []any{int64(1), "a", true}},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("Map() = %#v, want %#v", m, want)
	}
}

func TestCustomizedValueMapNumbers(t *testing.T) {
	v := &CustomizedValue{Raw: json.RawMessage(`{"i":-3,"f":0.1,"e":1e3,"u":18446744073709551615,"huge":1e400,"null":null}`)}
	m, err := v.Map()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"i": int64(-3), "f": 0.1, "e": 1000.0, "u": uint64(18446744073709551615), "huge": "1e400", "null": nil}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("Map() = %#v, want %#v", m, want)
	}
}

func TestCustomizedValueEmptyForms(t *testing.T) {
	var nilValue *CustomizedValue
	for name, v := range map[string]*CustomizedValue{"nil": nilValue, "zero": {}, "empty object": {Raw: json.RawMessage(`{}`)}} {
		if !v.IsEmpty() {
			t.Errorf("%s: IsEmpty() = false", name)
		}
		m, err := v.Map()
		if err != nil || m == nil || len(m) != 0 {
			t.Errorf("%s: Map() = %v, %v; want an empty map", name, m, err)
		}
		var dst struct{ A string }
		if err := v.Decode(&dst); err != nil {
			t.Errorf("%s: Decode: %v", name, err)
		}
	}
	out, err := json.Marshal(CustomizedValue{})
	if err != nil || string(out) != "{}" {
		t.Errorf("zero value marshals as %s, %v; want {}", out, err)
	}
	var pc ProtocolConfig
	if err := json.Unmarshal([]byte(`{"configData":null}`), &pc); err != nil || pc.ConfigData != nil {
		t.Errorf("null configData: %v, %v; want nil", pc.ConfigData, err)
	}
}

func TestCustomizedValueRejectsNonObjects(t *testing.T) {
	for _, in := range []string{`"text"`, `[1,2]`, `3`, `true`, `{"a":`} {
		var v CustomizedValue
		err := json.Unmarshal([]byte(in), &v)
		if err == nil {
			t.Errorf("%s: accepted", in)
		}
	}
}

func TestCustomizedValueDecodeIntoStruct(t *testing.T) {
	v := &CustomizedValue{Raw: json.RawMessage(`{"register":"HoldingRegister","offset":1,"scale":0.1,"other":"kept"}`)}
	var visitor struct {
		Register string  `json:"register"`
		Offset   uint16  `json:"offset"`
		Scale    float64 `json:"scale"`
	}
	if err := v.Decode(&visitor); err != nil {
		t.Fatal(err)
	}
	if visitor.Register != "HoldingRegister" || visitor.Offset != 1 || visitor.Scale != 0.1 {
		t.Errorf("Decode = %+v", visitor)
	}
	var wrong struct {
		Offset string `json:"offset"`
	}
	if err := v.Decode(&wrong); err == nil || !strings.Contains(err.Error(), "decoding configuration") {
		t.Errorf("decoding a number into a string: %v", err)
	}
}

func TestNewCustomizedValue(t *testing.T) {
	v, err := NewCustomizedValue(map[string]any{"b": true, "a": int64(7)})
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Raw) != `{"a":7,"b":true}` {
		t.Errorf("Raw = %s", v.Raw)
	}
	if v, err := NewCustomizedValue(nil); v != nil || err != nil {
		t.Errorf("NewCustomizedValue(nil) = %v, %v", v, err)
	}
	if _, err := NewCustomizedValue(map[string]any{"c": make(chan int)}); err == nil {
		t.Error("a channel was encoded")
	}
}

func TestCustomizedValueDeepCopyIsIndependent(t *testing.T) {
	v := &CustomizedValue{Raw: json.RawMessage(`{"a":1}`)}
	c := v.DeepCopy()
	c.Raw[len(c.Raw)-2] = '2'
	if string(v.Raw) != `{"a":1}` {
		t.Errorf("changing the copy changed the original: %s", v.Raw)
	}
}

// The CBOR serializer of apimachinery (direct is what it uses) goes
// through the JSON methods: the value survives a round trip and encodes as
// the CBOR of its keys and values.
func TestCustomizedValueCBOR(t *testing.T) {
	in := VisitorConfig{ProtocolName: "modbus", ConfigData: &CustomizedValue{Raw: json.RawMessage(`{"offset":3,"scale":0.5,"register":"InputRegister","flags":[true]}`)}}
	data, err := direct.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out VisitorConfig
	if err := direct.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	got, _ := out.ConfigData.Map()
	want, _ := in.ConfigData.Map()
	if out.ProtocolName != "modbus" || !reflect.DeepEqual(got, want) {
		t.Errorf("CBOR round trip: %s %#v, want %#v", out.ProtocolName, got, want)
	}
	fromMap, err := direct.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if value, err := direct.Marshal(in.ConfigData); err != nil || !bytes.Equal(value, fromMap) {
		t.Errorf("CBOR of the value = %x, %v; want the CBOR of its map, %x", value, err, fromMap)
	}
	var null CustomizedValue
	if err := direct.Unmarshal([]byte{0xf6}, &null); err != nil || null.Raw != nil { // CBOR null
		t.Errorf("null decoded as %s, %v; want empty", null.Raw, err)
	}
	if err := direct.Unmarshal([]byte{0x01}, &null); err == nil { // CBOR 1
		t.Error("a number decoded as configuration")
	}
}

func TestMergeConfigData(t *testing.T) {
	obj := func(s string) *CustomizedValue { return &CustomizedValue{Raw: json.RawMessage(s)} }
	for _, tc := range []struct {
		name           string
		base, override *CustomizedValue
		want           string // "" means nil
	}{
		{"both nil", nil, nil, ""},
		{"only base", obj(`{"a":1}`), nil, `{"a":1}`},
		{"only override", nil, obj(`{"b":2}`), `{"b":2}`},
		{"empty override", obj(`{"a":1}`), obj(`{}`), `{"a":1}`},
		{"override wins per key", obj(`{"a":1,"b":{"x":1},"c":3}`), obj(`{"b":{"y":2},"d":4}`), `{"a":1,"b":{"y":2},"c":3,"d":4}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MergeConfigData(tc.base, tc.override)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if got != nil {
					t.Fatalf("got %s, want nil", got.Raw)
				}
				return
			}
			if string(got.Raw) != tc.want {
				t.Errorf("got %s, want %s", got.Raw, tc.want)
			}
			if got == tc.base || got == tc.override {
				t.Error("the result is one of the arguments")
			}
		})
	}
	if _, err := MergeConfigData(obj(`{"a":1}`), obj(`{"broken`)); err == nil {
		t.Error("a broken override was merged")
	}
}
