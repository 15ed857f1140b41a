package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/devsim"
	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/dmitest"
)

// BenchmarkMapper1000Properties runs the mapper binary with one device of
// 1,000 properties sampled every second against the simulator binary, and
// reports the mapper process's CPU and resident memory and the latency from
// a sample's timestamp to its arrival at the edge (the cloud-twin sink).
//
//	go test -run '^$' -bench Mapper1000 -benchtime 1x ./cmd/verge-mapper-modbus/
func BenchmarkMapper1000Properties(b *testing.B) {
	const props, warmup, measure = 1000, 5 * time.Second, 20 * time.Second
	dir := dmitest.ShortDir(b)
	build(b, dir)
	simAddr, _ := devsim.FreeLoopbackAddress()
	restAddr, _ := devsim.FreeLoopbackAddress()
	startProcess(b, filepath.Join(dir, "sim.log"), filepath.Join(dir, "verge-devsim"), "modbus", "--address", simAddr)

	host, port, _ := strings.Cut(simAddr, ":")
	model := &dmi.DeviceModel{Name: "bulk", Namespace: "default", Spec: &dmi.DeviceModelSpec{}}
	dev := &dmi.Device{Name: "bulk", Namespace: "default", Spec: &dmi.DeviceSpec{
		DeviceModelReference: "bulk",
		Protocol:             &dmi.ProtocolConfig{ProtocolName: "modbus", ConfigData: dmitest.Config(b, map[string]any{"ip": host, "port": port})},
	}}
	for i := 0; i < props; i++ {
		name := fmt.Sprintf("p%04d", i)
		model.Spec.Properties = append(model.Spec.Properties, &dmi.ModelProperty{Name: name, Type: "INT", AccessMode: "ReadOnly"})
		dev.Spec.Properties = append(dev.Spec.Properties, &dmi.DeviceProperty{
			Name: name, CollectCycle: 1000, ReportToCloud: true,
			Visitors: &dmi.VisitorConfig{ProtocolName: "modbus", ConfigData: dmitest.Config(b, map[string]any{
				"register": "InputRegister", "offset": devsim.BulkStart + i, "limit": 1,
			})},
		})
	}
	edge := dmitest.NewEdge([]*dmi.DeviceModel{model}, []*dmi.Device{dev})
	edge.Serve(b, filepath.Join(dir, "dmi.sock"))
	mp := startProcess(b, filepath.Join(dir, "mapper.log"), filepath.Join(dir, "verge-mapper-modbus"),
		"--edge-socket", filepath.Join(dir, "dmi.sock"), "--socket", filepath.Join(dir, "modbus.sock"), "--rest-address", restAddr)

	dmitest.Eventually(b, "registration", func() bool { return len(edge.Registrations()) == 1 })
	time.Sleep(warmup)
	b.ResetTimer()
	cpu0, wall0 := procCPU(b, mp.Process.Pid), time.Now()
	reports0 := len(edge.Reports())
	time.Sleep(measure)
	cpu1, wall1 := procCPU(b, mp.Process.Pid), time.Now()
	b.StopTimer()
	reports := edge.Reports()[reports0:]

	var lat []time.Duration
	for _, r := range reports {
		for _, tw := range r.GetReportedDevice().GetTwins() {
			ms, err := strconv.ParseInt(tw.GetReported().GetMetadata()["timestamp"], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, edge.ReceivedAt(r).Sub(time.UnixMilli(ms)))
		}
	}
	if len(lat) == 0 {
		b.Fatal("no samples reached the edge")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(100*(cpu1-cpu0).Seconds()/wall1.Sub(wall0).Seconds(), "cpu%")
	b.ReportMetric(float64(procRSS(b, mp.Process.Pid))/(1<<20), "rss-MiB")
	b.ReportMetric(float64(len(lat))/measure.Seconds(), "samples/s")
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(float64(len(reports))/measure.Seconds(), "dmi-reports/s")
}

// procCPU is the process's user+system CPU time from /proc.
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 (1-based), in clock ticks (100 Hz on Linux).
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// procRSS is the process's resident set size in bytes.
func procRSS(b *testing.B, pid int) int64 {
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
	b.Fatal("no VmRSS")
	return 0
}
