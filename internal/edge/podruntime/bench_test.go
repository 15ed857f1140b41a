package podruntime_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/edge/podruntime"
	"github.com/verge-edge/verge/internal/protocol/kube"
)

// BenchmarkIdleTenPodsRSS measures the resident memory of a process that
// runs only the pod runtime (testdata/idlenode) with 10 running pods, each
// with a readiness probe, after it has been idle for a while. Run it with
//
//	go test -run '^$' -bench IdleTenPodsRSS -benchtime 1x ./internal/edge/podruntime/
func BenchmarkIdleTenPodsRSS(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "idlenode")
	_, self, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testdata/idlenode")
	build.Dir = filepath.Dir(self)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building idlenode: %v\n%s", err, out)
	}
	e := newEnv(b, "idle")
	var pods []*kube.Pod
	for i := range 10 {
		n := &node{name: "edge-idle"}
		p := n.pod(fmt.Sprintf("idle-%d", i), kube.Container{Name: "web", Image: e.images.App, Args: []string{"serve", "-addr", ":8080"},
			ReadinessProbe: &kube.Probe{ProbeHandler: kube.ProbeHandler{HTTPGet: &kube.HTTPGetAction{Path: "/healthz", Port: kube.FromInt32(8080)}}, PeriodSeconds: 10}})
		pods = append(pods, p)
	}
	data, _ := json.Marshal(pods)
	podsFile := filepath.Join(dir, "pods.json")
	if err := os.WriteFile(podsFile, data, 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-pods", podsFile, "-endpoint", e.node.Endpoint(), "-root", filepath.Join(dir, "root"),
		"-logs", filepath.Join(dir, "logs"), "-cgroup", e.node.Instance.CgroupParent())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	ready := map[string]bool{}
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(3 * time.Minute)
	for len(ready) < 10 && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "status" && f[2] == "Running" && f[3] == "true" {
			ready[f[1]] = true
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d pods ready", len(ready))
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	b.ResetTimer()
	time.Sleep(30 * time.Second) // idle: probes, relists and reconciles only
	// RSS counts the binary's pages too (file-backed, shared, reclaimable);
	// RssAnon is the memory the process itself allocated.
	b.ReportMetric(float64(procStatus(b, cmd.Process.Pid, "VmRSS"))/(1<<20), "RSS-MiB")
	b.ReportMetric(float64(procStatus(b, cmd.Process.Pid, "RssAnon"))/(1<<20), "anon-MiB")
	b.ReportMetric(0, "ns/op")
}

// procStatus reads a "kB" field of /proc/PID/status, in bytes.
func procStatus(b *testing.B, pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// BenchmarkPodStartLatency measures, for pods created one after another on
// a node that already has the image, the time from the pod appearing in
// the Source (plus Trigger) to the runtime reporting it Running with all
// containers started. Run it with
//
//	go test -run '^$' -bench PodStartLatency -benchtime 20x ./internal/edge/podruntime/
func BenchmarkPodStartLatency(b *testing.B) {
	e := newEnv(b, "lat")
	cfg := podruntime.Config{
		NodeName: "edge-lat", NodeIP: "127.0.0.1", CRIEndpoint: e.node.Endpoint(),
		RootDir: filepath.Join(b.TempDir(), "root"), PodLogDir: filepath.Join(b.TempDir(), "logs"),
		CgroupParent: e.node.Instance.CgroupParent(),
	}
	n := startRuntime(b, cfg, newSource(), newSink())
	// Warm up: the first pod pulls the image.
	warm := n.pod("warm", kube.Container{Name: "c", Image: e.images.App, Args: []string{"sleep"}})
	n.add(warm)
	waitStatus(b, n.sink, warm.UID, 2*time.Minute, "warm-up pod Running", running)
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		p := n.pod(fmt.Sprintf("p%d", i), kube.Container{Name: "c", Image: e.images.App, Args: []string{"sleep"}})
		start := time.Now()
		n.add(p)
		waitStatus(b, n.sink, p.UID, time.Minute, "Running", running)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	b.ReportMetric(float64(pct(0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pct(0.99).Milliseconds()), "p99-ms")
}
