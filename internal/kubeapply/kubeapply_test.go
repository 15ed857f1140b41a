package kubeapply_test

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/verge-edge/verge/internal/kubeapply"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestApplyMixedManifestIsIdempotent(t *testing.T) {
	cluster := testenv.Start(t)
	cs := testenv.Client(t)
	a, err := kubeapply.New(cluster.RESTConfig(), "verge-test")
	if err != nil {
		t.Fatal(err)
	}
	manifest := []byte(`
apiVersion: v1
kind: Namespace
metadata: {name: kubeapply-test}
---
# comments and empty documents are fine
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: kubeapply-test}
data: {mode: fast}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: in-default}
data: {k: v}
`)
	ctx := context.Background()
	if err := a.Apply(ctx, manifest); err != nil {
		t.Fatal(err)
	}
	cm, err := cs.CoreV1().ConfigMaps("kubeapply-test").Get(ctx, "settings", metav1.GetOptions{})
	if err != nil || cm.Data["mode"] != "fast" {
		t.Fatalf("settings not applied: %v %v", cm, err)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "in-default", metav1.GetOptions{}); err != nil {
		t.Fatalf("an object without a namespace should land in default: %v", err)
	}
	if err := a.Apply(ctx, manifest); err != nil {
		t.Fatal(err)
	}
	again, _ := cs.CoreV1().ConfigMaps("kubeapply-test").Get(ctx, "settings", metav1.GetOptions{})
	if again.ResourceVersion != cm.ResourceVersion {
		t.Errorf("re-applying the same manifest changed the object")
	}
}

func TestApplyErrorsNameTheProblem(t *testing.T) {
	a, err := kubeapply.New(testenv.Start(t).RESTConfig(), "verge-test")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, manifest, want string }{
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", "no apiVersion/kind"},
		{"unknown kind", "apiVersion: example.com/v1\nkind: Nothing\nmetadata: {name: x}\n", "applying Nothing x"},
		{"not yaml", "{{{", "decoding manifest document 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := a.Apply(context.Background(), []byte(tc.manifest))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}
