package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// edgeCluster is a `verge up` with edge nodes, as a user runs it.
type edgeCluster struct {
	up      *upProcess
	dataDir string
	ports   map[string]string
}

func startEdgeCluster(t testing.TB, nodes int) *edgeCluster {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "v")
	p := freePorts(t, 7)
	base, _ := strconv.Atoi(p[4])
	mqttBase, _ := strconv.Atoi(p[6])
	c := &edgeCluster{dataDir: dataDir, ports: map[string]string{"api": p[0], "ops": p[1], "hub": p[2], "registry": p[3]}}
	c.up = startUp(t, dataDir, "--edge-nodes", strconv.Itoa(nodes), "--apiserver-port", p[0], "--cloud-ops-port", p[1],
		"--hub-port", p[2], "--registry-port", p[3], "--edge-ops-base-port", strconv.Itoa(base-1), "--tunnel-port", p[5],
		"--mqtt-base-port", strconv.Itoa(mqttBase-1))
	return c
}

// pushTestApp builds the test app (internal/containerd/containerdtest/
// testdata/testapp) as a user would build a static binary, packages it with
// `verge image build` into the cluster's registry and returns the image.
func (c *edgeCluster) pushTestApp(t testing.TB, name string) string {
	t.Helper()
	app := filepath.Join(t.TempDir(), "app")
	build := exec.Command("go", "build", "-o", app, ".")
	build.Dir = filepath.Join("..", "..", "internal", "containerd", "containerdtest", "testdata", "testapp")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the app: %v\n%s", err, msg)
	}
	img, err := exec.Command(filepath.Join(bin.dir, "verge"), "image", "build", "--data-dir", c.dataDir, "--binary", app, "--name", name).Output()
	if err != nil {
		t.Fatalf("verge image build: %v", err)
	}
	return strings.TrimSpace(string(img))
}

func (c *edgeCluster) kubectl(t testing.TB, args ...string) string {
	t.Helper()
	return kubectl(t, c.dataDir, args...)
}

// kubectlErr runs kubectl and returns its output and error.
func (c *edgeCluster) kubectlErr(args ...string) (string, error) {
	out, err := exec.Command(bin.k8s.Kubectl, append([]string{"--kubeconfig", filepath.Join(c.dataDir, "kubeconfig")}, args...)...).CombinedOutput()
	return string(out), err
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < timeout {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		last = state
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last state:\n%s", timeout, what, last)
	return 0
}

// podTable returns, per pod matching selector: name, phase, Ready,
// restarts, IP, node and container ID.
func (c *edgeCluster) podTable(t testing.TB, selector string) [][]string {
	t.Helper()
	out := c.kubectl(t, "get", "pods", "-l", selector, "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[0].restartCount} {.status.podIP} {.spec.nodeName} {.status.containerStatuses[0].containerID}{"\n"}{end}`)
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows = append(rows, f)
		}
	}
	return rows
}

// objectVersions maps the pods and ConfigMaps of the default namespace to
// their resourceVersions.
func (c *edgeCluster) objectVersions(t testing.TB) map[string]string {
	t.Helper()
	out := c.kubectl(t, "get", "pods,configmaps", "-o", `jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}`)
	m := map[string]string{}
	for _, line := range strings.Fields(out) {
		k, v, _ := strings.Cut(line, "=")
		m[k] = v
	}
	return m
}

// processPID finds the one process whose command line contains all of s.
func processPID(t testing.TB, s ...string) int {
	t.Helper()
	var found []string
	for _, p := range processesMentioning(t, s[0]) {
		all := true
		for _, x := range s[1:] {
			all = all && strings.Contains(p, x)
		}
		if all {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one process matching %q, found %q", s, found)
	}
	pid, _ := strconv.Atoi(strings.SplitN(found[0], ":", 2)[0])
	return pid
}

func sendSignal(t testing.TB, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("signal %v to %d: %v", sig, pid, err)
	}
}

// metric reads a counter from a Prometheus endpoint (0 when absent).
func metric(t testing.TB, url, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(httpGet(t, url), "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return v
		}
	}
	return 0
}

// serving reports whether a pod answers HTTP on its IP (pods on the local
// edge nodes' bridges are reachable from the host).
func serving(ip string) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + ip + ":8080/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

const webManifest = `
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data:
  greeting: hello-from-configmap
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: IMAGE
        args: ["serve", "-addr", ":8080", "-ready-file", "/etc/web/ready"]
        env:
        - name: GREETING
          valueFrom: {configMapKeyRef: {name: web-config, key: greeting}}
        volumeMounts: [{name: config, mountPath: /etc/web}]
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
      volumes:
      - name: config
        configMap: {name: web-config}
---
apiVersion: v1
kind: Pod
metadata: {name: crasher, labels: {app: crasher}}
spec:
  nodeName: edge-2
  containers:
  - name: crasher
    image: IMAGE
    args: ["crash", "-after", "200ms"]
`

// The core user journey on two local edge nodes: pods of a locally built
// image run with their ConfigMap, readiness gates Ready, a crashing
// container backs off, logs and exec work, pods keep serving through a
// cloud outage and an agent crash, changes made while a node was away
// converge after reconnect, deletions reach the edge, and containers
// created behind Verge's back are removed.
func TestEdgeNodesRunPodsThroughOutages(t *testing.T) {
	c := startEdgeCluster(t, 2)
	out := c.up.Output()
	if !strings.Contains(out, "edge-1, edge-2 (Ready)") {
		t.Fatalf("verge up did not report both edge nodes Ready:\n%s", out)
	}
	// verge up prints ready once the nodes are; from their start that
	// includes containerd, joining and the first status.
	if took, ok := c.up.Between("starting 2 edge node(s)", "ready"); !ok || took > 30*time.Second {
		t.Errorf("the edge nodes took %v to be Ready (found: %v); want under 30 s", took, ok)
	} else {
		t.Logf("both edge nodes Ready %v after they started", took.Round(100*time.Millisecond))
	}
	for _, n := range []string{"edge-1", "edge-2"} {
		if got := c.kubectl(t, "get", "node", n, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.metadata.labels.node-role\.kubernetes\.io/edge}`); strings.TrimSpace(got) != "True" {
			t.Errorf("node %s: Ready/edge label = %q", n, got)
		}
	}
	registry, err := os.ReadFile(filepath.Join(c.dataDir, "registry"))
	if err != nil || strings.TrimSpace(string(registry)) != "127.0.0.1:"+c.ports["registry"] {
		t.Fatalf("DIR/registry = %q, %v", registry, err)
	}

	// A user's static binary becomes an image in the local registry.
	image := c.pushTestApp(t, "demo/app:v1")
	manifest := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(manifest, []byte(strings.ReplaceAll(webManifest, "IMAGE", image)), 0o644); err != nil {
		t.Fatal(err)
	}
	c.kubectl(t, "apply", "-f", manifest)

	// Running with IPs, but not Ready: the readiness file is not there yet.
	eventually(t, 2*time.Minute, "3 web pods Running with IPs on both nodes, not Ready", func() (bool, string) {
		rows := c.podTable(t, "app=web")
		nodes := map[string]bool{}
		ok := len(rows) == 3
		for _, r := range rows {
			ok = ok && len(r) == 7 && r[1] == "Running" && r[2] == "False" && r[4] != ""
			if len(r) == 7 {
				nodes[r[5]] = true
			}
		}
		return ok && len(nodes) == 2, fmt.Sprint(rows)
	})
	// The ConfigMap gains the readiness file: the mounted file appears and
	// the probe makes the pods Ready.
	c.kubectl(t, "patch", "configmap", "web-config", "--type=merge", "-p", `{"data":{"ready":"yes"}}`)
	eventually(t, time.Minute, "the web pods Ready once the ConfigMap file exists", func() (bool, string) {
		rows := c.podTable(t, "app=web")
		ok := len(rows) == 3
		for _, r := range rows {
			ok = ok && r[2] == "True"
		}
		return ok, fmt.Sprint(rows)
	})
	web := c.podTable(t, "app=web")

	// The crashing container backs off with a growing restart count.
	eventually(t, 2*time.Minute, "the crasher in CrashLoopBackOff with restarts", func() (bool, string) {
		got := c.kubectl(t, "get", "pod", "crasher", "-o", `jsonpath={.status.containerStatuses[0].state.waiting.reason} {.status.containerStatuses[0].restartCount}`)
		f := strings.Fields(got)
		if len(f) != 2 {
			return false, got
		}
		n, _ := strconv.Atoi(f[1])
		return f[0] == "CrashLoopBackOff" && n >= 2, got
	})

	// Logs and exec reach the edge through verge-cloud.
	if got := c.kubectl(t, "logs", "crasher", "--previous"); !strings.Contains(got, "crasher exiting with 1") {
		t.Errorf("kubectl logs --previous crasher = %q", got)
	}
	if got := c.kubectl(t, "exec", web[0][0], "--", "/app", "env"); !strings.Contains(got, "GREETING=hello-from-configmap") {
		t.Errorf("the ConfigMap value is not in the container's environment:\n%s", got)
	}
	if got := c.kubectl(t, "exec", web[0][0], "--", "/app", "cat", "/etc/web/greeting"); got != "hello-from-configmap" {
		t.Errorf("the ConfigMap file holds %q", got)
	}

	// The cloud goes down (verge-cloud and the API server frozen) for two
	// minutes; an agent is killed and comes back meanwhile.
	opsURL := "http://127.0.0.1:" + c.ports["ops"] + "/metrics"
	resyncBefore := metric(t, opsURL, `verge_hub_resync_objects_total{op="upsert"}`) + metric(t, opsURL, `verge_hub_resync_objects_total{op="delete"}`)
	versionsBefore := c.objectVersions(t)
	cloudPID := processPID(t, filepath.Join(c.dataDir, "cloud", "kubeconfig"))
	apiPID := processPID(t, "kube-apiserver", c.dataDir)
	sendSignal(t, cloudPID, syscall.SIGSTOP)
	sendSignal(t, apiPID, syscall.SIGSTOP)
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(apiPID, syscall.SIGCONT)
			_ = syscall.Kill(cloudPID, syscall.SIGCONT)
		}
	}
	defer thaw()
	outageEnd := time.Now().Add(2 * time.Minute)
	edge1 := processPID(t, "verge-edge", filepath.Join(c.dataDir, "edge", "edge-1"))
	sendSignal(t, edge1, syscall.SIGKILL)
	eventually(t, 30*time.Second, "verge-edge on edge-1 restarted", func() (bool, string) {
		p := processesMentioning(t, filepath.Join(c.dataDir, "edge", "edge-1", "edge.yaml"))
		return len(p) == 1 && !strings.HasPrefix(p[0], strconv.Itoa(edge1)+":"), fmt.Sprint(p)
	})
	for time.Now().Before(outageEnd) {
		for _, r := range web {
			if !serving(r[4]) {
				t.Fatalf("pod %s (%s) stopped serving during the outage", r[0], r[4])
			}
		}
		time.Sleep(5 * time.Second)
	}
	thaw()
	eventually(t, 2*time.Minute, "both nodes Ready after the outage", func() (bool, string) {
		out, err := c.kubectlErr("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
		return err == nil && strings.Count(out, "=True") == 2, out
	})
	eventually(t, time.Minute, "the web pods Ready again, untouched", func() (bool, string) {
		rows := c.podTable(t, "app=web")
		ok := len(rows) == 3
		for i, r := range rows {
			ok = ok && r[2] == "True" && r[6] == web[i][6] && r[3] == web[i][3]
		}
		return ok, fmt.Sprintf("before %v\nnow %v", web, rows)
	})
	// Only what changed in the cloud meanwhile crosses the link: typically
	// the pods the node lifecycle controller marked not ready when it saw
	// the nodes' leases expire (plus service-account tokens re-minted).
	resync := metric(t, opsURL, `verge_hub_resync_objects_total{op="upsert"}`) + metric(t, opsURL, `verge_hub_resync_objects_total{op="delete"}`) - resyncBefore
	versionsAfter := c.objectVersions(t)
	changed := 0
	for k, v := range versionsAfter {
		if versionsBefore[k] != v {
			changed++
		}
	}
	t.Logf("resync after the outage: %v objects sent; %d of the %d pods and ConfigMaps changed in the cloud meanwhile", resync, changed, len(versionsAfter))
	if resync > float64(changed+2) {
		t.Errorf("the reconnect resent %v objects, but only %d changed in the cloud", resync, changed)
	}

	// While edge-1 is cut off (its verge-edge frozen), the Deployment is
	// scaled and the ConfigMap edited; after reconnect it converges fast.
	edge1 = processPID(t, "verge-edge", filepath.Join(c.dataDir, "edge", "edge-1", "edge.yaml"))
	sendSignal(t, edge1, syscall.SIGSTOP)
	c.kubectl(t, "scale", "deployment", "web", "--replicas=1")
	c.kubectl(t, "patch", "configmap", "web-config", "--type=merge", "-p", `{"data":{"greeting":"edited-while-away"}}`)
	sendSignal(t, edge1, syscall.SIGCONT)
	eventually(t, 90*time.Second, "one web pod left and the edited file visible", func() (bool, string) {
		rows := c.podTable(t, "app=web")
		if len(rows) != 1 {
			return false, fmt.Sprint(rows)
		}
		got, err := c.kubectlErr("exec", rows[0][0], "--", "/app", "cat", "/etc/web/greeting")
		return err == nil && got == "edited-while-away", got
	})

	// A pod deleted in the cloud is gone at the edge.
	c.kubectl(t, "delete", "pod", "crasher", "--wait=false")
	eventually(t, time.Minute, "the crasher gone", func() (bool, string) {
		out, err := c.kubectlErr("get", "pod", "crasher")
		return err != nil && strings.Contains(out, "NotFound"), out
	})

	// A sandbox created behind Verge's back is removed by the next
	// reconcile.
	sock := filepath.Join(c.dataDir, "edge", "edge-2", "cri", "containerd.sock")
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	cri := runtimeapi.NewRuntimeServiceClient(conn)
	ctx := context.Background()
	ghost, err := cri.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "ghost", Namespace: "behind-the-back", Uid: "ghost-1"},
		LogDirectory: t.TempDir(),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "/verge-e2e-ghost"},
	}})
	if err != nil {
		t.Fatalf("creating a ghost sandbox: %v", err)
	}
	took := eventually(t, 20*time.Second, "the ghost sandbox removed (one reconcile period is 10 s)", func() (bool, string) {
		resp, err := cri.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{Id: ghost.PodSandboxId}})
		return err == nil && len(resp.Items) == 0, fmt.Sprint(resp, err)
	})
	t.Logf("ghost sandbox removed after %s", took.Round(time.Second))

	// Ctrl-C: nothing of the cluster or its pods is left running.
	c.up.interrupt(t)
	assertNothingRunning(t, c.dataDir)
	for _, r := range web {
		if serving(r[4]) {
			t.Errorf("pod %s still serves after verge up stopped", r[0])
		}
	}
}

var tokenRE = regexp.MustCompile(`verge1:[a-z0-9]{6}\.[a-z0-9]{16}:sha256:[0-9a-f]{64}`)

// Joining with a bad token fails with a clear message and writes nothing.
func TestJoinRefusalsWriteNothing(t *testing.T) {
	c := startEdgeCluster(t, 0)
	verge := filepath.Join(bin.dir, "verge")
	hub := "127.0.0.1:" + c.ports["hub"]
	out, err := exec.Command(verge, "token", "create", "--data-dir", c.dataDir, "--ttl", "1h").Output()
	if err != nil {
		t.Fatalf("verge token create: %v", err)
	}
	good := tokenRE.FindString(string(out))
	if good == "" {
		t.Fatalf("no token in %q", out)
	}
	wrongSecret := good[:14] + "zzzzzzzzzzzzzzzz" + good[30:]
	otherCA := good[:len(good)-64] + strings.Repeat("0", 64)
	out, err = exec.Command(verge, "token", "create", "--data-dir", c.dataDir, "--ttl", "1s").Output()
	if err != nil {
		t.Fatalf("verge token create --ttl 1s: %v", err)
	}
	expired := tokenRE.FindString(string(out))
	time.Sleep(2 * time.Second)
	for _, tc := range []struct{ name, token, want string }{
		{"wrong secret", wrongSecret, "wrong secret"},
		{"CA hash mismatch", otherCA, "does not match"},
		{"malformed", "not-a-token", "token"},
		{"expired", expired, "expired"},
	} {
		dir := filepath.Join(t.TempDir(), "node")
		out, err := exec.Command(verge, "join", "--cloud", hub, "--token", tc.token, "--node-name", "edge-x", "--data-dir", dir, "--edge-binary", "/bin/true").CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: err=%v, output %q, want it to say %q", tc.name, err, out, tc.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Errorf("%s: a failed join wrote %d entries into %s", tc.name, len(entries), dir)
		}
	}
	// The good token works once; reused, it is refused.
	dir := filepath.Join(t.TempDir(), "node")
	if out, err := exec.Command(verge, "join", "--cloud", hub, "--token", good, "--node-name", "edge-x", "--data-dir", dir, "--edge-binary", "/bin/true").CombinedOutput(); err != nil {
		t.Fatalf("join with a good token: %v\n%s", err, out)
	}
	dir2 := filepath.Join(t.TempDir(), "node")
	out2, err := exec.Command(verge, "join", "--cloud", hub, "--token", good, "--node-name", "edge-y", "--data-dir", dir2, "--edge-binary", "/bin/true").CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "already used") {
		t.Errorf("reusing a token: err=%v output %q", err, out2)
	}
	if entries, _ := os.ReadDir(dir2); len(entries) > 0 {
		t.Errorf("a refused join wrote into %s", dir2)
	}
}
