package localup

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/verge-edge/verge/examples"
	"github.com/verge-edge/verge/internal/imagebuild"
	"github.com/verge-edge/verge/internal/kubeapply"
	"github.com/verge-edge/verge/internal/supervisor"
	"github.com/verge-edge/verge/internal/version"
)

// Demos `verge up --demo` knows.
const DemoDevices = "devices"

// DefaultDemoModbusPort is where the demo's simulated Modbus device listens
// (the port examples/devices/modbus/device.yaml names).
const DefaultDemoModbusPort = 5020

// DefaultMQTTBasePort + i is edge-i's MQTT bus (the node's embedded
// broker), on loopback.
const DefaultMQTTBasePort = 11882

// checkDemo validates the demo options before anything starts.
func checkDemo(o Options) error {
	switch o.Demo {
	case "":
		return nil
	case DemoDevices:
		if o.EdgeNodes < 1 {
			return &UserError{"--demo devices deploys to edge-1: run with --edge-nodes 1 or more"}
		}
		return nil
	}
	return &UserError{fmt.Sprintf("unknown demo %q: the demos are %q", o.Demo, DemoDevices)}
}

// devicesDemo starts the simulated thermostat (verge-devsim modbus on the
// host's loopback, supervised), pushes the verge-mapper-modbus image, and
// applies the mapper Deployment and the DeviceModel and Device of
// examples/devices/modbus to edge-1. It returns what to print.
func devicesDemo(ctx context.Context, group *supervisor.Group, o Options, dir, registry string, bins vergeBinaries, rc *rest.Config, site *edgeSite) (string, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.DemoModbusPort))
	if _, err := group.Start(supervisor.Spec{
		Name:    "verge-devsim",
		Path:    bins.devsim,
		Args:    []string{"modbus", "--address", addr},
		LogPath: filepath.Join(dir, "logs", "verge-devsim.log"),
	}); err != nil {
		return "", err
	}
	if err := waitTCP(ctx, addr, 30*time.Second); err != nil {
		return "", fmt.Errorf("the simulated Modbus device did not start: %w (log: %s)", err, filepath.Join(dir, "logs", "verge-devsim.log"))
	}
	img, err := imagebuild.BuildFile(bins.mapper, nil)
	if err != nil {
		return "", fmt.Errorf("the verge-mapper-modbus image: %w", err)
	}
	ref, err := imagebuild.Push(ctx, img, registry+"/verge/mapper-modbus:"+strings.NewReplacer("+", "-", "/", "-").Replace(version.Version))
	if err != nil {
		return "", err
	}
	node := site.node("edge-1")
	if node == nil {
		return "", fmt.Errorf("the devices demo needs edge-1")
	}
	mapperYAML, err := examples.ModbusMapperManifest(examples.ModbusMapper{Image: ref, DMIDir: node.cfg.DMIDir()})
	if err != nil {
		return "", err
	}
	model, err := examples.Manifest("devices/modbus/devicemodel.yaml")
	if err != nil {
		return "", err
	}
	device, err := examples.Manifest("devices/modbus/device.yaml")
	if err != nil {
		return "", err
	}
	if o.DemoModbusPort != DefaultDemoModbusPort {
		device = []byte(strings.Replace(string(device), fmt.Sprintf("port: %d", DefaultDemoModbusPort), fmt.Sprintf("port: %d", o.DemoModbusPort), 1))
	}
	ap, err := kubeapply.New(rc, "verge-up")
	if err != nil {
		return "", err
	}
	if err := ap.Apply(ctx, mapperYAML, model, device); err != nil {
		return "", fmt.Errorf("deploying the devices demo: %w", err)
	}
	return fmt.Sprintf(`  Devices demo:    thermostat-1 on edge-1 (simulated Modbus device at %s, verge-mapper-modbus %s)
                   kubectl get devices,devicestatuses; kubectl get devicestatus thermostat-1 -o yaml
                   kubectl patch device thermostat-1 --type=json -p '[{"op":"replace","path":"/spec/properties/2/desired/value","value":"23"}]'
                   MQTT bus of edge-1: %s (topics $hw/events/device/default/thermostat-1/...)
`, addr, ref, node.cfg.Devices.MQTT.Listen), nil
}

func (s *edgeSite) node(name string) *localNode {
	for _, n := range s.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// waitTCP waits until addr accepts connections.
func waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
