package v1beta1_test

import (
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

func TestCustomizedValueRoundTrip(t *testing.T) {
	in := map[string]any{
		"ip":      "127.0.0.1",
		"port":    1502,
		"big":     int64(1) << 40,
		"scale":   0.1,
		"isSwap":  true,
		"nested":  map[string]any{"a": "b", "n": 2.0},
		"list":    []any{"x", 1.0},
		"payload": []byte{1, 2},
	}
	cv, err := dmi.NewCustomizedValue(in)
	if err != nil {
		t.Fatal(err)
	}
	// Scalars use the wrapper types upstream edges send.
	if got := cv.Data["port"].GetTypeUrl(); !strings.HasSuffix(got, "google.protobuf.Int32Value") {
		t.Errorf("port encoded as %s, want Int32Value", got)
	}
	if got := cv.Data["big"].GetTypeUrl(); !strings.HasSuffix(got, "google.protobuf.Int64Value") {
		t.Errorf("big encoded as %s, want Int64Value", got)
	}
	out, err := cv.Map()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"ip": "127.0.0.1", "port": int64(1502), "big": int64(1) << 40, "scale": 0.1, "isSwap": true,
		"nested": map[string]any{"a": "b", "n": 2.0}, "list": []any{"x", 1.0}, "payload": []byte{1, 2},
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("round trip:\n got %#v\nwant %#v", out, want)
	}
}

func TestCustomizedValueErrorsNameTheKey(t *testing.T) {
	if _, err := dmi.NewCustomizedValue(map[string]any{"bad": struct{}{}}); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("encoding a struct: err = %v, want one naming the key", err)
	}
	a, err := anypb.New(&dmi.Device{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	cv := &dmi.CustomizedValue{Data: map[string]*anypb.Any{"odd": a, "ok": mustAny(t, wrapperspb.String("v"))}}
	if _, err := cv.Map(); err == nil || !strings.Contains(err.Error(), `"odd"`) || !strings.Contains(err.Error(), "v1beta1.Device") {
		t.Errorf("decoding a Device: err = %v, want one naming the key and type", err)
	}
	var nilValue *dmi.CustomizedValue
	if m, err := nilValue.Map(); err != nil || len(m) != 0 {
		t.Errorf("nil CustomizedValue: %v, %v", m, err)
	}
}

func mustAny(t *testing.T, m *wrapperspb.StringValue) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
