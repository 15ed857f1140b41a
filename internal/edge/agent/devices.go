package agent

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/verge-edge/verge/internal/edge/config"
	"github.com/verge-edge/verge/internal/edge/devicetwin"
	"github.com/verge-edge/verge/internal/edge/mqttbus"
	"github.com/verge-edge/verge/internal/edge/store"
)

// deviceParts are verge-edge's device parts: the device twin with its DMI
// server, and the MQTT bus (nil when turned off). They meet the rest of
// the agent only through the store: Devices and DeviceModels the hub
// client committed come in, device reports go out through the outbox.
type deviceParts struct {
	twin *devicetwin.Service
	bus  *mqttbus.Bus
}

func newDeviceParts(cfg config.Edge, st *store.Store, logger *slog.Logger, reg prometheus.Registerer, kick func()) (*deviceParts, error) {
	d := &deviceParts{}
	var events devicetwin.Events
	if m := cfg.Devices.MQTT; m.Mode != config.MQTTOff {
		var broker mqttbus.Broker = &mqttbus.Embedded{Listen: m.Listen, Logger: logger}
		if m.Mode == config.MQTTExternal {
			broker = &mqttbus.External{Broker: m.Broker, ClientID: "verge-edge-" + cfg.NodeName, Username: m.Username, PasswordFile: m.PasswordFile, Logger: logger}
		}
		bus, err := mqttbus.New(mqttbus.Config{NodeName: cfg.NodeName, Broker: broker, Logger: logger, Registry: reg})
		if err != nil {
			return nil, err
		}
		d.bus, events = bus, bus
	}
	twin, err := devicetwin.New(devicetwin.Config{
		NodeName:      cfg.NodeName,
		SocketDir:     cfg.DMIDir(),
		AllowedUIDs:   cfg.Devices.DMI.AllowedUIDs,
		AllowedGIDs:   cfg.Devices.DMI.AllowedGIDs,
		FlushInterval: cfg.Devices.FlushInterval.Duration,
		Kick:          kick,
		Events:        events,
		Logger:        logger,
		Registry:      reg,
	}, st)
	if err != nil {
		return nil, err
	}
	d.twin = twin
	if d.bus != nil {
		d.bus.SetTwin(twin)
	}
	return d, nil
}

// Start runs the twin and the bus until ctx ends.
func (d *deviceParts) Start(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.twin.Start(gctx) })
	if d.bus != nil {
		g.Go(func() error { return d.bus.Start(gctx) })
	}
	return g.Wait()
}
