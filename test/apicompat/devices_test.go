// Package apicompat checks Verge's CRDs against a real kube-apiserver: that
// manifests written for the upstream projects apply unchanged and keep every
// field, that validation rejects what it should with messages a person can
// act on, and that the status subresources and printer columns work.
package apicompat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/verge-edge/verge/api/crds"
	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const repoRoot = "../.."

var (
	modelsGVR   = devicesv1beta1.SchemeGroupVersion.WithResource("devicemodels")
	devicesGVR  = devicesv1beta1.SchemeGroupVersion.WithResource("devices")
	statusesGVR = devicesv1beta1.SchemeGroupVersion.WithResource("devicestatuses")
)

// env is one test's view of the shared cluster: the devices CRDs
// installed, a fresh namespace and a dynamic client.
type env struct {
	ns  string
	dyn dynamic.Interface
}

func setup(t *testing.T) *env {
	t.Helper()
	all, err := crds.All()
	if err != nil {
		t.Fatal(err)
	}
	var devices []*apiextv1.CustomResourceDefinition
	for _, c := range all {
		if c.Spec.Group == devicesv1beta1.GroupName {
			devices = append(devices, c)
		}
	}
	if len(devices) != 3 {
		t.Fatalf("found %d devices.kubeedge.io CRDs, want 3", len(devices))
	}
	testenv.InstallCRDs(t, devices)
	dyn, err := dynamic.NewForConfig(testenv.Start(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &env{ns: testenv.Namespace(t), dyn: dyn}
}

func gvrOf(t *testing.T, kind string) schema.GroupVersionResource {
	t.Helper()
	switch kind {
	case "DeviceModel":
		return modelsGVR
	case "Device":
		return devicesGVR
	case "DeviceStatus":
		return statusesGVR
	}
	t.Fatalf("unexpected kind %q", kind)
	return schema.GroupVersionResource{}
}

// manifests reads the documents of a repository file as JSON objects whose
// numbers keep their exact text.
func manifests(t *testing.T, rel string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		out = append(out, decodeJSON(t, raw))
	}
}

// decodeJSON decodes an object the way the dynamic client does: integers
// as int64, other numbers as float64.
func decodeJSON(t *testing.T, data []byte) map[string]any {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return u.Object
}

// apply server-side applies obj in the test's namespace with strict field
// validation: a field the schema lacks is an error, not silently dropped.
func (e *env) apply(t *testing.T, obj map[string]any, subresources ...string) (*unstructured.Unstructured, error) {
	t.Helper()
	u := &unstructured.Unstructured{Object: runtime.DeepCopyJSON(obj)}
	u.SetNamespace(e.ns)
	body, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return e.dyn.Resource(gvrOf(t, u.GetKind())).Namespace(e.ns).Patch(context.Background(), u.GetName(), types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: "apicompat-test", Force: ptr.To(true), FieldValidation: "Strict"}, subresources...)
}

func (e *env) mustApply(t *testing.T, obj map[string]any, subresources ...string) *unstructured.Unstructured {
	t.Helper()
	u, err := e.apply(t, obj, subresources...)
	if err != nil {
		t.Fatalf("applying %v %v: %v", obj["kind"], nested(obj, "metadata", "name"), err)
	}
	return u
}

func (e *env) get(t *testing.T, gvr schema.GroupVersionResource, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := e.dyn.Resource(gvr).Namespace(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func nested(obj map[string]any, path ...string) any {
	v, _, _ := unstructured.NestedFieldNoCopy(obj, path...)
	return v
}

// Manifests in upstream KubeEdge format (and Verge's own examples) apply
// as they are, with strict field validation, and read back with spec
// unchanged: every field is in the schema, and free-form configData keeps
// every key, nested objects, lists and integers beyond float64's precision.
func TestUpstreamManifestsApplyUnchanged(t *testing.T) {
	e := setup(t)
	for _, file := range []string{
		"examples/devices/upstream/devicemodel.yaml",
		"examples/devices/upstream/device.yaml",
		"examples/devices/upstream/all-fields.yaml",
		"examples/devices/modbus/devicemodel.yaml",
		"examples/devices/modbus/device.yaml",
	} {
		for _, m := range manifests(t, file) {
			name := fmt.Sprintf("%s %s/%v", file, m["kind"], nested(m, "metadata", "name"))
			e.mustApply(t, m)
			got := e.get(t, gvrOf(t, m["kind"].(string)), nested(m, "metadata", "name").(string))
			if !reflect.DeepEqual(got.Object["spec"], m["spec"]) {
				t.Errorf("%s: spec changed on the server:\n got %s\nwant %s", name, mustJSON(t, got.Object["spec"]), mustJSON(t, m["spec"]))
			}
			if labels := nested(m, "metadata", "labels"); labels != nil && !reflect.DeepEqual(got.GetLabels(), toStringMap(labels)) {
				t.Errorf("%s: labels %v, want %v", name, got.GetLabels(), labels)
			}
		}
	}
	// The point of configData: protocol keys nobody declared survive.
	hub := e.get(t, devicesGVR, "sensor-hub-1")
	if v := nested(hub.Object, "spec", "protocol", "configData", "serialNumber"); v != int64(9007199254740993) {
		t.Errorf("serialNumber = %#v, want the exact integer", v)
	}
	if v := nested(hub.Object, "spec", "protocol", "configData", "vendorExtras", "backoffMillis"); !reflect.DeepEqual(v, []any{int64(100), int64(200), int64(400)}) {
		t.Errorf("nested list = %#v", v)
	}

	// The Go types read what the server returns, with no unknown field.
	for _, gvr := range []schema.GroupVersionResource{modelsGVR, devicesGVR} {
		list, err := e.dyn.Resource(gvr).Namespace(e.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range list.Items {
			strictDecode(t, item.Object, newTyped(t, item.GetKind()))
		}
	}
	var d devicesv1beta1.Device
	strictDecode(t, hub.Object, &d)
	if d.Spec.Properties[5].PushMethod.DBMethod.Kwdb.KWDBClientConfig.DBName != "hub" || d.Spec.StateReport.ReportCycle != 30000 {
		t.Errorf("typed device lost fields: %+v", d.Spec)
	}
}

func toStringMap(v any) map[string]string {
	out := map[string]string{}
	for k, e := range v.(map[string]any) {
		out[k] = e.(string)
	}
	return out
}

func newTyped(t *testing.T, kind string) any {
	t.Helper()
	switch kind {
	case "DeviceModel":
		return &devicesv1beta1.DeviceModel{}
	case "Device":
		return &devicesv1beta1.Device{}
	case "DeviceStatus":
		return &devicesv1beta1.DeviceStatus{}
	}
	t.Fatalf("unexpected kind %q", kind)
	return nil
}

func strictDecode(t *testing.T, obj map[string]any, into any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(mustJSON(t, obj)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Errorf("decoding %v into %T: %v", obj["kind"], into, err)
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

// A DeviceStatus as upstream's cloudcore writes it: the object, then its
// status through the status subresource. Status sent with the object is
// ignored, as for any kind with a status subresource.
func TestUpstreamDeviceStatus(t *testing.T) {
	e := setup(t)
	m := manifests(t, "examples/devices/upstream/devicestatus.yaml")[0]
	created := e.mustApply(t, m)
	if s := created.Object["status"]; s != nil {
		t.Errorf("status written through the main resource: %v", s)
	}
	e.mustApply(t, m, "status")
	got := e.get(t, statusesGVR, "beta1-device")
	if !reflect.DeepEqual(got.Object["status"], m["status"]) {
		t.Errorf("status changed on the server:\n got %s\nwant %s", mustJSON(t, got.Object["status"]), mustJSON(t, m["status"]))
	}
	var ds devicesv1beta1.DeviceStatus
	strictDecode(t, got.Object, &ds)
	twin := devicespec.FindTwin(ds.Status.Twins, "temp")
	if twin == nil || twin.Reported.Value != "27" || twin.ObservedDesired.Value != "30" {
		t.Errorf("twin = %+v", twin)
	}
	if _, err := devicespec.ParseLastOnlineTime(ds.Status.LastOnlineTime); err != nil {
		t.Error(err)
	}
}

// validModel and validDevice pass validation; each case breaks one thing.
func validModel() map[string]any {
	return map[string]any{
		"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "DeviceModel",
		"metadata": map[string]any{"name": "thermostat"},
		"spec": map[string]any{
			"protocol": "modbus",
			"properties": []any{
				map[string]any{"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly", "minimum": "-40", "maximum": "125"},
				map[string]any{"name": "setpoint", "type": "INT", "accessMode": "ReadWrite", "minimum": "9", "maximum": "10"},
				map[string]any{"name": "label", "type": "STRING", "minimum": "short", "maximum": "long"},
			},
		},
	}
}

func validDevice() map[string]any {
	return map[string]any{
		"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
		"metadata": map[string]any{"name": "thermostat-1"},
		"spec": map[string]any{
			"deviceModelRef": map[string]any{"name": "thermostat"},
			"nodeName":       "edge-1",
			"protocol":       map[string]any{"protocolName": "modbus", "configData": map[string]any{"ip": "127.0.0.1", "port": int64(5020)}},
			"stateReport":    map[string]any{"reportToCloud": true, "reportCycle": int64(0)},
			"properties": []any{
				map[string]any{"name": "temperature", "collectCycle": int64(0), "reportCycle": int64(1000), "reportToCloud": true},
				map[string]any{"name": "setpoint", "desired": map[string]any{"value": "10"}, "pushMethod": map[string]any{
					"http": map[string]any{"hostName": "127.0.0.1", "port": int64(65535)},
					"mqtt": map[string]any{"address": "mqtt://127.0.0.1:1883", "qos": int64(2)},
				}},
			},
			"methods": []any{
				map[string]any{"name": "Heat", "propertyNames": []any{"setpoint"}},
			},
		},
	}
}

func set(obj map[string]any, value any, path ...string) map[string]any {
	if err := unstructured.SetNestedField(obj, value, path...); err != nil {
		panic(err)
	}
	return obj
}

func property(obj map[string]any, i int) map[string]any {
	return obj["spec"].(map[string]any)["properties"].([]any)[i].(map[string]any)
}

// Each rule rejects what it should, both for a create (kubectl create,
// client-side kubectl apply) and for a server-side apply, whose merge step
// words some errors its own way.
func TestValidation(t *testing.T) {
	e := setup(t)
	for i, tc := range []struct {
		name  string
		obj   func() map[string]any
		want  []string // substrings of the create error; nil means accepted
		apply []string // substrings of the server-side apply error, when they differ
	}{
		{"valid model (numeric range compared as numbers, STRING range free)", validModel, nil, nil},
		{"valid device", validDevice, nil, nil},
		{"model: duplicate property name", func() map[string]any {
			m := validModel()
			property(m, 2)["name"] = "temperature"
			return m
		}, []string{"spec.properties[2]", "Duplicate value", `"name":"temperature"`},
			[]string{".spec.properties", `duplicate entries for key [name="temperature"]`}},
		{"model: property without a name", func() map[string]any {
			m := validModel()
			delete(property(m, 0), "name")
			return m
		}, []string{"spec.properties[0].name", "Required value"},
			[]string{".spec.properties", "element 0", `omits all key fields ["name"]`}},
		{"model: property without a type", func() map[string]any {
			m := validModel()
			delete(property(m, 0), "type")
			return m
		}, []string{"spec.properties[0].type", "Required value"}, nil},
		{"model: unknown type", func() map[string]any {
			m := validModel()
			property(m, 0)["type"] = "float"
			return m
		}, []string{"spec.properties[0].type", `Unsupported value: "float"`, `"FLOAT"`}, nil},
		{"model: unknown access mode", func() map[string]any {
			m := validModel()
			property(m, 0)["accessMode"] = "WriteOnly"
			return m
		}, []string{"spec.properties[0].accessMode", `Unsupported value: "WriteOnly"`, `"ReadWrite", "ReadOnly"`}, nil},
		{"model: minimum above maximum", func() map[string]any {
			m := validModel()
			property(m, 1)["minimum"] = "50"
			return m
		}, []string{"spec.properties[1]", "property setpoint: minimum 50 is greater than maximum 10"}, nil},
		{"model: minimum above maximum, decimals", func() map[string]any {
			m := validModel()
			property(m, 0)["minimum"] = "125.5"
			return m
		}, []string{"property temperature: minimum 125.5 is greater than maximum 125"}, nil},
		{"model: numeric type with a non-number minimum", func() map[string]any {
			m := validModel()
			property(m, 1)["minimum"] = "cold"
			return m
		}, []string{"property setpoint: minimum cold is not a number (type INT)"}, nil},
		{"model: numeric type with a non-number maximum", func() map[string]any {
			m := validModel()
			property(m, 0)["maximum"] = "1,5"
			return m
		}, []string{"property temperature: maximum 1,5 is not a number (type FLOAT)"}, nil},
		{"model: protocolConfigData not an object", func() map[string]any {
			return set(validModel(), "ip=1.2.3.4", "spec", "protocolConfigData")
		}, []string{"spec.protocolConfigData", "must be of type object"},
			[]string{".spec.protocolConfigData", "expected map"}},
		{"device: duplicate property name", func() map[string]any {
			d := validDevice()
			property(d, 1)["name"] = "temperature"
			return d
		}, []string{"spec.properties[1]", "Duplicate value", `"name":"temperature"`},
			[]string{".spec.properties", `duplicate entries for key [name="temperature"]`}},
		{"device: property without a name", func() map[string]any {
			d := validDevice()
			delete(property(d, 0), "name")
			return d
		}, []string{"spec.properties[0].name", "Required value"},
			[]string{".spec.properties", "element 0", `omits all key fields ["name"]`}},
		{"device: property with an empty name", func() map[string]any {
			d := validDevice()
			property(d, 0)["name"] = ""
			return d
		}, []string{"spec.properties[0].name", "at least 1 chars long"}, nil},
		{"device: duplicate method name", func() map[string]any {
			d := validDevice()
			spec := d["spec"].(map[string]any)
			spec["methods"] = append(spec["methods"].([]any), map[string]any{"name": "Heat"})
			return d
		}, []string{"spec.methods[1]", "Duplicate value", `"name":"Heat"`},
			[]string{".spec.methods", `duplicate entries for key [name="Heat"]`}},
		{"device: negative collectCycle", func() map[string]any {
			d := validDevice()
			property(d, 0)["collectCycle"] = int64(-1)
			return d
		}, []string{"spec.properties[0].collectCycle", "greater than or equal to 0"}, nil},
		{"device: negative reportCycle", func() map[string]any {
			d := validDevice()
			property(d, 0)["reportCycle"] = int64(-1000)
			return d
		}, []string{"spec.properties[0].reportCycle", "greater than or equal to 0"}, nil},
		{"device: negative stateReport cycle", func() map[string]any {
			return set(validDevice(), int64(-5), "spec", "stateReport", "reportCycle")
		}, []string{"spec.stateReport.reportCycle", "greater than or equal to 0"}, nil},
		{"device: no model reference", func() map[string]any {
			d := validDevice()
			delete(d["spec"].(map[string]any), "deviceModelRef")
			return d
		}, []string{"spec.deviceModelRef", "Required value"}, nil},
		{"device: empty model name", func() map[string]any {
			return set(validDevice(), "", "spec", "deviceModelRef", "name")
		}, []string{"spec.deviceModelRef.name", "at least 1 chars long"}, nil},
		{"device: desired without a value", func() map[string]any {
			d := validDevice()
			property(d, 1)["desired"] = map[string]any{"metadata": map[string]any{"type": "int"}}
			return d
		}, []string{"spec.properties[1].desired.value", "Required value"}, nil},
		{"device: MQTT QoS 3", func() map[string]any {
			d := validDevice()
			property(d, 1)["pushMethod"].(map[string]any)["mqtt"].(map[string]any)["qos"] = int64(3)
			return d
		}, []string{"spec.properties[1].pushMethod.mqtt.qos", "less than or equal to 2"}, nil},
		{"device: HTTP port 65536", func() map[string]any {
			d := validDevice()
			property(d, 1)["pushMethod"].(map[string]any)["http"].(map[string]any)["port"] = int64(65536)
			return d
		}, []string{"spec.properties[1].pushMethod.http.port", "less than or equal to 65535"}, nil},
		{"device: configData not an object", func() map[string]any {
			return set(validDevice(), []any{"ip", "127.0.0.1"}, "spec", "protocol", "configData")
		}, []string{"spec.protocol.configData", "must be of type object"},
			[]string{".spec.protocol.configData", "expected map"}},
		{"device: unknown field", func() map[string]any {
			return set(validDevice(), "yes", "spec", "autoDiscover")
		}, []string{`unknown field "spec.autoDiscover"`},
			[]string{".spec.autoDiscover: field not declared in schema"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(how string, want []string, err error) {
				t.Helper()
				switch {
				case want == nil && err != nil:
					t.Errorf("%s: rejected: %v", how, err)
				case want != nil && err == nil:
					t.Errorf("%s: accepted; want an error with %q", how, want)
				case want != nil:
					for _, w := range want {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("%s: error %q does not contain %q", how, err, w)
						}
					}
				}
			}
			// Fresh names, so an earlier object cannot be mistaken for
			// this one.
			obj := tc.obj()
			set(obj, fmt.Sprintf("case-%d-create", i), "metadata", "name")
			u := &unstructured.Unstructured{Object: obj}
			_, err := e.dyn.Resource(gvrOf(t, u.GetKind())).Namespace(e.ns).Create(context.Background(), u, metav1.CreateOptions{FieldValidation: "Strict"})
			check("create", tc.want, err)

			obj = tc.obj()
			set(obj, fmt.Sprintf("case-%d-apply", i), "metadata", "name")
			want := tc.apply
			if want == nil {
				want = tc.want
			}
			_, err = e.apply(t, obj)
			check("server-side apply", want, err)
		})
	}
}

// Status is written only through the status subresource, status writes do
// not change the generation, and spec writes cannot change status.
func TestStatusSubresource(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.mustApply(t, validModel())
	dev := e.mustApply(t, validDevice())
	if dev.GetGeneration() != 1 {
		t.Fatalf("generation = %d, want 1", dev.GetGeneration())
	}

	// The controller writes status with a typed object.
	var typed devicesv1beta1.Device
	strictDecode(t, dev.Object, &typed)
	typed.Status = devicesv1beta1.DeviceInstanceStatus{
		State:              devicespec.DeviceStateOK,
		LastOnlineTime:     devicespec.FormatLastOnlineTime(time.Now()),
		ObservedGeneration: 1,
		Conditions: []metav1.Condition{{
			Type: devicespec.ConditionMapperAvailable, Status: metav1.ConditionFalse, ObservedGeneration: 1,
			Reason: devicespec.ReasonNoMapperForProtocol, Message: "node edge-1 has no mapper for protocol modbus",
			LastTransitionTime: metav1.Now(),
		}},
	}
	u := toUnstructured(t, &typed)
	updated, err := e.dyn.Resource(devicesGVR).Namespace(e.ns).UpdateStatus(ctx, u, metav1.UpdateOptions{FieldValidation: "Strict"})
	if err != nil {
		t.Fatalf("status update: %v", err)
	}
	if updated.GetGeneration() != 1 {
		t.Errorf("a status write moved the generation to %d", updated.GetGeneration())
	}
	if s, _, _ := unstructured.NestedString(updated.Object, "status", "state"); s != "ok" {
		t.Errorf("status.state = %q", s)
	}

	// A spec write that also carries another status: spec changes, status
	// does not.
	u = updated.DeepCopy()
	set(u.Object, "edge-2", "spec", "nodeName")
	set(u.Object, "offline", "status", "state")
	updated, err = e.dyn.Resource(devicesGVR).Namespace(e.ns).Update(ctx, u, metav1.UpdateOptions{FieldValidation: "Strict"})
	if err != nil {
		t.Fatal(err)
	}
	if updated.GetGeneration() != 2 {
		t.Errorf("generation after a spec write = %d, want 2", updated.GetGeneration())
	}
	if s, _, _ := unstructured.NestedString(updated.Object, "status", "state"); s != "ok" {
		t.Errorf("a spec write changed status.state to %q", s)
	}
	if n, _, _ := unstructured.NestedString(updated.Object, "spec", "nodeName"); n != "edge-2" {
		t.Errorf("nodeName = %q", n)
	}

	// Too many conditions are refused.
	var conds []any
	for i := range devicespec.MaxConditions + 1 {
		conds = append(conds, map[string]any{"type": fmt.Sprintf("T%d", i), "status": "True", "reason": "R", "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"})
	}
	u = updated.DeepCopy()
	set(u.Object, conds, "status", "conditions")
	if _, err := e.dyn.Resource(devicesGVR).Namespace(e.ns).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "must have at most 8 items") {
		t.Errorf("9 conditions: %v", err)
	}

	// The same rules for DeviceStatus, written the way Verge's controller
	// will: a typed object owned by the Device.
	ds := &devicesv1beta1.DeviceStatus{
		TypeMeta:   metav1.TypeMeta{APIVersion: "devices.kubeedge.io/v1beta1", Kind: "DeviceStatus"},
		ObjectMeta: metav1.ObjectMeta{Name: "thermostat-1", Namespace: e.ns},
	}
	created, err := e.dyn.Resource(statusesGVR).Namespace(e.ns).Create(ctx, toUnstructured(t, ds), metav1.CreateOptions{FieldValidation: "Strict"})
	if err != nil {
		t.Fatal(err)
	}
	strictDecode(t, created.Object, ds)
	ds.Status = devicesv1beta1.DeviceStatusStatus{
		Twins: []devicespec.Twin{
			{PropertyName: "temperature", Reported: devicespec.TwinProperty{Value: "21.5", Metadata: map[string]string{"timestamp": "1700000000000", "type": "float"}}},
			{PropertyName: "setpoint", Reported: devicespec.TwinProperty{Value: "10"}, ObservedDesired: devicespec.TwinProperty{Value: "10"}},
		},
		State:          devicespec.DeviceStateOK,
		LastOnlineTime: devicespec.FormatLastOnlineTime(time.Now()),
		NodeName:       "edge-2",
	}
	written, err := e.dyn.Resource(statusesGVR).Namespace(e.ns).UpdateStatus(ctx, toUnstructured(t, ds), metav1.UpdateOptions{FieldValidation: "Strict"})
	if err != nil {
		t.Fatalf("DeviceStatus status update: %v", err)
	}
	if written.GetGeneration() != created.GetGeneration() {
		t.Errorf("a status write moved the DeviceStatus generation from %d to %d", created.GetGeneration(), written.GetGeneration())
	}
	u = written.DeepCopy()
	set(u.Object, "offline", "status", "state")
	if _, err := e.dyn.Resource(statusesGVR).Namespace(e.ns).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := unstructured.NestedString(e.get(t, statusesGVR, "thermostat-1").Object, "status", "state"); s != "ok" {
		t.Errorf("a write to the main resource changed DeviceStatus status.state to %q", s)
	}

	// Twins are keyed by property: a duplicate is refused.
	u = written.DeepCopy()
	twins, _, _ := unstructured.NestedSlice(u.Object, "status", "twins")
	set(u.Object, append(twins, map[string]any{"propertyName": "temperature", "reported": map[string]any{"value": "1"}}), "status", "twins")
	if _, err := e.dyn.Resource(statusesGVR).Namespace(e.ns).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "Duplicate value") {
		t.Errorf("duplicate twin: %v", err)
	}
}

func toUnstructured(t *testing.T, obj any) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// kubectl get shows the columns an operator needs.
func TestPrinterColumns(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.mustApply(t, validModel())
	dev := e.mustApply(t, validDevice())
	var typed devicesv1beta1.Device
	strictDecode(t, dev.Object, &typed)
	typed.Status.State = devicespec.DeviceStateOK
	typed.Status.LastOnlineTime = devicespec.FormatLastOnlineTime(time.Now().Add(-90 * time.Second))
	if _, err := e.dyn.Resource(devicesGVR).Namespace(e.ns).UpdateStatus(ctx, toUnstructured(t, &typed), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ds := e.mustApply(t, map[string]any{
		"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "DeviceStatus",
		"metadata": map[string]any{"name": "thermostat-1", "ownerReferences": []any{map[string]any{
			"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device", "name": "thermostat-1", "uid": string(dev.GetUID()), "controller": true,
		}}},
	})
	set(ds.Object, map[string]any{"state": "disconnected", "lastOnlineTime": "2025-06-01 12:00:00", "nodeName": "edge-1"}, "status")
	if _, err := e.dyn.Resource(statusesGVR).Namespace(e.ns).UpdateStatus(ctx, ds, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		resource string
		columns  []string
		cells    map[string]string // column → exact cell; "*" any non-empty cell; "~90s" an age near 90 s
	}{
		{"devicemodels", []string{"Name", "Protocol", "Age"}, map[string]string{"Name": "thermostat", "Protocol": "modbus", "Age": "*"}},
		{"devices", []string{"Name", "Node", "Model", "Protocol", "State", "Last-Report", "Age"}, map[string]string{
			"Name": "thermostat-1", "Node": "edge-1", "Model": "thermostat", "Protocol": "modbus", "State": "ok", "Last-Report": "~90s", "Age": "*",
		}},
		// Upstream's zone-less lastOnlineTime cannot be shown as an age.
		{"devicestatuses", []string{"Name", "Device", "Node", "State", "Last-Report", "Age"}, map[string]string{
			"Name": "thermostat-1", "Device": "thermostat-1", "Node": "edge-1", "State": "disconnected", "Last-Report": "<invalid>", "Age": "*",
		}},
	} {
		table := e.table(t, tc.resource)
		var names []string
		for _, c := range table.ColumnDefinitions {
			names = append(names, c.Name)
		}
		if !reflect.DeepEqual(names, tc.columns) {
			t.Errorf("%s columns = %v, want %v", tc.resource, names, tc.columns)
			continue
		}
		if len(table.Rows) != 1 {
			t.Errorf("%s: %d rows", tc.resource, len(table.Rows))
			continue
		}
		for i, cell := range table.Rows[0].Cells {
			got, want := fmt.Sprint(cell), tc.cells[names[i]]
			ok := got == want
			switch want {
			case "*":
				ok = cell != nil && got != ""
			case "~90s":
				d, err := time.ParseDuration(got)
				ok = err == nil && d >= 80*time.Second && d < 5*time.Minute
			}
			if !ok {
				t.Errorf("%s %s = %q, want %q", tc.resource, names[i], got, want)
			}
		}
	}
}

// table lists a resource in the test namespace as `kubectl get` does.
func (e *env) table(t *testing.T, resource string) *metav1.Table {
	t.Helper()
	cs := testenv.Client(t)
	raw, err := cs.Discovery().RESTClient().Get().
		AbsPath("/apis/devices.kubeedge.io/v1beta1/namespaces", e.ns, resource).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
		DoRaw(context.Background())
	if err != nil {
		t.Fatalf("listing %s as a table: %v", resource, err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	return &table
}
