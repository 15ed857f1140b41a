// Package config defines verge-edge's configuration file, written by
// `verge join` and read by verge-edge at start. Versioned, validated as a
// whole, strict about unknown fields.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/verge-edge/verge/internal/atomicfile"
	"github.com/verge-edge/verge/internal/logging"
	"github.com/verge-edge/verge/internal/nodecert"
	"github.com/verge-edge/verge/internal/protocol/kube"
)

// APIVersion and Kind identify the file format.
const (
	APIVersion = "verge.dev/v1alpha1"
	Kind       = "EdgeConfig"
)

// Edge is verge-edge's configuration.
type Edge struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`

	// NodeName is this node's name; it must match its certificate.
	NodeName string `json:"nodeName"`
	// Labels are applied to the Node object when the cloud creates it.
	Labels map[string]string `json:"labels,omitempty"`
	// Cloud is where the hub is.
	Cloud Cloud `json:"cloud"`
	// DataDir holds the store, credentials, pod volumes and logs.
	DataDir string `json:"dataDir"`
	// OpsAddress serves /healthz, /readyz, /metrics (and pprof if enabled).
	OpsAddress  string `json:"opsAddress"`
	EnablePprof bool   `json:"enablePprof"`

	Runtime Runtime         `json:"runtime"`
	Devices Devices         `json:"devices"`
	Log     logging.Options `json:"log"`
}

// Devices configures the device twin, its DMI server for mappers and the
// local MQTT bus.
type Devices struct {
	DMI  DMI  `json:"dmi"`
	MQTT MQTT `json:"mqtt"`
	// FlushInterval is how long readings from mappers gather before they
	// are written to the store and queued for the cloud in one write per
	// device (default 100ms).
	FlushInterval kube.Duration `json:"flushInterval"`
}

// DMI configures the socket mappers register on.
type DMI struct {
	// SocketDir holds the edge's DMI socket (dmi.sock, mode 0660) and,
	// by convention, mappers' sockets (mappers/); it is created 0750.
	// Mount it into mapper pods (hostPath). Default DataDir/dmi.
	SocketDir string `json:"socketDir,omitempty"`
	// AllowedUIDs and AllowedGIDs may connect (checked with the peer's
	// credentials). Default: root and verge-edge's own user.
	AllowedUIDs []uint32 `json:"allowedUIDs,omitempty"`
	AllowedGIDs []uint32 `json:"allowedGIDs,omitempty"`
}

// MQTT modes.
const (
	MQTTEmbedded = "embedded"
	MQTTExternal = "external"
	MQTTOff      = "off"
)

// MQTT configures the local event bus (KubeEdge's $hw/events/... topics).
type MQTT struct {
	// Mode is embedded (a broker inside verge-edge), external (a broker
	// at Broker) or off.
	Mode string `json:"mode"`
	// Listen is the embedded broker's address; loopback unless apps on
	// other hosts need it.
	Listen string `json:"listen"`
	// Broker is the external broker, e.g. tcp://127.0.0.1:1883.
	Broker string `json:"broker,omitempty"`
	// Username and PasswordFile authenticate to the external broker.
	Username     string `json:"username,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
}

// Cloud locates the hub.
type Cloud struct {
	// Address is host:port of verge-cloud's hub.
	Address string `json:"address"`
}

// Runtime configures the pod runtime.
type Runtime struct {
	// CRIEndpoint is the container runtime's CRI socket.
	CRIEndpoint string `json:"criEndpoint"`
	// CgroupParent is the cgroup under which pods run.
	CgroupParent string `json:"cgroupParent"`
	// ReconcilePeriod is how often what the runtime runs is compared with
	// what should run (stray containers removed, missing ones recreated).
	ReconcilePeriod kube.Duration `json:"reconcilePeriod"`
	// NodeIP is the address pods see as status.hostIP (default: the
	// address used to reach the cloud).
	NodeIP string `json:"nodeIP,omitempty"`
}

// Default returns a configuration with every optional field set.
func Default() Edge {
	return Edge{
		APIVersion:  APIVersion,
		Kind:        Kind,
		DataDir:     "/var/lib/verge",
		OpsAddress:  "127.0.0.1:10261",
		EnablePprof: false,
		Runtime: Runtime{
			CRIEndpoint:     "unix:///run/containerd/containerd.sock",
			CgroupParent:    "/verge",
			ReconcilePeriod: kube.Duration{Duration: 10 * time.Second},
		},
		Devices: Devices{
			MQTT:          MQTT{Mode: MQTTEmbedded, Listen: "127.0.0.1:1883"},
			FlushInterval: kube.Duration{Duration: 100 * time.Millisecond},
		},
		Log: logging.Defaults(),
	}
}

// Validate reports every invalid field at once.
func (c Edge) Validate() error {
	var errs []error
	if c.APIVersion != APIVersion || c.Kind != Kind {
		errs = append(errs, fmt.Errorf("apiVersion/kind is %s/%s: want %s/%s", c.APIVersion, c.Kind, APIVersion, Kind))
	}
	if err := nodecert.ValidateNodeName(c.NodeName); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := net.SplitHostPort(c.Cloud.Address); err != nil {
		errs = append(errs, fmt.Errorf("cloud.address %q is not host:port: %w", c.Cloud.Address, err))
	}
	if !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("dataDir %q must be an absolute path", c.DataDir))
	}
	if _, _, err := net.SplitHostPort(c.OpsAddress); err != nil {
		errs = append(errs, fmt.Errorf("opsAddress %q is not host:port: %w", c.OpsAddress, err))
	}
	if c.Runtime.CRIEndpoint == "" {
		errs = append(errs, errors.New("runtime.criEndpoint must be set"))
	}
	if c.Runtime.ReconcilePeriod.Duration < time.Second {
		errs = append(errs, fmt.Errorf("runtime.reconcilePeriod %s is too short: use at least 1s", c.Runtime.ReconcilePeriod.Duration))
	}
	if c.Runtime.NodeIP != "" && net.ParseIP(c.Runtime.NodeIP) == nil {
		errs = append(errs, fmt.Errorf("runtime.nodeIP %q is not an IP address", c.Runtime.NodeIP))
	}
	errs = append(errs, c.Devices.validate()...)
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (d Devices) validate() []error {
	var errs []error
	if d.DMI.SocketDir != "" && !filepath.IsAbs(d.DMI.SocketDir) {
		errs = append(errs, fmt.Errorf("devices.dmi.socketDir %q must be an absolute path", d.DMI.SocketDir))
	}
	if f := d.FlushInterval.Duration; f < 10*time.Millisecond || f > 10*time.Second {
		errs = append(errs, fmt.Errorf("devices.flushInterval %s is out of range: use 10ms to 10s", f))
	}
	switch d.MQTT.Mode {
	case MQTTEmbedded:
		if _, _, err := net.SplitHostPort(d.MQTT.Listen); err != nil {
			errs = append(errs, fmt.Errorf("devices.mqtt.listen %q is not host:port: %w", d.MQTT.Listen, err))
		}
	case MQTTExternal:
		if d.MQTT.Broker == "" {
			errs = append(errs, errors.New("devices.mqtt.broker must be set in mode external (e.g. tcp://127.0.0.1:1883)"))
		}
	case MQTTOff:
	default:
		errs = append(errs, fmt.Errorf("devices.mqtt.mode %q is not one of embedded, external, off", d.MQTT.Mode))
	}
	return errs
}

// DMIDir is the DMI directory (devices.dmi.socketDir, default DataDir/dmi).
func (c Edge) DMIDir() string {
	if c.Devices.DMI.SocketDir != "" {
		return c.Devices.DMI.SocketDir
	}
	return filepath.Join(c.DataDir, "dmi")
}

// Paths inside DataDir.
func (c Edge) PKIDir() string     { return filepath.Join(c.DataDir, "pki") }
func (c Edge) StorePath() string  { return filepath.Join(c.DataDir, "store.db") }
func (c Edge) PodsDir() string    { return filepath.Join(c.DataDir, "pods") }
func (c Edge) PodLogDir() string  { return filepath.Join(c.DataDir, "logs", "pods") }
func (c Edge) ConfigPath() string { return filepath.Join(c.DataDir, "edge.yaml") }

// Load reads and validates a config file over the defaults.
func Load(path string) (Edge, error) {
	c := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("reading config: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, fmt.Errorf("config file %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// Save writes the config atomically.
func (c Edge) Save(path string) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}
