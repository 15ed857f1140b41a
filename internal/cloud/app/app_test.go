package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/verge-edge/verge/api/crds"
	"github.com/verge-edge/verge/internal/cloud/app"
	"github.com/verge-edge/verge/internal/cloud/config"
	"github.com/verge-edge/verge/internal/cloud/crdinstall"
	"github.com/verge-edge/verge/internal/install"
	"github.com/verge-edge/verge/internal/kubeapply"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// cloudKubeconfig returns a kubeconfig for verge-cloud's ServiceAccount,
// bound to exactly the roles shipped in deploy/, as in a real install.
func cloudKubeconfig(t *testing.T) string {
	t.Helper()
	cluster := testenv.Start(t)
	ctx := context.Background()
	if err := install.CloudIdentity(ctx, cluster.RESTConfig()); err != nil {
		t.Fatal(err)
	}
	data, err := install.CloudKubeconfig(ctx, cluster.RESTConfig(), cluster.APIServerURL(), cluster.CA().CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// running is a verge-cloud started in-process.
type running struct {
	app    *app.App
	cancel context.CancelFunc
	done   chan error
	base   string
}

func start(t *testing.T, kubeconfig string, all []*apiextv1.CustomResourceDefinition) *running {
	t.Helper()
	cfg := config.Default()
	cfg.Kubeconfig = kubeconfig
	cfg.OpsAddress = "127.0.0.1:0"
	cfg.Hub.Listen = "127.0.0.1:0"
	cfg.Tunnel.Listen = "127.0.0.1:0"
	a, err := app.New(cfg, all, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{app: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	addrCtx, stopWaiting := context.WithCancel(ctx)
	go func() {
		// A Run that fails before serving must not leave Addr waiting.
		select {
		case err := <-r.done:
			r.done <- err
			stopWaiting()
		case <-addrCtx.Done():
		}
	}()
	addr, err := a.Ops().Addr(addrCtx)
	stopWaiting()
	if err != nil {
		select {
		case runErr := <-r.done:
			t.Fatalf("verge-cloud stopped before serving: %v", runErr)
		default:
			t.Fatal(err)
		}
	}
	r.base = "http://" + addr.String()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v on shutdown", err)
		}
		r.done <- nil
	case <-time.After(30 * time.Second):
		t.Error("verge-cloud did not shut down within 30 s")
	}
}

func status(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitReady(t *testing.T, r *running) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		code, _ := status(r.base + "/readyz")
		return code == 200, nil
	})
	if err != nil {
		_, body := status(r.base + "/readyz?verbose")
		t.Fatalf("verge-cloud not ready: %s", body)
	}
}

func crdVersions(t *testing.T, all []*apiextv1.CustomResourceDefinition) map[string]string {
	t.Helper()
	ext, err := apiextclient.NewForConfig(testenv.Start(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range all {
		got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(context.Background(), c.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := crdinstall.Established(got); err != nil {
			t.Errorf("CRD %s: %v", c.Name, err)
		}
		out[c.Name] = got.ResourceVersion
	}
	return out
}

// verge-cloud, with only the RBAC it ships, installs its CRDs, becomes
// ready, serves metrics, shuts down cleanly, and a restart changes nothing.
func TestInstallsCRDsAndRestartChangesNothing(t *testing.T) {
	all, err := crds.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("no CRDs embedded")
	}
	kubeconfig := cloudKubeconfig(t)
	r := start(t, kubeconfig, all)
	waitReady(t, r)
	before := crdVersions(t, all)
	if code, body := status(r.base + "/metrics"); code != 200 || !strings.Contains(body, "verge_cloud_info{") {
		t.Errorf("/metrics = %d without verge_cloud_info", code)
	}
	if code, _ := status(r.base + "/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	r.stop(t)

	r2 := start(t, kubeconfig, all)
	waitReady(t, r2)
	after := crdVersions(t, all)
	for name, rv := range before {
		if after[name] != rv {
			t.Errorf("restart changed CRD %s (resourceVersion %s → %s)", name, rv, after[name])
		}
	}
}

// verge-cloud runs the edge AI controllers with only the RBAC it ships: an
// upstream Sedna JointInferenceService gets its workers, and the
// controllers' metrics are served with verge-cloud's.
func TestRunsSednaControllers(t *testing.T) {
	all, err := crds.All()
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, cloudKubeconfig(t), all)
	waitReady(t, r)
	manifest, err := os.ReadFile("../../../examples/sedna/upstream/joint-inference-helmet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := kubeapply.Decode(manifest)
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.Namespace(t)
	var docs [][]byte
	for _, o := range objs {
		o.SetNamespace(ns)
		b, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	admin, err := kubeapply.New(testenv.Start(t).RESTConfig(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Apply(context.Background(), docs...); err != nil {
		t.Fatal(err)
	}
	kube := testenv.Client(t)
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		deps, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(deps.Items) == 2, nil
	})
	if err != nil {
		deps, _ := kube.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
		t.Fatalf("want the edge and cloud worker Deployments, got %d", len(deps.Items))
	}
	if _, body := status(r.base + "/metrics"); !strings.Contains(body, "controller_runtime_reconcile_total") {
		t.Errorf("/metrics lacks the controllers' metrics")
	}
}

// With the API server unreachable verge-cloud stays alive but not ready,
// and says why.
func TestNotReadyWhileAPIServerUnreachable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kubeconfig")
	unreachable := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n" +
		"users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
	if err := os.WriteFile(p, []byte(unreachable), 0o600); err != nil {
		t.Fatal(err)
	}
	all, err := crds.All()
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, p, all)
	time.Sleep(time.Second)
	if code, _ := status(r.base + "/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200 (the process itself is fine)", code)
	}
	code, body := status(r.base + "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]kube-apiserver failed") || !strings.Contains(body, "[-]crds failed") {
		t.Errorf("/readyz = %d %q, want 503 naming kube-apiserver and crds", code, body)
	}
}

func TestMissingKubeconfigIsExplained(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	cfg := config.Default()
	_, err := app.New(cfg, nil, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "pass --kubeconfig") {
		t.Fatalf("want advice to pass --kubeconfig, got %v", err)
	}
	cfg.Kubeconfig = "/nonexistent/kubeconfig"
	_, err = app.New(cfg, nil, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/kubeconfig") || errors.Unwrap(err) == nil {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}
