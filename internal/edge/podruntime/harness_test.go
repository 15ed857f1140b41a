package podruntime_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/containerd/containerdtest"
	"github.com/verge-edge/verge/internal/edge/podruntime"
	"github.com/verge-edge/verge/internal/protocol/kube"
)

// memSource is the desired state in memory (the edge store's stand-in).
type memSource struct {
	mu      sync.Mutex
	pods    map[types.UID]*kube.Pod
	cms     map[string]*kube.ConfigMap
	secrets map[string]*kube.Secret
	fail    error
}

func newSource() *memSource {
	return &memSource{pods: map[types.UID]*kube.Pod{}, cms: map[string]*kube.ConfigMap{}, secrets: map[string]*kube.Secret{}}
}

func (s *memSource) Pods(context.Context) ([]*kube.Pod, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	out := make([]*kube.Pod, 0, len(s.pods))
	for _, p := range s.pods {
		out = append(out, kube.DeepCopy(p))
	}
	return out, nil
}

func (s *memSource) ConfigMap(_ context.Context, ns, name string) (*kube.ConfigMap, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cm, ok := s.cms[ns+"/"+name]; ok {
		return kube.DeepCopy(cm), nil
	}
	return nil, fmt.Errorf("configmap %q: %w", name, podruntime.ErrNotFound)
}

func (s *memSource) Secret(_ context.Context, ns, name string) (*kube.Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sec, ok := s.secrets[ns+"/"+name]; ok {
		return kube.DeepCopy(sec), nil
	}
	return nil, fmt.Errorf("secret %q: %w", name, podruntime.ErrNotFound)
}

func (s *memSource) ServiceAccountToken(_ context.Context, ns, pod, sa string, aud []string, exp int64) (string, error) {
	return fmt.Sprintf("token-for-%s/%s/%s", ns, pod, sa), nil
}

func (s *memSource) putPod(p *kube.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pods[p.UID] = kube.DeepCopy(p)
}

func (s *memSource) deletePod(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pods, uid)
}

func (s *memSource) pod(uid types.UID) *kube.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	return kube.DeepCopy(s.pods[uid])
}

func (s *memSource) putConfigMap(cm *kube.ConfigMap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cms[cm.Namespace+"/"+cm.Name] = kube.DeepCopy(cm)
}

func (s *memSource) putSecret(sec *kube.Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[sec.Namespace+"/"+sec.Name] = kube.DeepCopy(sec)
}

// recSink records what the runtime reports.
type recSink struct {
	mu         sync.Mutex
	status     map[types.UID]kube.PodStatus
	reports    map[types.UID]int
	terminated map[types.UID]int
	events     []string
}

func newSink() *recSink {
	return &recSink{status: map[types.UID]kube.PodStatus{}, reports: map[types.UID]int{}, terminated: map[types.UID]int{}}
}

func (s *recSink) PodStatus(_ types.NamespacedName, uid types.UID, st kube.PodStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[uid] = kube.DeepCopy(st)
	s.reports[uid]++
}

func (s *recSink) PodTerminated(_ types.NamespacedName, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.terminated[uid]++
}

func (s *recSink) Event(ref kube.ObjectReference, eventType, reason, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf("%s %s %s %s: %s", ref.Namespace, ref.Name, eventType, reason, message))
}

func (s *recSink) rec() *recSink { return s }

// recorder is a Sink whose reports can be queried.
type recorder interface {
	podruntime.Sink
	rec() *recSink
}

func (s *recSink) get(uid types.UID) (kube.PodStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.status[uid]
	return kube.DeepCopy(st), ok
}

func (s *recSink) eventsFor(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		if strings.Contains(e, " "+name+" ") {
			out = append(out, e)
		}
	}
	return out
}

// env is a registry with the test images and one containerd node.
type env struct {
	reg    *containerdtest.Registry
	images containerdtest.Images
	node   *containerdtest.Node
}

func newEnv(t testing.TB, prefix string) *env {
	t.Helper()
	reg := containerdtest.StartRegistry(t)
	images, err := containerdtest.PushTestImages(reg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{reg: reg, images: images, node: containerdtest.StartNode(t, prefix, reg, images.Pause)}
}

// node is one running pod runtime.
type node struct {
	name   string
	src    *memSource
	sink   *recSink
	rt     *podruntime.Runtime
	cfg    podruntime.Config
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func runtimeConfig(t *testing.T, e *env, name string) podruntime.Config {
	dir := t.TempDir()
	return podruntime.Config{
		NodeName:        name,
		NodeIP:          "127.0.0.1",
		CRIEndpoint:     e.node.Endpoint(),
		RootDir:         filepath.Join(dir, "root"),
		PodLogDir:       filepath.Join(dir, "logs"),
		CgroupParent:    e.node.Instance.CgroupParent(),
		ReconcilePeriod: 2 * time.Second,
	}
}

// startRuntime runs a pod runtime until the test ends (or stop).
func startRuntime(t testing.TB, cfg podruntime.Config, src *memSource, sink recorder) *node {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Metrics = reg
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rt, err := podruntime.New(cfg, src, sink, logger.With("node", cfg.NodeName))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{name: cfg.NodeName, src: src, sink: sink.rec(), rt: rt, cfg: cfg, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- rt.Start(ctx) }()
	t.Cleanup(func() {
		n.stop()
		if err := podruntime.UnmountVolumes(cfg.RootDir); err != nil {
			t.Errorf("unmounting volumes: %v", err)
		}
	})
	return n
}

func (n *node) stop() {
	n.cancel()
	err := <-n.done
	n.done <- err // later stops return at once
}

// pod is a pod bound to the node with a fresh UID.
func (n *node) pod(name string, containers ...kube.Container) *kube.Pod {
	var b [8]byte
	_, _ = rand.Read(b[:])
	grace := int64(5)
	return &kube.Pod{
		ObjectMeta: kube.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + hex.EncodeToString(b[:])), Labels: map[string]string{"app": name}},
		Spec: kube.PodSpec{
			NodeName:                      n.name,
			Containers:                    containers,
			TerminationGracePeriodSeconds: &grace,
			ServiceAccountName:            "default",
		},
	}
}

func (n *node) add(p *kube.Pod) {
	n.src.putPod(p)
	n.rt.Trigger()
}

// waitStatus polls the sink until cond holds for the pod's status.
func waitStatus(t testing.TB, s *recSink, uid types.UID, timeout time.Duration, what string, cond func(kube.PodStatus) bool) kube.PodStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, ok := s.get(uid)
		if ok && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last status: %s", timeout, what, describe(st))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func describe(st kube.PodStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s podIP=%s", st.Phase, st.PodIP)
	for _, c := range st.Conditions {
		fmt.Fprintf(&b, " %s=%s(%s)", c.Type, c.Status, c.Reason)
	}
	for _, cs := range append(append([]kube.ContainerStatus(nil), st.InitContainerStatuses...), st.ContainerStatuses...) {
		fmt.Fprintf(&b, " [%s ready=%v restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
		switch {
		case cs.State.Running != nil:
			b.WriteString(" running")
		case cs.State.Waiting != nil:
			fmt.Fprintf(&b, " waiting %s: %s", cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Terminated != nil:
			fmt.Fprintf(&b, " terminated %d %s", cs.State.Terminated.ExitCode, cs.State.Terminated.Reason)
		}
		b.WriteString("]")
	}
	return b.String()
}

func condition(st kube.PodStatus, t kube.PodConditionType) kube.ConditionStatus {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func running(st kube.PodStatus) bool {
	if st.Phase != kube.PodRunning || len(st.ContainerStatuses) == 0 {
		return false
	}
	for _, cs := range st.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

// cri is a direct CRI connection for checks and for meddling behind the
// runtime's back.
type cri struct {
	rt  runtimeapi.RuntimeServiceClient
	img runtimeapi.ImageServiceClient
}

func dialCRI(t *testing.T, e *env) *cri {
	conn, err := e.node.Instance.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &cri{rt: runtimeapi.NewRuntimeServiceClient(conn), img: runtimeapi.NewImageServiceClient(conn)}
}

// exec runs a command in the pod's running container named name.
func (c *cri) exec(t *testing.T, podUID types.UID, name string, cmd ...string) (string, int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := c.containerID(t, podUID, name)
	resp, err := c.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
	if err != nil {
		t.Fatalf("exec %v in %s: %v", cmd, name, err)
	}
	return string(resp.Stdout) + string(resp.Stderr), resp.ExitCode
}

func (c *cri) containerID(t *testing.T, podUID types.UID, name string) string {
	t.Helper()
	ctrs := c.containers(t, podUID)
	for _, ctr := range ctrs {
		if ctr.Metadata.Name == name && ctr.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return ctr.Id
		}
	}
	t.Fatalf("no running container %s in pod %s", name, podUID)
	return ""
}

func (c *cri) containers(t *testing.T, podUID types.UID) []*runtimeapi.Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.uid": string(podUID)}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Containers
}

func (c *cri) sandboxes(t *testing.T, podUID types.UID) []*runtimeapi.PodSandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := &runtimeapi.PodSandboxFilter{}
	if podUID != "" {
		f.LabelSelector = map[string]string{"io.kubernetes.pod.uid": string(podUID)}
	}
	resp, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Items
}
