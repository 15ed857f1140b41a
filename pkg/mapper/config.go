package mapper

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"time"
)

// Default paths. The edge serves DMI in a directory of its own (not
// alongside its certificates), and mappers put their sockets beside it.
const (
	DefaultEdgeSocket = "/var/lib/verge/dmi/dmi.sock"
	DefaultSocketDir  = "/var/lib/verge/dmi/mappers"
	DefaultRESTAddr   = "127.0.0.1:7777"
)

// Config is a mapper's configuration. Zero fields take the defaults noted;
// credentials for sinks never live here (they come from the environment,
// filled from Secrets).
type Config struct {
	// Name identifies the mapper on its node; the edge binds devices to
	// mappers by name, so several mappers may serve one protocol.
	Name string `json:"name"`
	// Protocol is the protocolName of the devices this mapper serves.
	Protocol string `json:"protocol"`
	// Version is reported at registration.
	Version string `json:"version"`
	// EdgeSocket is the edge's DMI socket. Default DefaultEdgeSocket.
	EdgeSocket string `json:"edgeSocket"`
	// Socket is where this mapper serves DMI. Default
	// DefaultSocketDir/<name>.sock.
	Socket string `json:"socket"`

	REST RESTConfig `json:"rest"`

	// DefaultCollectCycle applies to properties without collectCycle.
	// Default 1 s.
	DefaultCollectCycle time.Duration `json:"defaultCollectCycle"`
	// ReadTimeout bounds one property read or write. Default 5 s.
	ReadTimeout time.Duration `json:"readTimeout"`
	// HealthInterval is how often each device's health is checked.
	// Default 5 s.
	HealthInterval time.Duration `json:"healthInterval"`
	// TwinDeadband is the default deadband for numeric properties reported
	// to the cloud twin; a property's visitor key "deadband" overrides it.
	// 0 reports every change.
	TwinDeadband float64 `json:"twinDeadband"`

	Sinks SinkConfig `json:"sinks"`
}

// RESTConfig configures the local REST API.
type RESTConfig struct {
	// Address to listen on; default 127.0.0.1:7777. "off" disables the
	// API. A non-loopback address requires mTLS.
	Address string `json:"address"`
	// CertFile and KeyFile are the server certificate; ClientCAFile the CA
	// that signs client certificates. All three or none.
	CertFile     string `json:"certFile"`
	KeyFile      string `json:"keyFile"`
	ClientCAFile string `json:"clientCAFile"`
}

// TLS reports whether mTLS is configured.
func (r RESTConfig) TLS() bool { return r.CertFile != "" || r.KeyFile != "" || r.ClientCAFile != "" }

// SinkConfig bounds every sink's buffer and retries.
type SinkConfig struct {
	// QueueSize per sink, in samples. Default 10000.
	QueueSize int `json:"queueSize"`
	// MaxBatch samples per write. Default 500.
	MaxBatch int `json:"maxBatch"`
	// MaxAttempts per batch. Default 5.
	MaxAttempts int `json:"maxAttempts"`
	// RetryMin and RetryMax bound the jittered backoff. Defaults 200 ms, 10 s.
	RetryMin time.Duration `json:"retryMin"`
	RetryMax time.Duration `json:"retryMax"`
	// Linger gathers samples arriving together into one write (one DMI
	// report per device instead of one per reading). Default 100 ms;
	// negative writes at once.
	Linger time.Duration `json:"linger"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.EdgeSocket == "" {
		c.EdgeSocket = DefaultEdgeSocket
	}
	if c.Socket == "" && c.Name != "" {
		c.Socket = filepath.Join(DefaultSocketDir, c.Name+".sock")
	}
	if c.Version == "" {
		c.Version = "v0.0.0"
	}
	if c.REST.Address == "" {
		c.REST.Address = DefaultRESTAddr
	}
	if c.DefaultCollectCycle <= 0 {
		c.DefaultCollectCycle = time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 5 * time.Second
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = 5 * time.Second
	}
	if c.Sinks.Linger == 0 {
		c.Sinks.Linger = 100 * time.Millisecond
	}
	return c
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// Validate reports every problem, each saying what to change.
func (c Config) Validate() error {
	var errs []error
	if !nameRE.MatchString(c.Name) || len(c.Name) > 63 {
		errs = append(errs, fmt.Errorf("mapper name %q must be 1-63 lower-case letters, digits, '-' or '.', starting and ending with a letter or digit", c.Name))
	}
	if c.Protocol == "" {
		errs = append(errs, errors.New("protocol is empty: set the protocolName of the devices this mapper serves, e.g. modbus"))
	}
	for _, p := range []struct{ field, path string }{{"edge socket", c.EdgeSocket}, {"mapper socket", c.Socket}} {
		if !filepath.IsAbs(p.path) {
			errs = append(errs, fmt.Errorf("%s %q must be an absolute path", p.field, p.path))
		}
	}
	if c.EdgeSocket == c.Socket && c.Socket != "" {
		errs = append(errs, fmt.Errorf("mapper socket %q is the edge's socket: give the mapper its own", c.Socket))
	}
	if c.REST.Address != "off" {
		host, _, err := net.SplitHostPort(c.REST.Address)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("REST address %q: %w (use host:port, e.g. 127.0.0.1:7777, or off)", c.REST.Address, err))
		case c.REST.TLS() && (c.REST.CertFile == "" || c.REST.KeyFile == "" || c.REST.ClientCAFile == ""):
			errs = append(errs, errors.New("REST mTLS needs all of the certificate, key and client CA files"))
		case !c.REST.TLS() && !isLoopback(host):
			errs = append(errs, fmt.Errorf("REST address %q is not loopback: device writes would be open to the network; use 127.0.0.1 or configure mTLS (certificate, key and client CA)", c.REST.Address))
		}
	}
	if c.TwinDeadband < 0 {
		errs = append(errs, fmt.Errorf("twin deadband %v must not be negative", c.TwinDeadband))
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
