package modbus

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/simonvetter/modbus"
	"k8s.io/utils/clock"

	"github.com/verge-edge/verge/pkg/mapper"
	"github.com/verge-edge/verge/pkg/mapper/fanout"
)

// Options for the driver.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the driver's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	Clock      clock.PassiveClock
}

// Driver is the Modbus mapper driver. One Driver serves every device of a
// mapper and shares a connection between devices on one endpoint.
type Driver struct {
	log   *slog.Logger
	clock clock.PassiveClock

	opens, requestErrs prometheus.Counter

	mu    sync.Mutex
	links map[endpoint]*link
}

// New returns a Driver.
func New(opts Options) *Driver {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	d := &Driver{
		log: opts.Logger, clock: opts.Clock, links: map[endpoint]*link{},
		opens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verge_mapper_modbus_connects_total", Help: "Modbus connections opened (first connects and reconnects).",
		}),
		requestErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verge_mapper_modbus_transport_errors_total", Help: "Modbus requests that failed in transport (the connection is re-opened).",
		}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(d.opens, d.requestErrs)
	}
	return d
}

// Connect parses the device's configuration and returns a Conn on the
// endpoint's shared link.
func (d *Driver) Connect(_ context.Context, dev *mapper.DeviceConfig) (mapper.Conn, error) {
	dc, err := parseDevice(dev.ProtocolConfig)
	if err != nil {
		return nil, err
	}
	c := &conn{d: d, unit: dc.unit, visitors: map[string]*visitor{}}
	for i := range dev.Properties {
		p := &dev.Properties[i]
		v, err := parseVisitor(p)
		if err != nil {
			return nil, err
		}
		c.visitors[p.Name] = v
	}
	d.mu.Lock()
	l, ok := d.links[dc.ep]
	if !ok {
		l = &link{d: d, ep: dc.ep}
		d.links[dc.ep] = l
	}
	l.refs++
	d.mu.Unlock()
	c.link = l
	return c, nil
}

func (d *Driver) release(l *link) {
	d.mu.Lock()
	l.refs--
	last := l.refs == 0
	if last {
		delete(d.links, l.ep)
	}
	d.mu.Unlock()
	if last {
		l.close()
	}
}

// link is one transport (TCP connection or serial port) shared by the
// devices on an endpoint; requests on it are serialized.
type link struct {
	d    *Driver
	ep   endpoint
	refs int // guarded by Driver.mu

	mu       sync.Mutex
	client   *modbus.ModbusClient
	open     bool
	failures int
	retryAt  time.Time
	lastErr  error
}

// exception reports whether err is a Modbus exception response: the device
// answered, so the transport is fine.
func exception(err error) bool {
	for _, e := range []error{
		modbus.ErrIllegalFunction, modbus.ErrIllegalDataAddress, modbus.ErrIllegalDataValue,
		modbus.ErrServerDeviceFailure, modbus.ErrAcknowledge, modbus.ErrServerDeviceBusy,
		modbus.ErrMemoryParityError, modbus.ErrGWPathUnavailable, modbus.ErrGWTargetFailedToRespond,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// ensureOpen opens the transport if needed, no sooner than the backoff
// allows; l.mu must be held.
func (l *link) ensureOpen() error {
	if l.open {
		return nil
	}
	now := l.d.clock.Now()
	if now.Before(l.retryAt) {
		return fmt.Errorf("%s unreachable, retrying in %v: %w", l.ep.url, l.retryAt.Sub(now).Round(time.Millisecond), l.lastErr)
	}
	if l.client == nil {
		c, err := modbus.NewClient(&modbus.ClientConfiguration{
			URL: l.ep.url, Speed: l.ep.speed, DataBits: l.ep.dataBits, Parity: l.ep.parity, StopBits: l.ep.stopBits,
			Timeout: l.ep.timeout, Logger: log.New(discard{}, "", 0),
		})
		if err != nil {
			return mapper.ConfigErrorf("", "modbus endpoint %s: %v", l.ep.url, err)
		}
		if err := c.SetEncoding(modbus.BIG_ENDIAN, modbus.HIGH_WORD_FIRST); err != nil {
			return err
		}
		l.client = c
	}
	if err := l.client.Open(); err != nil {
		l.failures++
		l.lastErr = err
		l.retryAt = now.Add(fanout.Backoff(200*time.Millisecond, 10*time.Second, l.failures, 0.8+0.4*rand.Float64()))
		return fmt.Errorf("connecting to %s: %w", l.ep.url, err)
	}
	l.open, l.failures, l.lastErr = true, 0, nil
	l.d.opens.Inc()
	l.d.log.Info("modbus connected", "endpoint", l.ep.url)
	return nil
}

// do runs one request for unit on the link, re-opening it next time when
// the transport failed.
func (l *link) do(unit uint8, fn func(c *modbus.ModbusClient) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ensureOpen(); err != nil {
		return err
	}
	if err := l.client.SetUnitId(unit); err != nil {
		return err
	}
	err := fn(l.client)
	if err != nil && !exception(err) {
		l.d.requestErrs.Inc()
		_ = l.client.Close()
		l.open = false
		l.lastErr = err
		l.d.log.Warn("modbus transport error; reconnecting", "endpoint", l.ep.url, "err", err)
	}
	return err
}

func (l *link) health() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ensureOpen()
}

func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.client != nil && l.open {
		_ = l.client.Close()
	}
	l.open = false
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// conn is one device on a link.
type conn struct {
	d        *Driver
	link     *link
	unit     uint8
	visitors map[string]*visitor
	once     sync.Once
}

func (c *conn) visitor(p *mapper.PropertyConfig) (*visitor, error) {
	v, ok := c.visitors[p.Name]
	if !ok {
		return nil, mapper.ConfigErrorf(p.Name, "not configured on this connection")
	}
	return v, nil
}

// classify turns an exception about the address into a configuration
// error: the register does not exist on the device.
func (v *visitor) classify(err error) error {
	if errors.Is(err, modbus.ErrIllegalDataAddress) {
		return mapper.ConfigErrorf(v.name, "%s: the device has no such address (illegal data address)", v)
	}
	if errors.Is(err, modbus.ErrIllegalFunction) {
		return mapper.ConfigErrorf(v.name, "%s: the device does not support this register type (illegal function)", v)
	}
	return fmt.Errorf("%s: %w", v, err)
}

func (c *conn) Read(_ context.Context, p *mapper.PropertyConfig) (any, error) {
	v, err := c.visitor(p)
	if err != nil {
		return nil, err
	}
	var out any
	err = c.link.do(c.unit, func(mc *modbus.ModbusClient) error {
		switch v.kind {
		case coil, discreteInput:
			var bits []bool
			var err error
			if v.kind == coil {
				bits, err = mc.ReadCoils(v.offset, v.limit)
			} else {
				bits, err = mc.ReadDiscreteInputs(v.offset, v.limit)
			}
			if err != nil {
				return err
			}
			out = v.decodeBits(bits)
			return nil
		default:
			rt := modbus.HOLDING_REGISTER
			if v.kind == input {
				rt = modbus.INPUT_REGISTER
			}
			regs, err := mc.ReadRegisters(v.offset, v.limit, rt)
			if err != nil {
				return err
			}
			out, err = v.decodeRegisters(regs)
			return err
		}
	})
	if err != nil {
		return nil, v.classify(err)
	}
	return out, nil
}

func (c *conn) Write(_ context.Context, p *mapper.PropertyConfig, x any) error {
	v, err := c.visitor(p)
	if err != nil {
		return err
	}
	if v.readOnlyDevice {
		return fmt.Errorf("%s is read-only on the device: %w", v, mapper.ErrNotWritable)
	}
	if v.kind == coil {
		bits, err := v.encodeBits(x)
		if err != nil {
			return err
		}
		err = c.link.do(c.unit, func(mc *modbus.ModbusClient) error {
			if len(bits) == 1 {
				return mc.WriteCoil(v.offset, bits[0])
			}
			return mc.WriteCoils(v.offset, bits)
		})
		if err != nil {
			return v.classify(err)
		}
		return nil
	}
	regs, err := v.encodeRegisters(x)
	if err != nil {
		return err
	}
	err = c.link.do(c.unit, func(mc *modbus.ModbusClient) error {
		if len(regs) == 1 {
			return mc.WriteRegister(v.offset, regs[0])
		}
		return mc.WriteRegisters(v.offset, regs)
	})
	if err != nil {
		if errors.Is(err, modbus.ErrIllegalDataValue) {
			return fmt.Errorf("%s refused the value (illegal data value): %w", v, mapper.ErrValueOutOfRange)
		}
		return v.classify(err)
	}
	return nil
}

func (c *conn) Health(context.Context) error { return c.link.health() }

func (c *conn) Close() error {
	c.once.Do(func() { c.d.release(c.link) })
	return nil
}
