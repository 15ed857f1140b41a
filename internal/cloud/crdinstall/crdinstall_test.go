package crdinstall_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/verge-edge/verge/internal/cloud/crdinstall"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// gadgetCRD is a minimal CRD in a test-only group.
func gadgetCRD(plural string, extraField string) *apiextv1.CustomResourceDefinition {
	props := map[string]apiextv1.JSONSchemaProps{"size": {Type: "integer"}}
	if extraField != "" {
		props[extraField] = apiextv1.JSONSchemaProps{Type: "string"}
	}
	return &apiextv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + ".test.verge.dev"},
		Spec: apiextv1.CustomResourceDefinitionSpec{
			Group: "test.verge.dev",
			Names: apiextv1.CustomResourceDefinitionNames{Plural: plural, Kind: "Gadget" + plural, ListKind: "Gadget" + plural + "List", Singular: plural[:len(plural)-1]},
			Scope: apiextv1.NamespaceScoped,
			Versions: []apiextv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &apiextv1.JSONSchemaProps{
					Type:       "object",
					Properties: map[string]apiextv1.JSONSchemaProps{"spec": {Type: "object", Properties: props}},
				}},
			}},
		},
	}
}

func installer(t *testing.T, version string) (*crdinstall.Installer, apiextclient.Interface) {
	ext, err := apiextclient.NewForConfig(testenv.Start(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &crdinstall.Installer{Client: ext, FieldManager: "verge-cloud", Version: version, Logger: slog.New(slog.DiscardHandler)}, ext
}

func get(t *testing.T, ext apiextclient.Interface, name string) *apiextv1.CustomResourceDefinition {
	t.Helper()
	crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return crd
}

func TestInstallIsIdempotentAndUpgrades(t *testing.T) {
	inst, ext := installer(t, "v1.2.0")
	ctx := context.Background()
	crd := gadgetCRD("widgets", "")
	if err := inst.Install(ctx, []*apiextv1.CustomResourceDefinition{crd}); err != nil {
		t.Fatal(err)
	}
	first := get(t, ext, crd.Name)
	if err := crdinstall.Established(first); err != nil {
		t.Fatalf("not established after Install: %v", err)
	}
	if first.Annotations[crdinstall.VersionAnnotation] != "v1.2.0" {
		t.Errorf("version annotation = %q", first.Annotations[crdinstall.VersionAnnotation])
	}
	if err := inst.Install(ctx, []*apiextv1.CustomResourceDefinition{crd}); err != nil {
		t.Fatal(err)
	}
	if again := get(t, ext, crd.Name); again.ResourceVersion != first.ResourceVersion {
		t.Errorf("re-applying the same CRD changed it: resourceVersion %s → %s", first.ResourceVersion, again.ResourceVersion)
	}
	inst.Version = "v1.3.0"
	if err := inst.Install(ctx, []*apiextv1.CustomResourceDefinition{gadgetCRD("widgets", "color")}); err != nil {
		t.Fatal(err)
	}
	upgraded := get(t, ext, crd.Name)
	if _, ok := upgraded.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["color"]; !ok {
		t.Errorf("schema not upgraded")
	}
}

// During a rolling upgrade an older replica must not downgrade a schema a
// newer one installed.
func TestOlderVersionLeavesNewerCRDAlone(t *testing.T) {
	inst, ext := installer(t, "v2.0.0")
	ctx := context.Background()
	if err := inst.Install(ctx, []*apiextv1.CustomResourceDefinition{gadgetCRD("sprockets", "color")}); err != nil {
		t.Fatal(err)
	}
	before := get(t, ext, "sprockets.test.verge.dev")
	inst.Version = "v1.9.0"
	if err := inst.Install(ctx, []*apiextv1.CustomResourceDefinition{gadgetCRD("sprockets", "")}); err != nil {
		t.Fatal(err)
	}
	if after := get(t, ext, "sprockets.test.verge.dev"); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("an older Verge changed a CRD installed by a newer one")
	}
}

func TestNameConflictIsReported(t *testing.T) {
	inst, _ := installer(t, "v1.0.0")
	ctx := context.Background()
	if err := inst.Install(ctx, []*apiextv1.CustomResourceDefinition{gadgetCRD("gizmos", "")}); err != nil {
		t.Fatal(err)
	}
	// A second CRD in the same group claiming the same kind is not accepted.
	clash := gadgetCRD("thingamajigs", "")
	clash.Spec.Names.Kind = "Gadgetgizmos"
	clash.Spec.Names.ListKind = "GadgetgizmosList"
	inst.EstablishTimeout = 5 * time.Second
	err := inst.Install(ctx, []*apiextv1.CustomResourceDefinition{clash})
	if err == nil {
		t.Fatal("want an error for a kind conflict")
	}
	if !strings.Contains(err.Error(), "thingamajigs.test.verge.dev") || !strings.Contains(err.Error(), "names not accepted") {
		t.Errorf("error should name the CRD and the conflict: %v", err)
	}
}
