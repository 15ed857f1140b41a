package devsim

import (
	"errors"
	"io"
	"log"
	"math"
	"testing"
	"time"

	"github.com/simonvetter/modbus"
	clocktesting "k8s.io/utils/clock/testing"
)

func startSim(t *testing.T, cfg ModbusConfig) (*Modbus, *modbus.ModbusClient) {
	t.Helper()
	addr, err := FreeLoopbackAddress()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Address = addr
	sim, err := NewModbus(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Stop() })
	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + addr, Timeout: time.Second, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return sim, c
}

func TestThermometerAndActuator(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	clk := clocktesting.NewFakeClock(start)
	sim, c := startSim(t, ModbusConfig{UnitID: 7, Clock: clk})
	if err := c.SetUnitId(7); err != nil {
		t.Fatal(err)
	}
	// A quarter period in: 20 + 5 = 25.0 °C.
	clk.Step(150 * time.Second)
	temp, err := c.ReadRegister(InputTemperature, modbus.INPUT_REGISTER)
	if err != nil || int16(temp) != 250 {
		t.Errorf("input temperature = %d, %v; want 250", int16(temp), err)
	}
	ht, err := c.ReadRegister(HoldingTemperature, modbus.HOLDING_REGISTER)
	if err != nil || ht != temp {
		t.Errorf("holding temperature = %d, %v; want %d", ht, err, temp)
	}
	f, err := c.ReadFloat32(InputTemperatureFloat, modbus.INPUT_REGISTER)
	if err != nil || math.Abs(float64(f)-25) > 1e-4 {
		t.Errorf("float temperature = %v, %v", f, err)
	}
	// Three quarters in: 15.0 °C, negative offsets stay signed.
	clk.Step(300 * time.Second)
	if temp, _ := c.ReadRegister(InputTemperature, modbus.INPUT_REGISTER); int16(temp) != 150 {
		t.Errorf("temperature at 3/4 period = %d, want 150", int16(temp))
	}

	// The actuator: power coil and setpoint register.
	if err := c.WriteCoil(CoilPower, true); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteRegister(HoldingSetpoint, 235); err != nil {
		t.Fatal(err)
	}
	if !sim.Power() || sim.Setpoint() != 23.5 {
		t.Errorf("power %v setpoint %v", sim.Power(), sim.Setpoint())
	}
	heating, err := c.ReadDiscreteInput(DiscreteHeating)
	if err != nil || !heating {
		t.Errorf("heating = %v, %v; want true at 15 °C with setpoint 23.5", heating, err)
	}
	if err := c.WriteRegister(HoldingSetpoint, 2000); !errors.Is(err, modbus.ErrIllegalDataValue) {
		t.Errorf("setpoint 200.0 °C: %v, want illegal data value", err)
	}
	if err := c.WriteRegister(HoldingTemperature, 1); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Errorf("writing the temperature: %v, want illegal data address", err)
	}
	if _, err := c.ReadRegister(5000, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Errorf("unmapped register: %v", err)
	}
	if err := c.WriteRegisters(BulkStart, []uint16{9, 8}); err != nil {
		t.Fatal(err)
	}
	if sim.Holding(BulkStart+1) != 8 {
		t.Errorf("scratch register = %d", sim.Holding(BulkStart+1))
	}
	if err := c.SetUnitId(8); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadRegister(0, modbus.INPUT_REGISTER); !errors.Is(err, modbus.ErrGWTargetFailedToRespond) {
		t.Errorf("other unit id: %v", err)
	}
	if n := sim.Connections(); n != 1 {
		t.Errorf("connections = %d, want 1", n)
	}
}

func TestRestartKeepsRegisters(t *testing.T) {
	sim, c := startSim(t, ModbusConfig{})
	if err := c.WriteRegister(HoldingSetpoint, 300); err != nil {
		t.Fatal(err)
	}
	if err := sim.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadRegister(HoldingSetpoint, modbus.HOLDING_REGISTER); err == nil {
		t.Fatal("read succeeded while the simulator was stopped")
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.ReadRegister(HoldingSetpoint, modbus.HOLDING_REGISTER); err != nil || v != 300 {
		t.Errorf("setpoint after restart = %d, %v", v, err)
	}
	if n := sim.Connections(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}

func TestConfigChecks(t *testing.T) {
	if _, err := NewModbus(ModbusConfig{}); err == nil {
		t.Error("no address accepted")
	}
	if _, err := NewModbus(ModbusConfig{Address: "127.0.0.1:1", UnitID: 250}); err == nil {
		t.Error("unit id 250 accepted")
	}
}
