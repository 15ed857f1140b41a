// Package sednatest runs the Sedna controllers against the package's real
// test control plane (internal/testenv): it starts a controller-runtime
// manager scoped to one test namespace, applies manifests unchanged, and
// waits for the objects the controllers write. Only tests import it.
package sednatest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/verge-edge/verge/api/crds"
	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/kubeapply"
	"github.com/verge-edge/verge/internal/testenv"
)

// Scheme has the built-in kinds and the Sedna kinds.
func Scheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := sednav1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// Env is one test's view of the cluster: a fresh namespace with the CRDs
// installed, a client that reads the API server directly, and the running
// controllers.
type Env struct {
	NS     string
	Client client.Client
}

// Start installs the CRDs, creates a namespace and runs a manager whose
// cache sees only that namespace, with the controllers setup registers.
// The manager stops when the test ends.
func Start(t *testing.T, setup func(ctrl.Manager) error) *Env {
	t.Helper()
	cluster := testenv.Start(t)
	all, err := crds.All()
	if err != nil {
		t.Fatal(err)
	}
	testenv.InstallCRDs(t, all)
	ns := testenv.Namespace(t)
	cfg := cluster.RESTConfig()
	scheme := Scheme(t)

	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Every test runs its own controllers in one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:     logr.FromSlogHandler(testHandler(t)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := setup(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("manager cache did not sync")
	}
	return &Env{NS: ns, Client: direct}
}

// testHandler logs through t.Log until the test ends, then drops records
// (the manager's goroutines may log while shutting down).
func testHandler(t *testing.T) slog.Handler {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
}

type testWriter struct {
	mu     sync.Mutex
	t      *testing.T
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// RepoFile reads a file relative to the repository root.
func RepoFile(t testing.TB, rel string) []byte {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test directory")
		}
		dir = parent
	}
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// CreateManifest creates every object of a YAML manifest in the test's
// namespace, exactly as written otherwise. Field validation is strict, so
// a field our schema lacks fails the test instead of being pruned.
func (e *Env) CreateManifest(t testing.TB, manifest []byte) {
	t.Helper()
	objs, err := kubeapply.Decode(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		o.SetNamespace(e.NS)
		if err := e.Client.Create(context.Background(), o, client.FieldValidation("Strict")); err != nil {
			t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

// Eventually polls cond until it returns nil or timeout passes, then fails
// with cond's last error.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Get reads one object of the test namespace from the API server.
func (e *Env) Get(name string, obj client.Object) error {
	return e.Client.Get(context.Background(), client.ObjectKey{Namespace: e.NS, Name: name}, obj)
}

// Gone returns nil once the named object no longer exists.
func (e *Env) Gone(name string, obj client.Object) error {
	err := e.Get(name, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%s still exists (deletionTimestamp %v)", name, obj.GetDeletionTimestamp())
}
