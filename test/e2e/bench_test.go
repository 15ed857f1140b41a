package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkEdgeNode measures a real edge node of `verge up`: pod start
// latency (create → Running, scheduler and all, image already on the
// node) and verge-edge's resident memory idle with 10 pods.
//
//	go test -run '^$' -bench EdgeNode -benchtime 1x ./test/e2e/
func BenchmarkEdgeNode(b *testing.B) {
	c := startEdgeCluster(b, 1)
	image := c.pushTestApp(b, "bench/app:v1")

	// Warm the image on the node: the first pull is not what is measured.
	c.kubectl(b, "run", "warm", "--image="+image, "--restart=Never", "--", "sleep")
	c.waitPhase(b, "warm", "Running", 2*time.Minute)
	c.kubectl(b, "delete", "pod", "warm", "--wait=false")

	var starts []time.Duration
	for i := range 20 {
		name := fmt.Sprintf("p%02d", i)
		t0 := time.Now()
		c.kubectl(b, "run", name, "--image="+image, "--restart=Never", "--", "sleep")
		c.waitPhase(b, name, "Running", time.Minute)
		starts = append(starts, time.Since(t0))
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	b.ReportMetric(float64(starts[len(starts)/2].Milliseconds()), "start-p50-ms")
	b.ReportMetric(float64(starts[len(starts)*99/100].Milliseconds()), "start-p99-ms")

	// Keep 10 pods, let the node settle, then read verge-edge's memory.
	for i := 10; i < 20; i++ {
		c.kubectl(b, "delete", "pod", fmt.Sprintf("p%02d", i), "--wait=true")
	}
	pid := 0
	for _, p := range processesMentioning(b, filepath.Join(c.dataDir, "edge", "edge-1", "edge.yaml")) {
		if strings.Contains(p, "verge-edge") {
			pid, _ = strconv.Atoi(strings.SplitN(p, ":", 2)[0])
		}
	}
	cpu0, t0 := cpuTime(b, pid), time.Now()
	time.Sleep(60 * time.Second)
	b.ReportMetric(100*(cpuTime(b, pid)-cpu0).Seconds()/time.Since(t0).Seconds(), "idle-cpu-%")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 3 && (f[0] == "VmRSS:" || f[0] == "RssAnon:" || f[0] == "RssFile:") {
			kb, _ := strconv.ParseFloat(f[1], 64)
			b.ReportMetric(kb/1024, strings.ToLower(strings.TrimSuffix(f[0], ":"))+"-MiB")
		}
	}
	c.up.interrupt(b)
}

// cpuTime is the CPU time (user and system) process pid has used.
func cpuTime(b testing.TB, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th of them, in
	// clock ticks (100 per second on Linux).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// waitPhase polls the pod's phase closely (the benchmark times it).
func (c *edgeCluster) waitPhase(b testing.TB, pod, phase string, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if out, err := c.kubectlErr("get", "pod", pod, "-o", "jsonpath={.status.phase}"); err == nil && out == phase {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("pod %s not %s within %s", pod, phase, timeout)
}
