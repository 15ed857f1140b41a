package crds_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/verge-edge/verge/api/crds"
)

// repoRoot is the module root, relative to this package's directory.
const repoRoot = "../.."

// TestGeneratedFilesAreFresh regenerates deepcopy code and CRD manifests
// from api/ with the Makefile's pinned controller-gen, in a copy of the
// module, and fails if anything differs from what is committed.
func TestGeneratedFilesAreFresh(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CONTROLLER_GEN_VERSION\s*:?=\s*(\S+)`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("CONTROLLER_GEN_VERSION not found in the Makefile")
	}
	work := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum"} {
		copyFile(t, filepath.Join(repoRoot, f), filepath.Join(work, f))
	}
	copyTree(t, filepath.Join(repoRoot, "api"), filepath.Join(work, "api"))
	crdOut := filepath.Join(work, "crds-out")
	cmd := exec.Command("go", "run", "sigs.k8s.io/controller-tools/cmd/controller-gen@"+string(m[1]),
		"object", "paths=./api/...", "crd", "paths=./api/...", "output:crd:artifacts:config="+crdOut)
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, out)
	}

	stale := func(what string) { t.Errorf("%s is stale: run `make generate` and commit the result", what) }
	// Deepcopy code, in place next to the types.
	err = filepath.WalkDir(filepath.Join(work, "api"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "zz_generated.deepcopy.go" {
			return err
		}
		rel, _ := filepath.Rel(work, p)
		if !bytes.Equal(read(t, p), read(t, filepath.Join(repoRoot, rel))) {
			stale(rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// CRD manifests: same set of files, same contents.
	generated, _ := filepath.Glob(filepath.Join(crdOut, "*.yaml"))
	committed, _ := filepath.Glob(filepath.Join("*.yaml"))
	want := map[string]bool{}
	for _, g := range generated {
		want[filepath.Base(g)] = true
		if !bytes.Equal(read(t, g), readOrNil(filepath.Base(g))) {
			stale("api/crds/" + filepath.Base(g))
		}
	}
	for _, c := range committed {
		if !want[c] {
			t.Errorf("api/crds/%s is not generated from any type: remove it or restore its type", c)
		}
	}
}

// Every embedded manifest decodes and names a Verge API group.
func TestAllDecodes(t *testing.T) {
	all, err := crds.All()
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]bool{"devices.kubeedge.io": true, "sedna.io": true, "operations.kubeedge.io": true, "apps.kubeedge.io": true}
	for _, c := range all {
		if !groups[c.Spec.Group] {
			t.Errorf("CRD %s has unexpected group %q", c.Name, c.Spec.Group)
		}
		if !strings.HasSuffix(c.Name, "."+c.Spec.Group) {
			t.Errorf("CRD name %s does not end in its group", c.Name)
		}
	}
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readOrNil(p string) []byte {
	b, _ := os.ReadFile(p)
	return b
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, read(t, from), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		copyFile(t, p, filepath.Join(to, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
