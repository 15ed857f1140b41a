package mapper

import (
	"strings"
	"testing"
	"time"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

func TestResolveMergesModelAndDevice(t *testing.T) {
	dev := testDevice(t, 0)
	dev.Spec.Properties[0].Visitors = visitor(t, map[string]any{"register": "InputRegister", "deadband": 0.25})
	dev.Spec.Properties[1].CollectCycle = 10_000_000_000 // an old mapper's "10 s" in nanoseconds
	dev.Spec.Properties[2].PushMethod = &dmi.PushMethod{
		Mqtt:     &dmi.PushMethodMQTT{Address: "tcp://127.0.0.1:1883", Topic: "t"},
		DbMethod: &dmi.DBMethod{Redis: &dmi.DBMethodRedis{RedisClientConfig: &dmi.RedisClientConfig{Addr: "127.0.0.1:6379"}}},
	}
	s := resolve(dev, testModel(), Config{DefaultCollectCycle: time.Second, TwinDeadband: 0.1})
	if s.err != nil {
		t.Fatal(s.err)
	}
	temp := s.byName["temperature"]
	if temp.cfg.Type != "float" || temp.cfg.AccessMode != ReadOnly || temp.cfg.Unit != "Celsius" || temp.collectCycle != time.Second || temp.deadband != 0.25 {
		t.Errorf("temperature: %+v %+v", temp, temp.cfg)
	}
	if _, ok := temp.cfg.Visitor["deadband"]; ok || temp.cfg.Visitor["register"] != "InputRegister" {
		t.Errorf("visitor seen by the driver: %v (deadband is the SDK's)", temp.cfg.Visitor)
	}
	sp := s.byName["setpoint"]
	if sp.collectCycle != 10*time.Second || len(sp.notes) != 1 || !sp.hasDesired || sp.desired != "30" || sp.deadband != 0.1 {
		t.Errorf("setpoint: %+v", sp)
	}
	if sp.cfg.Limits.Check(int64(101)) == nil {
		t.Error("setpoint maximum 100 not enforced")
	}
	if p := s.byName["power"]; len(p.push) != 2 || p.push[0].Kind != PushMQTT || p.push[1].Kind != PushRedis {
		t.Errorf("power push targets: %+v", p.push)
	}
	if s.cfg.ProtocolConfig["mode"] != "tcp" {
		t.Errorf("protocol config %v", s.cfg.ProtocolConfig)
	}
}

func TestResolveProblems(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*dmi.Device, *dmi.DeviceModel)
		want   string
	}{
		{"unknown property", func(d *dmi.Device, _ *dmi.DeviceModel) { d.Spec.Properties[0].Name = "humidity" }, "property humidity: not defined in DeviceModel thermo-model"},
		{"bad type", func(_ *dmi.Device, m *dmi.DeviceModel) { m.Spec.Properties[0].Type = "decimal" }, `property temperature: property type "decimal" is not supported`},
		{"bad bound", func(_ *dmi.Device, m *dmi.DeviceModel) { m.Spec.Properties[1].Maximum = "lots" }, `property setpoint: model maximum "lots" is not a number`},
		{"bad access mode", func(_ *dmi.Device, m *dmi.DeviceModel) { m.Spec.Properties[2].AccessMode = "WriteOnly" }, `accessMode "WriteOnly"`},
		{"duplicate", func(d *dmi.Device, _ *dmi.DeviceModel) { d.Spec.Properties[2].Name = "setpoint" }, "property setpoint: listed twice"},
		{"method names unknown property", func(d *dmi.Device, _ *dmi.DeviceModel) {
			d.Spec.Methods[0].PropertyNames = []string{"speed"}
		}, "property speed: named by method SetPoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, m := testDevice(t, 1000), testModel()
			tt.mutate(d, m)
			s := resolve(d, m, Config{})
			if s.err == nil || !strings.Contains(s.err.Error(), tt.want) || !IsConfigError(s.err) {
				t.Errorf("err = %v, want a ConfigError containing %q", s.err, tt.want)
			}
		})
	}
	s := resolve(testDevice(t, 1000), nil, Config{})
	if !s.waiting || s.err.Error() != "waiting for DeviceModel default/thermo-model" {
		t.Errorf("missing model: waiting=%v err=%v", s.waiting, s.err)
	}
}

func TestSpecDiffs(t *testing.T) {
	a := resolve(testDevice(t, 1000), testModel(), Config{})
	d := testDevice(t, 1000)
	d.Spec.Properties[1].Desired.Value = "31"
	b := resolve(d, testModel(), Config{})
	if connectionChanged(a, b) || samplingChanged(a, b) {
		t.Error("a desired-only change must not reconnect or resample")
	}
	if got := desiredChanges(a, b); len(got) != 1 || got[0] != "setpoint" {
		t.Errorf("desiredChanges = %v", got)
	}
	if got := desiredChanges(nil, b); len(got) != 1 {
		t.Errorf("initial desiredChanges = %v", got)
	}
	d2 := testDevice(t, 1000)
	d2.Spec.Properties[2].PushMethod = &dmi.PushMethod{Http: &dmi.PushMethodHTTP{Hostname: "h", Port: 80}}
	if c := resolve(d2, testModel(), Config{}); connectionChanged(a, c) || !samplingChanged(a, c) {
		t.Error("a push change must resample without reconnecting")
	}
	d3 := testDevice(t, 1000)
	cv, _ := dmi.NewCustomizedValue(map[string]any{"mode": "tcp", "port": 503})
	d3.Spec.Protocol.ConfigData = cv
	if c := resolve(d3, testModel(), Config{}); !connectionChanged(a, c) {
		t.Error("a protocol change must reconnect")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Name: "modbus-1", Protocol: "modbus"}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Name = "Bad_Name" }, "mapper name"},
		{func(c *Config) { c.Protocol = "" }, "protocol is empty"},
		{func(c *Config) { c.Socket = "rel.sock" }, "must be an absolute path"},
		{func(c *Config) { c.REST.Address = "0.0.0.0:7777" }, "not loopback"},
		{func(c *Config) { c.REST.CertFile = "/c" }, "all of the certificate"},
		{func(c *Config) { c.REST.Address = "nope" }, "use host:port"},
	}
	for _, tt := range tests {
		c := ok
		tt.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
	tlsOK := ok
	tlsOK.REST = RESTConfig{Address: "0.0.0.0:7777", CertFile: "/c", KeyFile: "/k", ClientCAFile: "/ca"}
	if err := tlsOK.Validate(); err != nil {
		t.Errorf("remote address with mTLS: %v", err)
	}
}

func TestConfigDataGetters(t *testing.T) {
	c := ConfigData{"port": "5502", "slave": int64(3), "scale": "0.1", "swap": "true", "f": 2.0, "bad": "x"}
	if v, ok, err := c.Int("port"); v != 5502 || !ok || err != nil {
		t.Errorf("Int(port) = %v %v %v", v, ok, err)
	}
	if v, _, err := c.Int("f"); v != 2 || err != nil {
		t.Errorf("Int(f) = %v %v", v, err)
	}
	if v, _, err := c.Float("scale"); v != 0.1 || err != nil {
		t.Errorf("Float(scale) = %v %v", v, err)
	}
	if v, _, err := c.Bool("swap"); !v || err != nil {
		t.Errorf("Bool(swap) = %v %v", v, err)
	}
	if _, ok, err := c.Int("missing"); ok || err != nil {
		t.Errorf("Int(missing) = %v %v", ok, err)
	}
	if _, _, err := c.Int("bad"); err == nil || !strings.Contains(err.Error(), "bad must be an integer") {
		t.Errorf("Int(bad): %v", err)
	}
}
