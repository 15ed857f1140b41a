package devices_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
	"github.com/verge-edge/verge/internal/cloudtest"
	"github.com/verge-edge/verge/internal/devsim"
	"github.com/verge-edge/verge/internal/testenv"
)

// BenchmarkDevices1000Properties runs the whole device path: the
// verge-devsim and verge-mapper-modbus binaries (one device of 1,000 INT
// properties on input registers that change every second, collectCycle
// 1 s), an edge (hub client and device twin, in this process), verge-cloud's
// hub and device controller (in this process) and the real API server. It
// reports the mapper's CPU and memory, this process's CPU (edge and cloud
// parts together), the API server's CPU, DeviceStatus writes per second,
// readings per second, and the latency from a reading's timestamp (taken
// by the mapper) to the DeviceStatus update that carries it, seen by a
// watch.
//
//	go test -run '^$' -bench Devices1000 -benchtime 1x ./internal/cloud/devices/
func BenchmarkDevices1000Properties(b *testing.B) {
	const props, warmup, measure = 1000, 15 * time.Second, 30 * time.Second
	c := cloudtest.Start(b, cloudtest.Options{})
	dyn, err := dynamic.NewForConfig(testenv.Start(b).RESTConfig())
	if err != nil {
		b.Fatal(err)
	}
	ns := c.Namespace
	e := startEdge(b, c)

	dir := filepath.Dir(e.socket)
	bins := b.TempDir()
	build := exec.Command("go", "build", "-o", bins+"/", "../../../cmd/verge-devsim", "../../../cmd/verge-mapper-modbus")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building: %v\n%s", err, out)
	}
	simAddr, _ := devsim.FreeLoopbackAddress()
	restAddr, _ := devsim.FreeLoopbackAddress()
	run(b, filepath.Join(bins, "verge-devsim"), "modbus", "--address", simAddr)
	mapperPID := run(b, filepath.Join(bins, "verge-mapper-modbus"), "--name", "modbus", "--edge-socket", e.socket,
		"--socket", filepath.Join(dir, "mappers", "modbus.sock"), "--rest-address", restAddr, "--log-level", "warn")

	host, port, _ := strings.Cut(simAddr, ":")
	var mprops, dprops []string
	for i := 0; i < props; i++ {
		mprops = append(mprops, fmt.Sprintf(`{"name":"p%04d","type":"INT","accessMode":"ReadOnly"}`, i))
		dprops = append(dprops, fmt.Sprintf(`{"name":"p%04d","collectCycle":1000,"reportToCloud":true,"visitors":{"protocolName":"modbus","configData":{"register":"InputRegister","offset":%d,"limit":1}}}`, i, devsim.BulkStart+i))
	}
	apply(b, dyn, ns, "devicemodels", `{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceModel","metadata":{"name":"bulk"},"spec":{"protocol":"modbus","properties":[`+strings.Join(mprops, ",")+`]}}`)
	apply(b, dyn, ns, "devices", fmt.Sprintf(`{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","metadata":{"name":"bulk"},"spec":{"deviceModelRef":{"name":"bulk"},"nodeName":%q,"protocol":{"protocolName":"modbus","configData":{"ip":%q,"port":%s}},"properties":[%s]}}`,
		e.name, host, port, strings.Join(dprops, ",")))

	var ds devicesv1beta1.DeviceStatus
	waitFor(b, 2*time.Minute, "1,000 twins in the DeviceStatus", func() (bool, string) {
		err := get(b, dyn, ns, "devicestatuses", "bulk", &ds)
		return err == nil && len(ds.Status.Twins) == props, fmt.Sprintf("%v, %d twins", err, len(ds.Status.Twins))
	})
	time.Sleep(warmup)

	// Watch the DeviceStatus: each update's new readings give a latency.
	var mu sync.Mutex
	var lat []time.Duration
	updates := 0
	ctx, cancel := context.WithCancel(context.Background())
	w, err := dyn.Resource(gvr("devicestatuses")).Namespace(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=bulk"})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := map[string]string{}
		for ev := range w.ResultChan() {
			if ev.Type != watch.Modified {
				continue
			}
			at := time.Now()
			u := ev.Object.(*unstructured.Unstructured)
			raw, _ := json.Marshal(u.Object)
			var st devicesv1beta1.DeviceStatus
			_ = json.Unmarshal(raw, &st)
			mu.Lock()
			updates++
			for _, tw := range st.Status.Twins {
				ts := tw.Reported.Metadata["timestamp"]
				if last[tw.PropertyName] == ts {
					continue
				}
				last[tw.PropertyName] = ts
				ms, err := strconv.ParseInt(ts, 10, 64)
				if err == nil {
					lat = append(lat, at.Sub(time.UnixMilli(ms)))
				}
			}
			mu.Unlock()
		}
	}()
	apiPID := apiserverPID(b)
	writes0 := c.Metric(b, "verge_devices_api_writes_total", "devicestatuses/status", "ok")
	coalesced0 := c.Metric(b, "verge_devices_reports_total", "coalesced")
	mCPU0, selfCPU0, apiCPU0, wall0 := cpuOf(b, mapperPID), cpuOf(b, os.Getpid()), cpuOf(b, apiPID), time.Now()
	mu.Lock()
	lat, updates = nil, 0
	mu.Unlock()
	b.ResetTimer()
	time.Sleep(measure)
	b.StopTimer()
	mCPU1, selfCPU1, apiCPU1, wall1 := cpuOf(b, mapperPID), cpuOf(b, os.Getpid()), cpuOf(b, apiPID), time.Now()
	writes := c.Metric(b, "verge_devices_api_writes_total", "devicestatuses/status", "ok") - writes0
	coalesced := c.Metric(b, "verge_devices_reports_total", "coalesced") - coalesced0
	cancel()
	w.Stop()
	<-done

	secs := wall1.Sub(wall0).Seconds()
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		b.Fatal("no readings reached the DeviceStatus")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(100*(mCPU1-mCPU0).Seconds()/secs, "mapper-cpu%")
	b.ReportMetric(float64(rss(b, mapperPID))/(1<<20), "mapper-rss-MiB")
	b.ReportMetric(100*(selfCPU1-selfCPU0).Seconds()/secs, "edge+cloud-cpu%")
	b.ReportMetric(float64(rss(b, os.Getpid()))/(1<<20), "edge+cloud-rss-MiB")
	b.ReportMetric(100*(apiCPU1-apiCPU0).Seconds()/secs, "apiserver-cpu%")
	b.ReportMetric(writes/secs, "devicestatus-writes/s")
	b.ReportMetric(coalesced/secs, "coalesced-reports/s")
	b.ReportMetric(float64(len(lat))/secs, "readings/s")
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
}

// run starts a binary until the benchmark ends and returns its PID.
func run(b *testing.B, path string, args ...string) int {
	b.Helper()
	log, err := os.Create(filepath.Join(b.TempDir(), filepath.Base(path)+".log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = log.Close() })
	return cmd.Process.Pid
}

// apiserverPID finds the test cluster's kube-apiserver by its port.
func apiserverPID(b *testing.B) int {
	b.Helper()
	_, port, _ := strings.Cut(strings.TrimPrefix(testenv.Start(b).APIServerURL(), "https://"), ":")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		line := string(cmdline)
		if strings.Contains(line, "kube-apiserver") && strings.Contains(line, "--secure-port="+port) {
			return pid
		}
	}
	b.Fatal("kube-apiserver not found")
	return 0
}

// cpuOf is a process's user+system CPU time from /proc.
func cpuOf(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// rss is a process's resident set size in bytes.
func rss(b *testing.B, pid int) int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
