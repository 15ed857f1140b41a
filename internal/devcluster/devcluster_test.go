package devcluster_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/verge-edge/verge/internal/devcluster"
	"github.com/verge-edge/verge/internal/k8sbin"
	"github.com/verge-edge/verge/internal/supervisor"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func binaries(t *testing.T) *k8sbin.Binaries {
	t.Helper()
	b, err := testenv.Binaries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func start(t *testing.T, cfg devcluster.Config) *devcluster.Cluster {
	t.Helper()
	if cfg.Binaries == nil {
		cfg.Binaries = binaries(t)
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := devcluster.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// A Deployment created in the cluster gets a ReplicaSet (controller-manager
// works) whose pods the scheduler marks unschedulable (there are no nodes).
func TestControllersAndSchedulerRun(t *testing.T) {
	cs := testenv.Client(t)
	ns := testenv.Namespace(t)
	ctx := context.Background()
	labels := map[string]string{"app": "web"}
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "x"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		rs, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(rs.Items) != 1 {
			return false, err
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(pods.Items) != 2 {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodPending || !unschedulable(p) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("want 1 ReplicaSet and 2 Pending pods marked Unschedulable by the scheduler: %v", err)
	}
}

func unschedulable(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// Stop ends exactly the processes Start launched and, without KeepData,
// removes the state directory; a restart on kept data resumes the cluster.
func TestStopAndResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cluster")
	c := start(t, devcluster.Config{Dir: dir, KeepData: true})
	pids := c.PIDs()
	if len(pids) != 4 {
		t.Fatalf("want 4 processes (etcd, apiserver, controller-manager, scheduler), got %v", pids)
	}
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "survivor"}, Data: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d still running after Stop", pid)
		}
	}

	c2 := start(t, devcluster.Config{Dir: dir})
	cs2, err := kubernetes.NewForConfig(c2.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	cm, err := cs2.CoreV1().ConfigMaps("default").Get(ctx, "survivor", metav1.GetOptions{})
	if err != nil || cm.Data["k"] != "v" {
		t.Fatalf("state not resumed: %v %v", cm, err)
	}
	if err := c2.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory left behind without KeepData: %v", err)
	}
}

// A crashed component is restarted and the cluster becomes ready again.
func TestCrashedComponentIsRestarted(t *testing.T) {
	c := start(t, devcluster.Config{})
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	apiserverPID := c.PID("kube-apiserver")
	if err := syscall.Kill(apiserverPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, false, func(ctx context.Context) (bool, error) {
		if c.Restarts("kube-apiserver") < 1 {
			return false, nil
		}
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
	if err != nil {
		t.Fatalf("kube-apiserver not back after kill -9: %v", err)
	}
}

func TestBusyPortIsNamed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = devcluster.Start(context.Background(), devcluster.Config{Dir: t.TempDir(), Binaries: binaries(t), APIServerPort: port})
	var busy *devcluster.PortInUseError
	if !errors.As(err, &busy) || busy.Port != port || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Fatalf("want a PortInUseError naming port %d, got %v", port, err)
	}
}

// A component that cannot start makes Start fail with the tail of its log,
// and nothing it had started keeps running.
func TestFailedStartShowsLogAndCleansUp(t *testing.T) {
	bins := *binaries(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "kube-apiserver")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho 'simulated: cannot listen' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	bins.KubeAPIServer = bad
	before := etcdProcesses(t, dir)
	_, err := devcluster.Start(context.Background(), devcluster.Config{Dir: filepath.Join(dir, "c"), Binaries: &bins})
	var exit *supervisor.ExitError
	if !errors.As(err, &exit) || exit.Name != "kube-apiserver" || !strings.Contains(err.Error(), "simulated: cannot listen") ||
		!strings.Contains(err.Error(), filepath.Join(dir, "c", "logs", "kube-apiserver.log")) {
		t.Fatalf("want kube-apiserver's exit with its log tail and path, got: %v", err)
	}
	if after := etcdProcesses(t, dir); after != before {
		t.Fatalf("etcd for the failed cluster still running (%d before, %d after)", before, after)
	}
}

// etcdProcesses counts running etcd processes whose command line mentions dir.
func etcdProcesses(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), dir) && strings.Contains(string(cmdline), "etcd") {
			n++
		}
	}
	return n
}
