package kubeletapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"

	"github.com/verge-edge/verge/internal/containerd/containerdtest"
	"github.com/verge-edge/verge/internal/edge/kubeletapi"
	"github.com/verge-edge/verge/internal/edge/podruntime"
	"github.com/verge-edge/verge/internal/protocol/kube"
)

// source is a fixed desired state.
type source struct {
	mu   sync.Mutex
	pods []*kube.Pod
}

func (s *source) Pods(context.Context) ([]*kube.Pod, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*kube.Pod, 0, len(s.pods))
	for _, p := range s.pods {
		out = append(out, kube.DeepCopy(p))
	}
	return out, nil
}

func (s *source) ConfigMap(context.Context, string, string) (*kube.ConfigMap, error) {
	return nil, fmt.Errorf("no configmaps here")
}

func (s *source) Secret(context.Context, string, string) (*kube.Secret, error) {
	return nil, fmt.Errorf("no secrets here")
}

func (s *source) ServiceAccountToken(context.Context, string, string, string, []string, int64) (string, error) {
	return "token", nil
}

// sink keeps the newest status per pod.
type sink struct {
	mu     sync.Mutex
	status map[types.UID]kube.PodStatus
}

func (s *sink) PodStatus(_ types.NamespacedName, uid types.UID, st kube.PodStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[uid] = kube.DeepCopy(st)
}
func (s *sink) PodTerminated(types.NamespacedName, types.UID)      {}
func (s *sink) Event(kube.ObjectReference, string, string, string) {}

func (s *sink) get(uid types.UID) kube.PodStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status[uid]
}

func newSink() *sink { return &sink{status: map[types.UID]kube.PodStatus{}} }

func podUID() types.UID {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return types.UID("uid-" + hex.EncodeToString(b[:]))
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// node is a private containerd with a pod runtime and the kubelet API in
// front of them.
type node struct {
	rt     *podruntime.Runtime
	sink   *sink
	api    *kubeletapi.Handler
	server *httptest.Server
	images containerdtest.Images
}

func startNode(t *testing.T, name string, pods func(images containerdtest.Images) []*kube.Pod) *node {
	t.Helper()
	reg := containerdtest.StartRegistry(t)
	images, err := containerdtest.PushTestImages(reg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cd := containerdtest.StartNode(t, "kapi", reg, images.Pause)
	dir := t.TempDir()
	cfg := podruntime.Config{
		NodeName: name, NodeIP: "127.0.0.1", CRIEndpoint: cd.Endpoint(),
		RootDir: filepath.Join(dir, "root"), PodLogDir: filepath.Join(dir, "logs"),
		CgroupParent: cd.Instance.CgroupParent(), ReconcilePeriod: 2 * time.Second,
		Metrics: prometheus.NewRegistry(),
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src := &source{pods: pods(images)}
	sk := newSink()
	rt, err := podruntime.New(cfg, src, sk, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rt.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := podruntime.UnmountVolumes(cfg.RootDir); err != nil {
			t.Errorf("unmounting volumes: %v", err)
		}
	})
	api, err := kubeletapi.New(kubeletapi.Config{Containers: rt, CRIEndpoint: cd.Endpoint(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Close() })
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &node{rt: rt, sink: sk, api: api, server: srv, images: images}
}

// testPod has a web server, a chatty container and a crash-looping one.
func testPod(nodeName string, images containerdtest.Images) *kube.Pod {
	grace := int64(2)
	return &kube.Pod{
		ObjectMeta: kube.ObjectMeta{Name: "web", Namespace: "default", UID: podUID()},
		Spec: kube.PodSpec{
			NodeName:                      nodeName,
			TerminationGracePeriodSeconds: &grace,
			Containers: []kube.Container{
				{Name: "web", Image: images.App, Args: []string{"serve", "-addr", ":8080"}},
				{Name: "crash", Image: images.App, Args: []string{"crash", "-after", "300ms", "-code", "3"}},
				{Name: "idle", Image: images.App, Args: []string{"sleep"}},
			},
		},
	}
}

// TestStreamingAgainstContainerd drives exec, attach, port-forward and
// logs with client-go's own clients against pods in a real containerd.
func TestStreamingAgainstContainerd(t *testing.T) {
	var pod *kube.Pod
	n := startNode(t, "kapi", func(images containerdtest.Images) []*kube.Pod {
		pod = testPod("kapi", images)
		return []*kube.Pod{pod}
	})
	waitUntil(t, 90*time.Second, "web and idle running and crash restarted", func() bool {
		st := n.sink.get(pod.UID)
		running := 0
		restarted := false
		for _, cs := range st.ContainerStatuses {
			if cs.State.Running != nil && cs.Name != "crash" {
				running++
			}
			if cs.Name == "crash" && cs.RestartCount > 0 {
				restarted = true
			}
		}
		return running == 2 && restarted
	})
	base, _ := url.Parse(n.server.URL)
	restConfig := &rest.Config{Host: n.server.URL}

	exec := func(t *testing.T, executor func(*url.URL) (remotecommand.Executor, error), container string, tty bool, stdin io.Reader, cmd ...string) (string, string, error) {
		t.Helper()
		u := *base
		u.Path = "/exec/default/web/" + container
		q := url.Values{"command": cmd, "output": {"1"}}
		if !tty {
			q.Set("error", "1")
		}
		if tty {
			q.Set("tty", "1")
		}
		if stdin != nil {
			q.Set("input", "1")
		}
		u.RawQuery = q.Encode()
		ex, err := executor(&u)
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		opts := remotecommand.StreamOptions{Stdin: stdin, Stdout: &stdout, Tty: tty}
		if !tty {
			opts.Stderr = &stderr
		}
		err = ex.StreamWithContext(ctx, opts)
		return stdout.String(), stderr.String(), err
	}
	spdyExec := func(u *url.URL) (remotecommand.Executor, error) {
		return remotecommand.NewSPDYExecutor(restConfig, "POST", u)
	}

	t.Run("exec over SPDY", func(t *testing.T) {
		if out, _, err := exec(t, spdyExec, "web", false, nil, "/app", "write", "/greeting", "hello from exec"); err != nil {
			t.Fatalf("write: %v (%s)", err, out)
		}
		out, _, err := exec(t, spdyExec, "web", false, nil, "/app", "cat", "/greeting")
		if err != nil || out != "hello from exec" {
			t.Fatalf("cat: %q, %v", out, err)
		}
		// stdin goes in and the exit code comes back.
		out, _, err = exec(t, spdyExec, "web", false, strings.NewReader("piped through stdin"), "/app", "cat", "/dev/stdin")
		if err != nil || out != "piped through stdin" {
			t.Fatalf("stdin: %q, %v", out, err)
		}
		_, stderr, err := exec(t, spdyExec, "web", false, nil, "/app", "cat", "/no/such/file")
		if ee, ok := err.(interface{ ExitStatus() int }); !ok || ee.ExitStatus() != 1 || !strings.Contains(stderr, "no such file") {
			t.Fatalf("failing command: err %v, stderr %q", err, stderr)
		}
		out, _, err = exec(t, spdyExec, "idle", true, nil, "/app", "env")
		if err != nil || !strings.Contains(out, "TERM=") {
			t.Fatalf("tty: %q, %v", out, err)
		}
	})

	t.Run("exec with kubectl's WebSocket-then-SPDY fallback", func(t *testing.T) {
		// kubectl 1.30+ tries WebSocket (v5.channel.k8s.io) first and falls
		// back to SPDY when the other side does not speak it. The runtime's
		// streaming server decides (containerd 1.6 has no v5); through the
		// API server, which translates WebSocket to SPDY, the node sees SPDY.
		fallback := func(u *url.URL) (remotecommand.Executor, error) {
			ws, err := remotecommand.NewWebSocketExecutor(restConfig, "GET", u.String())
			if err != nil {
				return nil, err
			}
			sp, err := remotecommand.NewSPDYExecutor(restConfig, "POST", u)
			if err != nil {
				return nil, err
			}
			return remotecommand.NewFallbackExecutor(ws, sp, func(err error) bool {
				t.Logf("the runtime refused WebSocket, falling back to SPDY: %v", err)
				return true
			})
		}
		out, _, err := exec(t, fallback, "web", false, strings.NewReader("over websocket"), "/app", "cat", "/dev/stdin")
		if err != nil || out != "over websocket" {
			t.Fatalf("%q, %v", out, err)
		}
	})

	t.Run("attach", func(t *testing.T) {
		u := *base
		u.Path = "/attach/default/web/crash"
		u.RawQuery = url.Values{"output": {"1"}, "error": {"1"}}.Encode()
		ex, err := remotecommand.NewSPDYExecutor(restConfig, "POST", &u)
		if err != nil {
			t.Fatal(err)
		}
		// The crash container prints twice per run; attach sees a run's
		// output as it happens (or the container is between runs: retry).
		var out bytes.Buffer
		waitUntil(t, 60*time.Second, "attached output", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			_ = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: io.Discard})
			return strings.Contains(out.String(), "crasher exiting with 3")
		})
	})

	t.Run("port-forward", func(t *testing.T) {
		u := *base
		u.Path = "/portForward/default/web"
		tr, upgrader, err := spdy.RoundTripperFor(restConfig)
		if err != nil {
			t.Fatal(err)
		}
		dialer := spdy.NewDialer(upgrader, &http.Client{Transport: tr}, "POST", &u)
		stop, ready := make(chan struct{}), make(chan struct{})
		fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- fw.ForwardPorts() }()
		defer close(stop)
		select {
		case <-ready:
		case err := <-errc:
			t.Fatalf("port-forward: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("port-forward not ready")
		}
		ports, err := fw.GetPorts()
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 { // several connections over one forward
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(string(body), "hello from ") {
				t.Fatalf("request %d through the forward: %q", i, body)
			}
		}
	})

	t.Run("logs", func(t *testing.T) {
		get := func(path string) (int, string) {
			resp, err := http.Get(n.server.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := get("/containerLogs/default/web/web"); code != 200 || !strings.Contains(body, "serving on :8080") {
			t.Fatalf("web logs: %d %q", code, body)
		}
		if code, body := get("/containerLogs/default/web/crash?previous=true"); code != 200 || !strings.Contains(body, "crasher started") || !strings.Contains(body, "crasher exiting with 3") {
			t.Fatalf("previous crash logs: %d %q", code, body)
		}
		if code, body := get("/containerLogs/default/web/idle?previous=true"); code != 400 || !strings.Contains(body, "no previous terminated container") {
			t.Fatalf("previous of a container that never ended: %d %q", code, body)
		}
		if code, body := get("/containerLogs/default/web/nope"); code != 400 || !strings.Contains(body, `has no container "nope"`) {
			t.Fatalf("unknown container: %d %q", code, body)
		}
		// Exec output lands in no log; a followed log of a running
		// container streams what the container prints next.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.server.URL+"/containerLogs/default/web/crash?follow=true&timestamps=true", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body) // ends when that run of the container ends
		if !strings.Contains(string(b), " crasher") || !strings.HasPrefix(string(b), "20") {
			t.Fatalf("followed crash logs: %q", b)
		}
	})
}
