package wire

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
)

// The cloud sends the API's Device and DeviceModel objects; the edge reads
// them into Device and DeviceModel. Every spec field arrives (the spec
// encodes back to the same JSON) and so does the metadata the node uses.
func TestDevicesFromTheCloudDecodeIntoTheEdgeTypes(t *testing.T) {
	docs, err := os.ReadFile("../../../examples/devices/upstream/all-fields.yaml")
	if err != nil {
		t.Fatal(err)
	}
	parts := bytes.Split(docs, []byte("\n---\n"))
	if len(parts) != 2 {
		t.Fatalf("all-fields.yaml has %d documents, want a DeviceModel and a Device", len(parts))
	}
	meta := metav1.ObjectMeta{
		Namespace: "ns", UID: "u1", Generation: 3, ResourceVersion: "42",
		Labels: map[string]string{"description": "a hub"}, Annotations: map[string]string{"a": "b"},
		CreationTimestamp: metav1.NewTime(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)),
	}

	var model devicesv1beta1.DeviceModel
	if err := yaml.UnmarshalStrict(parts[0], &model); err != nil {
		t.Fatal(err)
	}
	var device devicesv1beta1.Device
	if err := yaml.UnmarshalStrict(parts[1], &device); err != nil {
		t.Fatal(err)
	}
	model.ObjectMeta, device.ObjectMeta = *meta.DeepCopy(), *meta.DeepCopy()
	model.Name, device.Name = "m", "d"

	var gotModel DeviceModel
	roundTrip(t, &model, &gotModel)
	if gotModel.Name != "m" || gotModel.Namespace != "ns" || gotModel.UID != "u1" {
		t.Errorf("model metadata = %+v", gotModel.ObjectMeta)
	}
	sameJSON(t, "model spec", gotModel.Spec, model.Spec)

	var gotDevice Device
	roundTrip(t, &device, &gotDevice)
	m := gotDevice.ObjectMeta
	if m.Name != "d" || m.Namespace != "ns" || m.UID != "u1" || m.Generation != 3 || m.Labels["description"] != "a hub" || m.Annotations["a"] != "b" ||
		!m.CreationTimestamp.Time.Equal(meta.CreationTimestamp.Time) {
		t.Errorf("device metadata = %+v", m)
	}
	if len(gotDevice.Spec.Properties) == 0 || gotDevice.Spec.Properties[0].PushMethod == nil {
		t.Fatalf("all-fields.yaml lost its properties: %+v", gotDevice.Spec)
	}
	sameJSON(t, "device spec", gotDevice.Spec, device.Spec)
}

func roundTrip(t *testing.T, in, out any) {
	t.Helper()
	enc, data, compressed, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if enc != syncpb.Encoding_ENCODING_JSON {
		t.Fatalf("encoding %v, want JSON", enc)
	}
	if err := Decode(enc, data, compressed, out); err != nil {
		t.Fatal(err)
	}
}

func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s changed on the way to the edge:\n got %s\nwant %s", what, g, w)
	}
}
