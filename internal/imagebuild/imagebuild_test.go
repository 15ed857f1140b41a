package imagebuild_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/verge-edge/verge/internal/containerd/containerdtest"
	"github.com/verge-edge/verge/internal/imagebuild"
	"github.com/verge-edge/verge/internal/localregistry"
)

func serveRegistry(t *testing.T, dir, addr string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- localregistry.Serve(ctx, localregistry.Options{Dir: dir, Listen: addr, Log: io.Discard})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry did not listen: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry stopped with %v", err)
		}
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// An image built from a static binary is pushed, survives a registry
// restart, and reads back with the binary as entrypoint.
func TestBuildPushPullAcrossRestart(t *testing.T) {
	work := t.TempDir()
	bin, err := containerdtest.BuildTestApp(work)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(work, "hello")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := imagebuild.BuildFile(path, []string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := imagebuild.BuildFile(path, []string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("the same binary gave two digests: %s, %s", d1, d2)
	}

	dir, addr := t.TempDir(), freeAddr(t)
	stop := serveRegistry(t, dir, addr)
	byDigest, err := imagebuild.Push(context.Background(), img, addr+"/demo/hello:v1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(byDigest, "@"+d1.String()) {
		t.Errorf("Push returned %s, want a reference by digest %s", byDigest, d1)
	}
	stop()
	stop = serveRegistry(t, dir, addr)
	defer stop()
	ref, _ := name.ParseReference(addr+"/demo/hello:v1", name.Insecure)
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pulling after a restart: %v", err)
	}
	if gd, _ := got.Digest(); gd != d1 {
		t.Errorf("pulled digest %s, pushed %s", gd, d1)
	}
	cf, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.Entrypoint[0] != "/hello" || cf.Config.Cmd[0] != "serve" || cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("config = %+v / %s/%s", cf.Config, cf.OS, cf.Architecture)
	}
}

func TestRefusesWhatCannotRunInAnEmptyImage(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"text file", []byte("#!/bin/sh\necho hi\n"), "not a Linux executable"},
	} {
		if _, err := imagebuild.Build(imagebuild.Spec{Binary: tc.data}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.want)
		}
	}
	dynamic, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imagebuild.Build(imagebuild.Spec{Binary: dynamic}); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("a dynamic binary: err = %v, want it refused as dynamically linked", err)
	}
}
