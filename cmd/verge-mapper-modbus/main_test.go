package main

import (
	"context"
	"io"
	"log"
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

	"github.com/simonvetter/modbus"

	"github.com/verge-edge/verge/internal/devsim"
	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/dmitest"
)

// The mapper binary against the real simulator binary, with a stand-in for
// the edge's DMI server.

func build(t testing.TB, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dir, "./cmd/verge-mapper-modbus", "./cmd/verge-devsim")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

func startProcess(t testing.TB, logPath, bin string, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		_ = logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s ---\n%s", filepath.Base(logPath), b)
		}
	})
	return cmd
}

func model() *dmi.DeviceModel {
	return &dmi.DeviceModel{Name: "thermostat", Namespace: "default", Spec: &dmi.DeviceModelSpec{Properties: []*dmi.ModelProperty{
		{Name: "temperature", Type: "FLOAT", AccessMode: "ReadOnly", Unit: "Celsius"},
		{Name: "setpoint", Type: "FLOAT", AccessMode: "ReadWrite", Minimum: "5", Maximum: "35"},
		{Name: "power", Type: "BOOLEAN", AccessMode: "ReadWrite"},
	}}}
}

func device(t *testing.T, name, addr, desired string, tempOffset int) *dmi.Device {
	host, port, _ := strings.Cut(addr, ":")
	v := func(m map[string]any) *dmi.VisitorConfig {
		return &dmi.VisitorConfig{ProtocolName: "modbus", ConfigData: dmitest.Config(t, m)}
	}
	return &dmi.Device{Name: name, Namespace: "default", Spec: &dmi.DeviceSpec{
		DeviceModelReference: "thermostat",
		Protocol:             &dmi.ProtocolConfig{ProtocolName: "modbus", ConfigData: dmitest.Config(t, map[string]any{"ip": host, "port": port, "slaveID": 1})},
		Properties: []*dmi.DeviceProperty{
			{Name: "temperature", CollectCycle: 500, ReportToCloud: true, Visitors: v(map[string]any{"register": "InputRegister", "offset": tempOffset, "limit": 1, "scale": 0.1, "rawType": "int"})},
			{Name: "setpoint", CollectCycle: 500, ReportToCloud: true, Desired: &dmi.TwinProperty{Value: desired}, Visitors: v(map[string]any{"register": "HoldingRegister", "offset": 1, "limit": 1, "scale": 0.1})},
			{Name: "power", CollectCycle: 500, ReportToCloud: true, Visitors: v(map[string]any{"register": "CoilRegister", "offset": 0, "limit": 1})},
		},
		Methods: []*dmi.DeviceMethod{{Name: "Heat", PropertyNames: []string{"setpoint", "power"}}, {Name: "Calibrate", PropertyNames: []string{"temperature"}}},
	}}
}

func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`)
	b, _ := io.ReadAll(resp.Body)
	m := re.FindSubmatch(b)
	if m == nil {
		t.Fatalf("metric %s not served", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMapperBinaryAgainstSimulator(t *testing.T) {
	dir := dmitest.ShortDir(t)
	build(t, dir)
	simAddr, err := devsim.FreeLoopbackAddress()
	if err != nil {
		t.Fatal(err)
	}
	restAddr, err := devsim.FreeLoopbackAddress()
	if err != nil {
		t.Fatal(err)
	}
	sim := startProcess(t, filepath.Join(dir, "sim1.log"), filepath.Join(dir, "verge-devsim"), "modbus", "--address", simAddr)
	probe := modbusClient(t, simAddr)

	edge := dmitest.NewEdge([]*dmi.DeviceModel{model()}, []*dmi.Device{
		device(t, "thermostat-1", simAddr, "21.5", 0),
		device(t, "broken", simAddr, "", 5000), // no input register 5000
	})
	edge.Serve(t, filepath.Join(dir, "dmi.sock"))
	mapperSock := filepath.Join(dir, "modbus.sock")
	mp := startProcess(t, filepath.Join(dir, "mapper.log"), filepath.Join(dir, "verge-mapper-modbus"),
		"--name", "modbus-test", "--edge-socket", filepath.Join(dir, "dmi.sock"), "--socket", mapperSock,
		"--rest-address", restAddr, "--log-level", "debug")
	base := "http://" + restAddr

	dmitest.Eventually(t, "registration", func() bool { return len(edge.Registrations()) == 1 })
	if info := edge.Registrations()[0]; info.GetName() != "modbus-test" || info.GetProtocol() != "modbus" || string(info.GetAddress()) != mapperSock {
		t.Errorf("registered as %v", info)
	}
	dmitest.Eventually(t, "temperature in the twin", func() bool {
		v, err := strconv.ParseFloat(edge.Twin("default", "thermostat-1", "temperature").GetReported().GetValue(), 64)
		return err == nil && v >= 15 && v <= 25
	})
	// The initial desired value reached the register (×10).
	dmitest.Eventually(t, "initial desired setpoint on the device", func() bool { return readHolding(t, probe, devsim.HoldingSetpoint) == 215 })
	dmitest.Eventually(t, "state ok", func() bool { s, _ := edge.State("default", "thermostat-1"); return s == "ok" })
	state, reason := "", ""
	dmitest.Eventually(t, "broken device unhealthy", func() bool { state, reason = edge.State("default", "broken"); return state == "unhealthy" })
	if !strings.Contains(reason, "property temperature: InputRegister 5000+1: the device has no such address") {
		t.Errorf("unhealthy reason %q", reason)
	}
	connects := metric(t, base, "verge_mapper_modbus_connects_total")
	if connects != 1 {
		t.Errorf("connects_total = %v before the write, want 1 (one shared connection)", connects)
	}

	// A new desired value: on the device within 2 s, no reconnect.
	client := dmitest.Mapper(t, mapperSock)
	start := time.Now()
	if _, err := client.UpdateDevice(context.Background(), &dmi.UpdateDeviceRequest{Device: device(t, "thermostat-1", simAddr, "24", 0)}); err != nil {
		t.Fatal(err)
	}
	for readHolding(t, probe, devsim.HoldingSetpoint) != 240 {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("setpoint register still %d 2 s after the desired change", readHolding(t, probe, devsim.HoldingSetpoint))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("desired value on the device after %v", time.Since(start).Round(time.Millisecond))
	dmitest.Eventually(t, "observedDesired echoed", func() bool {
		tw := edge.Twin("default", "thermostat-1", "setpoint")
		return tw.GetObservedDesired().GetValue() == "24" && tw.GetReported().GetValue() == "24"
	})
	if c := metric(t, base, "verge_mapper_modbus_connects_total"); c != connects {
		t.Errorf("the desired write reconnected: connects_total %v → %v", connects, c)
	}

	// REST: writes through methods, refused ones leave the device alone.
	meth := base + "/api/v1/devicemethod/default/thermostat-1"
	if code, body := post(t, meth+"/Heat/power", `{"value": "on"}`); code != 200 {
		t.Errorf("power on: %d %s", code, body)
	}
	if on, err := probe.ReadCoil(devsim.CoilPower); err != nil || !on {
		t.Errorf("power coil = %v, %v", on, err)
	}
	if code, body := post(t, meth+"/Heat/setpoint", `{"value": "99"}`); code != 400 || !strings.Contains(body, "above the maximum 35") {
		t.Errorf("out-of-range setpoint: %d %s", code, body)
	}
	if code, body := post(t, meth+"/Calibrate/temperature", `{"value": "1"}`); code != 403 || !strings.Contains(body, "ReadOnly") {
		t.Errorf("read-only write: %d %s", code, body)
	}
	if v := readHolding(t, probe, devsim.HoldingSetpoint); v != 240 {
		t.Errorf("refused writes changed the setpoint register to %d", v)
	}

	// The device reboots: the mapper reconnects once and readings resume.
	_ = sim.Process.Signal(syscall.SIGTERM)
	_ = sim.Wait()
	reports := len(edge.Reports())
	startProcess(t, filepath.Join(dir, "sim2.log"), filepath.Join(dir, "verge-devsim"), "modbus", "--address", simAddr)
	dmitest.Eventually(t, "reconnect", func() bool { return metric(t, base, "verge_mapper_modbus_connects_total") == connects+1 })
	dmitest.Eventually(t, "readings after the restart", func() bool { return len(edge.Reports()) > reports+2 })

	// SIGTERM stops the mapper cleanly.
	_ = mp.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- mp.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("mapper exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("mapper did not stop within 15 s of SIGTERM")
	}
	if _, err := os.Stat(mapperSock); !os.IsNotExist(err) {
		t.Errorf("mapper socket left behind: %v", err)
	}
}

func modbusClient(t *testing.T, addr string) *modbus.ModbusClient {
	t.Helper()
	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + addr, Timeout: time.Second, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	dmitest.Eventually(t, "simulator listening", func() bool { return c.Open() == nil })
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readHolding(t *testing.T, c *modbus.ModbusClient, addr uint16) uint16 {
	t.Helper()
	v, err := c.ReadRegister(addr, modbus.HOLDING_REGISTER)
	if err != nil {
		// The probe's own connection may have been cut by a restart.
		_ = c.Close()
		_ = c.Open()
		if v, err = c.ReadRegister(addr, modbus.HOLDING_REGISTER); err != nil {
			t.Fatalf("probe read %d: %v", addr, err)
		}
	}
	return v
}
