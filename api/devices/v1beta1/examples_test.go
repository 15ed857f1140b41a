package v1beta1

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Every example manifest decodes into the Go types with no unknown field,
// and encoding the result gives the manifest back (fields left at their
// zero value aside): the Go types carry every field the examples use, under
// the same JSON names.
func TestExamplesRoundTripThroughTheGoTypes(t *testing.T) {
	files, err := filepath.Glob("../../../examples/devices/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for i := 0; ; i++ {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			obj := newObject(t, doc["kind"])
			js, _ := json.Marshal(doc)
			strict := json.NewDecoder(bytes.NewReader(js))
			strict.DisallowUnknownFields()
			if err := strict.Decode(obj); err != nil {
				t.Errorf("%s document %d: %v", f, i, err)
				continue
			}
			back, _ := json.Marshal(obj)
			var got map[string]any
			if err := json.Unmarshal(back, &got); err != nil {
				t.Fatal(err)
			}
			want := pruneZero(doc)
			if g := pruneZero(got); !reflect.DeepEqual(g, want) {
				t.Errorf("%s document %d changed in the Go types:\n got %v\nwant %v", f, i, g, want)
			}
		}
	}
}

func newObject(t *testing.T, kind any) runtime.Object {
	t.Helper()
	switch kind {
	case "DeviceModel":
		return &DeviceModel{}
	case "Device":
		return &Device{}
	case "DeviceStatus":
		return &DeviceStatus{}
	}
	t.Fatalf("unexpected kind %v", kind)
	return nil
}

// pruneZero drops null, false, zero, empty strings and empty objects and
// lists, recursively, and reads every number as float64.
func pruneZero(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range t {
			if p := pruneZero(e); p != nil {
				out[k] = p
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(t) == 0 {
			return nil
		}
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = pruneZero(e)
		}
		return out
	case bool:
		if !t {
			return nil
		}
	case string:
		if t == "" {
			return nil
		}
	case float64:
		if t == 0 {
			return nil
		}
	case int64:
		if t == 0 {
			return nil
		}
		return float64(t)
	case json.Number:
		f, _ := t.Float64()
		return pruneZero(f)
	}
	return v
}
