// Package config defines verge-cloud's configuration: a versioned YAML file
// whose every field can be overridden by a command-line flag. Unknown fields
// are errors, so a typo never silently falls back to a default.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/verge-edge/verge/internal/logging"
)

// APIVersion and Kind identify the file format.
const (
	APIVersion = "verge.dev/v1alpha1"
	Kind       = "CloudConfig"
)

// Cloud is verge-cloud's configuration.
type Cloud struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`

	// Kubeconfig is the kubeconfig file for the Kubernetes API; empty means
	// $KUBECONFIG, then the in-cluster service account.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// KubeAPIQPS and KubeAPIBurst bound this process's request rate to the
	// API server.
	KubeAPIQPS   float32 `json:"kubeAPIQPS"`
	KubeAPIBurst int     `json:"kubeAPIBurst"`

	// OpsAddress serves /healthz, /readyz, /metrics and (if enabled) pprof.
	OpsAddress string `json:"opsAddress"`
	// EnablePprof serves /debug/pprof on OpsAddress.
	EnablePprof bool `json:"enablePprof"`

	// InstallCRDs applies Verge's CRDs at start (needs RBAC to do so).
	InstallCRDs bool `json:"installCRDs"`

	// Namespace holds verge-cloud's own objects (the Verge CA Secret).
	Namespace string `json:"namespace"`

	Hub Hub `json:"hub"`

	Tunnel Tunnel `json:"tunnel"`

	// ShutdownTimeout bounds the graceful shutdown after SIGTERM.
	ShutdownTimeout metav1.Duration `json:"shutdownTimeout"`

	Log logging.Options `json:"log"`
}

// Hub configures the endpoint edge nodes connect to.
type Hub struct {
	// Listen is the address edge nodes connect to (TLS, gRPC).
	Listen string `json:"listen"`
	// AdvertiseNames are extra DNS names or IPs put in the hub's serving
	// certificate (nodes verify the hub by its CA, so these are optional).
	AdvertiseNames []string `json:"advertiseNames,omitempty"`
	// NodeCertValidity is the lifetime of node certificates; nodes renew at
	// 70–90 % of it.
	NodeCertValidity metav1.Duration `json:"nodeCertValidity"`
	// Heartbeat is how often node and cloud exchange heartbeats.
	Heartbeat metav1.Duration `json:"heartbeat"`
}

// Tunnel configures how the API server reaches edge nodes' kubelet API
// (kubectl logs, exec, attach, port-forward) through the nodes' links; see
// docs/logs-exec.md.
type Tunnel struct {
	// Listen is the HTTPS address the API server calls instead of a
	// kubelet; its port is published as every edge node's kubelet port.
	// Listen on all interfaces (or on the nodes' addresses) so the API
	// server reaches it at a node's address. Empty turns tunnels off.
	Listen string `json:"listen"`
	// MaxPerNode bounds the tunnels, pending and open, to one node.
	MaxPerNode int `json:"maxPerNode"`
	// PeerAddress is this replica's hub address (host:port) as the other
	// verge-cloud replicas reach it, typically the pod IP and the hub's
	// port. Set on every replica, it lets a request for a node connected
	// to another replica be relayed there; empty: no relaying.
	PeerAddress string `json:"peerAddress,omitempty"`
}

// Port returns the port of Listen (0 when tunnels are off).
func (t Tunnel) Port() int32 {
	_, p, err := net.SplitHostPort(t.Listen)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0
	}
	return int32(n)
}

// Default returns the configuration used when nothing is set.
func Default() Cloud {
	return Cloud{
		APIVersion: APIVersion,
		Kind:       Kind,
		// Every connecting node costs a few API calls (lease, status): a
		// fleet reconnecting after a cloud restart needs headroom.
		KubeAPIQPS:   500,
		KubeAPIBurst: 1000,
		OpsAddress:   "127.0.0.1:10260",
		EnablePprof:  true,
		InstallCRDs:  true,
		Namespace:    "verge-system",
		Hub: Hub{
			Listen:           ":10000",
			NodeCertValidity: metav1.Duration{Duration: 365 * 24 * time.Hour},
			Heartbeat:        metav1.Duration{Duration: 15 * time.Second},
		},
		Tunnel: Tunnel{
			Listen:     ":10350",
			MaxPerNode: 32,
		},
		ShutdownTimeout: metav1.Duration{Duration: 30 * time.Second},
		Log:             logging.Defaults(),
	}
}

// Validate reports every invalid field at once.
func (c Cloud) Validate() error {
	var errs []error
	if c.APIVersion != APIVersion || c.Kind != Kind {
		errs = append(errs, fmt.Errorf("apiVersion/kind is %s/%s: want %s/%s", c.APIVersion, c.Kind, APIVersion, Kind))
	}
	if c.KubeAPIQPS <= 0 || c.KubeAPIBurst <= 0 {
		errs = append(errs, fmt.Errorf("kubeAPIQPS (%v) and kubeAPIBurst (%d) must be positive", c.KubeAPIQPS, c.KubeAPIBurst))
	}
	if _, _, err := net.SplitHostPort(c.OpsAddress); err != nil {
		errs = append(errs, fmt.Errorf("opsAddress %q is not host:port: %w", c.OpsAddress, err))
	}
	if c.ShutdownTimeout.Duration <= 0 {
		errs = append(errs, fmt.Errorf("shutdownTimeout %s must be positive", c.ShutdownTimeout.Duration))
	}
	if _, _, err := net.SplitHostPort(c.Hub.Listen); err != nil {
		errs = append(errs, fmt.Errorf("hub.listen %q is not host:port: %w", c.Hub.Listen, err))
	}
	if c.Hub.NodeCertValidity.Duration < time.Hour {
		errs = append(errs, fmt.Errorf("hub.nodeCertValidity %s is too short: use at least 1h", c.Hub.NodeCertValidity.Duration))
	}
	if c.Hub.Heartbeat.Duration < time.Second {
		errs = append(errs, fmt.Errorf("hub.heartbeat %s is too short: use at least 1s", c.Hub.Heartbeat.Duration))
	}
	if c.Tunnel.Listen != "" && c.Tunnel.Port() == 0 {
		errs = append(errs, fmt.Errorf("tunnel.listen %q must be host:port with a fixed port (it is published as the edge nodes' kubelet port), or empty to turn tunnels off", c.Tunnel.Listen))
	}
	if c.Tunnel.PeerAddress != "" {
		if host, port, err := net.SplitHostPort(c.Tunnel.PeerAddress); err != nil || host == "" || port == "" {
			errs = append(errs, fmt.Errorf("tunnel.peerAddress %q must be host:port of this replica's hub as the other replicas reach it (e.g. $(POD_IP):10000)", c.Tunnel.PeerAddress))
		}
	}
	if c.Tunnel.MaxPerNode < 1 {
		errs = append(errs, fmt.Errorf("tunnel.maxPerNode %d must be at least 1", c.Tunnel.MaxPerNode))
	}
	if c.Namespace == "" {
		errs = append(errs, errors.New("namespace must be set"))
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Load reads a config file over the defaults. Fields the file omits keep
// their defaults.
func Load(path string) (Cloud, error) {
	c := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("reading config: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// BindFlags registers a flag for every field, writing into c. Parse the
// flags after loading the file, so that flags override it.
func BindFlags(fs *pflag.FlagSet, c *Cloud) {
	fs.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "kubeconfig for the Kubernetes API (default: $KUBECONFIG, then in-cluster)")
	fs.Float32Var(&c.KubeAPIQPS, "kube-api-qps", c.KubeAPIQPS, "steady request rate to the Kubernetes API")
	fs.IntVar(&c.KubeAPIBurst, "kube-api-burst", c.KubeAPIBurst, "request burst to the Kubernetes API")
	fs.StringVar(&c.OpsAddress, "ops-address", c.OpsAddress, "address for /healthz, /readyz, /metrics and pprof")
	fs.BoolVar(&c.EnablePprof, "enable-pprof", c.EnablePprof, "serve /debug/pprof on the ops address")
	fs.BoolVar(&c.InstallCRDs, "install-crds", c.InstallCRDs, "apply Verge's CRDs at start")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "namespace for verge-cloud's own objects (the Verge CA)")
	fs.StringVar(&c.Hub.Listen, "hub-listen", c.Hub.Listen, "address edge nodes connect to")
	fs.StringSliceVar(&c.Hub.AdvertiseNames, "hub-advertise", c.Hub.AdvertiseNames, "extra names/IPs for the hub's certificate")
	fs.DurationVar(&c.Hub.NodeCertValidity.Duration, "node-cert-validity", c.Hub.NodeCertValidity.Duration, "lifetime of node certificates")
	fs.DurationVar(&c.Hub.Heartbeat.Duration, "heartbeat", c.Hub.Heartbeat.Duration, "heartbeat interval between nodes and the cloud")
	fs.StringVar(&c.Tunnel.Listen, "tunnel-listen", c.Tunnel.Listen, "HTTPS address the API server calls for edge nodes' logs/exec/port-forward (its port becomes the nodes' kubelet port; empty: off)")
	fs.StringVar(&c.Tunnel.PeerAddress, "tunnel-peer-address", c.Tunnel.PeerAddress, "this replica's hub address as other verge-cloud replicas reach it; set on every replica to relay logs/exec between them")
	fs.IntVar(&c.Tunnel.MaxPerNode, "tunnel-max-per-node", c.Tunnel.MaxPerNode, "most tunnels (logs, exec, port-forward) open to one edge node")
	fs.DurationVar(&c.ShutdownTimeout.Duration, "shutdown-timeout", c.ShutdownTimeout.Duration, "how long a graceful shutdown may take")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "debug, info, warn or error")
	fs.StringVar(&c.Log.Format, "log-format", c.Log.Format, "text or json")
}

// FromArgs builds the configuration from command-line arguments: defaults,
// then the file named by --config (if any), then the other flags.
func FromArgs(name string, args []string) (Cloud, error) {
	pre := pflag.NewFlagSet(name, pflag.ContinueOnError)
	pre.ParseErrorsAllowlist.UnknownFlags = true
	pre.Usage = func() {}
	path := pre.String("config", "", "")
	_ = pre.Parse(args) // real parse errors are reported by the full parse below

	c := Default()
	if *path != "" {
		var err error
		if c, err = Load(*path); err != nil {
			return c, err
		}
	}
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.String("config", "", "YAML config file (kind: CloudConfig); flags override it")
	BindFlags(fs, &c)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q: %s takes only flags", fs.Args(), name)
	}
	return c, c.Validate()
}
