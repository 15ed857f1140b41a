package modbus

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/verge-edge/verge/pkg/mapper"
	"github.com/verge-edge/verge/pkg/mapper/value"
)

// endpoint is where a device is reached; devices with equal endpoints share
// a connection.
type endpoint struct {
	url      string // tcp://host:port or rtu:///dev/ttyX
	speed    uint
	dataBits uint
	parity   uint
	stopBits uint
	timeout  time.Duration
}

type deviceConfig struct {
	ep   endpoint
	unit uint8
}

func parseDevice(c mapper.ConfigData) (deviceConfig, error) {
	bad := func(format string, a ...any) (deviceConfig, error) {
		return deviceConfig{}, mapper.ConfigErrorf("", "protocol configData: "+format, a...)
	}
	var d deviceConfig
	mode, _, err := c.String("communicateMode")
	if err != nil {
		return bad("%v", err)
	}
	serial, _, err := c.String("serialPort")
	if err != nil {
		return bad("%v", err)
	}
	switch strings.ToUpper(mode) {
	case "":
		if serial != "" {
			mode = "RTU"
		} else {
			mode = "TCP"
		}
	case "TCP", "RTU":
	default:
		return bad("communicateMode %q is not TCP or RTU", mode)
	}
	timeout := time.Second
	if ms, ok, err := c.Int("timeout"); err != nil || (ok && ms <= 0) {
		return bad("timeout must be a positive number of milliseconds, not %v", c["timeout"])
	} else if ok {
		timeout = time.Duration(ms) * time.Millisecond
	}
	d.ep.timeout = timeout
	if strings.ToUpper(mode) == "TCP" {
		addr, _, err := c.String("address")
		if err != nil {
			return bad("%v", err)
		}
		if addr == "" {
			ip, _, err := c.String("ip")
			if err != nil {
				return bad("%v", err)
			}
			port, okPort, err := c.Int("port")
			if err != nil {
				return bad("%v", err)
			}
			if ip == "" || !okPort {
				return bad("a TCP device needs ip and port (or address host:port)")
			}
			if port < 1 || port > 65535 {
				return bad("port %d is outside 1..65535", port)
			}
			addr = net.JoinHostPort(ip, strconv.FormatInt(port, 10))
		} else if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad("address %q is not host:port", addr)
		}
		d.ep.url = "tcp://" + addr
	} else {
		if serial == "" {
			return bad("an RTU device needs serialPort, e.g. /dev/ttyUSB0")
		}
		d.ep.url = "rtu://" + serial
		baud, ok, err := c.Int("baudRate")
		if err != nil || (ok && baud <= 0) {
			return bad("baudRate must be a positive integer, not %v", c["baudRate"])
		}
		d.ep.speed = uint(baud)
		bits, ok, err := c.Int("dataBits")
		if err != nil || (ok && (bits < 5 || bits > 8)) {
			return bad("dataBits must be 5..8, not %v", c["dataBits"])
		}
		d.ep.dataBits = uint(bits)
		stop, ok, err := c.Int("stopBits")
		if err != nil || (ok && stop != 1 && stop != 2) {
			return bad("stopBits must be 1 or 2, not %v", c["stopBits"])
		}
		d.ep.stopBits = uint(stop)
		parity, _, err := c.String("parity")
		if err != nil {
			return bad("%v", err)
		}
		switch strings.ToLower(parity) {
		case "", "none", "n":
			d.ep.parity = modbus.PARITY_NONE
		case "even", "e":
			d.ep.parity = modbus.PARITY_EVEN
		case "odd", "o":
			d.ep.parity = modbus.PARITY_ODD
		default:
			return bad("parity %q is not none, even or odd", parity)
		}
	}
	unit, ok, err := c.Int("slaveID")
	if err != nil {
		return bad("%v", err)
	}
	if !ok {
		unit = 1
	}
	if unit < 0 || unit > 255 {
		return bad("slaveID %d is outside 0..255", unit)
	}
	d.unit = uint8(unit)
	return d, nil
}

type registerKind int

const (
	coil registerKind = iota
	discreteInput
	holding
	input
)

func (k registerKind) String() string {
	return [...]string{"CoilRegister", "DiscreteInputRegister", "HoldingRegister", "InputRegister"}[k]
}

func (k registerKind) bits() bool { return k == coil || k == discreteInput }

type rawType int

const (
	rawUint rawType = iota
	rawInt
	rawFloat
)

// visitor is one property's parsed location.
type visitor struct {
	kind           registerKind
	offset, limit  uint16
	scale          float64
	swap, regSwap  bool
	raw            rawType
	typ            value.Type
	name           string
	readOnlyDevice bool
}

func parseVisitor(p *mapper.PropertyConfig) (*visitor, error) {
	c := p.Visitor
	bad := func(format string, a ...any) (*visitor, error) {
		return nil, mapper.ConfigErrorf(p.Name, format, a...)
	}
	v := &visitor{typ: p.Type, name: p.Name, scale: 1}
	reg, ok, err := c.String("register")
	if err != nil {
		return bad("%v", err)
	}
	if !ok || reg == "" {
		return bad("visitors configData needs register: CoilRegister, DiscreteInputRegister, HoldingRegister or InputRegister")
	}
	switch strings.ToLower(strings.TrimSuffix(strings.ToLower(reg), "register")) {
	case "coil":
		v.kind = coil
	case "discreteinput":
		v.kind = discreteInput
	case "holding":
		v.kind = holding
	case "input":
		v.kind = input
	default:
		return bad("register %q is not CoilRegister, DiscreteInputRegister, HoldingRegister or InputRegister", reg)
	}
	v.readOnlyDevice = v.kind == discreteInput || v.kind == input
	off, _, err := c.Int("offset")
	if err != nil {
		return bad("%v", err)
	}
	lim, ok, err := c.Int("limit")
	if err != nil {
		return bad("%v", err)
	}
	if !ok || lim == 0 {
		lim = 1
	}
	if off < 0 || off > 65535 {
		return bad("offset %d is outside 0..65535", off)
	}
	if lim < 1 || off+lim > 65536 {
		return bad("limit %d with offset %d goes past address 65535", lim, off)
	}
	v.offset, v.limit = uint16(off), uint16(lim)
	if s, ok, err := c.Float("scale"); err != nil {
		return bad("%v", err)
	} else if ok && s != 0 {
		v.scale = s
	}
	if v.swap, _, err = c.Bool("isSwap"); err != nil {
		return bad("%v", err)
	}
	if v.regSwap, _, err = c.Bool("isRegisterSwap"); err != nil {
		return bad("%v", err)
	}
	rt, _, err := c.String("rawType")
	if err != nil {
		return bad("%v", err)
	}
	switch strings.ToLower(rt) {
	case "", "uint", "unsigned":
		v.raw = rawUint
	case "int", "signed":
		v.raw = rawInt
	case "float":
		v.raw = rawFloat
	default:
		return bad("rawType %q is not uint, int or float", rt)
	}

	switch {
	case v.kind.bits():
		if v.limit > 64 {
			return bad("limit %d: at most 64 %ss fit in one value", v.limit, v.kind)
		}
		if v.typ == value.Boolean && v.limit != 1 {
			return bad("a boolean property reads one %s, not limit %d", v.kind, v.limit)
		}
		if v.typ == value.String || v.typ == value.Bytes || v.typ == value.Stream {
			return bad("a %s property cannot be read from a %s", v.typ, v.kind)
		}
	case v.typ == value.String || v.typ == value.Bytes:
		if v.limit > 125 {
			return bad("limit %d: one request reads at most 125 registers", v.limit)
		}
	case v.typ == value.Stream:
		return bad("stream properties are not supported by the Modbus driver")
	default:
		if v.limit != 1 && v.limit != 2 && v.limit != 4 {
			return bad("limit %d: a number spans 1, 2 or 4 registers", v.limit)
		}
		if v.raw == rawFloat && v.limit == 1 {
			return bad("rawType float needs limit 2 (float32) or 4 (float64)")
		}
	}
	return v, nil
}

func (v *visitor) String() string {
	return fmt.Sprintf("%s %d+%d", v.kind, v.offset, v.limit)
}
