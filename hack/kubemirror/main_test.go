package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedFileIsFresh fails when the committed mirror no longer
// matches k8s.io/api (after a version bump, or an edit to the lists here):
// run `go generate ./internal/protocol/kube`.
func TestGeneratedFileIsFresh(t *testing.T) {
	want, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "internal", "protocol", "kube", "zz_generated.types.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("internal/protocol/kube/zz_generated.types.go is stale: run go generate ./internal/protocol/kube")
	}
}
