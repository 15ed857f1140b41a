package podruntime

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// objects is an in-memory objectGetter.
type objects struct {
	cms     map[string]*kube.ConfigMap
	secrets map[string]*kube.Secret
}

func (o objects) ConfigMap(_ context.Context, ns, name string) (*kube.ConfigMap, error) {
	if cm, ok := o.cms[ns+"/"+name]; ok {
		return cm, nil
	}
	return nil, fmt.Errorf("configmap %q: %w", name, ErrNotFound)
}

func (o objects) Secret(_ context.Context, ns, name string) (*kube.Secret, error) {
	if s, ok := o.secrets[ns+"/"+name]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("secret %q: %w", name, ErrNotFound)
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	cases := map[string]string{
		"plain":          "plain",
		"$(A)":           "1",
		"x$(A)y$(B)z":    "x1ytwoz",
		"$(MISSING)":     "$(MISSING)",
		"$$(A)":          "$(A)",
		"$$":             "$",
		"$":              "$",
		"cost $5":        "cost $5",
		"$(A":            "$(A",
		"$()":            "$()",
		"$(A)$(A)$$$(B)": "11$two",
	}
	for in, want := range cases {
		if got := expand(in, lookup); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMakeEnv(t *testing.T) {
	opt := true
	objs := objects{
		cms:     map[string]*kube.ConfigMap{"ns/cfg": {Data: map[string]string{"b": "2", "a": "1", "bad=key": "x"}}},
		secrets: map[string]*kube.Secret{"ns/sec": {Data: map[string][]byte{"pw": []byte("hunter2")}}},
	}
	pod := &kube.Pod{
		ObjectMeta: kube.ObjectMeta{Name: "p", Namespace: "ns", UID: "u-1", Labels: map[string]string{"tier": "web"}, Annotations: map[string]string{"note": "hi"}},
		Spec:       kube.PodSpec{NodeName: "edge-1", ServiceAccountName: "sa"},
	}
	c := &kube.Container{
		Name:    "app",
		EnvFrom: []kube.EnvFromSource{{Prefix: "C_", ConfigMapRef: &kube.ConfigMapEnvSource{LocalObjectReference: kube.LocalObjectReference{Name: "cfg"}}}},
		Env: []kube.EnvVar{
			{Name: "C_a", Value: "override"},
			{Name: "PW", ValueFrom: &kube.EnvVarSource{SecretKeyRef: &kube.SecretKeySelector{LocalObjectReference: kube.LocalObjectReference{Name: "sec"}, Key: "pw"}}},
			{Name: "OPT", ValueFrom: &kube.EnvVarSource{ConfigMapKeyRef: &kube.ConfigMapKeySelector{LocalObjectReference: kube.LocalObjectReference{Name: "none"}, Key: "k", Optional: &opt}}},
			{Name: "NAME", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "NS", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "UID", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
			{Name: "TIER", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}}},
			{Name: "NOTE", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "metadata.annotations['note']"}}},
			{Name: "NODE", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "SA", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
			{Name: "IP", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "IPS", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "status.podIPs"}}},
			{Name: "HOST", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
			{Name: "CPU", ValueFrom: &kube.EnvVarSource{ResourceFieldRef: &kube.ResourceFieldSelector{Resource: "limits.cpu"}}},
			{Name: "CPU_M", ValueFrom: &kube.EnvVarSource{ResourceFieldRef: &kube.ResourceFieldSelector{Resource: "requests.cpu", Divisor: kube.MustParse("1m")}}},
			{Name: "MEM", ValueFrom: &kube.EnvVarSource{ResourceFieldRef: &kube.ResourceFieldSelector{Resource: "limits.memory", Divisor: kube.MustParse("1Mi")}}},
			{Name: "URL", Value: "http://$(IP):80/$(NAME)?$$(NOT)"},
		},
		Resources: kube.ResourceRequirements{
			Requests: kube.ResourceList{kube.ResourceCPU: kube.MustParse("250m")},
			Limits:   kube.ResourceList{kube.ResourceMemory: kube.MustParse("100Mi")},
		},
	}
	facts := podFacts{PodIPs: []string{"10.1.0.5", "fd00::5"}, NodeIP: "192.0.2.7",
		Allocatable: kube.ResourceList{kube.ResourceCPU: kube.MustParse("3"), kube.ResourceMemory: kube.MustParse("8Gi")}}
	vars, warnings, err := makeEnv(context.Background(), objs, pod, c, facts)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var order []string
	for _, v := range vars {
		got[v.Name] = v.Value
		order = append(order, v.Name)
	}
	want := map[string]string{
		"C_a": "override", "C_b": "2", "PW": "hunter2", "NAME": "p", "NS": "ns", "UID": "u-1", "TIER": "web", "NOTE": "hi",
		"NODE": "edge-1", "SA": "sa", "IP": "10.1.0.5", "IPS": "10.1.0.5,fd00::5", "HOST": "192.0.2.7",
		"CPU": "3", "CPU_M": "250", "MEM": "100", "URL": "http://10.1.0.5:80/p?$(NOT)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("env\n got %v\nwant %v", got, want)
	}
	if order[0] != "C_a" || order[1] != "C_b" {
		t.Fatalf("envFrom keys come first, sorted; a later env entry replaces in place: %v", order)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "C_bad=key") {
		t.Fatalf("warnings %v", warnings)
	}
}

func TestMakeEnvErrors(t *testing.T) {
	objs := objects{cms: map[string]*kube.ConfigMap{"ns/cfg": {Data: map[string]string{"a": "1"}}}}
	pod := &kube.Pod{ObjectMeta: kube.ObjectMeta{Name: "p", Namespace: "ns"}}
	cases := []struct {
		name string
		env  kube.EnvVar
		want string
	}{
		{"missing configmap", kube.EnvVar{Name: "X", ValueFrom: &kube.EnvVarSource{ConfigMapKeyRef: &kube.ConfigMapKeySelector{LocalObjectReference: kube.LocalObjectReference{Name: "nope"}, Key: "a"}}}, `configmap "nope" not found`},
		{"missing key", kube.EnvVar{Name: "X", ValueFrom: &kube.EnvVarSource{ConfigMapKeyRef: &kube.ConfigMapKeySelector{LocalObjectReference: kube.LocalObjectReference{Name: "cfg"}, Key: "b"}}}, "couldn't find key b in ConfigMap ns/cfg"},
		{"missing secret", kube.EnvVar{Name: "X", ValueFrom: &kube.EnvVarSource{SecretKeyRef: &kube.SecretKeySelector{LocalObjectReference: kube.LocalObjectReference{Name: "s"}, Key: "a"}}}, `secret "s" not found`},
		{"unknown field", kube.EnvVar{Name: "X", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "spec.schedulerName"}}}, "not supported"},
		{"labels as a whole", kube.EnvVar{Name: "X", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "metadata.labels"}}}, "not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := makeEnv(context.Background(), objs, pod, &kube.Container{Name: "c", Env: []kube.EnvVar{tc.env}}, podFacts{})
			var ce *configError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ce) {
				t.Fatalf("err %v, want a configError containing %q", err, tc.want)
			}
		})
	}
}
