// Package shape enforces how the repository is put together: what the edge
// binary may link, that it stays pure Go and cross-compiles, and that every
// package says what it is for.
package shape

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verge-edge/verge/internal/version"
)

const repoRoot = "../.."

func goList(t *testing.T, env []string, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	return strings.Fields(string(out))
}

// verge-edge runs on small devices: it must not link the cloud side, the
// API server libraries, controller frameworks or the Kubernetes object
// machinery, and it must not need cgo.
func TestEdgeLinksNoCloudCodeAndNoCgo(t *testing.T) {
	forbidden := []string{
		"github.com/verge-edge/verge/internal/cloud",
		"github.com/verge-edge/verge/internal/devcluster",
		"github.com/verge-edge/verge/internal/localup",
		"k8s.io/apiserver",
		"k8s.io/apiextensions-apiserver",
		"sigs.k8s.io/controller-runtime",
		// The edge talks to the cloud over its own link, never to an API
		// server: a Kubernetes client would only add weight.
		"k8s.io/client-go/kubernetes",
		"k8s.io/client-go/rest",
	}
	// The edge reads the Kubernetes objects it uses into its own types:
	// internal/protocol/kube mirrors the core kinds, and wire.Device and
	// wire.DeviceModel carry kube.ObjectMeta with a devicespec spec.
	heavy := []string{
		"k8s.io/api",
		"k8s.io/apimachinery/pkg/runtime",
		"k8s.io/apimachinery/pkg/apis/meta/v1",
		"github.com/json-iterator/go",
		"github.com/fxamacker/cbor/v2",
		// Only client libraries log through klog; the edge has none.
		"k8s.io/klog",
		"k8s.io/apimachinery/pkg/util/validation",
	}
	for _, pkg := range goList(t, []string{"CGO_ENABLED=0"}, "-deps", "-tags", version.BuildTags, "./cmd/verge-edge") {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("verge-edge links %s (forbidden prefix %s)", pkg, f)
			}
		}
		for _, h := range heavy {
			if pkg == h || strings.HasPrefix(pkg, h+"/") {
				t.Errorf("verge-edge links %s (prefix %s): the binary's size is most of the agent's resident memory, "+
					"and k8s.io/api, apimachinery's runtime and meta/v1, their JSON and CBOR codecs and klog cost megabytes; "+
					"use internal/protocol/kube and devicespec instead", pkg, h)
			}
		}
		// Templates call methods by reflection, which makes the linker
		// keep every exported method of every type: 4.7 MB more binary,
		// most of it resident (see version.BuildTags).
		if pkg == "text/template" || pkg == "html/template" {
			t.Errorf("verge-edge links %s: whatever imports it costs megabytes of resident memory", pkg)
		}
	}
	for _, line := range goList(t, []string{"CGO_ENABLED=1"}, "-deps", "-f", "{{if .CgoFiles}}{{.ImportPath}}{{end}}", "./cmd/verge-edge") {
		if line != "runtime/cgo" && line != "net" && line != "os/user" && line != "plugin" {
			t.Errorf("verge-edge depends on cgo package %s", line)
		}
	}
}

func TestEdgeCrossCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiling takes a while; run without -short")
	}
	for _, p := range []struct{ arch, arm string }{{"amd64", ""}, {"arm64", ""}, {"arm", "7"}} {
		out := filepath.Join(t.TempDir(), "verge-edge")
		cmd := exec.Command("go", "build", "-tags", version.BuildTags, "-o", out, "./cmd/verge-edge")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+p.arch, "GOARM="+p.arm)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("linux/%s%s: %v\n%s", p.arch, p.arm, err, b)
		}
	}
}

// The Makefile builds the released binaries with the tags the tests and
// `verge up` use.
func TestMakefileUsesTheBuildTags(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "\nGOTAGS := "+version.BuildTags+"\n") {
		t.Errorf("Makefile does not set GOTAGS := %s (internal/version.BuildTags)", version.BuildTags)
	}
}

// Every package outside cmd/ and test/ has a package comment.
func TestPackagesAreDocumented(t *testing.T) {
	args := []string{"-f", "{{.ImportPath}}|{{if .Doc}}doc{{end}}"}
	for _, dir := range []string{"api", "internal", "pkg", "deploy"} {
		if _, err := os.Stat(filepath.Join(repoRoot, dir)); err == nil {
			args = append(args, "./"+dir+"/...")
		}
	}
	for _, line := range goList(t, nil, args...) {
		path, doc, _ := strings.Cut(line, "|")
		if doc == "" {
			t.Errorf("package %s has no package comment saying what it is for", path)
		}
	}
}
