// Command virtual is a complete mapper for an imaginary protocol, "virtual":
// each device is a set of numbers in memory that drift over time. It shows
// everything a protocol author writes with the mapper SDK: a Driver whose
// Connect checks configuration, and a Conn that reads, writes, reports
// health and closes. Registration with the edge, sampling, the cloud twin,
// sinks, desired values and the REST API come from the SDK.
//
//	go run ./examples/mapper/virtual --edge-socket /var/lib/verge/dmi/dmi.sock
//
// A Device for it names protocolName "virtual" and, per property, a visitor
// configData with "initial" (a number) and optionally "drift" (added every
// read).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/verge-edge/verge/pkg/mapper"
	"github.com/verge-edge/verge/pkg/mapper/value"
)

// driver keeps every virtual device's values.
type driver struct {
	mu     sync.Mutex
	values map[string]float64 // namespace/device/property → value
}

// Connect validates the visitors: configuration problems become
// *mapper.ConfigError, which the SDK shows as state "unhealthy" with the
// message as the reason.
func (d *driver) Connect(_ context.Context, dev *mapper.DeviceConfig) (mapper.Conn, error) {
	c := &conn{d: d, key: dev.Namespace + "/" + dev.Name + "/", drift: map[string]float64{}}
	for _, p := range dev.Properties {
		if !p.Type.Numeric() && p.Type != value.Boolean {
			return nil, mapper.ConfigErrorf(p.Name, "type %s is not supported: virtual devices hold numbers and booleans", p.Type)
		}
		initial, _, err := p.Visitor.Float("initial")
		if err != nil {
			return nil, mapper.ConfigErrorf(p.Name, "%v", err)
		}
		drift, _, err := p.Visitor.Float("drift")
		if err != nil {
			return nil, mapper.ConfigErrorf(p.Name, "%v", err)
		}
		c.drift[p.Name] = drift
		d.mu.Lock()
		if _, ok := d.values[c.key+p.Name]; !ok {
			d.values[c.key+p.Name] = initial
		}
		d.mu.Unlock()
	}
	return c, nil
}

type conn struct {
	d     *driver
	key   string
	drift map[string]float64
}

// Read returns the value; the SDK converts it to the property's type.
func (c *conn) Read(_ context.Context, p *mapper.PropertyConfig) (any, error) {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.d.values[c.key+p.Name] += c.drift[p.Name]
	return c.d.values[c.key+p.Name], nil
}

// Write receives a value already converted to the property's type and
// within the model's minimum and maximum.
func (c *conn) Write(_ context.Context, p *mapper.PropertyConfig, v any) error {
	var f float64
	switch t := v.(type) {
	case int64:
		f = float64(t)
	case float64:
		f = t
	case bool:
		if t {
			f = 1
		}
	default:
		return fmt.Errorf("cannot store a %T", v)
	}
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.d.values[c.key+p.Name] = f
	return nil
}

func (c *conn) Health(context.Context) error { return nil }

func (c *conn) Close() error { return nil }

func main() {
	cfg := mapper.Config{Protocol: "virtual"}
	flag.StringVar(&cfg.Name, "name", "virtual", "mapper name")
	flag.StringVar(&cfg.EdgeSocket, "edge-socket", mapper.DefaultEdgeSocket, "the edge's DMI socket")
	flag.StringVar(&cfg.Socket, "socket", "", "this mapper's DMI socket")
	flag.StringVar(&cfg.REST.Address, "rest-address", mapper.DefaultRESTAddr, "REST API address")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	m, err := mapper.New(cfg, &driver{values: map[string]float64{}}, mapper.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
