package v1beta1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates the Go code from api.proto with the
// pinned generators (hack/gen-proto.sh) into a temporary directory and fails
// if it differs from what is committed.
func TestGeneratedCodeIsFresh(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("protoc is not installed: apt-get install -y protobuf-compiler libprotobuf-dev")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "hack", "gen-proto.sh"), "-o", out, "pkg/dmi/v1beta1/api.proto")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/gen-proto.sh: %v\n%s", err, b)
	}
	for _, f := range []string{"api.pb.go", "api_grpc.pb.go"} {
		rel := filepath.Join("pkg", "dmi", "v1beta1", f)
		want, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run hack/gen-proto.sh pkg/dmi/v1beta1/api.proto and commit the result", rel)
		}
	}
}
