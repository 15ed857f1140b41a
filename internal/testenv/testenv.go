// Package testenv gives integration tests a real Kubernetes control plane.
//
// A test package shares one cluster among its tests: it calls Main from its
// TestMain, and each test that needs the cluster calls Start. The cluster is
// started on first use (packages whose selected tests do not need it pay
// nothing) and stopped when the package's tests end. Tests sharing a cluster
// must not assume they are alone in it: use a fresh namespace (Namespace) or
// unique names.
//
// The upstream binaries are built on first use (see k8sbin); `make test`
// builds them up front so the build's progress is visible.
package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/verge-edge/verge/internal/cloud/crdinstall"
	"github.com/verge-edge/verge/internal/devcluster"
	"github.com/verge-edge/verge/internal/k8sbin"
	"github.com/verge-edge/verge/internal/version"
)

// shared is the package's cluster. Test binaries are one process per
// package, so this is per-package state, started at most once.
var shared struct {
	once    sync.Once
	cluster *devcluster.Cluster
	dir     string
	err     error
}

// Main runs the tests of a package and stops its shared cluster afterwards.
// On failure the cluster's directory (logs included) is kept and printed.
func Main(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "testenv: tests failed; cluster state and logs kept in %s\n", shared.dir)
		} else {
			if err := shared.cluster.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "testenv: stopping the cluster: %v\n", err)
			}
			os.RemoveAll(shared.dir)
		}
	}
	os.Exit(code)
}

// Start returns the package's shared cluster, starting it if needed. The
// package must call Main from TestMain, or the cluster outlives the tests.
func Start(t testing.TB) *devcluster.Cluster {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "verge-testenv-")
		if shared.err != nil {
			return
		}
		bins, err := Binaries(context.Background())
		if err != nil {
			shared.err = err
			return
		}
		shared.cluster, shared.err = devcluster.Start(context.Background(), devcluster.Config{
			Dir:      shared.dir,
			Binaries: bins,
			KeepData: true, // removed by Main only when the tests passed
			Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
	})
	if shared.err != nil {
		t.Fatalf("starting the test control plane: %v", shared.err)
	}
	return shared.cluster
}

// Binaries finds (building if needed) the upstream control-plane binaries
// for the checkout the tests run in.
func Binaries(ctx context.Context) (*k8sbin.Binaries, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	src, err := k8sbin.FindSource(wd)
	if err != nil {
		return nil, err
	}
	cache, err := k8sbin.DefaultCacheDir()
	if err != nil {
		return nil, err
	}
	return k8sbin.Ensure(ctx, k8sbin.Options{SourceDir: src, CacheDir: cache, Progress: os.Stderr})
}

// Client returns a cluster-admin clientset for the shared cluster.
func Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(Start(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Namespace creates a namespace for the calling test, deleted when the test
// ends.
func Namespace(t testing.TB) string {
	t.Helper()
	cs := Client(t)
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: strings.Trim(name, "-") + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// InstallCRDs applies CRDs (usually crds.All()) to the shared cluster and
// waits until they are served. It is idempotent, so every test may call it.
func InstallCRDs(t testing.TB, all []*apiextv1.CustomResourceDefinition) {
	t.Helper()
	ext, err := apiextclient.NewForConfig(Start(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	inst := &crdinstall.Installer{Client: ext, FieldManager: "verge-testenv", Version: version.Version, Logger: slog.New(slog.DiscardHandler)}
	if err := inst.Install(context.Background(), all); err != nil {
		t.Fatalf("installing CRDs: %v", err)
	}
}
