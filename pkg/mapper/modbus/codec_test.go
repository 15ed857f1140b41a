package modbus

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/verge-edge/verge/pkg/mapper"
	"github.com/verge-edge/verge/pkg/mapper/value"
)

func vis(t *testing.T, typ value.Type, cfg map[string]any) *visitor {
	t.Helper()
	v, err := parseVisitor(&mapper.PropertyConfig{Name: "p", Type: typ, Visitor: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDecodeRegisters(t *testing.T) {
	f32 := math.Float32bits(21.5)
	tests := []struct {
		name string
		typ  value.Type
		cfg  map[string]any
		regs []uint16
		want any
	}{
		{"uint16", value.Int, map[string]any{"register": "HoldingRegister"}, []uint16{65535}, uint64(65535)},
		{"int16", value.Int, map[string]any{"register": "HoldingRegister", "rawType": "int"}, []uint16{0xFFFE}, int64(-2)},
		{"scaled tenths", value.Float, map[string]any{"register": "InputRegister", "scale": 0.1, "rawType": "int"}, []uint16{215}, 21.5},
		{"scaled double is exact", value.Double, map[string]any{"register": "InputRegister", "scale": 0.1, "rawType": "int"}, []uint16{215}, 21.5},
		{"scaled hundredths", value.Double, map[string]any{"register": "InputRegister", "scale": 0.01}, []uint16{2157}, 21.57},
		{"scaled int rounds", value.Int, map[string]any{"register": "InputRegister", "scale": 0.1}, []uint16{216}, int64(22)},
		{"uint32 high word first", value.Int, map[string]any{"register": "HoldingRegister", "limit": 2}, []uint16{1, 2}, uint64(65538)},
		{"uint32 register swap", value.Int, map[string]any{"register": "HoldingRegister", "limit": 2, "isRegisterSwap": true}, []uint16{2, 1}, uint64(65538)},
		{"byte swap", value.Int, map[string]any{"register": "HoldingRegister", "isSwap": true}, []uint16{0x0100}, uint64(1)},
		{"float32", value.Double, map[string]any{"register": "InputRegister", "limit": 2, "rawType": "float"}, []uint16{uint16(f32 >> 16), uint16(f32)}, 21.5},
		{"int32 negative", value.Int, map[string]any{"register": "HoldingRegister", "limit": 2, "rawType": "int"}, []uint16{0xFFFF, 0xFFFF}, int64(-1)},
		{"boolean", value.Boolean, map[string]any{"register": "HoldingRegister"}, []uint16{7}, true},
		{"string trims NULs", value.String, map[string]any{"register": "HoldingRegister", "limit": 3}, []uint16{0x4869, 0x2100, 0}, "Hi!"},
		{"bytes", value.Bytes, map[string]any{"register": "HoldingRegister", "limit": 1}, []uint16{0x0102}, []byte{1, 2}},
	}
	for _, tt := range tests {
		got, err := vis(t, tt.typ, tt.cfg).decodeRegisters(tt.regs)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: decode %v = %#v, %v; want %#v", tt.name, tt.regs, got, err, tt.want)
		}
	}
}

func TestEncodeRoundTrips(t *testing.T) {
	tests := []struct {
		typ value.Type
		cfg map[string]any
		in  any
	}{
		{value.Int, map[string]any{"register": "HoldingRegister"}, int64(1234)},
		{value.Int, map[string]any{"register": "HoldingRegister", "rawType": "int"}, int64(-300)},
		{value.Float, map[string]any{"register": "HoldingRegister", "scale": 0.1}, 22.5},
		{value.Double, map[string]any{"register": "HoldingRegister", "limit": 4, "rawType": "float", "isSwap": true, "isRegisterSwap": true}, 3.25},
		{value.Int, map[string]any{"register": "HoldingRegister", "limit": 2, "isRegisterSwap": true}, int64(70000)},
		{value.String, map[string]any{"register": "HoldingRegister", "limit": 4}, "abc"},
	}
	for _, tt := range tests {
		v := vis(t, tt.typ, tt.cfg)
		regs, err := v.encodeRegisters(tt.in)
		if err != nil {
			t.Fatalf("encode %v: %v", tt.in, err)
		}
		got, err := v.decodeRegisters(regs)
		if err != nil {
			t.Fatal(err)
		}
		s1, _ := value.Format(tt.typ, got)
		s2, _ := value.Format(tt.typ, tt.in)
		if s1 != s2 {
			t.Errorf("%v with %v: round trip gave %v", tt.in, tt.cfg, got)
		}
	}
}

func TestEncodeOutOfRange(t *testing.T) {
	tests := []struct {
		cfg map[string]any
		in  any
	}{
		{map[string]any{"register": "HoldingRegister"}, int64(70000)},
		{map[string]any{"register": "HoldingRegister"}, int64(-1)},
		{map[string]any{"register": "HoldingRegister", "rawType": "int"}, int64(40000)},
		{map[string]any{"register": "HoldingRegister", "scale": 0.1}, 7000.0},
		{map[string]any{"register": "HoldingRegister", "limit": 1}, "too long"},
	}
	for _, tt := range tests {
		typ := value.Int
		if _, ok := tt.in.(string); ok {
			typ = value.String
		}
		_, err := vis(t, typ, tt.cfg).encodeRegisters(tt.in)
		if !errors.Is(err, mapper.ErrValueOutOfRange) {
			t.Errorf("encode %v with %v: err = %v, want ErrValueOutOfRange", tt.in, tt.cfg, err)
		}
	}
	if _, err := vis(t, value.Int, map[string]any{"register": "CoilRegister", "limit": 2}).encodeBits(int64(4)); !errors.Is(err, mapper.ErrValueOutOfRange) {
		t.Errorf("4 into 2 coils: %v", err)
	}
	bits, err := vis(t, value.Int, map[string]any{"register": "CoilRegister", "limit": 3}).encodeBits(int64(5))
	if err != nil || !reflect.DeepEqual(bits, []bool{true, false, true}) {
		t.Errorf("5 into 3 coils = %v, %v", bits, err)
	}
}

func TestVisitorProblems(t *testing.T) {
	tests := []struct {
		typ  value.Type
		cfg  map[string]any
		want string
	}{
		{value.Int, map[string]any{}, "needs register"},
		{value.Int, map[string]any{"register": "Holdings"}, `register "Holdings" is not`},
		{value.Int, map[string]any{"register": "HoldingRegister", "offset": 65535, "limit": 2}, "goes past address 65535"},
		{value.Int, map[string]any{"register": "HoldingRegister", "limit": 3}, "a number spans 1, 2 or 4 registers"},
		{value.Float, map[string]any{"register": "HoldingRegister", "rawType": "float"}, "rawType float needs limit 2"},
		{value.Boolean, map[string]any{"register": "CoilRegister", "limit": 2}, "a boolean property reads one CoilRegister"},
		{value.String, map[string]any{"register": "DiscreteInputRegister"}, "cannot be read from a DiscreteInputRegister"},
		{value.Int, map[string]any{"register": "HoldingRegister", "offset": "ten"}, "offset must be an integer"},
		{value.Int, map[string]any{"register": "HoldingRegister", "rawType": "bcd"}, `rawType "bcd"`},
	}
	for _, tt := range tests {
		_, err := parseVisitor(&mapper.PropertyConfig{Name: "temp", Type: tt.typ, Visitor: tt.cfg})
		if err == nil || !strings.Contains(err.Error(), tt.want) || !mapper.IsConfigError(err) || !strings.HasPrefix(err.Error(), "property temp: ") {
			t.Errorf("%v: err = %v, want a ConfigError naming the property with %q", tt.cfg, err, tt.want)
		}
	}
	// Upstream spellings and string numbers are accepted.
	v := vis(t, value.Int, map[string]any{"register": "Coil", "offset": "3", "limit": int64(1), "scale": "1", "isSwap": "true", "dataType": "int", "max": 100.0})
	if v.kind != coil || v.offset != 3 || !v.swap {
		t.Errorf("parsed %+v", v)
	}
}

func TestDeviceConfig(t *testing.T) {
	tests := []struct {
		cfg  map[string]any
		url  string
		unit uint8
		err  string
	}{
		{map[string]any{"ip": "127.0.0.1", "port": "5502", "slaveID": 1}, "tcp://127.0.0.1:5502", 1, ""},
		{map[string]any{"communicateMode": "TCP", "ip": "10.0.0.2", "port": int64(502), "slaveID": "3"}, "tcp://10.0.0.2:502", 3, ""},
		{map[string]any{"address": "plc:1502"}, "tcp://plc:1502", 1, ""},
		{map[string]any{"serialPort": "/dev/ttyS0", "baudRate": 9600, "dataBits": 8, "parity": "even", "stopBits": 1, "slaveID": 2}, "rtu:///dev/ttyS0", 2, ""},
		{map[string]any{"ip": "127.0.0.1"}, "", 0, "needs ip and port"},
		{map[string]any{"ip": "127.0.0.1", "port": 70000}, "", 0, "outside 1..65535"},
		{map[string]any{"communicateMode": "UDP"}, "", 0, `communicateMode "UDP"`},
		{map[string]any{"communicateMode": "RTU"}, "", 0, "needs serialPort"},
		{map[string]any{"serialPort": "/dev/ttyS0", "parity": "mark"}, "", 0, `parity "mark"`},
		{map[string]any{"ip": "h", "port": 1, "slaveID": 300}, "", 0, "slaveID 300"},
	}
	for _, tt := range tests {
		d, err := parseDevice(tt.cfg)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !mapper.IsConfigError(err) {
				t.Errorf("%v: err = %v, want ConfigError with %q", tt.cfg, err, tt.err)
			}
			continue
		}
		if err != nil || d.ep.url != tt.url || d.unit != tt.unit {
			t.Errorf("%v: %+v, %v; want %s unit %d", tt.cfg, d, err, tt.url, tt.unit)
		}
	}
}
