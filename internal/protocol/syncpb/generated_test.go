package syncpb_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates the Go code from the .proto files
// with the pinned generators (hack/gen-proto.sh) into a temporary directory
// and fails if it differs from what is committed.
func TestGeneratedCodeIsFresh(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("protoc is not installed: apt-get install -y protobuf-compiler libprotobuf-dev")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	protos := []string{"sync", "bootstrap", "tunnel"}
	args := []string{"-o", t.TempDir()}
	for _, p := range protos {
		args = append(args, filepath.Join("internal", "protocol", "syncpb", p+".proto"))
	}
	cmd := exec.Command(filepath.Join(root, "hack", "gen-proto.sh"), args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/gen-proto.sh: %v\n%s", err, b)
	}
	for _, p := range protos {
		for _, f := range []string{p + ".pb.go", p + "_grpc.pb.go"} {
			rel := filepath.Join("internal", "protocol", "syncpb", f)
			want, err := os.ReadFile(filepath.Join(args[1], rel))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(root, rel))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is stale: run hack/gen-proto.sh internal/protocol/syncpb/%s.proto and commit the result", rel, p)
			}
		}
	}
}
