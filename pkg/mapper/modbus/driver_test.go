package modbus

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/devsim"
	"github.com/verge-edge/verge/pkg/mapper"
	"github.com/verge-edge/verge/pkg/mapper/value"
)

// These tests run the driver against the real simulator (the Modbus TCP
// stack on a loopback socket).

func startSim(t *testing.T) (*devsim.Modbus, string) {
	t.Helper()
	addr, err := devsim.FreeLoopbackAddress()
	if err != nil {
		t.Fatal(err)
	}
	sim, err := devsim.NewModbus(devsim.ModbusConfig{Address: addr, UnitID: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Stop() })
	return sim, addr
}

func prop(name string, typ value.Type, access mapper.AccessMode, visitor map[string]any) mapper.PropertyConfig {
	return mapper.PropertyConfig{Name: name, Type: typ, AccessMode: access, Visitor: visitor}
}

func thermoDevice(addr string) *mapper.DeviceConfig {
	host, port, _ := strings.Cut(addr, ":")
	return &mapper.DeviceConfig{
		Namespace: "default", Name: "thermo", Protocol: "modbus",
		ProtocolConfig: mapper.ConfigData{"ip": host, "port": port, "slaveID": int64(3)},
		Properties: []mapper.PropertyConfig{
			prop("temperature", value.Float, mapper.ReadOnly, map[string]any{"register": "InputRegister", "offset": 0, "scale": 0.1, "rawType": "int"}),
			prop("temperatureF32", value.Double, mapper.ReadOnly, map[string]any{"register": "InputRegister", "offset": 2, "limit": 2, "rawType": "float"}),
			prop("setpoint", value.Float, mapper.ReadWrite, map[string]any{"register": "HoldingRegister", "offset": 1, "scale": 0.1}),
			prop("power", value.Boolean, mapper.ReadWrite, map[string]any{"register": "CoilRegister", "offset": 0}),
			prop("heating", value.Boolean, mapper.ReadOnly, map[string]any{"register": "DiscreteInputRegister", "offset": 0}),
			prop("scratch32", value.Int, mapper.ReadWrite, map[string]any{"register": "HoldingRegister", "offset": 1000, "limit": 2, "isRegisterSwap": true}),
		},
	}
}

func TestReadsAndWrites(t *testing.T) {
	sim, addr := startSim(t)
	d := New(Options{})
	dev := thermoDevice(addr)
	conn, err := d.Connect(context.Background(), dev)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx := context.Background()
	read := func(name string) any {
		t.Helper()
		v, err := conn.Read(ctx, dev.Property(name))
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		return v
	}
	temp := read("temperature").(float64)
	if temp < 14.9 || temp > 25.1 {
		t.Errorf("temperature %v outside the simulated 15..25 °C", temp)
	}
	if f := read("temperatureF32").(float64); math.Abs(f-temp) > 0.2 {
		t.Errorf("float temperature %v vs scaled %v", f, temp)
	}
	if err := conn.Write(ctx, dev.Property("setpoint"), 23.5); err != nil {
		t.Fatal(err)
	}
	if sim.Setpoint() != 23.5 || read("setpoint").(float64) != 23.5 {
		t.Errorf("setpoint on the device %v, read back %v", sim.Setpoint(), read("setpoint"))
	}
	if err := conn.Write(ctx, dev.Property("power"), true); err != nil {
		t.Fatal(err)
	}
	if !sim.Power() || read("power") != true {
		t.Error("power coil not set")
	}
	_ = read("heating")
	if err := conn.Write(ctx, dev.Property("scratch32"), int64(70000)); err != nil {
		t.Fatal(err)
	}
	// Register swap: the low word is at the lower address.
	if lo, hi := sim.Holding(1000), sim.Holding(1001); lo != 70000&0xFFFF || hi != 1 {
		t.Errorf("scratch registers %d,%d, want low word first", lo, hi)
	}
	if v := read("scratch32"); v != uint64(70000) {
		t.Errorf("scratch32 read back %v", v)
	}
	if err := conn.Write(ctx, dev.Property("heating"), true); !errors.Is(err, mapper.ErrNotWritable) {
		t.Errorf("writing a discrete input: %v, want ErrNotWritable", err)
	}
	if err := conn.Write(ctx, dev.Property("setpoint"), 150.0); !errors.Is(err, mapper.ErrValueOutOfRange) {
		t.Errorf("setpoint the device refuses: %v, want ErrValueOutOfRange", err)
	}
	if sim.Setpoint() != 23.5 {
		t.Errorf("a refused write changed the device: %v", sim.Setpoint())
	}
	if err := conn.Health(ctx); err != nil {
		t.Errorf("health: %v", err)
	}
	if n := sim.Connections(); n != 1 {
		t.Errorf("%d connections for one device, want 1", n)
	}
}

func TestBadRegisterIsAConfigError(t *testing.T) {
	_, addr := startSim(t)
	d := New(Options{})
	dev := thermoDevice(addr)
	dev.Properties = append(dev.Properties, prop("ghost", value.Int, mapper.ReadOnly, map[string]any{"register": "HoldingRegister", "offset": 5000}))
	conn, err := d.Connect(context.Background(), dev)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_, err = conn.Read(context.Background(), dev.Property("ghost"))
	if !mapper.IsConfigError(err) || !strings.Contains(err.Error(), "property ghost: HoldingRegister 5000+1: the device has no such address") {
		t.Errorf("reading an unmapped register: %v", err)
	}
	// The transport is fine: other properties still read.
	if _, err := conn.Read(context.Background(), dev.Property("temperature")); err != nil {
		t.Errorf("after an exception: %v", err)
	}
	dev.Properties[0].Visitor = map[string]any{"register": "Flux"}
	if _, err := d.Connect(context.Background(), dev); !mapper.IsConfigError(err) || !strings.Contains(err.Error(), `property temperature: register "Flux"`) {
		t.Errorf("Connect with a bad register: %v", err)
	}
}

func TestReconnectsAfterTheDeviceRestarts(t *testing.T) {
	sim, addr := startSim(t)
	d := New(Options{})
	dev := thermoDevice(addr)
	conn, err := d.Connect(context.Background(), dev)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx := context.Background()
	p := dev.Property("setpoint")
	if _, err := conn.Read(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := sim.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(ctx, p); err == nil {
		t.Fatal("read succeeded with the device down")
	}
	if err := conn.Health(ctx); err == nil {
		t.Error("healthy with the device down")
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := conn.Read(ctx, p)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect after the device came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := sim.Connections(); n != 2 {
		t.Errorf("connections = %d, want 2 (one reconnect)", n)
	}
}

func TestDevicesOnOneEndpointShareAConnection(t *testing.T) {
	sim, addr := startSim(t)
	d := New(Options{})
	a, b := thermoDevice(addr), thermoDevice(addr)
	b.Name = "thermo-2"
	ca, err := d.Connect(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := d.Connect(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []mapper.Conn{ca, cb} {
		if _, err := c.Read(context.Background(), &a.Properties[0]); err != nil {
			t.Fatal(err)
		}
	}
	// Replacing a device's Conn (new before old is closed) keeps the link.
	ca2, err := d.Connect(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	_ = ca.Close()
	_ = ca.Close() // idempotent
	if _, err := ca2.Read(context.Background(), &a.Properties[0]); err != nil {
		t.Fatal(err)
	}
	if n := sim.Connections(); n != 1 {
		t.Errorf("connections = %d, want 1 shared", n)
	}
	_ = cb.Close()
	_ = ca2.Close()
	d.mu.Lock()
	left := len(d.links)
	d.mu.Unlock()
	if left != 0 {
		t.Errorf("%d links left open after every device closed", left)
	}
}
