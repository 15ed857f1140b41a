package kube_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// kubeObject is what the mirror's top-level objects implement.
type kubeObject interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// apiObject is what k8s.io/api's objects implement.
type apiObject interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// pairs are the objects compared: an empty k8s.io/api object and its
// empty mirror.
func pairs() []struct {
	name   string
	api    func() apiObject
	mirror func() kubeObject
} {
	return []struct {
		name   string
		api    func() apiObject
		mirror func() kubeObject
	}{
		{"Pod", func() apiObject { return &corev1.Pod{} }, func() kubeObject { return &kube.Pod{} }},
		{"ConfigMap", func() apiObject { return &corev1.ConfigMap{} }, func() kubeObject { return &kube.ConfigMap{} }},
		{"Secret", func() apiObject { return &corev1.Secret{} }, func() kubeObject { return &kube.Secret{} }},
		{"Node", func() apiObject { return &corev1.Node{} }, func() kubeObject { return &kube.Node{} }},
		{"Event", func() apiObject { return &corev1.Event{} }, func() kubeObject { return &kube.Event{} }},
	}
}

// filler makes random API objects whose special types hold valid values.
func filler(seed int64) *randfill.Filler {
	return randfill.NewWithSeed(seed).NilChance(0.3).NumElements(1, 2).Funcs(
		// Quantities are parsed from text, as the API server hands them
		// out: k8s.io/api prints a computed quantity differently from the
		// same one parsed back, which is no concern of the mirror's.
		func(q *resource.Quantity, c randfill.Continue) {
			var v *resource.Quantity
			switch c.Intn(3) {
			case 0:
				v = resource.NewMilliQuantity(c.Int63n(100000), resource.DecimalSI)
			case 1:
				v = resource.NewQuantity(c.Int63n(1<<40), resource.BinarySI)
			default:
				v = resource.NewQuantity(c.Int63n(1e12), resource.DecimalSI)
			}
			*q = resource.MustParse(v.String())
		},
		// Kubernetes reads a nil byte string back as empty.
		func(b *[]byte, c randfill.Continue) {
			*b = []byte(c.String(4))
		},
		// Times are never zero: a set pointer to the zero time is null in
		// JSON but present in protobuf, so the two paths differ there by
		// design. Empty lists differ the same way (hence NumElements from 1).
		func(t *metav1.Time, c randfill.Continue) {
			*t = metav1.Unix(1+c.Int63n(4e9), c.Int63n(1e9))
		},
		func(t *metav1.MicroTime, c randfill.Continue) {
			*t = metav1.NewMicroTime(time.Unix(1+c.Int63n(4e9), c.Int63n(1e6)*1000))
		},
		func(f *metav1.FieldsV1, c randfill.Continue) {
			f.SetRawString(`{"f:metadata":{}}`)
		},
		func(v *intstr.IntOrString, c randfill.Continue) {
			if c.Bool() {
				*v = intstr.FromInt32(c.Int31() - 1<<30)
			} else {
				*v = intstr.FromString(c.String(10))
			}
		},
	)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%T): %v", v, err)
	}
	return string(b)
}

// TestProtobufMatchesKubernetes fills k8s.io/api objects at random and
// checks, for each, that:
//   - the mirror decodes Kubernetes' protobuf bytes to what it decodes
//     from the same object's JSON (an independent path that leaves out the
//     same fields), and
//   - k8s.io/api decodes the mirror's protobuf bytes back to the same
//     content.
func TestProtobufMatchesKubernetes(t *testing.T) {
	for _, p := range pairs() {
		t.Run(p.name, func(t *testing.T) {
			for seed := range int64(300) {
				orig := p.api()
				filler(seed).Fill(orig)
				wire, err := orig.Marshal()
				if err != nil {
					t.Fatalf("seed %d: k8s Marshal: %v", seed, err)
				}
				fromProto := p.mirror()
				if err := fromProto.Unmarshal(wire); err != nil {
					t.Fatalf("seed %d: decoding Kubernetes protobuf: %v", seed, err)
				}
				fromJSON := p.mirror()
				if err := json.Unmarshal([]byte(mustJSON(t, orig)), fromJSON); err != nil {
					t.Fatalf("seed %d: decoding Kubernetes JSON: %v", seed, err)
				}
				// kind and apiVersion are not part of the protobuf encoding.
				reflect.ValueOf(fromJSON).Elem().FieldByName("TypeMeta").SetZero()
				got, want := mustJSON(t, fromProto), mustJSON(t, fromJSON)
				if got != want {
					t.Fatalf("seed %d: protobuf and JSON decode differently\nprotobuf: %s\njson:     %s", seed, got, want)
				}

				mine, err := fromProto.Marshal()
				if err != nil {
					t.Fatalf("seed %d: mirror Marshal: %v", seed, err)
				}
				back := p.api()
				if err := back.Unmarshal(mine); err != nil {
					t.Fatalf("seed %d: k8s cannot decode the mirror's bytes: %v", seed, err)
				}
				// Compare through the mirror's JSON, where an unsupported
				// field is {} whatever k8s.io/api writes for it.
				backMirror := p.mirror()
				if err := json.Unmarshal([]byte(mustJSON(t, back)), backMirror); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				reflect.ValueOf(backMirror).Elem().FieldByName("TypeMeta").SetZero()
				if got := mustJSON(t, backMirror); got != want {
					t.Fatalf("seed %d: k8s decodes the mirror's bytes differently\ngot:  %s\nwant: %s", seed, got, want)
				}
			}
		})
	}
}

// TestMirrorKeepsWhatTheEdgeUses guards against the filler or the mirror
// silently dropping everything: a pod the edge runs keeps its spec.
func TestMirrorKeepsWhatTheEdgeUses(t *testing.T) {
	grace := int64(5)
	orig := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName:                      "edge-1",
			TerminationGracePeriodSeconds: &grace,
			Affinity:                      &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}},
			Tolerations:                   []corev1.Toleration{{Key: "k"}},
			Volumes: []corev1.Volume{
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "pvc"}}},
			},
			Containers: []corev1.Container{{
				Name: "app", Image: "reg/app:v1", Args: []string{"", "serve"},
				Resources:      corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}}},
				Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			}},
		},
	}
	wire, err := orig.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var p kube.Pod
	if err := p.Unmarshal(wire); err != nil {
		t.Fatal(err)
	}
	c := p.Spec.Containers[0]
	for _, check := range []struct {
		what      string
		got, want any
	}{
		{"name", p.Name + "/" + p.Namespace + "/" + string(p.UID), "web/shop/u1"},
		{"label", p.Labels["app"], "web"},
		{"grace", *p.Spec.TerminationGracePeriodSeconds, int64(5)},
		{"args keep empty strings", fmt.Sprintf("%d %s", len(c.Args), c.Args[1]), "2 serve"},
		{"cpu limit in millis", c.Resources.Limits.Cpu().MilliValue(), int64(500)},
		{"memory limit", c.Resources.Limits.Memory().Value(), int64(64 << 20)},
		{"probe port", c.ReadinessProbe.HTTPGet.Port.String(), "http"},
		{"configMap volume", p.Spec.Volumes[0].ConfigMap.Name, "cm"},
		{"unsupported volume is marked", p.Spec.Volumes[1].PersistentVolumeClaim != nil, true},
		{"unsupported scheduling field is marked", p.Spec.Affinity != nil, true},
		{"port", c.Ports[0].ContainerPort, int32(8080)},
	} {
		if fmt.Sprint(check.got) != fmt.Sprint(check.want) {
			t.Errorf("%s: got %v, want %v", check.what, check.got, check.want)
		}
	}
}

func TestUnmarshalRejectsTruncatedInput(t *testing.T) {
	orig := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}, Data: map[string]string{"a": "b"}}
	wire, err := orig.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var cm kube.ConfigMap
	if err := cm.Unmarshal(wire[:len(wire)-2]); err == nil {
		t.Fatal("decoding truncated bytes succeeded")
	}
}
