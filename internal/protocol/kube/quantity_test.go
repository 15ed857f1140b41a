package kube_test

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// TestQuantityAgreesWithKubernetes checks values against k8s.io/apimachinery
// for the forms users write.
func TestQuantityAgreesWithKubernetes(t *testing.T) {
	inputs := []string{"0", "1", "500m", "0.5", "1.5", "+2", "-3", "100Mi", "1Gi", "1.5Gi", "2Ki", "1k", "1M", "3G", "1e3", "1E6", "12e-3", "250u", "7n", "0.001", ".5", "64Mi", "1Ti", "1Pi", "1Ei"}
	for _, s := range inputs {
		got, err := kube.ParseQuantity(s)
		if err != nil {
			t.Errorf("ParseQuantity(%q): %v", s, err)
			continue
		}
		want := resource.MustParse(s)
		if got.Value() != want.Value() || got.MilliValue() != want.MilliValue() {
			t.Errorf("%q: Value %d MilliValue %d, want %d and %d", s, got.Value(), got.MilliValue(), want.Value(), want.MilliValue())
		}
		if got.IsZero() != want.IsZero() {
			t.Errorf("%q: IsZero %v, want %v", s, got.IsZero(), want.IsZero())
		}
		for _, o := range inputs {
			other := kube.MustParse(o)
			if g, w := got.Cmp(other), want.Cmp(resource.MustParse(o)); g != w {
				t.Errorf("%q Cmp %q = %d, want %d", s, o, g, w)
			}
		}
	}
}

func TestQuantityRejectsMalformed(t *testing.T) {
	for _, s := range []string{"", "abc", "1.2.3", "1Kb", "5 Mi", "--1", "1e", "Mi", "1ee3", "."} {
		if _, err := kube.ParseQuantity(s); err == nil {
			t.Errorf("ParseQuantity(%q) succeeded", s)
		}
		var q kube.Quantity
		if err := json.Unmarshal([]byte(`"`+s+`"`), &q); err == nil {
			t.Errorf("JSON %q accepted", s)
		}
	}
}

func TestQuantityFormatsAndArithmetic(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{kube.NewQuantity(16<<30, kube.BinarySI).String(), "16Gi"},
		{kube.NewQuantity(1536<<20, kube.BinarySI).String(), "1536Mi"},
		{kube.NewQuantity(1000, kube.BinarySI).String(), "1000"},
		{kube.NewQuantity(4, kube.DecimalSI).String(), "4"},
		{kube.NewQuantity(110, kube.DecimalSI).String(), "110"},
		{kube.NewQuantity(3000, kube.DecimalSI).String(), "3k"},
		{kube.NewMilliQuantity(1500, kube.DecimalSI).String(), "1500m"},
		{kube.NewQuantity(0, kube.BinarySI).String(), "0"},
		{func() string { q := kube.MustParse("1Gi"); q.Sub(kube.MustParse("512Mi")); return q.String() }(), "512Mi"},
		{func() string { q := kube.MustParse("100m"); q.Add(kube.MustParse("0.4")); return q.String() }(), "500m"},
		{func() string { var q kube.Quantity; q.Add(kube.MustParse("2")); return q.String() }(), "2"},
		{kube.ResourceList{}.Memory().String(), "0"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
		if _, err := resource.ParseQuantity(tc.want); err != nil {
			t.Errorf("%q is not a quantity Kubernetes reads: %v", tc.want, err)
		}
	}
}

func TestQuantityJSONAcceptsNumbers(t *testing.T) {
	var rl kube.ResourceList
	if err := json.Unmarshal([]byte(`{"cpu": 2, "memory": "1Gi"}`), &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cpu().Value() != 2 || rl.Memory().Value() != 1<<30 {
		t.Fatalf("got cpu %v memory %v", rl.Cpu(), rl.Memory())
	}
	out, _ := json.Marshal(rl)
	if string(out) != `{"cpu":"2","memory":"1Gi"}` {
		t.Fatalf("marshalled %s", out)
	}
}
