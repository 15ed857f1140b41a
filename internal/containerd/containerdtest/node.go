package containerdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/containerd"
	"github.com/verge-edge/verge/internal/logtail"
	"github.com/verge-edge/verge/internal/supervisor"
)

// Images are the references of the test images in a Registry.
type Images struct {
	// App runs testapp; pass the role and flags as the container's args.
	App string
	// Pause is the sandbox image (testapp pause).
	Pause string
	// Binary is testapp itself, for more images.
	Binary []byte
}

// BuildTestApp compiles testdata/testapp as a static binary.
func BuildTestApp(dir string) ([]byte, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return nil, errors.New("cannot locate containerdtest's source")
	}
	src := filepath.Join(filepath.Dir(self), "testdata", "testapp")
	out := filepath.Join(dir, "testapp")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=-buildvcs=false")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building testapp: %w\n%s", err, msg)
	}
	return os.ReadFile(out)
}

// PushTestImages builds testapp and pushes the app and pause images.
func PushTestImages(reg *Registry, workDir string) (Images, error) {
	bin, err := BuildTestApp(workDir)
	if err != nil {
		return Images{}, err
	}
	files := map[string]File{"app": {Data: bin, Mode: 0o755}}
	app, err := reg.Push("verge-test/app", "v1", files, []string{"/app"})
	if err != nil {
		return Images{}, err
	}
	pause, err := reg.Push("verge-test/pause", "v1", files, []string{"/app", "pause"})
	if err != nil {
		return Images{}, err
	}
	return Images{App: app, Pause: pause, Binary: bin}, nil
}

// Node is a running private containerd instance.
type Node struct {
	Instance *containerd.Instance
	Dir      string
	LogPath  string
	Group    *supervisor.Group
}

// Endpoint is the CRI socket.
func (n *Node) Endpoint() string { return n.Instance.Endpoint() }

// Process is the current containerd process.
func (n *Node) Process() *supervisor.Process {
	return n.Group.Current("containerd-" + n.Instance.Config().Name)
}

// StartNode starts a containerd instance named prefix-<random> with a
// random free pod CIDR, pulling from reg, and stops and cleans up all of
// it when the test ends.
func StartNode(t testing.TB, prefix string, reg *Registry, sandboxImage string) *Node {
	t.Helper()
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	name := prefix + "-" + hex.EncodeToString(suffix[:])
	dir, err := os.MkdirTemp("", "vc-")
	if err != nil {
		t.Fatal(err)
	}
	var inst *containerd.Instance
	for attempt := 0; ; attempt++ {
		cfg := containerd.Config{
			Name:         name,
			Dir:          dir,
			PodCIDR:      randomCIDR(),
			SandboxImage: sandboxImage,
			Registries:   []containerd.Registry{{Host: reg.Addr, PlainHTTP: true}},
		}
		inst, err = containerd.New(cfg)
		if err == nil {
			err = inst.Prepare()
		}
		if err == nil {
			break
		}
		var ce *containerd.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "overlaps") || attempt > 10 {
			os.RemoveAll(dir)
			t.Fatalf("containerd instance: %v", err)
		}
	}
	n := &Node{Instance: inst, Dir: dir, LogPath: filepath.Join(dir, "containerd.log"), Group: supervisor.NewGroup(slog.New(slog.NewTextHandler(testWriter{t}, nil)))}
	t.Cleanup(func() { n.stop(t) })
	if _, err := n.Group.Start(inst.Spec(n.LogPath)); err != nil {
		t.Fatalf("starting containerd: %v (is the Debian package containerd installed? apt-get install -y containerd runc containernetworking-plugins)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := inst.WaitReady(ctx); err != nil {
		t.Fatalf("%v\n--- containerd log ---\n%s", err, logtail.Lines(n.LogPath, 30))
	}
	return n
}

// Restart starts containerd again under a new supervisor after the test
// stopped the old one (Group.Stop), e.g. to simulate a host reboot.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	n.Group = supervisor.NewGroup(slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if _, err := n.Group.Start(n.Instance.Spec(n.LogPath)); err != nil {
		t.Fatalf("restarting containerd: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.Instance.WaitReady(ctx); err != nil {
		t.Fatalf("%v\n--- containerd log ---\n%s", err, logtail.Lines(n.LogPath, 30))
	}
}

func (n *Node) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Instance.RemoveAllPods(ctx); err != nil {
		t.Logf("removing pods of %s: %v", n.Instance.Config().Name, err)
	}
	n.Group.Stop()
	if err := n.Instance.CleanupHost(); err != nil {
		t.Logf("cleaning up after %s: %v", n.Instance.Config().Name, err)
	}
	if t.Failed() {
		t.Logf("--- last lines of %s ---\n%s", n.LogPath, logtail.Lines(n.LogPath, 40))
	}
	os.RemoveAll(n.Dir)
}

// randomCIDR picks a /24 in 10.200.0.0–10.249.255.0, unlikely to clash with
// another test process on the host (Prepare rejects one that overlaps an
// existing route and the caller retries).
func randomCIDR() string {
	a, _ := rand.Int(rand.Reader, big.NewInt(50))
	b, _ := rand.Int(rand.Reader, big.NewInt(256))
	return fmt.Sprintf("10.%d.%d.0/24", 200+a.Int64(), b.Int64())
}

// testWriter sends supervisor logs to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
