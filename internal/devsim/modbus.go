package devsim

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	"github.com/simonvetter/modbus"
	"k8s.io/utils/clock"
)

// Register addresses of the simulated device.
const (
	InputTemperature      = 0
	InputHumidity         = 1
	InputTemperatureFloat = 2
	HoldingTemperature    = 0
	HoldingSetpoint       = 1
	CoilPower             = 0
	DiscreteHeating       = 0
	BulkStart             = 1000
	BulkEnd               = 2999 // inclusive
	ScratchCoils          = 99   // coils 1..99
)

// ModbusConfig configures the simulator.
type ModbusConfig struct {
	// Address is host:port to listen on, e.g. 127.0.0.1:5020.
	Address string
	// UnitID the device answers to (1..247). Default 1.
	UnitID uint8
	Clock  clock.PassiveClock
	Logger *slog.Logger
}

// Modbus is a simulated Modbus TCP thermometer and heater.
type Modbus struct {
	cfg   ModbusConfig
	start time.Time

	mu       sync.Mutex
	srv      *modbus.ModbusServer
	power    bool
	setpoint uint16 // ×10
	holding  map[uint16]uint16
	coils    map[uint16]bool
	clients  map[string]bool
	requests uint64
	writes   uint64
}

// NewModbus checks cfg and returns a stopped simulator.
func NewModbus(cfg ModbusConfig) (*Modbus, error) {
	if cfg.Address == "" {
		return nil, fmt.Errorf("modbus simulator: an address (host:port) is required")
	}
	if cfg.UnitID == 0 {
		cfg.UnitID = 1
	}
	if cfg.UnitID > 247 {
		return nil, fmt.Errorf("modbus simulator: unit id %d is outside 1..247", cfg.UnitID)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Modbus{cfg: cfg, start: cfg.Clock.Now(), setpoint: 220, holding: map[uint16]uint16{}, coils: map[uint16]bool{}, clients: map[string]bool{}}
	for a := uint16(BulkStart); a <= BulkEnd; a++ {
		m.holding[a] = a
	}
	return m, nil
}

// Start listens and serves in the background; Stop ends it. A stopped
// simulator can be started again on the same address (a device reboot):
// its registers keep their values.
func (m *Modbus) Start() error {
	srv, err := modbus.NewServer(&modbus.ServerConfiguration{
		URL:        "tcp://" + m.cfg.Address,
		Timeout:    10 * time.Minute,
		MaxClients: 64,
		Logger:     log.New(io.Discard, "", 0),
	}, handler{m})
	if err != nil {
		return fmt.Errorf("modbus simulator: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("modbus simulator: listening on %s: %w", m.cfg.Address, err)
	}
	m.mu.Lock()
	m.srv = srv
	m.mu.Unlock()
	m.cfg.Logger.Info("modbus simulator listening", "address", m.cfg.Address, "unit", m.cfg.UnitID)
	return nil
}

// Stop closes the listener and every client connection.
func (m *Modbus) Stop() error {
	m.mu.Lock()
	srv := m.srv
	m.srv = nil
	m.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Stop()
}

// Connections is the number of distinct TCP connections served so far.
func (m *Modbus) Connections() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.clients)
}

// Requests is the number of requests served so far.
func (m *Modbus) Requests() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests
}

// Setpoint returns the heater setpoint in °C.
func (m *Modbus) Setpoint() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return float64(m.setpoint) / 10
}

// Power reports whether the heater is on.
func (m *Modbus) Power() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.power
}

// Holding returns a holding register's raw value.
func (m *Modbus) Holding(addr uint16) uint16 {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, _ := m.readHolding(addr)
	return v
}

// Temperature is the simulated temperature in °C at time t.
func (m *Modbus) Temperature(t time.Time) float64 {
	s := t.Sub(m.start).Seconds()
	return 20 + 5*math.Sin(2*math.Pi*s/600)
}

func (m *Modbus) humidity(t time.Time) float64 {
	s := t.Sub(m.start).Seconds()
	return 45 + 10*math.Cos(2*math.Pi*s/600)
}

func tenths(v float64) uint16 { return uint16(int16(math.Round(v * 10))) }

// seen records a request; m.mu must be held. It reports whether the unit
// id is ours.
func (m *Modbus) seen(client string, unit uint8) error {
	m.clients[client] = true
	m.requests++
	if unit != m.cfg.UnitID {
		return modbus.ErrGWTargetFailedToRespond
	}
	return nil
}

// readHolding returns a holding register; m.mu must be held.
func (m *Modbus) readHolding(a uint16) (uint16, error) {
	switch {
	case a == HoldingTemperature:
		return tenths(m.Temperature(m.cfg.Clock.Now())), nil
	case a == HoldingSetpoint:
		return m.setpoint, nil
	case a >= BulkStart && a <= BulkEnd:
		return m.holding[a], nil
	}
	return 0, modbus.ErrIllegalDataAddress
}

func (m *Modbus) readInput(a uint16, now time.Time) (uint16, error) {
	switch {
	case a == InputTemperature:
		return tenths(m.Temperature(now)), nil
	case a == InputHumidity:
		return uint16(math.Round(m.humidity(now) * 10)), nil
	case a == InputTemperatureFloat || a == InputTemperatureFloat+1:
		bits := math.Float32bits(float32(m.Temperature(now)))
		if a == InputTemperatureFloat {
			return uint16(bits >> 16), nil
		}
		return uint16(bits), nil
	case a >= BulkStart && a <= BulkEnd:
		secs := uint64(now.Sub(m.start) / time.Second)
		return uint16((uint64(a)*7 + secs) % 65536), nil
	}
	return 0, modbus.ErrIllegalDataAddress
}

// handler adapts the simulator to the library's request handler.
type handler struct{ m *Modbus }

func (h handler) HandleCoils(req *modbus.CoilsRequest) ([]bool, error) {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.seen(req.ClientAddr, req.UnitId); err != nil {
		return nil, err
	}
	if uint32(req.Addr)+uint32(req.Quantity)-1 > ScratchCoils {
		return nil, modbus.ErrIllegalDataAddress
	}
	if req.IsWrite {
		for i, v := range req.Args {
			a := req.Addr + uint16(i)
			if a == CoilPower {
				m.power = v
			} else {
				m.coils[a] = v
			}
		}
		m.writes++
		return nil, nil
	}
	out := make([]bool, req.Quantity)
	for i := range out {
		a := req.Addr + uint16(i)
		if a == CoilPower {
			out[i] = m.power
		} else {
			out[i] = m.coils[a]
		}
	}
	return out, nil
}

func (h handler) HandleDiscreteInputs(req *modbus.DiscreteInputsRequest) ([]bool, error) {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.seen(req.ClientAddr, req.UnitId); err != nil {
		return nil, err
	}
	if req.Addr != DiscreteHeating || req.Quantity != 1 {
		return nil, modbus.ErrIllegalDataAddress
	}
	heating := m.power && m.Temperature(m.cfg.Clock.Now()) < float64(m.setpoint)/10
	return []bool{heating}, nil
}

func (h handler) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.seen(req.ClientAddr, req.UnitId); err != nil {
		return nil, err
	}
	if req.IsWrite {
		// Validate the whole request before changing anything.
		for i, v := range req.Args {
			a := req.Addr + uint16(i)
			switch {
			case a == HoldingSetpoint:
				if v > 1000 {
					return nil, modbus.ErrIllegalDataValue
				}
			case a >= BulkStart && a <= BulkEnd:
			default:
				return nil, modbus.ErrIllegalDataAddress
			}
		}
		for i, v := range req.Args {
			a := req.Addr + uint16(i)
			if a == HoldingSetpoint {
				m.setpoint = v
			} else {
				m.holding[a] = v
			}
		}
		m.writes++
		return nil, nil
	}
	out := make([]uint16, req.Quantity)
	for i := range out {
		v, err := m.readHolding(req.Addr + uint16(i))
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (h handler) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.seen(req.ClientAddr, req.UnitId); err != nil {
		return nil, err
	}
	now := m.cfg.Clock.Now()
	out := make([]uint16, req.Quantity)
	for i := range out {
		v, err := m.readInput(req.Addr+uint16(i), now)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// FreeLoopbackAddress returns 127.0.0.1:<port> for a port that was free a
// moment ago, for tests that start (and restart) a simulator on a fixed
// address.
func FreeLoopbackAddress() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr, nil
}
