package mapper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/sink"
)

// fakeDriver is an in-memory device protocol: property values live in a
// map; visitor key "fail" makes a read return a *ConfigError.
type fakeDriver struct {
	mu         sync.Mutex
	connects   int
	closes     int
	values     map[string]any
	writes     []string // "prop=value"
	reads      map[string]int
	connectErr error
	healthErr  error
	readErr    error
}

func newFakeDriver() *fakeDriver {
	return &fakeDriver{values: map[string]any{}, reads: map[string]int{}}
}

func (d *fakeDriver) Connect(_ context.Context, dev *DeviceConfig) (Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.connects++
	if d.connectErr != nil {
		return nil, d.connectErr
	}
	if mode, _, _ := dev.ProtocolConfig.String("mode"); mode == "broken" {
		return nil, ConfigErrorf("", "mode %q is not supported: use tcp", mode)
	}
	return &fakeConn{d: d}, nil
}

func (d *fakeDriver) set(prop string, v any) {
	d.mu.Lock()
	d.values[prop] = v
	d.mu.Unlock()
}

func (d *fakeDriver) counts() (connects, closes int, writes []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connects, d.closes, append([]string(nil), d.writes...)
}

func (d *fakeDriver) readCount(prop string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reads[prop]
}

type fakeConn struct{ d *fakeDriver }

func (c *fakeConn) Read(_ context.Context, p *PropertyConfig) (any, error) {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.d.reads[p.Name]++
	if f, _, _ := p.Visitor.Bool("fail"); f {
		return nil, ConfigErrorf(p.Name, "register 9999 does not exist on the device")
	}
	if c.d.readErr != nil {
		return nil, c.d.readErr
	}
	v, ok := c.d.values[p.Name]
	if !ok {
		return nil, errors.New("no value")
	}
	return v, nil
}

func (c *fakeConn) Write(_ context.Context, p *PropertyConfig, v any) error {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	if ro, _, _ := p.Visitor.Bool("inputOnly"); ro {
		return fmt.Errorf("%s: %w", p.Name, ErrNotWritable)
	}
	c.d.values[p.Name] = v
	c.d.writes = append(c.d.writes, fmt.Sprintf("%s=%v", p.Name, v))
	return nil
}

func (c *fakeConn) Health(context.Context) error {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	return c.d.healthErr
}

func (c *fakeConn) Close() error {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.d.closes++
	return nil
}

// memSink records what reaches it.
type memSink struct {
	name    string
	mu      sync.Mutex
	samples []sink.Sample
	fail    error
}

func (s *memSink) Name() string {
	if s.name == "" {
		return "mem"
	}
	return s.name
}
func (s *memSink) Close() error { return nil }
func (s *memSink) Write(_ context.Context, b []sink.Sample) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.samples = append(s.samples, b...)
	return nil
}

func (s *memSink) values(prop string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, x := range s.samples {
		if x.Property == prop {
			out = append(out, x.Value)
		}
	}
	return out
}

func testModel() *dmi.DeviceModel {
	return &dmi.DeviceModel{Name: "thermo-model", Namespace: "default", Spec: &dmi.DeviceModelSpec{Properties: []*dmi.ModelProperty{
		{Name: "temperature", Type: "FLOAT", AccessMode: "ReadOnly", Unit: "Celsius"},
		{Name: "setpoint", Type: "INT", AccessMode: "ReadWrite", Minimum: "0", Maximum: "100"},
		{Name: "power", Type: "BOOLEAN", AccessMode: "ReadWrite"},
	}}}
}

func visitor(t *testing.T, m map[string]any) *dmi.VisitorConfig {
	t.Helper()
	cv, err := dmi.NewCustomizedValue(m)
	if err != nil {
		t.Fatal(err)
	}
	return &dmi.VisitorConfig{ProtocolName: "fake", ConfigData: cv}
}

// testDevice has temperature (reported to the cloud), setpoint (desired 30)
// and power, each every cycleMs.
func testDevice(t *testing.T, cycleMs int64) *dmi.Device {
	t.Helper()
	pc, err := dmi.NewCustomizedValue(map[string]any{"mode": "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	return &dmi.Device{Name: "thermo", Namespace: "default", Spec: &dmi.DeviceSpec{
		DeviceModelReference: "thermo-model",
		Protocol:             &dmi.ProtocolConfig{ProtocolName: "fake", ConfigData: pc},
		Properties: []*dmi.DeviceProperty{
			{Name: "temperature", CollectCycle: cycleMs, ReportToCloud: true, Visitors: visitor(t, map[string]any{"addr": 0})},
			{Name: "setpoint", CollectCycle: cycleMs, ReportToCloud: true, Desired: &dmi.TwinProperty{Value: "30"}, Visitors: visitor(t, map[string]any{"addr": 1})},
			{Name: "power", CollectCycle: cycleMs, ReportToCloud: true, Visitors: visitor(t, map[string]any{"addr": 2})},
		},
		Methods: []*dmi.DeviceMethod{
			{Name: "SetPoint", PropertyNames: []string{"setpoint"}},
			{Name: "Temp", PropertyNames: []string{"temperature"}},
		},
	}}
}

func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("MAPPER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
